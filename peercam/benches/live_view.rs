//! Time to first frame (H.626.4 8.4): from the CU's play request to the CMU until the first
//! complete IDR access unit has arrived at the player, over loopback with the whole platform
//! (token minted by the CMU, checked PU -> SCU -> CMU) in the path. 100 plays, p50 and p99.
//!
//! `cargo bench --bench live_view -- 100`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use peercam_rtp::{H264Depacketizer, RtpPacket};
use peercam_signal::cm::PlayRequest;
use peercam_test::Cluster;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    if let Some(len) = text.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse::<usize>().unwrap())
    }) {
        let mut body = vec![0u8; len];
        tcp.read_exact(&mut body).await.unwrap();
    }
    text
}

/// One play: returns the time from the play request to the first complete IDR.
async fn play_once(owner: &peercam_cu::Client, dev: &str) -> Duration {
    let t0 = Instant::now();
    let req = PlayRequest {
        max_width: Some(352),
        max_height: Some(288),
        max_fps: Some(25),
        max_kbps: None,
        audio: Some(None),
    };
    let url = owner.play(dev, &req).await.unwrap().url;
    let hostport = url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let base = url.split('?').next().unwrap().to_owned();
    let mut tcp = TcpStream::connect(&hostport).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_head(&mut tcp).await;
    tcp.write_all(format!("SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n").as_bytes()).await.unwrap();
    let s = read_head(&mut tcp).await;
    let session = s
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    tcp.write_all(
        format!("PLAY {base}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    read_head(&mut tcp).await;
    let mut depack = H264Depacketizer::new();
    loop {
        let mut hdr = [0u8; 4];
        tcp.read_exact(&mut hdr).await.unwrap();
        let mut pkt = vec![0u8; usize::from(u16::from_be_bytes([hdr[2], hdr[3]]))];
        tcp.read_exact(&mut pkt).await.unwrap();
        if hdr[1] != 0 {
            continue;
        }
        depack.push(&RtpPacket::parse(&pkt).unwrap()).unwrap();
        while let Some(au) = depack.poll() {
            if au
                .nals
                .iter()
                .any(|n| n.first().is_some_and(|b| b & 0x1f == 5))
            {
                return t0.elapsed();
            }
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Cluster::start(1).await.unwrap();
        let ids = c.provision(1).await.unwrap();
        let (_pu, _sd) = c.start_pu_online(&ids[0], 0).await.unwrap();
        let owner = c.owner("+15550900001").await.unwrap();
        c.bind(&owner, &ids[0]).await.unwrap();
        let dev = ids[0].device_id.to_string();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cold = play_once(&owner, &dev).await;
        let mut warm = Vec::with_capacity(n);
        for _ in 0..n {
            warm.push(play_once(&owner, &dev).await);
        }
        warm.sort();
        println!("| plays | cold start (encoder not running) | p50 | p99 | max |");
        println!("|---:|---:|---:|---:|---:|");
        println!(
            "| {n} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            cold.as_secs_f64() * 1e3,
            pct(&warm, 0.5).as_secs_f64() * 1e3,
            pct(&warm, 0.99).as_secs_f64() * 1e3,
            warm.last().unwrap().as_secs_f64() * 1e3
        );
        c.stop().await;
    });
}
