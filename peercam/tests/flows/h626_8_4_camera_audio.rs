//! What a viewer gets is what it can take, and a re-served camera sounds like itself (H.626.4
//! 8.4, 6.1.3, 6.3.2): an existing RTSP camera's own audio reaches the PU's viewers (passed
//! through or transcoded between G.711 mu-law, A-law and G.722), the viewer's bit rate is a
//! limit the camera holds, and a picture limit below CIF gets a smaller picture, not CIF.
//! GStreamer's RTSP server plays the camera; ffmpeg and ffprobe are the viewers.
//!
//! Under `CI=true` a missing peer (GStreamer's RTSP server, ffmpeg) fails the test.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use crate::support::source_camera;

use std::time::Duration;

use peercam_cu::CuError;
use peercam_signal::cm::PlayRequest;
use peercam_signal::play::AudioCodec;
use peercam_test::Cluster;
use peercam_test::tone::{dominant_hz, rms};
use source_camera::{GST_RTSP_SERVER, camera, have_ffmpeg, have_gst_rtsp_server, listen_to, need};

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
    viewers_hear_the_camera("pcma", "+15550840301").await;
}

/// A third-party camera sending its 1300 Hz tone as AAC-LC (RTP `mpeg4-generic`, 16 kHz):
/// the PU decodes it, and its viewers hear 1300 Hz as G.711 (mu-law and A-law) and G.722 on
/// the track after the camera's own AAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_existing_rtsp_camera_aac_reaches_viewer() {
    viewers_hear_the_camera("aac", "+15550840304").await;
}

/// A GStreamer camera sending a 1300 Hz tone in `source` (its `gst_camera.py` codec name),
/// re-served by a PU: an RTSP viewer (ffmpeg) asking for each of G.711 A-law, mu-law and
/// G.722 gets that codec and hears 1300 Hz.
async fn viewers_hear_the_camera(source: &str, phone: &str) {
    if !need(have_gst_rtsp_server(), GST_RTSP_SERVER) || !need(have_ffmpeg(), "ffmpeg") {
        return;
    }
    const TONE: u32 = 1300;
    let (_cam, port) = camera(source, TONE).await;
    let (c, _pu, owner, dev) = one_camera(phone, |cfg| {
        cfg.source_rtsp = Some(format!("rtsp://127.0.0.1:{port}/cam"));
    })
    .await;
    for (codec, name) in [
        (AudioCodec::Pcma, "pcm_alaw"),
        (AudioCodec::Pcmu, "pcm_mulaw"),
        (AudioCodec::G722, "adpcm_g722"),
    ] {
        let url = owner.play(&dev, &audio(codec)).await.unwrap().url;
        // An AAC camera's own AAC comes first (issue 16, h626_6_1_8_camera_aac); the
        // transcode asked for is the second audio stream.
        let map = (source == "aac").then_some("0:a:1");
        let (pcm, info) = listen_to(&url, 4, map).await;
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
        let hz = dominant_hz(tail, 8000);
        assert!(
            hz.abs_diff(TONE) <= 20,
            "{codec:?}: the viewer hears {hz} Hz, the camera sends {TONE} Hz as {source}"
        );
    }
    c.stop().await;
}

/// The same AAC camera seen from a browser (a str0m peer): the WebRTC viewer hears the
/// camera's 1300 Hz as G.711 mu-law.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_webrtc_viewer_hears_an_aac_camera() {
    use peercam_signal::cm::WebRtcOffer;
    use peercam_test::webrtc::Viewer;
    if !need(have_gst_rtsp_server(), GST_RTSP_SERVER) {
        return;
    }
    const TONE: u32 = 1300;
    let (_cam, port) = camera("aac", TONE).await;
    let (c, _pu, owner, dev) = one_camera("+15550840305", |cfg| {
        cfg.source_rtsp = Some(format!("rtsp://127.0.0.1:{port}/cam"));
    })
    .await;
    let (mut v, offer) = Viewer::offer(false).await;
    let play = audio(AudioCodec::Pcmu);
    let answer = owner
        .webrtc(&dev, &WebRtcOffer { offer, play })
        .await
        .unwrap();
    v.accept(&answer.answer).unwrap();
    v.run_until(75, Duration::from_secs(20)).await;
    let mut pcm = Vec::new();
    for (_, p) in &v.audio_payloads {
        peercam_rtp::g711::Law::MuLaw.decode_into(p, &mut pcm);
    }
    assert!(
        pcm.len() >= 8000 * 2,
        "{} samples of audio in 3 s",
        pcm.len()
    );
    let tail = &pcm[4000..];
    let level = rms(tail);
    assert!(level > 1000.0, "no tone (RMS {level:.0})");
    let hz = dominant_hz(tail, 8000);
    assert!(
        hz.abs_diff(TONE) <= 20,
        "the WebRTC viewer hears {hz} Hz, the camera sends {TONE} Hz as AAC"
    );
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
