//! The small text parsers: session tokens, play tokens (8.4, with their key id), public
//! keys, nonces, and the identifiers of `peercam-base`.
//!
//! None may panic. Whatever parses must round-trip, and since base64url without padding is
//! decoded strictly (canonical trailing bits), a token or key that parses must print back as
//! exactly the input text. The three 32-byte base64url decoders must agree with each other.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use peercam_base::{DeviceId, NodeId, Phone, Scope};
use peercam_signal::play;
use peercam_signal::register::{check_nonce, encode_public_key, parse_public_key};
use peercam_signal::token::SessionToken;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;

    // Session tokens: `pcs_` + 32 bytes base64url.
    if let Ok(tok) = SessionToken::parse(text) {
        let shown = tok.reveal();
        assert_eq!(shown, text, "a token parsed from a non-canonical text");
        assert_eq!(SessionToken::parse(&shown), Ok(tok.clone()));
        assert_eq!(tok.digest().len(), 64);
        assert!(!format!("{tok:?}").contains(&shown[4..]), "token in Debug");
    }

    // Play tokens: `pct2.<kid>.<payload>.<mac>`. The key id is digits only; no text that
    // was not minted under the key verifies.
    if let Ok(kid) = play::key_id(text) {
        assert!(!kid.is_empty() && kid.bytes().all(|b| b.is_ascii_digit()));
        assert!(kid.len() <= play::MAX_KID_LEN);
    }
    if let Ok(claims) = play::verify(&[7; 32], text) {
        let kid = play::key_id(text).expect("a verified token has a key id");
        // Only a token minted under this key verifies: the same claims, minted again
        // under it, verify to the same claims.
        let again = play::mint(kid, &[7; 32], &claims);
        assert_eq!(play::verify(&[7; 32], &again), Ok(claims));
    }

    // Public keys and nonces: both 32 bytes of base64url.
    let nonce_ok = check_nonce(text).is_ok();
    let token_ok = SessionToken::parse(&format!("pcs_{text}")).is_ok();
    assert_eq!(
        nonce_ok, token_ok,
        "nonce and token bodies decode differently"
    );
    if let Ok(pk) = parse_public_key(text) {
        assert!(nonce_ok, "a public key that is not 32 bytes of base64url");
        assert!(!pk.is_weak());
        let shown = encode_public_key(&pk);
        assert_eq!(shown, text, "a public key parsed from a non-canonical text");
        let again = parse_public_key(&shown).expect("encoded key parses");
        assert_eq!(again.to_bytes(), pk.to_bytes());
    }

    // Identifiers.
    if let Ok(id) = DeviceId::from_str(text) {
        assert_eq!(id.as_str(), text.to_ascii_lowercase());
        assert_eq!(id.to_string(), id.as_str());
        assert_eq!(DeviceId::from_str(id.as_str()), Ok(id.clone()));
        let json: DeviceId = serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .expect("serde and FromStr agree on device ids");
        assert_eq!(json, id);
        assert_eq!(
            serde_json::to_string(&id).ok(),
            serde_json::to_string(id.as_str()).ok()
        );
    } else {
        assert!(
            serde_json::from_value::<DeviceId>(serde_json::Value::String(text.to_owned())).is_err(),
            "serde accepts a device id FromStr refuses"
        );
    }
    if let Ok(node) = NodeId::from_str(text) {
        assert_eq!(node.as_str(), text);
        assert_eq!(node.to_string(), text);
        assert_eq!(NodeId::from_str(node.as_str()), Ok(node.clone()));
    }
    if let Ok(phone) = Phone::from_str(text) {
        let s = phone.as_str();
        assert!(
            s.starts_with('+') && (9..=16).contains(&s.len()),
            "bad phone {s:?}"
        );
        assert!(s[1..].bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(phone.to_string(), s);
        assert_eq!(Phone::from_str(s), Ok(phone.clone()));
        // Personal data: Debug must not show the number.
        assert!(!format!("{phone:?}").contains(s), "phone number in Debug");
    }
    if let Ok(scope) = Scope::from_str(text) {
        assert_eq!(scope.as_str(), text);
        assert_eq!(scope.to_string(), text);
    }
});
