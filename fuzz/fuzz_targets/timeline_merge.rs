//! The merged timeline of `peercam-signal` (`record::merge`, H.626.4 6.3.2): spans of up to
//! eight recorders built from the bytes, merged over a range from the bytes.
//!
//! Nothing panics or overflows; output spans are ordered, disjoint, inside the range and
//! non-empty; a moment is in an output span naming a source exactly when an input span of
//! that source covered it, and back-filled exactly when a covering input span was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signal::record::{RecordedSpan, RecordingList, merge};

const NAMES: [&str; 8] = ["sd", "nvr:a", "nvr:b", "cloud", "nvr:c", "nvr:d", "nvr:e", "nvr:f"];

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap_or([0; 8]));
    // Small times most of the time, so spans meet; the whole range sometimes.
    let small = data[0] & 1 == 0;
    let t = |v: u64| if small { v % 4096 } else { v };
    let (from, to) = (t(word(0)), t(word(8)));
    let camera: peercam_base::DeviceId = "pc-0000000000000001"
        .parse()
        .unwrap_or_else(|_| unreachable!());
    let mut inputs: Vec<(String, RecordingList)> = Vec::new();
    for c in data[16..].chunks(9) {
        if c.len() < 9 {
            break;
        }
        let name = NAMES[usize::from(c[0] & 7)];
        let start = t(u64::from(u32::from_le_bytes([c[1], c[2], c[3], c[4]])));
        let len = u64::from(u16::from_le_bytes([c[5], c[6]]));
        let span = RecordedSpan {
            start_ms: start,
            end_ms: start.saturating_add(len),
            bytes: u64::from(c[7]) << (c[8] & 63),
            backfilled: c[0] & 8 != 0,
        };
        match inputs.iter_mut().find(|(n, _)| n == name) {
            Some((_, l)) => l.spans.push(span),
            None => inputs.push((
                name.to_owned(),
                RecordingList {
                    camera: camera.clone(),
                    from_ms: 0,
                    to_ms: u64::MAX,
                    spans: vec![span],
                    events: Vec::new(),
                },
            )),
        }
    }
    let out = merge(camera, from, to, &inputs);
    for w in out.spans.windows(2) {
        assert!(w[0].end_ms <= w[1].start_ms);
    }
    let mut probes = Vec::new();
    for s in &out.spans {
        assert!(s.start_ms < s.end_ms && from <= s.start_ms && s.end_ms <= to);
        assert!(!s.sources.is_empty());
        probes.extend([s.start_ms, s.end_ms - 1, s.end_ms]);
    }
    for (_, l) in &inputs {
        for s in &l.spans {
            probes.extend([s.start_ms, s.end_ms.saturating_sub(1), s.end_ms]);
        }
    }
    for m in probes.into_iter().take(512) {
        let hit = out.spans.iter().find(|s| s.start_ms <= m && m < s.end_ms);
        for (name, l) in &inputs {
            let covered = (from..to).contains(&m)
                && l.spans.iter().any(|s| s.start_ms <= m && m < s.end_ms);
            let named = hit.is_some_and(|s| s.sources.iter().any(|x| x == name));
            assert_eq!(covered, named, "moment {m} source {name}");
        }
        if let Some(s) = hit {
            let bf = inputs
                .iter()
                .any(|(_, l)| l.spans.iter().any(|x| x.backfilled && x.start_ms <= m && m < x.end_ms));
            assert_eq!(s.backfilled, bf);
        }
    }
});
