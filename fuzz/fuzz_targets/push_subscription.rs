//! H.626.4 6.1.9 Web Push subscriptions as a browser posts them: JSON, then the form check.
//!
//! None may panic. A subscription that passes has an endpoint the check accepts again after
//! a JSON round trip, and keys of exactly the sizes Web Push needs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signal::cm_alarm::{MAX_PUSH_ENDPOINT, PushSubscriptionRequest};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<PushSubscriptionRequest>(data) else {
        return;
    };
    match req.check() {
        Ok(keys) => {
            assert_eq!(keys.p256dh.len(), 65);
            assert_eq!(keys.p256dh[0], 4);
            assert_eq!(keys.auth.len(), 16);
            assert!(req.endpoint.len() <= MAX_PUSH_ENDPOINT);
            let again: PushSubscriptionRequest =
                serde_json::from_str(&serde_json::to_string(&req).expect("serialises"))
                    .expect("reads back");
            assert_eq!(again.check(), Ok(keys));
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(["endpoint", "keys.p256dh", "keys.auth"].contains(&e.field.as_str()));
            }
        }
    }
});
