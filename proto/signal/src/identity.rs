//! A device's identity file, written at provisioning and read by the PU at start.
//!
//! TOML, one file per device:
//!
//! ```toml
//! device_id = "pc-0123456789abcdef"
//! kind = "pu"
//! vendor = "Acme"
//! model = "C1"
//! secret_key = "<32 bytes, base64url>"   # the Ed25519 seed; never leaves the device
//! bind_code = "ABCD-EFGH-JKMN"           # printed on the sticker / QR code
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ps::DeviceKind;
use crate::register::{KeyError, decode_fixed};

/// Largest identity file accepted.
pub const MAX_IDENTITY_BYTES: usize = 4096;

/// Why an identity file or bind code was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The file is larger than [`MAX_IDENTITY_BYTES`].
    #[error("identity file is larger than {MAX_IDENTITY_BYTES} bytes")]
    TooLarge,
    /// Not valid TOML of the expected shape.
    #[error("identity file: {0}")]
    Syntax(String),
    /// The key is malformed.
    #[error("identity file: {0}")]
    Key(#[from] KeyError),
    /// The bind code is malformed.
    #[error("bind code must be 12 characters of 0-9, A-Z without I, L, O, U (dashes allowed)")]
    BindCode,
}

/// The device's identity.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceIdentity {
    /// The device's public label.
    pub device_id: DeviceId,
    /// PU or NVR.
    pub kind: DeviceKind,
    /// Manufacturer.
    pub vendor: String,
    /// Hardware model.
    pub model: String,
    /// The Ed25519 seed, base64url. Secret.
    secret_key: String,
    /// The bind code printed on the device (what the QR sticker carries).
    pub bind_code: BindCode,
}

impl DeviceIdentity {
    /// Builds an identity from its parts.
    pub fn new(
        device_id: DeviceId,
        kind: DeviceKind,
        vendor: String,
        model: String,
        key: &SigningKey,
        bind_code: BindCode,
    ) -> Self {
        Self {
            device_id,
            kind,
            vendor,
            model,
            secret_key: URL_SAFE_NO_PAD.encode(key.to_bytes()),
            bind_code,
        }
    }

    /// Parses an identity file, checking every field.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        if text.len() > MAX_IDENTITY_BYTES {
            return Err(IdentityError::TooLarge);
        }
        let id: Self =
            toml::from_str(text).map_err(|e| IdentityError::Syntax(e.message().to_owned()))?;
        if id.vendor.len() > 64 || id.model.len() > 64 {
            return Err(IdentityError::Syntax(
                "vendor and model are at most 64 bytes".into(),
            ));
        }
        id.signing_key()?;
        Ok(id)
    }

    /// Serialises to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The device's signing key.
    pub fn signing_key(&self) -> Result<SigningKey, KeyError> {
        let seed: [u8; 32] = decode_fixed(&self.secret_key, "secret key")?;
        Ok(SigningKey::from_bytes(&seed))
    }
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id)
            .field("kind", &self.kind)
            .field("vendor", &self.vendor)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// The secret printed on a device that proves physical possession when binding (8.2).
///
/// 12 Crockford base32 characters (60 bits), shown as `XXXX-XXXX-XXXX`.
#[derive(Clone, PartialEq, Eq)]
pub struct BindCode(String);

impl BindCode {
    const LEN: usize = 12;

    /// From 8 random bytes.
    pub fn from_random(bytes: [u8; 8]) -> Self {
        let v = u64::from_be_bytes(bytes);
        let alphabet = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let s = (0..Self::LEN)
            .rev()
            .map(|i| char::from(alphabet[((v >> (i * 5)) & 31) as usize]))
            .collect();
        Self(s)
    }

    /// Parses a code typed by a person: case-insensitive, dashes and spaces ignored, and the
    /// look-alikes I, L -> 1 and O -> 0 mapped as Crockford base32 does.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        if text.len() > 32 {
            return Err(IdentityError::BindCode);
        }
        let mut s = String::with_capacity(Self::LEN);
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                'I' | 'L' => '1',
                'O' => '0',
                c @ ('0'..='9' | 'A'..='Z') if c != 'U' => c,
                _ => return Err(IdentityError::BindCode),
            };
            s.push(c);
        }
        if s.len() == Self::LEN {
            Ok(Self(s))
        } else {
            Err(IdentityError::BindCode)
        }
    }

    /// The canonical form, `XXXX-XXXX-XXXX`.
    pub fn display(&self) -> String {
        format!("{}-{}-{}", &self.0[0..4], &self.0[4..8], &self.0[8..12])
    }

    /// What the CMU stores: SHA-256 of `device_id ":" code`, hex.
    pub fn digest(&self, device_id: &DeviceId) -> String {
        let mut h = Sha256::new();
        h.update(device_id.as_str().as_bytes());
        h.update(b":");
        h.update(self.0.as_bytes());
        let out = h.finalize();
        out.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for BindCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BindCode(<redacted>)")
    }
}

impl Serialize for BindCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display())
    }
}

impl<'de> Deserialize<'de> for BindCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn identity_round_trips(seed in any::<[u8; 32]>(), idb in any::<[u8; 10]>(), code in any::<[u8; 8]>(), vendor in "[A-Za-z0-9 ]{0,20}") {
            let key = SigningKey::from_bytes(&seed);
            let id = DeviceIdentity::new(DeviceId::from_random(idb), DeviceKind::Pu, vendor, "M1".into(), &key, BindCode::from_random(code));
            let text = id.to_toml();
            let back = DeviceIdentity::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back.device_id, &id.device_id);
            prop_assert_eq!(&back.bind_code, &id.bind_code);
            prop_assert_eq!(back.signing_key().map(|k| k.to_bytes()), Ok(seed));
        }

        #[test]
        fn bind_code_round_trips(code in any::<[u8; 8]>()) {
            let c = BindCode::from_random(code);
            prop_assert_eq!(BindCode::parse(&c.display()).ok(), Some(c.clone()));
            prop_assert_eq!(BindCode::parse(&c.display().to_lowercase()).ok(), Some(c));
        }

        #[test]
        fn identity_parse_never_panics(text in ".{0,300}") {
            let _ = DeviceIdentity::parse(&text);
            let _ = BindCode::parse(&text);
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let id = DeviceIdentity::new(
            DeviceId::from_random([1; 10]),
            DeviceKind::Pu,
            "v".into(),
            "m".into(),
            &key,
            BindCode::from_random([2; 8]),
        );
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(&id.secret_key));
        assert!(!dbg.contains(&id.bind_code.display()));
    }
}
