//! H.626.4 8.3 step 1 against a real gateway daemon: miniupnpd 2.3 (Debian package
//! `miniupnpd-iptables`) runs in the router namespace of a port-restricted NAT lab site;
//! a host behind it maps a TCP port with `peercam_net::portmap`, a server on the fake
//! internet connects to the external address and reaches the host's listener, and after
//! the release the mapping is gone.
//!
//! Skipped (with the reason printed) when not root, or when iptables or miniupnpd is
//! missing (`apt-get install -y iptables miniupnpd-iptables`).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use peercam_net::Shutdown;
use peercam_net::portmap::{Method, PortMapConfig, PortMapper, Protocol};
use peercam_test::natlab::{LabError, LabSpec, MiniUpnpd, NatKind, NatLab, SRV_A};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// miniupnpd refuses documentation and private ranges as its external address ("Reserved
/// / private IP address ... Port forwarding is impossible"), so this router's WAN gets an
/// ordinary-looking address. The lab is isolated: no packet leaves the machine.
const PUBLIC: Ipv4Addr = Ipv4Addr::new(192, 0, 3, 2);
const INTERNAL_PORT: u16 = 8554;

struct Gateway {
    lab: NatLab,
    _daemon: MiniUpnpd,
    log: std::path::PathBuf,
}

fn miniupnpd() -> Option<&'static str> {
    peercam_test::natlab::miniupnpd_path()
}

/// The lab with miniupnpd running on site 1's router, or `None` (skipped, reason printed).
async fn gateway() -> Option<Gateway> {
    let Some(daemon) = miniupnpd() else {
        peercam_test::skip(
            "portmap gateway",
            "miniupnpd not installed (apt-get install -y miniupnpd-iptables)",
        );
        return None;
    };
    // miniupnpd-iptables drives the legacy xtables interface (libiptc).
    let spec = LabSpec::new()
        .iptables("iptables-legacy")
        .site_with_public_addr(NatKind::PortRestricted, 1, PUBLIC);
    let lab = match NatLab::new(&spec) {
        Ok(l) => l,
        Err(LabError::Skipped(why)) => {
            peercam_test::skip("NAT lab", &why);
            return None;
        }
        Err(e) => panic!("lab: {e}"),
    };
    let mini = match lab.start_miniupnpd(1, daemon).await {
        Ok(m) => m,
        Err(e) => panic!("miniupnpd: {e}"),
    };
    let log = mini.log.clone();
    Some(Gateway {
        lab,
        _daemon: mini,
        log,
    })
}

/// From srv: connect to `to` and read what the host's listener says; `None` if the
/// connection fails within two seconds.
async fn connect_from_srv(lab: &NatLab, to: SocketAddr) -> Option<String> {
    lab.run_in(lab.srv(), move || async move {
        let talk = async {
            let mut c = TcpStream::connect(to).await.ok()?;
            let mut s = String::new();
            c.read_to_string(&mut s).await.ok()?;
            Some(s)
        };
        tokio::time::timeout(Duration::from_secs(2), talk)
            .await
            .ok()
            .flatten()
    })
    .join()
    .await
    .unwrap()
}

/// Maps INTERNAL_PORT/TCP from host 1.0 with `method` only, proves the mapping carries a
/// connection from the internet, releases it and proves it is gone.
async fn maps_port_with(method: Method) {
    let Some(gw) = gateway().await else {
        return;
    };
    let lab = &gw.lab;
    let host = lab.host(1, 0).unwrap().to_owned();
    let router = lab.router(1).unwrap().to_owned();

    let (mapped_tx, mapped_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let camera = lab.run_in(&host, move || async move {
        // The camera's service behind the NAT.
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, INTERNAL_PORT))
            .await
            .unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, peer)) = listener.accept().await {
                let _ = c.write_all(format!("camera sees {peer}").as_bytes()).await;
            }
        });
        let cfg = PortMapConfig {
            gateway: None, // the default route's gateway, read in this namespace
            methods: vec![method],
            initial_rto: Duration::from_millis(100),
            ssdp_wait: Duration::from_secs(3),
            ..PortMapConfig::default()
        };
        let shutdown = Shutdown::new();
        let m = PortMapper::new(cfg)
            .map_port(
                Protocol::Tcp,
                INTERNAL_PORT,
                Duration::from_secs(600),
                &shutdown,
            )
            .await;
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                let _ = mapped_tx.send(Err(e.to_string()));
                return;
            }
        };
        let _ = mapped_tx.send(Ok(m.mapping()));
        let _ = release_rx.await;
        m.release().await;
    });

    let mapping = match mapped_rx.await.unwrap() {
        Ok(m) => m,
        Err(e) => panic!(
            "{method} mapping failed: {e}\nminiupnpd log:\n{}",
            std::fs::read_to_string(&gw.log).unwrap_or_default()
        ),
    };
    eprintln!("{method}: {mapping:?}");
    assert_eq!(mapping.method, method);
    assert_eq!(mapping.external.ip(), std::net::IpAddr::V4(PUBLIC));

    // A connection from the internet to the external address reaches the camera, with
    // srv's own address as the peer (DNAT only).
    let said = connect_from_srv(lab, mapping.external).await;
    assert_eq!(
        said.as_deref()
            .and_then(|s| s.strip_prefix("camera sees "))
            .map(|p| p.split(':').next().unwrap_or_default().to_owned()),
        Some(SRV_A.to_string()),
        "through {mapping:?}: {said:?}\nminiupnpd log:\n{}",
        std::fs::read_to_string(&gw.log).unwrap_or_default()
    );
    let rules = lab
        .exec(
            &router,
            lab.iptables_command(),
            &["-t", "nat", "-S", "MINIUPNPD"],
        )
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    assert!(
        rules.contains(&format!("--dport {}", mapping.external.port())),
        "{rules}"
    );

    release_tx.send(()).unwrap();
    camera.join().await.unwrap();
    let rules = lab
        .exec(
            &router,
            lab.iptables_command(),
            &["-t", "nat", "-S", "MINIUPNPD"],
        )
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    assert!(
        !rules.contains(&format!("--dport {}", mapping.external.port())),
        "mapping left after release: {rules}"
    );
    assert_eq!(connect_from_srv(lab, mapping.external).await, None);
}

#[tokio::test]
async fn h626_8_3_pu_maps_port_with_natpmp() {
    maps_port_with(Method::NatPmp).await;
}

#[tokio::test]
async fn h626_8_3_pu_maps_port_with_upnp() {
    maps_port_with(Method::Upnp).await;
}

#[tokio::test]
async fn h626_8_3_pu_maps_port_with_pcp() {
    maps_port_with(Method::Pcp).await;
}
