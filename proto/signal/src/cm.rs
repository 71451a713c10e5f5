//! Cm: the HTTP/JSON interface between a customer unit (CU, M_CU, the CLI) and the CMU.
//!
//! Paths are under `/api/v1`. Every request but sign-up and login carries
//! `Authorization: Bearer <session token>`. Errors are [`ApiError`] bodies with a stable `code`.
//! The CMU serves the full OpenAPI document at `/api/v1/openapi.json`.

use peercam_base::{DeviceId, ScopeSet};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::cmd::DeviceDescription;
use crate::ps::DeviceKind;

/// An error answer. `code` is stable and machine-readable; `message` says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiError {
    /// Stable error code, e.g. `unauthenticated`, `not_found`, `device_offline`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// The refused fields, when the request carried values out of range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<crate::control::FieldError>,
}

/// Permission to configure a device (H.626.4 8.9.1 steps 7-8): the CMU authorised this user
/// for this device; the configuration must carry it, within its lifetime, once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConfigPermit {
    /// Opaque, single-use.
    pub permit: String,
    /// The device's parameter revision the configuration should be based on.
    pub revision: u64,
    /// Unix seconds after which the permit is void.
    pub expires_at: u64,
}

/// A configuration (H.626.4 8.9.1 step 9): the whole parameter document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetParamsRequest {
    /// From `POST /devices/{id}/params/permit`.
    pub permit: String,
    /// The revision the document was based on.
    pub base_revision: u64,
    /// The new parameters.
    pub params: crate::control::DeviceParams,
}

/// A factory reset order (H.626.4 8.10).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Also delete the device's local recordings.
    #[serde(default)]
    pub wipe_recordings: bool,
}

/// A release package the CMU holds (H.626.4 8.11.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PackageView {
    /// SHA-256 of the payload, its name.
    pub sha256: String,
    /// Version.
    pub version: String,
    /// Hardware model.
    pub model: String,
    /// Payload size, bytes.
    pub size: u64,
    /// Unix seconds after which devices refuse it.
    pub expires_at: u64,
    /// Whether the payload has been uploaded (and matched its hash).
    pub stored: bool,
}

/// An upgrade order (H.626.4 8.11.1 step 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpgradeOrder {
    /// The version to install; it must be newer than the device's.
    pub version: String,
}

/// The newest client release for a platform (H.626.4 8.11.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClientUpdate {
    /// Whether it is newer than the version the client said it runs.
    pub update_available: bool,
    /// The signed release (check it before installing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<crate::upgrade::SignedManifest>,
    /// Where to download the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A client's report that it updated (H.626.4 8.11.2, last step).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientUpdateReport {
    /// The client platform, e.g. `cli-linux-x86_64`.
    pub platform: String,
    /// The version it runs now.
    pub version: String,
    /// `updated` or `failed`.
    pub outcome: String,
    /// Details.
    #[serde(default)]
    pub detail: String,
}

/// Sign-up, step 1 (H.626.4 6.1.1): a phone number and a password; a code is sent by SMS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// Mobile number, E.164 (`+` and digits).
    pub phone: String,
    /// At least 10 characters.
    pub password: String,
    /// The subscriber's name, for the operator's CRM (6.2); at most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The subscriber's contract id, for the operator's CRM (6.2); at most 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<String>,
}

/// Sign-up, step 2: the code received by SMS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignupConfirm {
    /// The same phone number.
    pub phone: String,
    /// The 6-digit code.
    pub code: String,
}

/// Where an account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum AccountStatus {
    /// Waiting for the SMS code.
    PendingCode,
    /// Phone confirmed; waiting for the operator's approval (6.1.1).
    PendingApproval,
    /// Phone confirmed; waiting for the operator's customer system (CRM, 6.2), which does
    /// not answer now. Retried in the background; it proceeds by itself.
    PendingCrm,
    /// May log in.
    Active,
    /// Disabled by the operator.
    Disabled,
}

/// The state of a sign-up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SignupState {
    /// Current status.
    pub status: AccountStatus,
    /// What happens next, in words.
    pub next: String,
}

/// Login with a phone number (owners) or a username (sub-accounts, operators).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Phone number or username.
    pub login: String,
    /// Password.
    pub password: String,
    /// The TOTP code (or a recovery code) of an account with two-factor sign-in; asked for
    /// by a `totp_required` refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
}

/// A successful login.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginResponse {
    /// Bearer token for the `Authorization` header.
    pub token: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Who logged in.
    pub user: UserInfo,
}

/// The kind of account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Role {
    /// A customer who owns devices.
    Owner,
    /// A sub-account of an owner (6.1.10); sees what was shared with it.
    Sub,
    /// The operator (admin portal, 6.2).
    Operator,
}

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserInfo {
    /// Account id.
    pub id: i64,
    /// Owner, sub-account or operator.
    pub role: Role,
    /// Phone (owners) or username (others).
    pub login: String,
    /// Account status.
    pub status: AccountStatus,
    /// For a sub-account: its owner's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
}

/// Change the password of the logged-in account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    pub old_password: String,
    /// The new one (at least 10 characters).
    pub new_password: String,
}

/// How the caller relates to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Relation {
    /// The caller bound it.
    Owner,
    /// It was shared with the caller.
    Shared,
}

/// A device as the caller sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeviceView {
    /// Device id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: DeviceId,
    /// The owner's name for it.
    pub name: String,
    /// PU or NVR.
    pub kind: DeviceKind,
    /// Manufacturer.
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Registered with an SCU right now.
    pub online: bool,
    /// Last time it was seen online, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// Owner or shared.
    pub relation: Relation,
    /// What the caller may do with it.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub scopes: ScopeSet,
}

/// Bind a device to the caller's account (H.626.4 8.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    /// The id on the sticker.
    pub device_id: String,
    /// The bind code on the sticker.
    pub bind_code: String,
    /// A name for it (defaults to the model).
    #[serde(default)]
    pub name: Option<String>,
}

/// Rename a device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceRename {
    /// New name, 1-64 characters.
    pub name: String,
}

/// A live answer from the device, routed CMU -> SCU -> PU and back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeviceStatus {
    /// Device id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: DeviceId,
    /// The SCU node holding it.
    pub node: String,
    /// What the device said.
    pub description: DeviceDescription,
}

/// Create a sub-account (6.1.10).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubaccountCreate {
    /// 3-32 characters of a-z, 0-9, `.`, `_`, `-`.
    pub username: String,
    /// At least 10 characters.
    pub password: String,
}

/// A sub-account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SubaccountView {
    /// Account id.
    pub id: i64,
    /// Its login name.
    pub username: String,
    /// Created, Unix seconds.
    pub created_at: u64,
}

/// Share a device with a sub-account (H.626.4 8.6).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The sub-account's username.
    pub username: String,
    /// What it may do: any of live, playback, ptz, talk, config (`talk` is accepted and
    /// stored; intercom is not implemented yet).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub scopes: ScopeSet,
}

/// A share.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ShareView {
    /// The device.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub device_id: DeviceId,
    /// The sub-account.
    pub username: String,
    /// Granted scopes.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub scopes: ScopeSet,
}

/// One device to provision (operator).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProvisionDevice {
    /// Device id.
    pub id: String,
    /// PU or NVR.
    pub kind: DeviceKind,
    /// Ed25519 public key, base64url.
    pub public_key: String,
    /// SHA-256 of `id:code` of the bind code, hex (the code itself never reaches the CMU at provisioning).
    pub bind_code_sha256: String,
    /// Manufacturer.
    pub vendor: String,
    /// Model.
    pub model: String,
}

/// Provision devices (operator).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    /// Up to 10,000 devices.
    pub devices: Vec<ProvisionDevice>,
}

/// Result of provisioning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProvisionResult {
    /// Newly recorded.
    pub created: usize,
    /// Already present with the same key (idempotent retry).
    pub unchanged: usize,
}

/// A device as the operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AdminDeviceView {
    /// Device id.
    pub id: String,
    /// PU or NVR.
    pub kind: DeviceKind,
    /// Manufacturer.
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Completed registration (8.1) at least once.
    pub registered: bool,
    /// Online now.
    pub online: bool,
    /// SCU node holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Owner account id, if bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<i64>,
    /// The owner's name for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `unassigned`, `assigned` (to an owner) or `decommissioned` (its key no longer
    /// admits it, docs/security.md).
    #[serde(default)]
    pub state: String,
    /// Software version it last registered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw_version: Option<String>,
}

/// One ICE server as WebRTC's `RTCIceServer` has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URIs (RFC 7064, RFC 7065).
    pub urls: Vec<String>,
    /// TURN user name (`EXPIRY:USER~s<session>~p<peer IPs>`, see docs/turn.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password (HMAC of the user name under the secret the CMU shares with MTUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// STUN/TURN servers for one session with a camera (ICE, WebRTC), with credentials minted by
/// the CMU and scoped to that camera's addresses (docs/security.md D8).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IceConfig {
    /// The servers, the chosen MTU's first.
    pub ice_servers: Vec<IceServer>,
    /// Unix seconds after which the credentials stop working.
    pub expires_at: u64,
    /// The peer addresses the relay will forward to (the camera's).
    pub peers: Vec<String>,
}

/// What a client reports about a live view when it ends: the path it took, how long reaching
/// the camera took and what it got (issue: "the chosen path, round-trip time and bytes are
/// recorded per session and visible to the operator").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionReport {
    /// The path that carried the media.
    pub path: crate::relay::PathKind,
    /// Time to reach the camera (or the relay), ms.
    pub connect_ms: u32,
    /// Media bytes received.
    pub bytes: u64,
    /// Seconds watched.
    pub seconds: u32,
}

/// A reported live-view session, as the operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionView {
    /// When it was reported, Unix seconds.
    pub at: u64,
    /// The viewer's account.
    pub user_id: i64,
    /// The camera.
    pub device_id: String,
    /// What the client reported.
    #[serde(flatten)]
    pub report: SessionReport,
}

/// The operator's view of recent live-view sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionsView {
    /// Sessions per path kind (`lan`, `public`, `mapped`, `punched`, `relay`), all time.
    pub by_path: std::collections::BTreeMap<String, u64>,
    /// The most recent sessions, newest first.
    pub recent: Vec<SessionView>,
}

/// An entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditEntry {
    /// Entry id.
    pub id: i64,
    /// When, Unix seconds.
    pub at: u64,
    /// Acting account, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<i64>,
    /// What was attempted, e.g. `device.bind`.
    pub action: String,
    /// The device concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// `ok` or the refusal code.
    pub outcome: String,
    /// Details.
    pub detail: String,
}

/// A fault of network management (H.626.4 6.1.14), as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FaultView {
    /// Fault id.
    pub id: i64,
    /// `camera_offline`, `nvr_offline`, `cs_offline`, `storage_full`,
    /// `storage_write_errors`, `scu_node_lost`, `mtu_lost` or `mtu_overloaded`.
    pub kind: String,
    /// The device id, or the SCU node's id.
    pub subject: String,
    /// What was seen.
    pub detail: String,
    /// `open`, `acknowledged`, `cleared` (the condition ended) or `resolved`.
    pub state: String,
    /// When it was raised, Unix seconds.
    pub raised_at: u64,
    /// When its condition ended, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<u64>,
    /// When an operator acknowledged it, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<u64>,
    /// Who acknowledged it (account id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<i64>,
    /// When an operator resolved it, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<u64>,
    /// Who resolved it (account id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<i64>,
}

/// A browser's live view over WebRTC (6.3.1, 8.4): its SDP offer (receive-only video and
/// audio, candidates gathered) and, flattened beside it, the same capabilities as
/// [`PlayRequest`].
///
/// Unknown fields are refused like in every other request body: serde's `flatten` cannot
/// refuse them, so the body is read through a private wire form that spells every field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(from = "WebRtcOfferWire")]
pub struct WebRtcOffer {
    /// The SDP offer.
    pub offer: String,
    /// The viewer's capabilities.
    #[serde(flatten)]
    pub play: PlayRequest,
}

/// The wire form of a [`WebRtcOffer`]: the offer and [`PlayRequest`]'s fields side by side.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebRtcOfferWire {
    offer: String,
    #[serde(default)]
    max_width: Option<u16>,
    #[serde(default)]
    max_height: Option<u16>,
    #[serde(default)]
    max_fps: Option<u8>,
    #[serde(default)]
    max_kbps: Option<u32>,
    #[serde(default, with = "crate::play::audio_or_none::field")]
    audio: Option<Option<crate::play::AudioCodec>>,
}

impl From<WebRtcOfferWire> for WebRtcOffer {
    fn from(w: WebRtcOfferWire) -> Self {
        // Spelled out so a field added to PlayRequest fails to compile here until the wire
        // form has it too.
        let WebRtcOfferWire {
            offer,
            max_width,
            max_height,
            max_fps,
            max_kbps,
            audio,
        } = w;
        Self {
            offer,
            play: PlayRequest {
                max_width,
                max_height,
                max_fps,
                max_kbps,
                audio,
            },
        }
    }
}

/// A browser's playback of recordings over WebRTC (8.7.2.2, 8.7.3): its SDP offer, with a
/// data channel for [`crate::record::PlaybackControl`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlaybackWebRtcRequest {
    /// The SDP offer (receive-only video and a data channel).
    pub offer: String,
    /// Where to start, RFC 3339.
    pub start: String,
    /// As in [`SetRecordingRequest::recorder`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<String>,
}

/// The camera's answer to a [`WebRtcOffer`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebRtcAnswer {
    /// The SDP answer.
    pub answer: String,
    /// An id for this view, for the session report.
    pub session: String,
}

/// Ask to watch a device (H.626.4 8.4 step 1), with the viewer's capabilities (clause 7).
/// Missing fields take the camera's best: 1280x720, 25 fps, 2000 kbit/s, G.711 mu-law.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlayRequest {
    /// Widest picture the viewer wants, pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u16>,
    /// Tallest picture, pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u16>,
    /// Highest frame rate, 1-25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fps: Option<u8>,
    /// Highest video bit rate, kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_kbps: Option<u32>,
    /// Audio codec: pcmu, pcma, g722 or none (`Some(None)`); absent: the default, pcmu.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::play::audio_or_none::field"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "pcma"))]
    pub audio: Option<Option<crate::play::AudioCodec>>,
}

/// Where to play from (H.626.4 8.4 step 3): an RTSP URL carrying a one-time token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlayResponse {
    /// `rtsp://HOST:PORT/live/DEVICE?token=...`; open it within `expires_at`.
    pub url: String,
    /// The token alone.
    pub token: String,
    /// Unix seconds after which the URL no longer starts a stream.
    pub expires_at: u64,
    /// The capabilities the camera will honour.
    pub caps: crate::play::Caps,
    /// The kind of path `url` takes.
    #[serde(default = "default_path_kind")]
    pub path: crate::relay::PathKind,
    /// Every way to the camera the CMU knows, best first (all carry the same one-time
    /// token; the first RTSP request that presents it wins). `url` is the one the CMU
    /// judged best for a client that cannot try several.
    #[serde(default)]
    pub paths: Vec<crate::relay::MediaPath>,
}

fn default_path_kind() -> crate::relay::PathKind {
    crate::relay::PathKind::Lan
}

// ---------------------------------------------------------------------------------------------
// Recording (H.626.4 8.7.2 NVR, 8.7.3 SD card)

/// Attach a camera to an NVR (8.7.2.1 steps 1-8).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttachCamera {
    /// The camera's device id (bound to the same owner as the NVR).
    pub camera: String,
}

/// A camera attached to an NVR.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AttachedCamera {
    /// The NVR.
    pub nvr: String,
    /// The camera.
    pub camera: String,
    /// Where the NVR found the camera on its LAN, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lan: Option<String>,
}

/// Set a camera's record strategy on one of its recorders (8.7.2.1 steps 9-15, 8.7.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRecordingRequest {
    /// `sd` for the camera's own card, or an NVR's device id; absent: the camera's NVR if
    /// it has one, else its SD card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<String>,
    /// The strategy.
    pub strategy: crate::record::Strategy,
}

/// Open a recording for playback (8.7.2.2, Nc/Nc').
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlaybackRequest {
    /// As in [`SetRecordingRequest::recorder`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<String>,
    /// Where to start, RFC 3339.
    pub start: String,
}

/// Where to play a recording from: an RTSP URL on the recorder with a one-time token.
/// Seek with `PLAY` + `Range: clock=...`; change speed with `Scale` (see docs/protocol.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlaybackResponse {
    /// `rtsp://HOST:PORT/rec/CAMERA?start=...&token=...`: the best of `paths` for a client
    /// that can try only one.
    pub url: String,
    /// The recorder serving it (`sd` means the camera).
    pub recorder: String,
    /// Unix seconds after which the URL no longer opens.
    pub expires_at: u64,
    /// H.626.4 8.3 for recorders: every way to the recorder, best first, all with the one
    /// token (the first request that presents it spends it): `lan`, `public`, `mapped` on
    /// the recorder's reported addresses, then `relay` through an MTU's pipe (Mn/Nd,
    /// `rtsp://MTU/pipe/RECORDER/rec/CAMERA?start=...&token=...`). Absent from older CMUs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<crate::relay::MediaPath>,
}

/// Export a time range as MP4 (8.7.2.2 steps 7-10).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// As in [`SetRecordingRequest::recorder`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<String>,
    /// Start, RFC 3339.
    pub from: String,
    /// End, RFC 3339 (at most 31 days after `from`).
    pub to: String,
}

/// Where to download an export: an HTTP URL on the recorder with a one-time token. The
/// file is cut at the last key frame at or before `from`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ExportResponse {
    /// `http://HOST:PORT/export/CAMERA.mp4?from=...&to=...&token=...`.
    pub url: String,
    /// Recorded bytes in the range (the file is about this size).
    pub bytes: u64,
    /// The spans the file will hold.
    pub spans: Vec<crate::record::RecordedSpan>,
    /// Unix seconds after which the URL no longer opens.
    pub expires_at: u64,
}

/// Mark an event on a camera's timeline; alarm strategies record around it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// `alarm` or `manual`.
    pub kind: String,
    /// Free text, up to 200 characters.
    #[serde(default)]
    pub detail: String,
}

/// How many recorders took an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EventAccepted {
    /// Recorders that recorded it.
    pub recorders: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_8_4_webrtc_offer_refuses_unknown_fields_and_round_trips() {
        let o: WebRtcOffer =
            serde_json::from_str(r#"{"offer":"v=0","max_width":320,"audio":"pcma"}"#).unwrap();
        assert_eq!(o.offer, "v=0");
        assert_eq!(o.play.max_width, Some(320));
        let back: WebRtcOffer = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back.play.max_width, Some(320));
        let err = serde_json::from_str::<WebRtcOffer>(r#"{"offer":"v=0","max_widht":320}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_widht"), "{err}");
    }
}
