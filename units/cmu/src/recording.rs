//! Recording on an NVR (H.626.4 8.7.2) and on a camera's SD card (8.7.3): attaching cameras
//! to NVRs, strategies, record lists, playback and export URLs, events, and the NVR's
//! stream requests (8.7.2.1 steps 16-18).
//!
//! Every order is authorised here for the exact (user, camera, scope) and routed
//! CMU -> SCU -> recorder. Media never passes through the platform: playback and export
//! URLs point at the recorder and carry a one-time token naming the recorder *and* the
//! camera, which the recorder has the CMU judge (8.4 steps 5-8) before serving a byte.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use peercam_base::{DeviceId, Scope, ScopeSet};
use peercam_record::time::{format_clock, format_rfc3339, parse_rfc3339};
use peercam_signal::cm::{
    AttachCamera, AttachedCamera, EventAccepted, EventRequest, ExportRequest, ExportResponse,
    PlaybackRequest, PlaybackResponse, SetRecordingRequest,
};
use peercam_signal::cmd::{DeviceCommand, DeviceReply, PlatformAnswer};
use peercam_signal::control::FieldError;
use peercam_signal::play::Caps;
use peercam_signal::ps::DeviceKind;
use peercam_signal::record::{MAX_RANGE_MS, RecordingList};
use peercam_signal::refusal::Refusal;
use serde::Deserialize;

use crate::audit::{self, Event, Minted, Service};
use crate::auth::{Need, Principal, device_access};
use crate::control::device_error;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::{self, recordings};
use crate::{Shared, now_s, token};

async fn device(st: &Shared, id: &DeviceId) -> ApiResult<store::devices::Device> {
    store::devices::get(&st.store, id)
        .await?
        .ok_or_else(ApiErr::no_device)
}

/// Which device records `camera`: `sd` (or the camera's own id) is the camera; an NVR id
/// must be attached to it; absent picks the first attached NVR, else the SD card.
pub(crate) async fn resolve_recorder(
    st: &Shared,
    camera: &DeviceId,
    recorder: Option<&str>,
) -> ApiResult<DeviceId> {
    match recorder {
        Some("sd") => Ok(camera.clone()),
        // H.626.4 8.7.1 playback: the CS holding the camera's prefix for its owner now.
        Some("cloud") => crate::cloud::recorder_of(st, camera).await,
        Some(r) => {
            let id: DeviceId = r.parse().map_err(|_| {
                ApiErr::bad_request("bad_recorder", "recorder is `sd` or an NVR's device id")
            })?;
            if &id == camera {
                return Ok(id);
            }
            let linked = recordings::is_attached(&st.store, camera, &id).await?;
            linked.then_some(id).ok_or_else(|| {
                ApiErr::conflict(
                    "not_attached",
                    "that NVR does not record this camera; attach the camera to it first",
                )
            })
        }
        None => {
            let nvr = recordings::first_nvr(&st.store, camera).await?;
            Ok(nvr.unwrap_or_else(|| camera.clone()))
        }
    }
}

fn recorder_label(camera: &DeviceId, recorder: &DeviceId) -> String {
    if camera == recorder {
        "sd".into()
    } else {
        recorder.to_string()
    }
}

/// The label of the recorder asked for: `cloud` for the camera's CS, else as
/// [`recorder_label`].
fn label_of(camera: &DeviceId, recorder: &DeviceId, asked: Option<&str>) -> String {
    if asked == Some("cloud") {
        "cloud".into()
    } else {
        recorder_label(camera, recorder)
    }
}

/// The recorder a playback of `start` (Unix ms) uses and its label: the one asked for, else
/// (6.3.2, nearest first) the first recorder holding that moment, else as
/// [`resolve_recorder`] without a recorder (the first NVR, else the card).
async fn play_recorder(
    st: &Shared,
    camera: &DeviceId,
    asked: Option<&str>,
    start: u64,
) -> ApiResult<(DeviceId, String)> {
    if asked.is_none()
        && let Some((name, recorder)) = crate::timeline::holder_of(st, camera, start).await?
    {
        let label = if name == "cloud" {
            name
        } else {
            recorder_label(camera, &recorder)
        };
        return Ok((recorder, label));
    }
    let recorder = resolve_recorder(st, camera, asked).await?;
    let label = label_of(camera, &recorder, asked);
    Ok((recorder, label))
}

/// `POST /api/v1/devices/{nvr}/cameras`: 8.7.2.1 steps 1-8, CU -> CMU -> SCU -> NVR.
pub(crate) async fn attach(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(nvr): Path<String>,
    Json(req): Json<AttachCamera>,
) -> ApiResult<(StatusCode, Json<AttachedCamera>)> {
    let (nvr, _) = device_access(&st, &p, &nvr, Need::Owner).await?;
    if device(&st, &nvr).await?.kind != DeviceKind::Nvr {
        return Err(ApiErr::bad_request(
            "not_an_nvr",
            "cameras can only be attached to an NVR",
        ));
    }
    let (camera, _) = device_access(&st, &p, &req.camera, Need::Owner).await?;
    let cam = device(&st, &camera).await?;
    if cam.kind != DeviceKind::Pu {
        return Err(ApiErr::bad_request(
            "not_a_camera",
            "only cameras can be attached to an NVR",
        ));
    }
    let public_key = cam.public_key;
    let (_, reply) = st
        .platform
        .command(
            &nvr,
            DeviceCommand::RecorderAttach {
                camera: camera.clone(),
                public_key,
            },
        )
        .await?;
    let lan = match reply {
        DeviceReply::Attached { lan, .. } => lan,
        other => return Err(device_error(other)),
    };
    recordings::attach(&st.store, &camera, &nvr, None, now_s()).await?;
    let (nvr, camera) = (&nvr, &camera);
    audit::log(
        &st.store,
        Event::NvrAttached {
            by: p.id,
            nvr,
            camera,
        },
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(AttachedCamera {
            nvr: nvr.to_string(),
            camera: camera.to_string(),
            lan,
        }),
    ))
}

/// `?wipe=true` deletes the recordings too.
#[derive(Debug, Deserialize)]
pub(crate) struct DetachQuery {
    #[serde(default)]
    wipe: bool,
}

/// `DELETE /api/v1/devices/{nvr}/cameras/{camera}`.
pub(crate) async fn detach(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path((nvr, camera)): Path<(String, String)>,
    Query(q): Query<DetachQuery>,
) -> ApiResult<StatusCode> {
    let (nvr, _) = device_access(&st, &p, &nvr, Need::Owner).await?;
    let camera: DeviceId = camera.parse().map_err(|_| ApiErr::no_device())?;
    // The link goes first: from now on the NVR's stream requests for the camera fail.
    if !recordings::detach(&st.store, &camera, &nvr).await? {
        return Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "not_attached",
            "that camera is not attached to this NVR",
        ));
    }
    let told = st
        .platform
        .command(
            &nvr,
            DeviceCommand::RecorderDetach {
                camera: camera.clone(),
                wipe: q.wipe,
            },
        )
        .await;
    let (nvr, camera, told) = (&nvr, &camera, told.is_ok());
    audit::log(
        &st.store,
        Event::NvrDetached {
            by: p.id,
            nvr,
            camera,
            told,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/devices/{id}/recording`: 8.7.2.1 steps 9-15 (NVR) or 8.7.3 (SD card).
pub(crate) async fn set_strategy(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(camera): Path<String>,
    Json(req): Json<SetRecordingRequest>,
) -> ApiResult<Response> {
    let (camera, _) = device_access(&st, &p, &camera, Need::Scope(Scope::Config)).await?;
    if let Err(e) = req.strategy.validate() {
        let field = match &e {
            peercam_record::Error::Strategy { field, .. } => format!("strategy.{field}"),
            _ => "strategy".into(),
        };
        return Err(ApiErr::invalid(vec![FieldError::new(field, e.to_string())]));
    }
    if req.recorder.as_deref() == Some("cloud") {
        // H.626.4 8.7.1: the cloud strategy goes to the camera, which uploads to its CS.
        let state = crate::cloud::set_strategy(&st, &camera, &req.strategy).await?;
        let (by, camera) = (p.id, &camera);
        let recorder = "cloud";
        audit::log(
            &st.store,
            Event::RecordingStrategy {
                by,
                camera,
                recorder,
            },
        )
        .await;
        return Ok(Json(state).into_response());
    }
    let recorder = resolve_recorder(&st, &camera, req.recorder.as_deref()).await?;
    let (_, reply) = st
        .platform
        .command(
            &recorder,
            DeviceCommand::SetRecording {
                camera: camera.clone(),
                strategy: req.strategy.clone(),
            },
        )
        .await?;
    let state = match reply {
        DeviceReply::Recording { state } => state,
        other => return Err(device_error(other)),
    };
    let doc = serde_json::to_string(&req.strategy).unwrap_or_default();
    recordings::attach(&st.store, &camera, &recorder, Some(&doc), now_s()).await?;
    let label = recorder_label(&camera, &recorder);
    let (by, camera) = (p.id, &camera);
    audit::log(
        &st.store,
        Event::RecordingStrategy {
            by,
            camera,
            recorder: &label,
        },
    )
    .await;
    Ok(Json(state).into_response())
}

/// `?recorder=` (and for lists `from`, `to` in RFC 3339).
#[derive(Debug, Deserialize)]
pub(crate) struct RecorderQuery {
    recorder: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/devices/{id}/recording`.
pub(crate) async fn get_strategy(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(camera): Path<String>,
    Query(q): Query<RecorderQuery>,
) -> ApiResult<Response> {
    let (camera, _) = device_access(&st, &p, &camera, Need::Scope(Scope::Playback)).await?;
    if q.recorder.as_deref() == Some("cloud") {
        // 8.7.1: the camera's uploads (backlog, acknowledgements, the pool as last heard).
        return Ok(Json(crate::cloud::state(&st, &camera).await?).into_response());
    }
    let recorder = resolve_recorder(&st, &camera, q.recorder.as_deref()).await?;
    let (_, reply) = st
        .platform
        .command(
            &recorder,
            DeviceCommand::GetRecording {
                camera: camera.clone(),
            },
        )
        .await?;
    match reply {
        DeviceReply::Recording { state } => {
            if state.full {
                // 6.1.9: the recorder stopped on a full store.
                let _ = crate::alarms::up::storage_full(&st, &camera, &recorder, None).await;
            }
            Ok(Json(state).into_response())
        }
        other => Err(device_error(other)),
    }
}

fn range(from: Option<&str>, to: Option<&str>) -> ApiResult<(u64, u64)> {
    let parse = |field: &str, v: Option<&str>| -> ApiResult<u64> {
        let v = v.ok_or_else(|| {
            ApiErr::invalid(vec![FieldError::new(
                field,
                "required, RFC 3339 (2026-11-24T03:00:00Z)",
            )])
        })?;
        parse_rfc3339(v).map_err(|e| ApiErr::invalid(vec![FieldError::new(field, e.to_string())]))
    };
    let from = parse("from", from)?;
    let to = parse("to", to)?;
    if to <= from || to - from > MAX_RANGE_MS {
        return Err(ApiErr::invalid(vec![FieldError::new(
            "to",
            "must be after `from`, at most 31 days later",
        )]));
    }
    Ok((from, to))
}

pub(crate) async fn list_on(
    st: &Shared,
    camera: &DeviceId,
    recorder: &DeviceId,
    from_ms: u64,
    to_ms: u64,
) -> ApiResult<RecordingList> {
    let (_, reply) = st
        .platform
        .command(
            recorder,
            DeviceCommand::ListRecordings {
                camera: camera.clone(),
                from_ms,
                to_ms,
            },
        )
        .await?;
    match reply {
        DeviceReply::Recordings { list } if &list.camera == camera => Ok(list),
        DeviceReply::Recordings { .. } => Err(ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "device_failed",
            "the recorder answered for another camera",
        )),
        other => Err(device_error(other)),
    }
}

/// `GET /api/v1/devices/{id}/recordings?from=&to=`: the record list (8.7.2.2 steps 1-6) of
/// `recorder`; without it, the merged timeline of every recorder of the camera (6.3.2, a
/// superset of the record list).
pub(crate) async fn list(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(camera): Path<String>,
    Query(q): Query<RecorderQuery>,
) -> ApiResult<Response> {
    let (camera, _) = device_access(&st, &p, &camera, Need::Scope(Scope::Playback)).await?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref())?;
    let Some(recorder) = q.recorder.as_deref() else {
        let t = crate::timeline::merged(&st, &camera, from, to).await?;
        return Ok(Json(t).into_response());
    };
    let recorder = resolve_recorder(&st, &camera, Some(recorder)).await?;
    Ok(Json(list_on(&st, &camera, &recorder, from, to).await?).into_response())
}

/// A playback token: for `recorder`, covering `camera`'s recordings (D3, D4).
async fn mint_playback(
    st: &Shared,
    p: &Principal,
    scopes: ScopeSet,
    (camera, recorder, label): (&DeviceId, &DeviceId, &str),
    kind: Minted,
) -> ApiResult<(String, u64, String)> {
    // A CS reports Cp's URL first and its playback address as `rtsp://HOST:PORT`; an NVR
    // or a camera reports bare `HOST:PORT` authorities.
    let endpoints = st.platform.endpoints(recorder);
    let endpoint = if label == "cloud" {
        endpoints
            .iter()
            .find_map(|e| e.strip_prefix("rtsp://"))
            .map(str::to_owned)
    } else {
        endpoints.into_iter().next()
    }
    .ok_or_else(|| {
        ApiErr::conflict(
            "device_offline",
            "the recorder is offline or has not reported a media address yet",
        )
    })?;
    let (claims, token) = token::mint(
        st,
        p,
        (recorder, scopes),
        Caps::default(),
        Some(camera),
        (kind, label),
    )
    .await?;
    Ok((token, claims.exp, endpoint))
}

/// `POST /api/v1/devices/{id}/recordings/play`: a playback URL on the recorder (Nc/Nc').
pub(crate) async fn playback(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Path(camera): Path<String>,
    Json(req): Json<PlaybackRequest>,
) -> ApiResult<Json<PlaybackResponse>> {
    let (camera, access) = device_access(&st, &p, &camera, Need::Scope(Scope::Playback)).await?;
    let start = parse_rfc3339(&req.start)
        .map_err(|e| ApiErr::invalid(vec![FieldError::new("start", e.to_string())]))?;
    let (recorder, label) = play_recorder(&st, &camera, req.recorder.as_deref(), start).await?;
    let (token, expires_at, endpoint) = mint_playback(
        &st,
        &p,
        access.scopes,
        (&camera, &recorder, &label),
        Minted::PlaybackUrl,
    )
    .await?;
    let rec = format!("/rec/{camera}?start={}&token={token}", format_clock(start));
    let direct = format!("rtsp://{endpoint}{rec}");
    // H.626.4 8.3 for recorders: the live-view ladder (Mn/Nd through the MTU's pipe last).
    // The camera's SD card is reached on its own addresses only; a CS reports its
    // playback URL itself and has a public address.
    let (paths, url) = match st.platform.addresses(&recorder) {
        Some(addrs) if recorder != camera && label != "cloud" => {
            // Only an NVR answers `punch` (a CS has a public address).
            let nvr = device(&st, &recorder).await?.kind == DeviceKind::Nvr;
            let target = crate::relay::Target {
                device: &recorder,
                direct: rec.clone(),
                relay: Some(format!("/pipe/{recorder}{rec}")),
                punch: nvr.then(|| rec.clone()),
            };
            let (paths, best) = crate::relay::paths_to(&st, &target, &addrs, client).await;
            let url = paths.get(best).map_or(direct, |b| b.url.clone());
            (paths, url)
        }
        _ => (Vec::new(), direct),
    };
    Ok(Json(PlaybackResponse {
        url,
        recorder: label,
        expires_at,
        paths,
    }))
}

/// `POST /api/v1/devices/{id}/recordings/webrtc`: playback for browsers. The CMU mints a
/// playback token for the recorder and camera (as for an RTSP URL) and hands it with the
/// offer to the recorder, which has it judged before answering (8.4 steps 5-8).
pub(crate) async fn playback_webrtc(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Path(camera): Path<String>,
    Json(req): Json<peercam_signal::cm::PlaybackWebRtcRequest>,
) -> ApiResult<Json<peercam_signal::cm::WebRtcAnswer>> {
    let (camera, access) = device_access(&st, &p, &camera, Need::Scope(Scope::Playback)).await?;
    if req.offer.len() > 32 * 1024 || !req.offer.starts_with("v=0") {
        return Err(ApiErr::bad_request(
            "bad_offer",
            "send the browser's SDP offer (at most 32 KiB) in `offer`",
        ));
    }
    let start = parse_rfc3339(&req.start)
        .map_err(|e| ApiErr::invalid(vec![FieldError::new("start", e.to_string())]))?;
    let (recorder, label) = play_recorder(&st, &camera, req.recorder.as_deref(), start).await?;
    let (token, _, _) = mint_playback(
        &st,
        &p,
        access.scopes,
        (&camera, &recorder, &label),
        Minted::PlaybackWebRtc,
    )
    .await?;
    let stun = st
        .platform
        .select_mtu(&recorder)
        .await
        .as_ref()
        .and_then(crate::relay::stun_of);
    let command = DeviceCommand::PlaybackWebRtc {
        camera: camera.clone(),
        start_ms: start,
        offer: req.offer,
        token,
        client: client.to_string(),
        stun,
    };
    let (_, reply) = st.platform.command(&recorder, command).await?;
    match reply {
        DeviceReply::WebRtc { answer } => Ok(Json(peercam_signal::cm::WebRtcAnswer {
            answer,
            session: label,
        })),
        DeviceReply::Failed { code, message } if code == "no_recording" => {
            Err(ApiErr::new(StatusCode::NOT_FOUND, "no_recording", message))
        }
        other => Err(device_error(other)),
    }
}

/// `POST /api/v1/devices/{id}/recordings/export`: 8.7.2.2 steps 7-10.
pub(crate) async fn export(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(camera): Path<String>,
    Json(req): Json<ExportRequest>,
) -> ApiResult<Json<ExportResponse>> {
    let (camera, access) = device_access(&st, &p, &camera, Need::Scope(Scope::Playback)).await?;
    let (from, to) = range(Some(&req.from), Some(&req.to))?;
    let recorder = resolve_recorder(&st, &camera, req.recorder.as_deref()).await?;
    // Steps 7-8: the recorder confirms what it holds.
    let list = list_on(&st, &camera, &recorder, from, to).await?;
    if list.spans.is_empty() {
        return Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "no_recording",
            format!(
                "nothing was recorded between {} and {}",
                format_rfc3339(from),
                format_rfc3339(to)
            ),
        ));
    }
    if req.recorder.as_deref() == Some("cloud") {
        // 8.7.1 download: a short-lived viewer grant for that range, checked by the CS
        // itself; it serves several Range requests while it lives.
        let (url, expires_at) = crate::cloud::export_url(&st, &p, &camera, from, to).await?;
        return Ok(Json(ExportResponse {
            url,
            bytes: list.spans.iter().map(|s| s.bytes).sum(),
            spans: list.spans,
            expires_at,
        }));
    }
    let label = label_of(&camera, &recorder, req.recorder.as_deref());
    let (token, expires_at, endpoint) = mint_playback(
        &st,
        &p,
        access.scopes,
        (&camera, &recorder, &label),
        Minted::ExportUrl,
    )
    .await?;
    Ok(Json(ExportResponse {
        url: format!(
            "http://{endpoint}/export/{camera}.mp4?from={}&to={}&token={token}",
            format_clock(from),
            format_clock(to)
        ),
        bytes: list.spans.iter().map(|s| s.bytes).sum(),
        spans: list.spans,
        expires_at,
    }))
}

/// `POST /api/v1/devices/{id}/events`: an event on the camera's recorders (alarm
/// strategies record around it).
pub(crate) async fn event(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(camera): Path<String>,
    Json(req): Json<EventRequest>,
) -> ApiResult<(StatusCode, Json<EventAccepted>)> {
    let (camera, _) = device_access(&st, &p, &camera, Need::Scope(Scope::Config)).await?;
    if !matches!(req.kind.as_str(), "alarm" | "manual") {
        return Err(ApiErr::invalid(vec![FieldError::new(
            "kind",
            "alarm or manual",
        )]));
    }
    if req.detail.chars().count() > 200 {
        return Err(ApiErr::invalid(vec![FieldError::new(
            "detail",
            "at most 200 characters",
        )]));
    }
    let mut recorders = recordings::recorders_of(&st.store, &camera).await?;
    // H.626.4 8.7.1: a camera recording to the cloud marks the event itself.
    let cloud = !recorders.contains(&camera)
        && store::cloud::get(&st.store, &camera)
            .await?
            .is_some_and(|c| c.strategy.is_some());
    if cloud {
        recorders.push(camera.clone());
    }
    let mut took = Vec::new();
    for rid in recorders {
        let cmd = DeviceCommand::RecordEvent {
            camera: camera.clone(),
            kind: req.kind.clone(),
            detail: req.detail.clone(),
        };
        if let Ok((_, DeviceReply::Done)) = st.platform.command(&rid, cmd).await {
            took.push(if cloud && rid == camera {
                "cloud".into()
            } else {
                recorder_label(&camera, &rid)
            });
        }
    }
    if took.is_empty() {
        return Err(ApiErr::conflict(
            "no_recorder",
            "no recorder of this camera is online; set a record strategy first",
        ));
    }
    let (by, kind) = (p.id, req.kind.as_str());
    audit::log(
        &st.store,
        Event::RecorderNotified {
            by,
            camera: &camera,
            kind,
        },
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(EventAccepted { recorders: took }),
    ))
}

/// 8.7.2.1 steps 16-18: an NVR asks for a camera's stream. Granted when the camera is
/// attached to the NVR and both belong to one owner; the token is minted for that owner
/// and judged by the camera like any viewer's (8.4).
pub(crate) async fn recorder_stream(
    st: &Shared,
    nvr: &DeviceId,
    camera: &DeviceId,
) -> PlatformAnswer {
    let refuse = |code: Refusal, message: &str| PlatformAnswer::Refused {
        code,
        message: message.into(),
    };
    let (owner, acl) = match recordings::stream_grant(&st.store, camera, nvr).await {
        Ok(Some(grant)) => grant,
        Ok(None) => {
            return refuse(
                Refusal::NotAttached,
                "the camera is not attached to this NVR",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "database error on a recorder stream request");
            return refuse(Refusal::Unavailable, "the platform cannot decide now");
        }
    };
    let Some(endpoint) = st.platform.endpoints(camera).into_iter().next() else {
        return refuse(Refusal::DeviceOffline, "the camera is offline");
    };
    let service = (Service::NvrStream, nvr);
    token::for_service(
        st,
        camera,
        (owner, acl),
        Caps::default(),
        service,
        &endpoint,
    )
    .await
}
