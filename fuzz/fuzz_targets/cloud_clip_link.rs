//! Shared clip links (`peercam_cloud::clip`, H.626.4 8.7.1, issue 17 item 9) on arbitrary
//! text: parsing never panics, and a path or share id that parses prints back to exactly
//! the text it was read from (one spelling; no path trick reaches the CMU's lookup).
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_cloud::clip::{ShareId, check_request, link_path, parse_link};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((id, part)) = parse_link(&text) {
        assert_eq!(link_path(&id, part), text);
    }
    if let Ok(id) = text.parse::<ShareId>() {
        assert_eq!(id.to_string(), text);
        assert_eq!(ShareId::from_bytes(id.bytes()), id);
    }
    if data.len() >= 24 {
        let w = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap_or([0; 8]));
        if let Ok(life) = check_request(w(0), w(8), Some(w(16)), None) {
            assert!(w(8) > w(0) && w(8) - w(0) <= peercam_cloud::clip::MAX_CLIP_MS);
            assert_eq!(life, w(16));
        }
    }
});
