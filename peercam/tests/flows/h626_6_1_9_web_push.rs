//! H.626.4 6.1.9 alarm messages by Web Push, end to end over loopback: a scripted camera
//! (a real Ps link through a real SCU) raises an alarm, and the CMU posts it to a push
//! endpoint this test runs. The test plays the browser: it makes its own P-256 key pair and
//! auth secret, subscribes through the API, decrypts what arrives itself (RFC 8291 with the
//! `aes128gcm` coding of RFC 8188) and checks the VAPID signature (RFC 8292) against the key
//! the API publishes. Also: a 410 forgets the subscription, a 500 is tried again, and push
//! turned off in the notification settings sends nothing; and the web client's button and
//! service worker in Chromium.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use crate::support::scripted;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead as _, KeyInit as _};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Verifier as _;
use peercam_alarm::{Alarm, AlarmKind};
use peercam_test::Cluster;
use reqwest::Method;
use scripted::{AlarmStream, Scripted, raw};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One request the push endpoint received.
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A push service on loopback: answers each path from its queue of statuses (201 once the
/// queue is empty) and hands every request to the test.
struct PushService {
    origin: String,
    rx: mpsc::UnboundedReceiver<Received>,
    answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
}

#[derive(Clone)]
struct Endpoint {
    tx: mpsc::UnboundedSender<Received>,
    answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
}

async fn receive(
    State(ep): State<Endpoint>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let status = ep
        .answers
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .unwrap_or(201);
    let _ = ep.tx.send(Received {
        path,
        headers,
        body: body.to_vec(),
    });
    let status = StatusCode::from_u16(status).unwrap();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return (status, [("retry-after", "1")]).into_response();
    }
    status.into_response()
}

impl PushService {
    async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let answers = Arc::new(Mutex::new(HashMap::new()));
        let app = axum::Router::new()
            .route("/push/{path}", axum::routing::post(receive))
            .with_state(Endpoint {
                tx,
                answers: answers.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            origin,
            rx,
            answers,
        }
    }

    fn answer(&self, path: &str, statuses: &[u16]) {
        self.answers
            .lock()
            .unwrap()
            .insert(path.into(), statuses.iter().copied().collect());
    }

    async fn next(&mut self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

/// The browser's side of a subscription.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Self {
        let secret = loop {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).unwrap();
            if let Ok(k) = p256::SecretKey::from_slice(&b) {
                break k;
            }
        };
        let mut auth = [0u8; 16];
        getrandom::fill(&mut auth).unwrap();
        Self { secret, auth }
    }

    fn public(&self) -> Vec<u8> {
        p256::EncodedPoint::from(self.secret.public_key())
            .as_bytes()
            .to_vec()
    }

    /// `PushSubscription.toJSON()` for `endpoint`.
    fn subscription(&self, endpoint: &str) -> Value {
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {"p256dh": B64.encode(self.public()), "auth": B64.encode(self.auth)},
        })
    }

    /// RFC 8291 3.4 and RFC 8188 2: one `aes128gcm` record, decrypted.
    fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        use hkdf::Hkdf;
        use sha2_011::Sha256;
        let salt = &body[..16];
        let rs = u32::from_be_bytes(body[16..20].try_into().unwrap());
        let idlen = usize::from(body[20]);
        assert_eq!(idlen, 65, "keyid is the server's uncompressed public key");
        let keyid = &body[21..21 + idlen];
        let ciphertext = &body[21 + idlen..];
        assert!(ciphertext.len() <= rs as usize, "one record");
        let server = p256::PublicKey::from_sec1_bytes(keyid).unwrap();
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), server.as_affine());
        // RFC 8291 3.3: IKM from the ECDH secret, keyed with the auth secret.
        let mut key_info = b"WebPush: info\0".to_vec();
        key_info.extend_from_slice(&self.public());
        key_info.extend_from_slice(keyid);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes().as_slice())
            .expand(&key_info, &mut ikm)
            .unwrap();
        // RFC 8188 2.2, 2.3: content encryption key and nonce from the salt.
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let mut cek = [0u8; 16];
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .unwrap();
        let mut nonce = [0u8; 12];
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .unwrap();
        let aead = aes_gcm::Aes128Gcm::new_from_slice(&cek).unwrap();
        let mut plain = aead
            .decrypt(aes_gcm::Nonce::from_slice(&nonce), ciphertext)
            .expect("the record authenticates");
        // RFC 8188 2: padding is zeros after a delimiter, 2 in the last record.
        while plain.last() == Some(&0) {
            plain.pop();
        }
        assert_eq!(plain.pop(), Some(2), "last-record delimiter");
        plain
    }
}

/// RFC 8292 3: `vapid t=JWT, k=KEY`; the ES256 signature verifies with `key` (the API's),
/// `aud` is the endpoint's origin, `exp` within 24 h, `sub` a contact.
fn verify_vapid(authorization: &str, key: &str, origin: &str) {
    let rest = authorization.strip_prefix("vapid ").expect(authorization);
    let mut t = None;
    let mut k = None;
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=').unwrap();
        match name {
            "t" => t = Some(value.to_owned()),
            "k" => k = Some(value.to_owned()),
            other => panic!("unexpected VAPID parameter {other}"),
        }
    }
    assert_eq!(k.as_deref(), Some(key), "k is the published key");
    let jwt = t.unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&B64.decode(key).unwrap()).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
    verifying
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the JWT is signed with the CMU's VAPID key");
    let claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], origin, "{claims}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now && exp <= now + 24 * 3600, "{claims}");
    let sub = claims["sub"].as_str().unwrap();
    assert!(
        sub.starts_with("https:") || sub.starts_with("mailto:"),
        "{sub}"
    );
}

fn motion(id: &str) -> Alarm {
    Alarm {
        id: id.into(),
        kind: AlarmKind::Motion,
        at_ms: 1_796_612_640_000,
        input: None,
        zone: Some(0),
        level: 60,
        detail: "zone 0".into(),
    }
}

/// A cluster with a bound scripted camera named Garden, its owner, and a push service.
async fn world(phone: &str) -> (Cluster, Scripted, peercam_cu::Client, String, PushService) {
    world_on(Cluster::start(1).await.unwrap(), phone).await
}

/// [`world`] on a cluster of the caller's (e.g. with the CMU on PostgreSQL).
async fn world_on(
    c: Cluster,
    phone: &str,
) -> (Cluster, Scripted, peercam_cu::Client, String, PushService) {
    let id = c.provision(1).await.unwrap().remove(0);
    let dev = Scripted::start(&c, &id, 0).await;
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let cam = id.device_id.to_string();
    owner.rename(&cam, "Garden").await.unwrap();
    (c, dev, owner, cam, PushService::start().await)
}

async fn subscriptions(owner: &peercam_cu::Client) -> Vec<String> {
    let list: Value = owner
        .call::<(), Value>(Method::GET, "/api/v1/me/push-subscriptions", None)
        .await
        .unwrap();
    list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["endpoint"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_web_push_delivered_encrypted_and_signed() {
    web_push_delivered_encrypted_and_signed(world("+15550619101").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_web_push_delivered_encrypted_and_signed_postgres() {
    if let Some(c) = Cluster::start_postgres(
        1,
        "h626_6_1_9_web_push_delivered_encrypted_and_signed_postgres",
    )
    .await
    .unwrap()
    {
        web_push_delivered_encrypted_and_signed(world_on(c, "+15550619101").await).await;
    }
}

async fn web_push_delivered_encrypted_and_signed(
    (c, dev, owner, cam, mut push): (Cluster, Scripted, peercam_cu::Client, String, PushService),
) {
    let t = json!({"templates": {"motion": "Bewegung: {camera} {detail}"}});
    owner
        .call::<Value, Value>(Method::PUT, "/api/v1/me/alarm-templates", Some(&t))
        .await
        .unwrap();
    let key: Value = owner
        .call::<(), Value>(Method::GET, "/api/v1/push/vapid-public-key", None)
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let point = B64.decode(&key).unwrap();
    assert!(
        point.len() == 65 && point[0] == 4,
        "uncompressed P-256 point"
    );

    // Refusals name the field; nothing is kept.
    let browser = Browser::new();
    let path = "/api/v1/me/push-subscriptions";
    let bad = browser.subscription("http://push.example/x");
    let (status, text) = raw(&c, &owner, "POST", path, Some(&bad)).await;
    assert!(status == 422 && text.contains("\"endpoint\""), "{text}");
    let mut bad = browser.subscription(&format!("{}/push/a", push.origin));
    bad["keys"]["auth"] = json!("AAAA");
    let (status, text) = raw(&c, &owner, "POST", path, Some(&bad)).await;
    assert!(status == 422 && text.contains("keys.auth"), "{text}");
    let mut bad = browser.subscription(&format!("{}/push/a", push.origin));
    bad["extra"] = json!(1);
    let (status, text) = raw(&c, &owner, "POST", path, Some(&bad)).await;
    assert!(status == 422 && text.contains("extra"), "{text}");
    assert!(subscriptions(&owner).await.is_empty());

    let endpoint = format!("{}/push/a", push.origin);
    let sub = browser.subscription(&endpoint);
    let (status, text) = raw(&c, &owner, "POST", path, Some(&sub)).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(subscriptions(&owner).await, std::slice::from_ref(&endpoint));

    let stored = dev.alarm(motion("wp-1")).await;
    assert!(matches!(
        stored,
        peercam_signal::cmd::PlatformAnswer::Stored { .. }
    ));
    let got = push
        .next(Duration::from_secs(15))
        .await
        .expect("the push service receives the alarm");
    assert_eq!(got.path, "a");
    let header = |n: &str| {
        got.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    assert_eq!(header("content-encoding"), "aes128gcm");
    assert_eq!(header("ttl"), "3600");
    assert_eq!(header("urgency"), "high");
    verify_vapid(header("authorization"), &key, &push.origin);
    let payload: Value = serde_json::from_slice(&browser.decrypt(&got.body)).unwrap();
    let list: Value = owner
        .call::<(), Value>(Method::GET, "/api/v1/alarms?kind=motion", None)
        .await
        .unwrap();
    let alarm_id = list["alarms"][0]["id"].as_i64().unwrap();
    assert_eq!(payload["id"], alarm_id, "{payload}");
    assert_eq!(payload["kind"], "motion");
    assert_eq!(payload["camera"], cam.as_str());
    assert_eq!(payload["camera_name"], "Garden");
    assert_eq!(payload["at_ms"], 1_796_612_640_000_u64);
    assert_eq!(payload["body"], "Bewegung: Garden zone 0");
    assert_eq!(payload["url"], format!("/#/alarms/{alarm_id}"));

    // Disabling forgets it; a second time is 404.
    let one = json!({"endpoint": endpoint});
    assert_eq!(raw(&c, &owner, "DELETE", path, Some(&one)).await.0, 204);
    assert_eq!(raw(&c, &owner, "DELETE", path, Some(&one)).await.0, 404);
    assert!(subscriptions(&owner).await.is_empty());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_web_push_gone_forgotten_5xx_and_429_retried() {
    let (c, dev, owner, _cam, mut push) = world("+15550619102").await;
    let path = "/api/v1/me/push-subscriptions";
    let (a, b) = (Browser::new(), Browser::new());
    let (ep_a, ep_b) = (
        format!("{}/push/a", push.origin),
        format!("{}/push/b", push.origin),
    );
    for (browser, ep) in [(&a, &ep_a), (&b, &ep_b)] {
        let (status, text) = raw(&c, &owner, "POST", path, Some(&browser.subscription(ep))).await;
        assert_eq!(status, 201, "{text}");
    }
    push.answer("a", &[500, 429]);
    push.answer("b", &[410]);
    dev.alarm(motion("wp-2")).await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let got = push
            .next(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("only {seen:?} arrived"));
        // Every attempt is a whole message the browser can read.
        let browser = if got.path == "a" { &a } else { &b };
        let payload: Value = serde_json::from_slice(&browser.decrypt(&got.body)).unwrap();
        assert_eq!(payload["kind"], "motion");
        seen.push(got.path);
    }
    seen.sort();
    assert_eq!(
        seen,
        ["a", "a", "a", "b"],
        "a retried after its 500 and its 429, b not after 410"
    );
    // The 410 forgot b; a stays.
    let mut left = Vec::new();
    for _ in 0..100 {
        left = subscriptions(&owner).await;
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, [ep_a]);
    assert!(
        push.next(Duration::from_millis(1500)).await.is_none(),
        "no more attempts"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_web_push_off_in_settings_sends_nothing() {
    let (c, dev, owner, _cam, mut push) = world("+15550619103").await;
    let browser = Browser::new();
    let sub = browser.subscription(&format!("{}/push/a", push.origin));
    let (status, text) = raw(
        &c,
        &owner,
        "POST",
        "/api/v1/me/push-subscriptions",
        Some(&sub),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let off = json!({"kinds": {"motion": {"sms": false, "push": false, "app": true}}});
    owner
        .call::<Value, Value>(Method::PUT, "/api/v1/me/notifications", Some(&off))
        .await
        .unwrap();
    let mut stream = AlarmStream::open(&c, &owner).await;
    dev.alarm(motion("wp-off")).await;
    stream
        .wait("\"alarm_id\":\"wp-off\"", Duration::from_secs(10))
        .await
        .expect("the alarm reached the app");
    assert!(
        push.next(Duration::from_secs(2)).await.is_none(),
        "push is off for motion"
    );
    // The same alarm kind with push back on arrives: the silence was the setting.
    let on = json!({"kinds": {"motion": {"sms": false, "push": true, "app": true}}});
    owner
        .call::<Value, Value>(Method::PUT, "/api/v1/me/notifications", Some(&on))
        .await
        .unwrap();
    dev.alarm(motion("wp-on")).await;
    let got = push.next(Duration::from_secs(15)).await.expect("delivered");
    let payload: Value = serde_json::from_slice(&browser.decrypt(&got.body)).unwrap();
    assert_eq!(payload["kind"], "motion");
    assert!(push.next(Duration::from_millis(500)).await.is_none());
    c.stop().await;
}

/// 6.1.9: a platform alarm whose kind has `push` on (by default `camera_offline`) is pushed
/// too, at normal urgency, and with the camera's strategy not asked (it has none to say).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_web_push_platform_alarm_camera_offline() {
    let (c, dev, owner, cam, mut push) = world("+15550619105").await;
    let browser = Browser::new();
    let sub = browser.subscription(&format!("{}/push/a", push.origin));
    let (status, text) = raw(
        &c,
        &owner,
        "POST",
        "/api/v1/me/push-subscriptions",
        Some(&sub),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    dev.shutdown.trigger();
    let got = push
        .next(Duration::from_secs(30))
        .await
        .expect("the offline alarm is pushed");
    let urgency = got.headers.get("urgency").and_then(|v| v.to_str().ok());
    assert_eq!(urgency, Some("normal"));
    let payload: Value = serde_json::from_slice(&browser.decrypt(&got.body)).unwrap();
    assert_eq!(payload["kind"], "camera_offline", "{payload}");
    assert_eq!(payload["camera"], cam.as_str());
    assert!(
        payload["body"].as_str().unwrap().contains("offline"),
        "{payload}"
    );
    c.stop().await;
}

/// 6.1.9 in the browser: the Alarms page's "Enable notifications on this device" subscribes
/// with the CMU's VAPID key and the CMU keeps the subscription; "Disable" deletes it; the
/// service worker shows a pushed alarm tagged with its id. Headless Chromium here reaches no
/// push service, so the subscription itself comes from a stand-in `PushManager`
/// (web-tests/push.mjs); what the real one said is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_web_client_enables_push_on_this_device() {
    const NAME: &str = "h626_6_1_9_web_client_enables_push_on_this_device";
    let Some(dir) = peercam_test::web::web_tests_or_skip(NAME) else {
        return;
    };
    if std::process::Command::new("certutil")
        .arg("-H")
        .output()
        .is_err()
    {
        peercam_test::skip(NAME, "certutil is missing (apt-get install libnss3-tools)");
        return;
    }
    let c = Cluster::start(1).await.unwrap();
    let phone = "+15550619104";
    let owner = c.owner(phone).await.unwrap();
    let key: Value = owner
        .call::<(), Value>(Method::GET, "/api/v1/push/vapid-public-key", None)
        .await
        .unwrap();
    let key = B64.decode(key["key"].as_str().unwrap()).unwrap();
    let r = peercam_test::web::scenario(
        &dir,
        "push.mjs",
        &[
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_CA", c.pki.ca_cert.display().to_string()),
            ("PEERCAM_WEB_USER", phone.to_owned()),
            ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
        ],
        None,
    )
    .await;
    eprintln!("real PushManager: {}", r["real_status"]);
    let endpoint = r["endpoint"].as_str().unwrap();
    assert_eq!(r["after_enable"], json!([endpoint]), "{r}");
    assert_eq!(r["after_disable"], json!([]), "{r}");
    let seen = base64::engine::general_purpose::STANDARD
        .decode(r["subscribed_with"]["key"].as_str().unwrap())
        .unwrap();
    assert_eq!(seen, key, "subscribed with the CMU's VAPID key");
    assert_eq!(r["subscribed_with"]["userVisibleOnly"], true);
    let shown = &r["notifications"][0];
    assert_eq!(shown["title"], "Garden: motion", "{r}");
    assert_eq!(shown["tag"], "4242");
    assert_eq!(shown["url"], "/#/alarms/4242");
    assert!(subscriptions(&owner).await.is_empty());
    c.stop().await;
}
