//! Shared clips on the CS (issue 17 item 9, H.626.4 8.7.1 download; design "Shared clip
//! links as built"): the owner's client uploads the clip's MP4 once, the CS stores it
//! encrypted at rest like every object (`<prefix>/clips/<share>.mp4`, counted in the
//! account's pool), and serves it decrypted with `Range` to whoever holds a share grant the
//! CMU minted for that clip.
//!
//! | request | grant | answer |
//! |---|---|---|
//! | `PUT /cp/v1/clip/<prefix>/clips/<share>.mp4`, body the MP4 | `Authorization: Bearer`, kind `share`, op `clip` | `201 {key, bytes}`; `409 clip_exists`; `413`; `507 quota_full` |
//! | `GET` (and `HEAD`) `/cc/v1/clip/<prefix>/clips/<share>.mp4?grant=pcg1...[&download=1]` | query `grant`, kind `share`, op `read` | the MP4 (`200`/`206`, `video/mp4`), `404 no_clip` |
//!
//! The grant reaches only its own clip ([`peercam_cloud::grant`]: a share grant's `sub` is
//! the share id). Su `cs_clip_delete` deletes a clip (revoked or expired), row first.
//!
//! Row and object: the row is written first with `stored = 0` (it reserves the bytes in the
//! pool), then the object, then `stored = 1`. A clip not stored is never served; one left
//! so by a crash is removed at the next start (`recover`).

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use peercam_cloud::envelope::{self, CHUNK, Header, Key32};
use peercam_cloud::grant::{self, Op, Target};
use peercam_cloud::{ClipKey, ObjectKey, Prefix};
use serde::Deserialize;
use sqlx::Row as _;

use crate::api::Cs;
use crate::backend::Backend;
use crate::error::ApiErr;
use crate::index::{Index, IndexError, begin_write, int, retry, uint};

/// Plaintext bytes decrypted per read of the store while serving (16 chunks).
const WINDOW: u64 = 16 * CHUNK as u64;
/// Longest envelope header read first (magic, version, kid, salt, chunk size, length).
const HEADER_MAX: u64 = 6 + 32 + 32 + 4 + 8;

/// A clip as the index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipRow {
    /// Its key.
    pub key: String,
    /// The camera's prefix.
    pub prefix: Prefix,
    /// The pool it counts in.
    pub account: String,
    /// Bytes in the store (the envelope).
    pub bytes: u64,
    /// Bytes of the MP4.
    pub plain: u64,
    /// The data key it is sealed with.
    pub kid: String,
    /// Whether the store holds it.
    pub stored: bool,
}

/// How reserving a clip's bytes went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Row written, bytes counted.
    Done,
    /// A clip with this key exists.
    Exists,
    /// The pool is full: used, quota, bytes needed.
    Full(u64, u64, u64),
}

impl Index {
    /// Writes `row` (not yet stored) and counts its bytes in its pool, unless the pool
    /// cannot take them or the key exists.
    pub async fn reserve_clip(&self, row: &ClipRow, now_ms: u64) -> Result<Reserved, IndexError> {
        retry(|| async {
            let mut tx = begin_write(self.pool()).await?;
            let exists = sqlx::query("SELECT 1 FROM clips WHERE key = ?1")
                .bind(&row.key)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_some() {
                return Ok(Reserved::Exists);
            }
            let acc = sqlx::query("SELECT quota, used, reserved FROM accounts WHERE account = ?1")
                .bind(&row.account)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| IndexError::NoAccount(row.account.clone()))?;
            let (quota, used, reserved) = (
                uint(&acc, "quota")?,
                uint(&acc, "used")?,
                uint(&acc, "reserved")?,
            );
            if used.saturating_add(reserved).saturating_add(row.bytes) > quota {
                return Ok(Reserved::Full(used, quota, row.bytes));
            }
            sqlx::query(
                "INSERT INTO clips (key, prefix, account, bytes, plain, kid, created_ms, stored)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
            )
            .bind(&row.key)
            .bind(row.prefix.to_string())
            .bind(&row.account)
            .bind(int(row.bytes))
            .bind(int(row.plain))
            .bind(&row.kid)
            .bind(int(now_ms))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE accounts SET used = used + ?1 WHERE account = ?2")
                .bind(int(row.bytes))
                .bind(&row.account)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Reserved::Done)
        })
        .await
    }

    /// Marks a clip stored (its object is durable).
    pub async fn clip_stored(&self, key: &str) -> Result<(), IndexError> {
        retry(|| async {
            sqlx::query("UPDATE clips SET stored = 1 WHERE key = ?1")
                .bind(key)
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
    }

    /// The clip of `key`.
    pub async fn clip(&self, key: &str) -> Result<Option<ClipRow>, IndexError> {
        retry(|| async {
            let row = sqlx::query(
                "SELECT key, prefix, account, bytes, plain, kid, stored FROM clips WHERE key = ?1",
            )
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
            row.map(|r| clip_of(&r)).transpose()
        })
        .await
    }

    /// Clips whose object was never confirmed (a write cut short).
    pub async fn unstored_clips(&self) -> Result<Vec<String>, IndexError> {
        retry(|| async {
            let rows = sqlx::query("SELECT key FROM clips WHERE stored = 0")
                .fetch_all(self.pool())
                .await?;
            rows.iter()
                .map(|r| r.try_get("key").map_err(IndexError::from))
                .collect()
        })
        .await
    }

    /// Removes a clip's row, gives its bytes back to the pool and records the object's
    /// deletion (row first, design invariant 5). Returns the row it removed.
    pub async fn forget_clip(&self, key: &str, now_ms: u64) -> Result<Option<ClipRow>, IndexError> {
        retry(|| async {
            let mut tx = begin_write(self.pool()).await?;
            let row = sqlx::query(
                "SELECT key, prefix, account, bytes, plain, kid, stored FROM clips WHERE key = ?1",
            )
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row.map(|r| clip_of(&r)).transpose()? else {
                return Ok(None);
            };
            sqlx::query("DELETE FROM clips WHERE key = ?1")
                .bind(key)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE accounts SET used = max(used - ?1, 0) WHERE account = ?2")
                .bind(int(row.bytes))
                .bind(&row.account)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO deletions (key, at_ms) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(int(now_ms))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(row))
        })
        .await
    }
}

fn clip_of(r: &sqlx::sqlite::SqliteRow) -> Result<ClipRow, IndexError> {
    let p: String = r.try_get("prefix")?;
    Ok(ClipRow {
        key: r.try_get("key")?,
        prefix: p
            .parse()
            .map_err(|_| IndexError::Corrupt(format!("prefix {p:?}")))?,
        account: r.try_get("account")?,
        bytes: uint(r, "bytes")?,
        plain: uint(r, "plain")?,
        kid: r.try_get("kid")?,
        stored: uint(r, "stored")? != 0,
    })
}

/// Deletes a clip: row first, then the object, then the deletion record. Idempotent.
pub(crate) async fn delete(
    index: &Index,
    backend: &dyn Backend,
    key: &str,
) -> Result<bool, IndexError> {
    let gone = index.forget_clip(key, crate::now_ms()).await?;
    match backend.delete(key).await {
        Ok(()) => index.finish_deletion(key).await?,
        Err(e) => tracing::warn!(%key, error = %e, "clip delete failed; left for recovery"),
    }
    Ok(gone.is_some())
}

/// At start: clips whose write was cut short are removed (the owner's client saw no
/// answer and shares again).
pub(crate) async fn recover(index: &Index, backend: &dyn Backend) -> Result<usize, IndexError> {
    let keys = index.unstored_clips().await?;
    for key in &keys {
        delete(index, backend, key).await?;
    }
    Ok(keys.len())
}

/// The clip key of a request path, only in its canonical spelling.
fn clip_key(raw: &str) -> Result<ObjectKey, ApiErr> {
    let key: ObjectKey = raw
        .parse()
        .map_err(|e| ApiErr::bad("bad_key", format!("{e}")))?;
    if !matches!(key, ObjectKey::Clip(_)) || key.to_string() != raw {
        return Err(ApiErr::bad(
            "bad_key",
            "a clip key is <prefix>/clips/<share>.mp4",
        ));
    }
    Ok(key)
}

fn share_of(key: &ObjectKey) -> &str {
    match key {
        ObjectKey::Clip(c) => c.share(),
        _ => "",
    }
}

/// CORS for the clip upload route only: the web client, served by the CMU from another
/// origin, uploads the clip it exported with `XMLHttpRequest`. Any origin may, because the
/// bearer grant in `Authorization` is the whole capability: the CS uses no cookies, and `*`
/// forbids credentials, so a page gains nothing it could not do without a browser. The
/// preflight (`OPTIONS`) answers 204; every answer of the PUT, refusals included, carries
/// `Access-Control-Allow-Origin: *` so that the client can read why it was refused.
pub(crate) fn with_cors<S>(put: MethodRouter<S>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    put.options(preflight)
        .layer(axum::middleware::map_response(allow_any_origin))
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "PUT"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

async fn allow_any_origin(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// `PUT /cp/v1/clip/<key>` (a share grant with op `clip`): stores the clip's MP4.
pub(crate) async fn put(
    State(cs): State<Arc<Cs>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiErr> {
    let key = clip_key(&raw)?;
    let claims = cs.authorize_bearer(&headers, Op::Clip, Target::Key(&key))?;
    let prefix = key.prefix();
    let cam = cs
        .camera_of(&prefix)
        .ok_or_else(|| ApiErr::refused(grant::Refusal::UnknownPrefix))?;
    if cs.index.clip(&raw).await?.is_some() {
        return Err(exists());
    }
    let body = crate::api::read_body(body, &headers, cs.max_clip).await?;
    if !peercam_cloud::clip::looks_like_mp4(&body) {
        return Err(ApiErr::bad(
            "bad_clip",
            "a clip is an MP4 file (ftyp first)",
        ));
    }
    let dek = cs.keys.dek(&prefix, &cam.write_kid).await.ok_or_else(|| {
        ApiErr::unavailable("no_data_key", "the CS has no data key for this camera yet")
    })?;
    let sealed = envelope::seal(&dek, &cam.write_kid, crate::random_bytes::<32>(), &body)
        .map_err(|e| ApiErr::internal("seal", &e))?;
    let row = ClipRow {
        key: raw.clone(),
        prefix,
        account: cam.account.clone(),
        bytes: sealed.len() as u64,
        plain: body.len() as u64,
        kid: cam.write_kid.clone(),
        stored: false,
    };
    drop(body);
    match cs.index.reserve_clip(&row, crate::now_ms()).await? {
        Reserved::Done => {}
        Reserved::Exists => return Err(exists()),
        Reserved::Full(used, quota, need) => {
            return Err(ApiErr::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "quota_full",
                format!("the account's storage is full: {used} of {quota} bytes used, {need} more needed"),
            )
            .with("used", used)
            .with("quota", quota)
            .with("need", need));
        }
    }
    // Runs to its end even if the client hangs up (the row must not stay half done).
    let cs2 = cs.clone();
    let write = tokio::spawn(async move {
        if let Err(e) = cs2.backend.put(&row.key, sealed).await {
            tracing::warn!(key = %row.key, error = %e, "clip write failed");
            let _ = delete(&cs2.index, cs2.backend.as_ref(), &row.key).await;
            return Err(ApiErr::unavailable(
                "store_unavailable",
                "the object store failed; try again",
            ));
        }
        cs2.index.clip_stored(&row.key).await?;
        Ok(row)
    });
    let row = match write.await {
        Ok(r) => r?,
        Err(e) => return Err(ApiErr::internal("clip write task", &e)),
    };
    tracing::info!(share = %short(&claims.sub), bytes = row.bytes, "clip stored");
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"key": row.key, "bytes": row.bytes, "plain": row.plain})),
    )
        .into_response())
}

fn exists() -> ApiErr {
    ApiErr::new(
        StatusCode::CONFLICT,
        "clip_exists",
        "this clip is already stored; a clip is written once",
    )
}

fn short(share: &str) -> &str {
    share.get(..6).unwrap_or(share)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ClipQuery {
    grant: Option<String>,
    download: Option<String>,
}

/// `GET`/`HEAD /cc/v1/clip/<key>?grant=...` (a share grant with op `read`): the clip,
/// decrypted, with `Range`.
pub(crate) async fn get(
    State(cs): State<Arc<Cs>>,
    Path(raw): Path<String>,
    Query(q): Query<ClipQuery>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiErr> {
    let key = clip_key(&raw)?;
    let text = q.grant.as_deref().unwrap_or_default();
    cs.authorize_text(text, Op::Read, Target::Key(&key))?;
    let no_clip = || {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            "no_clip",
            "this clip is not stored here (revoked, expired or never uploaded)",
        )
    };
    let row = cs
        .index
        .clip(&raw)
        .await?
        .filter(|r| r.stored)
        .ok_or_else(no_clip)?;
    let len = row.plain;
    let (status, r) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => match peercam_cloud::range::byte_range(v, len) {
            Some(r) => (StatusCode::PARTIAL_CONTENT, r),
            None => {
                let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp);
            }
        },
        None => (StatusCode::OK, 0..len),
    };
    let body = if method == Method::HEAD || r.is_empty() {
        Body::empty()
    } else {
        let dek = cs.keys.dek(&row.prefix, &row.kid).await.ok_or_else(|| {
            ApiErr::unavailable("no_data_key", "the CS has no data key for this clip now")
        })?;
        let head = cs
            .backend
            .get_range(&raw, Some(0..HEADER_MAX.min(row.bytes)))
            .await
            .map_err(|e| ApiErr::internal("clip header", &e))?;
        let h = Header::parse(&head).map_err(|e| ApiErr::internal("clip header", &e))?;
        stream(cs.backend.clone(), raw.clone(), dek, h, r.clone())
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let mut set = |name: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, "video/mp4".into());
    set(header::CONTENT_LENGTH, (r.end - r.start).to_string());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::CACHE_CONTROL, "private, no-store".into());
    set(header::REFERRER_POLICY, "no-referrer".into());
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff".into());
    // The grant in the URL is the only credential (no cookies), so any origin may read it.
    set(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".into());
    set(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        "Content-Length, Content-Range, Accept-Ranges".into(),
    );
    let disposition = if q.download.is_some() {
        "attachment"
    } else {
        "inline"
    };
    set(
        header::CONTENT_DISPOSITION,
        format!(
            "{disposition}; filename=\"clip-{}.mp4\"",
            short(share_of(&key))
        ),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{len}", r.start, r.end - 1),
        );
    }
    Ok(resp)
}

/// The plaintext bytes `r` of the clip `key`, read and opened a window at a time.
fn stream(backend: Arc<dyn Backend>, key: String, dek: Key32, h: Header, r: Range<u64>) -> Body {
    let s = futures_util::stream::unfold(r.start, move |at| {
        let (backend, key, h) = (backend.clone(), key.clone(), h.clone());
        let end = r.end;
        async move {
            if at >= end {
                return None;
            }
            // Windows aligned to chunks, so each chunk is read once.
            let win_end = ((at / WINDOW + 1) * WINDOW).min(end);
            let plain = at..win_end;
            let out = async {
                let c = h.cipher_range(&plain).map_err(std::io::Error::other)?;
                let bytes = backend
                    .get_range(&key, Some(c.bytes))
                    .await
                    .map_err(std::io::Error::other)?;
                envelope::open_range(&dek, &h, &bytes, plain).map_err(std::io::Error::other)
            }
            .await;
            match out {
                Ok(b) => Some((Ok::<_, std::io::Error>(b), win_end)),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "clip read failed");
                    Some((Err(e), end))
                }
            }
        }
    });
    Body::from_stream(s)
}

/// Su `cs_clip_delete`.
pub(crate) async fn su_delete(cs: &Cs, prefix: &str, share: &str) -> Result<bool, String> {
    let p: Prefix = prefix.parse().map_err(|_| "prefix".to_owned())?;
    let key = ClipKey::new(p, share).map_err(|_| "share".to_owned())?;
    delete(&cs.index, cs.backend.as_ref(), &key.to_string())
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::Router;
    use axum::http::Request;
    use tower::ServiceExt as _;

    /// The route as the CS builds it, with a PUT that refuses the key as the real one does.
    fn app() -> Router {
        async fn refuse(Path(raw): Path<String>) -> Result<Response, ApiErr> {
            clip_key(&raw).map(|_| StatusCode::CREATED.into_response())
        }
        Router::new().route("/cp/v1/clip/{*key}", with_cors(axum::routing::put(refuse)))
    }

    #[tokio::test]
    async fn h626_8_7_1_clip_upload_preflight_allows_any_origin_without_credentials() {
        let resp = app()
            .oneshot(
                Request::options("/cp/v1/clip/a/clips/b.mp4")
                    .header(header::ORIGIN, "https://cmu.example")
                    .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
                    .header(
                        header::ACCESS_CONTROL_REQUEST_HEADERS,
                        "authorization,content-type",
                    )
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let h = resp.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "PUT");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "authorization, content-type"
        );
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }

    #[tokio::test]
    async fn h626_8_7_1_clip_upload_answers_carry_the_origin_header_refusals_too() {
        let good = ClipKey::new(Prefix::from_bytes([3; 16]), "c1").unwrap();
        for (path, want) in [
            (
                "/cp/v1/clip/not-a-clip-key".to_owned(),
                StatusCode::BAD_REQUEST,
            ),
            (format!("/cp/v1/clip/{good}"), StatusCode::CREATED),
        ] {
            let resp = app()
                .oneshot(
                    Request::put(&path)
                        .header(header::ORIGIN, "https://cmu.example")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), want, "{path}");
            assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        }
        // A GET is not an upload: no CORS on it (405 from the method router).
        let resp = app()
            .oneshot(
                Request::get("/cp/v1/clip/a/clips/b.mp4")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
