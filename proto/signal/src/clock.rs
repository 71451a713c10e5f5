//! Clock synchronisation of devices with their SCU (H.626.4 7.2: the SCU is the time
//! reference). An NTP-style exchange over the Ps link: the device stamps `t1` when it asks,
//! the SCU `t2` when the request arrives and `t3` when it answers, the device `t4` when the
//! answer arrives (all Unix microseconds, each on its own clock).
//!
//! The estimate is the offset of the sample with the least round-trip delay among the last
//! few (the one least disturbed by queueing, as NTP's clock filter does), and the jitter is
//! the RMS spread of the window's offsets around it.

use std::collections::VecDeque;

/// One exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// SCU clock minus device clock, microseconds.
    pub offset_us: i64,
    /// Round-trip delay, excluding the SCU's time between receipt and answer, microseconds.
    pub delay_us: i64,
}

impl Sample {
    /// The sample of one exchange; `None` when the stamps are impossible (negative delay).
    pub fn new(t1: u64, t2: u64, t3: u64, t4: u64) -> Option<Self> {
        let (t1, t2, t3, t4) = (
            i128::from(t1),
            i128::from(t2),
            i128::from(t3),
            i128::from(t4),
        );
        let delay = (t4 - t1) - (t3 - t2);
        if delay < 0 || t3 < t2 {
            return None;
        }
        let offset = ((t2 - t1) + (t3 - t4)) / 2;
        Some(Self {
            offset_us: i64::try_from(offset).ok()?,
            delay_us: i64::try_from(delay).ok()?,
        })
    }
}

/// The filter's current view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Add to the device clock to get the SCU's, microseconds.
    pub offset_us: i64,
    /// Round-trip delay of the chosen sample, microseconds.
    pub delay_us: i64,
    /// RMS spread of the recent offsets, microseconds.
    pub jitter_us: i64,
    /// Samples in the window.
    pub samples: usize,
}

/// A window of recent samples.
#[derive(Debug, Clone, Default)]
pub struct SyncFilter {
    window: VecDeque<Sample>,
}

impl SyncFilter {
    /// Samples kept.
    pub const WINDOW: usize = 8;

    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample, dropping the oldest beyond [`Self::WINDOW`].
    pub fn push(&mut self, s: Sample) {
        if self.window.len() == Self::WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(s);
    }

    /// Forgets everything (after a step of the device's clock).
    pub fn clear(&mut self) {
        self.window.clear();
    }

    /// The estimate, once there is a sample.
    pub fn estimate(&self) -> Option<Estimate> {
        let best = self.window.iter().min_by_key(|s| s.delay_us)?;
        let n = self.window.len();
        let sq: f64 = self
            .window
            .iter()
            .map(|s| {
                let d = (s.offset_us - best.offset_us) as f64;
                d * d
            })
            .sum();
        Some(Estimate {
            offset_us: best.offset_us,
            delay_us: best.delay_us,
            jitter_us: (sq / n as f64).sqrt() as i64,
            samples: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_7_2_offset_and_delay_of_an_exchange() {
        // Device 10 min behind; 4 ms each way; the SCU takes 1 ms to answer.
        let skew = -600_000_000i64;
        let scu = 1_700_000_000_000_000u64;
        let dev = |t: u64| (t as i64 + skew) as u64;
        let (t1, t2, t3, t4) = (dev(scu), scu + 4_000, scu + 5_000, dev(scu + 9_000));
        let s = Sample::new(t1, t2, t3, t4).unwrap();
        assert_eq!(s.offset_us, -skew);
        assert_eq!(s.delay_us, 8_000);
        assert!(Sample::new(10, 5, 4, 20).is_none(), "answer before receipt");
    }

    #[test]
    fn h626_7_2_filter_picks_the_least_delayed_sample() {
        let mut f = SyncFilter::new();
        assert!(f.estimate().is_none());
        // Asymmetric queueing skews the delayed samples' offsets.
        for (offset_us, delay_us) in [(5_300, 9_000), (5_000, 1_000), (6_000, 20_000)] {
            f.push(Sample {
                offset_us,
                delay_us,
            });
        }
        let e = f.estimate().unwrap();
        assert_eq!((e.offset_us, e.delay_us, e.samples), (5_000, 1_000, 3));
        assert!(e.jitter_us > 0);
        for _ in 0..20 {
            f.push(Sample {
                offset_us: 7_000,
                delay_us: 2_000,
            });
        }
        let e = f.estimate().unwrap();
        assert_eq!((e.offset_us, e.samples, e.jitter_us), (7_000, 8, 0));
    }
}
