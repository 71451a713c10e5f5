//! `peercam_stun::server::TurnServer`: a sequence of steps decoded from the input, each
//! one of: raw bytes from one of four clients (UDP or TCP), a datagram from a peer to a
//! client's relay, a well-formed authenticated TURN request (so the fuzzer reaches the
//! allocation, permission, channel and relay paths), a closed connection, or time passing.
//!
//! Never panics. The ledger and the `allocations_active` gauge agree with the allocations
//! that exist; `Output::Reply` always comes with bytes that decode as STUN (classic
//! RFC 3489 STUN with the request's id when the request was a cookie-less Binding); a relayed
//! payload is a slice of the input; once every lifetime has run out (4000 s later) no
//! allocation is left and every relay was reported closed.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use peercam_stun::auth::RestSecret;
use peercam_stun::message::{Attribute, Class, IntegrityAlgorithm, Message, Method, TransactionId};
use peercam_stun::policy::PeerPolicy;
use peercam_stun::server::{
    ClientTransport, Event, FiveTuple, Output, RelayId, ServerConfig, TurnServer,
};

const UNIX: u64 = 1_700_000_000;
const REALM: &str = "fuzz";
const PEERS: [&str; 3] = ["198.51.100.2:7000", "198.51.100.3:9", "127.0.0.1:1"];

struct Clients {
    tuples: Vec<FiveTuple>,
    nonces: Vec<Option<String>>,
    relays: Vec<Option<RelayId>>,
}

fuzz_target!(|data: &[u8]| {
    let secret = RestSecret::new("fuzz-secret").unwrap();
    let mut config = ServerConfig::new(REALM, secret.clone(), [7; 32]);
    config.policy = PeerPolicy::new().allow("198.51.100.0/24".parse().unwrap());
    config.require_scoped = data.first().is_some_and(|b| b & 1 == 1);
    config.quotas.max_allocations_per_user = 3;
    config.quotas.bandwidth = Some(50_000);
    let ledger = config.ledger.clone();
    let t0 = Instant::now();
    let mut now = t0;
    let mut server = TurnServer::new(config, t0, UNIX);
    let scoped = secret
        .mint_scoped("u", "s", &["198.51.100.2".parse().unwrap()], UNIX + 3000)
        .unwrap();
    let plain = secret.mint("u", UNIX + 3000).unwrap();
    let server_addr: SocketAddr = "192.0.2.1:3478".parse().unwrap();
    let mut clients = Clients {
        tuples: (0..4u16)
            .map(|i| FiveTuple {
                transport: if i < 2 {
                    ClientTransport::Udp
                } else {
                    ClientTransport::Tcp
                },
                client: SocketAddr::from(([203, 0, 113, 9], 40_000 + i)),
                server: server_addr,
            })
            .collect(),
        nonces: vec![None; 4],
        relays: vec![None; 4],
    };
    let mut out = Vec::new();
    let mut closed = 0usize;
    let mut opened = 0usize;
    let mut tid = 0u32;
    let mut rest = data.get(1..).unwrap_or_default();
    while let [op, who, tail @ ..] = rest {
        let c = usize::from(*who % 4);
        let tuple = clients.tuples[c];
        rest = tail;
        match op % 6 {
            0 | 1 => {
                // Raw bytes: a length byte then that many bytes.
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let n = usize::from(len).min(tail.len());
                let (bytes, tail) = tail.split_at(n);
                rest = tail;
                let o = server.handle_client(now, tuple, bytes, &mut out);
                check(
                    &mut server,
                    now,
                    &tuple,
                    o,
                    bytes,
                    &mut out,
                    &mut clients,
                    c,
                    &mut opened,
                );
            }
            2 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let n = usize::from(len).min(tail.len());
                let (bytes, tail) = tail.split_at(n);
                rest = tail;
                if let Some(relay) = clients.relays[c] {
                    let peer: SocketAddr = PEERS[usize::from(len) % PEERS.len()].parse().unwrap();
                    if let Some(to) = server.handle_peer(now, relay, peer, bytes, &mut out) {
                        assert!(!out.is_empty());
                        assert!(clients.tuples.contains(&to));
                    }
                }
            }
            3 => {
                // An authenticated request; the next byte picks method and attributes.
                let Some((&sel, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                tid += 1;
                let cred = if sel & 0x80 != 0 { &scoped } else { &plain };
                let peer: SocketAddr = PEERS[usize::from(sel >> 4) % PEERS.len()].parse().unwrap();
                let (method, attrs) = match sel % 5 {
                    0 => (Method::ALLOCATE, vec![Attribute::RequestedTransport(17)]),
                    1 => (
                        Method::REFRESH,
                        vec![Attribute::Lifetime(u32::from(sel) * 7)],
                    ),
                    2 => (
                        Method::CREATE_PERMISSION,
                        vec![Attribute::XorPeerAddress(peer)],
                    ),
                    3 => (
                        Method::CHANNEL_BIND,
                        vec![
                            Attribute::ChannelNumber(0x4000 + u16::from(sel & 3)),
                            Attribute::XorPeerAddress(peer),
                        ],
                    ),
                    _ => (Method::BINDING, vec![]),
                };
                let mut t = [0u8; 12];
                t[..4].copy_from_slice(&tid.to_be_bytes());
                let mut m = Message::new(Class::Request, method, TransactionId(t));
                m.attributes = attrs;
                let key = peercam_stun::auth::long_term_key(&cred.username, REALM, &cred.password);
                let bytes = match &clients.nonces[c] {
                    Some(nonce) => {
                        m.attributes
                            .push(Attribute::Username(cred.username.clone()));
                        m.attributes.push(Attribute::Realm(REALM.into()));
                        m.attributes.push(Attribute::Nonce(nonce.clone()));
                        let alg = if sel & 0x40 != 0 {
                            IntegrityAlgorithm::HmacSha256
                        } else {
                            IntegrityAlgorithm::HmacSha1
                        };
                        m.encode_sealed(Some((alg, &key)), true).unwrap()
                    }
                    None => m.encode_sealed(None, true).unwrap(),
                };
                let o = server.handle_client(now, tuple, &bytes, &mut out);
                check(
                    &mut server,
                    now,
                    &tuple,
                    o,
                    &bytes,
                    &mut out,
                    &mut clients,
                    c,
                    &mut opened,
                );
            }
            4 => {
                server.client_closed(now, &tuple);
            }
            _ => {
                let Some((&secs, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                now += Duration::from_secs(u64::from(secs) * 4);
                if server.poll_timeout().is_some_and(|t| t <= now) {
                    server.handle_timeout(now);
                }
            }
        }
        while let Some(Event::AllocationClosed { relay, tuple }) = server.poll_event() {
            closed += 1;
            if let Some(i) = clients.tuples.iter().position(|t| *t == tuple)
                && clients.relays[i] == Some(relay)
            {
                clients.relays[i] = None;
            }
        }
        let live = clients
            .tuples
            .iter()
            .filter(|t| server.allocation(t).is_some())
            .count();
        assert_eq!(server.stats().allocations_active as usize, live);
        assert_eq!(ledger.total() as usize, live);
        assert_eq!(opened - closed, live);
    }
    // Everything expires.
    now += Duration::from_secs(4000);
    server.handle_timeout(now);
    while server.poll_event().is_some() {
        closed += 1;
    }
    assert_eq!(server.stats().allocations_active, 0);
    assert_eq!(ledger.total(), 0);
    assert_eq!(opened, closed);
});

#[allow(clippy::too_many_arguments)]
fn check(
    server: &mut TurnServer,
    now: Instant,
    tuple: &FiveTuple,
    o: Output<'_>,
    input: &[u8],
    out: &mut Vec<u8>,
    clients: &mut Clients,
    c: usize,
    opened: &mut usize,
) {
    let range = input.as_ptr_range();
    match o {
        Output::None => {}
        Output::Reply if peercam_stun::classic::is_classic_binding(input) => {
            // RFC 8489 12: a cookie-less Binding request gets a classic answer.
            let m =
                peercam_stun::classic::ClassicMessage::decode(out).expect("classic reply decodes");
            assert_eq!(m.transaction_id[..], input[4..20]);
        }
        Output::Reply => learn(out, clients, c),
        Output::ToPeer { data, .. } => {
            let r = data.as_ptr_range();
            assert!(
                range.start <= r.start && r.end <= range.end,
                "payload not from the input"
            );
        }
        Output::BindRelay { .. } => {
            let addr = SocketAddr::from(([192, 0, 2, 1], 50_000 + c as u16));
            let id = server.relay_bound(now, *tuple, Ok(addr), out);
            assert!(id.is_some());
            *opened += 1;
            clients.relays[c] = id;
            learn(out, clients, c);
        }
    }
}

fn learn(out: &[u8], clients: &mut Clients, c: usize) {
    let m = Message::decode(out).expect("replies decode");
    if let Some(n) = m.nonce() {
        clients.nonces[c] = Some(n.to_owned());
    }
}
