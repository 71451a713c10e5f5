//! Commands the CMU routes to a device through the SCU that holds it, and their replies.
//!
//! H.626.4 routes device control CU -> CMU -> SCU -> PU with the result going back the same
//! way (8.5, 8.9.1, 8.10, 8.11.1). Each later flow adds its command here.

use serde::{Deserialize, Serialize};

use crate::control::{
    DeviceParams, FieldError, ParamsState, PtzCommand, PtzState, WlanConfig, WlanState,
};
use crate::record::{RecordingList, RecordingState, Strategy};
use crate::upgrade::{SignedManifest, UpgradeStatus};
use peercam_base::DeviceId;

/// A command for a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceCommand {
    /// Ask the device to describe itself (software, uptime).
    Describe,
    /// Turn or zoom the camera (H.626.4 8.5).
    Ptz {
        /// The order.
        order: PtzCommand,
    },
    /// Read the parameters (8.9.1 query).
    GetParams,
    /// Replace the parameters (8.9.1 configuration), all or nothing, if the device is still
    /// at `base_revision`.
    SetParams {
        /// The revision the new document was based on.
        base_revision: u64,
        /// The whole new document.
        params: DeviceParams,
    },
    /// Scan for networks and report the WLAN state (6.1.11).
    WlanScan,
    /// Join a network (6.1.11); the device answers at once and switches, and goes back to
    /// the previous network if the platform cannot be reached through the new one.
    WlanConnect {
        /// The network.
        config: WlanConfig,
    },
    /// Install a signed release (8.11.1): the device checks it, answers, downloads the
    /// payload from `url`, installs it in its inactive slot and restarts into it.
    Upgrade {
        /// The release.
        release: SignedManifest,
        /// Where to download the payload (only a location: the manifest's hash decides).
        url: String,
    },
    /// Where the upgrade stands.
    UpgradeStatus,
    /// Return to factory state (8.10): the device acknowledges, then resets.
    Reset {
        /// Also delete local recordings.
        wipe_recordings: bool,
    },
    /// H.626.4 8.7.2.1 steps 1-8, to an NVR: record `camera` from now on (strategy off
    /// until one is set). The NVR looks for it on its LAN (Np).
    RecorderAttach {
        /// The camera, bound to the same owner.
        camera: DeviceId,
        /// The camera's Ed25519 public key, base64url: LAN announcements must verify
        /// with it ([`crate::discover`]).
        public_key: String,
    },
    /// To a camera (Mp): open an outbound media channel to the MTU at `tunnel` (TLS,
    /// `host:port`), present `ticket`, then serve RTSP over it as to any viewer (the MTU
    /// presents a play token, judged as in 8.4). Answered [`DeviceReply::Done`] once started.
    RelayConnect {
        /// The MTU's tunnel address, `host:port`.
        tunnel: String,
        /// The TLS server name to expect from the MTU's certificate.
        server_name: String,
        /// The one-time ticket from the MTU's [`DeviceRequest::RelayUpstream`].
        ticket: String,
    },
    /// H.626.4 8.3: a viewer wants a hole-punched path. The camera gathers its candidates
    /// (asking `stun` for its public address), answers [`DeviceReply::Punch`] with its own
    /// description and then runs ICE and accepts the viewer's QUIC connection, pinned to the
    /// viewer's fingerprint; the viewer's RTSP request on it is judged as in 8.4.
    Punch {
        /// The viewer's description.
        offer: crate::relay::PunchDescription,
        /// The STUN server, `host:port`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stun: Option<String>,
    },
    /// H.626.4 6.3 / 8.4 for browsers: a viewer's WebRTC offer (SDP, receive-only). The
    /// camera first has the platform judge `token` exactly as for an RTSP DESCRIBE (8.4
    /// steps 5-8), then answers [`DeviceReply::WebRtc`] with its SDP answer (H.264 and
    /// G.711/G.722 over DTLS-SRTP), gathering candidates on its LAN address and, with `stun`,
    /// its public one.
    WebRtc {
        /// The viewer's SDP offer.
        offer: String,
        /// A one-time play token for this device, minted for the viewer.
        token: String,
        /// The viewer's address as the CMU saw it (for the audit).
        client: String,
        /// The STUN server, `host:port`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stun: Option<String>,
        /// The view's id (the token's `jti`, what the browser gets as `session`): later
        /// [`DeviceCommand::WebRtcCandidates`] name it. Absent from CMUs before trickle ICE
        /// (issue 20); such sessions take no trickled candidates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// Trickle ICE for a live view (issue 20; RFC 8838): more of the browser's candidates,
    /// or the end of them, for the [`DeviceCommand::WebRtc`] session `session`, sent by
    /// `user`. The camera adds them to that session's ICE agent only when the session is
    /// `user`'s, and answers [`DeviceReply::Done`]; an unknown or ended session, or one of
    /// another user, is `failed` with code `no_session`.
    WebRtcCandidates {
        /// The session, as in [`DeviceCommand::WebRtc`].
        session: String,
        /// The viewer's account, as the CMU authenticated it.
        user: i64,
        /// Candidate attributes, checked by the CMU ([`crate::trickle::Trickle`]).
        #[serde(default)]
        candidates: Vec<String>,
        /// The browser has no more candidates.
        #[serde(default)]
        end: bool,
    },
    /// H.626.4 8.7.2.2 / 8.7.3 for browsers: play `camera`'s recordings from `start_ms` over
    /// WebRTC; to the recorder (an NVR, or the camera for its SD card). The recorder has the
    /// platform judge `token` (a playback token naming `camera`) before it answers
    /// [`DeviceReply::WebRtc`]; the browser then steers speed, direction, seeks and frame
    /// steps with [`crate::record::PlaybackControl`] on the data channel.
    PlaybackWebRtc {
        /// The camera whose recordings to play.
        camera: DeviceId,
        /// Where to start, Unix ms.
        start_ms: u64,
        /// The viewer's SDP offer (with a data channel).
        offer: String,
        /// A one-time playback token.
        token: String,
        /// The viewer's address as the CMU saw it.
        client: String,
        /// The STUN server, `host:port`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stun: Option<String>,
    },
    /// A still picture of what the camera sees now, as a JPEG at most `max_width` wide (the
    /// device list's thumbnail; 6.1.12's snapshots; 8.8's snapshot linkage).
    Snapshot {
        /// Widest picture wanted, pixels (16 to 1280).
        max_width: u16,
    },
    /// To an MTU: end the relayed sessions of `camera` (of `user` only, when given), as
    /// [`crate::ps::ScuToDevice::Revoke`] does at the camera (docs/security.md D5).
    RelayRevoke {
        /// The camera.
        camera: DeviceId,
        /// The account whose sessions end; everyone's when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<i64>,
    },
    /// To an NVR: stop recording `camera` and forget it; `wipe` deletes its recordings.
    RecorderDetach {
        /// The camera.
        camera: DeviceId,
        /// Delete what was recorded.
        wipe: bool,
    },
    /// 8.7.2.1 steps 9-15 (NVR) and 8.7.3 (SD card, `camera` is the PU itself): save and
    /// apply a record strategy.
    SetRecording {
        /// The camera.
        camera: DeviceId,
        /// The strategy.
        strategy: Strategy,
    },
    /// Where a camera's recording stands.
    GetRecording {
        /// The camera.
        camera: DeviceId,
    },
    /// 8.7.2.2 / 8.7.3 record list: spans and events of `camera` in `[from_ms, to_ms)`.
    ListRecordings {
        /// The camera.
        camera: DeviceId,
        /// Start, Unix ms.
        from_ms: u64,
        /// End, Unix ms.
        to_ms: u64,
    },
    /// An alarm or a manual event for `camera`: marks the timeline and fires alarm
    /// strategies (pre-roll and post-roll).
    RecordEvent {
        /// The camera.
        camera: DeviceId,
        /// `alarm` or `manual`.
        kind: String,
        /// Free text.
        detail: String,
    },
    /// H.626.4 8.8 steps 1-4: save and apply the camera's alarm strategy; answered
    /// [`DeviceReply::Alarms`] (or `invalid`).
    SetAlarmStrategy {
        /// The strategy.
        strategy: peercam_alarm::AlarmStrategy,
    },
    /// The camera's alarm state: strategy, active alarms, output, inputs, queue.
    GetAlarms,
    /// H.626.4 8.8 alarm reset (CMU -> SCU -> PU): clear the active alarm `id` (every active
    /// alarm when absent) and switch the alarm output off when none is left.
    ResetAlarm {
        /// The alarm.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Switch a *simulated* alarm input (the demo camera; a test). A camera whose input is
    /// wired to real hardware answers `failed` with `not_simulated`.
    TripInput {
        /// The input number, 1-8.
        input: u8,
        /// Active or not.
        active: bool,
    },
    /// Su (CMU -> CS, docs/design/cloud-storage.md): the CMU's grant verification keys.
    /// Sent after every registration of a CS; replaces the keys the CS held. Answered
    /// [`DeviceReply::Done`] (or `invalid`, see [`DeviceCommand::check_su`]).
    CsConfig {
        /// The keys, 1 to [`MAX_CS_GRANT_KEYS`].
        grant_keys: Vec<CsGrantKey>,
    },
    /// Su (CMU -> CS): the storage configuration of a camera and its sub-space; creates or
    /// replaces it. Answered [`DeviceReply::Done`].
    CsCamera {
        /// The camera.
        camera: DeviceId,
        /// Its prefix: `s` and 22 base64url characters, random, per (camera, binding).
        prefix: String,
        /// The account whose pool it uses (one the CS was sent with `cs_account`).
        account: String,
        /// Grants of a lower epoch are refused.
        epoch: u64,
        /// The data key id new objects are sealed with.
        write_kid: String,
    },
    /// Su (CMU -> CS): an account's pool and its plan's rules (H.626.4 6.1.13); creates or
    /// replaces it. Answered [`DeviceReply::Done`]. A message whose `plan_epoch` is below
    /// the one the CS holds is stale: answered `done` and ignored.
    CsAccount {
        /// The account id.
        account: String,
        /// Bytes its cameras may store together (ciphertext).
        quota_bytes: u64,
        /// Objects older than this many days are deleted (absent: kept until pruned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_age_days: Option<u32>,
        /// The plan's id, for the record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<String>,
        /// Raised by every plan change of the account; orders `cs_account` messages.
        #[serde(default)]
        plan_epoch: u64,
        /// Unix seconds from which bytes beyond `quota_bytes` are pruned, oldest first
        /// (the grace after a downgrade). Absent: at once. New writes meet the quota at once
        /// either way.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prune_excess_after_s: Option<u64>,
    },
    /// Su (CMU -> CS): an account's pool as the CS holds it now. Answered
    /// [`DeviceReply::CsUsage`].
    CsUsage {
        /// The account id.
        account: String,
    },
    /// Su (CMU -> CS, issue 17 item 9): a shared clip was revoked or expired; the CS deletes
    /// the clip object `<prefix>/clips/<share>.mp4` and gives its bytes back to the pool.
    /// Answered [`DeviceReply::Done`] (also when the CS holds no such clip: idempotent).
    CsClipDelete {
        /// The camera's prefix.
        prefix: String,
        /// The share id.
        share: String,
    },
    /// H.626.4 6.1.13 (CMU -> SCU -> PU): the account's quota was raised; a camera whose
    /// cloud recording stopped full tries again at once. Answered
    /// [`DeviceReply::CloudRecording`].
    CloudResume,
    /// H.626.4 8.7.1 recording steps (CMU -> SCU -> PU): save and apply the camera's cloud
    /// strategy, uploading to the CS at `cs_url` under `prefix` with `grant` (a `pcg1`
    /// device grant, refreshed with [`DeviceRequest::CloudGrant`]). Answered
    /// [`DeviceReply::CloudRecording`].
    SetCloudRecording {
        /// The strategy (the same as the SD card's and the NVR's).
        strategy: Strategy,
        /// The CS's Cp base URL, `https://HOST:PORT` (`http://` on loopback).
        cs_url: String,
        /// The camera's prefix on the CS.
        prefix: String,
        /// The device grant (ops `put`, `state`, and `prune` for a cyclic strategy).
        grant: String,
    },
    /// Where the camera's cloud recording stands; answered [`DeviceReply::CloudRecording`].
    GetCloudRecording,
}

/// One grant verification key of the CMU (Su `cs_config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsGrantKey {
    /// The key id grants name in `kid`: 1 to [`MAX_SU_ID`] characters of `[A-Za-z0-9_-]`.
    pub kid: String,
    /// The Ed25519 public key, 32 bytes in base64url without padding.
    pub public_key: String,
}

/// Most grant keys in a `cs_config` (the current key and a few being retired).
pub const MAX_CS_GRANT_KEYS: usize = 8;
/// Longest key id or account id in a Su message, characters.
pub const MAX_SU_ID: usize = 64;

fn su_id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SU_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn b64url_len(s: &str) -> Option<usize> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .map(|v| v.len())
}

impl DeviceCommand {
    /// Whether a Su command's values are acceptable (`Ok` for any other command): what a
    /// CS checks before it applies one, answering `invalid` with these errors.
    pub fn check_su(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        match self {
            Self::CsConfig { grant_keys } => {
                if grant_keys.is_empty() || grant_keys.len() > MAX_CS_GRANT_KEYS {
                    errors.push(FieldError::new(
                        "grant_keys",
                        format!("1 to {MAX_CS_GRANT_KEYS} keys"),
                    ));
                }
                for (i, k) in grant_keys.iter().enumerate().take(MAX_CS_GRANT_KEYS) {
                    if !su_id_ok(&k.kid) {
                        errors.push(FieldError::new(
                            format!("grant_keys.{i}.kid"),
                            format!("1 to {MAX_SU_ID} characters of A-Z a-z 0-9 - _"),
                        ));
                    } else if grant_keys[..i].iter().any(|o| o.kid == k.kid) {
                        errors.push(FieldError::new(
                            format!("grant_keys.{i}.kid"),
                            "key ids are unique",
                        ));
                    }
                    if k.public_key.len() > 64 || b64url_len(&k.public_key) != Some(32) {
                        errors.push(FieldError::new(
                            format!("grant_keys.{i}.public_key"),
                            "32 bytes in base64url without padding",
                        ));
                    }
                }
            }
            Self::CsCamera {
                prefix,
                account,
                write_kid,
                ..
            } => {
                let p = prefix.as_bytes();
                if p.len() != 23
                    || p[0] != b's'
                    || !p[1..]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                {
                    errors.push(FieldError::new("prefix", "s and 22 base64url characters"));
                }
                if !su_id_ok(account) {
                    errors.push(FieldError::new(
                        "account",
                        format!("1 to {MAX_SU_ID} characters of A-Z a-z 0-9 - _"),
                    ));
                }
                if !su_id_ok(write_kid) {
                    errors.push(FieldError::new(
                        "write_kid",
                        format!("1 to {MAX_SU_ID} characters of A-Z a-z 0-9 - _"),
                    ));
                }
            }
            Self::CsAccount { account, plan, .. } => {
                if !su_id_ok(account) {
                    errors.push(FieldError::new(
                        "account",
                        format!("1 to {MAX_SU_ID} characters of A-Z a-z 0-9 - _"),
                    ));
                }
                if plan.as_deref().is_some_and(|p| !su_id_ok(p)) {
                    errors.push(FieldError::new(
                        "plan",
                        format!("1 to {MAX_SU_ID} characters of A-Z a-z 0-9 - _"),
                    ));
                }
            }
            Self::CsClipDelete { share, .. } if !su_id_ok(share) => {
                errors.push(FieldError::new(
                    "share",
                    format!("1 to {MAX_SU_ID} characters of A-Z a-z 0-9 - _"),
                ));
            }
            Self::CsUsage { account } if !su_id_ok(account) => {
                errors.push(FieldError::new(
                    "account",
                    format!("1 to {MAX_SU_ID} characters of A-Z a-z 0-9 - _"),
                ));
            }
            _ => {}
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A device's answer to a [`DeviceCommand`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceReply {
    /// Answer to [`DeviceCommand::Describe`].
    Description(DeviceDescription),
    /// Where the camera looks after a PTZ order.
    Ptz {
        /// The position and presets.
        state: PtzState,
    },
    /// The parameters (after a query, or as applied by a set).
    Params {
        /// Parameters, revision and what the camera does now.
        state: ParamsState,
    },
    /// The command's values were refused; nothing changed.
    Invalid {
        /// Every refused field.
        errors: Vec<FieldError>,
    },
    /// A set was based on an old revision; nothing changed.
    Conflict {
        /// The device's current revision.
        revision: u64,
    },
    /// A reset order was received; the device resets now (8.10).
    ResetAccepted,
    /// Where an upgrade stands.
    Upgrade {
        /// The status.
        status: UpgradeStatus,
    },
    /// The WLAN state (after a scan, or a switch that is under way).
    Wlan {
        /// The state.
        state: WlanState,
    },
    /// Done; nothing to report.
    Done,
    /// Answer to [`DeviceCommand::CsUsage`]: an account's pool on this CS.
    CsUsage {
        /// The account id.
        account: String,
        /// Bytes allowed.
        quota_bytes: u64,
        /// Bytes its objects take (ciphertext).
        used_bytes: u64,
        /// Objects stored.
        objects: u64,
        /// The plan epoch the CS holds.
        plan_epoch: u64,
    },
    /// The camera's side of a hole-punched path.
    Punch {
        /// Its description.
        answer: crate::relay::PunchDescription,
    },
    /// A snapshot.
    Snapshot {
        /// The JPEG, base64 (standard alphabet).
        jpeg: String,
        /// Its width, pixels.
        width: u16,
        /// Its height, pixels.
        height: u16,
        /// When it was taken, Unix ms.
        taken_ms: u64,
    },
    /// The camera's WebRTC answer.
    WebRtc {
        /// SDP answer.
        answer: String,
    },
    /// A camera attached to an NVR; `lan` is where the NVR found it on its LAN, if it did.
    Attached {
        /// The camera.
        camera: DeviceId,
        /// Its RTSP address on the NVR's LAN.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lan: Option<String>,
    },
    /// A camera's recording state.
    Recording {
        /// The state.
        state: RecordingState,
    },
    /// A camera's cloud recording state (8.7.1).
    CloudRecording {
        /// The state.
        state: Box<crate::record::CloudRecordingState>,
    },
    /// A record list.
    Recordings {
        /// The list.
        list: RecordingList,
    },
    /// The camera's alarm state (H.626.4 8.8).
    Alarms {
        /// The state.
        state: peercam_alarm::AlarmState,
    },
    /// The command failed on the device.
    Failed {
        /// Machine-readable reason.
        code: String,
        /// Human-readable explanation.
        message: String,
    },
}

/// What a device says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceDescription {
    /// Software version of the device agent.
    pub sw_version: String,
    /// Manufacturer.
    pub vendor: String,
    /// Hardware model.
    pub model: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Seconds this registration with the SCU has lasted.
    pub connected_s: u64,
    /// Correction applied to the device's clock to agree with its SCU, µs (H.626.4 7.2);
    /// absent until the first synchronisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_us: Option<i64>,
    /// Jitter of the clock synchronisation, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_jitter_us: Option<i64>,
}

/// A request a device makes of the platform (device -> SCU -> CMU), answered with a
/// [`PlatformAnswer`]. Each device-initiated flow adds its request here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "req", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceRequest {
    /// H.626.4 8.7.2.1 steps 16-18: an NVR asks for the stream of a camera attached to it.
    RecorderStream {
        /// The camera.
        camera: DeviceId,
    },
    /// An MTU asks for a camera's stream to relay (Mp / Pd): the CMU orders the camera to
    /// open its outbound media channel to the MTU, presenting `ticket`
    /// ([`DeviceCommand::RelayConnect`]), and answers [`PlatformAnswer::Stream`] with the
    /// token the MTU presents to the camera over that channel.
    RelayUpstream {
        /// The camera.
        camera: DeviceId,
        /// A random one-time ticket the camera presents when it connects, base64url.
        ticket: String,
        /// The MTU's tunnel address the camera connects to, `host:port`.
        tunnel: String,
        /// The TLS server name on the MTU's certificate.
        server_name: String,
        /// The profile the MTU's viewers of this feed asked for (clause 7: the camera
        /// encodes for it, so the MTU need not transcode); the camera's best when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caps: Option<crate::play::Caps>,
        /// Mn / Nd (H.626.4 8.3; optional, within version 1): `camera` is a recorder (NVR, CS) to be joined
        /// 1:1 to one viewer's pipe. The recorder is ordered to connect out as a camera is;
        /// the answer is [`PlatformAnswer::Ordered`] (the MTU already holds the viewer's
        /// fresh token from [`PlatformAnswer::Granted::pipe_token`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pipe: bool,
    },
    /// H.626.4 8.8 alarm up (PU -> SCU -> CMU): answered [`PlatformAnswer::Stored`] once the
    /// CMU has stored it (a second delivery of the same id is stored once and answered the
    /// same). The camera keeps the alarm queued, in order, until it has that answer.
    Alarm {
        /// The alarm.
        alarm: peercam_alarm::Alarm,
    },
    /// Dm (CMU -> MTU authentication results): a viewer presented `token` to an MTU for
    /// `camera`; answered [`PlatformAnswer::Granted`] or [`PlatformAnswer::Refused`].
    RelayAuthorize {
        /// The camera the viewer asked for.
        camera: DeviceId,
        /// The play token (H.626.4 8.4 hash token).
        token: String,
        /// The viewer's address, for the audit log.
        client: String,
        /// The viewer asked the MTU for the ONVIF audio back channel (talk, 6.1.8): when the
        /// token is good, the answer carries [`PlatformAnswer::Granted::talk_token`], a
        /// second one-time token for the same user that the MTU presents to the camera on a
        /// talk upstream of that viewer's own, so that the camera judges the viewer's grant.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        backchannel: bool,
        /// Mn / Nd (H.626.4 8.3; optional, within version 1): the viewer asked for `rtsp://MTU/pipe/…`;
        /// `camera` is the recorder and `token` a playback token for it. When good, the
        /// answer carries [`PlatformAnswer::Granted::pipe_token`].
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pipe: bool,
    },
    /// Clause 7 accounting (MTU -> CMU, within version 1; an older CMU refuses it
    /// `unsupported` and the MTU only logs that): a relayed viewer session of `user` on
    /// `camera` ended (or an interim report of a long one, `interim`), having sent `bytes`
    /// to the viewer (RTP and RTCP with their interleaved headers) over `seconds`. Answered
    /// [`PlatformAnswer::Stored`]; refused `forbidden` unless the sender is an MTU.
    RelayUsage {
        /// The camera relayed.
        camera: DeviceId,
        /// The viewer's account, as granted (Dm).
        user: i64,
        /// Bytes sent to the viewer since the previous report of this session.
        bytes: u64,
        /// Seconds since the previous report of this session.
        seconds: u32,
        /// More reports of this session follow.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        interim: bool,
    },
    /// H.626.4 6.1.9 "storage full": a recorder found its store full while recording
    /// `camera` (the oldest recordings deleted to make room, or the camera's quota reached).
    /// Sent by the NVR recording the camera, or by the camera for its own SD card (8.7.3),
    /// at once rather than when someone next reads the recording state. Answered
    /// [`PlatformAnswer::Stored`] with the id of the platform's `storage_full` alarm (one per
    /// camera, recorder and UTC day: a repeat is answered the same); refused `forbidden`
    /// when the sender neither is the camera nor records it.
    StorageFull {
        /// The camera recorded.
        camera: DeviceId,
        /// A short reason, at most [`MAX_STORAGE_DETAIL`] bytes.
        detail: String,
    },
    /// H.626.4 8.7.1 (Ps): a camera asks for a fresh device grant for its cloud uploads;
    /// answered [`PlatformAnswer::CloudGrant`], refused when the sender is not `camera` or
    /// has no cloud strategy.
    CloudGrant {
        /// The camera (the sender itself).
        camera: DeviceId,
    },
    /// Su (CS -> CMU): the data key `kid` of `prefix`; answered [`PlatformAnswer::CloudKey`],
    /// refused unless the prefix is assigned to the asking CS.
    CloudKey {
        /// The camera's prefix.
        prefix: String,
        /// The data key id.
        kid: String,
    },
    /// H.626.4 6.1.14 (network management): a recorder's (NVR, CS) storage health, sent at
    /// registration and then periodically. The CMU raises a `storage_full` fault while
    /// `full`, a `storage_write_errors` fault while `write_errors` is above zero, and clears
    /// each when a later report no longer shows it. Answered [`PlatformAnswer::Noted`].
    Health {
        /// Bytes the recordings use.
        disk_used_bytes: u64,
        /// Bytes free on the store's file system (or left in its quota).
        disk_free_bytes: u64,
        /// The store is full: below its free-space floor, or a write refused for want of
        /// room since the previous report.
        full: bool,
        /// Writes that failed since the previous report.
        write_errors: u64,
    },
}

/// Longest [`DeviceRequest::StorageFull`] detail, bytes (an alarm's detail may be no longer).
pub const MAX_STORAGE_DETAIL: usize = peercam_alarm::MAX_DETAIL;

impl DeviceRequest {
    /// A [`DeviceRequest::StorageFull`], its detail cut (at a character) to
    /// [`MAX_STORAGE_DETAIL`] bytes.
    pub fn storage_full(camera: DeviceId, detail: &str) -> Self {
        let mut end = detail.len().min(MAX_STORAGE_DETAIL);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        Self::StorageFull {
            camera,
            detail: detail[..end].to_owned(),
        }
    }
}

/// The platform's answer to a [`DeviceRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PlatformAnswer {
    /// Where to play the camera from, with a one-time token (8.4 applies at the camera).
    Stream {
        /// `rtsp://HOST:PORT/live/DEVICE?token=...` as reported by the camera.
        url: String,
        /// The token alone (to use with an address found on the LAN).
        token: String,
        /// Unix seconds after which the token no longer starts a stream.
        expires_at: u64,
    },
    /// A viewer's token is good (answer to [`DeviceRequest::RelayAuthorize`]).
    Granted {
        /// What the viewer may do.
        grant: crate::play::PlayGrant,
        /// For a viewer that asked for the back channel
        /// ([`DeviceRequest::RelayAuthorize::backchannel`]): a one-time live token for the
        /// same user and capabilities, for the MTU's talk upstream (the camera judges it,
        /// 8.4).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        talk_token: Option<String>,
        /// For a pipe ([`DeviceRequest::RelayAuthorize::pipe`]): a fresh one-time playback
        /// token for the same user, recorder and camera, which the MTU puts in place of the
        /// viewer's (spent) token in the request it forwards to the recorder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipe_token: Option<String>,
    },
    /// The device was ordered to open its channel (answer to a pipe's
    /// [`DeviceRequest::RelayUpstream`]).
    Ordered,
    /// An alarm is stored (answer to [`DeviceRequest::Alarm`], and to
    /// [`DeviceRequest::StorageFull`] with the id of the platform's alarm).
    Stored {
        /// The alarm's id, as the camera sent it (the platform's, for a storage-full).
        id: String,
    },
    /// A fresh device grant for cloud uploads (answer to [`DeviceRequest::CloudGrant`]).
    CloudGrant {
        /// The `pcg1` grant.
        grant: String,
        /// Unix seconds at which it expires.
        expires_at: u64,
        /// The CS's Cp base URL.
        cs_url: String,
    },
    /// The report was taken (answer to [`DeviceRequest::Health`]).
    Noted,
    /// A data key (answer to [`DeviceRequest::CloudKey`]): 32 bytes in base64url.
    CloudKey {
        /// The key.
        dek: String,
    },
    /// Refused or impossible now.
    Refused {
        /// Machine-readable reason.
        code: crate::refusal::Refusal,
        /// Explanation.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera() -> DeviceId {
        "pc-0123456789abcdef".parse().unwrap()
    }

    #[test]
    fn h626_6_1_8_relay_talk_fields_are_optional_on_the_wire() {
        // An MTU that does not ask for the back channel sends what it always sent.
        let r = DeviceRequest::RelayAuthorize {
            camera: camera(),
            token: "t".into(),
            client: "c".into(),
            backchannel: false,
            pipe: false,
        };
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("backchannel").is_none(), "{json}");
        let back: DeviceRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        let r = DeviceRequest::RelayAuthorize {
            camera: camera(),
            token: "t".into(),
            client: "c".into(),
            backchannel: true,
            pipe: false,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"backchannel\":true"), "{json}");
        assert_eq!(serde_json::from_str::<DeviceRequest>(&json).unwrap(), r);
        // An answer without a talk token is what an older CMU sent.
        let a = PlatformAnswer::Granted {
            grant: crate::play::PlayGrant {
                user: 3,
                scopes: peercam_base::ScopeSet::EMPTY,
                caps: crate::play::Caps::default(),
                expires_at: 9,
                cam: None,
            },
            talk_token: None,
            pipe_token: None,
        };
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("talk_token"), "{json}");
        assert!(!json.contains("pipe"), "{json}");
        assert_eq!(serde_json::from_str::<PlatformAnswer>(&json).unwrap(), a);
    }

    #[test]
    fn h626_8_3_pipe_fields_on_the_wire() {
        // Mn / Nd: a pipe's requests say so; the camera relay's stay as they were.
        let r = DeviceRequest::RelayAuthorize {
            camera: camera(),
            token: "t".into(),
            client: "c".into(),
            backchannel: false,
            pipe: true,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"pipe\":true"), "{json}");
        assert_eq!(serde_json::from_str::<DeviceRequest>(&json).unwrap(), r);
        let u = DeviceRequest::RelayUpstream {
            camera: camera(),
            ticket: "x".repeat(32),
            tunnel: "127.0.0.1:1".into(),
            server_name: "mtu".into(),
            caps: None,
            pipe: true,
        };
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(serde_json::from_str::<DeviceRequest>(&json).unwrap(), u);
        let json = serde_json::to_string(&PlatformAnswer::Ordered).unwrap();
        assert_eq!(json, r#"{"answer":"ordered"}"#);
    }

    #[test]
    fn h626_6_1_9_storage_full_request_on_the_wire() {
        let r = DeviceRequest::storage_full(camera(), "disk full, oldest deleted");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "req": "storage_full",
                "camera": "pc-0123456789abcdef",
                "detail": "disk full, oldest deleted",
            })
        );
        let back: DeviceRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    proptest::proptest! {
        /// 6.1.14: a recorder's health report survives the wire, whatever its figures.
        #[test]
        fn h626_6_1_14_health_report_round_trips(
            used in proptest::prelude::any::<u64>(),
            free in proptest::prelude::any::<u64>(),
            full in proptest::prelude::any::<bool>(),
            errors in proptest::prelude::any::<u64>(),
        ) {
            let r = DeviceRequest::Health {
                disk_used_bytes: used,
                disk_free_bytes: free,
                full,
                write_errors: errors,
            };
            let json = serde_json::to_string(&r).unwrap();
            let tagged = json.starts_with(r#"{"req":"health""#);
            proptest::prop_assert!(tagged);
            proptest::prop_assert_eq!(serde_json::from_str::<DeviceRequest>(&json).unwrap(), r);
        }
    }

    #[test]
    fn h626_6_1_14_noted_on_the_wire() {
        let json = serde_json::to_string(&PlatformAnswer::Noted).unwrap();
        assert_eq!(json, r#"{"answer":"noted"}"#);
    }

    #[test]
    fn h626_6_1_9_storage_full_detail_is_bounded_at_a_character() {
        let long = "é".repeat(MAX_STORAGE_DETAIL);
        let DeviceRequest::StorageFull { detail, .. } =
            DeviceRequest::storage_full(camera(), &long)
        else {
            unreachable!()
        };
        assert!(detail.len() <= MAX_STORAGE_DETAIL && detail.len() >= MAX_STORAGE_DETAIL - 1);
        assert!(detail.chars().all(|c| c == 'é'));
    }

    const KEY: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn su_samples() -> Vec<DeviceCommand> {
        vec![
            DeviceCommand::CsConfig {
                grant_keys: vec![CsGrantKey {
                    kid: "g1".into(),
                    public_key: KEY.into(),
                }],
            },
            DeviceCommand::CsCamera {
                camera: camera(),
                prefix: "sAAAAAAAAAAAAAAAAAAAAAA".into(),
                account: "a-17".into(),
                epoch: 3,
                write_kid: "k1".into(),
            },
            DeviceCommand::CsAccount {
                account: "a-17".into(),
                quota_bytes: 1 << 30,
                max_age_days: Some(7),
                plan: Some("free".into()),
                plan_epoch: 2,
                prune_excess_after_s: Some(1_800_000_000),
            },
            DeviceCommand::CsUsage {
                account: "a-17".into(),
            },
            DeviceCommand::CsClipDelete {
                prefix: "sAAAAAAAAAAAAAAAAAAAAAA".into(),
                share: "BwcHBwcHBwcHBwcHBwcHBw".into(),
            },
        ]
    }

    #[test]
    fn h626_8_7_1_su_commands_round_trip() {
        let names = [
            "cs_config",
            "cs_camera",
            "cs_account",
            "cs_usage",
            "cs_clip_delete",
        ];
        for (c, name) in su_samples().into_iter().zip(names) {
            c.check_su().unwrap();
            let json = serde_json::to_value(&c).unwrap();
            assert_eq!(json["cmd"], name, "{json}");
            let back: DeviceCommand = serde_json::from_value(json).unwrap();
            assert_eq!(back, c);
        }
        let c: DeviceCommand = serde_json::from_value(serde_json::json!({
            "cmd": "cs_account", "account": "a", "quota_bytes": 5
        }))
        .unwrap();
        c.check_su().unwrap();
    }

    fn fields(c: &DeviceCommand) -> Vec<String> {
        c.check_su()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn h626_8_7_1_cs_config_is_checked() {
        let key = |kid: &str, pk: &str| CsGrantKey {
            kid: kid.into(),
            public_key: pk.into(),
        };
        let c = |grant_keys| DeviceCommand::CsConfig { grant_keys };
        assert_eq!(fields(&c(vec![])), ["grant_keys"]);
        let many = (0..=MAX_CS_GRANT_KEYS)
            .map(|i| key(&format!("k{i}"), KEY))
            .collect();
        assert_eq!(fields(&c(many)), ["grant_keys"]);
        assert_eq!(
            fields(&c(vec![key("g1", KEY), key("g1", KEY)])),
            ["grant_keys.1.kid"]
        );
        assert_eq!(
            fields(&c(vec![
                key("", KEY),
                key(&"x".repeat(65), KEY),
                key("a b", KEY)
            ])),
            ["grant_keys.0.kid", "grant_keys.1.kid", "grant_keys.2.kid"]
        );
        assert_eq!(
            fields(&c(vec![
                key("a", "short"),
                key("b", &format!("{KEY}AA")),
                key("c", "+/==")
            ])),
            [
                "grant_keys.0.public_key",
                "grant_keys.1.public_key",
                "grant_keys.2.public_key"
            ]
        );
    }

    #[test]
    fn h626_8_7_1_cs_camera_and_account_are_checked() {
        let cam = |prefix: &str, account: &str, write_kid: &str| DeviceCommand::CsCamera {
            camera: camera(),
            prefix: prefix.into(),
            account: account.into(),
            epoch: 0,
            write_kid: write_kid.into(),
        };
        let good = "sAAAAAAAAAAAAAAAAAAAAAA";
        for bad in [
            "",
            "s",
            "tAAAAAAAAAAAAAAAAAAAAAA",
            "sAAAAAAAAAAAAAAAAAAAAA/",
            "sAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(fields(&cam(bad, "a", "k")), ["prefix"], "{bad}");
        }
        assert_eq!(
            fields(&cam(good, "", &"k".repeat(65))),
            ["account", "write_kid"]
        );
        let acc = |account: &str| DeviceCommand::CsAccount {
            account: account.into(),
            quota_bytes: 0,
            max_age_days: None,
            plan: None,
            plan_epoch: 0,
            prune_excess_after_s: None,
        };
        assert_eq!(fields(&acc("a/b")), ["account"]);
        let bad_plan = DeviceCommand::CsAccount {
            account: "a".into(),
            quota_bytes: 0,
            max_age_days: None,
            plan: Some("no such/plan".into()),
            plan_epoch: 0,
            prune_excess_after_s: None,
        };
        assert_eq!(fields(&bad_plan), ["plan"]);
        let usage = DeviceCommand::CsUsage {
            account: "a b".into(),
        };
        assert_eq!(fields(&usage), ["account"]);
        assert_eq!(fields(&acc("")), ["account"]);
        acc("a_1-B").check_su().unwrap();
        // Other commands have nothing to check here.
        DeviceCommand::Describe.check_su().unwrap();
    }
}
