//! The TURN service on loopback: interop with coturn's client tools, and the refusals of
//! H.626.4 7.3 / docs/security.md D8 seen from a client.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peercam_mtu::turn::{Config, Running, TurnService};
use peercam_net::Shutdown;
use peercam_net::skip::skip;
use peercam_stun::auth::{RestCredential, RestSecret};
use peercam_stun::framing::{ChannelData, Transport};
use peercam_stun::message::{Attribute, Class, IntegrityAlgorithm, Message, Method, TransactionId};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UdpSocket;

const SECRET: &str = "loopbacktestsecret";
const REALM: &str = "test.local";

fn unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn lab_config() -> Config {
    Config {
        listen_udp: Some("127.0.0.1:0".parse().unwrap()),
        listen_tcp: Some("127.0.0.1:0".parse().unwrap()),
        relay_ip: Some("127.0.0.1".parse().unwrap()),
        relay_ports: [40_000, 48_999],
        realm: REALM.into(),
        secret: SECRET.into(),
        require_scoped: false,
        allow_peers: vec!["127.0.0.0/8".into()],
        allow_loopback_peers: true,
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        threads: Some(2),
        ..Config::default()
    }
}

struct Service {
    running: Running,
    shutdown: Shutdown,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn start(config: Config) -> Service {
    let shutdown = Shutdown::new();
    let running = TurnService::spawn(config, shutdown.clone()).await.unwrap();
    Service { running, shutdown }
}

/// A child process killed (by its PID) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn echo_peer() -> (Proc, u16) {
    let port = free_udp_port();
    let child = Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    (Proc(child), port)
}

/// `turnutils_uclient` against `server`; returns (sent, lost) from its summary.
fn uclient(server: SocketAddr, peer_port: u16, extra: &[&str]) -> (u64, u64, String) {
    let port = server.port().to_string();
    let peer = peer_port.to_string();
    let mut args = vec![
        "-c",
        "-m",
        "2",
        "-n",
        "100",
        "-l",
        "500",
        "-z",
        "5",
        "-e",
        "127.0.0.1",
        "-r",
        &peer,
        "-u",
        "interop",
        "-W",
        SECRET,
        "-p",
        &port,
    ];
    args.extend_from_slice(extra);
    args.push("127.0.0.1");
    let out = Command::new("timeout")
        .arg("60")
        .arg("turnutils_uclient")
        .args(&args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let num_after = |key: &str| -> Option<u64> {
        let line = text.lines().rev().find(|l| l.contains(key))?;
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    // "start_mclient: tot_send_msgs=200, tot_recv_msgs=200" on the summary line.
    let sent = text
        .lines()
        .rev()
        .find(|l| l.contains("tot_send_msgs=") && !l.contains("msz="))
        .and_then(|l| {
            let rest = &l[l.find("tot_send_msgs=")? + 14..];
            rest.split(',').next()?.trim().parse().ok()
        })
        .unwrap_or(0);
    let lost = num_after("Total lost packets").unwrap_or(u64::MAX);
    (sent, lost, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_uclient_relays_over_udp_and_tcp() {
    const TEST: &str = "coturn_uclient_relays_over_udp_and_tcp";
    for bin in ["turnutils_uclient", "turnutils_peer"] {
        if !have(bin) {
            skip(
                TEST,
                &format!("{bin} not installed (Debian package coturn)"),
            );
            return;
        }
    }
    let svc = start(lab_config()).await;
    let (_peer, peer_port) = echo_peer();
    let udp = svc.running.udp.unwrap();
    let tcp = svc.running.tcp.unwrap();
    for (server, extra, what) in [(udp, &[][..], "UDP"), (tcp, &["-t"][..], "TCP")] {
        let (sent, lost, text) =
            tokio::task::spawn_blocking(move || uclient(server, peer_port, extra))
                .await
                .unwrap();
        assert!(
            sent >= 200,
            "{what}: uclient sent {sent}: {:?}\n{text}",
            svc.running.stats()
        );
        assert!(lost <= sent / 50, "{what}: lost {lost} of {sent}:\n{text}");
        println!("{what}: sent {sent}, lost {lost}");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = svc.running.stats();
    assert!(stats.allocations_total >= 4, "{stats:?}");
    assert!(
        stats.packets_to_peer >= 390 && stats.packets_to_client >= 390,
        "{stats:?}"
    );
}

/// RFC 8656 3.1: TURN over TLS, the way out when UDP is blocked; coturn's client allocates
/// and relays through our TLS listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_uclient_relays_over_tls() {
    const TEST: &str = "coturn_uclient_relays_over_tls";
    for bin in ["turnutils_uclient", "turnutils_peer"] {
        if !have(bin) {
            skip(
                TEST,
                &format!("{bin} not installed (Debian package coturn)"),
            );
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = peercam_net::pki::Pki::generate(&["127.0.0.1", "localhost"])
        .unwrap()
        .write(dir.path())
        .unwrap();
    let svc = start(Config {
        listen_tls: Some("127.0.0.1:0".parse().unwrap()),
        tls_cert: Some(pki.server_cert.clone()),
        tls_key: Some(pki.server_key.clone()),
        ..lab_config()
    })
    .await;
    let (_peer, peer_port) = echo_peer();
    let tls = svc.running.tls.unwrap();
    let (sent, lost, text) =
        tokio::task::spawn_blocking(move || uclient(tls, peer_port, &["-t", "-S"]))
            .await
            .unwrap();
    assert!(sent >= 200, "TLS: uclient sent {sent}\n{text}");
    assert!(lost <= sent / 50, "TLS: lost {lost} of {sent}:\n{text}");
    println!("TLS: sent {sent}, lost {lost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_stunclient_gets_a_binding() {
    if !have("turnutils_stunclient") {
        skip(
            "coturn_stunclient_gets_a_binding",
            "turnutils_stunclient not installed (Debian package coturn)",
        );
        return;
    }
    let svc = start(lab_config()).await;
    let port = svc.running.udp.unwrap().port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["20", "turnutils_stunclient", "-p", &port, "127.0.0.1"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("UDP reflexive addr: 127.0.0.1:"), "{text}");
    // And over TCP, with our own client.
    let mut tcp = tokio::net::TcpStream::connect(svc.running.tcp.unwrap())
        .await
        .unwrap();
    let req = Message::new(Class::Request, Method::BINDING, TransactionId([5; 12]))
        .encode_sealed(None, true)
        .unwrap();
    tcp.write_all(&req).await.unwrap();
    let mut buf = vec![0u8; 20];
    tcp.read_exact(&mut buf).await.unwrap();
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    buf.resize(20 + len, 0);
    tcp.read_exact(&mut buf[20..]).await.unwrap();
    let m = Message::decode(&buf).unwrap();
    assert_eq!(m.xor_mapped_address(), Some(tcp.local_addr().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint() {
    let svc = start(lab_config()).await;
    let mut c = TestClient::new(&svc, cred("m", 600)).await;
    assert_eq!(c.allocate().await.class, Class::SuccessResponse);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut s = tokio::net::TcpStream::connect(svc.running.metrics.unwrap())
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(
        body.contains("peercam_mtu_turn_allocations_active 1"),
        "{body}"
    );
    assert!(body.contains("# TYPE peercam_mtu_turn_relayed_packets_to_peer_total counter"));
}

// ---- refusals ----

fn cred(user: &str, valid_for: i64) -> RestCredential {
    let expiry = (unix() as i64 + valid_for) as u64;
    RestSecret::new(SECRET).unwrap().mint(user, expiry).unwrap()
}

/// A minimal TURN client over UDP built on the codec.
struct TestClient {
    sock: UdpSocket,
    server: SocketAddr,
    cred: RestCredential,
    nonce: Option<String>,
    tid: u8,
}

impl TestClient {
    async fn new(svc: &Service, cred: RestCredential) -> Self {
        Self {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server: svc.running.udp.unwrap(),
            cred,
            nonce: None,
            tid: 0,
        }
    }

    async fn roundtrip(&mut self, method: Method, attrs: &[Attribute]) -> Message {
        self.tid += 1;
        let mut m = Message::new(Class::Request, method, TransactionId([self.tid; 12]));
        m.attributes = attrs.to_vec();
        let bytes = match &self.nonce {
            Some(n) => {
                m.attributes
                    .push(Attribute::Username(self.cred.username.clone()));
                m.attributes.push(Attribute::Realm(REALM.into()));
                m.attributes.push(Attribute::Nonce(n.clone()));
                let key = peercam_stun::auth::long_term_key(
                    &self.cred.username,
                    REALM,
                    &self.cred.password,
                );
                m.encode_sealed(Some((IntegrityAlgorithm::HmacSha1, &key)), true)
                    .unwrap()
            }
            None => m.encode_sealed(None, true).unwrap(),
        };
        self.sock.send_to(&bytes, self.server).await.unwrap();
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, _) =
                tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
                    .await
                    .expect("no answer")
                    .unwrap();
            if let Ok(r) = Message::decode(&buf[..n])
                && r.transaction_id.0 == [self.tid; 12]
            {
                return r;
            }
        }
    }

    /// A request with the nonce dance of RFC 8489 9.2.
    async fn request(&mut self, method: Method, attrs: &[Attribute]) -> Message {
        let mut r = self.roundtrip(method, attrs).await;
        for _ in 0..2 {
            let code = r.error_code().map(|e| e.code);
            if matches!(code, Some(401 | 438))
                && r.nonce().is_some()
                && self.nonce.as_deref() != r.nonce()
            {
                self.nonce = r.nonce().map(str::to_owned);
                r = self.roundtrip(method, attrs).await;
            }
        }
        r
    }

    async fn allocate(&mut self) -> Message {
        self.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)])
            .await
    }

    async fn permit(&mut self, peer: SocketAddr) -> Option<u16> {
        let r = self
            .request(
                Method::CREATE_PERMISSION,
                &[Attribute::XorPeerAddress(peer)],
            )
            .await;
        r.error_code().map(|e| e.code)
    }
}

fn code(m: &Message) -> Option<u16> {
    m.error_code().map(|e| e.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_turn_expired_credential_refused() {
    let svc = start(lab_config()).await;
    let mut c = TestClient::new(&svc, cred("late", -10)).await;
    assert_eq!(code(&c.allocate().await), Some(401));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(svc.running.stats().auth_failures >= 1);
    assert_eq!(svc.running.stats().allocations_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_turn_forged_password_refused() {
    let svc = start(lab_config()).await;
    let mut forged = cred("mallory", 600);
    forged.password = RestSecret::new("not-the-secret")
        .unwrap()
        .password(&forged.username);
    let mut c = TestClient::new(&svc, forged).await;
    assert_eq!(code(&c.allocate().await), Some(401));
    // Changing the user part of a genuine credential breaks it as well.
    let mut bumped = cred("alice", 600);
    bumped.username = bumped.username.replace("alice", "admin");
    let mut c = TestClient::new(&svc, bumped).await;
    assert_eq!(code(&c.allocate().await), Some(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d8_special_peers_denied_by_default() {
    // The production policy: no allow list, loopback closed.
    let config = Config {
        allow_peers: vec![],
        allow_loopback_peers: false,
        ..lab_config()
    };
    let svc = start(config).await;
    let mut c = TestClient::new(&svc, cred("u", 600)).await;
    assert_eq!(c.allocate().await.class, Class::SuccessResponse);
    for peer in [
        "127.0.0.1:9",
        "10.1.2.3:9",
        "[::ffff:127.0.0.1]:9",
        "[64:ff9b::7f00:1]:9",
        "169.254.169.254:80",
        "0.0.0.0:9",
        "198.51.100.7:9",
    ] {
        let peer: SocketAddr = peer.parse().unwrap();
        assert_eq!(c.permit(peer).await, Some(403), "{peer}");
        let r = c
            .request(
                Method::CHANNEL_BIND,
                &[
                    Attribute::ChannelNumber(0x4000),
                    Attribute::XorPeerAddress(peer),
                ],
            )
            .await;
        assert_eq!(code(&r), Some(403), "{peer}");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(svc.running.stats().policy_denials >= 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d8_peer_outside_scoped_session_denied() {
    let config = Config {
        require_scoped: true,
        ..lab_config()
    };
    let svc = start(config).await;
    let secret = RestSecret::new(SECRET).unwrap();
    // Unscoped credentials cannot allocate at all.
    let mut c = TestClient::new(&svc, cred("u", 600)).await;
    assert_eq!(code(&c.allocate().await), Some(403));

    let peer = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let scoped = secret
        .mint_scoped(
            "u42",
            "sess-1",
            &["127.0.0.2".parse::<IpAddr>().unwrap()],
            unix() + 600,
        )
        .unwrap();
    let mut c = TestClient::new(&svc, scoped).await;
    let r = c.allocate().await;
    assert_eq!(r.class, Class::SuccessResponse, "{r:?}");
    assert_eq!(c.permit("127.0.0.3:9".parse().unwrap()).await, Some(403));
    assert_eq!(c.permit(peer_addr).await, None);
    // The session's peer is reachable through the relay.
    let r = c
        .request(
            Method::CHANNEL_BIND,
            &[
                Attribute::ChannelNumber(0x4001),
                Attribute::XorPeerAddress(peer_addr),
            ],
        )
        .await;
    assert_eq!(r.class, Class::SuccessResponse);
    let mut frame = Vec::new();
    ChannelData {
        channel: 0x4001,
        data: b"hello peer",
    }
    .encode(Transport::Udp, &mut frame)
    .unwrap();
    c.sock.send_to(&frame, c.server).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"hello peer");
    peer.send_to(b"hello client", from).await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), c.sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let cd = ChannelData::decode(&buf[..n], Transport::Udp).unwrap();
    assert_eq!((cd.channel, cd.data), (0x4001, &b"hello client"[..]));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(svc.running.stats().scope_denials >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_turn_allocation_quota_per_user() {
    let mut config = lab_config();
    config.quotas.max_allocations_per_user = 2;
    let svc = start(config).await;
    for i in 0..3 {
        let mut c = TestClient::new(&svc, cred("quota-user", 600)).await;
        let r = c.allocate().await;
        if i < 2 {
            assert_eq!(r.class, Class::SuccessResponse, "{i}");
        } else {
            assert_eq!(code(&r), Some(486));
        }
        std::mem::forget(c.sock);
    }
    let mut other = TestClient::new(&svc, cred("someone-else", 600)).await;
    assert_eq!(other.allocate().await.class, Class::SuccessResponse);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_turn_bandwidth_cap_drops() {
    let mut config = lab_config();
    config.quotas.bandwidth = Some(20_000);
    config.quotas.burst = Some(20_000);
    let svc = start(config).await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut c = TestClient::new(&svc, cred("bw", 600)).await;
    assert_eq!(c.allocate().await.class, Class::SuccessResponse);
    let r = c
        .request(
            Method::CHANNEL_BIND,
            &[
                Attribute::ChannelNumber(0x4000),
                Attribute::XorPeerAddress(peer_addr),
            ],
        )
        .await;
    assert_eq!(r.class, Class::SuccessResponse);
    let payload = [7u8; 1000];
    let mut frame = Vec::new();
    ChannelData {
        channel: 0x4000,
        data: &payload,
    }
    .encode(Transport::Udp, &mut frame)
    .unwrap();
    for _ in 0..100 {
        c.sock.send_to(&frame, c.server).await.unwrap();
    }
    let mut got = 0;
    let mut buf = [0u8; 2048];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), peer.recv_from(&mut buf)).await
    {
        got += 1;
    }
    // 20 KB of burst plus at most a few KB of refill while the burst was sent.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        (15..=40).contains(&got),
        "relayed {got} of 100: {:?}",
        svc.running.stats()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = svc.running.stats();
    assert!(s.bandwidth_drops >= 60, "{s:?}");
}

/// H.626.4 7.3: video through the relay. A camera sends frames as bursts of 1,200-byte
/// packets and a shorter tail to the viewer's relayed address, datagram by datagram and
/// as one GSO send (which the relay socket may take coalesced with GRO); the viewer, a
/// plain socket, gets every packet whole and in order as ChannelData, whichever way the
/// relay sends them (GSO runs with `udp_offload`, one by one without).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_turn_video_bursts_arrive_whole_with_and_without_offload() {
    for offload in [true, false] {
        let mut config = lab_config();
        config.udp_offload = offload;
        let svc = start(config).await;
        let camera = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c = TestClient::new(&svc, cred("video", 600)).await;
        let relayed = c.allocate().await.xor_relayed_address().unwrap();
        let r = c
            .request(
                Method::CHANNEL_BIND,
                &[
                    Attribute::ChannelNumber(0x4001),
                    Attribute::XorPeerAddress(camera.local_addr().unwrap()),
                ],
            )
            .await;
        assert_eq!(r.class, Class::SuccessResponse);
        // Two frames of 8 x 1,200 + 400 bytes, each packet marked with its number.
        let frame = |f: u8| -> Vec<Vec<u8>> {
            (0..9u8)
                .map(|i| vec![f * 16 + i; if i == 8 { 400 } else { 1200 }])
                .collect()
        };
        let mut sent = Vec::new();
        for p in frame(1) {
            camera.send_to(&p, relayed).unwrap();
            sent.push(p);
        }
        let second = frame(2);
        let whole: Vec<u8> = second.concat();
        {
            use std::io::IoSlice;
            use std::os::fd::AsRawFd as _;

            use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn, sendmsg};
            let SocketAddr::V4(to) = relayed else {
                panic!("IPv4 relay")
            };
            let segment: u16 = 1200;
            let gso = sendmsg(
                camera.as_raw_fd(),
                &[IoSlice::new(&whole)],
                &[ControlMessage::UdpGsoSegments(&segment)],
                MsgFlags::empty(),
                Some(&SockaddrIn::from(to)),
            );
            if gso.is_err() {
                // No GSO in this kernel: send the frame datagram by datagram.
                for p in &second {
                    camera.send_to(p, relayed).unwrap();
                }
            }
        }
        sent.extend(second);
        let mut buf = vec![0u8; 65_536];
        for (i, want) in sent.iter().enumerate() {
            let (n, _) = tokio::time::timeout(Duration::from_secs(2), c.sock.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("packet {i} missing (offload {offload})"))
                .unwrap();
            assert!(n >= 4, "packet {i}");
            assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), 0x4001);
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            assert_eq!(
                &buf[4..4 + len],
                &want[..],
                "packet {i} (offload {offload})"
            );
        }
    }
}
