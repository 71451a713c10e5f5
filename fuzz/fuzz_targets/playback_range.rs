//! Playback range arithmetic of `peercam-record` (docs/security.md F9): RFC 3339 and RFC 2326
//! `clock=` times and ranges, `Scale` values, 90 kHz / ms conversions and trick-play plans.
//!
//! Nothing panics or overflows; every time that parses formats back to the same instant;
//! a plan sends frames of its GOP in order and its wall time matches the GOP's duration at
//! the speed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_record::time::{
    format_clock, format_clock_range, format_rfc3339, ms_to_ticks, parse_clock, parse_clock_range,
    parse_rfc3339, ticks_to_ms,
};
use peercam_record::trick::{FrameMeta, Scale, Selection, plan_gop, selection, step};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(ms) = parse_rfc3339(&text) {
        assert_eq!(parse_rfc3339(&format_rfc3339(ms)).ok(), Some(ms));
    }
    if let Ok(ms) = parse_clock(&text) {
        assert_eq!(parse_clock(&format_clock(ms)).ok(), Some(ms));
    }
    if let Ok(span) = parse_clock_range(&text) {
        assert_eq!(
            parse_clock_range(&format_clock_range(span)).ok(),
            Some(span)
        );
    }
    if let Ok(s) = Scale::parse(&text) {
        assert_eq!(Scale::parse(&s.to_string()).ok(), Some(s));
    }
    if data.len() < 18 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap_or([0; 8]));
    let (a, b) = (word(0), word(8));
    let _ = ticks_to_ms(a, b, u64::from(data[16]) * 1000);
    let _ = ms_to_ticks(a, b, 90_000);
    // A GOP from the rest: each byte a frame-time step.
    let scale = Scale::ALL[usize::from(data[16]) % Scale::ALL.len()];
    let mut pts = a % (1 << 50);
    let frames: Vec<FrameMeta> = data[17..]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            pts += u64::from(*d);
            FrameMeta { pts, key: i == 0 }
        })
        .collect();
    let end = pts + 3600;
    for sel in [Selection::All, Selection::KeyOnly, selection(scale, 25, 60)] {
        let plan = plan_gop(&frames, end, scale, sel);
        assert!(plan.windows(2).all(|w| w[0].index < w[1].index));
        assert!(plan.iter().all(|e| e.index < frames.len()));
        if !plan.is_empty() {
            let total: u64 = plan.iter().map(|e| e.wall).sum();
            let want = scale.wall(end - frames[0].pts);
            assert!(total.abs_diff(want) <= plan.len() as u64);
        }
    }
    let target = usize::from(data[17]) % frames.len().max(1);
    let _ = step(&frames, Some(usize::from(data[16])), target);
});
