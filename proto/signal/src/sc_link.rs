//! The two ends of an Sc / Sm connection as pure state machines.
//!
//! [`ScuLink`] runs in an SCU node (one, kept across reconnects); [`CmuPeer`] runs in the CMU,
//! one per node connection, beside the CMU-wide [`RouteTable`] that says which node holds
//! which device. Like [`crate::link`], neither reads the clock nor touches a socket: frames and
//! `now` go in, frames ([`ScuLink::poll_transmit`]), events and the next deadline come out.
//!
//! Every request either side makes gets an id, a deadline and an opaque *waiter* `W` chosen
//! by the driver (a oneshot sender in the units, a plain tag in tests). The state machine
//! hands the waiter back exactly once, with a response of the kind the request expects: the
//! peer's answer, or a refusal made here when the deadline passes ([`Refusal::Timeout`]) or the
//! link goes away ([`Refusal::Unavailable`]). Late and duplicate answers are dropped; an answer
//! of the wrong kind is a protocol error.
//!
//! ```text
//! SCU node (ScuLink)                                   CMU (CmuPeer + RouteTable)
//!   connect ------------- node_hello ------------------>  secret, node id, version
//!           <------------ node_welcome / node_refused --
//!   request(ScRequest) -- verify_device / authorize_play / device_request -->
//!           <------------ device_verdict / play_verdict / answer (re) ------   respond
//!   notify(ScNotice) ---- presence / endpoints -------->  RouteTable: who holds what
//!           <------------ command / select_mtu ---------  request(CmRequest)
//!   command_result, mtu_choice (re) ----------------->
//!           <------------ revoke / kick ----------------  notify(CmNotice)
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use peercam_base::DeviceId;
use serde::Serialize;

use crate::cmd::{DeviceCommand, DeviceRequest, PlatformAnswer};
use crate::envelope::{Envelope, PROTOCOL_VERSION, decode, encode};
use crate::link::LinkError;
use crate::play::{PlayCheck, PlayVerdict};
use crate::ps::RefusalCode;
use crate::refusal::Refusal;
use crate::sc::{
    CmuToScu, CommandOutcome, Endpoints, Kick, MtuChoice, Presence, Revoke, ScuToCmu, Verdict,
    VerifyDevice,
};

mod cmu_peer;
mod routes;
#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests take one real instant as the origin of virtual time"
)]
mod tests;

pub use cmu_peer::{CmuPeer, CmuPeerConfig, CmuPeerEvent};
pub use routes::{Route, RouteTable};

/// How long each kind of request may wait for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScTimeouts {
    /// `node_hello` to `node_welcome` (SCU side), connect to `node_hello` (CMU side).
    pub welcome: Duration,
    /// H.626.4 8.1 steps 2-3: a registration verdict.
    pub verify: Duration,
    /// H.626.4 8.4 steps 6-8: a play verdict.
    pub play: Duration,
    /// A device request (8.7.2.1 step 16, relay requests).
    pub device_request: Duration,
    /// A command routed to a device (CMU side; the SCU gives the device less).
    pub command: Duration,
    /// H.626.4 7.2: an MTU choice.
    pub select_mtu: Duration,
}

impl Default for ScTimeouts {
    fn default() -> Self {
        Self {
            welcome: Duration::from_secs(5),
            verify: Duration::from_secs(10),
            play: Duration::from_secs(5),
            device_request: Duration::from_secs(10),
            command: Duration::from_secs(12),
            select_mtu: Duration::from_secs(3),
        }
    }
}

/// The kinds of request on Sc / Sm; each has exactly one answer kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Verify,
    Play,
    Device,
    Command,
    SelectMtu,
}

impl Kind {
    fn timeout(self, t: &ScTimeouts) -> Duration {
        match self {
            Self::Verify => t.verify,
            Self::Play => t.play,
            Self::Device => t.device_request,
            Self::Command => t.command,
            Self::SelectMtu => t.select_mtu,
        }
    }
}

/// A request an SCU node makes of the CMU.
#[derive(Debug, Clone, PartialEq)]
pub enum ScRequest {
    /// H.626.4 8.1 step 2: judge a registration; answered [`ScResponse::Verdict`].
    Verify(VerifyDevice),
    /// H.626.4 8.4 step 6: judge a viewer's token; answered [`ScResponse::Play`].
    Play {
        /// The device asking.
        device_id: DeviceId,
        /// What it asks, as the device sent it.
        check: PlayCheck,
    },
    /// A device's request for the platform; answered [`ScResponse::Answer`].
    Device {
        /// The device asking.
        device_id: DeviceId,
        /// Its request.
        request: DeviceRequest,
    },
}

impl ScRequest {
    fn kind(&self) -> Kind {
        match self {
            Self::Verify(_) => Kind::Verify,
            Self::Play { .. } => Kind::Play,
            Self::Device { .. } => Kind::Device,
        }
    }

    /// The device the request is about.
    pub fn device_id(&self) -> &DeviceId {
        match self {
            Self::Verify(v) => &v.device_id,
            Self::Play { device_id, .. } | Self::Device { device_id, .. } => device_id,
        }
    }

    fn into_body(self) -> ScuToCmu {
        match self {
            Self::Verify(v) => ScuToCmu::VerifyDevice(v),
            Self::Play { device_id, check } => ScuToCmu::AuthorizePlay { device_id, check },
            Self::Device { device_id, request } => ScuToCmu::DeviceRequest { device_id, request },
        }
    }
}

/// The CMU's answer to an [`ScRequest`], of the request's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ScResponse {
    /// To [`ScRequest::Verify`].
    Verdict(Verdict),
    /// To [`ScRequest::Play`].
    Play(PlayVerdict),
    /// To [`ScRequest::Device`].
    Answer(PlatformAnswer),
}

impl ScResponse {
    /// A refusal of the kind `kind` expects.
    fn refused(kind: Kind, refusal: Refusal, message: &str) -> Self {
        let message = message.to_owned();
        match kind {
            // The Ps refusal codes have no "timeout": both are "try again" for a device.
            Kind::Verify => Self::Verdict(Verdict::Refused {
                code: RefusalCode::Unavailable,
                message,
            }),
            Kind::Play => Self::Play(PlayVerdict::Refused {
                code: refusal,
                message,
            }),
            _ => Self::Answer(PlatformAnswer::Refused {
                code: refusal,
                message,
            }),
        }
    }

    /// A refusal of the kind `request` expects (e.g. the CMU refusing a node's request for a
    /// device it does not hold).
    pub fn refusal_for(request: &ScRequest, refusal: Refusal, message: &str) -> Self {
        Self::refused(request.kind(), refusal, message)
    }

    /// The registration verdict, if this answers [`ScRequest::Verify`].
    pub fn into_verdict(self) -> Option<Verdict> {
        match self {
            Self::Verdict(v) => Some(v),
            _ => None,
        }
    }

    /// The play verdict, if this answers [`ScRequest::Play`].
    pub fn into_play(self) -> Option<PlayVerdict> {
        match self {
            Self::Play(v) => Some(v),
            _ => None,
        }
    }

    /// The platform's answer, if this answers [`ScRequest::Device`].
    pub fn into_answer(self) -> Option<PlatformAnswer> {
        match self {
            Self::Answer(a) => Some(a),
            _ => None,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Self::Verdict(_) => Kind::Verify,
            Self::Play(_) => Kind::Play,
            Self::Answer(_) => Kind::Device,
        }
    }

    fn into_body(self) -> CmuToScu {
        match self {
            Self::Verdict(verdict) => CmuToScu::DeviceVerdict { verdict },
            Self::Play(verdict) => CmuToScu::PlayVerdict { verdict },
            Self::Answer(answer) => CmuToScu::Answer { answer },
        }
    }
}

/// A request the CMU makes of an SCU node.
#[derive(Debug, Clone, PartialEq)]
pub enum CmRequest {
    /// Route a command to a device the node holds (Sm / Ps); answered [`CmResponse::Command`].
    Command {
        /// The device.
        device_id: DeviceId,
        /// The command.
        command: DeviceCommand,
    },
    /// H.626.4 7.2 / Sd: choose an MTU; answered [`CmResponse::Mtu`].
    SelectMtu {
        /// The camera to relay.
        device_id: DeviceId,
    },
}

impl CmRequest {
    fn kind(&self) -> Kind {
        match self {
            Self::Command { .. } => Kind::Command,
            Self::SelectMtu { .. } => Kind::SelectMtu,
        }
    }
}

/// An SCU node's answer to a [`CmRequest`], of the request's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum CmResponse {
    /// To [`CmRequest::Command`].
    Command(CommandOutcome),
    /// To [`CmRequest::SelectMtu`].
    Mtu(MtuChoice),
}

impl CmResponse {
    fn failed(kind: Kind, refusal: &Refusal) -> Self {
        match (kind, refusal) {
            (Kind::Command, Refusal::Timeout) => Self::Command(CommandOutcome::Timeout),
            (Kind::Command, _) => Self::Command(CommandOutcome::NotConnected),
            _ => Self::Mtu(None),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Self::Command(_) => Kind::Command,
            Self::Mtu(_) => Kind::SelectMtu,
        }
    }
}

/// What an SCU node tells the CMU without asking (Sc: PU status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScNotice {
    /// A device's presence on the node changed.
    Presence(Presence),
    /// H.626.4 8.3 steps 3-4: a device's addresses.
    Endpoints(Endpoints),
}

/// What the CMU tells a node without asking (Sm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmNotice {
    /// End live sessions on a device (docs/security.md D5).
    Revoke(Revoke),
    /// Drop a device session if it is still the one named.
    Kick(Kick),
}

// ---------------------------------------------------------------------------------------------
// What both ends share: ids, waiting requests, requests waiting for our answer, queues.

struct Waiting<W> {
    kind: Kind,
    deadline: Instant,
    waiter: W,
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Answers dropped because no request of ours waited for them (late or duplicate).
    pub late_answers: u64,
    /// Requests of ours that timed out.
    pub timeouts: u64,
    /// Requests of ours failed because the link went away.
    pub failed_on_loss: u64,
}

struct Core<W, E> {
    next_id: u64,
    waiting: BTreeMap<u64, Waiting<W>>,
    /// The peer's requests we have not answered yet, by id.
    asked: BTreeMap<u64, Kind>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<E>,
    stats: LinkStats,
}

impl<W, E> Core<W, E> {
    fn new() -> Self {
        Self {
            next_id: 1,
            waiting: BTreeMap::new(),
            asked: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: LinkStats::default(),
        }
    }

    fn send<B: Serialize>(&mut self, re: Option<u64>, body: B) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let env = match re {
            Some(re) => Envelope::reply(id, re, body),
            None => Envelope::new(id, body),
        };
        self.out.push_back(encode(&env));
        id
    }

    fn start<B: Serialize>(
        &mut self,
        now: Instant,
        kind: Kind,
        t: &ScTimeouts,
        body: B,
        waiter: W,
    ) {
        let id = self.send(None, body);
        let deadline = now + kind.timeout(t);
        self.waiting.insert(
            id,
            Waiting {
                kind,
                deadline,
                waiter,
            },
        );
    }

    /// The waiting request `re` answers, if its kind is `kind`; `Ok(None)` for a late or
    /// duplicate answer.
    fn answered(
        &mut self,
        re: Option<u64>,
        kind: Kind,
        what: &'static str,
    ) -> Result<Option<W>, LinkError> {
        let Some(re) = re else {
            return Err(LinkError::Unexpected(what, "an answer without `re`"));
        };
        match self.waiting.get(&re) {
            None => {
                self.stats.late_answers += 1;
                Ok(None)
            }
            Some(w) if w.kind != kind => Err(LinkError::Unexpected(
                what,
                "an answer to another kind of request",
            )),
            Some(_) => Ok(self.waiting.remove(&re).map(|w| w.waiter)),
        }
    }

    /// Notes a request of the peer's; `false` for a duplicate id (dropped).
    fn asked(&mut self, id: u64, kind: Kind, what: &'static str) -> Result<bool, LinkError> {
        if id == 0 {
            return Err(LinkError::Unexpected(what, "a request without an id"));
        }
        Ok(self.asked.insert(id, kind).is_none())
    }

    /// Sends our answer to the peer's request `re` if it waits for one of this kind.
    fn answer<B: Serialize>(&mut self, re: u64, kind: Kind, body: B) -> bool {
        if self.asked.get(&re) != Some(&kind) {
            return false;
        }
        self.asked.remove(&re);
        self.send(Some(re), body);
        true
    }

    /// Removes the waiting requests past their deadline.
    fn expired(&mut self, now: Instant) -> Vec<Waiting<W>> {
        let ids: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        self.stats.timeouts += ids.len() as u64;
        ids.iter()
            .filter_map(|id| self.waiting.remove(id))
            .collect()
    }

    /// The link is gone: every waiting request fails, nothing queued is sent.
    fn lost(&mut self) -> Vec<Waiting<W>> {
        self.out.clear();
        self.asked.clear();
        let all = std::mem::take(&mut self.waiting);
        self.stats.failed_on_loss += all.len() as u64;
        all.into_values().collect()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.waiting.values().map(|w| w.deadline).min()
    }
}

// ---------------------------------------------------------------------------------------------
// SCU side

/// Settings of an SCU node's link to the CMU.
#[derive(Debug, Clone)]
pub struct ScuLinkConfig {
    /// This node's id.
    pub node: String,
    /// The node secret configured on the CMU.
    pub secret: String,
    /// Request deadlines.
    pub timeouts: ScTimeouts,
}

/// What the SCU's link reports to its driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScuLinkEvent<W> {
    /// The CMU welcomed this node: announce the devices held here
    /// ([`ScuLink::notify`]), the CMU may have restarted.
    Up,
    /// The answer to a request (or a refusal made here on timeout or link loss).
    Answered {
        /// The waiter given to [`ScuLink::request`].
        waiter: W,
        /// The answer, of the request's kind.
        response: ScResponse,
    },
    /// Route a command to a device; answer with [`ScuLink::command_result`] and this `id`.
    Command {
        /// The CMU's request id.
        id: u64,
        /// The device.
        device_id: DeviceId,
        /// The command.
        command: DeviceCommand,
    },
    /// Choose an MTU; answer with [`ScuLink::mtu_choice`] and this `id`.
    SelectMtu {
        /// The CMU's request id.
        id: u64,
        /// The camera to relay.
        device_id: DeviceId,
    },
    /// Revoke or kick: act on the devices held here.
    Notice(CmNotice),
    /// The link is down (refused, timed out, lost or broken); reconnect and call
    /// [`ScuLink::connect`] again.
    Down {
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScuState {
    Down,
    AwaitWelcome { deadline: Instant },
    Up,
}

/// The SCU node's end of Sc / Sm.
pub struct ScuLink<W> {
    config: ScuLinkConfig,
    state: ScuState,
    core: Core<W, ScuLinkEvent<W>>,
}

impl<W> ScuLink<W> {
    /// A link that is down until [`ScuLink::connect`].
    pub fn new(config: ScuLinkConfig) -> Self {
        Self {
            config,
            state: ScuState::Down,
            core: Core::new(),
        }
    }

    /// A connection to the CMU is open: say hello.
    pub fn connect(&mut self, now: Instant) {
        self.fail_all("the platform link was replaced; try again");
        self.core.next_id = 1;
        self.core.send(
            None,
            ScuToCmu::NodeHello {
                node: self.config.node.clone(),
                secret: self.config.secret.clone(),
                versions: vec![PROTOCOL_VERSION],
            },
        );
        self.state = ScuState::AwaitWelcome {
            deadline: now + self.config.timeouts.welcome,
        };
    }

    /// Whether the CMU welcomed this node on the current connection.
    pub fn is_up(&self) -> bool {
        self.state == ScuState::Up
    }

    /// Whether the link is down (before [`ScuLink::connect`], or since the last
    /// [`ScuLinkEvent::Down`]).
    pub fn is_down(&self) -> bool {
        self.state == ScuState::Down
    }

    /// Counters since this link was made.
    pub fn stats(&self) -> LinkStats {
        self.core.stats
    }

    /// Asks the CMU; the answer comes back as [`ScuLinkEvent::Answered`] with `waiter`.
    /// While the link is down the answer is an immediate [`Refusal::Unavailable`] (H.626.4
    /// 8.1: registrations fail closed while the CMU is unreachable).
    pub fn request(&mut self, now: Instant, request: ScRequest, waiter: W) {
        let kind = request.kind();
        if self.state == ScuState::Up {
            let t = self.config.timeouts;
            self.core.start(now, kind, &t, request.into_body(), waiter);
        } else {
            let response = ScResponse::refused(
                kind,
                Refusal::Unavailable,
                "the platform is unreachable; try again",
            );
            self.core
                .events
                .push_back(ScuLinkEvent::Answered { waiter, response });
        }
    }

    /// Sc: tells the CMU of a device's presence or addresses. Dropped while down (the
    /// devices held are announced again on [`ScuLinkEvent::Up`]).
    pub fn notify(&mut self, notice: ScNotice) {
        if self.state == ScuState::Up {
            let body = match notice {
                ScNotice::Presence(p) => ScuToCmu::Presence(p),
                ScNotice::Endpoints(e) => ScuToCmu::Endpoints(e),
            };
            self.core.send(None, body);
        }
    }

    /// Answers a [`ScuLinkEvent::Command`]; `false` if the CMU asked no such command on this
    /// connection (already answered, or asked before a reconnect).
    pub fn command_result(&mut self, re: u64, result: CommandOutcome) -> bool {
        self.core
            .answer(re, Kind::Command, ScuToCmu::CommandResult { result })
    }

    /// Answers a [`ScuLinkEvent::SelectMtu`].
    pub fn mtu_choice(&mut self, re: u64, choice: MtuChoice) -> bool {
        self.core
            .answer(re, Kind::SelectMtu, ScuToCmu::MtuChoice { choice })
    }

    /// Feeds one frame from the CMU. A protocol violation takes the link down (waiting
    /// requests fail) and is returned; the driver closes the connection.
    pub fn handle_input(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        if self.state == ScuState::Down {
            return Ok(());
        }
        let result = decode::<CmuToScu>(frame)
            .map_err(LinkError::from)
            .and_then(|env| self.on_message(env));
        if let Err(e) = &result {
            self.link_lost(&format!("bad message from the CMU: {e}"));
        }
        result
    }

    fn on_message(&mut self, env: Envelope<CmuToScu>) -> Result<(), LinkError> {
        let what = env.body.name();
        if let ScuState::AwaitWelcome { .. } = self.state {
            return match env.body {
                CmuToScu::NodeWelcome => {
                    self.state = ScuState::Up;
                    self.core.events.push_back(ScuLinkEvent::Up);
                    Ok(())
                }
                CmuToScu::NodeRefused { message } => {
                    self.link_lost(&format!("the CMU refused this node: {message}"));
                    Ok(())
                }
                _ => Err(LinkError::Unexpected(what, "awaiting node_welcome")),
            };
        }
        let response = match env.body {
            CmuToScu::DeviceVerdict { verdict } => ScResponse::Verdict(verdict),
            CmuToScu::PlayVerdict { verdict } => ScResponse::Play(verdict),
            CmuToScu::Answer { answer } => ScResponse::Answer(answer),
            CmuToScu::Command { device_id, command } => {
                if self.core.asked(env.id, Kind::Command, what)? {
                    let id = env.id;
                    self.core.events.push_back(ScuLinkEvent::Command {
                        id,
                        device_id,
                        command,
                    });
                }
                return Ok(());
            }
            CmuToScu::SelectMtu { device_id } => {
                if self.core.asked(env.id, Kind::SelectMtu, what)? {
                    let id = env.id;
                    self.core
                        .events
                        .push_back(ScuLinkEvent::SelectMtu { id, device_id });
                }
                return Ok(());
            }
            CmuToScu::Revoke(r) => {
                let notice = CmNotice::Revoke(r);
                self.core.events.push_back(ScuLinkEvent::Notice(notice));
                return Ok(());
            }
            CmuToScu::Kick(k) => {
                let notice = CmNotice::Kick(k);
                self.core.events.push_back(ScuLinkEvent::Notice(notice));
                return Ok(());
            }
            _ => return Err(LinkError::Unexpected(what, "an established node link")),
        };
        if let Some(waiter) = self.core.answered(env.re, response.kind(), what)? {
            self.core
                .events
                .push_back(ScuLinkEvent::Answered { waiter, response });
        }
        Ok(())
    }

    /// Time passed: requests past their deadline are answered [`Refusal::Timeout`]; a CMU
    /// that does not welcome us in time takes the link down.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let ScuState::AwaitWelcome { deadline } = self.state
            && now >= deadline
        {
            self.link_lost("the CMU did not welcome this node in time");
            return;
        }
        for w in self.core.expired(now) {
            let response = ScResponse::refused(
                w.kind,
                Refusal::Timeout,
                "the platform did not answer in time; try again",
            );
            self.core.events.push_back(ScuLinkEvent::Answered {
                waiter: w.waiter,
                response,
            });
        }
    }

    /// The connection is gone (closed, broken, silent): every waiting request is answered
    /// [`Refusal::Unavailable`] and [`ScuLinkEvent::Down`] is reported.
    pub fn link_lost(&mut self, reason: &str) {
        if self.state == ScuState::Down {
            return;
        }
        self.state = ScuState::Down;
        self.fail_all("the platform link dropped; try again");
        self.core.events.push_back(ScuLinkEvent::Down {
            reason: reason.to_owned(),
        });
    }

    fn fail_all(&mut self, message: &str) {
        for w in self.core.lost() {
            let response = ScResponse::refused(w.kind, Refusal::Unavailable, message);
            self.core.events.push_back(ScuLinkEvent::Answered {
                waiter: w.waiter,
                response,
            });
        }
    }

    /// The next frame to send to the CMU.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.core.out.pop_front()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<ScuLinkEvent<W>> {
        self.core.events.pop_front()
    }

    /// When [`ScuLink::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let welcome = match self.state {
            ScuState::AwaitWelcome { deadline } => Some(deadline),
            _ => None,
        };
        [welcome, self.core.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}
