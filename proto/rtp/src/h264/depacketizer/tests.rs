//! Tests of the H.264 depacketizer, alone and behind the packetizer.

use proptest::prelude::*;

use super::*;
use crate::Payload;
use crate::h264::H264Packetizer;

/// Pushes `payloads` with consecutive sequence numbers from `seq`; returns the errors.
fn feed(d: &mut H264Depacketizer, seq: u16, payloads: &[Payload]) -> Vec<Error> {
    payloads
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            d.push_payload(seq.wrapping_add(i as u16), p.timestamp, p.marker, &p.data)
                .err()
        })
        .collect()
}

fn drain(d: &mut H264Depacketizer) -> Vec<AccessUnit> {
    std::iter::from_fn(|| d.poll()).collect()
}

fn au(nals: &[&[u8]]) -> Vec<Vec<u8>> {
    nals.iter().map(|n| n.to_vec()).collect()
}

#[test]
fn rebuilds_single_stap_a_and_fu_a() {
    let mut d = H264Depacketizer::new();
    let payloads = [
        (0, false, vec![0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68]), // STAP-A: SPS, PPS
        (0, false, vec![0x06, 0x05]),                         // SEI alone
        (0, false, vec![0x7c, 0x85, 1, 2]),                   // FU-A start of IDR
        (0, false, vec![0x7c, 0x05, 3]),                      // middle
        (0, true, vec![0x7c, 0x45, 4]),                       // end, marker
    ];
    for (i, (ts, marker, data)) in payloads.iter().enumerate() {
        d.push_payload(100 + i as u16, *ts, *marker, data).unwrap();
    }
    let got = drain(&mut d);
    assert_eq!(
        got,
        [AccessUnit {
            timestamp: 0,
            nals: au(&[&[0x67, 0x42], &[0x68], &[0x06, 0x05], &[0x65, 1, 2, 3, 4]]),
            after_loss: false,
        }]
    );
    assert_eq!(d.stats().access_units, 1);
    assert_eq!(d.stats().packets, 5);
}

#[test]
fn drops_access_units_touched_by_loss() {
    let pk = H264Packetizer::new(100).unwrap();
    let big = [0x65; 450];
    let au1 = pk.packetize(&[&big[..]], 0).unwrap();
    let au2 = pk.packetize(&[&[0x41; 50][..]], 3000).unwrap();
    let au3 = pk.packetize(&[&[0x41; 60][..]], 6000).unwrap();
    assert_eq!(au1.len(), 5);
    let mut d = H264Depacketizer::new();
    // Lose the third fragment of AU 1.
    feed(&mut d, 65_534, &au1[..2]);
    feed(&mut d, 1, &au1[3..]);
    feed(&mut d, 3, &au2);
    feed(&mut d, 4, &au3);
    // The gap fell inside AU 1 (the packet after it has AU 1's timestamp), so AU 2 is
    // intact: delivered, flagged.
    assert_eq!(d.stats().lost_packets, 1);
    assert_eq!(d.stats().dropped_access_units, 1);
    let got = drain(&mut d);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].timestamp, 3000);
    assert!(got[0].after_loss);
    assert_eq!(got[1].timestamp, 6000);
    assert!(!got[1].after_loss);
}

#[test]
fn loss_across_a_boundary_drops_both_sides() {
    let pk = H264Packetizer::new(100).unwrap();
    let au1 = pk.packetize(&[&[0x65; 150][..]], 0).unwrap();
    let au2 = pk.packetize(&[&[0x41; 150][..]], 3000).unwrap();
    let au3 = pk.packetize(&[&[0x41; 10][..]], 6000).unwrap();
    let mut d = H264Depacketizer::new();
    // Lose AU 1's last packet (the marker) and AU 2's first.
    feed(&mut d, 10, &au1[..1]);
    feed(&mut d, 13, &au2[1..]);
    feed(&mut d, 14, &au3);
    let got = drain(&mut d);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].timestamp, 6000);
    assert!(got[0].after_loss);
    assert_eq!(d.stats().lost_packets, 2);
    assert_eq!(d.stats().dropped_access_units, 2);
}

#[test]
fn ignores_late_and_duplicate_packets() {
    let mut d = H264Depacketizer::new();
    d.push_payload(5, 0, false, &[0x67]).unwrap();
    d.push_payload(5, 0, false, &[0x67]).unwrap();
    d.push_payload(4, 0, false, &[0x68]).unwrap();
    d.push_payload(6, 0, true, &[0x65]).unwrap();
    assert_eq!(drain(&mut d)[0].nals, au(&[&[0x67], &[0x65]]));
    assert_eq!(d.stats().late_packets, 2);
}

#[test]
fn follows_a_restarted_sequence() {
    let mut d = H264Depacketizer::new();
    d.push_payload(5000, 0, true, &[0x65, 1]).unwrap();
    // Far behind: late, until a second packet confirms the new sequence.
    d.push_payload(10, 3000, false, &[0x41, 2]).unwrap();
    d.push_payload(11, 3000, true, &[0x41, 3]).unwrap();
    d.push_payload(12, 6000, true, &[0x41, 4]).unwrap();
    let aus = drain(&mut d);
    assert_eq!(aus.len(), 2, "{aus:?}");
    assert_eq!((aus[1].timestamp, aus[1].after_loss), (6000, true));
    assert_eq!(d.stats().late_packets, 1);
    // A single stray old packet changes nothing.
    d.push_payload(7, 9000, true, &[0x41, 5]).unwrap();
    d.push_payload(13, 9000, true, &[0x41, 6]).unwrap();
    assert_eq!(drain(&mut d)[0].nals, [vec![0x41, 6]]);
}

#[test]
fn timestamp_change_ends_an_access_unit_without_marker() {
    let mut d = H264Depacketizer::new();
    d.push_payload(0, 0, false, &[0x65, 1]).unwrap();
    d.push_payload(1, 3000, false, &[0x41, 2]).unwrap();
    assert_eq!(drain(&mut d)[0].nals, au(&[&[0x65, 1]]));
    d.flush();
    assert_eq!(drain(&mut d)[0].timestamp, 3000);
    d.flush();
    assert_eq!(d.poll(), None);
}

#[test]
fn malformed_payloads_are_errors_not_over_reads() {
    let cases: &[(&[u8], Error)] = &[
        (
            &[],
            Error::Truncated {
                context: "H.264 payload header",
                offset: 0,
                needed: 1,
                available: 0,
            },
        ),
        // STAP-A whose second unit claims 9 bytes with 2 left.
        (
            &[0x78, 0, 1, 0x67, 0, 9, 0x68, 0xce],
            Error::Truncated {
                context: "STAP-A NAL unit",
                offset: 6,
                needed: 9,
                available: 2,
            },
        ),
        // STAP-A with half a size field at the end.
        (
            &[0x78, 0, 1, 0x67, 0],
            Error::Truncated {
                context: "STAP-A NAL unit size",
                offset: 4,
                needed: 2,
                available: 1,
            },
        ),
        (&[0x78], malformed("STAP-A", 0, "no NAL units")),
        (
            &[0x78, 0, 1, 0x67, 0, 2, 0x7c, 0x85],
            malformed("STAP-A", 6, "NAL unit type outside 1..=23"),
        ),
        (
            &[0x78, 0, 0],
            malformed("STAP-A", 1, "NAL unit of size zero"),
        ),
        (
            &[0x7c],
            Error::Truncated {
                context: "FU-A header",
                offset: 1,
                needed: 1,
                available: 0,
            },
        ),
        (
            &[0x7c, 0xc5, 1],
            malformed("FU-A", 1, "start and end bits both set"),
        ),
        (
            &[0x7c, 0x05, 1],
            malformed("FU-A", 1, "continuation without a start"),
        ),
        (
            &[0x7c, 0x9c, 1],
            malformed("FU-A", 1, "NAL unit type outside 1..=23"),
        ),
        (
            &[0x19, 0, 0],
            malformed(
                "H.264 payload header",
                0,
                "NAL unit type not allowed in packetization mode 1",
            ),
        ),
    ];
    for (i, (payload, want)) in cases.iter().enumerate() {
        let mut d = H264Depacketizer::new();
        let got = d.push_payload(0, 0, true, payload);
        assert_eq!(got.as_ref(), Err(want), "case {i}");
        // The depacketizer carries on with the next access unit.
        d.push_payload(1, 3000, true, &[0x65, 7]).unwrap();
        let aus = drain(&mut d);
        assert_eq!(aus.len(), 1, "case {i}");
        assert!(aus[0].after_loss);
    }
}

#[test]
fn fragment_rules() {
    let mut d = H264Depacketizer::new();
    d.push_payload(0, 0, false, &[0x7c, 0x85, 1]).unwrap();
    // A single NAL unit in the middle of a fragmented one.
    assert!(d.push_payload(1, 0, false, &[0x41]).is_err());
    let mut d = H264Depacketizer::new();
    d.push_payload(0, 0, false, &[0x7c, 0x85, 1]).unwrap();
    assert!(d.push_payload(1, 0, false, &[0x7c, 0x81, 1]).is_err());
    let mut d = H264Depacketizer::new();
    d.push_payload(0, 0, false, &[0x7c, 0x85, 1]).unwrap();
    assert!(d.push_payload(1, 0, false, &[0x7c, 0x01, 1]).is_err());
    // Marker with the fragmented unit unfinished: dropped.
    let mut d = H264Depacketizer::new();
    d.push_payload(0, 0, false, &[0x7c, 0x85, 1]).unwrap();
    d.push_payload(1, 0, true, &[0x7c, 0x05, 2]).unwrap();
    assert_eq!(d.poll(), None);
    assert_eq!(d.stats().dropped_access_units, 1);
}

#[test]
fn bounds_access_unit_size() {
    let mut d = H264Depacketizer::with_max_access_unit(10);
    d.push_payload(0, 0, false, &[0x41; 6]).unwrap();
    assert_eq!(
        d.push_payload(1, 0, false, &[0x41; 5]),
        Err(Error::TooLarge {
            context: "H.264 access unit",
            limit: 10
        })
    );
    d.push_payload(2, 0, true, &[0x41; 2]).unwrap();
    d.push_payload(3, 1, false, &[0x7c, 0x85, 1, 2, 3, 4, 5, 6, 7])
        .unwrap();
    assert!(d.push_payload(4, 1, true, &[0x7c, 0x45, 1, 2, 3]).is_err());
    d.push_payload(5, 2, true, &[0x41; 10]).unwrap();
    let aus = drain(&mut d);
    assert_eq!(aus.len(), 1);
    assert_eq!(aus[0].timestamp, 2);
}

/// A NAL unit of a random type in 1..=23 and random NRI, `len` bytes long.
fn nal(len: usize) -> impl Strategy<Value = Vec<u8>> {
    (1u8..=23, 0u8..4, any::<u8>()).prop_map(move |(kind, nri, fill)| {
        let mut v = vec![fill; len];
        v[0] = (nri << 5) | kind;
        if len > 1 {
            v[len - 1] = fill.wrapping_add(1);
        }
        v
    })
}

fn case() -> impl Strategy<Value = (usize, Vec<Vec<u8>>)> {
    prop_oneof![3usize..=40, 41usize..=1500, Just(1200)].prop_flat_map(|mtu| {
        let size = prop_oneof![
            6 => 1usize..=8,
            3 => 1usize..=3000,
            2 => Just(mtu),
            1 => Just(mtu + 1),
            1 => Just(mtu - 2),
            1 => Just(100 * 1024),
        ];
        let nals = proptest::collection::vec(size.prop_flat_map(nal), 1..8);
        (Just(mtu), nals)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn packetize_then_depacketize_is_identity(
        (mtu, nals) in case(),
        ts in any::<u32>(),
        seq in any::<u16>(),
    ) {
        let pk = H264Packetizer::new(mtu).unwrap();
        let payloads = pk.packetize(&nals, ts).unwrap();
        prop_assert!(payloads.iter().all(|p| p.data.len() <= mtu && p.timestamp == ts));
        prop_assert!(payloads.iter().rev().skip(1).all(|p| !p.marker));
        prop_assert!(payloads.last().is_some_and(|p| p.marker));
        let mut d = H264Depacketizer::new();
        prop_assert_eq!(feed(&mut d, seq, &payloads), []);
        prop_assert_eq!(
            drain(&mut d),
            [AccessUnit { timestamp: ts, nals: nals.clone(), after_loss: false }]
        );
        // The same access unit twice more, as a stream.
        let next = pk.packetize(&nals, ts.wrapping_add(3000)).unwrap();
        let seq2 = seq.wrapping_add(payloads.len() as u16);
        prop_assert_eq!(feed(&mut d, seq2, &next), []);
        prop_assert_eq!(drain(&mut d).len(), 1);
    }

    #[test]
    fn depacketizer_never_panics(
        packets in proptest::collection::vec(
            (0u16..6, 0u32..3, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..20)),
            0..40,
        ),
    ) {
        let mut d = H264Depacketizer::with_max_access_unit(64);
        let mut seq = 0u16;
        for (step, ts, marker, mut payload) in packets {
            // Bias towards the payload structures.
            if let Some(h) = payload.first_mut() {
                *h = match *h % 4 { 0 => 0x78, 1 => 0x7c, _ => *h };
            }
            seq = seq.wrapping_add(step).wrapping_sub(1);
            let _ = d.push_payload(seq, ts, marker, &payload);
            while let Some(au) = d.poll() {
                prop_assert!(!au.nals.is_empty());
                prop_assert!(au.nals.iter().all(|n| !n.is_empty()));
                prop_assert!(au.nals.iter().map(Vec::len).sum::<usize>() <= 64);
            }
        }
    }
}
