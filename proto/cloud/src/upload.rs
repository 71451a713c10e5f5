//! The camera's cloud outbox (H.626.4 8.7.1, Cp): which packed object to send next, on
//! which lane, and what to do with each answer of the CS. Pure: driven with `now` (a
//! monotonic clock in ms) and the answers; the caller does the HTTP and keeps the bytes,
//! keys and hashes (the card's `cloud_outbox` rows).
//!
//! * Lifecycle of an object: packed -> in flight -> acked (the CS answered 200/201: only
//!   now may its copy go, [`Outbox::take_acked`]) or lost (card retention took it first,
//!   or the CS refused its bytes: reported with `skip`, [`Outbox::take_lost`]). Nothing
//!   moves backwards.
//! * Two lanes, one request in flight each. The live lane sends the newest packed object
//!   (a stolen camera has sent what it saw until the theft), the back-fill lane the oldest,
//!   so after an outage the back-fill proceeds in sequence order while live recording
//!   continues. A lane keeps its object until it is acked or lost, retrying it, so the
//!   back-fill never goes back in sequence.
//! * Network errors and 5xx: the lane retries after the jittered exponential back-off of
//!   [`peercam_base::Backoff`] (1 s to 60 s). 401 `expired`: one grant refresh, both lanes
//!   wait for it. 507 `quota_full`: with a cyclic strategy one `prune {need_bytes}` and a
//!   retry at once; without, cloud recording stops, reports full once, and waits for
//!   [`Outbox::resume`] (the CMU's `cloud_resume` after a plan change).

use std::collections::BTreeMap;
use std::time::Duration;

use peercam_base::Backoff;

/// First retry delay.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// One of the two upload lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The newest packed object.
    Live,
    /// The oldest packed object.
    Backfill,
}

impl Lane {
    fn at(self) -> usize {
        match self {
            Self::Live => 0,
            Self::Backfill => 1,
        }
    }
}

/// Where an object is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for a lane (possibly owned by one that is backing off).
    Packed,
    /// Sent on a lane; no answer yet.
    InFlight(Lane),
    /// The CS stored it: the copy may go.
    Acked,
    /// Gone before it was stored.
    Lost,
}

/// What the caller should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `PUT` object `seq` (its packed key and bytes) and answer with [`Outbox::answer`].
    Upload {
        /// The lane.
        lane: Lane,
        /// The object.
        seq: u64,
    },
    /// `POST /cp/v1/prune {need_bytes}` and answer with [`Outbox::prune_done`].
    Prune {
        /// Bytes to free.
        need: u64,
    },
    /// Ask the CMU for a fresh grant (`cloud_grant`) and answer with
    /// [`Outbox::grant_done`].
    RefreshGrant,
    /// The CS is full and the strategy does not overwrite: report `full` and raise
    /// `storage_full` (6.1.9). Given once per stop.
    ReportFull {
        /// Bytes the CS said were missing.
        need: u64,
    },
}

/// The CS's answer to an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 or 201: stored and indexed.
    Stored,
    /// No answer, or 5xx: try again later.
    Retry,
    /// 507 `quota_full`.
    Full {
        /// Bytes to free.
        need: u64,
    },
    /// 401 `expired`: the grant needs refreshing.
    Expired,
    /// 400 `bad_object` or 409 `different_content`: these bytes will never be stored.
    Rejected,
}

#[derive(Debug, Clone)]
struct LaneState {
    owned: Option<u64>,
    in_flight: bool,
    not_before: u64,
    backoff: Backoff,
}

impl LaneState {
    fn new() -> Self {
        Self {
            owned: None,
            in_flight: false,
            not_before: 0,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Uploads may go.
    Open,
    /// A prune is to be sent (`sent`: it was) or retried after `not_before`.
    Prune {
        need: u64,
        sent: bool,
        not_before: u64,
    },
    /// A grant refresh is to be asked for (`sent`: it was).
    Grant { sent: bool, not_before: u64 },
    /// Full without overwriting: stopped until resumed (`reported`: the caller was told).
    Stopped { need: u64, reported: bool },
}

/// The outbox of one camera.
#[derive(Debug, Clone)]
pub struct Outbox {
    objects: BTreeMap<u64, State>,
    /// Objects to be lost when their upload ends without being stored.
    doomed: Vec<u64>,
    lanes: [LaneState; 2],
    gate: Gate,
    cyclic: bool,
    acked: Vec<u64>,
    lost: Vec<u64>,
    last_packed: Option<u64>,
    rng: u64,
}

impl Outbox {
    /// An empty outbox. `cyclic`: the strategy overwrites the oldest when full (8.7.1 prune);
    /// `seed` seeds the back-off jitter.
    pub fn new(cyclic: bool, seed: u64) -> Self {
        Self {
            objects: BTreeMap::new(),
            doomed: Vec::new(),
            lanes: [LaneState::new(), LaneState::new()],
            gate: Gate::Open,
            cyclic,
            acked: Vec::new(),
            lost: Vec::new(),
            last_packed: None,
            rng: seed,
        }
    }

    /// Adds packed object `seq` (its outbox row is committed). Sequence numbers only grow;
    /// a smaller or repeated one is refused (returns false).
    pub fn pack(&mut self, seq: u64) -> bool {
        if self.last_packed.is_some_and(|l| seq <= l) {
            return false;
        }
        self.last_packed = Some(seq);
        self.objects.insert(seq, State::Packed);
        true
    }

    /// The state of object `seq`, while the outbox holds it (until taken as acked or lost).
    pub fn state(&self, seq: u64) -> Option<State> {
        self.objects.get(&seq).copied()
    }

    /// Objects packed or in flight.
    pub fn pending(&self) -> usize {
        self.objects
            .values()
            .filter(|s| matches!(s, State::Packed | State::InFlight(_)))
            .count()
    }

    /// Whether cloud recording is stopped because the CS is full.
    pub fn is_full(&self) -> bool {
        matches!(self.gate, Gate::Stopped { .. })
    }

    /// The next thing to do at `now`, if any; call until `None`, then again at
    /// [`next_wake`](Self::next_wake) or after any answer.
    pub fn poll(&mut self, now: u64) -> Option<Action> {
        match &mut self.gate {
            Gate::Open => {}
            Gate::Prune {
                need,
                sent,
                not_before,
            } => {
                // Both lanes' requests end before the prune goes.
                if !*sent && now >= *not_before && !self.lanes.iter().any(|l| l.in_flight) {
                    *sent = true;
                    return Some(Action::Prune { need: *need });
                }
                return None;
            }
            Gate::Grant { sent, not_before } => {
                if !*sent && now >= *not_before {
                    *sent = true;
                    return Some(Action::RefreshGrant);
                }
                return None;
            }
            Gate::Stopped { need, reported } => {
                if !*reported {
                    *reported = true;
                    return Some(Action::ReportFull { need: *need });
                }
                return None;
            }
        }
        for lane in [Lane::Live, Lane::Backfill] {
            let l = &self.lanes[lane.at()];
            if l.in_flight || now < l.not_before {
                continue;
            }
            let seq = match l.owned {
                Some(seq) => seq,
                None => {
                    let other = self.lanes[1 - lane.at()].owned;
                    let mut free = self
                        .objects
                        .iter()
                        .filter(|(seq, s)| **s == State::Packed && Some(**seq) != other)
                        .map(|(seq, _)| *seq);
                    let pick = match lane {
                        Lane::Live => free.next_back(),
                        Lane::Backfill => free.next(),
                    };
                    let Some(seq) = pick else { continue };
                    seq
                }
            };
            let l = &mut self.lanes[lane.at()];
            l.owned = Some(seq);
            l.in_flight = true;
            self.objects.insert(seq, State::InFlight(lane));
            return Some(Action::Upload { lane, seq });
        }
        None
    }

    /// When [`poll`](Self::poll) may next have something to do by itself (a back-off ending),
    /// if anything waits for time.
    pub fn next_wake(&self) -> Option<u64> {
        match self.gate {
            Gate::Prune {
                sent: false,
                not_before,
                ..
            }
            | Gate::Grant {
                sent: false,
                not_before,
            } => return Some(not_before),
            Gate::Open => {}
            _ => return None,
        }
        self.lanes
            .iter()
            .filter(|l| !l.in_flight && l.owned.is_some())
            .map(|l| l.not_before)
            .min()
    }

    fn jitter(&mut self) -> f64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The CS's answer to the upload of `seq` on `lane`. An answer for anything but that
    /// lane's request in flight is ignored (returns false).
    pub fn answer(&mut self, now: u64, lane: Lane, seq: u64, answer: Answer) -> bool {
        let l = &self.lanes[lane.at()];
        if !l.in_flight || l.owned != Some(seq) {
            return false;
        }
        self.lanes[lane.at()].in_flight = false;
        let doomed = self.doomed.contains(&seq);
        match answer {
            Answer::Stored => {
                self.finish(lane, seq, State::Acked);
                self.lanes[lane.at()].backoff.reset();
            }
            _ if doomed => self.finish(lane, seq, State::Lost),
            Answer::Rejected => self.finish(lane, seq, State::Lost),
            Answer::Retry => {
                self.objects.insert(seq, State::Packed);
                let delay = {
                    let unit = self.jitter();
                    self.lanes[lane.at()].backoff.next_delay(unit)
                };
                self.lanes[lane.at()].not_before = now.saturating_add(delay.as_millis() as u64);
            }
            Answer::Full { need } => {
                self.objects.insert(seq, State::Packed);
                self.lanes[lane.at()].not_before = now;
                self.gate = match self.gate {
                    Gate::Stopped { .. } | Gate::Prune { .. } => self.gate,
                    _ if self.cyclic => Gate::Prune {
                        need,
                        sent: false,
                        not_before: now,
                    },
                    _ => Gate::Stopped {
                        need,
                        reported: false,
                    },
                };
            }
            Answer::Expired => {
                self.objects.insert(seq, State::Packed);
                self.lanes[lane.at()].not_before = now;
                if self.gate == Gate::Open {
                    self.gate = Gate::Grant {
                        sent: false,
                        not_before: now,
                    };
                }
            }
        }
        true
    }

    fn finish(&mut self, lane: Lane, seq: u64, state: State) {
        self.lanes[lane.at()].owned = None;
        self.lanes[lane.at()].not_before = 0;
        self.doomed.retain(|d| *d != seq);
        self.objects.remove(&seq);
        match state {
            State::Acked => self.acked.push(seq),
            _ => self.lost.push(seq),
        }
    }

    /// The answer to [`Action::Prune`]: `ok` if the CS answered (whatever it freed), else it
    /// is retried after a back-off. Uploads resume at once after an answer.
    pub fn prune_done(&mut self, now: u64, ok: bool) {
        if let Gate::Prune {
            need, sent: true, ..
        } = self.gate
        {
            self.gate = if ok {
                Gate::Open
            } else {
                let unit = self.jitter();
                let delay = self.lanes[0].backoff.next_delay(unit);
                Gate::Prune {
                    need,
                    sent: false,
                    not_before: now.saturating_add(delay.as_millis() as u64),
                }
            };
        }
    }

    /// The answer to [`Action::RefreshGrant`]: `ok` if a fresh grant is in place, else it
    /// is asked for again after a back-off.
    pub fn grant_done(&mut self, now: u64, ok: bool) {
        if let Gate::Grant { sent: true, .. } = self.gate {
            self.gate = if ok {
                Gate::Open
            } else {
                let unit = self.jitter();
                let delay = self.lanes[1].backoff.next_delay(unit);
                Gate::Grant {
                    sent: false,
                    not_before: now.saturating_add(delay.as_millis() as u64),
                }
            };
        }
    }

    /// `cloud_resume`: a stopped outbox (full, not cyclic) tries again at once; also ends
    /// any back-off.
    pub fn resume(&mut self) {
        if matches!(self.gate, Gate::Stopped { .. }) {
            self.gate = Gate::Open;
        }
        for l in &mut self.lanes {
            l.not_before = 0;
            l.backoff.reset();
        }
    }

    /// Card retention deleted object `seq` before it was stored. Packed: lost now. In
    /// flight: lost unless the answer says stored. Returns false for an object the outbox
    /// does not hold (already acked or lost, or never packed).
    pub fn lose(&mut self, seq: u64) -> bool {
        match self.objects.get(&seq) {
            Some(State::Packed) => {
                for l in &mut self.lanes {
                    if l.owned == Some(seq) {
                        l.owned = None;
                        l.not_before = 0;
                    }
                }
                self.objects.remove(&seq);
                self.lost.push(seq);
                true
            }
            Some(State::InFlight(_)) => {
                if !self.doomed.contains(&seq) {
                    self.doomed.push(seq);
                }
                true
            }
            _ => false,
        }
    }

    /// Objects the CS stored since the last call, in the order acknowledged: their copies
    /// may now be freed.
    pub fn take_acked(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.acked)
    }

    /// Objects lost since the last call, for `skip` and a `recording_lost` event.
    pub fn take_lost(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.lost)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn up(lane: Lane, seq: u64) -> Option<Action> {
        Some(Action::Upload { lane, seq })
    }

    #[test]
    fn h626_8_7_1_two_lanes_newest_live_oldest_backfill() {
        let mut o = Outbox::new(true, 1);
        for s in 1..=5 {
            assert!(o.pack(s));
        }
        assert!(!o.pack(5), "sequence numbers only grow");
        assert_eq!(o.poll(0), up(Lane::Live, 5));
        assert_eq!(o.poll(0), up(Lane::Backfill, 1));
        assert_eq!(o.poll(0), None, "one request per lane");
        assert!(o.answer(10, Lane::Backfill, 1, Answer::Stored));
        assert!(
            !o.answer(10, Lane::Backfill, 1, Answer::Stored),
            "answered once"
        );
        assert_eq!(o.take_acked(), vec![1]);
        assert_eq!(o.poll(10), up(Lane::Backfill, 2));
        assert!(o.answer(10, Lane::Live, 5, Answer::Stored));
        assert!(o.pack(6));
        assert_eq!(o.poll(10), up(Lane::Live, 6));
        assert_eq!(o.state(3), Some(State::Packed));
        assert_eq!(o.state(2), Some(State::InFlight(Lane::Backfill)));
        assert_eq!(o.pending(), 4);
    }

    #[test]
    fn h626_8_7_1_retry_backs_off_and_keeps_the_lane_object() {
        let mut o = Outbox::new(true, 7);
        o.pack(1);
        o.pack(2);
        assert_eq!(o.poll(0), up(Lane::Live, 2));
        assert_eq!(o.poll(0), up(Lane::Backfill, 1));
        o.answer(0, Lane::Backfill, 1, Answer::Retry);
        assert_eq!(o.state(1), Some(State::Packed));
        let wake = o.next_wake().unwrap();
        assert!((500..=1000).contains(&wake), "{wake}");
        assert_eq!(o.poll(wake - 1), None);
        // The live lane, once free, does not take the back-fill's object.
        o.answer(1, Lane::Live, 2, Answer::Stored);
        assert_eq!(o.poll(2), None);
        assert_eq!(o.poll(wake), up(Lane::Backfill, 1));
        o.answer(wake, Lane::Backfill, 1, Answer::Retry);
        let second = o.next_wake().unwrap() - wake;
        assert!((1000..=2000).contains(&second), "{second}");
        // Never above a minute.
        let mut now = wake;
        for _ in 0..20 {
            now = o.next_wake().unwrap();
            assert_eq!(o.poll(now), up(Lane::Backfill, 1));
            o.answer(now, Lane::Backfill, 1, Answer::Retry);
            assert!(o.next_wake().unwrap() - now <= 60_000);
        }
        o.resume();
        assert_eq!(
            o.poll(now),
            up(Lane::Backfill, 1),
            "resume ends the back-off"
        );
    }

    #[test]
    fn h626_8_7_1_full_cyclic_prunes_then_retries() {
        let mut o = Outbox::new(true, 1);
        o.pack(1);
        o.pack(2);
        assert_eq!(o.poll(0), up(Lane::Live, 2));
        assert_eq!(o.poll(0), up(Lane::Backfill, 1));
        o.answer(1, Lane::Live, 2, Answer::Full { need: 500 });
        assert_eq!(o.poll(1), None, "the prune waits for the other lane");
        o.answer(2, Lane::Backfill, 1, Answer::Full { need: 900 });
        assert_eq!(o.poll(2), Some(Action::Prune { need: 500 }));
        assert_eq!(o.poll(2), None, "one prune");
        o.prune_done(3, false);
        assert_eq!(o.poll(3), None);
        let wake = o.next_wake().unwrap();
        assert_eq!(o.poll(wake), Some(Action::Prune { need: 500 }));
        o.prune_done(wake, true);
        assert_eq!(o.poll(wake), up(Lane::Live, 2), "retried at once");
        assert_eq!(o.poll(wake), up(Lane::Backfill, 1));
        assert!(!o.is_full());
    }

    #[test]
    fn h626_8_7_1_full_without_overwrite_stops_and_reports_once() {
        let mut o = Outbox::new(false, 1);
        o.pack(1);
        assert_eq!(o.poll(0), up(Lane::Live, 1));
        o.answer(0, Lane::Live, 1, Answer::Full { need: 10 });
        assert!(o.is_full());
        assert_eq!(o.poll(0), Some(Action::ReportFull { need: 10 }));
        assert_eq!(o.poll(1_000_000), None);
        assert_eq!(o.next_wake(), None);
        o.pack(2);
        assert_eq!(o.poll(1_000_000), None, "stopped");
        o.resume();
        assert_eq!(
            o.poll(1_000_001),
            up(Lane::Live, 1),
            "the lane keeps its object"
        );
        assert_eq!(o.poll(1_000_001), up(Lane::Backfill, 2));
    }

    #[test]
    fn h626_8_7_1_expired_grant_is_refreshed_once() {
        let mut o = Outbox::new(true, 1);
        o.pack(1);
        assert_eq!(o.poll(0), up(Lane::Live, 1));
        o.answer(0, Lane::Live, 1, Answer::Expired);
        assert_eq!(o.poll(0), Some(Action::RefreshGrant));
        assert_eq!(o.poll(0), None);
        o.grant_done(1, false);
        let wake = o.next_wake().unwrap();
        assert_eq!(o.poll(wake), Some(Action::RefreshGrant));
        o.grant_done(wake, true);
        assert_eq!(o.poll(wake), up(Lane::Live, 1));
    }

    #[test]
    fn h626_8_7_1_lost_objects_are_reported_never_freed() {
        let mut o = Outbox::new(true, 1);
        for s in 1..=3 {
            o.pack(s);
        }
        assert_eq!(o.poll(0), up(Lane::Live, 3));
        assert_eq!(o.poll(0), up(Lane::Backfill, 1));
        assert!(o.lose(2));
        assert!(o.lose(1), "in flight: lost unless stored");
        assert!(!o.lose(9));
        o.answer(0, Lane::Backfill, 1, Answer::Retry);
        assert!(o.answer(0, Lane::Live, 3, Answer::Rejected));
        assert_eq!(o.take_lost(), vec![2, 1, 3]);
        assert!(o.take_acked().is_empty());
        assert_eq!(o.pending(), 0);
        // Stored wins over a late loss.
        o.pack(4);
        assert_eq!(o.poll(0), up(Lane::Live, 4));
        o.lose(4);
        o.answer(0, Lane::Live, 4, Answer::Stored);
        assert_eq!(o.take_acked(), vec![4]);
        assert!(o.take_lost().is_empty());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Pack,
        Poll(u64),
        Answer(bool, u8, u64),
        Lose(u64),
        Prune(bool),
        Grant(bool),
        Resume,
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => Just(Step::Pack),
            4 => (0u64..5000).prop_map(Step::Poll),
            4 => (any::<bool>(), 0u8..5, 1u64..2000).prop_map(|(l, a, n)| Step::Answer(l, a, n)),
            1 => (0u64..30).prop_map(Step::Lose),
            1 => any::<bool>().prop_map(Step::Prune),
            1 => any::<bool>().prop_map(Step::Grant),
            1 => Just(Step::Resume),
        ]
    }

    proptest! {
        #[test]
        fn h626_8_7_1_outbox_never_acks_twice_nor_frees_unacked(
            cyclic in any::<bool>(),
            seed in any::<u64>(),
            steps in proptest::collection::vec(arb_step(), 1..200),
        ) {
            let mut o = Outbox::new(cyclic, seed);
            let mut now = 0u64;
            let mut next_seq = 0u64;
            let mut in_flight: [Option<u64>; 2] = [None, None];
            let mut stored_answers = BTreeSet::new();
            let mut acked = BTreeSet::new();
            let mut lost = BTreeSet::new();
            let mut backfill_sent: Vec<u64> = Vec::new();
            for step in steps {
                match step {
                    Step::Pack => {
                        next_seq += 1;
                        prop_assert!(o.pack(next_seq));
                    }
                    Step::Poll(dt) => {
                        now += dt;
                        while let Some(a) = o.poll(now) {
                            if let Action::Upload { lane, seq } = a {
                                prop_assert!(in_flight[lane.at()].is_none(), "two requests on a lane");
                                prop_assert!(!acked.contains(&seq) && !lost.contains(&seq));
                                in_flight[lane.at()] = Some(seq);
                                if lane == Lane::Backfill {
                                    if let Some(prev) = backfill_sent.last() {
                                        prop_assert!(seq >= *prev, "back-fill went back: {} after {}", seq, prev);
                                    }
                                    backfill_sent.push(seq);
                                }
                            }
                        }
                    }
                    Step::Answer(live, kind, need) => {
                        let lane = if live { Lane::Live } else { Lane::Backfill };
                        if let Some(seq) = in_flight[lane.at()].take() {
                            let answer = match kind {
                                0 => Answer::Stored,
                                1 => Answer::Retry,
                                2 => Answer::Full { need },
                                3 => Answer::Expired,
                                _ => Answer::Rejected,
                            };
                            if answer == Answer::Stored {
                                prop_assert!(stored_answers.insert(seq));
                            }
                            prop_assert!(o.answer(now, lane, seq, answer));
                            prop_assert!(!o.answer(now, lane, seq, answer), "stale answer taken");
                        }
                    }
                    Step::Lose(k) => {
                        o.lose(k);
                    }
                    Step::Prune(ok) => o.prune_done(now, ok),
                    Step::Grant(ok) => o.grant_done(now, ok),
                    Step::Resume => o.resume(),
                }
                for seq in o.take_acked() {
                    prop_assert!(stored_answers.contains(&seq), "freed {} without a stored answer", seq);
                    prop_assert!(acked.insert(seq), "acked {} twice", seq);
                    prop_assert!(!lost.contains(&seq));
                }
                for seq in o.take_lost() {
                    prop_assert!(!acked.contains(&seq) && !stored_answers.contains(&seq));
                    prop_assert!(lost.insert(seq), "lost {} twice", seq);
                }
                // Every packed object is in exactly one place.
                for seq in 1..=next_seq {
                    let held = o.state(seq).is_some();
                    let done = acked.contains(&seq) || lost.contains(&seq);
                    prop_assert!(held != done, "object {} held {} done {}", seq, held, done);
                }
            }
        }
    }
}
