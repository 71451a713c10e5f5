//! The `Range: bytes=` parser of cloud downloads (`peercam_cloud::range`, H.626.4 8.7.1) on
//! arbitrary text and lengths: it never panics, and a range it returns lies inside the body
//! and is not empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_cloud::range::byte_range;

fuzz_target!(|data: &[u8]| {
    let (len, text) = match data.split_first_chunk::<8>() {
        Some((l, rest)) => (u64::from_le_bytes(*l), rest),
        None => (0, data),
    };
    let text = String::from_utf8_lossy(text);
    if let Some(r) = byte_range(&text, len) {
        assert!(r.start < r.end && r.end <= len);
    }
});
