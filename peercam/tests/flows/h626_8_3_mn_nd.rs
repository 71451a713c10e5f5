//! H.626.4 8.3 for recorders (Mn/Nd): an NVR whose reported address the viewer cannot
//! reach is played through the MTU's pipe. The viewer spends its token at the MTU, which
//! gets a fresh one for the recorder, has the NVR dial out to its tunnel port and then
//! copies bytes 1:1. Trick play (speeds, reverse, frame steps) is checked with the
//! synthetic camera's SEI frame counters; ffprobe plays the pipe URL as a third-party
//! client; forged, replayed and misdirected tokens and sub-accounts without `playback` are
//! refused.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use crate::support::relay;

use std::time::Duration;

use peercam_base::{Scope, ScopeSet};
use peercam_cu::Client;
use peercam_cu::playback::{Playback, Seen};
use peercam_signal::cm::PlayRequest;
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::ps::DeviceKind;
use peercam_signal::record::{Mode, Strategy};
use peercam_signal::relay::PathKind;
use peercam_test::{Cluster, new_identity};

struct World {
    c: Cluster,
    owner: Client,
    pu: DeviceIdentity,
    nvr: DeviceIdentity,
    _pu: (peercam_pu::Running, peercam_net::Shutdown),
    _nvr: (peercam_nvr::Running, peercam_net::Shutdown),
    mtu: (peercam_mtu::Running, peercam_net::Shutdown, String),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A camera recorded by an NVR that reports only an address nobody can reach (its LAN, as
/// seen from elsewhere: port 1 refuses), and an MTU; `ms` of recording made.
async fn world(phone: &str, ms: u64) -> World {
    let c = Cluster::start(1).await.unwrap();
    let pu = c.provision(1).await.unwrap().remove(0);
    let nvr = new_identity(DeviceKind::Nvr);
    c.provision_these(std::slice::from_ref(&nvr)).await.unwrap();
    let pu_run = c.start_pu_online(&pu, 0).await.unwrap();
    let nvr_run = c
        .start_nvr_with(&nvr, 0, |cfg| cfg.advertise = vec!["127.0.0.1:1".into()])
        .await
        .unwrap();
    c.wait_online(&nvr.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let mtu = relay::mtu(&c).await;
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &pu).await.unwrap();
    c.bind(&owner, &nvr).await.unwrap();
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
    let w = World {
        c,
        owner,
        pu,
        nvr,
        _pu: pu_run,
        _nvr: nvr_run,
        mtu,
    };
    recorded(&w, ms).await;
    w
}

/// The first span once it holds `ms`.
async fn recorded(w: &World, ms: u64) -> peercam_signal::record::RecordedSpan {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let now = now_ms();
        let list = w
            .owner
            .recordings(
                w.pu.device_id.as_str(),
                Some(w.nvr.device_id.as_str()),
                now - 600_000,
                now + 60_000,
            )
            .await
            .unwrap();
        if let Some(s) = list.spans.first()
            && s.end_ms - s.start_ms >= ms
        {
            return *s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not enough recorded: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A playback answer's pipe URL.
async fn pipe_url(who: &Client, w: &World, start_ms: u64) -> (String, Vec<PathKind>) {
    let (p, n) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    let a = who.playback_url(p, Some(n), start_ms).await.unwrap();
    let kinds = a.paths.iter().map(|p| p.kind).collect();
    let relay = a
        .paths
        .iter()
        .find(|p| p.kind == PathKind::Relay)
        .unwrap_or_else(|| panic!("no relay path in {:?}", a.paths));
    (relay.url.clone(), kinds)
}

async fn frames(p: &mut Playback, n: usize) -> Vec<Seen> {
    peercam_test::playback::frames(p, n, Duration::from_secs(5)).await
}

use peercam_test::playback::counters;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_mn_nd_playback_through_mtu_pipe() {
    let w = world("+15550830101", 9000).await;
    let span = recorded(&w, 9000).await;
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());

    // The ladder: the NVR's own (dead) address first, the MTU's pipe last, one token.
    let start = span.start_ms + 3000;
    let a = w.owner.playback_url(pu, Some(nvr), start).await.unwrap();
    let kinds: Vec<PathKind> = a.paths.iter().map(|p| p.kind).collect();
    assert_eq!(kinds.last(), Some(&PathKind::Relay), "{:?}", a.paths);
    assert!(kinds.len() >= 2, "{:?}", a.paths);
    let token = a.url.split("token=").nth(1).unwrap().to_owned();
    assert!(a.paths.iter().all(|p| p.url.ends_with(&token)), "one token");
    let pipe = &a.paths.last().unwrap().url;
    assert!(
        pipe.contains(&format!("/pipe/{nvr}/rec/{pu}?")),
        "pipe URL {pipe}"
    );

    // `cu rec playback`: the dead address fails, the pipe carries the session.
    let (mut p, reached) = Playback::open_best(&a.paths, None).await.unwrap();
    assert_eq!(reached.kind, PathKind::Relay, "{reached:?}");
    p.play(None, None).await.unwrap();
    let normal = frames(&mut p, 30).await;
    let c = counters(&normal);
    assert!(c.windows(2).all(|x| x[1] == x[0] + 1), "1x: {c:?}");
    let first_ms = normal[0].tag.as_ref().unwrap().capture_unix_us / 1000;
    assert!(
        first_ms <= start + 40 && start - first_ms <= 2040,
        "started {first_ms}, asked {start}"
    );
    // 4x: key frames only, ascending.
    p.play(Some(span.start_ms), Some("4")).await.unwrap();
    let fast = frames(&mut p, 3).await;
    assert!(fast.iter().all(|f| f.key), "4x sends key frames");
    let c = counters(&fast);
    assert!(c.windows(2).all(|x| x[1] > x[0]), "4x ascending: {c:?}");
    // Reverse: descending.
    p.play(Some(span.start_ms + 8000), Some("-1"))
        .await
        .unwrap();
    let c = counters(&frames(&mut p, 3).await);
    assert!(c.windows(2).all(|x| x[1] < x[0]), "reverse: {c:?}");
    // Pause, then frame steps: exactly one frame each, forward and back.
    p.play(Some(start), None).await.unwrap();
    frames(&mut p, 2).await;
    p.pause().await.unwrap();
    while p
        .next_frame(Duration::from_millis(300))
        .await
        .unwrap()
        .is_some()
    {}
    let a1 = p.step(true).await.unwrap().tag.unwrap().frame;
    let b1 = p.step(true).await.unwrap().tag.unwrap().frame;
    assert_eq!(b1, a1 + 1, "a step forward shows the next frame");
    let back = p.step(false).await.unwrap();
    assert_eq!(
        back.tag.unwrap().frame,
        a1,
        "a step back shows the previous frame"
    );
    p.teardown().await.unwrap();

    // A third-party client (ffprobe: OPTIONS first, then DESCRIBE) plays the pipe URL as it is.
    let (url, _) = pipe_url(&w.owner, &w, span.start_ms).await;
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
        ])
        .args(["-count_packets", "-read_intervals", "%+2"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(&url)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "ffprobe through the pipe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets: u32 = text.rsplit(',').next().unwrap().parse().unwrap();
    assert!(
        text.starts_with("h264") && packets >= 25,
        "ffprobe read {text}"
    );
    let stats = &w.mtu.0.stats;
    let out = stats.bytes_out.load(std::sync::atomic::Ordering::Relaxed);
    assert!(out > 20_000, "the media went through the MTU: {out} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_3_mn_nd_pipe_refusals() {
    let w = world("+15550830102", 2000).await;
    let span = recorded(&w, 2000).await;
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    let refused = |e: peercam_cu::CuError| {
        let s = e.to_string();
        assert!(s.contains("401"), "refused with 401: {s}");
    };

    // A forged token.
    let (url, _) = pipe_url(&w.owner, &w, span.start_ms).await;
    refused(Playback::open(&format!("{url}x")).await.unwrap_err());
    // The good one plays once; replayed, it is refused.
    let p = Playback::open(&url).await.unwrap();
    p.teardown().await.unwrap();
    refused(Playback::open(&url).await.unwrap_err());

    // A good token on a pipe to another device: the token names this NVR only.
    let (url, _) = pipe_url(&w.owner, &w, span.start_ms).await;
    let elsewhere = url.replace(&format!("/pipe/{nvr}/"), &format!("/pipe/{pu}/"));
    refused(Playback::open(&elsewhere).await.unwrap_err());
    // And a live token is no playback token, even on a pipe to the camera itself.
    let live = w.owner.play(pu, &PlayRequest::default()).await.unwrap();
    let t = live.url.split("token=").nth(1).unwrap();
    let mtu_rtsp = url.split("/pipe/").next().unwrap();
    let live_pipe = format!("{mtu_rtsp}/pipe/{pu}/rec/{pu}?token={t}");
    assert!(Playback::open(&live_pipe).await.is_err());

    // Another user cannot have a playback of the owner's recorder at all.
    let stranger = w.c.owner("+15550830103").await.unwrap();
    let e = stranger
        .playback_url(pu, Some(nvr), span.start_ms)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    // A sub-account with live only gets no playback; its live token opens no pipe.
    let sub = w.c.sub(&w.owner, "viewer").await.unwrap();
    w.owner
        .share(pu, "viewer", ScopeSet::from_iter([Scope::Live]))
        .await
        .unwrap();
    let e = sub
        .playback_url(pu, Some(nvr), span.start_ms)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    let live = sub.play(pu, &PlayRequest::default()).await.unwrap();
    let t = live.url.split("token=").nth(1).unwrap();
    let sub_pipe = format!("{mtu_rtsp}/pipe/{nvr}/rec/{pu}?token={t}");
    refused(Playback::open(&sub_pipe).await.unwrap_err());
    let stats = &w.mtu.0.stats;
    assert!(stats.refused.load(std::sync::atomic::Ordering::Relaxed) >= 5);

    // WebRTC playback: the TURN permission covers the recorder's addresses; only with
    // `playback` on the camera, and only for a recorder that records it.
    let ice = w.owner.ice_for_recorder(pu, nvr).await.unwrap();
    assert!(ice.peers.contains(&"127.0.0.1".to_owned()), "{ice:?}");
    assert_eq!(
        sub.ice_for_recorder(pu, nvr).await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(
        stranger
            .ice_for_recorder(pu, nvr)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    let other = w.mtu.2.as_str();
    assert_eq!(
        w.owner
            .ice_for_recorder(pu, other)
            .await
            .unwrap_err()
            .status(),
        Some(409)
    );
}
