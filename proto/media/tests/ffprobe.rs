//! Interoperability: the MP4 files we write, read by ffprobe and decoded by ffmpeg.
//!
//! Each test is skipped, with a note on stderr, when `ffprobe` (or `ffmpeg`) is not on
//! PATH. CI installs ffmpeg, so there they always run.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use peercam_media::annexb::{AccessUnit, AccessUnitAssembler};
use peercam_media::mp4::{AudioParams, Movie, Mp4StreamWriter, Mp4Writer, VideoParams};
use peercam_media::sei::{FrameInfo, build_sei_nal, parse_sei, sei_nal};
use peercam_rtp::g711::Law;
use serde_json::Value;

const FIXTURE: &[u8] = include_bytes!("../testdata/x264_baseline_320x180_25fps_50f.h264");
/// 25 fps at 90 kHz.
const FRAME_TICKS: u64 = 3600;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The fixture's access units, each tagged with our SEI in front of its first slice.
fn tagged_access_units() -> Vec<AccessUnit> {
    let mut a = AccessUnitAssembler::new();
    a.push(FIXTURE).expect("fixture");
    a.finish().expect("fixture");
    let mut aus: Vec<AccessUnit> = std::iter::from_fn(|| a.pop()).collect();
    for (n, au) in aus.iter_mut().enumerate() {
        let at = au
            .nals
            .iter()
            .position(|x| matches!(x[0] & 0x1f, 1 | 5))
            .expect("a slice");
        let tag = FrameInfo {
            frame: n as u64,
            // Values whose bytes need emulation prevention.
            capture_unix_us: 0x0000_0001_0000_0000 + n as u64,
            stream: 1,
        };
        let sei = if n == 10 {
            // Also a message over 255 bytes before ours, in the same NAL unit.
            let mut big = vec![0x5a; 300];
            big[..16].copy_from_slice(&[0x11; 16]);
            build_sei_nal(&[(5, &big), (5, &tag.to_payload())])
        } else {
            sei_nal(&tag)
        };
        au.nals.insert(at, sei);
    }
    aus
}

/// G.711 µ-law encoding of one linear sample (ITU-T G.711, as in Sun's g711.c).
fn ulaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(32635) + 0x84;
    let mut exp = 7;
    while exp > 0 && s & (0x80 << exp) == 0 {
        exp -= 1;
    }
    let mantissa = (s >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) | mantissa) as u8
}

/// 20 ms of a 440 Hz tone starting at sample `at`.
fn tone(at: u64) -> Vec<u8> {
    (at..at + 160)
        .map(|i| {
            let t = i as f64 / 8000.0;
            ulaw((8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
        })
        .collect()
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!("peercam-media-{}-{name}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ffprobe(path: &Path) -> Vec<Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,codec_type,width,height,nb_read_frames,duration,sample_rate,channels")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffprobe complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    json["streams"].as_array().expect("streams").clone()
}

/// Decodes every frame with ffmpeg; returns its stderr (empty when all is well).
fn ffmpeg_decode(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ffprobe_reads_the_video_file() {
    if !have("ffprobe") {
        eprintln!("note: ffprobe not on PATH; skipping ffprobe_reads_the_video_file");
        return;
    }
    let aus = tagged_access_units();
    let params = VideoParams::from_annexb(FIXTURE).expect("parameter sets");
    let mut w = Mp4Writer::new(params, None).expect("writer");
    for (n, au) in aus.iter().enumerate() {
        w.push_video(
            &au.to_annexb(),
            123_456 + n as u64 * FRAME_TICKS,
            au.is_key(),
        )
        .expect("push");
    }
    let file = w.finish().expect("finish");
    let tmp = TempFile::new("video.mp4");
    std::fs::write(&tmp.0, &file).expect("write");

    let streams = ffprobe(&tmp.0);
    assert_eq!(streams.len(), 1, "{streams:?}");
    let v = &streams[0];
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(v["nb_read_frames"], "50");
    assert_eq!(v["duration"], "2.000000");
    if have("ffmpeg") {
        assert_eq!(ffmpeg_decode(&tmp.0), "");
    }
    // ffmpeg's SEI parser exports every user_data_unregistered message as frame side data:
    // x264's, ours on each of the 50 frames, and the 300-byte one.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_frames",
            "-of",
            "compact",
        ])
        .arg(&tmp.0)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("User Data Unregistered").count(), 52, "{text}");

    // Our tags survive in the samples.
    let movie = Movie::parse(&file).expect("parse");
    let track = movie.video().expect("video");
    for (n, s) in track.samples().enumerate() {
        let data = s.data(&file).expect("in file");
        let nals = peercam_media::annexb::split_avcc(data, 4).expect("avcc");
        let tag = nals.iter().find_map(|nal| parse_sei(nal)).expect("tag");
        assert_eq!(tag.frame, n as u64);
    }
}

#[test]
fn ffprobe_reads_the_streamed_file_with_audio() {
    if !have("ffprobe") {
        eprintln!("note: ffprobe not on PATH; skipping ffprobe_reads_the_streamed_file_with_audio");
        return;
    }
    for codec in [Law::MuLaw, Law::ALaw] {
        let aus = tagged_access_units();
        let tmp = TempFile::new(&format!("av-{codec:?}.mp4"));
        let mut f = std::fs::File::create(&tmp.0).expect("create");
        let mut out = Vec::new();
        let params = VideoParams::from_annexb(FIXTURE).expect("parameter sets");
        let audio = Some(AudioParams { law: codec });
        let mut w = Mp4StreamWriter::new(params, audio, &mut out).expect("writer");
        // Audio and video on one clock; 20 ms audio packets, two per video frame.
        for (n, au) in aus.iter().enumerate() {
            let n = n as u64;
            w.push_video_nals(&au.nals, n * FRAME_TICKS, au.is_key(), &mut out)
                .expect("video");
            for k in 0..2 {
                let at = n * 320 + k * 160;
                w.push_audio(&tone(at), at, &mut out).expect("audio");
            }
            f.write_all(&out).expect("write");
            out.clear();
        }
        let patch = w.finish(&mut out).expect("finish");
        f.write_all(&out).expect("write");
        f.seek(SeekFrom::Start(patch.offset)).expect("seek");
        f.write_all(&patch.bytes).expect("patch");
        drop(f);

        let streams = ffprobe(&tmp.0);
        assert_eq!(streams.len(), 2, "{streams:?}");
        let v = &streams[0];
        assert_eq!(v["codec_name"], "h264");
        assert_eq!(v["nb_read_frames"], "50");
        assert_eq!(v["duration"], "2.000000");
        let a = &streams[1];
        let name = match codec {
            Law::MuLaw => "pcm_mulaw",
            _ => "pcm_alaw",
        };
        assert_eq!(a["codec_name"], name);
        assert_eq!(a["sample_rate"], "8000");
        assert_eq!(a["channels"], 1);
        assert_eq!(a["duration"], "2.000000");
        if have("ffmpeg") {
            assert_eq!(ffmpeg_decode(&tmp.0), "");
        }
        let movie = Movie::parse(&std::fs::read(&tmp.0).expect("read")).expect("parse");
        assert_eq!(movie.audio().expect("audio").sample_count(), 16_000);
    }
}
