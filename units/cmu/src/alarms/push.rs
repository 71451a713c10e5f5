//! H.626.4 6.1.9 alarm messages by Web Push: the CMU's VAPID key (RFC 8292), the users'
//! browser subscriptions (RFC 8030), and delivery of an alarm to each of them, encrypted
//! for that browser (RFC 8291, `aes128gcm` of RFC 8188) and signed with the VAPID key.
//!
//! `web-push-native` encrypts and builds the request; the VAPID JWT is signed here, because
//! its `aud` must be the endpoint's origin including a non-default port (RFC 8292 2), which
//! that crate leaves out. Delivery retries transient failures (5xx, 429 after its
//! `Retry-After`, network errors) and forgets a subscription the push service says is gone
//! (404, 410).

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use peercam_signal::cm_alarm::{
    PushAlarm, PushEndpoint, PushSubscriptionList, PushSubscriptionRequest, VapidPublicKey,
};
use peercam_signal::control::FieldError;
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike as _, ECDSAP256PublicKeyLike as _, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::{Auth, WebPushBuilder, p256};

use crate::auth::Principal;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::push::{self as stored, Added, Subscription};
use crate::store::{StoreError, alarms::AlarmRow};
use crate::{Shared, now_ms, random_bytes};

/// Subscriptions per user, at most.
pub(crate) const MAX_PER_USER: i64 = 10;
/// How long a push service keeps an undelivered alarm (RFC 8030 5.2 `TTL`), seconds.
const TTL_S: u64 = 3600;
/// Lifetime of a VAPID JWT (RFC 8292 2: at most 24 hours).
const JWT_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Attempts to hand one message to a push service.
const ATTEMPTS: u32 = 3;
/// Longest `Retry-After` honoured, seconds.
const MAX_RETRY_AFTER_S: u64 = 60;
/// Pushed alarms per user per hour, at most.
const PUSH_PER_USER_HOUR: u32 = 120;

/// base64url, padded or not (browsers send it unpadded).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What Web Push could not do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    /// The stored VAPID key does not load.
    #[error("VAPID key: {0}")]
    Key(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored subscription is unusable.
    #[error("subscription: {0}")]
    Subscription(&'static str),
    /// Encrypting or building the request failed.
    #[error("building the message: {0}")]
    Build(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The CMU's Web Push sender: its VAPID key and an HTTP client.
pub(crate) struct WebPush {
    key: ES256KeyPair,
    /// Uncompressed public point, base64url.
    public: String,
    /// The JWT's `sub` (RFC 8292 2.1): how a push service may reach the operator.
    contact: String,
    client: reqwest::Client,
}

impl WebPush {
    /// The stored VAPID key, or a new one stored on first start (kept across restarts).
    pub(crate) async fn load(
        store: &crate::store::Store,
        contact: String,
    ) -> Result<Self, PushError> {
        let secret = stored::vapid_secret(store, &random_bytes::<32>(), now_ms()).await?;
        let key = ES256KeyPair::from_bytes(&secret).map_err(|e| PushError::Key(e.to_string()))?;
        let public = B64.encode(key.public_key().public_key().to_bytes_uncompressed());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            key,
            public,
            contact,
            client,
        })
    }

    /// The VAPID `Authorization` value for `endpoint` (RFC 8292 3).
    fn authorization(&self, endpoint: &reqwest::Url) -> Result<String, PushError> {
        let claims = Claims::create(JWT_LIFETIME.into())
            .with_audience(endpoint.origin().ascii_serialization())
            .with_subject(&self.contact);
        let jwt = self
            .key
            .sign(claims)
            .map_err(|e| PushError::Build(e.to_string()))?;
        Ok(format!("vapid t={jwt}, k={}", self.public))
    }

    /// One encrypted, signed request of `payload` to `sub`.
    fn request(
        &self,
        sub: &Subscription,
        payload: &[u8],
        urgency: &'static str,
    ) -> Result<reqwest::Request, PushError> {
        let url = reqwest::Url::parse(&sub.endpoint)
            .map_err(|_| PushError::Subscription("endpoint is not a URL"))?;
        let uri: axum::http::Uri = sub
            .endpoint
            .parse()
            .map_err(|_| PushError::Subscription("endpoint is not a URI"))?;
        let ua_public = p256::PublicKey::from_sec1_bytes(&sub.p256dh)
            .map_err(|_| PushError::Subscription("p256dh is not a P-256 point"))?;
        if sub.auth.len() != 16 {
            return Err(PushError::Subscription("auth is not 16 bytes"));
        }
        let auth = Auth::clone_from_slice(&sub.auth);
        let mut req = WebPushBuilder::new(uri, ua_public, auth)
            .with_valid_duration(Duration::from_secs(TTL_S))
            .build(payload.to_vec())
            .map_err(|e| PushError::Build(e.to_string()))?;
        let value = |s: &str| {
            axum::http::HeaderValue::from_str(s).map_err(|e| PushError::Build(e.to_string()))
        };
        let headers = req.headers_mut();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            value(&self.authorization(&url)?)?,
        );
        headers.insert("urgency", value(urgency)?);
        reqwest::Request::try_from(req).map_err(PushError::Client)
    }
}

/// Checks a subscription a browser sent (its form in [`PushSubscriptionRequest::check`],
/// then that its key is a point on the curve); refusals name the field.
fn check(user: i64, req: &PushSubscriptionRequest) -> Result<Subscription, Vec<FieldError>> {
    let keys = req.check()?;
    if p256::PublicKey::from_sec1_bytes(&keys.p256dh).is_err() {
        return Err(vec![FieldError::new(
            "keys.p256dh",
            "not an uncompressed P-256 public key (65 bytes, base64url)",
        )]);
    }
    Ok(Subscription {
        user,
        endpoint: req.endpoint.clone(),
        p256dh: keys.p256dh,
        auth: keys.auth,
    })
}

/// 6.1.9: the VAPID public key for `PushManager.subscribe`.
pub(crate) async fn vapid_public_key(State(st): State<Shared>) -> Json<VapidPublicKey> {
    Json(VapidPublicKey {
        key: st.push.public.clone(),
    })
}

/// 6.1.9: keeps a browser's subscription for the caller (201; 409 past the cap).
pub(crate) async fn subscribe(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<PushSubscriptionRequest>,
) -> ApiResult<(StatusCode, Json<PushEndpoint>)> {
    let sub = check(p.id, &req).map_err(ApiErr::invalid)?;
    match stored::add(&st.store, &sub, MAX_PER_USER, crate::now_s()).await? {
        Added::Kept => Ok((
            StatusCode::CREATED,
            Json(PushEndpoint {
                endpoint: sub.endpoint,
            }),
        )),
        Added::Full => Err(ApiErr::conflict(
            "too_many_subscriptions",
            format!("at most {MAX_PER_USER} devices get notifications; disable one first"),
        )),
    }
}

/// 6.1.9: the caller's subscriptions, endpoints only.
pub(crate) async fn list(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<PushSubscriptionList>> {
    let subs = stored::of_user(&st.store, p.id).await?;
    Ok(Json(PushSubscriptionList {
        subscriptions: subs
            .into_iter()
            .map(|s| PushEndpoint {
                endpoint: s.endpoint,
            })
            .collect(),
    }))
}

/// 6.1.9: forgets one of the caller's subscriptions (204; 404 when it is not theirs).
pub(crate) async fn unsubscribe(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<PushEndpoint>,
) -> ApiResult<StatusCode> {
    if stored::remove(&st.store, p.id, &req.endpoint).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiErr::not_found(
            "not_found",
            "no such subscription of yours",
        ))
    }
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    /// 404 / 410: the subscription is no more.
    Gone,
    /// Worth another try after this pause (or the back-off's, if none).
    Again(Option<Duration>),
    Failed,
}

fn outcome(resp: &reqwest::Response) -> Outcome {
    let status = resp.status();
    match status.as_u16() {
        200..=299 => Outcome::Delivered,
        404 | 410 => Outcome::Gone,
        429 => Outcome::Again(Some(retry_after(resp))),
        500..=599 => Outcome::Again(None),
        _ => Outcome::Failed,
    }
}

fn retry_after(resp: &reqwest::Response) -> Duration {
    let secs = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(secs.min(MAX_RETRY_AFTER_S))
}

/// Delivers `payload` to one subscription, retrying what may pass later.
async fn deliver(st: &Shared, sub: &Subscription, payload: &[u8], urgency: &'static str) {
    let mut pause = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        // Built anew each time: a fresh salt and key, and a JWT that is not stale.
        let req = match st.push.request(sub, payload, urgency) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "push subscription unusable; forgetting it");
                let _ = stored::gone(&st.store, &sub.endpoint).await;
                return;
            }
        };
        let wait = match st.push.client.execute(req).await {
            Ok(resp) => match outcome(&resp) {
                Outcome::Delivered => return,
                Outcome::Gone => {
                    tracing::info!(user = sub.user, "push subscription gone; forgetting it");
                    let _ = stored::gone(&st.store, &sub.endpoint).await;
                    return;
                }
                Outcome::Failed => {
                    tracing::warn!(status = %resp.status(), "push service refused the alarm");
                    return;
                }
                Outcome::Again(after) => {
                    tracing::info!(attempt, status = %resp.status(), "push failed; trying again");
                    after.unwrap_or(pause)
                }
            },
            Err(e) => {
                tracing::info!(attempt, error = %e, "push not delivered; trying again");
                pause
            }
        };
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            pause *= 4;
        }
    }
    tracing::warn!(user = sub.user, "alarm push not delivered");
}

/// 6.1.9: pushes the alarm to every browser of its owner, within the rate limit; `text` is
/// the owner's message (their template) and `camera_name` the device's name.
pub(crate) async fn alarm(st: &Shared, row: &AlarmRow, camera_name: Option<String>, text: String) {
    let Ok(subs) = stored::of_user(&st.store, row.owner).await else {
        return;
    };
    if subs.is_empty() {
        return;
    }
    let key = format!("alarm-push:{}", row.owner);
    if st
        .limits
        .hit(&key, PUSH_PER_USER_HOUR, Duration::from_secs(3600))
        .await
        .is_err()
    {
        tracing::warn!(
            user = row.owner,
            alarm = row.id,
            "alarm push over the rate limit; not sent"
        );
        return;
    }
    let kind = row.alarm.kind;
    let message = PushAlarm {
        id: row.id,
        camera: row.camera.as_ref().map(|c| c.as_str().to_owned()),
        title: camera_name
            .clone()
            .map_or_else(|| format!("peercam: {kind}"), |n| format!("{n}: {kind}")),
        camera_name,
        kind,
        at_ms: row.alarm.at_ms,
        body: text,
        url: format!("/#/alarms/{}", row.id),
    };
    let Ok(payload) = serde_json::to_vec(&message) else {
        return;
    };
    // Device alarms wake the phone; the platform's own may wait (RFC 8030 5.3).
    let urgency = if kind.from_device() { "high" } else { "normal" };
    let sends = subs.iter().map(|s| deliver(st, s, &payload, urgency));
    futures_util::future::join_all(sends).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body a browser posts (`PushSubscription.toJSON()`).
    fn req(endpoint: &str, p256dh: &str, auth: &str) -> PushSubscriptionRequest {
        serde_json::from_value(serde_json::json!({
            "endpoint": endpoint, "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn h626_6_1_9_push_vapid_key_stable_across_starts() {
        let (db, _dir) = crate::store::testing::file().await;
        let first = WebPush::load(&db, "https://cmu.example".into())
            .await
            .unwrap();
        let again = WebPush::load(&db, "https://cmu.example".into())
            .await
            .unwrap();
        assert_eq!(first.public, again.public);
        let point = B64.decode(&first.public).unwrap();
        assert!(point.len() == 65 && point[0] == 4);
        let url = reqwest::Url::parse("http://127.0.0.1:8443/push/x").unwrap();
        let auth = first.authorization(&url).unwrap();
        assert!(auth.starts_with("vapid t=") && auth.ends_with(&format!(", k={}", first.public)));
    }

    #[test]
    fn h626_6_1_9_push_subscription_key_must_be_on_the_curve() {
        // The form itself is checked (and fuzzed) in peercam-signal; here the curve.
        let point = p256::SecretKey::from_slice(&[7; 32]).unwrap().public_key();
        let p = B64.encode(p256::EncodedPoint::from(point).as_bytes());
        let a = B64.encode([9u8; 16]);
        let sub = check(1, &req("https://push.example/x", &p, &a)).unwrap();
        assert_eq!((sub.p256dh.len(), sub.auth.len()), (65, 16));
        assert_eq!(
            check(1, &req("http://push.example/x", &p, &a)).unwrap_err()[0].field,
            "endpoint"
        );
        let mut off = B64.decode(&p).unwrap();
        off[64] ^= 1;
        let errs = check(1, &req("https://push.example/x", &B64.encode(off), &a)).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "keys.p256dh");
    }
}
