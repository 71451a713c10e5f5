//! Relay throughput per server CPU-second and memory per allocation: peercam's TURN
//! service against coturn, under the same `turnutils_uclient` load and under a
//! video-shaped load (cameras sending 25 fps, 2 Mbit/s streams to viewers through the
//! relay, each frame a burst of ~1,200-byte packets).
//!
//! `cargo bench -p peercam-mtu --bench turn_relay` (needs the Debian package coturn).
//! Our server runs in a child process (this binary re-executed with
//! `PEERCAM_TURN_BENCH_SERVER` set) so /proc shows its CPU time alone, as for coturn.
//! Knobs: `BENCH_LOADS` (any of `uclient,video,memory`, default all), `BENCH_CLIENTS`
//! (default 100), `BENCH_PACKETS` (per client, default 1000), `BENCH_INTERVAL_MS`
//! (default 5), `BENCH_ALLOCATIONS` (default 500), `BENCH_THREADS` (our shards, default
//! 2), `BENCH_STREAMS` (video streams per run, default `20,50`), `BENCH_VIDEO_SECS`
//! (default 10), `BENCH_CAMERA_GSO` (`plain`, `gso` or `both`, default `both`: whether the
//! cameras send a frame datagram by datagram or as one GSO send), `BENCH_OFFLOAD`
//! (`0` turns our `udp_offload` off).
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
/// Our server with `udp_offload = false`, beside the other in the video load.
const PLAIN_PORT: u16 = 3778;
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
    let loads = std::env::var("BENCH_LOADS").unwrap_or_else(|_| "uclient,video,memory".into());
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
    let plain = Proc::spawn(
        Command::new(std::env::current_exe()?)
            .env("PEERCAM_TURN_BENCH_SERVER", "1")
            .env("BENCH_OFFLOAD", "0")
            .env("BENCH_PORT", PLAIN_PORT.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    )?
    .wait_ready()?;
    std::thread::sleep(Duration::from_millis(800));

    if loads.contains("video") {
        video_loads(&[
            ("coturn", coturn.pid(), COTURN_PORT),
            ("peercam", ours.pid(), OURS_PORT),
            ("no-gso", plain.pid(), PLAIN_PORT),
        ])?;
    }
    if loads.contains("uclient") {
        uclient_loads(
            &[
                ("coturn", coturn.pid(), COTURN_PORT),
                ("peercam", ours.pid(), OURS_PORT),
            ],
            [clients, packets, interval],
        )?;
    }
    if loads.contains("memory") {
        memory(
            &[
                ("coturn", coturn.pid(), COTURN_PORT),
                ("peercam", ours.pid(), OURS_PORT),
            ],
            allocations as usize,
        )?;
    }
    drop(plain);
    drop(ours);
    drop(coturn);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The `turnutils_uclient` load: 100 clients pacing single packets, echoed by the peer.
fn uclient_loads(
    servers: &[(&str, u32, u16)],
    [clients, packets, interval]: [u64; 3],
) -> Result<()> {
    println!(
        "load: turnutils_uclient -c -m {clients} -n {packets} -l 1000 -z {interval} -e 127.0.0.1 -r {PEER_PORT} -u bench -W <secret> -p PORT 127.0.0.1"
    );
    let mut rates = Vec::new();
    for &(name, pid, port) in servers {
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
            "ratio peercam/coturn {leg}: {:.2}x; load average {}",
            get("peercam") / get("coturn").max(1e-9),
            loadavg()
        );
    }
    Ok(())
}

/// RSS growth per allocation held.
fn memory(servers: &[(&str, u32, u16)], allocations: usize) -> Result<()> {
    for &(name, pid, port) in servers {
        let before = rss_kib(pid)?;
        let held = hold_allocations(port, allocations)?;
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_kib(pid)?;
        println!(
            "{name:8} memory: {} allocations, RSS {before} KiB -> {after} KiB, {:.1} KiB per allocation",
            held.len(),
            (after as f64 - before as f64) / held.len().max(1) as f64
        );
        drop(held);
    }
    Ok(())
}

/// Child mode: run our TURN service until stdin closes.
fn serve() -> Result<()> {
    let port = env_or("BENCH_PORT", u64::from(OURS_PORT)) as u16;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = peercam_net::Shutdown::new();
        let config = peercam_mtu::turn::Config {
            listen_udp: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            listen_tcp: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            relay_ip: Some("127.0.0.1".parse()?),
            relay_ports: if port == OURS_PORT {
                [40_000, 49_999]
            } else {
                [30_000, 39_999]
            },
            realm: REALM.into(),
            secret: SECRET.into(),
            require_scoped: false,
            allow_peers: vec!["127.0.0.0/8".into()],
            allow_loopback_peers: true,
            threads: Some(env_or("BENCH_THREADS", 2) as usize),
            udp_offload: env_or("BENCH_OFFLOAD", 1) != 0,
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

/// Voluntary context switches of all threads of `pid`: how often the server slept.
fn sleeps(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// The 1-minute load average, to tell how busy the machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
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
    let mut held = Vec::with_capacity(n);
    let mut attempts = 0;
    while held.len() < n {
        attempts += 1;
        let mut client = TurnClient::new(port, "memory")?;
        let r = client.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)])?;
        match r.error_code().map(|e| e.code) {
            None => held.push(client.sock),
            // The OS reused a client port that still holds an allocation of the load run
            // (uclient does not release them): try another socket.
            Some(437 | 441) if attempts < 4 * n => {}
            Some(_) => bail!("allocation {} refused: {:?}", held.len(), r.error_code()),
        }
    }
    Ok(held)
}

fn exchange(sock: &UdpSocket, server: SocketAddr, req: &[u8]) -> Result<Message> {
    sock.send_to(req, server)?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf)?;
    Ok(Message::decode(&buf[..n])?)
}

/// One video stream: 2 Mbit/s at 25 fps, each frame 10,000 bytes sent back to back as
/// 1,200-byte packets and a 400-byte tail.
const FPS: u64 = 25;
const PACKET: usize = 1_200;
const FRAME_SIZES: [usize; 9] = [
    PACKET, PACKET, PACKET, PACKET, PACKET, PACKET, PACKET, PACKET, 400,
];

/// The video-shaped load against each server in turn, for each stream count and camera
/// sending mode, with the ratio of relayed packets per server CPU-second.
fn video_loads(servers: &[(&str, u32, u16)]) -> Result<()> {
    let streams: Vec<usize> = std::env::var("BENCH_STREAMS")
        .unwrap_or_else(|_| "20,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs = env_or("BENCH_VIDEO_SECS", 10);
    let modes: &[bool] = match std::env::var("BENCH_CAMERA_GSO").as_deref() {
        Ok("plain") => &[false],
        Ok("gso") => &[true],
        _ => &[false, true],
    };
    println!(
        "load: video, N streams of {FPS} fps x {} bytes ({} packets, {PACKET} bytes but the last) for {secs} s; camera socket -> relayed address -> viewer (a TURN client over UDP, channel bound: ChannelData); frames spread evenly over the 40 ms",
        FRAME_SIZES.iter().sum::<usize>(),
        FRAME_SIZES.len()
    );
    for &gso in modes {
        let mode = if gso { "camera GSO" } else { "camera plain" };
        for &n in &streams {
            let mut rates = Vec::new();
            for &(name, pid, port) in servers {
                let session = VideoSession::open(port, n)?;
                let waits0 = sleeps(pid);
                let cpu0 = cpu_seconds(pid)?;
                let t0 = Instant::now();
                let (sent, got) = session.run(secs, gso)?;
                let wall = t0.elapsed().as_secs_f64();
                let cpu = cpu_seconds(pid)? - cpu0;
                let waits = sleeps(pid).saturating_sub(waits0);
                let rate = got as f64 / cpu.max(1e-3);
                println!(
                    "{name:8} video {n} streams, {mode}: sent {sent}, delivered {got} (loss {:.3}%), server CPU {cpu:.2} s in {wall:.1} s wall, {:.2} sleeps per frame, {rate:.0} relayed packets per CPU-second",
                    100.0 * sent.saturating_sub(got) as f64 / sent.max(1) as f64,
                    waits as f64 / (sent as f64 / FRAME_SIZES.len() as f64).max(1.0)
                );
                rates.push(rate);
            }
            if let [coturn, ours, plain] = rates[..] {
                println!(
                    "ratio peercam/coturn video {n} streams, {mode}: {:.2}x (without GSO/GRO {:.2}x); load average {}",
                    ours / coturn.max(1e-9),
                    plain / coturn.max(1e-9),
                    loadavg()
                );
            }
        }
    }
    Ok(())
}

/// A TURN client over UDP with REST credentials and the nonce dance (RFC 8489 9.2).
struct TurnClient {
    sock: UdpSocket,
    server: SocketAddr,
    username: String,
    key: [u8; 16],
    nonce: Option<String>,
    tid: u64,
}

impl TurnClient {
    fn new(port: u16, user: &str) -> Result<Self> {
        let expiry = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
        let cred = RestSecret::new(SECRET)?.mint(user, expiry)?;
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(Self {
            sock,
            server: SocketAddr::from(([127, 0, 0, 1], port)),
            key: peercam_stun::auth::long_term_key(&cred.username, REALM, &cred.password),
            username: cred.username,
            nonce: None,
            tid: 0,
        })
    }

    fn request(&mut self, method: Method, attrs: &[Attribute]) -> Result<Message> {
        for _ in 0..3 {
            self.tid += 1;
            let mut t = [7u8; 12];
            t[..8].copy_from_slice(&self.tid.to_be_bytes());
            let mut m = Message::new(Class::Request, method, TransactionId(t));
            m.attributes = attrs.to_vec();
            let bytes = match &self.nonce {
                Some(n) => {
                    m.attributes
                        .push(Attribute::Username(self.username.clone()));
                    m.attributes.push(Attribute::Realm(REALM.into()));
                    m.attributes.push(Attribute::Nonce(n.clone()));
                    m.encode_sealed(Some((IntegrityAlgorithm::HmacSha1, &self.key)), true)?
                }
                None => m.encode_sealed(None, true)?,
            };
            let r = exchange(&self.sock, self.server, &bytes)?;
            if matches!(r.error_code().map(|e| e.code), Some(401 | 438))
                && r.nonce().is_some()
                && self.nonce.as_deref() != r.nonce()
            {
                self.nonce = r.nonce().map(str::to_owned);
                continue;
            }
            return Ok(r);
        }
        bail!("{method:?}: no answer past the nonce")
    }
}

/// Viewers with an allocation and a channel to their camera's socket.
struct VideoSession {
    viewers: Vec<UdpSocket>,
    cameras: Vec<(UdpSocket, SocketAddr)>,
}

impl VideoSession {
    fn open(port: u16, n: usize) -> Result<Self> {
        let mut viewers = Vec::with_capacity(n);
        let mut cameras = Vec::with_capacity(n);
        let mut attempts = 0;
        while viewers.len() < n {
            attempts += 1;
            if attempts > 4 * n + 8 {
                bail!("could not open {n} video allocations");
            }
            let mut client = TurnClient::new(port, "video")?;
            let r = client.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)])?;
            // 437: the OS reused a client port that still holds an allocation of an
            // earlier load: take another socket.
            let Some(relayed) = r.xor_relayed_address() else {
                if matches!(r.error_code().map(|e| e.code), Some(437 | 441)) {
                    continue;
                }
                bail!("allocation refused: {:?}", r.error_code());
            };
            let camera = UdpSocket::bind("127.0.0.1:0")?;
            let r = client.request(
                Method::CHANNEL_BIND,
                &[
                    Attribute::ChannelNumber(0x4000),
                    Attribute::XorPeerAddress(camera.local_addr()?),
                ],
            )?;
            if let Some(e) = r.error_code() {
                bail!("channel bind refused: {e:?}");
            }
            viewers.push(client.sock);
            cameras.push((camera, relayed));
        }
        Ok(Self { viewers, cameras })
    }

    /// Send `secs` of video on every stream; (packets sent, packets the viewers got).
    fn run(self, secs: u64, gso: bool) -> Result<(u64, u64)> {
        let frames = secs * FPS;
        let n = self.cameras.len() as u64;
        let frame = Duration::from_micros(1_000_000 / FPS);
        // Viewers count what arrives until a second after the last frame.
        let until = Instant::now() + frame * frames as u32 + Duration::from_secs(1);
        let viewers = self.viewers;
        let receiver = std::thread::spawn(move || count_received(viewers, until));
        let payload = vec![0x5au8; FRAME_SIZES.iter().sum()];
        let t0 = Instant::now();
        let mut sent = 0u64;
        for k in 0..frames {
            for (i, (camera, relayed)) in self.cameras.iter().enumerate() {
                let due = t0 + frame * k as u32 + frame * i as u32 / n as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                sent += send_frame(camera, *relayed, &payload, gso) as u64;
            }
        }
        let got = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
        Ok((sent, got))
    }
}

/// One frame from a camera: its packets one `sendto` each, or one GSO send.
fn send_frame(camera: &UdpSocket, to: SocketAddr, payload: &[u8], gso: bool) -> usize {
    if gso {
        use std::io::IoSlice;
        use std::os::fd::AsRawFd as _;

        use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn, sendmsg};
        let SocketAddr::V4(v4) = to else { return 0 };
        let segment = PACKET as u16;
        let r = sendmsg(
            camera.as_raw_fd(),
            &[IoSlice::new(payload)],
            &[ControlMessage::UdpGsoSegments(&segment)],
            MsgFlags::empty(),
            Some(&SockaddrIn::from(v4)),
        );
        return if r.is_ok() { FRAME_SIZES.len() } else { 0 };
    }
    let mut at = 0;
    let mut sent = 0;
    for len in FRAME_SIZES {
        if camera.send_to(&payload[at..at + len], to).is_ok() {
            sent += 1;
        }
        at += len;
    }
    sent
}

/// Count the ChannelData datagrams reaching `viewers` until `until`.
fn count_received(viewers: Vec<UdpSocket>, until: Instant) -> Result<u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for v in viewers {
            v.set_nonblocking(true)?;
            let v = tokio::net::UdpSocket::from_std(v)?;
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                let mut got = 0u64;
                let deadline = tokio::time::Instant::from_std(until);
                while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, v.recv(&mut buf)).await {
                    // ChannelData: the first two bits are 01 (RFC 8656 12.4).
                    if n >= 4 && buf[0] & 0xc0 == 0x40 {
                        got += 1;
                    }
                }
                got
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await?;
        }
        anyhow::Ok(total)
    })
}
