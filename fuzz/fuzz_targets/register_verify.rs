//! The registration signature check (H.626.4 8.1, docs/security.md D1).
//!
//! Input: 32 bytes of Ed25519 seed, then the rest.
//! * If the rest starts with 0xFF, its remaining bytes are XORed onto the genuine signature
//!   (`register::sign` with that key), which is then base64url-encoded: the fuzzer explores
//!   near-misses of a valid signature.
//! * Otherwise the rest is taken as the signature text itself.
//!
//! Oracle: `register::verify` may succeed only for exactly the text `register::sign`
//! produces for that key and payload (Ed25519 signing is deterministic and the fuzzer cannot
//! compute another valid signature), and the genuine signature, when it is the candidate
//! (the seeds make it so), must verify. The payload fields (node, device id, nonce, time) are
//! fixed: `signing_payload` is plain formatting, the interest is in decoding and verification.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use peercam_base::DeviceId;
use peercam_signal::register::{
    KeyError, encode_nonce, encode_public_key, parse_public_key, sign, verify,
};

const NODE: &str = "scu-1";
const ISSUED_AT_MS: u64 = 1_700_000_000_000;

/// Standard base64url without padding, kept here so the fuzz crate needs no base64 dependency.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Inverse of [`b64url`] for canonical input (used only on `sign`'s output).
fn unb64url(text: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("sign produced a non-base64url character {c:#x}"),
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((seed, rest)) = data.split_first_chunk::<32>() else {
        return;
    };
    let key = SigningKey::from_bytes(seed);
    let device_id: DeviceId = "pc-0123456789abcdef".parse().expect("valid id");
    let nonce = encode_nonce(&[0x5a; 32]);
    let genuine = sign(&key, NODE, &device_id, &nonce, ISSUED_AT_MS);

    let raw = unb64url(&genuine);
    assert_eq!(raw.len(), 64, "signature is not 64 bytes");
    assert_eq!(
        b64url(&raw),
        genuine,
        "signature is not canonical base64url"
    );

    let Ok(pk) = parse_public_key(&encode_public_key(&key.verifying_key())) else {
        // A seed whose public key is weak or fails to parse is refused outright; that must
        // not happen for a key derived from a seed (the clamped scalar is never small-order).
        panic!("public key of seed {seed:02x?} does not parse");
    };
    let candidate = match rest.split_first() {
        Some((0xff, mask)) => {
            let mut sig = raw;
            for (s, m) in sig.iter_mut().zip(mask) {
                *s ^= m;
            }
            b64url(&sig)
        }
        _ => String::from_utf8_lossy(rest).into_owned(),
    };

    let result = verify(&pk, NODE, &device_id, &nonce, ISSUED_AT_MS, &candidate);
    if candidate == genuine {
        // Checked only here: verifying costs as much as signing, and most candidates differ.
        assert_eq!(result, Ok(()), "the genuine signature does not verify");
    }
    match result {
        Ok(()) => assert_eq!(
            candidate, genuine,
            "verify accepted a signature that register::sign did not produce"
        ),
        Err(KeyError::Encoding { what, len }) => {
            assert_eq!((what, len), ("signature", 64));
            assert_ne!(candidate, genuine);
        }
        Err(KeyError::BadSignature) => assert_ne!(candidate, genuine),
        Err(e) => panic!("unexpected error from verify: {e:?}"),
    }
});
