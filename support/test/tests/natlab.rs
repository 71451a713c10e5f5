//! The NAT lab builds the NAT types it claims (RFC 4787 mapping and filtering), probed
//! the way docs/security.md "NAT lab" does: a reflector on the two `srv` addresses tells each
//! host's socket its mapped address, and pokes it from other addresses and ports.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use peercam_test::natlab::{LabError, LabSpec, NatKind, NatLab, SRV_A, SRV_B};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const PORT: u16 = 3478;

/// Reflector (docs/security.md "NAT lab"): answers "PROBE" with the observed source; on "POKE"
/// answers "OK" and sends "UNSOLICITED" from its other sockets (other address, other
/// port). A TCP listener on .10 answers with the observed source too. Runs until `stop`.
async fn reflector(stop: tokio::sync::oneshot::Receiver<()>) -> std::io::Result<()> {
    let mut socks = Vec::new();
    for a in [
        SocketAddr::from((SRV_A, PORT)),
        SocketAddr::from((SRV_B, PORT)),
        SocketAddr::from((SRV_A, PORT + 1)),
    ] {
        socks.push(std::sync::Arc::new(UdpSocket::bind(a).await?));
    }
    let tcp = TcpListener::bind((SRV_A, PORT)).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in socks.iter().enumerate() {
        let s = s.clone();
        let others: Vec<_> = socks
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| o.clone())
            .collect();
        tasks.spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = s.recv_from(&mut buf).await {
                match &buf[..n] {
                    b"PROBE" => {
                        let _ = s.send_to(peer.to_string().as_bytes(), peer).await;
                    }
                    b"POKE" => {
                        let _ = s.send_to(b"OK", peer).await;
                        for o in &others {
                            let _ = o.send_to(b"UNSOLICITED", peer).await;
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    tasks.spawn(async move {
        while let Ok((mut c, peer)) = tcp.accept().await {
            let _ = c.write_all(peer.to_string().as_bytes()).await;
        }
    });
    let _ = stop.await;
    tasks.abort_all();
    Ok(())
}

#[derive(Debug)]
struct Probe {
    /// Mapped address seen by .10 and by .11 (None: no answer).
    mapped: [Option<SocketAddr>; 2],
    /// Datagrams other than "OK" after a POKE.
    unsolicited: usize,
    /// What the TCP reflector saw (None: no connection).
    tcp: Option<SocketAddr>,
}

async fn ask(s: &UdpSocket, dst: SocketAddr, what: &[u8]) -> Option<SocketAddr> {
    for _ in 0..3 {
        s.send_to(what, dst).await.ok()?;
        let mut buf = [0u8; 100];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(400), s.recv_from(&mut buf)).await
        {
            return String::from_utf8_lossy(&buf[..n]).parse().ok();
        }
    }
    None
}

async fn probe() -> Probe {
    let s = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    let m0 = ask(&s, (SRV_A, PORT).into(), b"PROBE").await;
    let m1 = ask(&s, (SRV_B, PORT).into(), b"PROBE").await;

    let t = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    t.send_to(b"POKE", (SRV_A, PORT)).await.unwrap();
    let mut unsolicited = 0;
    let mut buf = [0u8; 100];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), t.recv_from(&mut buf)).await
    {
        if &buf[..n] != b"OK" {
            unsolicited += 1;
        }
    }

    let tcp = async {
        let mut c = TcpStream::connect((SRV_A, PORT)).await.ok()?;
        let mut text = String::new();
        c.read_to_string(&mut text).await.ok()?;
        text.parse().ok()
    };
    let tcp = tokio::time::timeout(Duration::from_secs(3), tcp)
        .await
        .ok()
        .flatten();
    Probe {
        mapped: [m0, m1],
        unsolicited,
        tcp,
    }
}

fn lab_or_skip(spec: &LabSpec) -> Option<NatLab> {
    match NatLab::new(spec) {
        Ok(l) => Some(l),
        Err(LabError::Skipped(why)) => {
            peercam_test::skip("NAT lab", &why);
            None
        }
        Err(e) => panic!("lab: {e}"),
    }
}

#[tokio::test]
async fn natlab_builds_the_nat_types_it_claims() {
    let spec = LabSpec::new()
        .site(NatKind::PortRestricted, 1)
        .site(NatKind::Symmetric, 1)
        .site(NatKind::UdpBlocked, 1)
        .site(NatKind::None, 1)
        .site(NatKind::FullConeOnePort(40000), 1);
    let Some(lab) = lab_or_skip(&spec) else {
        return;
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let srv = lab.run_in(lab.srv(), move || reflector(stopped));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut results = Vec::new();
    for site in 1..=5 {
        let p = lab
            .run_in(lab.host(site, 0).unwrap(), probe)
            .join()
            .await
            .unwrap();
        eprintln!("site {site} {:?}: {p:?}", lab.nat(site).unwrap());
        results.push(p);
    }

    // Port-restricted cone: one mapping for both destinations, on the router's address;
    // nothing unsolicited gets in.
    let pr = &results[0];
    let wan = lab.router_wan_addr(1).unwrap();
    assert_eq!(pr.mapped[0], pr.mapped[1], "endpoint-independent mapping");
    assert_eq!(pr.mapped[0].unwrap().ip(), wan);
    assert_eq!(pr.unsolicited, 0, "address-and-port-dependent filtering");
    assert_eq!(pr.tcp.unwrap().ip(), wan);

    // Symmetric: another external port per destination; nothing unsolicited.
    let sy = &results[1];
    let (a, b) = (sy.mapped[0].unwrap(), sy.mapped[1].unwrap());
    assert_eq!(a.ip(), lab.router_wan_addr(2).unwrap());
    assert_eq!(a.ip(), b.ip());
    assert_ne!(a.port(), b.port(), "endpoint-dependent mapping");
    assert_eq!(sy.unsolicited, 0);

    // UDP blocked: no UDP answer at all, TCP works.
    let ub = &results[2];
    assert_eq!(ub.mapped, [None, None]);
    assert_eq!(ub.unsolicited, 0);
    assert_eq!(ub.tcp.unwrap().ip(), lab.router_wan_addr(3).unwrap());

    // No NAT: the host's own public address, no filtering (both pokes arrive).
    let no = &results[3];
    let own = lab.host_addr(4, 0).unwrap();
    assert_eq!(no.mapped[0].unwrap().ip(), own);
    assert_eq!(no.mapped[0], no.mapped[1]);
    assert_eq!(no.unsolicited, 2);

    // Full cone on UDP 40000 of the first host: anyone reaches it through the router.
    let fc_host = lab.host(5, 0).unwrap();
    let fc_wan = lab.router_wan_addr(5).unwrap();
    let got = lab.run_in(fc_host, || async {
        let s = UdpSocket::bind("0.0.0.0:40000").await.unwrap();
        s.send_to(b"PROBE", (SRV_A, PORT)).await.unwrap();
        let mut buf = [0u8; 100];
        let mut seen = Vec::new();
        while let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(1500), s.recv_from(&mut buf)).await
        {
            seen.push((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
        }
        seen
    });
    let poker = lab.run_in(lab.srv(), move || async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = UdpSocket::bind((SRV_B, 0)).await.unwrap();
        s.send_to(b"HELLO", (fc_wan, 40000)).await.unwrap();
    });
    poker.join().await.unwrap();
    let seen = got.join().await.unwrap();
    assert!(
        seen.iter().any(|(t, _)| t == &format!("{fc_wan}:40000")),
        "mapped to the same port: {seen:?}"
    );
    assert!(
        seen.iter().any(|(t, f)| t == "HELLO" && f.ip() == SRV_B),
        "unsolicited from another address arrives: {seen:?}"
    );

    let _ = stop.send(());
    srv.join().await.unwrap().unwrap();
}

#[tokio::test]
async fn natlab_helpers_and_teardown() {
    let Some(lab) = lab_or_skip(&LabSpec::new().site(NatKind::PortRestricted, 2)) else {
        return;
    };
    let names: Vec<String> = lab.namespaces().to_vec();
    assert_eq!(names.len(), 5, "wan, srv, router, two hosts: {names:?}");
    assert_eq!(lab.host_addr(1, 1).unwrap(), Ipv4Addr::new(10, 0, 1, 3));
    assert_eq!(lab.router_lan_addr(1).unwrap(), Ipv4Addr::new(10, 0, 1, 1));
    lab.set_conntrack_udp_timeout(lab.router(1).unwrap(), 7)
        .unwrap();
    let out = lab
        .exec(
            lab.router(1).unwrap(),
            "sysctl",
            &["-n", "net.netfilter.nf_conntrack_udp_timeout"],
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");

    // Host 0 reaches srv; not with the router's uplink down; again once it is up.
    let reach = |lab: &NatLab| {
        lab.run_in(lab.host(1, 0).unwrap(), || async {
            tokio::time::timeout(Duration::from_millis(700), TcpStream::connect((SRV_A, 9)))
                .await
                .map(|r| r.map_err(|e| e.kind()))
        })
    };
    // Nothing listens on srv:9, so a reachable srv refuses at once.
    assert_eq!(
        reach(&lab).join().await.unwrap().unwrap().err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    lab.link_down(lab.router(1).unwrap()).unwrap();
    let down = reach(&lab).join().await.unwrap();
    assert!(
        !matches!(
            down,
            Ok(Err(std::io::ErrorKind::ConnectionRefused)) | Ok(Ok(_))
        ),
        "srv unreachable with the link down: {down:?}"
    );
    lab.link_up(lab.router(1).unwrap()).unwrap();
    assert_eq!(
        reach(&lab).join().await.unwrap().unwrap().err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );

    // A process in a namespace sees only that namespace's interfaces.
    let out = lab
        .exec(lab.host(1, 1).unwrap(), "ip", &["-br", "addr"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("10.0.1.3/24"), "{text}");
    assert!(!text.contains("198.51.100"), "{text}");

    drop(lab);
    let left = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| names.contains(n))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "namespaces deleted on drop");
}

#[test]
fn natlab_tears_down_on_panic() {
    let spec = LabSpec::new().site(NatKind::Symmetric, 1);
    let names = std::panic::catch_unwind(|| {
        let Some(lab) = lab_or_skip(&spec) else {
            return Vec::new();
        };
        let names = lab.namespaces().to_vec();
        std::panic::resume_unwind(Box::new(names));
    });
    let names: Vec<String> = match names {
        Ok(v) => v,
        Err(p) => *p.downcast::<Vec<String>>().unwrap(),
    };
    for n in names {
        assert!(!std::path::Path::new(&format!("/run/netns/{n}")).exists());
    }
}
