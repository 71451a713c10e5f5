//! A re-served camera's AAC reaches viewers as it is (H.626.4 6.1.8, 6.3.2; issue 16): the
//! PU offers a pulled AAC camera's audio untranscoded (RTP `mpeg4-generic`, track 3, before
//! the G.711 track) to RTSP viewers, keeps the G.711 transcode for viewers that cannot take
//! AAC, and drops malformed AAC packets with a counter while the video keeps flowing.
//! GStreamer's RTSP server plays the camera; ffmpeg is the third-party viewer.
//!
//! Under `CI=true` a missing peer (GStreamer's RTSP server, ffmpeg) fails the test.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use crate::support::relay;
use crate::support::source_camera;

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
/// cannot take AAC sets up) and a WebRTC viewer carry the same tone, transcoded.
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

    // A browser (a str0m peer) cannot take AAC: it gets the G.711 transcode.
    let (mut v, offer) = peercam_test::webrtc::Viewer::offer(false).await;
    let play = with_audio(AudioCodec::Pcmu);
    let answer = owner
        .webrtc(&dev, &peercam_signal::cm::WebRtcOffer { offer, play })
        .await
        .unwrap();
    v.accept(&answer.answer).unwrap();
    v.run_until(75, Duration::from_secs(20)).await;
    let mut pcm = Vec::new();
    for (_, p) in &v.audio_payloads {
        peercam_rtp::g711::Law::MuLaw.decode_into(p, &mut pcm);
    }
    assert_tone(&pcm, "the WebRTC viewer");

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

/// A TCP proxy in front of the camera that spoils some of its AAC: RTSP passes through;
/// of the RTP interleaved on channel 2 (the audio, set up second), every 7th packet gets
/// an AU-headers-length that is not a multiple of 16 and every 7th + 3 an AU-size beyond
/// the packet. Returns the port it listens on.
async fn spoiling_proxy(camera_port: u16) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", camera_port)).await
            else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
            });
            tokio::spawn(async move {
                let mut buf: Vec<u8> = Vec::new();
                let mut n = 0u64;
                let mut chunk = [0u8; 16384];
                loop {
                    // Forward every whole message in `buf`, spoiling what must be spoiled.
                    loop {
                        if buf.first() == Some(&b'$') {
                            if buf.len() < 4 {
                                break;
                            }
                            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                            if buf.len() < 4 + len {
                                break;
                            }
                            let mut frame: Vec<u8> = buf.drain(..4 + len).collect();
                            // RTP header: 12 bytes (GStreamer adds no CSRC or extension).
                            if frame[1] == 2 && len >= 16 {
                                n += 1;
                                if n.is_multiple_of(7) {
                                    frame[4 + 13] = 0x0f;
                                } else if n % 7 == 3 {
                                    frame[4 + 14] = 0xff;
                                    frame[4 + 15] = 0xf8;
                                }
                            }
                            if cw.write_all(&frame).await.is_err() {
                                return;
                            }
                        } else {
                            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                                break;
                            };
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let body = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() < end + 4 + body {
                                break;
                            }
                            let msg: Vec<u8> = buf.drain(..end + 4 + body).collect();
                            if cw.write_all(&msg).await.is_err() {
                                return;
                            }
                        }
                    }
                    match sr.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
            });
        }
    });
    port
}

/// Video packets ffprobe reads in `secs` seconds of the stream at `url`.
async fn video_packets(url: &str, secs: u32) -> usize {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", url])
        .args(["-select_streams", "v:0", "-read_intervals"])
        .arg(format!("%+{secs}"))
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Bad input from the camera: AAC packets with a malformed AU-headers-length or an
/// AU-size beyond the packet are dropped and counted by the pull; the session goes on, the
/// video keeps flowing at the camera's rate and the good AAC still reaches the viewer with
/// the camera's tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_malformed_camera_aac_is_dropped_and_video_flows() {
    if !need(have_gst_rtsp_server(), GST_RTSP_SERVER) || !need(have_ffmpeg(), "ffmpeg") {
        return;
    }
    let (_cam, port) = camera("aac", TONE).await;
    let proxy = spoiling_proxy(port).await;
    let (c, _pu, owner, dev) =
        pulled_camera("+15550618802", format!("rtsp://127.0.0.1:{proxy}/cam")).await;
    let before = peercam_pull::malformed_audio_packets();

    let url = owner
        .play(&dev, &with_audio(AudioCodec::Pcmu))
        .await
        .unwrap()
        .url;
    let frames = video_packets(&url, 4).await;
    // The camera sends 25 frames a second.
    assert!(frames >= 75, "{frames} video frames in 4 s");

    let url = owner
        .play(&dev, &with_audio(AudioCodec::Pcmu))
        .await
        .unwrap()
        .url;
    let (pcm, info) = listen_to(&url, 4, Some("0:a:0")).await;
    assert!(info.contains("Audio: aac"), "{info}");
    let hz = dominant_hz(&pcm[4000..], 8000);
    assert!(
        hz.abs_diff(TONE) <= 20,
        "the good AAC carries {hz} Hz, the camera sends {TONE} Hz"
    );
    let dropped = peercam_pull::malformed_audio_packets() - before;
    // About 2 of 7 packets, at 15.6 AAC packets a second (16 kHz, 1024 samples each).
    assert!(dropped >= 10, "{dropped} malformed AAC packets counted");
    c.stop().await;
}

/// Through the MTU's relay (H.626.4 7.3) the AAC track passes like the others: the relay
/// sets up every track the camera offers, and ffmpeg decodes the camera's tone from the
/// relayed AAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_relayed_viewer_gets_the_cameras_aac() {
    if !need(have_gst_rtsp_server(), GST_RTSP_SERVER) || !need(have_ffmpeg(), "ffmpeg") {
        return;
    }
    let (_cam, port) = camera("aac", TONE).await;
    let (c, _pu, owner, dev) =
        pulled_camera("+15550618803", format!("rtsp://127.0.0.1:{port}/cam")).await;
    let (_m, _msd, _) = relay::mtu(&c).await;
    let url = relay::relay_url(&owner, &dev).await;
    assert!(url.contains("/relay/"), "{url}");
    let (pcm, info) = listen_to(&url, 4, Some("0:a:0")).await;
    assert!(
        info.contains("Audio: aac (LC), 16000 Hz, mono"),
        "the relayed viewer did not get the camera's AAC: {info}"
    );
    assert_tone(&pcm, "the relayed AAC track");
    c.stop().await;
}
