//! Tests of the sender and receiver state.

use proptest::prelude::*;

use super::*;
use crate::packet::RtpPacket;
use crate::rtcp::{SdesItem, SdesType, parse_compound};

fn sender() -> RtpSender {
    RtpSender::new(SenderConfig {
        ssrc: 0x1234_5678,
        payload_type: 96,
        initial_sequence: 65_535,
        timestamp_offset: 0xffff_ff00,
    })
    .unwrap()
}

#[test]
fn numbers_and_counts_packets() {
    let mut s = sender();
    let mut out = Vec::new();
    let p = Payload {
        data: vec![0x65; 100],
        timestamp: 0x200,
        marker: true,
    };
    assert_eq!(s.write(&p, &mut out).unwrap(), 65_535);
    let first = out.len();
    assert_eq!(s.write_raw(&[1, 2, 3], 0x200, false, &mut out).unwrap(), 0);
    let a = RtpPacket::parse(&out[..first]).unwrap();
    let b = RtpPacket::parse(&out[first..]).unwrap();
    assert_eq!((a.sequence(), b.sequence()), (65_535, 0));
    assert_eq!(a.timestamp(), 0x100, "offset added, wrapping");
    assert!(a.marker() && !b.marker());
    assert_eq!((a.ssrc(), a.payload_type()), (0x1234_5678, 96));
    assert_eq!(a.payload(), &p.data[..]);
    assert_eq!((s.packet_count(), s.octet_count()), (2, 103));
    assert_eq!(s.next_sequence(), 1);
    assert_eq!(s.rtp_timestamp(0), 0xffff_ff00);
    assert!(
        RtpSender::new(SenderConfig {
            payload_type: 200,
            ..*s.config()
        })
        .is_err()
    );
}

#[test]
fn sender_report_compound() {
    let mut s = sender();
    s.write_raw(&[0; 10], 0, true, &mut Vec::new()).unwrap();
    let mut out = Vec::new();
    let now = 1_700_000_000_250_000;
    s.write_rtcp(now, 90_000, b"cam@peercam", &mut out).unwrap();
    let packets = parse_compound(&out).unwrap();
    assert_eq!(packets.len(), 2);
    let RtcpPacket::SenderReport(sr) = &packets[0] else {
        panic!("SR first: {packets:?}");
    };
    assert_eq!(sr.ssrc, 0x1234_5678);
    assert_eq!(sr.sender_info.ntp_timestamp.to_unix_micros(), now);
    assert_eq!(sr.sender_info.ntp_timestamp.fraction(), 0x4000_0000);
    assert_eq!(
        sr.sender_info.rtp_timestamp,
        90_000u32.wrapping_add(0xffff_ff00)
    );
    assert_eq!(
        (sr.sender_info.packet_count, sr.sender_info.octet_count),
        (1, 10)
    );
    assert_eq!(
        packets[1],
        RtcpPacket::SourceDescription(vec![SdesChunk {
            ssrc: 0x1234_5678,
            items: vec![SdesItem {
                kind: SdesType::CNAME,
                value: b"cam@peercam"
            }]
        }])
    );
    out.clear();
    s.write_bye(now, 0, b"cam", Some(b"teardown"), &mut out)
        .unwrap();
    let packets = parse_compound(&out).unwrap();
    assert_eq!(
        packets[2],
        RtcpPacket::Bye(Bye {
            sources: vec![0x1234_5678],
            reason: Some(b"teardown")
        })
    );
}

#[test]
fn sequence_extension_wraps_both_ways() {
    assert_eq!(extend_sequence(65_535, 0), 65_536);
    assert_eq!(extend_sequence(65_536, 65_535), 65_535);
    assert_eq!(extend_sequence(0x3_0005, 0x8004), 0x3_8004, "32767 ahead");
    assert_eq!(extend_sequence(0x3_0005, 0x8005), 0x2_8005, "32768 behind");
    assert_eq!(extend_sequence(5, 65_530), 65_530, "never negative");
    assert_eq!(extend_timestamp(u64::from(u32::MAX), 10), (1 << 32) + 10);
    assert_eq!(extend_timestamp(1 << 32, u32::MAX), u64::from(u32::MAX));
    let mut x = SequenceExtender::new();
    assert_eq!(x.extend(65_534), 131_070);
    assert_eq!(x.extend(65_533), 131_069);
    assert_eq!(x.extend(1), 131_073);
    assert_eq!(x.highest(), Some(131_073));
}

#[test]
fn receiver_report_block() {
    let mut r = ReceiverStats::new(42, 8000);
    // 20 ms packets arriving on time, sequence wrapping, two lost, one duplicate.
    let mut t = 1_000_000_000;
    for (i, seq) in [65_534u16, 65_535, 2, 3, 3, 4].into_iter().enumerate() {
        let ts = u32::from(seq.wrapping_sub(65_534)) * 160;
        r.on_rtp(seq, ts, t + i as u64 * 20_000);
    }
    t += 200_000;
    r.on_sender_report(
        &SenderInfo {
            ntp_timestamp: NtpTimestamp(0x0000_1234_5678_0000),
            ..SenderInfo::default()
        },
        t,
    );
    let block = r.report_block(t + 1_500_000);
    assert_eq!(r.expected(), 7);
    assert_eq!(r.received(), 6);
    assert_eq!(
        block,
        ReportBlock {
            ssrc: 42,
            fraction_lost: 36, // 1 lost of 7 expected, × 256
            cumulative_lost: 1,
            highest_sequence: 0x1_0004,
            jitter: r.jitter(),
            last_sr: 0x1234_5678,
            delay_since_last_sr: 0x1_8000,
        }
    );
    // A new interval with nothing lost.
    r.on_rtp(5, 7 * 160, t + 2_000_000);
    assert_eq!(r.report_block(t + 2_000_000).fraction_lost, 0);
}

#[test]
fn jitter_follows_rfc_3550_a8() {
    let mut r = ReceiverStats::new(1, 90_000);
    // Packets every 40 ms of media time, arriving alternately 10 ms early and late.
    for i in 0..200u64 {
        let skew = if i % 2 == 0 { 0 } else { 20_000 };
        r.on_rtp(i as u16, (i * 3600) as u32, i * 40_000 + skew);
    }
    // |D| is 1800 ticks every packet, so J converges to 1800.
    assert!((1790..=1800).contains(&r.jitter()), "{}", r.jitter());
}

proptest! {
    #[test]
    fn extender_tracks_any_walk(start in any::<u16>(), steps in proptest::collection::vec(-100i32..1000, 0..300)) {
        let mut x = SequenceExtender::new();
        let mut truth = (1i64 << 16) + i64::from(start);
        prop_assert_eq!(x.extend(start) as i64, truth);
        for s in steps {
            truth += i64::from(s);
            prop_assume!(truth >= 0);
            prop_assert_eq!(x.extend(truth as u16) as i64, truth);
        }
    }

    #[test]
    fn sender_sequence_is_consecutive(initial in any::<u16>(), n in 1usize..50) {
        let mut s = RtpSender::new(SenderConfig {
            ssrc: 1,
            payload_type: 0,
            initial_sequence: initial,
            timestamp_offset: 0,
        }).unwrap();
        let mut out = Vec::new();
        for k in 0..n {
            let seq = s.write_raw(&[0], k as u32 * 160, false, &mut out).unwrap();
            prop_assert_eq!(seq, initial.wrapping_add(k as u16));
        }
        prop_assert_eq!(s.packet_count() as usize, n);
    }
}
