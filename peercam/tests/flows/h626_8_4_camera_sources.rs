//! The PU's other sources, played through the platform like the synthetic camera (H.626.4
//! 8.4): an existing third-party RTSP camera pulled and re-served (GStreamer's RTSP server
//! plays the camera), and an MP4 file. ffprobe is the viewer.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use peercam_signal::cm::PlayRequest;
use peercam_test::Cluster;
use serde_json::Value;

fn clip(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let h264 = dir.join("clip.264");
    let mp4 = dir.join("clip.mp4");
    let ok = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25",
        ])
        .args([
            "-t",
            "8",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "baseline",
        ])
        .args(["-pix_fmt", "yuv420p", "-g", "25", "-bf", "0", "-f", "h264"])
        .arg(&h264)
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-framerate", "25", "-i"])
        .arg(&h264)
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&mp4)
        .status()
        .unwrap();
    assert!(ok.success());
    (h264, mp4)
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

fn camera(port: u16, mp4: &Path) -> tokio::process::Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/support/gst_rtsp.py");
    tokio::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .arg(mp4)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn probe(url: &str, secs: u32) -> Value {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", url])
        .args(["-select_streams", "v:0", "-count_frames", "-read_intervals"])
        .arg(format!("%+{secs}"))
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
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
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["streams"][0].clone()
}

fn video_only() -> PlayRequest {
    PlayRequest {
        audio: Some(None),
        ..PlayRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_existing_rtsp_camera_is_pulled_and_reserved() {
    if !have_gst_rtsp_server() {
        panic!(
            "GStreamer's RTSP server for Python is missing: apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gst-1.0"
        );
    }
    let c = Cluster::start(1).await.unwrap();
    let (_h264, mp4) = clip(c.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cam = camera(port, &mp4);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let id = c.provision(1).await.unwrap().remove(0);
    let _pu = c
        .start_pu_with(&id, 0, |cfg| {
            cfg.source_rtsp = Some(format!("rtsp://127.0.0.1:{port}/test"));
        })
        .await
        .unwrap();
    c.wait_online(&id.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner("+15550840001").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let dev = id.device_id.to_string();

    // The viewer gets the camera's own picture, through the PU's authorised RTSP.
    let url = owner.play(&dev, &video_only()).await.unwrap().url;
    let s = probe(&url, 3).await;
    assert_eq!(
        (
            s["codec_name"].as_str(),
            s["width"].as_u64(),
            s["height"].as_u64()
        ),
        (Some("h264"), Some(640), Some(360)),
        "{s}"
    );
    let frames: u64 = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames >= 40, "{frames} frames in 3 s");
    // A second viewer joins the running pull and starts at once from the kept GOP.
    let t = std::time::Instant::now();
    let url = owner.play(&dev, &video_only()).await.unwrap().url;
    let s = probe(&url, 1).await;
    assert_eq!(s["width"].as_u64(), Some(640));
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "joiner took {:?}",
        t.elapsed()
    );

    // The camera goes down: a new viewer gets a clear refusal, not a hang or stale video.
    cam.kill().await.unwrap();
    let _ = cam.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = owner.play(&dev, &video_only()).await.unwrap().url;
    let t = std::time::Instant::now();
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            &url,
            "-show_streams",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("503"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "refusal took {:?}",
        t.elapsed()
    );

    // Back up: the PU redials by itself and viewers play again.
    let _cam = camera(port, &mp4);
    let mut played = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let url = owner.play(&dev, &video_only()).await.unwrap().url;
        let out = tokio::process::Command::new("ffprobe")
            .args(["-v", "error", "-rtsp_transport", "tcp", "-i", &url])
            .args([
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width",
                "-of",
                "csv=p=0",
            ])
            .output()
            .await
            .unwrap();
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "640" {
            played = true;
            break;
        }
    }
    assert!(played, "the PU did not come back to the camera");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_mp4_file_source_is_served() {
    let c = Cluster::start(1).await.unwrap();
    let (_h264, mp4) = clip(c.path());
    let id = c.provision(1).await.unwrap().remove(0);
    let _pu = c
        .start_pu_with(&id, 0, |cfg| cfg.source_file = Some(mp4.clone()))
        .await
        .unwrap();
    c.wait_online(&id.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner("+15550840002").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let url = owner
        .play(&id.device_id.to_string(), &video_only())
        .await
        .unwrap()
        .url;
    let s = probe(&url, 3).await;
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(360)),
        "{s}"
    );
    let frames: u64 = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames >= 50, "{frames} frames in 3 s at 25 fps");
    c.stop().await;
}
