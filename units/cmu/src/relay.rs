//! The MTU as the CMU sees it (H.626.4 7): which ways a viewer can reach a camera, the MTU
//! chosen by the camera's SCU for the relay (7.2, Sd), the MTU's upstream from the camera
//! (Mp / Pd) and the checks of viewers' tokens the MTU asks for (Dm).

use std::net::{IpAddr, SocketAddr};

use peercam_base::{DeviceId, Scope};
use peercam_signal::cmd::{DeviceCommand, DeviceReply, PlatformAnswer};
use peercam_signal::play::{Caps, PlayVerdict};
use peercam_signal::refusal::Refusal;
use peercam_signal::relay::{DeviceAddresses, MediaPath, PathKind};
use sqlx::Row as _;

use crate::auth::audit;
use crate::{Shared, now_s};

/// How long after a play through an MTU that MTU may ask for the camera's upstream.
pub(crate) const RELAY_WINDOW_S: u64 = 300;

fn refuse(code: Refusal, message: &str) -> PlatformAnswer {
    PlatformAnswer::Refused {
        code,
        message: message.into(),
    }
}

/// The ways to a camera for a viewer at `client`, best first, with `token` in each URL;
/// asks the camera's SCU for an MTU (7.2) for the last resort. The second value is the index
/// of the path a client that cannot try several should use.
pub(crate) async fn paths(
    st: &Shared,
    camera: &DeviceId,
    addrs: &DeviceAddresses,
    client: SocketAddr,
    token: &str,
) -> (Vec<MediaPath>, usize) {
    let url = |authority: &str, prefix: &str| {
        format!("rtsp://{authority}/{prefix}/{camera}?token={token}")
    };
    let ip_of = |a: &str| a.parse::<SocketAddr>().ok().map(|s| s.ip());
    let observed: Option<IpAddr> = addrs.observed_ip.as_deref().and_then(|o| o.parse().ok());
    let client_ip = canonical(client.ip());
    let same_site = observed.map(canonical) == Some(client_ip);
    let mut lan = Vec::new();
    let mut public = Vec::new();
    for a in &addrs.local {
        let kind = match ip_of(a) {
            Some(ip) if Some(ip) == observed && !peercam_signal::relay::is_lan_ip(ip) => {
                PathKind::Public
            }
            _ => PathKind::Lan,
        };
        let p = MediaPath {
            kind,
            url: url(a, "live"),
            stun: None,
        };
        if kind == PathKind::Public {
            public.push(p);
        } else {
            lan.push(p);
        }
    }
    let mapped: Vec<MediaPath> = addrs
        .mapped
        .iter()
        .map(|a| MediaPath {
            kind: PathKind::Mapped,
            url: url(a, "live"),
            stun: None,
        })
        .collect();
    let mut out = Vec::new();
    if same_site {
        out.append(&mut lan);
    }
    out.append(&mut public);
    out.extend(mapped);
    out.append(&mut lan);
    let mtu = st.platform.select_mtu(camera).await;
    // UDP hole punching (8.3), coordinated through the platform, with the MTU's STUN server,
    // when the camera cannot be reached directly from anywhere.
    let reachable = out
        .iter()
        .any(|p| matches!(p.kind, PathKind::Public | PathKind::Mapped));
    if !same_site && !reachable {
        out.push(MediaPath {
            kind: PathKind::Punched,
            url: url("punched", "live"),
            stun: mtu.as_ref().and_then(stun_of),
        });
    }
    // Relay last (H.626.4 7: the MTU only when the P2P channel fails).
    if let Some(mtu) = mtu {
        st.platform
            .allow_relay(&mtu.mtu, camera, now_s() + RELAY_WINDOW_S);
        out.push(MediaPath {
            kind: PathKind::Relay,
            url: url(&mtu.addresses.rtsp, "relay"),
            stun: None,
        });
    }
    // A plain RTSP client gets a LAN address only when it is on the camera's site (or
    // nothing else exists), else the first path reachable from anywhere; it cannot punch.
    let best = out
        .iter()
        .position(|p| (same_site || p.kind != PathKind::Lan) && p.kind != PathKind::Punched)
        .unwrap_or(0);
    (out, best)
}

/// The STUN server of an MTU: its UDP TURN URI's `host:port`.
pub(crate) fn stun_of(mtu: &peercam_signal::relay::MtuOffer) -> Option<String> {
    mtu.addresses
        .turn
        .iter()
        .find(|u| u.ends_with("transport=udp"))
        .and_then(|u| u.split_once(':').map(|(_, r)| r))
        .and_then(|r| r.split('?').next())
        .map(str::to_owned)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

async fn is_mtu(st: &Shared, id: &DeviceId) -> Result<bool, sqlx::Error> {
    let kind: Option<String> =
        sqlx::query_scalar("SELECT kind FROM devices WHERE id = ?1 AND disabled = 0")
            .bind(id.as_str())
            .fetch_optional(&st.db)
            .await?;
    Ok(kind.as_deref() == Some("mtu"))
}

/// Mp / Pd: an MTU asks for `camera`'s stream. Allowed only to an MTU chosen for a play of
/// that camera within [`RELAY_WINDOW_S`]; the camera is ordered to connect out to the MTU
/// with `ticket`, and the MTU gets a one-time token to present over that channel (8.4
/// applies at the camera as for any viewer).
pub(crate) async fn upstream(
    st: &Shared,
    mtu: &DeviceId,
    camera: &DeviceId,
    ticket: String,
    (tunnel, server_name): (String, String),
    caps: Caps,
) -> PlatformAnswer {
    match is_mtu(st, mtu).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                Refusal::Forbidden,
                "only an MTU may ask for a relay upstream",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "database error on a relay upstream request");
            return refuse(Refusal::Unavailable, "the platform cannot decide now");
        }
    }
    if !st.platform.relay_allowed(mtu, camera, now_s()) {
        return refuse(
            Refusal::NoSession,
            "no viewer was sent to this MTU for that camera",
        );
    }
    if !(16..=128).contains(&ticket.len()) || tunnel.len() > 128 || server_name.len() > 128 {
        return refuse(
            Refusal::BadRequest,
            "ticket, tunnel or server name out of bounds",
        );
    }
    let row = sqlx::query(
        "SELECT owner_id, acl_version FROM devices WHERE id = ?1 AND owner_id IS NOT NULL",
    )
    .bind(camera.as_str())
    .fetch_optional(&st.db)
    .await;
    let (owner, acl): (i64, i64) = match row {
        Ok(Some(r)) => (r.get(0), r.get(1)),
        Ok(None) => return refuse(Refusal::NotFound, "no such bound camera"),
        Err(e) => {
            tracing::error!(error = %e, "database error on a relay upstream request");
            return refuse(Refusal::Unavailable, "the platform cannot decide now");
        }
    };
    // Mp: the camera opens its outbound channel to the MTU.
    match st
        .platform
        .command(
            camera,
            DeviceCommand::RelayConnect {
                tunnel,
                server_name,
                ticket,
            },
        )
        .await
    {
        Ok((_, DeviceReply::Done)) => {}
        Ok((_, DeviceReply::Failed { code, message })) => {
            return PlatformAnswer::Refused {
                code: code.into(),
                message,
            };
        }
        Ok(_) => {
            return refuse(
                Refusal::Unsupported,
                "the camera cannot open a relay channel",
            );
        }
        Err(_) => return refuse(Refusal::DeviceOffline, "the camera is offline"),
    }
    // The MTU reaches the camera over the channel the camera opened, not by address.
    crate::play::service_stream(
        st,
        camera,
        (owner, acl),
        caps,
        ("mtu.upstream", mtu),
        "relay",
    )
    .await
}

/// Dm: an MTU asks whether a viewer's token lets it watch `camera` (judged exactly as the
/// camera's own check, 8.4 steps 6-8, one use only).
pub(crate) async fn authorize(
    st: &Shared,
    mtu: &DeviceId,
    camera: &DeviceId,
    token: &str,
    client: &str,
) -> PlatformAnswer {
    match is_mtu(st, mtu).await {
        Ok(true) => {}
        Ok(false) => return refuse(Refusal::Forbidden, "only an MTU may ask this"),
        Err(e) => {
            tracing::error!(error = %e, "database error on a relay authorization");
            return refuse(Refusal::Unavailable, "the platform cannot decide now");
        }
    }
    match crate::play::authorize(st, camera, token, &format!("{client} via {mtu}")).await {
        PlayVerdict::Granted { grant } => PlatformAnswer::Granted { grant },
        PlayVerdict::Refused { code, message } => PlatformAnswer::Refused { code, message },
    }
}

/// `POST /api/v1/devices/{id}/sessions`: a viewer reports how its live view went.
pub(crate) async fn report_session(
    axum::extract::State(st): axum::extract::State<Shared>,
    axum::Extension(p): axum::Extension<crate::auth::Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::Json(r): axum::Json<peercam_signal::cm::SessionReport>,
) -> crate::error::ApiResult<axum::http::StatusCode> {
    let (id, _) =
        crate::auth::device_access(&st, &p, &id, crate::auth::Need::Scope(Scope::Live)).await?;
    sqlx::query("INSERT INTO media_sessions (at, user_id, device_id, path, connect_ms, bytes, seconds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .bind(i64::try_from(now_s()).unwrap_or(i64::MAX))
        .bind(p.id)
        .bind(id.as_str())
        .bind(r.path.as_str())
        .bind(i64::from(r.connect_ms))
        .bind(i64::try_from(r.bytes).unwrap_or(i64::MAX))
        .bind(i64::from(r.seconds))
        .execute(&st.db)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /api/v1/admin/sessions`: sessions per path and the latest 200.
pub(crate) async fn admin_sessions(
    axum::extract::State(st): axum::extract::State<Shared>,
) -> crate::error::ApiResult<axum::Json<peercam_signal::cm::SessionsView>> {
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT path, COUNT(*) FROM media_sessions GROUP BY path")
            .fetch_all(&st.db)
            .await?;
    let rows: Vec<(i64, i64, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT at, user_id, device_id, path, connect_ms, bytes, seconds FROM media_sessions ORDER BY id DESC LIMIT 200",
    )
    .fetch_all(&st.db)
    .await?;
    let recent = rows
        .into_iter()
        .filter_map(
            |(at, user_id, device_id, path, connect_ms, bytes, seconds)| {
                let path: PathKind =
                    serde_json::from_value(serde_json::Value::String(path)).ok()?;
                Some(peercam_signal::cm::SessionView {
                    at: u64::try_from(at).unwrap_or(0),
                    user_id,
                    device_id,
                    report: peercam_signal::cm::SessionReport {
                        path,
                        connect_ms: u32::try_from(connect_ms).unwrap_or(u32::MAX),
                        bytes: u64::try_from(bytes).unwrap_or(0),
                        seconds: u32::try_from(seconds).unwrap_or(0),
                    },
                })
            },
        )
        .collect();
    Ok(axum::Json(peercam_signal::cm::SessionsView {
        by_path: counts
            .into_iter()
            .map(|(k, n)| (k, u64::try_from(n).unwrap_or(0)))
            .collect(),
        recent,
    }))
}

/// `POST /api/v1/devices/{id}/ice`: TURN credentials for one session with the camera, minted
/// from the secret shared with the MTUs and scoped to the camera's addresses, with the
/// camera's SCU's choice of MTU (7.2). Without a configured secret or an MTU, no servers.
pub(crate) async fn ice(
    axum::extract::State(st): axum::extract::State<Shared>,
    axum::Extension(p): axum::Extension<crate::auth::Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> crate::error::ApiResult<axum::Json<peercam_signal::cm::IceConfig>> {
    let (id, _) =
        crate::auth::device_access(&st, &p, &id, crate::auth::Need::Scope(Scope::Live)).await?;
    let addrs = st
        .platform
        .addresses(&id)
        .ok_or_else(|| crate::error::ApiErr::conflict("device_offline", "the device is offline"))?;
    // D8: the relay forwards only to the camera's own addresses.
    let mut peers: Vec<IpAddr> = addrs
        .local
        .iter()
        .chain(&addrs.mapped)
        .filter_map(|a| a.parse::<SocketAddr>().ok().map(|s| canonical(s.ip())))
        .chain(addrs.observed_ip.iter().filter_map(|o| o.parse().ok()))
        .collect();
    peers.sort();
    peers.dedup();
    let expires_at = now_s() + st.config.turn_ttl_s.clamp(60, 86_400);
    let mut servers = Vec::new();
    if let Some(secret) = &st.config.turn_secret
        && let Some(mtu) = st.platform.select_mtu(&id).await
        && !mtu.addresses.turn.is_empty()
    {
        let secret = peercam_stun::auth::RestSecret::new(secret.as_bytes().to_vec())
            .map_err(|e| crate::error::ApiErr::internal("TURN secret", &e))?;
        let session = hex::encode(crate::random_bytes::<8>());
        let cred = secret
            .mint_scoped(&format!("u{}", p.id), &session, &peers, expires_at)
            .map_err(|e| crate::error::ApiErr::internal("TURN credential", &e))?;
        servers.push(peercam_signal::cm::IceServer {
            urls: mtu.addresses.turn.clone(),
            username: Some(cred.username),
            credential: Some(cred.password),
        });
        audit(
            &st.db,
            Some(p.id),
            "turn.credential",
            Some(id.as_str()),
            "ok",
            mtu.mtu.as_str(),
        )
        .await;
    }
    Ok(axum::Json(peercam_signal::cm::IceConfig {
        ice_servers: servers,
        expires_at,
        peers: peers.iter().map(ToString::to_string).collect(),
    }))
}

/// `POST /api/v1/devices/{id}/punch`: H.626.4 8.3 hole punching, coordinated by the
/// platform: the viewer's description goes to the camera (through its SCU), the camera's
/// comes back. The RTSP request that follows on the punched path carries a play token,
/// judged as in 8.4, so this needs only the `live` scope.
pub(crate) async fn punch(
    axum::extract::State(st): axum::extract::State<Shared>,
    axum::Extension(p): axum::Extension<crate::auth::Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::Json(offer): axum::Json<peercam_signal::relay::PunchDescription>,
) -> crate::error::ApiResult<axum::Json<peercam_signal::relay::PunchDescription>> {
    let (id, _) =
        crate::auth::device_access(&st, &p, &id, crate::auth::Need::Scope(Scope::Live)).await?;
    if !offer.is_reasonable() {
        return Err(crate::error::ApiErr::bad_request(
            "bad_description",
            "at most 16 candidates of 256 bytes, short credentials and fingerprint",
        ));
    }
    let stun = st.platform.select_mtu(&id).await.as_ref().and_then(stun_of);
    let (_, reply) = st
        .platform
        .command(&id, DeviceCommand::Punch { offer, stun })
        .await?;
    match reply {
        DeviceReply::Punch { answer } if answer.is_reasonable() => {
            audit(
                &st.db,
                Some(p.id),
                "media.punch",
                Some(id.as_str()),
                "ok",
                "",
            )
            .await;
            Ok(axum::Json(answer))
        }
        other @ DeviceReply::Failed { .. } => Err(crate::control::device_error(other)),
        _ => Err(crate::error::ApiErr::conflict(
            "unsupported",
            "the camera cannot punch a path; use another",
        )),
    }
}
