//! `peercam_ice::Candidate`: any text as an ICE candidate line (RFC 8839 5.1), the form
//! the platform signalling carries.
//!
//! Never panics. What parses prints to a line of at most 512 bytes that parses to an
//! equal candidate, and printing is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_ice::Candidate;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = s.parse::<Candidate>() else {
        return;
    };
    let line = c.to_string();
    assert!(line.len() <= 512, "printed line too long");
    let again: Candidate = line.parse().expect("a printed candidate parses");
    assert_eq!(again, c);
    assert_eq!(again.to_string(), line);
});
