//! Equipment management for the operator (H.626.4 6.1.1: "after the operator approves the
//! service, a specified camera is assigned to the account"; 6.2 vendor management): the
//! device search, the CSV import, assignment to an account, moves, decommissioning, and the
//! vendor and model catalogue. Every route is the operator's; every change is audited.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse as _, Response};
use peercam_base::DeviceId;
use peercam_signal::cm::{AccountStatus, AdminDeviceView, Role};
use peercam_signal::cm_equipment::{
    AdminDevicePage, AssignRequest, DecommissionRequest, DecommissionResult, ImportResult,
    ImportRow, ModelRequest, ModelView, RecordingsPolicy, RowError, VendorRequest, VendorView,
    parse_import,
};
use peercam_signal::cmd::DeviceCommand;
use serde::Deserialize;

use crate::api::{RouteInfo, route};
use crate::audit::{self, Event};
use crate::auth::Principal;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::accounts;
use crate::store::devices::{self, Device};
use crate::store::equipment::{self as eq, Assigned, Search, Written};
use crate::{Shared, now_s};

/// The operator's equipment routes (`GET`/`POST /api/v1/admin/devices` stay in `api.rs`).
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "POST",
            "/api/v1/admin/devices/import",
            Operator,
            "Provision devices from CSV (text/csv; columns device_id, kind, public_key, bind_code_sha256, vendor, model, name, account): every row is checked first; any bad row imports nothing and the answer names each (6.1.1, 6.2)",
            None,
            Some("ImportResult")
        ),
        route!(
            "POST",
            "/api/v1/admin/devices/{id}/assign",
            Operator,
            "Assign an unassigned device to an approved owner account (6.1.1)",
            Some("AssignRequest"),
            Some("AdminDeviceView")
        ),
        route!(
            "POST",
            "/api/v1/admin/devices/{id}/move",
            Operator,
            "Move an assigned device to another owner: its shares go and every token of the old owner goes stale (6.1.1)",
            Some("AssignRequest"),
            Some("AdminDeviceView")
        ),
        route!(
            "POST",
            "/api/v1/admin/devices/{id}/decommission",
            Operator,
            "Decommission a device: its key no longer admits it, its session ends, its shares go; recordings kept or deleted by `recordings` (6.1.1)",
            Some("DecommissionRequest"),
            Some("DecommissionResult")
        ),
        route!(
            "GET",
            "/api/v1/admin/vendors",
            Operator,
            "The vendor catalogue (6.2 vendor management)",
            None,
            Some("VendorView")
        ),
        route!(
            "POST",
            "/api/v1/admin/vendors",
            Operator,
            "Add a vendor (6.2)",
            Some("VendorRequest"),
            Some("VendorView")
        ),
        route!(
            "PUT",
            "/api/v1/admin/vendors/{id}",
            Operator,
            "Rename a vendor or change its contact; its devices follow (6.2)",
            Some("VendorRequest"),
            Some("VendorView")
        ),
        route!(
            "DELETE",
            "/api/v1/admin/vendors/{id}",
            Operator,
            "Remove a vendor without models (6.2)",
            None,
            None
        ),
        route!(
            "GET",
            "/api/v1/admin/models",
            Operator,
            "The model catalogue with capabilities and device counts (6.2)",
            None,
            Some("ModelView")
        ),
        route!(
            "POST",
            "/api/v1/admin/models",
            Operator,
            "Add a model (6.2)",
            Some("ModelRequest"),
            Some("ModelView")
        ),
        route!(
            "PUT",
            "/api/v1/admin/models/{id}",
            Operator,
            "Change a model; its devices follow a rename (6.2)",
            Some("ModelRequest"),
            Some("ModelView")
        ),
        route!(
            "DELETE",
            "/api/v1/admin/models/{id}",
            Operator,
            "Remove a model no device carries (6.2)",
            None,
            None
        ),
    ]
}

pub(crate) fn handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<Shared>> {
    use axum::routing::{delete, get, post, put};
    Some(match (method, path) {
        ("POST", "/api/v1/admin/devices/import") => {
            post(import).layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024))
        }
        ("POST", "/api/v1/admin/devices/{id}/assign") => post(assign),
        ("POST", "/api/v1/admin/devices/{id}/move") => post(move_device),
        ("POST", "/api/v1/admin/devices/{id}/decommission") => post(decommission),
        ("GET", "/api/v1/admin/vendors") => get(list_vendors),
        ("POST", "/api/v1/admin/vendors") => post(add_vendor),
        ("PUT", "/api/v1/admin/vendors/{id}") => put(update_vendor),
        ("DELETE", "/api/v1/admin/vendors/{id}") => delete(remove_vendor),
        ("GET", "/api/v1/admin/models") => get(list_models),
        ("POST", "/api/v1/admin/models") => post(add_model),
        ("PUT", "/api/v1/admin/models/{id}") => put(update_model),
        ("DELETE", "/api/v1/admin/models/{id}") => delete(remove_model),
        _ => return None,
    })
}

/// The schemas of the equipment routes' bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    b.schema_from::<AdminDevicePage>()
        .schema_from::<AssignRequest>()
        .schema_from::<DecommissionRequest>()
        .schema_from::<DecommissionResult>()
        .schema_from::<RecordingsPolicy>()
        .schema_from::<ImportResult>()
        .schema_from::<RowError>()
        .schema_from::<VendorView>()
        .schema_from::<VendorRequest>()
        .schema_from::<ModelView>()
        .schema_from::<ModelRequest>()
}

/// The operator's view of a device.
pub(crate) fn view(st: &Shared, d: Device) -> AdminDeviceView {
    let node = st.platform.node_of(&d.id);
    AdminDeviceView {
        online: node.is_some(),
        node,
        state: eq::State::of(&d).as_str().to_owned(),
        id: d.id.to_string(),
        kind: d.kind,
        vendor: d.vendor,
        model: d.model,
        registered: d.registered_at.is_some(),
        owner: d.owner,
        name: d.name,
        sw_version: d.sw_version,
    }
}

/// `GET /api/v1/admin/devices` parameters.
#[derive(Deserialize, Default)]
pub(crate) struct DevicesQuery {
    q: Option<String>,
    vendor: Option<String>,
    model: Option<String>,
    online: Option<String>,
    owner: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Devices per page unless `limit` says otherwise.
const PAGE: u32 = 50;

/// `GET /api/v1/admin/devices`: without parameters, every device (as before); with any of
/// `q`, `vendor`, `model`, `online`, `owner`, `state`, `limit`, `cursor`, one page of the
/// search ([`AdminDevicePage`]).
pub(crate) async fn list_devices(
    State(st): State<Shared>,
    Query(q): Query<DevicesQuery>,
) -> ApiResult<Response> {
    let DevicesQuery {
        q: text,
        vendor,
        model,
        online,
        owner,
        state,
        limit,
        cursor,
    } = q;
    let any = text.is_some()
        || vendor.is_some()
        || model.is_some()
        || online.is_some()
        || owner.is_some()
        || state.is_some()
        || limit.is_some()
        || cursor.is_some();
    if !any {
        let all = devices::all(&st.store).await?;
        let list: Vec<_> = all.into_iter().map(|d| view(&st, d)).collect();
        return Ok(axum::Json(list).into_response());
    }
    let empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let online = match empty(online).as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiErr::bad_request("bad_online", "online is true or false")),
    };
    let state = match empty(state) {
        None => None,
        Some(s) => Some(eq::State::parse(&s).ok_or_else(|| {
            ApiErr::bad_request(
                "bad_state",
                "state is unassigned, assigned or decommissioned",
            )
        })?),
    };
    let owner = match empty(owner) {
        None => None,
        // An unknown account owns nothing.
        Some(o) => Some(crate::admin::account_id(&st, o.trim()).await?.unwrap_or(-1)),
    };
    let after = match empty(cursor) {
        None => None,
        Some(c) => Some(
            c.parse::<DeviceId>()
                .map_err(|_| ApiErr::bad_request("bad_cursor", "cursor is a next_cursor"))?
                .to_string(),
        ),
    };
    let limit = limit.unwrap_or(PAGE);
    if !(1..=1000).contains(&limit) {
        return Err(ApiErr::bad_request("bad_limit", "limit is 1 to 1000"));
    }
    let search = Search {
        q: empty(text).map(|t| t.chars().take(64).collect()),
        vendor: empty(vendor),
        model: empty(model),
        owner,
        online,
        state,
        after,
        limit,
    };
    let page = eq::search(&st.store, &search).await?;
    let next_cursor = (page.devices.len() == limit as usize)
        .then(|| page.devices.last().map(|d| d.id.to_string()))
        .flatten();
    let devices = page.devices.into_iter().map(|d| view(&st, d)).collect();
    Ok(axum::Json(AdminDevicePage {
        devices,
        total: page.total,
        total_capped: page.capped,
        next_cursor,
    })
    .into_response())
}

/// The owner account named by the operator: it must exist, be an owner and be approved
/// (6.1.1: the camera is assigned after the service is approved).
async fn owner_account(st: &Shared, who: &str) -> Result<i64, String> {
    let id = match crate::admin::account_id(st, who.trim()).await {
        Ok(Some(id)) => id,
        Ok(None) => return Err("no such account".into()),
        Err(e) => return Err(e.message),
    };
    match accounts::get(&st.store, id).await {
        Ok(Some(a)) if a.role != Role::Owner => Err("not an owner account".into()),
        Ok(Some(a)) if a.status != AccountStatus::Active => {
            Err("the account is not approved (or is disabled)".into())
        }
        Ok(Some(a)) => Ok(a.id),
        Ok(None) => Err("no such account".into()),
        Err(e) => Err(ApiErr::from(e).message),
    }
}

fn device_id(id: &str) -> ApiResult<DeviceId> {
    id.parse().map_err(|_| ApiErr::no_device())
}

fn check_name(name: Option<&str>) -> ApiResult<Option<String>> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(n) if n.len() > 64 || n.chars().any(char::is_control) => Err(ApiErr::bad_request(
            "bad_name",
            "a name is at most 64 bytes, without control characters",
        )),
        Some(n) => Ok(Some(n.to_owned())),
    }
}

/// `POST .../assign` and `.../move`.
async fn assign_or_move(
    st: &Shared,
    p: &Principal,
    id: &str,
    req: &AssignRequest,
    moving: bool,
) -> ApiResult<axum::Json<AdminDeviceView>> {
    let id = device_id(id)?;
    let owner = owner_account(st, &req.account)
        .await
        .map_err(|m| ApiErr::bad_request("bad_account", m))?;
    let name = check_name(req.name.as_deref())?;
    let before = devices::get(&st.store, &id)
        .await?
        .ok_or_else(ApiErr::no_device)?;
    let name = name.or_else(|| if moving { None } else { before.name.clone() });
    match eq::assign(&st.store, &id, owner, name.as_deref(), moving).await? {
        Assigned::Done => {}
        Assigned::Missing => return Err(ApiErr::no_device()),
        Assigned::Decommissioned => {
            return Err(ApiErr::conflict(
                "decommissioned",
                "this device is decommissioned",
            ));
        }
        Assigned::Owner(Some(o)) if !moving => {
            return Err(ApiErr::conflict(
                "assigned",
                format!("this device is assigned to account {o}; move it instead"),
            ));
        }
        Assigned::Owner(Some(_)) => {
            return Err(ApiErr::conflict(
                "same_owner",
                "this device is that account's already",
            ));
        }
        Assigned::Owner(None) => {
            return Err(ApiErr::conflict(
                "unassigned",
                "this device has no owner; assign it instead",
            ));
        }
    }
    if moving {
        // docs/security.md D5: the old owner's and its sub-accounts' sessions end now.
        st.platform.revoke(&id, None).await;
    }
    let detail = match before.owner {
        Some(old) if moving => format!("account {old} -> {owner}"),
        _ => format!("account {owner}"),
    };
    audit::log(
        &st.store,
        Event::Equipment {
            by: p.id,
            action: if moving {
                "equipment.move"
            } else {
                "equipment.assign"
            },
            device: Some(&id),
            detail: &detail,
        },
    )
    .await;
    let d = devices::get(&st.store, &id)
        .await?
        .ok_or_else(ApiErr::no_device)?;
    Ok(axum::Json(view(st, d)))
}

async fn assign(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<AssignRequest>,
) -> ApiResult<axum::Json<AdminDeviceView>> {
    assign_or_move(&st, &p, &id, &req, false).await
}

async fn move_device(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<AssignRequest>,
) -> ApiResult<axum::Json<AdminDeviceView>> {
    assign_or_move(&st, &p, &id, &req, true).await
}

/// `POST /api/v1/admin/devices/{id}/decommission` (docs/security.md, "Decommissioned
/// devices").
async fn decommission(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<DecommissionRequest>,
) -> ApiResult<axum::Json<DecommissionResult>> {
    let id = device_id(&id)?;
    // The key stops admitting the device first: from here its registrations are refused.
    let Some((recorders, owner)) = eq::decommission(&st.store, &id, now_s()).await? else {
        return match devices::get(&st.store, &id).await? {
            Some(_) => Err(ApiErr::conflict(
                "decommissioned",
                "this device is decommissioned already",
            )),
            None => Err(ApiErr::no_device()),
        };
    };
    let wipe = req.recordings == RecordingsPolicy::Delete;
    let (mut told, mut unreachable) = (0u32, 0u32);
    for r in &recorders {
        let command = if *r == id {
            // Its own SD card (8.7.3): only deleting needs the camera.
            if !wipe {
                continue;
            }
            DeviceCommand::Reset {
                wipe_recordings: true,
            }
        } else {
            // Its NVRs (8.7.2) stop recording it, and delete its recordings if asked.
            DeviceCommand::RecorderDetach {
                camera: id.clone(),
                wipe,
            }
        };
        match st.platform.command(r, command).await {
            Ok(_) => told += u32::from(wipe),
            Err(_) => unreachable += u32::from(wipe),
        }
    }
    st.platform.revoke(&id, None).await;
    let disconnected = st
        .platform
        .disconnect(&id, "decommissioned by the operator");
    let detail = format!(
        "recordings {}; owner {}; {told} recorders told, {unreachable} unreachable",
        req.recordings.as_str(),
        owner.map_or_else(|| "none".into(), |o| o.to_string())
    );
    audit::log(
        &st.store,
        Event::Equipment {
            by: p.id,
            action: "equipment.decommission",
            device: Some(&id),
            detail: &detail,
        },
    )
    .await;
    Ok(axum::Json(DecommissionResult {
        id: id.to_string(),
        recordings: req.recordings,
        recorders_told: told,
        recorders_unreachable: unreachable,
        disconnected,
    }))
}

/// 422 naming every bad row.
fn bad_rows(errors: Vec<RowError>) -> ApiErr {
    let n = errors.len();
    let mut e = ApiErr::invalid(
        errors
            .into_iter()
            .map(|r| {
                peercam_signal::control::FieldError::new(
                    format!("{}.{}", r.line, r.column),
                    r.reason,
                )
            })
            .collect(),
    );
    e.code = "bad_rows";
    e.message = format!(
        "{n} problem(s) in the file; nothing was imported (fields: LINE.COLUMN, the header is line 1)"
    );
    e
}

/// Checks the rows against the platform: the catalogue, the accounts and the devices
/// already provisioned. Every problem is collected.
async fn check_rows(st: &Shared, rows: &[ImportRow]) -> ApiResult<Vec<devices::NewDevice>> {
    let mut errors = Vec::new();
    let mut models: HashMap<(String, String), bool> = HashMap::new();
    let mut owners: HashMap<String, Result<i64, String>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let key = (r.vendor.clone(), r.model.clone());
        let known = match models.get(&key) {
            Some(k) => *k,
            None => {
                let k = eq::model_by_name(&st.store, &r.vendor, &r.model)
                    .await?
                    .is_some();
                models.insert(key, k);
                k
            }
        };
        if !known {
            errors.push(RowError::new(
                r.line,
                "model",
                format!(
                    "{} {} is not in the catalogue (add it under Equipment, Catalogue)",
                    r.vendor, r.model
                ),
            ));
        }
        let owner = match &r.account {
            None => None,
            Some(a) => {
                if !owners.contains_key(a) {
                    let found = owner_account(st, a).await;
                    owners.insert(a.clone(), found);
                }
                match &owners[a] {
                    Ok(id) => Some(*id),
                    Err(m) => {
                        errors.push(RowError::new(r.line, "account", m.clone()));
                        None
                    }
                }
            }
        };
        let id: DeviceId = match r.device_id.parse() {
            Ok(id) => id,
            Err(_) => continue,
        };
        if let Some(d) = devices::get(&st.store, &id).await? {
            if d.public_key != r.public_key {
                errors.push(RowError::new(
                    r.line,
                    "public_key",
                    "this device is provisioned with another key; device ids never change keys",
                ));
            } else if d.disabled {
                errors.push(RowError::new(
                    r.line,
                    "device_id",
                    "this device is decommissioned",
                ));
            } else if owner.is_some() && d.owner.is_some() && d.owner != owner {
                errors.push(RowError::new(
                    r.line,
                    "account",
                    "this device is assigned to another account; move it instead",
                ));
            }
        }
        out.push(devices::NewDevice {
            id,
            kind: r.kind,
            public_key: r.public_key.clone(),
            bind_code_sha256: r.bind_code_sha256.clone(),
            vendor: r.vendor.clone(),
            model: r.model.clone(),
            owner,
            name: r.name.clone(),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(bad_rows(errors))
    }
}

/// `POST /api/v1/admin/devices/import`: the CSV import, all or nothing.
async fn import(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    body: String,
) -> ApiResult<axum::Json<ImportResult>> {
    let rows = parse_import(&body).map_err(bad_rows)?;
    let new = check_rows(&st, &rows).await?;
    match devices::provision(&st.store, &new, now_s()).await? {
        devices::Provisioned::Done {
            created,
            unchanged,
            assigned,
        } => {
            let detail = format!(
                "{} rows: {created} created, {unchanged} unchanged, {assigned} assigned",
                rows.len()
            );
            audit::log(
                &st.store,
                Event::Equipment {
                    by: p.id,
                    action: "equipment.import",
                    device: None,
                    detail: &detail,
                },
            )
            .await;
            Ok(axum::Json(ImportResult {
                rows: rows.len(),
                created,
                unchanged,
                assigned,
            }))
        }
        // A device provisioned between the check and the write.
        devices::Provisioned::KeyConflict(id) => Err(ApiErr::conflict(
            "key_conflict",
            format!("{id} is already provisioned with another key; nothing was imported"),
        )),
    }
}

/// A catalogue name: 1 to 64 bytes, no control characters.
fn catalogue_name(field: &str, v: &str, max: usize, required: bool) -> ApiResult<String> {
    let v = v.trim();
    if (required && v.is_empty()) || v.len() > max || v.chars().any(char::is_control) {
        return Err(ApiErr::invalid(vec![
            peercam_signal::control::FieldError::new(
                field,
                format!(
                    "{}at most {max} bytes, no control characters",
                    if required { "1 to " } else { "" }
                ),
            ),
        ]));
    }
    Ok(v.to_owned())
}

fn vendor_view(v: eq::Vendor) -> VendorView {
    VendorView {
        id: v.id,
        name: v.name,
        contact: v.contact,
        models: v.models,
    }
}

fn model_view(m: eq::Model) -> ModelView {
    ModelView {
        id: m.id,
        vendor: m.vendor,
        name: m.name,
        kind: devices::parse_kind(&m.kind),
        ptz: m.ptz,
        audio: m.audio,
        sd: m.sd,
        devices: m.devices,
    }
}

/// What a catalogue write's outcome means for the operator.
fn written(w: Written, what: &str) -> ApiResult<i64> {
    match w {
        Written::Done(id) => Ok(id),
        Written::Missing => Err(ApiErr::not_found("not_found", format!("no such {what}"))),
        Written::Taken => Err(ApiErr::conflict(
            "name_taken",
            format!("a {what} of this name exists"),
        )),
        Written::InUse(n) => Err(ApiErr::conflict(
            "in_use",
            format!(
                "this {what} is in use ({n} {})",
                if what == "vendor" {
                    "models"
                } else {
                    "devices"
                }
            ),
        )),
    }
}

async fn catalogue_audit(st: &Shared, p: &Principal, action: &'static str, detail: &str) {
    audit::log(
        &st.store,
        Event::Equipment {
            by: p.id,
            action,
            device: None,
            detail,
        },
    )
    .await;
}

async fn list_vendors(State(st): State<Shared>) -> ApiResult<axum::Json<Vec<VendorView>>> {
    let all = eq::vendors(&st.store).await?;
    Ok(axum::Json(all.into_iter().map(vendor_view).collect()))
}

async fn vendor_answer(st: &Shared, id: i64) -> ApiResult<axum::Json<VendorView>> {
    eq::vendor_by_id(&st.store, id)
        .await?
        .map(|v| axum::Json(vendor_view(v)))
        .ok_or_else(|| ApiErr::not_found("not_found", "no such vendor"))
}

async fn add_vendor(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<VendorRequest>,
) -> ApiResult<axum::Json<VendorView>> {
    let name = catalogue_name("name", &req.name, 64, true)?;
    let contact = catalogue_name("contact", &req.contact, 200, false)?;
    let id = written(
        eq::add_vendor(&st.store, &name, &contact, now_s()).await?,
        "vendor",
    )?;
    catalogue_audit(&st, &p, "equipment.vendor", &format!("added {name}")).await;
    vendor_answer(&st, id).await
}

async fn update_vendor(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
    Json(req): Json<VendorRequest>,
) -> ApiResult<axum::Json<VendorView>> {
    let name = catalogue_name("name", &req.name, 64, true)?;
    let contact = catalogue_name("contact", &req.contact, 200, false)?;
    written(
        eq::update_vendor(&st.store, id, &name, &contact).await?,
        "vendor",
    )?;
    catalogue_audit(
        &st,
        &p,
        "equipment.vendor",
        &format!("changed {id}: {name}"),
    )
    .await;
    vendor_answer(&st, id).await
}

async fn remove_vendor(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult<axum::http::StatusCode> {
    written(eq::remove_vendor(&st.store, id).await?, "vendor")?;
    catalogue_audit(&st, &p, "equipment.vendor", &format!("removed {id}")).await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn list_models(State(st): State<Shared>) -> ApiResult<axum::Json<Vec<ModelView>>> {
    let all = eq::models(&st.store).await?;
    Ok(axum::Json(all.into_iter().map(model_view).collect()))
}

/// Adds (`id` none) or changes a model.
async fn put_model(
    st: &Shared,
    p: &Principal,
    id: Option<i64>,
    req: &ModelRequest,
) -> ApiResult<axum::Json<ModelView>> {
    let name = catalogue_name("name", &req.name, 64, true)?;
    let vendor = eq::vendor_by_name(&st.store, req.vendor.trim())
        .await?
        .ok_or_else(|| {
            ApiErr::invalid(vec![peercam_signal::control::FieldError::new(
                "vendor",
                "not in the catalogue; add the vendor first",
            )])
        })?;
    let m = eq::NewModel {
        vendor_id: vendor.id,
        name: &name,
        kind: req.kind.as_str(),
        ptz: req.ptz,
        audio: req.audio,
        sd: req.sd,
    };
    let id = written(eq::put_model(&st.store, id, &m, now_s()).await?, "model")?;
    let detail = format!("{id}: {} {name}", vendor.name);
    catalogue_audit(st, p, "equipment.model", &detail).await;
    eq::model_by_id(&st.store, id)
        .await?
        .map(|m| axum::Json(model_view(m)))
        .ok_or_else(|| ApiErr::not_found("not_found", "no such model"))
}

async fn add_model(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<ModelRequest>,
) -> ApiResult<axum::Json<ModelView>> {
    put_model(&st, &p, None, &req).await
}

async fn update_model(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
    Json(req): Json<ModelRequest>,
) -> ApiResult<axum::Json<ModelView>> {
    put_model(&st, &p, Some(id), &req).await
}

async fn remove_model(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult<axum::http::StatusCode> {
    written(eq::remove_model(&st.store, id).await?, "model")?;
    catalogue_audit(&st, &p, "equipment.model", &format!("removed {id}")).await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_6_2_bad_rows_name_line_and_column() {
        let e = bad_rows(vec![RowError::new(3, "model", "empty")]);
        assert_eq!(
            (e.code, e.fields[0].field.as_str()),
            ("bad_rows", "3.model")
        );
        assert!(catalogue_name("name", " ", 64, true).is_err());
        assert!(catalogue_name("name", "a\u{7}", 64, true).is_err());
        assert_eq!(catalogue_name("contact", "", 200, false).unwrap(), "");
    }
}
