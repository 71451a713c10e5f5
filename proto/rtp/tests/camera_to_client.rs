//! A camera and a client in one thread, in virtual time, over a lossy emulated network:
//! H.264 and G.711 out through `RtpSender`, datagrams dropped by a seeded generator, RTP
//! parsed and depacketized, reports exchanged both ways.

use peercam_rtp::g711::{AudioCodec, Packetizer};
use peercam_rtp::h264::{AccessUnit, H264Depacketizer, H264Packetizer};
use peercam_rtp::rtcp::{self, ReceiverReport, RtcpPacket};
use peercam_rtp::{ReceiverStats, RtpPacket, RtpSender, SenderConfig};

/// A small deterministic generator (xorshift64*), standing in for the caller's RNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A synthetic 25 fps stream: an IDR with SPS/PPS/SEI every 10 frames, P slices between.
fn access_unit(frame: u32, rng: &mut Rng) -> Vec<Vec<u8>> {
    fn slice(header: u8, len: usize, rng: &mut Rng) -> Vec<u8> {
        let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        v[0] = header;
        v
    }
    if frame.is_multiple_of(10) {
        vec![
            vec![0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8],
            vec![0x68, 0xce, 0x3c, 0x80],
            vec![0x06, 0x05, 0x10, 0xaa, 0x80],
            slice(0x65, 30_000, rng),
        ]
    } else {
        let len = 200 + (rng.next() % 3000) as usize;
        vec![slice(0x41, len, rng)]
    }
}

const VIDEO_SSRC: u32 = 0x0bad_cafe;
const AUDIO_SSRC: u32 = 0x0a0d_10aa;
const START_US: u64 = 1_750_000_000_000_000;

#[test]
fn camera_to_client_over_a_lossy_network() {
    let mut rng = Rng(0x5eed);
    let mut video = RtpSender::new(SenderConfig {
        ssrc: VIDEO_SSRC,
        payload_type: 96,
        initial_sequence: 65_500, // wraps during the test
        timestamp_offset: 0xffff_0000,
    })
    .unwrap();
    let mut audio = RtpSender::new(SenderConfig {
        ssrc: AUDIO_SSRC,
        payload_type: AudioCodec::Pcma.payload_type(),
        initial_sequence: 7,
        timestamp_offset: 1234,
    })
    .unwrap();
    let h264 = H264Packetizer::default();
    let mut pcm = Packetizer::new(AudioCodec::Pcma, 0);

    let mut depacketizer = H264Depacketizer::new();
    let mut video_stats = ReceiverStats::new(VIDEO_SSRC, 90_000);
    let mut audio_bytes = 0usize;
    let mut sent = Vec::new();
    let mut got: Vec<AccessUnit> = Vec::new();
    let mut dropped_datagrams = 0;
    let mut last_sr_ntp = 0;
    let mut rr = Vec::new();

    for frame in 0..100u32 {
        let now = START_US + u64::from(frame) * 40_000;
        let nals = access_unit(frame, &mut rng);
        let pts = frame * 3600;
        sent.push((video.rtp_timestamp(pts), nals.clone()));
        let mut datagrams = Vec::new();
        for p in h264.packetize(&nals, pts).unwrap() {
            let mut buf = Vec::new();
            video.write(&p, &mut buf).unwrap();
            assert!(buf.len() <= 1212);
            datagrams.push(buf);
        }
        // 40 ms of a 400 Hz tone.
        let tone: Vec<i16> = (0..320)
            .map(|i| {
                let t = f64::from(frame * 320 + i) / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * 400.0 * t).sin()) as i16
            })
            .collect();
        for p in pcm.push_pcm(&tone).unwrap() {
            let mut buf = Vec::new();
            audio.write(&p, &mut buf).unwrap();
            datagrams.push(buf);
        }

        // The network: drops 2% of datagrams after the first second.
        for d in datagrams {
            if frame >= 25 && rng.next().is_multiple_of(50) {
                dropped_datagrams += 1;
                continue;
            }
            assert!(!peercam_rtp::packet::looks_like_rtcp(&d));
            let packet = RtpPacket::parse(&d).unwrap();
            let arrival = now + 5_000 + rng.next() % 3_000;
            match packet.ssrc() {
                VIDEO_SSRC => {
                    video_stats.on_rtp(packet.sequence(), packet.timestamp(), arrival);
                    depacketizer.push(&packet).unwrap();
                }
                AUDIO_SSRC => {
                    assert_eq!(packet.payload_type(), 8);
                    audio_bytes += packet.payload().len();
                }
                other => panic!("unknown SSRC {other:#x}"),
            }
        }
        got.extend(std::iter::from_fn(|| depacketizer.poll()));

        // RTCP every second: camera SR + SDES, client RR + SDES in reply.
        if frame % 25 == 24 {
            let mut sr = Vec::new();
            video.write_rtcp(now, pts, b"cam@peercam", &mut sr).unwrap();
            let arrival = now + 6_000;
            for p in rtcp::iter(&sr) {
                if let RtcpPacket::SenderReport(report) = p.unwrap() {
                    last_sr_ntp = report.sender_info.ntp_timestamp.middle_32();
                    video_stats.on_sender_report(&report.sender_info, arrival);
                }
            }
            let reply_at = arrival + 10_000;
            rr.clear();
            rtcp::write_compound(
                &[
                    RtcpPacket::ReceiverReport(ReceiverReport {
                        ssrc: 0xc11e_0001,
                        reports: vec![video_stats.report_block(reply_at)],
                        extension: &[],
                    }),
                    RtcpPacket::SourceDescription(vec![rtcp::SdesChunk::cname(
                        0xc11e_0001,
                        b"client@peercam",
                    )]),
                ],
                &mut rr,
            )
            .unwrap();
            // The camera reads the RR and computes the round trip (RFC 3550 6.4.1).
            let packets = rtcp::parse_compound(&rr).unwrap();
            let RtcpPacket::ReceiverReport(report) = &packets[0] else {
                panic!("RR first");
            };
            let block = &report.reports[0];
            assert_eq!(block.ssrc, VIDEO_SSRC);
            assert_eq!(block.last_sr, last_sr_ntp);
            let rr_arrival = reply_at + 6_000;
            let a = peercam_rtp::NtpTimestamp::from_unix_micros(rr_arrival).middle_32();
            let rtt = a
                .wrapping_sub(block.last_sr)
                .wrapping_sub(block.delay_since_last_sr);
            let rtt_us = u64::from(rtt) * 1_000_000 / 65_536;
            assert!((11_900..=12_100).contains(&rtt_us), "RTT {rtt_us} µs");
        }
    }
    depacketizer.flush();
    got.extend(std::iter::from_fn(|| depacketizer.poll()));

    assert!(
        dropped_datagrams > 10,
        "the network dropped {dropped_datagrams}"
    );
    let stats = depacketizer.stats();
    assert!(stats.lost_packets > 0 && stats.dropped_access_units > 0);
    assert_eq!(stats.access_units, got.len() as u64);
    // Access units lost whole are never seen, so they are not counted as dropped.
    assert!(
        stats.access_units + stats.dropped_access_units <= 100,
        "{stats:?}"
    );
    assert!(got.len() >= 50, "{stats:?}");
    // Every access unit delivered is exactly the one sent with its timestamp, in order.
    let mut expected = sent.iter();
    for au in &got {
        let (_, nals) = expected
            .by_ref()
            .find(|(ts, _)| *ts == au.timestamp)
            .expect("delivered in order");
        assert_eq!(&au.nals, nals);
    }
    assert!(got.iter().skip(1).any(|au| au.after_loss));
    // The first second had no loss.
    assert_eq!(got.iter().take(25).filter(|au| au.after_loss).count(), 0);
    assert_eq!(got[0].nals.len(), 4);

    // Receiver statistics agree with the depacketizer.
    assert_eq!(
        video_stats.cumulative_lost(),
        i64::try_from(stats.lost_packets).unwrap()
    );
    assert!(audio_bytes > 0 && audio_bytes.is_multiple_of(160));
    assert_eq!(pcm.next_timestamp(), 100 * 320);
    assert!(video_stats.expected() <= u64::from(video.packet_count()));
}
