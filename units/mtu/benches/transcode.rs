//! The MTU's transcoder (7.3) beside ffmpeg on the same job, in one run: a 1280x720 25 fps
//! H.264 stream (10 s, made here with OpenH264: a moving gradient with a grid) turned into
//! CIF-fitting 352x198 at 10 fps and 400 kbit/s. peercam: `Transcoder::push` over the
//! stream's RTP packets (depacketize, decode, area-average scale, frame-rate decimation,
//! encode, packetize), CPU time of this process. ffmpeg: decode, scale, `-r 10`, libx264
//! veryfast at 400k, CPU time from `-benchmark` (all its threads).
//!
//! `cargo bench -p peercam-mtu --bench transcode`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::time::Instant;

use openh264::OpenH264API;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, RateControlMode, UsageType};
use openh264::formats::YUVBuffer;
use peercam_media::annexb::split as split_annex_b;
use peercam_mtu::transcode::{Source, Transcoder, target};
use peercam_rtp::RtpHeader;
use peercam_rtp::h264::H264Packetizer;
use peercam_signal::play::Caps;

const W: usize = 1280;
const H: usize = 720;
const FRAMES: u32 = 250;

/// CPU seconds (user + system) of this process so far, from /proc.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn main() {
    // The camera's stream: Annex B for ffmpeg, RTP for the transcoder.
    let config = EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .bitrate(BitRate::from_bps(2_000_000))
        .max_frame_rate(FrameRate::from_hz(25.0))
        .rate_control_mode(RateControlMode::Bitrate)
        .skip_frames(false);
    let mut enc = Encoder::with_api_config(OpenH264API::from_source(), config).unwrap();
    let mut annexb = Vec::new();
    let mut rtp = Vec::new();
    let packetizer = H264Packetizer::default();
    let mut seq = 0u16;
    let mut yuv = vec![0u8; W * H * 3 / 2];
    for n in 0..FRAMES {
        for y in 0..H {
            for x in 0..W {
                let grid = if (x + n as usize * 4) % 64 < 2 || y % 64 < 2 {
                    0
                } else {
                    1
                };
                let ramp = ((x + n as usize * 4) % W) * 200 / W;
                yuv[y * W + x] = (ramp as u8 + 16) * grid;
            }
        }
        for (i, p) in yuv[W * H..].iter_mut().enumerate() {
            *p = 128u8.wrapping_add((i % (W / 2) / 8) as u8);
        }
        let buf = YUVBuffer::from_vec(yuv.clone(), W, H);
        let bits = enc.encode(&buf).unwrap().to_vec();
        annexb.extend_from_slice(&bits);
        let nals: Vec<&[u8]> = split_annex_b(&bits).collect();
        for pl in packetizer.packetize(&nals, n * 3600).unwrap() {
            let mut pkt = Vec::new();
            RtpHeader {
                marker: pl.marker,
                payload_type: 96,
                sequence: seq,
                timestamp: pl.timestamp,
                ssrc: 1,
                ..RtpHeader::default()
            }
            .write(&pl.data, &mut pkt)
            .unwrap();
            seq = seq.wrapping_add(1);
            rtp.push(pkt);
        }
    }
    let caps = Caps {
        max_width: 352,
        max_height: 288,
        max_fps: 10,
        max_kbps: 400,
        ..Caps::default()
    };
    let t = target(
        Source {
            width: W as u32,
            height: H as u32,
            fps: Some(25),
        },
        &caps,
    )
    .unwrap();
    // peercam.
    let mut tc = Transcoder::new(t).unwrap();
    let (c0, w0) = (cpu_s(), Instant::now());
    let mut out_bytes = 0usize;
    for p in &rtp {
        out_bytes += tc.push(p).iter().map(|o| o.data.len()).sum::<usize>();
    }
    let (ours_cpu, ours_wall) = (cpu_s() - c0, w0.elapsed().as_secs_f64());
    let (decoded, encoded) = tc.frames;
    // ffmpeg on the same stream.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.264");
    std::fs::write(&input, &annexb).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-nostats",
            "-benchmark",
            "-f",
            "h264",
            "-i",
        ])
        .arg(&input)
        .args([
            "-vf",
            &format!("scale={}:{}", t.width, t.height),
            "-r",
            "10",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", "400k", "-f", "h264",
        ])
        .arg(dir.path().join("out.264"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let field = |k: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.trim_end_matches('s').parse().ok())
            .unwrap_or(f64::NAN)
    };
    let ff_cpu = field("utime=") + field("stime=");
    let ff_wall = field("rtime=");
    println!(
        "{FRAMES} frames of {W}x{H} at 25 fps -> {}x{} at {} fps, {} kbit/s",
        t.width, t.height, t.fps, t.kbps
    );
    println!();
    println!("| | CPU s | wall s | CPU ms per input frame | input frames per CPU-s |");
    println!("|---|---:|---:|---:|---:|");
    for (name, cpu, wall) in [
        ("peercam MTU (OpenH264)", ours_cpu, ours_wall),
        ("ffmpeg (libx264 veryfast)", ff_cpu, ff_wall),
    ] {
        println!(
            "| {name} | {cpu:.2} | {wall:.2} | {:.2} | {:.0} |",
            cpu * 1000.0 / f64::from(FRAMES),
            f64::from(FRAMES) / cpu
        );
    }
    println!();
    println!(
        "peercam decoded {decoded}, encoded {encoded} frames ({} kB out); CPU ratio peercam/ffmpeg {:.2}x",
        out_bytes / 1000,
        ours_cpu / ff_cpu
    );
}
