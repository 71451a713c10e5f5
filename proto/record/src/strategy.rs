//! Record strategies (H.626.4 6.1.7, 8.7.2.1 steps 9-15, 8.7.3; 6.3.2 "periodic and cyclic
//! (loop-overwrite) recording").
//!
//! A [`Strategy`] says *when* a recorder records a camera ([`Mode`]) and *what happens when
//! its space runs out* ([`Retention`]). [`Strategy::decide`] is the whole scheduler: given
//! the wall clock and the alarm state it answers whether to record now, whether to keep
//! the camera's stream open (alarm pre-roll needs it), and when to ask again.

use serde::{Deserialize, Serialize};

use crate::Error;

const MINUTES_PER_DAY: u16 = 24 * 60;
const MS_PER_MIN: u64 = 60_000;
const MS_PER_DAY: u64 = 86_400_000;
/// Longest pre-roll or post-roll: 10 minutes.
pub const MAX_ROLL_S: u32 = 600;
/// Most windows in a weekly schedule.
pub const MAX_WINDOWS: usize = 64;

/// When and how a recorder records one camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Strategy {
    /// When to record.
    pub mode: Mode,
    /// What to do when the camera's quota or the disk is full.
    #[serde(default)]
    pub retention: Retention,
    /// Minutes east of UTC in which weekly windows are written (e.g. 60 for CET).
    #[serde(default)]
    pub utc_offset_min: i16,
}

impl Default for Strategy {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            retention: Retention::default(),
            utc_offset_min: 0,
        }
    }
}

/// When to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Mode {
    /// Never.
    Off,
    /// Always.
    Continuous,
    /// Inside weekly windows of local time.
    Weekly {
        /// The windows; overlapping windows merge.
        windows: Vec<Window>,
    },
    /// `record_s` seconds out of every `every_s`, phase-locked to the Unix epoch so every
    /// recorder agrees (e.g. 60 of every 600: the first minute of every ten).
    Periodic {
        /// The period, seconds (60 s to 1 week).
        every_s: u32,
        /// Recorded seconds per period (1 to `every_s`).
        record_s: u32,
    },
    /// Around alarms only: `pre_s` seconds before the alarm (kept in memory while idle)
    /// and until `post_s` seconds after the last alarm.
    Alarm {
        /// Pre-roll, seconds (at most [`MAX_ROLL_S`]).
        pre_s: u32,
        /// Post-roll, seconds (at most [`MAX_ROLL_S`], at least 1).
        post_s: u32,
    },
}

/// One weekly window: the days it applies to and a span of local minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Window {
    /// Days as bits: Monday = bit 0 ... Sunday = bit 6 (127: every day).
    pub days: u8,
    /// First minute of the day recorded (0..1440).
    pub start_min: u16,
    /// Minute the recording stops (`start_min` < `end_min` <= 1440).
    pub end_min: u16,
}

/// What happens when space runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Retention {
    /// Bytes this camera may use on the recorder; 0 means only the disk's limit applies.
    #[serde(default)]
    pub quota_bytes: u64,
    /// Loop overwrite (6.3.2 "cyclic"): when full, delete the oldest recordings and go on.
    /// When false, recording stops at the quota and a storage-full event is raised.
    #[serde(default = "yes")]
    pub cyclic: bool,
    /// Delete recordings older than this many days (0: keep until space is needed).
    #[serde(default)]
    pub max_age_days: u32,
}

fn yes() -> bool {
    true
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            quota_bytes: 0,
            cyclic: true,
            max_age_days: 0,
        }
    }
}

/// The scheduler's answer for one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Write the camera's media to storage now.
    pub record: bool,
    /// Keep the camera's stream open (recording, or buffering alarm pre-roll).
    pub pull: bool,
    /// When the answer may change without new input (Unix ms); `None`: not by time alone.
    pub next_change_ms: Option<u64>,
    /// Seconds of media before now to write as well (alarm pre-roll).
    pub pre_roll_s: u32,
}

impl Strategy {
    /// Checks every value; the error names the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: String, reason| Err(Error::Strategy { field, reason });
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_min) {
            return bad("utc_offset_min".into(), "must be within -840..=840");
        }
        if self.retention.max_age_days > 36_500 {
            return bad("retention.max_age_days".into(), "at most 36500");
        }
        match &self.mode {
            Mode::Off | Mode::Continuous => {}
            Mode::Weekly { windows } => {
                if windows.is_empty() {
                    return bad("mode.windows".into(), "at least one window");
                }
                validate_windows(windows, "mode.windows")?;
            }
            Mode::Periodic { every_s, record_s } => {
                if !(60..=7 * 86_400).contains(every_s) {
                    return bad("mode.every_s".into(), "60 s to one week");
                }
                if *record_s == 0 || record_s > every_s {
                    return bad("mode.record_s".into(), "1 to every_s");
                }
            }
            Mode::Alarm { pre_s, post_s } => {
                if *pre_s > MAX_ROLL_S {
                    return bad("mode.pre_s".into(), "at most 600");
                }
                if *post_s == 0 || *post_s > MAX_ROLL_S {
                    return bad("mode.post_s".into(), "1 to 600");
                }
            }
        }
        Ok(())
    }

    /// What to do at `now_ms` (Unix ms). `alarm_until_ms` is the end of the current alarm's
    /// post-roll (last alarm time + `post_s`), or 0 when no alarm was seen.
    ///
    /// A strategy that fails [`validate`](Self::validate) records nothing.
    pub fn decide(&self, now_ms: u64, alarm_until_ms: u64) -> Decision {
        let idle = Decision {
            record: false,
            pull: false,
            next_change_ms: None,
            pre_roll_s: 0,
        };
        if self.validate().is_err() {
            return idle;
        }
        match &self.mode {
            Mode::Off => idle,
            Mode::Continuous => Decision {
                record: true,
                pull: true,
                ..idle
            },
            Mode::Weekly { windows } => {
                let (inside, next) = weekly(windows, self.local_ms(now_ms));
                let offset = i64::from(self.utc_offset_min) * MS_PER_MIN as i64;
                Decision {
                    record: inside,
                    pull: inside,
                    next_change_ms: next.map(|n| n.saturating_add_signed(-offset)),
                    ..idle
                }
            }
            Mode::Periodic { every_s, record_s } => {
                let period = u64::from(*every_s) * 1000;
                let on = u64::from(*record_s) * 1000;
                let start = now_ms - now_ms % period;
                let inside = now_ms - start < on;
                let next = if inside { start + on } else { start + period };
                Decision {
                    record: inside,
                    pull: inside,
                    next_change_ms: Some(next),
                    ..idle
                }
            }
            Mode::Alarm { pre_s, .. } => {
                let active = now_ms < alarm_until_ms;
                Decision {
                    record: active,
                    pull: true,
                    next_change_ms: active.then_some(alarm_until_ms),
                    pre_roll_s: *pre_s,
                }
            }
        }
    }

    /// The end of the post-roll for an alarm at `at_ms`, extending `current` (0: none).
    pub fn alarm_until(&self, at_ms: u64, current: u64) -> u64 {
        match self.mode {
            Mode::Alarm { post_s, .. } => {
                current.max(at_ms.saturating_add(u64::from(post_s) * 1000))
            }
            _ => current,
        }
    }

    fn local_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(i64::from(self.utc_offset_min) * MS_PER_MIN as i64)
    }
}

/// Checks weekly windows (at most [`MAX_WINDOWS`], days bits 0..6, `start_min` <
/// `end_min` <= 1440); the error names the field under `prefix`, e.g. `schedule[2].end_min`.
/// Shared by record strategies, alarm schedules and snapshot schedules.
pub fn validate_windows(windows: &[Window], prefix: &str) -> Result<(), Error> {
    let bad = |field: String, reason| Err(Error::Strategy { field, reason });
    if windows.len() > MAX_WINDOWS {
        return bad(prefix.into(), "at most 64 windows");
    }
    for (i, w) in windows.iter().enumerate() {
        if w.days == 0 || w.days > 0x7f {
            return bad(format!("{prefix}[{i}].days"), "bits 0..6, not empty");
        }
        if w.end_min > MINUTES_PER_DAY {
            return bad(format!("{prefix}[{i}].end_min"), "at most 1440");
        }
        if w.start_min >= w.end_min {
            return bad(format!("{prefix}[{i}].start_min"), "must be before end_min");
        }
    }
    Ok(())
}

/// Whether the Unix time `now_ms` falls inside one of `windows`, written in local time
/// `utc_offset_min` minutes east of UTC, and the next Unix ms at which that answer changes
/// (`None`: never, e.g. windows covering the whole week).
pub fn weekly_state(windows: &[Window], utc_offset_min: i16, now_ms: u64) -> (bool, Option<u64>) {
    let shift = i64::from(utc_offset_min) * MS_PER_MIN as i64;
    let local = now_ms.saturating_add_signed(shift);
    let (inside, next) = weekly(windows, local);
    (inside, next.map(|t| t.saturating_add_signed(-shift)))
}

/// Monday = 0. 1970-01-01 was a Thursday.
fn weekday(local_ms: u64) -> u8 {
    ((local_ms / MS_PER_DAY + 3) % 7) as u8
}

/// Whether `local_ms` is inside a window, and the next local instant the answer changes.
fn weekly(windows: &[Window], local_ms: u64) -> (bool, Option<u64>) {
    let covers = |t: u64| {
        let day = weekday(t);
        let minute = ((t % MS_PER_DAY) / MS_PER_MIN) as u16;
        windows
            .iter()
            .any(|w| w.days & (1 << day) != 0 && (w.start_min..w.end_min).contains(&minute))
    };
    let inside = covers(local_ms);
    // Every boundary is a whole minute; scan the minute edges of the next eight days, but
    // only at window starts and ends (at most 2 * 64 per day).
    let day0 = local_ms - local_ms % MS_PER_DAY;
    let mut edges: Vec<u16> = windows
        .iter()
        .flat_map(|w| [w.start_min, w.end_min])
        .collect();
    edges.sort_unstable();
    edges.dedup();
    for d in 0..=8u64 {
        for &m in &edges {
            let t = day0 + d * MS_PER_DAY + u64::from(m) * MS_PER_MIN;
            if t > local_ms && covers(t) != inside {
                return (inside, Some(t));
            }
        }
    }
    (inside, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{prop_assert, prop_assert_eq, prop_assert_ne, prop_assume, proptest};
    use proptest::strategy::Strategy as _;

    /// 2026-11-23 was a Monday; 00:00 UTC.
    const MONDAY: u64 = 1_795_392_000_000;

    fn weekly_strategy(windows: Vec<Window>, offset: i16) -> Strategy {
        Strategy {
            mode: Mode::Weekly { windows },
            retention: Retention::default(),
            utc_offset_min: offset,
        }
    }

    #[test]
    fn monday_constant_is_a_monday() {
        assert_eq!(weekday(MONDAY), 0);
        assert_eq!(MONDAY % MS_PER_DAY, 0);
    }

    #[test]
    fn h626_8_7_2_weekly_windows_open_and_close_on_local_minutes() {
        // Weekdays 08:00-18:00 local, in UTC+1.
        let s = weekly_strategy(
            vec![Window {
                days: 0b001_1111,
                start_min: 8 * 60,
                end_min: 18 * 60,
            }],
            60,
        );
        s.validate().unwrap();
        // Monday 06:59 UTC = 07:59 local: off, next change at 07:00 UTC.
        let d = s.decide(MONDAY + (6 * 60 + 59) * MS_PER_MIN, 0);
        assert!(!d.record && !d.pull);
        assert_eq!(d.next_change_ms, Some(MONDAY + 7 * 60 * MS_PER_MIN));
        // 07:00 UTC: on until 17:00 UTC.
        let d = s.decide(MONDAY + 7 * 60 * MS_PER_MIN, 0);
        assert!(d.record);
        assert_eq!(d.next_change_ms, Some(MONDAY + 17 * 60 * MS_PER_MIN));
        // Friday 17:00 UTC: off until next Monday 07:00 UTC.
        let d = s.decide(MONDAY + 4 * MS_PER_DAY + 17 * 60 * MS_PER_MIN, 0);
        assert!(!d.record);
        assert_eq!(
            d.next_change_ms,
            Some(MONDAY + 7 * MS_PER_DAY + 7 * 60 * MS_PER_MIN)
        );
    }

    #[test]
    fn h626_8_7_2_adjacent_windows_merge() {
        let s = weekly_strategy(
            vec![
                Window {
                    days: 0x7f,
                    start_min: 0,
                    end_min: 600,
                },
                Window {
                    days: 0x7f,
                    start_min: 600,
                    end_min: 1440,
                },
            ],
            0,
        );
        let d = s.decide(MONDAY + 5 * MS_PER_MIN, 0);
        assert!(d.record);
        assert_eq!(d.next_change_ms, None, "always inside: no change");
    }

    #[test]
    fn h626_8_7_2_periodic_records_the_first_part_of_each_period() {
        let s = Strategy {
            mode: Mode::Periodic {
                every_s: 600,
                record_s: 60,
            },
            ..Strategy::default()
        };
        let d = s.decide(MONDAY + 30_000, 0);
        assert!(d.record);
        assert_eq!(d.next_change_ms, Some(MONDAY + 60_000));
        let d = s.decide(MONDAY + 60_000, 0);
        assert!(!d.record);
        assert_eq!(d.next_change_ms, Some(MONDAY + 600_000));
    }

    #[test]
    fn h626_8_7_2_alarm_pulls_for_pre_roll_and_records_through_post_roll() {
        let s = Strategy {
            mode: Mode::Alarm {
                pre_s: 5,
                post_s: 10,
            },
            ..Strategy::default()
        };
        let d = s.decide(MONDAY, 0);
        assert!(!d.record && d.pull);
        let until = s.alarm_until(MONDAY, 0);
        assert_eq!(until, MONDAY + 10_000);
        let d = s.decide(MONDAY + 1, until);
        assert!(d.record);
        assert_eq!(d.pre_roll_s, 5);
        assert_eq!(d.next_change_ms, Some(until));
        // A second alarm extends, an earlier one does not shorten.
        assert_eq!(s.alarm_until(MONDAY + 5_000, until), MONDAY + 15_000);
        assert_eq!(s.alarm_until(MONDAY - 5_000, until), until);
        assert!(!s.decide(until, until).record);
    }

    #[test]
    fn h626_8_7_2_invalid_strategies_are_named_and_record_nothing() {
        let cases = [
            (weekly_strategy(vec![], 0), "mode.windows"),
            (
                weekly_strategy(
                    vec![Window {
                        days: 1,
                        start_min: 600,
                        end_min: 600,
                    }],
                    0,
                ),
                "mode.windows[0].start_min",
            ),
            (
                weekly_strategy(
                    vec![Window {
                        days: 1,
                        start_min: 0,
                        end_min: 1441,
                    }],
                    0,
                ),
                "mode.windows[0].end_min",
            ),
            (
                Strategy {
                    mode: Mode::Periodic {
                        every_s: 600,
                        record_s: 601,
                    },
                    ..Strategy::default()
                },
                "mode.record_s",
            ),
            (
                Strategy {
                    mode: Mode::Alarm {
                        pre_s: 601,
                        post_s: 1,
                    },
                    ..Strategy::default()
                },
                "mode.pre_s",
            ),
            (
                Strategy {
                    mode: Mode::Continuous,
                    utc_offset_min: 900,
                    ..Strategy::default()
                },
                "utc_offset_min",
            ),
        ];
        for (s, field) in cases {
            match s.validate() {
                Err(Error::Strategy { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{s:?}: {other:?}"),
            }
            assert!(!s.decide(MONDAY, u64::MAX).record);
        }
    }

    #[test]
    fn strategy_json_is_stable() {
        let s = Strategy {
            mode: Mode::Alarm {
                pre_s: 5,
                post_s: 10,
            },
            retention: Retention {
                quota_bytes: 1 << 30,
                cyclic: false,
                max_age_days: 30,
            },
            utc_offset_min: -300,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"mode":{"kind":"alarm","pre_s":5,"post_s":10},"retention":{"quota_bytes":1073741824,"cyclic":false,"max_age_days":30},"utc_offset_min":-300}"#
        );
        assert_eq!(serde_json::from_str::<Strategy>(&json).unwrap(), s);
        let minimal: Strategy = serde_json::from_str(r#"{"mode":{"kind":"continuous"}}"#).unwrap();
        assert!(minimal.retention.cyclic);
        assert!(
            serde_json::from_str::<Strategy>(r#"{"mode":{"kind":"continuous"},"x":1}"#).is_err()
        );
    }

    fn arb_window() -> impl proptest::strategy::Strategy<Value = Window> {
        (1u8..=0x7f, 0u16..1440, 1u16..=1440).prop_map(|(days, a, b)| {
            let (start_min, end_min) = if a < b {
                (a, b)
            } else {
                (b.saturating_sub(1).min(a), a.max(b) + 1)
            };
            Window {
                days,
                start_min,
                end_min: end_min.min(1440),
            }
        })
    }

    proptest! {
        /// The answer holds until `next_change_ms` and flips there.
        #[test]
        fn weekly_next_change_is_exact(
            windows in proptest::collection::vec(arb_window(), 1..5),
            offset in -840i16..=840,
            at in 0u64..(14 * MS_PER_DAY),
        ) {
            let s = weekly_strategy(windows, offset);
            prop_assume!(s.validate().is_ok());
            let now = MONDAY + at;
            let d = s.decide(now, 0);
            // Sampled minutes before the change keep the answer.
            let end = d.next_change_ms.unwrap_or(now + 8 * MS_PER_DAY);
            let mut t = now;
            while t < end {
                prop_assert_eq!(s.decide(t, 0).record, d.record, "changed early at {}", t);
                t += 7 * MS_PER_MIN + 13_000;
            }
            if let Some(n) = d.next_change_ms {
                prop_assert!(n > now);
                prop_assert_ne!(s.decide(n, 0).record, d.record);
            }
        }

        #[test]
        fn periodic_duty_cycle_is_exact(every in 60u32..5000, frac in 1u32..=100, at in 0u64..10_000_000_000) {
            let record_s = (every * frac / 100).max(1);
            let s = Strategy { mode: Mode::Periodic { every_s: every, record_s }, ..Strategy::default() };
            let d = s.decide(at, 0);
            let n = d.next_change_ms.unwrap();
            prop_assert!(n > at);
            prop_assert!(n - at <= u64::from(every) * 1000);
            if record_s < every {
                prop_assert_ne!(s.decide(n, 0).record, d.record);
            }
        }
    }
}
