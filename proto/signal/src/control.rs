//! Device control: PTZ (H.626.4 8.5, 6.1.4) and the PU's typed, versioned parameter schema
//! (8.9.1, 6.1.5 night vision), shared by the CMU (which checks a configuration before it
//! forwards it) and the PU (which checks it again before applying it, all or nothing).

use serde::{Deserialize, Serialize};

/// A PTZ order (H.626.4 8.5). Pan and tilt positions are normalised to -1..=1 (left/down to
/// right/up), zoom to 1..=[`MAX_ZOOM`]; speeds to -1..=1 of full speed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum PtzCommand {
    /// Move continuously at these speeds until [`PtzCommand::Stop`] or `timeout_ms`.
    Move {
        /// Pan speed, -1 (left) ..= 1 (right).
        #[serde(default)]
        pan: f32,
        /// Tilt speed, -1 (down) ..= 1 (up).
        #[serde(default)]
        tilt: f32,
        /// Zoom speed, -1 (out) ..= 1 (in).
        #[serde(default)]
        zoom: f32,
        /// Stop by itself after this long (a lost "stop" must not turn a camera forever).
        /// Default 5000, at most 60000.
        #[serde(default = "default_move_timeout")]
        timeout_ms: u32,
    },
    /// Stop moving.
    Stop,
    /// Go to an absolute position.
    Absolute {
        /// Pan, -1..=1.
        pan: f32,
        /// Tilt, -1..=1.
        tilt: f32,
        /// Zoom, 1..=MAX_ZOOM.
        zoom: f32,
    },
    /// Move by an offset (clamped at the limits).
    Relative {
        /// Pan offset.
        #[serde(default)]
        pan: f32,
        /// Tilt offset.
        #[serde(default)]
        tilt: f32,
        /// Zoom offset.
        #[serde(default)]
        zoom: f32,
    },
    /// Remember the current position as preset `slot`.
    PresetSet {
        /// 1..=MAX_PRESETS.
        slot: u8,
        /// A label, at most 32 characters.
        #[serde(default)]
        name: String,
    },
    /// Go to preset `slot`.
    PresetGoto {
        /// 1..=MAX_PRESETS.
        slot: u8,
    },
    /// Forget preset `slot`.
    PresetRemove {
        /// 1..=MAX_PRESETS.
        slot: u8,
    },
}

fn default_move_timeout() -> u32 {
    5000
}

/// The largest zoom factor of the synthetic camera.
pub const MAX_ZOOM: f32 = 4.0;
/// Preset slots.
pub const MAX_PRESETS: u8 = 32;

impl PtzCommand {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        let unit = |errs: &mut Vec<FieldError>, field: &str, v: f32, lo: f32, hi: f32| {
            if !v.is_finite() || v < lo || v > hi {
                errs.push(FieldError::new(field, format!("must be in {lo}..={hi}")));
            }
        };
        match self {
            Self::Move {
                pan,
                tilt,
                zoom,
                timeout_ms,
            } => {
                unit(&mut errs, "pan", *pan, -1.0, 1.0);
                unit(&mut errs, "tilt", *tilt, -1.0, 1.0);
                unit(&mut errs, "zoom", *zoom, -1.0, 1.0);
                if !(1..=60_000).contains(timeout_ms) {
                    errs.push(FieldError::new("timeout_ms", "must be in 1..=60000"));
                }
            }
            Self::Stop => {}
            Self::Absolute { pan, tilt, zoom } => {
                unit(&mut errs, "pan", *pan, -1.0, 1.0);
                unit(&mut errs, "tilt", *tilt, -1.0, 1.0);
                unit(&mut errs, "zoom", *zoom, 1.0, MAX_ZOOM);
            }
            Self::Relative { pan, tilt, zoom } => {
                unit(&mut errs, "pan", *pan, -2.0, 2.0);
                unit(&mut errs, "tilt", *tilt, -2.0, 2.0);
                unit(&mut errs, "zoom", *zoom, -MAX_ZOOM, MAX_ZOOM);
            }
            Self::PresetSet { slot, name } => {
                check_slot(&mut errs, *slot);
                if name.chars().count() > 32 || name.chars().any(char::is_control) {
                    errs.push(FieldError::new("name", "at most 32 printable characters"));
                }
            }
            Self::PresetGoto { slot } | Self::PresetRemove { slot } => {
                check_slot(&mut errs, *slot);
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}

fn check_slot(errs: &mut Vec<FieldError>, slot: u8) {
    if !(1..=MAX_PRESETS).contains(&slot) {
        errs.push(FieldError::new(
            "slot",
            format!("must be in 1..={MAX_PRESETS}"),
        ));
    }
}

/// Where the camera looks, and its presets (the answer to every PTZ order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PtzState {
    /// Pan, -1..=1.
    pub pan: f32,
    /// Tilt, -1..=1.
    pub tilt: f32,
    /// Zoom, 1..=MAX_ZOOM.
    pub zoom: f32,
    /// Whether a continuous move is under way.
    pub moving: bool,
    /// Stored presets.
    pub presets: Vec<Preset>,
}

/// A stored PTZ position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preset {
    /// Slot, 1..=MAX_PRESETS.
    pub slot: u8,
    /// Label.
    pub name: String,
    /// Pan.
    pub pan: f32,
    /// Tilt.
    pub tilt: f32,
    /// Zoom.
    pub zoom: f32,
}

/// A refused value: which field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Dotted path of the field, e.g. `video.max_fps`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The version of the PU parameter schema this build speaks.
pub const PARAMS_SCHEMA: u32 = 1;

/// The PU's parameters (H.626.4 8.9.1): one document, replaced as a whole so nothing is ever
/// half-applied. `revision` is the PU's counter; a set names the revision it was based on and
/// is refused if the PU moved on meanwhile (two users editing at once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceParams {
    /// Schema version, [`PARAMS_SCHEMA`].
    pub schema: u32,
    /// Video profile limits.
    pub video: VideoParams,
    /// On-screen display.
    pub osd: OsdParams,
    /// Night vision (6.1.5).
    pub night: NightParams,
    /// Audio.
    pub audio: AudioParams,
    /// Alarm inputs: which raise alarms when the alarm strategy arms the `input` source
    /// (H.626.4 8.8), and how each contact is wired.
    #[serde(default)]
    pub alarm_inputs: Vec<AlarmInput>,
    /// Offset of local time from UTC, minutes (-720..=840), for the OSD clock.
    pub utc_offset_min: i16,
}

/// Video limits: what the PU offers viewers at most (clause 7, 6.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VideoParams {
    /// Largest picture size: `cif`, `d1` or `720p`.
    pub max_resolution: Resolution,
    /// Highest frame rate, 1..=25.
    pub max_fps: u8,
    /// Highest bit rate, kbit/s, 32..=8000.
    pub max_kbps: u32,
    /// Seconds between IDR frames, 1..=10.
    pub gop_s: u8,
}

/// Picture sizes of H.626.4 6.1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Resolution {
    /// 352x288.
    #[serde(rename = "cif")]
    Cif,
    /// 704x576.
    #[serde(rename = "d1")]
    D1,
    /// 1280x720.
    #[serde(rename = "720p")]
    P720,
}

impl Resolution {
    /// Width and height, pixels.
    pub fn size(self) -> (u16, u16) {
        match self {
            Self::Cif => (352, 288),
            Self::D1 => (704, 576),
            Self::P720 => (1280, 720),
        }
    }
}

/// On-screen display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OsdParams {
    /// A caption, at most 24 printable ASCII characters.
    pub text: String,
    /// Burn in the clock.
    pub show_clock: bool,
}

/// Night vision mode (6.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NightMode {
    /// Switch by the light level.
    Auto,
    /// Always colour, IR lamp off.
    Day,
    /// Always monochrome, IR lamp on.
    Night,
}

/// Night vision settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NightParams {
    /// Mode.
    pub mode: NightMode,
    /// In auto mode, how long the light must stay past the threshold before switching,
    /// seconds, 0..=60 (hysteresis against flicker).
    pub switch_delay_s: u8,
    /// Light level (0..=100 %) below which it is night, 1..=90.
    pub dark_threshold_pct: u8,
}

/// Audio settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AudioParams {
    /// Offer audio to viewers at all.
    pub enabled: bool,
}

/// An alarm input (dry contact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlarmInput {
    /// Input number, 1..=8, unique.
    pub input: u8,
    /// Raise alarms from it (when the alarm strategy arms the `input` source).
    pub enabled: bool,
    /// Contact is normally open (alarm when it closes).
    pub normally_open: bool,
}

impl Default for DeviceParams {
    /// Factory settings.
    fn default() -> Self {
        Self {
            schema: PARAMS_SCHEMA,
            video: VideoParams {
                max_resolution: Resolution::P720,
                max_fps: 25,
                max_kbps: 2000,
                gop_s: 2,
            },
            osd: OsdParams {
                text: String::new(),
                show_clock: true,
            },
            night: NightParams {
                mode: NightMode::Auto,
                switch_delay_s: 2,
                dark_threshold_pct: 30,
            },
            audio: AudioParams { enabled: true },
            alarm_inputs: Vec::new(),
            utc_offset_min: 0,
        }
    }
}

impl DeviceParams {
    /// Checks every field; all errors at once, by dotted field name.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut e = Vec::new();
        if self.schema != PARAMS_SCHEMA {
            e.push(FieldError::new(
                "schema",
                format!("this device speaks schema {PARAMS_SCHEMA}"),
            ));
        }
        let v = &self.video;
        if !(1..=25).contains(&v.max_fps) {
            e.push(FieldError::new("video.max_fps", "must be in 1..=25"));
        }
        if !(32..=8000).contains(&v.max_kbps) {
            e.push(FieldError::new("video.max_kbps", "must be in 32..=8000"));
        }
        if !(1..=10).contains(&v.gop_s) {
            e.push(FieldError::new("video.gop_s", "must be in 1..=10"));
        }
        if self.osd.text.len() > 24 || !self.osd.text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            e.push(FieldError::new(
                "osd.text",
                "at most 24 printable ASCII characters",
            ));
        }
        if self.night.switch_delay_s > 60 {
            e.push(FieldError::new("night.switch_delay_s", "must be in 0..=60"));
        }
        if !(1..=90).contains(&self.night.dark_threshold_pct) {
            e.push(FieldError::new(
                "night.dark_threshold_pct",
                "must be in 1..=90",
            ));
        }
        let mut seen = [false; 9];
        for (i, a) in self.alarm_inputs.iter().enumerate() {
            match seen.get_mut(usize::from(a.input)) {
                Some(s) if a.input >= 1 && !*s => *s = true,
                _ => e.push(FieldError::new(
                    format!("alarm_inputs[{i}].input"),
                    "must be a distinct number in 1..=8",
                )),
            }
        }
        if !(-720..=840).contains(&self.utc_offset_min) {
            e.push(FieldError::new("utc_offset_min", "must be in -720..=840"));
        }
        if e.is_empty() { Ok(()) } else { Err(e) }
    }

    /// Decodes and validates a parameter document (JSON) in one step.
    pub fn decode(json: &[u8]) -> Result<Self, Vec<FieldError>> {
        let p: Self = serde_json::from_slice(json).map_err(|err| {
            vec![FieldError::new(
                "",
                format!("not a parameter document: {err}"),
            )]
        })?;
        p.validate()?;
        Ok(p)
    }
}

/// The PU's parameters with the revision they are at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamsState {
    /// Bumped by every applied change; a set must name the current one.
    pub revision: u64,
    /// The parameters.
    pub params: DeviceParams,
    /// What the camera does now: whether the IR lamp is on and the picture monochrome.
    pub ir_lamp_on: bool,
    /// Light level the camera sees, 0..=100 %.
    pub light_pct: u8,
}

/// Platform settings the operator changes through the API (H.626.4 8.9.2): one document,
/// replaced whole, revisioned like the PU's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlatformParams {
    /// Schema version, 1.
    pub schema: u32,
    /// How long a play URL may wait before it is opened, seconds, 1..=3600.
    pub play_token_ttl_s: u64,
    /// Lifetime of a login session, seconds, 300..=2592000.
    pub session_ttl_s: u64,
    /// Whether new accounts may sign up (6.1.1).
    pub signup_open: bool,
}

impl PlatformParams {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut e = Vec::new();
        if self.schema != 1 {
            e.push(FieldError::new("schema", "this platform speaks schema 1"));
        }
        if !(1..=3600).contains(&self.play_token_ttl_s) {
            e.push(FieldError::new("play_token_ttl_s", "must be in 1..=3600"));
        }
        if !(300..=2_592_000).contains(&self.session_ttl_s) {
            e.push(FieldError::new("session_ttl_s", "must be in 300..=2592000"));
        }
        if e.is_empty() { Ok(()) } else { Err(e) }
    }
}

/// A user's own settings kept by the CMU (H.626.4 8.9.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserParams {
    /// Schema version, 1.
    pub schema: u32,
    /// Interface language, a BCP 47 tag such as `en` or `zh-CN` (2..=16 characters).
    pub language: String,
    /// Offset of the user's local time from UTC, minutes, -720..=840.
    pub utc_offset_min: i16,
    /// Largest picture the user's clients ask for by default, pixels wide (176..=1920).
    pub default_max_width: u16,
    /// Receive alarm notifications (8.8). Stored only: the platform sends no alarm
    /// notifications yet.
    pub notify_alarms: bool,
}

impl Default for UserParams {
    fn default() -> Self {
        Self {
            schema: 1,
            language: "en".into(),
            utc_offset_min: 0,
            default_max_width: 1280,
            notify_alarms: true,
        }
    }
}

impl UserParams {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut e = Vec::new();
        if self.schema != 1 {
            e.push(FieldError::new("schema", "this platform speaks schema 1"));
        }
        let tag_ok = (2..=16).contains(&self.language.len())
            && self
                .language
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !tag_ok {
            e.push(FieldError::new(
                "language",
                "a language tag such as en or zh-CN",
            ));
        }
        if !(-720..=840).contains(&self.utc_offset_min) {
            e.push(FieldError::new("utc_offset_min", "must be in -720..=840"));
        }
        if !(176..=1920).contains(&self.default_max_width) {
            e.push(FieldError::new(
                "default_max_width",
                "must be in 176..=1920",
            ));
        }
        if e.is_empty() { Ok(()) } else { Err(e) }
    }
}

/// The user parameter document with its revision (H.626.4 8.9.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserParamsState {
    /// Bumped by every applied change.
    pub revision: u64,
    /// The document.
    pub params: UserParams,
}

/// A change of the user parameters (8.9.2): the permit, the revision it is based on
/// and the whole new document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetUserParams {
    /// From the matching `.../permit` route.
    pub permit: String,
    /// The revision the document was based on.
    pub base_revision: u64,
    /// The new document.
    pub params: UserParams,
}

/// The platform parameter document with its revision (H.626.4 8.9.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlatformParamsState {
    /// Bumped by every applied change.
    pub revision: u64,
    /// The document.
    pub params: PlatformParams,
}

/// A change of the platform parameters (8.9.2): the permit, the revision it is based on
/// and the whole new document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPlatformParams {
    /// From the matching `.../permit` route.
    pub permit: String,
    /// The revision the document was based on.
    pub base_revision: u64,
    /// The new document.
    pub params: PlatformParams,
}

/// WLAN security (H.626.4 6.1.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WlanSecurity {
    /// No encryption.
    Open,
    /// WPA2 personal (pre-shared key).
    Wpa2Psk,
    /// WPA3 personal (SAE).
    Wpa3Sae,
}

/// A network the camera sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WlanNetwork {
    /// Network name.
    pub ssid: String,
    /// Its security.
    pub security: WlanSecurity,
    /// Signal strength, 0..=100 %.
    pub signal_pct: u8,
}

/// Join a network (6.1.11). If the camera cannot reach the platform through it within the
/// camera's confirmation time, it returns to the previous network by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WlanConfig {
    /// Network name, 1..=32 bytes.
    pub ssid: String,
    /// Security.
    pub security: WlanSecurity,
    /// Passphrase: 8..=63 printable ASCII characters for WPA2/WPA3, empty for open networks.
    #[serde(default)]
    pub passphrase: String,
}

impl WlanConfig {
    /// Checks the fields; every error at once.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut e = Vec::new();
        if self.ssid.is_empty() || self.ssid.len() > 32 || self.ssid.chars().any(char::is_control) {
            e.push(FieldError::new(
                "ssid",
                "1 to 32 bytes, no control characters",
            ));
        }
        let printable = self.passphrase.bytes().all(|b| (0x20..0x7f).contains(&b));
        match self.security {
            WlanSecurity::Open if !self.passphrase.is_empty() => e.push(FieldError::new(
                "passphrase",
                "an open network takes no passphrase",
            )),
            WlanSecurity::Wpa2Psk | WlanSecurity::Wpa3Sae
                if !(8..=63).contains(&self.passphrase.len()) || !printable =>
            {
                e.push(FieldError::new(
                    "passphrase",
                    "8 to 63 printable ASCII characters",
                ));
            }
            _ => {}
        }
        if e.is_empty() { Ok(()) } else { Err(e) }
    }
}

/// What the camera's WLAN is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WlanState {
    /// The network joined now, if any.
    pub current: Option<String>,
    /// Networks in range (after a scan).
    pub networks: Vec<WlanNetwork>,
    /// How the last switch ended: `pending`, `confirmed` or `reverted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_switch: Option<WlanSwitch>,
}

/// The outcome of a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WlanSwitch {
    /// The network asked for.
    pub ssid: String,
    /// `pending`, `confirmed` (the platform was reached through it) or `reverted` (it was
    /// not, within the confirmation time, so the camera went back).
    pub outcome: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn factory_settings_are_valid_and_round_trip() {
        let p = DeviceParams::default();
        p.validate().unwrap();
        let json = serde_json::to_vec(&p).unwrap();
        assert_eq!(DeviceParams::decode(&json).unwrap(), p);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut p = DeviceParams::default();
        p.video.max_fps = 0;
        p.video.max_kbps = 9;
        p.osd.text = "x".repeat(30);
        p.alarm_inputs = vec![
            AlarmInput {
                input: 1,
                enabled: true,
                normally_open: true,
            },
            AlarmInput {
                input: 1,
                enabled: true,
                normally_open: true,
            },
        ];
        let errs = p.validate().unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "video.max_fps",
                "video.max_kbps",
                "osd.text",
                "alarm_inputs[1].input"
            ]
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused() {
        let mut v = serde_json::to_value(DeviceParams::default()).unwrap();
        v["video"]["sharpness"] = 3.into();
        assert!(DeviceParams::decode(v.to_string().as_bytes()).is_err());
        let mut v = serde_json::to_value(DeviceParams::default()).unwrap();
        v["video"]["max_resolution"] = "4k".into();
        assert!(DeviceParams::decode(v.to_string().as_bytes()).is_err());
    }

    #[test]
    fn ptz_ranges() {
        assert!(
            PtzCommand::Absolute {
                pan: 0.5,
                tilt: -1.0,
                zoom: 2.0
            }
            .validate()
            .is_ok()
        );
        let e = PtzCommand::Absolute {
            pan: f32::NAN,
            tilt: 0.0,
            zoom: 0.5,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(PtzCommand::PresetGoto { slot: 0 }.validate().is_err());
        let json = r#"{"op":"move","pan":0.5}"#;
        let m: PtzCommand = serde_json::from_str(json).unwrap();
        assert_eq!(
            m,
            PtzCommand::Move {
                pan: 0.5,
                tilt: 0.0,
                zoom: 0.0,
                timeout_ms: 5000
            }
        );
    }

    fn arb_params() -> impl Strategy<Value = DeviceParams> {
        (
            prop_oneof![
                Just(Resolution::Cif),
                Just(Resolution::D1),
                Just(Resolution::P720)
            ],
            1u8..=25,
            32u32..=8000,
            1u8..=10,
            "[ -~]{0,24}",
            any::<bool>(),
            prop_oneof![
                Just(NightMode::Auto),
                Just(NightMode::Day),
                Just(NightMode::Night)
            ],
            0u8..=60,
            1u8..=90,
            -720i16..=840,
        )
            .prop_map(
                |(res, fps, kbps, gop, text, clock, mode, delay, thr, off)| DeviceParams {
                    schema: PARAMS_SCHEMA,
                    video: VideoParams {
                        max_resolution: res,
                        max_fps: fps,
                        max_kbps: kbps,
                        gop_s: gop,
                    },
                    osd: OsdParams {
                        text,
                        show_clock: clock,
                    },
                    night: NightParams {
                        mode,
                        switch_delay_s: delay,
                        dark_threshold_pct: thr,
                    },
                    audio: AudioParams { enabled: clock },
                    alarm_inputs: Vec::new(),
                    utc_offset_min: off,
                },
            )
    }

    proptest! {
        #[test]
        fn valid_params_round_trip(p in arb_params()) {
            let json = serde_json::to_vec(&p).unwrap();
            prop_assert_eq!(DeviceParams::decode(&json).unwrap(), p);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = DeviceParams::decode(&bytes);
        }
    }

    #[test]
    fn wlan_config_rules() {
        let ok = WlanConfig {
            ssid: "home".into(),
            security: WlanSecurity::Wpa2Psk,
            passphrase: "correct horse".into(),
        };
        assert!(ok.validate().is_ok());
        let bad = WlanConfig {
            ssid: String::new(),
            security: WlanSecurity::Wpa3Sae,
            passphrase: "short".into(),
        };
        let f: Vec<String> = bad
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(f, ["ssid", "passphrase"]);
        let open = WlanConfig {
            ssid: "cafe".into(),
            security: WlanSecurity::Open,
            passphrase: "x".into(),
        };
        assert!(open.validate().is_err());
    }
}
