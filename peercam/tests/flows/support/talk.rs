//! What the talk tests (6.1.8) share: the tone a talker sends and what the camera's
//! speaker file holds.
#![allow(dead_code)]

use std::path::Path;

use peercam_test::tone::{read_wav, sine};

/// `seconds` of a `freq` Hz tone as 20 ms PCMU payloads.
pub(crate) fn pcmu_tone(freq: f64, seconds: f64) -> Vec<Vec<u8>> {
    let pcm = sine(freq, 8000, (8000.0 * seconds) as usize, 8000.0);
    pcm.chunks(160)
        .map(|c| {
            c.iter()
                .map(|&s| peercam_rtp::g711::ulaw_encode(s))
                .collect()
        })
        .collect()
}

/// The speaker file's samples (8 kHz), or none when it does not exist.
pub(crate) fn speaker(path: &Path) -> Vec<i16> {
    if !path.exists() {
        return Vec::new();
    }
    let (rate, pcm) = read_wav(path).expect("the speaker file is a WAV");
    assert_eq!(rate, 8000);
    pcm
}
