//! What a viewer gets is what it can take, and a re-served camera sounds like itself (H.626.4
//! 8.4, 6.1.3, 6.3.2): an existing RTSP camera's own audio reaches the PU's viewers (passed
//! through or transcoded between G.711 mu-law, A-law and G.722), the viewer's bit rate is a
//! limit the camera holds, and a picture limit below CIF gets a smaller picture, not CIF.
//! GStreamer's RTSP server plays the camera; ffmpeg and ffprobe are the viewers.
//!
//! Under `CI=true` a missing peer (GStreamer's RTSP server, ffmpeg) fails the test.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::process::{Command, Stdio};
use std::time::Duration;

use peercam_cu::CuError;
use peercam_signal::cm::PlayRequest;
use peercam_signal::play::AudioCodec;
use peercam_test::Cluster;

/// Whether `ok`; otherwise skips (false), or fails under `CI=true`.
fn need(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is missing (CI=true: the test must not skip)"
        );
        eprintln!("skipped: {what} is missing");
    }
    ok
}

fn have_ffmpeg() -> bool {
    ["ffmpeg", "ffprobe"].iter().all(|t| {
        Command::new(t)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn have_gst_rtsp_server() -> bool {
    Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// GStreamer's RTSP server as a third-party camera sending a `freq` Hz tone in `codec`.
async fn camera(codec: &str, freq: u32) -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/gst_camera.py");
    let child = tokio::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .arg(codec)
        .arg(freq.to_string())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the GStreamer camera did not listen on {port}");
}

/// ffmpeg as the viewer: `secs` seconds of the stream's audio, decoded to 8 kHz mono, and
/// ffmpeg's description of the input (its stream lines).
async fn listen(url: &str, secs: u32) -> (Vec<i16>, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(u64::from(secs) + 20),
        tokio::process::Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "info"])
            .args(["-rtsp_transport", "tcp", "-i", url])
            .args(["-t", &secs.to_string(), "-vn", "-ac", "1", "-ar", "8000"])
            .args(["-f", "s16le", "-"])
            .output(),
    )
    .await
    .expect("ffmpeg hangs")
    .unwrap();
    let info = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffmpeg: {info}");
    let pcm = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (pcm, info)
}

/// The strongest frequency of `pcm` (8 kHz) between 100 and 3900 Hz, 10 Hz steps (Goertzel).
fn dominant_hz(pcm: &[i16]) -> u32 {
    let power = |f: u32| {
        let w = 2.0 * std::f64::consts::PI * f64::from(f) / 8000.0;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in pcm {
            let s = f64::from(x) + c * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - c * s1 * s2
    };
    (10..=390)
        .map(|k| k * 10)
        .max_by(|a, b| power(*a).total_cmp(&power(*b)))
        .unwrap()
}

fn rms(pcm: &[i16]) -> f64 {
    let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / pcm.len().max(1) as f64).sqrt()
}

#[test]
fn tone_analysis_finds_the_frequency() {
    let tone: Vec<i16> = (0..16_000)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 1300.0 * f64::from(i) / 8000.0).sin()) as i16
        })
        .collect();
    assert_eq!(dominant_hz(&tone), 1300);
    assert!(rms(&tone) > 5000.0);
}

/// A cluster with one camera (its PU configured by `adjust`), online and bound to a new owner:
/// the cluster, the running PU, the owner and the device id.
async fn one_camera(
    phone: &str,
    adjust: impl FnOnce(&mut peercam_pu::Config),
) -> (Cluster, impl Sized, peercam_cu::Client, String) {
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let pu = c.start_pu_with(&id, 0, adjust).await.unwrap();
    c.wait_online(&id.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    (c, pu, owner, id.device_id.to_string())
}

fn audio(codec: AudioCodec) -> PlayRequest {
    PlayRequest {
        audio: Some(Some(codec)),
        ..PlayRequest::default()
    }
}

/// A third-party camera sending a 1300 Hz tone in A-law: the PU's viewers hear 1300 Hz (not
/// the PU's 440 Hz test tone) in the codec each asked for: A-law passed through, mu-law and
/// G.722 transcoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_existing_rtsp_camera_audio_reaches_viewer() {
    if !need(
        have_gst_rtsp_server(),
        "GStreamer's RTSP server for Python (apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gst-1.0)",
    ) || !need(have_ffmpeg(), "ffmpeg")
    {
        return;
    }
    const TONE: u32 = 1300;
    let (_cam, port) = camera("pcma", TONE).await;
    let (c, _pu, owner, dev) = one_camera("+15550840301", |cfg| {
        cfg.source_rtsp = Some(format!("rtsp://127.0.0.1:{port}/cam"));
    })
    .await;

    for (codec, name) in [
        (AudioCodec::Pcma, "pcm_alaw"),
        (AudioCodec::Pcmu, "pcm_mulaw"),
        (AudioCodec::G722, "adpcm_g722"),
    ] {
        let url = owner.play(&dev, &audio(codec)).await.unwrap().url;
        let (pcm, info) = listen(&url, 4).await;
        assert!(
            info.contains(&format!("Audio: {name}")),
            "{codec:?}: the viewer did not get {name}: {info}"
        );
        assert!(
            pcm.len() >= 8000 * 3,
            "{codec:?}: {} samples in 4 s",
            pcm.len()
        );
        // The first half second may be the joiner's start; judge the rest.
        let tail = &pcm[4000..];
        let level = rms(tail);
        assert!(
            level > 1000.0,
            "{codec:?}: the camera's tone is missing (RMS {level:.0})"
        );
        let hz = dominant_hz(tail);
        assert!(
            hz.abs_diff(TONE) <= 20,
            "{codec:?}: the viewer hears {hz} Hz, the camera sends {TONE} Hz"
        );
    }
    c.stop().await;
}

/// Video bytes over time of `secs` seconds of the stream at `url`, and its picture size.
async fn video_rate(url: &str, secs: u32) -> (f64, u64, u64) {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", url])
        .args(["-select_streams", "v:0", "-read_intervals"])
        .arg(format!("%+{secs}"))
        .args([
            "-show_entries",
            "packet=size,pts_time:stream=width,height",
            "-of",
            "json",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packets = v["packets"].as_array().unwrap();
    assert!(packets.len() > 10, "{} packets", packets.len());
    let times: Vec<f64> = packets
        .iter()
        .filter_map(|p| p["pts_time"].as_str()?.parse().ok())
        .collect();
    let bytes: u64 = packets
        .iter()
        .filter_map(|p| p["size"].as_str()?.parse::<u64>().ok())
        .sum();
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // The last frame lasts a frame interval too (at most 1/25 s here).
    let span = (last - first + 0.04).max(0.5);
    let s = &v["streams"][0];
    (
        bytes as f64 * 8.0 / span / 1000.0,
        s["width"].as_u64().unwrap(),
        s["height"].as_u64().unwrap(),
    )
}

/// H.626.4 6.1.3, 8.4: the viewer's bit rate is a limit. A 720P-capable viewer that takes
/// 100 kbit/s (or 32) gets at most about that, measured over several seconds; before, the
/// camera sent about 200 kbit/s whatever the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_3_low_bit_rate_cap_is_held() {
    if !need(have_ffmpeg(), "ffmpeg") {
        return;
    }
    let (c, _pu, owner, dev) = one_camera("+15550840302", |_| {}).await;
    for cap in [100u32, 32] {
        let req = PlayRequest {
            max_kbps: Some(cap),
            audio: Some(None),
            ..PlayRequest::default()
        };
        let url = owner.play(&dev, &req).await.unwrap().url;
        let (kbps, w, h) = video_rate(&url, 8).await;
        eprintln!("cap {cap} kbit/s: {kbps:.0} kbit/s at {w}x{h}");
        assert!(
            kbps <= f64::from(cap) * 1.15,
            "cap {cap} kbit/s, delivered {kbps:.0} kbit/s at {w}x{h}"
        );
        assert!(w <= 1280 && h <= 720);
    }
    c.stop().await;
}

/// H.626.4 6.1.3: a viewer that takes at most 320x240 gets a picture within that (QCIF), not
/// CIF; limits below the smallest picture are refused with a clear error before any token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_3_small_picture_limits_are_met_or_refused() {
    if !need(have_ffmpeg(), "ffmpeg") {
        return;
    }
    let (c, _pu, owner, dev) = one_camera("+15550840303", |_| {}).await;
    let req = PlayRequest {
        max_width: Some(320),
        max_height: Some(240),
        audio: Some(None),
        ..PlayRequest::default()
    };
    let url = owner.play(&dev, &req).await.unwrap().url;
    let (_, w, h) = video_rate(&url, 2).await;
    assert_eq!((w, h), (176, 144), "320x240 limits answered with {w}x{h}");
    let too_small = PlayRequest {
        max_width: Some(160),
        max_height: Some(120),
        ..PlayRequest::default()
    };
    match owner.play(&dev, &too_small).await {
        Err(CuError::Api {
            status,
            code,
            message,
            ..
        }) => {
            assert_eq!((status, code.as_str()), (400, "bad_caps"));
            assert!(message.contains("width >= 176"), "{message}");
        }
        other => panic!("160x120 limits were not refused: {other:?}"),
    }
    c.stop().await;
}
