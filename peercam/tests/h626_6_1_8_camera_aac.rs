//! A re-served camera's AAC reaches viewers as it is (H.626.4 6.1.8, 6.3.2; issue 16): the
//! PU offers a pulled AAC camera's audio untranscoded (RTP `mpeg4-generic`, track 3, before
//! the G.711 track) to RTSP viewers, keeps the G.711 transcode for viewers that cannot take
//! AAC, and drops malformed AAC packets with a counter while the video keeps flowing.
//! GStreamer's RTSP server plays the camera; ffmpeg is the third-party viewer.
//!
//! Under `CI=true` a missing peer (GStreamer's RTSP server, ffmpeg) fails the test.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

#[path = "support/source_camera.rs"]
mod source_camera;

use std::time::Duration;

use peercam_signal::cm::PlayRequest;
use peercam_signal::play::AudioCodec;
use peercam_test::Cluster;
use peercam_test::tone::{dominant_hz, rms};
use source_camera::{GST_RTSP_SERVER, camera, have_ffmpeg, have_gst_rtsp_server, listen_to, need};

/// The camera's tone: well away from the synthetic camera's 440 Hz and 1 kHz.
const TONE: u32 = 1300;

/// Checks that `pcm` (8 kHz) is the camera's tone.
fn assert_tone(pcm: &[i16], what: &str) {
    assert!(pcm.len() >= 8000 * 2, "{what}: {} samples", pcm.len());
    // The decoder's first half second may be its start-up.
    let tail = &pcm[4000..];
    let level = rms(tail);
    assert!(level > 1000.0, "{what}: no tone (RMS {level:.0})");
    let hz = dominant_hz(tail, 8000);
    assert!(
        hz.abs_diff(TONE) <= 20,
        "{what}: {hz} Hz, the camera sends {TONE} Hz"
    );
}

/// A cluster with a PU re-serving `source` (an RTSP URL), online and bound to a new owner.
async fn pulled_camera(
    phone: &str,
    source: String,
) -> (Cluster, impl Sized, peercam_cu::Client, String) {
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let pu = c
        .start_pu_with(&id, 0, |cfg| cfg.source_rtsp = Some(source))
        .await
        .unwrap();
    c.wait_online(&id.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    (c, pu, owner, id.device_id.to_string())
}

fn with_audio(codec: AudioCodec) -> PlayRequest {
    PlayRequest {
        audio: Some(Some(codec)),
        ..PlayRequest::default()
    }
}

/// An AAC-LC camera (16 kHz mono, 1300 Hz): ffmpeg as a third-party RTSP viewer sees an
/// `aac` stream at the camera's rate and channels, first among the audio streams, and
/// decoding it gives the camera's tone; the G.711 stream beside it (what a viewer that
/// cannot take AAC sets up) carries the same tone, transcoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_rtsp_viewer_gets_the_cameras_aac_as_it_is() {
    if !need(have_gst_rtsp_server(), GST_RTSP_SERVER) || !need(have_ffmpeg(), "ffmpeg") {
        return;
    }
    let (_cam, port) = camera("aac", TONE).await;
    let (c, _pu, owner, dev) =
        pulled_camera("+15550618801", format!("rtsp://127.0.0.1:{port}/cam")).await;

    let url = owner
        .play(&dev, &with_audio(AudioCodec::Pcmu))
        .await
        .unwrap()
        .url;
    let (pcm, info) = listen_to(&url, 4, Some("0:a:0")).await;
    eprintln!("{info}");
    assert!(
        info.contains("Audio: aac (LC), 16000 Hz, mono"),
        "the viewer did not get the camera's AAC: {info}"
    );
    assert_tone(&pcm, "the AAC track");

    let url = owner
        .play(&dev, &with_audio(AudioCodec::Pcmu))
        .await
        .unwrap()
        .url;
    let (pcm, info) = listen_to(&url, 4, Some("0:a:1")).await;
    assert!(info.contains("Audio: pcm_mulaw"), "no G.711 track: {info}");
    assert_tone(&pcm, "the G.711 track");

    // A viewer that asks for no audio gets neither.
    let req = PlayRequest {
        audio: Some(None),
        ..PlayRequest::default()
    };
    let url = owner.play(&dev, &req).await.unwrap().url;
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-show_entries"])
        .args(["stream=codec_name", "-of", "csv=p=0", &url])
        .output()
        .await
        .unwrap();
    let streams = String::from_utf8_lossy(&out.stdout);
    assert_eq!(streams.trim(), "h264", "{streams}");
    c.stop().await;
}
