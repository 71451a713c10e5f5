//! The ICE agent (RFC 8445, one data stream, one component, UDP): connectivity checks,
//! nomination and consent freshness (RFC 7675).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peercam_stun::message::{
    Attribute, Class, ErrorCode, IntegrityAlgorithm, Message, Method, TransactionId,
    looks_like_stun, verify_fingerprint, verify_integrity,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::candidate::{COMPONENT, priority};
use crate::gather::{GatherConfig, Gatherer};
use crate::{Candidate, CandidateKind, Credentials, Error, Transmit};

mod checks;

/// 487 Role Conflict (RFC 8445 7.3.1.1).
pub const ROLE_CONFLICT: u16 = 487;

/// Which agent decides (RFC 8445 2.3). In peercam the CU, which starts the play, is
/// controlling and the PU controlled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Nominates the pair to use.
    Controlling,
    /// Follows the controlling agent's nomination.
    Controlled,
}

/// Agent settings. [`Config::new`] gives the defaults; fields may be changed after.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The pacing interval Ta: at most one new check per Ta (RFC 8445 14.2). Default 20 ms.
    pub ta: Duration,
    /// The first retransmission timeout of a check, doubling up to `max_rto`
    /// (RFC 8445 14.3). Default 250 ms.
    pub initial_rto: Duration,
    /// The largest retransmission timeout. Default 2 s.
    pub max_rto: Duration,
    /// How many times a check is sent before its pair fails (Rc, RFC 8489 6.2.1).
    /// Default 7: the last send is at 7.75 s and the pair fails at 9.75 s.
    pub max_check_sends: u32,
    /// How long the controlling agent waits after the first valid pair for a better one
    /// to succeed before it nominates (regular nomination, RFC 8445 8.1.1). It does not
    /// wait when no pair of higher priority is still pending. Default 100 ms.
    pub nomination_delay: Duration,
    /// ICE fails if no pair is selected this long after [`Agent::new`]. Default 15 s.
    pub connect_timeout: Duration,
    /// How often consent is checked on the selected pair once connected (RFC 7675 5.1
    /// recommends 5 s randomised; peercam uses a shorter interval so the checks also
    /// keep NAT bindings alive). Default 2.5 s.
    pub consent_interval: Duration,
    /// Consent is lost after this long without an authenticated response (RFC 7675 5.1).
    /// Default 30 s.
    pub consent_timeout: Duration,
    /// Upper bound on candidate pairs (RFC 8445 6.1.2.5). Default 100.
    pub max_pairs: usize,
    /// Upper bound on remote candidates, signalled and peer-reflexive. Default 50.
    pub max_remote_candidates: usize,
    /// Server-reflexive gathering settings.
    pub gather: GatherConfig,
    /// Seed of the agent's random numbers: tie-breaker and transaction ids. Must be
    /// unpredictable (the driver fills it from the OS).
    pub seed: [u8; 32],
}

impl Config {
    /// The defaults, with the given random seed.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            ta: Duration::from_millis(20),
            initial_rto: Duration::from_millis(250),
            max_rto: Duration::from_secs(2),
            max_check_sends: 7,
            nomination_delay: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(15),
            consent_interval: Duration::from_millis(2500),
            consent_timeout: Duration::from_secs(30),
            max_pairs: 100,
            max_remote_candidates: 50,
            gather: GatherConfig::default(),
            seed,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("ta", &self.ta)
            .field("initial_rto", &self.initial_rto)
            .field("max_check_sends", &self.max_check_sends)
            .field("connect_timeout", &self.connect_timeout)
            .field("consent_interval", &self.consent_interval)
            .field("consent_timeout", &self.consent_timeout)
            .finish_non_exhaustive()
    }
}

/// Why ICE failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No pair was selected within [`Config::connect_timeout`].
    Timeout,
    /// Every pair failed and the remote side signalled that it has no more candidates.
    AllPairsFailed,
}

/// What the agent tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new local candidate to signal to the peer (a server-reflexive one found by
    /// [`Agent::gather_server_reflexive`]).
    LocalCandidate(Candidate),
    /// Server-reflexive gathering has finished (answered or given up).
    Gathered,
    /// A role conflict made the agent switch role (RFC 8445 7.3.1.1, 7.2.5.1).
    RoleChanged(Role),
    /// A pair was selected: send the application's datagrams from `local` to `remote`.
    Connected {
        /// The local base address (the socket address to send from).
        local: SocketAddr,
        /// The remote address.
        remote: SocketAddr,
        /// How the peer sees us: host (no NAT in between), server- or peer-reflexive
        /// (through our NAT), relayed.
        local_kind: CandidateKind,
        /// The kind of the remote candidate: host, server-reflexive (the peer's NAT
        /// mapping as signalled), peer-reflexive (a mapping first seen in a check).
        remote_kind: CandidateKind,
    },
    /// No pair could be selected; the caller falls back to the relay (H.626.4 8.3).
    Failed(Failure),
    /// After [`Event::Connected`], no authenticated response to consent checks for
    /// [`Config::consent_timeout`] (RFC 7675 5.1): the path is dead, stop sending.
    ConsentLost,
}

/// The agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Checking pairs.
    Checking,
    /// A pair is selected; consent is being refreshed.
    Connected,
    /// ICE failed (terminal).
    Failed,
    /// Consent was lost after connecting (terminal).
    Disconnected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairState {
    Frozen,
    Waiting,
    InProgress,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone)]
struct Pair {
    /// The local base.
    local: SocketAddr,
    local_preference: u16,
    local_foundation: String,
    /// Index into `remote_candidates`.
    remote: usize,
    priority: u64,
    state: PairState,
    /// The controlled agent received USE-CANDIDATE for this pair.
    remote_nominated: bool,
    /// How the peer saw our base, learned from the success response.
    local_kind: Option<CandidateKind>,
}

#[derive(Debug)]
struct Check {
    tid: TransactionId,
    pair: usize,
    use_candidate: bool,
    consent: bool,
    /// Sent as controlling (for 487 handling).
    as_controlling: bool,
    bytes: Vec<u8>,
    sends: u32,
    rto: Duration,
    next_at: Instant,
    /// No more retransmissions; a late response is still accepted until `next_at`.
    cancelled: bool,
}

/// A sans-IO ICE agent for one component over UDP.
///
/// Feed it datagrams ([`Agent::handle_receive`]) and time ([`Agent::handle_timeout`]);
/// send what [`Agent::poll_transmit`] returns; act on [`Agent::poll_event`]; wake it at
/// [`Agent::poll_timeout`]. See the crate docs for the run loop.
#[derive(Debug)]
pub struct Agent {
    role: Role,
    tie_breaker: u64,
    local: Credentials,
    remote: Option<Credentials>,
    config: Config,
    rng: StdRng,
    state: State,
    start: Instant,
    now: Instant,
    local_candidates: Vec<Candidate>,
    remote_candidates: Vec<Candidate>,
    remote_complete: bool,
    pairs: Vec<Pair>,
    triggered: VecDeque<usize>,
    checks: Vec<Check>,
    last_paced: Option<Instant>,
    nominate_at: Option<Instant>,
    nominating: Option<usize>,
    nomination_queued: bool,
    selected: Option<usize>,
    consent_seen: Instant,
    next_consent: Instant,
    gatherer: Option<Gatherer>,
    prflx_count: u32,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Agent {
    /// A new agent. The connect timeout runs from `now`.
    pub fn new(role: Role, local: Credentials, config: Config, now: Instant) -> Self {
        let mut rng = StdRng::from_seed(config.seed);
        let tie_breaker = rng.random();
        Self {
            role,
            tie_breaker,
            local,
            remote: None,
            config,
            rng,
            state: State::Checking,
            start: now,
            now,
            local_candidates: Vec::new(),
            remote_candidates: Vec::new(),
            remote_complete: false,
            pairs: Vec::new(),
            triggered: VecDeque::new(),
            checks: Vec::new(),
            last_paced: None,
            nominate_at: None,
            nominating: None,
            nomination_queued: false,
            selected: None,
            consent_seen: now,
            next_consent: now,
            gatherer: None,
            prflx_count: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The tie-breaker sent in ICE-CONTROLLING/ICE-CONTROLLED (RFC 8445 7.1.3).
    pub fn tie_breaker(&self) -> u64 {
        self.tie_breaker
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The local credentials (to signal to the peer).
    pub fn local_credentials(&self) -> &Credentials {
        &self.local
    }

    /// The local candidates to signal: host, relayed, and server-reflexive once gathered.
    /// Peer-reflexive ones learned from checks are not listed.
    pub fn local_candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.local_candidates
            .iter()
            .filter(|c| c.kind != CandidateKind::PeerReflexive)
    }

    /// The selected pair as (local base, remote address), once connected.
    pub fn selected(&self) -> Option<(SocketAddr, SocketAddr)> {
        let p = self.pairs.get(self.selected?)?;
        Some((p.local, self.remote_candidates.get(p.remote)?.addr))
    }

    /// Add a local candidate. Host and relayed candidates are bases checks are sent from;
    /// server-reflexive ones are only signalled (their pairs are redundant with their
    /// base's, RFC 8445 6.1.2.4).
    pub fn add_local_candidate(&mut self, c: Candidate) -> Result<(), Error> {
        if c.component != COMPONENT {
            return Err(Error::Misuse("peercam uses component 1 only"));
        }
        if c.kind == CandidateKind::PeerReflexive {
            return Err(Error::Misuse(
                "peer-reflexive candidates are learned, not added",
            ));
        }
        if self
            .local_candidates
            .iter()
            .any(|l| l.addr == c.addr && l.base() == c.base())
        {
            return Ok(());
        }
        let is_base = matches!(c.kind, CandidateKind::Host | CandidateKind::Relayed);
        self.local_candidates.push(c.clone());
        if is_base && self.state == State::Checking {
            for r in 0..self.remote_candidates.len() {
                self.add_pair(&c, r);
            }
        }
        Ok(())
    }

    /// Start gathering server-reflexive candidates from `server` for the host candidates
    /// added so far. Ends with [`Event::Gathered`], after an [`Event::LocalCandidate`] for
    /// each new one.
    pub fn gather_server_reflexive(&mut self, server: SocketAddr, now: Instant) {
        self.now = self.now.max(now);
        let mut seed = [0; 32];
        self.rng.fill(&mut seed);
        let hosts: Vec<Candidate> = self.local_candidates.clone();
        let g = Gatherer::new(server, &hosts, self.config.gather, seed, now);
        self.gatherer = Some(g);
        self.drain_gatherer();
    }

    /// Set the peer's credentials (from signalling). Checks start once they are known.
    pub fn set_remote_credentials(&mut self, remote: Credentials) {
        self.remote = Some(remote);
    }

    /// Add a remote candidate (from signalling). Candidates of other components, with
    /// an unspecified address or port 0, are ignored.
    pub fn add_remote_candidate(&mut self, c: Candidate) {
        if c.component != COMPONENT || c.addr.ip().is_unspecified() || c.addr.port() == 0 {
            return;
        }
        if let Some(i) = self.remote_candidates.iter().position(|r| r.addr == c.addr) {
            // A peer-reflexive candidate later signalled: take the signalled kind
            // (RFC 8445 7.3.1.3).
            let r = &mut self.remote_candidates[i];
            if r.kind == CandidateKind::PeerReflexive {
                *r = c;
            }
            return;
        }
        if self.remote_candidates.len() >= self.config.max_remote_candidates
            || self.state != State::Checking
        {
            return;
        }
        self.remote_candidates.push(c);
        let r = self.remote_candidates.len() - 1;
        let bases: Vec<Candidate> = self.bases().cloned().collect();
        for b in &bases {
            self.add_pair(b, r);
        }
    }

    /// The peer has signalled all its candidates ("end-of-candidates", RFC 8838 8.2):
    /// once every pair has failed, ICE fails without waiting for the timeout.
    pub fn set_remote_candidates_complete(&mut self) {
        self.remote_complete = true;
    }

    /// Handle a datagram received on `local` (the socket's address) from `from`.
    ///
    /// Returns true if it was a STUN message (RFC 7983: first byte 0..=3 and the magic
    /// cookie), which the agent consumed, and false if it belongs to the application.
    /// Unauthenticated or malformed STUN is dropped silently: answering it with 400/401
    /// (RFC 8489 6.3) would make the agent a reflector for anyone on the path.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        bytes: &[u8],
    ) -> bool {
        if !looks_like_stun(bytes) {
            return false;
        }
        self.now = self.now.max(now);
        if let Some(g) = &mut self.gatherer
            && g.handle_receive(local, from, bytes)
        {
            self.drain_gatherer();
            return true;
        }
        let Ok(msg) = Message::decode(bytes) else {
            return true;
        };
        if msg.method != Method::BINDING {
            return true;
        }
        let Some(base) = self.resolve_base(local, from) else {
            return true;
        };
        match msg.class {
            Class::Request => self.on_request(base, from, bytes, &msg),
            Class::SuccessResponse | Class::ErrorResponse => {
                self.on_response(base, from, bytes, &msg);
            }
            // Binding indications are keepalives (RFC 8445 11): nothing to do.
            Class::Indication => {}
        }
        true
    }

    /// Advance time: pace checks, retransmit, nominate, refresh consent, time out.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let now = self.now;
        if let Some(g) = &mut self.gatherer {
            g.handle_timeout(now);
            self.drain_gatherer();
        }
        self.retransmit(now);
        match self.state {
            State::Checking => {
                if now >= self.start + self.config.connect_timeout {
                    self.fail(Failure::Timeout);
                    return;
                }
                self.maybe_nominate(now);
                self.pace(now);
                self.check_all_failed();
            }
            State::Connected => self.consent(now),
            State::Failed | State::Disconnected => {}
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Agent::handle_timeout`] next; `None` when there is nothing to wait
    /// for (failed, disconnected).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = self.gatherer.as_ref().and_then(Gatherer::poll_timeout);
        let mut at = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        for c in &self.checks {
            at(c.next_at);
        }
        match self.state {
            State::Checking => {
                at(self.start + self.config.connect_timeout);
                if let Some(n) = self.nominate_at
                    && self.role == Role::Controlling
                    && self.nominating.is_none()
                {
                    at(n);
                }
                if self.has_check_to_send() {
                    at(self
                        .last_paced
                        .map_or(self.now, |l| l + self.config.ta)
                        .max(self.now));
                }
            }
            State::Connected => {
                at(self.next_consent);
                at(self.consent_seen + self.config.consent_timeout);
            }
            State::Failed | State::Disconnected => return None,
        }
        t
    }

    // ---- timers ---------------------------------------------------------------------

    fn retransmit(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.checks.len() {
            let c = &mut self.checks[i];
            if c.next_at > now {
                i += 1;
                continue;
            }
            if c.cancelled || c.sends >= self.config.max_check_sends {
                let c = self.checks.swap_remove(i);
                if c.cancelled || c.consent || self.state != State::Checking {
                    continue;
                }
                if c.use_candidate {
                    // The nomination went unanswered, but the pair was valid: nominate
                    // again (the best valid pair, likely the same) until the connect
                    // timeout, rather than fail a pair the peer may already have
                    // selected.
                    self.nominating = None;
                    self.nomination_queued = false;
                    self.nominate_at = Some(now);
                } else if self.pairs.get(c.pair).map(|p| p.state) == Some(PairState::InProgress) {
                    self.pair_failed(c.pair, false);
                }
                continue;
            }
            c.sends += 1;
            c.rto = (c.rto * 2).min(self.config.max_rto);
            c.next_at = now + c.rto;
            let (pair, bytes) = (c.pair, c.bytes.clone());
            if let Some(p) = self.pairs.get(pair)
                && let Some(r) = self.remote_candidates.get(p.remote)
            {
                self.transmits.push_back(Transmit {
                    from_local: p.local,
                    to: r.addr,
                    bytes,
                });
            }
            i += 1;
        }
    }

    /// Regular nomination (RFC 8445 8.1.1) by the controlling agent: once a pair is
    /// valid, wait `nomination_delay` for better ones (or not at all if none is pending),
    /// then repeat the check of the best valid pair with USE-CANDIDATE.
    fn maybe_nominate(&mut self, now: Instant) {
        if self.role != Role::Controlling || self.nominating.is_some() {
            self.nominate_at = None;
            return;
        }
        let Some(best) = self.best(|p| p.state == PairState::Succeeded) else {
            self.nominate_at = None;
            return;
        };
        let best_prio = self.pairs[best].priority;
        let better_pending = self.pairs.iter().any(|p| {
            p.priority > best_prio
                && matches!(
                    p.state,
                    PairState::Frozen | PairState::Waiting | PairState::InProgress
                )
        });
        let due = self.nominate_at.is_some_and(|t| now >= t);
        if due || !better_pending {
            self.nominating = Some(best);
            self.nomination_queued = true;
            self.nominate_at = None;
        }
    }

    fn has_check_to_send(&self) -> bool {
        self.remote.is_some()
            && (self.nomination_queued
                || !self.triggered.is_empty()
                || self
                    .pairs
                    .iter()
                    .any(|p| matches!(p.state, PairState::Waiting | PairState::Frozen)))
    }

    /// Send at most one check per Ta (RFC 8445 6.1.4.2): the nomination first, then the
    /// triggered queue, then the highest-priority Waiting pair, then unfreeze one.
    fn pace(&mut self, now: Instant) {
        if self.remote.is_none() {
            return;
        }
        if self.last_paced.is_some_and(|l| now < l + self.config.ta) {
            return;
        }
        let mut use_candidate = false;
        let pick = if self.nomination_queued {
            self.nomination_queued = false;
            use_candidate = true;
            self.nominating
        } else {
            let mut t = None;
            while let Some(p) = self.triggered.pop_front() {
                if self.pairs.get(p).map(|p| p.state) == Some(PairState::Waiting) {
                    t = Some(p);
                    break;
                }
            }
            t.or_else(|| self.best(|p| p.state == PairState::Waiting))
                .or_else(|| {
                    let busy: Vec<(String, String)> = self
                        .pairs
                        .iter()
                        .filter(|p| matches!(p.state, PairState::Waiting | PairState::InProgress))
                        .map(|p| self.foundation_of(p))
                        .collect();
                    self.best(|p| p.state == PairState::Frozen)
                        .filter(|&i| !busy.contains(&self.foundation_of(&self.pairs[i])))
                        .or_else(|| self.best(|p| p.state == PairState::Frozen))
                })
        };
        let Some(pair) = pick else {
            return;
        };
        self.send_check(pair, use_candidate, false, now);
        self.last_paced = Some(now);
    }

    fn consent(&mut self, now: Instant) {
        if now >= self.consent_seen + self.config.consent_timeout {
            self.state = State::Disconnected;
            self.checks.clear();
            self.events.push_back(Event::ConsentLost);
            return;
        }
        if now >= self.next_consent
            && let Some(pair) = self.selected
        {
            // One send per interval; an unanswered consent check expires with the next.
            self.send_check(pair, false, true, now);
            if let Some(c) = self.checks.last_mut() {
                c.cancelled = true;
                c.next_at = now + self.config.consent_interval;
            }
            self.next_consent = now + self.config.consent_interval;
        }
    }

    fn check_all_failed(&mut self) {
        if self.remote_complete
            && !self.pairs.is_empty()
            && self.checks.is_empty()
            && self.pairs.iter().all(|p| p.state == PairState::Failed)
            && self.gatherer.as_ref().is_none_or(Gatherer::is_done)
        {
            self.fail(Failure::AllPairsFailed);
        }
    }

    fn fail(&mut self, why: Failure) {
        self.state = State::Failed;
        self.checks.clear();
        self.triggered.clear();
        self.events.push_back(Event::Failed(why));
    }

    // ---- helpers --------------------------------------------------------------------

    fn send_check(&mut self, pair: usize, use_candidate: bool, consent: bool, now: Instant) {
        let Some(remote) = &self.remote else {
            return;
        };
        let Some(p) = self.pairs.get(pair) else {
            return;
        };
        let Some(to) = self.remote_candidates.get(p.remote).map(|r| r.addr) else {
            return;
        };
        let tid = TransactionId(self.rng.random());
        // RFC 8445 7.2.2: USERNAME, PRIORITY (as a peer-reflexive candidate),
        // ICE-CONTROLLING/CONTROLLED, USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT.
        let mut m = Message::new(Class::Request, Method::BINDING, tid)
            .with(Attribute::Username(format!(
                "{}:{}",
                remote.ufrag(),
                self.local.ufrag()
            )))
            .with(Attribute::Priority(priority(
                CandidateKind::PeerReflexive,
                p.local_preference,
                COMPONENT,
            )))
            .with(match self.role {
                Role::Controlling => Attribute::IceControlling(self.tie_breaker),
                Role::Controlled => Attribute::IceControlled(self.tie_breaker),
            });
        if use_candidate {
            m = m.with(Attribute::UseCandidate);
        }
        let Ok(bytes) = m.encode_sealed(
            Some((IntegrityAlgorithm::HmacSha1, remote.pwd().as_bytes())),
            true,
        ) else {
            return;
        };
        self.transmits.push_back(Transmit {
            from_local: p.local,
            to,
            bytes: bytes.clone(),
        });
        // A nomination repeats the check of a valid pair: the pair stays Succeeded.
        if !consent && !use_candidate {
            self.pairs[pair].state = PairState::InProgress;
        }
        self.checks.push(Check {
            tid,
            pair,
            use_candidate,
            consent,
            as_controlling: self.role == Role::Controlling,
            bytes,
            sends: 1,
            rto: self.config.initial_rto,
            next_at: now + self.config.initial_rto,
            cancelled: false,
        });
    }

    fn select(&mut self, pair: usize) {
        if self.state != State::Checking {
            return;
        }
        let Some(p) = self.pairs.get(pair) else {
            return;
        };
        let Some(r) = self.remote_candidates.get(p.remote) else {
            return;
        };
        self.events.push_back(Event::Connected {
            local: p.local,
            remote: r.addr,
            local_kind: p.local_kind.unwrap_or(CandidateKind::Host),
            remote_kind: r.kind,
        });
        self.state = State::Connected;
        self.selected = Some(pair);
        // RFC 8445 8.1.2: stop checking other pairs.
        self.checks.clear();
        self.triggered.clear();
        self.nominate_at = None;
        self.consent_seen = self.now;
        self.next_consent = self.now + self.config.consent_interval;
    }

    fn switch_role(&mut self, role: Role) {
        self.role = role;
        self.nominating = None;
        self.nomination_queued = false;
        self.nominate_at = None;
        for i in 0..self.pairs.len() {
            self.pairs[i].priority = self.pair_priority(
                self.local_priority_of(&self.pairs[i]),
                self.remote_candidates[self.pairs[i].remote].priority,
            );
        }
        if role == Role::Controlling && self.pairs.iter().any(|p| p.state == PairState::Succeeded) {
            self.nominate_at = Some(self.now + self.config.nomination_delay);
        }
        self.events.push_back(Event::RoleChanged(role));
    }

    /// Pair priority (RFC 8445 6.1.2.3).
    fn pair_priority(&self, local: u32, remote: u32) -> u64 {
        let (g, d) = match self.role {
            Role::Controlling => (u64::from(local), u64::from(remote)),
            Role::Controlled => (u64::from(remote), u64::from(local)),
        };
        (g.min(d) << 32) + 2 * g.max(d) + u64::from(g > d)
    }

    fn local_priority_of(&self, p: &Pair) -> u32 {
        self.local_candidates
            .iter()
            .find(|c| c.addr == p.local && c.base() == p.local)
            .map_or(1, |c| c.priority)
    }

    fn add_pair(&mut self, base: &Candidate, remote: usize) -> Option<usize> {
        let r = self.remote_candidates.get(remote)?;
        if base.addr.is_ipv4() != r.addr.is_ipv4() {
            return None;
        }
        if let Some(i) = self
            .pairs
            .iter()
            .position(|p| p.local == base.addr && p.remote == remote)
        {
            return Some(i);
        }
        if self.pairs.len() >= self.config.max_pairs {
            return None;
        }
        let priority = self.pair_priority(base.priority, r.priority);
        self.pairs.push(Pair {
            local: base.addr,
            local_preference: base.local_preference(),
            local_foundation: base.foundation.clone(),
            remote,
            priority,
            state: PairState::Frozen,
            remote_nominated: false,
            local_kind: None,
        });
        Some(self.pairs.len() - 1)
    }

    fn enqueue_triggered(&mut self, pair: usize) {
        if !self.triggered.contains(&pair) {
            self.triggered.push_back(pair);
        }
    }

    fn best(&self, f: impl Fn(&Pair) -> bool) -> Option<usize> {
        self.pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| f(p))
            .max_by_key(|(_, p)| p.priority)
            .map(|(i, _)| i)
    }

    fn foundation_of(&self, p: &Pair) -> (String, String) {
        (
            p.local_foundation.clone(),
            self.remote_candidates
                .get(p.remote)
                .map(|r| r.foundation.clone())
                .unwrap_or_default(),
        )
    }

    fn bases(&self) -> impl Iterator<Item = &Candidate> {
        self.local_candidates
            .iter()
            .filter(|c| matches!(c.kind, CandidateKind::Host | CandidateKind::Relayed))
    }

    /// The base a datagram arrived on. A socket bound to a wildcard address reports
    /// `0.0.0.0:port`; then the first base with that port and the sender's family is it.
    fn resolve_base(&self, local: SocketAddr, from: SocketAddr) -> Option<SocketAddr> {
        if let Some(b) = self.bases().find(|b| b.addr == local) {
            return Some(b.addr);
        }
        if local.ip().is_unspecified() {
            return self
                .bases()
                .find(|b| b.addr.port() == local.port() && b.addr.is_ipv4() == from.is_ipv4())
                .map(|b| b.addr);
        }
        None
    }

    fn drain_gatherer(&mut self) {
        let Some(g) = &mut self.gatherer else {
            return;
        };
        while let Some(t) = g.poll_transmit() {
            self.transmits.push_back(t);
        }
        if !g.is_done() {
            return;
        }
        let found: Vec<Candidate> = g.candidates().to_vec();
        self.gatherer = None;
        for c in found {
            if !self
                .local_candidates
                .iter()
                .any(|l| l.addr == c.addr && l.base() == c.base())
            {
                self.local_candidates.push(c.clone());
                self.events.push_back(Event::LocalCandidate(c));
            }
        }
        self.events.push_back(Event::Gathered);
    }
}
