//! Every platform frame type through `decode`, and a round-trip oracle on what decodes.
//!
//! The input is one WebSocket text frame as the SCU or CMU would receive it. For each of the
//! four directions of Ps/Pm and Sc/Sm it is decoded; whatever decodes must re-encode to a frame
//! that decodes again to an equal envelope, and encoding must be a fixed point (encoding the
//! re-decoded envelope gives the same bytes).
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use peercam_signal::ps::{DeviceToScu, ScuToDevice};
use peercam_signal::sc::{CmuToScu, ScuToCmu};
use peercam_signal::{DecodeError, Envelope, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<B>(data: &[u8])
where
    B: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let env: Envelope<B> = match decode(data) {
        Ok(env) => env,
        Err(DecodeError::TooLarge(n)) => {
            assert!(
                n > MAX_MESSAGE_BYTES,
                "TooLarge({n}) for a frame within the limit"
            );
            return;
        }
        Err(DecodeError::Version(v)) => {
            assert_ne!(v, PROTOCOL_VERSION, "own protocol version refused");
            return;
        }
        Err(_) => return,
    };
    assert!(data.len() <= MAX_MESSAGE_BYTES);
    assert_eq!(env.v, PROTOCOL_VERSION, "decode accepted another version");

    let bytes = encode(&env);
    assert!(
        !bytes.is_empty(),
        "encode failed (returned nothing) for {env:?}"
    );
    let again: Envelope<B> = match decode(&bytes) {
        Ok(again) => again,
        Err(e) => panic!(
            "re-encoded frame does not decode: {e}\n  envelope: {env:?}\n  encoded: {}",
            String::from_utf8_lossy(&bytes)
        ),
    };
    assert_eq!(again.body, env.body, "body changed in a round trip");
    assert_eq!(again, env, "envelope changed in a round trip");
    assert_eq!(encode(&again), bytes, "encoding is not a fixed point");
}

fuzz_target!(|data: &[u8]| {
    round_trip::<DeviceToScu>(data);
    round_trip::<ScuToDevice>(data);
    round_trip::<ScuToCmu>(data);
    round_trip::<CmuToScu>(data);
});
