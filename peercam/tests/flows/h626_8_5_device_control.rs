//! Device control through the platform, end to end over real sockets: PTZ (H.626.4 8.5),
//! parameters with the permission step (8.9.1), night vision (6.1.5) and factory reset (8.10).
//! What the camera does is read back from decoded frames (ffmpeg), not only from its answers.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_base::{Scope, ScopeSet};
use peercam_cu::Client;
use peercam_signal::cm::PlayRequest;
use peercam_signal::control::{NightMode, PtzCommand};
use peercam_signal::identity::DeviceIdentity;
use peercam_test::Cluster;

struct World {
    c: Cluster,
    owner: Client,
    id: DeviceIdentity,
    dev: String,
    _pu: (peercam_pu::Running, peercam_net::Shutdown),
}

async fn world(day_cycle_s: u32) -> World {
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let pu = c
        .start_pu_with(&id, 0, |cfg| cfg.day_cycle_s = day_cycle_s)
        .await
        .unwrap();
    c.wait_online(&id.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner("+15550500001").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    World {
        dev: id.device_id.to_string(),
        c,
        owner,
        id,
        _pu: pu,
    }
}

fn cif() -> PlayRequest {
    PlayRequest {
        max_width: Some(352),
        max_height: Some(288),
        max_fps: Some(10),
        max_kbps: None,
        audio: Some(None),
    }
}

/// Decoded CIF frames (I420) from a fresh play: skips the first `skip`, returns `count`.
async fn frames(client: &Client, dev: &str, skip: usize, count: usize) -> Vec<Vec<u8>> {
    let url = client.play(dev, &cif()).await.unwrap().url;
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
        .arg(&url)
        .args(["-frames:v", &(skip + count).to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = 352 * 288 * 3 / 2;
    out.stdout
        .chunks_exact(size)
        .skip(skip)
        .map(<[u8]>::to_vec)
        .collect()
}

struct Look {
    luma: f64,
    cb: f64,
    /// Luma rise across a row clear of the overlay and the moving object: median of its
    /// right quarter minus median of its left quarter.
    range: u8,
    /// Largest distance of any chroma sample from grey.
    chroma_dev: u8,
}

fn look(frame: &[u8]) -> Look {
    let (w, h) = (352, 288);
    let y = &frame[..w * h];
    let u = &frame[w * h..w * h * 5 / 4];
    let v = &frame[w * h * 5 / 4..];
    // Below the burnt-in overlay (the top 40 rows) and above the caption.
    let body = &y[w * 40..w * 260];
    let mean = |p: &[u8]| p.iter().map(|&x| f64::from(x)).sum::<f64>() / p.len() as f64;
    let row = &y[w * 245..w * 246];
    let median = |p: &[u8]| {
        let mut v = p.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    Look {
        luma: mean(body),
        cb: mean(&u[(w / 2) * 20..(w / 2) * 130]),
        range: median(&row[w * 3 / 4..]).saturating_sub(median(&row[..w / 4])),
        chroma_dev: u.iter().chain(v).map(|&c| c.abs_diff(128)).max().unwrap(),
    }
}

async fn look_now(client: &Client, dev: &str) -> Look {
    // Skip the first frames: they may predate the order by a frame.
    look(&frames(client, dev, 3, 1).await[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_5_ptz_moves_the_picture_and_presets_return() {
    let w = world(0).await;
    let at = |pan, tilt, zoom| PtzCommand::Absolute { pan, tilt, zoom };
    w.owner.ptz(&w.dev, &at(0.0, 0.0, 1.0)).await.unwrap();
    let centre = look_now(&w.owner, &w.dev).await;
    // Pan right: the scene brightens to the right, so the picture gets brighter.
    let s = w.owner.ptz(&w.dev, &at(1.0, 0.0, 1.0)).await.unwrap();
    assert_eq!((s.pan, s.tilt, s.zoom), (1.0, 0.0, 1.0));
    let right = look_now(&w.owner, &w.dev).await;
    assert!(
        right.luma > centre.luma + 15.0,
        "pan right: luma {} -> {}",
        centre.luma,
        right.luma
    );
    // Tilt up: the blue difference falls towards the top of the world.
    w.owner.ptz(&w.dev, &at(0.0, 1.0, 1.0)).await.unwrap();
    let up = look_now(&w.owner, &w.dev).await;
    assert!(
        up.cb < centre.cb - 5.0,
        "tilt up: Cb {} -> {}",
        centre.cb,
        up.cb
    );
    // Zoom in: a narrower slice of the world, so a narrower luma range.
    w.owner.ptz(&w.dev, &at(0.0, 0.0, 4.0)).await.unwrap();
    let zoomed = look_now(&w.owner, &w.dev).await;
    assert!(
        zoomed.range < centre.range / 2,
        "zoom: range {} -> {}",
        centre.range,
        zoomed.range
    );
    // Continuous move left for 1 s, then stop: the picture darkens.
    w.owner.ptz(&w.dev, &at(0.5, 0.0, 1.0)).await.unwrap();
    let before = look_now(&w.owner, &w.dev).await;
    w.owner
        .ptz(
            &w.dev,
            &PtzCommand::Move {
                pan: -1.0,
                tilt: 0.0,
                zoom: 0.0,
                timeout_ms: 5000,
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let s = w.owner.ptz(&w.dev, &PtzCommand::Stop).await.unwrap();
    assert!(!s.moving && s.pan < 0.4 && s.pan > -0.2, "{s:?}");
    let after = look_now(&w.owner, &w.dev).await;
    assert!(after.luma < before.luma - 5.0);
    // Presets: remember a view, go elsewhere, come back to the same picture.
    w.owner.ptz(&w.dev, &at(-0.6, 0.4, 2.0)).await.unwrap();
    w.owner
        .ptz(
            &w.dev,
            &PtzCommand::PresetSet {
                slot: 2,
                name: "door".into(),
            },
        )
        .await
        .unwrap();
    let preset = look_now(&w.owner, &w.dev).await;
    w.owner.ptz(&w.dev, &at(0.9, -0.9, 1.0)).await.unwrap();
    let s = w
        .owner
        .ptz(&w.dev, &PtzCommand::PresetGoto { slot: 2 })
        .await
        .unwrap();
    assert_eq!(s.presets.len(), 1);
    let back = look_now(&w.owner, &w.dev).await;
    assert!((back.luma - preset.luma).abs() < 3.0 && (back.cb - preset.cb).abs() < 3.0);
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_5_ptz_refusals() {
    let w = world(0).await;
    // Out of range: 422 naming the fields, nothing reaches the camera.
    let e = w
        .owner
        .ptz(
            &w.dev,
            &PtzCommand::Absolute {
                pan: 3.0,
                tilt: 0.0,
                zoom: 9.0,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(422));
    let fields: Vec<&str> = e.fields().iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["pan", "zoom"]);
    // A preset that does not exist.
    let e = w
        .owner
        .ptz(&w.dev, &PtzCommand::PresetGoto { slot: 7 })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(422));
    // A sub-account with live view only may not turn the camera; with `ptz` it may.
    let kid = w.c.sub(&w.owner, "kid").await.unwrap();
    w.owner
        .share(
            &w.dev,
            "kid",
            [Scope::Live].into_iter().collect::<ScopeSet>(),
        )
        .await
        .unwrap();
    let e = kid.ptz(&w.dev, &PtzCommand::Stop).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(403), Some("forbidden")));
    w.owner
        .share(
            &w.dev,
            "kid",
            [Scope::Live, Scope::Ptz].into_iter().collect::<ScopeSet>(),
        )
        .await
        .unwrap();
    kid.ptz(&w.dev, &PtzCommand::Stop).await.unwrap();
    // Someone else: the device does not exist for them.
    let bob = w.c.owner("+15550500002").await.unwrap();
    let e = bob.ptz(&w.dev, &PtzCommand::Stop).await.unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_9_1_parameters_query_permit_and_set() {
    let w = world(0).await;
    let first = w.owner.params(&w.dev).await.unwrap();
    assert_eq!(first.revision, 0);
    // Step 7-8 skipped: a configuration without permission is refused.
    let mut doc = first.params.clone();
    doc.video.max_fps = 5;
    let e = w
        .owner
        .call::<_, serde_json::Value>(
            reqwest::Method::PUT,
            &format!("/api/v1/devices/{}/params", w.dev),
            Some(&serde_json::json!({"permit": "pcp_made_up", "base_revision": 0, "params": doc})),
        )
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(403), Some("no_permit")));
    // With permission: applied, and the stream follows (5 fps).
    let s = w
        .owner
        .set_params(&w.dev, |p| {
            p.video.max_fps = 5;
            p.osd.text = "FRONT DOOR".into();
        })
        .await
        .unwrap();
    assert_eq!(s.revision, 1);
    assert_eq!(s.params.video.max_fps, 5);
    let url = w
        .owner
        .play(&w.dev, &PlayRequest::default())
        .await
        .unwrap()
        .url;
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", &url])
        .args([
            "-select_streams",
            "v:0",
            "-count_frames",
            "-read_intervals",
            "%+4",
        ])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .output()
        .await
        .unwrap();
    let n: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!((15..=30).contains(&n), "{n} frames in ~4 s at 5 fps");
    // Invalid values: every field named, nothing applied.
    let e = w
        .owner
        .set_params(&w.dev, |p| {
            p.video.max_fps = 30;
            p.night.dark_threshold_pct = 0;
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(422));
    let fields: Vec<&str> = e.fields().iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["video.max_fps", "night.dark_threshold_pct"]);
    let now = w.owner.params(&w.dev).await.unwrap();
    assert_eq!((now.revision, now.params.video.max_fps), (1, 5));
    // A permit serves once; a configuration based on an old revision is refused.
    let permit = w.owner.params_permit(&w.dev).await.unwrap();
    assert_eq!(permit.revision, 1);
    let body = |rev: u64| serde_json::json!({"permit": permit.permit, "base_revision": rev, "params": now.params});
    let path = format!("/api/v1/devices/{}/params", w.dev);
    let e = w
        .owner
        .call::<_, serde_json::Value>(reqwest::Method::PUT, &path, Some(&body(0)))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("stale_revision")));
    let e = w
        .owner
        .call::<_, serde_json::Value>(reqwest::Method::PUT, &path, Some(&body(1)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("no_permit"), "a permit serves once");
    // A sub-account without `config` gets no permit; the audit log shows the attempts.
    let kid = w.c.sub(&w.owner, "kid").await.unwrap();
    w.owner
        .share(
            &w.dev,
            "kid",
            [Scope::Live].into_iter().collect::<ScopeSet>(),
        )
        .await
        .unwrap();
    assert_eq!(
        kid.params_permit(&w.dev).await.unwrap_err().status(),
        Some(403)
    );
    let audit = w.owner.audit().await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "device.params.set" && a.outcome == "no_permit")
    );
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_5_night_vision_auto_turns_monochrome_in_the_dark_and_back() {
    // A 10 s day: light under 30 % from 3.2 s to 6.8 s of each cycle.
    let w = world(10).await;
    w.owner
        .set_params(&w.dev, |p| {
            p.night.mode = NightMode::Auto;
            p.night.switch_delay_s = 0;
            p.night.dark_threshold_pct = 30;
        })
        .await
        .unwrap();
    // Watch 12 s at 5 fps: monochrome frames and colour frames, each in a long run.
    let url = w
        .owner
        .play(
            &w.dev,
            &PlayRequest {
                max_fps: Some(5),
                ..cif()
            },
        )
        .await
        .unwrap()
        .url;
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
        .arg(&url)
        .args([
            "-frames:v",
            "60",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-",
        ])
        .output()
        .await
        .unwrap();
    let mono: Vec<bool> = out
        .stdout
        .chunks_exact(352 * 288 * 3 / 2)
        .map(|f| look(f).chroma_dev <= 3)
        .collect();
    assert_eq!(mono.len(), 60);
    let nights = mono.iter().filter(|m| **m).count();
    // About 3.6 s of every 10 s is night: 18 frames at 5 fps, give or take the encoder.
    assert!(
        (10..=30).contains(&nights),
        "{nights} monochrome frames of 60: {mono:?}"
    );
    let switches = mono.windows(2).filter(|p| p[0] != p[1]).count();
    assert!(
        (1..=3).contains(&switches),
        "no flicker, {switches} switches"
    );
    // The lamp state is reported.
    let mut seen = (false, false);
    for _ in 0..60 {
        let s = w.owner.params(&w.dev).await.unwrap();
        if s.ir_lamp_on {
            seen.0 = true;
        } else {
            seen.1 = true;
        }
        if seen.0 && seen.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(seen, (true, true), "status shows the lamp on and off");
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_10_reset_ends_all_access_and_needs_the_bind_code_again() {
    let w = world(0).await;
    // Settings to be forgotten.
    w.owner
        .set_params(&w.dev, |p| p.osd.text = "OLD OWNER".into())
        .await
        .unwrap();
    w.owner
        .ptz(
            &w.dev,
            &PtzCommand::PresetSet {
                slot: 1,
                name: "x".into(),
            },
        )
        .await
        .unwrap();
    // A sub-account watching live.
    let kid = w.c.sub(&w.owner, "kid").await.unwrap();
    w.owner
        .share(
            &w.dev,
            "kid",
            [Scope::Live].into_iter().collect::<ScopeSet>(),
        )
        .await
        .unwrap();
    let url = kid.play(&w.dev, &cif()).await.unwrap().url;
    let mut player = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
        .arg(&url)
        .args(["-t", "60", "-f", "null", "-"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(player.try_wait().unwrap().is_none(), "playing");
    // A sub-account may not reset; the owner may.
    assert_eq!(
        kid.reset(&w.dev, false).await.unwrap_err().status(),
        Some(403)
    );
    let t = std::time::Instant::now();
    w.owner.reset(&w.dev, true).await.unwrap();
    // Live session torn down (D5).
    let status = tokio::time::timeout(Duration::from_secs(5), player.wait())
        .await
        .expect("the live session ended")
        .unwrap();
    let _ = status;
    assert!(t.elapsed() < Duration::from_secs(5));
    // All access gone: the owner and the sub-account no longer see the device.
    assert!(w.owner.devices().await.unwrap().is_empty());
    assert_eq!(
        kid.play(&w.dev, &cif()).await.unwrap_err().code(),
        Some("not_found")
    );
    // The device registers again, unbound; binding needs the bind code.
    w.c.wait_online(&w.id.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let e = w
        .owner
        .bind(&w.dev, "AAAA-AAAA-AAAA", None)
        .await
        .unwrap_err();
    assert!(matches!(e.status(), Some(400..=404)), "{e}");
    w.c.bind(&w.owner, &w.id).await.unwrap();
    // Factory state: revision 0, default OSD, no presets.
    let s = w.owner.params(&w.dev).await.unwrap();
    assert_eq!(s.revision, 0);
    assert!(s.params.osd.text.is_empty());
    let p = w.owner.ptz(&w.dev, &PtzCommand::Stop).await.unwrap();
    assert!(p.presets.is_empty());
    w.c.stop().await;
}

/// Runs `peercam cu ... ARGS` as the owner; returns (success, stdout, stderr).
async fn cli(w: &World, args: &[&str]) -> (bool, String, String) {
    w.c.cu_cli(env!("CARGO_BIN_EXE_peercam"), "+15550500001", args)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_9_1_cli_ptz_params_and_reset() {
    let w = world(0).await;
    let (ok, out, err) = cli(
        &w,
        &["ptz", &w.dev, "to", "--pan", "-0.5", "--tilt", "0.25"],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("pan -0.50 tilt +0.25 zoom 1.00x"), "{out}");
    let (ok, out, err) = cli(
        &w,
        &[
            "--json",
            "params",
            "set",
            &w.dev,
            "video.max_fps=7",
            "osd.text=GATE",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["revision"], 1);
    assert_eq!(s["params"]["video"]["max_fps"], 7);
    // A value out of range names the field; a made-up field is named too.
    let (ok, _, err) = cli(&w, &["params", "set", &w.dev, "video.max_fps=99"]).await;
    assert!(
        !ok && err.contains("video.max_fps: must be in 1..=25"),
        "{err}"
    );
    let (ok, _, err) = cli(&w, &["params", "set", &w.dev, "video.sharpness=3"]).await;
    assert!(
        !ok && err.contains("no parameter \"video.sharpness\""),
        "{err}"
    );
    assert_eq!(w.owner.params(&w.dev).await.unwrap().revision, 1);
    // A reset needs --yes.
    let (ok, _, err) = cli(&w, &["reset", &w.dev]).await;
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, _, err) = cli(&w, &["reset", &w.dev, "--yes"]).await;
    assert!(ok, "{err}");
    assert!(w.owner.devices().await.unwrap().is_empty());
    w.c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_11_wlan_switch_and_automatic_return() {
    use peercam_signal::control::{WlanConfig, WlanSecurity};
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let radio = c.path().join("radio.json");
    std::fs::write(
        &radio,
        r#"{"current": "home", "networks": [
            {"ssid": "home", "security": "wpa2_psk", "passphrase": "homehome1", "signal_pct": 70},
            {"ssid": "office", "security": "wpa3_sae", "passphrase": "officepass", "signal_pct": 40},
            {"ssid": "cafe", "security": "open", "reaches_platform": false}
        ]}"#,
    )
    .unwrap();
    let _pu = c
        .start_pu_with(&id, 0, |cfg| {
            cfg.wlan = Some(format!("file:{}", radio.display()));
            cfg.wlan_confirm_s = 3;
            cfg.reconnect_max_ms = 500;
        })
        .await
        .unwrap();
    c.wait_online(&id.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner("+15550500003").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let dev = id.device_id.to_string();

    let s = owner.wlan(&dev).await.unwrap();
    assert_eq!(s.current.as_deref(), Some("home"));
    assert_eq!(s.networks.len(), 3);
    let cfg = |ssid: &str, security, pass: &str| WlanConfig {
        ssid: ssid.into(),
        security,
        passphrase: pass.into(),
    };
    // Values out of range never reach the camera; a wrong passphrase fails on the camera.
    let e = owner
        .set_wlan(&dev, &cfg("office", WlanSecurity::Wpa3Sae, "short"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(422));
    let e = owner
        .set_wlan(&dev, &cfg("office", WlanSecurity::Wpa3Sae, "wrong pass"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("refused the passphrase"), "{e}");

    // A network without a way to the platform: the camera goes back by itself.
    let s = owner
        .set_wlan(&dev, &cfg("cafe", WlanSecurity::Open, ""))
        .await
        .unwrap();
    assert_eq!(s.last_switch.unwrap().outcome, "pending");
    c.wait_online(&id.device_id, false, Duration::from_secs(5))
        .await
        .unwrap();
    c.wait_online(&id.device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    let s = owner.wlan(&dev).await.unwrap();
    assert_eq!(s.current.as_deref(), Some("home"));
    let last = s.last_switch.unwrap();
    assert_eq!(
        (last.ssid.as_str(), last.outcome.as_str()),
        ("cafe", "reverted")
    );

    // A good network: confirmed once the camera registers through it.
    owner
        .set_wlan(&dev, &cfg("office", WlanSecurity::Wpa3Sae, "officepass"))
        .await
        .unwrap();
    let mut outcome = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(s) = owner.wlan(&dev).await {
            outcome = s.last_switch.map(|l| l.outcome).unwrap_or_default();
            if outcome == "confirmed" {
                assert_eq!(s.current.as_deref(), Some("office"));
                break;
            }
        }
    }
    assert_eq!(outcome, "confirmed");
    c.stop().await;
}
