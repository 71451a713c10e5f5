//! The Sc / Sm pair wired back to back in one thread, in virtual time.

use std::time::{Duration, Instant};

use peercam_base::DeviceId;
use proptest::prelude::*;

use super::*;
use crate::cmd::DeviceReply;
use crate::ps::DeviceKind;

const SECRET: &str = "node-secret-0123456789";

fn dev(n: u8) -> DeviceId {
    DeviceId::from_random([n; 10])
}

fn check() -> PlayCheck {
    PlayCheck {
        token: "pct1.x.y".into(),
        client: "192.0.2.7:5000".into(),
    }
}

fn play(n: u8) -> ScRequest {
    ScRequest::Play {
        device_id: dev(n),
        check: check(),
    }
}

fn granted() -> ScResponse {
    ScResponse::Play(PlayVerdict::Granted {
        grant: crate::play::PlayGrant {
            user: 7,
            scopes: peercam_base::ScopeSet::default(),
            caps: crate::play::Caps::default(),
            expires_at: 100,
            cam: None,
        },
    })
}

fn refused(code: Refusal) -> impl Fn(&ScResponse) -> bool {
    move |r| matches!(r, ScResponse::Play(PlayVerdict::Refused { code: c, .. }) if *c == code)
}

/// One SCU node and the CMU's end of its link, plus the CMU's route table.
struct Pair {
    now: Instant,
    node: String,
    scu: ScuLink<u32>,
    cmu: CmuPeer<u32>,
    scu_events: Vec<ScuLinkEvent<u32>>,
    cmu_events: Vec<CmuPeerEvent<u32>>,
    /// Frames the CMU sent, as they went.
    to_scu: Vec<Vec<u8>>,
}

impl Pair {
    fn new(node: &str, now: Instant) -> Self {
        let mut p = Self {
            now,
            node: node.into(),
            scu: ScuLink::new(ScuLinkConfig {
                node: node.into(),
                secret: SECRET.into(),
                timeouts: ScTimeouts::default(),
            }),
            cmu: CmuPeer::new(
                CmuPeerConfig {
                    secrets: vec!["other".into(), SECRET.into()],
                    timeouts: ScTimeouts::default(),
                },
                now,
            ),
            scu_events: Vec::new(),
            cmu_events: Vec::new(),
            to_scu: Vec::new(),
        };
        p.scu.connect(now);
        p.pump();
        p
    }

    /// Moves frames both ways until both are quiet; collects events.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(f) = self.scu.poll_transmit() {
                moved = true;
                let _ = self.cmu.handle_input(&f);
            }
            while let Some(f) = self.cmu.poll_transmit() {
                moved = true;
                self.to_scu.push(f.clone());
                let _ = self.scu.handle_input(&f);
            }
            self.scu_events
                .extend(std::iter::from_fn(|| self.scu.poll_event()));
            self.cmu_events
                .extend(std::iter::from_fn(|| self.cmu.poll_event()));
            if !moved {
                return;
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.scu.handle_timeout(self.now);
        self.cmu.handle_timeout(self.now);
        self.pump();
    }

    /// The CMU asks the node for a command (`waiter_command`) and an MTU (`waiter_mtu`).
    fn ask_command_and_mtu(&mut self, waiter_command: u32, waiter_mtu: u32) {
        let command = CmRequest::Command {
            device_id: dev(1),
            command: DeviceCommand::Describe,
        };
        self.cmu.request(self.now, command, waiter_command);
        let mtu = CmRequest::SelectMtu { device_id: dev(1) };
        self.cmu.request(self.now, mtu, waiter_mtu);
    }

    /// The CMU's pending requests from the node, taken.
    fn cmu_requests(&mut self) -> Vec<(u64, ScRequest)> {
        take(&mut self.cmu_events, |e| match e {
            CmuPeerEvent::Request { id, request } => Pick::Take((id, request)),
            other => Pick::Keep(other),
        })
    }
}

#[test]
fn h626_7_2_sc_pair_handshake_and_request_matching() {
    let mut p = Pair::new("scu-1", Instant::now());
    assert!(p.scu.is_up());
    assert_eq!(p.cmu.node(), Some("scu-1"));
    assert!(matches!(p.scu_events.as_slice(), [ScuLinkEvent::Up]));
    assert!(matches!(p.cmu_events.as_slice(), [CmuPeerEvent::NodeUp { node }] if node == "scu-1"));
    p.scu_events.clear();
    p.cmu_events.clear();

    // Two requests in flight, answered in the opposite order: each waiter gets its own.
    p.scu.request(p.now, play(1), 10);
    p.scu.request(p.now, play(2), 20);
    p.pump();
    let reqs = p.cmu_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].1, play(1));
    let deny = ScResponse::refusal_for(&reqs[0].1, Refusal::Expired, "expired");
    assert!(p.cmu.respond(reqs[1].0, granted()));
    assert!(p.cmu.respond(reqs[0].0, deny.clone()));
    p.pump();
    let answers = take_scu_answers(&mut p);
    assert_eq!(answers, vec![(20, granted()), (10, deny)]);
    // An answer of the wrong kind for a request is not sent.
    p.scu.request(
        p.now,
        ScRequest::Device {
            device_id: dev(1),
            request: DeviceRequest::RecorderStream { camera: dev(2) },
        },
        30,
    );
    p.pump();
    let reqs = p.cmu_requests();
    assert!(!p.cmu.respond(reqs[0].0, granted()));
    assert!(p.cmu.respond(
        reqs[0].0,
        ScResponse::refusal_for(&reqs[0].1, Refusal::NotAttached, "no")
    ));
    p.pump();
    let answers = take_scu_answers(&mut p);
    assert!(matches!(
        answers.as_slice(),
        [(
            30,
            ScResponse::Answer(PlatformAnswer::Refused {
                code: Refusal::NotAttached,
                ..
            })
        )]
    ));

    // CMU -> SCU: a command and an MTU choice, answered by id.
    p.ask_command_and_mtu(1, 2);
    p.pump();
    let ids: Vec<(u64, bool)> = p
        .scu_events
        .drain(..)
        .filter_map(|e| match e {
            ScuLinkEvent::Command { id, .. } => Some((id, true)),
            ScuLinkEvent::SelectMtu { id, .. } => Some((id, false)),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(p.scu.mtu_choice(ids[1].0, None));
    assert!(
        !p.scu.mtu_choice(ids[0].0, None),
        "a command is not answered with an MTU"
    );
    assert!(p.scu.command_result(
        ids[0].0,
        CommandOutcome::Replied {
            reply: DeviceReply::Done
        }
    ));
    p.pump();
    let answers = take_cmu_answers(&mut p);
    assert_eq!(
        answers,
        vec![
            (2, CmResponse::Mtu(None)),
            (
                1,
                CmResponse::Command(CommandOutcome::Replied {
                    reply: DeviceReply::Done
                })
            )
        ]
    );
}

/// What [`take`] does with one event.
enum Pick<T, E> {
    Take(T),
    Keep(E),
}

/// Takes the events `pick` selects out of `events`, keeping the others in order.
fn take<E, T>(events: &mut Vec<E>, pick: impl Fn(E) -> Pick<T, E>) -> Vec<T> {
    let mut out = Vec::new();
    let mut rest = Vec::new();
    for e in events.drain(..) {
        match pick(e) {
            Pick::Take(t) => out.push(t),
            Pick::Keep(e) => rest.push(e),
        }
    }
    *events = rest;
    out
}

fn take_scu_answers(p: &mut Pair) -> Vec<(u32, ScResponse)> {
    take(&mut p.scu_events, |e| match e {
        ScuLinkEvent::Answered { waiter, response } => Pick::Take((waiter, response)),
        other => Pick::Keep(other),
    })
}

fn take_cmu_answers(p: &mut Pair) -> Vec<(u32, CmResponse)> {
    take(&mut p.cmu_events, |e| match e {
        CmuPeerEvent::Answered { waiter, response } => Pick::Take((waiter, response)),
        other => Pick::Keep(other),
    })
}

fn presence(d: &DeviceId, session: &str, online: bool) -> ScNotice {
    ScNotice::Presence(Presence {
        device_id: d.clone(),
        session: session.into(),
        online,
    })
}

#[test]
fn h626_8_4_sc_pair_timeouts_then_late_and_duplicate_answers_dropped() {
    let mut p = Pair::new("scu-1", Instant::now());
    p.scu_events.clear();
    p.scu.request(p.now, play(1), 1);
    p.pump();
    let reqs = p.cmu_requests();
    assert_eq!(
        p.scu.poll_timeout(),
        Some(p.now + ScTimeouts::default().play)
    );
    p.advance(Duration::from_millis(4_999));
    assert!(take_scu_answers(&mut p).is_empty());
    p.advance(Duration::from_millis(1));
    let answers = take_scu_answers(&mut p);
    assert_eq!(answers.len(), 1);
    assert!(refused(Refusal::Timeout)(&answers[0].1));
    assert_eq!(p.scu.stats().timeouts, 1);

    // The CMU's answer arrives late: dropped, counted, nobody answered twice.
    assert!(p.cmu.respond(reqs[0].0, granted()));
    assert!(
        !p.cmu.respond(reqs[0].0, granted()),
        "one answer per request"
    );
    p.pump();
    assert!(take_scu_answers(&mut p).is_empty());
    assert_eq!(p.scu.stats().late_answers, 1);
    // The same answer frame replayed: dropped again.
    let dup = p.to_scu.last().cloned().unwrap_or_default();
    assert!(p.scu.handle_input(&dup).is_ok());
    assert_eq!(p.scu.stats().late_answers, 2);

    // CMU side: a command the node never answers times out as `timeout`.
    p.cmu.request(
        p.now,
        CmRequest::Command {
            device_id: dev(1),
            command: DeviceCommand::Describe,
        },
        5,
    );
    p.pump();
    p.advance(ScTimeouts::default().command);
    assert_eq!(
        take_cmu_answers(&mut p),
        vec![(5, CmResponse::Command(CommandOutcome::Timeout))]
    );
    // A duplicate command frame from the CMU is reported once.
    let before = p.scu_events.len();
    let cmd = p.to_scu.last().cloned().unwrap_or_default();
    assert!(p.scu.handle_input(&cmd).is_ok());
    assert_eq!(
        p.scu_events.len() + usize::from(p.scu.poll_event().is_some()),
        before
    );
}

#[test]
fn h626_7_2_sc_pair_node_loss_fails_pending_requests() {
    let mut p = Pair::new("scu-1", Instant::now());
    p.scu_events.clear();
    p.cmu_events.clear();
    p.scu.request(p.now, play(1), 1);
    p.ask_command_and_mtu(7, 8);
    p.pump();
    // The connection breaks: each side fails what it waits for, exactly once.
    p.scu.link_lost("connection reset");
    p.cmu.close("connection reset");
    p.pump();
    let answers = take_scu_answers(&mut p);
    assert_eq!(answers.len(), 1);
    assert!(refused(Refusal::Unavailable)(&answers[0].1));
    assert!(
        p.scu_events
            .iter()
            .any(|e| matches!(e, ScuLinkEvent::Down { .. }))
    );
    assert_eq!(
        take_cmu_answers(&mut p),
        vec![
            (7, CmResponse::Command(CommandOutcome::NotConnected)),
            (8, CmResponse::Mtu(None))
        ]
    );
    assert!(p.cmu.is_closed());
    assert!(
        p.cmu_events
            .iter()
            .any(|e| matches!(e, CmuPeerEvent::Closed { .. }))
    );
    // Fail closed while down: a registration is refused at once as unavailable.
    let verify = ScRequest::Verify(VerifyDevice {
        device_id: dev(3),
        kind: DeviceKind::Pu,
        node: "scu-1".into(),
        nonce: "n".into(),
        issued_at_ms: 1,
        signature: "s".into(),
        session: "abc".into(),
        sw_version: "1".into(),
    });
    p.scu.request(p.now, verify, 9);
    p.pump();
    assert!(matches!(
        take_scu_answers(&mut p).as_slice(),
        [(
            9,
            ScResponse::Verdict(Verdict::Refused {
                code: RefusalCode::Unavailable,
                ..
            })
        )]
    ));
    assert_eq!(p.scu.poll_timeout(), None);
    // Reconnecting: a new hello, ids start again.
    p.cmu = CmuPeer::new(
        CmuPeerConfig {
            secrets: vec![SECRET.into()],
            timeouts: ScTimeouts::default(),
        },
        p.now,
    );
    p.scu.connect(p.now);
    p.pump();
    assert!(p.scu.is_up());
}

#[test]
fn h626_7_2_sc_pair_device_moves_between_nodes() {
    let now = Instant::now();
    let mut routes = RouteTable::default();
    let mut a = Pair::new("scu-a", now);
    let mut b = Pair::new("scu-b", now);
    let epoch_a = routes.node_up("scu-a");
    let epoch_b = routes.node_up("scu-b");
    let d = dev(1);

    // Registered on A.
    a.scu.notify(presence(&d, "s1", true));
    a.pump();
    assert!(apply_presence(&mut routes, &mut a).is_empty());
    assert_eq!(routes.route(&d).map(|r| r.node.as_str()), Some("scu-a"));

    // It registers on B: A's session is kicked through A's link.
    b.scu.notify(presence(&d, "s2", true));
    b.pump();
    let kicked = apply_presence(&mut routes, &mut b);
    assert_eq!(
        kicked,
        vec![Route {
            node: "scu-a".into(),
            session: "s1".into()
        }]
    );
    a.cmu.notify(CmNotice::Kick(Kick {
        device_id: d.clone(),
        session: "s1".into(),
        reason: "replaced by a newer session".into(),
    }));
    a.pump();
    assert!(a.scu_events.iter().any(
        |e| matches!(e, ScuLinkEvent::Notice(CmNotice::Kick(k)) if k.device_id == d && k.session == "s1")
    ));
    // A's late "offline" for the old session changes nothing.
    a.scu.notify(presence(&d, "s1", false));
    a.pump();
    apply_presence(&mut routes, &mut a);
    assert!(routes.holds("scu-b", &d));

    // Commands and plays go to B; A may no longer ask for the device.
    a.scu.request(a.now, play(1), 1);
    a.pump();
    let reqs = a.cmu_requests();
    let screened = routes.screen("scu-a", &reqs[0].1);
    assert!(screened.as_ref().is_some_and(refused(Refusal::Forbidden)));
    assert!(routes.screen("scu-b", &reqs[0].1).is_none());

    // A goes away: B's device stays; B goes away: it is offline.
    assert!(routes.node_down("scu-a", epoch_a).is_empty());
    assert_eq!(routes.len(), 1);
    // A stale epoch of B (B reconnected meanwhile) changes nothing.
    let epoch_b2 = routes.node_up("scu-b");
    assert!(
        routes.is_empty(),
        "a reconnecting node re-announces its devices"
    );
    b.scu.notify(presence(&d, "s2", true));
    b.pump();
    apply_presence(&mut routes, &mut b);
    assert!(routes.node_down("scu-b", epoch_b).is_empty());
    assert_eq!(routes.node_down("scu-b", epoch_b2), vec![d.clone()]);
    assert!(routes.route(&d).is_none());
    assert!(!routes.node_is_up("scu-b"));
}

/// Applies the CMU's presence events of one pair to the route table; returns the kicked
/// routes.
fn apply_presence(routes: &mut RouteTable, p: &mut Pair) -> Vec<Route> {
    let mut kicked = Vec::new();
    let node = p.node.clone();
    for e in p.cmu_events.drain(..) {
        if let CmuPeerEvent::Notice(ScNotice::Presence(p)) = e {
            if p.online {
                kicked.extend(routes.online(p.device_id, &node, p.session));
            } else {
                routes.offline(&p.device_id, &node, &p.session);
            }
        }
    }
    kicked
}

#[test]
fn h626_7_2_sc_pair_malformed_input_rejected_with_typed_errors() {
    let mut p = Pair::new("scu-1", Instant::now());
    p.scu.request(p.now, play(1), 1);
    p.pump();
    assert!(matches!(
        p.scu.handle_input(b"{not json"),
        Err(LinkError::Decode(crate::DecodeError::Malformed { .. }))
    ));
    // The link went down and the waiting request failed.
    assert!(!p.scu.is_up());
    p.pump();
    assert!(refused(Refusal::Unavailable)(
        &take_scu_answers(&mut p)[0].1
    ));

    // Another version, and an answer of the wrong kind, on the CMU side.
    let mut p = Pair::new("scu-1", Instant::now());
    assert!(matches!(
        p.cmu.handle_input(br#"{"v":2,"body":{"type":"presence"}}"#),
        Err(LinkError::Decode(crate::DecodeError::Version(2)))
    ));
    assert!(p.cmu.is_closed());
    let mut p = Pair::new("scu-1", Instant::now());
    p.cmu
        .request(p.now, CmRequest::SelectMtu { device_id: dev(1) }, 3);
    p.pump();
    let wrong = encode(&Envelope::reply(
        9,
        2,
        ScuToCmu::CommandResult {
            result: CommandOutcome::Timeout,
        },
    ));
    assert!(matches!(
        p.cmu.handle_input(&wrong),
        Err(LinkError::Unexpected("command_result", _))
    ));
    // A request without an id, and a second hello, are protocol errors too.
    let mut p = Pair::new("scu-1", Instant::now());
    let no_id = encode(&Envelope::new(0, ScRequest::into_body(play(1))));
    assert!(matches!(
        p.cmu.handle_input(&no_id),
        Err(LinkError::Unexpected("authorize_play", _))
    ));
    let mut p = Pair::new("scu-1", Instant::now());
    let hello = encode(&Envelope::new(
        5,
        ScuToCmu::NodeHello {
            node: "scu-1".into(),
            secret: SECRET.into(),
            versions: vec![1],
        },
    ));
    assert!(p.cmu.handle_input(&hello).is_err());
    assert!(p.cmu.is_closed());
}

#[test]
fn h626_7_2_sc_pair_node_refused_and_silent_cmu() {
    let now = Instant::now();
    // A wrong secret: refused with a message, the link closes, the SCU goes down.
    let mut scu: ScuLink<u32> = ScuLink::new(ScuLinkConfig {
        node: "scu-1".into(),
        secret: "wrong".into(),
        timeouts: ScTimeouts::default(),
    });
    let mut cmu: CmuPeer<u32> = CmuPeer::new(
        CmuPeerConfig {
            secrets: vec![SECRET.into()],
            timeouts: ScTimeouts::default(),
        },
        now,
    );
    scu.connect(now);
    while let Some(f) = scu.poll_transmit() {
        assert!(cmu.handle_input(&f).is_ok());
    }
    assert!(cmu.is_closed());
    let events: Vec<_> = std::iter::from_fn(|| cmu.poll_event()).collect();
    assert!(matches!(
        events.as_slice(),
        [
            CmuPeerEvent::NodeRefused {
                reason: "bad node secret",
                ..
            },
            CmuPeerEvent::Closed { .. }
        ]
    ));
    let refusal = cmu.poll_transmit().unwrap_or_default();
    assert!(scu.handle_input(&refusal).is_ok());
    assert!(!scu.is_up());
    assert!(
        matches!(scu.poll_event(), Some(ScuLinkEvent::Down { reason }) if reason.contains("bad node secret"))
    );

    // A CMU that never welcomes: the SCU gives up after the welcome timeout; a node that
    // never says hello is dropped by the CMU.
    scu.connect(now);
    assert_eq!(scu.poll_timeout(), Some(now + Duration::from_secs(5)));
    scu.handle_timeout(now + Duration::from_secs(5));
    assert!(matches!(scu.poll_event(), Some(ScuLinkEvent::Down { .. })));
    let mut silent: CmuPeer<u32> = CmuPeer::new(CmuPeerConfig::default(), now);
    silent.handle_timeout(now + Duration::from_secs(5));
    assert!(silent.is_closed());
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

prop_compose! {
    fn verify_device()(
        id in any::<[u8; 10]>(), nonce in text(), node in text(), at in any::<u64>(),
        signature in text(), session in text(), sw in text(), mtu in any::<bool>()
    ) -> VerifyDevice {
        VerifyDevice {
            device_id: DeviceId::from_random(id),
            kind: if mtu { DeviceKind::Mtu } else { DeviceKind::Pu },
            node, nonce, issued_at_ms: at, signature, session, sw_version: sw,
        }
    }
}

fn sc_request() -> impl Strategy<Value = ScRequest> {
    prop_oneof![
        verify_device().prop_map(ScRequest::Verify),
        (any::<[u8; 10]>(), text(), text()).prop_map(|(id, token, client)| ScRequest::Play {
            device_id: DeviceId::from_random(id),
            check: PlayCheck { token, client },
        }),
        (any::<[u8; 10]>(), any::<[u8; 10]>()).prop_map(|(a, b)| ScRequest::Device {
            device_id: DeviceId::from_random(a),
            request: DeviceRequest::RecorderStream {
                camera: DeviceId::from_random(b),
            },
        }),
    ]
}

proptest! {
    /// The request messages this module declares (`verify_device` as a struct, the flattened
    /// play check) round-trip through the codec, and the CMU sees exactly what was asked.
    #[test]
    fn sc_request_codec_round_trip(req in sc_request(), id in 1u64..u64::MAX) {
        let bytes = encode(&Envelope::new(id, req.clone().into_body()));
        let env: Envelope<ScuToCmu> = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(env.id, id);
        prop_assert_eq!(&env.body, &req.into_body());
        prop_assert_eq!(encode(&env), bytes);
    }

    /// Whatever the order of answers, timeouts and losses, every waiter is handed back
    /// exactly once.
    #[test]
    fn sc_pair_every_waiter_answered_once(ops in proptest::collection::vec(0u8..6, 1..60)) {
        let mut p = Pair::new("scu-1", Instant::now());
        p.scu_events.clear();
        let mut next = 0u32;
        let mut asked = Vec::new();
        for op in ops {
            match op {
                0 | 1 => {
                    p.scu.request(p.now, play(1), next);
                    next += 1;
                    p.pump();
                    asked.extend(p.cmu_requests());
                }
                2 => if let Some((id, _)) = asked.pop() { p.cmu.respond(id, granted()); p.pump(); },
                3 => p.advance(Duration::from_secs(2)),
                4 => if let Some((id, _)) = asked.first() { p.cmu.respond(*id, granted()); p.pump(); },
                _ => {
                    p.scu.link_lost("reset");
                    p.cmu = CmuPeer::new(CmuPeerConfig { secrets: vec![SECRET.into()], timeouts: ScTimeouts::default() }, p.now);
                    asked.clear();
                    p.scu.connect(p.now);
                    p.pump();
                }
            }
        }
        p.advance(Duration::from_secs(60));
        let mut got: Vec<u32> = take_scu_answers(&mut p).into_iter().map(|(w, _)| w).collect();
        got.sort_unstable();
        prop_assert_eq!(got, (0..next).collect::<Vec<_>>());
    }
}
