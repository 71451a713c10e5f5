//! Signed release manifests (H.626.4 8.11.1, docs/security.md D9) and versions.
//!
//! Decoding and verifying arbitrary manifests never panics, and nothing the fuzzer makes is
//! accepted without a valid signature from the trusted key. Versions that parse print back
//! to the same text's value.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use peercam_signal::upgrade::{Policy, SignedManifest, Version};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(v) = text.parse::<Version>()
    {
        assert_eq!(v.to_string().parse::<Version>().ok(), Some(v));
    }
    let Ok(signed) = serde_json::from_slice::<SignedManifest>(data) else {
        return;
    };
    let trusted = SigningKey::from_bytes(&[42; 32]).verifying_key();
    let policy = Policy {
        keys: &[trusted],
        threshold: 1,
        model: &signed.manifest.model,
        now: 0,
        installed: Version::default(),
    };
    if signed.verify(&policy).is_ok() {
        // Only a real signature by the trusted key gets here: re-signing must agree.
        let again = signed.manifest.sign(&SigningKey::from_bytes(&[42; 32]));
        assert!(signed.signatures.iter().any(|s| s.key == again.key));
    }
    let json = serde_json::to_vec(&signed).expect("serialises");
    let back: SignedManifest = serde_json::from_slice(&json).expect("round trip");
    assert_eq!(back, signed);
});
