//! H.626.4 6.1.12 fixed-timing snapshots to a phone, over loopback with real sockets: a real
//! CMU, SCU and PU. The schedule is set through the API; the CMU's scheduler asks the camera
//! on time, keeps the JPEG and sends an SMS (the outbox) with a signed link that serves the
//! JPEG while valid; the per-user daily quota stops SMS, not snapshots. The snapshot clock
//! is the CMU's test hook: the test moves it forward instead of waiting hours.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_cmu::SnapshotClock;
use peercam_signal::cm_snapshot::SnapshotScheduleState;
use peercam_test::Cluster;
use reqwest::Method;
use serde_json::{Value, json};

const HOUR: Duration = Duration::from_secs(3600);

fn http(c: &Cluster) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&c.ca_pem).unwrap()])
        .build()
        .unwrap()
}

/// `method path` as `client` with `body`: status and JSON (or Null).
async fn api(
    c: &Cluster,
    client: &peercam_cu::Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = http(c).request(method, format!("{}{path}", c.api));
    if let Some(t) = client.token() {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn outbox(c: &Cluster, phone: &str) -> Vec<String> {
    peercam_cmu::sms::messages_to(&c.path().join("sms-outbox"), phone).unwrap_or_default()
}

/// Waits until `phone` got `n` SMS; all of them.
async fn wait_sms(c: &Cluster, phone: &str, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let texts = outbox(c, phone);
        if texts.len() >= n {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{phone} did not get {n} SMS: {:?}", outbox(c, phone));
}

async fn schedule(c: &Cluster, client: &peercam_cu::Client, cam: &str) -> SnapshotScheduleState {
    let (status, v) = api(
        c,
        client,
        Method::GET,
        &format!("/api/v1/devices/{cam}/snapshot-schedule"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    serde_json::from_value(v).unwrap()
}

/// Waits until `cam` keeps `n` timed snapshots.
async fn wait_kept(c: &Cluster, client: &peercam_cu::Client, cam: &str, n: u32) {
    for _ in 0..200 {
        if schedule(c, client, cam).await.kept >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{cam} did not keep {n} snapshots");
}

/// The link in an SMS text.
fn link_in(text: &str) -> String {
    let at = text.find("https://").unwrap();
    text[at..].split_whitespace().next().unwrap().to_owned()
}

async fn start(clock: &SnapshotClock, quota: u32) -> Cluster {
    let clock = clock.clone();
    Cluster::start_with(1, move |cfg| {
        cfg.snapshot_clock = clock;
        cfg.snapshot_tick_ms = 50;
        cfg.snapshot_sms_per_day = quota;
    })
    .await
    .unwrap()
}

/// [`start`] with the CMU on PostgreSQL; `None` where it is not installed.
async fn start_postgres(clock: &SnapshotClock, quota: u32, test: &str) -> Option<Cluster> {
    let clock = clock.clone();
    Cluster::start_postgres_with(1, test, move |cfg| {
        cfg.snapshot_clock = clock;
        cfg.snapshot_tick_ms = 50;
        cfg.snapshot_sms_per_day = quota;
    })
    .await
    .unwrap()
}

/// Moves `clock` to 01:00 UTC of the next day, so a test's hours stay in one quota day.
fn to_next_morning(clock: &SnapshotClock) {
    let now = clock.now_ms();
    let day = 86_400_000;
    let target = (now / day + 1) * day + 3_600_000;
    clock.advance(Duration::from_millis(target - now));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_12_snapshot_sms_link_serves_jpeg_only_while_valid() {
    let clock = SnapshotClock::default();
    snapshot_sms_link_serves_jpeg_only_while_valid(start(&clock, 48).await, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_12_snapshot_sms_link_serves_jpeg_only_while_valid_postgres() {
    let clock = SnapshotClock::default();
    if let Some(c) = start_postgres(
        &clock,
        48,
        "h626_6_1_12_snapshot_sms_link_serves_jpeg_only_while_valid_postgres",
    )
    .await
    {
        snapshot_sms_link_serves_jpeg_only_while_valid(c, clock).await;
    }
}

async fn snapshot_sms_link_serves_jpeg_only_while_valid(c: Cluster, clock: SnapshotClock) {
    let id = c.provision(1).await.unwrap().remove(0);
    let (_pu, _pu_stop) = c.start_pu_online(&id, 0).await.unwrap();
    let owner = c.owner("+15550612001").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let cam = id.device_id.to_string();
    owner.rename(&cam, "Porch").await.unwrap();
    let path = format!("/api/v1/devices/{cam}/snapshot-schedule");
    let phone = "+15550612999";

    // Refusals name the field (422, the JSON error shape).
    for (body, field) in [
        (json!({"every_min": 30, "phone": "12345"}), "phone"),
        (json!({"every_min": 0, "phone": phone}), "every_min"),
        // 288 a day: more than the 48 SMS a day of the quota.
        (
            json!({"enabled": true, "every_min": 5, "phone": phone}),
            "every_min",
        ),
        (
            json!({"every_min": 30, "phone": phone, "schedule": [{"days": 1, "start_min": 600, "end_min": 500}]}),
            "schedule[0].start_min",
        ),
        (json!({"every_min": 30, "phone": phone, "evry": 1}), "evry"),
    ] {
        let (status, v) = api(&c, &owner, Method::PUT, &path, Some(&body)).await;
        assert_eq!(status, 422, "{body} -> {v}");
        assert!(v["error"].is_string(), "{v}");
        assert!(v.to_string().contains(field), "{body} -> {v}");
    }
    let (status, _) = api(&c, &owner, Method::GET, &path, None).await;
    assert_eq!(status, 404, "nothing saved");

    // Every 30 minutes around the clock: the first is due now.
    let body = json!({"enabled": true, "every_min": 30, "phone": phone, "max_width": 320});
    let (status, v) = api(&c, &owner, Method::PUT, &path, Some(&body)).await;
    assert_eq!(status, 200, "{v}");
    let texts = wait_sms(&c, phone, 1).await;
    assert!(texts[0].starts_with("Porch "), "{texts:?}");
    let link = link_in(&texts[0]);
    assert!(link.starts_with(&format!("{}/s/", c.api)), "{link}");
    let token = link.rsplit('/').next().unwrap().to_owned();
    assert!(token.len() <= 40, "short: {token}");
    let s = schedule(&c, &owner, &cam).await;
    assert_eq!((s.kept, s.sms_today, s.sms_per_day), (1, 1, 48));
    let last = s.last_due_ms.unwrap();
    assert_eq!(s.next_due_ms, Some(last + 30 * 60_000));

    // The link, without a login: the JPEG, private.
    let resp = http(&c).get(&link).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    let jpeg = resp.bytes().await.unwrap();
    assert!(jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]));

    // A tampered token is unknown: 404, the JSON error shape.
    let mut forged = token.clone().into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let resp = http(&c)
        .get(format!("{}/s/{forged}", c.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "no_link");

    // No second SMS before the next due time, however many ticks pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(outbox(&c, phone).len(), 1, "one due time, one SMS");

    // A day later: the link has expired (410); the scheduler, late by a day, takes one
    // snapshot now, not a burst of the 48 missed.
    clock.advance(25 * HOUR);
    let resp = http(&c).get(&link).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 410);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "link_expired");
    let texts = wait_sms(&c, phone, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(outbox(&c, phone).len(), 2, "no burst: {texts:?}");
    let fresh = link_in(&texts[1]);
    assert_ne!(fresh, link);
    assert_eq!(http(&c).get(&fresh).send().await.unwrap().status(), 200);

    // Stopped: no schedule, no more snapshots; the kept one still opens until it expires.
    let (status, _) = api(&c, &owner, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = api(&c, &owner, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    clock.advance(HOUR);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(outbox(&c, phone).len(), 2);
    assert_eq!(http(&c).get(&fresh).send().await.unwrap().status(), 200);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_12_quota_stops_sms_not_snapshots() {
    let clock = SnapshotClock::default();
    to_next_morning(&clock);
    let c = start(&clock, 2).await;
    let ids = c.provision(2).await.unwrap();
    let (_pu0, _s0) = c.start_pu_online(&ids[0], 0).await.unwrap();
    let (_pu1, _s1) = c.start_pu_online(&ids[1], 0).await.unwrap();
    let owner = c.owner("+15550612002").await.unwrap();
    let phone = "+15550612888";
    let cams: Vec<String> = ids.iter().map(|i| i.device_id.to_string()).collect();
    for (i, id) in ids.iter().enumerate() {
        c.bind(&owner, id).await.unwrap();
        let path = format!("/api/v1/devices/{}/snapshot-schedule", cams[i]);
        // Hourly would be 24 a day against a quota of 2: refused.
        let hourly = json!({"enabled": true, "every_min": 60, "phone": phone});
        let (status, v) = api(&c, &owner, Method::PUT, &path, Some(&hourly)).await;
        assert_eq!(status, 422, "{v}");
        assert!(v.to_string().contains("every_min"), "{v}");
        // Twice a day each: two cameras make 4 a day, over the owner's 2.
        let body = json!({"enabled": true, "every_min": 720, "phone": phone});
        let (status, v) = api(&c, &owner, Method::PUT, &path, Some(&body)).await;
        assert_eq!(status, 200, "{v}");
    }
    for cam in &cams {
        wait_kept(&c, &owner, cam, 1).await;
    }
    assert_eq!(wait_sms(&c, phone, 2).await.len(), 2);

    // Twelve hours on (the same UTC day): both cameras take and keep their snapshot, but
    // the quota is used up: no SMS, and the audit log says so.
    clock.advance(12 * HOUR);
    for cam in &cams {
        wait_kept(&c, &owner, cam, 2).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(outbox(&c, phone).len(), 2, "no SMS past the quota");
    let s = schedule(&c, &owner, &cams[0]).await;
    assert_eq!((s.kept, s.sms_today, s.sms_per_day), (2, 2, 2));
    let audit = owner.audit().await.unwrap();
    let timed: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "snapshot.timed")
        .collect();
    assert_eq!(
        timed.iter().filter(|e| e.outcome == "ok").count(),
        2,
        "{timed:?}"
    );
    assert_eq!(
        timed
            .iter()
            .filter(|e| e.outcome == "quota_exceeded")
            .count(),
        2,
        "{timed:?}"
    );

    // The next day the quota is fresh again.
    clock.advance(12 * HOUR);
    assert_eq!(wait_sms(&c, phone, 4).await.len(), 4);
    c.stop().await;
}

async fn cli(c: &Cluster, user: &str, args: &[&str]) -> (bool, String, String) {
    c.cu_cli(env!("CARGO_BIN_EXE_peercam"), user, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_12_cli_snapshots_get_set_off() {
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let (_pu, _pu_stop) = c.start_pu_online(&id, 0).await.unwrap();
    let phone = "+15550612003";
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let cam = id.device_id.to_string();
    let windows = r#"[{"days":31,"start_min":480,"end_min":1080}]"#;
    let set = [
        "snapshots",
        "set",
        &cam,
        "--every-min",
        "60",
        "--phone",
        "+15550612777",
        "--schedule",
        windows,
        "--utc-offset-min",
        "-300",
        "--disabled",
    ];
    let (ok, out, err) = cli(&c, phone, &set).await;
    assert!(
        ok && out.starts_with("off: every 60 min to +15550612777"),
        "{out}{err}"
    );
    let (ok, out, err) = cli(&c, phone, &["--json", "snapshots", "get", &cam]).await;
    assert!(ok, "{err}");
    let s: SnapshotScheduleState = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (s.schedule.every_min, s.schedule.utc_offset_min),
        (60, -300)
    );
    assert_eq!(s.schedule.schedule.len(), 1);
    // A refusal names the field.
    let (ok, _, err) = cli(
        &c,
        phone,
        &[
            "snapshots",
            "set",
            &cam,
            "--every-min",
            "0",
            "--phone",
            "+15550612777",
        ],
    )
    .await;
    assert!(!ok && err.contains("every_min"), "{err}");
    let (ok, out, err) = cli(&c, phone, &["snapshots", "off", &cam]).await;
    assert!(ok && out.contains("stopped"), "{out}{err}");
    let (ok, _, err) = cli(&c, phone, &["snapshots", "get", &cam]).await;
    assert!(!ok && err.contains("no snapshot schedule"), "{err}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_12_mms_carries_the_jpeg_where_the_gateway_can() {
    let c = Cluster::start_with(1, |cfg| {
        cfg.snapshot_tick_ms = 50;
        if let peercam_cmu::SmsConfig::Outbox { mms, .. } = &mut cfg.sms {
            *mms = true;
        }
    })
    .await
    .unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let (_pu, _pu_stop) = c.start_pu_online(&id, 0).await.unwrap();
    let owner = c.owner("+15550612004").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let cam = id.device_id.to_string();
    let phone = "+15550612666";
    let body = json!({"enabled": true, "every_min": 60, "phone": phone});
    let path = format!("/api/v1/devices/{cam}/snapshot-schedule");
    let (status, v) = api(&c, &owner, Method::PUT, &path, Some(&body)).await;
    assert_eq!(status, 200, "{v}");
    let texts = wait_sms(&c, phone, 1).await;
    // The MMS carries the JPEG and still the link.
    assert!(texts[0].contains("/s/"), "{texts:?}");
    let files = peercam_cmu::sms::attachments_to(&c.path().join("sms-outbox"), phone).unwrap();
    assert_eq!(files.len(), 1);
    let jpeg = std::fs::read(&files[0]).unwrap();
    assert!(jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]));
    let served = http(&c)
        .get(link_in(&texts[0]))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.as_ref(), jpeg.as_slice());
    c.stop().await;
}
