//! Cc download (H.626.4 8.7.1 playback, "the CS sends the record to the CU"; design
//! "Download and export"): `GET /cc/v1/export/<camera>.mp4?from=CLOCK&to=CLOCK&grant=pcg1...`.
//!
//! The grant is a viewer grant the CMU minted for the user (op `read`, the camera's prefix,
//! that range, 5 minutes). Unlike the one-time play tokens it may serve several requests
//! while it lives, so a broken download resumes with `Range`. The MP4 is written once per
//! (prefix, range) by the same exporter as the NVR's ([`peercam_recorder::source`]) and
//! kept until the grant that asked for it expires; its length is known before the first
//! byte (`Content-Length`, `Content-Range`), which is what clients show progress with.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use peercam_cloud::grant::{Op, Target};
use peercam_record::time::{format_clock, parse_clock};
use peercam_recorder::SegmentSource as _;
use peercam_store::{ExportSummary, StoreError};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use crate::api::Cs;
use crate::error::ApiErr;

/// A finished export: its file, what it holds, until when it is kept (Unix ms).
#[derive(Debug, Clone)]
pub(crate) struct Made {
    file: PathBuf,
    summary: ExportSummary,
    until_ms: u64,
}

/// Exports kept for the grants that asked for them, by (prefix, from, to).
#[derive(Debug, Default)]
pub(crate) struct Exports {
    made: Mutex<HashMap<(String, u64, u64), Made>>,
}

impl Exports {
    /// Removes the exports no grant can ask for any more.
    fn sweep(&self, now_ms: u64) {
        let mut m = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        m.retain(|_, made| {
            let keep = made.until_ms > now_ms;
            if !keep {
                let _ = std::fs::remove_file(&made.file);
            }
            keep
        });
    }

    fn get(&self, k: &(String, u64, u64)) -> Option<Made> {
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(k)
            .cloned()
    }

    fn put(&self, k: (String, u64, u64), made: Made) {
        let old = self
            .made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(k, made);
        if let Some(o) = old {
            let _ = std::fs::remove_file(o.file);
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
    grant: Option<String>,
}

/// `GET /cc/v1/export/<camera>.mp4` (and `HEAD`).
pub(crate) async fn export(
    State(cs): State<Arc<Cs>>,
    Path(file): Path<String>,
    Query(q): Query<ExportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiErr> {
    let now = crate::now_ms();
    cs.exports.sweep(now);
    let camera = file.strip_suffix(".mp4").unwrap_or(&file);
    let (Some(from), Some(to)) = (
        q.from.as_deref().and_then(|f| parse_clock(f).ok()),
        q.to.as_deref().and_then(|t| parse_clock(t).ok()),
    ) else {
        return Err(ApiErr::bad(
            "bad_range",
            "from and to are required, as RFC 2326 clock times",
        ));
    };
    if to <= from || to - from > peercam_signal::record::MAX_RANGE_MS {
        return Err(ApiErr::bad(
            "bad_range",
            "the range must be 1 ms to 31 days",
        ));
    }
    let grant = q.grant.clone().unwrap_or_default();
    // A camera the CS does not hold answers as a grant for another prefix would: refused.
    let prefix = cs
        .prefixes
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(camera)
        .copied();
    let Some(prefix) = prefix else {
        return Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "no_recording",
            "nothing is stored for that camera here",
        ));
    };
    let claims = cs.authorize_text(
        &grant,
        Op::Read,
        Target::Range {
            prefix,
            from_ms: from,
            to_ms: to,
        },
    )?;
    let k = (prefix.to_string(), from, to);
    let made = match cs.exports.get(&k) {
        Some(m) => m,
        None => {
            let dir = cs.source.scratch_dir();
            std::fs::create_dir_all(&dir).map_err(|e| ApiErr::internal("export dir", &e))?;
            let file = dir.join(format!("{}.mp4", hex::encode(crate::random_bytes::<8>())));
            let summary = peercam_recorder::source::export_mp4(
                &cs.source,
                camera,
                (from, to),
                &file,
                |_, _| {},
            )
            .await;
            let summary = match summary {
                Ok(s) => s,
                Err(StoreError::Empty { .. }) => {
                    return Err(ApiErr::new(
                        StatusCode::NOT_FOUND,
                        "no_recording",
                        "nothing was recorded in that range",
                    ));
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&file);
                    return Err(ApiErr::internal("export", &e));
                }
            };
            let made = Made {
                file,
                summary,
                until_ms: claims.exp.saturating_mul(1000),
            };
            cs.exports.put(k, made.clone());
            made
        }
    };
    serve_file(&made, camera, headers.get(header::RANGE)).await
}

async fn serve_file(
    made: &Made,
    camera: &str,
    range: Option<&HeaderValue>,
) -> Result<Response, ApiErr> {
    let len = made.summary.bytes;
    let (status, r) = match range.and_then(|v| v.to_str().ok()) {
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
    let mut f = tokio::fs::File::open(&made.file)
        .await
        .map_err(|e| ApiErr::internal("export file", &e))?;
    f.seek(std::io::SeekFrom::Start(r.start))
        .await
        .map_err(|e| ApiErr::internal("export file", &e))?;
    let mut left = r.end - r.start;
    let stream = futures_util::stream::unfold((f, left), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; (64 * 1024).min(left as usize)];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), (f, left - n as u64)))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    left = r.end - r.start;
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let mut set = |name: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, "video/mp4".into());
    set(header::CONTENT_LENGTH, left.to_string());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::CACHE_CONTROL, "no-store".into());
    set(
        header::CONTENT_DISPOSITION,
        format!(
            "attachment; filename=\"{camera}-{}.mp4\"",
            format_clock(made.summary.start_ms)
        ),
    );
    set(
        header::HeaderName::from_static("x-frames"),
        made.summary.frames.to_string(),
    );
    set(
        header::HeaderName::from_static("x-start"),
        format_clock(made.summary.start_ms),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{len}", r.start, r.end - 1),
        );
    }
    Ok(resp)
}
