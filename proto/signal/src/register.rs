//! The signed registration challenge of H.626.4 8.1 (docs/security.md D1).
//!
//! A device proves possession of its Ed25519 key by signing
//! `peercam/register/v1 \n node \n device_id \n nonce \n issued_at_ms`. Binding the SCU node
//! and the issue time into the signed text means a signature captured on one connection is
//! useless on any other.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use peercam_base::DeviceId;

/// Why a key or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not base64url of the right length.
    #[error("{what} is not {len} bytes of base64url")]
    Encoding {
        /// Which field.
        what: &'static str,
        /// Expected decoded length.
        len: usize,
    },
    /// The public key is not a valid Ed25519 point (or is a weak key).
    #[error("public key is not a valid Ed25519 key")]
    BadKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

/// The exact bytes a device signs to register.
pub fn signing_payload(
    node: &str,
    device_id: &DeviceId,
    nonce: &str,
    issued_at_ms: u64,
) -> Vec<u8> {
    format!("peercam/register/v1\n{node}\n{device_id}\n{nonce}\n{issued_at_ms}").into_bytes()
}

/// Signs a registration challenge.
pub fn sign(
    key: &SigningKey,
    node: &str,
    device_id: &DeviceId,
    nonce: &str,
    issued_at_ms: u64,
) -> String {
    let sig = key.sign(&signing_payload(node, device_id, nonce, issued_at_ms));
    URL_SAFE_NO_PAD.encode(sig.to_bytes())
}

/// Verifies a registration signature with the device's public key (strict: rejects
/// non-canonical signatures and small-order keys).
pub fn verify(
    public_key: &VerifyingKey,
    node: &str,
    device_id: &DeviceId,
    nonce: &str,
    issued_at_ms: u64,
    signature: &str,
) -> Result<(), KeyError> {
    let bytes: [u8; 64] = decode_fixed(signature, "signature")?;
    let sig = Signature::from_bytes(&bytes);
    public_key
        .verify_strict(&signing_payload(node, device_id, nonce, issued_at_ms), &sig)
        .map_err(|_| KeyError::BadSignature)?;
    // Also run the non-strict check path once to be sure the two agree.
    public_key
        .verify(&signing_payload(node, device_id, nonce, issued_at_ms), &sig)
        .map_err(|_| KeyError::BadSignature)
}

/// Parses a base64url Ed25519 public key.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes: [u8; 32] = decode_fixed(text, "public key")?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::BadKey)?;
    if key.is_weak() {
        return Err(KeyError::BadKey);
    }
    Ok(key)
}

/// Encodes a public key as base64url.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Encodes 32 random bytes as a challenge nonce.
pub fn encode_nonce(bytes: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Checks a nonce is 32 bytes of base64url.
pub fn check_nonce(nonce: &str) -> Result<(), KeyError> {
    decode_fixed::<32>(nonce, "nonce").map(|_| ())
}

pub(crate) fn decode_fixed<const N: usize>(
    text: &str,
    what: &'static str,
) -> Result<[u8; N], KeyError> {
    let err = KeyError::Encoding { what, len: N };
    // base64 of N bytes is at most 4 * ceil(N / 3) characters: refuse longer input before decoding.
    if text.len() > N.div_ceil(3) * 4 {
        return Err(err);
    }
    let v = URL_SAFE_NO_PAD.decode(text).map_err(|_| err.clone())?;
    v.try_into().map_err(|_| err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn sign_verify_and_tamper() {
        let id = DeviceId::from_random([7; 10]);
        let k = key(1);
        let nonce = encode_nonce(&[9; 32]);
        let sig = sign(&k, "scu-1", &id, &nonce, 1000);
        let pk = parse_public_key(&encode_public_key(&k.verifying_key())).expect("key");
        assert_eq!(verify(&pk, "scu-1", &id, &nonce, 1000, &sig), Ok(()));
        assert_eq!(
            verify(&pk, "scu-2", &id, &nonce, 1000, &sig),
            Err(KeyError::BadSignature)
        );
        assert_eq!(
            verify(&pk, "scu-1", &id, &nonce, 1001, &sig),
            Err(KeyError::BadSignature)
        );
        let other = key(2).verifying_key();
        assert_eq!(
            verify(&other, "scu-1", &id, &nonce, 1000, &sig),
            Err(KeyError::BadSignature)
        );
        assert!(parse_public_key("short").is_err());
        // A small-order point is refused.
        let identity_point = URL_SAFE_NO_PAD.encode(
            [1u8]
                .iter()
                .chain([0u8; 31].iter())
                .copied()
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            parse_public_key(&identity_point).err(),
            Some(KeyError::BadKey)
        );
    }

    proptest! {
        #[test]
        fn any_bit_flip_in_signature_is_rejected(bit in 0usize..512, seed in any::<u8>()) {
            let id = DeviceId::from_random([seed; 10]);
            let k = key(seed);
            let nonce = encode_nonce(&[seed; 32]);
            let sig = sign(&k, "n", &id, &nonce, 5);
            let mut raw = URL_SAFE_NO_PAD.decode(&sig).map_err(|e| TestCaseError::fail(e.to_string()))?;
            raw[bit / 8] ^= 1 << (bit % 8);
            let flipped = URL_SAFE_NO_PAD.encode(&raw);
            prop_assert!(verify(&k.verifying_key(), "n", &id, &nonce, 5, &flipped).is_err());
        }

        #[test]
        fn public_key_round_trips(seed in any::<[u8; 32]>()) {
            let pk = SigningKey::from_bytes(&seed).verifying_key();
            let text = encode_public_key(&pk);
            prop_assert_eq!(parse_public_key(&text).map(|k| k.to_bytes()), Ok(pk.to_bytes()));
        }
    }
}
