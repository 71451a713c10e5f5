//! Trickle ICE bodies (issue 20, RFC 8838): what a browser sends to
//! `POST /api/v1/devices/{id}/webrtc/{session}/candidates`, checked by the CMU before it goes
//! to the camera.
//!
//! Parsing arbitrary bytes never panics; whatever is accepted respects the limits, and
//! encodes back to a body that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signal::trickle::{MAX_BODY, MAX_CANDIDATE_LEN, MAX_CANDIDATES, encode, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(t) = parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_BODY);
    assert!(t.candidates.len() <= MAX_CANDIDATES);
    assert!(t.end || !t.candidates.is_empty());
    for c in &t.candidates {
        assert!(c.len() <= MAX_CANDIDATE_LEN && c.starts_with("candidate:"));
        assert!(!c.contains(['\r', '\n']));
    }
    assert_eq!(parse(&encode(&t)).ok(), Some(t));
});
