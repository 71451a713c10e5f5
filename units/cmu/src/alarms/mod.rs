//! Alarms on the platform side (H.626.4 8.8 alarm flow, 6.1.9 alarm messages).
//!
//! | module | what |
//! |---|---|
//! | [`up`] | 8.8 alarm up: store once, answer, then the linkage (recorders, snapshot, SMS, stream); system alarms (6.1.9) |
//! | [`routes`] | the Cm routes of alarms: list, one, reset, snapshot, live stream, strategy, simulated inputs |
//! | [`push`] | 6.1.9 Web Push: the VAPID key, browsers' subscriptions, encrypted and signed delivery |
//! | [`messages`] | 6.1.9 templates and notification settings per user and kind, and the rules that choose the channels |
//!
//! Who sees an alarm: its owner (the camera's owner when it was stored; the account itself
//! for login and logout), and a sub-account for every alarm of a camera its owner shares
//! with it, while the share lasts (old alarms included; docs/protocol.md).

pub(crate) mod messages;
pub(crate) mod push;
pub(crate) mod routes;
pub(crate) mod up;

use axum::routing::MethodRouter;
use peercam_alarm::AlarmKind;
use peercam_base::DeviceId;
use peercam_signal::cm::Role;
use peercam_signal::cm_alarm::{AlarmEvent, AlarmStatus, AlarmView};
use tokio::sync::broadcast;

use crate::Shared;
use crate::api::{RouteInfo, route};
use crate::auth::Principal;
use crate::store::alarms::{AlarmRow, Viewer};

/// New alarms and resets, to every open alarm stream (each filters what its caller sees).
pub(crate) struct Hub {
    tx: broadcast::Sender<Published>,
    /// To the other CMU instances over the bus (issue 19), once it is up.
    forward: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Published>>,
}

/// One event of the hub, with whose it is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Published {
    pub(crate) owner: i64,
    pub(crate) camera: Option<DeviceId>,
    pub(crate) event: AlarmEvent,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(256).0,
            forward: std::sync::OnceLock::new(),
        }
    }
}

impl Hub {
    /// Tells every stream, on this instance and the others (nobody listening is fine).
    pub(crate) fn publish(&self, row: &AlarmRow, event: &str) {
        let published = Published {
            owner: row.owner,
            camera: row.camera.clone(),
            event: AlarmEvent {
                event: event.to_owned(),
                alarm: view(row),
            },
        };
        if let Some(forward) = self.forward.get() {
            let _ = forward.send(published.clone());
        }
        let _ = self.tx.send(published);
    }

    /// Sends what is published here to the other instances through `forward`.
    pub(crate) fn forward_to(&self, forward: tokio::sync::mpsc::UnboundedSender<Published>) {
        let _ = self.forward.set(forward);
    }

    /// An event another instance published, to this instance's streams.
    pub(crate) fn deliver(&self, published: Published) {
        let _ = self.tx.send(published);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }
}

/// The API's view of a stored alarm.
pub(crate) fn view(row: &AlarmRow) -> AlarmView {
    let a = &row.alarm;
    AlarmView {
        id: row.id,
        camera: row.camera.as_ref().map(|c| c.as_str().to_owned()),
        alarm_id: a.id.clone(),
        kind: a.kind,
        at_ms: a.at_ms,
        received_ms: row.received_ms,
        level: a.level,
        input: a.input,
        zone: a.zone,
        detail: a.detail.clone(),
        state: if row.reset.is_some() {
            AlarmStatus::Reset
        } else {
            AlarmStatus::Active
        },
        reset_at_ms: row.reset.map(|(_, at)| at),
        snapshot: row.snapshot,
    }
}

/// Whose alarms `p` sees.
pub(crate) fn viewer(p: &Principal) -> Viewer {
    match (p.role, p.parent) {
        (Role::Sub, Some(parent)) => Viewer::Sub { user: p.id, parent },
        _ => Viewer::Owner(p.id),
    }
}

/// The alarm routes (H.626.4 8.8, 6.1.9), declared like every other route ([`crate::api`]).
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "GET",
            "/api/v1/devices/{id}/alarm-strategy",
            Customer,
            "The camera's alarm strategy as saved, and what the camera reports (8.8, needs `config`)",
            None,
            Some("AlarmStrategyState")
        ),
        route!(
            "PUT",
            "/api/v1/devices/{id}/alarm-strategy",
            Customer,
            "Save the camera's alarm strategy and send it to the camera; 202 when the camera is offline (sent when it is back) (8.8 steps 1-4, needs `config`)",
            Some("AlarmStrategy"),
            Some("AlarmStrategyState")
        ),
        route!(
            "POST",
            "/api/v1/devices/{id}/alarm-input",
            Owner,
            "Switch a simulated alarm input of the camera (demo camera, tests)",
            Some("AlarmInputRequest"),
            Some("AlarmState")
        ),
        route!(
            "GET",
            "/api/v1/alarms",
            Customer,
            "Alarms of the caller's cameras and account, newest first: `?camera=&kind=&state=&from=&to=&before=&limit=`",
            None,
            Some("AlarmList")
        ),
        route!(
            "GET",
            "/api/v1/alarms/stream",
            Customer,
            "Server-sent events of new alarms (`alarm`) and resets (`reset`) of the caller's cameras and account",
            None,
            Some("AlarmEvent")
        ),
        route!(
            "GET",
            "/api/v1/alarms/{id}",
            Customer,
            "One alarm",
            None,
            Some("AlarmView")
        ),
        route!(
            "POST",
            "/api/v1/alarms/{id}/reset",
            Customer,
            "Reset an alarm; the camera clears it and its alarm output (8.8, needs `config` on a shared camera)",
            None,
            Some("AlarmView")
        ),
        route!(
            "GET",
            "/api/v1/alarms/{id}/snapshot",
            Customer,
            "The JPEG kept with the alarm (8.8 snapshot linkage)",
            None,
            None
        ),
        route!(
            "GET",
            "/api/v1/me/alarm-templates",
            Customer,
            "Your alarm message templates per kind (6.1.9)",
            None,
            Some("AlarmTemplates")
        ),
        route!(
            "PUT",
            "/api/v1/me/alarm-templates",
            Customer,
            "Replace your alarm message templates; kinds left out use the default (6.1.9)",
            Some("AlarmTemplates"),
            Some("AlarmTemplates")
        ),
        route!(
            "POST",
            "/api/v1/me/alarm-templates/preview",
            Customer,
            "Render a template for a sample alarm: text, encoding, SMS segments (6.1.9)",
            Some("TemplatePreviewRequest"),
            Some("TemplatePreview")
        ),
        route!(
            "GET",
            "/api/v1/me/notifications",
            Customer,
            "Where your alarms of each kind are delivered: sms, push, app (6.1.9)",
            None,
            Some("NotificationSettings")
        ),
        route!(
            "PUT",
            "/api/v1/me/notifications",
            Customer,
            "Change where alarms of some kinds are delivered (6.1.9)",
            Some("NotificationSettings"),
            Some("NotificationSettings")
        ),
        route!(
            "GET",
            "/api/v1/push/vapid-public-key",
            Customer,
            "The platform's VAPID public key (RFC 8292) for `PushManager.subscribe` (6.1.9)",
            None,
            Some("VapidPublicKey")
        ),
        route!(
            "GET",
            "/api/v1/me/push-subscriptions",
            Customer,
            "Your browsers that get alarms by Web Push: endpoints only (6.1.9)",
            None,
            Some("PushSubscriptionList")
        ),
        route!(
            "POST",
            "/api/v1/me/push-subscriptions",
            Customer,
            "Keep a browser's push subscription (`PushSubscription.toJSON()`); 201, 409 past 10 (6.1.9)",
            Some("PushSubscriptionRequest"),
            Some("PushEndpoint")
        ),
        route!(
            "DELETE",
            "/api/v1/me/push-subscriptions",
            Customer,
            "Forget one of your push subscriptions by its endpoint; 204 (6.1.9)",
            Some("PushEndpoint"),
            None
        ),
    ]
}

/// The handler of an alarm route.
pub(crate) fn handler(method: &str, path: &str) -> Option<MethodRouter<Shared>> {
    use axum::routing::{delete, get, post, put};
    Some(match (method, path) {
        ("GET", "/api/v1/devices/{id}/alarm-strategy") => get(routes::get_strategy),
        ("PUT", "/api/v1/devices/{id}/alarm-strategy") => put(routes::set_strategy),
        ("POST", "/api/v1/devices/{id}/alarm-input") => post(routes::trip_input),
        ("GET", "/api/v1/alarms") => get(routes::list),
        ("GET", "/api/v1/alarms/stream") => get(routes::stream),
        ("GET", "/api/v1/alarms/{id}") => get(routes::one),
        ("POST", "/api/v1/alarms/{id}/reset") => post(routes::reset),
        ("GET", "/api/v1/alarms/{id}/snapshot") => get(routes::snapshot),
        ("GET", "/api/v1/me/alarm-templates") => get(messages::get_templates),
        ("PUT", "/api/v1/me/alarm-templates") => put(messages::set_templates),
        ("POST", "/api/v1/me/alarm-templates/preview") => post(messages::preview),
        ("GET", "/api/v1/me/notifications") => get(messages::get_notifications),
        ("PUT", "/api/v1/me/notifications") => put(messages::set_notifications),
        ("GET", "/api/v1/push/vapid-public-key") => get(push::vapid_public_key),
        ("GET", "/api/v1/me/push-subscriptions") => get(push::list),
        ("POST", "/api/v1/me/push-subscriptions") => post(push::subscribe),
        ("DELETE", "/api/v1/me/push-subscriptions") => delete(push::unsubscribe),
        _ => return None,
    })
}

/// The schemas of the alarm routes' bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    use peercam_signal::cm_alarm as c;
    b.schema_from::<AlarmKind>()
        .schema_from::<peercam_alarm::Alarm>()
        .schema_from::<peercam_alarm::AlarmStrategy>()
        .schema_from::<peercam_alarm::AlarmState>()
        .schema_from::<peercam_alarm::Linkage>()
        .schema_from::<peercam_alarm::Zone>()
        .schema_from::<peercam_alarm::InputState>()
        .schema_from::<AlarmStatus>()
        .schema_from::<AlarmView>()
        .schema_from::<c::AlarmList>()
        .schema_from::<c::AlarmStrategyState>()
        .schema_from::<c::AlarmInputRequest>()
        .schema_from::<c::AlarmTemplates>()
        .schema_from::<c::TemplatePreviewRequest>()
        .schema_from::<c::TemplatePreview>()
        .schema_from::<c::Channels>()
        .schema_from::<c::NotificationSettings>()
        .schema_from::<AlarmEvent>()
        .schema_from::<c::VapidPublicKey>()
        .schema_from::<c::PushKeys>()
        .schema_from::<c::PushSubscriptionRequest>()
        .schema_from::<c::PushEndpoint>()
        .schema_from::<c::PushSubscriptionList>()
        .schema_from::<c::PushAlarm>()
}
