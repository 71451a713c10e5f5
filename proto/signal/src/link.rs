//! The two ends of a Ps connection as pure state machines (H.626.4 8.1).
//!
//! [`DeviceLink`] runs in the PU (or NVR); [`ScuPeer`] runs in the SCU, one per connection.
//! Neither reads the clock nor draws random numbers: `now` and nonces come from the caller.
//! The driving loop is the same for both:
//!
//! ```text
//! loop {
//!     while let Some(frame) = sm.poll_transmit() { socket.send(frame) }
//!     while let Some(ev) = sm.poll_event() { act on ev }
//!     select! {
//!         frame = socket.recv() => sm.handle_input(now, &frame)?,
//!         _ = sleep_until(sm.poll_timeout()) => sm.handle_timeout(now),
//!     }
//! }
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;

use crate::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use crate::envelope::{DecodeError, Envelope, PROTOCOL_VERSION, decode, encode};
use crate::play::PlayVerdict;
use crate::ps::{DeviceKind, DeviceToScu, RefusalCode, ScuToDevice};
use crate::register;

/// A protocol violation by the peer; the connection should be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The frame did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A valid message at the wrong time.
    #[error("unexpected {0} in state {1}")]
    Unexpected(&'static str, &'static str),
}

// ---------------------------------------------------------------------------------------------
// Device side

/// What the device's link reports to the agent.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// Registration accepted (H.626.4 8.1 step 4).
    Registered {
        /// Session id.
        session: String,
    },
    /// Registration refused; the connection is over.
    Refused {
        /// Why.
        code: RefusalCode,
        /// Explanation.
        message: String,
    },
    /// A command to execute; answer with [`DeviceLink::reply`].
    Command {
        /// Request id to answer.
        id: u64,
        /// The command.
        command: DeviceCommand,
    },
    /// The platform's answer to [`DeviceLink::authorize_play`].
    PlayVerdict {
        /// The id returned by `authorize_play`.
        re: u64,
        /// Granted or refused.
        verdict: PlayVerdict,
    },
    /// The platform's answer to [`DeviceLink::request`].
    Answer {
        /// The id returned by `request`.
        re: u64,
        /// The answer.
        answer: PlatformAnswer,
    },
    /// End the live sessions of `user` (all viewers when `None`).
    Revoke {
        /// The account.
        user: Option<i64>,
    },
    /// The SCU's answer to [`DeviceLink::request_time`]; stamp `t4` now and feed a
    /// [`crate::clock::SyncFilter`].
    TimeReply {
        /// The device's clock when it asked.
        t1_us: u64,
        /// The SCU's clock at receipt.
        t2_us: u64,
        /// The SCU's clock at answer.
        t3_us: u64,
    },
    /// The SCU has gone quiet (no heartbeat answer in time) or said goodbye: reconnect.
    Lost {
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceState {
    ExpectChallenge,
    ExpectResult,
    Registered,
    Closed,
}

impl DeviceState {
    fn name(self) -> &'static str {
        match self {
            Self::ExpectChallenge => "expect-challenge",
            Self::ExpectResult => "expect-result",
            Self::Registered => "registered",
            Self::Closed => "closed",
        }
    }
}

/// The device end of a Ps connection.
pub struct DeviceLink {
    device_id: DeviceId,
    key: SigningKey,
    state: DeviceState,
    next_id: u64,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    heartbeat: Duration,
    next_heartbeat: Option<Instant>,
    deadline: Instant,
    endpoints: Option<(Vec<String>, Vec<String>)>,
    mtu: Option<(crate::relay::MtuAddresses, crate::relay::MtuLoad)>,
}

impl DeviceLink {
    /// How long the SCU may stay silent before the link counts as lost.
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// Starts a link on a fresh connection; queues the hello.
    pub fn new(
        now: Instant,
        device_id: DeviceId,
        kind: DeviceKind,
        key: SigningKey,
        sw_version: &str,
    ) -> Self {
        let mut link = Self {
            device_id: device_id.clone(),
            key,
            state: DeviceState::ExpectChallenge,
            next_id: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
            heartbeat: Duration::from_secs(5),
            next_heartbeat: None,
            deadline: now + Self::HANDSHAKE_TIMEOUT,
            endpoints: None,
            mtu: None,
        };
        link.send(DeviceToScu::Hello {
            device_id,
            kind,
            versions: vec![PROTOCOL_VERSION],
            sw_version: sw_version.to_owned(),
        });
        link
    }

    fn send(&mut self, body: DeviceToScu) {
        let id = self.next_id;
        self.next_id += 1;
        self.out.push_back(encode(&Envelope::new(id, body)));
    }

    /// Feeds one frame received from the SCU; after the link closed, input is ignored.
    pub fn handle_input(&mut self, now: Instant, frame: &[u8]) -> Result<(), LinkError> {
        if self.state == DeviceState::Closed {
            return Ok(());
        }
        let env: Envelope<ScuToDevice> = decode(frame)?;
        match (self.state, env.body) {
            (
                DeviceState::ExpectChallenge,
                ScuToDevice::Challenge {
                    node,
                    nonce,
                    issued_at_ms,
                },
            ) => {
                let signature =
                    register::sign(&self.key, &node, &self.device_id, &nonce, issued_at_ms);
                self.send(DeviceToScu::Register { nonce, signature });
                self.state = DeviceState::ExpectResult;
                self.deadline = now + Self::HANDSHAKE_TIMEOUT;
            }
            (
                DeviceState::ExpectResult,
                ScuToDevice::Registered {
                    session,
                    heartbeat_ms,
                },
            ) => {
                self.heartbeat = Duration::from_millis(heartbeat_ms.clamp(500, 120_000));
                self.state = DeviceState::Registered;
                self.next_heartbeat = Some(now + self.heartbeat);
                self.deadline = now + self.heartbeat * 3;
                self.events.push_back(LinkEvent::Registered { session });
                if let Some((rtsp, mapped)) = self.endpoints.clone() {
                    self.send(DeviceToScu::Endpoints { rtsp, mapped });
                }
                if let Some((addresses, load)) = self.mtu.clone() {
                    self.send(DeviceToScu::MtuReport { addresses, load });
                }
            }
            (
                DeviceState::ExpectChallenge | DeviceState::ExpectResult,
                ScuToDevice::Refused { code, message },
            ) => {
                self.state = DeviceState::Closed;
                self.events.push_back(LinkEvent::Refused { code, message });
            }
            (DeviceState::Registered, ScuToDevice::HeartbeatAck) => {
                self.deadline = now + self.heartbeat * 3;
            }
            (DeviceState::Registered, ScuToDevice::Command { command }) => {
                self.deadline = now + self.heartbeat * 3;
                self.events.push_back(LinkEvent::Command {
                    id: env.id,
                    command,
                });
            }
            (DeviceState::Registered, ScuToDevice::PlayVerdict { verdict }) => {
                self.deadline = now + self.heartbeat * 3;
                if let Some(re) = env.re {
                    self.events
                        .push_back(LinkEvent::PlayVerdict { re, verdict });
                }
            }
            (DeviceState::Registered, ScuToDevice::Answer { answer }) => {
                self.deadline = now + self.heartbeat * 3;
                if let Some(re) = env.re {
                    self.events.push_back(LinkEvent::Answer { re, answer });
                }
            }
            (DeviceState::Registered, ScuToDevice::Revoke { user }) => {
                self.events.push_back(LinkEvent::Revoke { user });
            }
            (
                DeviceState::Registered,
                ScuToDevice::TimeReply {
                    t1_us,
                    t2_us,
                    t3_us,
                },
            ) => {
                self.deadline = now + self.heartbeat * 3;
                self.events.push_back(LinkEvent::TimeReply {
                    t1_us,
                    t2_us,
                    t3_us,
                });
            }
            (_, ScuToDevice::Bye { reason }) => {
                self.state = DeviceState::Closed;
                self.events.push_back(LinkEvent::Lost { reason });
            }
            (state, body) => {
                self.state = DeviceState::Closed;
                return Err(LinkError::Unexpected(scu_msg_name(&body), state.name()));
            }
        }
        Ok(())
    }

    /// Reports where viewers reach the device's media; sent now if registered, else right
    /// after registration (and again after every re-registration).
    pub fn report_endpoints(&mut self, rtsp: Vec<String>) {
        let mapped = self.endpoints.take().map(|(_, m)| m).unwrap_or_default();
        self.report_addresses(rtsp, mapped);
    }

    /// H.626.4 8.3 step 2: reports the device's local RTSP authorities and the port
    /// mappings its gateway granted; sent now if registered, else after registration.
    pub fn report_addresses(&mut self, rtsp: Vec<String>, mapped: Vec<String>) {
        self.endpoints = Some((rtsp.clone(), mapped.clone()));
        if self.state == DeviceState::Registered {
            self.send(DeviceToScu::Endpoints { rtsp, mapped });
        }
    }

    /// An MTU's addresses and load (H.626.4 7.2); sent now if registered, else after
    /// registration (and again after every re-registration).
    pub fn report_mtu(
        &mut self,
        addresses: crate::relay::MtuAddresses,
        load: crate::relay::MtuLoad,
    ) {
        self.mtu = Some((addresses.clone(), load));
        if self.state == DeviceState::Registered {
            self.send(DeviceToScu::MtuReport { addresses, load });
        }
    }

    /// H.626.4 8.4 step 5: asks the platform whether a viewer's token is legitimate; the
    /// answer comes as [`LinkEvent::PlayVerdict`] with the returned id. `None` when not
    /// registered (refuse the viewer).
    pub fn authorize_play(&mut self, token: String, client: String) -> Option<u64> {
        if self.state != DeviceState::Registered {
            return None;
        }
        let id = self.next_id;
        self.send(DeviceToScu::AuthorizePlay(crate::play::PlayCheck {
            token,
            client,
        }));
        Some(id)
    }

    /// Sends a request to the platform; the answer comes as [`LinkEvent::Answer`] with the
    /// returned id. `None` when not registered.
    pub fn request(&mut self, request: DeviceRequest) -> Option<u64> {
        if self.state != DeviceState::Registered {
            return None;
        }
        let id = self.next_id;
        self.send(DeviceToScu::Request { request });
        Some(id)
    }

    /// H.626.4 7.2: asks the SCU for its time; `t1_us` is the device's clock now. The answer
    /// comes as [`LinkEvent::TimeReply`]. Ignored when not registered.
    pub fn request_time(&mut self, t1_us: u64) {
        if self.state == DeviceState::Registered {
            self.send(DeviceToScu::TimeRequest { t1_us });
        }
    }

    /// Answers a command.
    pub fn reply(&mut self, re: u64, reply: DeviceReply) {
        let id = self.next_id;
        self.next_id += 1;
        self.out.push_back(encode(&Envelope::reply(
            id,
            re,
            DeviceToScu::CommandReply { reply },
        )));
    }

    /// Call when [`Self::poll_timeout`] is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == DeviceState::Closed {
            return;
        }
        if now >= self.deadline {
            self.state = DeviceState::Closed;
            self.events.push_back(LinkEvent::Lost {
                reason: "SCU did not answer in time".into(),
            });
            return;
        }
        if let Some(at) = self.next_heartbeat
            && now >= at
        {
            self.send(DeviceToScu::Heartbeat);
            self.next_heartbeat = Some(now + self.heartbeat);
        }
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event for the agent.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When to call [`Self::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == DeviceState::Closed {
            return None;
        }
        Some(
            self.next_heartbeat
                .map_or(self.deadline, |h| h.min(self.deadline)),
        )
    }

    /// Whether the link is over (refused, lost or protocol error).
    pub fn is_closed(&self) -> bool {
        self.state == DeviceState::Closed
    }
}

fn scu_msg_name(m: &ScuToDevice) -> &'static str {
    match m {
        ScuToDevice::Challenge { .. } => "challenge",
        ScuToDevice::Registered { .. } => "registered",
        ScuToDevice::Refused { .. } => "refused",
        ScuToDevice::HeartbeatAck => "heartbeat_ack",
        ScuToDevice::Command { .. } => "command",
        ScuToDevice::PlayVerdict { .. } => "play_verdict",
        ScuToDevice::Revoke { .. } => "revoke",
        ScuToDevice::TimeReply { .. } => "time_reply",
        ScuToDevice::Answer { .. } => "answer",
        ScuToDevice::Bye { .. } => "bye",
    }
}

// ---------------------------------------------------------------------------------------------
// SCU side

/// What an SCU connection reports to the node.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The device answered its challenge: ask the CMU (H.626.4 8.1 step 2), then call
    /// [`ScuPeer::verdict`].
    Verify(VerifyRequest),
    /// The device is registered and online.
    Online {
        /// Device id.
        device_id: DeviceId,
    },
    /// A reply to a command sent with [`ScuPeer::send_command`].
    Reply {
        /// The command's id.
        re: u64,
        /// The device's answer.
        reply: DeviceReply,
    },
    /// The device reported its media endpoints.
    Endpoints {
        /// RTSP authorities.
        rtsp: Vec<String>,
        /// Gateway port mappings.
        mapped: Vec<String>,
    },
    /// An MTU reported its addresses and load.
    MtuReport {
        /// Where it serves.
        addresses: crate::relay::MtuAddresses,
        /// Its load.
        load: crate::relay::MtuLoad,
    },
    /// The device asks whether a viewer's token is legitimate (8.4 step 5); answer with
    /// [`ScuPeer::play_verdict`] and this `id`.
    AuthorizePlay {
        /// The request id.
        id: u64,
        /// The token and the viewer's address, forwarded as they are to the CMU.
        check: crate::play::PlayCheck,
    },
    /// The device asks something of the platform: forward it to the CMU and answer with
    /// [`ScuPeer::answer`] and this `id`.
    Request {
        /// The request id.
        id: u64,
        /// The request.
        request: DeviceRequest,
    },
    /// The device asks for the time (H.626.4 7.2); answer with [`ScuPeer::time_reply`],
    /// stamping `t2` as close to the request's arrival as the shell can.
    TimeRequest {
        /// The request id.
        id: u64,
        /// The device's `t1`, echoed back.
        t1_us: u64,
    },
    /// The connection is over; close it.
    Closed {
        /// Why.
        reason: String,
    },
}

/// Everything the CMU needs to check a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    /// The device.
    pub device_id: DeviceId,
    /// PU or NVR.
    pub kind: DeviceKind,
    /// Challenge nonce.
    pub nonce: String,
    /// Challenge issue time, Unix ms.
    pub issued_at_ms: u64,
    /// The device's signature.
    pub signature: String,
    /// Software version reported in the hello.
    pub sw_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PeerState {
    ExpectHello,
    ExpectRegister {
        device_id: DeviceId,
        kind: DeviceKind,
        sw_version: String,
    },
    AwaitVerdict {
        device_id: DeviceId,
    },
    Registered {
        device_id: DeviceId,
    },
    Closed,
}

impl PeerState {
    fn name(&self) -> &'static str {
        match self {
            Self::ExpectHello => "expect-hello",
            Self::ExpectRegister { .. } => "expect-register",
            Self::AwaitVerdict { .. } => "await-verdict",
            Self::Registered { .. } => "registered",
            Self::Closed => "closed",
        }
    }
}

/// Settings of an SCU's device connections.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This SCU node's id (signed over by devices).
    pub node: String,
    /// Heartbeat period asked of devices.
    pub heartbeat: Duration,
    /// Silence after which a device counts as offline.
    pub dead_after: Duration,
    /// Time allowed from connect to registration.
    pub handshake_timeout: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            node: "scu-1".into(),
            heartbeat: Duration::from_secs(4),
            dead_after: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(15),
        }
    }
}

/// The SCU end of one device connection.
pub struct ScuPeer {
    config: PeerConfig,
    state: PeerState,
    nonce: String,
    issued_at_ms: u64,
    next_id: u64,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<PeerEvent>,
    deadline: Instant,
    /// `PeerEvent::Closed` was emitted (exactly once per connection).
    closed_reported: bool,
}

/// Longest explanation put in a refusal (peer text quoted in errors is cut to fit).
const MAX_REASON: usize = 256;

impl ScuPeer {
    /// A new connection; `nonce` is 32 fresh random bytes, `wall_ms` the Unix time in ms.
    pub fn new(config: PeerConfig, now: Instant, nonce: [u8; 32], wall_ms: u64) -> Self {
        let deadline = now + config.handshake_timeout;
        Self {
            config,
            state: PeerState::ExpectHello,
            nonce: register::encode_nonce(&nonce),
            issued_at_ms: wall_ms,
            next_id: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
            deadline,
            closed_reported: false,
        }
    }

    fn send(&mut self, body: ScuToDevice) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.out.push_back(encode(&Envelope::new(id, body)));
        id
    }

    fn refuse(&mut self, code: RefusalCode, message: impl Into<String>) {
        if self.closed_reported {
            return;
        }
        let message: String = message.into().chars().take(MAX_REASON).collect();
        self.send(ScuToDevice::Refused {
            code,
            message: message.clone(),
        });
        self.close(format!("refused ({code:?}): {message}"));
    }

    fn close(&mut self, reason: String) {
        self.state = PeerState::Closed;
        if !self.closed_reported {
            self.closed_reported = true;
            self.events.push_back(PeerEvent::Closed { reason });
        }
    }

    /// H.626.4 8.1: a device says hello; the SCU answers with a challenge naming this node.
    fn on_hello(
        &mut self,
        device_id: DeviceId,
        kind: DeviceKind,
        versions: &[u16],
        sw_version: &str,
    ) {
        if !versions.contains(&PROTOCOL_VERSION) {
            return self.refuse(
                RefusalCode::UnsupportedVersion,
                "no common protocol version",
            );
        }
        self.state = PeerState::ExpectRegister {
            device_id,
            kind,
            sw_version: sw_version.chars().take(64).collect(),
        };
        let (node, nonce, issued_at_ms) = (
            self.config.node.clone(),
            self.nonce.clone(),
            self.issued_at_ms,
        );
        self.send(ScuToDevice::Challenge {
            node,
            nonce,
            issued_at_ms,
        });
    }

    /// Feeds one frame received from the device. Protocol errors refuse and close; after
    /// closing, input is ignored.
    pub fn handle_input(&mut self, now: Instant, frame: &[u8]) {
        if self.state == PeerState::Closed {
            return;
        }
        let env: Envelope<DeviceToScu> = match decode(frame) {
            Ok(env) => env,
            Err(DecodeError::Version(v)) => {
                return self.refuse(
                    RefusalCode::UnsupportedVersion,
                    format!("protocol version {v} is not spoken here"),
                );
            }
            Err(e) => return self.refuse(RefusalCode::ProtocolError, e.to_string()),
        };
        let state = std::mem::replace(&mut self.state, PeerState::Closed);
        match (state, env.body) {
            (
                PeerState::ExpectHello,
                DeviceToScu::Hello {
                    device_id,
                    kind,
                    versions,
                    sw_version,
                },
            ) => self.on_hello(device_id, kind, &versions, &sw_version),
            (
                PeerState::ExpectRegister {
                    device_id,
                    kind,
                    sw_version,
                },
                DeviceToScu::Register { nonce, signature },
            ) => {
                // H.626.4 8.1 step 1. A signature over another connection's challenge is a replay.
                if nonce != self.nonce {
                    return self.refuse(
                        RefusalCode::StaleChallenge,
                        "the signed nonce is not this connection's challenge",
                    );
                }
                self.state = PeerState::AwaitVerdict {
                    device_id: device_id.clone(),
                };
                self.events.push_back(PeerEvent::Verify(VerifyRequest {
                    device_id,
                    kind,
                    nonce,
                    issued_at_ms: self.issued_at_ms,
                    signature,
                    sw_version,
                }));
            }
            (PeerState::Registered { device_id }, DeviceToScu::Heartbeat) => {
                self.state = PeerState::Registered { device_id };
                self.deadline = now + self.config.dead_after;
                self.send(ScuToDevice::HeartbeatAck);
            }
            (PeerState::Registered { device_id }, DeviceToScu::CommandReply { reply }) => {
                self.state = PeerState::Registered { device_id };
                self.deadline = now + self.config.dead_after;
                match env.re {
                    Some(re) => self.events.push_back(PeerEvent::Reply { re, reply }),
                    None => self.refuse(RefusalCode::ProtocolError, "command_reply without re"),
                }
            }
            (PeerState::Registered { device_id }, DeviceToScu::Endpoints { rtsp, mapped }) => {
                self.state = PeerState::Registered { device_id };
                self.deadline = now + self.config.dead_after;
                let keep = |v: Vec<String>| -> Vec<String> {
                    v.into_iter().take(8).filter(|a| a.len() <= 128).collect()
                };
                self.events.push_back(PeerEvent::Endpoints {
                    rtsp: keep(rtsp),
                    mapped: keep(mapped),
                });
            }
            (PeerState::Registered { device_id }, DeviceToScu::MtuReport { addresses, load }) => {
                self.deadline = now + self.config.dead_after;
                let short = |a: &String| a.len() <= 128;
                if short(&addresses.rtsp)
                    && short(&addresses.tunnel)
                    && addresses.region.len() <= 64
                    && addresses.turn.len() <= 8
                    && addresses.turn.iter().all(short)
                {
                    self.events
                        .push_back(PeerEvent::MtuReport { addresses, load });
                }
                self.state = PeerState::Registered { device_id };
            }
            (PeerState::Registered { device_id }, DeviceToScu::TimeRequest { t1_us }) => {
                self.state = PeerState::Registered { device_id };
                self.deadline = now + self.config.dead_after;
                self.events
                    .push_back(PeerEvent::TimeRequest { id: env.id, t1_us });
            }
            (PeerState::Registered { device_id }, DeviceToScu::AuthorizePlay(mut check)) => {
                self.state = PeerState::Registered { device_id };
                self.deadline = now + self.config.dead_after;
                check.client = check.client.chars().take(64).collect();
                self.events
                    .push_back(PeerEvent::AuthorizePlay { id: env.id, check });
            }
            (PeerState::Registered { device_id }, DeviceToScu::Request { request }) => {
                self.state = PeerState::Registered { device_id };
                self.deadline = now + self.config.dead_after;
                self.events.push_back(PeerEvent::Request {
                    id: env.id,
                    request,
                });
            }
            (state, body) => {
                let what = match body {
                    DeviceToScu::Hello { .. } => "hello",
                    DeviceToScu::Register { .. } => "register",
                    DeviceToScu::Heartbeat => "heartbeat",
                    DeviceToScu::CommandReply { .. } => "command_reply",
                    DeviceToScu::Endpoints { .. } => "endpoints",
                    DeviceToScu::MtuReport { .. } => "mtu_report",
                    DeviceToScu::AuthorizePlay(_) => "authorize_play",
                    DeviceToScu::TimeRequest { .. } => "time_request",
                    DeviceToScu::Request { .. } => "request",
                };
                self.refuse(
                    RefusalCode::ProtocolError,
                    format!("unexpected {what} in state {}", state.name()),
                );
            }
        }
    }

    /// The CMU's verdict on the pending registration (H.626.4 8.1 steps 3-4).
    pub fn verdict(
        &mut self,
        now: Instant,
        session: String,
        verdict: Result<(), (RefusalCode, String)>,
    ) {
        let PeerState::AwaitVerdict { device_id } =
            std::mem::replace(&mut self.state, PeerState::Closed)
        else {
            self.close("registration verdict in the wrong state".into());
            return;
        };
        match verdict {
            Ok(()) => {
                let heartbeat_ms =
                    u64::try_from(self.config.heartbeat.as_millis()).unwrap_or(u64::MAX);
                self.send(ScuToDevice::Registered {
                    session,
                    heartbeat_ms,
                });
                self.deadline = now + self.config.dead_after;
                self.events.push_back(PeerEvent::Online {
                    device_id: device_id.clone(),
                });
                self.state = PeerState::Registered { device_id };
            }
            Err((code, message)) => self.refuse(code, message),
        }
    }

    /// Sends a command to the registered device; returns its request id, or `None` if the
    /// device is not registered on this connection.
    pub fn send_command(&mut self, command: DeviceCommand) -> Option<u64> {
        matches!(self.state, PeerState::Registered { .. })
            .then(|| self.send(ScuToDevice::Command { command }))
    }

    /// Answers a [`PeerEvent::TimeRequest`] with the SCU's clock at receipt (`t2_us`) and now
    /// (`t3_us`), Unix µs.
    pub fn time_reply(&mut self, re: u64, t1_us: u64, t2_us: u64, t3_us: u64) {
        self.reply(
            re,
            ScuToDevice::TimeReply {
                t1_us,
                t2_us,
                t3_us,
            },
        );
    }

    /// Answers an [`PeerEvent::AuthorizePlay`].
    pub fn play_verdict(&mut self, re: u64, verdict: PlayVerdict) {
        self.reply(re, ScuToDevice::PlayVerdict { verdict });
    }

    /// Answers a [`PeerEvent::Request`].
    pub fn answer(&mut self, re: u64, answer: PlatformAnswer) {
        self.reply(re, ScuToDevice::Answer { answer });
    }

    /// Queues `body` as the answer to the device's message `re`, if still registered.
    fn reply(&mut self, re: u64, body: ScuToDevice) {
        if matches!(self.state, PeerState::Registered { .. }) {
            let id = self.next_id;
            self.next_id += 1;
            self.out.push_back(encode(&Envelope::reply(id, re, body)));
        }
    }

    /// Tells the device to end live sessions (docs/security.md D5).
    pub fn revoke(&mut self, user: Option<i64>) {
        if matches!(self.state, PeerState::Registered { .. }) {
            self.send(ScuToDevice::Revoke { user });
        }
    }

    /// Says goodbye and closes (the session was replaced or revoked).
    pub fn kick(&mut self, reason: &str) {
        if self.state != PeerState::Closed {
            self.send(ScuToDevice::Bye {
                reason: reason.to_owned(),
            });
            self.close(reason.to_owned());
        }
    }

    /// Call when [`Self::poll_timeout`] is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != PeerState::Closed && now >= self.deadline {
            let reason = match self.state {
                PeerState::Registered { .. } => "no heartbeat in time",
                _ => "registration not completed in time",
            };
            self.close(reason.into());
        }
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// When to call [`Self::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != PeerState::Closed).then_some(self.deadline)
    }

    /// The device, once it said hello.
    pub fn device_id(&self) -> Option<&DeviceId> {
        match &self.state {
            PeerState::ExpectRegister { device_id, .. }
            | PeerState::AwaitVerdict { device_id }
            | PeerState::Registered { device_id } => Some(device_id),
            _ => None,
        }
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.state == PeerState::Closed
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests take one real instant as the origin of virtual time"
)]
mod tests {
    //! Both ends driven against each other in virtual time.
    use super::*;

    struct Pair {
        now: Instant,
        dev: DeviceLink,
        scu: ScuPeer,
        dev_events: Vec<LinkEvent>,
        scu_events: Vec<PeerEvent>,
    }

    impl Pair {
        fn new(seed: u8) -> (Self, ed25519_dalek::VerifyingKey) {
            let now = Instant::now();
            let key = SigningKey::from_bytes(&[seed; 32]);
            let pk = key.verifying_key();
            let dev = DeviceLink::new(
                now,
                DeviceId::from_random([seed; 10]),
                DeviceKind::Pu,
                key,
                "test",
            );
            let scu = ScuPeer::new(PeerConfig::default(), now, [seed; 32], 1_000);
            (
                Self {
                    now,
                    dev,
                    scu,
                    dev_events: vec![],
                    scu_events: vec![],
                },
                pk,
            )
        }

        fn drive(&mut self) {
            loop {
                let mut moved = false;
                while let Some(f) = self.dev.poll_transmit() {
                    self.scu.handle_input(self.now, &f);
                    moved = true;
                }
                while let Some(f) = self.scu.poll_transmit() {
                    let _ = self.dev.handle_input(self.now, &f);
                    moved = true;
                }
                self.dev_events
                    .extend(std::iter::from_fn(|| self.dev.poll_event()));
                self.scu_events
                    .extend(std::iter::from_fn(|| self.scu.poll_event()));
                if !moved {
                    break;
                }
            }
        }

        fn advance(&mut self, d: Duration) {
            let end = self.now + d;
            loop {
                let next = [self.dev.poll_timeout(), self.scu.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(t) if t <= end => {
                        self.now = self.now.max(t);
                        self.dev.handle_timeout(self.now);
                        self.scu.handle_timeout(self.now);
                        self.drive();
                    }
                    _ => break,
                }
            }
            self.now = end;
        }
    }

    fn verify_like_cmu(
        pk: &ed25519_dalek::VerifyingKey,
        req: &VerifyRequest,
    ) -> Result<(), (RefusalCode, String)> {
        register::verify(
            pk,
            "scu-1",
            &req.device_id,
            &req.nonce,
            req.issued_at_ms,
            &req.signature,
        )
        .map_err(|e| (RefusalCode::BadSignature, e.to_string()))
    }

    #[test]
    fn h626_8_1_registration_and_heartbeats_in_virtual_time() {
        let (mut p, pk) = Pair::new(1);
        p.drive();
        let Some(PeerEvent::Verify(req)) = p.scu_events.pop() else {
            panic!("no verify: {:?}", p.scu_events)
        };
        let v = verify_like_cmu(&pk, &req);
        p.scu.verdict(p.now, "s1".into(), v);
        p.drive();
        assert_eq!(
            p.dev_events,
            vec![LinkEvent::Registered {
                session: "s1".into()
            }]
        );
        // An hour of heartbeats keeps both sides up.
        p.advance(Duration::from_secs(3600));
        assert!(!p.dev.is_closed() && !p.scu.is_closed());
        // A command round trip.
        let id = p
            .scu
            .send_command(DeviceCommand::Describe)
            .expect("registered");
        p.drive();
        let Some(LinkEvent::Command { id: got, .. }) = p.dev_events.pop() else {
            panic!()
        };
        assert_eq!(got, id);
        p.dev.reply(
            got,
            DeviceReply::Failed {
                code: "x".into(),
                message: "y".into(),
            },
        );
        p.drive();
        assert!(matches!(p.scu_events.pop(), Some(PeerEvent::Reply { re, .. }) if re == id));
    }

    #[test]
    fn h626_7_2_time_exchange_in_virtual_time() {
        let (mut p, pk) = Pair::new(1);
        p.drive();
        let Some(PeerEvent::Verify(req)) = p.scu_events.pop() else {
            panic!()
        };
        let v = verify_like_cmu(&pk, &req);
        p.scu.verdict(p.now, "s1".into(), v);
        p.drive();
        p.dev_events.clear();
        p.dev.request_time(1_000);
        p.drive();
        let Some(PeerEvent::TimeRequest { id, t1_us }) = p.scu_events.pop() else {
            panic!("no time request: {:?}", p.scu_events)
        };
        assert_eq!(t1_us, 1_000);
        p.scu.time_reply(id, t1_us, 601_000_500, 601_000_600);
        p.drive();
        assert_eq!(
            p.dev_events.pop(),
            Some(LinkEvent::TimeReply {
                t1_us: 1_000,
                t2_us: 601_000_500,
                t3_us: 601_000_600
            })
        );
        // The exchange keeps the connection registered on both sides.
        p.advance(Duration::from_secs(60));
        assert!(!p.dev.is_closed() && !p.scu.is_closed());
    }

    #[test]
    fn h626_8_1_wrong_key_is_refused() {
        let (mut p, _) = Pair::new(1);
        let other = SigningKey::from_bytes(&[9; 32]).verifying_key();
        p.drive();
        let Some(PeerEvent::Verify(req)) = p.scu_events.pop() else {
            panic!()
        };
        let v = verify_like_cmu(&other, &req);
        p.scu.verdict(p.now, "s1".into(), v);
        p.drive();
        assert!(matches!(
            p.dev_events.as_slice(),
            [LinkEvent::Refused {
                code: RefusalCode::BadSignature,
                ..
            }]
        ));
        assert!(p.scu.is_closed() && p.dev.is_closed());
    }

    #[test]
    fn h626_8_1_replayed_register_is_refused() {
        // Capture a Register from one connection and replay it on another.
        let (mut a, _) = Pair::new(1);
        let hello = a.dev.poll_transmit().expect("hello");
        a.scu.handle_input(a.now, &hello);
        let challenge = a.scu.poll_transmit().expect("challenge");
        a.dev.handle_input(a.now, &challenge).expect("ok");
        let register = a.dev.poll_transmit().expect("register");

        let mut b = ScuPeer::new(PeerConfig::default(), a.now, [2; 32], 2_000);
        b.handle_input(a.now, &hello);
        let _ = b.poll_transmit();
        b.handle_input(a.now, &register);
        let refused: Envelope<ScuToDevice> =
            decode(&b.poll_transmit().expect("refusal")).expect("decodes");
        assert!(matches!(
            refused.body,
            ScuToDevice::Refused {
                code: RefusalCode::StaleChallenge,
                ..
            }
        ));
        assert!(b.is_closed());
    }

    #[test]
    fn silent_device_goes_offline_and_silent_scu_is_lost() {
        let (mut p, pk) = Pair::new(3);
        p.drive();
        let Some(PeerEvent::Verify(req)) = p.scu_events.pop() else {
            panic!()
        };
        let v = verify_like_cmu(&pk, &req);
        p.scu.verdict(p.now, "s".into(), v);
        p.drive();
        // Cut the wire: advance each side alone.
        let t = p.now + Duration::from_secs(11);
        p.scu.handle_timeout(t);
        assert!(matches!(
            p.scu_events.last(),
            Some(PeerEvent::Online { .. })
        ));
        assert!(matches!(p.scu.poll_event(), Some(PeerEvent::Closed { .. })));
        let t = p.now + Duration::from_secs(30);
        p.dev.handle_timeout(t);
        assert!(p.dev.is_closed());
    }

    #[test]
    fn garbage_and_out_of_order_messages_close_cleanly() {
        let now = Instant::now();
        let mut s = ScuPeer::new(PeerConfig::default(), now, [0; 32], 0);
        s.handle_input(now, b"\xff\x00not json");
        assert!(s.is_closed());
        let mut s = ScuPeer::new(PeerConfig::default(), now, [0; 32], 0);
        s.handle_input(now, br#"{"v":1,"id":1,"body":{"type":"heartbeat"}}"#);
        assert!(s.is_closed());
        let mut s = ScuPeer::new(PeerConfig::default(), now, [0; 32], 0);
        s.handle_input(now, br#"{"v":9,"id":1,"body":{"type":"heartbeat"}}"#);
        let refusal: Envelope<ScuToDevice> =
            decode(&s.poll_transmit().expect("refusal")).expect("decodes");
        assert!(matches!(
            refusal.body,
            ScuToDevice::Refused {
                code: RefusalCode::UnsupportedVersion,
                ..
            }
        ));
    }

    #[test]
    fn fuzz_regressions_closing_is_reported_once_and_closed_sides_are_silent() {
        let now = Instant::now();
        // A refused verdict emits exactly one Closed.
        let (mut p, _) = Pair::new(4);
        p.drive();
        p.scu.verdict(
            p.now,
            String::new(),
            Err((RefusalCode::BadSignature, "no".into())),
        );
        let closed = std::iter::from_fn(|| p.scu.poll_event())
            .filter(|e| matches!(e, PeerEvent::Closed { .. }))
            .count();
        assert_eq!(closed, 1);
        // A closed SCU peer answers nothing more.
        let _ = std::iter::from_fn(|| p.scu.poll_transmit()).count();
        p.scu.handle_input(now, b"bye");
        assert!(p.scu.poll_transmit().is_none() && p.scu.poll_event().is_none());
        // A closed device link reports nothing more.
        let bye = br#"{"v":1,"body":{"type":"bye","reason":"a"}}"#;
        let mut d = DeviceLink::new(
            now,
            DeviceId::from_random([1; 10]),
            DeviceKind::Pu,
            SigningKey::from_bytes(&[1; 32]),
            "t",
        );
        d.handle_input(now, bye).expect("bye");
        assert!(matches!(d.poll_event(), Some(LinkEvent::Lost { .. })));
        d.handle_input(now, bye).expect("ignored");
        assert!(d.poll_event().is_none());
        // A refusal quoting a hostile input still fits in one frame.
        let mut s = ScuPeer::new(PeerConfig::default(), now, [0; 32], 0);
        let hostile = format!(
            r#"{{"v":1,"id":1,"body":{{"type":"hello","device_id":"pc-0123456789abcdef","kind":"pu","versions":"{}","sw_version":"x"}}}}"#,
            "\\\"".repeat(20_000)
        );
        s.handle_input(now, hostile.as_bytes());
        let frame = s.poll_transmit().expect("refusal");
        assert!(
            frame.len() <= crate::MAX_MESSAGE_BYTES,
            "{} bytes",
            frame.len()
        );
        assert!(decode::<ScuToDevice>(&frame).is_ok());
    }
}
