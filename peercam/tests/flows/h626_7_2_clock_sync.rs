//! H.626.4 7.2 clock synchronisation: the SCU is the time reference. A PU whose clock is ten
//! minutes off synchronises over its SCU connection, and what it stamps (RTCP sender reports,
//! the capture times that recordings use) agrees with the platform within 50 ms.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peercam_rtp::rtcp::RtcpPacket;
use peercam_rtp::{H264Depacketizer, RtpPacket};
use peercam_signal::cm::PlayRequest;
use peercam_test::{Cluster, play_raw};
use tokio::io::AsyncReadExt as _;

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_2_skewed_pu_agrees_with_the_scu_within_50ms() {
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    // The device's clock is 10 minutes slow; the SCU (this machine's clock) is the reference.
    let _pu = c
        .start_pu_with(&id, 0, |cfg| cfg.clock_skew_ms = -600_000)
        .await
        .unwrap();
    c.wait_online(&id.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner("+15550720001").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let dev = id.device_id.to_string();

    // The status shows the correction once synchronised.
    let mut offset = None;
    for _ in 0..40 {
        let d = owner.status(&dev).await.unwrap().description;
        if let Some(o) = d.clock_offset_us {
            offset = Some((o, d.clock_jitter_us.unwrap()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (offset, jitter) = offset.expect("the PU synchronised");
    assert!(
        (offset - 600_000_000).abs() < 50_000,
        "offset {offset} µs, expected +600 s"
    );
    assert!(jitter < 50_000, "jitter {jitter} µs");

    // What the PU stamps: RTCP sender reports and the SEI capture time of each frame.
    let url = owner
        .play(
            &dev,
            &PlayRequest {
                max_width: Some(352),
                max_height: Some(288),
                max_fps: Some(10),
                max_kbps: None,
                audio: Some(None),
            },
        )
        .await
        .unwrap()
        .url;
    let mut tcp = play_raw(&url).await.unwrap();
    let mut depack = H264Depacketizer::new();
    let (mut sr_errors, mut capture_errors) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while (sr_errors.len() < 2 || capture_errors.len() < 10)
        && tokio::time::Instant::now() < deadline
    {
        let mut head = [0u8; 4];
        tcp.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], b'$', "interleaved frame");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes([head[2], head[3]]))];
        tcp.read_exact(&mut body).await.unwrap();
        let now = unix_us() as i64;
        match head[1] {
            1 => {
                if let Ok((RtcpPacket::SenderReport(sr), _)) = RtcpPacket::parse(&body) {
                    let at = sr.sender_info.ntp_timestamp.to_unix_micros() as i64;
                    sr_errors.push(now - at);
                }
            }
            0 => {
                let pkt = RtpPacket::parse(&body).unwrap();
                depack.push(&pkt).unwrap();
                while let Some(au) = depack.poll() {
                    for nal in &au.nals {
                        if let Some(info) = peercam_media::sei::parse_sei(nal) {
                            capture_errors.push(now - info.capture_unix_us as i64);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    assert!(sr_errors.len() >= 2, "sender reports: {sr_errors:?}");
    assert!(capture_errors.len() >= 10, "frames: {capture_errors:?}");
    // Each error is the clock's error plus how long the packet took to reach this reader
    // (never negative), so a busy machine only adds to it: no stamp may lie in the future
    // by more than the bound, and the least-delayed sample bounds the clock's own error.
    for e in sr_errors.iter().chain(&capture_errors) {
        assert!(
            *e > -50_000,
            "stamp {e} µs in the future: reports {sr_errors:?}, captures {capture_errors:?}"
        );
    }
    for (what, errors) in [("reports", &sr_errors), ("captures", &capture_errors)] {
        let best = errors.iter().copied().min().unwrap_or(i64::MAX);
        assert!(
            best < 50_000,
            "{what}: the least-delayed stamp is {best} µs late: reports {sr_errors:?}, captures {capture_errors:?}"
        );
    }
    c.stop().await;
}
