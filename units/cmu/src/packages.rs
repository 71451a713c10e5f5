//! Release packages and device upgrades (H.626.4 8.11.1, docs/security.md D9).
//!
//! The operator uploads a signed manifest, then its payload; the CMU checks the signatures
//! with its own copy of the release keys and the payload against the manifest's hash. An
//! owner orders an upgrade; the CMU checks the versions (newer than the device's, for its
//! model, not expired) and sends the signed manifest and a download location CMU -> SCU -> PU.
//! The device checks everything again: the CMU is a distributor, not a root of trust.

use std::path::PathBuf;

use crate::json::Json;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use futures_util::StreamExt as _;
use peercam_base::Scope;
use peercam_signal::cm::{PackageView, UpgradeOrder};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::upgrade::{Policy, SignedManifest, UpgradeStatus, Version, parse_key};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::audit::{self, Event};
use crate::auth::{Need, Principal, device_access};
use crate::error::{ApiErr, ApiResult};
use crate::store::packages::{self as store, NewPackage};
use crate::{Shared, now_s};

fn dir(st: &Shared) -> PathBuf {
    st.config.data_dir.join("packages")
}

fn valid_sha(sha: &str) -> ApiResult<()> {
    if sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such package",
        ))
    }
}

/// Step 0 (operator): register a signed manifest.
pub(crate) async fn upload_manifest(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(release): Json<SignedManifest>,
) -> ApiResult<(StatusCode, Json<PackageView>)> {
    let keys = st
        .config
        .release_keys
        .iter()
        .filter_map(|k| parse_key(k).ok())
        .collect::<Vec<_>>();
    if keys.is_empty() {
        return Err(ApiErr::conflict(
            "no_release_keys",
            "this CMU trusts no release keys (cmu.toml `release_keys`)",
        ));
    }
    let m = &release.manifest;
    release
        .verify(&Policy {
            keys: &keys,
            threshold: st.config.release_threshold,
            model: &m.model,
            now: now_s(),
            installed: Version::default(),
        })
        .map_err(|e| ApiErr::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()))?;
    let manifest = serde_json::to_string(&release).map_err(|e| ApiErr::internal("manifest", &e))?;
    let new = NewPackage {
        sha256: &m.sha256,
        version: &m.version,
        model: &m.model,
        size: m.size,
        expires_at: m.expires_at,
        manifest: &manifest,
    };
    if !store::put_manifest(&st.store, new, now_s()).await? {
        return Err(ApiErr::conflict(
            "package_exists",
            "another package already has this version for this model, or this payload",
        ));
    }
    let (by, model, version) = (p.id, m.model.as_str(), m.version.as_str());
    audit::log(&st.store, Event::PackageManifest { by, model, version }).await;
    let stored = store::get(&st.store, &m.sha256)
        .await?
        .ok_or_else(|| ApiErr::internal("package", &"vanished after upload"))?;
    Ok((StatusCode::CREATED, Json(stored.view)))
}

/// Step 0 (operator): the payload, streamed to disk, capped at the manifest's size and
/// checked against its hash before it is offered to any device.
pub(crate) async fn upload_payload(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(sha): Path<String>,
    body: Body,
) -> ApiResult<Json<PackageView>> {
    valid_sha(&sha)?;
    let row = store::get(&st.store, &sha).await?.ok_or_else(|| {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "upload the signed manifest first",
        )
    })?;
    let size = row.view.size;
    let d = dir(&st);
    tokio::fs::create_dir_all(&d)
        .await
        .map_err(|e| ApiErr::internal("package dir", &e))?;
    let part = d.join(format!("{sha}.part"));
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| ApiErr::internal("package file", &e))?;
    let mut hash = Sha256::new();
    let mut have = 0u64;
    let mut stream = body.into_data_stream();
    let fail = |e: ApiErr| {
        let part = part.clone();
        async move {
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    };
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return fail(ApiErr::bad_request(
                    "upload_broken",
                    format!("the upload broke off: {e}"),
                ))
                .await;
            }
        };
        have += chunk.len() as u64;
        if have > size {
            return fail(ApiErr::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the manifest says {size} bytes"),
            ))
            .await;
        }
        hash.update(&chunk);
        if let Err(e) = file.write_all(&chunk).await {
            return fail(ApiErr::internal("package write", &e)).await;
        }
    }
    if have != size || hex::encode(hash.finalize()) != sha {
        return fail(ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "hash_mismatch",
            "the payload does not match the manifest's size and SHA-256",
        ))
        .await;
    }
    file.sync_all()
        .await
        .map_err(|e| ApiErr::internal("package sync", &e))?;
    tokio::fs::rename(&part, d.join(&sha))
        .await
        .map_err(|e| ApiErr::internal("package rename", &e))?;
    store::mark_stored(&st.store, &sha).await?;
    audit::log(
        &st.store,
        Event::PackagePayload {
            by: p.id,
            sha256: &sha,
        },
    )
    .await;
    let mut view = row.view;
    view.stored = true;
    Ok(Json(view))
}

/// The operator's list of packages.
pub(crate) async fn list(State(st): State<Shared>) -> ApiResult<Json<Vec<PackageView>>> {
    let all = store::all(&st.store).await?;
    Ok(Json(all.into_iter().map(|p| p.view).collect()))
}

/// Devices download payloads here, resumably (`Range: bytes=N-`). Public: a payload is
/// named by its hash and trusted only through the signed manifest.
pub(crate) async fn download(
    State(st): State<Shared>,
    Path(sha): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    valid_sha(&sha)?;
    let size = store::get(&st.store, &sha)
        .await?
        .filter(|p| p.view.stored)
        .map(|p| p.view.size)
        .ok_or_else(|| ApiErr::new(StatusCode::NOT_FOUND, "not_found", "no such package"))?;
    let from = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<u64>().ok());
    let start = from.unwrap_or(0);
    if start >= size && size > 0 {
        let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return Ok(r);
    }
    let mut file = tokio::fs::File::open(dir(&st).join(&sha))
        .await
        .map_err(|e| ApiErr::internal("package open", &e))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| ApiErr::internal("package seek", &e))?;
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&(size - start).to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if from.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", size - 1)) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// H.626.4 8.11.1 steps 1-3: the owner orders, the CMU checks the versions and sends the
/// upgrade through the SCU to the PU.
pub(crate) async fn order(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<UpgradeOrder>,
) -> ApiResult<Json<UpgradeStatus>> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    let want: Version =
        req.version
            .parse()
            .map_err(|e: peercam_signal::upgrade::UpgradeError| {
                ApiErr::bad_request("bad_version", e.to_string())
            })?;
    let dev = crate::store::devices::get(&st.store, &id)
        .await?
        .ok_or_else(ApiErr::no_device)?;
    let model = dev.model;
    let running = dev.sw_version;
    let running: Version = running
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    if want <= running {
        return Err(ApiErr::conflict(
            "not_newer",
            format!("the device runs {running}; {want} is not newer"),
        ));
    }
    let row = store::by_version(&st.store, &model, &want.to_string())
        .await?
        .ok_or_else(|| {
            ApiErr::new(
                StatusCode::NOT_FOUND,
                "no_package",
                format!("no package {want} for model {model:?}"),
            )
        })?;
    if !row.view.stored {
        return Err(ApiErr::conflict(
            "payload_missing",
            "the package's payload is not uploaded yet",
        ));
    }
    if row.view.expires_at < now_s() {
        return Err(ApiErr::conflict(
            "expired",
            "the package's manifest has expired",
        ));
    }
    let release: SignedManifest =
        serde_json::from_str(&row.manifest).map_err(|e| ApiErr::internal("stored manifest", &e))?;
    let sha = &row.view.sha256;
    let url = format!(
        "{}/api/v1/packages/{sha}",
        st.public_url.trim_end_matches('/')
    );
    let (_, reply) = st
        .platform
        .command(&id, DeviceCommand::Upgrade { release, url })
        .await?;
    match reply {
        DeviceReply::Upgrade { status } => {
            let version = want.to_string();
            let (by, device) = (p.id, &id);
            let e = Event::Upgrade {
                by,
                device,
                version: &version,
                refused: None,
            };
            audit::log(&st.store, e).await;
            crate::alarms::up::watch_upgrade(&st, id.clone(), running.to_string(), version);
            Ok(Json(status))
        }
        DeviceReply::Failed { code, message } => {
            let version = want.to_string();
            let (by, device, refused) = (p.id, &id, Some((code.as_str(), message.as_str())));
            audit::log(
                &st.store,
                Event::Upgrade {
                    by,
                    device,
                    version: &version,
                    refused,
                },
            )
            .await;
            Err(ApiErr::new(
                StatusCode::CONFLICT,
                "device_refused",
                format!("the device refused the release ({code}): {message}"),
            ))
        }
        _ => Err(ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "device_failed",
            "the device gave an unexpected answer",
        )),
    }
}

/// H.626.4 8.11.1 step 5: progress and result, from the device.
pub(crate) async fn status(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<UpgradeStatus>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    let (_, reply) = st
        .platform
        .command(&id, DeviceCommand::UpgradeStatus)
        .await?;
    match reply {
        DeviceReply::Upgrade { status } => Ok(Json(status)),
        _ => Err(ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "device_failed",
            "the device gave an unexpected answer",
        )),
    }
}

/// Query of `GET /api/v1/client/update`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ClientQuery {
    platform: String,
    version: String,
}

/// H.626.4 8.11.2 steps 1-2: a client (M_CU, CLI) asks for the current release of its
/// platform; the CMU compares versions and answers with the signed release and its URL.
/// Client releases are packages whose model is the client platform (`cli-linux-x86_64`).
pub(crate) async fn client_update(
    State(st): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<ClientQuery>,
) -> ApiResult<Json<peercam_signal::cm::ClientUpdate>> {
    let current: Version =
        q.version
            .parse()
            .map_err(|e: peercam_signal::upgrade::UpgradeError| {
                ApiErr::bad_request("bad_version", e.to_string())
            })?;
    // The web client is served by this CMU: the version it serves is the current one, and
    // updating is reloading the page (its service worker fetches the new files).
    if q.platform == "web" {
        let served: Version = env!("CARGO_PKG_VERSION").parse().map_err(
            |e: peercam_signal::upgrade::UpgradeError| ApiErr::internal("CMU version", &e),
        )?;
        let newer = served > current;
        return Ok(Json(peercam_signal::cm::ClientUpdate {
            update_available: newer,
            release: None,
            url: newer.then(|| format!("{}/", st.public_url.trim_end_matches('/'))),
        }));
    }
    let rows = store::available(&st.store, &q.platform, now_s()).await?;
    let newest = rows
        .iter()
        .filter_map(|r| {
            let v: Version = r.view.version.parse().ok()?;
            Some((v, r))
        })
        .max_by_key(|(v, _)| *v);
    let Some((v, row)) = newest.filter(|(v, _)| *v > current) else {
        return Ok(Json(peercam_signal::cm::ClientUpdate {
            update_available: false,
            release: None,
            url: None,
        }));
    };
    let _ = v;
    let release: SignedManifest =
        serde_json::from_str(&row.manifest).map_err(|e| ApiErr::internal("stored manifest", &e))?;
    let sha = &row.view.sha256;
    Ok(Json(peercam_signal::cm::ClientUpdate {
        update_available: true,
        release: Some(release),
        url: Some(format!(
            "{}/api/v1/packages/{sha}",
            st.public_url.trim_end_matches('/')
        )),
    }))
}

/// H.626.4 8.11.2 last step: the client reports that it updated (kept in the audit log).
pub(crate) async fn client_report(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(r): Json<peercam_signal::cm::ClientUpdateReport>,
) -> ApiResult<StatusCode> {
    let outcome = if r.outcome == "updated" {
        "ok"
    } else {
        "failed"
    };
    let detail: String = format!("{} {} {}", r.platform, r.version, r.detail)
        .chars()
        .take(200)
        .collect();
    let ok = outcome == "ok";
    audit::log(
        &st.store,
        Event::ClientUpdate {
            user: p.id,
            ok,
            detail: &detail,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
