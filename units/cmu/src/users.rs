//! The operator's user management and two-factor sign-in (H.626.4 6.2, issue 18 item 2):
//! the account search, enabling a disabled account again, a password reset by SMS, and the
//! TOTP routes of every account ([`crate::totp`]). Approving and disabling are in
//! [`crate::admin`].

use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use peercam_base::Phone;
use peercam_signal::cm::{AccountStatus, Role};
use peercam_signal::cm_users::{AdminUserView, PasswordReset};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::api::{RouteInfo, route};
use crate::audit::{self, Event};
use crate::auth::{self, Principal};
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::accounts::{self, Account};
use crate::{Shared, now_s};

/// How long a reset code works, seconds.
const RESET_TTL_S: u64 = 900;
/// Wrong reset codes before the code is void.
const RESET_ATTEMPTS: u32 = 5;

/// The routes of this module.
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "POST",
            "/api/v1/admin/users/{id}/enable",
            Operator,
            "Operator: enable a disabled account again (overrides a CRM refusal)",
            None,
            Some("AdminUserView")
        ),
        route!(
            "POST",
            "/api/v1/admin/users/{id}/reset-password",
            Operator,
            "Operator: send the owner a one-time code by SMS to set a new password with",
            None,
            None
        ),
        route!(
            "GET",
            "/api/v1/admin/crm",
            Operator,
            "Operator: whether a CRM is configured and how many items wait in its outbox (6.2)",
            None,
            None
        ),
        route!(
            "POST",
            "/api/v1/password/reset",
            Public,
            "Set a new password with the code the operator's reset sent by SMS; ends every session",
            Some("PasswordReset"),
            None
        ),
        route!(
            "GET",
            "/api/v1/me/totp",
            Account,
            "Two-factor sign-in (TOTP): on or off, required or not, recovery codes left",
            None,
            Some("TotpState")
        ),
        route!(
            "POST",
            "/api/v1/me/totp/enroll",
            Account,
            "Two-factor sign-in: a new secret and its otpauth:// URI, waiting for a first code",
            None,
            Some("TotpEnrolment")
        ),
        route!(
            "POST",
            "/api/v1/me/totp/confirm",
            Account,
            "Two-factor sign-in: the first code turns it on; answers the recovery codes once",
            Some("TotpCode"),
            Some("RecoveryCodes")
        ),
        route!(
            "POST",
            "/api/v1/me/totp/disable",
            Account,
            "Two-factor sign-in: off, with the password and a code or recovery code",
            Some("TotpDisable"),
            None
        ),
    ]
}

pub(crate) fn handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<Shared>> {
    use axum::routing::{get, post};
    Some(match (method, path) {
        ("POST", "/api/v1/admin/users/{id}/enable") => post(enable),
        ("POST", "/api/v1/admin/users/{id}/reset-password") => post(reset_password),
        ("GET", "/api/v1/admin/crm") => get(crm_state),
        ("POST", "/api/v1/password/reset") => post(password_reset),
        ("GET", "/api/v1/me/totp") => get(crate::totp::state),
        ("POST", "/api/v1/me/totp/enroll") => post(crate::totp::enroll),
        ("POST", "/api/v1/me/totp/confirm") => post(crate::totp::confirm),
        ("POST", "/api/v1/me/totp/disable") => post(crate::totp::disable),
        _ => return None,
    })
}

/// The schemas of this module's bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    use peercam_signal::cm_users::{
        RecoveryCodes, TotpCode, TotpDisable, TotpEnrolment, TotpState,
    };
    b.schema_from::<AdminUserView>()
        .schema_from::<PasswordReset>()
        .schema_from::<TotpEnrolment>()
        .schema_from::<TotpCode>()
        .schema_from::<RecoveryCodes>()
        .schema_from::<TotpDisable>()
        .schema_from::<TotpState>()
}

/// An account as the operator sees it.
pub(crate) fn admin_view(a: Account) -> AdminUserView {
    AdminUserView {
        id: a.id,
        role: a.role,
        login: a.login,
        status: a.status,
        parent: a.parent,
        name: a.name,
        contract_id: a.contract_id,
        crm_note: a.crm_note,
        totp: a.totp,
        created_at: a.created_at,
    }
}

#[derive(Deserialize)]
pub(crate) struct UsersQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /api/v1/admin/users`: search, filter, paginate (by id; the next page's cursor is
/// the `x-next-cursor` header, absent on the last page).
pub(crate) async fn list_users(
    State(st): State<Shared>,
    Query(q): Query<UsersQuery>,
) -> ApiResult<(HeaderMap, axum::Json<Vec<AdminUserView>>)> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        // An unknown status matches no account.
        Some(s) => {
            match serde_json::from_value::<AccountStatus>(serde_json::Value::String(s.into())) {
                Ok(s) => Some(s),
                Err(_) => return Ok((HeaderMap::new(), axum::Json(Vec::new()))),
            }
        }
    };
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c.parse::<i64>().map_err(|_| {
            ApiErr::bad_request(
                "bad_cursor",
                "cursor: the x-next-cursor header of the previous page",
            )
        })?,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if text.is_some_and(|t| t.len() > 100) {
        return Err(ApiErr::bad_request("bad_query", "q: at most 100 bytes"));
    }
    let mut rows = accounts::search(&st.store, text, status, after, limit + 1).await?;
    let mut headers = HeaderMap::new();
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        if let Some(last) = rows.last()
            && let Ok(v) = HeaderValue::from_str(&last.id.to_string())
        {
            headers.insert("x-next-cursor", v);
        }
    }
    Ok((
        headers,
        axum::Json(rows.into_iter().map(admin_view).collect()),
    ))
}

/// An account named in a path: its id, or an owner's phone number.
pub(crate) async fn account_named(st: &Shared, who: &str) -> ApiResult<Account> {
    let id = if let Ok(phone) = who.parse::<Phone>() {
        accounts::id_by_login(&st.store, phone.as_str()).await?
    } else if !who.is_empty() && who.bytes().all(|b| b.is_ascii_digit()) {
        who.parse().ok()
    } else {
        return Err(ApiErr::bad_request(
            "bad_account",
            "name the account by its id or its phone number (+E.164)",
        ));
    };
    match id {
        Some(id) => accounts::get(&st.store, id).await?,
        None => None,
    }
    .ok_or_else(|| ApiErr::not_found("not_found", "no such account"))
}

/// `POST /api/v1/admin/users/{id}/enable`.
async fn enable(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(who): Path<String>,
) -> ApiResult<axum::Json<AdminUserView>> {
    let a = account_named(&st, &who).await?;
    if !accounts::enable(&st.store, a.id).await? {
        return Err(ApiErr::conflict(
            "not_disabled",
            "this account is not disabled",
        ));
    }
    audit::log(
        &st.store,
        Event::AccountAction {
            by: Some(p.id),
            action: "account.enable",
            account: a.id,
            outcome: "ok",
            detail: "",
        },
    )
    .await;
    crate::crm::changed(&st, "account.enabled", a.id, &a.login, None).await;
    let a = accounts::get(&st.store, a.id)
        .await?
        .ok_or_else(|| ApiErr::not_found("not_found", "no such account"))?;
    Ok(axum::Json(admin_view(a)))
}

fn digest(id: i64, code: &str) -> String {
    hex::encode(Sha256::digest(
        format!("reset:{id}:{}", code.trim()).as_bytes(),
    ))
}

/// `POST /api/v1/admin/users/{id}/reset-password`: a one-time code by SMS to the owner's
/// phone; the password changes only when the owner uses it (`POST /api/v1/password/reset`).
async fn reset_password(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(who): Path<String>,
) -> ApiResult<StatusCode> {
    let a = account_named(&st, &who).await?;
    let (Role::Owner, Ok(phone)) = (a.role, a.login.parse::<Phone>()) else {
        return Err(ApiErr::bad_request(
            "no_phone",
            "only an owner account has a phone to send a code to; a sub-account's owner resets its password",
        ));
    };
    // SMS pumping and harassment: three resets per account per hour.
    st.limits
        .hit(&format!("reset:{}", a.id), 3, Duration::from_secs(3600))
        .await
        .map_err(ApiErr::too_many)?;
    let code = crate::accounts::sms_code();
    accounts::put_reset(&st.store, a.id, &digest(a.id, &code), now_s() + RESET_TTL_S).await?;
    let text = format!(
        "peercam: your operator reset your password. Your code is {code}; set a new password with it within {} minutes. Do not share it.",
        RESET_TTL_S / 60
    );
    let sent = st.sms.send(&phone, &text).await;
    audit::log(
        &st.store,
        Event::AccountAction {
            by: Some(p.id),
            action: "account.password_reset",
            account: a.id,
            outcome: if sent.is_ok() {
                "code_sent"
            } else {
                "sms_failed"
            },
            detail: "",
        },
    )
    .await;
    sent.map_err(|e| {
        tracing::error!(error = %e, "SMS send failed");
        ApiErr::new(
            StatusCode::BAD_GATEWAY,
            "sms_failed",
            "the SMS could not be sent; try again later",
        )
    })?;
    Ok(StatusCode::NO_CONTENT)
}

fn bad_reset() -> ApiErr {
    ApiErr::bad_request(
        "bad_code",
        "wrong or expired code; ask the operator for a new one",
    )
}

/// `POST /api/v1/password/reset`: the code and a new password; every session ends.
async fn password_reset(
    State(st): State<Shared>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Json(req): Json<PasswordReset>,
) -> ApiResult<StatusCode> {
    st.limits
        .hit(
            &format!("reset-ip:{}", peer.ip()),
            20,
            Duration::from_secs(3600),
        )
        .await
        .map_err(ApiErr::too_many)?;
    auth::check_new_password(&req.new_password)?;
    let phone: Phone = req.phone.parse().map_err(|_| bad_reset())?;
    let id = accounts::id_by_login(&st.store, phone.as_str())
        .await?
        .ok_or_else(bad_reset)?;
    let (hash, expires_at, attempts) = accounts::reset(&st.store, id)
        .await?
        .ok_or_else(bad_reset)?;
    if expires_at <= now_s() || attempts >= RESET_ATTEMPTS {
        accounts::drop_reset(&st.store, id).await?;
        return Err(bad_reset());
    }
    if !bool::from(digest(id, &req.code).as_bytes().ct_eq(hash.as_bytes())) {
        accounts::reset_failed(&st.store, id).await?;
        return Err(bad_reset());
    }
    accounts::drop_reset(&st.store, id).await?;
    let new_hash = auth::hash_password(&req.new_password)?;
    accounts::set_password(&st.store, id, &new_hash, "").await?;
    audit::log(
        &st.store,
        Event::AccountAction {
            by: Some(id),
            action: "account.password_reset",
            account: id,
            outcome: "ok",
            detail: "new password set with the SMS code",
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/admin/crm`.
async fn crm_state(State(st): State<Shared>) -> ApiResult<axum::Json<serde_json::Value>> {
    let waiting = crate::store::crm::waiting(&st.store).await?;
    Ok(axum::Json(serde_json::json!({
        "configured": st.crm.is_some(),
        "outbox_waiting": waiting,
    })))
}
