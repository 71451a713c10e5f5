//! H.626.4 6.1.9 alarm messages over loopback: templates (refusals naming the field, the
//! preview with encoding and SMS segments), notification settings per kind, and the
//! platform's own alarms (login, logout) delivered per those settings.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::support::scripted;

use std::time::Duration;

use peercam_signal::cm_alarm::{AlarmList, AlarmTemplates, NotificationSettings, TemplatePreview};
use peercam_test::Cluster;
use reqwest::Method;
use scripted::{AlarmStream, Scripted, raw, wait_sms};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_template_refused_names_field() {
    let c = Cluster::start(0).await.unwrap();
    let owner = c.owner("+15550619001").await.unwrap();
    let path = "/api/v1/me/alarm-templates";
    let bad = json!({"templates": {"motion": "On {camera} at {tme}", "tamper": "x }"}});
    let (status, text) = raw(&c, &owner, "PUT", path, Some(&bad)).await;
    assert_eq!(status, 422, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["templates.motion", "templates.tamper"]);
    assert!(
        text.contains("{tme}") && text.contains("position 15"),
        "{text}"
    );
    let (status, text) = raw(
        &c,
        &owner,
        "PUT",
        path,
        Some(&json!({"templates": {"fire": "x"}})),
    )
    .await;
    assert!(status == 422 && text.contains("templates.fire"), "{text}");
    let (status, text) = raw(&c, &owner, "PUT", path, Some(&json!({"templats": {}}))).await;
    assert!(status == 422 && text.contains("templats"), "{text}");
    // Nothing was saved: the defaults stand, for every kind.
    let t: AlarmTemplates = owner.call::<(), _>(Method::GET, path, None).await.unwrap();
    assert_eq!(t.templates.len(), peercam_alarm::AlarmKind::ALL.len());
    assert!(t.templates["motion"].starts_with("Motion on {camera}"));
    // A good one is kept; the others stay default.
    let good = json!({"templates": {"motion": "{{!}} {camera}: {kind}"}});
    let t: AlarmTemplates = owner.call(Method::PUT, path, Some(&good)).await.unwrap();
    assert_eq!(t.templates["motion"], "{{!}} {camera}: {kind}");

    // The preview: rendered text, encoding and segments; a refusal names `template`.
    let preview = "/api/v1/me/alarm-templates/preview";
    let p: TemplatePreview = owner
        .call(
            Method::POST,
            preview,
            Some(&json!({"kind": "motion", "template": "{camera} [{kind}]"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (p.text.as_str(), p.encoding.as_str()),
        ("Front door [motion]", "gsm7")
    );
    assert_eq!((p.units, p.segments), (21, 1));
    let p: TemplatePreview = owner
        .call(
            Method::POST,
            preview,
            Some(&json!({"kind": "tamper", "template": "摄像头 {camera}"})),
        )
        .await
        .unwrap();
    assert_eq!((p.encoding.as_str(), p.segments), ("ucs2", 1));
    let long = "x".repeat(200);
    let p: TemplatePreview = owner
        .call(
            Method::POST,
            preview,
            Some(&json!({"kind": "motion", "template": long})),
        )
        .await
        .unwrap();
    assert_eq!(p.segments, 2);
    let (status, text) = raw(
        &c,
        &owner,
        "POST",
        preview,
        Some(&json!({"kind": "motion", "template": "{x"})),
    )
    .await;
    assert!(status == 422 && text.contains("\"template\""), "{text}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_login_and_logout_alarms_per_notification_settings() {
    let c = Cluster::start(0).await.unwrap();
    let phone = "+15550619002";
    let owner = c.owner(phone).await.unwrap();
    let path = "/api/v1/me/notifications";
    let n: NotificationSettings = owner.call::<(), _>(Method::GET, path, None).await.unwrap();
    assert!(!n.kinds["login"].sms && n.kinds["login"].app && n.kinds["motion"].sms);
    let (status, text) = raw(
        &c,
        &owner,
        "PUT",
        path,
        Some(&json!({"kinds": {"lightning": {"sms": true, "push": true, "app": true}}})),
    )
    .await;
    assert!(status == 422 && text.contains("kinds.lightning"), "{text}");
    let (status, text) = raw(
        &c,
        &owner,
        "PUT",
        path,
        Some(&json!({"kinds": {"login": {"sms": true}}})),
    )
    .await;
    assert!(status == 422 && text.contains("push"), "{text}");
    let want = json!({"kinds": {"login": {"sms": true, "push": false, "app": true}}});
    let n: NotificationSettings = owner.call(Method::PUT, path, Some(&want)).await.unwrap();
    assert!(n.kinds["login"].sms && !n.kinds["logout"].sms);

    // 6.1.9: the next login is an alarm of the account, in the app and by SMS.
    let mut stream = AlarmStream::open(&c, &owner).await;
    let again = c
        .client()
        .login(phone, "correct horse battery")
        .await
        .unwrap()
        .0;
    stream
        .wait("\"kind\":\"login\"", Duration::from_secs(10))
        .await
        .expect("the login reaches the app");
    wait_sms(&c, phone, "Someone signed in").await;
    again.logout().await.unwrap();
    stream
        .wait("\"kind\":\"logout\"", Duration::from_secs(10))
        .await
        .expect("the logout reaches the app");
    let list: AlarmList = owner
        .call::<(), _>(Method::GET, "/api/v1/alarms?kind=login", None)
        .await
        .unwrap();
    assert!(
        list.alarms.len() >= 2,
        "the first login and this one: {list:?}"
    );
    assert!(list.alarms.iter().all(|a| a.camera.is_none()));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_storage_full_and_upgrade_result_alarms() {
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let dev = Scripted::start(&c, &id, 0).await;
    let owner = c.owner("+15550619003").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let cam = id.device_id.to_string();
    let mut stream = AlarmStream::open(&c, &owner).await;
    // The camera's SD card reports its store full: one alarm per day, however often asked.
    for _ in 0..2 {
        owner
            .call::<(), Value>(
                Method::GET,
                &format!("/api/v1/devices/{cam}/recording?recorder=sd"),
                None,
            )
            .await
            .unwrap();
    }
    stream
        .wait("storage_full", Duration::from_secs(10))
        .await
        .expect("a storage-full alarm");
    let full: AlarmList = owner
        .call::<(), _>(Method::GET, "/api/v1/alarms?kind=storage_full", None)
        .await
        .unwrap();
    assert_eq!(full.alarms.len(), 1);
    assert_eq!(full.alarms[0].detail, "SD card");
    // Back with another software version (8.11.1): the upgrade took effect.
    dev.shutdown.trigger();
    c.wait_online(&id.device_id, false, Duration::from_secs(10))
        .await
        .unwrap();
    let _new = Scripted::start_version(&c, &id, 0, "scripted-2").await;
    stream
        .wait("upgrade_result", Duration::from_secs(10))
        .await
        .expect("an upgrade-result alarm");
    let up: AlarmList = owner
        .call::<(), _>(Method::GET, "/api/v1/alarms?kind=upgrade_result", None)
        .await
        .unwrap();
    assert_eq!(up.alarms[0].detail, "now scripted-2 (was scripted-1)");
    c.stop().await;
}

/// 6.1.9 storage full, reported by the recorder itself (`device_request` `storage_full`):
/// taken from the camera (its SD card) and from an NVR it is attached to, refused
/// `forbidden` from any other device, even one of the same owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_storage_full_report_only_from_the_camera_or_its_recorder() {
    use peercam_signal::cmd::{DeviceRequest, MAX_STORAGE_DETAIL, PlatformAnswer};
    use peercam_signal::ps::DeviceKind;
    use peercam_signal::refusal::Refusal;

    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(2).await.unwrap();
    let (cam_id, other_id) = (&ids[0], &ids[1]);
    let nvr_id = peercam_test::new_identity(DeviceKind::Nvr);
    let stray_nvr_id = peercam_test::new_identity(DeviceKind::Nvr);
    c.provision_these(&[nvr_id.clone(), stray_nvr_id.clone()])
        .await
        .unwrap();
    let cam = Scripted::start(&c, cam_id, 0).await;
    let other = Scripted::start(&c, other_id, 0).await;
    let nvr = Scripted::start(&c, &nvr_id, 0).await;
    let stray_nvr = Scripted::start(&c, &stray_nvr_id, 0).await;
    let owner = c.owner("+15550619004").await.unwrap();
    for id in [cam_id, other_id, &nvr_id, &stray_nvr_id] {
        c.bind(&owner, id).await.unwrap();
    }
    let camera = cam_id.device_id.clone();
    owner
        .attach_camera(nvr_id.device_id.as_str(), camera.as_str())
        .await
        .unwrap();
    let report = |detail: &str| DeviceRequest::storage_full(camera.clone(), detail);
    let forbidden = |a: &PlatformAnswer| {
        matches!(
            a,
            PlatformAnswer::Refused {
                code: Refusal::Forbidden,
                ..
            }
        )
    };

    // Neither the camera nor a recorder of it: another camera, an NVR it is not attached to.
    let a = other.request(report("disk full, oldest deleted")).await;
    assert!(forbidden(&a), "another camera: {a:?}");
    let a = stray_nvr.request(report("disk full, oldest deleted")).await;
    assert!(forbidden(&a), "an NVR the camera is not attached to: {a:?}");
    // A detail beyond the bound is refused, not cut.
    let long = DeviceRequest::StorageFull {
        camera: camera.clone(),
        detail: "x".repeat(MAX_STORAGE_DETAIL + 1),
    };
    let a = nvr.request(long).await;
    assert!(
        matches!(
            a,
            PlatformAnswer::Refused {
                code: Refusal::BadRequest,
                ..
            }
        ),
        "{a:?}"
    );
    let none = owner.alarms("kind=storage_full").await.unwrap();
    assert!(none.alarms.is_empty(), "{:?}", none.alarms);

    // The camera's own SD card, then its NVR: one alarm each, with the recorder's reason;
    // nobody read a recording state.
    let mut stream = AlarmStream::open(&c, &owner).await;
    let a = cam.request(report("disk full, oldest deleted")).await;
    let PlatformAnswer::Stored { id: sd_alarm } = a else {
        panic!("the camera's report: {a:?}")
    };
    stream
        .wait("storage_full", Duration::from_secs(10))
        .await
        .expect("the SD card's storage-full alarm reaches the app");
    let a = nvr.request(report("disk full, oldest deleted")).await;
    let PlatformAnswer::Stored { id: nvr_alarm } = a else {
        panic!("the NVR's report: {a:?}")
    };
    assert_ne!(sd_alarm, nvr_alarm);
    // Again the same day: answered the same, stored once.
    let a = nvr.request(report("quota full, recording stopped")).await;
    assert_eq!(a, PlatformAnswer::Stored { id: nvr_alarm });
    let full = owner.alarms("kind=storage_full").await.unwrap();
    let mut details: Vec<&str> = full.alarms.iter().map(|a| a.detail.as_str()).collect();
    details.sort_unstable();
    assert_eq!(
        details,
        [
            "SD card: disk full, oldest deleted".to_owned(),
            format!("recorder {}: disk full, oldest deleted", nvr_id.device_id),
        ]
    );
    assert!(
        full.alarms
            .iter()
            .all(|a| a.camera.as_deref() == Some(camera.as_str())),
        "{:?}",
        full.alarms
    );
    c.stop().await;
}
