//! RTSP fan-out: one camera stream to N players over TCP interleaved, our PU against
//! GStreamer's RTSP server (shared media factory) serving the same H.264 stream, side by side
//! in one run. Both servers are separate processes; their CPU time is read from /proc. The
//! players are ffmpeg (`-c copy` to /dev/null), so no decoding on either side.
//!
//! A third row per size is the MTU's relay (H.626.4 7.3): a `peercam mtu` process taking one
//! upstream from the same camera and fanning it out to the N players (its CPU only).
//!
//! A fourth row per size is the floor (issue 20, `support/floor.rs`): this bench binary
//! started again as `--floor PORT CLIP`, a one-thread server making exactly one `write` per
//! access unit per viewer of the same `$`-framed RTP bytes and nothing else. Every server's
//! CPU per delivered Gbit is given as a ratio to the floor's in the same run.
//!
//! `cargo bench --bench fanout -- 1 10 100` (needs ffmpeg and python3-gst-1.0 +
//! gir1.2-gst-rtsp-server-1.0)
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peercam_signal::cm::PlayRequest;
use peercam_test::Cluster;

#[path = "support/floor.rs"]
mod floor;

const SECONDS: u64 = 15;

fn cpu_s(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    t as f64 / 100.0
}

/// The host's busy and total jiffies (all CPUs), from /proc/stat.
fn host_jiffies() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One server's figures for one size.
struct Run {
    cpu: f64,
    bytes: u64,
    rss_kib: u64,
    /// The whole host's CPU use meanwhile, in % of all its cores (players included).
    host_busy: f64,
}

/// Runs `urls.len()` ffmpeg players for SECONDS; returns the server's CPU s, the bytes
/// received, its peak RSS and how busy the host was.
fn run_players(server_pid: u32, urls: &[String]) -> Run {
    let c0 = cpu_s(server_pid);
    let h0 = host_jiffies();
    // GStreamer's server drops simultaneous connects (its listen backlog is 5): both servers
    // get the same 0.2 s stagger so the comparison measures streaming, not that.
    let stagger = if urls.len() > 10 {
        Duration::from_millis(200)
    } else {
        Duration::ZERO
    };
    let mut players: Vec<Child> = urls
        .iter()
        .map(|u| {
            std::thread::sleep(stagger);
            Command::new("ffmpeg")
                .args([
                    "-nostdin",
                    "-v",
                    "error",
                    "-rtsp_transport",
                    "tcp",
                    "-i",
                    u,
                    "-t",
                    &SECONDS.to_string(),
                    "-c",
                    "copy",
                    "-f",
                    "h264",
                    "-y",
                    "/dev/null",
                    "-progress",
                    "pipe:1",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut rss = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(SECONDS) {
        rss = rss.max(rss_kib(server_pid));
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut each: Vec<u64> = Vec::new();
    // A player that got no stream never ends by itself: give each 10 s more, then stop it.
    let grace = Instant::now() + Duration::from_secs(10);
    for p in &mut players {
        while Instant::now() < grace && matches!(p.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = p.kill();
        let out = std::mem::take(&mut p.stdout);
        let _ = p.wait();
        if let Some(mut o) = out {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
            each.push(
                s.lines()
                    .filter_map(|l| l.strip_prefix("total_size="))
                    .filter_map(|v| v.trim().parse::<u64>().ok())
                    .max()
                    .unwrap_or(0),
            );
        }
    }
    let bytes = each.iter().sum();
    // Who got less: per player kB received (min, tenth, median, max), and how many got none.
    each.sort_unstable();
    let at = |q: usize| each.get(each.len() * q / 100).copied().unwrap_or(0) / 1000;
    eprintln!(
        "server {server_pid}: {} players, kB min {} p10 {} median {} max {}, none: {}",
        each.len(),
        at(0),
        at(10),
        at(50),
        each.last().copied().unwrap_or(0) / 1000,
        each.iter().filter(|b| **b == 0).count()
    );
    let cpu = cpu_s(server_pid) - c0;
    let h1 = host_jiffies();
    Run {
        cpu,
        bytes,
        rss_kib: rss,
        host_busy: 100.0 * (h1.0 - h0.0) as f64 / (h1.1 - h0.1).max(1) as f64,
    }
}

fn main() {
    let _ = rlimit::increase_nofile_limit(65_536);
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--floor") {
        let port = args[i + 1].parse().unwrap();
        floor::run(port, std::path::Path::new(&args[i + 2]));
        return;
    }
    let ns: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let ns = if ns.is_empty() { vec![1, 10, 100] } else { ns };
    let dir = tempfile::tempdir().unwrap();
    let clip264 = dir.path().join("clip.264");
    let clipmp4 = dir.path().join("clip.mp4");
    let ok = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=1280x720:rate=25",
            "-t",
            "30",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args([
            "-profile:v",
            "baseline",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "50",
            "-bf",
            "0",
            "-b:v",
            "2M",
            "-f",
            "h264",
        ])
        .arg(&clip264)
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-framerate", "25", "-i"])
            .arg(&clip264)
            .args(["-c", "copy", "-movflags", "+faststart"])
            .arg(&clipmp4)
            .status()
            .unwrap()
            .success()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (c, owner, dev, mut pu) = rt.block_on(async {
        let c = Cluster::start(1).await.unwrap();
        let ids = c.provision(1).await.unwrap();
        let id = &ids[0];
        let rtsp_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pu_toml = format!(
            "identity = {:?}\nscu_url = {:?}\nplatform_ca = {:?}\nrtsp_listen = \"127.0.0.1:{rtsp_port}\"\nmax_sessions = 256\nsource_file = {:?}\n",
            c.identity_path(&id.device_id),
            c.scu_url(0),
            c.pki.ca_cert,
            clip264
        );
        let path = c.path().join("pu.toml");
        std::fs::write(&path, pu_toml).unwrap();
        let pu = Command::new(env!("CARGO_BIN_EXE_peercam"))
            .args(["pu", "--config"])
            .arg(&path)
            .env("PEERCAM_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        c.wait_online(&id.device_id, true, Duration::from_secs(20)).await.unwrap();
        let owner = c.owner("+15550990001").await.unwrap();
        c.bind(&owner, id).await.unwrap();
        (c, owner, id.device_id.to_string(), pu)
    });
    // The MTU, as its own process.
    let mut mtu = rt.block_on(async {
        let mid = peercam_test::new_identity(peercam_signal::ps::DeviceKind::Mtu);
        c.admin
            .provision(vec![peercam_test::provision_record(&mid)])
            .await
            .unwrap();
        let ident = c.path().join("mtu.identity.toml");
        std::fs::write(&ident, mid.to_toml()).unwrap();
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mtu_toml = format!(
            "identity = {:?}\nscu_url = {:?}\nplatform_ca = {:?}\ntls_cert = {:?}\ntls_key = {:?}\nrtsp_listen = \"127.0.0.1:{}\"\ntunnel_listen = \"127.0.0.1:{}\"\nreport_ms = 500\n",
            ident, c.scu_url(0), c.pki.ca_cert, c.pki.server_cert, c.pki.server_key, free(), free()
        );
        let path = c.path().join("mtu.toml");
        std::fs::write(&path, mtu_toml).unwrap();
        let mtu = Command::new(env!("CARGO_BIN_EXE_peercam"))
            .args(["mtu", "--config"])
            .arg(&path)
            .env(
                "PEERCAM_LOG",
                std::env::var("FANOUT_MTU_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::null())
            .stderr(
                std::env::var_os("FANOUT_MTU_LOG_FILE")
                    .and_then(|f| std::fs::File::create(f).ok())
                    .map_or_else(Stdio::null, Stdio::from),
            )
            .spawn()
            .unwrap();
        c.wait_online(&mid.device_id, true, Duration::from_secs(20)).await.unwrap();
        mtu
    });
    let gst_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/support/gst_rtsp.py");
    let mut gst = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(gst_port.to_string())
        .arg(&clipmp4)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let floor_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut floor = Command::new(std::env::current_exe().unwrap())
        .arg("--floor")
        .arg(floor_port.to_string())
        .arg(&clip264)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "load average before: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    println!(
        "| players | server | CPU s over {SECONDS} s | delivered Mbit/s | CPU s per delivered Gbit | peak RSS MiB | host busy % | ratio to floor |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for n in ns {
        let urls: Vec<String> = rt.block_on(async {
            let mut v = Vec::new();
            for _ in 0..n {
                // Video only, as GStreamer serves the clip.
                let req = PlayRequest {
                    audio: Some(None),
                    ..PlayRequest::default()
                };
                v.push(owner.play(&dev, &req).await.unwrap().url);
            }
            v
        });
        let ours = run_players(pu.id(), &urls);
        let relay_urls: Vec<String> = rt.block_on(async {
            let mut v = Vec::new();
            while v.len() < n {
                let req = PlayRequest {
                    audio: Some(None),
                    ..PlayRequest::default()
                };
                let p = owner.play(&dev, &req).await.unwrap();
                match p
                    .paths
                    .into_iter()
                    .find(|x| x.kind == peercam_signal::relay::PathKind::Relay)
                {
                    Some(r) => v.push(r.url),
                    None => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            v
        });
        let relay = run_players(mtu.id(), &relay_urls);
        let gst_urls: Vec<String> = (0..n)
            .map(|_| format!("rtsp://127.0.0.1:{gst_port}/test"))
            .collect();
        let gst_run = run_players(gst.id(), &gst_urls);
        let floor_urls: Vec<String> = (0..n)
            .map(|_| format!("rtsp://127.0.0.1:{floor_port}/floor"))
            .collect();
        let floor_run = run_players(floor.id(), &floor_urls);
        let per_gbit = |r: &Run| r.cpu / (r.bytes as f64 * 8.0 / 1e9).max(1e-9);
        let f = per_gbit(&floor_run);
        for (name, r) in [
            ("floor", &floor_run),
            ("peercam PU", &ours),
            ("peercam MTU relay", &relay),
            ("GStreamer", &gst_run),
        ] {
            let g = per_gbit(r);
            println!(
                "| {n} | {name} | {:.2} | {:.1} | {g:.2} | {} | {:.0} | {:.2} |",
                r.cpu,
                r.bytes as f64 * 8.0 / 1e6 / SECONDS as f64,
                r.rss_kib / 1024,
                r.host_busy,
                g / f
            );
        }
    }
    let _ = pu.kill();
    let _ = pu.wait();
    let _ = gst.kill();
    let _ = gst.wait();
    let _ = mtu.kill();
    let _ = mtu.wait();
    let _ = floor.kill();
    let _ = floor.wait();
    rt.block_on(c.stop());
}
