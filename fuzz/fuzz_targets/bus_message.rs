//! Messages between CMU instances on the bus (H.626.4 7, issue 19): whatever another
//! instance (or anyone able to write to the bus) sends, decoding never panics, a message
//! without this version is refused, and whatever is accepted encodes back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signal::bus::{Answer, Ask, BUS_VERSION, Envelope, Undecodable, decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(text: &str) {
    match decode::<T>(text) {
        Ok(msg) => {
            let again = encode(&msg).expect("a decoded message encodes");
            assert_eq!(decode::<T>(&again).ok(), Some(msg));
        }
        Err(Undecodable::Version(v)) => assert_ne!(v, Some(BUS_VERSION)),
        Err(Undecodable::Malformed(_)) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check::<Envelope>(text);
    check::<Ask>(text);
    check::<Answer>(text);
});
