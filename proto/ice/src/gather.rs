//! Server-reflexive candidates from a STUN server (RFC 8445 5.1.1.2).
//!
//! A [`Gatherer`] sends one STUN Binding request per host candidate to the server and
//! turns each XOR-MAPPED-ADDRESS into a server-reflexive candidate whose base is that host
//! candidate. Requests are retransmitted (RFC 8489 6.2.1) until a response comes or the
//! attempts run out; a base that gets no answer simply yields no candidate. The
//! [`crate::Agent`] embeds one (see [`crate::Agent::gather_server_reflexive`]); the tokio
//! driver uses one on its own before the agent exists.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peercam_stun::message::{Class, Message, Method, TransactionId, looks_like_stun};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Candidate, CandidateKind, Transmit};

/// Retransmission settings of a [`Gatherer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatherConfig {
    /// The first retransmission timeout; it doubles after each send (RFC 8489 6.2.1).
    /// Default 250 ms.
    pub rto: Duration,
    /// How many requests to send per base before giving up. Default 4, so a silent
    /// server is given up on after 250 + 500 + 1000 + 2000 ms = 3.75 s.
    pub max_sends: u32,
}

impl Default for GatherConfig {
    fn default() -> Self {
        Self {
            rto: Duration::from_millis(250),
            max_sends: 4,
        }
    }
}

/// Gathers server-reflexive candidates for a set of host candidates (sans-IO).
#[derive(Debug)]
pub struct Gatherer {
    server: SocketAddr,
    config: GatherConfig,
    probes: Vec<Probe>,
    found: Vec<Candidate>,
    transmits: VecDeque<Transmit>,
}

#[derive(Debug)]
struct Probe {
    base: SocketAddr,
    local_preference: u16,
    tid: TransactionId,
    bytes: Vec<u8>,
    sends: u32,
    rto: Duration,
    next_at: Instant,
    done: bool,
}

impl Gatherer {
    /// Start gathering: one probe per host candidate of the server's address family.
    /// `seed` makes the transaction ids.
    pub fn new(
        server: SocketAddr,
        hosts: &[Candidate],
        config: GatherConfig,
        seed: [u8; 32],
        now: Instant,
    ) -> Self {
        let mut rng = StdRng::from_seed(seed);
        let mut probes: Vec<Probe> = Vec::new();
        for h in hosts {
            if h.kind != CandidateKind::Host
                || h.addr.is_ipv4() != server.is_ipv4()
                || probes.iter().any(|p| p.base == h.addr)
            {
                continue;
            }
            let tid = TransactionId(rng.random());
            let bytes = Message::new(Class::Request, Method::BINDING, tid)
                .encode_sealed(None, true)
                .unwrap_or_default();
            probes.push(Probe {
                base: h.addr,
                local_preference: h.local_preference(),
                tid,
                bytes,
                sends: 0,
                rto: config.rto,
                next_at: now,
                done: false,
            });
        }
        let mut g = Self {
            server,
            config,
            probes,
            found: Vec::new(),
            transmits: VecDeque::new(),
        };
        g.handle_timeout(now);
        g
    }

    /// The STUN server.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Offer a received datagram. Returns true if it was the answer to one of the probes
    /// (and so consumed); anything else is left to the caller.
    pub fn handle_receive(&mut self, local: SocketAddr, from: SocketAddr, bytes: &[u8]) -> bool {
        if from != self.server || !looks_like_stun(bytes) {
            return false;
        }
        let Ok(msg) = Message::decode(bytes) else {
            return false;
        };
        if msg.method != Method::BINDING
            || !matches!(msg.class, Class::SuccessResponse | Class::ErrorResponse)
        {
            return false;
        }
        let Some(probe) = self
            .probes
            .iter_mut()
            .find(|p| p.tid == msg.transaction_id && !p.done)
        else {
            return false;
        };
        let _ = local; // the transaction id already names the base
        probe.done = true;
        if msg.class == Class::SuccessResponse
            && let Some(mapped) = msg.xor_mapped_address().or_else(|| msg.mapped_address())
            && mapped != probe.base
        {
            // RFC 8445 5.1.3: a reflexive address equal to its base is redundant.
            let c = Candidate::server_reflexive(
                mapped,
                probe.base,
                self.server,
                probe.local_preference,
            );
            if !self
                .found
                .iter()
                .any(|f| f.addr == c.addr && f.related == c.related)
            {
                self.found.push(c);
            }
        }
        true
    }

    /// Retransmit due probes and give up on exhausted ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        for p in &mut self.probes {
            if p.done || p.next_at > now {
                continue;
            }
            if p.sends >= self.config.max_sends {
                p.done = true;
                continue;
            }
            self.transmits.push_back(Transmit {
                from_local: p.base,
                to: self.server,
                bytes: p.bytes.clone(),
            });
            p.sends += 1;
            // After the last send, wait one more RTO for the answer.
            p.next_at = now + p.rto;
            p.rto = p.rto.saturating_mul(2);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Self::handle_timeout`] wants to run next; `None` when done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.probes
            .iter()
            .filter(|p| !p.done)
            .map(|p| p.next_at)
            .min()
    }

    /// Whether every probe has been answered or given up on.
    pub fn is_done(&self) -> bool {
        self.probes.iter().all(|p| p.done)
    }

    /// The server-reflexive candidates found so far.
    pub fn candidates(&self) -> &[Candidate] {
        &self.found
    }
}

#[cfg(test)]
mod tests {
    use peercam_stun::message::Attribute;

    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // a test needs some Instant to start from
    fn one_answer_one_candidate_and_silence_gives_up() {
        let now = Instant::now();
        let server: SocketAddr = "198.51.100.1:3478".parse().unwrap();
        let h1 = Candidate::host("10.0.0.2:5000".parse().unwrap(), 65535);
        let h2 = Candidate::host("10.0.1.2:5000".parse().unwrap(), 65534);
        let h6 = Candidate::host("[fd00::2]:5000".parse().unwrap(), 65533);
        let mut g = Gatherer::new(
            server,
            &[h1.clone(), h2, h6],
            GatherConfig::default(),
            [1; 32],
            now,
        );
        let t1 = g.poll_transmit().unwrap();
        let t2 = g.poll_transmit().unwrap();
        assert!(
            g.poll_transmit().is_none(),
            "no IPv6 probe to an IPv4 server"
        );
        assert_eq!((t1.from_local, t1.to), (h1.addr, server));
        let req = Message::decode(&t1.bytes).unwrap();
        let mapped: SocketAddr = "203.0.113.5:61000".parse().unwrap();
        let resp = Message::new(Class::SuccessResponse, Method::BINDING, req.transaction_id)
            .with(Attribute::XorMappedAddress(mapped))
            .encode()
            .unwrap();
        assert!(!g.handle_receive(h1.addr, "198.51.100.2:3478".parse().unwrap(), &resp));
        assert!(g.handle_receive(h1.addr, server, &resp));
        assert!(!g.handle_receive(h1.addr, server, &resp), "answered once");
        assert_eq!(g.candidates().len(), 1);
        assert_eq!(g.candidates()[0].addr, mapped);
        assert_eq!(g.candidates()[0].base(), h1.addr);
        let _ = t2;
        // The second base never hears back: 4 sends, then done.
        let mut sends = 1;
        while let Some(at) = g.poll_timeout() {
            g.handle_timeout(at);
            while g.poll_transmit().is_some() {
                sends += 1;
            }
        }
        assert_eq!(sends, 4);
        assert!(g.is_done());
    }
}
