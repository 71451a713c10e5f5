//! `peercam_rtp::rtcp`: any bytes as one compound RTCP packet.
//!
//! Never panics; the iterator stops after its first error. Every packet that parses writes
//! back to bytes that parse to an equal packet, and writing is then a fixed point. Byte
//! offsets in errors lie within the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_rtp::rtcp::{self, RtcpPacket};

fuzz_target!(|data: &[u8]| {
    let mut parsed = Vec::new();
    let mut failed = false;
    for item in rtcp::iter(data) {
        assert!(!failed, "iterator continued after an error");
        match item {
            Ok(p) => parsed.push(p),
            Err(e) => {
                assert!(e.is_peer_fault());
                if let Some(offset) = e.offset() {
                    assert!(offset <= data.len(), "offset {offset} past {}", data.len());
                }
                failed = true;
            }
        }
    }
    assert_eq!(
        rtcp::parse_compound(data).is_ok(),
        !failed && !data.is_empty()
    );

    for p in &parsed {
        let mut one = Vec::new();
        p.write(&mut one).expect("a parsed packet writes");
        let (back, len) = RtcpPacket::parse(&one).expect("written packet parses");
        assert_eq!(len, one.len());
        assert_eq!(&back, p);
    }

    let mut out = Vec::new();
    rtcp::write_compound(&parsed, &mut out).expect("parsed packets write");
    let again = rtcp::parse_compound(&out);
    if parsed.is_empty() {
        assert!(out.is_empty());
        return;
    }
    let again = again.expect("written compound parses");
    assert_eq!(again, parsed);
    let mut fixed = Vec::new();
    rtcp::write_compound(&again, &mut fixed).expect("writes again");
    assert_eq!(fixed, out, "writing is not a fixed point");
});
