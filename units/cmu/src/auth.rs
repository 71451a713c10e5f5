//! Who is calling, and what may they do with a device.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use axum::http::HeaderMap;
use peercam_base::{DeviceId, Scope, ScopeSet};
use peercam_signal::cm::{Relation, Role};
use peercam_signal::token::SessionToken;

use crate::error::{ApiErr, ApiResult};
use crate::store::{Store, accounts};
use crate::{CmuError, Config, Shared, now_s, random_bytes};

/// An authenticated caller, resolved per request from the session table.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) id: i64,
    pub(crate) role: Role,
    pub(crate) parent: Option<i64>,
    /// Whether the account signs in with a TOTP code (issue 18 item 2).
    pub(crate) totp: bool,
}

pub(crate) fn hash_password(password: &str) -> ApiResult<String> {
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| ApiErr::internal("salt", &e))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiErr::internal("password hash", &e))
}

pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the login does not exist, so timing does not tell.
pub(crate) fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

pub(crate) fn check_new_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 10 || password.len() > 256 {
        return Err(ApiErr::bad_request(
            "weak_password",
            "passwords must have 10 to 256 characters",
        ));
    }
    Ok(())
}

/// Resolves the bearer token to an active account.
pub(crate) async fn principal(state: &Shared, headers: &HeaderMap) -> ApiResult<Principal> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiErr::unauthenticated)?;
    let text = header
        .strip_prefix("Bearer ")
        .ok_or_else(ApiErr::unauthenticated)?;
    let token = SessionToken::parse(text.trim()).map_err(|_| ApiErr::unauthenticated())?;
    let account = crate::store::sessions::account(&state.store, &token.digest(), now_s())
        .await?
        .ok_or_else(ApiErr::unauthenticated)?;
    Ok(Principal {
        id: account.id,
        role: account.role,
        parent: account.parent,
        totp: account.totp,
    })
}

/// What the caller may do with one device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceAccess {
    pub(crate) relation: Relation,
    pub(crate) scopes: ScopeSet,
}

/// What an action needs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Need {
    /// Any relation (seeing the device in a list).
    Any,
    /// One scope.
    Scope(Scope),
    /// Ownership (share, unbind, rename).
    Owner,
}

/// Decides access from the database for this exact (principal, device, action) (D3).
///
/// "Not yours" and "does not exist" give the same answer.
pub(crate) async fn device_access(
    state: &Shared,
    who: &Principal,
    device: &str,
    need: Need,
) -> ApiResult<(DeviceId, DeviceAccess)> {
    let id: DeviceId = device.parse().map_err(|_| ApiErr::no_device())?;
    let access = match (who.role, who.parent) {
        (Role::Owner, _) => {
            let owner = crate::store::devices::get(&state.store, &id)
                .await?
                .and_then(|d| d.owner);
            (owner == Some(who.id)).then_some(DeviceAccess {
                relation: Relation::Owner,
                scopes: ScopeSet::all(),
            })
        }
        // The share must be from the device's current owner, who must be this account's parent.
        (Role::Sub, Some(parent)) => {
            crate::store::shares::scopes_from_owner(&state.store, &id, who.id, parent)
                .await?
                .map(|scopes| DeviceAccess {
                    relation: Relation::Shared,
                    scopes,
                })
        }
        _ => None,
    };
    Ok((id, permits(access, need)?))
}

/// D3: what `access` (none: not related to the device) allows for `need`. "Not yours" is the
/// answer for "does not exist".
pub(crate) fn permits(access: Option<DeviceAccess>, need: Need) -> ApiResult<DeviceAccess> {
    let access = access.ok_or_else(ApiErr::no_device)?;
    match need {
        Need::Any => {}
        Need::Scope(s) if access.scopes.contains(s) => {}
        Need::Scope(s) => {
            return Err(ApiErr::forbidden(format!(
                "this device was shared without the `{s}` scope"
            )));
        }
        Need::Owner if access.relation == Relation::Owner => {}
        Need::Owner => return Err(ApiErr::forbidden("only the device's owner may do this")),
    }
    Ok(access)
}

/// Creates the operator account on first start, with a random password written to
/// `data_dir/admin.password` (mode 0600). No default passwords (docs/security.md D6).
pub(crate) async fn bootstrap_operator(
    db: &Store,
    config: &Config,
) -> Result<Option<std::path::PathBuf>, CmuError> {
    if accounts::operator_exists(db).await? {
        return Ok(None);
    }
    let password: String = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<18>())
    };
    let hash = hash_password(&password).map_err(|e| CmuError::Config(e.message))?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| CmuError::Io {
        context: format!("creating {}", config.data_dir.display()),
        source: e,
    })?;
    let path = config.data_dir.join("admin.password");
    peercam_net::pki::write_file(&path, &format!("{password}\n"), true)?;
    accounts::create(db, Role::Operator, "admin", &hash, None, now_s()).await?;
    tracing::warn!(file = %path.display(), "created operator account `admin`; its password is in the file");
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn shared(scopes: &[Scope]) -> Option<DeviceAccess> {
        Some(DeviceAccess {
            relation: Relation::Shared,
            scopes: scopes.iter().copied().collect(),
        })
    }

    #[test]
    fn h626_8_6_scopes_gate_each_action() {
        let live = shared(&[Scope::Live]);
        assert!(permits(live, Need::Scope(Scope::Live)).is_ok());
        assert!(permits(live, Need::Any).is_ok());
        let e = permits(live, Need::Scope(Scope::Ptz)).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "forbidden"));
        let e = permits(live, Need::Owner).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let owner = Some(DeviceAccess {
            relation: Relation::Owner,
            scopes: ScopeSet::all(),
        });
        assert!(permits(owner, Need::Owner).is_ok());
    }

    #[test]
    fn h626_8_6_after_unshare_the_device_is_not_found() {
        // D3: no relation (unshared, never shared, or no such device) is one answer.
        for need in [Need::Any, Need::Owner, Need::Scope(Scope::Live)] {
            let e = permits(None, need).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "not_found"));
        }
    }
}
