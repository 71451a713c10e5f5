//! The segment sample index of `peercam-record` (docs/security.md F9) on arbitrary bytes.
//!
//! Decoding never panics; whatever decodes re-encodes to exactly the same bytes (one
//! spelling per index), offsets are the running sum of sizes, and a wrong data length is
//! refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_record::index::{IndexEncoder, decode};

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = decode(data, None) else {
        return;
    };
    let mut enc = IndexEncoder::new();
    let mut offset = 0u64;
    for e in &entries {
        assert_eq!(e.offset, offset);
        offset += u64::from(e.sample.size);
        enc.push(e.sample).expect("a decoded sample re-encodes");
    }
    assert_eq!(enc.as_bytes(), data);
    assert_eq!(enc.data_len(), offset);
    assert!(decode(data, Some(offset)).is_ok());
    if !entries.is_empty() {
        assert!(decode(data, Some(offset + 1)).is_err());
    }
});
