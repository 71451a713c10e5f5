//! The RTSP stream parser on arbitrary bytes.
//!
//! Input: the bytes of a connection, parsed item by item as a server would.
//!
//! Oracles besides "never panics":
//! * an item consumes at least one byte and no more than the buffer holds; an error's
//!   position lies inside the buffer;
//! * every strict prefix of an item's bytes is `Ok(None)` (a message is never recognised
//!   early, and a valid message's prefix never looks invalid);
//! * `parse(serialize(item)) == item`, consuming exactly the serialized bytes, and
//!   serialization is a fixed point;
//! * the typed headers that parse (`CSeq`, `Session`, `Transport`, `Range`, `RTP-Info`,
//!   `Content-Length`) format back to text that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_rtsp::msg::{Headers, RtpInfo, SessionHeader, Transport};
use peercam_rtsp::parse::{Limits, Parsed, parse_with};

fn check_headers(h: &Headers) {
    let _ = h.cseq();
    let _ = h.content_length();
    let _ = h.public();
    let _ = h.accept();
    if let Ok(Some(s)) = h.session() {
        assert_eq!(SessionHeader::parse(&s.to_string()), Ok(s));
    }
    if let Ok(Some(list)) = h.transport() {
        let text = Transport::format_list(&list);
        assert_eq!(Transport::parse_list(&text), Ok(list), "{text}");
    }
    if let Ok(Some(r)) = h.range() {
        let text = r.to_string();
        assert_eq!(peercam_rtsp::msg::Range::parse(&text), Ok(r), "{text}");
    }
    if let Ok(Some(list)) = h.rtp_info() {
        let text = RtpInfo::format_list(&list);
        assert_eq!(RtpInfo::parse_list(&text), Ok(list), "{text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut at = 0;
    while at < data.len() {
        let buf = &data[at..];
        match parse_with(buf, &limits) {
            Ok(Some((item, n))) => {
                assert!(n > 0 && n <= buf.len());
                for cut in [0, n / 2, n - 1] {
                    assert_eq!(
                        parse_with(&buf[..cut], &limits),
                        Ok(None),
                        "prefix {cut} of {n}"
                    );
                }
                let bytes = item.serialize();
                let (again, m) = parse_with(&bytes, &limits)
                    .expect("serialized item parses")
                    .expect("serialized item is complete");
                assert_eq!(m, bytes.len());
                assert_eq!(again, item);
                assert_eq!(again.serialize(), bytes);
                match &item {
                    Parsed::Request(r) => check_headers(&r.headers),
                    Parsed::Response(r) => check_headers(&r.headers),
                    Parsed::Interleaved(_) => {}
                }
                at += n;
            }
            Ok(None) => break,
            Err(e) => {
                assert!(e.pos() <= buf.len(), "{e} beyond {} bytes", buf.len());
                break;
            }
        }
    }
});
