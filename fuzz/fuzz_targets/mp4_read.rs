//! The MP4 reader of `peercam-media` on arbitrary bytes.
//!
//! None of it may panic. The box walker must stay inside the input and move forward. What
//! `Movie::parse` accepts has every sample and chunk inside the input (it checks extents),
//! and an `avcC` that parses serialises back to a record that parses to the same value.
//! The input is also fed to `Movie::parse_moov`, as the body of a `moov` box.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_media::mp4::{AvcConfig, BoxHeader, Movie, Mp4Box, SampleEntry, Track, boxes};

/// Enough samples to cover the structure without timing out on per-byte audio tracks.
const MAX_SAMPLES: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = BoxHeader::parse(data) {
        assert!(usize::from(h.header_len) <= BoxHeader::MAX_LEN);
        assert!(h.size.is_none_or(|s| s >= u64::from(h.header_len)));
    }
    walk(
        data,
        boxes(data).collect::<Vec<_>>(),
        0,
        data.len() as u64,
        0,
    );

    if let Ok(movie) = Movie::parse(data) {
        for t in &movie.tracks {
            check_track(t, Some(data));
        }
    }
    if let Ok(movie) = Movie::parse_moov(data) {
        for t in &movie.tracks {
            check_track(t, None);
            let _ = t.check_extents(data.len() as u64);
        }
    }
    if let Ok(config) = AvcConfig::parse(data)
        && let Ok(bytes) = config.to_bytes()
    {
        assert_eq!(
            AvcConfig::parse(&bytes).as_ref(),
            Ok(&config),
            "avcC round trip"
        );
    }
});

/// Boxes of one level lie in order inside their parent; recurse a few levels.
fn walk(
    file: &[u8],
    level: Vec<Result<Mp4Box<'_>, peercam_media::Error>>,
    start: u64,
    end: u64,
    depth: u32,
) {
    let mut at = start;
    for b in level {
        let Ok(b) = b else { break };
        assert_eq!(b.offset, at, "boxes are contiguous");
        let body_start = b.offset + u64::from(b.header_len);
        at = body_start + b.body.len() as u64;
        assert!(at <= end, "box past its parent");
        if depth == 0 {
            let s = usize::try_from(body_start).expect("offset");
            assert_eq!(&file[s..s + b.body.len()], b.body);
        }
        if depth < 6 {
            walk(file, b.children().collect(), body_start, at, depth + 1);
        }
    }
}

fn check_track(t: &Track, file: Option<&[u8]>) {
    let _ = (t.sync_count(), t.sample_duration_total(), t.entry.clone());
    let mut last_dts = 0;
    for (i, s) in t.samples().take(MAX_SAMPLES).enumerate() {
        assert_eq!(s.number as usize, i + 1);
        assert!(s.dts >= last_dts, "dts goes back");
        last_dts = s.dts;
        if let Some(file) = file {
            assert!(s.data(file).is_some(), "sample outside a checked file");
        }
    }
    let mut next_sample = 1;
    for c in t.chunks().take(MAX_SAMPLES) {
        assert_eq!(c.first_sample, next_sample);
        next_sample += u64::from(c.samples);
        if let Some(file) = file {
            assert!(c.data(file).is_some(), "chunk outside a checked file");
        }
    }
    if let SampleEntry::Avc { config, .. } = &t.entry
        && let Ok(bytes) = config.to_bytes()
    {
        assert_eq!(AvcConfig::parse(&bytes).as_ref(), Ok(config));
    }
}
