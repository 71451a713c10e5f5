//! Both ends of an Sc / Sm connection, `ScuLink` and `CmuPeer`, driven by a sequence of steps.
//!
//! # Input format
//!
//! ```text
//! step 0x00 step 0x00 step ...      step = [op] [dt] payload...
//! ```
//!
//! Steps are split on 0x00, which never occurs in a valid JSON frame. Before each step the
//! virtual clock moves on by `dt` × 100 ms and each side whose `poll_timeout` is due gets
//! `handle_timeout`, as the drivers do. Then `op % 8` says what happens:
//!
//! | op | action |
//! |---|---|
//! | 0 | payload is a frame from the node: `CmuPeer::handle_input` |
//! | 1 | payload is a frame from the CMU: `ScuLink::handle_input` |
//! | 2 | deliver the frames each side has sent to the other, until quiet |
//! | 3 | `ScuLink::request` (payload[0] % 3: verify, play, device request) |
//! | 4 | `CmuPeer::request` (payload[0] odd: select_mtu, else a command) |
//! | 5 | answer the oldest request each side was asked (payload[0] picks the answer) |
//! | 6 | the connection breaks: `link_lost` / `close`, then a new connection and `connect` |
//! | 7 | `handle_timeout` on both sides now, due or not |
//!
//! # Oracles
//!
//! * Nothing panics.
//! * Every frame either side sends decodes as the message type of its direction.
//! * Every waiter is handed back at most once, with a response of its request's kind; after
//!   the run, time passing and a final loss hand back every waiter exactly once.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use peercam_base::DeviceId;
use peercam_signal::cmd::{DeviceCommand, DeviceReply, DeviceRequest};
use peercam_signal::decode;
use peercam_signal::play::PlayCheck;
use peercam_signal::ps::DeviceKind;
use peercam_signal::refusal::Refusal;
use peercam_signal::sc::{CmuToScu, CommandOutcome, ScuToCmu, VerifyDevice};
use peercam_signal::sc_link::{
    CmRequest, CmResponse, CmuPeer, CmuPeerConfig, CmuPeerEvent, ScRequest, ScResponse, ScTimeouts,
    ScuLink, ScuLinkConfig, ScuLinkEvent,
};

const SECRET: &str = "fuzz-secret";

/// The kind of response each waiter expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Verdict,
    Play,
    Answer,
    Command,
    Mtu,
}

struct World {
    now: Instant,
    scu: ScuLink<u32>,
    cmu: CmuPeer<u32>,
    next: u32,
    waiting: BTreeMap<u32, Expect>,
    /// Requests each side was asked and not yet answered, oldest first.
    cmu_asked: Vec<(u64, ScRequest)>,
    scu_asked: Vec<(u64, bool)>,
}

fn new_peer(now: Instant) -> CmuPeer<u32> {
    CmuPeer::new(
        CmuPeerConfig {
            secrets: vec![SECRET.into()],
            timeouts: ScTimeouts::default(),
        },
        now,
    )
}

fn dev() -> DeviceId {
    DeviceId::from_random([7; 10])
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        let mut scu = ScuLink::new(ScuLinkConfig {
            node: "scu-1".into(),
            secret: SECRET.into(),
            timeouts: ScTimeouts::default(),
        });
        scu.connect(now);
        Self {
            now,
            scu,
            cmu: new_peer(now),
            next: 0,
            waiting: BTreeMap::new(),
            cmu_asked: Vec::new(),
            scu_asked: Vec::new(),
        }
    }

    fn handed_back(&mut self, waiter: u32, got: Expect) {
        match self.waiting.remove(&waiter) {
            Some(expect) => assert_eq!(expect, got, "waiter {waiter} answered with another kind"),
            None => panic!("waiter {waiter} handed back twice or never asked"),
        }
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.scu.poll_event() {
            match ev {
                ScuLinkEvent::Answered { waiter, response } => {
                    let got = match response {
                        ScResponse::Verdict(_) => Expect::Verdict,
                        ScResponse::Play(_) => Expect::Play,
                        ScResponse::Answer(_) => Expect::Answer,
                    };
                    self.handed_back(waiter, got);
                }
                ScuLinkEvent::Command { id, .. } => self.scu_asked.push((id, true)),
                ScuLinkEvent::SelectMtu { id, .. } => self.scu_asked.push((id, false)),
                _ => {}
            }
        }
        while let Some(ev) = self.cmu.poll_event() {
            match ev {
                CmuPeerEvent::Answered { waiter, response } => {
                    let got = match response {
                        CmResponse::Command(_) => Expect::Command,
                        CmResponse::Mtu(_) => Expect::Mtu,
                    };
                    self.handed_back(waiter, got);
                }
                CmuPeerEvent::Request { id, request } => self.cmu_asked.push((id, request)),
                _ => {}
            }
        }
    }

    fn deliver(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(f) = self.scu.poll_transmit() {
                moved = true;
                assert!(
                    decode::<ScuToCmu>(&f).is_ok(),
                    "the SCU sent an undecodable frame"
                );
                let _ = self.cmu.handle_input(&f);
            }
            while let Some(f) = self.cmu.poll_transmit() {
                moved = true;
                assert!(
                    decode::<CmuToScu>(&f).is_ok(),
                    "the CMU sent an undecodable frame"
                );
                let _ = self.scu.handle_input(&f);
            }
            self.drain_events();
            if !moved {
                return;
            }
        }
    }

    fn timeouts(&mut self, force: bool) {
        if force || self.scu.poll_timeout().is_some_and(|t| t <= self.now) {
            self.scu.handle_timeout(self.now);
        }
        if force || self.cmu.poll_timeout().is_some_and(|t| t <= self.now) {
            self.cmu.handle_timeout(self.now);
        }
        self.drain_events();
    }

    fn scu_request(&mut self, pick: u8) {
        let (request, expect) = match pick % 3 {
            0 => (
                ScRequest::Verify(VerifyDevice {
                    device_id: dev(),
                    kind: DeviceKind::Pu,
                    node: "scu-1".into(),
                    nonce: "n".into(),
                    issued_at_ms: 1,
                    signature: "s".into(),
                    session: "x".into(),
                    sw_version: "1".into(),
                }),
                Expect::Verdict,
            ),
            1 => (
                ScRequest::Play {
                    device_id: dev(),
                    check: PlayCheck {
                        token: "t".into(),
                        client: "c".into(),
                    },
                },
                Expect::Play,
            ),
            _ => (
                ScRequest::Device {
                    device_id: dev(),
                    request: DeviceRequest::RecorderStream { camera: dev() },
                },
                Expect::Answer,
            ),
        };
        self.waiting.insert(self.next, expect);
        self.scu.request(self.now, request, self.next);
        self.next += 1;
        self.drain_events();
    }

    fn cmu_request(&mut self, pick: u8) {
        let (request, expect) = if pick % 2 == 1 {
            (CmRequest::SelectMtu { device_id: dev() }, Expect::Mtu)
        } else {
            let command = DeviceCommand::Describe;
            (
                CmRequest::Command {
                    device_id: dev(),
                    command,
                },
                Expect::Command,
            )
        };
        self.waiting.insert(self.next, expect);
        self.cmu.request(self.now, request, self.next);
        self.next += 1;
        self.drain_events();
    }

    fn answer(&mut self, pick: u8) {
        if !self.cmu_asked.is_empty() {
            let (id, request) = self.cmu_asked.remove(0);
            let refusal = if pick % 2 == 0 {
                Refusal::Expired
            } else {
                Refusal::Other("x".into())
            };
            let _ = self
                .cmu
                .respond(id, ScResponse::refusal_for(&request, refusal, "no"));
        }
        if !self.scu_asked.is_empty() {
            let (id, command) = self.scu_asked.remove(0);
            if command {
                let result = CommandOutcome::Replied {
                    reply: DeviceReply::Done,
                };
                let _ = self.scu.command_result(id, result);
            } else {
                let _ = self.scu.mtu_choice(id, None);
            }
        }
        self.drain_events();
    }

    fn reconnect(&mut self) {
        self.scu.link_lost("fuzz: connection reset");
        self.cmu.close("fuzz: connection reset");
        self.drain_events();
        self.cmu = new_peer(self.now);
        self.cmu_asked.clear();
        self.scu_asked.clear();
        self.scu.connect(self.now);
        self.drain_events();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut w = World::new();
    for step in data.split(|b| *b == 0).take(256) {
        let (op, dt, payload) = match step {
            [op, dt, rest @ ..] => (*op, *dt, rest),
            [op] => (*op, 0, &[][..]),
            [] => continue,
        };
        w.now += Duration::from_millis(u64::from(dt) * 100);
        w.timeouts(false);
        let pick = payload.first().copied().unwrap_or(0);
        match op % 8 {
            0 => {
                let _ = w.cmu.handle_input(payload);
                w.drain_events();
            }
            1 => {
                let _ = w.scu.handle_input(payload);
                w.drain_events();
            }
            2 => w.deliver(),
            3 => w.scu_request(pick),
            4 => w.cmu_request(pick),
            5 => w.answer(pick),
            6 => w.reconnect(),
            _ => w.timeouts(true),
        }
    }
    // Every request ends: by its deadline at the latest, or with the link.
    w.now += Duration::from_secs(60);
    w.timeouts(true);
    w.scu.link_lost("fuzz: end");
    w.cmu.close("fuzz: end");
    w.drain_events();
    assert!(
        w.waiting.is_empty(),
        "waiters never handed back: {:?}",
        w.waiting
    );
});
