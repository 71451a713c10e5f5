//! An in-process virtual network in virtual time: LANs behind NAT routers with the
//! RFC 4787 behaviours, an "internet" with latency and loss, a STUN server, and a harness
//! that runs two ICE agents over it.
//!
//! Addresses: router `r` has WAN address 203.0.113.(r+1) and LAN 10.0.(r+1).0/24, its host
//! is 10.0.(r+1).2; a host without NAT is 198.51.100.(r+1); the STUN server is
//! 192.0.2.1:3478. The internet drops packets to private addresses.
//!
//! NAT model (RFC 4787):
//! - mapping (4.1): endpoint-independent = one external port per internal address;
//!   address-dependent = one per (internal, destination IP); address-and-port-dependent =
//!   one per (internal, destination IP and port). Ports are allocated sequentially from a
//!   per-router start, never preserved.
//! - filtering (5): endpoint-independent = any source may reach a live mapping;
//!   address-dependent = only IPs the mapping has sent to; address-and-port-dependent =
//!   only IP:ports it has sent to.
//! - a mapping lives `lifetime` after its last outbound packet (REQ-6: only outbound
//!   refreshes); its filter permissions live as long as the mapping.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::disallowed_methods,
    clippy::print_stdout
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use peercam_ice::{Agent, Candidate, Config, Credentials, Event, Role};
use peercam_stun::message::{Attribute, Class, Message, Method};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// RFC 4787 4.1 mapping behaviour, also used for 5 filtering behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

pub use Behaviour::{
    AddressAndPortDependent as Apd, AddressDependent as Ad, EndpointIndependent as Ei,
};

impl Behaviour {
    pub const ALL: [Self; 3] = [Ei, Ad, Apd];

    fn short(self) -> &'static str {
        match self {
            Ei => "EI",
            Ad => "AD",
            Apd => "APD",
        }
    }
}

/// A NAT's behaviour: mapping x filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatType {
    pub mapping: Behaviour,
    pub filtering: Behaviour,
}

/// `None` is a host on the internet without NAT.
pub type Site = Option<NatType>;

pub fn name(site: Site) -> String {
    match site {
        None => "none".into(),
        Some(n) => format!("{}map/{}filt", n.mapping.short(), n.filtering.short()),
    }
}

/// All ten sites: no NAT plus the nine NAT types.
pub fn all_sites() -> Vec<Site> {
    let mut v = vec![None];
    for m in Behaviour::ALL {
        for f in Behaviour::ALL {
            v.push(Some(NatType {
                mapping: m,
                filtering: f,
            }));
        }
    }
    v
}

#[derive(Debug)]
struct Mapping {
    internal: SocketAddr,
    /// The destination IP (AD) or IP:port (APD) the mapping is keyed on; `None` for EI.
    key: Option<SocketAddr>,
    external_port: u16,
    last_out: Instant,
    sent_to: Vec<SocketAddr>,
}

#[derive(Debug)]
pub struct Router {
    pub wan: IpAddr,
    lan: [u8; 3],
    pub nat: NatType,
    pub lifetime: Duration,
    next_port: u16,
    mappings: Vec<Mapping>,
    /// Drops everything in both directions (the path died).
    pub dead: bool,
}

impl Router {
    fn in_lan(&self, ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(v) if v.octets()[..3] == self.lan)
    }

    fn expire(&mut self, now: Instant) {
        let lifetime = self.lifetime;
        self.mappings.retain(|m| now < m.last_out + lifetime);
    }

    fn outbound(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr) -> SocketAddr {
        self.expire(now);
        let key = match self.nat.mapping {
            Ei => None,
            Ad => Some(SocketAddr::new(dst.ip(), 0)),
            Apd => Some(dst),
        };
        let i = match self
            .mappings
            .iter()
            .position(|m| m.internal == src && m.key == key)
        {
            Some(i) => i,
            None => {
                self.next_port += 1;
                self.mappings.push(Mapping {
                    internal: src,
                    key,
                    external_port: self.next_port,
                    last_out: now,
                    sent_to: Vec::new(),
                });
                self.mappings.len() - 1
            }
        };
        let m = &mut self.mappings[i];
        m.last_out = now;
        if !m.sent_to.contains(&dst) {
            m.sent_to.push(dst);
        }
        SocketAddr::new(self.wan, m.external_port)
    }

    fn inbound(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr) -> Option<SocketAddr> {
        self.expire(now);
        let filtering = self.nat.filtering;
        // With address(-and-port)-dependent mapping several mappings may share a port
        // only if keyed differently; our allocator never reuses ports, so one matches.
        let m = self
            .mappings
            .iter()
            .find(|m| m.external_port == dst.port())?;
        let allowed = match filtering {
            Ei => true,
            Ad => m.sent_to.iter().any(|d| d.ip() == src.ip()),
            Apd => m.sent_to.contains(&src),
        };
        allowed.then_some(m.internal)
    }
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    src: SocketAddr,
    dst: SocketAddr,
    bytes: Vec<u8>,
}

/// A datagram arriving at an endpoint.
#[derive(Debug)]
pub struct Delivery {
    pub to: SocketAddr,
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
}

pub const STUN_SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 3478);

#[derive(Debug)]
pub struct Net {
    pub routers: Vec<Option<Router>>,
    in_flight: Vec<InFlight>,
    seq: u64,
    pub latency: Duration,
    /// Probability of losing a packet on the internet, each way.
    pub loss: f64,
    rng: StdRng,
    pub delivered: u64,
    pub dropped: u64,
    /// Print every packet (set `VNET_TRACE=1`).
    pub trace: bool,
}

impl Net {
    pub fn new(seed: u64) -> Self {
        Self {
            routers: Vec::new(),
            in_flight: Vec::new(),
            seq: 0,
            latency: Duration::from_millis(15),
            loss: 0.0,
            rng: StdRng::seed_from_u64(seed),
            delivered: 0,
            dropped: 0,
            trace: std::env::var_os("VNET_TRACE").is_some(),
        }
    }

    /// Add a site; returns the address of its host.
    pub fn add_site(&mut self, site: Site, lifetime: Duration) -> SocketAddr {
        let r = self.routers.len() as u8;
        match site {
            None => {
                self.routers.push(None);
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, r + 1)), 5000)
            }
            Some(nat) => {
                self.routers.push(Some(Router {
                    wan: IpAddr::V4(Ipv4Addr::new(203, 0, 113, r + 1)),
                    lan: [10, 0, r + 1],
                    nat,
                    lifetime,
                    next_port: 40000 + 1000 * u16::from(r),
                    mappings: Vec::new(),
                    dead: false,
                }));
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, r + 1, 2)), 5000)
            }
        }
    }

    /// The public IP a site's host is seen with.
    pub fn public_ip(&self, host: SocketAddr) -> IpAddr {
        self.routers
            .iter()
            .flatten()
            .find(|r| r.in_lan(host.ip()))
            .map_or_else(|| host.ip(), |r| r.wan)
    }

    fn is_private(ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(v) if v.is_private())
    }

    pub fn send(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        let mut src = src;
        if let Some(r) = self
            .routers
            .iter_mut()
            .flatten()
            .find(|r| r.in_lan(src.ip()))
        {
            if r.in_lan(dst.ip()) {
                return self.fly(now, src, dst, bytes);
            }
            if r.dead {
                self.dropped += 1;
                return;
            }
            let orig = src;
            src = r.outbound(now, src, dst);
            if self.trace {
                println!("{now:?} NAT out {orig} as {src} -> {dst}");
            }
        }
        if Self::is_private(dst.ip()) || (self.loss > 0.0 && self.rng.random_bool(self.loss)) {
            self.dropped += 1;
            return;
        }
        self.fly(now, src, dst, bytes);
    }

    fn fly(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.in_flight.push(InFlight {
            at: now + self.latency,
            seq: self.seq,
            src,
            dst,
            bytes,
        });
    }

    pub fn next_at(&self) -> Option<Instant> {
        self.in_flight.iter().map(|p| p.at).min()
    }

    /// Take the packets due at `now`, through the destination NATs.
    pub fn deliver(&mut self, now: Instant) -> Vec<Delivery> {
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].at <= now {
                due.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.at, p.seq));
        let mut out = Vec::new();
        for p in due {
            let mut to = p.dst;
            if let Some(r) = self
                .routers
                .iter_mut()
                .flatten()
                .find(|r| r.wan == p.dst.ip())
            {
                if r.dead {
                    self.dropped += 1;
                    continue;
                }
                match r.inbound(now, p.src, p.dst) {
                    Some(internal) => to = internal,
                    None => {
                        if self.trace {
                            println!("{now:?} NAT drop {} -> {}", p.src, p.dst);
                        }
                        self.dropped += 1;
                        continue;
                    }
                }
            }
            self.delivered += 1;
            out.push(Delivery {
                to,
                from: p.src,
                bytes: p.bytes,
            });
        }
        out
    }

    /// Kill the path of a site (both directions).
    pub fn kill(&mut self, site: usize) {
        if let Some(Some(r)) = self.routers.get_mut(site) {
            r.dead = true;
        }
    }
}

/// Answer a STUN Binding request like a STUN server (RFC 8489 with XOR-MAPPED-ADDRESS).
fn stun_answer(from: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let m = Message::decode(bytes).ok()?;
    if m.class != Class::Request || m.method != Method::BINDING {
        return None;
    }
    Message::new(Class::SuccessResponse, Method::BINDING, m.transaction_id)
        .with(Attribute::XorMappedAddress(from))
        .encode_sealed(None, true)
        .ok()
}

pub struct Peer {
    pub agent: Agent,
    pub addr: SocketAddr,
    pub events: Vec<(Instant, Event)>,
}

impl Peer {
    pub fn connected(&self) -> Option<(Instant, &Event)> {
        self.events
            .iter()
            .find(|(_, e)| matches!(e, Event::Connected { .. }))
            .map(|(t, e)| (*t, e))
    }

    pub fn failed(&self) -> Option<Instant> {
        self.events
            .iter()
            .find(|(_, e)| matches!(e, Event::Failed(_)))
            .map(|(t, _)| *t)
    }

    pub fn has(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(|(_, e)| f(e))
    }
}

/// Two agents on a [`Net`].
pub struct Sim {
    pub net: Net,
    pub start: Instant,
    pub now: Instant,
    pub peers: Vec<Peer>,
}

pub struct SimOptions {
    pub roles: [Role; 2],
    pub lifetime: Duration,
    pub seed: u64,
    /// Loss applied once candidates are exchanged (gathering itself is lossless: a
    /// deployment re-gathers rather than punch without its NAT address).
    pub loss: f64,
    pub config: fn(Config) -> Config,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            roles: [Role::Controlling, Role::Controlled],
            lifetime: Duration::from_secs(120),
            seed: 1,
            loss: 0.0,
            config: |c| c,
        }
    }
}

impl Sim {
    /// Two sites, each with one agent holding its host candidate.
    pub fn new(a: Site, b: Site, o: &SimOptions) -> Self {
        let start = Instant::now();
        let mut net = Net::new(o.seed);
        let mut peers = Vec::new();
        for (i, site) in [a, b].into_iter().enumerate() {
            let addr = net.add_site(site, o.lifetime);
            let s = o.seed.wrapping_mul(31).wrapping_add(i as u64) as u8;
            let mut agent = Agent::new(
                o.roles[i],
                Credentials::from_random([s.wrapping_add(100); 32]),
                (o.config)(Config::new([s; 32])),
                start,
            );
            agent
                .add_local_candidate(Candidate::host(addr, 65535))
                .unwrap();
            peers.push(Peer {
                agent,
                addr,
                events: Vec::new(),
            });
        }
        Self {
            net,
            start,
            now: start,
            peers,
        }
    }

    /// Send what the agents want to send and record their events.
    pub fn flush(&mut self) {
        for p in &mut self.peers {
            while let Some(t) = p.agent.poll_transmit() {
                assert_eq!(t.from_local, p.addr, "one base per agent here");
                self.net.send(self.now, p.addr, t.to, t.bytes);
            }
            while let Some(e) = p.agent.poll_event() {
                p.events.push((self.now, e));
            }
        }
    }

    /// Advance to the next timer or delivery (at most `limit`), deliver, fire timers.
    /// Returns false when nothing is left to happen before `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.flush();
        let next = self
            .peers
            .iter()
            .filter_map(|p| p.agent.poll_timeout())
            .chain(self.net.next_at())
            .min();
        let Some(next) = next else {
            return false;
        };
        if next > limit {
            self.now = limit;
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        for d in self.net.deliver(now) {
            if d.to == STUN_SERVER {
                if let Some(r) = stun_answer(d.from, &d.bytes) {
                    self.net.send(now, STUN_SERVER, d.from, r);
                }
                continue;
            }
            if let Some(p) = self.peers.iter_mut().find(|p| p.addr == d.to) {
                if self.net.trace {
                    let m = Message::decode(&d.bytes).ok();
                    println!(
                        "{:?} deliver {} -> {} {:?}",
                        now - self.start,
                        d.from,
                        d.to,
                        m.map(|m| (m.class, m.use_candidate(), m.transaction_id.0[0]))
                    );
                }
                p.agent.handle_receive(now, d.to, d.from, &d.bytes);
            }
        }
        for p in &mut self.peers {
            if p.agent.poll_timeout().is_some_and(|t| t <= now) {
                p.agent.handle_timeout(now);
            }
        }
        true
    }

    pub fn run_until(&mut self, limit: Instant, mut done: impl FnMut(&Self) -> bool) {
        let mut steps = 0u64;
        loop {
            self.flush();
            if done(self) || !self.step(limit) {
                break;
            }
            steps += 1;
            assert!(steps < 2_000_000, "simulation does not advance");
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        self.run_until(limit, |_| false);
    }

    /// Gather server-reflexive candidates on both sides, then exchange credentials and
    /// candidates as the platform's signalling would.
    pub fn gather_and_exchange(&mut self) {
        let now = self.now;
        for p in &mut self.peers {
            p.agent.gather_server_reflexive(STUN_SERVER, now);
        }
        let limit = self.now + Duration::from_secs(10);
        self.run_until(limit, |s| {
            s.peers
                .iter()
                .all(|p| p.has(|e| matches!(e, Event::Gathered)))
        });
        let creds: Vec<Credentials> = self
            .peers
            .iter()
            .map(|p| p.agent.local_credentials().clone())
            .collect();
        let cands: Vec<Vec<Candidate>> = self
            .peers
            .iter()
            .map(|p| p.agent.local_candidates().cloned().collect())
            .collect();
        for (i, p) in self.peers.iter_mut().enumerate() {
            let other = 1 - i;
            p.agent.set_remote_credentials(creds[other].clone());
            for c in &cands[other] {
                // Through the signalling text form, as deployed.
                let c: Candidate = c.to_string().parse().unwrap();
                p.agent.add_remote_candidate(c);
            }
            p.agent.set_remote_candidates_complete();
        }
    }

    /// Run until both agents have connected or failed, or `limit` of virtual time.
    pub fn connect(&mut self, limit: Duration) {
        let limit = self.now + limit;
        self.run_until(limit, |s| {
            s.peers
                .iter()
                .all(|p| p.connected().is_some() || p.failed().is_some())
        });
    }
}
