//! The PU's media clock (H.626.4 7.2): the system clock, disciplined to the SCU's by the
//! NTP-style exchange of `peercam_signal::clock`. Capture times (the SEI tag, recordings) and
//! RTCP sender reports read this clock, so they agree with the platform even when the
//! device's own clock is wrong.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use peercam_signal::clock::Estimate;

/// A Unix clock in microseconds with a correction.
#[derive(Debug, Default)]
pub struct MediaClock {
    /// A deliberate error of the device clock (labs and tests: `clock_skew_ms`).
    skew_us: i64,
    offset_us: AtomicI64,
    jitter_us: AtomicI64,
    synced: AtomicBool,
}

impl MediaClock {
    /// A clock whose raw reading is the system clock plus `skew_ms`.
    pub fn new(skew_ms: i64) -> Self {
        Self {
            skew_us: skew_ms.saturating_mul(1000),
            ..Self::default()
        }
    }

    /// The device's own clock (system clock plus any injected skew), Unix µs.
    pub fn raw_us(&self) -> u64 {
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        u64::try_from(sys.saturating_add(self.skew_us)).unwrap_or(0)
    }

    /// The disciplined clock: the raw clock corrected towards the SCU's, Unix µs.
    pub fn now_us(&self) -> u64 {
        let raw = i64::try_from(self.raw_us()).unwrap_or(i64::MAX);
        u64::try_from(raw.saturating_add(self.offset_us.load(Ordering::Relaxed))).unwrap_or(0)
    }

    /// Applies the synchronisation filter's estimate.
    pub fn apply(&self, e: &Estimate) {
        let before = self.offset_us.swap(e.offset_us, Ordering::Relaxed);
        self.jitter_us.store(e.jitter_us, Ordering::Relaxed);
        let first = !self.synced.swap(true, Ordering::Relaxed);
        if first || (e.offset_us - before).abs() > 100_000 {
            tracing::info!(
                offset_ms = e.offset_us as f64 / 1000.0,
                delay_ms = e.delay_us as f64 / 1000.0,
                "media clock synchronised with the SCU"
            );
        }
    }

    /// The current correction and jitter, µs, once synchronised.
    pub fn status(&self) -> Option<(i64, i64)> {
        self.synced.load(Ordering::Relaxed).then(|| {
            (
                self.offset_us.load(Ordering::Relaxed),
                self.jitter_us.load(Ordering::Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_7_2_skewed_clock_is_corrected() {
        let c = MediaClock::new(-600_000);
        let sys = MediaClock::new(0).raw_us();
        assert!(sys.abs_diff(c.raw_us()) > 599_000_000);
        c.apply(&Estimate {
            offset_us: 600_000_000,
            delay_us: 100,
            jitter_us: 10,
            samples: 1,
        });
        assert!(MediaClock::new(0).raw_us().abs_diff(c.now_us()) < 50_000);
        assert_eq!(c.status(), Some((600_000_000, 10)));
    }
}
