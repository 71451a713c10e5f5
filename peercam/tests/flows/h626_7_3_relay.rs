//! H.626.4 7.2 / 7.3 and the relay of 8.3's "relay last": the MTU relays a camera to
//! viewers that cannot reach it (Mp/Pd towards the camera over an outbound TLS channel,
//! Mc/Cd towards the viewer), one upstream fans out to every viewer, ffmpeg plays a relayed
//! URL, the SCU picks the least loaded MTU and stops choosing one that is gone.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::support::relay;

use std::sync::atomic::Ordering;
use std::time::Duration;

use peercam_cu::Client;
use peercam_signal::cm::PlayRequest;
use peercam_signal::ps::DeviceKind;
use peercam_signal::relay::PathKind;
use peercam_test::{Cluster, new_identity, provision_record, rtsp_describe};
use relay::{mtu, relay_url};
use serde_json::Value;

struct World {
    c: Cluster,
    owner: Client,
    dev: String,
    _pu: (peercam_pu::Running, peercam_net::Shutdown),
}

async fn world() -> World {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    let owner = c.owner("+15550730001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    World {
        c,
        owner,
        dev: ids[0].device_id.to_string(),
        _pu: pu,
    }
}

async fn ffprobe(url: &str, extra: &[&str]) -> Value {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error"])
        .args(extra)
        .args(["-i", url, "-select_streams", "v:0", "-count_frames"])
        .args(["-read_intervals", "%+3"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_relay_fans_one_upstream_out_to_ffmpeg_viewers() {
    let w = world().await;
    let (m, _msd, _) = mtu(&w.c).await;
    let urls = [
        relay_url(&w.owner, &w.dev).await,
        relay_url(&w.owner, &w.dev).await,
        relay_url(&w.owner, &w.dev).await,
    ];
    assert!(urls[0].contains("/relay/"), "{}", urls[0]);
    // Three ffmpeg viewers at once; the first asks for UDP and falls back to TCP on 461.
    let (a, b, c) = tokio::join!(
        ffprobe(&urls[0], &[]),
        ffprobe(&urls[1], &["-rtsp_transport", "tcp"]),
        ffprobe(&urls[2], &["-rtsp_transport", "tcp"]),
    );
    for s in [&a, &b, &c] {
        assert_eq!(s["codec_name"], "h264", "{s}");
        let frames: u64 = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
        assert!(frames >= 10, "relayed frames: {s}");
    }
    assert_eq!(
        m.stats.upstreams_total.load(Ordering::Relaxed),
        1,
        "one upstream from the camera served every viewer"
    );
    assert!(
        m.stats.bytes_out.load(Ordering::Relaxed)
            > 2 * m.stats.bytes_in.load(Ordering::Relaxed) / 3
    );
    // The upstream ends once the viewers are gone (linger 1 s in tests).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(m.stats.upstreams.load(Ordering::Relaxed), 0);
    assert_eq!(m.stats.viewers.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_relay_refuses_forged_and_replayed_tokens() {
    let w = world().await;
    let (m, _msd, _) = mtu(&w.c).await;
    let url = relay_url(&w.owner, &w.dev).await;
    // Forged: the signature does not verify.
    let forged = format!("{}X", url);
    let (status, got) = rtsp_describe(&forged).await;
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&got));
    // No token at all.
    let (status, _) = rtsp_describe(url.split('?').next().unwrap()).await;
    assert_eq!(status, 401);
    // A token already used (on any path) is spent.
    let (status, _) = rtsp_describe(&url).await;
    assert_eq!(status, 200);
    let (status, _) = rtsp_describe(&url).await;
    assert_eq!(status, 401, "replayed token");
    // Another camera's path with this camera's token.
    let other = url.replace(&w.dev, "pc-0000000000000000");
    let (status, _) = rtsp_describe(&other).await;
    assert_eq!(status, 401);
    assert!(m.stats.refused.load(Ordering::Relaxed) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_2_scu_picks_least_loaded_mtu_and_drops_a_dead_one() {
    let w = world().await;
    let (a, a_sd, _) = mtu(&w.c).await;
    let (b, _b_sd, _) = mtu(&w.c).await;
    let port = |u: &str| {
        u.trim_start_matches("rtsp://")
            .split('/')
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    };
    // Both MTUs are empty: consecutive sessions alternate (each choice counts at once).
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        seen.insert(port(&relay_url(&w.owner, &w.dev).await));
    }
    assert!(
        seen.contains(&a.rtsp_addr.port()) && seen.contains(&b.rtsp_addr.port()),
        "{seen:?}"
    );
    // A viewer plays through A; then A dies mid-stream.
    let url = loop {
        let u = relay_url(&w.owner, &w.dev).await;
        if port(&u) == a.rtsp_addr.port() {
            break u;
        }
    };
    let viewer = tokio::spawn(async move { ffprobe(&url, &["-rtsp_transport", "tcp"]).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a_sd.trigger();
    let _ = viewer.await;
    // New sessions go to B only.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..4 {
        let u = relay_url(&w.owner, &w.dev).await;
        assert_eq!(port(&u), b.rtsp_addr.port(), "a dead MTU is never chosen");
    }
    let s = ffprobe(
        &relay_url(&w.owner, &w.dev).await,
        &["-rtsp_transport", "tcp"],
    )
    .await;
    assert_eq!(s["codec_name"], "h264");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_client_goes_direct_when_it_can_and_relays_when_it_cannot() {
    let w = world().await;
    let (m, _msd, _) = mtu(&w.c).await;
    // Direct: the camera's own address answers first.
    let p = loop {
        let p = w.owner.play(&w.dev, &PlayRequest::default()).await.unwrap();
        if p.paths.iter().any(|x| x.kind == PathKind::Relay) {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(p.paths[0].kind, PathKind::Lan, "{:?}", p.paths);
    assert_eq!(p.paths.last().unwrap().kind, PathKind::Relay, "relay last");
    let (rec, reached) =
        peercam_cu::live::record_best(&p.paths, None, Duration::from_secs(2), |_| {})
            .await
            .unwrap();
    assert_eq!(reached.kind, PathKind::Lan);
    assert!(rec.frames > 10);
    assert_eq!(m.stats.upstreams_total.load(Ordering::Relaxed), 0);
    // The camera's address does not answer (a black hole): the relay carries the stream.
    let mut p = w.owner.play(&w.dev, &PlayRequest::default()).await.unwrap();
    for x in p.paths.iter_mut().filter(|x| x.kind != PathKind::Relay) {
        let rest = x.url.split_once('/').map(|(_, r)| r).unwrap_or_default();
        let path = rest
            .trim_start_matches('/')
            .split_once('/')
            .map(|(_, r)| r)
            .unwrap();
        x.url = format!("rtsp://192.0.2.1:554/{path}");
    }
    let (rec, reached) =
        peercam_cu::live::record_best(&p.paths, None, Duration::from_secs(3), |_| {})
            .await
            .unwrap();
    assert_eq!(reached.kind, PathKind::Relay);
    assert!(rec.frames > 10, "{rec:?}");
    assert!(
        reached.connect_ms < 1500.0,
        "the relay was tried without waiting for a timeout"
    );
    assert_eq!(m.stats.upstreams_total.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_unshare_ends_a_relayed_session_within_1s() {
    use tokio::io::AsyncReadExt as _;
    let w = world().await;
    let (_m, _msd, _) = mtu(&w.c).await;
    let kid = w.c.sub(&w.owner, "kid").await.unwrap();
    w.owner
        .share(
            &w.dev,
            "kid",
            [peercam_base::Scope::Live].into_iter().collect(),
        )
        .await
        .unwrap();
    // The owner watches through the same MTU; only the sub-account's session may end.
    let owner_url = relay_url(&w.owner, &w.dev).await;
    let kid_url = relay_url(&kid, &w.dev).await;
    let mut own = peercam_test::play_raw(&owner_url).await.unwrap();
    let mut tcp = peercam_test::play_raw(&kid_url).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 10_000 {
        got += tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
    }
    let t = std::time::Instant::now();
    w.owner.unshare(&w.dev, "kid").await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => panic!("relayed session still open 3 s after unshare"),
        }
    }
    let took = t.elapsed();
    eprintln!("relayed session closed {took:?} after unshare");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // The owner's relayed session still flows.
    let n = tokio::time::timeout(Duration::from_secs(3), own.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_operator_sees_each_sessions_path() {
    let w = world().await;
    let report = |path| peercam_signal::cm::SessionReport {
        path,
        connect_ms: 12,
        bytes: 1000,
        seconds: 3,
    };
    w.owner
        .report_session(&w.dev, &report(PathKind::Lan))
        .await
        .unwrap();
    w.owner
        .report_session(&w.dev, &report(PathKind::Relay))
        .await
        .unwrap();
    // Not for a camera the caller may not watch.
    let stranger = w.c.owner("+15550730099").await.unwrap();
    assert!(
        stranger
            .report_session(&w.dev, &report(PathKind::Lan))
            .await
            .is_err()
    );
    let v = w.c.admin.admin_sessions().await.unwrap();
    assert_eq!(v.by_path.get("lan"), Some(&1));
    assert_eq!(v.by_path.get("relay"), Some(&1));
    assert_eq!(v.recent[0].report.path, PathKind::Relay);
    assert_eq!(v.recent[0].device_id, w.dev);
}

/// D8 / Dm: the CMU mints TURN credentials scoped to the camera's addresses from the secret
/// it shares with the MTU; coturn's own client allocates and relays with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_cmu_minted_turn_credentials_work_with_turnutils_uclient() {
    const SECRET: &str = "shared-turn-secret-for-tests";
    let have = |b: &str| {
        std::process::Command::new("which")
            .arg(b)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        have("turnutils_uclient") && have("turnutils_peer"),
        "coturn's tools are required (Debian package coturn; .ci/run installs it)"
    );
    let c = Cluster::start_with(1, |cfg| cfg.turn_secret = Some(SECRET.into()))
        .await
        .unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    let owner = c.owner("+15550730011").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    let mid = new_identity(DeviceKind::Mtu);
    c.admin
        .provision(vec![provision_record(&mid)])
        .await
        .unwrap();
    let (mut m, _msd) = c
        .start_mtu_with(&mid, 0, |cfg| {
            cfg.turn = Some(peercam_mtu::turn::Config {
                listen_udp: Some("127.0.0.1:0".parse().unwrap()),
                listen_tcp: Some("127.0.0.1:0".parse().unwrap()),
                secret: SECRET.into(),
                // The camera is on loopback here; production keeps loopback denied.
                allow_loopback_peers: true,
                allow_peers: vec!["127.0.0.0/8".into()],
                threads: Some(1),
                ..peercam_mtu::turn::Config::default()
            });
        })
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        m.status
            .wait_for(|s| matches!(s, peercam_mtu::MtuStatus::Registered { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    let mut ice = None;
    for _ in 0..50 {
        let i = owner.ice(&dev).await.unwrap();
        if !i.ice_servers.is_empty() {
            ice = Some(i);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ice = ice.expect("TURN servers offered");
    assert_eq!(ice.peers, vec!["127.0.0.1".to_owned()]);
    let server = &ice.ice_servers[0];
    let username = server.username.clone().unwrap();
    assert!(username.contains("~p127.0.0.1"), "{username}");
    let udp_uri = server
        .urls
        .iter()
        .find(|u| u.ends_with("transport=udp"))
        .unwrap();
    let port = udp_uri
        .trim_start_matches("turn:")
        .split('?')
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    // An echo peer at the camera's address; coturn's client relays through our TURN server.
    let peer_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut echo = std::process::Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &peer_port])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = tokio::process::Command::new("timeout")
        .args([
            "30",
            "turnutils_uclient",
            "-c",
            "-m",
            "1",
            "-n",
            "50",
            "-l",
            "200",
        ])
        .args(["-e", "127.0.0.1", "-r", &peer_port])
        .args(["-u", &username, "-w", server.credential.as_deref().unwrap()])
        .args(["-p", &port, "127.0.0.1"])
        .output()
        .await
        .unwrap();
    let _ = echo.kill();
    let _ = echo.wait();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let recv = text
        .lines()
        .rev()
        .find(|l| l.contains("tot_recv_msgs="))
        .and_then(|l| {
            let r = &l[l.find("tot_recv_msgs=")? + 14..];
            r.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    assert!(recv >= 45, "relayed with CMU-minted credentials:\n{text}");
    // A tampered password is refused.
    let out = tokio::process::Command::new("timeout")
        .args([
            "15",
            "turnutils_uclient",
            "-c",
            "-m",
            "1",
            "-n",
            "5",
            "-l",
            "200",
        ])
        .args(["-e", "127.0.0.1", "-r", &peer_port])
        .args(["-u", &username, "-w", "not-the-password"])
        .args(["-p", &port, "127.0.0.1"])
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() || !text.contains("tot_recv_msgs=5"),
        "{text}"
    );
    // Someone without access to the camera gets nothing.
    let stranger = c.owner("+15550730012").await.unwrap();
    assert!(stranger.ice(&dev).await.is_err());
}

/// 7.3 with clause 7's capabilities: viewers asking for different profiles get the camera's
/// encoding of each (one upstream per profile, no transcoding needed); viewers of the same
/// profile share one upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_relay_serves_each_profile_from_its_own_upstream() {
    let w = world().await;
    let (m, _msd, _) = mtu(&w.c).await;
    let relay_for = |width: u16, height: u16| {
        let owner = w.owner.clone();
        let dev = w.dev.clone();
        async move {
            let req = PlayRequest {
                max_width: Some(width),
                max_height: Some(height),
                ..PlayRequest::default()
            };
            for _ in 0..100 {
                if let Ok(p) = owner.play(&dev, &req).await
                    && let Some(r) = p.paths.iter().find(|p| p.kind == PathKind::Relay)
                {
                    return r.url.clone();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no relay path");
        }
    };
    let (cif, hd, hd2) = (
        relay_for(352, 288).await,
        relay_for(1280, 720).await,
        relay_for(1280, 720).await,
    );
    let tcp = ["-rtsp_transport", "tcp"];
    let (a, b, c) = tokio::join!(ffprobe(&cif, &tcp), ffprobe(&hd, &tcp), ffprobe(&hd2, &tcp));
    assert_eq!(a["width"], 352, "{a}");
    assert_eq!(b["width"], 1280, "{b}");
    assert_eq!(c["width"], 1280, "{c}");
    assert_eq!(m.stats.upstreams_total.load(Ordering::Relaxed), 2);
}

/// 7.3's transcoding: a camera that re-serves a fixed stream (here a 1280x720 x264 file)
/// cannot encode a smaller profile, so the MTU decodes, scales and encodes for the viewer who
/// asked for CIF at most. A viewer who can take the whole picture gets it untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_relay_transcodes_what_the_camera_cannot_adapt() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("hd.264");
    let made = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi"])
        .args(["-i", "testsrc=size=1280x720:rate=25", "-t", "2"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "baseline",
        ])
        .args(["-pix_fmt", "yuv420p", "-g", "25", "-bf", "0", "-f", "h264"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(made.success());
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c
        .start_pu_with(&ids[0], 0, |cfg| cfg.source_file = Some(clip.clone()))
        .await
        .unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner("+15550730020").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    let (m, _msd, _) = mtu(&c).await;
    let relay_for = |width: u16, height: u16, fps: u8| {
        let owner = owner.clone();
        let dev = dev.clone();
        async move {
            let req = PlayRequest {
                max_width: Some(width),
                max_height: Some(height),
                max_fps: Some(fps),
                ..PlayRequest::default()
            };
            for _ in 0..100 {
                if let Ok(p) = owner.play(&dev, &req).await
                    && let Some(r) = p.paths.iter().find(|p| p.kind == PathKind::Relay)
                {
                    return r.url.clone();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no relay path");
        }
    };
    let small = relay_for(352, 288, 10).await;
    let full = relay_for(1280, 720, 25).await;
    let tcp = ["-rtsp_transport", "tcp"];
    let (a, b) = tokio::join!(ffprobe(&small, &tcp), ffprobe(&full, &tcp));
    // 1280x720 scaled to fit 352x288, aspect kept: 352x198.
    assert_eq!(
        (&a["width"], &a["height"]),
        (&352.into(), &198.into()),
        "{a}"
    );
    assert_eq!(a["codec_name"], "h264");
    // About 10 frames a second over the 3 s read (ffprobe counts what it read).
    let n = a["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse::<u32>()
        .unwrap();
    assert!((15..=45).contains(&n), "{n} frames at 10 fps in 3 s: {a}");
    assert_eq!(b["width"], 1280, "{b}");
    assert_eq!(m.stats.transcodes_total.load(Ordering::Relaxed), 1);
    c.stop().await;
}

/// Whether a multicast datagram sent on this host comes back to a listener on it (a route
/// for 224/4 exists and loops back). Hosts without one cannot test multicast.
fn host_has_multicast() -> bool {
    use std::net::{Ipv4Addr, UdpSocket};
    let group = Ipv4Addr::new(239, 255, 42, 250);
    let Ok(rx) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
        return false;
    };
    let port = rx.local_addr().unwrap().port();
    if rx
        .join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)
        .is_err()
    {
        return false;
    }
    rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let tx = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    if tx.send_to(b"probe", (group, port)).is_err() {
        return false;
    }
    let mut b = [0u8; 8];
    rx.recv_from(&mut b).is_ok()
}

/// 7.3's multicast: with `[multicast]` on, two ffmpeg viewers that SETUP with
/// `RTP/AVP;multicast` get the same group, the MTU sends each packet once to it (nothing
/// goes down their RTSP connections), and both decode the camera's video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_relay_multicasts_one_copy_to_many_viewers() {
    if !host_has_multicast() {
        peercam_test::skip(
            "h626_7_3_relay_multicasts_one_copy_to_many_viewers",
            "this host has no multicast route that loops back",
        );
        return;
    }
    let w = world().await;
    let id = new_identity(DeviceKind::Mtu);
    w.c.admin
        .provision(vec![provision_record(&id)])
        .await
        .unwrap();
    let (mut m, _sd) =
        w.c.start_mtu_with(&id, 0, |cfg| {
            cfg.multicast = Some(peercam_mtu::multicast::Config {
                group_base: std::net::Ipv4Addr::new(239, 255, 42, 101),
                port: 42_000 + u16::try_from(std::process::id() % 1000).unwrap() * 8,
                groups: 2,
                ..Default::default()
            });
        })
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        m.status
            .wait_for(|s| matches!(s, peercam_mtu::MtuStatus::Registered { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    let (u1, u2) = (
        relay_url(&w.owner, &w.dev).await,
        relay_url(&w.owner, &w.dev).await,
    );
    let mc = ["-rtsp_transport", "udp_multicast"];
    let (a, b) = tokio::join!(ffprobe(&u1, &mc), ffprobe(&u2, &mc));
    for s in [&a, &b] {
        assert_eq!(s["codec_name"], "h264", "{s}");
        let n = s["nb_read_frames"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap();
        assert!(n >= 25, "{n} frames: {s}");
    }
    let mc_bytes = m.stats.multicast_bytes_out.load(Ordering::Relaxed);
    let in_bytes = m.stats.bytes_in.load(Ordering::Relaxed);
    // One copy to the group: about what came in, not twice that; none over TCP.
    assert!(mc_bytes > 10_000, "{mc_bytes}");
    assert!(
        mc_bytes <= in_bytes + in_bytes / 10,
        "{mc_bytes} out of {in_bytes} in"
    );
    assert_eq!(m.stats.bytes_out.load(Ordering::Relaxed), 0);
    assert_eq!(m.stats.upstreams_total.load(Ordering::Relaxed), 1);
}

/// Issue 20: the relay sends each access unit to a viewer in one write. A viewer that stops
/// reading does not stall the others, its stream goes on when it reads again, and if the
/// relay had to drop what it could not take, it resumes at a key frame (the packet after a
/// gap in the sequence starts one), never mid-GOP. (On loopback the relay's send buffer
/// grows to megabytes, so a stall of this length may end without a drop.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_3_relay_slow_viewer_stalls_nobody_and_resumes_at_a_key_frame() {
    use peercam_net::rtsp::RtspConn;
    use peercam_rtsp::Parsed;
    let w = world().await;
    let (_m, _msd, _) = mtu(&w.c).await;
    let slow_url = relay_url(&w.owner, &w.dev).await;
    let fast_url = relay_url(&w.owner, &w.dev).await;
    // The slow viewer: a small receive window, PLAY, then no reading for a while.
    let hostport = slow_url
        .strip_prefix("rtsp://")
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(hostport.parse().unwrap()).await.unwrap();
    let mut slow = RtspConn::new(Box::new(tcp), "slow-viewer");
    slow.request("DESCRIBE", &slow_url, "Accept: application/sdp\r\n")
        .await
        .unwrap();
    let base = slow_url.split('?').next().unwrap().trim_end_matches('/');
    slow.setup_interleaved(base, 0).await.unwrap();
    slow.request("PLAY", &format!("{base}/"), "").await.unwrap();
    // The other viewer plays normally meanwhile.
    let fast = ffprobe(&fast_url, &["-rtsp_transport", "tcp"]).await;
    let frames: u64 = fast["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames >= 10, "the other viewer's frames: {fast}");
    // About the feed's channel (256 batches: about 10 s at 25 frames a second).
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Reading again: the video packets run on, and after a gap in their sequence (what
    // the relay dropped) the first packet starts a key frame.
    let mut last: Option<u16> = None;
    let mut read = 0;
    let until = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < until {
        let msg = tokio::time::timeout(Duration::from_secs(5), slow.next())
            .await
            .unwrap()
            .unwrap();
        let Parsed::Interleaved(f) = msg else {
            continue;
        };
        if f.channel != 0 {
            continue;
        }
        let p = peercam_rtp::RtpPacket::parse(&f.payload).unwrap();
        let seq = p.sequence();
        if let Some(l) = last
            && seq != l.wrapping_add(1)
        {
            assert!(
                peercam_rtp::h264::starts_key_frame(p.payload()),
                "the slow viewer resumed mid-GOP after {read} packets"
            );
        }
        last = Some(seq);
        read += 1;
    }
    assert!(
        read > 100,
        "the slow viewer's stream went on: {read} packets"
    );
}
