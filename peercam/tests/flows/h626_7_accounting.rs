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
        cfg.cloud.plans = vec![peercam_cmu::PlanConfig {
            id: "plus".into(),
            name: "Plus".into(),
            quota_bytes: 1 << 30,
            price_minor: 299,
            public: true,
            ..Default::default()
        }];
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
