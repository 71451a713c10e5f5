use proptest::prelude::*;

use super::*;
use crate::model::Linkage;

fn armed(sources: &[AlarmKind]) -> AlarmStrategy {
    AlarmStrategy {
        armed: true,
        sources: sources.to_vec(),
        cooldown_s: 0,
        ..AlarmStrategy::default()
    }
}

fn input(n: u8) -> Trigger {
    Trigger {
        input: Some(n),
        ..Trigger::new(AlarmKind::Input)
    }
}

fn key(kind: AlarmKind, channel: Option<u8>) -> SourceKey {
    SourceKey { kind, channel }
}

fn engine(s: AlarmStrategy) -> Engine {
    let mut e = Engine::new("b1").unwrap();
    e.set_strategy(s).unwrap();
    e
}

#[test]
fn h626_8_8_only_armed_sources_in_schedule_raise() {
    let mut e = Engine::new("b1").unwrap();
    assert!(e.trigger(input(1), 0).is_none(), "unarmed by default");
    e.set_strategy(armed(&[AlarmKind::Motion])).unwrap();
    assert!(e.trigger(input(1), 0).is_none(), "input not a source");
    let monday = 4 * 86_400_000u64;
    e.set_strategy(AlarmStrategy {
        schedule: vec![peercam_record::strategy::Window {
            days: 1,
            start_min: 480,
            end_min: 540,
        }],
        ..armed(&[AlarmKind::Input])
    })
    .unwrap();
    assert!(e.trigger(input(1), monday + 7 * 3_600_000).is_none());
    let a = e.trigger(input(1), monday + 8 * 3_600_000).unwrap();
    assert_eq!(
        (a.id.as_str(), a.kind, a.input),
        ("b1-1", AlarmKind::Input, Some(1))
    );
    assert!(
        e.set_strategy(AlarmStrategy {
            sensitivity: 0,
            ..armed(&[])
        })
        .is_err()
    );
    assert!(
        e.strategy().sources.contains(&AlarmKind::Input),
        "kept on error"
    );
}

#[test]
fn h626_8_8_cooldown_collapses_flapping_per_source() {
    let mut e = engine(AlarmStrategy {
        cooldown_s: 30,
        ..armed(&[AlarmKind::Input, AlarmKind::Manual])
    });
    assert!(e.trigger(input(1), 1_000).is_some());
    // Still active: one alarm per activation.
    assert!(e.trigger(input(1), 2_000).is_none());
    for t in 0..20 {
        e.quiet(key(AlarmKind::Input, Some(1)));
        assert!(e.trigger(input(1), 3_000 + t * 1_000).is_none(), "flapping");
    }
    // Another line has its own cooldown.
    assert!(e.trigger(input(2), 3_000).is_some());
    e.quiet(key(AlarmKind::Input, Some(1)));
    assert!(e.trigger(input(1), 31_000).is_some(), "cooled down");
    // Event kinds need no quiet.
    assert!(e.trigger(Trigger::new(AlarmKind::Manual), 0).is_some());
    assert!(e.trigger(Trigger::new(AlarmKind::Manual), 30_000).is_some());
    assert_eq!(e.queue().len(), 5);
}

#[test]
fn h626_8_8_alarms_go_up_in_order_and_leave_when_stored() {
    let mut e = engine(armed(&[AlarmKind::Input]));
    for n in 1..=3 {
        e.trigger(input(n), u64::from(n) * 10).unwrap();
    }
    assert!(e.poll_transmit(100).is_none(), "link down: queued");
    e.set_link(true);
    let a = e.poll_transmit(100).unwrap();
    assert_eq!((a.id.as_str(), a.at_ms), ("b1-1", 10));
    assert!(e.poll_transmit(100).is_none(), "one on the wire");
    assert!(!e.on_stored("b1-2"), "not the oldest");
    // The link drops before the answer: sent again after it comes back.
    e.set_link(false);
    e.set_link(true);
    assert_eq!(e.poll_transmit(200).unwrap().id, "b1-1");
    assert!(e.on_stored("b1-1"));
    assert!(!e.on_stored("b1-1"), "a second answer is ignored");
    assert_eq!(e.poll_transmit(200).unwrap().at_ms, 20);
    // No answer in time: back-off, then again.
    e.handle_timeout(200 + ANSWER_TIMEOUT_MS);
    assert!(e.poll_transmit(200 + ANSWER_TIMEOUT_MS).is_none());
    assert_eq!(
        e.poll_timeout(),
        Some(200 + ANSWER_TIMEOUT_MS + RETRY_INITIAL_MS)
    );
    let again = e
        .poll_transmit(200 + ANSWER_TIMEOUT_MS + RETRY_INITIAL_MS)
        .unwrap();
    assert_eq!(again.id, "b1-2");
    // A refusal for good drops it; `unavailable` retries later.
    e.on_refused("b1-2", false, 0);
    let third = e.poll_transmit(30_000).unwrap();
    e.on_refused(&third.id, true, 30_000);
    assert!(e.poll_transmit(30_500).is_none());
    assert_eq!(e.poll_transmit(31_000).unwrap().id, "b1-3");
    assert!(e.on_stored("b1-3"));
    assert_eq!(e.lost(), (0, 1));
    assert_eq!(e.state(Vec::new()).pending, 0);
    assert_eq!(e.active().len(), 3);
}

#[test]
fn h626_8_8_queue_is_bounded_oldest_dropped() {
    let mut e = engine(armed(&[AlarmKind::Manual]));
    for t in 0..(QUEUE_LIMIT as u64 + 5) {
        e.trigger(Trigger::new(AlarmKind::Manual), t).unwrap();
    }
    assert_eq!(e.queue().len(), QUEUE_LIMIT);
    assert_eq!(e.lost().0, 5);
    assert_eq!(e.queue()[0].id, "b1-6");
    assert_eq!(e.active().len(), ACTIVE_LIMIT);
}

#[test]
fn h626_8_8_output_follows_linkage_and_reset() {
    let mut e = engine(AlarmStrategy {
        linkage: Linkage {
            output: true,
            output_s: 5,
            ..Linkage::default()
        },
        ..armed(&[AlarmKind::Input])
    });
    let a = e.trigger(input(1), 1_000).unwrap();
    assert_eq!(e.poll_output(), Some(true));
    assert_eq!(e.poll_output(), None);
    assert_eq!(e.poll_timeout(), Some(6_000));
    e.handle_timeout(6_000);
    assert_eq!(e.poll_output(), Some(false), "pulse over");
    // Until reset when output_s is 0.
    let mut s = e.strategy().clone();
    s.linkage.output_s = 0;
    e.set_strategy(s).unwrap();
    let b = e.trigger(input(2), 7_000).unwrap();
    assert_eq!(e.poll_output(), Some(true));
    e.handle_timeout(1_000_000);
    assert!(e.output_on());
    e.reset(Some(&a.id)).unwrap();
    assert!(e.output_on(), "one alarm left");
    assert!(e.reset(Some("nope")).is_err());
    e.reset(Some(&b.id)).unwrap();
    assert_eq!(e.poll_output(), Some(false));
    assert!(e.active().is_empty());
    e.trigger(input(3), 8_000).unwrap();
    e.reset(None).unwrap();
    assert!(!e.output_on() && e.active().is_empty());
}

#[test]
fn h626_8_8_queue_survives_restart_with_new_prefix() {
    let mut e = engine(armed(&[AlarmKind::Input]));
    e.trigger(input(1), 5).unwrap();
    assert!(e.take_dirty());
    assert!(!e.take_dirty());
    let json = serde_json::to_string(&e.saved()).unwrap();
    let saved: Saved = serde_json::from_str(&json).unwrap();
    let mut r = Engine::restore("b2", saved).unwrap();
    r.set_link(true);
    assert_eq!(r.poll_transmit(10).unwrap().id, "b1-1");
    assert!(r.on_stored("b1-1"));
    r.quiet(key(AlarmKind::Input, Some(1)));
    assert_eq!(r.trigger(input(1), 20).unwrap().id, "b2-1");
    assert!(Engine::new("a-b").is_err());
    assert!(Engine::new("").is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Raise,
    Drop,
    Up,
    Deliver,
    Answer,
    Tick(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Raise),
        1 => Just(Op::Drop),
        2 => Just(Op::Up),
        3 => Just(Op::Deliver),
        3 => Just(Op::Answer),
        1 => (0u16..30_000).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Any interleaving of link drops, lost answers and timeouts delivers every alarm to the
    /// platform, stored exactly once (by id) and in the order raised.
    #[test]
    fn h626_8_8_any_link_history_delivers_each_alarm_once_in_order(ops in proptest::collection::vec(op(), 0..200)) {
        let mut e = engine(armed(&[AlarmKind::Manual]));
        let mut now = 0u64;
        let mut raised = Vec::new();
        let mut stored: Vec<String> = Vec::new();
        // Sent alarm ids not yet seen by the platform, and answers not yet seen by the camera.
        let mut wire: Vec<String> = Vec::new();
        let mut answers: Vec<String> = Vec::new();
        let mut up = false;
        let step = |op: &Op, e: &mut Engine, now: &mut u64, up: &mut bool,
                        raised: &mut Vec<String>, stored: &mut Vec<String>,
                        wire: &mut Vec<String>, answers: &mut Vec<String>| {
            match op {
                Op::Raise => raised.push(e.trigger(Trigger::new(AlarmKind::Manual), *now).unwrap().id),
                Op::Drop => { *up = false; e.set_link(false); wire.clear(); answers.clear(); }
                Op::Up => { *up = true; e.set_link(true); }
                Op::Deliver => for id in wire.drain(..) {
                    if !stored.contains(&id) { stored.push(id.clone()); }
                    answers.push(id);
                },
                Op::Answer => for id in answers.drain(..) { e.on_stored(&id); },
                Op::Tick(ms) => { *now += u64::from(*ms); e.handle_timeout(*now); }
            }
            if *up {
                while let Some(a) = e.poll_transmit(*now) { wire.push(a.id); }
            }
        };
        for o in &ops {
            step(o, &mut e, &mut now, &mut up, &mut raised, &mut stored, &mut wire, &mut answers);
        }
        // Then the link comes back for good.
        step(&Op::Up, &mut e, &mut now, &mut up, &mut raised, &mut stored, &mut wire, &mut answers);
        for _ in 0..(raised.len() * 3 + 3) {
            for o in [Op::Deliver, Op::Answer, Op::Tick(25_000)] {
                step(&o, &mut e, &mut now, &mut up, &mut raised, &mut stored, &mut wire, &mut answers);
            }
        }
        prop_assert_eq!(&stored, &raised);
        prop_assert!(e.queue().is_empty());
    }

    /// The saved state round-trips through JSON, whatever the history.
    #[test]
    fn h626_8_8_saved_state_round_trips(n in 0usize..20, acked in 0usize..20, reset in any::<bool>()) {
        let mut e = engine(AlarmStrategy { linkage: Linkage { output: true, ..Linkage::default() }, ..armed(&[AlarmKind::Manual]) });
        e.set_link(true);
        for t in 0..n { e.trigger(Trigger { detail: "é".repeat(t * 20), ..Trigger::new(AlarmKind::Manual) }, t as u64).unwrap(); }
        for _ in 0..acked.min(n) { let a = e.poll_transmit(0).unwrap(); e.on_stored(&a.id); }
        if reset { e.reset(None).unwrap(); }
        let saved = e.saved();
        let back: Saved = serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
        prop_assert_eq!(&back, &saved);
        let r = Engine::restore("b9", back).unwrap();
        prop_assert_eq!(r.saved(), saved);
        for a in r.queue() { prop_assert!(a.validate().is_ok()); }
    }
}
