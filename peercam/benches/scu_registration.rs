//! N simulated PUs connect to one SCU (a real `peercam scu` process) and register through
//! the CMU (H.626.4 8.1): registrations per second and the SCU's memory per connected PU.
//!
//! `cargo bench --bench scu_registration -- 1000 10000`
//!
//! The simulated PUs spread over loopback source addresses (127.0.1.1, 127.0.1.2, ...: one
//! source address has only the ephemeral port range), and the bench raises its descriptor
//! limit to the hard limit; N beyond what the limit allows is capped, and said so.
//! `SCU_BENCH_BIN=path` runs another build's `peercam` as the SCU (before/after in one
//! session); `SCU_BENCH_WAIT_S` bounds the wait for the registrations (default 300 s).
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_net::rustls::ClientConfig;
use peercam_net::rustls::pki_types::ServerName;
use peercam_net::tokio_rustls::TlsConnector;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_net::ws::ClientWs;
use peercam_signal::link::{DeviceLink, LinkEvent};
use peercam_test::{Cluster, new_identity};

fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Connections per loopback source address (below the 28,232 ports of Linux's default
/// ephemeral range).
const PER_SOURCE: usize = 20_000;

/// The `i`th PU's source address: 127.0.1.1 for the first [`PER_SOURCE`], and so on.
fn source(i: usize) -> Ipv4Addr {
    let k = u32::try_from(i / PER_SOURCE).unwrap_or(0);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 1, 1)) + k)
}

/// TLS and WebSocket to the SCU from source address `src`.
async fn connect(url: &str, port: u16, src: Ipv4Addr, tls: Arc<ClientConfig>) -> Option<ClientWs> {
    let sock = tokio::net::TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::from((src, 0))).ok()?;
    let tcp = sock
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .ok()?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("127.0.0.1").ok()?;
    let tls = TlsConnector::from(tls).connect(name, tcp).await.ok()?;
    let (ws, _) = peercam_net::tokio_tungstenite::client_async_with_config(
        url,
        tls,
        Some(peercam_net::ws::ws_config()),
    )
    .await
    .ok()?;
    Some(ws)
}

async fn run(n: usize, scu_bin: &str, wait: Duration) {
    let c = Cluster::start(0).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = c.write_scu_toml("scu-bench", port).unwrap();
    // `peercam scu` raises its own descriptor limit to the hard limit.
    let mut scu = Command::new(scu_bin)
        .arg("scu")
        .arg("--config")
        .arg(&path)
        .env("PEERCAM_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = scu.id();
    // Wait for the node to reach the CMU.
    let tls = peercam_net::tls::client_config(&c.ca_pem).unwrap();
    let url = format!("wss://127.0.0.1:{port}/");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let ids: Vec<_> = (0..n)
        .map(|_| new_identity(peercam_signal::ps::DeviceKind::Pu))
        .collect();
    c.provision_these(&ids).await.unwrap();
    let rss0 = proc_status(pid, "VmRSS:");
    let cpu0 = cpu_s(pid);

    let registered = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let stop = peercam_net::Shutdown::new();
    let t0 = Instant::now();
    for (i, id) in ids.into_iter().enumerate() {
        let src = source(i);
        let (tls, url, registered, gate, stop) = (
            tls.clone(),
            url.clone(),
            registered.clone(),
            gate.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let Ok(Some(ws)) =
                tokio::time::timeout(Duration::from_secs(60), connect(&url, port, src, tls)).await
            else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let mut link = DeviceLink::new(
                Instant::now(),
                id.device_id.clone(),
                id.kind,
                id.signing_key().unwrap(),
                "bench",
            );
            let mut permit = Some(permit);
            loop {
                while let Some(f) = link.poll_transmit() {
                    if sink
                        .send(Message::text(String::from_utf8(f).unwrap()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                while let Some(ev) = link.poll_event() {
                    if let LinkEvent::Registered { .. } = ev {
                        registered.fetch_add(1, Ordering::Relaxed);
                        permit = None;
                    }
                }
                let _ = &permit;
                let deadline = link
                    .poll_timeout()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
                tokio::select! {
                    m = stream.next() => match m {
                        Some(Ok(Message::Text(t))) => { if link.handle_input(Instant::now(), t.as_bytes()).is_err() { return; } }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
                    () = stop.wait() => return,
                }
            }
        });
    }
    while registered.load(Ordering::Relaxed) < n {
        if t0.elapsed() > wait {
            eprintln!(
                "only {} of {n} registered after {} s",
                registered.load(Ordering::Relaxed),
                wait.as_secs()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t0.elapsed();
    let cpu1 = cpu_s(pid);
    // Let heartbeats run for a while (every 4 s, the SCU's default `heartbeat_ms`):
    // steady-state memory, not the handshake peak.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss1 = proc_status(pid, "VmRSS:");
    let done = registered.load(Ordering::Relaxed);
    println!(
        "| {n:>6} | {done:>6} | {:>8.2} | {:>8.0} | {:>7.2} | {:>8} | {:>8} | {:>6.1} |",
        wall.as_secs_f64(),
        done as f64 / wall.as_secs_f64(),
        (cpu1 - cpu0) * 1000.0 / done.max(1) as f64,
        rss0,
        rss1,
        (rss1.saturating_sub(rss0)) as f64 / done.max(1) as f64,
    );
    stop.trigger();
    let _ = scu.kill();
    let _ = scu.wait();
    c.stop().await;
}

fn main() {
    // Soft to hard limit; each PU holds one descriptor here (and one in the SCU).
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let room = usize::try_from(nofile)
        .unwrap_or(usize::MAX)
        .saturating_sub(512);
    eprintln!("RLIMIT_NOFILE {nofile}: at most {room} PUs in this process");
    let ns: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let ns = if ns.is_empty() { vec![1000] } else { ns };
    let ns: Vec<usize> = ns
        .into_iter()
        .map(|n| {
            if n > room {
                eprintln!(
                    "N = {n} capped at {room} by the descriptor limit (raise the hard limit: docs/deployment.md, Kernel settings)"
                );
            }
            n.min(room)
        })
        .collect();
    let scu_bin =
        std::env::var("SCU_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_peercam").to_owned());
    let wait = Duration::from_secs(
        std::env::var("SCU_BENCH_WAIT_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| N PUs | registered | wall s | reg/s | SCU CPU ms/reg | SCU RSS before KiB | after KiB | KiB/PU |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in ns {
        rt.block_on(run(n, &scu_bin, wait));
    }
}
