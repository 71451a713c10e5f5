//! Sc / Sm: the messages between an SCU node and the CMU.
//!
//! The SCU connects to the CMU (`/platform/v1/scu`) and speaks first:
//!
//! ```text
//! SCU -> CMU  node_hello     { node, secret, versions }
//! CMU -> SCU  node_welcome   { }
//! SCU -> CMU  verify_device  { device_id, kind, node, nonce, issued_at_ms, signature, session }
//! CMU -> SCU  device_verdict { accepted | refused }             (re = verify_device id)
//! SCU -> CMU  presence       { device_id, session, online }     (Sc: PU status)
//! CMU -> SCU  command        { device_id, command }             (Sm, routed to the PU)
//! SCU -> CMU  command_result { result }                         (re = command id)
//! CMU -> SCU  kick           { device_id, session, reason }     (duplicate session, revocation)
//! ```

use peercam_base::DeviceId;
use serde::{Deserialize, Serialize};

use crate::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use crate::play::{PlayCheck, PlayVerdict};
use crate::ps::{DeviceKind, RefusalCode};

/// Messages from an SCU node to the CMU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScuToCmu {
    /// Opens the conversation; `secret` authenticates the node.
    NodeHello {
        /// This node's id.
        node: String,
        /// Shared node secret configured on the CMU.
        secret: String,
        /// Protocol major versions spoken.
        versions: Vec<u16>,
    },
    /// H.626.4 8.1 step 2: a device asks to register; the CMU checks its signature.
    VerifyDevice(VerifyDevice),
    /// Sc: a device's presence changed on this node.
    Presence(Presence),
    /// Result of a routed command (`re` = the command's id).
    CommandResult {
        /// What happened.
        result: CommandOutcome,
    },
    /// A device's media endpoints (H.626.4 8.3 steps 3-4).
    Endpoints(Endpoints),
    /// H.626.4 8.4 step 6: a device asks whether a viewer's token is legitimate (its
    /// [`crate::ps::DeviceToScu::AuthorizePlay`], forwarded with the device's id).
    AuthorizePlay {
        /// The device asking (authenticated by its session on this node).
        device_id: DeviceId,
        /// The token and the viewer's address, as the device sent them.
        #[serde(flatten)]
        check: PlayCheck,
    },
    /// H.626.4 7.2: the MTU this node chose for a session (`re` = the
    /// [`CmuToScu::SelectMtu`]); `None` when no MTU registered here has room.
    MtuChoice {
        /// The MTU and where it serves.
        choice: MtuChoice,
    },
    /// A device's request for the platform ([`crate::ps::DeviceToScu::Request`]); the CMU
    /// answers with [`CmuToScu::Answer`] (`re`).
    DeviceRequest {
        /// The device asking (held by this node).
        device_id: DeviceId,
        /// The request.
        request: DeviceRequest,
    },
}

/// Sc: a device's presence changed on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The device.
    pub device_id: DeviceId,
    /// Its session on this node.
    pub session: String,
    /// Online (registered) or offline (connection lost, timed out, replaced).
    pub online: bool,
}

/// A device's media endpoints (H.626.4 8.3 steps 3-4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The device.
    pub device_id: DeviceId,
    /// Its session on this node.
    pub session: String,
    /// RTSP authorities on the device's interfaces, `host:port`.
    pub rtsp: Vec<String>,
    /// Port mappings from the device's gateway, `host:port` (8.3 step 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mapped: Vec<String>,
    /// The address the device's connection came from, as the SCU saw it: its NAT's
    /// public address (8.3 step 3; the CMU checks mappings against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

/// End live sessions on a device (docs/security.md D5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoke {
    /// The device.
    pub device_id: DeviceId,
    /// The account whose sessions end; all viewers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<i64>,
}

/// Drop a device session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kick {
    /// The device.
    pub device_id: DeviceId,
    /// Only this session (a newer one may already exist).
    pub session: String,
    /// Why.
    pub reason: String,
}

/// H.626.4 8.1 step 2: everything the CMU needs to judge a registration, as the SCU node
/// forwards it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyDevice {
    /// The device.
    pub device_id: DeviceId,
    /// PU or NVR.
    pub kind: DeviceKind,
    /// The node that issued the challenge.
    pub node: String,
    /// The challenge nonce.
    pub nonce: String,
    /// When the challenge was issued (Unix ms, SCU clock).
    pub issued_at_ms: u64,
    /// The device's signature.
    pub signature: String,
    /// The session id the SCU will give the device if accepted.
    pub session: String,
    /// Software version the device reported.
    pub sw_version: String,
}

impl ScuToCmu {
    /// The wire `type`, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NodeHello { .. } => "node_hello",
            Self::VerifyDevice(_) => "verify_device",
            Self::Presence(_) => "presence",
            Self::CommandResult { .. } => "command_result",
            Self::Endpoints(_) => "endpoints",
            Self::AuthorizePlay { .. } => "authorize_play",
            Self::MtuChoice { .. } => "mtu_choice",
            Self::DeviceRequest { .. } => "device_request",
        }
    }
}

impl CmuToScu {
    /// The wire `type`, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NodeWelcome => "node_welcome",
            Self::NodeRefused { .. } => "node_refused",
            Self::DeviceVerdict { .. } => "device_verdict",
            Self::Command { .. } => "command",
            Self::PlayVerdict { .. } => "play_verdict",
            Self::Answer { .. } => "answer",
            Self::SelectMtu { .. } => "select_mtu",
            Self::Revoke(_) => "revoke",
            Self::Kick(_) => "kick",
        }
    }
}

/// Answer to [`CmuToScu::SelectMtu`] (`re`), sent as [`ScuToCmu::MtuChoice`].
pub type MtuChoice = Option<crate::relay::MtuOffer>;

/// Messages from the CMU to an SCU node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CmuToScu {
    /// The node is accepted.
    NodeWelcome,
    /// The node is refused; the CMU closes the connection.
    NodeRefused {
        /// Why.
        message: String,
    },
    /// Verdict on a [`ScuToCmu::VerifyDevice`] (H.626.4 8.1 step 3).
    DeviceVerdict {
        /// Accepted, or why not.
        verdict: Verdict,
    },
    /// Route a command to a device held by this node (Sm / Ps).
    Command {
        /// The device.
        device_id: DeviceId,
        /// The command.
        command: DeviceCommand,
    },
    /// H.626.4 8.4 step 7: the verdict on an [`ScuToCmu::AuthorizePlay`] (`re`).
    PlayVerdict {
        /// Granted or refused.
        verdict: PlayVerdict,
    },
    /// Answer to [`ScuToCmu::DeviceRequest`] (`re`).
    Answer {
        /// The answer.
        answer: PlatformAnswer,
    },
    /// H.626.4 7.2 / Sd: choose an MTU for a relayed session of `device_id`; answered by
    /// [`ScuToCmu::MtuChoice`].
    SelectMtu {
        /// The camera to relay.
        device_id: DeviceId,
    },
    /// End live sessions on a device (docs/security.md D5).
    Revoke(Revoke),
    /// Drop a device session.
    Kick(Kick),
}

/// The CMU's decision on a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Verdict {
    /// Registered.
    Accepted,
    /// Refused.
    Refused {
        /// Machine-readable reason.
        code: RefusalCode,
        /// Human-readable explanation.
        message: String,
    },
}

/// What became of a routed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommandOutcome {
    /// The device answered.
    Replied {
        /// Its answer.
        reply: DeviceReply,
    },
    /// The device is not connected to this node.
    NotConnected,
    /// The device did not answer in time.
    Timeout,
}
