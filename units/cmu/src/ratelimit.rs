//! Fixed-window counters against brute force and SMS pumping, and pacing (one event per
//! interval) for the account-wide login slowdown.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A named set of fixed-window counters and pacing slots.
#[derive(Default)]
pub(crate) struct Limits {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
    /// Per key: when the next paced event may happen.
    slots: Mutex<HashMap<String, Instant>>,
}

impl Limits {
    /// Counts one event for `key`; `Err(retry_after)` if more than `max` happened in `window`.
    pub(crate) fn hit(&self, key: &str, max: u32, window: Duration) -> Result<(), Duration> {
        self.count(key, max, window, true)
    }

    /// Like [`Self::hit`] without counting: may one more event happen now?
    pub(crate) fn check(&self, key: &str, max: u32, window: Duration) -> Result<(), Duration> {
        self.count(key, max, window, false)
    }

    fn count(&self, key: &str, max: u32, window: Duration, add: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(3600));
        }
        let entry = map.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= max {
            return Err(window.saturating_sub(now.duration_since(entry.0)));
        }
        if add {
            entry.1 += 1;
        }
        Ok(())
    }

    /// Takes the next slot of `key`, slots being `interval` apart: how long to wait for it;
    /// `Err(retry_after)` without taking it if that is longer than `max_wait` (so refused
    /// events do not push the schedule further out).
    pub(crate) fn pace(
        &self,
        key: &str,
        interval: Duration,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        let now = Instant::now();
        let mut map = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > 100_000 {
            map.retain(|_, next| *next > now);
        }
        let next = map.entry(key.to_owned()).or_insert(now);
        let slot = (*next).max(now);
        let wait = slot - now;
        if wait > max_wait {
            return Err(wait);
        }
        *next = slot + interval;
        Ok(wait)
    }

    /// Forgets `key` (after a successful login, say).
    pub(crate) fn clear(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_6_1_9_fixed_window_caps_then_reopens() {
        let l = Limits::default();
        let w = Duration::from_millis(40);
        for _ in 0..3 {
            assert!(l.hit("k", 3, w).is_ok());
        }
        let retry = l.hit("k", 3, w).unwrap_err();
        assert!(retry <= w);
        assert!(
            l.check("k", 3, w).is_err(),
            "a check does not count, and is refused"
        );
        assert!(l.hit("other", 3, w).is_ok(), "keys are apart");
        std::thread::sleep(w + Duration::from_millis(10));
        assert!(l.check("k", 3, w).is_ok(), "a new window");
        for _ in 0..3 {
            assert!(l.hit("k", 3, w).is_ok());
        }
        assert!(l.hit("k", 3, w).is_err());
        l.clear("k");
        assert!(l.hit("k", 3, w).is_ok());
    }

    #[test]
    fn pacing_spaces_events_and_refuses_past_the_wait() {
        let l = Limits::default();
        let i = Duration::from_secs(10);
        assert_eq!(l.pace("p", i, Duration::from_secs(15)), Ok(Duration::ZERO));
        let second = l.pace("p", i, Duration::from_secs(15)).unwrap();
        assert!(second > Duration::from_secs(9) && second <= i);
        assert!(
            l.pace("p", i, Duration::from_secs(15)).is_err(),
            "20 s away"
        );
    }
}
