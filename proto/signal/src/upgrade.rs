//! Signed software packages (H.626.4 8.11.1, docs/security.md D9).
//!
//! A release is a payload (the PU's own binary) described by a [`Manifest`]: version,
//! hardware model, SHA-256, size and expiry. Release keys (Ed25519) sign the manifest's
//! canonical bytes; a device accepts it only with signatures from at least `threshold` of the
//! keys it trusts, for its own model, before expiry, and only for a version newer than any it
//! has run (anti-rollback). The URL a package comes from is just a location: nothing about it
//! is trusted.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Domain separation for release signatures.
const DOMAIN: &[u8] = b"peercam-release-manifest-v1\n";

/// The largest payload a manifest may describe.
pub const MAX_PAYLOAD_BYTES: u64 = 512 * 1024 * 1024;

/// A version `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::str::FromStr for Version {
    type Err = UpgradeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UpgradeError::Malformed(format!("version {s:?} is not MAJOR.MINOR.PATCH"));
        let mut it = s.split('.');
        let mut next = || -> Result<u32, UpgradeError> {
            let p = it.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let v = Self(next()?, next()?, next()?);
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What a release is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Version, `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// The hardware model it is for (the device identity's `model`).
    pub model: String,
    /// SHA-256 of the payload, lower-case hex.
    pub sha256: String,
    /// Payload size, bytes.
    pub size: u64,
    /// Unix seconds after which devices refuse it.
    pub expires_at: u64,
}

/// One release key's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    /// The signing key, base64url of its 32 bytes.
    pub key: String,
    /// Ed25519 signature over the manifest's canonical bytes, base64url.
    pub sig: String,
}

/// A manifest and its signatures: what the operator uploads and the device checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// Its signatures.
    pub signatures: Vec<ManifestSignature>,
}

/// Why a package is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// Fields are malformed.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// Not enough valid signatures from trusted keys.
    #[error("{valid} valid signature(s) from trusted release keys, {needed} needed")]
    Signatures {
        /// Valid ones found.
        valid: usize,
        /// Required.
        needed: usize,
    },
    /// Made for another model.
    #[error("package is for model {package:?}, this device is {device:?}")]
    WrongModel {
        /// The manifest's model.
        package: String,
        /// The device's.
        device: String,
    },
    /// Past its expiry.
    #[error("manifest expired at {0}")]
    Expired(u64),
    /// Not newer than what the device has run (anti-rollback).
    #[error("version {package} is not newer than {installed}, which this device has run")]
    NotNewer {
        /// The manifest's version.
        package: Version,
        /// The highest version the device has run.
        installed: Version,
    },
}

impl UpgradeError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Signatures { .. } => "bad_signature",
            Self::WrongModel { .. } => "wrong_model",
            Self::Expired(_) => "expired",
            Self::NotNewer { .. } => "not_newer",
        }
    }
}

impl Manifest {
    /// The bytes release keys sign: a domain tag and the manifest's JSON, fields in
    /// declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = DOMAIN.to_vec();
        // Serialising a struct of strings and integers cannot fail.
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    /// Checks the fields' shapes (not trust).
    pub fn check_shape(&self) -> Result<Version, UpgradeError> {
        let v: Version = self.version.parse()?;
        if self.model.is_empty() || self.model.len() > 64 {
            return Err(UpgradeError::Malformed(
                "model must have 1-64 characters".into(),
            ));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(UpgradeError::Malformed(
                "sha256 must be 64 lower-case hex digits".into(),
            ));
        }
        if self.size == 0 || self.size > MAX_PAYLOAD_BYTES {
            return Err(UpgradeError::Malformed(format!(
                "size must be 1..={MAX_PAYLOAD_BYTES} bytes"
            )));
        }
        Ok(v)
    }

    /// Signs with a release key.
    pub fn sign(&self, key: &SigningKey) -> ManifestSignature {
        ManifestSignature {
            key: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            sig: URL_SAFE_NO_PAD.encode(key.sign(&self.canonical_bytes()).to_bytes()),
        }
    }
}

/// Parses a release public key (base64url of 32 bytes).
pub fn parse_key(text: &str) -> Result<VerifyingKey, UpgradeError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| UpgradeError::Malformed("release key is not base64url".into()))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| UpgradeError::Malformed("release key is not 32 bytes".into()))?;
    VerifyingKey::from_bytes(&arr)
        .map_err(|_| UpgradeError::Malformed("release key is not a valid Ed25519 key".into()))
}

/// What a device (or the CMU on its behalf) requires of a package.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    /// Trusted release keys.
    pub keys: &'a [VerifyingKey],
    /// Signatures needed from distinct trusted keys (at least 1).
    pub threshold: usize,
    /// The device's model.
    pub model: &'a str,
    /// Unix seconds now.
    pub now: u64,
    /// The highest version the device has run.
    pub installed: Version,
}

impl SignedManifest {
    /// Every check of D9 short of the payload's hash: shape, `threshold` signatures from
    /// distinct trusted keys, model, expiry and anti-rollback. Returns the version.
    pub fn verify(&self, policy: &Policy<'_>) -> Result<Version, UpgradeError> {
        let m = &self.manifest;
        let version = m.check_shape()?;
        let bytes = m.canonical_bytes();
        let mut good: Vec<[u8; 32]> = Vec::new();
        for s in &self.signatures {
            let Ok(key) = parse_key(&s.key) else { continue };
            if !policy.keys.contains(&key) || good.contains(key.as_bytes()) {
                continue;
            }
            let Ok(sig) = URL_SAFE_NO_PAD.decode(&s.sig) else {
                continue;
            };
            let Ok(sig) = Signature::from_slice(&sig) else {
                continue;
            };
            if key.verify(&bytes, &sig).is_ok() {
                good.push(*key.as_bytes());
            }
        }
        let needed = policy.threshold.max(1);
        if good.len() < needed {
            return Err(UpgradeError::Signatures {
                valid: good.len(),
                needed,
            });
        }
        if m.model != policy.model {
            return Err(UpgradeError::WrongModel {
                package: m.model.clone(),
                device: policy.model.to_owned(),
            });
        }
        if policy.now > m.expires_at {
            return Err(UpgradeError::Expired(m.expires_at));
        }
        if version <= policy.installed {
            return Err(UpgradeError::NotNewer {
                package: version,
                installed: policy.installed,
            });
        }
        Ok(version)
    }
}

/// Where a device's upgrade stands (reported to the CU through the platform).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpgradeStatus {
    /// The version running now.
    pub running: String,
    /// `idle`, `downloading`, `installing`, `restarting`, `committed`, `rolled_back` or
    /// `failed`.
    pub state: String,
    /// The version being installed or last tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Bytes downloaded, of `total`.
    #[serde(default)]
    pub done: u64,
    /// Payload size.
    #[serde(default)]
    pub total: u64,
    /// Why it failed or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn manifest() -> Manifest {
        Manifest {
            version: "1.2.0".into(),
            model: "synthetic-v1".into(),
            sha256: "ab".repeat(32),
            size: 1000,
            expires_at: 2_000_000_000,
        }
    }

    fn policy(keys: &[VerifyingKey]) -> Policy<'_> {
        Policy {
            keys,
            threshold: 1,
            model: "synthetic-v1",
            now: 1_900_000_000,
            installed: Version(1, 1, 9),
        }
    }

    #[test]
    fn h626_8_11_1_valid_package_is_accepted() {
        let m = manifest();
        let s = SignedManifest {
            signatures: vec![m.sign(&key(1))],
            manifest: m,
        };
        let keys = [key(1).verifying_key()];
        assert_eq!(s.verify(&policy(&keys)), Ok(Version(1, 2, 0)));
    }

    #[test]
    fn h626_8_11_1_refusals() {
        let keys = [key(1).verifying_key(), key(2).verifying_key()];
        let signed = |m: Manifest, by: &[u8]| SignedManifest {
            signatures: by.iter().map(|n| m.sign(&key(*n))).collect(),
            manifest: m,
        };
        // Tampered after signing.
        let mut s = signed(manifest(), &[1]);
        s.manifest.size = 999;
        assert_eq!(
            s.verify(&policy(&keys)).unwrap_err().code(),
            "bad_signature"
        );
        // An untrusted key.
        assert_eq!(
            signed(manifest(), &[3])
                .verify(&policy(&keys))
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        // Threshold 2: one key is not enough, the same key twice neither, two keys are.
        let mut p = policy(&keys);
        p.threshold = 2;
        assert!(signed(manifest(), &[1]).verify(&p).is_err());
        assert!(signed(manifest(), &[1, 1]).verify(&p).is_err());
        assert!(signed(manifest(), &[1, 2]).verify(&p).is_ok());
        // Another model, expired, older or equal version.
        let mut m = manifest();
        m.model = "other".into();
        assert_eq!(
            signed(m, &[1]).verify(&policy(&keys)).unwrap_err().code(),
            "wrong_model"
        );
        let mut m = manifest();
        m.expires_at = 1;
        assert_eq!(
            signed(m, &[1]).verify(&policy(&keys)).unwrap_err().code(),
            "expired"
        );
        for v in ["1.1.9", "1.0.0"] {
            let mut m = manifest();
            m.version = v.into();
            assert_eq!(
                signed(m, &[1]).verify(&policy(&keys)).unwrap_err().code(),
                "not_newer"
            );
        }
        let mut m = manifest();
        m.version = "1.2".into();
        assert_eq!(
            signed(m, &[1]).verify(&policy(&keys)).unwrap_err().code(),
            "malformed"
        );
    }

    #[test]
    fn versions_order_numerically() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("0.10.0") > v("0.9.9"));
        assert_eq!(v("1.2.3").to_string(), "1.2.3");
        for bad in ["", "1", "1.2.3.4", "a.b.c", "1.-2.3", "01.2.3x"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }
}
