//! `peercam_rtp::h264::H264Depacketizer`: a sequence of RTP payloads from any bytes.
//!
//! Input format, repeated: `[len] [flags] payload(len bytes)`, where flags bit 0 is the
//! marker, bits 1-3 the sequence step minus 1 (0 is in order, 7 skips seven packets), bits
//! 5-7 all set make it a step back of 37 × (step + 1) (a late packet, or past 100 a restart
//! of the sequence), and bit 4 moves to the next timestamp. Never panics and never holds more
//! than its access-unit limit; every access unit it returns has non-empty NAL units of types
//! 1..=23, and packetizing it again and depacketizing gives it back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_rtp::h264::{H264Depacketizer, H264Packetizer};

const LIMIT: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut d = H264Depacketizer::with_max_access_unit(LIMIT);
    let mut rest = data;
    let (mut seq, mut ts) = (0xfff0u16, 0u32);
    let mut pushed = 0u64;
    let mut units = Vec::new();
    while let [len, flags, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let step = u16::from((flags >> 1) & 7);
        seq = if flags & 0xe0 == 0xe0 {
            // Back 37..=296: late packets, and far enough to look like a restart.
            seq.wrapping_sub((step + 1) * 37)
        } else {
            seq.wrapping_add(step + 1)
        };
        if flags & 0x10 != 0 {
            ts = ts.wrapping_add(3000);
        }
        // The relay's key-frame test reads the same payloads: total, no panic.
        let _ = peercam_rtp::h264::starts_key_frame(payload);
        let result = d.push_payload(seq, ts, flags & 1 != 0, payload);
        if let Err(e) = result {
            assert!(e.is_peer_fault());
            if let Some(offset) = e.offset() {
                assert!(offset <= payload.len());
            }
        }
        pushed += 1;
        while let Some(au) = d.poll() {
            units.push(au);
        }
    }
    d.flush();
    units.extend(std::iter::from_fn(|| d.poll()));

    let stats = d.stats();
    assert_eq!(stats.packets, pushed);
    assert_eq!(stats.access_units, units.len() as u64);
    let packetizer = H264Packetizer::new(3 + data.len() % 1400).expect("valid size");
    for au in units {
        assert!(!au.nals.is_empty());
        assert!(au.nals.iter().map(Vec::len).sum::<usize>() <= LIMIT);
        for nal in &au.nals {
            assert!(!nal.is_empty());
            assert!(
                (1..=23).contains(&(nal[0] & 0x1f)),
                "NAL type {}",
                nal[0] & 0x1f
            );
        }
        let payloads = packetizer
            .packetize(&au.nals, au.timestamp)
            .expect("packetizes");
        let mut again = H264Depacketizer::new();
        for (i, p) in payloads.iter().enumerate() {
            again
                .push_payload(i as u16, p.timestamp, p.marker, &p.data)
                .expect("own payloads are well formed");
        }
        if matches!(au.nals[0][0] & 0x1f, 5 | 7) {
            assert!(peercam_rtp::h264::starts_key_frame(&payloads[0].data));
        }
        let back = again.poll().expect("one access unit");
        assert_eq!(back.nals, au.nals);
        assert_eq!(back.timestamp, au.timestamp);
        assert!(again.poll().is_none());
    }
});
