//! H.626.4 6.2 operator portal, users (issue 18 item 2): search and pagination, enable,
//! password reset by SMS, and two-factor sign-in with TOTP (RFC 6238) through the HTTP API.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac as _};
use peercam_test::Cluster;
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "owner password 1";

/// RFC 6238 with HMAC-SHA1, 30 s, 6 digits, written again here from the RFC.
fn totp(secret_b32: &str, t: u64) -> String {
    let mut key = Vec::new();
    let (mut buf, mut bits) = (0u64, 0u32);
    for c in secret_b32.bytes() {
        let v = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
            .iter()
            .position(|&x| x == c)
            .unwrap() as u64;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            key.push((buf >> bits) as u8);
        }
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&(t / 30).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
    format!("{:06}", bin % 1_000_000)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Enrols `client` in TOTP through the API; the secret.
async fn enrol(client: &peercam_cu::Client) -> String {
    let secret = client.totp_enroll().await.unwrap().secret;
    client.totp_confirm(&totp(&secret, now())).await.unwrap();
    secret
}

async fn signed_up(c: &Cluster, phone: &str) -> peercam_cu::Client {
    let anon = c.client();
    anon.signup(phone, PASSWORD).await.unwrap();
    anon.confirm(phone, &c.sms_code(phone).unwrap())
        .await
        .unwrap();
    anon
}

#[tokio::test]
async fn h626_6_2_users_search_paginate_enable_and_reset_by_sms() {
    let c = Cluster::start(0).await.unwrap();
    for i in 0..5 {
        signed_up(&c, &format!("+1555063000{i}")).await;
    }
    let path = "/api/v1/admin/users?q=555063000&limit=2";
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&c.ca_pem).unwrap()])
        .build()
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let r = http
            .get(format!("{}{path}&cursor={cursor}", c.api))
            .bearer_auth(c.admin.token().unwrap())
            .send()
            .await
            .unwrap();
        let next = r
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(
            page.into_iter()
                .map(|u| u["login"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        match next {
            Some(n) => cursor = n,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    // Existing callers: the status filter alone still answers a plain array.
    let pending = c.admin.admin_users(Some("pending_approval")).await.unwrap();
    assert_eq!(pending.len(), 5);
    let none: Vec<Value> = c
        .admin
        .call::<(), Vec<Value>>(Method::GET, "/api/v1/admin/users?q=nobody-like-this", None)
        .await
        .unwrap();
    assert!(none.is_empty());

    // Disable, enable.
    let phone = "+15550630000";
    let id = pending.iter().find(|u| u.login == phone).unwrap().id;
    c.admin.approve(id).await.unwrap();
    c.admin.disable(id).await.unwrap();
    let back: Value = c
        .admin
        .call::<(), Value>(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/enable"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(back["status"], "active");
    let (session, _) = c.client().login(phone, PASSWORD).await.unwrap();

    // Reset by SMS: the code goes to the owner, who sets a new password; sessions end.
    let sms_before = c.sms_code(phone).unwrap();
    c.admin
        .call::<(), ()>(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/reset-password"),
            None,
        )
        .await
        .unwrap();
    let code = c.sms_code(phone).unwrap();
    assert_ne!(code, sms_before);
    let anon = c.client();
    let wrong = anon
        .call::<Value, ()>(
            Method::POST,
            "/api/v1/password/reset",
            Some(&json!({"phone": phone, "code": "000000", "new_password": "brand new password"})),
        )
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some("bad_code"));
    anon.call::<Value, ()>(
        Method::POST,
        "/api/v1/password/reset",
        Some(&json!({"phone": phone, "code": code, "new_password": "brand new password"})),
    )
    .await
    .unwrap();
    assert_eq!(session.me().await.unwrap_err().status(), Some(401));
    assert_eq!(
        anon.login(phone, PASSWORD).await.unwrap_err().code(),
        Some("bad_credentials")
    );
    anon.login(phone, "brand new password").await.unwrap();
    // Used once.
    let again = anon
        .call::<Value, ()>(
            Method::POST,
            "/api/v1/password/reset",
            Some(&json!({"phone": phone, "code": code, "new_password": "another new password"})),
        )
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("bad_code"));
    // Rate limited per account.
    let mut limited = false;
    for _ in 0..4 {
        let r = c
            .admin
            .call::<(), ()>(
                Method::POST,
                &format!("/api/v1/admin/users/{id}/reset-password"),
                None,
            )
            .await;
        limited |=
            r.err().and_then(|e| e.code().map(str::to_owned)).as_deref() == Some("rate_limited");
    }
    assert!(limited);
    // Audited.
    let audit: Vec<Value> = c
        .admin
        .call::<(), Vec<Value>>(Method::GET, "/api/v1/admin/audit", None)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "account.password_reset" && e["outcome"] == "ok")
    );
    assert!(audit.iter().any(|e| e["action"] == "account.enable"));
    c.stop().await;
}

#[tokio::test]
async fn h626_6_2_totp_login_two_steps_replay_and_recovery() {
    let c = Cluster::start(0).await.unwrap();
    let phone = "+15550631001";
    let owner = c.owner(phone).await.unwrap();
    let en: Value = owner
        .call::<(), Value>(Method::POST, "/api/v1/me/totp/enroll", None)
        .await
        .unwrap();
    let secret = en["secret"].as_str().unwrap().to_owned();
    assert!(
        en["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/peercam%3A%2B15550631001?secret=")
    );
    let bad = owner
        .call::<Value, Value>(
            Method::POST,
            "/api/v1/me/totp/confirm",
            Some(&json!({"code": "000000"})),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("bad_totp"));
    let codes: Value = owner
        .call::<Value, Value>(
            Method::POST,
            "/api/v1/me/totp/confirm",
            Some(&json!({"code": totp(&secret, now())})),
        )
        .await
        .unwrap();
    let recovery: Vec<String> = serde_json::from_value(codes["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);

    let anon = c.client();
    let pw = peercam_test::PASSWORD;
    let e = anon.login(phone, pw).await.unwrap_err();
    assert_eq!(e.code(), Some("totp_required"));
    // The step just used at confirmation is used up: the next step's code is accepted
    // (one step of drift), once.
    let next = totp(&secret, now() + 30);
    let (me, _) = anon.login_totp(phone, pw, Some(&next)).await.unwrap();
    assert_eq!(
        anon.login_totp(phone, pw, Some(&next))
            .await
            .unwrap_err()
            .code(),
        Some("bad_totp"),
        "a replayed code is refused"
    );
    // A wrong password never reveals whether TOTP is on.
    assert_eq!(
        anon.login(phone, "wrong password!")
            .await
            .unwrap_err()
            .code(),
        Some("bad_credentials")
    );
    // A recovery code works once.
    anon.login_totp(phone, pw, Some(&recovery[0]))
        .await
        .unwrap();
    assert_eq!(
        anon.login_totp(phone, pw, Some(&recovery[0]))
            .await
            .unwrap_err()
            .code(),
        Some("bad_totp")
    );
    let st: Value = me
        .call::<(), Value>(Method::GET, "/api/v1/me/totp", None)
        .await
        .unwrap();
    assert_eq!(
        (st["enabled"].as_bool(), st["recovery_codes_left"].as_u64()),
        (Some(true), Some(9))
    );
    // Off with password and a code (a recovery code here).
    let e = me
        .call::<Value, ()>(
            Method::POST,
            "/api/v1/me/totp/disable",
            Some(&json!({"password": "wrong password!", "code": recovery[1]})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("bad_credentials"));
    me.call::<Value, ()>(
        Method::POST,
        "/api/v1/me/totp/disable",
        Some(&json!({"password": pw, "code": recovery[1]})),
    )
    .await
    .unwrap();
    anon.login(phone, pw).await.unwrap();
    c.stop().await;
}

#[tokio::test]
async fn h626_6_2_totp_required_for_operators() {
    let c = Cluster::start_with(0, |cfg| cfg.operator_totp_required = true)
        .await
        .unwrap();
    let e = c.admin.admin_users(None).await.unwrap_err();
    assert_eq!(e.code(), Some("totp_enrolment_required"));
    enrol(&c.admin).await;
    c.admin.admin_users(None).await.unwrap();
    // Required: it cannot be turned off.
    let e = c
        .admin
        .call::<Value, ()>(
            Method::POST,
            "/api/v1/me/totp/disable",
            Some(&json!({"password": "x", "code": "000000"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("totp_required"));
    c.stop().await;
}

#[tokio::test]
async fn h626_6_2_users_admin_cli_search_enable_reset() {
    let c = Cluster::start(0).await.unwrap();
    for i in 0..3 {
        signed_up(&c, &format!("+1555063200{i}")).await;
    }
    let exe = env!("CARGO_BIN_EXE_peercam");
    let (ok, out, err) = c
        .admin_cli(
            exe,
            &[
                "users",
                "search",
                "555063200",
                "--limit",
                "2",
                "--all",
                "--json",
            ],
        )
        .await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["users"].as_array().unwrap().len(), 3, "{v}");
    assert!(v["next_cursor"].is_null());
    let (ok, out, _) = c
        .admin_cli(
            exe,
            &[
                "users",
                "search",
                "--status",
                "pending_approval",
                "--limit",
                "1",
                "--json",
            ],
        )
        .await;
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["next_cursor"].is_string(), "{v}");
    let phone = "+15550632000";
    assert!(c.admin_cli(exe, &["users", "approve", phone]).await.0);
    assert!(c.admin_cli(exe, &["users", "disable", phone]).await.0);
    let (ok, out, err) = c
        .admin_cli(exe, &["users", "enable", phone, "--json"])
        .await;
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "active"
    );
    let (ok, out, err) = c.admin_cli(exe, &["users", "reset-password", phone]).await;
    assert!(ok && out.contains("one-time code"), "{out} {err}");
    let (ok, _, err) = c.admin_cli(exe, &["users", "search", "--help"]).await;
    assert!(ok, "{err}");
    c.stop().await;
}

/// The web client: the operator logs in with its TOTP code and approves a sign-up from the
/// Users tab (Chromium).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_2_web_totp_login_and_users_tab() {
    let Some(dir) = peercam_test::web::web_tests_or_skip("h626_6_2_web_totp_login_and_users_tab")
    else {
        return;
    };
    let c = Cluster::start(0).await.unwrap();
    let phone = "+15550633001";
    signed_up(&c, phone).await;
    let secret = enrol(&c.admin).await;
    let password = std::fs::read_to_string(c.path().join("admin.password")).unwrap();
    let mut env = vec![
        ("PEERCAM_WEB_URL", c.api.clone()),
        ("PEERCAM_WEB_USER", "admin".to_owned()),
        ("PEERCAM_WEB_PASSWORD", password.trim().to_owned()),
        ("PEERCAM_TOTP_SECRET", secret),
        ("PEERCAM_PENDING_PHONE", phone.to_owned()),
    ];
    if let Ok(shots) = std::env::var("PEERCAM_SHOTS") {
        env.push(("PEERCAM_SHOTS", shots));
    }
    let r = peercam_test::web::scenario(&dir, "totp-users.mjs", &env, None).await;
    assert_eq!(r["approved"], phone, "{r}");
    let pending = c.admin.admin_users(Some("pending_approval")).await.unwrap();
    assert!(pending.iter().all(|u| u.login != phone));
    c.stop().await;
}

/// The web client: an owner turns two-factor sign-in on from the Account page (the key read
/// off the page, a wrong code refused, ten recovery codes shown once), logs in again with a
/// recovery code, and turns it off with the password and a code (Chromium).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_2_web_owner_sets_up_and_turns_off_two_factor_sign_in() {
    let Some(dir) = peercam_test::web::web_tests_or_skip(
        "h626_6_2_web_owner_sets_up_and_turns_off_two_factor_sign_in",
    ) else {
        return;
    };
    let c = Cluster::start(0).await.unwrap();
    let phone = "+15550633002";
    let owner = c.owner(phone).await.unwrap();
    let mut env = vec![
        ("PEERCAM_WEB_URL", c.api.clone()),
        ("PEERCAM_WEB_USER", phone.to_owned()),
        ("PEERCAM_WEB_PASSWORD", peercam_test::PASSWORD.to_owned()),
    ];
    if let Ok(shots) = std::env::var("PEERCAM_SHOTS") {
        env.push(("PEERCAM_SHOTS", shots));
    }
    let r = peercam_test::web::scenario(&dir, "totp-enrol.mjs", &env, None).await;
    assert_eq!(r["recovery_codes"], 10, "{r}");
    assert_eq!(r["turned_off"], true, "{r}");
    let st = owner.totp_state().await.unwrap();
    assert!(!st.enabled, "off at the end");
    c.stop().await;
}
