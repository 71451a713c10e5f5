//! Ps / Pm: the messages between a device (PU or NVR) and the SCU that holds it.
//!
//! The device opens the connection (it sits behind NAT and only makes outbound
//! connections, docs/security.md D6) and speaks first:
//!
//! ```text
//! PU  -> SCU  hello        { device_id, kind, versions, sw_version }
//! SCU -> PU   challenge    { node, nonce, issued_at_ms }
//! PU  -> SCU  register     { nonce, signature }              H.626.4 8.1 step 1
//!             (SCU -> CMU verify_device, CMU -> SCU verdict: 8.1 steps 2-3)
//! SCU -> PU   registered   { session, heartbeat_ms }         H.626.4 8.1 step 4
//!          or refused      { code, message }
//! PU  -> SCU  heartbeat    every heartbeat_ms; SCU answers heartbeat_ack
//! SCU -> PU   command      { command }  -> PU replies command_reply (re = request id)
//! ```

use peercam_base::DeviceId;
use serde::{Deserialize, Serialize};

use crate::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use crate::play::PlayVerdict;

/// What kind of device is registering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeviceKind {
    /// A camera (premises unit).
    Pu,
    /// A network video recorder.
    Nvr,
    /// A media transmission unit (relay, STUN/TURN; H.626.4 7).
    Mtu,
    /// A cloud storage unit (H.626.4 7, 8.7.1): owned by the operator, never bound to a
    /// user; configured by the CMU over Su (docs/design/cloud-storage.md).
    Cs,
}

impl DeviceKind {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pu => "pu",
            Self::Nvr => "nvr",
            Self::Mtu => "mtu",
            Self::Cs => "cs",
        }
    }
}

/// Messages from a device to the SCU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceToScu {
    /// Opens the conversation.
    Hello {
        /// The device's public label.
        device_id: DeviceId,
        /// PU or NVR.
        kind: DeviceKind,
        /// Protocol major versions the device speaks.
        versions: Vec<u16>,
        /// Software version of the agent.
        sw_version: String,
    },
    /// Answer to the challenge: the registration request of H.626.4 8.1 step 1.
    Register {
        /// The nonce of the challenge, echoed.
        nonce: String,
        /// Ed25519 signature over [`crate::register::signing_payload`], base64url.
        signature: String,
    },
    /// Keep-alive.
    Heartbeat,
    /// Reply to a [`ScuToDevice::Command`]; the envelope's `re` names the command.
    CommandReply {
        /// The result.
        reply: DeviceReply,
    },
    /// Where viewers reach the device's media (H.626.4 8.3: local and mapped addresses).
    Endpoints {
        /// RTSP authorities on the device's own interfaces, `host:port`, best first.
        rtsp: Vec<String>,
        /// Port mappings the device obtained from its gateway (8.3 step 1), `host:port`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mapped: Vec<String>,
    },
    /// An MTU's addresses and load (H.626.4 7.2, Sd), sent after registration and then
    /// every few seconds; the SCU chooses MTUs from these.
    MtuReport {
        /// Where it serves.
        addresses: crate::relay::MtuAddresses,
        /// How loaded it is.
        load: crate::relay::MtuLoad,
    },
    /// H.626.4 8.4 step 5: a viewer presented this token; is it legitimate?
    AuthorizePlay(crate::play::PlayCheck),
    /// H.626.4 7.2 clock synchronisation: the device's clock when it asked, Unix µs.
    TimeRequest {
        /// `t1`.
        t1_us: u64,
    },
    /// A request for the platform (routed to the CMU); answered by
    /// [`ScuToDevice::Answer`] with `re` set to this message's id.
    Request {
        /// The request.
        request: DeviceRequest,
    },
}

/// Messages from the SCU to a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScuToDevice {
    /// A fresh challenge for this connection.
    Challenge {
        /// The SCU node that issued it (signed over, so a signature cannot be used elsewhere).
        node: String,
        /// 32 random bytes, base64url.
        nonce: String,
        /// When the challenge was issued, Unix milliseconds (the SCU's clock).
        issued_at_ms: u64,
    },
    /// Registration accepted (H.626.4 8.1 step 4).
    Registered {
        /// The session id of this registration.
        session: String,
        /// How often the device must send a heartbeat.
        heartbeat_ms: u64,
    },
    /// Registration refused; the SCU closes the connection after sending this.
    Refused {
        /// Machine-readable reason, see [`RefusalCode`].
        code: RefusalCode,
        /// Human-readable explanation.
        message: String,
    },
    /// Answer to a heartbeat.
    HeartbeatAck,
    /// A command routed from the CMU.
    Command {
        /// The command.
        command: DeviceCommand,
    },
    /// H.626.4 8.4 step 8: the platform's answer to [`DeviceToScu::AuthorizePlay`] (`re`).
    PlayVerdict {
        /// Granted or refused.
        verdict: PlayVerdict,
    },
    /// Access changed (unshare, unbind, reset): end the live sessions of `user`, or of every
    /// viewer when `user` is absent (docs/security.md D5).
    Revoke {
        /// The account whose sessions end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<i64>,
    },
    /// Answer to [`DeviceToScu::TimeRequest`]: the SCU's clock at receipt and at answer.
    TimeReply {
        /// `t1`, echoed.
        t1_us: u64,
        /// `t2`: when the request arrived, SCU clock, Unix µs.
        t2_us: u64,
        /// `t3`: when the answer left, SCU clock, Unix µs.
        t3_us: u64,
    },
    /// The platform's answer to [`DeviceToScu::Request`] (`re`).
    Answer {
        /// The answer.
        answer: PlatformAnswer,
    },
    /// The SCU is dropping this session (another registration replaced it, or it was revoked).
    Bye {
        /// Why.
        reason: String,
    },
}

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalCode {
    /// No device with this id was provisioned.
    UnknownDevice,
    /// The signature does not verify with the device's key.
    BadSignature,
    /// The signed nonce is not this connection's challenge, or was used before.
    StaleChallenge,
    /// The message was not expected now, or did not parse.
    ProtocolError,
    /// The peer speaks no protocol version we speak.
    UnsupportedVersion,
    /// The platform cannot decide now (CMU unreachable); try again later.
    Unavailable,
    /// The device is disabled by the operator.
    Disabled,
}

impl RefusalCode {
    /// Whether retrying later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable | Self::ProtocolError)
    }
}

#[cfg(test)]
mod kind_tests {
    use super::DeviceKind;

    #[test]
    fn h626_8_7_1_the_cs_kind_on_the_wire() {
        for (k, s) in [
            (DeviceKind::Pu, "pu"),
            (DeviceKind::Nvr, "nvr"),
            (DeviceKind::Mtu, "mtu"),
            (DeviceKind::Cs, "cs"),
        ] {
            assert_eq!(k.as_str(), s);
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(s));
            assert_eq!(serde_json::from_value::<DeviceKind>(s.into()).unwrap(), k);
        }
    }
}
