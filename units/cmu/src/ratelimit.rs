//! Fixed-window counters against brute force and SMS pumping.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A named set of fixed-window counters.
#[derive(Default)]
pub(crate) struct Limits {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limits {
    /// Counts one event for `key`; `Err(retry_after)` if more than `max` happened in `window`.
    pub(crate) fn hit(&self, key: &str, max: u32, window: Duration) -> Result<(), Duration> {
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
        entry.1 += 1;
        Ok(())
    }

    /// Forgets `key` (after a successful login, say).
    pub(crate) fn clear(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}
