//! Handlers of the Cm routes. Access by role is checked by the guard in [`crate::api`];
//! access to a device is checked here, per request, with [`auth::device_access`].

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use peercam_base::{DeviceId, Phone, Scope, ScopeSet};
use peercam_signal::cm::*;
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::identity::BindCode;
use peercam_signal::ps::DeviceKind;
use peercam_signal::token::SessionToken;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use subtle::ConstantTimeEq as _;

use crate::auth::{self, Need, Principal, audit, device_access};
use crate::error::{ApiErr, ApiResult};
use crate::{Shared, now_s, random_bytes};

/// A row of the audit table.
type AuditRow = (
    i64,
    i64,
    Option<i64>,
    String,
    Option<String>,
    String,
    String,
);
/// A row of the operator's device list.
type AdminDeviceRow = (String, String, String, String, Option<i64>, Option<i64>);

fn ts(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

// ---------------------------------------------------------------------------------------------
// Accounts (H.626.4 6.1.1)

pub(crate) async fn signup(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<SignupRequest>,
) -> ApiResult<Json<SignupState>> {
    let phone: Phone = req
        .phone
        .parse()
        .map_err(|e: peercam_base::IdError| ApiErr::bad_request("bad_phone", e.to_string()))?;
    auth::check_new_password(&req.password)?;
    // H.626.4 8.9.2: the operator may close sign-up.
    if !crate::settings::platform(&st).await?.1.signup_open {
        return Err(
            ApiErr::forbidden("sign-up is closed on this platform; ask its operator")
                .with_code("signup_closed"),
        );
    }
    // SMS pumping defence: per number and per client address.
    st.limits
        .hit(&format!("sms:{phone}"), 3, Duration::from_secs(600))
        .map_err(ApiErr::too_many)?;
    st.limits
        .hit(
            &format!("sms-ip:{}", peer.ip()),
            20,
            Duration::from_secs(3600),
        )
        .map_err(ApiErr::too_many)?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE login = ?1")
        .bind(phone.as_str())
        .fetch_optional(&st.db)
        .await?;
    if exists.is_some() {
        return Err(ApiErr::conflict(
            "phone_taken",
            "an account with this phone number exists; log in instead",
        ));
    }
    let code = format!("{:06}", u32::from_be_bytes(random_bytes::<4>()) % 1_000_000);
    let password_hash = auth::hash_password(&req.password)?;
    sqlx::query(
        "INSERT INTO signup_codes (phone, code_hash, password_hash, expires_at, attempts) VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT (phone) DO UPDATE SET code_hash = excluded.code_hash, password_hash = excluded.password_hash,
         expires_at = excluded.expires_at, attempts = 0",
    )
    .bind(phone.as_str())
    .bind(sha_hex(format!("{phone}:{code}").as_bytes()))
    .bind(password_hash)
    .bind(ts(now_s() + st.config.signup_code_ttl_s))
    .execute(&st.db)
    .await?;
    let text = format!(
        "peercam: your sign-up code is {code}. It expires in {} minutes. Do not share it.",
        st.config.signup_code_ttl_s / 60
    );
    st.sms.send(&phone, &text).await.map_err(|e| {
        tracing::error!(error = %e, "SMS send failed");
        ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "sms_failed",
            "the SMS could not be sent; try again later",
        )
    })?;
    audit(
        &st.db,
        None,
        "account.signup",
        None,
        "ok",
        &format!(
            "code sent to …{}",
            &phone.as_str()[phone.as_str().len() - 2..]
        ),
    )
    .await;
    Ok(Json(SignupState {
        status: AccountStatus::PendingCode,
        next: "enter the code sent by SMS at /api/v1/signup/confirm".into(),
    }))
}

pub(crate) async fn signup_confirm(
    State(st): State<Shared>,
    Json(req): Json<SignupConfirm>,
) -> ApiResult<Json<SignupState>> {
    let phone: Phone = req
        .phone
        .parse()
        .map_err(|e: peercam_base::IdError| ApiErr::bad_request("bad_phone", e.to_string()))?;
    let row = sqlx::query(
        "SELECT code_hash, password_hash, expires_at, attempts FROM signup_codes WHERE phone = ?1",
    )
    .bind(phone.as_str())
    .fetch_optional(&st.db)
    .await?
    .ok_or_else(|| {
        ApiErr::bad_request(
            "no_pending_signup",
            "no sign-up is pending for this number; start again",
        )
    })?;
    let (code_hash, password_hash, expires_at, attempts): (String, String, i64, i64) = (
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    );
    if expires_at <= ts(now_s()) || attempts >= 5 {
        sqlx::query("DELETE FROM signup_codes WHERE phone = ?1")
            .bind(phone.as_str())
            .execute(&st.db)
            .await?;
        return Err(ApiErr::bad_request(
            "code_expired",
            "the code expired or was tried too often; sign up again for a new one",
        ));
    }
    let given = sha_hex(format!("{phone}:{}", req.code.trim()).as_bytes());
    if !bool::from(given.as_bytes().ct_eq(code_hash.as_bytes())) {
        sqlx::query("UPDATE signup_codes SET attempts = attempts + 1 WHERE phone = ?1")
            .bind(phone.as_str())
            .execute(&st.db)
            .await?;
        return Err(ApiErr::bad_request(
            "wrong_code",
            "wrong code; check the SMS and try again",
        ));
    }
    let mut tx = st.db.begin().await?;
    sqlx::query("DELETE FROM signup_codes WHERE phone = ?1")
        .bind(phone.as_str())
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query("INSERT INTO users (role, login, password_hash, status, created_at) VALUES ('owner', ?1, ?2, 'pending_approval', ?3) ON CONFLICT (login) DO NOTHING")
        .bind(phone.as_str())
        .bind(password_hash)
        .bind(ts(now_s()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiErr::conflict(
            "phone_taken",
            "an account with this phone number exists; log in instead",
        ));
    }
    audit(
        &st.db,
        None,
        "account.confirm",
        None,
        "ok",
        "awaiting operator approval",
    )
    .await;
    Ok(Json(SignupState {
        status: AccountStatus::PendingApproval,
        next: "the operator will approve the account; then log in".into(),
    }))
}

pub(crate) async fn login(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let login = match req.login.parse::<Phone>() {
        Ok(p) => p.as_str().to_owned(),
        Err(_) => req.login.trim().to_lowercase(),
    };
    if login.len() > 64 || req.password.len() > 256 {
        return Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong login or password",
        ));
    }
    let key = format!("login:{login}");
    st.limits
        .hit(&key, 5, Duration::from_secs(300))
        .map_err(ApiErr::too_many)?;
    st.limits
        .hit(
            &format!("login-ip:{}", peer.ip()),
            60,
            Duration::from_secs(60),
        )
        .map_err(ApiErr::too_many)?;
    let row = sqlx::query(
        "SELECT id, role, password_hash, status, parent_id FROM users WHERE login = ?1",
    )
    .bind(&login)
    .fetch_optional(&st.db)
    .await?;
    let hash = row
        .as_ref()
        .map(|r| r.try_get::<String, _>(2))
        .transpose()?;
    let password = req.password.clone();
    let hash_for_check = hash
        .clone()
        .unwrap_or_else(|| auth::dummy_hash().to_owned());
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash_for_check))
        .await
        .unwrap_or(false);
    let Some(row) = row.filter(|_| ok && hash.is_some()) else {
        audit(&st.db, None, "account.login", None, "bad_credentials", "").await;
        return Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong login or password",
        ));
    };
    let id: i64 = row.try_get(0)?;
    let status: String = row.try_get(3)?;
    match status.as_str() {
        "active" => {}
        "pending_approval" => {
            return Err(
                ApiErr::forbidden("this account waits for the operator's approval")
                    .with_code("pending_approval"),
            );
        }
        _ => return Err(ApiErr::forbidden("this account is disabled").with_code("disabled")),
    }
    st.limits.clear(&key);
    let token = SessionToken::from_random(random_bytes::<32>());
    let expires_at = now_s() + crate::settings::platform(&st).await?.1.session_ttl_s;
    sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1")
        .bind(ts(now_s()))
        .execute(&st.db)
        .await?;
    sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(token.digest())
        .bind(id)
        .bind(ts(now_s()))
        .bind(ts(expires_at))
        .execute(&st.db)
        .await?;
    audit(&st.db, Some(id), "account.login", None, "ok", "").await;
    Ok(Json(LoginResponse {
        token: token.reveal(),
        expires_at,
        user: UserInfo {
            id,
            role: auth::parse_role(&row.try_get::<String, _>(1)?),
            login,
            status: AccountStatus::Active,
            parent: row.try_get(4)?,
        },
    }))
}

impl ApiErr {
    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
}

pub(crate) async fn logout(State(st): State<Shared>, headers: HeaderMap) -> ApiResult<StatusCode> {
    if let Some(t) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|v| SessionToken::parse(v.trim()).ok())
    {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?1")
            .bind(t.digest())
            .execute(&st.db)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn me(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<UserInfo>> {
    user_info(&st, p.id).await.map(Json)
}

async fn user_info(st: &Shared, id: i64) -> ApiResult<UserInfo> {
    let row = sqlx::query("SELECT id, role, login, status, parent_id FROM users WHERE id = ?1")
        .bind(id)
        .fetch_optional(&st.db)
        .await?
        .ok_or_else(|| ApiErr::new(StatusCode::NOT_FOUND, "not_found", "no such account"))?;
    Ok(UserInfo {
        id: row.try_get(0)?,
        role: auth::parse_role(&row.try_get::<String, _>(1)?),
        login: row.try_get(2)?,
        status: auth::parse_status(&row.try_get::<String, _>(3)?),
        parent: row.try_get(4)?,
    })
}

pub(crate) async fn change_password(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Json(req): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    auth::check_new_password(&req.new_password)?;
    st.limits
        .hit(&format!("passwd:{}", p.id), 5, Duration::from_secs(300))
        .map_err(ApiErr::too_many)?;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?1")
        .bind(p.id)
        .fetch_one(&st.db)
        .await?;
    let old = req.old_password.clone();
    if !tokio::task::spawn_blocking(move || auth::verify_password(&old, &hash))
        .await
        .unwrap_or(false)
    {
        return Err(ApiErr::forbidden("the current password is wrong").with_code("bad_credentials"));
    }
    let new_hash = auth::hash_password(&req.new_password)?;
    let current = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|v| SessionToken::parse(v.trim()).ok())
        .map(|t| t.digest())
        .unwrap_or_default();
    let mut tx = st.db.begin().await?;
    sqlx::query("UPDATE users SET password_hash = ?1 WHERE id = ?2")
        .bind(new_hash)
        .bind(p.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2")
        .bind(p.id)
        .bind(current)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    audit(&st.db, Some(p.id), "account.password", None, "ok", "").await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Devices (H.626.4 8.2)

async fn device_view(
    st: &Shared,
    id: &DeviceId,
    access: auth::DeviceAccess,
) -> ApiResult<DeviceView> {
    let row = sqlx::query("SELECT kind, vendor, model, name, last_seen FROM devices WHERE id = ?1")
        .bind(id.as_str())
        .fetch_optional(&st.db)
        .await?
        .ok_or_else(ApiErr::no_device)?;
    let model: String = row.try_get(2)?;
    let name: Option<String> = row.try_get(3)?;
    let last_seen: Option<i64> = row.try_get(4)?;
    Ok(DeviceView {
        id: id.clone(),
        name: name.unwrap_or_else(|| model.clone()),
        kind: parse_kind(&row.try_get::<String, _>(0)?),
        vendor: row.try_get(1)?,
        model,
        online: st.platform.is_online(id),
        last_seen: last_seen.and_then(|v| u64::try_from(v).ok()),
        relation: access.relation,
        scopes: access.scopes,
    })
}

fn parse_kind(s: &str) -> DeviceKind {
    match s {
        "nvr" => DeviceKind::Nvr,
        "mtu" => DeviceKind::Mtu,
        _ => DeviceKind::Pu,
    }
}

pub(crate) async fn list_devices(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<DeviceView>>> {
    let rows: Vec<(String, i64, i64)> = if p.role == Role::Owner {
        sqlx::query_as("SELECT id, 1, 31 FROM devices WHERE owner_id = ?1 ORDER BY id")
            .bind(p.id)
            .fetch_all(&st.db)
            .await?
    } else {
        sqlx::query_as(
            "SELECT d.id, 0, s.scopes FROM shares s JOIN devices d ON d.id = s.device_id
             WHERE s.user_id = ?1 AND d.owner_id = ?2 ORDER BY d.id",
        )
        .bind(p.id)
        .bind(p.parent.unwrap_or(-1))
        .fetch_all(&st.db)
        .await?
    };
    let mut out = Vec::with_capacity(rows.len());
    for (id, owner, scopes) in rows {
        let Ok(id) = id.parse::<DeviceId>() else {
            continue;
        };
        let access = auth::DeviceAccess {
            relation: if owner == 1 {
                Relation::Owner
            } else {
                Relation::Shared
            },
            scopes: ScopeSet::from_bits(u8::try_from(scopes).unwrap_or(0)),
        };
        out.push(device_view(&st, &id, access).await?);
    }
    Ok(Json(out))
}

pub(crate) async fn get_device(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    let (id, access) = device_access(&st, &p, &id, Need::Any).await?;
    device_view(&st, &id, access).await.map(Json)
}

pub(crate) async fn bind(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<BindRequest>,
) -> ApiResult<Json<DeviceView>> {
    // Bind codes are 60-bit secrets; still, throttle guessing per account.
    st.limits
        .hit(&format!("bind:{}", p.id), 10, Duration::from_secs(600))
        .map_err(ApiErr::too_many)?;
    let unknown = || {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            "unknown_device_or_code",
            "no device has this id and bind code; check the sticker",
        )
    };
    let Ok(id) = req.device_id.trim().parse::<DeviceId>() else {
        return Err(unknown());
    };
    let Ok(code) = BindCode::parse(&req.bind_code) else {
        return Err(unknown());
    };
    let name = req.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 64) {
        return Err(ApiErr::bad_request(
            "bad_name",
            "names have at most 64 characters",
        ));
    }
    let row =
        sqlx::query("SELECT bind_code_sha256, registered_at, owner_id FROM devices WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&st.db)
            .await?;
    // H.626.4 8.2 step 2: the CMU authenticates the device (possession of the bind code),
    // then checks it is registered, online and unbound, and says which check failed.
    let Some(row) = row else {
        audit(
            &st.db,
            Some(p.id),
            "device.bind",
            Some(id.as_str()),
            "unknown_device_or_code",
            "",
        )
        .await;
        return Err(unknown());
    };
    let digest: String = row.try_get(0)?;
    if !bool::from(code.digest(&id).as_bytes().ct_eq(digest.as_bytes())) {
        audit(
            &st.db,
            Some(p.id),
            "device.bind",
            Some(id.as_str()),
            "unknown_device_or_code",
            "wrong bind code",
        )
        .await;
        return Err(unknown());
    }
    let registered: Option<i64> = row.try_get(1)?;
    let owner: Option<i64> = row.try_get(2)?;
    let refuse = |code: &'static str, msg: &str| ApiErr::conflict(code, msg);
    let err = if owner == Some(p.id) {
        Some(refuse(
            "already_yours",
            "this device is already bound to your account",
        ))
    } else if owner.is_some() {
        Some(refuse(
            "already_bound",
            "this device is bound to another account; its owner must unbind it or reset it first",
        ))
    } else if registered.is_none() {
        Some(refuse(
            "not_registered",
            "this device has never registered with the platform; power it on and connect it to the internet",
        ))
    } else if !st.platform.is_online(&id) {
        Some(refuse(
            "device_offline",
            "this device is offline; check its power and network, then try again",
        ))
    } else {
        None
    };
    if let Some(e) = err {
        audit(
            &st.db,
            Some(p.id),
            "device.bind",
            Some(id.as_str()),
            e.code,
            "",
        )
        .await;
        return Err(e);
    }
    let done = sqlx::query("UPDATE devices SET owner_id = ?1, name = ?2, acl_version = acl_version + 1 WHERE id = ?3 AND owner_id IS NULL")
        .bind(p.id)
        .bind(name)
        .bind(id.as_str())
        .execute(&st.db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(refuse(
            "already_bound",
            "this device was bound by another account a moment ago",
        ));
    }
    audit(
        &st.db,
        Some(p.id),
        "device.bind",
        Some(id.as_str()),
        "ok",
        "",
    )
    .await;
    let access = auth::DeviceAccess {
        relation: Relation::Owner,
        scopes: ScopeSet::all(),
    };
    device_view(&st, &id, access).await.map(Json)
}

pub(crate) async fn rename_device(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<DeviceRename>,
) -> ApiResult<Json<DeviceView>> {
    let (id, access) = device_access(&st, &p, &id, Need::Owner).await?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiErr::bad_request(
            "bad_name",
            "names have 1 to 64 characters",
        ));
    }
    sqlx::query("UPDATE devices SET name = ?1 WHERE id = ?2")
        .bind(name)
        .bind(id.as_str())
        .execute(&st.db)
        .await?;
    device_view(&st, &id, access).await.map(Json)
}

pub(crate) async fn unbind(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    release_device(&st, &id).await?;
    audit(
        &st.db,
        Some(p.id),
        "device.unbind",
        Some(id.as_str()),
        "ok",
        "",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn device_status(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceStatus>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    let (node, reply) = st.platform.command(&id, DeviceCommand::Describe).await?;
    match reply {
        DeviceReply::Description(description) => Ok(Json(DeviceStatus {
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

// ---------------------------------------------------------------------------------------------
// Sub-accounts and sharing (H.626.4 8.6, 6.1.10)

fn check_username(u: &str) -> ApiResult<String> {
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

async fn my_subaccount(st: &Shared, owner: &Principal, username: &str) -> ApiResult<i64> {
    let username = username.trim().to_lowercase();
    sqlx::query_scalar("SELECT id FROM users WHERE login = ?1 AND role = 'sub' AND parent_id = ?2")
        .bind(&username)
        .bind(owner.id)
        .fetch_optional(&st.db)
        .await?
        .ok_or_else(|| {
            ApiErr::new(
                StatusCode::NOT_FOUND,
                "no_subaccount",
                "you have no sub-account with this name",
            )
        })
}

pub(crate) async fn list_subaccounts(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<SubaccountView>>> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as("SELECT id, login, created_at FROM users WHERE role = 'sub' AND parent_id = ?1 ORDER BY login")
        .bind(p.id)
        .fetch_all(&st.db)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, username, c)| SubaccountView {
                id,
                username,
                created_at: u64::try_from(c).unwrap_or(0),
            })
            .collect(),
    ))
}

pub(crate) async fn create_subaccount(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<SubaccountCreate>,
) -> ApiResult<Json<SubaccountView>> {
    let username = check_username(&req.username)?;
    auth::check_new_password(&req.password)?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE parent_id = ?1")
        .bind(p.id)
        .fetch_one(&st.db)
        .await?;
    if count >= 50 {
        return Err(ApiErr::conflict(
            "too_many_subaccounts",
            "an account may have at most 50 sub-accounts",
        ));
    }
    let hash = auth::hash_password(&req.password)?;
    let now = now_s();
    let r = sqlx::query("INSERT INTO users (role, login, password_hash, status, parent_id, created_at) VALUES ('sub', ?1, ?2, 'active', ?3, ?4) ON CONFLICT (login) DO NOTHING")
        .bind(&username)
        .bind(hash)
        .bind(p.id)
        .bind(ts(now))
        .execute(&st.db)
        .await?;
    if r.rows_affected() == 0 {
        return Err(ApiErr::conflict(
            "username_taken",
            "this username is taken; choose another",
        ));
    }
    audit(
        &st.db,
        Some(p.id),
        "subaccount.create",
        None,
        "ok",
        &username,
    )
    .await;
    Ok(Json(SubaccountView {
        id: r.last_insert_rowid(),
        username,
        created_at: now,
    }))
}

pub(crate) async fn delete_subaccount(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    let id = my_subaccount(&st, &p, &username).await?;
    let devices = revoke_user_everywhere(&st, id).await?;
    sqlx::query("DELETE FROM users WHERE id = ?1")
        .bind(id)
        .execute(&st.db)
        .await?;
    let _ = devices;
    audit(
        &st.db,
        Some(p.id),
        "subaccount.delete",
        None,
        "ok",
        &username,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn list_shares(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ShareView>>> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT u.login, s.scopes FROM shares s JOIN users u ON u.id = s.user_id WHERE s.device_id = ?1 ORDER BY u.login")
        .bind(id.as_str())
        .fetch_all(&st.db)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(username, bits)| ShareView {
                device_id: id.clone(),
                username,
                scopes: ScopeSet::from_bits(u8::try_from(bits).unwrap_or(0)),
            })
            .collect(),
    ))
}

pub(crate) async fn share(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<ShareRequest>,
) -> ApiResult<Json<ShareView>> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    if req.scopes.is_empty() {
        return Err(ApiErr::bad_request(
            "no_scopes",
            "give at least one scope: live, playback, ptz, talk, config",
        ));
    }
    let sub = my_subaccount(&st, &p, &req.username).await?;
    sqlx::query("INSERT INTO shares (device_id, user_id, scopes, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (device_id, user_id) DO UPDATE SET scopes = excluded.scopes")
        .bind(id.as_str())
        .bind(sub)
        .bind(i64::from(req.scopes.bits()))
        .bind(ts(now_s()))
        .execute(&st.db)
        .await?;
    sqlx::query("UPDATE devices SET acl_version = acl_version + 1 WHERE id = ?1")
        .bind(id.as_str())
        .execute(&st.db)
        .await?;
    let scopes: Vec<&str> = req.scopes.iter().map(Scope::as_str).collect();
    audit(
        &st.db,
        Some(p.id),
        "device.share",
        Some(id.as_str()),
        "ok",
        &format!("{} {}", req.username, scopes.join(",")),
    )
    .await;
    Ok(Json(ShareView {
        device_id: id,
        username: req.username.trim().to_lowercase(),
        scopes: req.scopes,
    }))
}

pub(crate) async fn unshare(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    let sub = my_subaccount(&st, &p, &username).await?;
    let r = sqlx::query("DELETE FROM shares WHERE device_id = ?1 AND user_id = ?2")
        .bind(id.as_str())
        .bind(sub)
        .execute(&st.db)
        .await?;
    if r.rows_affected() == 0 {
        return Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "no_share",
            "this device is not shared with that sub-account",
        ));
    }
    // SECURITY.md D5: the ACL version moves, so anything minted before is stale.
    sqlx::query("UPDATE devices SET acl_version = acl_version + 1 WHERE id = ?1")
        .bind(id.as_str())
        .execute(&st.db)
        .await?;
    st.platform.revoke(&id, Some(sub));
    audit(
        &st.db,
        Some(p.id),
        "device.unshare",
        Some(id.as_str()),
        "ok",
        &username,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    limit: Option<u32>,
}

fn audit_rows(rows: Vec<AuditRow>) -> Vec<AuditEntry> {
    rows.into_iter()
        .map(
            |(id, at, actor, action, device_id, outcome, detail)| AuditEntry {
                id,
                at: u64::try_from(at).unwrap_or(0),
                actor,
                action,
                device_id,
                outcome,
                detail,
            },
        )
        .collect()
}

pub(crate) async fn my_audit(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = i64::from(q.limit.unwrap_or(100).min(1000));
    let rows = sqlx::query_as(
        "SELECT id, at, actor_id, action, device_id, outcome, detail FROM audit
         WHERE actor_id = ?1 OR device_id IN (SELECT id FROM devices WHERE owner_id = ?1) ORDER BY id DESC LIMIT ?2",
    )
    .bind(p.id)
    .bind(limit)
    .fetch_all(&st.db)
    .await?;
    Ok(Json(audit_rows(rows)))
}

// ---------------------------------------------------------------------------------------------
// Operator

pub(crate) async fn provision(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<ProvisionRequest>,
) -> ApiResult<Json<ProvisionResult>> {
    if req.devices.len() > 10_000 {
        return Err(ApiErr::bad_request(
            "too_many",
            "at most 10,000 devices per request",
        ));
    }
    for d in &req.devices {
        d.id.parse::<DeviceId>()
            .map_err(|e| ApiErr::bad_request("bad_device", e.to_string()))?;
        peercam_signal::register::parse_public_key(&d.public_key)
            .map_err(|e| ApiErr::bad_request("bad_device", format!("{}: {e}", d.id)))?;
        let hex_ok = d.bind_code_sha256.len() == 64
            && d.bind_code_sha256.bytes().all(|c| c.is_ascii_hexdigit());
        if !hex_ok || d.vendor.len() > 64 || d.model.len() > 64 {
            return Err(ApiErr::bad_request(
                "bad_device",
                format!(
                    "{}: bind_code_sha256 must be 64 hex digits; vendor/model at most 64 bytes",
                    d.id
                ),
            ));
        }
    }
    let mut tx = st.db.begin().await?;
    let (mut created, mut unchanged) = (0, 0);
    for d in &req.devices {
        let id: DeviceId = d
            .id
            .parse()
            .map_err(|e: peercam_base::IdError| ApiErr::bad_request("bad_device", e.to_string()))?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT public_key FROM devices WHERE id = ?1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        match existing {
            // SECURITY.md D1: a device id is bound to its first key forever.
            Some(k) if k != d.public_key => {
                drop(tx);
                tracing::warn!(device = %id, "refused: provisioning a second key for an existing device id");
                audit(
                    &st.db,
                    Some(p.id),
                    "device.provision",
                    Some(id.as_str()),
                    "key_conflict",
                    "a second key for this id was refused",
                )
                .await;
                return Err(ApiErr::conflict(
                    "key_conflict",
                    format!(
                        "{id} is already provisioned with another key; device ids never change keys"
                    ),
                ));
            }
            Some(_) => unchanged += 1,
            None => {
                sqlx::query("INSERT INTO devices (id, kind, public_key, bind_code_sha256, vendor, model, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                    .bind(id.as_str())
                    .bind(d.kind.as_str())
                    .bind(&d.public_key)
                    .bind(d.bind_code_sha256.to_lowercase())
                    .bind(&d.vendor)
                    .bind(&d.model)
                    .bind(ts(now_s()))
                    .execute(&mut *tx)
                    .await?;
                created += 1;
            }
        }
    }
    tx.commit().await?;
    audit(
        &st.db,
        Some(p.id),
        "device.provision",
        None,
        "ok",
        &format!("{created} created, {unchanged} unchanged"),
    )
    .await;
    Ok(Json(ProvisionResult { created, unchanged }))
}

pub(crate) async fn admin_devices(
    State(st): State<Shared>,
) -> ApiResult<Json<Vec<AdminDeviceView>>> {
    let rows: Vec<AdminDeviceRow> = sqlx::query_as(
        "SELECT id, kind, vendor, model, registered_at, owner_id FROM devices ORDER BY id",
    )
    .fetch_all(&st.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, kind, vendor, model, reg, owner)| {
                let node = id
                    .parse::<DeviceId>()
                    .ok()
                    .and_then(|d| st.platform.node_of(&d));
                AdminDeviceView {
                    online: node.is_some(),
                    node,
                    id,
                    kind: parse_kind(&kind),
                    vendor,
                    model,
                    registered: reg.is_some(),
                    owner,
                }
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub(crate) struct UsersQuery {
    #[serde(default)]
    status: Option<String>,
}

pub(crate) async fn admin_users(
    State(st): State<Shared>,
    Query(q): Query<UsersQuery>,
) -> ApiResult<Json<Vec<UserInfo>>> {
    let rows: Vec<(i64, String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, role, login, status, parent_id FROM users WHERE (?1 IS NULL OR status = ?1) ORDER BY id",
    )
    .bind(q.status)
    .fetch_all(&st.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, role, login, status, parent)| UserInfo {
                id,
                role: auth::parse_role(&role),
                login,
                status: auth::parse_status(&status),
                parent,
            })
            .collect(),
    ))
}

pub(crate) async fn approve_user(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult<Json<UserInfo>> {
    let r = sqlx::query("UPDATE users SET status = 'active' WHERE id = ?1 AND role = 'owner' AND status = 'pending_approval'").bind(id).execute(&st.db).await?;
    if r.rows_affected() == 0 {
        return Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "not_pending",
            "no account with this id waits for approval",
        ));
    }
    audit(
        &st.db,
        Some(p.id),
        "account.approve",
        None,
        "ok",
        &id.to_string(),
    )
    .await;
    user_info(&st, id).await.map(Json)
}

pub(crate) async fn disable_user(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult<Json<UserInfo>> {
    if id == p.id {
        return Err(ApiErr::bad_request(
            "self",
            "the operator cannot disable itself",
        ));
    }
    let mut tx = st.db.begin().await?;
    let r = sqlx::query("UPDATE users SET status = 'disabled' WHERE id = ?1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?1 OR user_id IN (SELECT id FROM users WHERE parent_id = ?1)").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    revoke_user_everywhere(&st, id).await?;
    let subs: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE parent_id = ?1")
        .bind(id)
        .fetch_all(&st.db)
        .await?;
    for sub in subs {
        revoke_user_everywhere(&st, sub).await?;
    }
    if r.rows_affected() == 0 {
        return Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such account",
        ));
    }
    audit(
        &st.db,
        Some(p.id),
        "account.disable",
        None,
        "ok",
        &id.to_string(),
    )
    .await;
    user_info(&st, id).await.map(Json)
}

pub(crate) async fn admin_audit(
    State(st): State<Shared>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = i64::from(q.limit.unwrap_or(200).min(5000));
    let rows = sqlx::query_as("SELECT id, at, actor_id, action, device_id, outcome, detail FROM audit ORDER BY id DESC LIMIT ?1")
        .bind(limit)
        .fetch_all(&st.db)
        .await?;
    Ok(Json(audit_rows(rows)))
}

/// Bumps the ACL version of every device `user` owns or was shared, and ends the user's live
/// sessions on them (SECURITY.md D5). Returns the devices touched.
async fn revoke_user_everywhere(st: &Shared, user: i64) -> ApiResult<Vec<DeviceId>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM devices WHERE owner_id = ?1 UNION SELECT device_id FROM shares WHERE user_id = ?1",
    )
    .bind(user)
    .fetch_all(&st.db)
    .await?;
    let mut out = Vec::new();
    for id in ids {
        sqlx::query("UPDATE devices SET acl_version = acl_version + 1 WHERE id = ?1")
            .bind(&id)
            .execute(&st.db)
            .await?;
        if let Ok(d) = id.parse::<DeviceId>() {
            st.platform.revoke(&d, Some(user));
            out.push(d);
        }
    }
    Ok(out)
}

/// Unbinds a device from its owner: shares go, the ACL version moves on (every outstanding
/// play token goes stale) and every live session ends now (SECURITY.md D5). Used by unbind
/// (8.2) and reset (8.10).
pub(crate) async fn release_device(st: &Shared, id: &DeviceId) -> ApiResult<()> {
    let mut tx = st.db.begin().await?;
    sqlx::query("DELETE FROM shares WHERE device_id = ?1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    // A released camera leaves its NVRs; a released NVR records nobody (8.7.2).
    sqlx::query("DELETE FROM recorders WHERE camera_id = ?1 OR recorder_id = ?1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE devices SET owner_id = NULL, name = NULL, acl_version = acl_version + 1 WHERE id = ?1",
    )
    .bind(id.as_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    st.platform.revoke(id, None);
    Ok(())
}
