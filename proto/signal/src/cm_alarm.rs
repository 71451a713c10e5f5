//! Cm bodies of the alarm routes (H.626.4 8.8 alarm flow, 6.1.9 alarm messages): the
//! alarms a user may see, a camera's alarm strategy as the platform keeps it, the user's
//! message templates and notification settings, and the events of the live alarm stream.

use std::collections::BTreeMap;

use peercam_alarm::{AlarmKind, AlarmState, AlarmStrategy};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Whether an alarm is still active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum AlarmStatus {
    /// Raised and not reset.
    Active,
    /// Reset by a user (H.626.4 8.8).
    Reset,
}

impl AlarmStatus {
    /// `active` or `reset`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Reset => "reset",
        }
    }
}

/// One stored alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmView {
    /// The platform's id of the alarm (for `/api/v1/alarms/{id}`).
    pub id: i64,
    /// The device concerned; none for account alarms (login, logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    /// The id the camera chose (or the platform, for system alarms).
    pub alarm_id: String,
    /// What raised it.
    pub kind: AlarmKind,
    /// When it happened, Unix ms.
    pub at_ms: u64,
    /// When the platform stored it, Unix ms.
    pub received_ms: u64,
    /// How strong the trigger was, 0-100.
    pub level: u8,
    /// The input number, for input alarms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<u8>,
    /// The zone, for motion alarms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<u8>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Active or reset.
    pub state: AlarmStatus,
    /// When it was reset, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_at_ms: Option<u64>,
    /// Whether a snapshot is kept with it (`GET /api/v1/alarms/{id}/snapshot`).
    pub snapshot: bool,
}

/// A page of alarms, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmList {
    /// The alarms.
    pub alarms: Vec<AlarmView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// A camera's alarm strategy as the platform keeps it (H.626.4 8.8 steps 1-4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmStrategyState {
    /// The strategy saved on the platform (the default when none was saved).
    pub strategy: AlarmStrategy,
    /// Its revision on the platform (0: never saved).
    pub revision: u64,
    /// Whether the camera has applied this revision; when false it is sent again when the
    /// camera next comes online.
    pub applied: bool,
    /// What the camera reports, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<AlarmState>,
}

/// Switch a simulated alarm input of the camera (the demo camera, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmInputRequest {
    /// The input, 1-8.
    pub input: u8,
    /// Active (tripped) or not.
    pub active: bool,
}

/// The user's message templates (H.626.4 6.1.9), per alarm kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmTemplates {
    /// Kind (`motion`, `camera_offline`, ...) -> template. In answers every kind is
    /// present (the default where the user set none); in a `PUT` the kinds left out go back
    /// to their default.
    pub templates: BTreeMap<String, String>,
}

/// Render a template without saving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TemplatePreviewRequest {
    /// The kind the sample alarm has.
    pub kind: AlarmKind,
    /// The template.
    pub template: String,
}

/// A rendered template and what it costs as SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TemplatePreview {
    /// The message as it would be sent for a sample alarm.
    pub text: String,
    /// `gsm7` or `ucs2`.
    pub encoding: String,
    /// Characters in the encoding's units (GSM-7 extension characters count 2).
    pub units: usize,
    /// SMS segments.
    pub segments: usize,
}

/// Where the alarms of one kind are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Channels {
    /// By SMS to the account's phone (owners only; per the camera's strategy `linkage.sms`
    /// for device alarms).
    pub sms: bool,
    /// By Web Push to subscribed browsers.
    pub push: bool,
    /// In the apps, through the live alarm stream.
    pub app: bool,
}

/// The user's notification settings (H.626.4 6.1.9), per alarm kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NotificationSettings {
    /// Kind -> channels. Answers list every kind; a `PUT` may list some (the others keep
    /// their values).
    pub kinds: BTreeMap<String, Channels>,
}

/// One event of `GET /api/v1/alarms/stream` (`event:` is `alarm` or `reset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmEvent {
    /// `alarm` (new) or `reset`.
    pub event: String,
    /// The alarm as it is now.
    pub alarm: AlarmView,
}

/// The CMU's VAPID public key (RFC 8292), for `PushManager.subscribe({applicationServerKey})`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VapidPublicKey {
    /// The uncompressed P-256 point (65 bytes), base64url without padding.
    pub key: String,
}

/// The keys of a push subscription (RFC 8291), as `PushSubscription.toJSON()` gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PushKeys {
    /// The browser's P-256 ECDH public key, uncompressed (65 bytes), base64url.
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
}

/// A browser's push subscription (H.626.4 6.1.9 push channel; RFC 8030), the shape of
/// `PushSubscription.toJSON()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PushSubscriptionRequest {
    /// The push service's endpoint (https; http only on loopback).
    pub endpoint: String,
    /// What the browser's `toJSON()` adds; ignored.
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<u64>,
    /// The message encryption keys.
    pub keys: PushKeys,
}

/// Names one of the caller's subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PushEndpoint {
    /// The subscription's endpoint.
    pub endpoint: String,
}

/// The caller's push subscriptions (endpoints only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PushSubscriptionList {
    /// Oldest first.
    pub subscriptions: Vec<PushEndpoint>,
}

/// What a Web Push message of an alarm carries (encrypted, RFC 8291), read by the service
/// worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PushAlarm {
    /// The platform's alarm id.
    pub id: i64,
    /// The device concerned.
    pub camera: Option<String>,
    /// Its name.
    pub camera_name: Option<String>,
    /// What happened.
    pub kind: AlarmKind,
    /// When (Unix ms).
    pub at_ms: u64,
    /// The notification's title.
    pub title: String,
    /// The user's text (their template, as for SMS).
    pub body: String,
    /// Where the notification leads: `/#/alarms/ID`.
    pub url: String,
}
