//! `peercam_rtp::camera_audio::AacToG711`: a camera's AAC access units (as `retina` hands
//! them over from RTP `mpeg4-generic`) decoded to 8 kHz G.711 for viewers and recorders
//! (H.626.4 6.3.2).
//!
//! Input: two bytes of AudioSpecificConfig (most are refused: that must be an error, not a
//! panic), one byte choosing the law, then access units, each a length byte (times 4) and
//! that many bytes (fewer at the end).
//!
//! Oracles besides "never panics": at most one 8 kHz G.711 byte per input sample (1024
//! samples a frame, at a rate of at least 8 kHz), and a second decoder fed the same units
//! gives the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_rtp::camera_audio::AacToG711;
use peercam_rtp::g711::Law;

fuzz_target!(|data: &[u8]| {
    let [c0, c1, law, rest @ ..] = data else {
        return;
    };
    let law = if law & 1 == 0 { Law::MuLaw } else { Law::ALaw };
    let (Ok(mut a), Ok(mut b)) = (
        AacToG711::new(&[*c0, *c1], law),
        AacToG711::new(&[*c0, *c1], law),
    ) else {
        return;
    };
    let mut rest = rest;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (usize::from(len) * 4).min(tail.len());
        let (au, next) = tail.split_at(n);
        rest = next;
        let out = a.decode(au);
        assert_eq!(out, b.decode(au), "decoding is deterministic");
        if let Ok(g711) = out {
            assert!(
                g711.len() <= 1025,
                "{} bytes from one access unit",
                g711.len()
            );
        }
    }
});
