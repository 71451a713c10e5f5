//! H.626.4 8.3 in a real-kernel NAT lab (network namespaces, veth, iptables; see
//! `peercam_test::natlab` and docs/security.md, "NAT lab"): the platform (CMU, SCU, MTU) on the fake
//! internet, the camera and the viewer behind no NAT, a port-restricted cone NAT
//! (MASQUERADE), a symmetric NAT (`--random-fully`) or a NAT that drops UDP, in every
//! pairing, plus both behind the same NAT. Each case asserts that media flows to the viewer
//! and which path carried it: straight to the camera where the camera can be reached, the
//! MTU's relay only where it cannot.
//!
//! Skipped (reason printed) when not root or iptables is missing; `.ci/run` installs it.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use peercam_cu::Client;
use peercam_signal::cm::PlayRequest;
use peercam_signal::ps::DeviceKind;
use peercam_signal::relay::PathKind;
use peercam_test::natlab::{LabError, LabSpec, NatKind, NatLab, NsTask, SRV_A};
use peercam_test::{Cluster, new_identity, provision_record};

const PHONE: &str = "+15550830001";
const PASSWORD: &str = "correct horse battery";

/// What the platform side hands the camera and the viewer.
struct Setup {
    api: String,
    ca_pem: Vec<u8>,
    ca_path: PathBuf,
    scu_url: String,
    identity: PathBuf,
    dev: String,
}

/// The platform on the fake internet (198.51.100.10): CMU, SCU and an MTU that also serves
/// STUN and TURN (for hole punching, and for browsers with `browser`); one camera
/// provisioned, and bound to the owner once it is online.
struct Platform {
    setup: tokio::sync::oneshot::Receiver<Setup>,
    bound: tokio::sync::oneshot::Receiver<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: NsTask<()>,
}

impl Platform {
    fn start(lab: &NatLab, browser: bool) -> Self {
        const SECRET: &str = "natlab-turn-secret";
        let (setup_tx, setup) = tokio::sync::oneshot::channel::<Setup>();
        let (bound_tx, bound) = tokio::sync::oneshot::channel::<()>();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = lab.run_in(lab.srv(), move || async move {
            // Browsers get TURN credentials from the CMU, which shares the MTU's secret.
            let c = Cluster::start_at_with(IpAddr::V4(SRV_A), 1, |cfg| {
                if browser {
                    cfg.turn_secret = Some(SECRET.into());
                }
            })
            .await
            .unwrap();
            let ids = c.provision(1).await.unwrap();
            let mid = new_identity(DeviceKind::Mtu);
            c.admin
                .provision(vec![provision_record(&mid)])
                .await
                .unwrap();
            let (mut mtu, _msd) = c
                .start_mtu_with(&mid, 0, |cfg| {
                    cfg.turn = Some(peercam_mtu::turn::Config {
                        listen_udp: Some(std::net::SocketAddr::new(IpAddr::V4(SRV_A), 0)),
                        listen_tcp: Some(std::net::SocketAddr::new(IpAddr::V4(SRV_A), 0)),
                        secret: SECRET.into(),
                        // The lab's internet is a documentation range, denied by default.
                        allow_peers: if browser {
                            vec!["198.51.100.0/24".into()]
                        } else {
                            Vec::new()
                        },
                        threads: Some(1),
                        ..peercam_mtu::turn::Config::default()
                    });
                })
                .await
                .unwrap();
            tokio::time::timeout(
                Duration::from_secs(30),
                mtu.status
                    .wait_for(|s| matches!(s, peercam_mtu::MtuStatus::Registered { .. })),
            )
            .await
            .unwrap()
            .unwrap();
            let owner = c.owner(PHONE).await.unwrap();
            let identity = c.path().join("pu.identity.toml");
            std::fs::write(&identity, ids[0].to_toml()).unwrap();
            let _ = setup_tx.send(Setup {
                api: c.api.clone(),
                ca_pem: c.ca_pem.clone(),
                ca_path: c.pki.ca_cert.clone(),
                scu_url: c.scu_url(0),
                identity,
                dev: ids[0].device_id.to_string(),
            });
            c.wait_online(&ids[0].device_id, true, Duration::from_secs(20))
                .await
                .unwrap();
            c.bind(&owner, &ids[0]).await.unwrap();
            if browser {
                wait_for_turn(&owner, ids[0].device_id.as_str()).await;
            }
            let _ = bound_tx.send(());
            let _ = stop_rx.await;
            c.stop().await;
        });
        Self {
            setup,
            bound,
            stop,
            task,
        }
    }

    /// The platform's addresses and the camera's identity, to start the camera with.
    async fn setup(&mut self) -> Setup {
        (&mut self.setup).await.expect("platform started")
    }

    /// Waits until the camera is registered and bound (and, for browsers, TURN is offered).
    async fn wait_bound(&mut self, limit: Duration) {
        tokio::time::timeout(limit, &mut self.bound)
            .await
            .expect("camera registered and bound in time")
            .unwrap();
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.join().await;
    }
}

/// TURN servers reach the CMU with the MTU's load report. On a loaded machine that can take
/// a while; a browser started without them would take the wrong path, so wait for them and
/// say so if they never come.
async fn wait_for_turn(owner: &Client, dev: &str) {
    for _ in 0..600 {
        if owner
            .ice(dev)
            .await
            .is_ok_and(|i| !i.ice_servers.is_empty())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the MTU's TURN server never reached the CMU's ICE answer");
}

/// The camera behind its NAT (site 1, first host), with UPnP mapping when `upnp`.
struct Camera {
    stop: tokio::sync::oneshot::Sender<()>,
    task: NsTask<()>,
}

impl Camera {
    fn start(
        lab: &NatLab,
        setup: &Setup,
        (upnp, gateway): (bool, Option<std::net::Ipv4Addr>),
        speaker: Option<PathBuf>,
    ) -> Self {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (identity, scu_url, ca_path) = (
            setup.identity.clone(),
            setup.scu_url.clone(),
            setup.ca_path.clone(),
        );
        let task = lab.run_in(lab.host(1, 0).unwrap(), move || async move {
            let sd = peercam_net::Shutdown::new();
            let mut cfg = peercam_pu::Config::new(identity, scu_url, ca_path);
            cfg.rtsp_listen = "0.0.0.0:0".parse().unwrap();
            cfg.reconnect_initial_ms = 100;
            cfg.discovery_port = 0;
            cfg.sd_card = false;
            cfg.port_mapping = upnp;
            cfg.gateway = gateway.map(IpAddr::V4);
            cfg.speaker_wav = speaker;
            let _pu = peercam_pu::start(cfg, sd.clone()).await.unwrap();
            let _ = stop_rx.await;
            sd.trigger();
        });
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.join().await;
    }
}

/// Runs one pairing; `None` when the lab cannot be built here.
async fn pairing(pu: NatKind, cu: NatKind, same_site: bool) -> Option<(PathKind, u64)> {
    run(pu, cu, same_site, false, None).await
}

/// Talk (6.1.8) across the lab: `peercam cu talk`'s client sends 2 s of a 1 kHz tone over
/// the ONVIF back channel on the best path; gives the path and what the camera's speaker
/// file holds.
async fn talk_pairing(pu: NatKind, cu: NatKind) -> Option<(PathKind, Vec<i16>)> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speaker.wav");
    let (path, _) = run(pu, cu, false, false, Some(wav.clone())).await?;
    let (rate, pcm) = peercam_test::tone::read_wav(&wav).unwrap();
    assert_eq!(rate, 8000);
    Some((path, pcm))
}

/// miniupnpd refuses to map on documentation addresses: the gateway's public side.
const GATEWAY_PUBLIC: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 3, 2);

/// One pairing; with `upnp`, the camera's router runs miniupnpd and the camera asks it for
/// a mapping (8.3 step 1).
/// With `speaker`, the camera plays talk into that WAV file and the viewer talks instead of
/// watching (the count is then RTP packets sent).
async fn run(
    pu: NatKind,
    cu: NatKind,
    same_site: bool,
    upnp: bool,
    speaker: Option<PathBuf>,
) -> Option<(PathKind, u64)> {
    let talks = speaker.is_some();
    let daemon = if upnp {
        let Some(d) = peercam_test::natlab::miniupnpd_path() else {
            peercam_test::skip(
                "h626_8_3_lab (UPnP)",
                "miniupnpd not installed (apt-get install -y miniupnpd-iptables)",
            );
            return None;
        };
        Some(d)
    } else {
        None
    };
    let spec = if same_site {
        LabSpec::new().site(pu, 2)
    } else if upnp {
        LabSpec::new()
            .iptables("iptables-legacy")
            .site_with_public_addr(pu, 1, GATEWAY_PUBLIC)
            .site(cu, 1)
    } else {
        LabSpec::new().site(pu, 1).site(cu, 1)
    };
    let lab = match NatLab::new(&spec) {
        Ok(l) => l,
        Err(LabError::Skipped(why)) => {
            peercam_test::skip("NAT lab", &why);
            return None;
        }
        Err(e) => panic!("lab: {e}"),
    };
    let _gateway = match daemon {
        Some(d) => Some(lab.start_miniupnpd(1, d).await.unwrap()),
        None => None,
    };
    let gateway = lab.router_lan_addr(1).ok();
    let mut platform = Platform::start(&lab, false);
    let setup = platform.setup().await;
    let camera = Camera::start(&lab, &setup, (upnp, gateway), speaker);
    platform.wait_bound(Duration::from_secs(30)).await;
    // The viewer behind its NAT (or beside the camera).
    let (api, ca, dev) = (setup.api.clone(), setup.ca_pem.clone(), setup.dev.clone());
    let viewer_ns = if same_site {
        lab.host(1, 1).unwrap()
    } else {
        lab.host(2, 0).unwrap()
    };
    let viewer = lab.run_in(viewer_ns, move || async move {
        let (user, _) = Client::new(&api, Some(&ca))
            .unwrap()
            .login(PHONE, PASSWORD)
            .await
            .unwrap();
        // The MTU's first load report may trail its registration.
        let mut paths = Vec::new();
        for _ in 0..50 {
            let p = user.play(&dev, &PlayRequest::default()).await.unwrap();
            paths = p.paths;
            if paths.iter().any(|x| x.kind == PathKind::Relay) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let puncher = peercam_cu::live::Puncher {
            client: user.clone(),
            device: dev.clone(),
            recorder: None,
        };
        if talks {
            let tone = peercam_test::tone::sine(1000.0, 8000, 16_000, 8000.0);
            let talked = peercam_cu::talk::talk(&paths, Some(&puncher), &tone, |_| {})
                .await
                .unwrap();
            eprintln!(
                "talk over {}: {} packets",
                talked.reached.kind.as_str(),
                talked.packets
            );
            // The speaker file is written as packets arrive; let the last ones land.
            tokio::time::sleep(Duration::from_millis(700)).await;
            return (talked.reached.kind, talked.packets);
        }
        let (rec, reached) =
            peercam_cu::live::record_best(&paths, Some(&puncher), Duration::from_secs(3), |_| {})
                .await
                .unwrap();
        eprintln!(
            "paths {:?} -> {} in {:.0} ms, {} frames",
            paths.iter().map(|p| p.kind).collect::<Vec<_>>(),
            reached.kind.as_str(),
            reached.connect_ms,
            rec.frames
        );
        (reached.kind, rec.frames)
    });
    let result = tokio::time::timeout(Duration::from_secs(60), viewer.join())
        .await
        .expect("viewer finished in time")
        .unwrap();
    camera.stop().await;
    platform.stop().await;
    Some(result)
}

async fn expect(pu: NatKind, cu: NatKind, path: PathKind) {
    if let Some((got, frames)) = pairing(pu, cu, false).await {
        assert_eq!(got, path, "camera {pu:?}, viewer {cu:?}");
        assert!(frames >= 10, "media flowed: {frames} frames");
    }
}

// A camera with a public address of its own is reached directly from anywhere, even from
// behind a NAT that drops UDP (RTSP over TCP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_lab_public_camera_to_every_viewer_is_direct() {
    for cu in [
        NatKind::None,
        NatKind::PortRestricted,
        NatKind::Symmetric,
        NatKind::UdpBlocked,
    ] {
        expect(NatKind::None, cu, PathKind::Public).await;
    }
}

// A camera behind a port-restricted cone NAT (endpoint-independent mapping) with no port
// mapping: hole punching works towards a viewer with no NAT; a symmetric NAT or one that
// drops UDP leaves only the relay (docs/security.md "NAT lab", RFC 4787).
//
// Two Linux port-restricted NATs cannot punch here, although RFC 4787 says they could: the
// lab has next to no latency, so one side's first check reaches the other router before
// that side has sent anything; the router's conntrack records that unsolicited packet, and
// the outbound mapping made a moment later clashes with it and gets a new port (symmetric
// for that flow). On the internet the first checks cross in flight and the pair punches,
// which the virtual-network matrix of `peercam-ice` (crossing packets) shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_lab_cone_camera_punches_or_is_relayed() {
    for (cu, path) in [
        (NatKind::None, PathKind::Punched),
        (NatKind::PortRestricted, PathKind::Relay),
        (NatKind::Symmetric, PathKind::Relay),
        (NatKind::UdpBlocked, PathKind::Relay),
    ] {
        expect(NatKind::PortRestricted, cu, path).await;
    }
}

// A camera behind a symmetric NAT: only a viewer without NAT can be reached by punching
// (the camera's checks open the way; the viewer learns its peer-reflexive address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_lab_symmetric_camera_punches_only_to_a_public_viewer() {
    for (cu, path) in [
        (NatKind::None, PathKind::Punched),
        (NatKind::PortRestricted, PathKind::Relay),
        (NatKind::Symmetric, PathKind::Relay),
        (NatKind::UdpBlocked, PathKind::Relay),
    ] {
        expect(NatKind::Symmetric, cu, path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_lab_camera_blocked_udp_is_relayed() {
    expect(
        NatKind::UdpBlocked,
        NatKind::PortRestricted,
        PathKind::Relay,
    )
    .await;
}

// Viewer and camera behind the same NAT: the CMU sees one public address for both and puts
// the camera's LAN address first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_lab_same_site_is_lan() {
    for nat in [NatKind::PortRestricted, NatKind::Symmetric] {
        if let Some((got, frames)) = pairing(nat, nat, true).await {
            assert_eq!(got, PathKind::Lan, "{nat:?}");
            assert!(frames >= 10);
        }
    }
}

// A camera behind a NAT whose gateway maps ports (miniupnpd: UPnP IGD, NAT-PMP, PCP): the
// camera maps its RTSP port, the CMU checks the mapping against the address the SCU saw,
// and a viewer elsewhere plays straight through the mapping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_lab_mapped_camera_is_direct() {
    for cu in [NatKind::Symmetric, NatKind::UdpBlocked] {
        if let Some((got, frames)) = run(NatKind::PortRestricted, cu, false, true, None).await {
            assert_eq!(got, PathKind::Mapped, "viewer {cu:?}");
            assert!(frames >= 10);
        }
    }
}

/// Issue 7 in the lab: Chromium behind the viewer's NAT plays the camera behind its own
/// through the web client (WebRTC, signalled through the platform on the fake internet);
/// returns the path the page reports (`direct` or `relay`). `None` when the lab or the
/// browser cannot run here.
async fn browser(pu: NatKind, cu: NatKind) -> Option<String> {
    let dir = peercam_test::web::web_tests_or_skip("h626_8_3_lab_browser")?;
    let lab = match NatLab::new(&LabSpec::new().site(pu, 1).site(cu, 1)) {
        Ok(l) => l,
        Err(LabError::Skipped(why)) => {
            peercam_test::skip("NAT lab", &why);
            return None;
        }
        Err(e) => panic!("lab: {e}"),
    };
    let mut platform = Platform::start(&lab, true);
    let setup = platform.setup().await;
    let camera = Camera::start(&lab, &setup, (false, None), None);
    platform.wait_bound(Duration::from_secs(90)).await;
    // node and Chromium both run inside the viewer's namespace.
    let shots = tempfile::tempdir().unwrap();
    let json = peercam_test::web::scenario(
        &dir,
        "live.mjs",
        &[
            ("PEERCAM_WEB_URL", setup.api.clone()),
            ("PEERCAM_WEB_USER", PHONE.to_owned()),
            ("PEERCAM_WEB_PASSWORD", PASSWORD.to_owned()),
            ("PEERCAM_DEVICE", setup.dev.clone()),
            ("PEERCAM_WEB_RELAY", "0".to_owned()),
            ("PEERCAM_WEB_PLAYS", "1".to_owned()),
            ("PEERCAM_WEB_SHOTS", shots.path().display().to_string()),
        ],
        Some(lab.command(lab.host(2, 0).unwrap(), "node")),
    )
    .await;
    eprintln!("camera {pu:?}, browser {cu:?}: {}", json["check"]);
    assert!(
        json["check"]["advanced_s"].as_f64().unwrap() > 0.5,
        "{json}"
    );
    assert!(json["check"]["contrast"].as_f64().unwrap() > 5.0, "{json}");
    camera.stop().await;
    platform.stop().await;
    json["check"]["path"].as_str().map(str::to_owned)
}

// Issue 7 over the lab: a browser reaches a camera with a public address directly, even from
// behind a NAT; a camera behind a NAT that a browser cannot reach by punching is played
// through the MTU's TURN relay, over TCP when the browser's NAT drops UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_lab_browser_live_view_direct_or_through_turn() {
    for (pu, cu, path) in [
        (NatKind::PortRestricted, NatKind::UdpBlocked, "relay"),
        (NatKind::None, NatKind::PortRestricted, "direct"),
        (NatKind::Symmetric, NatKind::Symmetric, "relay"),
    ] {
        if let Some(got) = browser(pu, cu).await {
            assert_eq!(got, path, "camera {pu:?}, browser {cu:?}");
        }
    }
}

// H.626.4 6.1.8 on every path: talk from a viewer outside reaches the speaker of a camera
// behind a cone NAT by hole punching (viewer without NAT) and through the MTU's relay
// (viewer behind a symmetric NAT), over the same RTSP back channel as on the LAN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_lab_talk_punched_and_relayed() {
    for (cu, path) in [
        (NatKind::None, PathKind::Punched),
        (NatKind::Symmetric, PathKind::Relay),
    ] {
        let Some((got, pcm)) = talk_pairing(NatKind::PortRestricted, cu).await else {
            return;
        };
        assert_eq!(got, path, "viewer {cu:?}");
        assert!(pcm.len() >= 15_000, "the speaker got {} samples", pcm.len());
        let share = peercam_test::tone::tone_share(&pcm, 8000, 1000.0);
        assert!(share > 0.9, "1 kHz share {share:.3} over {path:?}");
    }
}

/// What the platform side hands the recorder's site (Mn/Nd lab).
struct RecorderSetup {
    api: String,
    ca_pem: Vec<u8>,
    ca_path: PathBuf,
    scu_url: String,
    pu_identity: PathBuf,
    nvr_identity: PathBuf,
    pu: String,
    nvr: String,
}

/// H.626.4 8.3 for recorders, in the NAT lab (Mn/Nd): a camera and its NVR behind a
/// symmetric NAT (`--random-fully`), the viewer behind a port-restricted NAT on another
/// site. The NVR's address is private and it has no mapping, so the viewer's playback goes
/// through the MTU's pipe: the NVR dials the MTU's tunnel port out through its NAT, and
/// trick play works over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_9_mn_nd_nvr_behind_symmetric_nat() {
    recorder_lab(NatKind::Symmetric, NatKind::PortRestricted, PathKind::Relay).await;
}

/// 8.3 for recorders: an NVR behind a port-restricted cone NAT is hole punched to a viewer
/// without NAT (the recorder answers `punch` as a camera does); playback and reverse play
/// run over the punched QUIC path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_lab_nvr_punches_to_a_public_viewer() {
    recorder_lab(NatKind::PortRestricted, NatKind::None, PathKind::Punched).await;
}

/// A camera and its NVR behind `nvr_nat`, the viewer behind `viewer_nat`: playback goes
/// over `want`, 1x and reverse checked by SEI counters.
async fn recorder_lab(nvr_nat: NatKind, viewer_nat: NatKind, want: PathKind) {
    let spec = LabSpec::new().site(nvr_nat, 1).site(viewer_nat, 1);
    let lab = match NatLab::new(&spec) {
        Ok(l) => l,
        Err(LabError::Skipped(why)) => {
            peercam_test::skip("NAT lab", &why);
            return;
        }
        Err(e) => panic!("lab: {e}"),
    };
    let (setup_tx, setup_rx) = tokio::sync::oneshot::channel::<RecorderSetup>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<u64>();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The platform and an MTU on the fake internet; it binds, attaches and records.
    let platform = lab.run_in(lab.srv(), move || async move {
        use peercam_signal::record::{Mode, Strategy};
        let c = Cluster::start_at_with(IpAddr::V4(SRV_A), 1, |_| {})
            .await
            .unwrap();
        let pu = c.provision(1).await.unwrap().remove(0);
        let nvr = new_identity(DeviceKind::Nvr);
        c.provision_these(std::slice::from_ref(&nvr)).await.unwrap();
        let mid = new_identity(DeviceKind::Mtu);
        c.admin
            .provision(vec![provision_record(&mid)])
            .await
            .unwrap();
        // The MTU serves STUN too (hole punching asks it for public addresses).
        let (mut mtu, _msd) = c
            .start_mtu_with(&mid, 0, |cfg| {
                cfg.turn = Some(peercam_mtu::turn::Config {
                    listen_udp: Some(std::net::SocketAddr::new(IpAddr::V4(SRV_A), 0)),
                    listen_tcp: Some(std::net::SocketAddr::new(IpAddr::V4(SRV_A), 0)),
                    secret: "natlab-turn-secret".into(),
                    threads: Some(1),
                    ..peercam_mtu::turn::Config::default()
                });
            })
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(30),
            mtu.status
                .wait_for(|s| matches!(s, peercam_mtu::MtuStatus::Registered { .. })),
        )
        .await
        .unwrap()
        .unwrap();
        let owner = c.owner(PHONE).await.unwrap();
        let (pu_identity, nvr_identity) = (c.path().join("pu.toml"), c.path().join("nvr.toml"));
        std::fs::write(&pu_identity, pu.to_toml()).unwrap();
        std::fs::write(&nvr_identity, nvr.to_toml()).unwrap();
        let _ = setup_tx.send(RecorderSetup {
            api: c.api.clone(),
            ca_pem: c.ca_pem.clone(),
            ca_path: c.pki.ca_cert.clone(),
            scu_url: c.scu_url(0),
            pu_identity,
            nvr_identity,
            pu: pu.device_id.to_string(),
            nvr: nvr.device_id.to_string(),
        });
        for id in [&pu, &nvr] {
            c.wait_online(&id.device_id, true, Duration::from_secs(20))
                .await
                .unwrap();
            c.bind(&owner, id).await.unwrap();
        }
        let (p, n) = (pu.device_id.as_str(), nvr.device_id.as_str());
        owner
            .set_params(p, |x| {
                x.video.max_resolution = peercam_signal::control::Resolution::Cif;
            })
            .await
            .unwrap();
        owner.attach_camera(n, p).await.unwrap();
        let continuous = Strategy {
            mode: Mode::Continuous,
            ..Strategy::default()
        };
        owner.set_recording(p, Some(n), &continuous).await.unwrap();
        let start = loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            let list = owner
                .recordings(p, Some(n), now - 600_000, now + 60_000)
                .await
                .unwrap();
            if let Some(s) = list.spans.first()
                && s.end_ms - s.start_ms >= 5000
            {
                break s.start_ms;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let _ = ready_tx.send(start);
        let _ = stop_rx.await;
        c.stop().await;
    });
    let setup = tokio::time::timeout(Duration::from_secs(60), setup_rx)
        .await
        .expect("platform started")
        .unwrap();
    // The camera and the NVR on the symmetric NAT's LAN.
    let (dev_stop, dev_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (pu_id, nvr_id, scu_url, ca_path) = (
        setup.pu_identity.clone(),
        setup.nvr_identity.clone(),
        setup.scu_url.clone(),
        setup.ca_path.clone(),
    );
    let lan = lab.host_addr(1, 0).unwrap();
    let devices = lab.run_in(lab.host(1, 0).unwrap(), move || async move {
        let sd = peercam_net::Shutdown::new();
        let mut cfg = peercam_pu::Config::new(pu_id, scu_url.clone(), ca_path.clone());
        cfg.rtsp_listen = "0.0.0.0:0".parse().unwrap();
        cfg.reconnect_initial_ms = 100;
        cfg.discovery_port = 0;
        cfg.sd_card = false;
        let _pu = peercam_pu::start(cfg, sd.clone()).await.unwrap();
        let store = tempfile::tempdir().unwrap();
        let mut cfg = peercam_nvr::Config::new(nvr_id, scu_url, ca_path);
        cfg.media_listen = std::net::SocketAddr::new(IpAddr::V4(lan), 0);
        cfg.store_dir = Some(store.path().to_owned());
        cfg.discovery_port = 0;
        cfg.reconnect_initial_ms = 100;
        let _nvr = peercam_nvr::start(cfg, sd.clone()).await.unwrap();
        let _ = dev_stop_rx.await;
        sd.trigger();
    });
    let start = tokio::time::timeout(Duration::from_secs(90), ready_rx)
        .await
        .expect("recorded in time")
        .unwrap();
    // The viewer on the other site.
    let (api, ca, pu, nvr) = (
        setup.api.clone(),
        setup.ca_pem.clone(),
        setup.pu.clone(),
        setup.nvr.clone(),
    );
    let viewer = lab.run_in(lab.host(2, 0).unwrap(), move || async move {
        let (user, _) = Client::new(&api, Some(&ca))
            .unwrap()
            .login(PHONE, PASSWORD)
            .await
            .unwrap();
        let mut paths = Vec::new();
        for _ in 0..50 {
            let a = user
                .playback_url(&pu, Some(&nvr), start + 1000)
                .await
                .unwrap();
            paths = a.paths;
            // The MTU's first load report (with its STUN address) may trail its
            // registration.
            if paths.iter().any(|x| x.kind == PathKind::Relay)
                && paths
                    .iter()
                    .all(|x| x.kind != PathKind::Punched || x.stun.is_some())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let puncher = peercam_cu::live::Puncher {
            client: user.clone(),
            device: pu.clone(),
            recorder: Some(nvr.clone()),
        };
        let (mut p, reached) = peercam_cu::playback::Playback::open_best(&paths, Some(&puncher))
            .await
            .unwrap();
        p.play(None, None).await.unwrap();
        let mut counters = Vec::new();
        while counters.len() < 25 {
            let f = p
                .next_frame(Duration::from_secs(5))
                .await
                .unwrap()
                .expect("a frame");
            counters.push(f.tag.expect("SEI tag").frame);
        }
        // Reverse through the same pipe.
        p.play(Some(start + 4000), Some("-1")).await.unwrap();
        let mut back = Vec::new();
        while back.len() < 3 {
            let f = p
                .next_frame(Duration::from_secs(5))
                .await
                .unwrap()
                .expect("a frame");
            back.push(f.tag.expect("SEI tag").frame);
        }
        p.teardown().await.unwrap();
        eprintln!(
            "recorder paths {:?} -> {} in {:.0} ms",
            paths.iter().map(|p| p.kind).collect::<Vec<_>>(),
            reached.kind.as_str(),
            reached.connect_ms
        );
        (reached.kind, counters, back)
    });
    let (kind, counters, back) = tokio::time::timeout(Duration::from_secs(90), viewer.join())
        .await
        .expect("viewer finished in time")
        .unwrap();
    let _ = dev_stop.send(());
    let _ = devices.join().await;
    let _ = stop.send(());
    let _ = platform.join().await;
    assert_eq!(
        kind, want,
        "NVR behind {nvr_nat:?}, viewer behind {viewer_nat:?}"
    );
    assert!(
        counters.windows(2).all(|x| x[1] == x[0] + 1),
        "1x: {counters:?}"
    );
    assert!(back.windows(2).all(|x| x[1] < x[0]), "reverse: {back:?}");
}

/// Issue 20 "instant recovery" on a path change: Chromium behind a port-restricted NAT plays
/// a camera with a public address directly; then the viewer's router drops all UDP to the
/// camera (the direct path breaks, TURN on the fake internet still works). The page says it
/// is reconnecting and brings the picture back by itself, now through the MTU's relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_web_live_view_recovers_after_path_change() {
    let Some(dir) =
        peercam_test::web::web_tests_or_skip("h626_8_4_web_live_view_recovers_after_path_change")
    else {
        return;
    };
    let lab = match NatLab::new(
        &LabSpec::new()
            .site(NatKind::None, 1)
            .site(NatKind::PortRestricted, 1),
    ) {
        Ok(l) => l,
        Err(LabError::Skipped(why)) => {
            peercam_test::skip("NAT lab", &why);
            return;
        }
        Err(e) => panic!("lab: {e}"),
    };
    let mut platform = Platform::start(&lab, true);
    let setup = platform.setup().await;
    let camera = Camera::start(&lab, &setup, (false, None), None);
    platform.wait_bound(Duration::from_secs(90)).await;
    let signal = tempfile::tempdir().unwrap();
    let shots = tempfile::tempdir().unwrap();
    let env = vec![
        ("PEERCAM_WEB_URL", setup.api.clone()),
        ("PEERCAM_WEB_USER", PHONE.to_owned()),
        ("PEERCAM_WEB_PASSWORD", PASSWORD.to_owned()),
        ("PEERCAM_DEVICE", setup.dev.clone()),
        ("PEERCAM_SIGNAL_DIR", signal.path().display().to_string()),
        ("PEERCAM_WEB_SHOTS", shots.path().display().to_string()),
    ];
    let node = lab.command(lab.host(2, 0).unwrap(), "node");
    let web = {
        let dir = dir.clone();
        tokio::spawn(async move {
            peercam_test::web::scenario(&dir, "live-recover.mjs", &env, Some(node)).await
        })
    };
    let playing = signal.path().join("playing");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !playing.exists() {
        assert!(!web.is_finished(), "the scenario ended before it played");
        assert!(tokio::time::Instant::now() < deadline, "never played");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The direct path breaks: the viewer's router drops UDP to and from the camera.
    let cam = lab.host_addr(1, 0).unwrap().to_string();
    let router = lab.router(2).unwrap().to_owned();
    for rule in [["-d", cam.as_str()], ["-s", cam.as_str()]] {
        lab.iptables(
            &router,
            &["-I", "FORWARD", "-p", "udp", rule[0], rule[1], "-j", "DROP"],
        )
        .unwrap();
    }
    let broke = std::time::Instant::now();
    let r = web.await.unwrap();
    eprintln!(
        "path change: {} -> {} after {:?}; states {}",
        r["path_before"],
        r["path_after"],
        broke.elapsed(),
        r["states"]
    );
    assert_eq!(r["path_before"], "direct", "{r}");
    assert_eq!(r["path_after"], "relay", "{r}");
    let states = r["states"].as_array().unwrap();
    assert!(states.iter().any(|s| s == "reconnecting"), "{r}");
    assert_eq!(
        states.last().and_then(|s| s.as_str()),
        Some("playing"),
        "{r}"
    );
    camera.stop().await;
    platform.stop().await;
}
