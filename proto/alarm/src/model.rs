//! The alarm model shared by the camera, the platform and clients (H.626.4 8.8, 6.1.9).
//!
//! A camera (PU) raises an [`Alarm`] when an armed source of its [`AlarmStrategy`] fires
//! inside the strategy's weekly schedule, at most once per `cooldown_s` per source. The alarm
//! goes up PU -> SCU -> CMU with an id the camera chose, so a retransmission after a dropped
//! link is stored once. The CMU performs the [`Linkage`] and tells the user; the user's reset
//! goes back down to the camera, which clears the alarm and its alarm output.

use peercam_record::strategy::{Window, validate_windows};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest alarm id, bytes.
pub const MAX_ALARM_ID: usize = 64;
/// Longest alarm detail, bytes.
pub const MAX_DETAIL: usize = 256;
/// Most motion zones in a strategy.
pub const MAX_ZONES: usize = 8;
/// Longest cooldown, seconds (one hour).
pub const MAX_COOLDOWN_S: u32 = 3600;
/// Longest alarm output pulse, seconds (one hour).
pub const MAX_OUTPUT_S: u32 = 3600;
/// Highest alarm input number (inputs are numbered 1-8, as in the camera's `alarm_inputs`
/// parameters, 8.9.1).
pub const MAX_INPUTS: u8 = 8;

/// What raised an alarm. Device kinds come from a camera; system kinds (6.1.9) are raised by
/// the platform itself. Templates and notification settings are chosen per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AlarmKind {
    /// Motion in the camera's picture (inside a zone, if zones are set).
    Motion,
    /// An alarm input line went active (a door contact, a PIR sensor).
    Input,
    /// The picture stopped: no frames from the sensor or the wrapped camera.
    VideoLoss,
    /// The picture was covered, blinded or turned away (tampering).
    Tamper,
    /// An ONVIF event of a wrapped camera (motion or digital input topics).
    Onvif,
    /// Raised by hand (a client's event, a test).
    Manual,
    /// 6.1.9: somebody signed in to the account.
    Login,
    /// 6.1.9: somebody signed out.
    Logout,
    /// 6.1.9: a recorder's (NVR, SD card, cloud) storage is full.
    StorageFull,
    /// 6.1.9: a camera stopped answering (presence timeout).
    CameraOffline,
    /// 6.1.9: a camera that was offline is back.
    CameraOnline,
    /// 6.1.9: a recorder stopped answering.
    RecorderOffline,
    /// 6.1.9: an upgrade finished or failed.
    UpgradeResult,
}

impl AlarmKind {
    /// Every kind, in the order documented.
    pub const ALL: [Self; 13] = [
        Self::Motion,
        Self::Input,
        Self::VideoLoss,
        Self::Tamper,
        Self::Onvif,
        Self::Manual,
        Self::Login,
        Self::Logout,
        Self::StorageFull,
        Self::CameraOffline,
        Self::CameraOnline,
        Self::RecorderOffline,
        Self::UpgradeResult,
    ];

    /// Whether a camera may raise this kind (the others are the platform's own).
    pub fn from_device(self) -> bool {
        matches!(
            self,
            Self::Motion
                | Self::Input
                | Self::VideoLoss
                | Self::Tamper
                | Self::Onvif
                | Self::Manual
        )
    }

    /// The wire name, e.g. `video_loss`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Motion => "motion",
            Self::Input => "input",
            Self::VideoLoss => "video_loss",
            Self::Tamper => "tamper",
            Self::Onvif => "onvif",
            Self::Manual => "manual",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::StorageFull => "storage_full",
            Self::CameraOffline => "camera_offline",
            Self::CameraOnline => "camera_online",
            Self::RecorderOffline => "recorder_offline",
            Self::UpgradeResult => "upgrade_result",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alarm as the camera raised it (H.626.4 8.8: PU -> SCU -> CMU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alarm {
    /// Chosen by the camera, unique for it (1-64 bytes of `A-Za-z0-9._-`): the platform
    /// stores an alarm once per (camera, id), so a retransmission is harmless.
    pub id: String,
    /// What raised it.
    pub kind: AlarmKind,
    /// When it happened at the camera, Unix ms (kept through queueing and retransmission).
    pub at_ms: u64,
    /// The input number (1-8), for [`AlarmKind::Input`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<u8>,
    /// The zone (index into the strategy's zones), for [`AlarmKind::Motion`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<u8>,
    /// How strong the trigger was, 0-100 (e.g. the share of a zone that moved).
    #[serde(default)]
    pub level: u8,
    /// Free text (at most 256 bytes), e.g. the ONVIF topic.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Alarm {
    /// Checks the id, detail and ranges; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        validate_id(&self.id, "id")?;
        if self.detail.len() > MAX_DETAIL {
            return Err(Error::invalid("detail", "at most 256 bytes"));
        }
        if self.level > 100 {
            return Err(Error::invalid("level", "0 to 100"));
        }
        if self.input.is_some_and(|l| l == 0 || l > MAX_INPUTS) {
            return Err(Error::invalid("input", "input 1 to 8"));
        }
        if self.zone.is_some_and(|z| usize::from(z) >= MAX_ZONES) {
            return Err(Error::invalid("zone", "zone 0 to 7"));
        }
        Ok(())
    }
}

/// Checks an alarm id: 1-64 bytes of `A-Za-z0-9._-`.
pub fn validate_id(id: &str, field: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ALARM_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "1-64 characters of A-Z a-z 0-9 . _ -",
        ))
    }
}

/// A rectangle of the picture, in thousandths of its width and height from the top left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Zone {
    /// Left edge, 0-999.
    pub x: u16,
    /// Top edge, 0-999.
    pub y: u16,
    /// Width, 1-1000 (`x + w` <= 1000).
    pub w: u16,
    /// Height, 1-1000 (`y + h` <= 1000).
    pub h: u16,
}

impl Zone {
    /// The whole picture.
    pub const FULL: Self = Self {
        x: 0,
        y: 0,
        w: 1000,
        h: 1000,
    };
}

/// What the platform and the camera do when an alarm of this camera is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Linkage {
    /// Mark the alarm on the camera's recorders (NVR, SD card): their alarm strategies
    /// record with pre-roll and post-roll.
    #[serde(default = "yes")]
    pub record: bool,
    /// Take a snapshot and keep it with the alarm.
    #[serde(default = "yes")]
    pub snapshot: bool,
    /// Send an SMS to the owner per their template (and notification settings).
    #[serde(default)]
    pub sms: bool,
    /// Send a Web Push message to the owner's subscribed browsers.
    #[serde(default = "yes")]
    pub push: bool,
    /// Switch the camera's alarm output (relay) on; it stays on until the alarm is reset,
    /// or for `output_s` seconds when that is not 0.
    #[serde(default)]
    pub output: bool,
    /// How long the output stays on, seconds (0: until reset; at most 3600).
    #[serde(default)]
    pub output_s: u32,
}

impl Default for Linkage {
    fn default() -> Self {
        Self {
            record: true,
            snapshot: true,
            sms: false,
            push: true,
            output: false,
            output_s: 0,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_sensitivity() -> u8 {
    50
}

fn default_cooldown() -> u32 {
    30
}

/// A camera's alarm strategy (H.626.4 8.8 steps 1-4: CU -> CMU -> SCU -> PU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmStrategy {
    /// Master switch: when false nothing raises an alarm.
    #[serde(default)]
    pub armed: bool,
    /// The armed sources (device kinds only; each at most once).
    #[serde(default)]
    pub sources: Vec<AlarmKind>,
    /// When the strategy is armed, as weekly windows of local time (empty: always).
    #[serde(default)]
    pub schedule: Vec<Window>,
    /// Minutes east of UTC in which `schedule` is written.
    #[serde(default)]
    pub utc_offset_min: i16,
    /// Where motion counts (empty: the whole picture).
    #[serde(default)]
    pub zones: Vec<Zone>,
    /// Motion and tamper sensitivity, 1 (only large changes) to 100 (the slightest).
    #[serde(default = "default_sensitivity")]
    pub sensitivity: u8,
    /// After an alarm, the same source (and zone or line) raises no other for this long,
    /// seconds (0-3600): a flapping source is collapsed into one alarm.
    #[serde(default = "default_cooldown")]
    pub cooldown_s: u32,
    /// What happens when an alarm is raised.
    #[serde(default)]
    pub linkage: Linkage,
}

impl Default for AlarmStrategy {
    fn default() -> Self {
        Self {
            armed: false,
            sources: Vec::new(),
            schedule: Vec::new(),
            utc_offset_min: 0,
            zones: Vec::new(),
            sensitivity: default_sensitivity(),
            cooldown_s: default_cooldown(),
            linkage: Linkage::default(),
        }
    }
}

impl AlarmStrategy {
    /// Checks every value; the error names the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        for (i, s) in self.sources.iter().enumerate() {
            if !s.from_device() {
                return Err(Error::invalid(
                    format!("sources[{i}]"),
                    "motion, input, video_loss, tamper, onvif or manual",
                ));
            }
            if self.sources[..i].contains(s) {
                return Err(Error::invalid(format!("sources[{i}]"), "listed twice"));
            }
        }
        validate_windows(&self.schedule, "schedule")?;
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_min) {
            return Err(Error::invalid(
                "utc_offset_min",
                "must be within -840..=840",
            ));
        }
        if self.zones.len() > MAX_ZONES {
            return Err(Error::invalid("zones", "at most 8 zones"));
        }
        for (i, z) in self.zones.iter().enumerate() {
            if z.x >= 1000 || z.y >= 1000 {
                return Err(Error::invalid(
                    format!("zones[{i}].x"),
                    "the zone must start inside the picture: 0 to 999 thousandths",
                ));
            }
            if z.w == 0 || z.x + z.w > 1000 {
                return Err(Error::invalid(
                    format!("zones[{i}].w"),
                    "the zone must have a width and end inside the picture: x + w at most 1000 thousandths",
                ));
            }
            if z.h == 0 || z.y + z.h > 1000 {
                return Err(Error::invalid(
                    format!("zones[{i}].h"),
                    "the zone must have a height and end inside the picture: y + h at most 1000 thousandths",
                ));
            }
        }
        if !(1..=100).contains(&self.sensitivity) {
            return Err(Error::invalid("sensitivity", "1 to 100"));
        }
        if self.cooldown_s > MAX_COOLDOWN_S {
            return Err(Error::invalid("cooldown_s", "0 to 3600"));
        }
        if self.linkage.output_s > MAX_OUTPUT_S {
            return Err(Error::invalid("linkage.output_s", "0 to 3600"));
        }
        Ok(())
    }

    /// Whether the strategy is armed at Unix time `now_ms` (master switch and schedule),
    /// and the next Unix ms at which that may change.
    pub fn armed_at(&self, now_ms: u64) -> (bool, Option<u64>) {
        if !self.armed {
            return (false, None);
        }
        if self.schedule.is_empty() {
            return (true, None);
        }
        peercam_record::strategy::weekly_state(&self.schedule, self.utc_offset_min, now_ms)
    }
}

/// One alarm input as the camera sees it. Which inputs raise alarms (and whether a contact
/// is normally open) is set by the camera's `alarm_inputs` parameters (8.9.1), armed by the
/// strategy's `input` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InputState {
    /// The input number, 1-8.
    pub input: u8,
    /// Whether it is active now.
    pub active: bool,
    /// Whether it is simulated (the demo camera; switched by the `trip_input` command).
    pub simulated: bool,
}

/// What a camera reports about its alarms (answer to the alarm commands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmState {
    /// The strategy in force.
    pub strategy: AlarmStrategy,
    /// Alarms raised and not reset yet, oldest first.
    pub active: Vec<Alarm>,
    /// Whether the alarm output (relay) is on.
    pub output_on: bool,
    /// The input lines.
    pub inputs: Vec<InputState>,
    /// Alarms raised but not yet acknowledged by the platform (queued while the link was down).
    pub pending: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_8_8_strategy_defaults_and_round_trip() {
        let s: AlarmStrategy =
            serde_json::from_str(r#"{"armed":true,"sources":["motion"]}"#).unwrap();
        assert_eq!(s.sensitivity, 50);
        assert_eq!(s.cooldown_s, 30);
        assert!(s.linkage.record && s.linkage.snapshot && s.linkage.push && !s.linkage.sms);
        s.validate().unwrap();
        let back: AlarmStrategy =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.armed_at(0), (true, None));
    }

    #[test]
    fn h626_8_8_strategy_refusals_name_the_field() {
        let field = |s: AlarmStrategy| match s.validate() {
            Err(Error::Invalid { field, .. }) => field,
            Ok(()) => "ok".into(),
        };
        let base = AlarmStrategy::default();
        assert_eq!(
            field(AlarmStrategy {
                sources: vec![AlarmKind::Login],
                ..base.clone()
            }),
            "sources[0]"
        );
        assert_eq!(
            field(AlarmStrategy {
                sources: vec![AlarmKind::Motion, AlarmKind::Motion],
                ..base.clone()
            }),
            "sources[1]"
        );
        assert_eq!(
            field(AlarmStrategy {
                zones: vec![Zone {
                    x: 900,
                    y: 0,
                    w: 200,
                    h: 10
                }],
                ..base.clone()
            }),
            "zones[0].w"
        );
        assert_eq!(
            field(AlarmStrategy {
                sensitivity: 0,
                ..base.clone()
            }),
            "sensitivity"
        );
        assert_eq!(
            field(AlarmStrategy {
                schedule: vec![Window {
                    days: 0,
                    start_min: 0,
                    end_min: 10
                }],
                ..base
            }),
            "schedule[0].days"
        );
        assert!(serde_json::from_str::<AlarmStrategy>(r#"{"armd":true}"#).is_err());
    }

    #[test]
    fn h626_8_8_schedule_arms_inside_windows_only() {
        // Monday 1970-01-05 00:00 UTC; window Monday 08:00-09:00 local at UTC+60.
        let monday = 4 * 86_400_000u64;
        let s = AlarmStrategy {
            armed: true,
            schedule: vec![Window {
                days: 1,
                start_min: 480,
                end_min: 540,
            }],
            utc_offset_min: 60,
            ..AlarmStrategy::default()
        };
        let at = |h: u64, m: u64| monday + (h * 60 + m) * 60_000;
        // 07:00 UTC is 08:00 local.
        assert_eq!(s.armed_at(at(6, 59)), (false, Some(at(7, 0))));
        assert_eq!(s.armed_at(at(7, 0)), (true, Some(at(8, 0))));
        assert!(!s.armed_at(at(8, 0)).0);
    }

    #[test]
    fn h626_8_8_alarm_ids_and_kinds() {
        let a = Alarm {
            id: "b1-7".into(),
            kind: AlarmKind::Input,
            at_ms: 1,
            input: Some(2),
            zone: None,
            level: 100,
            detail: String::new(),
        };
        a.validate().unwrap();
        assert!(
            Alarm {
                id: "a b".into(),
                ..a.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            Alarm {
                id: String::new(),
                ..a.clone()
            }
            .validate()
            .is_err()
        );
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"id":"b1-7","kind":"input","at_ms":1,"input":2,"level":100}"#
        );
        for k in AlarmKind::ALL {
            assert_eq!(AlarmKind::parse(k.as_str()), Some(k));
            let wire = serde_json::to_string(&k).unwrap();
            assert_eq!(wire, format!("\"{k}\""));
        }
    }
}
