//! Shared clip links (issue 17 item 9, H.626.4 8.7.1 download; docs/design/cloud-storage.md
//! "Shared clip links as built"): an owner exports a range of a camera's recordings from any
//! recorder and gets a signed, expiring, revocable link that plays and downloads the clip in
//! a browser without an account; the audit log records each use.
//!
//! * `POST /api/v1/devices/{id}/clips` (owners): checks the range (at most 15 minutes) and
//!   the life (1 minute to 30 days), gives the camera a cloud prefix if it has none, stores
//!   the link and answers where the client uploads the clip's MP4: the camera's CS, with a
//!   share grant (op `clip`) for that one key `<prefix>/clips/<share>.mp4`. The client
//!   exports the range with the existing export of the recorder it chose (card, NVR or
//!   cloud) and uploads it once; the CS stores it encrypted and counts it in the pool.
//! * `GET /api/v1/clips`, `DELETE /api/v1/clips/{id}` (owners): the owner's links; revoke.
//! * `GET /c/{id}` (anyone): the page. It checks the link (not revoked, not expired),
//!   audits the view, and embeds the CS's media URL with a fresh share grant (op `read`,
//!   that clip only, `clip_view_ttl_s`). `GET /c/{id}/download` does the same for a download
//!   and redirects to the CS. Both are rate-limited per client address, answer a clear page
//!   when revoked or expired (410) or unknown (404), and are never cached.
//! * Revoked and expired clips are deleted on their CS (Su `cs_clip_delete`) at once and by
//!   a sweep every minute until the CS confirms; a live media URL dies with the object.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use peercam_cloud::ClipKey;
use peercam_cloud::clip::{self, ShareId};
use peercam_cloud::grant::Op;
use peercam_net::Shutdown;
use peercam_record::time::{format_rfc3339, parse_rfc3339};
use peercam_signal::cm_clip::{ClipCreated, ClipRequest, ClipUpload, ClipView};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::control::FieldError;
use sha2::{Digest as _, Sha256};

use crate::api::{RouteInfo, route};
use crate::audit::{self, ClipUse, Event};
use crate::auth::{Need, Principal, device_access};
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::clips::{self as rows, Clip};
use crate::{Shared, cloud, now_s};

/// Largest clip the CS takes by default (its `max_clip_bytes`), told to clients.
const MAX_CLIP_BYTES: u64 = 512 << 20;
/// How often revoked and expired clips are deleted on their CS.
const SWEEP: Duration = Duration::from_secs(60);

/// The clip routes (owners), declared like every other route.
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "POST",
            "/api/v1/devices/{id}/clips",
            Owner,
            "Share a clip of the camera by link (8.7.1 download): at most 15 minutes, a link that expires (1 minute to 30 days) and can be revoked; answers where to upload the clip's MP4 on the camera's cloud storage unit",
            Some("ClipRequest"),
            Some("ClipCreated")
        ),
        route!(
            "GET",
            "/api/v1/clips",
            Owner,
            "The owner's shared clip links, newest first, with their state and uses",
            None,
            Some("ClipView")
        ),
        route!(
            "DELETE",
            "/api/v1/clips/{id}",
            Owner,
            "Revoke a shared clip link: it stops working at once and the clip is deleted from cloud storage",
            None,
            Some("ClipView")
        ),
    ]
}

/// The handler of a clip route.
pub(crate) fn handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<Shared>> {
    use axum::routing::{delete, post};
    Some(match (method, path) {
        ("POST", "/api/v1/devices/{id}/clips") => post(create),
        ("GET", "/api/v1/clips") => get(list),
        ("DELETE", "/api/v1/clips/{id}") => delete(revoke),
        _ => return None,
    })
}

/// The schemas of the clip routes' bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    b.schema_from::<ClipRequest>()
        .schema_from::<ClipCreated>()
        .schema_from::<ClipUpload>()
        .schema_from::<ClipView>()
}

fn link_of(st: &Shared, id: &str) -> String {
    format!("{}/c/{id}", st.public_url.trim_end_matches('/'))
}

fn state_of(c: &Clip, now: u64) -> &'static str {
    if c.revoked_at.is_some() {
        "revoked"
    } else if !c.active(now) {
        "expired"
    } else {
        "active"
    }
}

fn view(st: &Shared, c: &Clip) -> ClipView {
    ClipView {
        id: c.id.clone(),
        link: link_of(st, &c.id),
        camera: c.camera.to_string(),
        from_ms: c.from_ms,
        to_ms: c.to_ms,
        recorder: c.recorder.clone(),
        label: c.label.clone(),
        created_at: c.created_at,
        expires_at: c.expires_at,
        revoked_at: c.revoked_at,
        state: state_of(c, now_s()).into(),
        views: c.views,
        downloads: c.downloads,
    }
}

fn short(id: &str) -> &str {
    id.get(..6).unwrap_or(id)
}

/// `POST /api/v1/devices/{id}/clips`.
async fn create(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(camera): Path<String>,
    Json(req): Json<ClipRequest>,
) -> ApiResult<Json<ClipCreated>> {
    let (camera, _) = device_access(&st, &p, &camera, Need::Owner).await?;
    let time = |field: &str, v: &str| {
        parse_rfc3339(v).map_err(|e| ApiErr::invalid(vec![FieldError::new(field, e.to_string())]))
    };
    let (from, to) = (time("from", &req.from)?, time("to", &req.to)?);
    let life =
        clip::check_request(from, to, req.expires_in_s, req.label.as_deref()).map_err(|e| {
            let field = match e {
                clip::ClipRefusal::Life => "expires_in_s",
                clip::ClipRefusal::Label => "label",
                _ => "to",
            };
            ApiErr::invalid(vec![FieldError::new(field, e.to_string())])
        })?;
    if req
        .recorder
        .as_deref()
        .is_some_and(|r| r.is_empty() || r.len() > 64 || r.chars().any(char::is_control))
    {
        return Err(ApiErr::invalid(vec![FieldError::new(
            "recorder",
            "sd, cloud or a recorder's device id",
        )]));
    }
    let cfg = &st.config.cloud;
    st.limits
        .hit(
            &format!("clip-create:{}", p.id),
            cfg.clips_per_hour,
            Duration::from_secs(3600),
        )
        .await
        .map_err(ApiErr::too_many)?;
    // The clip lives in the camera's cloud sub-space, whatever recorder it comes from.
    let c = cloud::assignment(&st, &camera, p.id).await?;
    cloud::configure_cs(&st, &c).await?;
    let base = cloud::cs_url(&st, &c.cs).ok_or_else(|| {
        ApiErr::conflict(
            "device_offline",
            "the camera's cloud storage unit is offline; try again later",
        )
    })?;
    let id = ShareId::from_bytes(crate::random_bytes::<16>()).to_string();
    let prefix = c
        .prefix
        .parse()
        .map_err(|_| ApiErr::internal("prefix", &"does not parse"))?;
    let key = ClipKey::new(prefix, &id).map_err(|e| ApiErr::internal("clip key", &e))?;
    let (grant, expires_at) = st
        .cloud
        .share_grant(
            (&c.cs, &c.prefix, c.epoch),
            &id,
            &[Op::Clip],
            cfg.clip_upload_ttl_s,
        )
        .map_err(|e| ApiErr::internal("grant", &e))?;
    let now = now_s();
    let row = Clip {
        id: id.clone(),
        camera: camera.clone(),
        owner: p.id,
        cs: c.cs.clone(),
        prefix: c.prefix.clone(),
        epoch: c.epoch,
        from_ms: from,
        to_ms: to,
        recorder: req.recorder.clone(),
        label: req.label.clone(),
        created_at: now,
        expires_at: now + life,
        revoked_at: None,
        deleted_at: None,
        views: 0,
        downloads: 0,
    };
    rows::insert(&st.store, &row).await?;
    let detail = format!(
        "clip {} {} to {}, until {}",
        short(&id),
        format_rfc3339(from),
        format_rfc3339(to),
        format_rfc3339(row.expires_at * 1000)
    );
    audit::log(
        &st.store,
        Event::Clip {
            owner: p.id,
            device: &camera,
            what: ClipUse::Created,
            outcome: "ok",
            detail: &detail,
        },
    )
    .await;
    tracing::info!(%camera, clip = short(&id), life, "clip link made");
    Ok(Json(ClipCreated {
        clip: view(&st, &row),
        upload: ClipUpload {
            url: format!("{}/cp/v1/clip/{key}", base.trim_end_matches('/')),
            grant,
            expires_at,
            max_bytes: MAX_CLIP_BYTES,
        },
    }))
}

/// `GET /api/v1/clips`.
async fn list(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<ClipView>>> {
    let all = rows::of_owner(&st.store, p.id).await?;
    Ok(Json(all.iter().map(|c| view(&st, c)).collect()))
}

fn no_clip() -> ApiErr {
    ApiErr::not_found("no_clip", "no such shared clip")
}

/// `DELETE /api/v1/clips/{id}`.
async fn revoke(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<ClipView>> {
    if id.parse::<ShareId>().is_err() {
        return Err(no_clip());
    }
    let c = rows::revoke(&st.store, p.id, &id, now_s())
        .await?
        .ok_or_else(no_clip)?;
    let detail = format!("clip {}", short(&id));
    audit::log(
        &st.store,
        Event::Clip {
            owner: p.id,
            device: &c.camera,
            what: ClipUse::Revoked,
            outcome: "ok",
            detail: &detail,
        },
    )
    .await;
    tracing::info!(camera = %c.camera, clip = short(&id), "clip link revoked");
    // The object goes at once when the CS is there; else the sweep retries.
    if c.deleted_at.is_none() {
        delete_object(&st, &c).await;
    }
    let c = rows::get(&st.store, &id).await?.ok_or_else(no_clip)?;
    Ok(Json(view(&st, &c)))
}

/// Asks the clip's CS to delete its object; records the deletion when confirmed.
async fn delete_object(st: &Shared, c: &Clip) {
    if !st.platform.is_online(&c.cs) {
        return;
    }
    let cmd = DeviceCommand::CsClipDelete {
        prefix: c.prefix.clone(),
        share: c.id.clone(),
    };
    match st.platform.command(&c.cs, cmd).await {
        Ok((_, DeviceReply::Done)) => {
            if let Err(e) = rows::deleted(&st.store, &c.id, now_s()).await {
                tracing::warn!(error = %e, "clip deletion not recorded");
            }
        }
        other => tracing::info!(cs = %c.cs, reply = ?other, "cs_clip_delete not applied"),
    }
}

/// Deletes revoked and expired clips on their CS every minute.
pub(crate) fn spawn_sweeper(st: Shared, shutdown: Shutdown) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(SWEEP) => {}
            }
            match rows::to_delete(&st.store, now_s(), 100).await {
                Ok(due) => {
                    for c in &due {
                        delete_object(&st, c).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "clip sweep failed"),
            }
        }
    });
}

/// The public link's routes (no account): `/c/{id}` and `/c/{id}/download`.
pub(crate) fn public_router(st: Shared) -> Router {
    Router::new()
        .route("/c/{id}", get(page))
        .route("/c/{id}/download", get(download))
        .with_state(st)
}

/// The page's style, inline, allowed by its hash in the policy.
const STYLE: &str = "body{margin:0;font:16px/1.4 system-ui,sans-serif;background:#111;color:#eee}\
main{max-width:960px;margin:0 auto;padding:16px}h1{font-size:1.3em;margin:.2em 0}\
video{width:100%;max-height:80vh;background:#000}a{color:#8cf}.meta{color:#aaa}";

static STYLE_HASH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(STYLE.as_bytes()))
    )
});

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The origin (`scheme://host:port`) of a URL.
pub(crate) fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or(url, |i| &url[..after + i])
}

fn html(status: StatusCode, media_origin: Option<&str>, state: &str, body: &str) -> Response {
    let doc = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><meta name=\"robots\" content=\"noindex\">\
<title>Shared clip</title><style>{STYLE}</style></head>\
<body data-state=\"{state}\"><main>{body}</main></body></html>\n"
    );
    let csp = format!(
        "default-src 'none'; style-src {}; media-src {}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        *STYLE_HASH,
        media_origin.unwrap_or("'none'")
    );
    let mut resp = (status, doc).into_response();
    let h = resp.headers_mut();
    let mut set = |name: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(header::CONTENT_SECURITY_POLICY, &csp);
    set(header::CACHE_CONTROL, "no-store");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::HeaderName::from_static("x-robots-tag"), "noindex");
    resp
}

fn refusal_page(status: StatusCode, state: &str) -> Response {
    let (title, text) = match state {
        "revoked" => (
            "This clip is no longer shared",
            "Its owner revoked the link.",
        ),
        "expired" => ("This link has expired", "Ask its owner for a new one."),
        "limited" => (
            "Too many requests",
            "Wait a minute and open the link again.",
        ),
        "unavailable" => (
            "The clip cannot be played now",
            "Its storage is not reachable; try again later.",
        ),
        _ => ("No such clip", "Check the link; it may be incomplete."),
    };
    html(
        status,
        None,
        state,
        &format!("<h1>{title}</h1><p>{text}</p>"),
    )
}

/// Checks link `id` for one use, audits it and mints its media URL on the CS.
async fn use_link(
    st: &Shared,
    peer: SocketAddr,
    id: &str,
    download: bool,
) -> Result<(Clip, String), Response> {
    if let Err(retry) = st
        .limits
        .hit(
            &format!("clip-use:{}", peer.ip()),
            st.config.cloud.clip_uses_per_minute,
            Duration::from_secs(60),
        )
        .await
    {
        let mut r = refusal_page(StatusCode::TOO_MANY_REQUESTS, "limited");
        if let Ok(v) = HeaderValue::from_str(&retry.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(r);
    }
    let unknown = || refusal_page(StatusCode::NOT_FOUND, "unknown");
    let Ok(share) = id.parse::<ShareId>() else {
        return Err(unknown());
    };
    let c = match rows::get(&st.store, &share.to_string()).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(unknown()),
        Err(e) => {
            tracing::warn!(error = %e, "clip lookup failed");
            return Err(refusal_page(StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        }
    };
    let now = now_s();
    let state = state_of(&c, now);
    let what = if download {
        ClipUse::Downloaded
    } else {
        ClipUse::Viewed
    };
    let detail = format!("clip {} from {}", short(&c.id), peer.ip());
    let record = |outcome: &'static str| {
        let (st, c, detail) = (st.clone(), c.clone(), detail.clone());
        async move {
            audit::log(
                &st.store,
                Event::Clip {
                    owner: c.owner,
                    device: &c.camera,
                    what,
                    outcome,
                    detail: &detail,
                },
            )
            .await;
        }
    };
    if state != "active" {
        record(state).await;
        return Err(refusal_page(StatusCode::GONE, state));
    }
    let Some(base) = cloud::cs_url(st, &c.cs) else {
        return Err(refusal_page(StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    };
    // The media URL lives `clip_view_ttl_s`, never beyond the link.
    let ttl = st
        .config
        .cloud
        .clip_view_ttl_s
        .min(c.expires_at.saturating_sub(now))
        .max(1);
    let grant = st
        .cloud
        .share_grant((&c.cs, &c.prefix, c.epoch), &c.id, &[Op::Read], ttl);
    let (grant, _) = match grant {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "cannot sign a share grant");
            return Err(refusal_page(StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        }
    };
    let Ok(Ok(key)) = c.prefix.parse().map(|p| ClipKey::new(p, &c.id)) else {
        return Err(unknown());
    };
    record("ok").await;
    if let Err(e) = rows::count_use(&st.store, &c.id, download).await {
        tracing::warn!(error = %e, "clip use not counted");
    }
    let url = format!(
        "{}/cc/v1/clip/{key}?grant={grant}{}",
        base.trim_end_matches('/'),
        if download { "&download=1" } else { "" }
    );
    Ok((c, url))
}

/// `GET /c/{id}`: the page of a shared clip.
async fn page(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    let (c, media) = match use_link(&st, peer, &id, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let title = c.label.as_deref().unwrap_or("Shared clip");
    let body = format!(
        "<h1>{}</h1><p class=\"meta\">{} to {} (UTC) &middot; this link works until {}</p>\
<video id=\"clip\" controls playsinline muted autoplay preload=\"auto\" src=\"{}\"></video>\
<p><a id=\"download\" href=\"/c/{}/download\">Download the clip (MP4)</a></p>",
        escape(title),
        format_rfc3339(c.from_ms),
        format_rfc3339(c.to_ms),
        format_rfc3339(c.expires_at * 1000),
        escape(&media),
        escape(&c.id),
    );
    html(StatusCode::OK, Some(origin(&media)), "active", &body)
}

/// `GET /c/{id}/download`: the clip as a file (a redirect to the CS).
async fn download(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    let (_, media) = match use_link(&st, peer, &id, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut r = StatusCode::FOUND.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&media) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_8_7_1_the_clip_page_escapes_and_names_the_media_origin() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            origin("https://cs.example:8570/cc/v1/clip/x"),
            "https://cs.example:8570"
        );
        assert_eq!(origin("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert!(STYLE_HASH.starts_with("'sha256-"));
    }
}
