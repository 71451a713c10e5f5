//! `peercam_ice::Agent`: an agent with known credentials fed a sequence of operations
//! decoded from the input: raw datagrams, time steps, correctly signed Binding requests
//! and responses with fuzzed attributes (so the input reaches past the integrity check),
//! and remote candidates parsed from fuzzed text.
//!
//! Never panics. Invariants: `handle_receive` claims exactly the datagrams that look like
//! STUN; a connected agent has a selected pair; a failed or disconnected agent asks for
//! no timeout; `poll_timeout` never goes backwards past the current time by more than
//! the agent was told.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use peercam_ice::{Agent, Candidate, Config, Credentials, Event, Role, State};
use peercam_stun::message::{
    Attribute, Class, ErrorCode, IntegrityAlgorithm, Message, Method, TransactionId,
    looks_like_stun,
};

const LOCAL_UFRAG: &str = "locl";
const LOCAL_PWD: &str = "localpasswordlocalpassw";
const REMOTE_UFRAG: &str = "remo";
const REMOTE_PWD: &str = "remotepasswordremotepas";

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + (i % 4))),
        6000 + u16::from(i % 3),
    )
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u64(&mut self) -> u64 {
        let mut v = [0u8; 8];
        let b = self.bytes(8);
        v[..b.len()].copy_from_slice(b);
        u64::from_be_bytes(v)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(flags) = input.byte() else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let role = if flags & 1 == 0 {
        Role::Controlling
    } else {
        Role::Controlled
    };
    let mut config = Config::new([flags; 32]);
    config.connect_timeout = Duration::from_secs(5);
    let local = Credentials::new(LOCAL_UFRAG, LOCAL_PWD).unwrap();
    let mut agent = Agent::new(role, local, config, now);
    let base: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    agent
        .add_local_candidate(Candidate::host(base, 65535))
        .unwrap();
    if flags & 2 == 0 {
        agent.set_remote_credentials(Credentials::new(REMOTE_UFRAG, REMOTE_PWD).unwrap());
    }
    agent.add_remote_candidate(Candidate::host(addr(0), 65535));
    if flags & 4 != 0 {
        agent.gather_server_reflexive(addr(3), now);
    }
    if flags & 8 != 0 {
        agent.set_remote_candidates_complete();
    }
    let mut tids: Vec<TransactionId> = Vec::new();

    while let Some(op) = input.byte() {
        let from = addr(op >> 3);
        match op % 6 {
            0 => {
                let n = usize::from(input.byte().unwrap_or(0));
                let d = input.bytes(n).to_vec();
                let claimed = agent.handle_receive(now, base, from, &d);
                assert_eq!(claimed, looks_like_stun(&d));
            }
            1 => {
                let ms = u64::from(input.byte().unwrap_or(0)) * 37;
                now += Duration::from_millis(ms);
                agent.handle_timeout(now);
            }
            2 => {
                // A signed request from the peer.
                let f = input.byte().unwrap_or(0);
                let tb = input.u64();
                let mut tid = [0u8; 12];
                tid[..8].copy_from_slice(&tb.to_be_bytes());
                let mut m = Message::new(Class::Request, Method::BINDING, TransactionId(tid))
                    .with(Attribute::Username(format!("{LOCAL_UFRAG}:{REMOTE_UFRAG}")));
                if f & 1 == 0 {
                    m = m.with(Attribute::Priority(u32::from(f) << 20 | 1));
                }
                if f & 2 != 0 {
                    m = m.with(Attribute::UseCandidate);
                }
                if f & 4 != 0 {
                    m = m.with(Attribute::IceControlling(tb));
                }
                if f & 8 != 0 {
                    m = m.with(Attribute::IceControlled(tb.rotate_left(7)));
                }
                let key = if f & 16 == 0 { LOCAL_PWD } else { REMOTE_PWD };
                let bytes = m
                    .encode_sealed(Some((IntegrityAlgorithm::HmacSha1, key.as_bytes())), true)
                    .unwrap();
                assert!(agent.handle_receive(now, base, from, &bytes));
            }
            3 => {
                // A signed response to one of the agent's requests.
                let f = input.byte().unwrap_or(0);
                let Some(tid) = tids.get(usize::from(f >> 3) % tids.len().max(1)).copied() else {
                    continue;
                };
                let m = match f % 4 {
                    0 | 1 => Message::new(Class::SuccessResponse, Method::BINDING, tid)
                        .with(Attribute::XorMappedAddress(addr(f))),
                    2 => Message::new(Class::ErrorResponse, Method::BINDING, tid)
                        .with(Attribute::ErrorCode(ErrorCode::new(487, "Role Conflict"))),
                    _ => Message::new(Class::ErrorResponse, Method::BINDING, tid)
                        .with(Attribute::ErrorCode(ErrorCode::new(400, "Bad Request"))),
                };
                let key = if f & 4 == 0 { REMOTE_PWD } else { LOCAL_PWD };
                let bytes = m
                    .encode_sealed(Some((IntegrityAlgorithm::HmacSha1, key.as_bytes())), true)
                    .unwrap();
                let to = if f & 64 == 0 {
                    base
                } else {
                    "10.0.0.1:5001".parse().unwrap()
                };
                assert!(agent.handle_receive(now, to, from, &bytes));
            }
            4 => {
                let n = usize::from(input.byte().unwrap_or(0));
                let text = String::from_utf8_lossy(input.bytes(n)).into_owned();
                if let Ok(c) = text.parse::<Candidate>() {
                    agent.add_remote_candidate(c);
                }
            }
            _ => {
                agent.set_remote_credentials(Credentials::new(REMOTE_UFRAG, REMOTE_PWD).unwrap());
            }
        }
        while let Some(t) = agent.poll_transmit() {
            assert!(looks_like_stun(&t.bytes));
            if let Ok(m) = Message::decode(&t.bytes)
                && m.class == Class::Request
            {
                tids.push(m.transaction_id);
                if tids.len() > 64 {
                    tids.remove(0);
                }
            }
        }
        while let Some(e) = agent.poll_event() {
            if matches!(e, Event::Connected { .. }) {
                assert!(agent.selected().is_some());
            }
        }
        match agent.state() {
            State::Connected => assert!(agent.selected().is_some()),
            State::Failed | State::Disconnected => assert!(agent.poll_timeout().is_none()),
            State::Checking => {}
        }
    }
});
