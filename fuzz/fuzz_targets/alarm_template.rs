//! H.626.4 6.1.9 alarm message templates: parsing, writing back, rendering and the SMS cost.
//!
//! None may panic. A template that parses must print back (`source`) to a text that parses
//! to the same template; rendering stays within its bounds; the SMS cost is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_alarm::template::{MAX_MESSAGE_CHARS, SmsEncoding, Values, parse, sms_cost};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = parse(&text) {
        let again = parse(&t.source()).expect("a template's source parses");
        assert_eq!(again, t);
        let v = Values {
            camera: text.to_string(),
            time: "2026-01-01 00:00 UTC+00:00".into(),
            kind: "motion".into(),
            detail: text.to_string(),
            link: "https://cmu.example/a/1".into(),
        };
        let out = t.render(&v);
        assert!(out.chars().count() <= MAX_MESSAGE_CHARS);
    }
    let c = sms_cost(&text);
    assert!(c.segments <= c.units.max(1));
    if c.encoding == SmsEncoding::Ucs2 {
        assert_eq!(c.units, text.encode_utf16().count());
    }
});
