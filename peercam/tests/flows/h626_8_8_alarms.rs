//! H.626.4 8.8 alarm flow, platform side, over loopback with real sockets: a scripted device
//! (a real Ps link through a real SCU) raises alarms and answers the commands the CMU sends.
//! Alarm up stored once, linkage (record_event, snapshot, SMS in the owner's words, live
//! stream), reset down to the camera, the strategy's round trip (also when the camera is
//! offline), sub-account isolation, and the offline alarm after a disconnect.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::support::scripted;

use std::time::Duration;

use peercam_alarm::{Alarm, AlarmKind, Zone};
use peercam_base::Scope;
use peercam_signal::cm_alarm::{AlarmList, AlarmStrategyState, AlarmView};
use peercam_signal::cmd::{DeviceCommand, PlatformAnswer};
use peercam_test::Cluster;
use reqwest::Method;
use scripted::{AlarmStream, JPEG, Scripted, one_camera, raw, sms_to, wait_sms};
use serde_json::{Value, json};

fn motion(id: &str) -> Alarm {
    Alarm {
        id: id.into(),
        kind: AlarmKind::Motion,
        at_ms: 1_796_612_640_000,
        input: None,
        zone: Some(0),
        level: 60,
        detail: "zone 0".into(),
    }
}

async fn alarms(client: &peercam_cu::Client, query: &str) -> AlarmList {
    client
        .call::<(), AlarmList>(Method::GET, &format!("/api/v1/alarms{query}"), None)
        .await
        .unwrap()
}

/// `recorder` (an NVR, 8.7.2) records `camera`.
async fn attach_recorder(c: &Cluster, camera: &str, recorder: &str) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", c.db_path().display()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO recorders (camera_id, recorder_id, strategy, created_at) VALUES (?1, ?2, NULL, 0)")
        .bind(camera)
        .bind(recorder)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_alarm_stored_once_with_linkage_and_reset() {
    let phone = "+15550880001";
    let (c, id, dev, owner) = one_camera(phone).await;
    let cam = id.device_id.to_string();
    owner.rename(&cam, "Garden").await.unwrap();
    // The NVR recording this camera (a scripted device too); the camera marks its own SD
    // card itself, so the platform sends it no `record_event`.
    let nvr_id = c.provision(1).await.unwrap().remove(0);
    let nvr = Scripted::start(&c, &nvr_id, 0).await;
    attach_recorder(&c, &cam, nvr_id.device_id.as_str()).await;
    // The owner's own words (6.1.9), and SMS linkage in the strategy (8.8 steps 1-4).
    let t = json!({"templates": {"motion": "Bewegung: {camera} ({kind}) {detail}"}});
    owner
        .call::<Value, Value>(Method::PUT, "/api/v1/me/alarm-templates", Some(&t))
        .await
        .unwrap();
    let strategy = json!({"armed": true, "sources": ["motion"], "linkage": {"sms": true}});
    let s: AlarmStrategyState = owner
        .call(
            Method::PUT,
            &format!("/api/v1/devices/{cam}/alarm-strategy"),
            Some(&strategy),
        )
        .await
        .unwrap();
    assert!(s.applied && s.revision == 1 && s.strategy.linkage.sms);
    let mut stream = AlarmStream::open(&c, &owner).await;

    // H.626.4 8.8 alarm up; the retransmission is stored once and answered the same.
    let a = motion("m-1");
    let stored = PlatformAnswer::Stored { id: "m-1".into() };
    assert_eq!(dev.alarm(a.clone()).await, stored);
    let got = stream
        .wait("\"alarm_id\":\"m-1\"", Duration::from_secs(10))
        .await
        .expect("the stream delivers the new alarm");
    assert!(got.contains("event: alarm"), "{got}");
    assert_eq!(dev.alarm(a.clone()).await, stored);
    // A camera may not raise the platform's kinds, nor send a malformed alarm.
    let login = Alarm {
        kind: AlarmKind::Login,
        ..motion("s-1")
    };
    assert!(matches!(
        dev.alarm(login).await,
        PlatformAnswer::Refused { .. }
    ));
    assert!(matches!(
        dev.alarm(motion("a b")).await,
        PlatformAnswer::Refused { .. }
    ));
    let list = alarms(&owner, "").await;
    let mine: Vec<&AlarmView> = list.alarms.iter().filter(|v| v.camera.is_some()).collect();
    assert_eq!(mine.len(), 1, "{list:?}");
    let view = mine[0].clone();
    assert_eq!((view.kind, view.at_ms, view.level), (a.kind, a.at_ms, 60));

    // Linkage: the recorder marked it, the snapshot is kept, the SMS is in the owner's words.
    nvr.wait_for(
        "record_event",
        |c| matches!(c, DeviceCommand::RecordEvent { kind, .. } if kind == "alarm"),
    )
    .await;
    let texts = wait_sms(&c, phone, "Bewegung: Garden (motion) zone 0").await;
    // The snapshot follows the alarm on the stream once it is kept.
    let got = stream
        .wait("event: snapshot", Duration::from_secs(10))
        .await
        .expect("the stream tells of the snapshot");
    assert!(got.contains("\"snapshot\":true"), "{got}");
    let bytes = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&c.ca_pem).unwrap()])
        .build()
        .unwrap()
        .get(format!("{}/api/v1/alarms/{}/snapshot", c.api, view.id))
        .bearer_auth(owner.token().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], JPEG);
    // The duplicate repeated none of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = dev.script.seen();
    let count = |f: fn(&DeviceCommand) -> bool| seen.iter().filter(|c| f(c)).count();
    assert_eq!(count(|c| matches!(c, DeviceCommand::RecordEvent { .. })), 0);
    assert_eq!(count(|c| matches!(c, DeviceCommand::Snapshot { .. })), 1);
    let marks = nvr
        .script
        .seen()
        .iter()
        .filter(|c| matches!(c, DeviceCommand::RecordEvent { .. }))
        .count();
    assert_eq!(marks, 1, "the NVR marked the alarm once");
    let alarm_sms = sms_to(&c, phone)
        .into_iter()
        .filter(|t| t.starts_with("Bewegung"))
        .count();
    assert_eq!(alarm_sms, 1, "{texts:?}");

    // H.626.4 8.8 reset: stored, and CMU -> SCU -> PU.
    let reset: AlarmView = owner
        .call::<(), AlarmView>(
            Method::POST,
            &format!("/api/v1/alarms/{}/reset", view.id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reset.state.as_str(), "reset");
    dev.wait_for(
        "reset_alarm",
        |c| matches!(c, DeviceCommand::ResetAlarm { id: Some(i) } if i == "m-1"),
    )
    .await;
    stream
        .wait("event: reset", Duration::from_secs(10))
        .await
        .expect("the stream delivers the reset");
    let active = alarms(&owner, &format!("?camera={cam}&state=active")).await;
    assert!(active.alarms.is_empty());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_strategy_validated_sent_and_pending_while_offline() {
    let (c, id, dev, owner) = one_camera("+15550880002").await;
    let cam = id.device_id.to_string();
    let path = format!("/api/v1/devices/{cam}/alarm-strategy");
    // Refusals name the field (422), nothing is saved or sent.
    let (status, text) = raw(&c, &owner, "PUT", &path, Some(&json!({"sensitivity": 0}))).await;
    assert_eq!(status, 422, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["fields"][0]["field"], "sensitivity");
    let zones = json!({"zones": [{"x": 900, "y": 0, "w": 200, "h": 10}]});
    let (status, text) = raw(&c, &owner, "PUT", &path, Some(&zones)).await;
    assert!(status == 422 && text.contains("zones[0].w"), "{text}");
    let (status, text) = raw(&c, &owner, "PUT", &path, Some(&json!({"armd": true}))).await;
    assert!(status == 422 && text.contains("armd"), "{text}");
    assert!(
        !dev.script
            .seen()
            .iter()
            .any(|c| matches!(c, DeviceCommand::SetAlarmStrategy { .. }))
    );

    // Valid: saved and applied by the camera.
    let ok = json!({"armed": true, "sources": ["input", "motion"], "cooldown_s": 5});
    let s: AlarmStrategyState = owner.call(Method::PUT, &path, Some(&ok)).await.unwrap();
    assert!(s.applied);
    assert_eq!(s.device.unwrap().strategy.cooldown_s, 5);
    dev.wait_for(
        "set_alarm_strategy",
        |c| matches!(c, DeviceCommand::SetAlarmStrategy { strategy } if strategy.cooldown_s == 5),
    )
    .await;

    // Offline: saved and pending (202); sent when the camera is back.
    dev.shutdown.trigger();
    c.wait_online(&id.device_id, false, Duration::from_secs(10))
        .await
        .unwrap();
    let later = json!({"armed": true, "sources": ["tamper"], "cooldown_s": 7});
    let (status, text) = raw(&c, &owner, "PUT", &path, Some(&later)).await;
    assert_eq!(status, 202, "{text}");
    let pending: AlarmStrategyState = serde_json::from_str(&text).unwrap();
    assert!(!pending.applied && pending.revision == 2);
    let back = Scripted::start(&c, &id, 0).await;
    back.wait_for(
        "the pending strategy",
        |c| matches!(c, DeviceCommand::SetAlarmStrategy { strategy } if strategy.cooldown_s == 7),
    )
    .await;
    let mut applied = false;
    for _ in 0..100 {
        let s: AlarmStrategyState = owner.call::<(), _>(Method::GET, &path, None).await.unwrap();
        if s.applied {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(applied, "the camera's application is recorded");

    // The simulated input goes to the camera (owner only).
    let trip = json!({"input": 2, "active": true});
    owner
        .call::<Value, Value>(
            Method::POST,
            &format!("/api/v1/devices/{cam}/alarm-input"),
            Some(&trip),
        )
        .await
        .unwrap();
    back.wait_for("trip_input", |c| {
        matches!(
            c,
            DeviceCommand::TripInput {
                input: 2,
                active: true
            }
        )
    })
    .await;
    let (status, text) = raw(
        &c,
        &owner,
        "POST",
        &format!("/api/v1/devices/{cam}/alarm-input"),
        Some(&json!({"input": 9, "active": true})),
    )
    .await;
    assert!(status == 422 && text.contains("input"), "{text}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_sub_account_sees_only_shared_cameras_alarms() {
    sub_account_sees_only_shared_cameras_alarms(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_sub_account_sees_only_shared_cameras_alarms_postgres() {
    if let Some(c) = Cluster::start_postgres(
        1,
        "h626_8_8_sub_account_sees_only_shared_cameras_alarms_postgres",
    )
    .await
    .unwrap()
    {
        sub_account_sees_only_shared_cameras_alarms(c).await;
    }
}

async fn sub_account_sees_only_shared_cameras_alarms(c: Cluster) {
    let ids = c.provision(2).await.unwrap();
    let d0 = Scripted::start(&c, &ids[0], 0).await;
    let d1 = Scripted::start(&c, &ids[1], 0).await;
    let owner = c.owner("+15550880003").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    c.bind(&owner, &ids[1]).await.unwrap();
    let sub = c.sub(&owner, "alarmsub").await.unwrap();
    let other = c.owner("+15550880004").await.unwrap();
    let shared = ids[0].device_id.to_string();
    owner
        .share(&shared, "alarmsub", [Scope::Live].into_iter().collect())
        .await
        .unwrap();
    let mut sub_stream = AlarmStream::open(&c, &sub).await;
    assert!(matches!(
        d1.alarm(motion("private-1")).await,
        PlatformAnswer::Stored { .. }
    ));
    assert!(matches!(
        d0.alarm(motion("shared-1")).await,
        PlatformAnswer::Stored { .. }
    ));
    let got = sub_stream
        .wait("shared-1", Duration::from_secs(10))
        .await
        .expect("the sub-account hears of the shared camera's alarm");
    assert!(!got.contains("private-1"), "{got}");

    let of_sub = alarms(&sub, "?kind=motion").await;
    let names: Vec<&str> = of_sub.alarms.iter().map(|a| a.alarm_id.as_str()).collect();
    assert_eq!(names, ["shared-1"]);
    let of_owner = alarms(&owner, "?kind=motion").await;
    assert_eq!(of_owner.alarms.len(), 2);
    let private = of_owner
        .alarms
        .iter()
        .find(|a| a.alarm_id == "private-1")
        .unwrap();
    // Not yours == does not exist (D3).
    let missing = raw(&c, &sub, "GET", "/api/v1/alarms/999999", None).await;
    assert_eq!(missing.0, 404);
    for who in [&sub, &other] {
        let got = raw(
            &c,
            who,
            "GET",
            &format!("/api/v1/alarms/{}", private.id),
            None,
        )
        .await;
        assert_eq!(got, missing);
        let got = raw(
            &c,
            who,
            "POST",
            &format!("/api/v1/alarms/{}/reset", private.id),
            None,
        )
        .await;
        assert_eq!(got.0, 404);
    }
    assert!(alarms(&other, "?kind=motion").await.alarms.is_empty());
    // A share without `config` may look but not reset.
    let shared_view = of_sub.alarms[0].id;
    let (status, _) = raw(
        &c,
        &sub,
        "POST",
        &format!("/api/v1/alarms/{shared_view}/reset"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    // After unsharing, the camera's alarms are gone for the sub-account.
    owner.unshare(&shared, "alarmsub").await.unwrap();
    assert!(alarms(&sub, "?kind=motion").await.alarms.is_empty());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_camera_offline_alarm_after_disconnect_and_online_after_return() {
    let phone = "+15550880005";
    let (c, id, dev, owner) = one_camera(phone).await;
    // 6.1.9: this owner wants offline alarms by SMS too.
    let n = json!({"kinds": {"camera_offline": {"sms": true, "push": false, "app": true}}});
    owner
        .call::<Value, Value>(Method::PUT, "/api/v1/me/notifications", Some(&n))
        .await
        .unwrap();
    let mut stream = AlarmStream::open(&c, &owner).await;
    dev.shutdown.trigger();
    stream
        .wait("camera_offline", Duration::from_secs(20))
        .await
        .expect("an offline alarm after the device's link is gone");
    let off = alarms(&owner, "?kind=camera_offline").await;
    assert_eq!(off.alarms.len(), 1);
    assert_eq!(off.alarms[0].camera.as_deref(), Some(id.device_id.as_str()));
    wait_sms(&c, phone, "went offline").await;
    let _back = Scripted::start(&c, &id, 0).await;
    stream
        .wait("camera_online", Duration::from_secs(20))
        .await
        .expect("an online alarm when it is back");
    assert_eq!(alarms(&owner, "?kind=camera_online").await.alarms.len(), 1);
    c.stop().await;
}

/// Runs `peercam cu ... ARGS` as `user`; returns (success, stdout, stderr).
async fn cli(c: &Cluster, user: &str, args: &[&str]) -> (bool, String, String) {
    c.cu_cli(env!("CARGO_BIN_EXE_peercam"), user, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_cli_alarms_strategy_trip_reset_and_templates() {
    let phone = "+15550880006";
    let (c, id, dev, _owner) = one_camera(phone).await;
    let cam = id.device_id.to_string();

    let file = c.path().join("strategy.json");
    std::fs::write(
        &file,
        r#"{"armed": true, "sources": ["input"], "cooldown_s": 9}"#,
    )
    .unwrap();
    let (ok, out, err) = cli(
        &c,
        phone,
        &["alarms", "strategy", "set", &cam, file.to_str().unwrap()],
    )
    .await;
    assert!(ok && out.contains("applied by the camera"), "{out}{err}");
    dev.wait_for(
        "set_alarm_strategy",
        |c| matches!(c, DeviceCommand::SetAlarmStrategy { strategy } if strategy.cooldown_s == 9),
    )
    .await;
    std::fs::write(&file, r#"{"armed": true, "sensitivity": 0}"#).unwrap();
    let (ok, _, err) = cli(
        &c,
        phone,
        &["alarms", "strategy", "set", &cam, file.to_str().unwrap()],
    )
    .await;
    assert!(!ok && err.contains("sensitivity"), "{err}");

    let (ok, out, err) = cli(&c, phone, &["alarms", "trip", &cam, "3"]).await;
    assert!(ok, "{out}{err}");
    dev.wait_for("trip_input", |c| {
        matches!(
            c,
            DeviceCommand::TripInput {
                input: 3,
                active: true
            }
        )
    })
    .await;

    assert!(matches!(
        dev.alarm(motion("cli-1")).await,
        PlatformAnswer::Stored { .. }
    ));
    let (ok, out, err) = cli(&c, phone, &["--json", "alarms", "list", "--kind", "motion"]).await;
    assert!(ok, "{err}");
    let list: AlarmList = serde_json::from_str(&out).unwrap();
    assert_eq!(list.alarms.len(), 1);
    let aid = list.alarms[0].id.to_string();
    let (ok, out, _) = cli(&c, phone, &["alarms", "show", &aid]).await;
    assert!(
        ok && out.contains("motion") && out.contains("active"),
        "{out}"
    );
    let (ok, out, _) = cli(&c, phone, &["alarms", "reset", &aid]).await;
    assert!(ok && out.contains("reset"), "{out}");
    dev.wait_for("reset_alarm", |c| {
        matches!(c, DeviceCommand::ResetAlarm { .. })
    })
    .await;

    let (ok, out, err) = cli(
        &c,
        phone,
        &[
            "alarms",
            "templates",
            "--kind",
            "motion",
            "--text",
            "{camera} moved",
            "--preview",
        ],
    )
    .await;
    assert!(
        ok && out.contains("gsm7") && out.contains("1 SMS"),
        "{out}{err}"
    );
    let (ok, _, err) = cli(
        &c,
        phone,
        &[
            "alarms",
            "templates",
            "--kind",
            "motion",
            "--text",
            "{camra}",
        ],
    )
    .await;
    assert!(!ok && err.contains("templates.motion"), "{err}");
    let (ok, out, _) = cli(
        &c,
        phone,
        &[
            "alarms",
            "templates",
            "--kind",
            "motion",
            "--text",
            "{camera}!",
        ],
    )
    .await;
    assert!(ok && out.contains("{camera}!"), "{out}");
    let (ok, out, _) = cli(&c, phone, &["alarms", "--help"]).await;
    assert!(
        ok && out.contains("strategy") && out.contains("trip"),
        "{out}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_web_client_alarms_live_snapshot_and_reset() {
    let Some(dir) =
        peercam_test::web::web_tests_or_skip("h626_8_8_web_client_alarms_live_snapshot_and_reset")
    else {
        return;
    };
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let dev = std::sync::Arc::new(Scripted::start(&c, &id, 0).await);
    let phone = "+15550880007";
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    assert!(matches!(
        dev.alarm(motion("web-0")).await,
        PlatformAnswer::Stored { .. }
    ));
    // A new alarm every second while the page is open: one arrives on its live stream.
    let raising = {
        let dev = dev.clone();
        tokio::spawn(async move {
            for i in 1..60 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                dev.alarm(motion(&format!("web-{i}"))).await;
            }
        })
    };
    let r = peercam_test::web::scenario(
        &dir,
        "alarms.mjs",
        &[
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_WEB_USER", phone.to_owned()),
            ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
        ],
        None,
    )
    .await;
    raising.abort();
    let reset = r["reset"].as_i64().unwrap();
    let view = owner.alarm(reset).await.unwrap();
    assert_eq!(view.state.as_str(), "reset");
    let camera_id = view.alarm_id.clone();
    dev.wait_for(
        "reset_alarm from the page",
        |c| matches!(c, DeviceCommand::ResetAlarm { id: Some(i) } if *i == camera_id),
    )
    .await;
    c.stop().await;
}

/// The environment of a browser scenario for `phone`, plus `extra`.
fn web_env(
    c: &Cluster,
    phone: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PEERCAM_WEB_URL", c.api.clone()),
        ("PEERCAM_WEB_USER", phone.to_owned()),
        ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
    ];
    env.extend_from_slice(extra);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_web_client_strategy_editor_zone_reaches_camera() {
    let Some(dir) = peercam_test::web::web_tests_or_skip(
        "h626_8_8_web_client_strategy_editor_zone_reaches_camera",
    ) else {
        return;
    };
    let phone = "+15550880009";
    let (c, id, dev, owner) = one_camera(phone).await;
    let cam = id.device_id.to_string();
    let env = web_env(&c, phone, &[("PEERCAM_WEB_DEVICE", cam.clone())]);
    let r = peercam_test::web::scenario(&dir, "alarm-strategy.mjs", &env, None).await;
    // The zone drawn from 10 %, 20 % to 50 %, 60 % of the picture (pixels round a little).
    let zone: Zone = serde_json::from_value(r["zone"].clone()).unwrap();
    let near = |v: u16, want: u16| v.abs_diff(want) <= 10;
    assert!(
        near(zone.x, 100) && near(zone.y, 200) && near(zone.w, 400) && near(zone.h, 400),
        "{zone:?}"
    );
    assert!(r["refusal"].as_str().unwrap().contains("1000"), "{r}");
    let saved = owner.alarm_strategy(&cam).await.unwrap();
    let s = &saved.strategy;
    assert!(saved.applied && s.armed, "{saved:?}");
    assert_eq!(s.zones, vec![zone]);
    assert_eq!(s.sources, vec![AlarmKind::Motion, AlarmKind::VideoLoss]);
    assert!(s.linkage.sms && !s.linkage.snapshot && s.linkage.record && s.linkage.push);
    assert_eq!(s.cooldown_s, 12);
    assert_eq!(s.schedule.len(), 1);
    assert_eq!(
        (
            s.schedule[0].days,
            s.schedule[0].start_min,
            s.schedule[0].end_min
        ),
        (0x3f, 8 * 60, 18 * 60)
    );
    dev.wait_for("the strategy from the page", |c| {
        matches!(c, DeviceCommand::SetAlarmStrategy { strategy } if strategy.zones == vec![zone] && strategy.cooldown_s == 12)
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_web_client_strategy_saved_pending_while_camera_offline() {
    let Some(dir) = peercam_test::web::web_tests_or_skip(
        "h626_8_8_web_client_strategy_saved_pending_while_camera_offline",
    ) else {
        return;
    };
    let phone = "+15550880012";
    let (c, id, dev, owner) = one_camera(phone).await;
    dev.shutdown.trigger();
    c.wait_online(&id.device_id, false, Duration::from_secs(10))
        .await
        .unwrap();
    let cam = id.device_id.to_string();
    let env = web_env(
        &c,
        phone,
        &[
            ("PEERCAM_WEB_DEVICE", cam.clone()),
            ("PEERCAM_WEB_OFFLINE", "1".to_owned()),
        ],
    );
    let r = peercam_test::web::scenario(&dir, "alarm-strategy.mjs", &env, None).await;
    let zone: Zone = serde_json::from_value(r["zone"].clone()).unwrap();
    let saved = owner.alarm_strategy(&cam).await.unwrap();
    assert!(
        !saved.applied && saved.strategy.zones == vec![zone],
        "{saved:?}"
    );
    // Back online, the camera gets what the page saved.
    let back = Scripted::start(&c, &id, 0).await;
    back.wait_for("the pending strategy from the page", |c| {
        matches!(c, DeviceCommand::SetAlarmStrategy { strategy } if strategy.zones == vec![zone])
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_web_client_templates_preview_and_notifications() {
    let Some(dir) = peercam_test::web::web_tests_or_skip(
        "h626_6_1_9_web_client_templates_preview_and_notifications",
    ) else {
        return;
    };
    let c = Cluster::start(1).await.unwrap();
    let phone = "+15550880010";
    let owner = c.owner(phone).await.unwrap();
    let env = web_env(&c, phone, &[]);
    let r = peercam_test::web::scenario(&dir, "alarm-messages.mjs", &env, None).await;
    assert!(r["segments"].as_u64().unwrap() >= 2, "{r}");
    assert!(r["preview"].as_str().unwrap().contains("UCS-2"), "{r}");
    let templates = owner.alarm_templates().await.unwrap().templates;
    assert_eq!(templates["motion"], r["template"].as_str().unwrap());
    let n: Value = owner
        .call::<(), Value>(Method::GET, "/api/v1/me/notifications", None)
        .await
        .unwrap();
    assert_eq!(
        n["kinds"]["motion"],
        json!({"sms": false, "push": true, "app": true})
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_web_client_alarm_filters_paging_and_play_from_before() {
    let Some(dir) = peercam_test::web::web_tests_or_skip(
        "h626_8_8_web_client_alarm_filters_paging_and_play_from_before",
    ) else {
        return;
    };
    let phone = "+15550880011";
    let (c, id, dev, owner) = one_camera(phone).await;
    let cam = id.device_id.to_string();
    // More motion alarms than a page holds, then three input alarms a minute apart.
    for i in 0..55u64 {
        let mut a = motion(&format!("list-{i}"));
        a.at_ms += i * 1000;
        assert!(matches!(dev.alarm(a).await, PlatformAnswer::Stored { .. }));
    }
    for i in 0..3u64 {
        let a = Alarm {
            id: format!("input-{i}"),
            kind: AlarmKind::Input,
            at_ms: 1_796_612_700_000 + i * 60_000,
            input: Some(1),
            zone: None,
            level: 100,
            detail: "door".into(),
        };
        assert!(matches!(dev.alarm(a).await, PlatformAnswer::Stored { .. }));
    }
    // The camera's alarms (the account's own, such as sign-ins, are listed too).
    let all = alarms(&owner, &format!("?camera={cam}&limit=500"))
        .await
        .alarms;
    assert_eq!(all.len(), 58);
    let oldest = all.last().unwrap().id;
    let env = web_env(
        &c,
        phone,
        &[
            ("PEERCAM_WEB_DEVICE", cam.clone()),
            ("PEERCAM_WEB_OLDEST", oldest.to_string()),
        ],
    );
    let r = peercam_test::web::scenario(&dir, "alarm-list.mjs", &env, None).await;
    let paged = (
        r["paged"][0].as_u64().unwrap(),
        r["paged"][1].as_u64().unwrap(),
    );
    assert!(paged.0 == 50 && paged.1 >= 58, "{r}");
    assert_eq!(r["inputs"], 3, "{r}");
    let played = owner
        .alarm(r["play_alarm"].as_i64().unwrap())
        .await
        .unwrap();
    assert_eq!(played.kind, AlarmKind::Input);
    assert_eq!(
        played.alarm_id, "input-2",
        "the newest input alarm is first"
    );
    assert_eq!(r["cursor"].as_u64().unwrap(), played.at_ms - 5000, "{r}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_alarm_sms_rate_limited_per_user() {
    let phone = "+15550880008";
    let (c, id, dev, owner) = one_camera(phone).await;
    let cam = id.device_id.to_string();
    let strategy = json!({"armed": true, "sources": ["motion"],
        "linkage": {"sms": true, "snapshot": false, "record": false}});
    owner
        .call::<Value, Value>(
            Method::PUT,
            &format!("/api/v1/devices/{cam}/alarm-strategy"),
            Some(&strategy),
        )
        .await
        .unwrap();
    // 30 distinct alarms (a camera whose cooldown is off): every one is stored, at most 20
    // SMS an hour go to one user.
    for i in 0..30 {
        let answer = dev.alarm(motion(&format!("burst-{i}"))).await;
        assert!(matches!(answer, PlatformAnswer::Stored { .. }));
    }
    wait_sms(&c, phone, "Motion on").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = sms_to(&c, phone)
        .iter()
        .filter(|t| t.starts_with("Motion on"))
        .count();
    assert_eq!(sent, 20, "the per-user limit");
    assert_eq!(
        alarms(&owner, "?kind=motion&limit=100").await.alarms.len(),
        30
    );
    let page = alarms(&owner, "?kind=motion&limit=25").await;
    let next = page.next.unwrap();
    let rest = alarms(&owner, &format!("?kind=motion&limit=25&before={next}")).await;
    assert_eq!(
        (page.alarms.len(), rest.alarms.len(), rest.next),
        (25, 5, None)
    );
    c.stop().await;
}
