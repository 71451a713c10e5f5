//! The PU parameter schema decoder (H.626.4 8.9.1) and PTZ orders (8.5).
//!
//! `DeviceParams::decode` must never panic; a document it accepts is valid and survives a JSON
//! round trip unchanged. A PTZ order that decodes and validates survives a round trip too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signal::control::{DeviceParams, PtzCommand};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = DeviceParams::decode(data) {
        assert!(p.validate().is_ok());
        let json = serde_json::to_vec(&p).expect("serialises");
        let back = DeviceParams::decode(&json).expect("accepted document decodes again");
        assert_eq!(back, p);
    }
    if let Ok(order) = serde_json::from_slice::<PtzCommand>(data)
        && order.validate().is_ok()
    {
        let json = serde_json::to_vec(&order).expect("serialises");
        let back: PtzCommand = serde_json::from_slice(&json).expect("decodes again");
        assert_eq!(back, order);
    }
});
