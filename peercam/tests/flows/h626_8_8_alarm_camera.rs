//! The camera side of alarms (H.626.4 8.8) end to end over real sockets: the PU raises
//! alarms and sends them up PU -> SCU -> CMU as `device_request` `alarm`; alarms raised while
//! the platform is unreachable are kept (across a restart) and go up once the camera
//! registers.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_signal::alarm::engine::Trigger;
use peercam_signal::alarm::{AlarmKind, AlarmStrategy};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_test::Cluster;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn arm(alarms: &peercam_pu::alarm::Alarms) {
    let strategy = AlarmStrategy {
        armed: true,
        sources: vec![AlarmKind::Manual],
        cooldown_s: 0,
        ..AlarmStrategy::default()
    };
    let reply = alarms.execute(DeviceCommand::SetAlarmStrategy { strategy }, now_ms());
    assert!(matches!(reply, DeviceReply::Alarms { .. }), "{reply:?}");
}

/// Waits until the platform has answered every queued alarm (`stored`, or refused for good
/// by a CMU that does not store alarms yet: either way it went up and came back).
async fn drained(alarms: &peercam_pu::alarm::Alarms, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while alarms.state().pending > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still pending: {:?}",
            alarms.state()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn h626_8_8_camera_sends_alarms_up_and_keeps_them_while_offline() {
    peercam_test::init_logs();
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let state_dir = c.path().join("pu-alarm.state");
    // First run: the platform is unreachable (nothing listens at that address).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("wss://{}/", l.local_addr().unwrap())
    };
    let (run, sd) = c
        .start_pu_with(&ids[0], 0, |cfg| {
            cfg.scu_url = dead.clone();
            cfg.state_dir = Some(state_dir.clone());
        })
        .await
        .unwrap();
    arm(&run.alarms);
    let first = run
        .alarms
        .trigger(Trigger::new(AlarmKind::Manual), now_ms())
        .unwrap();
    let second = run
        .alarms
        .trigger(Trigger::new(AlarmKind::Manual), now_ms() + 1)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(run.alarms.state().pending, 2, "queued while offline");
    sd.trigger();
    let _ = run.task.await;
    // Second run: the real SCU; the saved queue goes up in order after registering.
    let (run, sd) = c
        .start_pu_with(&ids[0], 0, |cfg| cfg.state_dir = Some(state_dir.clone()))
        .await
        .unwrap();
    let state = run.alarms.state();
    assert_eq!(state.pending, 2, "the queue survived the restart");
    assert_eq!(state.active[0].id, first.id);
    assert_eq!(state.active[1].at_ms, second.at_ms);
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    drained(&run.alarms, Duration::from_secs(15)).await;
    // Online: a new alarm (a fresh id) goes straight up.
    let third = run
        .alarms
        .trigger(Trigger::new(AlarmKind::Manual), now_ms())
        .unwrap();
    assert_ne!(third.id.split('-').next(), first.id.split('-').next());
    drained(&run.alarms, Duration::from_secs(10)).await;
    let (dropped, refused) = run.alarms.lost();
    assert_eq!(dropped, 0);
    eprintln!("alarms refused for good by this CMU: {refused} (0 once the CMU stores alarms)");
    sd.trigger();
    c.stop().await;
}

/// A wrapped ONVIF camera's event service: one PullPoint, whose first pull holds a motion
/// notification.
async fn onvif_events(
    axum::extract::State(cam): axum::extract::State<
        std::sync::Arc<std::sync::Mutex<(String, u32)>>,
    >,
    body: String,
) -> String {
    let mut c = cam.lock().unwrap();
    let base = c.0.clone();
    let answer = if body.contains("<GetCapabilities") {
        format!(
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Events><tt:XAddr>{base}/onvif/events</tt:XAddr></tt:Events></tds:Capabilities></tds:GetCapabilitiesResponse>"
        )
    } else if body.contains("<CreatePullPointSubscription") {
        format!(
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa:Address>{base}/onvif/sub</wsa:Address></tev:SubscriptionReference></tev:CreatePullPointSubscriptionResponse>"
        )
    } else if body.contains("<PullMessages") {
        assert!(body.contains("PullMessagesRequest</wsa:Action>"), "{body}");
        c.1 += 1;
        if c.1 == 1 {
            r#"<tev:PullMessagesResponse><wsnt:NotificationMessage><wsnt:Topic>tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message><tt:Message><tt:Source><tt:SimpleItem Name="Rule" Value="gate"/></tt:Source><tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tev:PullMessagesResponse>"#.into()
        } else {
            "<tev:PullMessagesResponse/>".into()
        }
    } else {
        "<wsnt:RenewResponse/>".into()
    };
    format!(
        r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tev="http://www.onvif.org/ver10/events/wsdl" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:wsa="http://www.w3.org/2005/08/addressing"><s:Body>{answer}</s:Body></s:Envelope>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_wrapped_camera_onvif_event_raises_onvif_alarm() {
    let cam = std::sync::Arc::new(std::sync::Mutex::new((String::new(), 0u32)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    cam.lock().unwrap().0 = format!("http://{addr}");
    let app = axum::Router::new()
        .route("/onvif/device_service", axum::routing::post(onvif_events))
        .route("/onvif/events", axum::routing::post(onvif_events))
        .route("/onvif/sub", axum::routing::post(onvif_events))
        .with_state(cam.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let url = format!("http://{addr}/onvif/device_service");
    let (run, sd) = c
        .start_pu_with(&ids[0], 0, move |cfg| cfg.onvif_url = Some(url))
        .await
        .unwrap();
    let strategy = AlarmStrategy {
        armed: true,
        sources: vec![AlarmKind::Onvif],
        ..AlarmStrategy::default()
    };
    run.alarms
        .execute(DeviceCommand::SetAlarmStrategy { strategy }, now_ms());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let alarm = loop {
        if let Some(a) = run.alarms.state().active.first().cloned() {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "no onvif alarm");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(alarm.kind, AlarmKind::Onvif);
    assert_eq!(
        alarm.detail,
        "tns1:RuleEngine/CellMotionDetector/Motion Rule=gate"
    );
    assert!(cam.lock().unwrap().1 >= 1);
    sd.trigger();
    c.stop().await;
}
