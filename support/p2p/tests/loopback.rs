//! Two peers on loopback: gather, exchange descriptions in-process, punch, QUIC, stream.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use peercam_ice::{Agent, CandidateKind, Config, Credentials, Role};
use peercam_p2p::{
    Error, Identity, P2pStream, SessionDescription, gather, new_agent, punch, random_seed,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

struct Side {
    socket: UdpSocket,
    agent: Agent,
    identity: Identity,
    desc: SessionDescription,
}

async fn side(role: Role) -> Side {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let candidates = gather(&socket, None, Duration::from_secs(1)).await.unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].addr, socket.local_addr().unwrap());
    let agent = new_agent(role, &candidates).unwrap();
    let identity = Identity::generate().unwrap();
    let desc = SessionDescription {
        credentials: agent.local_credentials().clone(),
        candidates,
        fingerprint: identity.fingerprint(),
    };
    // What the platform carries: JSON.
    let json = serde_json::to_string(&desc).unwrap();
    let desc: SessionDescription = serde_json::from_str(&json).unwrap();
    Side {
        socket,
        agent,
        identity,
        desc,
    }
}

async fn pair(
    cu_peer_fp: Option<peercam_p2p::Fingerprint>,
) -> (Result<P2pStream, Error>, Result<P2pStream, Error>) {
    let cu = side(Role::Controlling).await;
    let pu = side(Role::Controlled).await;
    let (cu_desc, pu_desc) = (cu.desc.clone(), pu.desc.clone());
    let pu_fp = cu_peer_fp.unwrap_or(pu_desc.fingerprint);
    let t = Duration::from_secs(10);
    let cu_task = tokio::spawn(async move {
        let punched = punch(cu.socket, cu.agent, &pu_desc, t).await?;
        assert_eq!(punched.path().remote_kind, CandidateKind::Host);
        punched.connect(&cu.identity, pu_fp).await
    });
    let pu_task = tokio::spawn(async move {
        let punched = punch(pu.socket, pu.agent, &cu_desc, t).await?;
        punched.accept(&pu.identity, cu_desc.fingerprint).await
    });
    (cu_task.await.unwrap(), pu_task.await.unwrap())
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    let mut x = u32::from(seed) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn exchange(mut s: P2pStream, out: Vec<u8>, expect_len: usize) -> (P2pStream, Vec<u8>) {
    let (mut r, mut w) = tokio::io::split(s);
    let writer = async {
        w.write_all(&out).await.unwrap();
        w.shutdown().await.unwrap();
        w
    };
    let reader = async {
        let mut got = Vec::with_capacity(expect_len);
        r.read_to_end(&mut got).await.unwrap();
        (r, got)
    };
    let (w, (r, got)) = tokio::join!(writer, reader);
    s = r.unsplit(w);
    (s, got)
}

/// H.626.4 8.3/8.4: punch on loopback, QUIC over the punched socket, 10 MB each way.
#[tokio::test]
async fn h626_8_3_p2p_stream_10mb_both_ways() {
    let started = Instant::now();
    let (cu, pu) = pair(None).await;
    let (cu, pu) = (cu.unwrap(), pu.unwrap());
    let setup = started.elapsed();
    assert_eq!(cu.remote_addr(), pu.path().local);
    assert_eq!(pu.remote_addr(), cu.path().local);
    const N: usize = 10 * 1024 * 1024;
    let (a, b) = (pattern(1, N), pattern(2, N));
    let t = Instant::now();
    let ((cu, from_pu), (pu, from_cu)) =
        tokio::join!(exchange(cu, a.clone(), N), exchange(pu, b.clone(), N));
    let took = t.elapsed();
    assert!(
        from_pu == b,
        "CU got {} bytes, corrupted or short",
        from_pu.len()
    );
    assert!(
        from_cu == a,
        "PU got {} bytes, corrupted or short",
        from_cu.len()
    );
    assert_eq!(cu.bytes_sent(), N as u64);
    assert_eq!(cu.bytes_received(), N as u64);
    assert_eq!(pu.bytes_sent(), N as u64);
    assert!(cu.rtt() < Duration::from_secs(1));
    println!(
        "set-up (gather+punch+QUIC) {setup:?}; 2 x 10 MiB in {took:?} ({:.1} MiB/s each way), rtt {:?}",
        10.0 / took.as_secs_f64(),
        cu.rtt()
    );
    let (r1, r2) = tokio::join!(cu.close(), pu.close());
    r1.unwrap();
    r2.unwrap();
}

/// The CU pins a fingerprint that is not the PU's: the handshake is refused on both
/// sides and no stream comes up.
#[tokio::test]
async fn h626_8_3_p2p_wrong_fingerprint_refused() {
    let other = Identity::generate().unwrap().fingerprint();
    let (cu, pu) = pair(Some(other)).await;
    assert!(
        matches!(cu, Err(Error::Connection(_))),
        "CU: {:?}",
        cu.map(|_| ())
    );
    assert!(pu.is_err(), "PU must not get a stream");
}

/// The remote never answers: punch fails with a typed error within its timeout.
#[tokio::test]
async fn h626_8_3_p2p_punch_fails_cleanly_when_peer_silent() {
    let cu = side(Role::Controlling).await;
    // A socket that exists but never reads: its candidate gets no answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let desc = SessionDescription {
        credentials: Credentials::from_random(random_seed().unwrap()),
        candidates: vec![peercam_ice::Candidate::host(
            silent.local_addr().unwrap(),
            65535,
        )],
        fingerprint: Identity::generate().unwrap().fingerprint(),
    };
    let t = Instant::now();
    let r = punch(cu.socket, cu.agent, &desc, Duration::from_secs(3)).await;
    let took = t.elapsed();
    assert!(
        matches!(r, Err(Error::PunchTimeout(_))),
        "{:?}",
        r.map(|_| ())
    );
    assert!(took < Duration::from_millis(3500), "{took:?}");

    // With a short ICE timeout the agent itself gives up first: PunchFailed.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let host = gather(&socket, None, Duration::from_secs(1)).await.unwrap();
    let mut config = Config::new(random_seed().unwrap());
    config.connect_timeout = Duration::from_secs(1);
    let mut agent = Agent::new(
        Role::Controlling,
        Credentials::from_random(random_seed().unwrap()),
        config,
        Instant::now(),
    );
    agent.add_local_candidate(host[0].clone()).unwrap();
    let t = Instant::now();
    let r = punch(socket, agent, &desc, Duration::from_secs(5)).await;
    assert!(
        matches!(r, Err(Error::PunchFailed(_))),
        "{:?}",
        r.map(|_| ())
    );
    assert!(t.elapsed() < Duration::from_millis(1500));
}

/// A STUN server on loopback answers the gatherer: the socket gets a server-reflexive
/// candidate only if the mapped address differs (here it does not: no NAT).
#[tokio::test]
async fn gather_with_stun_server_on_loopback() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let m = peercam_stun::message::Message::decode(&buf[..n]).unwrap();
            let r = peercam_stun::message::Message::new(
                peercam_stun::message::Class::SuccessResponse,
                m.method,
                m.transaction_id,
            )
            // Pretend a NAT mapped us to 203.0.113.9:40000.
            .with(peercam_stun::message::Attribute::XorMappedAddress(
                "203.0.113.9:40000".parse().unwrap(),
            ))
            .encode_sealed(None, true)
            .unwrap();
            server.send_to(&r, from).await.unwrap();
        }
    });
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c = gather(&socket, Some(server_addr), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].kind, CandidateKind::ServerReflexive);
    assert_eq!(c[1].addr, "203.0.113.9:40000".parse().unwrap());
    assert_eq!(c[1].base(), socket.local_addr().unwrap());
}

/// A wildcard-bound socket lists the machine's interface addresses.
#[tokio::test]
async fn gather_wildcard_lists_interfaces() {
    let socket = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    let c = gather(&socket, None, Duration::from_secs(1)).await.unwrap();
    assert!(!c.is_empty());
    let port = socket.local_addr().unwrap().port();
    assert!(c.iter().all(|c| c.addr.port() == port && c.addr.is_ipv4()));
    assert!(!peercam_p2p::interface_addrs().unwrap().is_empty());
}
