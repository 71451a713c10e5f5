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

/// One event of `GET /api/v1/alarms/stream` (`event:` is `alarm`, `snapshot` or `reset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AlarmEvent {
    /// `alarm` (new, sent before any linkage), `snapshot` (the camera's snapshot is now kept
    /// with it) or `reset`.
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

/// Longest push endpoint URL accepted.
pub const MAX_PUSH_ENDPOINT: usize = 2048;

/// The keys of a [`PushSubscriptionRequest`] that passed [`PushSubscriptionRequest::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushKeyBytes {
    /// The uncompressed P-256 point (65 bytes, first byte 4): its place on the curve is for
    /// the caller's crypto library to judge.
    pub p256dh: Vec<u8>,
    /// The 16-byte authentication secret.
    pub auth: Vec<u8>,
}

/// base64url, padded or not (browsers send it unpadded), canonical trailing bits.
const PUSH_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

impl PushSubscriptionRequest {
    /// Checks the subscription's form (6.1.9 push channel): the endpoint is an `https` URL
    /// without credentials (RFC 8030 8.1; plain `http` only to a loopback host, for tests
    /// and demos), `p256dh` an uncompressed P-256 point and `auth` 16 bytes, both base64url.
    /// Every refusal names its field.
    pub fn check(&self) -> Result<PushKeyBytes, Vec<crate::control::FieldError>> {
        use crate::control::FieldError;
        use base64::Engine as _;
        let mut errors = Vec::new();
        if let Err(why) = check_push_endpoint(&self.endpoint) {
            errors.push(FieldError::new("endpoint", why));
        }
        let p256dh = PUSH_B64.decode(&self.keys.p256dh).unwrap_or_default();
        if p256dh.len() != 65 || p256dh[0] != 4 {
            errors.push(FieldError::new(
                "keys.p256dh",
                "not an uncompressed P-256 public key (65 bytes, base64url)",
            ));
        }
        let auth = PUSH_B64.decode(&self.keys.auth).unwrap_or_default();
        if auth.len() != 16 {
            errors.push(FieldError::new(
                "keys.auth",
                "not a 16-byte secret (base64url)",
            ));
        }
        if errors.is_empty() {
            Ok(PushKeyBytes { p256dh, auth })
        } else {
            Err(errors)
        }
    }
}

fn check_push_endpoint(endpoint: &str) -> Result<(), &'static str> {
    if endpoint.len() > MAX_PUSH_ENDPOINT {
        return Err("too long");
    }
    let url = url::Url::parse(endpoint).map_err(|_| "not a URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials are not allowed in the URL");
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("no host"),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must be an https URL"),
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use base64::Engine as _;
    use proptest::prelude::*;

    use super::*;

    fn req(endpoint: &str, p256dh: &str, auth: &str) -> PushSubscriptionRequest {
        PushSubscriptionRequest {
            endpoint: endpoint.into(),
            expiration_time: None,
            keys: PushKeys {
                p256dh: p256dh.into(),
                auth: auth.into(),
            },
        }
    }

    fn fields(r: PushSubscriptionRequest) -> Vec<String> {
        r.check()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn h626_6_1_9_push_subscription_form_checked_field_by_field() {
        let mut point = [1u8; 65];
        point[0] = 4;
        let p = PUSH_B64.encode(point);
        let a = PUSH_B64.encode([9u8; 16]);
        for ok in [
            "https://push.example/x",
            "http://127.0.0.1:9/x",
            "http://[::1]:9/x",
            "http://localhost/x",
        ] {
            assert!(req(ok, &p, &a).check().is_ok(), "{ok}");
        }
        // Padded base64url, as some browsers send it, is taken too.
        assert!(
            req("https://p.example/", &format!("{p}="), &format!("{a}=="))
                .check()
                .is_ok()
        );
        for bad in [
            "http://push.example/x",
            "ftp://127.0.0.1/x",
            "https://u:p@push.example/",
            "not a url",
            "https://",
        ] {
            assert_eq!(fields(req(bad, &p, &a)), ["endpoint"], "{bad}");
        }
        let long = format!("https://p.example/{}", "a".repeat(MAX_PUSH_ENDPOINT));
        assert_eq!(fields(req(&long, &p, &a)), ["endpoint"]);
        assert_eq!(
            fields(req("https://push.example/x", &a, &p)),
            ["keys.p256dh", "keys.auth"]
        );
        let mut compressed = point;
        compressed[0] = 2;
        assert_eq!(
            fields(req("https://p.example/", &PUSH_B64.encode(compressed), &a)),
            ["keys.p256dh"]
        );
        assert_eq!(
            fields(req("https://p.example/", "!!", "??")),
            ["keys.p256dh", "keys.auth"]
        );
    }

    proptest! {
        #[test]
        fn h626_6_1_9_push_keys_round_trip(
            point in proptest::collection::vec(any::<u8>(), 64),
            auth in any::<[u8; 16]>(),
            path in "[a-zA-Z0-9/_-]{0,40}",
        ) {
            let mut p256dh = vec![4u8];
            p256dh.extend(point);
            let r = req(
                &format!("https://push.example/{path}"),
                &PUSH_B64.encode(&p256dh),
                &PUSH_B64.encode(auth),
            );
            let keys = r.check().unwrap();
            prop_assert_eq!(keys.p256dh, p256dh);
            prop_assert_eq!(keys.auth, auth.to_vec());
            // And the JSON form a browser sends reads back to the same request.
            let json = serde_json::to_string(&r).unwrap();
            prop_assert_eq!(serde_json::from_str::<PushSubscriptionRequest>(&json).unwrap(), r);
        }
    }
}
