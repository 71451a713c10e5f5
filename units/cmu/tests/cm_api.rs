//! The Cm API over HTTP on loopback, without the rest of the platform: the error shape of
//! every refusal (docs/protocol.md), login throttling (6.1.1) and approval by phone number.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peercam_cmu::{Config, SmsConfig};
use peercam_net::Shutdown;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Cmu {
    base: String,
    admin_password: String,
    outbox: PathBuf,
    _dir: tempfile::TempDir,
    shutdown: Shutdown,
}

async fn start() -> Cmu {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms");
    let mut config = Config::new(
        format!("sqlite://{}", dir.path().join("cmu.db").display()),
        dir.path().to_path_buf(),
        vec![],
        SmsConfig::Outbox {
            dir: outbox.clone(),
            mms: false,
        },
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    let shutdown = Shutdown::new();
    let running = peercam_cmu::start(config, shutdown.clone()).await.unwrap();
    let file = running.admin_password_file.unwrap();
    let admin_password = std::fs::read_to_string(file).unwrap().trim().to_owned();
    Cmu {
        base: format!("http://{}", running.addr),
        admin_password,
        outbox,
        _dir: dir,
        shutdown,
    }
}

/// A client whose connections come from `from` (any 127.0.0.0/8 address).
fn client(from: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(from))
        .build()
        .unwrap()
}

async fn post(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = c
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(ct.as_deref(), Some("application/json"), "{status} {body}");
    (status, body)
}

async fn login(cmu: &Cmu, c: &reqwest::Client, login: &str, password: &str) -> (StatusCode, Value) {
    let body = json!({ "login": login, "password": password }).to_string();
    post(c, &format!("{}/api/v1/login", cmu.base), None, &body).await
}

/// Every error answer has the documented shape: `error`, `message` (and `fields`).
fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn cm_api_every_rejection_has_the_json_error_shape() {
    let cmu = start().await;
    let c = client([127, 0, 0, 1]);
    let url = format!("{}/api/v1/login", cmu.base);
    let (s, b) = post(&c, &url, None, "{\"login\": ").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_json");
    let (s, b) = post(&c, &url, None, r#"{"login": 5, "password": "x"}"#).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(b["fields"][0]["field"], "login", "{b}");
    let (s, b) = post(&c, &url, None, r#"{"login": "admin"}"#).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(b["fields"][0]["field"], "password", "{b}");
    // Unknown fields are refused, named (a client nesting what belongs at the top level).
    let (s, b) = post(
        &c,
        &url,
        None,
        r#"{"login": "a", "password": "b", "caps": {}}"#,
    )
    .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(b["fields"][0]["field"], "caps", "{b}");
    // No content type.
    let resp = c.post(&url).body("{}").send().await.unwrap();
    let (s, b) = (resp.status(), resp.json::<Value>().await.unwrap());
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // Over-size body (the API takes 64 KiB).
    let big = format!(
        r#"{{"login": "{}", "password": "x"}}"#,
        "a".repeat(100 * 1024)
    );
    let (s, b) = post(&c, &url, None, &big).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    // Wrong method, unknown route.
    let resp = c.get(&url).send().await.unwrap();
    let (s, b) = (resp.status(), resp.json::<Value>().await.unwrap());
    assert_error(s, &b, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    // A query of the wrong type, after login.
    let (s, b) = login(&cmu, &c, "admin", &cmu.admin_password).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let token = b["token"].as_str().unwrap();
    let resp = c
        .get(format!("{}/api/v1/admin/audit?limit=many", cmu.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (s, b) = (resp.status(), resp.json::<Value>().await.unwrap());
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    // Any request body: an unknown field (capabilities nested under `caps`) is named.
    let signup = format!("{}/api/v1/signup", cmu.base);
    let body =
        r#"{"phone": "+15550190300", "password": "a long password", "caps": {"max_fps": 5}}"#;
    let (s, b) = post(&c, &signup, None, body).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(b["fields"][0]["field"], "caps", "{b}");
    cmu.shutdown.trigger();
}

#[tokio::test]
async fn h626_6_1_1_a_guesser_is_throttled_the_owner_still_logs_in() {
    let cmu = start().await;
    let guesser = client([127, 0, 0, 2]);
    let mut codes = Vec::new();
    for _ in 0..7 {
        let (_, b) = login(&cmu, &guesser, "admin", "wrong password!").await;
        codes.push(b["error"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        codes[..5].iter().all(|c| c == "bad_credentials"),
        "{codes:?}"
    );
    assert_eq!(codes[6], "rate_limited");
    // The guesser stays throttled even with the right password...
    let (s, b) = login(&cmu, &guesser, "admin", &cmu.admin_password).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // ...but the owner, from another address, logs in at once.
    let owner = client([127, 0, 0, 3]);
    let t = Instant::now();
    let (s, b) = login(&cmu, &owner, "admin", &cmu.admin_password).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "not paced: {:?}",
        t.elapsed()
    );
    cmu.shutdown.trigger();
}

#[tokio::test]
async fn h626_6_1_1_a_distributed_guess_is_slowed_not_the_owner_locked_out() {
    let cmu = start().await;
    // Ten addresses, one wrong password each: none is throttled on its own.
    for i in 10..20 {
        let (s, b) = login(&cmu, &client([127, 0, 1, i]), "admin", "wrong password!").await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED, "bad_credentials");
    }
    // Now the account's logins are paced, one a second, from anywhere: eight guesses from
    // eight new addresses at once take several seconds together.
    let t = Instant::now();
    let mut guesses = Vec::new();
    for i in 20..28 {
        let c = client([127, 0, 1, i]);
        let cmu_base = cmu.base.clone();
        guesses.push(tokio::spawn(async move {
            let body = json!({ "login": "admin", "password": "wrong password!" }).to_string();
            let r = c
                .post(format!("{cmu_base}/api/v1/login"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            r.status()
        }));
    }
    for g in guesses {
        let s = g.await.unwrap();
        assert!(
            s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS,
            "{s}"
        );
    }
    assert!(t.elapsed() >= Duration::from_secs(6), "{:?}", t.elapsed());
    // The owner still gets in, slowed at most by the pace.
    let (s, b) = login(&cmu, &client([127, 0, 1, 99]), "admin", &cmu.admin_password).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    cmu.shutdown.trigger();
}

fn sms_code(outbox: &Path, phone: &str) -> String {
    let mut files: Vec<_> = std::fs::read_dir(outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files.iter().rev() {
        let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        if v["to"] == phone {
            let text = v["text"].as_str().unwrap();
            return text.split("code is ").nth(1).unwrap()[..6].to_owned();
        }
    }
    panic!("no SMS to {phone}");
}

#[tokio::test]
async fn h626_6_1_1_operator_approves_by_phone_number() {
    let cmu = start().await;
    let c = client([127, 0, 0, 1]);
    let phone = "+15550190346";
    let body = json!({ "phone": phone, "password": "a long password" }).to_string();
    let (s, b) = post(&c, &format!("{}/api/v1/signup", cmu.base), None, &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let body = json!({ "phone": phone, "code": sms_code(&cmu.outbox, phone) }).to_string();
    let (s, b) = post(
        &c,
        &format!("{}/api/v1/signup/confirm", cmu.base),
        None,
        &body,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = login(&cmu, &c, "admin", &cmu.admin_password).await;
    let token = b["token"].as_str().unwrap().to_owned();
    let approve = |who: &str| format!("{}/api/v1/admin/users/{who}/approve", cmu.base);
    let (s, b) = post(&c, &approve(phone), Some(&token), "{}").await;
    assert_eq!(
        (s, b["login"].as_str(), b["status"].as_str()),
        (StatusCode::OK, Some(phone), Some("active")),
        "{b}"
    );
    // Once approved, it no longer waits; an unknown number is not an id.
    let (s, b) = post(&c, &approve(phone), Some(&token), "{}").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_pending");
    let (s, b) = post(&c, &approve("+15550190399"), Some(&token), "{}").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_pending");
    let (s, b) = post(&c, &approve("someone"), Some(&token), "{}").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_account");
    cmu.shutdown.trigger();
}
