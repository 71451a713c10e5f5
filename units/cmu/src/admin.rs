//! The operator's routes: provisioning (8.1), the device and account lists, approving
//! owners (6.1.1) and disabling accounts, and the audit log (with each account's own view).

use axum::Extension;
use axum::extract::{Path, Query, State};
use peercam_base::DeviceId;
use peercam_signal::cm::{AccountStatus, AuditEntry, ProvisionRequest, ProvisionResult, UserInfo};
use serde::Deserialize;

use crate::accounts::account_view;
use crate::audit::{self, Event};
use crate::auth::Principal;
use crate::crm::Outcome;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::{accounts, devices};
use crate::{Shared, now_s};
use peercam_signal::crm::{Stage, VerifyRequest};

/// Devices per provisioning request.
const MAX_PROVISION: usize = 10_000;

/// `GET /api/v1/health`.
pub(crate) async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// 8.1: checks one device of a provisioning request.
fn new_device(d: &peercam_signal::cm::ProvisionDevice) -> ApiResult<devices::NewDevice> {
    let id: DeviceId =
        d.id.parse()
            .map_err(|e: peercam_base::IdError| ApiErr::bad_request("bad_device", e.to_string()))?;
    peercam_signal::register::parse_public_key(&d.public_key)
        .map_err(|e| ApiErr::bad_request("bad_device", format!("{}: {e}", d.id)))?;
    let hex_ok =
        d.bind_code_sha256.len() == 64 && d.bind_code_sha256.bytes().all(|c| c.is_ascii_hexdigit());
    if !hex_ok || d.vendor.len() > 64 || d.model.len() > 64 {
        return Err(ApiErr::bad_request(
            "bad_device",
            format!(
                "{}: bind_code_sha256 must be 64 hex digits; vendor/model at most 64 bytes",
                d.id
            ),
        ));
    }
    Ok(devices::NewDevice {
        id,
        kind: d.kind,
        public_key: d.public_key.clone(),
        bind_code_sha256: d.bind_code_sha256.clone(),
        vendor: d.vendor.clone(),
        model: d.model.clone(),
        owner: None,
        name: None,
    })
}

/// `POST /api/v1/admin/devices`: 8.1 provisioning, all or nothing.
pub(crate) async fn provision(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<ProvisionRequest>,
) -> ApiResult<axum::Json<ProvisionResult>> {
    if req.devices.len() > MAX_PROVISION {
        return Err(ApiErr::bad_request(
            "too_many",
            "at most 10,000 devices per request",
        ));
    }
    let new = req
        .devices
        .iter()
        .map(new_device)
        .collect::<ApiResult<Vec<_>>>()?;
    match devices::provision(&st.store, &new, now_s()).await? {
        devices::Provisioned::Done {
            created, unchanged, ..
        } => {
            audit::log(
                &st.store,
                Event::Provisioned {
                    by: p.id,
                    created,
                    unchanged,
                },
            )
            .await;
            Ok(axum::Json(ProvisionResult { created, unchanged }))
        }
        // docs/security.md D1: a device id is bound to its first key forever.
        devices::Provisioned::KeyConflict(id) => {
            tracing::warn!(device = %id, "refused: provisioning a second key for an existing device id");
            audit::log(
                &st.store,
                Event::ProvisionKeyConflict {
                    by: p.id,
                    device: &id,
                },
            )
            .await;
            Err(ApiErr::conflict(
                "key_conflict",
                format!(
                    "{id} is already provisioned with another key; device ids never change keys"
                ),
            ))
        }
    }
}

/// An account named in a path: its id, or an owner's phone number (`+15550190346`).
pub(crate) async fn account_id(st: &Shared, who: &str) -> ApiResult<Option<i64>> {
    if let Ok(phone) = who.parse::<peercam_base::Phone>() {
        return Ok(accounts::id_by_login(&st.store, phone.as_str()).await?);
    }
    if !who.is_empty() && who.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(who.parse().ok());
    }
    Err(ApiErr::bad_request(
        "bad_account",
        "name the account by its id or its phone number (+E.164)",
    ))
}

/// `POST /api/v1/admin/users/{id}/approve`: 6.1.1, by id or phone number.
pub(crate) async fn approve_user(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(who): Path<String>,
) -> ApiResult<axum::Json<UserInfo>> {
    let id = account_id(&st, &who).await?.ok_or_else(not_pending)?;
    let a = accounts::get(&st.store, id)
        .await?
        .ok_or_else(not_pending)?;
    if a.status != AccountStatus::PendingApproval {
        return Err(not_pending());
    }
    // H.626.4 6.2: the CRM is consulted at approval too.
    let req = VerifyRequest {
        stage: Stage::Approval,
        phone: a.login.clone(),
        name: a.name.clone(),
        contract_id: a.contract_id.clone(),
        account_id: Some(id),
    };
    match crate::crm::verify(&st, &req).await {
        Outcome::Ok => {}
        Outcome::Refused(reason) => {
            audit::log(&st.store, crate::crm::crm_event(id, "crm_refused", &reason)).await;
            return Err(ApiErr::conflict(
                "crm_refused",
                format!("the operator's customer system refuses this account: {reason}"),
            ));
        }
        Outcome::Unavailable(why) => {
            tracing::warn!(account = id, reason = %why, "CRM unavailable at approval");
            return Err(ApiErr::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "crm_unavailable",
                "the operator's customer system does not answer; approve again later",
            ));
        }
    }
    if !accounts::approve(&st.store, id).await? {
        return Err(not_pending());
    }
    crate::crm::changed(&st, "account.approved", id, &a.login, None).await;
    audit::log(
        &st.store,
        Event::AccountApproved {
            by: p.id,
            account: id,
        },
    )
    .await;
    account_view(&st, id).await.map(axum::Json)
}

fn not_pending() -> ApiErr {
    ApiErr::not_found("not_pending", "no account with this id waits for approval")
}

/// `POST /api/v1/admin/users/{id}/disable`: its sessions end and every token minted for it
/// or its sub-accounts goes stale (D5).
pub(crate) async fn disable_user(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(who): Path<String>,
) -> ApiResult<axum::Json<UserInfo>> {
    let id = account_id(&st, &who)
        .await?
        .ok_or_else(|| ApiErr::not_found("not_found", "no such account"))?;
    if id == p.id {
        return Err(ApiErr::bad_request(
            "self",
            "the operator cannot disable itself",
        ));
    }
    let found = accounts::disable(&st.store, id).await?;
    crate::sharing::revoke_user_everywhere(&st, id).await?;
    for sub in accounts::children(&st.store, id).await? {
        crate::sharing::revoke_user_everywhere(&st, sub.id).await?;
    }
    if !found {
        return Err(ApiErr::not_found("not_found", "no such account"));
    }
    audit::log(
        &st.store,
        Event::AccountDisabled {
            by: p.id,
            account: id,
        },
    )
    .await;
    if let Some(a) = accounts::get(&st.store, id).await? {
        crate::crm::changed(&st, "account.disabled", id, &a.login, None).await;
    }
    account_view(&st, id).await.map(axum::Json)
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/v1/audit`: what the caller did and what concerns its devices.
pub(crate) async fn my_audit(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<Vec<AuditEntry>>> {
    let limit = q.limit.unwrap_or(100).min(1000);
    Ok(axum::Json(
        crate::store::audit::of_account(&st.store, p.id, limit).await?,
    ))
}
