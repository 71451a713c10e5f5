//! Recording store figures (H.626.4 8.7.2; issue "Recording and trick-play playback"):
//!
//! 1. **Concurrent streams**: N cameras at 2 Mbit/s, 25 fps, one IDR per second, written
//!    for 10 s in real time through the NVR's path (segment builder, group commit with file
//!    and directory fsync and a SQLite commit): CPU per second, disk bytes per second,
//!    commit latency, segments lost.
//! 2. **Seek**: time to find and read the segment at a random instant and have its first
//!    GOP ready (what the NVR does on `PLAY Range: clock=`), p50 and p99.
//! 3. **Export**: one hour of one 2 Mbit/s camera to MP4, wall time and throughput: the
//!    copying writer ("before"), the plan over the segment files written with
//!    `copy_file_range`, and `cp` of the same segment files, alternated in one run with the
//!    ratio; then the plan as an HTTP download on loopback (`sendfile`): time to the first
//!    byte of the body and in total, the download's packets counted by ffprobe.
//!
//! `cargo bench --bench recording -- 50 100 200` (stream counts; default 50 100 200)
//!
//! The media is synthetic (random slice bytes behind a real SPS/PPS), so the figures are
//! the store's, not RTSP ingest's.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use peercam_store::{Draft, SegmentBuilder, Store, StoreConfig, export_mp4};
use tokio::sync::mpsc;

/// x264 baseline 720p SPS and a PPS.
const SPS: [u8; 25] = [
    0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x24, 0x80,
];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];
/// 2 Mbit/s at 25 fps with an IDR per second: a 40 KB IDR and 24 P frames of 8.7 KB.
const IDR_BYTES: usize = 40_000;
const P_BYTES: usize = 8_700;

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

fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn frame(n: u64, noise: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let key = n.is_multiple_of(25);
    let size = if key { IDR_BYTES } else { P_BYTES };
    let off = (n as usize * 7919) % (noise.len() - size);
    let mut slice = noise[off..off + size].to_vec();
    slice[0] = if key { 0x65 } else { 0x41 };
    if key {
        (vec![SPS.to_vec(), PPS.to_vec(), slice], true)
    } else {
        (vec![slice], false)
    }
}

fn noise() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // No start-code-like zeros: real slices are escaped.
            (x as u8) | 1
        })
        .collect()
}

async fn streams(store: Store, n: usize, seconds: u64) {
    let (tx, mut rx) = mpsc::channel::<Draft>(1024);
    let noise = std::sync::Arc::new(noise());
    let t0 = Instant::now();
    let start_90k = 1_795_392_000_000u64 * 90;
    for cam in 0..n {
        let tx = tx.clone();
        let noise = noise.clone();
        tokio::spawn(async move {
            let name = format!("cam-{cam:04}");
            let mut b = SegmentBuilder::new(&name, 1, None);
            let mut tick = tokio::time::interval(Duration::from_millis(40));
            for f in 0..seconds * 25 {
                tick.tick().await;
                let t = start_90k + f * 3600;
                let (nals, key) = frame(f + cam as u64, &noise);
                if key && b.span_90k() >= 2 * 90_000 - 3600 {
                    let done = std::mem::replace(&mut b, SegmentBuilder::new(&name, 1, None));
                    if let Some(d) = done.finish(t) {
                        let _ = tx.send(d).await;
                    }
                }
                if !b.is_empty() || key {
                    b.push_video(&nals, t, key).unwrap();
                }
            }
        });
    }
    drop(tx);
    let (cpu0, io0) = (cpu_s(), write_bytes());
    let mut latencies = Vec::new();
    let mut committed = 0usize;
    let mut failed = 0usize;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 64 {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let t = Instant::now();
        for r in store.commit(batch).await {
            if r.is_ok() {
                committed += 1;
            } else {
                failed += 1;
            }
        }
        latencies.push(t.elapsed());
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu, io) = (cpu_s() - cpu0, write_bytes() - io0);
    latencies.sort_unstable();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{n:>4} streams x 2 Mbit/s for {seconds} s: {committed} segments committed, {failed} failed; \
         CPU {:.2} s/s ({:.1} %/stream of one core); disk writes {:.1} MB/s (media {:.1} MB/s); \
         group commit p50 {:?}, p99 {:?}, {} groups",
        cpu / wall,
        cpu / wall * 100.0 / n as f64,
        io as f64 / wall / 1e6,
        n as f64 * 0.25,
        p(0.5),
        p(0.99),
        latencies.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![50, 100, 200]
    } else {
        counts
    };
    let base = std::env::temp_dir().join(format!("peercam-bench-rec-{}", std::process::id()));
    for n in counts {
        let dir = base.join(format!("s{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, _) = Store::open(StoreConfig::new(&dir)).await.unwrap();
        streams(store, n, 10).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    // One hour of one camera, written as fast as the disk takes it.
    let dir = base.join("hour");
    let _ = std::fs::remove_dir_all(&dir);
    let (store, _) = Store::open(StoreConfig::new(&dir)).await.unwrap();
    let noise = noise();
    let start_90k = 1_795_392_000_000u64 * 90;
    let t = Instant::now();
    let mut b = SegmentBuilder::new("hour", 1, None);
    let mut batch = Vec::new();
    for f in 0..3600 * 25u64 {
        let ts = start_90k + f * 3600;
        let (nals, key) = frame(f, &noise);
        if key && b.span_90k() >= 2 * 90_000 - 3600 {
            let done = std::mem::replace(&mut b, SegmentBuilder::new("hour", 1, None));
            batch.extend(done.finish(ts));
            if batch.len() == 64 {
                store.commit(std::mem::take(&mut batch)).await;
            }
        }
        b.push_video(&nals, ts, key).unwrap();
    }
    batch.extend(b.finish(start_90k + 3600 * 90_000));
    store.commit(batch).await;
    println!("filled one hour (900 MB) in {:?}", t.elapsed());

    // Seek: random instants in the hour.
    let mut seeks = Vec::new();
    let mut x = 12345u64;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = start_90k / 90 + x % 3_600_000;
        let t = Instant::now();
        let seg = store.segment_at("hour", at).await.unwrap().unwrap();
        let media = store.read(&seg).await.unwrap();
        assert!(media.video[0].key);
        seeks.push(t.elapsed());
    }
    seeks.sort_unstable();
    println!(
        "seek (find segment, read, decode its index and frames): p50 {:?}, p99 {:?} over {}",
        seeks[seeks.len() / 2],
        seeks[seeks.len() * 99 / 100],
        seeks.len()
    );

    let from_ms = start_90k / 90;
    let to_ms = from_ms + 3_600_000;
    let out = base.join("hour.mp4");
    let sync = || {
        let _ = std::process::Command::new("sync").status();
    };
    sync();
    let t = Instant::now();
    let s = export_mp4(&store, "hour", from_ms, to_ms, &out, |_, _| {})
        .await
        .unwrap();
    let took = t.elapsed();
    println!(
        "before (copying writer, fsync at the end): export of one hour: {} frames, {:.0} MB in {:?} ({:.0} MB/s)",
        s.frames,
        s.bytes as f64 / 1e6,
        took,
        s.bytes as f64 / 1e6 / took.as_secs_f64()
    );
    let _ = std::fs::remove_file(&out);

    // The same segment files, in order, for `cp`.
    let segs = store.segments("hour", from_ms, to_ms).await.unwrap();
    let root = store.config().root.clone();
    let seg_files: Vec<_> = segs.iter().map(|s| root.join(&s.path)).collect();
    let seg_bytes: u64 = segs.iter().map(|s| s.bytes).sum();
    let cp_dir = base.join("cp");
    let (mut new_t, mut cp_t) = (Vec::new(), Vec::new());
    let mut frames = 0;
    for _ in 0..3 {
        sync();
        let t = Instant::now();
        let plan = store.plan_export("hour", from_ms, to_ms).await.unwrap();
        let planned = t.elapsed();
        let pieces = plan.pieces.len();
        let s = tokio::task::spawn_blocking({
            let out = out.clone();
            move || plan.write_file(&out, |_, _| {})
        })
        .await
        .unwrap()
        .unwrap();
        new_t.push(t.elapsed());
        frames = s.frames;
        println!(
            "export plan: {pieces} pieces in {planned:?}; file {:.0} MB",
            s.bytes as f64 / 1e6
        );
        let _ = std::fs::remove_file(&out);
        sync();
        std::fs::create_dir_all(&cp_dir).unwrap();
        let t = Instant::now();
        let st = std::process::Command::new("cp")
            .args(&seg_files)
            .arg("-t")
            .arg(&cp_dir)
            .status()
            .unwrap();
        cp_t.push(t.elapsed());
        assert!(st.success());
        let _ = std::fs::remove_dir_all(&cp_dir);
    }
    new_t.sort_unstable();
    cp_t.sort_unstable();
    println!(
        "export one hour to a file, no copy through user space: {frames} frames, median {:?} (runs {new_t:?}); \
         cp of the {} segment files ({:.0} MB): median {:?} (runs {cp_t:?}); ratio {:.2}x",
        new_t[1],
        seg_files.len(),
        seg_bytes as f64 / 1e6,
        cp_t[1],
        new_t[1].as_secs_f64() / cp_t[1].as_secs_f64()
    );

    // The HTTP download: head at once, then the pieces with sendfile (what the recorder's
    // `GET /export/` sends).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_store = store.clone();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut req = [0u8; 1024];
        let _ = tcp.read(&mut req).await.unwrap();
        let plan = server_store
            .plan_export("hour", from_ms, to_ms)
            .await
            .unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\n\r\n",
            plan.len()
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        plan.send(&mut tcp, 0, plan.len()).await.unwrap();
    });
    let got = base.join("download.mp4");
    sync();
    let t = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /export/hour.mp4 HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let mut first = None;
    let mut file = std::fs::File::create(&got).unwrap();
    let mut body = 0u64;
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        if first.is_none() {
            head.extend_from_slice(data);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let rest = head.len() - (end + 4);
            data = &buf[n - rest..n];
            if rest > 0 {
                first = Some(t.elapsed());
            }
        } else if first.is_none() && !data.is_empty() {
            first = Some(t.elapsed());
        }
        std::io::Write::write_all(&mut file, data).unwrap();
        body += data.len() as u64;
    }
    let total = t.elapsed();
    server.await.unwrap();
    drop(file);
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(&got)
        .output();
    let packets = probe
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("ffprobe not run: {e}"));
    println!(
        "HTTP download of one hour on loopback: first body byte after {:?}, all {:.0} MB after {total:?} ({:.0} MB/s); ffprobe counts {packets} video packets (expected {frames})",
        first.unwrap_or_default(),
        body as f64 / 1e6,
        body as f64 / 1e6 / total.as_secs_f64()
    );
    let _ = std::fs::remove_file(&got);
    let _ = std::fs::remove_dir_all(&base);
}
