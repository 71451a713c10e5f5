//! Relay throughput per server CPU-second and memory per allocation: peercam's TURN
//! service against coturn, under the same `turnutils_uclient` load.
//!
//! `cargo bench -p peercam-mtu --bench turn_relay` (needs the Debian package coturn).
//! Our server runs in a child process (this binary re-executed with
//! `PEERCAM_TURN_BENCH_SERVER` set) so /proc shows its CPU time alone, as for coturn.
//! Knobs: `BENCH_CLIENTS` (default 100), `BENCH_PACKETS` (per client, default 1000),
//! `BENCH_INTERVAL_MS` (default 5), `BENCH_ALLOCATIONS` (default 500), `BENCH_THREADS`
//! (our shards, default 2).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use peercam_stun::auth::RestSecret;
use peercam_stun::message::{Attribute, Class, IntegrityAlgorithm, Message, Method, TransactionId};

const SECRET: &str = "loopbacktestsecret";
const REALM: &str = "test.local";
const OURS_PORT: u16 = 3678;
const COTURN_PORT: u16 = 3578;
const PEER_PORT: u16 = 3680;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    if std::env::var_os("PEERCAM_TURN_BENCH_SERVER").is_some() {
        return serve();
    }
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    for bin in ["turnserver", "turnutils_uclient", "turnutils_peer"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            println!("turn_relay: skipped, {bin} not installed (Debian package coturn)");
            return Ok(());
        }
    }
    let clients = env_or("BENCH_CLIENTS", 100);
    let packets = env_or("BENCH_PACKETS", 1000);
    let interval = env_or("BENCH_INTERVAL_MS", 5);
    let allocations = env_or("BENCH_ALLOCATIONS", 500);

    let _peer = Proc::spawn(Command::new("turnutils_peer").args([
        "-L",
        "127.0.0.1",
        "-p",
        &PEER_PORT.to_string(),
    ]))?;
    let dir = std::env::temp_dir().join(format!("peercam-turn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("turnserver.conf");
    std::fs::write(
        &conf,
        format!(
            "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port={COTURN_PORT}\n\
             min-port=50000\nmax-port=59999\nno-tls\nno-dtls\nuse-auth-secret\n\
             static-auth-secret={SECRET}\nrealm={REALM}\nfingerprint\nno-cli\n\
             allow-loopback-peers\nno-multicast-peers\nuser-quota=0\ntotal-quota=0\n\
             no-stdout-log\n"
        ),
    )?;
    let coturn = Proc::spawn(
        Command::new("turnserver")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null()),
    )?;
    let ours = Proc::spawn(
        Command::new(std::env::current_exe()?)
            .env("PEERCAM_TURN_BENCH_SERVER", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    )?;
    let ours = ours.wait_ready()?;
    std::thread::sleep(Duration::from_millis(800));

    println!(
        "load: turnutils_uclient -c -m {clients} -n {packets} -l 1000 -z {interval} -e 127.0.0.1 -r {PEER_PORT} -u bench -W <secret> -p PORT 127.0.0.1"
    );
    let mut rates = Vec::new();
    for (name, pid, port) in [
        ("coturn", coturn.pid(), COTURN_PORT),
        ("peercam", ours.pid(), OURS_PORT),
    ] {
        for tcp in [false, true] {
            let cpu0 = cpu_seconds(pid)?;
            let t0 = Instant::now();
            let (sent, received) = uclient(port, clients, packets, interval, tcp)?;
            let wall = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds(pid)? - cpu0;
            // Each echoed packet is relayed twice: client -> peer and peer -> client.
            let relayed = (sent + received) as f64;
            let rate = relayed / cpu.max(1e-3);
            let leg = if tcp { "TCP" } else { "UDP" };
            println!(
                "{name:8} {leg}: sent {sent}, echoed {received} (loss {:.3}%), server CPU {cpu:.3} s in {wall:.1} s wall, {rate:.0} relayed packets per CPU-second",
                100.0 * (sent.saturating_sub(received)) as f64 / sent.max(1) as f64
            );
            rates.push(((name, leg), rate));
        }
    }
    for leg in ["UDP", "TCP"] {
        let get = |n| rates.iter().find(|r| r.0 == (n, leg)).map_or(0.0, |r| r.1);
        println!(
            "ratio peercam/coturn {leg}: {:.2}x",
            get("peercam") / get("coturn").max(1e-9)
        );
    }

    for (name, pid, port) in [
        ("coturn", coturn.pid(), COTURN_PORT),
        ("peercam", ours.pid(), OURS_PORT),
    ] {
        let before = rss_kib(pid)?;
        let held = hold_allocations(port, allocations as usize)?;
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_kib(pid)?;
        println!(
            "{name:8} memory: {} allocations, RSS {before} KiB -> {after} KiB, {:.1} KiB per allocation",
            held.len(),
            (after as f64 - before as f64) / held.len().max(1) as f64
        );
        drop(held);
    }
    drop(ours);
    drop(coturn);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Child mode: run our TURN service until stdin closes.
fn serve() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = peercam_net::Shutdown::new();
        let config = peercam_mtu::turn::Config {
            listen_udp: Some(SocketAddr::from(([127, 0, 0, 1], OURS_PORT))),
            listen_tcp: Some(SocketAddr::from(([127, 0, 0, 1], OURS_PORT))),
            relay_ip: Some("127.0.0.1".parse()?),
            relay_ports: [40_000, 49_999],
            realm: REALM.into(),
            secret: SECRET.into(),
            require_scoped: false,
            allow_peers: vec!["127.0.0.0/8".into()],
            allow_loopback_peers: true,
            threads: Some(env_or("BENCH_THREADS", 2) as usize),
            quotas: peercam_mtu::turn::QuotaConfig {
                max_allocations_per_user: 100_000,
                max_allocations: 100_000,
                bandwidth: None,
                ..Default::default()
            },
            ..Default::default()
        };
        let running = peercam_mtu::turn::TurnService::spawn(config, shutdown.clone()).await?;
        println!("READY {:?}", running.udp);
        std::io::stdout().flush()?;
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await?;
        shutdown.trigger();
        running.stopped().await;
        anyhow::Ok(())
    })
}

struct Proc(Child);

impl Proc {
    fn spawn(cmd: &mut Command) -> Result<Self> {
        let child = cmd
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        Ok(Self(child))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn wait_ready(mut self) -> Result<Self> {
        let out = self.0.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        if !line.starts_with("READY") {
            bail!("our server did not start: {line:?}");
        }
        Ok(self)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS")?.parse()?)
}

fn uclient(port: u16, clients: u64, packets: u64, interval: u64, tcp: bool) -> Result<(u64, u64)> {
    let mut cmd = Command::new("timeout");
    cmd.args(["100", "turnutils_uclient", "-c"]);
    if tcp {
        cmd.arg("-t");
    }
    cmd.args([
        "-m",
        &clients.to_string(),
        "-n",
        &packets.to_string(),
        "-l",
        "1000",
    ])
    .args([
        "-z",
        &interval.to_string(),
        "-e",
        "127.0.0.1",
        "-r",
        &PEER_PORT.to_string(),
    ])
    .args([
        "-u",
        "bench",
        "-W",
        SECRET,
        "-p",
        &port.to_string(),
        "127.0.0.1",
    ]);
    let out = cmd.output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("tot_send_msgs=") && !l.contains("msz="))
        .with_context(|| format!("no summary from uclient:\n{text}"))?;
    let num = |key: &str| -> Result<u64> {
        let rest = &line[line.find(key).context("key")? + key.len()..];
        Ok(rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or("0")
            .parse()?)
    };
    Ok((num("tot_send_msgs=")?, num("tot_recv_msgs=")?))
}

/// Open `n` allocations (one UDP socket each) with REST credentials; keep the sockets.
fn hold_allocations(port: u16, n: usize) -> Result<Vec<UdpSocket>> {
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let expiry = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let cred = RestSecret::new(SECRET)?.mint("memory", expiry)?;
    let key = peercam_stun::auth::long_term_key(&cred.username, REALM, &cred.password);
    let mut held = Vec::with_capacity(n);
    let mut attempts = 0;
    while held.len() < n {
        let i = attempts;
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        let tid = |k: u8| {
            let mut t = [k; 12];
            t[..8].copy_from_slice(&(i as u64).to_be_bytes());
            TransactionId(t)
        };
        let first = Message::new(Class::Request, Method::ALLOCATE, tid(1))
            .with(Attribute::RequestedTransport(17))
            .encode_sealed(None, true)?;
        let r = exchange(&sock, server, &first)?;
        if matches!(r.error_code().map(|e| e.code), Some(437 | 441)) && attempts < 4 * n {
            // A reused client port that still holds an allocation of the load run.
            attempts += 1;
            continue;
        }
        let nonce = r
            .nonce()
            .with_context(|| format!("no nonce in {:?} {:?}", r.class, r.error_code()))?
            .to_owned();
        let second = Message::new(Class::Request, Method::ALLOCATE, tid(2))
            .with(Attribute::RequestedTransport(17))
            .with(Attribute::Username(cred.username.clone()))
            .with(Attribute::Realm(REALM.into()))
            .with(Attribute::Nonce(nonce))
            .encode_sealed(Some((IntegrityAlgorithm::HmacSha1, &key)), true)?;
        let r = exchange(&sock, server, &second)?;
        match r.error_code().map(|e| e.code) {
            None => held.push(sock),
            // The OS reused a client port that still holds an allocation of the load run
            // (uclient does not release them): try another socket.
            Some(437 | 441) if attempts < 4 * n => {}
            Some(_) => bail!("allocation {i} refused: {:?}", r.error_code()),
        }
        attempts += 1;
    }
    Ok(held)
}

fn exchange(sock: &UdpSocket, server: SocketAddr, req: &[u8]) -> Result<Message> {
    sock.send_to(req, server)?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf)?;
    Ok(Message::decode(&buf[..n])?)
}
