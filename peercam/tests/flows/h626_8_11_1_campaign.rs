//! H.626.4 8.11.1 over a fleet (issue 18 item 3): the operator's upgrade campaign orders a
//! canary, then waves; cameras whose install fails make it pause by itself with their
//! reasons; the campaign outlives a CMU restart, resumes, pauses again, aborts. A package
//! that fails its signature check is refused at creation. The same in the operator's web
//! page (Chromium). And the logs (issue 18 item 4): the audit and system logs searched and
//! exported.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use peercam_signal::cm_campaign::{CampaignCreate, CampaignDetail, CampaignTarget};
use peercam_signal::upgrade::{Manifest, SignedManifest};
use peercam_test::Cluster;
use peercam_test::web::{scenario, web_tests_or_skip};
use sha2::{Digest as _, Sha256};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn release(key: &SigningKey, version: &str, model: &str, payload: &[u8]) -> SignedManifest {
    let manifest = Manifest {
        version: version.into(),
        model: model.into(),
        sha256: hex::encode(Sha256::digest(payload)),
        size: payload.len() as u64,
        expires_at: now() + 3600,
    };
    SignedManifest {
        signatures: vec![manifest.sign(key)],
        manifest,
    }
}

/// A cluster trusting `key`, `n` cameras online whose agents have no release keys (so
/// every install fails: "no release keys are configured"), and a stored package for them.
async fn fleet(
    key: &SigningKey,
    n: usize,
) -> (
    Cluster,
    Vec<String>,
    String,
    Vec<(peercam_pu::Running, peercam_net::Shutdown)>,
) {
    let public = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let c = Cluster::start_with(1, move |cfg| cfg.release_keys = vec![public])
        .await
        .unwrap();
    let ids = c.provision(n).await.unwrap();
    let mut pus = Vec::new();
    for id in &ids {
        pus.push(c.start_pu_online(id, 0).await.unwrap());
    }
    let payload = b"firmware 9.0.0".to_vec();
    let r = release(key, "9.0.0", "synthetic", &payload);
    let path = c.path().join("payload");
    std::fs::write(&path, &payload).unwrap();
    c.admin.upload_manifest(&r).await.unwrap();
    c.admin
        .upload_payload(&r.manifest.sha256, &path, |_| {})
        .await
        .unwrap();
    let ids = ids.iter().map(|i| i.device_id.to_string()).collect();
    (c, ids, r.manifest.sha256, pus)
}

/// `peercam admin ...` as the operator.
async fn admin_cli(c: &Cluster, args: &[&str]) -> String {
    let (ok, out, err) = c.admin_cli(env!("CARGO_BIN_EXE_peercam"), args).await;
    assert!(ok, "peercam admin {args:?}: {err}");
    out
}

fn create(package: &str, devices: Vec<String>) -> CampaignCreate {
    CampaignCreate {
        name: "spring fleet".into(),
        package: package.into(),
        target: CampaignTarget {
            model: Some("synthetic".into()),
            version: None,
            devices,
        },
        canary_percent: Some(25),
        wave_size: Some(2),
        soak_s: Some(1),
        failure_percent: Some(20),
        min_results: Some(1),
        device_timeout_s: None,
    }
}

/// Waits until campaign `id` is in `state`.
async fn until_state(c: &Cluster, id: i64, state: &str) -> CampaignDetail {
    let mut last = None;
    for _ in 0..200 {
        let d = c.admin.campaign(id).await.unwrap();
        if d.campaign.state == state {
            return d;
        }
        last = Some(d);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("campaign never {state}: {last:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_8_11_1_campaign_canary_fails_pauses_survives_restart_and_aborts() {
    let key = SigningKey::from_bytes(&[61; 32]);
    let (mut c, ids, sha, _pus) = fleet(&key, 4).await;

    // Bad input, refused at creation.
    let e = c
        .admin
        .campaign_create(&create(&"00".repeat(32), vec![]))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some("no_package")));
    let mut other = create(&sha, vec![]);
    other.target.model = Some("other-model".into());
    let e = c.admin.campaign_create(&other).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(422), Some("wrong_model")));
    let e = c
        .admin
        .campaign_create(&create(&sha, vec!["pc-nosuchdevice00".into()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("not_for_model"));
    let mut bad = create(&sha, vec![]);
    bad.failure_percent = Some(101);
    assert_eq!(
        c.admin.campaign_create(&bad).await.unwrap_err().code(),
        Some("bad_campaign")
    );
    // Only operators.
    let owner = c.owner("+15550811101").await.unwrap();
    assert_eq!(
        owner
            .campaign_create(&create(&sha, vec![]))
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );

    // The campaign: a canary of one, then waves of two; the canary fails.
    let made = c
        .admin
        .campaign_create(&create(&sha, vec![]))
        .await
        .unwrap();
    let id = made.campaign.id;
    assert_eq!(made.devices.len(), 4);
    let stages: Vec<u32> = made.campaign.stages.iter().map(|s| s.devices).collect();
    assert_eq!(stages, vec![1, 2, 1]);
    let d = until_state(&c, id, "paused").await;
    let reason = d.campaign.reason.clone().unwrap();
    assert!(
        reason.contains("1 of 1 results failed in stage 0"),
        "{reason}"
    );
    let canary = d.devices.iter().find(|x| x.stage == 0).unwrap();
    assert_eq!(canary.state, "failed");
    assert!(
        canary
            .reason
            .as_deref()
            .unwrap()
            .contains("no release keys"),
        "{canary:?}"
    );
    assert!(
        d.devices
            .iter()
            .filter(|x| x.stage > 0)
            .all(|x| x.state == "pending"),
        "nothing beyond the canary was ordered: {d:#?}"
    );

    // A restart of the CMU: the campaign is where it was.
    c.restart_cmu().await.unwrap();
    for id in &ids {
        c.wait_online(&id.parse().unwrap(), true, Duration::from_secs(20))
            .await
            .unwrap();
    }
    let d = c.admin.campaign(id).await.unwrap();
    assert_eq!((d.campaign.state.as_str(), d.campaign.stage), ("paused", 0));

    // Resumed: the canary's failures are waived; the first wave fails too and pauses it.
    let v = c.admin.campaign_action(id, "resume", None).await.unwrap();
    assert!(matches!(v.state.as_str(), "running" | "soaking"), "{v:?}");
    let d = until_state(&c, id, "paused").await;
    assert_eq!(d.campaign.stage, 1, "{d:#?}");
    assert_eq!(d.campaign.stages[1].failed, 2);
    assert_eq!(d.campaign.stages[2].pending, 1);
    let e = c
        .admin
        .campaign_action(id, "pause", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("bad_state"));
    // Aborted: what was never ordered is skipped.
    let v = c
        .admin
        .campaign_action(id, "abort", Some("bad build".into()))
        .await
        .unwrap();
    assert_eq!((v.state.as_str(), v.stages[2].skipped), ("aborted", 1));
    assert_eq!(c.admin.campaigns().await.unwrap()[0].id, id);
    // The CLI: the same campaign, as JSON and as a table; following an ended one returns.
    let shown: CampaignDetail = serde_json::from_str(
        &admin_cli(
            &c,
            &["--json", "campaigns", "show", &id.to_string(), "--follow"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(shown.campaign.state, "aborted");
    assert_eq!(shown.devices.len(), 4);
    let table = admin_cli(&c, &["campaigns", "list"]).await;
    assert!(
        table.contains("aborted") && table.contains("bad build"),
        "{table}"
    );

    // Audit and system log rows.
    let audit = c.admin.audit_search("action=campaign.*").await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["campaign.abort", "campaign.resume", "campaign.create"]
    );
    let orders = c
        .admin
        .audit_search(&format!("action=device.upgrade&device={}", ids[0]))
        .await
        .unwrap();
    assert!(
        orders
            .iter()
            .all(|a| a.device_id.as_deref() == Some(&ids[0]))
    );
    let sys = c
        .admin
        .syslog(&format!("device={id}&action=campaign.*"))
        .await
        .unwrap();
    let events: Vec<&str> = sys.iter().map(|a| a.event.as_str()).collect();
    assert!(events.contains(&"campaign.paused"), "{events:?}");
    assert!(events.contains(&"campaign.aborted"), "{events:?}");
    let starts = c.admin.syslog("action=unit.start").await.unwrap();
    assert!(starts.len() >= 2, "two CMU starts: {starts:?}");

    // The release keys change: the package no longer passes its check; refused.
    let stranger = SigningKey::from_bytes(&[62; 32]);
    c.cmu_config_mut().release_keys =
        vec![URL_SAFE_NO_PAD.encode(stranger.verifying_key().as_bytes())];
    c.restart_cmu().await.unwrap();
    let e = c
        .admin
        .campaign_create(&create(&sha, vec![]))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(422), Some("bad_signature")));
    c.stop().await;
}

/// The operator's "Upgrades" tab in Chromium: a fleet campaign whose canary fails pauses by
/// itself, and the page shows it paused with the failure reasons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_11_1_campaign_web_canary_fails_pauses_by_itself() {
    let Some(dir) = web_tests_or_skip("h626_8_11_1_campaign_web_canary_fails_pauses_by_itself")
    else {
        return;
    };
    let key = SigningKey::from_bytes(&[63; 32]);
    let (c, _ids, sha, _pus) = fleet(&key, 3).await;
    let password = std::fs::read_to_string(c.path().join("admin.password")).unwrap();
    let mut env = vec![
        ("PEERCAM_WEB_URL", c.api.clone()),
        ("PEERCAM_WEB_USER", "admin".to_owned()),
        ("PEERCAM_WEB_PASSWORD", password.trim().to_owned()),
        ("PEERCAM_PACKAGE", sha.clone()),
    ];
    if let Ok(shots) = std::env::var("PEERCAM_SHOTS") {
        env.push(("PEERCAM_SHOTS", shots));
    }
    let r = scenario(&dir, "campaigns.mjs", &env, None).await;
    let id = r["campaign"].as_i64().unwrap();
    let d = c.admin.campaign(id).await.unwrap();
    assert_eq!(d.campaign.state, "aborted", "the page aborted it: {d:#?}");
    assert!(
        r["reason"].as_str().unwrap().contains("no release keys"),
        "{r}"
    );
    c.stop().await;
}

/// Issue 18 item 4: the logs searched by time range, actor and outcome; exported as CSV and
/// JSON lines; the CLI's search and export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_14_logs_search_and_export() {
    let c = Cluster::start(0).await.unwrap();
    let t0 = now();
    let owner = c.owner("+15550811102").await.unwrap();
    let me = owner.me().await.unwrap().id;
    // A refused login: the outcome filter finds it.
    assert!(
        c.client()
            .login("nobody", "wrong wrong wrong")
            .await
            .is_err()
    );
    let refused = c
        .admin
        .audit_search("outcome=bad_credentials")
        .await
        .unwrap();
    assert!(!refused.is_empty());
    let mine = c
        .admin
        .audit_search(&format!("actor={me}&from={t0}"))
        .await
        .unwrap();
    assert!(!mine.is_empty() && mine.iter().all(|a| a.actor == Some(me) && a.at >= t0));
    let none = c.admin.audit_search("to=1").await.unwrap();
    assert!(none.is_empty());
    // Paging with the cursor.
    let page = c.admin.audit_search("limit=2").await.unwrap();
    let next = c
        .admin
        .audit_search(&format!("limit=2&cursor={}", page[1].id))
        .await
        .unwrap();
    assert!(next.iter().all(|a| a.id < page[1].id));
    // Old callers: no query at all still answers the newest rows.
    assert!(!c.admin.admin_audit().await.unwrap().is_empty());
    // Exports.
    let mut csv = Vec::new();
    c.admin
        .export_log("audit", "format=csv", &mut csv, |_| {})
        .await
        .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.starts_with("id,at,actor,action,device_id,outcome,detail\r\n"),
        "{csv}"
    );
    assert!(csv.contains("account.login"));
    let mut jsonl = Vec::new();
    c.admin
        .export_log("syslog", "format=jsonl&action=unit.*", &mut jsonl, |_| {})
        .await
        .unwrap();
    let rows: Vec<serde_json::Value> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.iter().any(|r| r["event"] == "unit.start"), "{rows:?}");
    let mut sink = Vec::new();
    let e = c
        .admin
        .export_log("audit", "format=xml", &mut sink, |_| {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("bad_format"));
    assert_eq!(
        owner.audit_search("").await.unwrap_err().status(),
        Some(403)
    );
    // The CLI: search as JSON, export to a file.
    let found: Vec<peercam_signal::cm::AuditEntry> = serde_json::from_str(
        &admin_cli(
            &c,
            &["--json", "audit", "search", "--outcome", "bad_credentials"],
        )
        .await,
    )
    .unwrap();
    assert!(!found.is_empty() && found.iter().all(|a| a.outcome == "bad_credentials"));
    let file = c.path().join("syslog.jsonl");
    let out = file.to_str().unwrap();
    admin_cli(
        &c,
        &[
            "audit", "export", "--system", "--format", "jsonl", "--out", out,
        ],
    )
    .await;
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("unit.start")
    );
    c.stop().await;
}

/// Issue 18 item 4 in the operator's web page (Chromium): the Logs tab filters the audit log
/// by an action prefix, exports the filtered rows as CSV, and shows the system log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_14_logs_web_filter_and_export() {
    let Some(dir) = web_tests_or_skip("h626_6_1_14_logs_web_filter_and_export") else {
        return;
    };
    let c = Cluster::start(0).await.unwrap();
    let password = std::fs::read_to_string(c.path().join("admin.password")).unwrap();
    let mut env = vec![
        ("PEERCAM_WEB_URL", c.api.clone()),
        ("PEERCAM_WEB_USER", "admin".to_owned()),
        ("PEERCAM_WEB_PASSWORD", password.trim().to_owned()),
    ];
    if let Ok(shots) = std::env::var("PEERCAM_SHOTS") {
        env.push(("PEERCAM_SHOTS", shots));
    }
    let r = scenario(&dir, "logs.mjs", &env, None).await;
    assert_eq!(
        r["csvHeader"], "id,at,actor,action,device_id,outcome,detail",
        "{r}"
    );
    assert!(r["rows"].as_u64().unwrap() >= 1, "{r}");
    c.stop().await;
}
