//! Both ends of a Ps connection, `ScuPeer` and `DeviceLink`, driven by a sequence of steps.
//!
//! # Input format
//!
//! ```text
//! [heartbeat] [dead_after] step 0x00 step 0x00 step ...
//! step = [op] [dt] payload...
//! ```
//!
//! The two header bytes pick the SCU's heartbeat and dead-after periods (250 ms units).
//! Steps are split on 0x00, which never occurs in a valid JSON frame. Before each step the
//! virtual clock moves on by `dt` × 100 ms and, as the IO shells do, each side whose
//! `poll_timeout` is due gets `handle_timeout`. Then `op % 8` says what happens:
//!
//! | op | action |
//! |---|---|
//! | 0 | payload is a frame from the device: `ScuPeer::handle_input` |
//! | 1 | payload is a frame from the SCU: `DeviceLink::handle_input` |
//! | 2 | deliver the frames each side has sent to the other, until quiet |
//! | 3 | `ScuPeer::verdict`: payload[0] % 3 = 0 checks the signature as the CMU does, 1 accepts, 2 refuses |
//! | 4 | `ScuPeer::send_command` |
//! | 5 | `ScuPeer::kick` with the payload as reason |
//! | 6 | `DeviceLink::reply` to the last command (or to an id from the payload) |
//! | 7 | `handle_timeout` on both sides now, due or not |
//!
//! # Oracles
//!
//! * Nothing panics.
//! * Every frame either side sends decodes as the message type of its direction, with this
//!   protocol version, and request ids strictly increase.
//! * Being closed is final; a closed side has no `poll_timeout`.
//! * After a side is closed and its queues were drained, it emits nothing more: the SCU no
//!   event, the device no frame. (With the `strict` feature: the SCU no frame and the device no
//!   event either, and every close of the SCU side reports `PeerEvent::Closed`.)
//! * `PeerEvent::Online` and a `registered` frame come only from an accepting verdict;
//!   `PeerEvent::Verify` carries this connection's nonce and issue time.
#![no_main]

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use peercam_base::DeviceId;
use peercam_signal::cmd::{DeviceCommand, DeviceDescription, DeviceReply};
use peercam_signal::link::{DeviceLink, LinkEvent, PeerConfig, PeerEvent, ScuPeer, VerifyRequest};
use peercam_signal::ps::{DeviceKind, DeviceToScu, RefusalCode, ScuToDevice};
use peercam_signal::register::{encode_nonce, verify};
use peercam_signal::{Envelope, PROTOCOL_VERSION, decode};

const NODE: &str = "scu-1";
const NONCE: [u8; 32] = [0x11; 32];
const WALL_MS: u64 = 1_700_000_000_000;
const DEVICE_SEED: [u8; 32] = [0x42; 32];
const DEVICE_ID: &str = "pc-0123456789abcdef";

/// `PEERCAM_FUZZ_TRACE=1` prints every step, frame and event (to read a reproducer).
fn tracing() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("PEERCAM_FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            #[allow(clippy::print_stderr, reason = "opt-in trace of a reproducer")]
            {
                eprintln!($($arg)*);
            }
        }
    };
}

/// The device's key, derived once: deriving it costs more than most whole runs.
fn device_key() -> &'static (SigningKey, VerifyingKey) {
    static KEY: OnceLock<(SigningKey, VerifyingKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = SigningKey::from_bytes(&DEVICE_SEED);
        let pk = key.verifying_key();
        (key, pk)
    })
}

/// What the harness last saw of a side.
#[derive(Default)]
struct Watch {
    closed: bool,
    last_id: u64,
}

struct Harness {
    now: Instant,
    scu: ScuPeer,
    dev: DeviceLink,
    device_id: DeviceId,
    scu_watch: Watch,
    dev_watch: Watch,
    /// Frames sent by the device, not yet delivered to the SCU.
    to_scu: VecDeque<Vec<u8>>,
    /// Frames sent by the SCU, not yet delivered to the device.
    to_dev: VecDeque<Vec<u8>>,
    last_command: Option<u64>,
    /// The last registration the SCU asked the CMU to check.
    last_verify: Option<VerifyRequest>,
    /// Whether the current step is an accepting verdict.
    accepting: bool,
    /// Whether the device link's handle_input returned an error in this step.
    dev_err: bool,
}

fn refusal(b: u8) -> RefusalCode {
    match b % 7 {
        0 => RefusalCode::UnknownDevice,
        1 => RefusalCode::BadSignature,
        2 => RefusalCode::StaleChallenge,
        3 => RefusalCode::ProtocolError,
        4 => RefusalCode::UnsupportedVersion,
        5 => RefusalCode::Unavailable,
        _ => RefusalCode::Disabled,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(64).collect()
}

impl Harness {
    #[allow(
        clippy::disallowed_methods,
        reason = "one real instant is the origin of virtual time"
    )]
    fn new(heartbeat: u8, dead_after: u8) -> Self {
        let now = Instant::now();
        let config = PeerConfig {
            node: NODE.into(),
            heartbeat: Duration::from_millis(250 * (u64::from(heartbeat % 64) + 1)),
            dead_after: Duration::from_millis(250 * (u64::from(dead_after % 64) + 1)),
            handshake_timeout: Duration::from_secs(15),
        };
        let key = device_key().0.clone();
        let device_id: DeviceId = DEVICE_ID.parse().expect("valid id");
        let scu = ScuPeer::new(config, now, NONCE, WALL_MS);
        let dev = DeviceLink::new(now, device_id.clone(), DeviceKind::Pu, key, "fuzz");
        let mut h = Self {
            now,
            scu,
            dev,
            device_id,
            scu_watch: Watch::default(),
            dev_watch: Watch::default(),
            to_scu: VecDeque::new(),
            to_dev: VecDeque::new(),
            last_command: None,
            last_verify: None,
            accepting: false,
            dev_err: false,
        };
        h.settle();
        h
    }

    /// Drains both sides and checks the invariants; called after every action.
    fn settle(&mut self) {
        // --- SCU side.
        let scu_was_closed = self.scu_watch.closed;
        let mut scu_frames = 0usize;
        while let Some(frame) = self.scu.poll_transmit() {
            scu_frames += 1;
            trace!("  scu -> {}", String::from_utf8_lossy(&frame));
            let env: Envelope<ScuToDevice> = match decode(&frame) {
                Ok(env) => env,
                Err(e) => panic!(
                    "SCU sent a frame the device cannot decode: {e}\n{}",
                    String::from_utf8_lossy(&frame)
                ),
            };
            assert_eq!(env.v, PROTOCOL_VERSION);
            assert!(
                env.id > self.scu_watch.last_id,
                "SCU request ids not increasing"
            );
            self.scu_watch.last_id = env.id;
            if matches!(env.body, ScuToDevice::Registered { .. }) {
                assert!(
                    self.accepting,
                    "SCU sent `registered` without an accepting verdict"
                );
            }
            self.to_dev.push_back(frame);
        }
        let mut scu_events = 0usize;
        let mut scu_closed_event = false;
        while let Some(ev) = self.scu.poll_event() {
            scu_events += 1;
            trace!("  scu event {ev:?}");
            match ev {
                PeerEvent::Verify(req) => {
                    assert_eq!(
                        req.nonce,
                        encode_nonce(&NONCE),
                        "Verify with a foreign nonce"
                    );
                    assert_eq!(req.issued_at_ms, WALL_MS);
                    assert!(req.sw_version.chars().count() <= 64);
                    assert_eq!(self.scu.device_id(), Some(&req.device_id));
                    self.last_verify = Some(req);
                }
                PeerEvent::Online { device_id } => {
                    assert!(self.accepting, "Online without an accepting verdict");
                    assert_eq!(self.scu.device_id(), Some(&device_id));
                }
                PeerEvent::Closed { .. } => {
                    assert!(!scu_closed_event, "two Closed events at once");
                    scu_closed_event = true;
                }
                _ => {}
            }
        }
        let scu_closed = self.scu.is_closed();
        assert!(
            !(scu_was_closed && !scu_closed),
            "SCU peer reopened after closing"
        );
        if scu_closed {
            assert_eq!(
                self.scu.poll_timeout(),
                None,
                "closed SCU peer wants a timeout"
            );
        }
        if scu_was_closed {
            assert_eq!(
                scu_events, 0,
                "closed SCU peer emitted {scu_events} event(s)"
            );
            if cfg!(feature = "strict") {
                assert_eq!(scu_frames, 0, "closed SCU peer sent {scu_frames} frame(s)");
            }
        } else if scu_closed && cfg!(feature = "strict") {
            assert!(
                scu_closed_event,
                "SCU peer closed without a PeerEvent::Closed"
            );
        }
        self.scu_watch.closed = scu_closed;

        // --- Device side.
        let dev_was_closed = self.dev_watch.closed;
        let mut dev_frames = 0usize;
        while let Some(frame) = self.dev.poll_transmit() {
            dev_frames += 1;
            trace!("  dev -> {}", String::from_utf8_lossy(&frame));
            let env: Envelope<DeviceToScu> = match decode(&frame) {
                Ok(env) => env,
                Err(e) => panic!(
                    "device sent a frame the SCU cannot decode: {e}\n{}",
                    String::from_utf8_lossy(&frame)
                ),
            };
            assert_eq!(env.v, PROTOCOL_VERSION);
            assert!(
                env.id > self.dev_watch.last_id,
                "device request ids not increasing"
            );
            self.dev_watch.last_id = env.id;
            self.to_scu.push_back(frame);
        }
        let mut dev_events = 0usize;
        let mut dev_close_reported = self.dev_err;
        while let Some(ev) = self.dev.poll_event() {
            dev_events += 1;
            trace!("  dev event {ev:?}");
            match ev {
                LinkEvent::Command { id, .. } => self.last_command = Some(id),
                LinkEvent::Refused { .. } | LinkEvent::Lost { .. } => dev_close_reported = true,
                _ => {}
            }
        }
        let dev_closed = self.dev.is_closed();
        assert!(
            !(dev_was_closed && !dev_closed),
            "device link reopened after closing"
        );
        if dev_closed {
            assert_eq!(
                self.dev.poll_timeout(),
                None,
                "closed device link wants a timeout"
            );
        }
        if dev_was_closed {
            assert_eq!(
                dev_frames, 0,
                "closed device link sent {dev_frames} frame(s)"
            );
            if cfg!(feature = "strict") {
                assert_eq!(
                    dev_events, 0,
                    "closed device link emitted {dev_events} event(s)"
                );
            }
        } else if dev_closed {
            assert!(
                dev_close_reported,
                "device link closed without an error or a Refused/Lost event"
            );
        }
        self.dev_watch.closed = dev_closed;
        self.accepting = false;
        self.dev_err = false;
    }

    fn advance(&mut self, dt: u8) {
        self.now += Duration::from_millis(100 * u64::from(dt));
        if self.scu.poll_timeout().is_some_and(|t| t <= self.now) {
            self.scu.handle_timeout(self.now);
        }
        if self.dev.poll_timeout().is_some_and(|t| t <= self.now) {
            self.dev.handle_timeout(self.now);
        }
        self.settle();
    }

    fn scu_input(&mut self, frame: &[u8]) {
        self.scu.handle_input(self.now, frame);
        self.settle();
    }

    fn dev_input(&mut self, frame: &[u8]) {
        self.dev_err = self.dev.handle_input(self.now, frame).is_err();
        self.settle();
    }

    /// Delivers in-flight frames both ways until the wire is quiet (bounded).
    fn pump(&mut self) {
        for _ in 0..32 {
            if self.to_scu.is_empty() && self.to_dev.is_empty() {
                break;
            }
            while let Some(f) = self.to_scu.pop_front() {
                if self.scu.is_closed() {
                    // The SCU shell has closed the socket: the frame is lost.
                    self.to_scu.clear();
                    break;
                }
                self.scu_input(&f);
            }
            while let Some(f) = self.to_dev.pop_front() {
                if self.dev.is_closed() {
                    self.to_dev.clear();
                    break;
                }
                self.dev_input(&f);
            }
        }
    }

    fn verdict(&mut self, payload: &[u8]) {
        let mode = payload.first().copied().unwrap_or(0);
        let session = text(payload.get(2..).unwrap_or_default());
        let v = match mode % 3 {
            0 => {
                // As the CMU does: look the device up, check its signature.
                match self.last_verify.take() {
                    Some(req) if req.device_id == self.device_id => verify(
                        &device_key().1,
                        NODE,
                        &req.device_id,
                        &req.nonce,
                        req.issued_at_ms,
                        &req.signature,
                    )
                    .map_err(|e| (RefusalCode::BadSignature, e.to_string())),
                    Some(_) => Err((RefusalCode::UnknownDevice, "unknown device".into())),
                    None => Err((RefusalCode::Unavailable, "no request".into())),
                }
            }
            1 => Ok(()),
            _ => Err((
                refusal(payload.get(1).copied().unwrap_or(0)),
                text(payload.get(2..).unwrap_or_default()),
            )),
        };
        self.accepting = v.is_ok();
        self.scu.verdict(self.now, session, v);
        self.settle();
    }

    fn step(&mut self, chunk: &[u8]) {
        let (op, rest) = match chunk.split_first() {
            Some((&op, rest)) => (op, rest),
            None => (2, chunk),
        };
        let (dt, payload) = match rest.split_first() {
            Some((&dt, payload)) => (dt, payload),
            None => (0, rest),
        };
        trace!(
            "step op {} dt {dt} payload {:?} (scu closed {}, dev closed {})",
            op % 8,
            String::from_utf8_lossy(payload),
            self.scu.is_closed(),
            self.dev.is_closed()
        );
        self.advance(dt);
        match op % 8 {
            0 => self.scu_input(payload),
            1 => self.dev_input(payload),
            2 => self.pump(),
            3 => self.verdict(payload),
            4 => {
                let _ = self.scu.send_command(DeviceCommand::Describe);
                self.settle();
            }
            5 => {
                self.scu.kick(&text(payload));
                self.settle();
            }
            6 => {
                // A closed link is over: the agent replies to nothing more.
                if !self.dev.is_closed() {
                    let re = self.last_command.take().unwrap_or_else(|| {
                        payload
                            .iter()
                            .fold(0u64, |a, &b| a.wrapping_mul(256) | u64::from(b))
                    });
                    let reply = if payload.first().is_some_and(|b| b % 2 == 0) {
                        DeviceReply::Description(DeviceDescription {
                            sw_version: text(payload),
                            vendor: "Acme".into(),
                            model: "C1".into(),
                            uptime_s: u64::from(dt),
                            connected_s: 0,
                            clock_offset_us: None,
                            clock_jitter_us: None,
                        })
                    } else {
                        DeviceReply::Failed {
                            code: "busy".into(),
                            message: text(payload),
                        }
                    };
                    self.dev.reply(re, reply);
                }
                self.settle();
            }
            _ => {
                self.scu.handle_timeout(self.now);
                self.dev.handle_timeout(self.now);
                self.settle();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (header, body) = data.split_at(data.len().min(2));
    let mut h = Harness::new(
        header.first().copied().unwrap_or(15),
        header.get(1).copied().unwrap_or(39),
    );
    for chunk in body.split(|&b| b == 0).take(256) {
        h.step(chunk);
    }
});
