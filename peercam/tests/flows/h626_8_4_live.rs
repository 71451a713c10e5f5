//! H.626.4 8.4 media play, end to end: CU -> CMU (URL with hash token) -> PU RTSP -> PU asks
//! SCU -> CMU -> verdict -> stream, with third-party players (ffprobe/ffmpeg) as the CU.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use peercam_base::{Scope, ScopeSet};
use peercam_cu::Client;
use peercam_signal::cm::PlayRequest;
use peercam_signal::play::AudioCodec;
use peercam_test::{Cluster, play_raw, rtsp_describe};
use serde_json::Value;
use tokio::io::AsyncReadExt as _;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn caps(w: u16, h: u16, fps: u8, audio: Option<AudioCodec>) -> PlayRequest {
    PlayRequest {
        max_width: Some(w),
        max_height: Some(h),
        max_fps: Some(fps),
        max_kbps: None,
        audio: Some(audio),
    }
}

/// ffprobe the first stream of `kind` (v or a) for `secs` seconds.
async fn ffprobe(url: &str, transport: &str, kind: &str, secs: u32) -> Value {
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-i",
            url,
            "-select_streams",
            &format!("{kind}:0"),
            "-count_frames",
        ])
        .args([
            "-read_intervals",
            &format!("%+{secs}"),
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames,sample_rate",
        ])
        .args(["-of", "json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"][0].clone()
}

struct World {
    c: Cluster,
    owner: Client,
    dev: String,
    other_dev: String,
    _pus: Vec<(peercam_pu::Running, peercam_net::Shutdown)>,
}

async fn world(ttl: Option<u64>) -> World {
    let c = Cluster::start_with(1, |cfg| {
        if let Some(t) = ttl {
            cfg.play_token_ttl_s = t;
        }
    })
    .await
    .unwrap();
    world_on(c).await
}

/// The world on a CMU whose database is PostgreSQL; `None` where it is not installed.
async fn world_postgres(ttl: Option<u64>, test: &str) -> Option<World> {
    let c = Cluster::start_postgres_with(1, test, |cfg| {
        if let Some(t) = ttl {
            cfg.play_token_ttl_s = t;
        }
    })
    .await
    .unwrap()?;
    Some(world_on(c).await)
}

async fn world_on(c: Cluster) -> World {
    let ids = c.provision(2).await.unwrap();
    let mut pus = Vec::new();
    for id in &ids {
        pus.push(c.start_pu_online(id, 0).await.unwrap());
    }
    let owner = c.owner("+15550700001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    c.bind(&owner, &ids[1]).await.unwrap();
    // The endpoint report follows registration closely; wait until a URL can be had.
    let dev = ids[0].device_id.to_string();
    for _ in 0..50 {
        if owner.play(&dev, &PlayRequest::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    World {
        c,
        owner,
        dev,
        other_dev: ids[1].device_id.to_string(),
        _pus: pus,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_ffprobe_decodes_each_profile_over_tcp_and_udp() {
    if !have("ffprobe") {
        panic!("ffprobe is required (Debian package ffmpeg; .ci/run installs it)");
    }
    let w = world(None).await;
    for (cw, ch, fps, transport) in [
        (352, 288, 10, "tcp"),
        (704, 576, 15, "tcp"),
        (1280, 720, 25, "tcp"),
        (352, 288, 25, "udp"),
    ] {
        let url = w
            .owner
            .play(&w.dev, &caps(cw, ch, fps, None))
            .await
            .unwrap()
            .url;
        let s = ffprobe(&url, transport, "v", 3).await;
        assert_eq!(s["codec_name"], "h264", "{s}");
        assert_eq!(
            (s["width"].as_u64(), s["height"].as_u64()),
            (Some(u64::from(cw)), Some(u64::from(ch))),
            "{transport} {s}"
        );
        let frames: u64 = s["nb_read_frames"].as_str().unwrap_or("0").parse().unwrap();
        // Capabilities change what is sent: about `fps` frames per second for 3 s.
        let expect = u64::from(fps) * 3;
        assert!(
            frames + u64::from(fps) >= expect && frames <= expect + u64::from(fps) + 2,
            "{cw}x{ch}@{fps} over {transport}: {frames} frames"
        );
    }
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_audio_g711_and_g722_decode() {
    let w = world(None).await;
    for (codec, name) in [
        (AudioCodec::Pcmu, "pcm_mulaw"),
        (AudioCodec::Pcma, "pcm_alaw"),
        (AudioCodec::G722, "adpcm_g722"),
    ] {
        let url = w
            .owner
            .play(&w.dev, &caps(352, 288, 10, Some(codec)))
            .await
            .unwrap()
            .url;
        let s = ffprobe(&url, "tcp", "a", 3).await;
        assert_eq!(s["codec_name"], name, "{s}");
        let frames: u64 = s["nb_read_frames"].as_str().unwrap_or("0").parse().unwrap();
        assert!(frames >= 50, "{name}: {frames} audio frames in 3 s");
    }
    w.c.stop().await;
}

/// Sends one RTSP request on a fresh connection and returns (status, everything read).
fn with_token(url: &str, token: &str) -> String {
    format!("{}?token={token}", url.split('?').next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_play_refusals() {
    play_refusals(world(Some(2)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_play_refusals_postgres() {
    if let Some(w) = world_postgres(Some(2), "h626_8_4_play_refusals_postgres").await {
        play_refusals(w).await;
    }
}

async fn play_refusals(w: World) {
    let good = w.owner.play(&w.dev, &PlayRequest::default()).await.unwrap();

    // No token at all.
    let (status, got) = rtsp_describe(good.url.split('?').next().unwrap()).await;
    assert_eq!(status, 401);
    assert!(!got.contains(&b'$'), "no media byte after a refusal");

    // A forged token: one character of the MAC changed. Not the last one: in unpadded
    // base64url its low bits are padding, so changing only those makes a malformed token
    // (refused as such) rather than a forged one.
    let mut chars: Vec<char> = good.token.chars().collect();
    let at = chars.len() - 5;
    chars[at] = if chars[at] == 'A' { 'z' } else { 'A' };
    let forged: String = chars.into_iter().collect();
    assert_eq!(rtsp_describe(&with_token(&good.url, &forged)).await.0, 401);

    // The genuine token works once...
    let (status, got) = rtsp_describe(&good.url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    // ...and never again (replay).
    assert_eq!(rtsp_describe(&good.url).await.0, 401);

    // Another device's token, presented to this device.
    let other = w
        .owner
        .play(&w.other_dev, &PlayRequest::default())
        .await
        .unwrap();
    assert_eq!(
        rtsp_describe(&with_token(&good.url, &other.token)).await.0,
        401
    );

    // Expired (the CMU was configured with a 2 s lifetime).
    let old = w.owner.play(&w.dev, &PlayRequest::default()).await.unwrap();
    // 2 s lifetime + 1 s rounding slack, plus the whole-second rounding of `iat`.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(rtsp_describe(&old.url).await.0, 401);

    // A sub-account: without the live scope it gets no URL; with it, a URL that goes stale
    // the moment the share is withdrawn.
    let kid = w.c.sub(&w.owner, "kid").await.unwrap();
    w.owner
        .share(&w.dev, "kid", [Scope::Playback].into_iter().collect())
        .await
        .unwrap();
    assert_eq!(
        kid.play(&w.dev, &PlayRequest::default())
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    w.owner
        .share(
            &w.dev,
            "kid",
            [Scope::Live].into_iter().collect::<ScopeSet>(),
        )
        .await
        .unwrap();
    let kid_url = kid.play(&w.dev, &PlayRequest::default()).await.unwrap();
    w.owner.unshare(&w.dev, "kid").await.unwrap();
    assert_eq!(
        rtsp_describe(&kid_url.url).await.0,
        401,
        "stale ACL after unshare"
    );

    // Someone with no relation to the device gets nothing from the CMU.
    let bob = w.c.owner("+15550700002").await.unwrap();
    assert_eq!(
        bob.play(&w.dev, &PlayRequest::default())
            .await
            .unwrap_err()
            .code(),
        Some("not_found")
    );

    // Every refusal is in the owner's audit log.
    let audit = w.owner.audit().await.unwrap();
    for code in ["forged", "replayed", "wrong_device", "expired", "stale_acl"] {
        assert!(
            audit
                .iter()
                .any(|e| e.action == "media.play" && e.outcome == code),
            "no audit entry for {code}"
        );
    }
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_unshare_tears_down_the_live_session_within_1s() {
    let w = world(None).await;
    let kid = w.c.sub(&w.owner, "kid").await.unwrap();
    w.owner
        .share(&w.dev, "kid", [Scope::Live].into_iter().collect())
        .await
        .unwrap();
    let url = kid
        .play(&w.dev, &caps(352, 288, 10, None))
        .await
        .unwrap()
        .url;
    let mut tcp = play_raw(&url).await.unwrap();
    // Media flows.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 10_000 {
        got += tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
    }
    let t = Instant::now();
    w.owner.unshare(&w.dev, "kid").await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => panic!("session still open 3 s after unshare"),
        }
    }
    let took = t.elapsed();
    eprintln!("live session closed {took:?} after unshare");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_sei_counter_has_no_gap_or_reorder_over_60s() {
    let w = world(None).await;
    let url = w
        .owner
        .play(&w.dev, &caps(352, 288, 25, None))
        .await
        .unwrap()
        .url;
    let out = tokio::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            &url,
            "-t",
            "60",
            "-an",
            "-c",
            "copy",
            "-f",
            "h264",
            "pipe:1",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames: Vec<u64> = peercam_media::annexb::split(&out.stdout)
        .filter_map(peercam_media::sei::parse_sei)
        .map(|i| i.frame)
        .collect();
    assert!(
        frames.len() >= 24 * 59,
        "only {} frames in 60 s",
        frames.len()
    );
    for w in frames.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "gap or reorder between frames {} and {}",
            w[0],
            w[1]
        );
    }
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_gstreamer_rtspsrc_decodes_over_tcp_and_udp() {
    if !Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        panic!("gst-launch-1.0 is required (Debian gstreamer1.0-tools; .ci/run installs it)");
    }
    let w = world(None).await;
    for proto in ["tcp", "udp"] {
        let url = w
            .owner
            .play(&w.dev, &caps(704, 576, 15, None))
            .await
            .unwrap()
            .url;
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new("gst-launch-1.0")
                .args([
                    "-q",
                    "rtspsrc",
                    &format!("location={url}"),
                    &format!("protocols={proto}"),
                    "latency=0",
                ])
                .args([
                    "!",
                    "rtph264depay",
                    "!",
                    "h264parse",
                    "!",
                    "avdec_h264",
                    "!",
                    "fakesink",
                    "num-buffers=30",
                ])
                .output(),
        )
        .await
        .expect("GStreamer finished in time")
        .unwrap();
        assert!(
            out.status.success(),
            "GStreamer over {proto}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_cli_play_records_a_playable_mp4() {
    let w = world(None).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clip.mp4");
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["cu", "--api", &w.c.api, "--ca"])
        .arg(&w.c.pki.ca_cert)
        .args([
            "--user",
            "+15550700001",
            "--password",
            "correct horse battery",
            "--json",
        ])
        .args([
            "play",
            &w.dev,
            "--seconds",
            "3",
            "--max-width",
            "704",
            "--fps",
            "10",
            "--out",
        ])
        .arg(&out)
        .env("PEERCAM_HOME", dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let summary: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(summary["frames"].as_u64().unwrap() >= 20, "{summary}");
    let probe = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let v: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let s = &v["streams"][0];
    assert_eq!(
        (
            s["codec_name"].as_str(),
            s["width"].as_u64(),
            s["height"].as_u64()
        ),
        (Some("h264"), Some(704), Some(576)),
        "{v}"
    );
    let frames: u64 = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        frames,
        summary["frames"].as_u64().unwrap(),
        "every recorded frame decodes"
    );
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_file_source_is_served_as_is() {
    // A third-party H.264 stream (x264, 640x360, GOP of 25) looped by the PU.
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.264");
    let made = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25",
            "-t",
            "2",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "baseline",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            "-bf",
            "0",
            "-f",
            "h264",
        ])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(made.success());
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let (_pu, _sd) = c
        .start_pu_with(&ids[0], 0, |cfg| cfg.source_file = Some(clip.clone()))
        .await
        .unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner("+15550700009").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    let mut url = None;
    for _ in 0..50 {
        if let Ok(r) = owner.play(&dev, &caps(1280, 720, 25, None)).await {
            url = Some(r.url);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Longer than the clip: the loop must carry on seamlessly.
    let s = ffprobe(&url.unwrap(), "tcp", "v", 4).await;
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(360)),
        "{s}"
    );
    let frames: u64 = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(
        frames >= 75,
        "{frames} frames in 4 s of a looped 25 fps file"
    );
    c.stop().await;
}
