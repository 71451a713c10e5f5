//! H.626.4 8.7.1 grants (`peercam_cloud::grant`, `pcg1`) and object keys on arbitrary text.
//!
//! `verify` never panics. A grant whose signature passes is exactly the text `sign` makes of
//! its claims (no second spelling, no forgery); it then passes only for the CS it names,
//! inside its time window (5 s of skew), for an operation it lists and not below the
//! prefix's epoch. An object key or prefix that parses prints back to exactly the text (no
//! path trick survives the CS rebuilding it).
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use peercam_cloud::grant::{Op, Refusal, Request, SKEW_S, Target, sign, verify, verify_signature};
use peercam_cloud::{ObjectKey, Prefix};

/// The seeds are signed with this key, kid `g1`, for CS `cs-1`.
const SEED: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = text.parse::<ObjectKey>() {
        assert_eq!(key.to_string(), text);
    }
    if let Ok(p) = text.parse::<Prefix>() {
        assert_eq!(p.to_string(), text);
    }
    let cmu = SigningKey::from_bytes(&SEED);
    let keys = |kid: &str| (kid == "g1").then(|| cmu.verifying_key());
    let probe = Request {
        aud: "cs-1",
        now_s: 0,
        op: Op::Put,
        target: Target::Prefix(Prefix::from_bytes([0; 16])),
    };
    let Ok(claims) = verify_signature(&text, keys) else {
        assert!(verify(&text, keys, |_| Some(0), &probe).is_err());
        return;
    };
    assert_eq!(sign(&claims, &cmu).as_deref(), Ok(&*text));
    // Probe times around the window, from the text's last byte.
    let step = (claims.exp - claims.iat) / 64 + 1;
    let k = u64::from(data.last().copied().unwrap_or(0));
    let now_s = claims.iat.saturating_sub(SKEW_S + 2 * step) + k * step;
    for op in Op::ALL {
        for epoch in [claims.epoch, claims.epoch.saturating_add(1)] {
            let req = Request {
                aud: "cs-1",
                now_s,
                op,
                target: Target::Prefix(claims.pfx),
            };
            let got = verify(&text, keys, |_| Some(epoch), &req);
            let in_time = now_s + SKEW_S >= claims.iat && now_s < claims.exp;
            if claims.aud != "cs-1" {
                assert_eq!(got, Err(Refusal::Audience));
                continue;
            }
            match got {
                Ok(c) => {
                    assert_eq!(c, claims);
                    assert!(in_time && claims.ops.contains(op) && claims.epoch >= epoch);
                }
                Err(Refusal::NotYetValid | Refusal::Expired) => assert!(!in_time),
                Err(Refusal::Epoch) => assert!(in_time && claims.epoch < epoch),
                Err(Refusal::Operation) => {
                    assert!(in_time && claims.epoch >= epoch && !claims.ops.contains(op));
                }
                Err(Refusal::Scope) => {
                    assert!(in_time && claims.epoch >= epoch && claims.ops.contains(op));
                }
                Err(r) => panic!("signed grant refused with {r:?}"),
            }
        }
    }
});
