//! Tests of the RTCP codec: hand-laid vectors from RFC 3550 6.4-6.6 and round trips.

use proptest::prelude::*;

use super::*;

/// SR + SDES(CNAME "cam1") + BYE, laid out by hand from RFC 3550 6.4.1, 6.5.1 and 6.6.
const SR_SDES_BYE: [u8; 52] = [
    0x80, 200, 0x00, 0x06, // V=2, RC=0, SR, 7 words
    0x01, 0x02, 0x03, 0x04, // SSRC
    0xe1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, // NTP
    0x00, 0x00, 0x10, 0x00, // RTP timestamp
    0x00, 0x00, 0x00, 0x0a, // packets
    0x00, 0x00, 0x03, 0xe8, // octets
    0x81, 202, 0x00, 0x03, // V=2, SC=1, SDES, 4 words
    0x01, 0x02, 0x03, 0x04, // chunk SSRC
    0x01, 0x04, b'c', b'a', b'm', b'1', 0x00, 0x00, // CNAME "cam1", end, pad
    0x81, 203, 0x00, 0x01, // V=2, SC=1, BYE, 2 words
    0x01, 0x02, 0x03, 0x04, // SSRC
];

/// RR with one report block whose cumulative loss is -1 (duplicates).
const RR: [u8; 32] = [
    0x81, 201, 0x00, 0x07, // V=2, RC=1, RR, 8 words
    0xaa, 0xbb, 0xcc, 0xdd, // reporter
    0x01, 0x02, 0x03, 0x04, // source
    0x40, 0xff, 0xff, 0xff, // fraction 64/256, cumulative -1
    0x00, 0x01, 0x00, 0x05, // cycles 1, highest 5
    0x00, 0x00, 0x00, 0x20, // jitter
    0x23, 0x45, 0x67, 0x89, // LSR
    0x00, 0x01, 0x80, 0x00, // DLSR 1.5 s
];

#[test]
fn parses_hand_laid_compound() {
    let packets = parse_compound(&SR_SDES_BYE).unwrap();
    assert_eq!(
        packets,
        [
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 0x0102_0304,
                sender_info: SenderInfo {
                    ntp_timestamp: NtpTimestamp(0xe123_4567_89ab_cdef),
                    rtp_timestamp: 0x1000,
                    packet_count: 10,
                    octet_count: 1000,
                },
                reports: vec![],
                extension: &[],
            }),
            RtcpPacket::SourceDescription(vec![SdesChunk::cname(0x0102_0304, b"cam1")]),
            RtcpPacket::Bye(Bye {
                sources: vec![0x0102_0304],
                reason: None,
            }),
        ]
    );
    let mut out = Vec::new();
    write_compound(&packets, &mut out).unwrap();
    assert_eq!(out, SR_SDES_BYE);
}

#[test]
fn parses_report_block() {
    let (p, len) = RtcpPacket::parse(&RR).unwrap();
    assert_eq!(len, 32);
    let RtcpPacket::ReceiverReport(rr) = &p else {
        panic!("not an RR: {p:?}");
    };
    assert_eq!(rr.ssrc, 0xaabb_ccdd);
    assert_eq!(
        rr.reports,
        [ReportBlock {
            ssrc: 0x0102_0304,
            fraction_lost: 64,
            cumulative_lost: -1,
            highest_sequence: 0x0001_0005,
            jitter: 32,
            last_sr: 0x2345_6789,
            delay_since_last_sr: 0x0001_8000,
        }]
    );
    let mut out = Vec::new();
    p.write(&mut out).unwrap();
    assert_eq!(out, RR);
}

#[test]
fn keeps_unknown_types_and_strips_padding() {
    // A PLI (RTCP-FB, PT 206, FMT 1) with 4 bytes of padding.
    let pli = [0xa1, 206, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4];
    let (p, len) = RtcpPacket::parse(&pli).unwrap();
    assert_eq!(len, 16);
    assert_eq!(
        p,
        RtcpPacket::Other(OtherPacket {
            packet_type: 206,
            count: 1,
            body: &[0, 0, 0, 1, 0, 0, 0, 2],
        })
    );
    let mut out = Vec::new();
    p.write(&mut out).unwrap();
    assert_eq!(out, [0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
}

#[test]
fn bye_with_reason() {
    let bye = RtcpPacket::Bye(Bye {
        sources: vec![7, 8],
        reason: Some(b"camera off"),
    });
    let mut out = Vec::new();
    bye.write(&mut out).unwrap();
    // 4 header + 8 sources + 1 length + 10 text = 23, padded to 24.
    assert_eq!(out.len(), 24);
    assert_eq!(&out[..4], &[0x82, 203, 0, 5]);
    assert_eq!(RtcpPacket::parse(&out).unwrap().0, bye);
}

#[test]
fn errors_name_the_offset() {
    assert!(matches!(
        parse_compound(&[]),
        Err(Error::Truncated { offset: 0, .. })
    ));
    // Second packet's length runs past the end.
    let mut cut = SR_SDES_BYE.to_vec();
    cut.truncate(50);
    let results: Vec<_> = iter(&cut).collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[1].is_ok());
    assert_eq!(
        results[2],
        Err(Error::Truncated {
            context: "RTCP packet",
            offset: 44,
            needed: 8,
            available: 6
        })
    );
    // Version 1 in the second packet.
    let mut v1 = SR_SDES_BYE;
    v1[28] = 0x41;
    assert_eq!(
        parse_compound(&v1),
        Err(Error::UnsupportedVersion {
            context: "RTCP header",
            offset: 28,
            version: 1
        })
    );
    // RC says 2 blocks but the packet holds one.
    let mut rc = RR;
    rc[0] = 0x82;
    assert_eq!(parse_compound(&rc).unwrap_err().offset(), Some(8));
    // SDES chunk without its end marker.
    let mut sdes = SR_SDES_BYE[28..44].to_vec();
    sdes[12..].copy_from_slice(&[b'1', 7, 7, 7]);
    assert!(matches!(
        parse_compound(&sdes),
        Err(Error::Truncated { .. })
    ));
    // Padding count of zero, and larger than the body.
    let mut pad = RR;
    pad[0] |= 0x20;
    pad[31] = 0;
    assert!(matches!(
        parse_compound(&pad),
        Err(Error::Malformed { offset: 31, .. })
    ));
    pad[31] = 29;
    assert!(parse_compound(&pad).is_err());
    pad[31] = 3;
    assert!(parse_compound(&pad).is_err());
    pad[31] = 4;
    assert!(matches!(
        parse_compound(&pad),
        Err(Error::Truncated { .. }) // the last report block lost 4 bytes to padding
    ));
}

#[test]
fn refuses_unrepresentable_packets() {
    let mut out = vec![9];
    let too_many = RtcpPacket::Bye(Bye {
        sources: vec![0; 32],
        reason: None,
    });
    assert!(!too_many.write(&mut out).unwrap_err().is_peer_fault());
    let long_item = RtcpPacket::SourceDescription(vec![SdesChunk::cname(1, &[b'x'; 256])]);
    assert!(long_item.write(&mut out).is_err());
    let end_item = RtcpPacket::SourceDescription(vec![SdesChunk {
        ssrc: 1,
        items: vec![SdesItem {
            kind: SdesType(0),
            value: b"",
        }],
    }]);
    assert!(end_item.write(&mut out).is_err());
    let loss = RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc: 1,
        reports: vec![ReportBlock {
            cumulative_lost: 1 << 23,
            ..ReportBlock::default()
        }],
        extension: &[],
    });
    assert!(loss.write(&mut out).is_err());
    let ragged = RtcpPacket::Other(OtherPacket {
        packet_type: 204,
        count: 0,
        body: &[1, 2, 3],
    });
    assert!(write_compound(&[RtcpPacket::Bye(Bye::default()), ragged], &mut out).is_err());
    assert_eq!(out, [9], "nothing appended on error");
}

#[test]
fn ntp_known_values() {
    assert_eq!(NtpTimestamp::from_unix_micros(0).0, 0x83aa_7e80_0000_0000);
    assert_eq!(NtpTimestamp(0x83aa_7e80_0000_0000).to_unix_micros(), 0);
    let half = NtpTimestamp::from_unix_micros(1_000_000_500_000);
    assert_eq!(half.fraction(), 0x8000_0000);
    assert_eq!(half.seconds(), 2_208_988_800 + 1_000_000);
    assert_eq!(half.middle_32(), ((half.0 >> 16) & 0xffff_ffff) as u32);
    // 2036-02-07T06:28:16Z is NTP era 1, second 0.
    let era1 = (4_294_967_296 - 2_208_988_800) * 1_000_000;
    assert_eq!(NtpTimestamp::from_unix_micros(era1).0, 0);
    assert_eq!(NtpTimestamp(0).to_unix_micros(), era1);
    // Before 1970 saturates.
    assert_eq!(NtpTimestamp(1 << 63).to_unix_micros(), 0);
}

fn bytes(max: usize) -> impl Strategy<Value = &'static [u8]> {
    proptest::collection::vec(any::<u8>(), 0..=max).prop_map(|v| &*v.leak())
}

fn words(max_words: usize) -> impl Strategy<Value = &'static [u8]> {
    proptest::collection::vec(any::<[u8; 4]>(), 0..=max_words).prop_map(|v| &*v.concat().leak())
}

fn report_block() -> impl Strategy<Value = ReportBlock> {
    (
        any::<(u32, u8, u32, u32, u32, u32)>(),
        -(1i32 << 23)..(1 << 23),
    )
        .prop_map(
            |((ssrc, fraction_lost, hi, jitter, lsr, dlsr), lost)| ReportBlock {
                ssrc,
                fraction_lost,
                cumulative_lost: lost,
                highest_sequence: hi,
                jitter,
                last_sr: lsr,
                delay_since_last_sr: dlsr,
            },
        )
}

fn packet() -> impl Strategy<Value = RtcpPacket<'static>> {
    let blocks = || proptest::collection::vec(report_block(), 0..=MAX_COUNT);
    let item = (1u8.., bytes(255)).prop_map(|(k, value)| SdesItem {
        kind: SdesType(k),
        value,
    });
    let chunk = (any::<u32>(), proptest::collection::vec(item, 0..4))
        .prop_map(|(ssrc, items)| SdesChunk { ssrc, items });
    prop_oneof![
        (any::<(u32, u64, u32, u32, u32)>(), blocks(), words(3)).prop_map(
            |((ssrc, ntp, rtp, pc, oc), reports, extension)| {
                RtcpPacket::SenderReport(SenderReport {
                    ssrc,
                    sender_info: SenderInfo {
                        ntp_timestamp: NtpTimestamp(ntp),
                        rtp_timestamp: rtp,
                        packet_count: pc,
                        octet_count: oc,
                    },
                    reports,
                    extension,
                })
            }
        ),
        (any::<u32>(), blocks(), words(3)).prop_map(|(ssrc, reports, extension)| {
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc,
                reports,
                extension,
            })
        }),
        proptest::collection::vec(chunk, 0..=MAX_COUNT).prop_map(RtcpPacket::SourceDescription),
        (
            proptest::collection::vec(any::<u32>(), 0..=MAX_COUNT),
            proptest::option::of(bytes(255))
        )
            .prop_map(|(sources, reason)| RtcpPacket::Bye(Bye { sources, reason })),
        (any::<u8>(), 0u8..32, words(8)).prop_filter_map(
            "modelled types",
            |(packet_type, count, body)| {
                (!(TYPE_SR..=TYPE_BYE).contains(&packet_type)).then_some(RtcpPacket::Other(
                    OtherPacket {
                        packet_type,
                        count,
                        body,
                    },
                ))
            }
        ),
    ]
}

proptest! {
    #[test]
    fn rtcp_round_trips(packets in proptest::collection::vec(packet(), 1..5)) {
        let mut buf = Vec::new();
        write_compound(&packets, &mut buf).unwrap();
        prop_assert_eq!(buf.len() % 4, 0);
        let parsed = parse_compound(&buf).unwrap();
        prop_assert_eq!(&parsed, &packets);
    }

    #[test]
    fn rtcp_parse_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        for p in iter(&buf).flatten() {
            let mut out = Vec::new();
            p.write(&mut out).unwrap();
            prop_assert_eq!(RtcpPacket::parse(&out).unwrap().0, p);
        }
    }

    #[test]
    fn rtcp_parse_never_panics_v2(mut buf in proptest::collection::vec(any::<u8>(), 4..200)) {
        buf[0] = (buf[0] & 0x3f) | 0x80;
        buf[2] = 0;
        let _ = parse_compound(&buf);
    }

    #[test]
    fn ntp_round_trips(us in 0..NtpTimestamp::UNIX_MICROS_LIMIT) {
        prop_assert_eq!(NtpTimestamp::from_unix_micros(us).to_unix_micros(), us);
    }

    #[test]
    fn ntp_is_monotonic(a in 0..NtpTimestamp::UNIX_MICROS_LIMIT / 2, d in 0u64..1_000_000) {
        let x = NtpTimestamp::from_unix_micros(a);
        let y = NtpTimestamp::from_unix_micros(a + d);
        // Within one era the 64-bit value orders like time.
        if (x.0 >> 63) == (y.0 >> 63) {
            prop_assert!(x <= y);
        }
    }
}
