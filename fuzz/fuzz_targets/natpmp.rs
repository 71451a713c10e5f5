//! `peercam_portmap::natpmp` and `pcp`'s view of NAT-PMP answers on arbitrary bytes.
//!
//! Never panics. What decodes re-encodes to bytes that decode to the same message
//! (requests and responses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_portmap::natpmp::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::decode(data) {
        assert_eq!(Request::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = Response::decode(data) {
        assert_eq!(Response::decode(&r.encode()), Ok(r));
    }
});
