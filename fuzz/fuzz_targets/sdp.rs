//! The SDP parser and the camera description builder.
//!
//! Input: an SDP body as a player or camera might send it.
//!
//! Oracles besides "never panics":
//! * whatever parses prints back (`Display`) to text that parses to an equal description;
//! * the typed accessors (`rtpmap`, `fmtp`, `h264_parameter_sets`, `control`) never panic;
//! * `CameraSdp::from_description` followed by `build` reaches a fixed point after one
//!   round: building, parsing and reading back a read-back camera gives it back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_rtsp::sdp::{CameraSdp, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(sd) = SessionDescription::parse(data) else {
        return;
    };
    let text = sd.to_string();
    assert_eq!(
        SessionDescription::parse(text.as_bytes()).as_ref(),
        Ok(&sd),
        "{text}"
    );
    let _ = sd.control();
    for m in &sd.media {
        let _ = m.control();
        for pt in m.payload_types().take(16) {
            let _ = m.rtpmap(pt);
            let _ = m.fmtp(pt);
            let _ = m.h264_parameter_sets(pt);
        }
    }
    let Some(cam) = CameraSdp::from_description(&sd) else {
        return;
    };
    let once = SessionDescription::parse(cam.build().as_bytes()).expect("built SDP parses");
    let normalized = CameraSdp::from_description(&once).expect("built SDP reads back");
    let built = normalized.build();
    let twice = SessionDescription::parse(built.as_bytes()).expect("built SDP parses");
    assert_eq!(
        CameraSdp::from_description(&twice).as_ref(),
        Some(&normalized),
        "{built}"
    );
});
