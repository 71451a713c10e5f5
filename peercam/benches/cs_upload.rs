//! Cloud upload figures (H.626.4 8.7.1 recording steps, interface Cp;
//! docs/design/cloud-storage.md): N simulated cameras, each recording 2 Mbit/s, upload one
//! 10 s object every 10 s to one real `peercam cs` process, first on the local-directory
//! store, then through s3s-fs (S3 on loopback, in this process), side by side in one run.
//!
//! Each camera speaks Cp as the PU does: `POST /cp/v1/hello` with its device grant (signed
//! with a grant key configured in cs.toml, as a CS alone takes it), then
//! `PUT /cp/v1/o/<key>` with `x-pc-sha256` and a `peercam_cloud::object` body of five 2 s
//! segments; the CS validates, seals with the camera's data key, writes (file and directory
//! fsync, or an S3 PUT with its SHA-256 checksum) and commits the index row before the 201.
//! The figure is the CS's CPU (user + system, from /proc, all its threads) per second of
//! camera media acknowledged, and its inverse: 2 Mbit/s cameras one core keeps up with.
//!
//! `cargo bench --bench cs_upload -- 500 20` (cameras, seconds; default 500 and 20). The
//! local case writes cameras x seconds x 250 KB to a temporary directory (2.5 GB for the
//! default), deleted after the run.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use peercam_cloud::grant::{self, Claims, Kind, Op, Ops};
use peercam_cloud::object::{Object, Segment};
use peercam_cloud::{Prefix, SegmentKey};
use peercam_signal::ps::DeviceKind;
use peercam_store::SegmentBuilder;
use sha2::{Digest as _, Sha256};

const OBJECT_S: u64 = 10;
/// x264 baseline 720p SPS and a PPS.
const SPS: [u8; 25] = [
    0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x24, 0x80,
];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];
/// 2 Mbit/s at 25 fps with an IDR per second.
const IDR_BYTES: usize = 40_000;
const P_BYTES: usize = 8_700;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// (user, system) CPU seconds of `pid`, all threads.
fn cpu_s(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64 / 100.0;
    (get(11), get(12))
}

fn noise() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) | 1
        })
        .collect()
}

/// The five 2 s segments of one 10 s object, starting at 0 (times are shifted per upload:
/// a segment's sample times are relative to its start).
fn template() -> Vec<Segment> {
    let noise = noise();
    (0..OBJECT_S / 2)
        .map(|i| {
            let start = i * 2 * 90_000;
            let mut b = SegmentBuilder::new("cam", 1, None);
            for f in 0..50u64 {
                let n = i * 50 + f;
                let key = n.is_multiple_of(25);
                let size = if key { IDR_BYTES } else { P_BYTES };
                let off = (n as usize * 7919) % (noise.len() - size);
                let mut slice = noise[off..off + size].to_vec();
                slice[0] = if key { 0x65 } else { 0x41 };
                let nals = if key {
                    vec![SPS.to_vec(), PPS.to_vec(), slice]
                } else {
                    vec![slice]
                };
                b.push_video(&nals, start + f * 3600, key).unwrap();
            }
            let d = b.finish(start + 50 * 3600).unwrap();
            Segment {
                start_90k: d.start_90k,
                end_90k: d.end_90k,
                index: d.index,
                data: d.data,
            }
        })
        .collect()
}

fn prefix(i: usize) -> Prefix {
    let mut b = [0x5c; 16];
    b[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Prefix::from_bytes(b)
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

struct Setup {
    cs_id: String,
    signer: SigningKey,
    cameras: usize,
}

impl Setup {
    /// cs.toml for a CS alone: the grant key, one account, every camera and its data key.
    fn toml(&self, port: u16, store: &str) -> String {
        let mut t = format!(
            "device_id = {:?}\nlisten = \"127.0.0.1:{port}\"\n{store}\n\n[[grant_keys]]\nkid = \"bench\"\npublic_key = {:?}\n\n[[accounts]]\naccount = \"acc\"\nquota_bytes = {}\n",
            self.cs_id,
            b64(self.signer.verifying_key().as_bytes()),
            1u64 << 50
        );
        for i in 0..self.cameras {
            let p = prefix(i);
            t.push_str(&format!(
                "\n[[cameras]]\nprefix = \"{p}\"\naccount = \"acc\"\nwrite_kid = \"d1\"\n\n[[data_keys]]\nprefix = \"{p}\"\nkid = \"d1\"\nkey = {:?}\n",
                b64(&[(i % 251) as u8 + 1; 32])
            ));
        }
        t
    }

    fn grant(&self, i: usize) -> String {
        let now = now_ms() / 1000;
        grant::sign(
            &Claims {
                v: grant::VERSION,
                aud: self.cs_id.clone(),
                kind: Kind::Device,
                sub: format!("cam-{i}"),
                pfx: prefix(i),
                ops: Ops::of(&[Op::Put, Op::Prune, Op::State]),
                from_ms: None,
                to_ms: None,
                iat: now - 10,
                exp: now + 900,
                epoch: 1,
                jti: format!("j{i}"),
                kid: "bench".into(),
            },
            &self.signer,
        )
        .unwrap()
    }
}

#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    failed: AtomicU64,
    late: AtomicU64,
    bytes: AtomicU64,
}

/// One camera: hello, then an object every 10 s (phase `phase`) until `until`; the put
/// latencies in ms.
#[allow(clippy::too_many_arguments)]
async fn camera(
    http: reqwest::Client,
    url: String,
    grant: String,
    p: Prefix,
    segments: Arc<Vec<Segment>>,
    (start, phase, until): (Instant, Duration, Instant),
    t0_ms: u64,
    tally: Arc<Tally>,
) -> Vec<f64> {
    tokio::time::sleep_until((start + phase).into()).await;
    let r = http
        .post(format!("{url}/cp/v1/hello"))
        .bearer_auth(&grant)
        .json(&serde_json::json!({ "prefix": p }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "hello refused");
    let mut lat = Vec::new();
    let mut seq = 0u64;
    loop {
        let due = start + phase + Duration::from_secs(seq * OBJECT_S);
        if due >= until {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        // The object that ended now: it started OBJECT_S ago.
        let start_ms = t0_ms + phase.as_millis() as u64 + seq * OBJECT_S * 1000;
        let base = start_ms * 90;
        let o = Object {
            prefix: p,
            seq,
            audio: None,
            sps: SPS.to_vec(),
            pps: PPS.to_vec(),
            segments: segments
                .iter()
                .map(|s| Segment {
                    start_90k: base + s.start_90k,
                    end_90k: base + s.end_90k,
                    index: s.index.clone(),
                    data: s.data.clone(),
                })
                .collect(),
        };
        let body = o.encode().unwrap();
        let sha = hex::encode(Sha256::digest(&body));
        let key = SegmentKey::new(p, start_ms, seq).unwrap().to_string();
        let n = body.len() as u64;
        let t = Instant::now();
        let r = http
            .put(format!("{url}/cp/v1/o/{key}"))
            .bearer_auth(&grant)
            .header("x-pc-sha256", sha)
            .body(body)
            .send()
            .await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        match r.map(|r| r.status().as_u16()) {
            Ok(200 | 201) => {
                tally.acked.fetch_add(1, Ordering::Relaxed);
                tally.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Ok(s) => {
                eprintln!("{key}: {s}");
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("{key}: {e}");
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if Instant::now() > due + Duration::from_secs(OBJECT_S) {
            tally.late.fetch_add(1, Ordering::Relaxed);
        }
        seq += 1;
    }
    lat
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One case: the CS on `store`, `cameras` cameras for `seconds`.
async fn case(name: &str, setup: &Setup, dir: &std::path::Path, store: &str, seconds: u64) {
    let port = free_port();
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, setup.toml(port, store)).unwrap();
    let mut cs: Child = Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["cs", "--config"])
        .arg(&cfg)
        .env("PEERCAM_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(setup.cameras)
        .build()
        .unwrap();
    for _ in 0..400 {
        if http.get(format!("{url}/")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let segments = Arc::new(template());
    let tally = Arc::new(Tally::default());
    let start = Instant::now() + Duration::from_millis(500);
    let until = start + Duration::from_secs(seconds);
    let t0_ms = now_ms() + 500 - OBJECT_S * 1000;
    let pid = cs.id();
    let (u0, s0) = cpu_s(pid);
    let tasks: Vec<_> = (0..setup.cameras)
        .map(|i| {
            let phase = Duration::from_millis(i as u64 * OBJECT_S * 1000 / setup.cameras as u64);
            tokio::spawn(camera(
                http.clone(),
                url.clone(),
                setup.grant(i),
                prefix(i),
                segments.clone(),
                (start, phase, until),
                t0_ms,
                tally.clone(),
            ))
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let wall = start.elapsed().as_secs_f64();
    let (u1, s1) = cpu_s(pid);
    let (user, sys) = (u1 - u0, s1 - s0);
    let _ = cs.kill();
    let _ = cs.wait();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    let acked = tally.acked.load(Ordering::Relaxed);
    let media_s = (acked * OBJECT_S) as f64;
    let cpu = user + sys;
    println!(
        "{name:>8}: {} cameras, {wall:.1} s: {acked} objects acknowledged ({:.0} MB, {} failed, {} late), PUT p50 {:.1} ms p99 {:.1} ms",
        setup.cameras,
        tally.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        tally.failed.load(Ordering::Relaxed),
        tally.late.load(Ordering::Relaxed),
        pct(0.5),
        pct(0.99),
    );
    println!(
        "{name:>8}: CS CPU {cpu:.2} s (user {user:.2}, system {sys:.2}) for {media_s:.0} camera-s: {:.2} CPU-ms per camera-s, {:.0} cameras per core ({:.2} cores busy)",
        cpu * 1000.0 / media_s,
        media_s / cpu,
        cpu / wall,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let cameras = args.first().map_or(500, |&v| v as usize).max(1);
    let seconds = args.get(1).copied().unwrap_or(20).max(OBJECT_S);
    let setup = Setup {
        cs_id: peercam_test::new_identity(DeviceKind::Cs)
            .device_id
            .to_string(),
        signer: SigningKey::from_bytes(&[7; 32]),
        cameras,
    };
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    case(
        "localdir",
        &setup,
        dir.path(),
        &format!(
            "store_dir = {objects:?}\nindex = {:?}",
            dir.path().join("dir.db")
        ),
        seconds,
    )
    .await;
    let _ = std::fs::remove_dir_all(&objects);
    let s3dir = dir.path().join("s3s");
    let server = peercam_test::s3::S3sFs::start(&s3dir, "bench")
        .await
        .unwrap();
    let store = format!(
        "index = {:?}\nstore = {{ kind = \"s3\", endpoint = {:?}, bucket = \"bench\", credentials_file = {:?} }}",
        dir.path().join("s3.db"),
        server.endpoint(),
        peercam_test::s3::credentials_file(&s3dir).unwrap()
    );
    case("s3s-fs", &setup, dir.path(), &store, seconds).await;
}
