//! The Cm routes of alarms (H.626.4 8.8): the list, one alarm, its reset (CMU -> SCU -> PU)
//! and snapshot, the live stream, a camera's alarm strategy, and simulated inputs.

use std::convert::Infallible;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse as _, Response};
use futures_util::Stream;
use peercam_alarm::{AlarmKind, AlarmState, AlarmStrategy};
use peercam_base::Scope;
use peercam_signal::cm_alarm::{AlarmInputRequest, AlarmList, AlarmStrategyState, AlarmView};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::control::FieldError;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::{Published, messages, up, view, viewer};
use crate::audit::{self, Event};
use crate::auth::{Need, Principal, device_access};
use crate::control::device_error;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::alarms::{self as stored, AlarmRow, Filter, Viewer};
use crate::{Shared, now_ms, now_s};

/// `GET /api/v1/alarms` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    camera: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    from: Option<u64>,
    to: Option<u64>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// Turns the query into a store filter; refusals name the parameter.
pub(crate) fn filter(q: ListQuery) -> ApiResult<Filter> {
    let bad = |field: &str, msg: &str| ApiErr::invalid(vec![FieldError::new(field, msg)]);
    let camera = match q.camera {
        Some(c) => Some(c.parse().map_err(|_| bad("camera", "not a device id"))?),
        None => None,
    };
    let kind = match q.kind {
        Some(k) => Some(AlarmKind::parse(&k).ok_or_else(|| bad("kind", "unknown alarm kind"))?),
        None => None,
    };
    let state = match q.state.as_deref() {
        None => None,
        Some("active") => Some("active"),
        Some("reset") => Some("reset"),
        Some(_) => return Err(bad("state", "active or reset")),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad("limit", "1 to 500"));
    }
    Ok(Filter {
        camera,
        kind,
        state,
        from_ms: q.from,
        to_ms: q.to,
        before: q.before,
        limit,
    })
}

/// The alarms the caller may see, newest first.
pub(crate) async fn list(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<AlarmList>> {
    let f = filter(q)?;
    let rows = stored::list(&st.store, viewer(&p), &f).await?;
    let next = (rows.len() == f.limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(AlarmList {
        alarms: rows.iter().map(view).collect(),
        next,
    }))
}

/// D3: an alarm the caller may not see does not exist.
async fn visible(st: &Shared, p: &Principal, id: &str) -> ApiResult<AlarmRow> {
    let none = || ApiErr::not_found("not_found", "no such alarm");
    let id: i64 = id.parse().map_err(|_| none())?;
    stored::get(&st.store, viewer(p), id)
        .await?
        .ok_or_else(none)
}

/// One alarm.
pub(crate) async fn one(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<AlarmView>> {
    Ok(Json(view(&visible(&st, &p, &id).await?)))
}

/// H.626.4 8.8 alarm reset: marks it reset, then CMU -> SCU -> PU `reset_alarm`, which clears
/// the camera's alarm and its output. A sub-account needs the `config` scope.
pub(crate) async fn reset(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<AlarmView>> {
    let row = visible(&st, &p, &id).await?;
    if let Some(camera) = &row.camera
        && matches!(viewer(&p), Viewer::Sub { .. })
    {
        device_access(&st, &p, camera.as_str(), Need::Scope(Scope::Config)).await?;
    }
    let fresh = stored::reset(&st.store, row.id, p.id, now_ms()).await?;
    let row = stored::get(&st.store, viewer(&p), row.id)
        .await?
        .ok_or_else(|| ApiErr::not_found("not_found", "no such alarm"))?;
    if fresh {
        st.alarm_hub.publish(&row, "reset");
    }
    if let Some(camera) = &row.camera
        && row.alarm.kind.from_device()
    {
        let cmd = DeviceCommand::ResetAlarm {
            id: Some(row.alarm.id.clone()),
        };
        // Stored either way; an offline camera clears it itself when it is back (its own
        // cooldown and the next reset), so the answer does not depend on the camera.
        if let Err(e) = st.platform.command(camera, cmd).await {
            tracing::info!(%camera, error = %e.message, "alarm reset did not reach the camera");
        }
        let (by, device, alarm) = (p.id, camera, row.alarm.id.as_str());
        audit::log(&st.store, Event::AlarmReset { by, device, alarm }).await;
    }
    Ok(Json(view(&row)))
}

/// The JPEG kept with the alarm.
pub(crate) async fn snapshot(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row = visible(&st, &p, &id).await?;
    let jpeg = stored::snapshot(&st.store, row.id)
        .await?
        .ok_or_else(|| ApiErr::not_found("no_snapshot", "no snapshot was kept with this alarm"))?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
}

/// Whether the caller of a stream sees `ev` (their own, or a camera shared with them now)
/// and wants it in the app (6.1.9 `app` channel).
async fn sees(st: &Shared, p: &Principal, ev: &Published) -> bool {
    let mine = ev.owner == p.id
        || match (viewer(p), &ev.camera) {
            (Viewer::Sub { parent, .. }, Some(cam)) if parent == ev.owner => {
                device_access(st, p, cam.as_str(), Need::Any).await.is_ok()
            }
            _ => false,
        };
    if !mine {
        return false;
    }
    let own = stored::notify(&st.store, p.id).await.unwrap_or_default();
    messages::channels_of(&own, ev.event.alarm.kind).app
}

/// Server-sent events of new alarms and resets the caller may see.
pub(crate) async fn stream(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = st.alarm_hub.subscribe();
    let events = futures_util::stream::unfold((st, p, rx), |(st, p, mut rx)| async move {
        loop {
            match rx.recv().await {
                Ok(ev) if sees(&st, &p, &ev).await => {
                    let data = serde_json::to_string(&ev.event).unwrap_or_default();
                    let sse = SseEvent::default().event(ev.event.event).data(data);
                    return Some((Ok(sse), (st, p, rx)));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    let sse = SseEvent::default().event("lagged").data(n.to_string());
                    return Some((Ok(sse), (st, p, rx)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The camera's alarm strategy as saved, and what the camera reports when it answers.
pub(crate) async fn get_strategy(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<AlarmStrategyState>> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    let saved = stored::strategy(&st.store, &id).await?;
    let device = match st.platform.command(&id, DeviceCommand::GetAlarms).await {
        Ok((_, DeviceReply::Alarms { state })) => Some(state),
        _ => None,
    };
    Ok(Json(AlarmStrategyState {
        strategy: up::saved_strategy(&st, &id).await,
        revision: saved.as_ref().map_or(0, |s| s.revision),
        applied: saved.is_some_and(|s| s.applied),
        device,
    }))
}

/// H.626.4 8.8 steps 1-4: validate (422 naming the field), save, send to the camera. 200
/// with the camera's state once applied; 202 when the camera is offline (it gets the
/// strategy when it is back).
pub(crate) async fn set_strategy(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(strategy): Json<AlarmStrategy>,
) -> ApiResult<(StatusCode, Json<AlarmStrategyState>)> {
    let (id, _) = device_access(&st, &p, &id, Need::Scope(Scope::Config)).await?;
    strategy.validate().map_err(|e| match e {
        peercam_alarm::Error::Invalid { field, reason } => {
            ApiErr::invalid(vec![FieldError::new(field, reason)])
        }
        other => ApiErr::invalid(vec![FieldError::new("strategy", other.to_string())]),
    })?;
    let doc = serde_json::to_string(&strategy).map_err(|e| ApiErr::internal("strategy", &e))?;
    let revision = stored::save_strategy(&st.store, &id, &doc, now_s()).await?;
    audit::log(
        &st.store,
        Event::AlarmStrategySet {
            by: p.id,
            device: &id,
        },
    )
    .await;
    let cmd = DeviceCommand::SetAlarmStrategy {
        strategy: strategy.clone(),
    };
    let pending = |device: Option<AlarmState>| AlarmStrategyState {
        strategy: strategy.clone(),
        revision,
        applied: device.is_some(),
        device,
    };
    match st.platform.command(&id, cmd).await {
        Ok((_, DeviceReply::Alarms { state })) => {
            stored::strategy_applied(&st.store, &id, revision).await?;
            Ok((StatusCode::OK, Json(pending(Some(state)))))
        }
        Ok((_, other)) => Err(device_error(other)),
        Err(e) if e.code == "device_offline" => Ok((StatusCode::ACCEPTED, Json(pending(None)))),
        Err(e) => Err(e),
    }
}

/// Switches a simulated alarm input of the camera (owner only).
pub(crate) async fn trip_input(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Json(req): Json<AlarmInputRequest>,
) -> ApiResult<Json<AlarmState>> {
    let (id, _) = device_access(&st, &p, &id, Need::Owner).await?;
    if req.input == 0 || req.input > peercam_alarm::model::MAX_INPUTS {
        return Err(ApiErr::invalid(vec![FieldError::new(
            "input",
            "input 1 to 8",
        )]));
    }
    let cmd = DeviceCommand::TripInput {
        input: req.input,
        active: req.active,
    };
    let (_, reply) = st.platform.command(&id, cmd).await?;
    let detail = format!("{} {}", req.input, if req.active { "on" } else { "off" });
    let (by, device, input) = (p.id, &id, detail.as_str());
    audit::log(&st.store, Event::AlarmInput { by, device, input }).await;
    match reply {
        DeviceReply::Alarms { state } => Ok(Json(state)),
        other => Err(device_error(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_field(q: ListQuery) -> String {
        match filter(q) {
            Err(e) => e
                .fields
                .first()
                .map(|f| f.field.clone())
                .unwrap_or_default(),
            Ok(_) => "ok".into(),
        }
    }

    #[test]
    fn h626_8_8_list_filters_are_checked_and_name_the_parameter() {
        let f = filter(ListQuery {
            kind: Some("camera_offline".into()),
            state: Some("active".into()),
            from: Some(5),
            ..ListQuery::default()
        })
        .unwrap();
        assert_eq!(f.kind, Some(AlarmKind::CameraOffline));
        assert_eq!((f.state, f.from_ms, f.limit), (Some("active"), Some(5), 50));
        let kind = ListQuery {
            kind: Some("fire".into()),
            ..ListQuery::default()
        };
        assert_eq!(refused_field(kind), "kind");
        let state = ListQuery {
            state: Some("done".into()),
            ..ListQuery::default()
        };
        assert_eq!(refused_field(state), "state");
        let limit = ListQuery {
            limit: Some(0),
            ..ListQuery::default()
        };
        assert_eq!(refused_field(limit), "limit");
        let camera = ListQuery {
            camera: Some("not a device".into()),
            ..ListQuery::default()
        };
        assert_eq!(refused_field(camera), "camera");
    }
}
