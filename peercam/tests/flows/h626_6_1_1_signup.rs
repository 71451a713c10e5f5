//! H.626.4 6.1.1 self-service: sign-up with a mobile number, SMS code, operator approval.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};

use peercam_signal::cm::AccountStatus;
use peercam_test::Cluster;

#[tokio::test]
async fn h626_6_1_1_signup_needs_code_and_approval() {
    signup_needs_code_and_approval(Cluster::start(0).await.unwrap()).await;
}

#[tokio::test]
async fn h626_6_1_1_signup_needs_code_and_approval_postgres() {
    if let Some(c) =
        Cluster::start_postgres(0, "h626_6_1_1_signup_needs_code_and_approval_postgres")
            .await
            .unwrap()
    {
        signup_needs_code_and_approval(c).await;
    }
}

async fn signup_needs_code_and_approval(c: Cluster) {
    let anon = c.client();
    let phone = "+15550500001";
    let st = anon
        .signup("+1 555 050-0001", "a long password")
        .await
        .unwrap();
    assert_eq!(st.status, AccountStatus::PendingCode);

    // No account before the code is confirmed; a wrong code is refused.
    assert_eq!(
        anon.login(phone, "a long password")
            .await
            .unwrap_err()
            .code(),
        Some("bad_credentials")
    );
    assert_eq!(
        anon.confirm(phone, "000000").await.unwrap_err().code(),
        Some("wrong_code")
    );
    let code = c.sms_code(phone).unwrap();
    let st = anon.confirm(phone, &code).await.unwrap();
    assert_eq!(st.status, AccountStatus::PendingApproval);

    // Confirmed but not yet approved: login is refused with a clear reason.
    let e = anon.login(phone, "a long password").await.unwrap_err();
    assert_eq!(e.code(), Some("pending_approval"));

    let pending = c.admin.admin_users(Some("pending_approval")).await.unwrap();
    let id = pending.iter().find(|u| u.login == phone).unwrap().id;
    c.admin.approve(id).await.unwrap();
    let (me, resp) = anon.login(phone, "a long password").await.unwrap();
    assert_eq!(resp.user.login, phone);
    assert_eq!(me.me().await.unwrap().status, AccountStatus::Active);

    // The same number cannot sign up twice.
    assert_eq!(
        anon.signup(phone, "another password")
            .await
            .unwrap_err()
            .code(),
        Some("phone_taken")
    );

    // Password change ends other sessions but keeps this one.
    let (other, _) = anon.login(phone, "a long password").await.unwrap();
    me.change_password("a long password", "a newer password")
        .await
        .unwrap();
    assert_eq!(other.me().await.unwrap_err().status(), Some(401));
    me.me().await.unwrap();
    assert_eq!(
        anon.login(phone, "a long password")
            .await
            .unwrap_err()
            .code(),
        Some("bad_credentials")
    );

    // Disabled accounts are locked out at once.
    c.admin.disable(id).await.unwrap();
    assert_eq!(me.me().await.unwrap_err().status(), Some(401));
    c.stop().await;
}

#[tokio::test]
async fn h626_6_1_1_bad_input_gets_clear_errors() {
    let c = Cluster::start(0).await.unwrap();
    let anon = c.client();
    assert_eq!(
        anon.signup("12345", "a long password")
            .await
            .unwrap_err()
            .code(),
        Some("bad_phone")
    );
    assert_eq!(
        anon.signup("+15550500002", "short")
            .await
            .unwrap_err()
            .code(),
        Some("weak_password")
    );
    assert_eq!(
        anon.confirm("+15550500002", "123456")
            .await
            .unwrap_err()
            .code(),
        Some("no_pending_signup")
    );
    // A code can be tried only a few times.
    anon.signup("+15550500003", "a long password")
        .await
        .unwrap();
    for _ in 0..5 {
        let _ = anon.confirm("+15550500003", "999999").await;
    }
    let right = c.sms_code("+15550500003").unwrap();
    assert_eq!(
        anon.confirm("+15550500003", &right)
            .await
            .unwrap_err()
            .code(),
        Some("code_expired")
    );
    // SMS pumping: repeated sign-ups to one number are throttled.
    let mut limited = false;
    for _ in 0..5 {
        if anon
            .signup("+15550500004", "a long password")
            .await
            .err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref()
            == Some("rate_limited")
        {
            limited = true;
        }
    }
    assert!(limited);
    c.stop().await;
}

#[tokio::test]
async fn h626_6_1_1_login_brute_force_is_throttled() {
    let c = Cluster::start(0).await.unwrap();
    let _ = c.owner("+15550500010").await.unwrap();
    let anon = c.client();
    let mut codes = Vec::new();
    for _ in 0..7 {
        codes.push(
            anon.login("+15550500010", "wrong password!")
                .await
                .unwrap_err()
                .code()
                .map(str::to_owned),
        );
    }
    assert!(
        codes
            .iter()
            .take(5)
            .all(|c| c.as_deref() == Some("bad_credentials"))
    );
    assert_eq!(codes[6].as_deref(), Some("rate_limited"));
    // Even the right password waits out the window.
    assert_eq!(
        anon.login("+15550500010", "correct horse battery")
            .await
            .unwrap_err()
            .code(),
        Some("rate_limited")
    );
    c.stop().await;
}

#[tokio::test]
async fn h626_6_1_1_http_sms_gateway_adapter_posts_the_code() {
    use axum::{Json, Router, routing::post};
    use peercam_cmu::sms::{HttpSms, SmsGateway as _, SmsMessage};
    let got: Arc<Mutex<Vec<(String, SmsMessage)>>> = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/send",
        post(
            move |headers: axum::http::HeaderMap, Json(m): Json<SmsMessage>| {
                let g = g.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    g.lock().unwrap().push((auth, m));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let gw = HttpSms::new(format!("http://{addr}/send"), "k3y".into()).unwrap();
    let phone: peercam_base::Phone = "+15550500020".parse().unwrap();
    gw.send(&phone, "your code is 123456").await.unwrap();
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "Bearer k3y");
        assert_eq!(got[0].1.to, "+15550500020");
    }
    // A gateway that fails is reported, not ignored.
    let bad = HttpSms::new(format!("http://{addr}/nope"), "k".into()).unwrap();
    assert!(bad.send(&phone, "x").await.is_err());
}
