//! The CMU's end of one node link (Sc / Sm).

use std::time::Instant;

use subtle::ConstantTimeEq as _;

use super::{
    CmNotice, CmRequest, CmResponse, Core, LinkStats, ScNotice, ScRequest, ScResponse, ScTimeouts,
};
use crate::envelope::{Envelope, PROTOCOL_VERSION, decode};
use crate::link::LinkError;
use crate::refusal::Refusal;
use crate::sc::{CmuToScu, ScuToCmu};

/// Settings of the CMU's end of node links.
#[derive(Debug, Clone, Default)]
pub struct CmuPeerConfig {
    /// The node secrets the CMU accepts (any of them).
    pub secrets: Vec<String>,
    /// Request deadlines.
    pub timeouts: ScTimeouts,
}

/// What the CMU's end of one node link reports to its driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum CmuPeerEvent<W> {
    /// The node authenticated: record it in the [`RouteTable`](super::RouteTable) ([`RouteTable::node_up`](super::RouteTable::node_up)).
    NodeUp {
        /// Its id.
        node: String,
    },
    /// A node was refused (bad secret, node id or version); the link is closed. For the
    /// audit log.
    NodeRefused {
        /// The id it claimed.
        node: String,
        /// Why.
        reason: &'static str,
    },
    /// The node asks; answer with [`CmuPeer::respond`] and this `id` (after
    /// [`RouteTable::screen`](super::RouteTable::screen)).
    Request {
        /// The node's request id.
        id: u64,
        /// The request.
        request: ScRequest,
    },
    /// Sc: a device's presence or addresses on the node.
    Notice(ScNotice),
    /// The answer to one of our requests (or a failure made here).
    Answered {
        /// The waiter given to [`CmuPeer::request`].
        waiter: W,
        /// The answer, of the request's kind.
        response: CmResponse,
    },
    /// The link is over; drop the node's routes ([`RouteTable::node_down`](super::RouteTable::node_down)).
    Closed {
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CmuState {
    AwaitHello { deadline: Instant },
    Up { node: String },
    Closed,
}

/// The CMU's end of one node link.
pub struct CmuPeer<W> {
    config: CmuPeerConfig,
    state: CmuState,
    core: Core<W, CmuPeerEvent<W>>,
}

impl<W> CmuPeer<W> {
    /// A node connected at `now`; it must say hello within the welcome timeout.
    pub fn new(config: CmuPeerConfig, now: Instant) -> Self {
        let deadline = now + config.timeouts.welcome;
        Self {
            config,
            state: CmuState::AwaitHello { deadline },
            core: Core::new(),
        }
    }

    /// The authenticated node, once welcomed.
    pub fn node(&self) -> Option<&str> {
        match &self.state {
            CmuState::Up { node } => Some(node),
            _ => None,
        }
    }

    /// Whether the link is over.
    pub fn is_closed(&self) -> bool {
        self.state == CmuState::Closed
    }

    /// Counters since the node connected.
    pub fn stats(&self) -> LinkStats {
        self.core.stats
    }

    /// Asks the node; the answer comes back as [`CmuPeerEvent::Answered`] with `waiter`
    /// (at once, as a failure, when the link is not up).
    pub fn request(&mut self, now: Instant, request: CmRequest, waiter: W) {
        let kind = request.kind();
        if self.node().is_none() {
            let response = CmResponse::failed(kind, &Refusal::Unavailable);
            self.core
                .events
                .push_back(CmuPeerEvent::Answered { waiter, response });
            return;
        }
        let t = self.config.timeouts;
        let body = match request {
            CmRequest::Command { device_id, command } => CmuToScu::Command { device_id, command },
            CmRequest::SelectMtu { device_id } => CmuToScu::SelectMtu { device_id },
        };
        self.core.start(now, kind, &t, body, waiter);
    }

    /// Sm: a revocation or a kick for the node (docs/security.md D5; one device, one
    /// session).
    pub fn notify(&mut self, notice: CmNotice) {
        if self.node().is_some() {
            let body = match notice {
                CmNotice::Revoke(r) => CmuToScu::Revoke(r),
                CmNotice::Kick(k) => CmuToScu::Kick(k),
            };
            self.core.send(None, body);
        }
    }

    /// Answers a [`CmuPeerEvent::Request`]; `false` if the node asked no such request of
    /// this kind (already answered, or the response is of another kind).
    pub fn respond(&mut self, re: u64, response: ScResponse) -> bool {
        self.core.answer(re, response.kind(), response.into_body())
    }

    /// Feeds one frame from the node. A protocol violation closes the link (waiting
    /// requests fail) and is returned.
    pub fn handle_input(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        if self.state == CmuState::Closed {
            return Ok(());
        }
        let result = decode::<ScuToCmu>(frame)
            .map_err(LinkError::from)
            .and_then(|env| self.on_message(env));
        if let Err(e) = &result {
            self.close(&format!("bad message from the node: {e}"));
        }
        result
    }

    fn on_message(&mut self, env: Envelope<ScuToCmu>) -> Result<(), LinkError> {
        let what = env.body.name();
        if let CmuState::AwaitHello { .. } = self.state {
            let ScuToCmu::NodeHello {
                node,
                secret,
                versions,
            } = env.body
            else {
                return Err(LinkError::Unexpected(what, "awaiting node_hello"));
            };
            self.hello(node, &secret, &versions);
            return Ok(());
        }
        let (request, response) = match env.body {
            ScuToCmu::VerifyDevice(v) => (Some(ScRequest::Verify(v)), None),
            ScuToCmu::AuthorizePlay { device_id, check } => {
                (Some(ScRequest::Play { device_id, check }), None)
            }
            ScuToCmu::DeviceRequest { device_id, request } => {
                (Some(ScRequest::Device { device_id, request }), None)
            }
            ScuToCmu::CommandResult { result } => (None, Some(CmResponse::Command(result))),
            ScuToCmu::MtuChoice { choice } => (None, Some(CmResponse::Mtu(choice))),
            ScuToCmu::Presence(p) => {
                let notice = ScNotice::Presence(p);
                self.core.events.push_back(CmuPeerEvent::Notice(notice));
                return Ok(());
            }
            ScuToCmu::Endpoints(e) => {
                let notice = ScNotice::Endpoints(e);
                self.core.events.push_back(CmuPeerEvent::Notice(notice));
                return Ok(());
            }
            ScuToCmu::NodeHello { .. } => {
                return Err(LinkError::Unexpected(what, "an established node link"));
            }
        };
        if let Some(request) = request {
            if self.core.asked(env.id, request.kind(), what)? {
                let id = env.id;
                self.core
                    .events
                    .push_back(CmuPeerEvent::Request { id, request });
            }
        } else if let Some(response) = response
            && let Some(waiter) = self.core.answered(env.re, response.kind(), what)?
        {
            self.core
                .events
                .push_back(CmuPeerEvent::Answered { waiter, response });
        }
        Ok(())
    }

    /// Sc: the node authenticates with a configured secret (compared in constant time), a
    /// well-formed node id and a protocol version we speak.
    fn hello(&mut self, node: String, secret: &str, versions: &[u16]) {
        let secret_ok = self
            .config
            .secrets
            .iter()
            .any(|s| bool::from(s.as_bytes().ct_eq(secret.as_bytes())));
        let node_ok = node.parse::<peercam_base::NodeId>().is_ok();
        let reason = if !secret_ok {
            "bad node secret"
        } else if !node_ok || !versions.contains(&PROTOCOL_VERSION) {
            "bad node id or no common protocol version"
        } else {
            self.core.send(None, CmuToScu::NodeWelcome);
            self.core
                .events
                .push_back(CmuPeerEvent::NodeUp { node: node.clone() });
            self.state = CmuState::Up { node };
            return;
        };
        self.core.send(
            None,
            CmuToScu::NodeRefused {
                message: reason.into(),
            },
        );
        // The refusal is the last frame: keep it queued past the close.
        let refusal = self.core.out.pop_back();
        self.core
            .events
            .push_back(CmuPeerEvent::NodeRefused { node, reason });
        self.close(reason);
        self.core.out.extend(refusal);
    }

    /// Time passed: our requests past their deadline fail (a command as
    /// [`CommandOutcome::Timeout`](crate::sc::CommandOutcome::Timeout)); a node that does not say hello in time is dropped.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let CmuState::AwaitHello { deadline } = self.state
            && now >= deadline
        {
            self.close("the node did not say hello in time");
            return;
        }
        for w in self.core.expired(now) {
            let response = CmResponse::failed(w.kind, &Refusal::Timeout);
            self.core.events.push_back(CmuPeerEvent::Answered {
                waiter: w.waiter,
                response,
            });
        }
    }

    /// The connection is over: our waiting requests fail (a command as
    /// [`CommandOutcome::NotConnected`](crate::sc::CommandOutcome::NotConnected)) and [`CmuPeerEvent::Closed`] is reported once.
    pub fn close(&mut self, reason: &str) {
        if self.state == CmuState::Closed {
            return;
        }
        self.state = CmuState::Closed;
        for w in self.core.lost() {
            let response = CmResponse::failed(w.kind, &Refusal::Unavailable);
            self.core.events.push_back(CmuPeerEvent::Answered {
                waiter: w.waiter,
                response,
            });
        }
        self.core.events.push_back(CmuPeerEvent::Closed {
            reason: reason.to_owned(),
        });
    }

    /// The next frame to send to the node.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.core.out.pop_front()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<CmuPeerEvent<W>> {
        self.core.events.pop_front()
    }

    /// When [`CmuPeer::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hello = match self.state {
            CmuState::AwaitHello { deadline } => Some(deadline),
            _ => None,
        };
        [hello, self.core.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}
