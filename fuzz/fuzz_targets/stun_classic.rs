//! `peercam_stun::classic`: any bytes as an RFC 3489 Binding request.
//!
//! Never panics; what decodes re-encodes to a message that decodes equal; an answer, when
//! there is one, is itself a well-formed classic message with the request's transaction id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_stun::classic::{ClassicMessage, answer_binding};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ClassicMessage::decode(data) {
        let out = m.encode().expect("a decoded message encodes");
        assert_eq!(ClassicMessage::decode(&out).expect("re-encoded decodes"), m);
    }
    if let Ok(answer) = answer_binding(data, "192.0.2.1:3478".parse().expect("address")) {
        let a = ClassicMessage::decode(&answer).expect("answers decode");
        assert_eq!(a.transaction_id[..], data[4..20]);
    }
});
