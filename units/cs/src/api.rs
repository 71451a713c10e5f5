//! Cp over HTTP (design "Cp: the upload protocol"): the camera registers (`hello`), uploads
//! objects (`PUT /cp/v1/o/<key>`) and, when the pool is full, asks for the oldest to be
//! deleted (`prune`, 8.7.1). Every request carries `Authorization: Bearer pcg1...`, checked
//! with [`peercam_cloud::grant::verify`] (audience: this CS's device id). Every refusal is
//! JSON `{code, message}`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use ed25519_dalek::VerifyingKey;
use peercam_cloud::grant::{self, Claims, Op, Target};
use peercam_cloud::quota::{Deleted, Others};
use peercam_cloud::{ObjectKey, Prefix, SegmentKey, envelope, object};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::backend::Backend;
use crate::error::ApiErr;
use crate::index::{Camera, Index, ObjectRow, Opened};
use crate::keys::Keys;

/// Most gap ranges `hello` reports.
const MAX_MISSING: usize = 1000;

/// The CS's shared state.
#[derive(Debug)]
pub(crate) struct Cs {
    pub(crate) index: Index,
    /// Camera device id -> prefix (Su `cs_camera`), for playback.
    pub(crate) prefixes: crate::playback::CameraPrefixes,
    /// The segments as players read them (export).
    pub(crate) source: crate::CloudSource,
    /// Finished exports, kept while their grants live.
    pub(crate) exports: crate::export::Exports,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) keys: Arc<dyn Keys>,
    /// The CMU's grant verification keys: from the configuration, replaced by Su
    /// `cs_config` (crate::su).
    pub(crate) grant_keys: RwLock<HashMap<String, VerifyingKey>>,
    pub(crate) device_id: String,
    /// The cameras of the index, for the grant's epoch check without a database read.
    pub(crate) cameras: RwLock<HashMap<Prefix, Camera>>,
    pub(crate) max_body: usize,
    /// Largest shared clip, bytes of MP4.
    pub(crate) max_clip: usize,
    pub(crate) intent_wait: Duration,
    pub(crate) backfill_after_ms: u64,
}

pub(crate) fn router(cs: Arc<Cs>) -> Router {
    Router::new()
        .route("/cp/v1/hello", post(hello))
        .route("/cp/v1/o/{*key}", put(put_object))
        .route("/cp/v1/prune", post(prune))
        .route("/cc/v1/export/{file}", get(crate::export::export))
        .route(
            "/cp/v1/clip/{*key}",
            crate::clips::with_cors(put(crate::clips::put)),
        )
        .route("/cc/v1/clip/{*key}", get(crate::clips::get))
        .layer(DefaultBodyLimit::disable())
        .with_state(cs)
}

impl Cs {
    fn grant_key(&self, kid: &str) -> Option<VerifyingKey> {
        self.grant_keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(kid)
            .copied()
    }

    /// The camera of prefix `p`, as Su configured it.
    pub(crate) fn camera_of(&self, p: &Prefix) -> Option<Camera> {
        self.camera(p)
    }

    /// Judges the request's `Authorization: Bearer` grant for `op` on `target`.
    pub(crate) fn authorize_bearer(
        &self,
        headers: &HeaderMap,
        op: Op,
        target: Target<'_>,
    ) -> Result<Claims, ApiErr> {
        self.authorize(headers, op, target)
    }

    fn camera(&self, p: &Prefix) -> Option<Camera> {
        self.cameras
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(p)
            .cloned()
    }

    /// Judges the request's grant for `op` on `target`.
    fn authorize(&self, headers: &HeaderMap, op: Op, target: Target<'_>) -> Result<Claims, ApiErr> {
        self.authorize_text(bearer(headers)?, op, target)
    }

    /// Judges grant `text` for `op` on `target`.
    pub(crate) fn authorize_text(
        &self,
        text: &str,
        op: Op,
        target: Target<'_>,
    ) -> Result<Claims, ApiErr> {
        let cameras = self
            .cameras
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        grant::verify(
            text,
            |kid| self.grant_key(kid),
            |p| cameras.get(p).map(|c| c.epoch),
            &grant::Request {
                aud: &self.device_id,
                now_s: crate::now_ms() / 1000,
                op,
                target,
            },
        )
        .map_err(|r| {
            tracing::info!(refusal = ?r, ?op, "grant refused");
            ApiErr::refused(r)
        })
    }

    /// The prefix a grant names, after its form, key and signature passed (for requests
    /// whose body names no prefix); the full check follows with [`Self::authorize`].
    fn granted_prefix(&self, headers: &HeaderMap) -> Result<Prefix, ApiErr> {
        let text = bearer(headers)?;
        grant::verify_signature(text, |kid| self.grant_key(kid))
            .map(|c| c.pfx)
            .map_err(ApiErr::refused)
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiErr> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiErr::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send Authorization: Bearer pcg1... (a grant from the platform)",
            )
        })
}

/// The body, at most `max` bytes (413 beyond).
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
) -> Result<Bytes, ApiErr> {
    let too_large = || {
        ApiErr::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over {max} bytes"),
        )
        .with("max", max as u64)
    };
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())
}

fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiErr> {
    serde_json::from_slice(bytes).map_err(|e| ApiErr::bad("bad_request", format!("body: {e}")))
}

/// Small JSON bodies (hello, prune).
const SMALL_BODY: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HelloReq {
    prefix: Prefix,
}

#[derive(Serialize)]
struct HelloResp {
    last_seq: Option<u64>,
    missing: Vec<[u64; 2]>,
    used: u64,
    quota: u64,
    object_max: usize,
}

/// `POST /cp/v1/hello {prefix}` (op `state`): the camera registers with the CS (8.7.1) and
/// learns where its uploads stand.
async fn hello(
    State(cs): State<Arc<Cs>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErr> {
    let bytes = read_body(body, &headers, SMALL_BODY).await?;
    let req: HelloReq = json_body(&bytes)?;
    cs.authorize(&headers, Op::State, Target::Prefix(req.prefix))?;
    let cam = cs
        .camera(&req.prefix)
        .ok_or_else(|| ApiErr::refused(grant::Refusal::UnknownPrefix))?;
    let objects = cs.index.objects_of(&req.prefix).await?;
    let mut missing = Vec::new();
    for w in objects.windows(2) {
        if w[1].seq > w[0].seq + 1 && missing.len() < MAX_MISSING {
            missing.push([w[0].seq + 1, w[1].seq - 1]);
        }
    }
    let acc = cs
        .index
        .account(&cam.account)
        .await?
        .ok_or_else(|| ApiErr::internal("hello", &"camera without account"))?;
    Ok(axum::Json(HelloResp {
        last_seq: objects.last().map(|o| o.seq),
        missing,
        used: acc.used,
        quota: acc.quota,
        object_max: cs.max_body,
    })
    .into_response())
}

#[derive(Serialize)]
struct Stored {
    key: String,
    bytes: u64,
}

fn stored(status: StatusCode, row: &ObjectRow) -> Response {
    (
        status,
        axum::Json(Stored {
            key: row.key.clone(),
            bytes: row.bytes,
        }),
    )
        .into_response()
}

/// The answer for an upload whose key, seq or start is already stored as `row`.
fn already(row: &ObjectRow, key: &str, body_sha256: &str) -> Result<Response, ApiErr> {
    if row.key == key && row.body_sha256 == body_sha256 {
        return Ok(stored(StatusCode::OK, row));
    }
    tracing::warn!(key, stored = %row.key, "upload conflicts with a stored object");
    Err(ApiErr::new(
        StatusCode::CONFLICT,
        "different_content",
        if row.key == key {
            "an object with this key is stored with different content".to_owned()
        } else {
            format!("the camera's seq or start is already stored as {}", row.key)
        },
    ))
}

/// `PUT /cp/v1/o/<key>` with `x-pc-sha256` (op `put`): stores one upload object.
async fn put_object(
    State(cs): State<Arc<Cs>>,
    Path(raw_key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErr> {
    // The key is parsed and rebuilt; only the canonical spelling is accepted.
    let seg: SegmentKey = raw_key
        .parse()
        .map_err(|e| ApiErr::bad("bad_key", format!("{e}")))?;
    let key = seg.to_string();
    if key != raw_key {
        return Err(ApiErr::bad("bad_key", format!("the key is spelled {key}")));
    }
    let okey = ObjectKey::Segment(seg);
    cs.authorize(&headers, Op::Put, Target::Key(&okey))?;
    let want = headers
        .get("x-pc-sha256")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| ApiErr::bad("bad_hash", "x-pc-sha256 must be the body's SHA-256 in hex"))?;
    let body = read_body(body, &headers, cs.max_body).await?;
    let body_sha256 = hex::encode(Sha256::digest(&body));
    if body_sha256 != want {
        return Err(ApiErr::bad(
            "bad_hash",
            "the body does not match x-pc-sha256",
        ));
    }
    // A retry of a stored object is answered before any work.
    if let Some(row) = cs.index.object(&key).await? {
        return already(&row, &key, &body_sha256);
    }
    let now = crate::now_ms();
    let bad_object = |reason: String| {
        ApiErr::bad("bad_object", format!("the object is refused: {reason}")).with("reason", reason)
    };
    let (obj, summary) = object::Object::decode(&body).map_err(|e| bad_object(e.to_string()))?;
    if obj.key().map_err(|e| bad_object(e.to_string()))? != seg {
        return Err(bad_object(
            "its prefix, seq or start does not match the key".into(),
        ));
    }
    object::Object::check_time(summary.start_ms(), now).map_err(|e| bad_object(e.to_string()))?;
    let cam = cs
        .camera(&seg.prefix())
        .ok_or_else(|| ApiErr::refused(grant::Refusal::UnknownPrefix))?;
    let dek = cs
        .keys
        .dek(&seg.prefix(), &cam.write_kid)
        .await
        .ok_or_else(|| {
            tracing::warn!(prefix = %seg.prefix(), kid = %cam.write_kid, "no data key");
            ApiErr::unavailable("no_data_key", "the CS has no data key for this camera yet")
        })?;
    let sealed = envelope::seal(&dek, &cam.write_kid, crate::random_bytes::<32>(), &body)
        .map_err(|e| ApiErr::internal("seal", &e))?;
    let row = ObjectRow {
        key: key.clone(),
        prefix: seg.prefix(),
        seq: seg.seq(),
        start_ms: summary.start_ms(),
        end_ms: summary.end_ms(),
        bytes: sealed.len() as u64,
        body_sha256: body_sha256.clone(),
        stored_sha256: hex::encode(Sha256::digest(&sealed)),
        backfilled: now > summary.end_ms().saturating_add(cs.backfill_after_ms),
        kid: cam.write_kid.clone(),
    };
    // Invariant 2: the intent (and quota reservation) is committed before the backend is
    // touched. Invariant 3: a write of the same key in progress is waited for.
    let waiting = Instant::now();
    loop {
        match cs.index.open_intent(&row, &cam.account, now).await? {
            Opened::Intent => break,
            Opened::Stored(existing) => return already(&existing, &key, &body_sha256),
            Opened::Full(f) => {
                return Err(ApiErr::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "quota_full",
                    format!(
                        "the account's storage is full: {} of {} bytes used, {} more needed; prune the oldest or raise the plan",
                        f.used, f.quota, f.need
                    ),
                )
                .with("used", f.used)
                .with("quota", f.quota)
                .with("need", f.need));
            }
            Opened::InFlight => {
                if waiting.elapsed() >= cs.intent_wait {
                    return Err(ApiErr::unavailable(
                        "in_flight",
                        "another write of this object is still in progress; try again",
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // From here the write runs to its end even if the camera hangs up: a cancelled
    // handler would leave the intent (and its reservation) open until the next start, and
    // the camera's retry would wait for it in vain.
    let write = tokio::spawn(write_object(cs.clone(), key, sealed));
    match write.await {
        Ok(answer) => answer,
        Err(e) => Err(ApiErr::internal("write task", &e)),
    }
}

/// Writes an object whose intent is committed, then commits its row (or drops the intent).
async fn write_object(cs: Arc<Cs>, key: String, sealed: Vec<u8>) -> Result<Response, ApiErr> {
    if let Err(e) = cs.backend.put(&key, sealed).await {
        tracing::warn!(%key, error = %e, "object store write failed");
        if let Err(e) = cs.index.drop_intent(&key).await {
            // Recovery at the next start drops it.
            tracing::warn!(%key, error = %e, "could not drop the intent");
        }
        return Err(ApiErr::unavailable(
            "store_unavailable",
            "the object store failed; try again",
        ));
    }
    match cs.index.commit_intent(&key).await? {
        Some(row) => {
            tracing::debug!(%key, bytes = row.bytes, backfilled = row.backfilled, "object stored");
            Ok(stored(StatusCode::CREATED, &row))
        }
        None => Err(ApiErr::internal("commit", &"the intent vanished")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PruneReq {
    need_bytes: u64,
}

#[derive(Serialize)]
struct PruneResp {
    deleted: Vec<Deleted>,
    others: Others,
    freed: u64,
    used: u64,
    quota: u64,
}

/// `POST /cp/v1/prune {need_bytes}` (op `prune`, 8.7.1): deletes the oldest objects of the
/// account's pool until `need_bytes` are free; answers the asking camera's own deletions
/// and only totals of the others'.
async fn prune(
    State(cs): State<Arc<Cs>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErr> {
    let bytes = read_body(body, &headers, SMALL_BODY).await?;
    let prefix = cs.granted_prefix(&headers)?;
    cs.authorize(&headers, Op::Prune, Target::Prefix(prefix))?;
    let req: PruneReq = json_body(&bytes)?;
    // Invariant 5: rows, usage and deletion records first, in one transaction.
    let (plan, acc) = cs
        .index
        .prune(&prefix, req.need_bytes, crate::now_ms())
        .await?;
    for k in &plan.delete {
        let key = k.to_string();
        match cs.backend.delete(&key).await {
            Ok(()) => cs.index.finish_deletion(&key).await?,
            // The deletion row stays; the next start finishes it.
            Err(e) => tracing::warn!(%key, error = %e, "object delete failed; left for recovery"),
        }
    }
    tracing::info!(%prefix, freed = plan.freed, objects = plan.delete.len(), "pruned");
    Ok(axum::Json(PruneResp {
        deleted: plan.own,
        others: plan.others,
        freed: plan.freed,
        used: acc.used,
        quota: acc.quota,
    })
    .into_response())
}
