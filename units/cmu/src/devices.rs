//! Devices and binding, H.626.4 8.2: the caller's devices, binding by id and bind code,
//! renaming, unbinding (and the release that 8.10 reset shares), and the device's own
//! description through the platform.

use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use peercam_base::{DeviceId, Scope, ScopeSet};
use peercam_signal::cm::{BindRequest, DeviceRename, DeviceStatus, DeviceView, Relation, Role};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::identity::BindCode;
use subtle::ConstantTimeEq as _;

use crate::Shared;
use crate::audit::{self, Event};
use crate::auth::{DeviceAccess, Need, Principal, device_access};
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::devices::{self, Device};
use crate::store::shares;

fn view(st: &Shared, d: Device, access: DeviceAccess) -> DeviceView {
    DeviceView {
        online: st.platform.is_online(&d.id),
        name: d.name.unwrap_or_else(|| d.model.clone()),
        id: d.id,
        kind: d.kind,
        vendor: d.vendor,
        model: d.model,
        last_seen: d.last_seen,
        relation: access.relation,
        scopes: access.scopes,
    }
}

async fn device_view(st: &Shared, id: &DeviceId, access: DeviceAccess) -> ApiResult<DeviceView> {
    let d = devices::get(&st.store, id)
        .await?
        .ok_or_else(ApiErr::no_device)?;
    Ok(view(st, d, access))
}

/// The owner's access: everything.
fn owned() -> DeviceAccess {
    DeviceAccess {
        relation: Relation::Owner,
        scopes: ScopeSet::all(),
    }
}

/// `GET /api/v1/devices`: an owner's devices, or what was shared with a sub-account.
pub(crate) async fn list(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<axum::Json<Vec<DeviceView>>> {
    if p.role == Role::Owner {
        let mine = devices::owned_by(&st.store, p.id).await?;
        return Ok(axum::Json(
            mine.into_iter().map(|d| view(&st, d, owned())).collect(),
        ));
    }
    let Some(parent) = p.parent else {
        return Ok(axum::Json(Vec::new()));
    };
    let mut out = Vec::new();
    for (id, scopes) in shares::shared_with(&st.store, p.id, parent).await? {
        let access = DeviceAccess {
            relation: Relation::Shared,
            scopes,
        };
        out.push(device_view(&st, &id, access).await?);
    }
    Ok(axum::Json(out))
}

/// `GET /api/v1/devices/{id}`.
pub(crate) async fn get(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeviceView>> {
    let (id, access) = device_access(&st, &p, &id, Need::Any).await?;
    device_view(&st, &id, access).await.map(axum::Json)
}

/// Why a bind is refused (H.626.4 8.2 step 2), once the code proved possession.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindRefusal {
    /// No device has this id and code (the two are never told apart).
    UnknownDeviceOrCode,
    /// The caller bound it already.
    AlreadyYours,
    /// Another account owns it.
    AlreadyBound,
    /// It never registered (8.1).
    NotRegistered,
    /// It is not online now.
    Offline,
}

impl BindRefusal {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::UnknownDeviceOrCode => "unknown_device_or_code",
            Self::AlreadyYours => "already_yours",
            Self::AlreadyBound => "already_bound",
            Self::NotRegistered => "not_registered",
            Self::Offline => "device_offline",
        }
    }

    fn answer(self) -> ApiErr {
        let msg = match self {
            Self::UnknownDeviceOrCode => {
                return ApiErr::not_found(
                    self.code(),
                    "no device has this id and bind code; check the sticker",
                );
            }
            Self::AlreadyYours => "this device is already bound to your account",
            Self::AlreadyBound => {
                "this device is bound to another account; its owner must unbind it or reset it first"
            }
            Self::NotRegistered => {
                "this device has never registered with the platform; power it on and connect it to the internet"
            }
            Self::Offline => "this device is offline; check its power and network, then try again",
        };
        ApiErr::conflict(self.code(), msg)
    }
}

/// H.626.4 8.2 step 2: the CMU authenticates the device (possession of the bind code, whose
/// digest for this id is `code_digest`), then checks it is unbound, registered and online,
/// and says which check failed.
pub(crate) fn bind_verdict(
    caller: i64,
    device: Option<&Device>,
    code_digest: &str,
    online: bool,
) -> Result<(), BindRefusal> {
    let Some(d) = device else {
        return Err(BindRefusal::UnknownDeviceOrCode);
    };
    if !bool::from(code_digest.as_bytes().ct_eq(d.bind_code_sha256.as_bytes())) {
        return Err(BindRefusal::UnknownDeviceOrCode);
    }
    if d.kind == peercam_signal::ps::DeviceKind::Cs {
        // A cloud storage unit belongs to the operator; no user binds it (and a user
        // holding its code learns nothing more than from a wrong code).
        return Err(BindRefusal::UnknownDeviceOrCode);
    }
    match d.owner {
        Some(o) if o == caller => Err(BindRefusal::AlreadyYours),
        Some(_) => Err(BindRefusal::AlreadyBound),
        None if d.registered_at.is_none() => Err(BindRefusal::NotRegistered),
        None if !online => Err(BindRefusal::Offline),
        None => Ok(()),
    }
}

/// A device name: trimmed, 1 to 64 characters.
fn check_name(name: &str) -> ApiResult<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiErr::bad_request(
            "bad_name",
            "names have 1 to 64 characters",
        ));
    }
    Ok(name)
}

/// `POST /api/v1/devices/bind`: H.626.4 8.2.
pub(crate) async fn bind(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<BindRequest>,
) -> ApiResult<axum::Json<DeviceView>> {
    // Bind codes are 60-bit secrets; still, throttle guessing per account: ten refused
    // attempts in ten minutes, while an installer binding many cameras right is never held up.
    let guesses = format!("bind:{}", p.id);
    let window = Duration::from_secs(600);
    st.limits
        .check(&guesses, 10, window)
        .await
        .map_err(ApiErr::too_many)?;
    let refused = async |r: BindRefusal| {
        let _ = st.limits.hit(&guesses, 10, window).await;
        r.answer()
    };
    let (Ok(id), Ok(code)) = (
        req.device_id.trim().parse::<DeviceId>(),
        BindCode::parse(&req.bind_code),
    ) else {
        return Err(refused(BindRefusal::UnknownDeviceOrCode).await);
    };
    let name = req.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 64) {
        return Err(ApiErr::bad_request(
            "bad_name",
            "names have at most 64 characters",
        ));
    }
    let device = devices::get(&st.store, &id).await?;
    let digest = code.digest(&id);
    if let Err(r) = bind_verdict(p.id, device.as_ref(), &digest, st.platform.is_online(&id)) {
        let detail = match (r, &device) {
            (BindRefusal::UnknownDeviceOrCode, Some(_)) => "wrong bind code",
            _ => "",
        };
        let by = p.id;
        audit::log(
            &st.store,
            Event::BindRefused {
                by,
                device: &id,
                code: r.code(),
                detail,
            },
        )
        .await;
        return Err(refused(r).await);
    }
    if !devices::bind(&st.store, &id, p.id, name).await? {
        return Err(ApiErr::conflict(
            "already_bound",
            "this device was bound by another account a moment ago",
        ));
    }
    audit::log(
        &st.store,
        Event::Bound {
            by: p.id,
            device: &id,
        },
    )
    .await;
    device_view(&st, &id, owned()).await.map(axum::Json)
}

/// `PATCH /api/v1/devices/{id}`: the owner renames it.
pub(crate) async fn rename(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<DeviceRename>,
) -> ApiResult<axum::Json<DeviceView>> {
    let (id, access) = device_access(&st, &p, &id, Need::Owner).await?;
    devices::rename(&st.store, &id, check_name(&req.name)?).await?;
    device_view(&st, &id, access).await.map(axum::Json)
}

/// `DELETE /api/v1/devices/{id}`: the owner unbinds it (8.2).
pub(crate) async fn unbind(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    release(&st, &id).await?;
    audit::log(
        &st.store,
        Event::Unbound {
            by: p.id,
            device: &id,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Unbinds a device from its owner: shares go, the ACL version moves on (every outstanding
/// play token goes stale) and every live session ends now (docs/security.md D5). Used by
/// unbind (8.2) and reset (8.10).
pub(crate) async fn release(st: &Shared, id: &DeviceId) -> ApiResult<()> {
    devices::release(&st.store, id).await?;
    st.platform.revoke(id, None).await;
    Ok(())
}

/// `GET /api/v1/devices/{id}/status`: the device describes itself, through CMU -> SCU -> PU.
pub(crate) async fn status(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeviceStatus>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    let (node, reply) = st.platform.command(&id, DeviceCommand::Describe).await?;
    match reply {
        DeviceReply::Description(description) => Ok(axum::Json(DeviceStatus {
            id,
            node,
            description,
        })),
        DeviceReply::Failed { code, message } => Err(ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "device_failed",
            format!("the device refused ({code}): {message}"),
        )),
        _ => Err(ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "device_failed",
            "the device gave an unexpected answer",
        )),
    }
}

#[cfg(test)]
mod tests {
    use peercam_signal::ps::DeviceKind;

    use super::*;

    fn device(owner: Option<i64>, registered: bool) -> Device {
        Device {
            id: DeviceId::from_random([5; 10]),
            kind: DeviceKind::Pu,
            public_key: String::new(),
            bind_code_sha256: "c0de".into(),
            vendor: String::new(),
            model: String::new(),
            name: None,
            registered_at: registered.then_some(1),
            last_seen: None,
            sw_version: None,
            owner,
            acl_version: 1,
            disabled: false,
            decommissioned_at: None,
        }
    }

    #[test]
    fn h626_8_2_bind_code_is_checked_before_anything_is_told() {
        // An unknown id and a wrong code give one answer, whatever the device's state.
        assert_eq!(
            bind_verdict(1, None, "c0de", true),
            Err(BindRefusal::UnknownDeviceOrCode)
        );
        for d in [
            device(None, true),
            device(Some(2), true),
            device(None, false),
        ] {
            assert_eq!(
                bind_verdict(1, Some(&d), "bad0", true),
                Err(BindRefusal::UnknownDeviceOrCode)
            );
        }
    }

    #[test]
    fn h626_8_2_bind_tells_apart_bound_unregistered_offline() {
        let v = |d: Device, online| bind_verdict(1, Some(&d), "c0de", online);
        assert_eq!(
            v(device(Some(1), true), true),
            Err(BindRefusal::AlreadyYours)
        );
        assert_eq!(
            v(device(Some(2), true), true),
            Err(BindRefusal::AlreadyBound)
        );
        assert_eq!(
            v(device(None, false), true),
            Err(BindRefusal::NotRegistered)
        );
        assert_eq!(v(device(None, true), false), Err(BindRefusal::Offline));
        assert_eq!(v(device(None, true), true), Ok(()));
    }

    #[test]
    fn h626_8_7_1_a_cs_is_never_bound_by_a_user() {
        let mut d = device(None, true);
        d.kind = DeviceKind::Cs;
        assert_eq!(
            bind_verdict(1, Some(&d), "c0de", true),
            Err(BindRefusal::UnknownDeviceOrCode)
        );
    }

    #[test]
    fn h626_8_2_refusals_have_their_codes_and_statuses() {
        assert_eq!(
            BindRefusal::UnknownDeviceOrCode.answer().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(BindRefusal::Offline.answer().code, "device_offline");
        assert_eq!(
            BindRefusal::AlreadyBound.answer().status,
            StatusCode::CONFLICT
        );
    }
}
