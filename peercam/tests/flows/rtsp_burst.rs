//! Bursts that break well-known RTSP servers: 50 players connecting in the same instant all
//! get video, and 50 simultaneous TEARDOWNs are all answered, with no CPU spin afterwards.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use peercam_signal::cm::PlayRequest;
use peercam_test::Cluster;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn request(tcp: &mut TcpStream, req: String) -> String {
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    loop {
        tcp.read_exact(&mut b).await.unwrap();
        if b[0] == b'$' && head.is_empty() {
            // An interleaved frame before our answer: skip it.
            let mut hdr = [0u8; 3];
            tcp.read_exact(&mut hdr).await.unwrap();
            let mut skip = vec![0u8; usize::from(u16::from_be_bytes([hdr[1], hdr[2]]))];
            tcp.read_exact(&mut skip).await.unwrap();
            continue;
        }
        head.push(b[0]);
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
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

fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_fifty_players_at_once_then_fifty_teardowns() {
    const N: usize = 50;
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let (_pu, _sd) = c.start_pu_online(&ids[0], 0).await.unwrap();
    let owner = c.owner("+15550800001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    let req = PlayRequest {
        max_width: Some(352),
        max_height: Some(288),
        max_fps: Some(10),
        max_kbps: None,
        audio: Some(None),
    };
    let mut urls = Vec::new();
    for _ in 0..N {
        loop {
            match owner.play(&dev, &req).await {
                Ok(r) => break urls.push(r.url),
                Err(e) if e.code() == Some("device_offline") => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    // All connect and DESCRIBE/SETUP/PLAY in the same instant.
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for url in urls {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let hostport = url.trim_start_matches("rtsp://").split('/').next().unwrap().to_owned();
            let base = url.split('?').next().unwrap().to_owned();
            gate.wait().await;
            let mut tcp = TcpStream::connect(&hostport).await.unwrap();
            let d = request(&mut tcp, format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n")).await;
            assert!(d.starts_with("RTSP/1.0 200"), "{d}");
            let s = request(&mut tcp, format!("SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")).await;
            let session = s.lines().find_map(|l| l.strip_prefix("Session: ")).unwrap().split(';').next().unwrap().to_owned();
            let p = request(&mut tcp, format!("PLAY {base}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n")).await;
            assert!(p.starts_with("RTSP/1.0 200"), "{p}");
            // Video arrives: at least one interleaved RTP packet on channel 0.
            let mut hdr = [0u8; 4];
            tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut hdr)).await.unwrap().unwrap();
            assert_eq!((hdr[0], hdr[1]), (b'$', 0));
            let mut rest = vec![0u8; usize::from(u16::from_be_bytes([hdr[2], hdr[3]]))];
            tcp.read_exact(&mut rest).await.unwrap();
            (tcp, base, session)
        }));
    }
    let mut players = Vec::new();
    for t in tasks {
        players.push(t.await.unwrap());
    }
    assert_eq!(players.len(), N, "every player got video");

    // 50 TEARDOWNs at once: each answered.
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for (mut tcp, base, session) in players {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let t = request(
                &mut tcp,
                format!("TEARDOWN {base}/ RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n"),
            )
            .await;
            assert!(t.starts_with("RTSP/1.0 200"), "{t}");
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
            .unwrap();
    }
    // No spin afterwards: the process (which hosts the whole platform) goes quiet.
    tokio::time::sleep(Duration::from_secs(4)).await; // the idle encoder stops after 3 s
    let (t0, c0) = (Instant::now(), cpu_ticks());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = (cpu_ticks() - c0) as f64 / 100.0 / t0.elapsed().as_secs_f64();
    assert!(
        busy < 0.2,
        "process uses {:.0}% of a core after the burst",
        busy * 100.0
    );
    c.stop().await;
}
