//! The server in virtual time: one client, one peer, no sockets.
#![allow(clippy::disallowed_methods)] // a test needs some Instant to start from

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;
use crate::auth::RestCredential;
use crate::message::{AddressFamily, IntegrityAlgorithm as Alg};

const UNIX: u64 = 1_700_000_000;
const REALM: &str = "peercam.test";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const RELAY: &str = "192.0.2.1:50000";
const PEER: &str = "198.51.100.2:7000";

struct Lab {
    server: TurnServer,
    t0: Instant,
    now: Instant,
    tuple: FiveTuple,
    cred: RestCredential,
    nonce: Option<String>,
    out: Vec<u8>,
    next_tid: u8,
}

fn secret() -> RestSecret {
    RestSecret::new("lab-secret").unwrap()
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new(REALM, secret(), [9; 32]);
    c.policy = PeerPolicy::new().allow("198.51.100.0/24".parse().unwrap());
    c
}

impl Lab {
    fn new(config: ServerConfig) -> Self {
        let cred = config
            .secret
            .mint_scoped("u42", "s1", &[ip("198.51.100.2")], UNIX + 3600)
            .unwrap();
        Self::with(config, cred)
    }

    fn with(config: ServerConfig, cred: RestCredential) -> Self {
        let t0 = Instant::now();
        Self {
            server: TurnServer::new(config, t0, UNIX),
            t0,
            now: t0,
            tuple: FiveTuple {
                transport: ClientTransport::Udp,
                client: sa("203.0.113.5:40000"),
                server: sa("192.0.2.1:3478"),
            },
            cred,
            nonce: None,
            out: Vec::new(),
            next_tid: 0,
        }
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        if let Some(t) = self.server.poll_timeout()
            && t <= self.now
        {
            self.server.handle_timeout(self.now);
        }
    }

    fn key(&self) -> [u8; 16] {
        crate::auth::long_term_key(&self.cred.username, REALM, &self.cred.password)
    }

    fn build(&mut self, method: Method, attrs: Vec<Attribute>, alg: Option<Alg>) -> Vec<u8> {
        self.next_tid += 1;
        let mut m = Message::new(Class::Request, method, TransactionId([self.next_tid; 12]));
        m.attributes = attrs;
        let key = self.key();
        if let (Some(alg), Some(nonce)) = (alg, &self.nonce) {
            m.attributes
                .push(Attribute::Username(self.cred.username.clone()));
            m.attributes.push(Attribute::Realm(REALM.into()));
            m.attributes.push(Attribute::Nonce(nonce.clone()));
            m.encode_sealed(Some((alg, &key)), true).unwrap()
        } else {
            m.encode_sealed(None, true).unwrap()
        }
    }

    /// Send a request, learning the nonce from a 401/438 once; returns the response.
    fn request(&mut self, method: Method, attrs: Vec<Attribute>) -> Message {
        for _ in 0..2 {
            let bytes = self.build(method, attrs.clone(), Some(Alg::HmacSha1));
            let mut out = std::mem::take(&mut self.out);
            let o = self
                .server
                .handle_client(self.now, self.tuple, &bytes, &mut out);
            let resp = match o {
                Output::Reply => Message::decode(&out).unwrap(),
                Output::BindRelay { .. } => {
                    let id = self
                        .server
                        .relay_bound(self.now, self.tuple, Ok(sa(RELAY)), &mut out);
                    assert!(id.is_some());
                    Message::decode(&out).unwrap()
                }
                other => panic!("unexpected {other:?}"),
            };
            self.out = out;
            if let Some(e) = resp.error_code()
                && [401, 438].contains(&e.code)
                && self.nonce.as_deref() != resp.nonce()
            {
                self.nonce = resp.nonce().map(str::to_owned);
                continue;
            }
            return resp;
        }
        panic!("no answer after the nonce")
    }

    fn allocate(&mut self) -> Message {
        self.request(Method::ALLOCATE, vec![Attribute::RequestedTransport(17)])
    }

    fn code(m: &Message) -> Option<u16> {
        m.error_code().map(|e| e.code)
    }

    fn relay(&self) -> RelayId {
        self.server.relay_of(&self.tuple).unwrap()
    }

    /// Peer → client; returns the bytes sent to the client.
    fn peer_sends(&mut self, peer: &str, data: &[u8]) -> Option<Vec<u8>> {
        let relay = self.relay();
        let mut out = Vec::new();
        self.server
            .handle_peer(self.now, relay, sa(peer), data, &mut out)
            .map(|_| out)
    }

    fn channel_data(&mut self, channel: u16, data: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
        let mut frame = Vec::new();
        framing::ChannelData { channel, data }
            .encode(Transport::Udp, &mut frame)
            .unwrap();
        let mut out = Vec::new();
        match self
            .server
            .handle_client(self.now, self.tuple, &frame, &mut out)
        {
            Output::ToPeer { peer, data, .. } => Some((peer, data.to_vec())),
            _ => None,
        }
    }

    fn closed_events(&mut self) -> usize {
        std::iter::from_fn(|| self.server.poll_event()).count()
    }
}

#[test]
fn binding_needs_no_credential() {
    let mut lab = Lab::new(config());
    let req = Message::new(Class::Request, Method::BINDING, TransactionId([1; 12]))
        .encode_sealed(None, true)
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(
        lab.server.handle_client(lab.now, lab.tuple, &req, &mut out),
        Output::Reply
    );
    let m = Message::decode(&out).unwrap();
    assert_eq!(m.class, Class::SuccessResponse);
    assert_eq!(m.xor_mapped_address(), Some(lab.tuple.client));
    verify_fingerprint(&out).unwrap();
    assert_eq!(lab.server.stats().binding_requests, 1);
}

/// A Binding request of an RFC 3489 client (no magic cookie) is answered (RFC 8489 12), and a
/// CHANGE-REQUEST the one-address server cannot honour gets 420 on both kinds of request.
#[test]
fn h626_7_3_classic_clients_and_change_requests_get_honest_answers() {
    use crate::classic::ClassicMessage;
    let mut lab = Lab::new(config());
    let mut out = Vec::new();
    let classic = ClassicMessage {
        typ: 0x0001,
        transaction_id: [9; 16],
        attributes: vec![],
    }
    .encode()
    .unwrap();
    assert_eq!(
        lab.server
            .handle_client(lab.now, lab.tuple, &classic, &mut out),
        Output::Reply
    );
    let m = ClassicMessage::decode(&out).unwrap();
    assert_eq!((m.typ, m.transaction_id), (0x0101, [9; 16]));
    assert!(m.get(attr::MAPPED_ADDRESS).is_some());
    assert_eq!(lab.server.stats().binding_requests, 1);

    for (change_ip, change_port) in [(true, false), (false, true), (true, true)] {
        let req = Message::new(Class::Request, Method::BINDING, TransactionId([2; 12]))
            .with(Attribute::ChangeRequest {
                change_ip,
                change_port,
            })
            .encode_sealed(None, true)
            .unwrap();
        assert_eq!(
            lab.server.handle_client(lab.now, lab.tuple, &req, &mut out),
            Output::Reply
        );
        let m = Message::decode(&out).unwrap();
        assert_eq!(m.class, Class::ErrorResponse);
        assert_eq!(
            m.get(attr::UNKNOWN_ATTRIBUTES),
            Some(&Attribute::UnknownAttributes(vec![attr::CHANGE_REQUEST]))
        );
    }
    // Asking for no change is honoured as it stands.
    let req = Message::new(Class::Request, Method::BINDING, TransactionId([3; 12]))
        .with(Attribute::ChangeRequest {
            change_ip: false,
            change_port: false,
        })
        .encode_sealed(None, true)
        .unwrap();
    assert_eq!(
        lab.server.handle_client(lab.now, lab.tuple, &req, &mut out),
        Output::Reply
    );
    assert_eq!(Message::decode(&out).unwrap().class, Class::SuccessResponse);
}

#[test]
fn h626_7_2_allocate_challenge_then_success() {
    let mut lab = Lab::new(config());
    // RFC 8656 7.2: the first Allocate has no credential and gets 401 with REALM/NONCE.
    let bytes = lab.build(
        Method::ALLOCATE,
        vec![Attribute::RequestedTransport(17)],
        None,
    );
    let mut out = Vec::new();
    assert_eq!(
        lab.server
            .handle_client(lab.now, lab.tuple, &bytes, &mut out),
        Output::Reply
    );
    let m = Message::decode(&out).unwrap();
    assert_eq!(Lab::code(&m), Some(401));
    assert_eq!(m.realm(), Some(REALM));
    assert!(m.nonce().is_some());

    let r = lab.allocate();
    assert_eq!(r.class, Class::SuccessResponse, "{r:?}");
    assert_eq!(r.xor_relayed_address(), Some(sa(RELAY)));
    assert_eq!(r.lifetime(), Some(600));
    assert_eq!(r.xor_mapped_address(), Some(lab.tuple.client));
    assert!(verify_integrity(&lab.out, &lab.key()).is_ok());
    assert_eq!(lab.server.allocation(&lab.tuple), Some(sa(RELAY)));
    assert_eq!(lab.server.stats().allocations_active, 1);
    // A second Allocate with another transaction is a mismatch.
    assert_eq!(Lab::code(&lab.allocate()), Some(437));
}

#[test]
fn allocate_refusals() {
    let mut lab = Lab::new(config());
    let r = lab.request(Method::ALLOCATE, vec![]);
    assert_eq!(Lab::code(&r), Some(400));
    let r = lab.request(Method::ALLOCATE, vec![Attribute::RequestedTransport(6)]);
    assert_eq!(Lab::code(&r), Some(442));
    let r = lab.request(
        Method::ALLOCATE,
        vec![
            Attribute::RequestedTransport(17),
            Attribute::ReservationToken([1; 8]),
        ],
    );
    assert_eq!(Lab::code(&r), Some(508));
    let r = lab.request(
        Method::ALLOCATE,
        vec![
            Attribute::RequestedTransport(17),
            Attribute::RequestedAddressFamily(AddressFamily::Other(9)),
        ],
    );
    assert_eq!(Lab::code(&r), Some(440));
    let r = lab.request(
        Method::ALLOCATE,
        vec![
            Attribute::RequestedTransport(17),
            Attribute::Unknown {
                typ: 0x7777,
                value: vec![],
            },
        ],
    );
    assert_eq!(Lab::code(&r), Some(420));
    // EVEN-PORT without R and DONT-FRAGMENT are accepted.
    let bytes = lab.build(
        Method::ALLOCATE,
        vec![
            Attribute::RequestedTransport(17),
            Attribute::EvenPort(false),
            Attribute::DontFragment,
        ],
        Some(Alg::HmacSha1),
    );
    let mut out = Vec::new();
    assert_eq!(
        lab.server
            .handle_client(lab.now, lab.tuple, &bytes, &mut out),
        Output::BindRelay {
            family: RelayFamily::V4,
            even_port: true
        }
    );
    // No port free: 508, and the quota is given back.
    assert_eq!(
        lab.server
            .relay_bound(lab.now, lab.tuple, Err(BindError::Capacity), &mut out),
        None
    );
    assert_eq!(Lab::code(&Message::decode(&out).unwrap()), Some(508));
    assert_eq!(lab.server.config().ledger.total(), 0);
}

#[test]
fn sha256_integrity_accepted() {
    let mut lab = Lab::new(config());
    lab.allocate();
    let bytes = lab.build(
        Method::REFRESH,
        vec![Attribute::Lifetime(900)],
        Some(Alg::HmacSha256),
    );
    let mut out = Vec::new();
    assert_eq!(
        lab.server
            .handle_client(lab.now, lab.tuple, &bytes, &mut out),
        Output::Reply
    );
    let m = Message::decode(&out).unwrap();
    assert_eq!(m.lifetime(), Some(900));
    assert_eq!(verify_integrity(&out, &lab.key()), Ok(Alg::HmacSha256));
}

#[test]
fn h626_7_3_turn_expired_and_forged_credentials() {
    let s = secret();
    let expired = s
        .mint_scoped("u42", "s1", &[ip("198.51.100.2")], UNIX - 1)
        .unwrap();
    let mut lab = Lab::with(config(), expired);
    assert_eq!(Lab::code(&lab.allocate()), Some(401));
    let mut forged = s
        .mint_scoped("u42", "s1", &[ip("198.51.100.2")], UNIX + 60)
        .unwrap();
    forged.password = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let mut lab = Lab::with(config(), forged);
    assert_eq!(Lab::code(&lab.allocate()), Some(401));
    assert!(lab.server.stats().auth_failures >= 1);
    // A credential that expires later stops working then.
    let short = s
        .mint_scoped("u42", "s1", &[ip("198.51.100.2")], UNIX + 100)
        .unwrap();
    let mut lab = Lab::with(config(), short);
    assert_eq!(lab.allocate().class, Class::SuccessResponse);
    lab.advance(101);
    let r = lab.request(Method::REFRESH, vec![]);
    assert_eq!(Lab::code(&r), Some(401));
}

#[test]
fn stale_nonce() {
    let mut lab = Lab::new(config());
    lab.allocate();
    let old = lab.nonce.clone();
    lab.advance(599);
    assert_eq!(
        lab.request(Method::REFRESH, vec![]).class,
        Class::SuccessResponse
    );
    lab.advance(2);
    // The old nonce is past 600 s: 438 with a new nonce, then the retry succeeds.
    let bytes = lab.build(Method::REFRESH, vec![], Some(Alg::HmacSha1));
    let mut out = Vec::new();
    let _ = lab
        .server
        .handle_client(lab.now, lab.tuple, &bytes, &mut out);
    let m = Message::decode(&out).unwrap();
    assert_eq!(Lab::code(&m), Some(438));
    assert_ne!(m.nonce(), old.as_deref());
    lab.nonce = m.nonce().map(str::to_owned);
    assert_eq!(
        lab.request(Method::REFRESH, vec![]).class,
        Class::SuccessResponse
    );
    assert_eq!(lab.server.stats().stale_nonces, 1);
    // A nonce minted for another client address does not verify.
    lab.tuple.client = sa("203.0.113.5:40001");
    let bytes = lab.build(Method::REFRESH, vec![], Some(Alg::HmacSha1));
    let _ = lab
        .server
        .handle_client(lab.now, lab.tuple, &bytes, &mut out);
    assert_eq!(Lab::code(&Message::decode(&out).unwrap()), Some(438));
}

#[test]
fn allocation_expires_and_refresh() {
    let mut lab = Lab::new(config());
    lab.allocate();
    lab.advance(500);
    // RFC 8656 8.2: below the default lifetime means the default.
    let r = lab.request(Method::REFRESH, vec![Attribute::Lifetime(60)]);
    assert_eq!(r.lifetime(), Some(600));
    lab.advance(599);
    assert_eq!(lab.server.stats().allocations_active, 1);
    assert_eq!(lab.closed_events(), 0);
    lab.advance(1);
    assert_eq!(lab.server.stats().allocations_active, 0);
    assert_eq!(lab.closed_events(), 1);
    assert_eq!(lab.server.allocation(&lab.tuple), None);
    assert_eq!(lab.server.config().ledger.total(), 0);
    // Refresh above the maximum is capped; 0 deletes at once.
    lab.allocate();
    let r = lab.request(Method::REFRESH, vec![Attribute::Lifetime(99_999)]);
    assert_eq!(r.lifetime(), Some(3600));
    let r = lab.request(Method::REFRESH, vec![Attribute::Lifetime(0)]);
    assert_eq!((r.class, r.lifetime()), (Class::SuccessResponse, Some(0)));
    assert_eq!(lab.closed_events(), 1);
    assert_eq!(Lab::code(&lab.request(Method::REFRESH, vec![])), Some(437));
}

#[test]
fn permission_and_channel_expire() {
    let mut lab = Lab::new(config());
    lab.allocate();
    let peer = sa(PEER);
    // No permission yet: the peer's packet is dropped.
    assert!(lab.peer_sends(PEER, b"x").is_none());
    let r = lab.request(
        Method::CREATE_PERMISSION,
        vec![Attribute::XorPeerAddress(peer)],
    );
    assert_eq!(r.class, Class::SuccessResponse);
    // Data indication to the client (no channel yet).
    let out = lab.peer_sends(PEER, b"hello").unwrap();
    let m = Message::decode(&out).unwrap();
    assert_eq!((m.class, m.method), (Class::Indication, Method::DATA));
    assert_eq!(m.data(), Some(&b"hello"[..]));
    assert_eq!(m.xor_peer_addresses(), vec![peer]);
    // Any port of a permitted IP passes (RFC 8656 9).
    assert!(lab.peer_sends("198.51.100.2:9", b"x").is_some());
    lab.advance(299);
    assert!(lab.peer_sends(PEER, b"x").is_some());
    lab.advance(1);
    assert!(
        lab.peer_sends(PEER, b"x").is_none(),
        "permission outlived 300 s"
    );

    let r = lab.request(
        Method::CHANNEL_BIND,
        vec![
            Attribute::ChannelNumber(0x4001),
            Attribute::XorPeerAddress(peer),
        ],
    );
    assert_eq!(r.class, Class::SuccessResponse);
    let (to, data) = lab.channel_data(0x4001, b"abc").unwrap();
    assert_eq!((to, &data[..]), (peer, &b"abc"[..]));
    let out = lab.peer_sends(PEER, b"back").unwrap();
    let cd = framing::ChannelData::decode(&out, Transport::Udp).unwrap();
    assert_eq!((cd.channel, cd.data), (0x4001, &b"back"[..]));
    // Refresh the permission alone past the channel's 600 s.
    for _ in 0..2 {
        lab.advance(290);
        lab.request(Method::REFRESH, vec![]);
        let r = lab.request(
            Method::CREATE_PERMISSION,
            vec![Attribute::XorPeerAddress(peer)],
        );
        assert_eq!(r.class, Class::SuccessResponse);
    }
    assert!(lab.channel_data(0x4001, b"abc").is_some());
    lab.advance(20);
    assert!(
        lab.channel_data(0x4001, b"abc").is_none(),
        "channel outlived 600 s"
    );
    // Without the channel the peer's data comes back as a Data indication.
    let out = lab.peer_sends(PEER, b"z").unwrap();
    assert!(Message::decode(&out).is_ok());
}

#[test]
fn channel_conflicts_and_range() {
    let mut lab = Lab::new(config());
    lab.allocate();
    let peer = sa(PEER);
    let bind = |lab: &mut Lab, ch: u16, p: SocketAddr| {
        let r = lab.request(
            Method::CHANNEL_BIND,
            vec![Attribute::ChannelNumber(ch), Attribute::XorPeerAddress(p)],
        );
        Lab::code(&r)
    };
    assert_eq!(bind(&mut lab, 0x3FFF, peer), Some(400));
    assert_eq!(bind(&mut lab, 0x8000, peer), Some(400));
    assert_eq!(bind(&mut lab, 0x4000, peer), None);
    assert_eq!(bind(&mut lab, 0x4000, peer), None, "rebinding refreshes");
    assert_eq!(
        bind(&mut lab, 0x4001, peer),
        Some(400),
        "peer already bound"
    );
    assert_eq!(
        bind(&mut lab, 0x4000, sa("198.51.100.2:7001")),
        Some(400),
        "channel already bound"
    );
}

#[test]
fn strict_rfc8656_channel_range() {
    let mut c = config();
    c.rfc5766_channels = false;
    let mut lab = Lab::new(c);
    lab.allocate();
    let r = lab.request(
        Method::CHANNEL_BIND,
        vec![
            Attribute::ChannelNumber(0x5000),
            Attribute::XorPeerAddress(sa(PEER)),
        ],
    );
    assert_eq!(Lab::code(&r), Some(400));
    let mut lab = Lab::new(config());
    lab.allocate();
    let r = lab.request(
        Method::CHANNEL_BIND,
        vec![
            Attribute::ChannelNumber(0x7FFF),
            Attribute::XorPeerAddress(sa(PEER)),
        ],
    );
    assert_eq!(r.class, Class::SuccessResponse);
    let mut frame = vec![0x7F, 0xFF, 0, 2, 1, 2];
    let mut out = Vec::new();
    assert!(matches!(
        lab.server
            .handle_client(lab.now, lab.tuple, &frame, &mut out),
        Output::ToPeer { data: [1, 2], .. }
    ));
    frame.push(9);
    frame.push(9);
    frame.push(9);
    assert_eq!(
        lab.server
            .handle_client(lab.now, lab.tuple, &frame, &mut out),
        Output::None
    );
    assert_eq!(stream_frame_len(&[0x7F, 0xFF, 0, 5]), Ok(Some(12)));
    assert_eq!(stream_frame_len(&[0x7F]), Ok(None));
}

#[test]
fn send_indication_relays() {
    let mut lab = Lab::new(config());
    lab.allocate();
    let peer = sa(PEER);
    lab.request(
        Method::CREATE_PERMISSION,
        vec![Attribute::XorPeerAddress(peer)],
    );
    let send = Message::new(Class::Indication, Method::SEND, TransactionId([3; 12]))
        .with(Attribute::XorPeerAddress(peer))
        .with(Attribute::DontFragment)
        .with(Attribute::Data(b"payload".to_vec()))
        .encode_sealed(None, true)
        .unwrap();
    let mut out = Vec::new();
    match lab
        .server
        .handle_client(lab.now, lab.tuple, &send, &mut out)
    {
        Output::ToPeer {
            peer: p,
            data,
            relay,
        } => {
            assert_eq!((p, data), (peer, &b"payload"[..]));
            assert_eq!(relay, lab.relay());
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(lab.server.stats().packets_to_peer, 1);
    // To an IP without permission: dropped silently.
    let send = Message::new(Class::Indication, Method::SEND, TransactionId([4; 12]))
        .with(Attribute::XorPeerAddress(sa("198.51.100.3:1")))
        .with(Attribute::Data(b"p".to_vec()))
        .encode()
        .unwrap();
    assert_eq!(
        lab.server
            .handle_client(lab.now, lab.tuple, &send, &mut out),
        Output::None
    );
}

#[test]
fn d8_policy_and_scope() {
    // Unscoped credentials under require_scoped: no allocation.
    let s = secret();
    let plain = s.mint("u42", UNIX + 60).unwrap();
    let mut lab = Lab::with(config(), plain.clone());
    assert_eq!(Lab::code(&lab.allocate()), Some(403));
    assert_eq!(lab.server.stats().scope_denials, 1);

    // Scoped: only the listed peer, and never a special-purpose address.
    let cred = s
        .mint_scoped(
            "u42",
            "s1",
            &[ip("198.51.100.2"), ip("127.0.0.1"), ip("10.0.0.1")],
            UNIX + 60,
        )
        .unwrap();
    let mut lab = Lab::with(config(), cred);
    lab.allocate();
    let perm = |lab: &mut Lab, p: &str| {
        Lab::code(&lab.request(
            Method::CREATE_PERMISSION,
            vec![Attribute::XorPeerAddress(sa(p))],
        ))
    };
    assert_eq!(perm(&mut lab, PEER), None);
    assert_eq!(
        perm(&mut lab, "198.51.100.3:1"),
        Some(403),
        "outside the session"
    );
    assert_eq!(
        perm(&mut lab, "127.0.0.1:1"),
        Some(403),
        "loopback in scope but denied by policy"
    );
    assert_eq!(perm(&mut lab, "10.0.0.1:1"), Some(403));
    assert_eq!(
        perm(&mut lab, "[::ffff:127.0.0.1]:1"),
        Some(403),
        "denied in its IPv6 spelling too"
    );
    assert_eq!(
        perm(&mut lab, "[2606:4700::1111]:1"),
        Some(443),
        "allowed peer of the other family"
    );
    assert_eq!(lab.server.stats().policy_denials, 3);
    assert_eq!(lab.server.stats().scope_denials, 1);

    // Unscoped with require_scoped off: any policy-allowed peer.
    let mut c = config();
    c.require_scoped = false;
    let mut lab = Lab::with(c, plain);
    lab.allocate();
    assert_eq!(perm(&mut lab, "198.51.100.77:1"), None);
    assert_eq!(perm(&mut lab, "127.0.0.1:1"), Some(403));
}

#[test]
fn quotas() {
    let mut c = config();
    c.quotas.max_allocations_per_user = 1;
    c.quotas.max_permissions = 2;
    c.quotas.max_channels = 1;
    c.require_scoped = false;
    let ledger = c.ledger.clone();
    let mut lab = Lab::with(c.clone(), secret().mint("u42", UNIX + 60).unwrap());
    lab.allocate();
    // A second client of the same user, on another server sharing the ledger.
    let mut other = Lab::with(c.clone(), secret().mint("u42", UNIX + 60).unwrap());
    other.tuple.client = sa("203.0.113.6:1");
    assert_eq!(Lab::code(&other.allocate()), Some(486));
    // Another user is fine until the total runs out.
    let mut c2 = c;
    c2.quotas.max_allocations = 2;
    let mut third = Lab::with(c2.clone(), secret().mint("u43", UNIX + 60).unwrap());
    third.tuple.client = sa("203.0.113.7:1");
    assert_eq!(third.allocate().class, Class::SuccessResponse);
    let mut fourth = Lab::with(c2, secret().mint("u44", UNIX + 60).unwrap());
    fourth.tuple.client = sa("203.0.113.8:1");
    assert_eq!(Lab::code(&fourth.allocate()), Some(508));
    assert_eq!(ledger.total(), 2);

    let perm = |lab: &mut Lab, p: &str| {
        Lab::code(&lab.request(
            Method::CREATE_PERMISSION,
            vec![Attribute::XorPeerAddress(sa(p))],
        ))
    };
    assert_eq!(perm(&mut lab, "198.51.100.1:1"), None);
    assert_eq!(perm(&mut lab, "198.51.100.2:1"), None);
    assert_eq!(perm(&mut lab, "198.51.100.3:1"), Some(508));
    let r = lab.request(
        Method::CHANNEL_BIND,
        vec![
            Attribute::ChannelNumber(0x4000),
            Attribute::XorPeerAddress(sa("198.51.100.1:1")),
        ],
    );
    assert_eq!(r.class, Class::SuccessResponse);
    let r = lab.request(
        Method::CHANNEL_BIND,
        vec![
            Attribute::ChannelNumber(0x4001),
            Attribute::XorPeerAddress(sa("198.51.100.2:1")),
        ],
    );
    assert_eq!(Lab::code(&r), Some(508));
    assert!(lab.server.stats().quota_refusals >= 2);
}

#[test]
fn bandwidth_cap_drops() {
    let mut c = config();
    c.quotas.bandwidth = Some(10_000);
    c.quotas.burst = Some(10_000);
    let mut lab = Lab::new(c);
    lab.allocate();
    lab.request(
        Method::CHANNEL_BIND,
        vec![
            Attribute::ChannelNumber(0x4000),
            Attribute::XorPeerAddress(sa(PEER)),
        ],
    );
    let payload = [0u8; 1000];
    let sent = (0..20)
        .filter(|_| lab.channel_data(0x4000, &payload).is_some())
        .count();
    assert_eq!(sent, 10);
    assert_eq!(lab.server.stats().bandwidth_drops, 10);
    // Refilled after a second; the cap counts both directions.
    lab.now += Duration::from_secs(1);
    let back = (0..20)
        .filter(|_| lab.peer_sends(PEER, &payload).is_some())
        .count();
    assert_eq!(back, 10);
}

#[test]
fn stream_client_and_close() {
    let mut lab = Lab::new(config());
    lab.tuple.transport = ClientTransport::Tcp;
    lab.allocate();
    lab.request(
        Method::CHANNEL_BIND,
        vec![
            Attribute::ChannelNumber(0x4000),
            Attribute::XorPeerAddress(sa(PEER)),
        ],
    );
    let out = lab.peer_sends(PEER, b"abcde").unwrap();
    assert_eq!(out.len(), 12, "padded on streams");
    assert!(framing::ChannelData::decode(&out, Transport::Stream).is_ok());
    lab.server.client_closed(lab.now, &lab.tuple.clone());
    assert_eq!(lab.closed_events(), 1);
    assert_eq!(lab.server.stats().allocations_active, 0);
    let _ = lab.t0;
}

#[test]
fn garbage_is_counted_not_answered() {
    let mut lab = Lab::new(config());
    let mut out = Vec::new();
    for junk in [
        &[0xFFu8, 1, 2][..],
        &[0x40, 0, 0, 9, 1],
        &[0, 1, 0, 0],
        &[],
        &[0x40],
        &[0x40, 1, 2],
    ] {
        assert_eq!(
            lab.server.handle_client(lab.now, lab.tuple, junk, &mut out),
            Output::None
        );
    }
    assert!(lab.server.stats().malformed >= 3);
}
