//! `peercam_rtp::packet`: any bytes as one RTP packet.
//!
//! Never panics. What parses writes back to exactly the input, except that padding bytes
//! before the count are written as zero; writing without the extension keeps every other
//! field. Parsing agrees with `looks_like_rtcp` on nothing in particular, but neither panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_rtp::packet::{RtpPacket, looks_like_rtcp};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_rtcp(data);
    let Ok(p) = RtpPacket::parse(data) else {
        return;
    };
    assert!(
        p.payload().len() + p.header().encoded_len() + usize::from(p.padding_len()) == data.len()
    );

    let mut out = Vec::new();
    p.write(&mut out).expect("a parsed packet writes");
    let mut want = data.to_vec();
    let pad = usize::from(p.padding_len());
    if pad > 0 {
        let len = want.len();
        want[len - pad..len - 1].fill(0);
    }
    assert_eq!(out, want, "write(parse(x)) differs from x");

    let again = RtpPacket::parse(&out).expect("written packet parses");
    assert_eq!(again, p);

    out.clear();
    p.write_without_extension(&mut out)
        .expect("writes without extension");
    let bare = RtpPacket::parse(&out).expect("bare packet parses");
    assert_eq!(bare.extension(), None);
    assert_eq!(bare.padding_len(), 0);
    assert_eq!(bare.payload(), p.payload());
    assert_eq!(
        (
            bare.marker(),
            bare.payload_type(),
            bare.sequence(),
            bare.timestamp(),
            bare.ssrc()
        ),
        (
            p.marker(),
            p.payload_type(),
            p.sequence(),
            p.timestamp(),
            p.ssrc()
        )
    );
    assert_eq!(bare.csrcs(), p.csrcs());
});
