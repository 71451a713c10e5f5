//! Memory per idle TLS connection on a device-facing server (issue 19: a lean SCU
//! connection): rustls's buffered connection through tokio-rustls against
//! [`peercam_net::lean_tls::LeanTlsStream`] (rustls's unbuffered API), side by side in one run.
//!
//! `cargo bench -p peercam-net --bench lean_tls -- 8000`
//!
//! Each variant runs in a child process of its own (so neither reuses the other's freed
//! memory): it opens N loopback TLS 1.3 connections, exchanges one 200-byte heartbeat and its
//! echo on each, and holds them all open; the figure is the process's RSS growth per
//! connection, client side included. The client side is the same in both variants, so the
//! difference between the two is what the server saves per connection.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::time::{Duration, Instant};

use peercam_net::lean_tls::LeanTlsStream;
use peercam_net::pki::Pki;
use peercam_net::rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const HEARTBEAT: usize = 200;

async fn serve_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() || s.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn child(variant: &str, n: usize) {
    let pki = Pki::generate(&["localhost"]).unwrap();
    let server = peercam_net::tls::server_config(
        pki.server_cert_pem.as_bytes(),
        pki.server_key_pem.as_bytes(),
        &[],
    )
    .unwrap();
    let client = tokio_rustls::TlsConnector::from(
        peercam_net::tls::client_config(pki.ca_cert_pem.as_bytes()).unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lean = variant == "lean";
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
        while let Ok((tcp, _)) = listener.accept().await {
            let server = server.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if lean {
                    let mut s = LeanTlsStream::new(tcp, server).unwrap();
                    if s.handshake().await.is_ok() {
                        serve_one(s).await;
                    }
                } else if let Ok(s) = Box::pin(acceptor.accept(tcp)).await {
                    serve_one(s).await;
                }
            });
        }
    });
    let connect = |client: tokio_rustls::TlsConnector| async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = client
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(&[7u8; HEARTBEAT]).await.unwrap();
        tls.flush().await.unwrap();
        let mut back = [0u8; HEARTBEAT];
        tls.read_exact(&mut back).await.unwrap();
        tls
    };
    // Warm up (threads, scratch buffers, the allocator's arenas), then measure.
    let mut held = Vec::with_capacity(n + 64);
    for _ in 0..64 {
        held.push(connect(client.clone()).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    let t = Instant::now();
    for _ in 0..n {
        held.push(connect(client.clone()).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    println!(
        "{variant} {n} {before} {after} {:.2} {:.1}",
        (after - before) as f64 / n as f64,
        t.elapsed().as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if args.first().map(String::as_str) == Some("--child") {
        let n = args[2].parse().unwrap();
        rlimit::increase_nofile_limit(u64::MAX).unwrap();
        rt.block_on(child(&args[1], n));
        return;
    }
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024) as usize;
    let mut n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(8000);
    let room = nofile.saturating_sub(200) / 2;
    if n > room {
        eprintln!("RLIMIT_NOFILE {nofile}: {room} connections at most (both ends in one process)");
        n = room;
    }
    let exe = std::env::current_exe().unwrap();
    let mut rows = Vec::new();
    for variant in ["buffered", "lean"] {
        let out = std::process::Command::new(&exe)
            .args(["--child", variant, &n.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let f: Vec<&str> = line.split_whitespace().collect();
        let per: f64 = f[4].parse().unwrap();
        rows.push((variant, per, f[5].to_owned()));
    }
    println!("| server TLS | connections | KiB per connection (both ends) | connect s |");
    println!("|---|---:|---:|---:|");
    for (v, per, secs) in &rows {
        let name = if *v == "lean" {
            "LeanTlsStream (rustls unbuffered)"
        } else {
            "tokio-rustls (rustls buffered)"
        };
        println!("| {name} | {n} | {per:.2} | {secs} |");
    }
    println!(
        "saved by the server per connection: {:.2} KiB",
        rows[0].1 - rows[1].1
    );
}
