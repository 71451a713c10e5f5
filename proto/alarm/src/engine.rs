//! The camera's alarm engine (H.626.4 8.8, camera side), a pure state machine.
//!
//! The shell feeds it source events ([`Engine::trigger`], [`Engine::quiet`]), the platform's
//! answers ([`Engine::on_stored`], [`Engine::on_refused`]), link changes and resets, always
//! with `now_ms` (Unix ms). It hands back the alarms to send ([`Engine::poll_transmit`]),
//! alarm-output changes ([`Engine::poll_output`]) and when to call it again
//! ([`Engine::poll_timeout`]).
//!
//! Delivery is stop-and-wait: one alarm is on the wire at a time, the oldest unacknowledged
//! one, so the platform sees them strictly in order with their original `at_ms`. An alarm
//! leaves the queue only when the platform answers `Stored` with its id; after a link loss or
//! a timeout it is sent again (the platform stores an id once).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::model::{Alarm, AlarmKind, AlarmState, AlarmStrategy, InputState, validate_id};
use crate::{Error, MAX_DETAIL};

/// Most alarms queued for the platform; when full the oldest is dropped (and counted).
pub const QUEUE_LIMIT: usize = 1000;
/// Most active (not reset) alarms kept; the oldest is forgotten beyond this.
pub const ACTIVE_LIMIT: usize = 100;
/// How long the platform has to answer an alarm before it is sent again, ms.
pub const ANSWER_TIMEOUT_MS: u64 = 20_000;
/// First and longest retry delays after a refusal the platform may get over, ms.
pub const RETRY_INITIAL_MS: u64 = 1_000;
/// Longest retry delay, ms.
pub const RETRY_MAX_MS: u64 = 60_000;
/// Longest id prefix the shell may give (the sequence number follows it).
pub const MAX_PREFIX: usize = 40;

/// A source fired (H.626.4 8.8 step 5: the PU detects an alarm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// What fired.
    pub kind: AlarmKind,
    /// The input line, for [`AlarmKind::Input`].
    pub input: Option<u8>,
    /// The zone, for [`AlarmKind::Motion`].
    pub zone: Option<u8>,
    /// Strength 0-100.
    pub level: u8,
    /// Free text (cut to 256 bytes).
    pub detail: String,
}

impl Trigger {
    /// A trigger of `kind` with nothing else.
    pub fn new(kind: AlarmKind) -> Self {
        Self {
            kind,
            input: None,
            zone: None,
            level: 100,
            detail: String::new(),
        }
    }

    fn key(&self) -> SourceKey {
        SourceKey {
            kind: self.kind,
            channel: self.input.or(self.zone),
        }
    }
}

/// One source: a kind and its line or zone. Cooldowns and activations are per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceKey {
    /// The kind.
    pub kind: AlarmKind,
    /// The input or zone, if any.
    pub channel: Option<u8>,
}

/// Whether the shell reports `kind` as a level (active until [`Engine::quiet`]) rather than
/// as single events.
pub fn is_level(kind: AlarmKind) -> bool {
    matches!(
        kind,
        AlarmKind::Motion | AlarmKind::Input | AlarmKind::Tamper | AlarmKind::VideoLoss
    )
}

/// What the shell persists across restarts (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The strategy in force.
    #[serde(default)]
    pub strategy: AlarmStrategy,
    /// Alarms not yet acknowledged by the platform, oldest first.
    #[serde(default)]
    pub queue: VecDeque<Alarm>,
    /// Alarms not reset yet, oldest first.
    #[serde(default)]
    pub active: Vec<Alarm>,
    /// Alarms dropped because the queue was full.
    #[serde(default)]
    pub dropped: u64,
    /// Whether the alarm output is on.
    #[serde(default)]
    pub output_on: bool,
    /// Until when the output stays on (Unix ms; none: until reset).
    #[serde(default)]
    pub output_until: Option<u64>,
}

/// The camera's alarm engine.
#[derive(Debug, Clone)]
pub struct Engine {
    strategy: AlarmStrategy,
    prefix: String,
    seq: u64,
    queue: VecDeque<Alarm>,
    active: Vec<Alarm>,
    dropped: u64,
    refused: u64,
    /// The id on the wire and when its answer is due.
    in_flight: Option<(String, u64)>,
    link_up: bool,
    retry_at: Option<u64>,
    backoff_ms: u64,
    cooldown_until: BTreeMap<SourceKey, u64>,
    /// Level-style sources active now (raised once per activation).
    raised: BTreeSet<SourceKey>,
    /// Output on, and until when.
    output: Option<Option<u64>>,
    /// The output state last handed to the shell.
    output_told: bool,
    dirty: bool,
}

impl Engine {
    /// A new engine whose alarm ids are `<prefix>-<n>`. The prefix must be unique per boot of
    /// the camera (e.g. a boot counter kept in its state directory), 1-40 characters of
    /// `A-Za-z0-9._`.
    pub fn new(prefix: &str) -> Result<Self, Error> {
        if prefix.len() > MAX_PREFIX || prefix.contains('-') {
            return Err(Error::invalid(
                "prefix",
                "1-40 characters of A-Z a-z 0-9 . _",
            ));
        }
        validate_id(prefix, "prefix")?;
        Ok(Self {
            strategy: AlarmStrategy::default(),
            prefix: prefix.to_owned(),
            seq: 0,
            queue: VecDeque::new(),
            active: Vec::new(),
            dropped: 0,
            refused: 0,
            in_flight: None,
            link_up: false,
            retry_at: None,
            backoff_ms: RETRY_INITIAL_MS,
            cooldown_until: BTreeMap::new(),
            raised: BTreeSet::new(),
            output: None,
            output_told: false,
            dirty: false,
        })
    }

    /// A new engine with what a previous run saved (its queue is sent first, as it was).
    pub fn restore(prefix: &str, saved: Saved) -> Result<Self, Error> {
        let mut e = Self::new(prefix)?;
        saved.strategy.validate()?;
        e.strategy = saved.strategy;
        e.queue = saved.queue;
        e.queue.retain(|a| a.validate().is_ok());
        while e.queue.len() > QUEUE_LIMIT {
            e.queue.pop_front();
        }
        e.active = saved.active;
        e.active.retain(|a| a.validate().is_ok());
        e.dropped = saved.dropped;
        e.output = saved.output_on.then_some(saved.output_until);
        Ok(e)
    }

    /// What to persist.
    pub fn saved(&self) -> Saved {
        Saved {
            strategy: self.strategy.clone(),
            queue: self.queue.clone(),
            active: self.active.clone(),
            dropped: self.dropped,
            output_on: self.output.is_some(),
            output_until: self.output.flatten(),
        }
    }

    /// Whether anything worth persisting changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The strategy in force.
    pub fn strategy(&self) -> &AlarmStrategy {
        &self.strategy
    }

    /// H.626.4 8.8 steps 1-4: applies a new strategy (validated first; nothing changes on
    /// error). Cooldowns and activations carry over.
    pub fn set_strategy(&mut self, strategy: AlarmStrategy) -> Result<(), Error> {
        strategy.validate()?;
        self.strategy = strategy;
        self.dirty = true;
        Ok(())
    }

    /// Whether `kind` raises alarms at `now_ms` (armed, a listed source, inside the schedule).
    pub fn armed_for(&self, kind: AlarmKind, now_ms: u64) -> bool {
        self.strategy.sources.contains(&kind) && self.strategy.armed_at(now_ms).0
    }

    /// H.626.4 8.8 step 5: a source fired. Returns the alarm raised, if any: none when the
    /// source is not armed now, is still active since its last alarm, or is cooling down.
    pub fn trigger(&mut self, t: Trigger, now_ms: u64) -> Option<Alarm> {
        let key = t.key();
        if !self.armed_for(t.kind, now_ms) || self.raised.contains(&key) {
            return None;
        }
        if is_level(t.kind) {
            self.raised.insert(key);
        }
        if self.cooldown_until.get(&key).is_some_and(|&u| now_ms < u) {
            return None;
        }
        let cooldown = u64::from(self.strategy.cooldown_s) * 1000;
        if cooldown > 0 {
            self.cooldown_until
                .insert(key, now_ms.saturating_add(cooldown));
        }
        self.cooldown_until.retain(|_, u| *u > now_ms);
        self.seq += 1;
        let mut detail = t.detail;
        if detail.len() > MAX_DETAIL {
            let mut cut = MAX_DETAIL;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        let alarm = Alarm {
            id: format!("{}-{}", self.prefix, self.seq),
            kind: t.kind,
            at_ms: now_ms,
            input: t
                .input
                .filter(|&i| (1..=crate::model::MAX_INPUTS).contains(&i)),
            zone: t.zone.filter(|&z| usize::from(z) < crate::MAX_ZONES),
            level: t.level.min(100),
            detail,
        };
        self.enqueue(alarm.clone());
        if self.active.len() >= ACTIVE_LIMIT {
            self.active.remove(0);
        }
        self.active.push(alarm.clone());
        // H.626.4 8.8 linkage at the camera: the alarm output.
        let l = self.strategy.linkage;
        if l.output {
            let until =
                (l.output_s > 0).then(|| now_ms.saturating_add(u64::from(l.output_s) * 1000));
            self.output = match (self.output, until) {
                (Some(None), _) | (_, None) => Some(None),
                (Some(Some(a)), Some(b)) => Some(Some(a.max(b))),
                (None, Some(b)) => Some(Some(b)),
            };
        }
        self.dirty = true;
        Some(alarm)
    }

    /// A level-style source (an input line, tamper, video loss, a zone's motion) is quiet
    /// again: its next trigger is a new activation.
    pub fn quiet(&mut self, key: SourceKey) {
        self.raised.remove(&key);
    }

    fn enqueue(&mut self, alarm: Alarm) {
        if self.queue.len() >= QUEUE_LIMIT {
            if let Some(old) = self.queue.pop_front()
                && self.in_flight.as_ref().is_some_and(|(id, _)| *id == old.id)
            {
                self.in_flight = None;
            }
            self.dropped += 1;
        }
        self.queue.push_back(alarm);
    }

    /// The platform link is up (registered) or down. Down: the alarm on the wire is sent
    /// again once it is back.
    pub fn set_link(&mut self, up: bool) {
        if up && !self.link_up {
            self.retry_at = None;
            self.backoff_ms = RETRY_INITIAL_MS;
        }
        if !up {
            self.in_flight = None;
        }
        self.link_up = up;
    }

    /// The next alarm to send now, if any (at most one is on the wire).
    pub fn poll_transmit(&mut self, now_ms: u64) -> Option<Alarm> {
        if !self.link_up || self.in_flight.is_some() || self.retry_at.is_some_and(|r| now_ms < r) {
            return None;
        }
        let next = self.queue.front()?.clone();
        self.retry_at = None;
        self.in_flight = Some((next.id.clone(), now_ms.saturating_add(ANSWER_TIMEOUT_MS)));
        Some(next)
    }

    /// H.626.4 8.8: the platform stored alarm `id`. Only the oldest queued alarm can be
    /// acknowledged (any other answer is late or stray and ignored).
    pub fn on_stored(&mut self, id: &str) -> bool {
        if self.queue.front().is_none_or(|a| a.id != id) {
            return false;
        }
        self.queue.pop_front();
        if self.in_flight.as_ref().is_some_and(|(i, _)| i == id) {
            self.in_flight = None;
        }
        self.backoff_ms = RETRY_INITIAL_MS;
        self.retry_at = None;
        self.dirty = true;
        true
    }

    /// The platform refused alarm `id`. `retry`: it may get over it (unavailable, a timeout):
    /// sent again after a growing delay; otherwise the alarm is dropped.
    pub fn on_refused(&mut self, id: &str, retry: bool, now_ms: u64) {
        if self.in_flight.as_ref().is_none_or(|(i, _)| i != id) {
            return;
        }
        self.in_flight = None;
        if retry {
            self.back_off(now_ms);
        } else {
            self.refused += 1;
            self.backoff_ms = RETRY_INITIAL_MS;
            self.queue.pop_front();
            self.dirty = true;
        }
    }

    fn back_off(&mut self, now_ms: u64) {
        self.retry_at = Some(now_ms.saturating_add(self.backoff_ms));
        self.backoff_ms = (self.backoff_ms * 2).min(RETRY_MAX_MS);
    }

    /// Brings timers up to `now_ms`: unanswered alarms, the output's pulse.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if let Some((_, due)) = &self.in_flight
            && now_ms >= *due
        {
            self.in_flight = None;
            self.back_off(now_ms);
        }
        if let Some(Some(until)) = self.output
            && now_ms >= until
        {
            self.output = None;
            self.dirty = true;
        }
    }

    /// When [`Engine::handle_timeout`] (or [`Engine::poll_transmit`]) has work next.
    pub fn poll_timeout(&self) -> Option<u64> {
        let due = self.in_flight.as_ref().map(|(_, d)| *d);
        let retry = self
            .retry_at
            .filter(|_| self.link_up && self.in_flight.is_none() && !self.queue.is_empty());
        let out = self.output.flatten();
        [due, retry, out].into_iter().flatten().min()
    }

    /// The alarm output's new state, when it changed since the last call.
    pub fn poll_output(&mut self) -> Option<bool> {
        let on = self.output.is_some();
        (on != self.output_told).then(|| {
            self.output_told = on;
            on
        })
    }

    /// Whether the alarm output is on.
    pub fn output_on(&self) -> bool {
        self.output.is_some()
    }

    /// H.626.4 8.8 alarm reset: clears alarm `id` (every alarm when `None`); the output goes
    /// off when no alarm is left. Errs when `id` is not active.
    pub fn reset(&mut self, id: Option<&str>) -> Result<(), Error> {
        match id {
            None => self.active.clear(),
            Some(id) => {
                let at = self
                    .active
                    .iter()
                    .position(|a| a.id == id)
                    .ok_or_else(|| Error::invalid("id", "no such active alarm"))?;
                self.active.remove(at);
            }
        }
        if self.active.is_empty() {
            self.output = None;
        }
        self.dirty = true;
        Ok(())
    }

    /// Alarms raised and not reset, oldest first.
    pub fn active(&self) -> &[Alarm] {
        &self.active
    }

    /// Alarms waiting for the platform's acknowledgement, oldest first.
    pub fn queue(&self) -> &VecDeque<Alarm> {
        &self.queue
    }

    /// Alarms dropped because the queue was full, and alarms the platform refused for good.
    pub fn lost(&self) -> (u64, u64) {
        (self.dropped, self.refused)
    }

    /// The state a camera reports, with the shell's `inputs`.
    pub fn state(&self, inputs: Vec<InputState>) -> AlarmState {
        AlarmState {
            strategy: self.strategy.clone(),
            active: self.active.clone(),
            output_on: self.output_on(),
            inputs,
            pending: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
