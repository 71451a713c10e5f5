//! A STUN (RFC 8489) and TURN (RFC 8656) server as a sans-IO state machine: the MTU's
//! relay (H.626.4 7.2, reference points Mp/Pd/Mn/Nd).
//!
//! [`TurnServer`] owns allocations, permissions, channel bindings, nonces and quotas; the
//! driver owns sockets and the clock. Nothing here reads the time, draws random numbers
//! or touches the network.
//!
//! # Run loop
//!
//! ```text
//! client datagram / frame ──► handle_client(now, tuple, bytes, &mut out) ─┬─ Output::Reply       → send `out` to the client
//!                                                                          ├─ Output::ToPeer      → send `data` from relay socket `relay` to `peer`
//!                                                                          └─ Output::BindRelay   → bind a relay socket, then relay_bound(..)
//! relay socket datagram ──────► handle_peer(now, relay, peer, bytes, &mut out) → Some(tuple): send `out` to that client
//! TCP/TLS connection closed ──► client_closed(now, tuple)
//! timer (poll_timeout) ───────► handle_timeout(now)
//! after each call ────────────► poll_event(): Event::AllocationClosed → close that relay socket
//! ```
//!
//! The relay fast path (ChannelData and Send/Data indications) decodes in place and
//! allocates nothing: the payload to a peer is a slice of the input, the frame to a
//! client is written into the caller's reusable buffer.
//!
//! # Authentication
//!
//! Every TURN request uses the long-term mechanism (RFC 8489 9.2) with coturn-style
//! REST credentials ([`crate::auth::RestSecret`]): a request without integrity gets 401
//! with REALM and NONCE; nonces are stateless (issue time + HMAC over it and the client
//! address, keyed by [`ServerConfig::nonce_key`]) and go stale after
//! [`ServerConfig::nonce_lifetime`] (438). MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256
//! are both accepted with the MD5 long-term key; the response uses the same one.
//! Binding requests need no credential.
//!
//! # Peers (docs/security.md D8)
//!
//! A peer must pass the [`PeerPolicy`] and, for a session-scoped credential
//! ([`crate::auth::Scope`]), be in its peer list; otherwise CreatePermission and
//! ChannelBind answer 403. With [`ServerConfig::require_scoped`] an unscoped credential
//! cannot even allocate (403).
//!
//! # Not implemented
//!
//! TCP relaying (RFC 6062), dual allocations (ADDITIONAL-ADDRESS-FAMILY is ignored),
//! EVEN-PORT with the R bit and RESERVATION-TOKEN (508), the 5-minute quarantine of an
//! expired channel number (RFC 8656 12), and PASSWORD-ALGORITHMS negotiation (MD5 keys
//! only).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::auth::{RestSecret, RestUsername, Scope};
use crate::framing::{self, Transport};
use crate::message::{
    Attribute, Class, ErrorCode, IntegrityAlgorithm, MAGIC_COOKIE, Message, Method, TransactionId,
    attr, message_type, verify_fingerprint, verify_integrity,
};
use crate::policy::PeerPolicy;

mod requests;
mod state;
mod stats;
#[cfg(test)]
mod tests;

use state::{Allocation, Channel, TokenBucket};
pub use state::{AllocationLedger, QuotaRefusal};
pub use stats::{Metric, Stats};

/// The transport between client and server (RFC 8656 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientTransport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl ClientTransport {
    /// How ChannelData is padded on this transport (RFC 8656 12.5).
    pub fn framing(self) -> Transport {
        match self {
            Self::Udp => Transport::Udp,
            Self::Tcp | Self::Tls => Transport::Stream,
        }
    }
}

/// The client's 5-tuple: transport, client address, server address (RFC 8656 2). An
/// allocation is keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// The transport.
    pub transport: ClientTransport,
    /// The client's address as the server sees it.
    pub client: SocketAddr,
    /// The server address the client talks to.
    pub server: SocketAddr,
}

/// Names one allocation's relay socket for the driver. The index is small and dense, so
/// drivers can keep sockets in a `Vec`; the generation tells a reused index apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayId {
    index: u32,
    generation: u32,
}

impl RelayId {
    /// A dense index (reused after the allocation is gone).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// The address family of a relayed transport address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayFamily {
    /// IPv4 (the default, RFC 8656 7.2).
    V4,
    /// IPv6 (REQUESTED-ADDRESS-FAMILY).
    V6,
}

/// Why the driver could not bind a relay socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindError {
    /// No free port (508 Insufficient Capacity).
    Capacity,
    /// The relay has no address of that family (440).
    FamilyUnsupported,
}

/// What the driver does after [`TurnServer::handle_client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Output<'a> {
    /// Nothing to send.
    None,
    /// Send the output buffer to the client that sent the input.
    Reply,
    /// Send `data` from the relay socket of `relay` to `peer`.
    ToPeer {
        /// The allocation's relay socket.
        relay: RelayId,
        /// The peer.
        peer: SocketAddr,
        /// The application data (a slice of the input).
        data: &'a [u8],
    },
    /// Bind a relay socket of `family` (an even port if `even_port`) and report it with
    /// [`TurnServer::relay_bound`] before handling more input from this client.
    BindRelay {
        /// The family.
        family: RelayFamily,
        /// Whether the port must be even (EVEN-PORT without R, RFC 8656 7.2).
        even_port: bool,
    },
}

/// Something the driver must act on, from [`TurnServer::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The allocation is gone (expired, refreshed to 0, connection closed): close its
    /// relay socket.
    AllocationClosed {
        /// The relay.
        relay: RelayId,
        /// The client it belonged to.
        tuple: FiveTuple,
    },
}

/// Resource limits (RFC 8656 7.2: 486 Allocation Quota Reached, 508 Insufficient
/// Capacity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    /// Allocations in the whole process. Default 10 000.
    pub max_allocations: u32,
    /// Allocations per user (the user part of the REST username). Default 16.
    pub max_allocations_per_user: u32,
    /// Permissions per allocation. Default 32.
    pub max_permissions: usize,
    /// Channel bindings per allocation. Default 32.
    pub max_channels: usize,
    /// Relayed bytes per second per allocation, both directions together; `None` means
    /// no cap. Default 5 MB/s (40 Mbit/s, several HD streams).
    pub bandwidth: Option<u64>,
    /// Bucket depth in bytes; `None` means one second's worth of `bandwidth`.
    pub burst: Option<u64>,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_allocations: 10_000,
            max_allocations_per_user: 16,
            max_permissions: 32,
            max_channels: 32,
            bandwidth: Some(5_000_000),
            burst: None,
        }
    }
}

/// Configuration of a [`TurnServer`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// REALM (RFC 8489 14.9).
    pub realm: String,
    /// The REST secret shared with the credential issuer (the CMU).
    pub secret: RestSecret,
    /// Which peers may be reached at all.
    pub policy: PeerPolicy,
    /// Refuse credentials without a session scope (docs/security.md D8). Default `true`.
    pub require_scoped: bool,
    /// Key for the stateless nonces; the driver fills it from a CSPRNG.
    pub nonce_key: [u8; 32],
    /// How long a nonce stays valid (438 after). Default 600 s.
    pub nonce_lifetime: Duration,
    /// Allocation lifetime when the client asks for less or nothing. Default 600 s.
    pub default_lifetime: Duration,
    /// The longest allocation lifetime granted. Default 3600 s.
    pub max_lifetime: Duration,
    /// Permission lifetime (RFC 8656 9: 300 s).
    pub permission_lifetime: Duration,
    /// Channel binding lifetime (RFC 8656 12: 600 s).
    pub channel_lifetime: Duration,
    /// Quotas.
    pub quotas: Quotas,
    /// Allocation counts shared by every server of the process.
    pub ledger: Arc<AllocationLedger>,
    /// SOFTWARE in responses; `None` sends none.
    pub software: Option<String>,
    /// Accept channel numbers 0x4000-0x7FFF as RFC 5766 did (coturn's clients pick from
    /// that range) instead of RFC 8656's 0x4000-0x4FFF. Default `true`.
    pub rfc5766_channels: bool,
}

impl ServerConfig {
    /// A configuration with the defaults above.
    pub fn new(realm: impl Into<String>, secret: RestSecret, nonce_key: [u8; 32]) -> Self {
        Self {
            realm: realm.into(),
            secret,
            policy: PeerPolicy::new(),
            require_scoped: true,
            nonce_key,
            nonce_lifetime: Duration::from_secs(600),
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            quotas: Quotas::default(),
            ledger: Arc::new(AllocationLedger::new()),
            software: None,
            rfc5766_channels: true,
        }
    }

    fn channel_ok(&self, channel: u16) -> bool {
        let max = if self.rfc5766_channels {
            0x7FFF
        } else {
            framing::MAX_CHANNEL
        };
        (framing::MIN_CHANNEL..=max).contains(&channel)
    }
}

/// The length of the first frame of a TCP/TLS stream: like [`framing::next_frame`], but
/// any channel number 0x4000-0x7FFF frames a ChannelData message (RFC 5766 range), so the
/// server can take what [`ServerConfig::rfc5766_channels`] admits.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, crate::Error> {
    match buf.first() {
        Some(b) if b >> 6 == 0b01 => {
            if buf.len() < framing::CHANNEL_HEADER_LEN {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            Ok(Some(framing::CHANNEL_HEADER_LEN + len.next_multiple_of(4)))
        }
        _ => Ok(framing::next_frame(buf)?.map(|(_, len)| len)),
    }
}

/// The TURN server state machine. See the [module docs](self) for the run loop.
#[derive(Debug)]
pub struct TurnServer {
    config: ServerConfig,
    base: Instant,
    unix_base: u64,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_tuple: HashMap<FiveTuple, u32>,
    pending: HashMap<FiveTuple, Pending>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    events: VecDeque<Event>,
    stats: Stats,
    indications: u64,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    alloc: Option<Allocation>,
}

/// A request that passed authentication.
#[derive(Debug)]
struct Authed {
    username: String,
    user: String,
    key: [u8; 16],
    alg: IntegrityAlgorithm,
    scope: Option<Scope>,
}

impl Authed {
    fn seal(&self) -> Option<(IntegrityAlgorithm, &[u8])> {
        Some((self.alg, &self.key[..]))
    }
}

/// An Allocate waiting for its relay socket.
#[derive(Debug)]
struct Pending {
    auth: Authed,
    request: Message,
    lifetime: Duration,
}

type HmacSha256 = Hmac<sha2::Sha256>;

impl TurnServer {
    /// A server. `now` and `unix_now` (seconds since the Unix epoch) anchor the clock:
    /// credential expiry and nonce age are judged at `unix_now + (t - now)` for a later
    /// instant `t`.
    pub fn new(config: ServerConfig, now: Instant, unix_now: u64) -> Self {
        Self {
            config,
            base: now,
            unix_base: unix_now,
            slots: Vec::new(),
            free: Vec::new(),
            by_tuple: HashMap::new(),
            pending: HashMap::new(),
            timers: BinaryHeap::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            indications: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The relayed address of the allocation of `tuple`, if it has one.
    pub fn allocation(&self, tuple: &FiveTuple) -> Option<SocketAddr> {
        let idx = *self.by_tuple.get(tuple)?;
        Some(self.slots[idx as usize].alloc.as_ref()?.relay)
    }

    /// Handle one UDP datagram or one stream frame (cut with
    /// [`framing::FrameSplitter`]) from a client. `out` is cleared and, for
    /// [`Output::Reply`], holds the message to send back.
    pub fn handle_client<'a>(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        bytes: &'a [u8],
        out: &mut Vec<u8>,
    ) -> Output<'a> {
        out.clear();
        match bytes.first().map(|b| b >> 6) {
            Some(0b01) => self.channel_data(now, &tuple, bytes),
            Some(0b00) => {
                if bytes.len() >= 4
                    && u16::from_be_bytes([bytes[0], bytes[1]])
                        == message_type(Class::Indication, Method::SEND)
                {
                    return self.send_indication(now, &tuple, bytes);
                }
                self.stun(now, tuple, bytes, out)
            }
            _ => {
                self.stats.malformed += 1;
                Output::None
            }
        }
    }

    /// Handle a datagram that arrived on the relay socket of `relay` from `peer`. When it
    /// returns a tuple, `out` holds the ChannelData message or Data indication to send to
    /// that client (RFC 8656 11.3, 12.6).
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: RelayId,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<FiveTuple> {
        out.clear();
        let Some(alloc) = self.alloc_mut(relay) else {
            self.stats.unpermitted_drops += 1;
            return None;
        };
        // RFC 8656 10.3 (permissions) and 11.3.
        if !alloc.permitted(peer.ip(), now) || alloc.expires <= now {
            self.stats.unpermitted_drops += 1;
            return None;
        }
        if !alloc.spend(now, data.len()) {
            self.stats.bandwidth_drops += 1;
            return None;
        }
        let tuple = alloc.tuple;
        let channel = alloc
            .channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
            .map(|c| c.number);
        if let Some(number) = channel {
            // RFC 8656 12.6: ChannelData, padded on streams.
            let Ok(len) = u16::try_from(data.len()) else {
                self.stats.unpermitted_drops += 1;
                return None;
            };
            out.extend_from_slice(&number.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(data);
            if tuple.transport != ClientTransport::Udp {
                out.resize(out.len().next_multiple_of(4), 0);
            }
        } else {
            // RFC 8656 11.3: Data indication with XOR-PEER-ADDRESS and DATA.
            if data.len() > 0xFFFF - 64 {
                self.stats.unpermitted_drops += 1;
                return None;
            }
            self.indications = self.indications.wrapping_add(1);
            let mut tid = [0u8; 12];
            tid[..4].copy_from_slice(&self.config.nonce_key[..4]);
            tid[4..].copy_from_slice(&self.indications.to_be_bytes());
            write_data_indication(out, TransactionId(tid), peer, data);
        }
        self.stats.packets_to_client += 1;
        self.stats.bytes_to_client += data.len() as u64;
        Some(tuple)
    }

    /// Report the relay socket asked for by [`Output::BindRelay`]: its address, or why
    /// none could be bound. `out` receives the Allocate response for the client; the
    /// returned id names the new allocation's relay.
    pub fn relay_bound(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        result: Result<SocketAddr, BindError>,
        out: &mut Vec<u8>,
    ) -> Option<RelayId> {
        out.clear();
        let p = self.pending.remove(&tuple)?;
        let relay = match result {
            Ok(a) => a,
            Err(e) => {
                self.config.ledger.release(&p.auth.user);
                let (code, reason) = match e {
                    BindError::Capacity => {
                        self.stats.quota_refusals += 1;
                        (ErrorCode::INSUFFICIENT_CAPACITY, "Insufficient Capacity")
                    }
                    BindError::FamilyUnsupported => (
                        ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
                        "Address Family not Supported",
                    ),
                };
                let _ = self.error(out, &p.request, code, reason, p.auth.seal());
                return None;
            }
        };
        let bucket = self.config.quotas.bandwidth.map(|rate| {
            let burst = self.config.quotas.burst.unwrap_or(rate).max(1500);
            TokenBucket::new(rate, burst, now)
        });
        let alloc = Allocation {
            tuple,
            relay,
            username: p.auth.username.clone(),
            user: p.auth.user.clone(),
            key: p.auth.key,
            scope: p.auth.scope.clone(),
            expires: now + p.lifetime,
            allocate_txn: p.request.transaction_id,
            lifetime: p.lifetime,
            permissions: Vec::new(),
            channels: Vec::new(),
            bucket,
            scheduled: None,
        };
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.alloc = Some(alloc);
        let id = RelayId {
            index,
            generation: slot.generation,
        };
        self.by_tuple.insert(tuple, index);
        self.stats.allocations_active += 1;
        self.stats.allocations_total += 1;
        self.schedule(index);
        let _ = self.allocate_success(out, &p.request, &tuple, relay, p.lifetime, &p.auth);
        Some(id)
    }

    /// A TCP or TLS connection closed: its allocation goes with it (RFC 8656 3.1).
    pub fn client_closed(&mut self, _now: Instant, tuple: &FiveTuple) {
        if let Some(p) = self.pending.remove(tuple) {
            self.config.ledger.release(&p.auth.user);
        }
        if let Some(&idx) = self.by_tuple.get(tuple) {
            self.delete(idx);
        }
    }

    /// When [`Self::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Expire allocations, permissions and channels due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((t, idx, generation))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[idx as usize];
            if slot.generation != generation {
                continue;
            }
            let Some(alloc) = slot.alloc.as_mut() else {
                continue;
            };
            if alloc.scheduled != Some(t) {
                continue;
            }
            alloc.scheduled = None;
            if alloc.expires <= now {
                self.delete(idx);
                continue;
            }
            alloc.sweep(now);
            self.schedule(idx);
        }
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn alloc_mut(&mut self, relay: RelayId) -> Option<&mut Allocation> {
        let slot = self.slots.get_mut(relay.index as usize)?;
        if slot.generation != relay.generation {
            return None;
        }
        slot.alloc.as_mut()
    }

    fn relay_id(&self, idx: u32) -> RelayId {
        RelayId {
            index: idx,
            generation: self.slots[idx as usize].generation,
        }
    }

    /// Make sure a timer entry exists for the allocation's earliest deadline.
    fn schedule(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        let generation = slot.generation;
        let Some(alloc) = slot.alloc.as_mut() else {
            return;
        };
        let d = alloc.next_deadline();
        if alloc.scheduled.is_none_or(|s| d < s) {
            alloc.scheduled = Some(d);
            self.timers.push(Reverse((d, idx, generation)));
        }
    }

    fn delete(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        let Some(alloc) = slot.alloc.take() else {
            return;
        };
        let relay = RelayId {
            index: idx,
            generation: slot.generation,
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(idx);
        self.by_tuple.remove(&alloc.tuple);
        self.config.ledger.release(&alloc.user);
        self.stats.allocations_active = self.stats.allocations_active.saturating_sub(1);
        self.events.push_back(Event::AllocationClosed {
            relay,
            tuple: alloc.tuple,
        });
    }

    fn unix_now(&self, now: Instant) -> u64 {
        self.unix_base + now.saturating_duration_since(self.base).as_secs()
    }

    // ---- relay fast path ----

    /// RFC 8656 12.5: ChannelData from the client.
    fn channel_data<'a>(&mut self, now: Instant, tuple: &FiveTuple, bytes: &'a [u8]) -> Output<'a> {
        // RFC 8656 12.4: number, length, data; padding optional over UDP, required on
        // streams (12.5).
        let number = u16::from_be_bytes([bytes[0], bytes.get(1).copied().unwrap_or(0)]);
        let Some(l) = bytes.get(2..4) else {
            self.stats.malformed += 1;
            return Output::None;
        };
        let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
        let padded = (len + 4).next_multiple_of(4);
        let fits = match tuple.transport {
            ClientTransport::Udp => bytes.len() >= len + 4 && bytes.len() <= padded,
            _ => bytes.len() == padded,
        };
        if !fits || !self.config.channel_ok(number) {
            self.stats.malformed += 1;
            return Output::None;
        }
        let data = &bytes[4..4 + len];
        let Some(&idx) = self.by_tuple.get(tuple) else {
            self.stats.unpermitted_drops += 1;
            return Output::None;
        };
        let generation = self.slots[idx as usize].generation;
        let Some(alloc) = self.slots[idx as usize].alloc.as_mut() else {
            return Output::None;
        };
        let peer = alloc
            .channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
            .map(|c| c.peer);
        let Some(peer) = peer.filter(|p| alloc.permitted(p.ip(), now)) else {
            self.stats.unpermitted_drops += 1;
            return Output::None;
        };
        self.relay_out(now, idx, generation, peer, data)
    }

    /// RFC 8656 11.2: a Send indication, read in place.
    fn send_indication<'a>(
        &mut self,
        now: Instant,
        tuple: &FiveTuple,
        bytes: &'a [u8],
    ) -> Output<'a> {
        let Some((peer, data)) = scan_send(bytes) else {
            self.stats.malformed += 1;
            return Output::None;
        };
        let Some(&idx) = self.by_tuple.get(tuple) else {
            self.stats.unpermitted_drops += 1;
            return Output::None;
        };
        let generation = self.slots[idx as usize].generation;
        let Some(alloc) = self.slots[idx as usize].alloc.as_ref() else {
            return Output::None;
        };
        if !alloc.permitted(peer.ip(), now) {
            self.stats.unpermitted_drops += 1;
            return Output::None;
        }
        self.relay_out(now, idx, generation, peer, data)
    }

    fn relay_out<'a>(
        &mut self,
        now: Instant,
        idx: u32,
        generation: u32,
        peer: SocketAddr,
        data: &'a [u8],
    ) -> Output<'a> {
        let Some(alloc) = self.slots[idx as usize].alloc.as_mut() else {
            return Output::None;
        };
        if alloc.expires <= now {
            self.stats.unpermitted_drops += 1;
            return Output::None;
        }
        if !alloc.spend(now, data.len()) {
            self.stats.bandwidth_drops += 1;
            return Output::None;
        }
        self.stats.packets_to_peer += 1;
        self.stats.bytes_to_peer += data.len() as u64;
        Output::ToPeer {
            relay: RelayId {
                index: idx,
                generation,
            },
            peer,
            data,
        }
    }

    // ---- responses ----

    fn success<'a>(&self, out: &mut Vec<u8>, req: &Message, auth: &Authed) -> Output<'a> {
        let mut m = Message::new(Class::SuccessResponse, req.method, req.transaction_id);
        self.add_software(&mut m);
        self.emit(out, &m, auth.seal())
    }

    fn error<'a>(
        &self,
        out: &mut Vec<u8>,
        req: &Message,
        code: u16,
        reason: &str,
        seal: Option<(IntegrityAlgorithm, &[u8])>,
    ) -> Output<'a> {
        let mut m = Message::new(Class::ErrorResponse, req.method, req.transaction_id)
            .with(Attribute::ErrorCode(ErrorCode::new(code, reason)));
        self.add_software(&mut m);
        self.emit(out, &m, seal)
    }

    /// 401 or 438 with REALM and a fresh NONCE (RFC 8489 9.2.4).
    fn challenge<'a>(
        &self,
        now: Instant,
        tuple: &FiveTuple,
        out: &mut Vec<u8>,
        req: &Message,
        code: u16,
        reason: &str,
    ) -> Output<'a> {
        let mut m = Message::new(Class::ErrorResponse, req.method, req.transaction_id)
            .with(Attribute::ErrorCode(ErrorCode::new(code, reason)))
            .with(Attribute::Realm(self.config.realm.clone()))
            .with(Attribute::Nonce(self.nonce(now, tuple)));
        self.add_software(&mut m);
        self.emit(out, &m, None)
    }

    fn add_software(&self, m: &mut Message) {
        if let Some(s) = &self.config.software {
            m.attributes.push(Attribute::Software(s.clone()));
        }
    }

    fn emit<'a>(
        &self,
        out: &mut Vec<u8>,
        m: &Message,
        seal: Option<(IntegrityAlgorithm, &[u8])>,
    ) -> Output<'a> {
        out.clear();
        match m.encode_sealed(seal, true) {
            Ok(b) => {
                out.extend_from_slice(&b);
                Output::Reply
            }
            Err(_) => Output::None,
        }
    }

    // ---- nonces ----

    /// `<issue time, 16 hex digits><HMAC-SHA256(key, time | client), 16 hex digits>`.
    fn nonce(&self, now: Instant, tuple: &FiveTuple) -> String {
        let t = self.unix_now(now);
        let mut s = format!("{t:016x}");
        for b in self.nonce_mac(t, tuple) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    fn nonce_mac(&self, t: u64, tuple: &FiveTuple) -> [u8; 8] {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.config.nonce_key) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(&t.to_be_bytes());
        match tuple.client.ip() {
            IpAddr::V4(ip) => mac.update(&ip.octets()),
            IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        mac.update(&tuple.client.port().to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0; 8];
        out.copy_from_slice(&full[..8]);
        out
    }

    fn nonce_valid(&self, now: Instant, tuple: &FiveTuple, nonce: &str) -> bool {
        if nonce.len() != 32 || !nonce.is_ascii() {
            return false;
        }
        let Ok(t) = u64::from_str_radix(&nonce[..16], 16) else {
            return false;
        };
        let mut got = [0u8; 8];
        for (i, b) in got.iter_mut().enumerate() {
            let Ok(v) = u8::from_str_radix(&nonce[16 + 2 * i..18 + 2 * i], 16) else {
                return false;
            };
            *b = v;
        }
        if !bool::from(self.nonce_mac(t, tuple).ct_eq(&got)) {
            return false;
        }
        let unix = self.unix_now(now);
        t <= unix && unix - t < self.config.nonce_lifetime.as_secs()
    }

    /// The relay of the allocation at a dense index, for tests and drivers that iterate.
    pub fn relay_of(&self, tuple: &FiveTuple) -> Option<RelayId> {
        self.by_tuple.get(tuple).map(|&i| self.relay_id(i))
    }
}

fn scope_of(rest: &RestUsername<'_>) -> Result<Option<Scope>, crate::Error> {
    rest.scope()
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// Find XOR-PEER-ADDRESS and DATA in a Send indication without allocating
/// (RFC 8656 11.2). `None` if the message is malformed, lacks either attribute, or
/// carries an unknown comprehension-required attribute.
fn scan_send(b: &[u8]) -> Option<(SocketAddr, &[u8])> {
    if b.len() < 20 || b[4..8] != MAGIC_COOKIE.to_be_bytes() {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if len % 4 != 0 || b.len() != 20 + len {
        return None;
    }
    let mut off = 20;
    let mut peer = None;
    let mut data = None;
    while off + 4 <= b.len() {
        let typ = u16::from_be_bytes([b[off], b[off + 1]]);
        let alen = usize::from(u16::from_be_bytes([b[off + 2], b[off + 3]]));
        let start = off + 4;
        let end = start.checked_add(alen)?;
        let next = start + alen.next_multiple_of(4);
        if next > b.len() {
            return None;
        }
        let v = &b[start..end];
        match typ {
            attr::XOR_PEER_ADDRESS if peer.is_none() => peer = Some(xor_address(v, &b[4..20])?),
            attr::DATA if data.is_none() => data = Some(v),
            attr::FINGERPRINT => {
                verify_fingerprint(b).ok()?;
            }
            t if attr::is_comprehension_required(t) && !attr::is_known(t) => return None,
            _ => {}
        }
        off = next;
    }
    Some((peer?, data?))
}

/// Decode an XOR address value with `pad` = cookie + transaction id (RFC 8489 14.2).
fn xor_address(v: &[u8], pad: &[u8]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([v[2] ^ pad[0], v[3] ^ pad[1]]);
    let ip = match (v[1], v.len()) {
        (1, 8) => {
            let mut a = [0u8; 4];
            for i in 0..4 {
                a[i] = v[4 + i] ^ pad[i];
            }
            IpAddr::from(a)
        }
        (2, 20) => {
            let mut a = [0u8; 16];
            for i in 0..16 {
                a[i] = v[4 + i] ^ pad[i];
            }
            IpAddr::from(a)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Write a Data indication (RFC 8656 11.3) without building a [`Message`].
fn write_data_indication(out: &mut Vec<u8>, tid: TransactionId, peer: SocketAddr, data: &[u8]) {
    let addr_len = if peer.is_ipv4() { 8 } else { 20 };
    let body = 4 + addr_len + 4 + data.len().next_multiple_of(4);
    out.extend_from_slice(&message_type(Class::Indication, Method::DATA).to_be_bytes());
    out.extend_from_slice(&(body as u16).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(&tid.0);
    let mut pad = [0u8; 16];
    pad[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    pad[4..].copy_from_slice(&tid.0);
    out.extend_from_slice(&attr::XOR_PEER_ADDRESS.to_be_bytes());
    out.extend_from_slice(&(addr_len as u16).to_be_bytes());
    let port = peer.port().to_be_bytes();
    out.extend_from_slice(&[
        0,
        if peer.is_ipv4() { 1 } else { 2 },
        port[0] ^ pad[0],
        port[1] ^ pad[1],
    ]);
    match peer.ip() {
        IpAddr::V4(ip) => out.extend(ip.octets().iter().zip(pad).map(|(a, p)| a ^ p)),
        IpAddr::V6(ip) => out.extend(ip.octets().iter().zip(pad).map(|(a, p)| a ^ p)),
    }
    out.extend_from_slice(&attr::DATA.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}
