//! H.626.4 6.2 CRM interwork (issue 18 item 9): the CMU asks the operator's CRM at sign-up
//! and approval and tells it of account changes. Each test runs a CRM of its own on
//! loopback that answers ok, refuses, answers garbage or too slowly, or is not there at all.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use peercam_signal::cm::AccountStatus;
use peercam_signal::crm::{AccountEvent, Verdict, VerifyRequest, encode_verdict};
use peercam_test::Cluster;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const TOKEN: &str = "crm-test-token";
const PASSWORD: &str = "a long password";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Mode {
    Ok,
    Refuse(String),
    Garbage,
    Slow,
    /// Verdicts as `Ok`; events answered 503.
    EventsDown,
}

#[derive(Default)]
struct Seen {
    verifies: Vec<VerifyRequest>,
    events: Vec<AccountEvent>,
}

#[derive(Clone)]
struct Crm {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
}

impl Crm {
    fn new(mode: Mode) -> Self {
        Self {
            mode: Arc::new(Mutex::new(mode)),
            seen: Arc::default(),
        }
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn events(&self) -> Vec<AccountEvent> {
        self.seen.lock().unwrap().events.clone()
    }

    fn verifies(&self) -> Vec<VerifyRequest> {
        self.seen.lock().unwrap().verifies.clone()
    }

    /// Serves on `addr` (port 0: any) until the test ends; the bound address.
    async fn serve(&self, addr: SocketAddr) -> SocketAddr {
        let app = axum::Router::new()
            .route("/v1/subscribers/verify", post(verify))
            .route("/v1/events", post(event))
            .with_state(self.clone());
        let listener = TcpListener::bind(addr).await.unwrap();
        let bound = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        bound
    }
}

fn authorised(h: &HeaderMap) -> bool {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

async fn verify(State(crm): State<Crm>, h: HeaderMap, body: String) -> (StatusCode, Vec<u8>) {
    if !authorised(&h) {
        return (StatusCode::UNAUTHORIZED, Vec::new());
    }
    let req: VerifyRequest = serde_json::from_str(&body).unwrap();
    crm.seen.lock().unwrap().verifies.push(req);
    let mode = crm.mode.lock().unwrap().clone();
    match mode {
        Mode::Ok | Mode::EventsDown => (
            StatusCode::OK,
            encode_verdict(&Verdict::Ok {
                customer_id: Some("C-1".into()),
            }),
        ),
        Mode::Refuse(reason) => (StatusCode::OK, encode_verdict(&Verdict::Refused { reason })),
        Mode::Garbage => (StatusCode::OK, b"<html>gateway says hi</html>".to_vec()),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (
                StatusCode::OK,
                encode_verdict(&Verdict::Ok { customer_id: None }),
            )
        }
    }
}

async fn event(State(crm): State<Crm>, h: HeaderMap, body: String) -> StatusCode {
    if !authorised(&h) {
        return StatusCode::UNAUTHORIZED;
    }
    if *crm.mode.lock().unwrap() == Mode::EventsDown {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let ev: AccountEvent = serde_json::from_str(&body).unwrap();
    let mut seen = crm.seen.lock().unwrap();
    // Idempotent by id, as docs/protocol.md asks of a CRM.
    if !seen.events.iter().any(|e| e.id == ev.id) {
        seen.events.push(ev);
    }
    StatusCode::OK
}

/// A loopback port nobody listens on (yet).
async fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn cluster(crm: SocketAddr) -> Cluster {
    Cluster::start_with(0, |cfg| {
        let mut c = peercam_cmu::CrmConfig::new(format!("http://{crm}"));
        c.token = Some(TOKEN.into());
        c.timeout_ms = 400;
        c.retry_min_ms = 100;
        c.retry_max_ms = 400;
        cfg.crm = Some(c);
    })
    .await
    .unwrap()
}

/// Sign-up with a name and a contract id; the answer of the confirmation.
async fn sign_up(c: &Cluster, phone: &str) -> Result<Value, peercam_cu::CuError> {
    let anon = c.client();
    anon.call::<Value, Value>(
        Method::POST,
        "/api/v1/signup",
        Some(
            &json!({"phone": phone, "password": PASSWORD, "name": "Ann Example",
            "contract_id": "K-42"}),
        ),
    )
    .await?;
    anon.call::<Value, Value>(
        Method::POST,
        "/api/v1/signup/confirm",
        Some(&json!({"phone": phone, "code": c.sms_code(phone).unwrap()})),
    )
    .await
}

async fn account(c: &Cluster, phone: &str) -> Option<Value> {
    let list: Vec<Value> = c
        .admin
        .call::<(), Vec<Value>>(
            Method::GET,
            &format!("/api/v1/admin/users?q={}", &phone[1..]),
            None,
        )
        .await
        .unwrap();
    list.into_iter().find(|u| u["login"] == phone)
}

async fn wait_status(c: &Cluster, phone: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = account(c, phone).await;
        if let Some(a) = a.as_ref().filter(|a| a["status"] == want) {
            return a.clone();
        }
        assert!(Instant::now() < deadline, "{phone} not {want}: {a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pending_crm(answer: &Value) {
    assert_eq!(answer["status"], "pending_crm", "{answer}");
    assert_eq!(
        answer["next"],
        "your sign-up is waiting for the operator's customer system; it will complete by itself"
    );
}

#[tokio::test]
async fn h626_6_2_crm_down_signup_waits() {
    let crm_addr = free_port().await;
    let c = cluster(crm_addr).await;
    let phone = "+15550620001";
    pending_crm(&sign_up(&c, phone).await.unwrap());
    // The user is told, not failed: the login says the same.
    let e = c.client().login(phone, PASSWORD).await.unwrap_err();
    assert_eq!(e.code(), Some("pending_crm"), "{e}");
    // The operator sees it waiting, with the reason, and cannot approve it past the CRM.
    let a = account(&c, phone).await.unwrap();
    assert_eq!(a["status"], "pending_crm");
    assert_eq!(
        (a["name"].as_str(), a["contract_id"].as_str()),
        (Some("Ann Example"), Some("K-42"))
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !account(&c, phone).await.unwrap()["crm_note"]
        .as_str()
        .is_some_and(|n| n.contains("unreachable"))
    {
        assert!(Instant::now() < deadline, "the reason is kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = a["id"].as_i64().unwrap();
    assert_eq!(
        c.admin.approve(id).await.unwrap_err().code(),
        Some("not_pending")
    );
    // Not in the approval queue either.
    let queue = c.admin.admin_users(Some("pending_approval")).await.unwrap();
    assert!(queue.iter().all(|u| u.login != phone));
    let state: Value = c
        .admin
        .call::<(), Value>(Method::GET, "/api/v1/admin/crm", None)
        .await
        .unwrap();
    assert_eq!(state["configured"], true);
    assert!(state["outbox_waiting"].as_u64().unwrap() >= 1, "{state}");
    c.stop().await;
}

#[tokio::test]
async fn h626_6_2_crm_recovery_completes_waiting_signups_and_delivers_changes() {
    let crm_addr = free_port().await;
    let c = cluster(crm_addr).await;
    let phone = "+15550620002";
    pending_crm(&sign_up(&c, phone).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The CRM comes back: the sign-up proceeds by itself to the operator's approval.
    let crm = Crm::new(Mode::Ok);
    crm.serve(crm_addr).await;
    let a = wait_status(&c, phone, "pending_approval").await;
    let id = a["id"].as_i64().unwrap();
    assert!(a.get("crm_note").is_none(), "{a}");
    c.admin.approve(id).await.unwrap();
    c.client().login(phone, PASSWORD).await.unwrap();
    let stages: Vec<_> = crm.verifies().iter().map(|v| v.stage).collect();
    assert_eq!(
        stages.last(),
        Some(&peercam_signal::crm::Stage::Approval),
        "asked at approval too"
    );
    assert_eq!(crm.verifies()[0].contract_id.as_deref(), Some("K-42"));
    // The creation made during the outage reaches the CRM, then the approval, in order.
    let deadline = Instant::now() + Duration::from_secs(10);
    while crm.events().len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", crm.events());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<String> = crm.events().into_iter().map(|e| e.event).collect();
    assert_eq!(kinds, ["account.created", "account.approved"]);
    c.stop().await;
}

#[tokio::test]
async fn h626_6_2_crm_refuses_signup_with_reason() {
    let crm = Crm::new(Mode::Refuse("no contract K-42 for this number".into()));
    let c = cluster(crm.serve(free_port().await).await).await;
    let phone = "+15550620003";
    let e = sign_up(&c, phone).await.unwrap_err();
    assert_eq!(e.code(), Some("crm_refused"), "{e}");
    assert!(
        e.to_string().contains("no contract K-42 for this number"),
        "{e}"
    );
    assert!(account(&c, phone).await.is_none(), "no account made");
    // Accepted at sign-up, refused at approval: the operator sees why.
    crm.set(Mode::Ok);
    let phone = "+15550620004";
    assert_eq!(
        sign_up(&c, phone).await.unwrap()["status"],
        "pending_approval"
    );
    crm.set(Mode::Refuse("unpaid bills".into()));
    let id = account(&c, phone).await.unwrap()["id"].as_i64().unwrap();
    let e = c.admin.approve(id).await.unwrap_err();
    assert_eq!(e.code(), Some("crm_refused"));
    assert!(e.to_string().contains("unpaid bills"), "{e}");
    c.stop().await;
}

#[tokio::test]
async fn h626_6_2_crm_refusal_after_an_outage_is_shown_at_login() {
    let crm_addr = free_port().await;
    let c = cluster(crm_addr).await;
    let phone = "+15550620005";
    pending_crm(&sign_up(&c, phone).await.unwrap());
    let crm = Crm::new(Mode::Refuse("number ported away".into()));
    crm.serve(crm_addr).await;
    let a = wait_status(&c, phone, "disabled").await;
    assert_eq!(a["crm_note"], "number ported away");
    let e = c.client().login(phone, PASSWORD).await.unwrap_err();
    assert_eq!(e.code(), Some("crm_refused"));
    assert!(e.to_string().contains("number ported away"), "{e}");
    c.stop().await;
}

#[tokio::test]
async fn h626_6_2_crm_garbage_leaves_signup_pending() {
    let crm = Crm::new(Mode::Garbage);
    let c = cluster(crm.serve(free_port().await).await).await;
    let phone = "+15550620006";
    pending_crm(&sign_up(&c, phone).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let a = account(&c, phone).await.unwrap();
        if a["crm_note"]
            .as_str()
            .is_some_and(|n| n.contains("no verdict"))
        {
            assert_eq!(a["status"], "pending_crm");
            break;
        }
        assert!(Instant::now() < deadline, "{a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crm.set(Mode::Ok);
    wait_status(&c, phone, "pending_approval").await;
    c.stop().await;
}

#[tokio::test]
async fn h626_6_2_crm_slow_answer_leaves_signup_pending() {
    let crm = Crm::new(Mode::Slow);
    let c = cluster(crm.serve(free_port().await).await).await;
    let phone = "+15550620007";
    let t = Instant::now();
    pending_crm(&sign_up(&c, phone).await.unwrap());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !account(&c, phone).await.unwrap()["crm_note"]
        .as_str()
        .is_some_and(|n| n.contains("no answer within 400 ms"))
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crm.set(Mode::Ok);
    wait_status(&c, phone, "pending_approval").await;
    c.stop().await;
}

#[tokio::test]
async fn h626_6_2_crm_change_notifications_delivered_after_an_outage() {
    let crm = Crm::new(Mode::Ok);
    let c = cluster(crm.serve(free_port().await).await).await;
    let phone = "+15550620008";
    let owner = c.owner(phone).await.unwrap();
    let id = owner.me().await.unwrap().id;
    crm.set(Mode::EventsDown);
    c.admin.disable(id).await.unwrap();
    c.admin
        .call::<(), Value>(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/enable"),
            None,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let state: Value = c
        .admin
        .call::<(), Value>(Method::GET, "/api/v1/admin/crm", None)
        .await
        .unwrap();
    assert!(state["outbox_waiting"].as_u64().unwrap() >= 2, "{state}");
    crm.set(Mode::Ok);
    let deadline = Instant::now() + Duration::from_secs(10);
    while crm.events().len() < 4 {
        assert!(Instant::now() < deadline, "{:?}", crm.events());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = crm.events();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "account.created",
            "account.approved",
            "account.disabled",
            "account.enabled"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        events
            .iter()
            .all(|e| e.account_id == id && e.login == phone)
    );
    let me = c
        .client()
        .login(phone, peercam_test::PASSWORD)
        .await
        .unwrap()
        .0
        .me()
        .await
        .unwrap();
    assert_eq!(me.status, AccountStatus::Active);
    c.stop().await;
}

/// H.626.4 6.2: the CRM is told of plan changes and of a sub-account's deletion, through the
/// same outbox as every account change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_2_crm_told_of_plan_changes_and_subaccount_deletion() {
    let crm = Crm::new(Mode::Ok);
    let addr = crm.serve(free_port().await).await;
    let c = Cluster::start_with(0, |cfg| {
        let mut k = peercam_cmu::CrmConfig::new(format!("http://{addr}"));
        k.token = Some(TOKEN.into());
        k.timeout_ms = 400;
        k.retry_min_ms = 100;
        k.retry_max_ms = 400;
        cfg.crm = Some(k);
        cfg.cloud.plans = crate::h626_7_accounting::plus_plan();
    })
    .await
    .unwrap();
    let phone = "+15550620009";
    let owner = c.owner(phone).await.unwrap();
    let id = owner.me().await.unwrap().id;
    owner.set_plan("plus").await.unwrap();
    owner
        .create_subaccount("kid-crm", peercam_test::PASSWORD)
        .await
        .unwrap();
    owner.delete_subaccount("kid-crm").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while crm.events().len() < 4 {
        assert!(Instant::now() < deadline, "{:?}", crm.events());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = crm.events();
    let plan = events
        .iter()
        .find(|e| e.event == "account.plan_changed")
        .unwrap();
    assert_eq!((plan.account_id, plan.login.as_str()), (id, phone));
    assert_eq!(plan.detail.as_deref(), Some("free -> plus"));
    let gone = events
        .iter()
        .find(|e| e.event == "account.deleted")
        .unwrap();
    assert_eq!(gone.login, "kid-crm");
    assert_eq!(gone.detail, Some(format!("owner {id}")));
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    c.stop().await;
}
