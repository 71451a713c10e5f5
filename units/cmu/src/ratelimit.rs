//! Fixed-window counters against brute force and SMS pumping, and pacing (one event per
//! interval) for the account-wide login slowdown.
//!
//! The counters live in the store (issue 19), so every CMU instance on one database counts
//! together: ten login attempts split across two instances are ten. When the store cannot
//! answer, the event is refused (fail closed) with a one-second retry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::{self, Store};

/// Events between two sweeps of ended windows and passed slots.
const SWEEP_EVERY: u64 = 512;
/// The retry told when the store cannot answer.
const UNAVAILABLE: Duration = Duration::from_secs(1);

/// A named set of fixed-window counters and pacing slots, shared through the store.
pub(crate) struct Limits {
    store: Store,
    /// Events since the last sweep.
    events: AtomicU64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unavailable(e: &store::StoreError) -> Duration {
    tracing::warn!(error = %e, "rate limit store failed; refusing");
    UNAVAILABLE
}

impl Limits {
    /// Limits kept in `store`.
    pub(crate) fn new(store: Store) -> Self {
        Self {
            store,
            events: AtomicU64::new(0),
        }
    }

    /// Counts one event for `key`; `Err(retry_after)` if more than `max` happened in `window`.
    pub(crate) async fn hit(&self, key: &str, max: u32, window: Duration) -> Result<(), Duration> {
        self.sweep().await;
        let now = crate::now_ms();
        match store::rate_limits::hit(&self.store, key, (max, ms(window)), now).await {
            Ok(r) => r.map_err(Duration::from_millis),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// Like [`Self::hit`] without counting: may one more event happen now?
    pub(crate) async fn check(
        &self,
        key: &str,
        max: u32,
        _window: Duration,
    ) -> Result<(), Duration> {
        match store::rate_limits::check(&self.store, key, max, crate::now_ms()).await {
            Ok(r) => r.map_err(Duration::from_millis),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// Takes the next slot of `key`, slots being `interval` apart: how long to wait for it;
    /// `Err(retry_after)` without taking it if that is longer than `max_wait` (so refused
    /// events do not push the schedule further out).
    pub(crate) async fn pace(
        &self,
        key: &str,
        interval: Duration,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        self.sweep().await;
        let now = crate::now_ms();
        match store::rate_limits::pace(&self.store, key, (ms(interval), ms(max_wait)), now).await {
            Ok(r) => r.map(Duration::from_millis).map_err(Duration::from_millis),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// Forgets `key` (after a successful login, say).
    pub(crate) async fn clear(&self, key: &str) {
        if let Err(e) = store::rate_limits::clear(&self.store, key).await {
            tracing::warn!(error = %e, "could not clear a rate limit");
        }
    }

    /// Every [`SWEEP_EVERY`] events, forgets ended windows and passed slots.
    async fn sweep(&self) {
        if self.events.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        match store::rate_limits::forget(&self.store, crate::now_ms()).await {
            Ok(n) => tracing::debug!(forgotten = n, "rate limit rows swept"),
            Err(e) => tracing::warn!(error = %e, "rate limit sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    /// Two CMU instances on one database count together.
    #[tokio::test]
    async fn h626_6_1_9_fixed_window_caps_then_reopens_across_instances(db) {
        let (a, b) = (Limits::new(db.clone()), Limits::new(db));
        let w = Duration::from_millis(300);
        assert!(a.hit("k", 3, w).await.is_ok());
        assert!(b.hit("k", 3, w).await.is_ok());
        assert!(a.hit("k", 3, w).await.is_ok());
        let retry = b.hit("k", 3, w).await.unwrap_err();
        assert!(retry <= w);
        assert!(
            a.check("k", 3, w).await.is_err(),
            "a check does not count, and is refused"
        );
        assert!(b.hit("other", 3, w).await.is_ok(), "keys are apart");
        tokio::time::sleep(w + Duration::from_millis(20)).await;
        assert!(a.check("k", 3, w).await.is_ok(), "a new window");
        for l in [&a, &b, &a] {
            assert!(l.hit("k", 3, w).await.is_ok());
        }
        assert!(b.hit("k", 3, w).await.is_err());
        a.clear("k").await;
        assert!(b.hit("k", 3, w).await.is_ok());
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn pacing_spaces_events_across_instances_and_refuses_past_the_wait(db) {
        let (a, b) = (Limits::new(db.clone()), Limits::new(db));
        let i = Duration::from_secs(10);
        let max = Duration::from_secs(15);
        assert_eq!(a.pace("p", i, max).await, Ok(Duration::ZERO));
        let second = b.pace("p", i, max).await.unwrap();
        assert!(second > Duration::from_secs(9) && second <= i);
        assert!(a.pace("p", i, max).await.is_err(), "20 s away");
    }
    }
}
