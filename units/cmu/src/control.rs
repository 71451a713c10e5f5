//! Device control through the platform: PTZ (H.626.4 8.5), parameters (8.9.1) and reset
//! (8.10). Each order is authorised here, per (user, device, scope), checked for range, and
//! routed CMU -> SCU -> PU; the PU's answer comes back the same way.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use peercam_base::Scope;
use peercam_signal::cm::{ConfigPermit, ResetRequest, SetParamsRequest};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::control::{ParamsState, PtzCommand, PtzState, WlanConfig, WlanState};
use sha2::{Digest as _, Sha256};

use crate::audit::{self, Event, ParamsOutcome};
use crate::auth::{Need, Principal, device_access};
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::params;
use crate::{Shared, now_s};

fn permit_hash(permit: &str) -> String {
    hex::encode(Sha256::digest(permit.as_bytes()))
}

/// Turns a device's refusal into the API's answer.
pub(crate) fn device_error(reply: DeviceReply) -> ApiErr {
    match reply {
        DeviceReply::Invalid { errors } => ApiErr::invalid(errors),
        DeviceReply::Conflict { revision } => ApiErr::conflict(
            "stale_revision",
            format!(
                "the device's parameters changed meanwhile (now at revision {revision}); read them again"
            ),
        ),
        DeviceReply::Failed { code, message } => ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "device_failed",
            format!("the device refused ({code}): {message}"),
        ),
        _ => ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "device_failed",
            "the device gave an unexpected answer",
        ),
    }
}

/// H.626.4 8.5: CU -> CMU (authorise: `ptz` scope) -> SCU -> PU, and the position back.
pub(crate) async fn ptz(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(order): Json<PtzCommand>,
) -> ApiResult<Json<PtzState>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Ptz)).await?;
    order.validate().map_err(ApiErr::invalid)?;
    let (_, reply) = st
        .platform
        .command(&id, DeviceCommand::Ptz { order })
        .await?;
    match reply {
        DeviceReply::Ptz { state } => Ok(Json(state)),
        other => Err(device_error(other)),
    }
}

/// H.626.4 8.9.1 query: CU -> CMU -> SCU -> PU and back.
pub(crate) async fn get_params(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<ParamsState>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    let (_, reply) = st.platform.command(&id, DeviceCommand::GetParams).await?;
    match reply {
        DeviceReply::Params { state } => Ok(Json(state)),
        other => Err(device_error(other)),
    }
}

/// H.626.4 8.9.1 steps 7-8: the CU asks permission to configure; the CMU authorises the user
/// and answers with a single-use permit and the revision to base the change on.
pub(crate) async fn params_permit(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConfigPermit>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    let (_, reply) = st.platform.command(&id, DeviceCommand::GetParams).await?;
    let revision = match reply {
        DeviceReply::Params { state } => state.revision,
        other => return Err(device_error(other)),
    };
    // The same single-use permits as the CMU's own parameters (8.9.2), keyed by the device.
    let permit = crate::settings::permit(&st, &p, id.as_str(), revision).await?;
    audit::log(
        &st.store,
        Event::ParamsPermit {
            by: p.id,
            device: &id,
        },
    )
    .await;
    Ok(Json(permit))
}

/// H.626.4 8.9.1 steps 9-12: the configuration, with its permit, CU -> CMU -> SCU -> PU; the PU
/// applies it all or nothing and reports its state back.
pub(crate) async fn set_params(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<SetParamsRequest>,
) -> ApiResult<Json<ParamsState>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    // The permit is spent whatever happens next: one permission, one attempt.
    let digest = permit_hash(&req.permit);
    let spent = params::spend_permit(&st.store, &digest, p.id, id.as_str(), now_s()).await?;
    let (by, device) = (p.id, &id);
    let log = async |outcome| {
        audit::log(
            &st.store,
            Event::ParamsSet {
                by,
                device,
                outcome,
            },
        )
        .await
    };
    if !spent {
        log(ParamsOutcome::NoPermit).await;
        return Err(ApiErr::forbidden(
            "no valid permit for this device: ask with POST /api/v1/devices/{id}/params/permit first (permits last 120 s and serve once)",
        )
        .with_code("no_permit"));
    }
    if let Err(fields) = req.params.validate() {
        log(ParamsOutcome::Invalid).await;
        return Err(ApiErr::invalid(fields));
    }
    let (_, reply) = st
        .platform
        .command(
            &id,
            DeviceCommand::SetParams {
                base_revision: req.base_revision,
                params: req.params,
            },
        )
        .await?;
    match reply {
        DeviceReply::Params { state } => {
            log(ParamsOutcome::Applied(state.revision)).await;
            Ok(Json(state))
        }
        other => Err(device_error(other)),
    }
}

/// H.626.4 8.10: the owner orders a factory reset; the PU acknowledges, then resets. The CMU
/// then unbinds it: shares, tokens and live sessions all end (D5), and binding again needs
/// the bind code.
pub(crate) async fn reset(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Option<Json<ResetRequest>>,
) -> ApiResult<StatusCode> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let (_, reply) = st
        .platform
        .command(
            &id,
            DeviceCommand::Reset {
                wipe_recordings: req.wipe_recordings,
            },
        )
        .await?;
    if !matches!(reply, DeviceReply::ResetAccepted) {
        return Err(device_error(reply));
    }
    crate::devices::release(&st, &id).await?;
    let (by, wiped) = (p.id, req.wipe_recordings);
    audit::log(
        &st.store,
        Event::Reset {
            by,
            device: &id,
            wiped,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// H.626.4 6.1.11: the networks the camera sees and the one it is on.
pub(crate) async fn get_wlan(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<WlanState>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    let (_, reply) = st.platform.command(&id, DeviceCommand::WlanScan).await?;
    match reply {
        DeviceReply::Wlan { state } => Ok(Json(state)),
        other => Err(device_error(other)),
    }
}

/// H.626.4 6.1.11: move the camera to another network. It answers at once, switches, and
/// returns to the previous network by itself if the platform is not reachable through the
/// new one in time; `GET .../wlan` shows how the switch ended.
pub(crate) async fn set_wlan(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(config): Json<WlanConfig>,
) -> ApiResult<Json<WlanState>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    config.validate().map_err(ApiErr::invalid)?;
    let ssid = config.ssid.clone();
    let (_, reply) = st
        .platform
        .command(&id, DeviceCommand::WlanConnect { config })
        .await?;
    match reply {
        DeviceReply::Wlan { state } => {
            audit::log(
                &st.store,
                Event::WlanSet {
                    by: p.id,
                    device: &id,
                    ssid: &ssid,
                },
            )
            .await;
            Ok(Json(state))
        }
        other => Err(device_error(other)),
    }
}

/// Query of `GET /api/v1/devices/{id}/snapshot`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SnapshotQuery {
    /// Widest picture wanted, pixels (16 to 1280; default 320).
    #[serde(default)]
    max_width: Option<u16>,
}

/// A still picture of what the camera sees now (JPEG): the device list's thumbnail, 6.1.12.
/// The picture goes camera -> SCU -> CMU -> the viewer, who may keep it 30 s.
pub(crate) async fn snapshot(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<SnapshotQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    use base64::Engine as _;
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Live)).await?;
    let max_width = q.max_width.unwrap_or(320);
    if !(16..=1280).contains(&max_width) {
        return Err(ApiErr::invalid(vec![
            peercam_signal::control::FieldError::new("max_width", "16 to 1280 pixels"),
        ]));
    }
    let (_, reply) = st
        .platform
        .command(&id, DeviceCommand::Snapshot { max_width })
        .await?;
    match reply {
        DeviceReply::Snapshot { jpeg, .. } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(jpeg.as_bytes())
                .map_err(|_| {
                    ApiErr::new(
                        StatusCode::BAD_GATEWAY,
                        "device_failed",
                        "the camera sent a malformed picture",
                    )
                })?;
            Ok((
                [
                    (axum::http::header::CONTENT_TYPE, "image/jpeg"),
                    (axum::http::header::CACHE_CONTROL, "private, max-age=30"),
                ],
                bytes,
            )
                .into_response())
        }
        other => Err(device_error(other)),
    }
}
