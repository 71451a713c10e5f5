//! Sub-accounts and sharing, H.626.4 8.6 and 6.1.10: an owner makes sub-accounts, shares a
//! device with one of them with scopes, and unshares it, which takes effect at once (the
//! ACL version moves and live sessions end, docs/security.md D5).
//!
//! Scopes: `live`, `playback`, `ptz` and `config` gate what they name. `talk` is accepted
//! and stored, but intercom is not implemented yet: no route needs it today.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use peercam_base::{DeviceId, ScopeSet};
use peercam_signal::cm::Role;
use peercam_signal::cm::{ShareRequest, ShareView, SubaccountCreate, SubaccountView};

use crate::audit::{self, Event};
use crate::auth::{self, Need, Principal, device_access};
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::{accounts, devices, shares};
use crate::{Shared, now_s};

/// Sub-accounts per owner (6.1.10).
const MAX_SUBACCOUNTS: usize = 50;

/// 6.1.10: a username is 3-32 characters of a-z, 0-9, '.', '_', '-' (case folded), not
/// `admin`.
pub(crate) fn check_username(u: &str) -> ApiResult<String> {
    let u = u.trim().to_lowercase();
    let ok = (3..=32).contains(&u.len())
        && u.bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
        && u != "admin";
    if ok {
        Ok(u)
    } else {
        Err(ApiErr::bad_request(
            "bad_username",
            "usernames have 3-32 characters of a-z, 0-9, '.', '_', '-'",
        ))
    }
}

/// 8.6: a share gives at least one scope.
pub(crate) fn check_scopes(scopes: ScopeSet) -> ApiResult<ScopeSet> {
    if scopes.is_empty() {
        return Err(ApiErr::bad_request(
            "no_scopes",
            "give at least one scope: live, playback, ptz, talk, config",
        ));
    }
    Ok(scopes)
}

async fn my_subaccount(st: &Shared, owner: &Principal, username: &str) -> ApiResult<i64> {
    let username = username.trim().to_lowercase();
    accounts::subaccount_id(&st.store, owner.id, &username)
        .await?
        .ok_or_else(|| ApiErr::not_found("no_subaccount", "you have no sub-account with this name"))
}

/// `GET /api/v1/subaccounts`.
pub(crate) async fn list_subaccounts(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<axum::Json<Vec<SubaccountView>>> {
    let subs = accounts::children(&st.store, p.id).await?;
    Ok(axum::Json(
        subs.into_iter()
            .filter(|a| a.role == Role::Sub)
            .map(|a| SubaccountView {
                id: a.id,
                username: a.login,
                created_at: a.created_at,
            })
            .collect(),
    ))
}

/// `POST /api/v1/subaccounts`: 6.1.10.
pub(crate) async fn create_subaccount(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<SubaccountCreate>,
) -> ApiResult<axum::Json<SubaccountView>> {
    let username = check_username(&req.username)?;
    auth::check_new_password(&req.password)?;
    if accounts::children(&st.store, p.id).await?.len() >= MAX_SUBACCOUNTS {
        return Err(ApiErr::conflict(
            "too_many_subaccounts",
            "an account may have at most 50 sub-accounts",
        ));
    }
    let hash = auth::hash_password(&req.password)?;
    let now = now_s();
    let id = accounts::create(&st.store, Role::Sub, &username, &hash, Some(p.id), now)
        .await?
        .ok_or_else(|| {
            ApiErr::conflict("username_taken", "this username is taken; choose another")
        })?;
    audit::log(
        &st.store,
        Event::SubaccountCreated {
            by: p.id,
            username: &username,
        },
    )
    .await;
    Ok(axum::Json(SubaccountView {
        id,
        username,
        created_at: now,
    }))
}

/// `DELETE /api/v1/subaccounts/{username}`: its shares end at once.
pub(crate) async fn delete_subaccount(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    let id = my_subaccount(&st, &p, &username).await?;
    revoke_user_everywhere(&st, id).await?;
    accounts::delete(&st.store, id).await?;
    // H.626.4 6.2: the CRM is told of account changes (through the outbox).
    let owner = format!("owner {}", p.id);
    crate::crm::changed(&st, "account.deleted", id, &username, Some(&owner)).await;
    audit::log(
        &st.store,
        Event::SubaccountDeleted {
            by: p.id,
            username: &username,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/devices/{id}/shares`.
pub(crate) async fn list_shares(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<ShareView>>> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    let rows = shares::of_device(&st.store, &id).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|(username, scopes)| ShareView {
                device_id: id.clone(),
                username,
                scopes,
            })
            .collect(),
    ))
}

/// `POST /api/v1/devices/{id}/shares`: 8.6, share (or change the scopes of a share).
pub(crate) async fn share(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<ShareRequest>,
) -> ApiResult<axum::Json<ShareView>> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    let scopes = check_scopes(req.scopes)?;
    let sub = my_subaccount(&st, &p, &req.username).await?;
    shares::put(&st.store, &id, sub, scopes, now_s()).await?;
    let by = p.id;
    let username = req.username.as_str();
    audit::log(
        &st.store,
        Event::Shared {
            by,
            device: &id,
            username,
            scopes,
        },
    )
    .await;
    Ok(axum::Json(ShareView {
        device_id: id,
        username: req.username.trim().to_lowercase(),
        scopes,
    }))
}

/// `DELETE /api/v1/devices/{id}/shares/{username}`: 8.6 unshare, effective now.
pub(crate) async fn unshare(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    let sub = my_subaccount(&st, &p, &username).await?;
    // docs/security.md D5: the ACL version moves, so anything minted before is stale.
    if !shares::remove(&st.store, &id, sub).await? {
        return Err(ApiErr::not_found(
            "no_share",
            "this device is not shared with that sub-account",
        ));
    }
    st.platform.revoke(&id, Some(sub)).await;
    audit::log(
        &st.store,
        Event::Unshared {
            by: p.id,
            device: &id,
            username: &username,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves the ACL version of every device `user` owns or was shared, and ends the user's live
/// sessions on them (docs/security.md D5). Returns the devices touched.
pub(crate) async fn revoke_user_everywhere(st: &Shared, user: i64) -> ApiResult<Vec<DeviceId>> {
    let ids = devices::bump_acl_of_user(&st.store, user).await?;
    for d in &ids {
        st.platform.revoke(d, Some(user)).await;
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use peercam_base::Scope;

    use super::*;

    #[test]
    fn h626_8_6_usernames_are_folded_and_checked() {
        assert_eq!(check_username(" Kid.One ").unwrap(), "kid.one");
        for bad in [
            "ab",
            "admin",
            "ADMIN",
            "no spaces",
            "ümlaut",
            &"x".repeat(33),
        ] {
            assert_eq!(
                check_username(bad).unwrap_err().code,
                "bad_username",
                "{bad}"
            );
        }
    }

    #[test]
    fn h626_8_6_a_share_needs_a_scope() {
        assert_eq!(check_scopes(ScopeSet::EMPTY).unwrap_err().code, "no_scopes");
        let s = ScopeSet::from_iter([Scope::Talk]);
        assert_eq!(check_scopes(s).unwrap(), s);
    }
}
