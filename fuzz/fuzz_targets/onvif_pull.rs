//! ONVIF PullPoint answers of a wrapped camera (`peercam_alarm::onvif::parse_pull_messages`).
//!
//! The input is the answer's text (UTF-8; other bytes are skipped).
//!
//! # Oracles
//!
//! * Nothing panics.
//! * At most `MAX_EVENTS` notifications; topics at most 200 bytes, details (what an alarm
//!   carries) at most 256 bytes, and every event's detail fits an alarm that validates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_alarm::onvif::{MAX_EVENTS, parse_pull_messages};
use peercam_alarm::{Alarm, AlarmKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(events) = parse_pull_messages(text) else {
        return;
    };
    assert!(events.len() <= MAX_EVENTS);
    for e in events {
        assert!(e.topic.len() <= 200);
        let alarm = Alarm {
            id: "b1-1".into(),
            kind: AlarmKind::Onvif,
            at_ms: 0,
            input: None,
            zone: None,
            level: 100,
            detail: e.detail(),
        };
        alarm.validate().unwrap();
    }
});
