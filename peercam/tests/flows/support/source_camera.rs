//! What the tests of existing cameras share: GStreamer's RTSP server as a third-party camera
//! with a tone (`gst_camera.py`), ffmpeg as a viewer that decodes the audio, and the checks
//! that these peers are installed.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether `ok`; otherwise records the skip (`peercam_test::skip`) and returns false, or
/// fails under CI.
pub(crate) fn need(ok: bool, what: &str) -> bool {
    if !ok {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        peercam_test::skip(&test, &format!("{what} is missing"));
    }
    ok
}

pub(crate) fn have_ffmpeg() -> bool {
    ["ffmpeg", "ffprobe"].iter().all(|t| {
        Command::new(t)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

pub(crate) fn have_gst_rtsp_server() -> bool {
    Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What `need` asks for a GStreamer camera.
pub(crate) const GST_RTSP_SERVER: &str = "GStreamer's RTSP server for Python (apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gst-1.0)";

/// GStreamer's RTSP server as a third-party camera sending a `freq` Hz tone in `codec`
/// (`pcmu`, `pcma`, `g722` or `aac`) on `rtsp://127.0.0.1:PORT/cam`.
pub(crate) async fn camera(codec: &str, freq: u32) -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/flows/support/gst_camera.py"
    );
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
pub(crate) async fn listen(url: &str, secs: u32) -> (Vec<i16>, String) {
    listen_to(url, secs, None).await
}

/// As [`listen`], decoding the audio stream `map` picks (ffmpeg's `-map`, e.g. `0:a:1` for
/// the second audio stream) instead of the one ffmpeg would choose.
pub(crate) async fn listen_to(url: &str, secs: u32, map: Option<&str>) -> (Vec<i16>, String) {
    let map: Vec<&str> = map.map(|m| vec!["-map", m]).unwrap_or_default();
    let out = tokio::time::timeout(
        Duration::from_secs(u64::from(secs) + 20),
        tokio::process::Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "info"])
            .args(["-rtsp_transport", "tcp", "-i", url])
            .args(&map)
            .args(["-t", &secs.to_string(), "-vn", "-ac", "1", "-ar", "8000"])
            .args(["-f", "s16le", "-"])
            .output(),
    )
    .await
    .expect("ffmpeg hangs")
    .unwrap();
    let info = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffmpeg: {info}");
    (s16le(&out.stdout), info)
}

/// ffmpeg decoding the audio of a file: 8 kHz mono samples and ffmpeg's description.
pub(crate) fn decode_file(path: &std::path::Path) -> (Vec<i16>, String) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "info", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "1", "-ar", "8000", "-f", "s16le", "-"])
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffmpeg: {info}");
    (s16le(&out.stdout), info)
}

fn s16le(b: &[u8]) -> Vec<i16> {
    b.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}
