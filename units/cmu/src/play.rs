//! H.626.4 8.4 media play, the viewer's side: a play URL with its hash token (steps 1-3) and
//! every path to the camera (8.3), or a WebRTC answer. Tokens are minted and judged in
//! [`crate::token`].

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State};
use peercam_base::Scope;
use peercam_signal::cm::{PlayRequest, PlayResponse};
use peercam_signal::play::Caps;

use crate::audit::Minted;
use crate::auth::{Need, Principal, device_access};
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::{Shared, token};

fn caps_from(req: &PlayRequest) -> Result<Caps, ApiErr> {
    let d = Caps::default();
    let caps = Caps {
        max_width: req.max_width.unwrap_or(d.max_width),
        max_height: req.max_height.unwrap_or(d.max_height),
        max_fps: req.max_fps.unwrap_or(d.max_fps),
        max_kbps: req.max_kbps.unwrap_or(d.max_kbps),
        audio: req.audio.unwrap_or(d.audio),
    };
    if caps.max_width < 176
        || caps.max_height < 144
        || !(1..=25).contains(&caps.max_fps)
        || !(32..=20_000).contains(&caps.max_kbps)
    {
        return Err(ApiErr::bad_request(
            "bad_caps",
            "capabilities out of range: width >= 176, height >= 144, fps 1-25, kbps 32-20000",
        ));
    }
    Ok(caps)
}

/// `POST /api/v1/devices/{id}/play`: 8.4 steps 1-3.
pub(crate) async fn play(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Json(req): Json<PlayRequest>,
) -> ApiResult<Json<PlayResponse>> {
    // Step 2: the CMU checks the request's legitimacy.
    let (id, access) = device_access(&st, &p, &id, Need::Scope(Scope::Live)).await?;
    let caps = caps_from(&req)?;
    let addrs = st
        .platform
        .addresses(&id)
        .filter(|a| !a.local.is_empty() || !a.mapped.is_empty())
        .ok_or_else(|| {
            ApiErr::conflict(
                "device_offline",
                "the device is offline or has not reported a media address yet",
            )
        })?;
    let minted = (Minted::PlayUrl, "");
    let (claims, token) = token::mint(&st, &p, (&id, access.scopes), caps, None, minted).await?;
    // Step 3: the RTSP URL with the hash token, and every other way to the camera (8.3).
    let (paths, best) = crate::relay::paths(&st, &id, &addrs, client, &token).await;
    let chosen = paths
        .get(best)
        .cloned()
        .unwrap_or(peercam_signal::relay::MediaPath {
            kind: peercam_signal::relay::PathKind::Lan,
            url: String::new(),
            stun: None,
        });
    Ok(Json(PlayResponse {
        url: chosen.url,
        token,
        expires_at: claims.exp,
        caps,
        path: chosen.kind,
        paths,
    }))
}

/// Live view for browsers (issue 7; 6.3.1 over WebRTC): the CMU mints a one-time token as
/// for an RTSP URL (8.4 steps 1-3) and hands it to the camera with the viewer's offer; the
/// camera has it judged (steps 5-8) before it answers. ICE then finds the best path itself:
/// direct, or through the MTU's TURN relay (the viewer gets credentials from `/ice`).
pub(crate) async fn webrtc(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Json(req): Json<peercam_signal::cm::WebRtcOffer>,
) -> ApiResult<Json<peercam_signal::cm::WebRtcAnswer>> {
    let (id, access) = device_access(&st, &p, &id, Need::Scope(Scope::Live)).await?;
    if req.offer.len() > 32 * 1024 || !req.offer.starts_with("v=0") {
        return Err(ApiErr::bad_request(
            "bad_offer",
            "send the browser's SDP offer (at most 32 KiB) in `offer`",
        ));
    }
    let caps = caps_from(&req.play)?;
    if !st.platform.is_online(&id) {
        return Err(ApiErr::conflict(
            "device_offline",
            "the device is offline; try again when it is back",
        ));
    }
    let minted = (Minted::WebRtc, "");
    let (claims, token) = token::mint(&st, &p, (&id, access.scopes), caps, None, minted).await?;
    let stun = st
        .platform
        .select_mtu(&id)
        .await
        .as_ref()
        .and_then(crate::relay::stun_of);
    let command = peercam_signal::cmd::DeviceCommand::WebRtc {
        offer: req.offer,
        token,
        client: client.to_string(),
        stun,
        session: Some(claims.jti.clone()),
    };
    let (_, reply) = st.platform.command(&id, command).await?;
    match reply {
        peercam_signal::cmd::DeviceReply::WebRtc { answer } => {
            Ok(Json(peercam_signal::cm::WebRtcAnswer {
                answer,
                session: claims.jti,
            }))
        }
        peercam_signal::cmd::DeviceReply::Failed { code, message }
            if matches!(code.as_str(), "expired" | "replayed" | "forged" | "revoked") =>
        {
            Err(ApiErr::new(
                axum::http::StatusCode::FORBIDDEN,
                "refused",
                format!("the platform refused the view ({code}): {message}"),
            ))
        }
        other => Err(crate::control::device_error(other)),
    }
}

/// Trickle ICE for a live view (issue 20; RFC 8838): more of the browser's candidates for
/// the view `session` (the `session` of its [`webrtc`] answer), or the end of them. Only a
/// viewer with `live` on the device is heard, and the camera adds the candidates only to a
/// session of the same user: "not yours" is the same answer as "no such session".
pub(crate) async fn webrtc_candidates(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path((id, session)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<axum::http::StatusCode> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Live)).await?;
    if session.is_empty() || session.len() > 64 {
        return Err(ApiErr::not_found("no_session", "no such live view"));
    }
    let t = peercam_signal::trickle::parse(&body)
        .map_err(|e| ApiErr::bad_request("bad_candidates", e.to_string()))?;
    let command = peercam_signal::cmd::DeviceCommand::WebRtcCandidates {
        session,
        user: p.id,
        candidates: t.candidates,
        end: t.end,
    };
    let (_, reply) = st.platform.command(&id, command).await?;
    match reply {
        peercam_signal::cmd::DeviceReply::Done => Ok(axum::http::StatusCode::NO_CONTENT),
        peercam_signal::cmd::DeviceReply::Failed { code, .. } if code == "no_session" => {
            Err(ApiErr::not_found("no_session", "no such live view"))
        }
        other => Err(crate::control::device_error(other)),
    }
}
