//! Who is calling, and what may they do with a device.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use axum::http::HeaderMap;
use peercam_base::{DeviceId, Scope, ScopeSet};
use peercam_signal::cm::{AccountStatus, Relation, Role};
use peercam_signal::token::SessionToken;
use sqlx::{Row as _, SqlitePool};

use crate::error::{ApiErr, ApiResult};
use crate::{CmuError, Config, Shared, now_s, random_bytes};

/// An authenticated caller, resolved per request from the session table.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) id: i64,
    pub(crate) role: Role,
    pub(crate) parent: Option<i64>,
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

pub(crate) fn parse_status(s: &str) -> AccountStatus {
    match s {
        "active" => AccountStatus::Active,
        "pending_approval" => AccountStatus::PendingApproval,
        _ => AccountStatus::Disabled,
    }
}

pub(crate) fn parse_role(s: &str) -> Role {
    match s {
        "operator" => Role::Operator,
        "sub" => Role::Sub,
        _ => Role::Owner,
    }
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
    let row = sqlx::query(
        "SELECT u.id, u.role, u.login, u.status, u.parent_id FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ?1 AND s.expires_at > ?2",
    )
    .bind(token.digest())
    .bind(i64::try_from(now_s()).unwrap_or(i64::MAX))
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(ApiErr::unauthenticated)?;
    let status: String = row.try_get(3)?;
    if status != "active" {
        return Err(ApiErr::unauthenticated());
    }
    // A sub-account whose owner is disabled is disabled too.
    let parent: Option<i64> = row.try_get(4)?;
    if let Some(p) = parent {
        let ps: Option<String> = sqlx::query_scalar("SELECT status FROM users WHERE id = ?1")
            .bind(p)
            .fetch_optional(&state.db)
            .await?;
        if ps.as_deref() != Some("active") {
            return Err(ApiErr::unauthenticated());
        }
    }
    Ok(Principal {
        id: row.try_get(0)?,
        role: parse_role(&row.try_get::<String, _>(1)?),
        parent,
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
    let access = match who.role {
        Role::Owner => {
            let owned: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM devices WHERE id = ?1 AND owner_id = ?2")
                    .bind(id.as_str())
                    .bind(who.id)
                    .fetch_optional(&state.db)
                    .await?;
            owned.map(|_| DeviceAccess {
                relation: Relation::Owner,
                scopes: ScopeSet::all(),
            })
        }
        Role::Sub => {
            // The share must be from the device's current owner, who must be this account's parent.
            let bits: Option<i64> = sqlx::query_scalar(
                "SELECT s.scopes FROM shares s JOIN devices d ON d.id = s.device_id
                 WHERE s.device_id = ?1 AND s.user_id = ?2 AND d.owner_id = ?3",
            )
            .bind(id.as_str())
            .bind(who.id)
            .bind(who.parent.unwrap_or(-1))
            .fetch_optional(&state.db)
            .await?;
            bits.map(|b| DeviceAccess {
                relation: Relation::Shared,
                scopes: ScopeSet::from_bits(u8::try_from(b).unwrap_or(0)),
            })
        }
        Role::Operator => None,
    };
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
    Ok((id, access))
}

/// Appends to the audit log; failures are logged, never fatal to the request.
pub(crate) async fn audit(
    db: &SqlitePool,
    actor: Option<i64>,
    action: &str,
    device: Option<&str>,
    outcome: &str,
    detail: &str,
) {
    let r = sqlx::query("INSERT INTO audit (at, actor_id, action, device_id, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .bind(i64::try_from(now_s()).unwrap_or(i64::MAX))
        .bind(actor)
        .bind(action)
        .bind(device)
        .bind(outcome)
        .bind(detail)
        .execute(db)
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, action, "audit write failed");
    }
}

/// Creates the operator account on first start, with a random password written to
/// `data_dir/admin.password` (mode 0600). No default passwords (SECURITY.md D6).
pub(crate) async fn bootstrap_operator(
    db: &SqlitePool,
    config: &Config,
) -> Result<Option<std::path::PathBuf>, CmuError> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE role = 'operator' LIMIT 1")
            .fetch_optional(db)
            .await?;
    if exists.is_some() {
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
    sqlx::query("INSERT INTO users (role, login, password_hash, status, created_at) VALUES ('operator', 'admin', ?1, 'active', ?2)")
        .bind(hash)
        .bind(i64::try_from(now_s()).unwrap_or(i64::MAX))
        .execute(db)
        .await?;
    tracing::warn!(file = %path.display(), "created operator account `admin`; its password is in the file");
    Ok(Some(path))
}
