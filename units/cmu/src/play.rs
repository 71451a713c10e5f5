//! H.626.4 8.4 media play: minting the hash token (steps 1-3) and judging it when the PU asks
//! (steps 6-8).

use std::net::SocketAddr;

use axum::Extension;
use axum::Json;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State};
use base64::Engine as _;
use peercam_base::{DeviceId, Scope, ScopeSet};
use peercam_signal::cm::{PlayRequest, PlayResponse};
use peercam_signal::play::{self, Caps, PlayClaims, PlayGrant, PlayVerdict, TokenRefusal};
use sqlx::Row as _;

use crate::auth::{Need, Principal, audit, device_access};
use crate::error::{ApiErr, ApiResult};
use crate::{Shared, now_s, random_bytes};

/// Rounding slack on expiry: the CMU mints and judges its own tokens with one clock, so
/// only the whole-second rounding of `iat`/`exp` needs room.
const SKEW_S: u64 = 1;

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
    let (claims, token) = live_token(&st, &p, &id, access.scopes, caps, "media.play_url").await?;
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

/// Mints a one-time live token for `id` (8.4 steps 2-3) and audits it as `action`.
async fn live_token(
    st: &Shared,
    p: &Principal,
    id: &DeviceId,
    scopes: ScopeSet,
    caps: Caps,
    action: &str,
) -> ApiResult<(PlayClaims, String)> {
    let acl: i64 = sqlx::query_scalar("SELECT acl_version FROM devices WHERE id = ?1")
        .bind(id.as_str())
        .fetch_one(&st.db)
        .await?;
    let ttl = crate::settings::platform(st).await?.1.play_token_ttl_s;
    let claims = fresh_claims(id.clone(), p.id, scopes, acl, ttl, caps, None);
    let token = play::mint(&st.play_key, &claims);
    audit(&st.db, Some(p.id), action, Some(id.as_str()), "ok", "").await;
    Ok((claims, token))
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
    let (claims, token) = live_token(&st, &p, &id, access.scopes, caps, "media.webrtc").await?;
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

/// The claims of a new one-time token for `dev`, issued now and valid `ttl_s` (D4); `cam`
/// for playback tokens, which a recorder serves for that camera.
pub(crate) fn fresh_claims(
    dev: DeviceId,
    sub: i64,
    scopes: ScopeSet,
    acl: i64,
    ttl_s: u64,
    cap: Caps,
    cam: Option<DeviceId>,
) -> PlayClaims {
    let now = now_s();
    PlayClaims {
        dev,
        sub,
        scp: scopes.bits(),
        jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
        iat: now,
        exp: now + ttl_s,
        acl,
        cap,
        cam,
    }
}

/// A one-time live token for a platform service that pulls `camera` on its owner's behalf
/// (an NVR recording it, 8.7.2.1 steps 16-18; an MTU relaying it, Mp/Pd), audited as
/// `action` by `requester`; the answer's URL is `rtsp://{authority}/live/{camera}?token=`.
/// The camera judges the token as for any viewer (8.4).
pub(crate) async fn service_stream(
    st: &Shared,
    camera: &DeviceId,
    (owner, acl): (i64, i64),
    caps: Caps,
    (action, requester): (&str, &DeviceId),
    authority: &str,
) -> peercam_signal::cmd::PlatformAnswer {
    let ttl = match crate::settings::platform(st).await {
        Ok((_, p)) => p.play_token_ttl_s,
        Err(_) => 60,
    };
    let claims = fresh_claims(
        camera.clone(),
        owner,
        ScopeSet::from_iter([Scope::Live]),
        acl,
        ttl,
        caps,
        None,
    );
    let token = play::mint(&st.play_key, &claims);
    audit(
        &st.db,
        Some(owner),
        action,
        Some(camera.as_str()),
        "ok",
        requester.as_str(),
    )
    .await;
    peercam_signal::cmd::PlatformAnswer::Stream {
        url: format!("rtsp://{authority}/live/{camera}?token={token}"),
        token,
        expires_at: claims.exp,
    }
}

/// 8.4 steps 6-8: the PU (through its SCU) asks whether `token` lets a viewer watch `device`.
pub(crate) async fn authorize(
    st: &Shared,
    device: &DeviceId,
    token: &str,
    client: &str,
) -> PlayVerdict {
    let result = judge(st, device, token).await;
    match result {
        Ok(grant) => {
            audit(
                &st.db,
                Some(grant.user),
                "media.play",
                Some(device.as_str()),
                "ok",
                client,
            )
            .await;
            PlayVerdict::Granted { grant }
        }
        Err(Judgement::Refused(r)) => {
            tracing::info!(device = %device, refusal = r.code(), "play refused");
            audit(
                &st.db,
                None,
                "media.play",
                Some(device.as_str()),
                r.code(),
                client,
            )
            .await;
            PlayVerdict::Refused {
                code: r.into(),
                message: r.to_string(),
            }
        }
        Err(Judgement::Internal(e)) => {
            tracing::error!(error = %e, "play check failed");
            PlayVerdict::Refused {
                code: peercam_signal::refusal::Refusal::Unavailable,
                message: "the platform cannot decide now; try again".into(),
            }
        }
    }
}

enum Judgement {
    Refused(TokenRefusal),
    Internal(sqlx::Error),
}

impl From<sqlx::Error> for Judgement {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e)
    }
}

async fn judge(st: &Shared, device: &DeviceId, token: &str) -> Result<PlayGrant, Judgement> {
    let claims = play::verify(&st.play_key, token).map_err(Judgement::Refused)?;
    let now = now_s();
    play::check_claims(&claims, device, now, SKEW_S).map_err(Judgement::Refused)?;
    // Playback (8.7.2.2, 8.7.3): `device` is the recorder and the rights are the camera's;
    // the recorder must record that camera (itself for an SD card).
    let (subject, needed) = match &claims.cam {
        None => (device.clone(), Scope::Live),
        Some(cam) => {
            let records = cam == device
                || sqlx::query_scalar::<_, i64>(
                    "SELECT 1 FROM recorders WHERE camera_id = ?1 AND recorder_id = ?2",
                )
                .bind(cam.as_str())
                .bind(device.as_str())
                .fetch_optional(&st.db)
                .await?
                .is_some();
            if !records {
                return Err(Judgement::Refused(TokenRefusal::NotAllowed));
            }
            (cam.clone(), Scope::Playback)
        }
    };
    let device = &subject;
    // The ACL has not moved since minting (unshare, unbind, reset: SECURITY.md D4/D5)...
    let row = sqlx::query("SELECT acl_version, owner_id FROM devices WHERE id = ?1")
        .bind(device.as_str())
        .fetch_optional(&st.db)
        .await?;
    let Some(row) = row else {
        return Err(Judgement::Refused(TokenRefusal::NotAllowed));
    };
    let acl: i64 = row.try_get(0)?;
    let owner: Option<i64> = row.try_get(1)?;
    if acl != claims.acl {
        return Err(Judgement::Refused(TokenRefusal::StaleAcl));
    }
    // ...and the user may still watch it, decided now from the store (D3).
    let scopes = if owner == Some(claims.sub) {
        let active: Option<String> = sqlx::query_scalar("SELECT status FROM users WHERE id = ?1")
            .bind(claims.sub)
            .fetch_optional(&st.db)
            .await?;
        if active.as_deref() == Some("active") {
            ScopeSet::all()
        } else {
            ScopeSet::EMPTY
        }
    } else {
        let bits: Option<i64> = sqlx::query_scalar(
            "SELECT s.scopes FROM shares s JOIN users u ON u.id = s.user_id JOIN users o ON o.id = u.parent_id
             WHERE s.device_id = ?1 AND s.user_id = ?2 AND u.status = 'active' AND o.status = 'active' AND o.id = ?3",
        )
        .bind(device.as_str())
        .bind(claims.sub)
        .bind(owner.unwrap_or(-1))
        .fetch_optional(&st.db)
        .await?;
        ScopeSet::from_bits(bits.and_then(|b| u8::try_from(b).ok()).unwrap_or(0))
    };
    if !scopes.contains(needed) {
        return Err(Judgement::Refused(TokenRefusal::NotAllowed));
    }
    // One use only (D4): the first RTSP request that presents it wins.
    let fresh = sqlx::query("INSERT INTO used_play_tokens (jti, expires_at) VALUES (?1, ?2) ON CONFLICT (jti) DO NOTHING")
        .bind(&claims.jti)
        .bind(i64::try_from(claims.exp + SKEW_S).unwrap_or(i64::MAX))
        .execute(&st.db)
        .await?
        .rows_affected()
        == 1;
    let _ = sqlx::query("DELETE FROM used_play_tokens WHERE expires_at < ?1")
        .bind(i64::try_from(now).unwrap_or(0))
        .execute(&st.db)
        .await;
    if !fresh {
        return Err(Judgement::Refused(TokenRefusal::Replayed));
    }
    Ok(PlayGrant {
        user: claims.sub,
        scopes,
        caps: claims.cap,
        expires_at: claims.exp,
        cam: claims.cam,
    })
}
