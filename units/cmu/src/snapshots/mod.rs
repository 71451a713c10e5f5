//! Timed snapshots to a phone (H.626.4 6.1.12).
//!
//! | module | what |
//! |---|---|
//! | this one | the Cm routes of a camera's snapshot schedule: get, set (validated, held against the SMS quota), delete |
//! | [`scheduler`] | the task that takes each due time once, asks the camera, keeps the JPEG and sends the SMS within the quota |
//! | [`link`] | `GET /s/{token}`: the JPEG behind the signed, expiring link of an SMS |
//!
//! The schedule's decisions are `peercam_alarm::snapshot_schedule`'s; the JPEGs are kept in
//! the alarms' snapshot table (marked timed, with their own retention).

pub(crate) mod link;
pub(crate) mod scheduler;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::MethodRouter;
use peercam_alarm::snapshot_schedule::SnapshotSchedule;
use peercam_base::{DeviceId, Phone, Scope};
use peercam_signal::cm_snapshot::{SnapshotScheduleRequest, SnapshotScheduleState};
use peercam_signal::control::FieldError;

use crate::api::{RouteInfo, route};
use crate::audit::{self, Event};
use crate::auth::{Need, Principal, device_access};
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::snapshots as stored;
use crate::store::{self, StoreError};
use crate::{Shared, now_s};

/// The UTC day of `ms`, the period of the SMS quota.
pub(crate) fn day_of(ms: u64) -> u64 {
    ms / 86_400_000
}

/// The pure schedule of a request (H.626.4 6.1.12), minutes turned into seconds.
pub(crate) fn schedule_of(req: &SnapshotScheduleRequest) -> SnapshotSchedule {
    SnapshotSchedule {
        enabled: req.enabled,
        every_s: req.every_min.saturating_mul(60),
        windows: req.schedule.clone(),
        utc_offset_min: req.utc_offset_min,
        max_width: req.max_width,
        keep: req.keep,
    }
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> ApiErr {
    ApiErr::invalid(vec![FieldError::new(field, message)])
}

/// H.626.4 6.1.12: checks every field (422 naming the first bad one) and holds an enabled
/// schedule against the owner's daily SMS quota: one that alone would take more snapshots
/// in a day than the quota sends SMS is refused on `every_min`.
pub(crate) fn validate(req: &SnapshotScheduleRequest, quota: u32) -> ApiResult<SnapshotSchedule> {
    if !(1..=1440).contains(&req.every_min) {
        return Err(bad("every_min", "1 to 1440 minutes"));
    }
    req.phone
        .parse::<Phone>()
        .map_err(|_| bad("phone", "an E.164 number: + and 8 to 15 digits"))?;
    let s = schedule_of(req);
    s.validate().map_err(|e| match e {
        peercam_alarm::Error::Invalid { field, reason } => {
            // The pure schedule calls the windows `windows`; this body calls them `schedule`.
            let field = match field.strip_prefix("windows") {
                Some(rest) => format!("schedule{rest}"),
                None => field,
            };
            bad(field, reason)
        }
        other => bad("schedule", other.to_string()),
    })?;
    let most = s.max_per_day();
    if most > quota {
        return Err(bad(
            "every_min",
            format!(
                "up to {most} snapshots a day, more than the {quota} SMS a day each account may get; choose a longer interval or shorter windows"
            ),
        ));
    }
    Ok(s)
}

/// What the API reports about `camera`'s saved schedule, as of `now_ms`.
async fn state_of(
    st: &Shared,
    camera: &DeviceId,
    saved: &stored::SavedSchedule,
    now_ms: u64,
) -> ApiResult<SnapshotScheduleState> {
    let schedule: SnapshotScheduleRequest = serde_json::from_str(&saved.doc)
        .map_err(|e| ApiErr::from(StoreError::Corrupt(e.to_string())))?;
    let next_due_ms = schedule_of(&schedule).next_due(saved.last_due_ms, now_ms);
    Ok(SnapshotScheduleState {
        schedule,
        last_due_ms: saved.last_due_ms,
        next_due_ms,
        kept: stored::kept(&st.store, camera).await?,
        sms_today: stored::sms_sent(&st.store, saved.owner, day_of(now_ms)).await?,
        sms_per_day: st.config.snapshot_sms_per_day,
    })
}

fn no_schedule() -> ApiErr {
    ApiErr::not_found("no_schedule", "this camera has no snapshot schedule")
}

/// `GET /api/v1/devices/{id}/snapshot-schedule` (needs `config`).
pub(crate) async fn get_schedule(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<SnapshotScheduleState>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    let saved = stored::get(&st.store, &id).await?.ok_or_else(no_schedule)?;
    let now = st.config.snapshot_clock.now_ms();
    Ok(Json(state_of(&st, &id, &saved, now).await?))
}

/// `PUT /api/v1/devices/{id}/snapshot-schedule` (needs `config`): validated, saved for the
/// camera's owner (who gets the quota), audited. Saving again keeps the last due time, so
/// it never fires early.
pub(crate) async fn set_schedule(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<SnapshotScheduleRequest>,
) -> ApiResult<Json<SnapshotScheduleState>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    validate(&req, st.config.snapshot_sms_per_day)?;
    let owner = store::devices::get(&st.store, &id)
        .await?
        .and_then(|d| d.owner)
        .ok_or_else(ApiErr::no_device)?;
    let doc = serde_json::to_string(&req).map_err(|e| ApiErr::internal("schedule", &e))?;
    let phone = req.phone.as_str();
    stored::save(&st.store, &id, owner, (&doc, phone, req.enabled), now_s()).await?;
    audit::log(
        &st.store,
        Event::SnapshotScheduleSet {
            by: p.id,
            device: &id,
            removed: false,
        },
    )
    .await;
    let saved = stored::get(&st.store, &id).await?.ok_or_else(no_schedule)?;
    let now = st.config.snapshot_clock.now_ms();
    Ok(Json(state_of(&st, &id, &saved, now).await?))
}

/// `DELETE /api/v1/devices/{id}/snapshot-schedule` (needs `config`): no more timed
/// snapshots; those kept stay until their retention.
pub(crate) async fn delete_schedule(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    if !stored::remove(&st.store, &id).await? {
        return Err(no_schedule());
    }
    audit::log(
        &st.store,
        Event::SnapshotScheduleSet {
            by: p.id,
            device: &id,
            removed: true,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes of timed snapshots (H.626.4 6.1.12), declared like every other route.
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "GET",
            "/api/v1/devices/{id}/snapshot-schedule",
            Customer,
            "The camera's timed-snapshot schedule, its last and next due time, snapshots kept, SMS sent today (6.1.12, needs `config`)",
            None,
            Some("SnapshotScheduleState")
        ),
        route!(
            "PUT",
            "/api/v1/devices/{id}/snapshot-schedule",
            Customer,
            "Set the camera's timed snapshots: every N minutes inside weekly windows, each sent to a phone as an SMS with a link (6.1.12, needs `config`)",
            Some("SnapshotScheduleRequest"),
            Some("SnapshotScheduleState")
        ),
        route!(
            "DELETE",
            "/api/v1/devices/{id}/snapshot-schedule",
            Customer,
            "Stop the camera's timed snapshots (6.1.12, needs `config`)",
            None,
            None
        ),
        route!(
            "GET",
            "/s/{token}",
            Public,
            "The JPEG behind the link of a timed-snapshot SMS while the link is valid: 404 unknown, 410 expired or no longer kept (6.1.12; the link is the capability)",
            None,
            None
        ),
    ]
}

/// The handler of a timed-snapshot route.
pub(crate) fn handler(method: &str, path: &str) -> Option<MethodRouter<Shared>> {
    use axum::routing::{delete, get, put};
    Some(match (method, path) {
        ("GET", "/api/v1/devices/{id}/snapshot-schedule") => get(get_schedule),
        ("PUT", "/api/v1/devices/{id}/snapshot-schedule") => put(set_schedule),
        ("DELETE", "/api/v1/devices/{id}/snapshot-schedule") => delete(delete_schedule),
        ("GET", "/s/{token}") => get(link::open),
        _ => return None,
    })
}

/// The schemas of the timed-snapshot routes' bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    b.schema_from::<SnapshotScheduleRequest>()
        .schema_from::<SnapshotScheduleState>()
}

#[cfg(test)]
mod tests {
    use peercam_record::strategy::Window;

    use super::*;

    fn req() -> SnapshotScheduleRequest {
        SnapshotScheduleRequest {
            enabled: true,
            every_min: 30,
            schedule: Vec::new(),
            utc_offset_min: 0,
            phone: "+15550100001".into(),
            max_width: 640,
            keep: 48,
        }
    }

    fn field(r: &SnapshotScheduleRequest, quota: u32) -> String {
        match validate(r, quota) {
            Ok(_) => "ok".into(),
            Err(e) => e
                .fields
                .first()
                .map(|f| f.field.clone())
                .unwrap_or_default(),
        }
    }

    #[test]
    fn h626_6_1_12_schedule_request_refusals_name_the_field() {
        assert_eq!(field(&req(), 48), "ok");
        assert_eq!(
            field(
                &SnapshotScheduleRequest {
                    every_min: 0,
                    ..req()
                },
                48
            ),
            "every_min"
        );
        assert_eq!(
            field(
                &SnapshotScheduleRequest {
                    phone: "555".into(),
                    ..req()
                },
                48
            ),
            "phone"
        );
        assert_eq!(
            field(
                &SnapshotScheduleRequest {
                    max_width: 8,
                    ..req()
                },
                48
            ),
            "max_width"
        );
        let windows = SnapshotScheduleRequest {
            schedule: vec![Window {
                days: 1,
                start_min: 600,
                end_min: 500,
            }],
            ..req()
        };
        assert_eq!(field(&windows, 48), "schedule[0].start_min");
        // Every 10 minutes around the clock is 144 a day: over a quota of 48.
        let busy = SnapshotScheduleRequest {
            every_min: 10,
            ..req()
        };
        assert_eq!(field(&busy, 48), "every_min");
        assert_eq!(field(&busy, 144), "ok");
        // Disabled, it sends nothing, so it is saved.
        assert_eq!(
            field(
                &SnapshotScheduleRequest {
                    enabled: false,
                    ..busy
                },
                48
            ),
            "ok"
        );
        assert!(
            serde_json::from_str::<SnapshotScheduleRequest>(
                r#"{"every_min":5,"phone":"+15550100001","evry":1}"#
            )
            .is_err()
        );
    }
}
