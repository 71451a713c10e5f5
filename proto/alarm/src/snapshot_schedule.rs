//! Timed snapshots (H.626.4 6.1.12, first part): when the platform asks a camera for its
//! next still picture. A schedule takes one snapshot every `every_s` seconds inside weekly
//! windows of local time (none: around the clock); [`SnapshotSchedule::next_due`] says
//! when the next one is due, given the last one and `now`.

use peercam_record::strategy::{Window, validate_windows, weekly_state};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Shortest interval between timed snapshots, seconds.
pub const MIN_EVERY_S: u32 = 60;
/// Longest interval, seconds (one day).
pub const MAX_EVERY_S: u32 = 86_400;
/// Most snapshots kept per camera.
pub const MAX_KEEP: u32 = 1000;

fn default_every() -> u32 {
    3600
}

fn default_width() -> u16 {
    640
}

fn default_keep() -> u32 {
    48
}

/// A camera's timed snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotSchedule {
    /// Whether timed snapshots are taken at all.
    #[serde(default)]
    pub enabled: bool,
    /// One snapshot every this many seconds (60 to 86400).
    #[serde(default = "default_every")]
    pub every_s: u32,
    /// When, as weekly windows of local time (empty: always).
    #[serde(default)]
    pub windows: Vec<Window>,
    /// Minutes east of UTC in which `windows` are written.
    #[serde(default)]
    pub utc_offset_min: i16,
    /// Widest picture, pixels (16 to 1280).
    #[serde(default = "default_width")]
    pub max_width: u16,
    /// How many are kept per camera (1 to 1000); the oldest go first.
    #[serde(default = "default_keep")]
    pub keep: u32,
}

impl Default for SnapshotSchedule {
    fn default() -> Self {
        Self {
            enabled: false,
            every_s: default_every(),
            windows: Vec::new(),
            utc_offset_min: 0,
            max_width: default_width(),
            keep: default_keep(),
        }
    }
}

impl SnapshotSchedule {
    /// Checks every value; the error names the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        if !(MIN_EVERY_S..=MAX_EVERY_S).contains(&self.every_s) {
            return Err(Error::invalid("every_s", "60 to 86400"));
        }
        validate_windows(&self.windows, "windows")?;
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_min) {
            return Err(Error::invalid(
                "utc_offset_min",
                "must be within -840..=840",
            ));
        }
        if !(16..=1280).contains(&self.max_width) {
            return Err(Error::invalid("max_width", "16 to 1280"));
        }
        if !(1..=MAX_KEEP).contains(&self.keep) {
            return Err(Error::invalid("keep", "1 to 1000"));
        }
        Ok(())
    }

    /// H.626.4 6.1.12: when the next snapshot is due (Unix ms, never before `now_ms`), given
    /// when the last was taken; `None` when disabled or no window ever opens.
    pub fn next_due(&self, last_ms: Option<u64>, now_ms: u64) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        let every_ms = u64::from(self.every_s.max(MIN_EVERY_S)) * 1000;
        let due = last_ms
            .map_or(now_ms, |l| l.saturating_add(every_ms))
            .max(now_ms);
        if self.windows.is_empty() {
            return Some(due);
        }
        match weekly_state(&self.windows, self.utc_offset_min, due) {
            (true, _) => Some(due),
            // Outside every window: the next one's opening.
            (false, next) => next,
        }
    }

    /// H.626.4 6.1.12: the most snapshots this schedule takes in one local day (the busiest
    /// weekday; 0 when disabled), to hold a schedule against a daily SMS quota.
    pub fn max_per_day(&self) -> u32 {
        if !self.enabled {
            return 0;
        }
        let every_min = (self.every_s.max(MIN_EVERY_S)).div_ceil(60);
        if self.windows.is_empty() {
            return 1440_u32.div_ceil(every_min);
        }
        (0..7)
            .map(|day| {
                self.windows
                    .iter()
                    .filter(|w| w.days & (1 << day) != 0)
                    .map(|w| u32::from(w.end_min.saturating_sub(w.start_min)).div_ceil(every_min))
                    .sum::<u32>()
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Monday 1970-01-05 00:00 UTC.
    const MONDAY: u64 = 4 * 86_400_000;

    fn at(day: u64, h: u64, m: u64) -> u64 {
        MONDAY + day * 86_400_000 + (h * 60 + m) * 60_000
    }

    #[test]
    fn h626_6_1_12_snapshots_every_interval_around_the_clock() {
        let s = SnapshotSchedule {
            enabled: true,
            every_s: 600,
            ..SnapshotSchedule::default()
        };
        s.validate().unwrap();
        assert_eq!(s.next_due(None, at(0, 9, 0)), Some(at(0, 9, 0)));
        assert_eq!(
            s.next_due(Some(at(0, 9, 0)), at(0, 9, 1)),
            Some(at(0, 9, 10))
        );
        // Overdue (the camera was offline): now.
        assert_eq!(
            s.next_due(Some(at(0, 9, 0)), at(0, 11, 0)),
            Some(at(0, 11, 0))
        );
        let off = SnapshotSchedule::default();
        assert_eq!(off.next_due(None, 0), None);
    }

    #[test]
    fn h626_6_1_12_snapshots_only_inside_windows() {
        // Weekdays 08:00-09:00 local at UTC+60 (07:00-08:00 UTC).
        let s = SnapshotSchedule {
            enabled: true,
            every_s: 1800,
            windows: vec![Window {
                days: 0b001_1111,
                start_min: 480,
                end_min: 540,
            }],
            utc_offset_min: 60,
            ..SnapshotSchedule::default()
        };
        s.validate().unwrap();
        assert_eq!(s.next_due(None, at(0, 6, 0)), Some(at(0, 7, 0)));
        assert_eq!(
            s.next_due(Some(at(0, 7, 0)), at(0, 7, 1)),
            Some(at(0, 7, 30))
        );
        // The next would be 08:00 UTC, when the window closed: Tuesday's opening.
        assert_eq!(
            s.next_due(Some(at(0, 7, 30)), at(0, 7, 31)),
            Some(at(1, 7, 0))
        );
        // Friday after the window: Monday's.
        assert_eq!(s.next_due(None, at(4, 12, 0)), Some(at(7, 7, 0)));
    }

    #[test]
    fn h626_6_1_12_most_snapshots_a_day() {
        let mut s = SnapshotSchedule {
            enabled: true,
            every_s: 1800,
            ..SnapshotSchedule::default()
        };
        assert_eq!(s.max_per_day(), 48);
        s.every_s = 60;
        assert_eq!(s.max_per_day(), 1440);
        s.every_s = 1800;
        // Weekdays 08:00-09:00 and Mondays 12:00-12:45: Monday is the busiest, 2 + 2.
        s.windows = vec![
            Window {
                days: 0b001_1111,
                start_min: 480,
                end_min: 540,
            },
            Window {
                days: 1,
                start_min: 720,
                end_min: 765,
            },
        ];
        assert_eq!(s.max_per_day(), 4);
        s.enabled = false;
        assert_eq!(s.max_per_day(), 0);
    }

    #[test]
    fn h626_6_1_12_schedule_refusals_name_the_field() {
        let field = |s: SnapshotSchedule| match s.validate() {
            Err(Error::Invalid { field, .. }) => field,
            Ok(()) => "ok".into(),
        };
        let base = SnapshotSchedule::default();
        let every = SnapshotSchedule {
            every_s: 59,
            ..base.clone()
        };
        assert_eq!(field(every), "every_s");
        let width = SnapshotSchedule {
            max_width: 2000,
            ..base.clone()
        };
        assert_eq!(field(width), "max_width");
        let keep = SnapshotSchedule {
            keep: 0,
            ..base.clone()
        };
        assert_eq!(field(keep), "keep");
        let windows = SnapshotSchedule {
            windows: vec![Window {
                days: 1,
                start_min: 600,
                end_min: 500,
            }],
            ..base
        };
        assert_eq!(field(windows), "windows[0].start_min");
        assert!(serde_json::from_str::<SnapshotSchedule>(r#"{"evry_s":60}"#).is_err());
    }

    proptest! {
        #[test]
        fn h626_6_1_12_schedule_json_round_trip_and_due_never_early(
            every_s in MIN_EVERY_S..=MAX_EVERY_S,
            days in 1u8..=0x7f,
            start in 0u16..1439,
            len in 1u16..=1440,
            offset in -840i16..=840,
            last in proptest::option::of(0u64..4_000_000_000_000),
            now in 0u64..4_000_000_000_000,
        ) {
            let s = SnapshotSchedule {
                enabled: true,
                every_s,
                windows: vec![Window { days, start_min: start, end_min: (start + len).min(1440) }],
                utc_offset_min: offset,
                ..SnapshotSchedule::default()
            };
            prop_assert!(s.validate().is_ok());
            let back: SnapshotSchedule = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            prop_assert_eq!(&back, &s);
            let due = s.next_due(last, now).unwrap();
            prop_assert!(due >= now);
            if let Some(l) = last {
                prop_assert!(due >= l + u64::from(every_s) * 1000);
            }
            prop_assert!(weekly_state(&s.windows, offset, due).0, "due outside the windows");
        }
    }
}
