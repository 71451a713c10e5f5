//! CRM verdicts (H.626.4 6.2): the answers of a third-party system the CMU trusts for
//! nothing but a yes or a no with a reason.
//!
//! Parsing arbitrary bytes never panics; whatever is accepted respects the limits and
//! encodes back to a verdict that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signal::crm::{MAX_ANSWER_BYTES, Verdict, encode_verdict, parse_verdict};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = parse_verdict(data) else {
        return;
    };
    assert!(data.len() <= MAX_ANSWER_BYTES);
    if let Verdict::Refused { reason } = &v {
        assert!(!reason.trim().is_empty() && !reason.chars().any(char::is_control));
    }
    assert_eq!(parse_verdict(&encode_verdict(&v)).ok(), Some(v));
});
