//! Trick play (H.626.4 6.1.7: "play fast, slow and in reverse, down to one frame per
//! second"; 8.7.2.2): which recorded frames to send for a speed, and for how long each is
//! shown.
//!
//! Recordings are H.264 with only I and P frames, in GOPs that start at an IDR. A player
//! can decode a P frame only after every frame since the GOP's IDR, so:
//!
//! * forward at a speed whose frame rate the player can take: every frame, each shown for
//!   its duration divided by the speed (slow motion stretches, 2x halves);
//! * faster forward, and every reverse speed: the IDR of each GOP only, shown for the
//!   GOP's duration divided by the speed, GOPs taken in the direction of play;
//! * a frame step forward from the frame just shown: the next frame as it is;
//!   any other step (backwards, or across a gap): the target frame must be decoded from
//!   its GOP's IDR and sent as a new IDR ([`StepPlan::reencode`]).

use std::fmt;

use crate::Error;

/// A playback speed (RTSP `Scale`, RFC 2326 12.34): 1/4, 1/2, 1, 2, 4, 8, 16, or their
/// negatives for reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scale {
    /// Signed numerator: 1, 2, 4, 8 or 16.
    num: i8,
    /// Denominator: 1, 2 or 4 (only with `|num| == 1`).
    den: u8,
}

impl Scale {
    /// Normal speed forward.
    pub const NORMAL: Self = Self { num: 1, den: 1 };

    /// Every speed offered, slowest reverse first.
    pub const ALL: [Self; 14] = [
        Self { num: -16, den: 1 },
        Self { num: -8, den: 1 },
        Self { num: -4, den: 1 },
        Self { num: -2, den: 1 },
        Self { num: -1, den: 1 },
        Self { num: -1, den: 2 },
        Self { num: -1, den: 4 },
        Self { num: 1, den: 4 },
        Self { num: 1, den: 2 },
        Self { num: 1, den: 1 },
        Self { num: 2, den: 1 },
        Self { num: 4, den: 1 },
        Self { num: 8, den: 1 },
        Self { num: 16, den: 1 },
    ];

    /// Parses a `Scale` or `Speed` value such as `2`, `-1.0`, `0.5`, `0.25`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let t = text.trim();
        let value: f64 = t
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && t.len() <= 16)
            .ok_or_else(|| Error::Scale(t.chars().take(16).collect()))?;
        Self::ALL
            .into_iter()
            .find(|s| (s.as_f64() - value).abs() < 1e-9)
            .ok_or_else(|| Error::Scale(t.chars().take(16).collect()))
    }

    /// The speed as a number.
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Playing backwards.
    pub fn is_reverse(self) -> bool {
        self.num < 0
    }

    /// The speed without its direction.
    pub fn magnitude(self) -> Self {
        Self {
            num: self.num.abs(),
            den: self.den,
        }
    }

    /// Wall time to show `media` ticks of recording at this speed (rounded down, at least 1
    /// for a non-zero input).
    pub fn wall(self, media: u64) -> u64 {
        let w = u128::from(media) * u128::from(self.den) / u128::from(self.num.unsigned_abs());
        let w = u64::try_from(w).unwrap_or(u64::MAX);
        if media > 0 { w.max(1) } else { 0 }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.den {
            1 => write!(f, "{}", self.num),
            _ => write!(f, "{}", self.as_f64()),
        }
    }
}

/// One recorded video frame, as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Presentation time on the recording's 90 kHz timeline.
    pub pts: u64,
    /// An IDR.
    pub key: bool,
}

/// Which frames a mode sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Every frame, in decode order.
    All,
    /// The IDR of every GOP.
    KeyOnly,
}

/// The frames a speed sends, given the recording's frame rate and the most frames per
/// second the player should get.
pub fn selection(scale: Scale, fps: u32, max_out_fps: u32) -> Selection {
    if scale.is_reverse() {
        return Selection::KeyOnly;
    }
    let out = u64::from(fps) * u64::from(scale.num.unsigned_abs()) / u64::from(scale.den);
    if out <= u64::from(max_out_fps) {
        Selection::All
    } else {
        Selection::KeyOnly
    }
}

/// One frame to send and the wall time (90 kHz) until the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emit {
    /// Index into the GOP's frames.
    pub index: usize,
    /// Wall ticks this frame stays on screen.
    pub wall: u64,
}

/// Plans one GOP. `frames` are in decode order and the first is the IDR; `gop_end` is the
/// presentation time where the GOP's last frame stops showing (the next GOP's IDR, or the
/// last frame plus its duration). Frames out of order or a GOP not starting at an IDR send
/// nothing.
pub fn plan_gop(frames: &[FrameMeta], gop_end: u64, scale: Scale, sel: Selection) -> Vec<Emit> {
    let Some(first) = frames.first() else {
        return Vec::new();
    };
    if !first.key || frames.windows(2).any(|w| w[1].pts <= w[0].pts) {
        return Vec::new();
    }
    let last = frames[frames.len() - 1].pts;
    let end = gop_end.max(last.saturating_add(1));
    match sel {
        Selection::KeyOnly => vec![Emit {
            index: 0,
            wall: scale.wall(end - first.pts),
        }],
        Selection::All => frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let next = frames.get(i + 1).map_or(end, |n| n.pts);
                Emit {
                    index: i,
                    wall: scale.wall(next - f.pts),
                }
            })
            .collect(),
    }
}

/// What one frame step needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepPlan {
    /// The frame to show, as an index into the GOP.
    pub show: usize,
    /// Frames to decode first, from the IDR: `0..=show` when re-encoding, empty otherwise.
    pub decode_from: usize,
    /// The player cannot decode `show` from what it has: decode `decode_from..=show` here
    /// and send `show` re-encoded as an IDR.
    pub reencode: bool,
}

/// Plans a step within a GOP from the frame the player shows now (`current`, `None` when it
/// shows nothing of this GOP) to `target`. Forward by one from `current` sends the frame as
/// recorded; anything else re-encodes.
pub fn step(frames: &[FrameMeta], current: Option<usize>, target: usize) -> Option<StepPlan> {
    if target >= frames.len() || !frames.first()?.key {
        return None;
    }
    let plain = frames[target].key || current.is_some_and(|c| c + 1 == target);
    Some(StepPlan {
        show: target,
        decode_from: 0,
        reencode: !plain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gop(start: u64, n: usize) -> Vec<FrameMeta> {
        (0..n)
            .map(|i| FrameMeta {
                pts: start + i as u64 * 3600,
                key: i == 0,
            })
            .collect()
    }

    #[test]
    fn scales_parse_and_print() {
        for s in Scale::ALL {
            assert_eq!(Scale::parse(&s.to_string()).unwrap(), s);
        }
        assert_eq!(Scale::parse("1.0").unwrap(), Scale::NORMAL);
        assert_eq!(Scale::parse(" -4.000 ").unwrap().to_string(), "-4");
        assert_eq!(Scale::parse("0.25").unwrap().to_string(), "0.25");
        for bad in ["0", "3", "NaN", "inf", "-0.3", "", "1e400", "32"] {
            assert!(Scale::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn h626_8_7_2_forward_speeds_send_all_frames_while_the_player_keeps_up() {
        let s = |t| Scale::parse(t).unwrap();
        assert_eq!(selection(s("1"), 25, 60), Selection::All);
        assert_eq!(selection(s("2"), 25, 60), Selection::All);
        assert_eq!(selection(s("0.25"), 25, 60), Selection::All);
        assert_eq!(selection(s("4"), 25, 60), Selection::KeyOnly);
        assert_eq!(selection(s("-1"), 25, 60), Selection::KeyOnly);
        assert_eq!(selection(s("-0.5"), 25, 60), Selection::KeyOnly);
    }

    #[test]
    fn h626_8_7_2_slow_motion_stretches_and_fast_skips() {
        let g = gop(0, 25);
        let half = plan_gop(&g, 90_000, Scale::parse("0.5").unwrap(), Selection::All);
        assert_eq!(half.len(), 25);
        assert!(half.iter().all(|e| e.wall == 7200));
        let four = plan_gop(&g, 90_000, Scale::parse("4").unwrap(), Selection::KeyOnly);
        assert_eq!(
            four,
            vec![Emit {
                index: 0,
                wall: 22_500
            }]
        );
        let rev = plan_gop(&g, 90_000, Scale::parse("-1").unwrap(), Selection::KeyOnly);
        assert_eq!(
            rev,
            vec![Emit {
                index: 0,
                wall: 90_000
            }]
        );
        // Not starting at an IDR, or out of order: nothing.
        assert!(plan_gop(&g[1..], 90_000, Scale::NORMAL, Selection::All).is_empty());
        let mut bad = g;
        bad.swap(3, 4);
        assert!(plan_gop(&bad, 90_000, Scale::NORMAL, Selection::All).is_empty());
    }

    #[test]
    fn h626_8_7_2_frame_step_reencodes_only_when_needed() {
        let g = gop(0, 25);
        assert_eq!(
            step(&g, Some(4), 5),
            Some(StepPlan {
                show: 5,
                decode_from: 0,
                reencode: false
            })
        );
        assert!(step(&g, Some(5), 4).unwrap().reencode, "back");
        assert!(step(&g, None, 7).unwrap().reencode, "jump into a GOP");
        assert!(
            !step(&g, None, 0).unwrap().reencode,
            "an IDR is always plain"
        );
        assert_eq!(step(&g, Some(24), 25), None);
    }

    proptest! {
        /// All-frame plans take exactly the GOP's duration at the speed (within rounding).
        #[test]
        fn plan_covers_the_gop(n in 1usize..60, scale in 0usize..14) {
            let scale = Scale::ALL[scale];
            let g = gop(1_000_000, n);
            let end = 1_000_000 + n as u64 * 3600;
            for sel in [Selection::All, Selection::KeyOnly] {
                let plan = plan_gop(&g, end, scale, sel);
                let total: u64 = plan.iter().map(|e| e.wall).sum();
                let want = scale.wall(n as u64 * 3600);
                prop_assert!(total.abs_diff(want) <= plan.len() as u64, "{} vs {}", total, want);
                prop_assert!(plan.windows(2).all(|w| w[0].index < w[1].index));
            }
        }

        #[test]
        fn scale_parse_never_panics(s in ".{0,20}") {
            let _ = Scale::parse(&s);
        }
    }
}
