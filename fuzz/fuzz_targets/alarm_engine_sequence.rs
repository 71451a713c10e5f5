//! The camera's alarm engine (`peercam_alarm::engine::Engine`) and a platform that stores
//! alarms by id, driven by a sequence of steps in virtual time.
//!
//! # Input format
//!
//! ```text
//! [sources] [cooldown] step step ...      step = [op] [arg]
//! ```
//!
//! `sources` is a bit set of armed kinds (motion, input, video_loss, tamper, onvif, manual),
//! `cooldown` the cooldown in seconds (`% 8`). Each step moves the clock on by `arg % 16` ×
//! 500 ms, calls `handle_timeout`, then `op % 10`:
//!
//! | op | action |
//! |---|---|
//! | 0 | trigger kind `arg % 6` on channel `arg / 6 % 9` |
//! | 1 | that source goes quiet |
//! | 2 | link down (what is on the wire and every answer is lost) |
//! | 3 | link up |
//! | 4 | the platform receives what is on the wire and stores it |
//! | 5 | the camera receives the platform's answers |
//! | 6 | the platform refuses the alarm on the wire (`arg` odd: for good) |
//! | 7 | reset one alarm (`arg` even) or all |
//! | 8 | a new strategy (sources `arg`) |
//! | 9 | save and restore the engine (a restart with a new prefix) |
//!
//! # Oracles
//!
//! * Nothing panics; every alarm validates; ids are never reused.
//! * The platform stores alarms in the order they were raised (refused or dropped ones
//!   excepted), each once; after the link is up for good, every alarm raised is stored or
//!   was refused for good, and the queue is empty.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use peercam_alarm::engine::{Engine, QUEUE_LIMIT, SourceKey, Trigger};
use peercam_alarm::{AlarmKind, AlarmStrategy};

const KINDS: [AlarmKind; 6] = [
    AlarmKind::Motion,
    AlarmKind::Input,
    AlarmKind::VideoLoss,
    AlarmKind::Tamper,
    AlarmKind::Onvif,
    AlarmKind::Manual,
];

fn strategy(bits: u8, cooldown: u8) -> AlarmStrategy {
    AlarmStrategy {
        armed: true,
        sources: KINDS
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, k)| *k)
            .collect(),
        cooldown_s: u32::from(cooldown % 8),
        ..AlarmStrategy::default()
    }
}

fn trigger(arg: u8) -> Trigger {
    let kind = KINDS[usize::from(arg % 6)];
    let channel = (arg / 6) % 9;
    Trigger {
        input: (kind == AlarmKind::Input).then_some(channel),
        zone: (kind == AlarmKind::Motion).then_some(channel),
        level: arg,
        detail: "x".repeat(usize::from(arg)),
        ..Trigger::new(kind)
    }
}

#[derive(Default)]
struct Platform {
    wire: Vec<String>,
    answers: Vec<String>,
    stored: Vec<String>,
}

fuzz_target!(|data: &[u8]| {
    let (Some(&bits), Some(&cooldown)) = (data.first(), data.get(1)) else {
        return;
    };
    let mut boot = 0u32;
    let mut e = Engine::new("b0").unwrap();
    let _ = e.set_strategy(strategy(bits, cooldown));
    let (mut now, mut up) = (0u64, false);
    let mut p = Platform::default();
    let mut raised: Vec<String> = Vec::new();
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for step in data[2..].chunks(2) {
        let (op, arg) = (step[0], step.get(1).copied().unwrap_or(0));
        now += u64::from(arg % 16) * 500;
        e.handle_timeout(now);
        match op % 10 {
            0 => {
                if let Some(a) = e.trigger(trigger(arg), now) {
                    a.validate().unwrap();
                    assert!(!raised.contains(&a.id), "id reused: {}", a.id);
                    raised.push(a.id);
                }
            }
            1 => {
                let t = trigger(arg);
                e.quiet(SourceKey {
                    kind: t.kind,
                    channel: t.input.or(t.zone),
                });
            }
            2 => {
                up = false;
                e.set_link(false);
                p.wire.clear();
                p.answers.clear();
            }
            3 => {
                up = true;
                e.set_link(true);
            }
            4 => {
                for id in p.wire.drain(..) {
                    if !p.stored.contains(&id) {
                        p.stored.push(id.clone());
                    }
                    p.answers.push(id);
                }
            }
            5 => {
                for id in p.answers.drain(..) {
                    e.on_stored(&id);
                }
            }
            6 => {
                if let Some(id) = p.wire.pop() {
                    if arg % 2 == 1 {
                        gone.insert(id.clone());
                    }
                    e.on_refused(&id, arg % 2 == 0, now);
                }
            }
            7 => {
                let id = e.active().first().map(|a| a.id.clone());
                let _ = e.reset(if arg % 2 == 0 { id.as_deref() } else { None });
                assert!(!e.output_on() || !e.active().is_empty());
            }
            8 => {
                let _ = e.set_strategy(strategy(arg, cooldown));
            }
            _ => {
                boot += 1;
                let json = serde_json::to_string(&e.saved()).unwrap();
                e = Engine::restore(&format!("b{boot}"), serde_json::from_str(&json).unwrap())
                    .unwrap();
                e.set_link(up);
                p.wire.clear();
            }
        }
        if up {
            while let Some(a) = e.poll_transmit(now) {
                a.validate().unwrap();
                p.wire.push(a.id);
            }
        }
    }
    if raised.len() >= QUEUE_LIMIT {
        return;
    }
    // The link comes back for good.
    e.set_link(true);
    for _ in 0..(raised.len() * 4 + 4) {
        now += 30_000;
        e.handle_timeout(now);
        while let Some(a) = e.poll_transmit(now) {
            p.wire.push(a.id);
        }
        for id in p.wire.drain(..) {
            if !p.stored.contains(&id) {
                p.stored.push(id.clone());
            }
            e.on_stored(&id);
        }
    }
    assert!(e.queue().is_empty());
    let expected: Vec<&String> = raised.iter().filter(|id| !gone.contains(*id)).collect();
    let stored: Vec<&String> = p.stored.iter().filter(|id| !gone.contains(*id)).collect();
    assert_eq!(stored, expected);
});
