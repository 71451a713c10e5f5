//! Cloud playback figures (H.626.4 8.7.1 playback; docs/design/cloud-storage.md, slice 3):
//! the time until the player holds the first GOP of a seek, that is `segment_at` and `read`
//! of [`peercam_cs::CloudSource`] (index lookup, ranged GET, envelope opened with the
//! camera's data key, object decoded), p50 and p95 over random instants of one hour of a
//! 2 Mbit/s camera, **cold** (empty cache: every seek fetches) and **warm** (the object is
//! cached). Over `LocalDir` and over s3s-fs on loopback (an S3 round trip).
//!
//! Then the whole span exported to MP4 from a cold cache: wall time and CPU.
//!
//! `cargo bench --bench cs_playback -- 200 600` (seeks per case, seconds stored; default
//! 200 and 600)
//!
//! The media is synthetic (random slice bytes behind a real SPS/PPS), 10 s objects of five
//! 2 s segments, sealed as the CS seals uploads.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use peercam_cloud::object::{Object, Segment};
use peercam_cloud::{Prefix, SegmentKey, envelope};
use peercam_cs::index::{Camera, ObjectRow, Opened};
use peercam_cs::{Backend, CloudSource, Index, LocalDir, S3Config, S3Store, StaticKeys};
use peercam_recorder::SegmentSource as _;

use peercam_store::SegmentBuilder;
use sha2::{Digest as _, Sha256};

const CAM: Prefix = Prefix::from_bytes([0x31; 16]);
const DEK: [u8; 32] = [0x5a; 32];
const T0_MS: u64 = 1_795_392_000_000;
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

/// One 2 s segment starting at frame `f0` (absolute 90 kHz `start`).
fn segment(start: u64, f0: u64, noise: &[u8]) -> Segment {
    let mut b = SegmentBuilder::new("cam", 1, None);
    for f in 0..50u64 {
        let n = f0 + f;
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
}

/// One hour of objects, sealed and indexed.
async fn fill(backend: &dyn Backend, index: &Index, span_s: u64) {
    index.set_account("acc", 1 << 40).await.unwrap();
    index
        .set_camera(&Camera {
            prefix: CAM,
            account: "acc".into(),
            epoch: 1,
            write_kid: "d1".into(),
        })
        .await
        .unwrap();
    let noise = noise();
    for seq in 0..span_s / OBJECT_S {
        let start_ms = T0_MS + seq * OBJECT_S * 1000;
        let segments = (0..OBJECT_S / 2)
            .map(|i| segment((start_ms + i * 2000) * 90, seq * 250 + i * 50, &noise))
            .collect();
        let o = Object {
            prefix: CAM,
            seq,
            audio: None,
            sps: SPS.to_vec(),
            pps: PPS.to_vec(),
            segments,
        };
        let plain = o.encode().unwrap();
        let sealed = envelope::seal(&DEK, "d1", [seq as u8; 32], &plain).unwrap();
        let key = SegmentKey::new(CAM, start_ms, seq).unwrap().to_string();
        let row = ObjectRow {
            key: key.clone(),
            prefix: CAM,
            seq,
            start_ms,
            end_ms: start_ms + OBJECT_S * 1000,
            bytes: sealed.len() as u64,
            body_sha256: hex::encode(Sha256::digest(&plain)),
            stored_sha256: hex::encode(Sha256::digest(&sealed)),
            backfilled: false,
            kid: "d1".into(),
        };
        assert_eq!(
            index.open_intent(&row, "acc", T0_MS).await.unwrap(),
            Opened::Intent
        );
        backend.put(&key, sealed).await.unwrap();
        index.commit_intent(&key).await.unwrap().unwrap();
    }
}

fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
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

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// `n` seeks at pseudo-random instants; `cold` empties the cache before each.
async fn seeks(s: &CloudSource, n: usize, span_s: u64, cold: bool) -> (f64, f64) {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = T0_MS + x % (span_s * 1000 - 5000);
        if cold {
            s.clear_cache();
        }
        let t = Instant::now();
        let seg = s.segment_at("cam", at).await.unwrap().unwrap();
        let media = s.read(&seg).await.unwrap();
        assert!(media.video[0].key);
        times.push(t.elapsed());
    }
    times.sort();
    (pct(&times, 0.5), pct(&times, 0.95))
}

async fn case(
    name: &str,
    backend: Arc<dyn Backend>,
    dir: &std::path::Path,
    (n, span_s): (usize, u64),
) {
    let index = Index::open(&dir.join(format!("{name}.db"))).await.unwrap();
    let t = Instant::now();
    fill(backend.as_ref(), &index, span_s).await;
    let filled = t.elapsed();
    let mut keys = StaticKeys::new();
    keys.insert(CAM, "d1", DEK);
    let prefixes = Arc::new(RwLock::new(HashMap::from([("cam".to_owned(), CAM)])));
    let s = CloudSource::new(
        index.clone(),
        backend,
        Arc::new(keys),
        prefixes,
        256 << 20,
        dir.join("exports"),
    );
    let (c50, c95) = seeks(&s, n, span_s, true).await;
    // Warm: every object loaded once (the whole span fits the cache), then the same
    // instants again.
    s.segments("cam", T0_MS, T0_MS + span_s * 1000)
        .await
        .unwrap();
    let (w50, w95) = seeks(&s, n, span_s, false).await;
    println!(
        "{name:>8}: {span_s} s stored in {:.1} s; first GOP cold p50 {c50:.2} ms p95 {c95:.2} ms; warm p50 {w50:.2} ms p95 {w95:.2} ms ({n} seeks)",
        filled.as_secs_f64()
    );
    // Export: the whole span to MP4 from a cold cache (what a download of it costs the CS).
    s.clear_cache();
    let out = dir.join(format!("{name}.mp4"));
    let (t, cpu) = (Instant::now(), cpu_s());
    let sum = peercam_recorder::source::export_mp4(
        &s,
        "cam",
        (T0_MS, T0_MS + span_s * 1000),
        &out,
        |_, _| {},
    )
    .await
    .unwrap();
    let (wall, cpu) = (t.elapsed().as_secs_f64(), cpu_s() - cpu);
    println!(
        "{name:>8}: export of {span_s} s: {} frames, {:.0} MB in {wall:.2} s ({:.0} MB/s), {cpu:.2} CPU-s (the bench process, store included)",
        sum.frames,
        sum.bytes as f64 / 1e6,
        sum.bytes as f64 / 1e6 / wall
    );
    let _ = std::fs::remove_file(out);
    index.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().map_or(200, |&v| v as usize);
    let span_s = args.get(1).copied().unwrap_or(600).max(20);
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalDir::open(dir.path().join("objects")).await.unwrap());
    case("localdir", local, dir.path(), (n, span_s)).await;
    let s3dir = dir.path().join("s3s");
    let server = peercam_test::s3::S3sFs::start(&s3dir, "bench")
        .await
        .unwrap();
    let mut cfg = S3Config::new(server.endpoint(), "bench");
    cfg.credentials_file = Some(peercam_test::s3::credentials_file(&s3dir).unwrap());
    let s3 = Arc::new(S3Store::open(&cfg).unwrap());
    case("s3s-fs", s3, dir.path(), (n, span_s)).await;
}
