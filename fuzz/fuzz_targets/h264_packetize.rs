//! `peercam_rtp::h264`'s packetizer and depacketizer, and `peercam_media::annexb`'s splitter
//! (the workspace's one), from any bytes.
//!
//! The first two bytes pick the payload size (3..=65523, biased small); the rest is read as
//! an Annex B byte stream. Splitting then joining then splitting again is a fixed point.
//! The NAL units found (those of types 1..=23) are one access unit: every payload is at most
//! the payload size, only the last has the marker, and depacketizing gives back exactly the
//! access unit, even when it starts at a sequence number about to wrap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_media::annexb::{join, split as split_annex_b};
use peercam_rtp::h264::{H264Depacketizer, H264Packetizer};

fuzz_target!(|data: &[u8]| {
    let [a, b, stream @ ..] = data else {
        return;
    };
    let raw = usize::from(u16::from_be_bytes([*a, *b]));
    let mtu = if raw & 0x8000 != 0 {
        3 + (raw & 0x7fff)
    } else {
        3 + (raw & 0x7f)
    };
    let packetizer = H264Packetizer::new(mtu).expect("valid size");

    let nals: Vec<&[u8]> = split_annex_b(stream).collect();
    let joined = join(&nals);
    let again: Vec<&[u8]> = split_annex_b(&joined).collect();
    assert_eq!(again, nals, "Annex B split/join is not a fixed point");

    let nals: Vec<&[u8]> = nals
        .into_iter()
        .filter(|n| (1..=23).contains(&(n[0] & 0x1f)))
        .collect();
    let ts = (u32::from(*a) << 24) | u32::from(*b);
    let Ok(payloads) = packetizer.packetize(&nals, ts) else {
        assert!(nals.is_empty());
        return;
    };
    assert!(
        payloads
            .iter()
            .all(|p| p.data.len() <= mtu && p.timestamp == ts)
    );
    assert!(payloads.last().is_some_and(|p| p.marker));
    assert!(payloads.iter().rev().skip(1).all(|p| !p.marker));

    let mut d = H264Depacketizer::with_max_access_unit(usize::MAX);
    for (i, p) in payloads.iter().enumerate() {
        d.push_payload(
            0xfffe_u16.wrapping_add(i as u16),
            p.timestamp,
            p.marker,
            &p.data,
        )
        .expect("own payloads are well formed");
    }
    let au = d.poll().expect("one access unit");
    assert_eq!(au.timestamp, ts);
    assert!(!au.after_loss);
    assert_eq!(au.nals.len(), nals.len());
    assert!(au.nals.iter().zip(&nals).all(|(x, y)| x == y));
    assert!(d.poll().is_none());
});
