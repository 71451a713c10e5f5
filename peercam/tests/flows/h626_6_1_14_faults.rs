//! Network management (H.626.4 6.1.14) end to end: a camera that stops raises a
//! `camera_offline` fault, the operator's webhook receives it (after a refused first attempt,
//! retried), `peercam admin faults` lists it and acknowledges it, and the camera's return
//! clears it; an SCU node lost raises `scu_node_lost`; the operator's web page shows a fault
//! and acknowledges it (Chromium).
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use peercam_signal::cm::FaultView;
use peercam_test::Cluster;
use peercam_test::web::{scenario, web_tests_or_skip};
use serde_json::Value;
use tokio::sync::mpsc;

/// An operator's webhook receiver on loopback: answers the first POST 503 (the CMU must
/// retry), then 200; every body received goes to the channel.
async fn webhook() -> (SocketAddr, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let (tx, seen) = (tx.clone(), seen.clone());
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let _ = tx.send(v);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, rx)
}

/// The next webhook body for `event` on `subject` (others are skipped), within 15 s.
async fn hook_for(rx: &mut mpsc::UnboundedReceiver<Value>, event: &str, subject: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let v = rx.recv().await.unwrap();
            if v["event"] == event && v["fault"]["subject"] == subject {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no webhook {event} for {subject}"))
}

/// The active fault of `kind` on `subject`, once there is one (within 15 s).
async fn active_fault(c: &Cluster, kind: &str, subject: &str) -> FaultView {
    for _ in 0..150 {
        let l = c.admin.faults(false).await.unwrap();
        if let Some(f) = l
            .into_iter()
            .find(|f| f.kind == kind && f.subject == subject)
        {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} fault for {subject}");
}

/// The network operations centre's phone of the alert SMS test.
const NOC_PHONE: &str = "+15550614999";

/// `peercam admin ...` as the operator.
async fn admin_cli(c: &Cluster, args: &[&str]) -> String {
    let (ok, out, err) = c.admin_cli(env!("CARGO_BIN_EXE_peercam"), args).await;
    assert!(ok, "peercam admin {args:?}: {err}");
    out
}

/// 6.1.14: a camera killed raises a fault (webhook retried, CLI lists and acknowledges it);
/// its return clears it; an SCU node lost is a fault too; the operator's phone is paged by SMS
/// for the MTU and the node, not for the camera.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_1_14_camera_fault_raised_and_cleared() {
    let (hook, mut hooks) = webhook().await;
    let c = Cluster::start_with(1, |cfg| {
        cfg.faults.webhook_url = Some(format!("http://{hook}/hook"));
        cfg.faults.webhook_backoff_ms = 100;
        cfg.faults.alert_sms = vec![NOC_PHONE.parse().unwrap()];
    })
    .await
    .unwrap();
    let cam = c.provision(1).await.unwrap().remove(0);
    let id = cam.device_id.to_string();
    let (_pu, sd) = c.start_pu_online(&cam, 0).await.unwrap();
    assert!(c.admin.faults(false).await.unwrap().is_empty());

    // The camera dies.
    sd.trigger();
    c.wait_online(&cam.device_id, false, Duration::from_secs(15))
        .await
        .unwrap();
    let f = active_fault(&c, "camera_offline", &id).await;
    assert_eq!(f.state, "open");
    let raised = hook_for(&mut hooks, "raised", &id).await;
    assert_eq!(raised["fault"]["id"], f.id);
    assert_eq!(raised["fault"]["kind"], "camera_offline");

    // The operator's tools: list (JSON), acknowledge.
    let listed: Vec<FaultView> =
        serde_json::from_str(&admin_cli(&c, &["--json", "faults"]).await).unwrap();
    assert!(listed.iter().any(|x| x.id == f.id && x.state == "open"));
    let text = admin_cli(&c, &["faults", "ack", &f.id.to_string()]).await;
    assert!(text.contains("acknowledged"), "{text}");
    hook_for(&mut hooks, "acknowledged", &id).await;
    let acked = active_fault(&c, "camera_offline", &id).await;
    assert_eq!(acked.state, "acknowledged");
    assert!(acked.acked_by.is_some());

    // It comes back: the fault clears by itself.
    let (_pu2, _sd2) = c.start_pu_online(&cam, 0).await.unwrap();
    let cleared = hook_for(&mut hooks, "cleared", &id).await;
    assert_eq!(cleared["fault"]["state"], "cleared");
    assert!(
        c.admin
            .faults(false)
            .await
            .unwrap()
            .iter()
            .all(|x| x.subject != id)
    );
    let all = c.admin.faults(true).await.unwrap();
    let old = all.iter().find(|x| x.id == f.id).unwrap();
    assert_eq!(old.state, "cleared");
    assert!(old.cleared_at.is_some());

    // An MTU that dies is a fault too.
    let mtu = peercam_test::new_identity(peercam_signal::ps::DeviceKind::Mtu);
    c.admin
        .provision(vec![peercam_test::provision_record(&mtu)])
        .await
        .unwrap();
    let (_m, msd) = c.start_mtu_with(&mtu, 0, |_| {}).await.unwrap();
    c.wait_online(&mtu.device_id, true, Duration::from_secs(15))
        .await
        .unwrap();
    msd.trigger();
    let lost_mtu = active_fault(&c, "mtu_lost", mtu.device_id.as_str()).await;

    // Resolve it (the history keeps it), then lose the SCU node.
    let resolved = c.admin.fault_resolve(f.id).await.unwrap();
    assert_eq!(resolved.state, "resolved");
    c.scu_shutdowns[0].trigger();
    let lost = active_fault(&c, "scu_node_lost", "scu-1").await;
    assert_eq!(lost.state, "open");
    // The operator's phone was paged for the MTU and the SCU node, never for the camera
    // (a camera offline is its owner's alarm, not the network operations centre's).
    let want = [
        format!(
            "peercam fault {} raised: mtu_lost {}",
            lost_mtu.id, mtu.device_id
        ),
        format!("peercam fault {} raised: scu_node_lost scu-1", lost.id),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let texts = loop {
        let texts = peercam_cmu::sms::messages_to(&c.path().join("sms-outbox"), NOC_PHONE)
            .unwrap_or_default();
        if want
            .iter()
            .all(|w| texts.iter().any(|t| t.starts_with(w.as_str())))
            || tokio::time::Instant::now() > deadline
        {
            break texts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for w in &want {
        assert!(
            texts.iter().any(|t| t.starts_with(w.as_str())),
            "{w} in {texts:?}"
        );
    }
    assert!(
        !texts.iter().any(|t| t.contains("camera_offline")),
        "{texts:?}"
    );
    // Only operators see faults.
    let owner = c.owner("+15550614101").await.unwrap();
    assert!(owner.faults(false).await.is_err());
    c.stop().await;
}

/// 6.1.14 in the operator's web page: the fault of a stopped camera is listed and
/// acknowledged in Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_14_operator_page_acknowledges_a_fault() {
    let Some(dir) = web_tests_or_skip("h626_6_1_14_operator_page_acknowledges_a_fault") else {
        return;
    };
    let c = Cluster::start(1).await.unwrap();
    let cam = c.provision(1).await.unwrap().remove(0);
    let id = cam.device_id.to_string();
    let (_pu, sd) = c.start_pu_online(&cam, 0).await.unwrap();
    sd.trigger();
    let f = active_fault(&c, "camera_offline", &id).await;
    let password = std::fs::read_to_string(c.path().join("admin.password")).unwrap();
    let mut env = vec![
        ("PEERCAM_WEB_URL", c.api.clone()),
        ("PEERCAM_WEB_USER", "admin".to_owned()),
        ("PEERCAM_WEB_PASSWORD", password.trim().to_owned()),
        ("PEERCAM_FAULT_SUBJECT", id.clone()),
    ];
    if let Ok(shots) = std::env::var("PEERCAM_SHOTS") {
        env.push(("PEERCAM_SHOTS", shots));
    }
    let r = scenario(&dir, "faults.mjs", &env, None).await;
    assert_eq!(r["fault"], f.id);
    let after = active_fault(&c, "camera_offline", &id).await;
    assert_eq!(after.state, "acknowledged");
    c.stop().await;
}

/// 6.1.14: an NVR's health report says its store is full (below its free-space floor): a
/// `storage_full` fault; restarted with a floor it meets, its next report clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_1_14_recorder_storage_full_raised_and_cleared() {
    let c = Cluster::start(1).await.unwrap();
    let nvr = peercam_test::new_identity(peercam_signal::ps::DeviceKind::Nvr);
    c.admin
        .provision(vec![peercam_test::provision_record(&nvr)])
        .await
        .unwrap();
    let id = nvr.device_id.to_string();
    let (_run, sd) = c
        .start_nvr_with(&nvr, 0, |cfg| {
            cfg.health_report_s = 1;
            cfg.min_free_mb = 1 << 30; // a PiB: no disk has that free
        })
        .await
        .unwrap();
    let f = active_fault(&c, "storage_full", &id).await;
    assert!(f.detail.contains("bytes free"), "{}", f.detail);
    assert!(
        c.admin
            .faults(false)
            .await
            .unwrap()
            .iter()
            .all(|x| x.kind != "storage_write_errors")
    );
    sd.trigger();
    c.wait_online(&nvr.device_id, false, Duration::from_secs(15))
        .await
        .unwrap();
    let (_run2, _sd2) = c
        .start_nvr_with(&nvr, 0, |cfg| {
            cfg.health_report_s = 1;
            cfg.min_free_mb = 0;
        })
        .await
        .unwrap();
    for _ in 0..150 {
        let active = c.admin.faults(false).await.unwrap();
        if active.iter().all(|x| x.subject != id) {
            let all = c.admin.faults(true).await.unwrap();
            let old = all.iter().find(|x| x.id == f.id).unwrap();
            assert_eq!(old.state, "cleared");
            // The restart raised and cleared nvr_offline too.
            assert!(
                all.iter()
                    .any(|x| x.kind == "nvr_offline" && x.subject == id && x.state == "cleared")
            );
            c.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the NVR's faults did not clear: {:?}",
        c.admin.faults(false).await.unwrap()
    );
}
