//! `peercam_rtp::aac::AacDepacketizer`: RTP `mpeg4-generic` (AAC-hbr, RFC 3640) payloads from
//! any bytes, as a camera (or a peer pretending to be one) sends them to the PU's pull.
//!
//! Input, repeated: `[len] [flags] payload(len bytes)`; flags bit 0 is the marker, bits 1-2
//! the sequence step minus 1 (a step over 1 is a loss), bit 3 moves to the next timestamp.
//! A record whose flags are 0xff ends the packets: the rest is read as an `a=fmtp:` value.
//!
//! Oracles besides "never panics": every packet is counted, malformed ones among them; every
//! access unit is non-empty and at most 8191 bytes; packetizing the units again and
//! depacketizing gives them back; a parsed configuration's fmtp parses to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_rtp::aac::{AacConfig, AacDepacketizer, AacPacketizer, MAX_ACCESS_UNIT};

fuzz_target!(|data: &[u8]| {
    let mut d = AacDepacketizer::new(1024);
    let mut rest = data;
    let (mut seq, mut ts) = (0xfffau16, 0u32);
    let (mut pushed, mut refused) = (0u64, 0u64);
    let mut units = Vec::new();
    while let [len, flags, tail @ ..] = rest {
        if *flags == 0xff {
            if let Ok(c) = AacConfig::from_fmtp(&String::from_utf8_lossy(tail)) {
                assert_eq!(AacConfig::from_fmtp(&c.fmtp()).expect("own fmtp"), c);
            }
            break;
        }
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        seq = seq.wrapping_add(u16::from((flags >> 1) & 3) + 1);
        if flags & 0x08 != 0 {
            ts = ts.wrapping_add(1024);
        }
        if d.push(seq, ts, flags & 1 != 0, payload).is_err() {
            refused += 1;
        }
        pushed += 1;
        units.extend(std::iter::from_fn(|| d.poll()));
    }
    let stats = d.stats();
    assert_eq!(stats.packets, pushed);
    assert_eq!(stats.malformed_packets, refused);
    assert_eq!(stats.access_units, units.len() as u64);
    for u in &units {
        assert!(!u.data.is_empty() && u.data.len() <= MAX_ACCESS_UNIT);
    }
    if units.is_empty() {
        return;
    }
    let aus: Vec<&[u8]> = units.iter().map(|u| u.data.as_slice()).collect();
    let payloads = AacPacketizer::new(5 + data.len() % 1400)
        .expect("valid size")
        .packetize(&aus, units[0].timestamp, 1024)
        .expect("units of valid size");
    let mut again = AacDepacketizer::new(1024);
    for (i, p) in payloads.iter().enumerate() {
        again
            .push(i as u16, p.timestamp, p.marker, &p.data)
            .expect("own payloads are well formed");
    }
    let back: Vec<Vec<u8>> = std::iter::from_fn(|| again.poll()).map(|f| f.data).collect();
    assert_eq!(back, aus);
});
