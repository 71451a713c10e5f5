//! H.626.4 8.7.1 upload objects (`peercam_cloud::object`, `PCO1`) on arbitrary bytes.
//!
//! Decoding never panics. Whatever decodes re-encodes to exactly the same bytes (one
//! spelling per object, so a retry has the same SHA-256), its summary agrees with its
//! length and segments, and it has a key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_cloud::object::{MAX_OBJECT, MAX_SPAN_90K, Object};

fuzz_target!(|data: &[u8]| {
    let Ok((obj, sum)) = Object::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_OBJECT);
    assert_eq!(obj.encode().expect("a decoded object encodes"), data);
    assert_eq!(sum.encoded_len, data.len());
    assert_eq!(sum.segment_frames.len(), obj.segments.len());
    assert_eq!(sum.frames, sum.segment_frames.iter().sum::<u32>());
    assert!(sum.segment_frames.iter().all(|f| *f >= 1));
    assert!(sum.end_90k - sum.start_90k <= MAX_SPAN_90K);
    let key = obj.key().expect("a decoded object has a key");
    assert_eq!(key.start_ms(), sum.start_ms());
    assert_eq!(key.to_string().parse(), Ok(key));
});
