//! H.626.4 clause 7 (CMU accounting and charging) and 6.2 (IPC subscription, advertising,
//! statistics): usage is true to the traffic (the relay bytes billed against the bytes a
//! client received through the MTU, the SMS counted against the outbox), invoices in JSON
//! and CSV agree, announcements reach the users they are meant for.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::support::relay;

use std::time::{Duration, Instant};

use peercam_signal::cm_billing::{AnnouncementBody, parse_csv};
use peercam_signal::relay::PathKind;
use peercam_test::Cluster;
use relay::{mtu, relay_url};

/// Sum of `kind` over every account (or `account`'s) in the current period.
async fn used(c: &Cluster, kind: &str, account: Option<i64>) -> u64 {
    c.admin
        .admin_usage(None)
        .await
        .unwrap()
        .iter()
        .filter(|t| t.kind == kind && account.is_none_or(|a| a == t.account))
        .map(|t| t.quantity)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_accounting_relay_bytes_billed_within_2_percent_of_received() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    let owner = c.owner("+15550770001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    let me = owner.me().await.unwrap().id;
    let (_m, _msd, _) = mtu(&c).await;
    let url = relay_url(&owner, &dev).await;
    // A scripted 60 s relayed play: every byte after the PLAY answer is counted.
    let secs: u64 = std::env::var("PEERCAM_RELAY_PLAY_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut tcp = peercam_test::play_raw(&url).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut received: u64 = 0;
    let t = Instant::now();
    let mut keepalive = Instant::now();
    let mut cseq = 10;
    while t.elapsed() < Duration::from_secs(secs) {
        // A player's keep-alive (RFC 2326 12.37: the session times out without requests);
        // its answers (a few dozen bytes) count as received, not as relayed media.
        if keepalive.elapsed() > Duration::from_secs(15) {
            cseq += 1;
            let ping = format!("OPTIONS * RTSP/1.0\r\nCSeq: {cseq}\r\n\r\n");
            tcp.write_all(ping.as_bytes()).await.unwrap();
            keepalive = Instant::now();
        }
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
            Ok(Ok(0)) => panic!("the relay closed the session"),
            Ok(Ok(n)) => received += n as u64,
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("no media for 5 s"),
        }
    }
    drop(tcp);
    // The MTU reports when the session ends.
    let mut billed = 0;
    for _ in 0..100 {
        billed = used(&c, "relay_bytes", Some(me)).await;
        if billed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let diff = billed.abs_diff(received);
    eprintln!("relay bytes: billed {billed}, received {received} in {secs} s");
    assert!(received > 100_000, "{received}");
    assert!(
        diff * 100 <= received * 2,
        "billed {billed} vs received {received}"
    );
    // The relayed seconds are billed too, from the MTU's measure.
    let live = used(&c, "live_s_relay", Some(me)).await;
    assert!(live + 2 >= secs && live <= secs + 5, "{live}");
    // The user sees it on the usage card.
    let u = owner.my_usage(None).await.unwrap();
    assert_eq!(u.used.get("relay_bytes"), Some(&billed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_accounting_sms_counts_equal_the_outbox_and_invoices_agree() {
    let c = Cluster::start(1).await.unwrap();
    let a = c.owner("+15550770011").await.unwrap();
    let _b = c.owner("+15550770012").await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    c.bind(&a, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    // A direct and a punched session reported by the viewer; a relayed one is not billed
    // from the viewer's word.
    for (path, seconds) in [
        (PathKind::Lan, 30),
        (PathKind::Punched, 12),
        (PathKind::Relay, 99),
    ] {
        let r = peercam_signal::cm::SessionReport {
            path,
            connect_ms: 5,
            bytes: 1000,
            seconds,
        };
        a.report_session(&dev, &r).await.unwrap();
    }
    let outbox = c.dir.path().join("sms-outbox");
    let files = std::fs::read_dir(&outbox)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(files, 2, "one sign-up code each");
    assert_eq!(used(&c, "sms", None).await, files as u64);
    let me = a.me().await.unwrap().id;
    assert_eq!(used(&c, "live_s_direct", Some(me)).await, 30);
    assert_eq!(used(&c, "live_s_punched", Some(me)).await, 12);
    assert_eq!(used(&c, "live_s_relay", Some(me)).await, 0);

    // The invoices: JSON and CSV say the same, in integer minor units.
    let inv = c.admin.admin_invoices(None).await.unwrap();
    let mine = inv.invoices.iter().find(|i| i.account == me).unwrap();
    assert_eq!(mine.plan, "free");
    assert_eq!(mine.lines[0].item, "plan");
    let csv = c.admin.admin_invoices_csv(None).await.unwrap();
    let rows = parse_csv(&csv).unwrap();
    assert_eq!(rows[0][..3], ["period", "account", "login"]);
    let lines: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r[1] == me.to_string() && r[5] != "total")
        .collect();
    assert_eq!(lines.len(), mine.lines.len());
    for (row, line) in lines.iter().zip(&mine.lines) {
        assert_eq!(row[5], line.item);
        assert_eq!(row[8], line.amount_minor.to_string());
    }
    // Usage card and monthly report.
    let card = a.my_usage(None).await.unwrap();
    assert_eq!(card.used.get("live_s_direct"), Some(&30));
    let report = c.admin.admin_report_csv("monthly", None).await.unwrap();
    let report = parse_csv(&report).unwrap();
    assert!(
        report
            .iter()
            .any(|r| r[1] == me.to_string() && r[3] == "live_s_direct" && r[4] == "30")
    );
    // A bad period is refused, an open period cannot be closed.
    assert!(c.admin.admin_invoices(Some("2024-13")).await.is_err());
    assert!(c.admin.admin_close_period("2999-01").await.is_err());
    let closed = c.admin.admin_close_period("2024-01").await.unwrap();
    assert!(!closed.webhook);
    assert!(
        c.admin
            .admin_invoices(Some("2024-01"))
            .await
            .unwrap()
            .closed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_2_announcements_reach_their_audience() {
    let c = Cluster::start_with(1, |cfg| {
        cfg.cloud.plans = plus_plan();
    })
    .await
    .unwrap();
    let a = c.owner("+15550770021").await.unwrap();
    let b = c.owner("+15550770022").await.unwrap();
    b.set_plan("plus").await.unwrap();
    let body = |title: &str, audience: Option<&str>| AnnouncementBody {
        title: title.into(),
        body: "<b>not markup</b>".into(),
        audience: audience.map(str::to_owned),
        starts_at: None,
        ends_at: None,
    };
    c.admin
        .admin_announce(&body("For all", None))
        .await
        .unwrap();
    let plus = c
        .admin
        .admin_announce(&body("For plus", Some("plus")))
        .await
        .unwrap();
    assert!(c.admin.admin_announce(&body("", None)).await.is_err());
    assert!(
        c.admin
            .admin_announce(&body("x", Some("nope")))
            .await
            .is_err()
    );
    // Owners may not publish.
    assert!(a.admin_announce(&body("mine", None)).await.is_err());
    let titles = |v: Vec<peercam_signal::cm_billing::AnnouncementView>| {
        v.into_iter().map(|x| x.title).collect::<Vec<_>>()
    };
    assert_eq!(titles(a.announcements().await.unwrap()), ["For all"]);
    assert_eq!(
        titles(b.announcements().await.unwrap()),
        ["For plus", "For all"]
    );
    c.admin.admin_unannounce(plus.id).await.unwrap();
    assert_eq!(titles(b.announcements().await.unwrap()), ["For all"]);
    // The plus plan's price is on b's invoice.
    let u = b.my_usage(None).await.unwrap();
    assert_eq!(
        (u.invoice.plan.as_str(), u.invoice.total_minor),
        ("plus", 299)
    );
}

/// 6.2 in Chromium: the operator's charts and a monthly report downloaded as CSV, an
/// announcement published; the owner sees it, and the month's usage and plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_2_operator_downloads_a_report_and_user_sees_usage() {
    use peercam_test::web::{scenario, web_tests_or_skip};
    let Some(dir) = web_tests_or_skip("h626_6_2_operator_downloads_a_report_and_user_sees_usage")
    else {
        return;
    };
    let c = Cluster::start(1).await.unwrap();
    let phone = "+15550770031";
    let owner = c.owner(phone).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let r = peercam_signal::cm::SessionReport {
        path: PathKind::Lan,
        connect_ms: 5,
        bytes: 1000,
        seconds: 240,
    };
    owner
        .report_session(ids[0].device_id.as_str(), &r)
        .await
        .unwrap();
    let me = owner.me().await.unwrap().id;
    let password = std::fs::read_to_string(c.path().join("admin.password")).unwrap();
    let mut env = vec![
        ("PEERCAM_WEB_URL", c.api.clone()),
        ("PEERCAM_WEB_USER", "admin".to_owned()),
        ("PEERCAM_WEB_PASSWORD", password.trim().to_owned()),
        ("PEERCAM_OWNER", phone.to_owned()),
        ("PEERCAM_OWNER_PASSWORD", peercam_test::PASSWORD.to_owned()),
    ];
    if let Ok(shots) = std::env::var("PEERCAM_SHOTS") {
        env.push(("PEERCAM_SHOTS", shots));
    }
    let out = scenario(&dir, "reports.mjs", &env, None).await;
    assert_eq!(out["charts"], 7);
    let report = parse_csv(out["report"].as_str().unwrap()).unwrap();
    assert!(
        report.iter().any(|row| row[1] == me.to_string()
            && row[2] == phone
            && row[3] == "live_s_direct"
            && row[4] == "240"),
        "{report:?}"
    );
    assert!(out["usage"].as_str().unwrap().contains("4 min"), "{out}");
    assert!(out["plan"].as_str().unwrap().contains("free"), "{out}");
    assert_eq!(c.admin.admin_announcements().await.unwrap().len(), 1);
}

/// The test's own billing system on loopback: every POST is kept; the period `2024-01` is
/// taken at its third attempt, any other period is refused (503) every time.
#[derive(Clone, Default)]
struct Billing {
    posts: std::sync::Arc<std::sync::Mutex<Vec<Post>>>,
}

/// One POST the billing system received: its headers and body.
type Post = (axum::http::HeaderMap, Vec<u8>);

fn period_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body).unwrap()["period"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn billing_system() -> (Billing, String) {
    use axum::http::StatusCode;
    let billing = Billing::default();
    let take = |axum::extract::State(b): axum::extract::State<Billing>,
                headers: axum::http::HeaderMap,
                body: axum::body::Bytes| async move {
        let period = period_of(&body);
        let mut posts = b.posts.lock().unwrap();
        posts.push((headers, body.to_vec()));
        let n = posts.iter().filter(|(_, p)| period_of(p) == period).count();
        if period == "2024-01" && n >= 3 {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let app = axum::Router::new()
        .route("/billing", axum::routing::post(take))
        .with_state(billing.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/billing", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (billing, url)
}

/// Waits until `period` has `n` delivery attempts stored.
async fn deliveries(
    c: &Cluster,
    period: &str,
    n: usize,
) -> Vec<peercam_signal::cm_billing::DeliveryView> {
    for _ in 0..100 {
        let d = c.admin.admin_deliveries(period).await.unwrap();
        if d.len() >= n {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{period}: fewer than {n} deliveries stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_accounting_webhook_signed_retried_and_every_attempt_stored() {
    use hmac::{Hmac, Mac as _};
    const SECRET: &str = "billing-secret-0123456789";
    let (billing, url) = billing_system().await;
    let c = Cluster::start_with(1, |cfg| {
        cfg.billing.webhook_url = Some(url.clone());
        cfg.billing.webhook_secret = Some(SECRET.into());
        cfg.billing.webhook_attempts = 3;
        cfg.billing.webhook_backoff_ms = 50;
        cfg.billing.auto_close = false;
        cfg.cloud.plans = plus_plan();
    })
    .await
    .unwrap();
    // A subscriber: invoiced in every period closed, for the plan it held then.
    let owner = c.owner("+15550770051").await.unwrap();
    owner.set_plan("plus").await.unwrap();
    let me = owner.me().await.unwrap().id;

    // A period closes: the billing system refuses twice, takes the third attempt.
    let closed = c.admin.admin_close_period("2024-01").await.unwrap();
    assert!(closed.webhook);
    let d = deliveries(&c, "2024-01", 3).await;
    let got: Vec<_> = d.iter().map(|x| (x.attempt, x.status, x.ok)).collect();
    assert_eq!(
        got,
        [
            (1, Some(503), false),
            (2, Some(503), false),
            (3, Some(204), true)
        ]
    );
    let invoices = c.admin.admin_invoices(Some("2024-01")).await.unwrap();
    assert!(invoices.closed);
    let posts = billing.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 3);
    for (n, (headers, body)) in posts.iter().enumerate() {
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("x-peercam-delivery"), format!("2024-01/{}", n + 1));
        // sha256= HMAC-SHA256(secret, timestamp "." body), checked here independently.
        let ts = header("x-peercam-timestamp");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(header("x-peercam-signature"), want);
        let ts: u64 = ts.parse().unwrap();
        assert!(ts.abs_diff(d[n].at) <= 1, "the stored attempt's time");
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["period"].as_str()),
            (Some("period.closed"), Some("2024-01"))
        );
        let sent: Vec<peercam_signal::cm_billing::Invoice> =
            serde_json::from_value(v["invoices"].clone()).unwrap();
        assert_eq!(sent, invoices.invoices, "the body is the period's invoices");
        assert_eq!(sent.len(), closed.invoices);
        let mine = sent.iter().find(|i| i.account == me).unwrap();
        assert_eq!(
            (mine.period.as_str(), mine.plan.as_str()),
            ("2024-01", "free"),
            "the plan held in that period"
        );
    }
    // A tampered body does not verify under the same header.
    let (headers, body) = &posts[0];
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(headers["x-peercam-timestamp"].as_bytes());
    mac.update(b".");
    mac.update(&body[..body.len() - 1]);
    let forged = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_ne!(headers["x-peercam-signature"].to_str().unwrap(), forged);

    // A receiver that keeps failing: every attempt stored, then given up.
    let closed = c.admin.admin_close_period("2024-02").await.unwrap();
    assert!(closed.webhook);
    let d = deliveries(&c, "2024-02", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d2 = c.admin.admin_deliveries("2024-02").await.unwrap();
    assert_eq!(d2, d, "given up after the configured attempts");
    assert!(d.iter().all(|x| x.status == Some(503) && !x.ok));
    assert_eq!(d.iter().map(|x| x.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    let posts = billing.posts.lock().unwrap().len();
    assert_eq!(posts, 6);
}

/// `peercam admin` as the operator runs it: usage, invoices, reports and announcements,
/// each with `--json`, parsed here; a bad period fails with a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_accounting_admin_cli_json() {
    use peercam_signal::cm_billing::{
        AnnouncementView, CloseAnswer, DeliveryView, Invoices, UsageTotal,
    };
    let c = Cluster::start(1).await.unwrap();
    let a = c.owner("+15550770041").await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    c.bind(&a, &ids[0]).await.unwrap();
    let me = a.me().await.unwrap().id;
    let r = peercam_signal::cm::SessionReport {
        path: PathKind::Lan,
        connect_ms: 5,
        bytes: 1000,
        seconds: 42,
    };
    a.report_session(&ids[0].device_id.to_string(), &r)
        .await
        .unwrap();
    let cli = |args: &'static [&'static str]| {
        let c = &c;
        async move {
            let (ok, out, err) = c.admin_cli(env!("CARGO_BIN_EXE_peercam"), args).await;
            assert!(ok, "peercam admin {args:?}: {err}");
            out
        }
    };
    let json = |out: String| -> serde_json::Value { serde_json::from_str(&out).unwrap() };

    let usage: Vec<UsageTotal> =
        serde_json::from_value(json(cli(&["--json", "usage"]).await)).unwrap();
    assert!(
        usage
            .iter()
            .any(|t| t.account == me && t.kind == "live_s_direct" && t.quantity == 42)
    );
    assert!(
        usage.iter().any(|t| t.kind == "sms" && t.quantity >= 1),
        "{usage:?}"
    );

    let inv: Invoices = serde_json::from_value(json(cli(&["--json", "invoices"]).await)).unwrap();
    assert!(!inv.closed);
    let mine = inv.invoices.iter().find(|i| i.account == me).unwrap();
    assert_eq!(mine.plan, "free");
    assert_eq!(mine.lines[0].item, "plan");
    let csv = cli(&["invoices", "--csv"]).await;
    assert!(csv.starts_with("period,account,login"), "{csv}");

    let rows: Vec<Vec<String>> =
        serde_json::from_value(json(cli(&["--json", "reports", "monthly"]).await)).unwrap();
    assert_eq!(rows[0][..2], ["period", "account"]);
    assert!(
        rows.iter()
            .any(|r| r[1] == me.to_string() && r[3] == "live_s_direct" && r[4] == "42"),
        "{rows:?}"
    );

    let added: AnnouncementView = serde_json::from_value(json(
        cli(&[
            "--json",
            "announcements",
            "add",
            "Maintenance",
            "Sunday 02:00 to 03:00",
        ])
        .await,
    ))
    .unwrap();
    assert_eq!(
        (added.title.as_str(), added.audience.as_deref()),
        ("Maintenance", None)
    );
    let list: Vec<AnnouncementView> =
        serde_json::from_value(json(cli(&["--json", "announcements", "list"]).await)).unwrap();
    assert_eq!(list, std::slice::from_ref(&added));
    assert_eq!(
        a.announcements().await.unwrap(),
        std::slice::from_ref(&added),
        "the user sees it"
    );
    let id = added.id.to_string();
    let (ok, out, err) = c
        .admin_cli(
            env!("CARGO_BIN_EXE_peercam"),
            &["--json", "announcements", "delete", &id],
        )
        .await;
    assert!(ok, "{err}");
    assert_eq!(json(out)["deleted"], added.id);
    let list: Vec<AnnouncementView> =
        serde_json::from_value(json(cli(&["--json", "announcements", "list"]).await)).unwrap();
    assert!(list.is_empty());

    let (answer, attempts): (CloseAnswer, Vec<DeliveryView>) = serde_json::from_value(json(
        cli(&["--json", "invoices", "--period", "2024-03", "--close"]).await,
    ))
    .unwrap();
    assert_eq!((answer.period.as_str(), answer.webhook), ("2024-03", false));
    assert!(attempts.is_empty(), "no webhook configured");

    let (ok, _, err) = c
        .admin_cli(
            env!("CARGO_BIN_EXE_peercam"),
            &["--json", "usage", "--period", "2024-13"],
        )
        .await;
    assert!(!ok);
    assert!(err.contains("period"), "{err}");
}

/// The one paid plan these tests subscribe to: "plus", 1 GiB, 2.99 a month.
pub(crate) fn plus_plan() -> Vec<peercam_cmu::PlanConfig> {
    vec![peercam_cmu::PlanConfig {
        id: "plus".into(),
        name: "Plus".into(),
        quota_bytes: 1 << 30,
        price_minor: 299,
        public: true,
        ..Default::default()
    }]
}
