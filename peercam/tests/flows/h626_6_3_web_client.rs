//! H.626.4 6.3 (CU, M_CU): the web client served by the CMU, driven end to end in Debian's
//! Chromium by playwright-core (`web-tests/*.mjs`). The scenarios print one JSON line; these
//! tests start the platform, run them and check both what the browser saw and what the
//! platform recorded. Skipped (a failure under `CI=true`) where node, /usr/bin/chromium or
//! `web-tests/node_modules` is missing; `.ci/run` installs all three.
//!
//! `PEERCAM_WEB_SHOTS=DIR` keeps the screenshots (desktop 1280x800 and phone 390x844) in DIR;
//! docs/screenshots/ was made that way.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::path::Path;
use std::time::Duration;

use peercam_signal::ps::DeviceKind;
use peercam_test::web::web_tests_or_skip;
use peercam_test::{Cluster, new_identity};
use serde_json::Value;

/// Runs a scenario of `web-tests/` (see [`peercam_test::web::scenario`]).
async fn scenario(dir: &Path, script: &str, env: &[(&str, String)]) -> Value {
    peercam_test::web::scenario(dir, script, env, None).await
}

/// `PEERCAM_WEB_SHOTS`, a relative path taken from the workspace root (the scenarios run in
/// `web-tests`), or `fallback`.
fn shots_env(fallback: &Path) -> String {
    match std::env::var("PEERCAM_WEB_SHOTS") {
        Ok(d) if Path::new(&d).is_relative() => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(d)
            .display()
            .to_string(),
        Ok(d) => d,
        Err(_) => fallback.display().to_string(),
    }
}

fn shots_dir(c: &Cluster) -> String {
    shots_env(&c.path().join("screenshots"))
}

/// 6.1.1, 8.2, 8.5, 8.6, 8.9.1 through the browser: sign-up with the SMS code, the operator
/// approves in its own view, the owner logs in, binds two cameras and sees them online,
/// turns one (PTZ), saves its settings, creates a sub-account and shares one camera with it;
/// the sub-account sees only that camera. Then password change, logout, login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_3_web_client_signup_approval_bind_share() {
    let Some(dir) = web_tests_or_skip("h626_6_3_web_client_signup_approval_bind_share") else {
        return;
    };
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(2).await.unwrap();
    // The first camera has a (file-backed) WLAN radio, so the WLAN form has networks.
    let radio = c.path().join("radio.json");
    std::fs::write(
        &radio,
        r#"{"current": "home", "networks": [
            {"ssid": "home", "security": "wpa2_psk", "passphrase": "homehome1", "signal_pct": 70},
            {"ssid": "office", "security": "wpa3_sae", "passphrase": "officepass", "signal_pct": 40},
            {"ssid": "cafe", "security": "open", "signal_pct": 20}
        ]}"#,
    )
    .unwrap();
    let _pu0 = c
        .start_pu_with(&ids[0], 0, |cfg| {
            cfg.wlan = Some(format!("file:{}", radio.display()));
            cfg.wlan_confirm_s = 3;
        })
        .await
        .unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let _pu1 = c.start_pu_online(&ids[1], 0).await.unwrap();
    let (d0, d1) = (ids[0].device_id.to_string(), ids[1].device_id.to_string());
    let admin_password = std::fs::read_to_string(c.path().join("admin.password")).unwrap();
    let phone = "+15550630001";

    let r = scenario(
        &dir,
        "onboarding.mjs",
        &[
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_ADMIN_PASSWORD", admin_password.trim().to_owned()),
            (
                "PEERCAM_SMS_OUTBOX",
                c.path().join("sms-outbox").display().to_string(),
            ),
            ("PEERCAM_DEVICES", format!("{d0},{d1}")),
            (
                "PEERCAM_BIND_CODES",
                format!(
                    "{},{}",
                    ids[0].bind_code.display(),
                    ids[1].bind_code.display()
                ),
            ),
            ("PEERCAM_PHONE", phone.to_owned()),
            ("PEERCAM_WEB_SHOTS", shots_dir(&c)),
            // The live view plays from the camera and is checked: frames, PTZ, snapshot,
            // local recording.
            ("PEERCAM_WEB_LIVE", "1".to_owned()),
        ],
    )
    .await;

    // What the browser saw.
    let owner_devices = r["owner_devices"].as_array().unwrap();
    assert_eq!(owner_devices.len(), 2);
    assert!(owner_devices.iter().all(|d| d["online"] == true), "{r}");
    assert_eq!(
        r["sub_devices"],
        serde_json::json!([d0]),
        "the sub-account sees only the shared camera"
    );
    assert!(r["share"].as_str().unwrap().contains("Live view"));
    assert!(
        r["ptz_after_pan"].as_str().unwrap().starts_with("Pan "),
        "{r}"
    );
    assert_eq!(r["settings_caption"], "FRONT DOOR");
    assert!(r["wlan"].as_str().unwrap().contains("office"), "{r}");
    assert!(
        r["wrong_code_message"]
            .as_str()
            .unwrap()
            .starts_with("Wrong code")
    );
    assert!(!r["wrong_bind_message"].as_str().unwrap().is_empty());
    assert!(!r["pending_login_message"].as_str().unwrap().is_empty());
    assert_eq!(r["update"]["update_available"], false);
    assert_eq!(r["problems"], serde_json::json!([]));
    // The live view played from the camera: the picture moves and is not blank.
    assert!(r["live"]["advanced_s"].as_f64().unwrap() > 0.5, "{r}");
    assert!(r["live"]["contrast"].as_f64().unwrap() > 5.0, "{r}");
    // Click to center: a click right of the middle panned right.
    let c2c = &r["click_to_center"];
    assert!(
        c2c["after"].as_f64().unwrap() > c2c["before"].as_f64().unwrap(),
        "{r}"
    );
    let shots = r["screenshots"].as_array().unwrap();
    assert!(
        shots.len() >= 16,
        "desktop and phone screenshots: {shots:?}"
    );

    // What the platform recorded.
    let users = c.admin.admin_users(None).await.unwrap();
    let me = users.iter().find(|u| u.login == phone).unwrap();
    assert_eq!(me.status, peercam_signal::cm::AccountStatus::Active);
    let (owner, _) = c
        .client()
        .login(phone, "another long password")
        .await
        .unwrap();
    let mine = owner.devices().await.unwrap();
    let names: Vec<_> = mine.iter().map(|d| d.name.as_str()).collect();
    assert!(
        names.contains(&"Front door") && names.contains(&"Garden"),
        "{names:?}"
    );
    let shares = owner.shares(&d0).await.unwrap();
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].username, "kid");
    assert!(owner.shares(&d1).await.unwrap().is_empty());
    let (kid, _) = c.client().login("kid", "kid password 1").await.unwrap();
    let seen: Vec<_> = kid
        .devices()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id.to_string())
        .collect();
    assert_eq!(seen, std::slice::from_ref(&d0));
    // The camera may be reconnecting through the network the browser just switched it to.
    let mut params = owner.params(&d0).await;
    for _ in 0..100 {
        if params.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        params = owner.params(&d0).await;
    }
    let params = params.unwrap();
    assert_eq!(params.params.osd.text, "FRONT DOOR");
    assert_eq!(params.params.video.max_fps, 15);
    c.stop().await;
}

/// 8.4 over WebRTC in the browser, direct and forced through the MTU's TURN relay
/// (`?relay=1`): the video advances and is not blank, PTZ moves the picture, snapshot and
/// local recording download files, and click-to-first-frame is timed (p50/p95).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_3_web_client_live_view_direct_and_relayed() {
    let Some(dir) = web_tests_or_skip("h626_6_3_web_client_live_view_direct_and_relayed") else {
        return;
    };
    const SECRET: &str = "web-client-turn-secret";
    let c = Cluster::start_with(1, |cfg| cfg.turn_secret = Some(SECRET.into()))
        .await
        .unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    // Everything is on loopback here; production keeps loopback denied.
    let _mtu = c.start_turn_mtu(SECRET, &["127.0.0.0/8"]).await.unwrap();
    let phone = "+15550630002";
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    // TURN servers reach the CMU with the MTU's load report.
    for _ in 0..100 {
        if !owner.ice(&dev).await.unwrap().ice_servers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let env = |relay: &str| {
        vec![
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_WEB_USER", phone.to_owned()),
            ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
            ("PEERCAM_DEVICE", dev.clone()),
            ("PEERCAM_WEB_RELAY", relay.to_owned()),
            ("PEERCAM_WEB_PLAYS", "10".to_owned()),
            ("PEERCAM_WEB_SHOTS", shots_dir(&c)),
        ]
    };
    let direct = scenario(&dir, "live.mjs", &env("0")).await;
    assert_eq!(direct["check"]["path"], "direct", "{direct}");
    let relayed = scenario(&dir, "live.mjs", &env("1")).await;
    assert_eq!(relayed["check"]["path"], "relay", "{relayed}");
    for r in [&direct, &relayed] {
        assert!(r["check"]["advanced_s"].as_f64().unwrap() > 0.5, "{r}");
        assert!(
            r["check"]["ptz_picture_diff"].as_f64().unwrap() > 3.0,
            "{r}"
        );
        assert!(r["first_frame_ms"]["p50"].as_u64().is_some(), "{r}");
    }
    // The client reported its sessions with the path it took.
    let sessions = c.admin.admin_sessions().await.unwrap();
    assert!(
        sessions.by_path.get("relay").copied().unwrap_or(0) >= 1,
        "{sessions:?}"
    );
    c.stop().await;
}

/// The client side of the WebRTC live-view contract, without a camera: the live page runs
/// against a second browser page that answers the offer with a canvas stream (the API is
/// answered by the scenario itself, see web-tests/live-loopback.mjs). Offer with recvonly
/// video and audio and gathered candidates; answer applied; path shown; first frame timed;
/// the video advances and is not blank; PTZ orders move the picture; snapshot PNG and WebM
/// recording downloaded; the session report has exactly the fields the CMU accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_3_web_client_live_view_contract_against_a_browser_peer() {
    let Some(dir) =
        web_tests_or_skip("h626_6_3_web_client_live_view_contract_against_a_browser_peer")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let shots = shots_env(tmp.path());
    let r = scenario(
        &dir,
        "live-loopback.mjs",
        &[
            ("PEERCAM_WEB_PLAYS", "3".to_owned()),
            ("PEERCAM_WEB_SHOTS", shots),
        ],
    )
    .await;
    assert_eq!(r["check"]["path"], "direct", "{r}");
    assert!(r["check"]["advanced_s"].as_f64().unwrap() > 0.5, "{r}");
    assert!(r["check"]["contrast"].as_f64().unwrap() > 5.0, "{r}");
    assert!(
        r["check"]["ptz_picture_diff"].as_f64().unwrap() > 3.0,
        "{r}"
    );
    assert!(r["check"]["snapshot_bytes"].as_u64().unwrap() > 1000, "{r}");
    assert!(
        r["check"]["recording_bytes"].as_u64().unwrap() > 1000,
        "{r}"
    );
    assert_eq!(r["check"]["sound_on"], true);
    assert_eq!(
        r["webrtc_body"],
        serde_json::json!(["audio", "max_fps", "max_height", "max_width", "offer"])
    );
    assert_eq!(
        r["report"]["path"], "lan",
        "host candidates on loopback: {r}"
    );
    assert!(r["report"]["bytes"].as_u64().unwrap() > 0);
}

/// 8.7.2.2 in the browser (issue 7): an NVR records a camera; the device list shows the
/// camera's thumbnail; the Playback tab draws the day from the NVR's record list, plays from
/// a click on the timeline over WebRTC, runs at 4x and in reverse at the speed asked, pauses,
/// steps exactly one frame forward and back, moves its cursor with the keyboard, and exports
/// 4 s that ffprobe reads as H.264 with the frames the NVR announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_3_web_client_playback_timeline_trick_modes_steps_export() {
    let Some(dir) =
        web_tests_or_skip("h626_6_3_web_client_playback_timeline_trick_modes_steps_export")
    else {
        return;
    };
    let c = Cluster::start(1).await.unwrap();
    let pu = c.provision(1).await.unwrap().remove(0);
    let nvr = new_identity(DeviceKind::Nvr);
    c.provision_these(std::slice::from_ref(&nvr)).await.unwrap();
    let _pu = c.start_pu_online(&pu, 0).await.unwrap();
    let _nvr = c.start_nvr_with(&nvr, 0, |_| {}).await.unwrap();
    c.wait_online(&nvr.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let phone = "+15550630003";
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &pu).await.unwrap();
    c.bind(&owner, &nvr).await.unwrap();
    let (cam, rec) = (pu.device_id.as_str(), nvr.device_id.as_str());
    // CIF keeps the camera's encoder cheap on the 2-core test machines.
    owner
        .set_params(cam, |p| {
            p.video.max_resolution = peercam_signal::control::Resolution::Cif;
        })
        .await
        .unwrap();
    owner.attach_camera(rec, cam).await.unwrap();
    let continuous = peercam_signal::record::Strategy {
        mode: peercam_signal::record::Mode::Continuous,
        ..peercam_signal::record::Strategy::default()
    };
    owner
        .set_recording(cam, Some(rec), &continuous)
        .await
        .unwrap();
    // At least 14 s recorded: the browser plays from 2 s in, at 4x, then back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let span = loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let list = owner
            .recordings(cam, Some(rec), now - 600_000, now + 60_000)
            .await
            .unwrap();
        if let Some(s) = list
            .spans
            .first()
            .filter(|s| s.end_ms - s.start_ms >= 14_000)
        {
            break *s;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let exports = tempfile::tempdir().unwrap();
    let r = scenario(
        &dir,
        "playback.mjs",
        &[
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_WEB_USER", phone.to_owned()),
            ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
            ("PEERCAM_DEVICE", cam.to_owned()),
            ("PEERCAM_NVR", rec.to_owned()),
            ("PEERCAM_SPAN_START_MS", span.start_ms.to_string()),
            ("PEERCAM_EXPORT_DIR", exports.path().display().to_string()),
            ("PEERCAM_WEB_SHOTS", shots_dir(&c)),
        ],
    )
    .await;
    assert!(r["thumbnail"]["w"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["recorder"], rec);
    assert!(r["frames_1x"].as_u64().unwrap() > 20, "{r}");
    assert!(r["contrast"].as_f64().unwrap() > 5.0, "{r}");
    let fast = r["fast"]["rate"].as_f64().unwrap();
    assert!((3.0..=5.0).contains(&fast), "4x: {r}");
    let back = r["reverse"]["rate"].as_f64().unwrap();
    assert!((-5.0..=-3.0).contains(&back), "-4x: {r}");
    for s in ["step_forward", "step_back"] {
        assert_eq!(r[s]["frames"], 1, "{s}: {r}");
    }
    assert_eq!(r["step_forward"]["pos_delta"], 40);
    assert_eq!(r["step_back"]["pos_delta"], -40);
    assert_eq!(r["keyboard_moved_s"], -2);
    // The file the browser saved, read again here.
    let path = r["export"]["path"].as_str().unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=codec_name,nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let probed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        probed,
        format!("h264,{}", r["export"]["announced_frames"]),
        "{r}"
    );
    assert_eq!(r["problems"], serde_json::json!([]));
    c.stop().await;
}

/// Starts `peercam pu` as its own process for `id` (the synthetic camera), so that a test
/// can end it with SIGKILL as a power cut would.
fn spawn_pu_process(
    c: &Cluster,
    id: &peercam_signal::identity::DeviceIdentity,
    dir: &Path,
) -> std::process::Child {
    std::fs::create_dir_all(dir).unwrap();
    let identity = dir.join("identity.toml");
    std::fs::write(&identity, id.to_toml()).unwrap();
    let config = dir.join("pu.toml");
    std::fs::write(
        &config,
        format!(
            "identity = {identity:?}\nscu_url = {:?}\nplatform_ca = {:?}\nrtsp_listen = \"127.0.0.1:0\"\ndiscovery_port = 0\nport_mapping = false\nstate_dir = {:?}\n",
            c.scu_url(0),
            c.pki.ca_cert,
            dir.join("state"),
        ),
    )
    .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["pu", "--config"])
        .arg(&config)
        .env("PEERCAM_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// 8.4 in the browser, recovering by itself (issue 20): the camera process is killed with
/// SIGKILL while a user watches and started again; the page says it is reconnecting or
/// waiting for the camera, and the picture comes back without a click within 2 s of the
/// camera registering again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_3_live_view_recovers_after_the_camera_is_killed() {
    let Some(dir) = web_tests_or_skip("h626_6_3_live_view_recovers_after_the_camera_is_killed")
    else {
        return;
    };
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let cam = &ids[0];
    let pu_dir = c.path().join("pu-recover");
    let mut child = spawn_pu_process(&c, cam, &pu_dir);
    c.wait_online(&cam.device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    let phone = "+15550630077";
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, cam).await.unwrap();
    let signal = tempfile::tempdir().unwrap();
    let env = vec![
        ("PEERCAM_WEB_URL", c.api.clone()),
        ("PEERCAM_WEB_USER", phone.to_owned()),
        ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
        ("PEERCAM_DEVICE", cam.device_id.to_string()),
        ("PEERCAM_SIGNAL_DIR", signal.path().display().to_string()),
        ("PEERCAM_WEB_SHOTS", shots_dir(&c)),
    ];
    let web = {
        let dir = dir.clone();
        tokio::spawn(async move { scenario(&dir, "live-recover.mjs", &env).await })
    };
    // The picture runs: cut the camera's power.
    let playing = signal.path().join("playing");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !playing.exists() {
        assert!(!web.is_finished(), "the scenario ended before it played");
        assert!(tokio::time::Instant::now() < deadline, "never played");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    c.wait_online(&cam.device_id, false, Duration::from_secs(15))
        .await
        .unwrap();
    // It is off for a moment, then boots again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut child = spawn_pu_process(&c, cam, &pu_dir);
    c.wait_online(&cam.device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    let registered = now_ms();
    let r = web.await.unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let states: Vec<&str> = r["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        states.contains(&"reconnecting") || states.contains(&"waiting"),
        "{r}"
    );
    assert_eq!(states.last(), Some(&"playing"), "{r}");
    let back = r["first_frame_at"].as_u64().unwrap();
    let after = back.saturating_sub(registered);
    eprintln!("picture back {after} ms after the camera registered again; states {states:?}");
    assert!(
        after <= 2000,
        "picture back {after} ms after registering: {r}"
    );
    c.stop().await;
}
