//! The MTU as the CMU sees it (H.626.4 7): which ways a viewer can reach a camera, the MTU
//! chosen by the camera's SCU for the relay (7.2, Sd), the MTU's upstream from the camera
//! (Mp / Pd) and the checks of viewers' tokens the MTU asks for (Dm).

use std::net::{IpAddr, SocketAddr};

use crate::audit::{self, Event, Service};
use crate::store::{self, StoreError};
use crate::{Shared, now_s, token};
use peercam_base::{DeviceId, Scope};
use peercam_signal::cmd::{DeviceCommand, DeviceReply, PlatformAnswer};
use peercam_signal::play::{Caps, PlayVerdict};
use peercam_signal::refusal::Refusal;
use peercam_signal::relay::{DeviceAddresses, MediaPath, PathKind};

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
    let target = Target {
        device: camera,
        direct: format!("/live/{camera}?token={token}"),
        relay: Some(format!("/relay/{camera}?token={token}")),
        punch: Some(format!("/live/{camera}?token={token}")),
    };
    paths_to(st, &target, addrs, client).await
}

/// What a ladder of paths leads to: a device and the path (with query) to ask of it
/// directly and through its MTU.
pub(crate) struct Target<'a> {
    /// The device reached (the camera, or the recorder for playback).
    pub(crate) device: &'a DeviceId,
    /// `/…?…token=` on the device itself (lan, public, mapped).
    pub(crate) direct: String,
    /// `/…?…token=` on the MTU (`/relay/CAMERA…` or the recorder's `/pipe/RECORDER/…`).
    pub(crate) relay: Option<String>,
    /// `/…` over a punched path, when the device can be hole punched.
    pub(crate) punch: Option<String>,
}

/// The ladder of [`paths`] for any [`Target`]: same site first, then public and mapped
/// addresses, hole punching, the MTU last (H.626.4 8.3, 7).
pub(crate) async fn paths_to(
    st: &Shared,
    target: &Target<'_>,
    addrs: &DeviceAddresses,
    client: SocketAddr,
) -> (Vec<MediaPath>, usize) {
    let camera = target.device;
    let url = |authority: &str, path: &str| format!("rtsp://{authority}{path}");
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
            url: url(a, &target.direct),
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
            url: url(a, &target.direct),
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
    if let Some(m) = &mtu {
        // 6.1.14: an MTU offered near its capacity is overloaded.
        crate::faults::mtu_offered(st, m).await;
    }
    // UDP hole punching (8.3), coordinated through the platform, with the MTU's STUN server,
    // when the camera cannot be reached directly from anywhere.
    let reachable = out
        .iter()
        .any(|p| matches!(p.kind, PathKind::Public | PathKind::Mapped));
    if !same_site
        && !reachable
        && let Some(punch) = &target.punch
    {
        out.push(MediaPath {
            kind: PathKind::Punched,
            url: url("punched", punch),
            stun: mtu.as_ref().and_then(stun_of),
        });
    }
    // Relay last (H.626.4 7: the MTU only when the P2P channel fails).
    if let Some(mtu) = mtu
        && let Some(relay) = &target.relay
    {
        st.platform
            .allow_relay(&mtu.mtu, camera, now_s() + RELAY_WINDOW_S)
            .await;
        out.push(MediaPath {
            kind: PathKind::Relay,
            url: url(&mtu.addresses.rtsp, relay),
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

async fn is_mtu(st: &Shared, id: &DeviceId) -> Result<bool, StoreError> {
    let d = store::devices::get(&st.store, id).await?;
    Ok(d.is_some_and(|d| d.kind == peercam_signal::ps::DeviceKind::Mtu && !d.disabled))
}

/// The checks every upstream request passes first: the asker is an MTU, a viewer was sent
/// to it for `target` within the relay window, and the ticket and names are in bounds.
/// `kind` (`relay` or `pipe`) names the request in refusals and logs.
async fn upstream_asked(
    st: &Shared,
    mtu: &DeviceId,
    target: &DeviceId,
    kind: &str,
    (ticket, tunnel, server_name): (&str, &str, &str),
) -> Result<(), PlatformAnswer> {
    match is_mtu(st, mtu).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(refuse(
                Refusal::Forbidden,
                &format!("only an MTU may ask for a {kind} upstream"),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, kind, "database error on an upstream request");
            return Err(refuse(
                Refusal::Unavailable,
                "the platform cannot decide now",
            ));
        }
    }
    if !st.platform.relay_allowed(mtu, target, now_s()).await {
        return Err(refuse(
            Refusal::NoSession,
            &format!("no viewer was sent to this MTU for {target}"),
        ));
    }
    if !(16..=128).contains(&ticket.len()) || tunnel.len() > 128 || server_name.len() > 128 {
        return Err(refuse(
            Refusal::BadRequest,
            "ticket, tunnel or server name out of bounds",
        ));
    }
    Ok(())
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
    if let Err(refused) =
        upstream_asked(st, mtu, camera, "relay", (&ticket, &tunnel, &server_name)).await
    {
        return refused;
    }
    let found = store::devices::get(&st.store, camera).await;
    let (owner, acl) = match found {
        Ok(Some(store::devices::Device {
            owner: Some(owner),
            acl_version,
            ..
        })) => (owner, acl_version),
        Ok(_) => return refuse(Refusal::NotFound, "no such bound camera"),
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
    let service = (Service::MtuUpstream, mtu);
    token::for_service(st, camera, (owner, acl), caps, service, "relay").await
}

/// Dm: an MTU asks whether a viewer's token lets it watch `camera` (judged exactly as the
/// camera's own check, 8.4 steps 6-8, one use only). For a viewer that asked the MTU for the
/// audio back channel (6.1.8) a good token also brings a talk token: a second one-time live
/// token for the same user and capabilities, which the MTU presents to the camera on that
/// viewer's own talk upstream, so that the camera judges the viewer's `talk` itself.
pub(crate) async fn authorize(
    st: &Shared,
    mtu: &DeviceId,
    camera: &DeviceId,
    (token, client): (&str, &str),
    backchannel: bool,
) -> PlatformAnswer {
    match is_mtu(st, mtu).await {
        Ok(true) => {}
        Ok(false) => return refuse(Refusal::Forbidden, "only an MTU may ask this"),
        Err(e) => {
            tracing::error!(error = %e, "database error on a relay authorization");
            return refuse(Refusal::Unavailable, "the platform cannot decide now");
        }
    }
    match token::authorize(st, camera, token, &format!("{client} via {mtu}")).await {
        PlayVerdict::Granted { grant } => {
            let talk_token = if backchannel {
                token::for_relayed_talk(st, camera, &grant, mtu).await
            } else {
                None
            };
            PlatformAnswer::Granted {
                grant,
                talk_token,
                pipe_token: None,
            }
        }
        PlayVerdict::Refused { code, message } => PlatformAnswer::Refused { code, message },
    }
}

/// Mn / Nd (8.3), Dm for a pipe: an MTU asks whether a viewer's playback token lets it
/// play from `recorder` through `rtsp://MTU/pipe/RECORDER/…`. The viewer's token is judged
/// and spent exactly as the recorder would (8.4 steps 6-8, one use); a good one brings a
/// fresh one-time playback token for the same user, recorder and camera, which the MTU puts
/// in the viewer's first request before it joins the viewer to the recorder's channel.
pub(crate) async fn pipe_authorize(
    st: &Shared,
    mtu: &DeviceId,
    recorder: &DeviceId,
    (token, client): (&str, &str),
) -> PlatformAnswer {
    match is_mtu(st, mtu).await {
        Ok(true) => {}
        Ok(false) => return refuse(Refusal::Forbidden, "only an MTU may ask this"),
        Err(e) => {
            tracing::error!(error = %e, "database error on a pipe authorization");
            return refuse(Refusal::Unavailable, "the platform cannot decide now");
        }
    }
    let grant = match token::authorize(st, recorder, token, &format!("{client} via {mtu}")).await {
        PlayVerdict::Granted { grant } => grant,
        PlayVerdict::Refused { code, message } => return PlatformAnswer::Refused { code, message },
    };
    // A pipe carries playback only: a live token for the recorder opens nothing here.
    if grant.cam.is_none() {
        return refuse(Refusal::Forbidden, "a pipe carries playback tokens only");
    }
    match token::for_pipe(st, recorder, &grant, mtu).await {
        Some(fresh) => PlatformAnswer::Granted {
            grant,
            talk_token: None,
            pipe_token: Some(fresh),
        },
        None => refuse(
            Refusal::Unavailable,
            "the platform cannot issue a token now",
        ),
    }
}

/// Mn / Nd (8.3): an MTU asks for a channel from `recorder` (an NVR or a CS) for one piped
/// viewer. Allowed only to an MTU chosen for a playback from that recorder within
/// [`RELAY_WINDOW_S`]; the recorder is ordered to connect out to the MTU with `ticket`
/// (`relay_connect`, as a camera for Mp/Pd), and the answer is `ordered`: the viewer's own
/// fresh token, from [`pipe_authorize`], is what the recorder judges.
pub(crate) async fn pipe_upstream(
    st: &Shared,
    mtu: &DeviceId,
    recorder: &DeviceId,
    ticket: String,
    (tunnel, server_name): (String, String),
) -> PlatformAnswer {
    if let Err(refused) =
        upstream_asked(st, mtu, recorder, "pipe", (&ticket, &tunnel, &server_name)).await
    {
        return refused;
    }
    match store::devices::get(&st.store, recorder).await {
        Ok(Some(d))
            if matches!(
                d.kind,
                peercam_signal::ps::DeviceKind::Nvr | peercam_signal::ps::DeviceKind::Cs
            ) && !d.disabled => {}
        Ok(_) => return refuse(Refusal::NotFound, "no such recorder"),
        Err(e) => {
            tracing::error!(error = %e, "database error on a pipe upstream request");
            return refuse(Refusal::Unavailable, "the platform cannot decide now");
        }
    }
    // Nd: the recorder opens its outbound channel to the MTU, as a camera does for Pd.
    match st
        .platform
        .command(
            recorder,
            DeviceCommand::RelayConnect {
                tunnel,
                server_name,
                ticket,
            },
        )
        .await
    {
        Ok((_, DeviceReply::Done)) => PlatformAnswer::Ordered,
        Ok((_, DeviceReply::Failed { code, message })) => PlatformAnswer::Refused {
            code: code.into(),
            message,
        },
        Ok(_) => refuse(
            Refusal::Unsupported,
            "the recorder cannot open a relay channel",
        ),
        Err(_) => refuse(Refusal::DeviceOffline, "the recorder is offline"),
    }
}

/// `POST /api/v1/devices/{id}/sessions`: a viewer reports how its live view went.
pub(crate) async fn report_session(
    axum::extract::State(st): axum::extract::State<Shared>,
    axum::Extension(p): axum::Extension<crate::auth::Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
    crate::json::Json(r): crate::json::Json<peercam_signal::cm::SessionReport>,
) -> crate::error::ApiResult<axum::http::StatusCode> {
    let (id, _) =
        crate::auth::device_access(&st, &p, &id, crate::auth::Need::Scope(Scope::Live)).await?;
    store::media::record(&st.store, p.id, &id, &r, now_s()).await?;
    crate::accounting::session_reported(&st, p.id, &id, &r).await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /api/v1/admin/sessions`: sessions per path and the latest 200.
pub(crate) async fn admin_sessions(
    axum::extract::State(st): axum::extract::State<Shared>,
) -> crate::error::ApiResult<axum::Json<peercam_signal::cm::SessionsView>> {
    let by_path = store::media::counts(&st.store).await?;
    let recent = store::media::recent(&st.store, 200).await?;
    Ok(axum::Json(peercam_signal::cm::SessionsView {
        by_path: by_path.into_iter().collect(),
        recent,
    }))
}

/// The device a media path leads to: the camera itself (needs `live`), or with `recorder`
/// its recorder for a playback (needs `playback` on the camera; the recorder must record
/// it).
async fn device_or_recorder(
    st: &Shared,
    p: &crate::auth::Principal,
    id: &str,
    recorder: Option<&str>,
) -> crate::error::ApiResult<DeviceId> {
    Ok(match recorder {
        None => {
            crate::auth::device_access(st, p, id, crate::auth::Need::Scope(Scope::Live))
                .await?
                .0
        }
        Some(r) => {
            let (camera, _) =
                crate::auth::device_access(st, p, id, crate::auth::Need::Scope(Scope::Playback))
                    .await?;
            crate::recording::resolve_recorder(st, &camera, Some(r)).await?
        }
    })
}

/// The query of `POST /api/v1/devices/{id}/ice` and `.../punch`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct IceQuery {
    /// For a WebRTC playback: the recorder (`sd` or an NVR's id), as in playback requests.
    recorder: Option<String>,
}

/// `POST /api/v1/devices/{id}/ice`: TURN credentials for one session with the camera, minted
/// from the secret shared with the MTUs and scoped to the camera's addresses, with the
/// camera's SCU's choice of MTU (7.2). Without a configured secret or an MTU, no servers.
pub(crate) async fn ice(
    axum::extract::State(st): axum::extract::State<Shared>,
    axum::Extension(p): axum::Extension<crate::auth::Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<IceQuery>,
) -> crate::error::ApiResult<axum::Json<peercam_signal::cm::IceConfig>> {
    // 8.3 for recorders: a WebRTC playback's TURN permission covers the recorder's
    // addresses, not the camera's.
    let id = device_or_recorder(&st, &p, &id, q.recorder.as_deref()).await?;
    let addrs = st
        .platform
        .addresses(&id)
        .ok_or_else(|| crate::error::ApiErr::conflict("device_offline", "the device is offline"))?;
    // D8: the relay forwards only to the device's own addresses (the camera's, or the
    // recorder's for a playback).
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
        let (user, device) = (p.id, &id);
        audit::log(
            &st.store,
            Event::TurnCredential {
                user,
                device,
                mtu: &mtu.mtu,
            },
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
    axum::extract::Query(q): axum::extract::Query<IceQuery>,
    crate::json::Json(offer): crate::json::Json<peercam_signal::relay::PunchDescription>,
) -> crate::error::ApiResult<axum::Json<peercam_signal::relay::PunchDescription>> {
    // With `?recorder=`: a punched path to the recorder for a playback (8.3, `playback` on
    // the camera, a recorder that records it).
    let id = device_or_recorder(&st, &p, &id, q.recorder.as_deref()).await?;
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
            audit::log(
                &st.store,
                Event::Punched {
                    user: p.id,
                    device: &id,
                },
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
