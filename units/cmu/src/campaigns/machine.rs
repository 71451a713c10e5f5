//! The campaign's rollout as a pure state machine (H.626.4 8.11.1 over a fleet): given the
//! devices' results and the time, it says which devices to order next, when a stage ends,
//! when the next starts and when to pause. No IO: the driver in `campaigns.rs` rebuilds it
//! from the store on each tick, feeds it what the devices reported, and stores what changed.
//!
//! Rules (docs/design/fleet-upgrades.md):
//! - devices are split into stages at creation: stage 0 is the canary (a share of the
//!   devices, at least one), then waves of a fixed size;
//! - only the current stage's devices are ordered, and never more devices are in flight
//!   (ordered, downloading, installing) than the current stage has devices;
//! - a device that is offline when its turn comes is marked `offline`; it does not hold
//!   its stage back, and it is ordered when it comes back while the campaign runs; those
//!   still offline when the last stage ends are `skipped` ("offline");
//! - a device already running the version or a newer one is `skipped` ("newer");
//! - when the current stage has at least `min(min_results, stage size)` results and more
//!   than `failure_percent` of them are failures, the campaign pauses; resuming waives the
//!   check for that stage only (the operator has seen the failures);
//! - a stage ends when none of its devices is pending or in flight; the next starts
//!   `soak_s` later; after the last, the campaign is completed.

/// One device's state in a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DevState {
    /// Not ordered yet.
    Pending,
    /// Ordered; no report yet.
    Sent,
    /// Downloading the payload.
    Downloading,
    /// Installing or restarting into it.
    Installing,
    /// Running the new version.
    Installed,
    /// Failed (refused, download or install failed, rolled back, no report in time).
    Failed,
    /// Not upgraded: already newer, offline at the end, or the campaign was aborted.
    Skipped,
    /// Offline when its turn came; ordered when it comes back.
    Offline,
}

impl DevState {
    /// Every state, for tests and parsing.
    pub(crate) const ALL: [Self; 8] = [
        Self::Pending,
        Self::Sent,
        Self::Downloading,
        Self::Installing,
        Self::Installed,
        Self::Failed,
        Self::Skipped,
        Self::Offline,
    ];

    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Downloading => "downloading",
            Self::Installing => "installing",
            Self::Installed => "installed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Offline => "offline",
        }
    }

    /// The state named `s`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Ordered and not finished.
    pub(crate) fn in_flight(self) -> bool {
        matches!(self, Self::Sent | Self::Downloading | Self::Installing)
    }

    /// Finished for good.
    #[cfg(test)]
    pub(crate) fn terminal(self) -> bool {
        matches!(self, Self::Installed | Self::Failed | Self::Skipped)
    }
}

/// The campaign's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Ordering the current stage.
    Running,
    /// Between two stages.
    Soaking,
    /// Paused by the threshold or the operator.
    Paused,
    /// Stopped by the operator.
    Aborted,
    /// Every stage went through.
    Completed,
}

impl State {
    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Soaking => "soaking",
            Self::Paused => "paused",
            Self::Aborted => "aborted",
            Self::Completed => "completed",
        }
    }

    /// The state named `s`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Soaking,
            Self::Paused,
            Self::Aborted,
            Self::Completed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The driver still has work.
    pub(crate) fn active(self) -> bool {
        matches!(self, Self::Running | Self::Soaking)
    }
}

/// The thresholds and times of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    /// Pause when more than this percentage of a stage's results are failures.
    pub(crate) failure_percent: u32,
    /// ... once it has this many results (or all of a smaller stage's devices).
    pub(crate) min_results: u32,
    /// Seconds between stages.
    pub(crate) soak_s: u64,
    /// Seconds after its order before a silent device has failed.
    pub(crate) device_timeout_s: u64,
}

/// One device of the campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dev {
    pub(crate) stage: u32,
    pub(crate) state: DevState,
    /// When it was last ordered, Unix seconds.
    pub(crate) ordered_at: Option<u64>,
}

/// What the machine found about a device it is about to order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Online and older than the package.
    Ready,
    /// Not connected.
    Offline,
    /// Already runs this version or a newer one.
    Newer,
}

/// What the driver must do after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// Send the upgrade to device `i` (its state is `Sent` now).
    Order(usize),
    /// Device `i` changed state by the machine's own rule, with a reason.
    Marked(usize, DevState, &'static str),
    /// The campaign paused by itself.
    Paused(String),
    /// A stage ended; the next starts at this time.
    Soaking(u32, u64),
    /// A stage started.
    StageStarted(u32),
    /// The last stage ended.
    Completed,
}

/// A campaign's rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Machine {
    pub(crate) params: Params,
    pub(crate) state: State,
    pub(crate) stage: u32,
    /// Number of stages.
    pub(crate) stages: u32,
    pub(crate) next_stage_at: Option<u64>,
    /// The stage whose threshold the operator waived by resuming.
    pub(crate) waived_stage: Option<u32>,
    pub(crate) devices: Vec<Dev>,
}

/// The stage of each of `n` devices: a canary of `canary_percent` (at least one device),
/// then waves of `wave_size` (at least one). Also returns the number of stages.
pub(crate) fn plan(n: usize, canary_percent: u32, wave_size: u32) -> (Vec<u32>, u32) {
    if n == 0 {
        return (Vec::new(), 0);
    }
    let canary = (n * canary_percent.min(100) as usize)
        .div_ceil(100)
        .clamp(1, n);
    let wave = (wave_size as usize).max(1);
    let stage_of = |i: usize| {
        if i < canary {
            0
        } else {
            u32::try_from(1 + (i - canary) / wave).unwrap_or(u32::MAX)
        }
    };
    let stages: Vec<u32> = (0..n).map(stage_of).collect();
    let count = stages.last().map_or(0, |s| s + 1);
    (stages, count)
}

/// The default wave size: a quarter of the devices after the canary, at least one.
pub(crate) fn default_wave(n: usize, canary_percent: u32) -> u32 {
    let canary = (n * canary_percent.min(100) as usize)
        .div_ceil(100)
        .clamp(1, n.max(1));
    u32::try_from(n.saturating_sub(canary).div_ceil(4).max(1)).unwrap_or(u32::MAX)
}

impl Machine {
    /// Devices of stage `s`.
    pub(crate) fn stage_size(&self, s: u32) -> usize {
        self.devices.iter().filter(|d| d.stage == s).count()
    }

    /// Devices in flight, whatever their stage.
    pub(crate) fn in_flight(&self) -> usize {
        self.devices.iter().filter(|d| d.state.in_flight()).count()
    }

    /// (results, failures) of stage `s`.
    pub(crate) fn results(&self, s: u32) -> (usize, usize) {
        let of = || self.devices.iter().filter(|d| d.stage == s);
        let failed = of().filter(|d| d.state == DevState::Failed).count();
        let installed = of().filter(|d| d.state == DevState::Installed).count();
        (installed + failed, failed)
    }

    /// Whether stage `s`'s failures are past the threshold.
    pub(crate) fn crossed(&self, s: u32) -> bool {
        let (results, failed) = self.results(s);
        // Devices skipped or offline give no result: a smaller stage needs fewer.
        let gone = self
            .devices
            .iter()
            .filter(|d| d.stage == s && matches!(d.state, DevState::Skipped | DevState::Offline))
            .count();
        let need = (self.params.min_results as usize)
            .min(self.stage_size(s).saturating_sub(gone))
            .max(1);
        results >= need
            && (failed as u128) * 100 > u128::from(self.params.failure_percent) * results as u128
    }

    /// A device reported: `i` is now in `state` (reports of devices not in flight are
    /// ignored).
    /// Returns whether anything changed.
    pub(crate) fn report(&mut self, i: usize, state: DevState) -> bool {
        let Some(d) = self.devices.get_mut(i) else {
            return false;
        };
        // Only devices in flight report (an offline device is ordered again when back).
        if !d.state.in_flight() || d.state == state || state == DevState::Pending {
            return false;
        }
        d.state = state;
        true
    }

    /// The operator pauses.
    pub(crate) fn pause(&mut self) -> bool {
        if self.state.active() {
            self.state = State::Paused;
            true
        } else {
            false
        }
    }

    /// The operator resumes: a pause by the threshold waives the threshold for this stage.
    pub(crate) fn resume(&mut self) -> bool {
        if self.state != State::Paused {
            return false;
        }
        if self.crossed(self.stage) {
            self.waived_stage = Some(self.stage);
        }
        self.state = if self.next_stage_at.is_some() {
            State::Soaking
        } else {
            State::Running
        };
        true
    }

    /// The operator aborts: nothing more is ordered; what was not ordered is skipped.
    pub(crate) fn abort(&mut self) -> Vec<Output> {
        if matches!(self.state, State::Aborted | State::Completed) {
            return Vec::new();
        }
        self.state = State::Aborted;
        self.next_stage_at = None;
        let mut out = Vec::new();
        for (i, d) in self.devices.iter_mut().enumerate() {
            if matches!(d.state, DevState::Pending | DevState::Offline) {
                d.state = DevState::Skipped;
                out.push(Output::Marked(i, DevState::Skipped, "campaign aborted"));
            }
        }
        out
    }

    /// One step at `now`; `probe(i)` says whether device `i` can be ordered.
    pub(crate) fn step(&mut self, now: u64, mut probe: impl FnMut(usize) -> Probe) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.state.active() {
            return out;
        }
        // Silent devices have failed.
        let timeout = self.params.device_timeout_s;
        for (i, d) in self.devices.iter_mut().enumerate() {
            if d.state.in_flight()
                && d.ordered_at
                    .is_some_and(|t| now >= t.saturating_add(timeout))
            {
                d.state = DevState::Failed;
                out.push(Output::Marked(i, DevState::Failed, "no report in time"));
            }
        }
        // The threshold, on the stage under way.
        if self.waived_stage != Some(self.stage) && self.crossed(self.stage) {
            let (results, failed) = self.results(self.stage);
            self.state = State::Paused;
            out.push(Output::Paused(format!(
                "{failed} of {results} results failed in stage {} (threshold {}%)",
                self.stage, self.params.failure_percent
            )));
            return out;
        }
        if self.state == State::Soaking {
            match self.next_stage_at {
                Some(t) if now >= t => {
                    self.stage += 1;
                    self.next_stage_at = None;
                    self.state = State::Running;
                    out.push(Output::StageStarted(self.stage));
                }
                _ => {}
            }
        }
        // Orders: the stage's pending devices, and earlier ones back from offline.
        let cap = self.stage_size(self.stage).max(1);
        let mut flying = self.in_flight();
        let stage = self.stage;
        let running = self.state == State::Running;
        for (i, d) in self.devices.iter_mut().enumerate() {
            let candidate = match d.state {
                DevState::Pending => running && d.stage == stage,
                DevState::Offline => d.stage <= stage,
                _ => false,
            };
            if !candidate || flying >= cap {
                continue;
            }
            match probe(i) {
                Probe::Ready => {
                    d.state = DevState::Sent;
                    d.ordered_at = Some(now);
                    flying += 1;
                    out.push(Output::Order(i));
                }
                Probe::Newer => {
                    d.state = DevState::Skipped;
                    out.push(Output::Marked(i, DevState::Skipped, "already newer"));
                }
                Probe::Offline if d.state == DevState::Pending => {
                    d.state = DevState::Offline;
                    out.push(Output::Marked(i, DevState::Offline, "offline"));
                }
                Probe::Offline => {}
            }
        }
        // The end of the stage.
        let open = self.devices.iter().any(|d| {
            d.state.in_flight() || (d.stage == self.stage && d.state == DevState::Pending)
        });
        if self.state == State::Running && !open {
            if self.stage + 1 < self.stages {
                let at = now.saturating_add(self.params.soak_s);
                self.state = State::Soaking;
                self.next_stage_at = Some(at);
                out.push(Output::Soaking(self.stage, at));
            } else {
                self.state = State::Completed;
                for (i, d) in self.devices.iter_mut().enumerate() {
                    if d.state == DevState::Offline {
                        d.state = DevState::Skipped;
                        out.push(Output::Marked(i, DevState::Skipped, "offline"));
                    }
                }
                out.push(Output::Completed);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn machine(n: usize, canary: u32, wave: u32, params: Params) -> Machine {
        let (stages, count) = plan(n, canary, wave);
        Machine {
            params,
            state: State::Running,
            stage: 0,
            stages: count,
            next_stage_at: None,
            waived_stage: None,
            devices: stages
                .into_iter()
                .map(|stage| Dev {
                    stage,
                    state: DevState::Pending,
                    ordered_at: None,
                })
                .collect(),
        }
    }

    const PARAMS: Params = Params {
        failure_percent: 20,
        min_results: 3,
        soak_s: 60,
        device_timeout_s: 600,
    };

    #[test]
    fn plan_has_a_canary_of_at_least_one_then_waves() {
        let (s, n) = plan(100, 5, 30);
        assert_eq!(s.iter().filter(|&&s| s == 0).count(), 5);
        assert_eq!(n, 5, "5 + 30 + 30 + 30 + 5");
        let (s, n) = plan(3, 5, 1);
        assert_eq!((s, n), (vec![0, 1, 2], 3));
        assert_eq!(plan(0, 5, 1), (vec![], 0));
        assert_eq!(default_wave(100, 5), 24);
    }

    #[test]
    fn h626_8_11_1_campaign_canary_failure_pauses_and_waits() {
        let mut m = machine(20, 5, 10, PARAMS);
        let out = m.step(0, |_| Probe::Ready);
        assert_eq!(out, vec![Output::Order(0)]);
        assert!(m.report(0, DevState::Failed));
        let out = m.step(1, |_| Probe::Ready);
        assert!(
            matches!(&out[..], [Output::Paused(r)] if r.contains("1 of 1")),
            "{out:?}"
        );
        assert_eq!(m.state, State::Paused);
        assert!(
            m.step(2, |_| Probe::Ready).is_empty(),
            "nothing while paused"
        );
        // Resuming waives the canary's threshold: the waves go on.
        assert!(m.resume());
        let out = m.step(3, |_| Probe::Ready);
        assert!(matches!(out[..], [Output::Soaking(0, 63)]), "{out:?}");
        let out = m.step(63, |_| Probe::Ready);
        assert_eq!(out[0], Output::StageStarted(1));
        assert_eq!(out.len(), 11, "the wave of ten is ordered at once: {out:?}");
    }

    #[test]
    fn h626_8_11_1_campaign_offline_devices_wait_then_skip() {
        let mut m = machine(2, 50, 1, PARAMS);
        // Device 0 offline: marked, the stage ends without it.
        let out = m.step(0, |_| Probe::Offline);
        assert_eq!(out[0], Output::Marked(0, DevState::Offline, "offline"));
        assert!(matches!(out[1], Output::Soaking(0, 60)));
        let out = m.step(60, |i| if i == 0 { Probe::Offline } else { Probe::Ready });
        assert_eq!(out, vec![Output::StageStarted(1), Output::Order(1)]);
        m.report(1, DevState::Installed);
        let out = m.step(61, |_| Probe::Offline);
        assert_eq!(
            out,
            vec![
                Output::Marked(0, DevState::Skipped, "offline"),
                Output::Completed
            ]
        );
    }

    #[test]
    fn h626_8_11_1_campaign_newer_devices_are_skipped_and_silent_ones_fail() {
        let mut m = machine(2, 100, 1, PARAMS);
        let out = m.step(0, |i| if i == 0 { Probe::Newer } else { Probe::Ready });
        assert_eq!(
            out,
            vec![
                Output::Marked(0, DevState::Skipped, "already newer"),
                Output::Order(1)
            ]
        );
        let out = m.step(600, |_| Probe::Ready);
        assert_eq!(
            out[0],
            Output::Marked(1, DevState::Failed, "no report in time")
        );
        assert_eq!(m.state, State::Paused);
    }

    #[test]
    fn h626_8_11_1_campaign_abort_skips_what_was_not_ordered() {
        let mut m = machine(4, 25, 3, PARAMS);
        m.step(0, |_| Probe::Ready);
        let out = m.abort();
        assert_eq!(out.len(), 3);
        assert_eq!(m.state, State::Aborted);
        assert!(m.step(10, |_| Probe::Ready).is_empty());
        assert_eq!(m.devices[0].state, DevState::Sent, "in flight stays");
    }

    #[derive(Debug, Clone)]
    enum Input {
        /// Time passes.
        Tick(u64),
        /// Device (index modulo n) reports.
        Report(usize, u8),
        /// The operator.
        Pause,
        Resume,
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            4 => (0u64..200).prop_map(Input::Tick),
            6 => (0usize..1000, 0u8..4).prop_map(|(i, r)| Input::Report(i, r)),
            1 => Just(Input::Pause),
            1 => Just(Input::Resume),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// In virtual time, whatever the devices report: never more in flight than the
        /// current stage's size; stages only move forward; the campaign pauses by itself
        /// exactly when the stage under way crosses the threshold (unless waived).
        #[test]
        fn h626_8_11_1_campaign_machine_invariants(
            n in 1usize..60,
            canary in 1u32..50,
            wave in 1u32..20,
            failure_percent in 0u32..100,
            min_results in 1u32..6,
            online in proptest::collection::vec(any::<bool>(), 60),
            inputs in proptest::collection::vec(input(), 1..200),
        ) {
            let params = Params { failure_percent, min_results, soak_s: 30, device_timeout_s: 500 };
            let mut m = machine(n, canary, wave, params);
            let mut now = 0u64;
            let mut last_stage = 0;
            for inp in inputs {
                match inp {
                    Input::Tick(dt) => now += dt,
                    Input::Report(i, r) => {
                        let s = [DevState::Downloading, DevState::Installing, DevState::Installed, DevState::Failed][r as usize];
                        m.report(i % n, s);
                    }
                    Input::Pause => { m.pause(); }
                    Input::Resume => { m.resume(); }
                }
                let before = m.clone();
                let out = m.step(now, |i| if online[i] { Probe::Ready } else { Probe::Offline });
                prop_assert!(m.in_flight() <= m.stage_size(m.stage).max(1),
                    "in flight {} > stage size {}", m.in_flight(), m.stage_size(m.stage));
                prop_assert!(m.stage >= last_stage && m.stage < m.stages.max(1));
                last_stage = m.stage;
                let paused = out.iter().any(|o| matches!(o, Output::Paused(_)));
                if before.state.active() {
                    // Timeouts are the only change before the check: apply them to `before`.
                    let mut t = before.clone();
                    for d in &mut t.devices {
                        if d.state.in_flight() && d.ordered_at.is_some_and(|o| now >= o + 500) {
                            d.state = DevState::Failed;
                        }
                    }
                    let should = t.waived_stage != Some(t.stage) && t.crossed(t.stage);
                    prop_assert_eq!(paused, should);
                } else {
                    prop_assert!(out.is_empty());
                }
                for o in &out {
                    if let Output::Order(i) = o {
                        prop_assert!(online[*i]);
                        prop_assert!(m.devices[*i].stage <= m.stage);
                    }
                }
                if m.state == State::Completed {
                    prop_assert!(m.devices.iter().all(|d| d.state.terminal()));
                }
            }
        }
    }
}
