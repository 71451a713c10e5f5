//! Np: LAN discovery of cameras by an NVR (H.626.4 9, "LAN discovery of all PUs").
//!
//! The NVR sends a [`Probe`] to the multicast group [`GROUP`] on the discovery port; every
//! camera answers to the sender with an [`Announce`] naming itself and its RTSP addresses,
//! signed with its device key. An answer is only a hint of where to connect: the NVR
//! accepts it only when it verifies with the camera's public key (which the CMU gives it
//! when the camera is attached), and every stream is still authorised by the platform
//! (docs/security.md D6: the LAN is not a trust signal).
//!
//! ```text
//! NVR -> 239.255.70.26:45454   {"v":1,"probe":"<nonce>"}
//! PU  -> NVR (unicast)         {"v":1,"re":"<nonce>","device_id":"pc-…","rtsp":["192.168.1.20:8554"],"sig":"…"}
//! ```

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use peercam_base::DeviceId;
use serde::{Deserialize, Serialize};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The multicast group probes go to.
pub const GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 255, 70, 26);
/// The default discovery port.
pub const DEFAULT_PORT: u16 = 45454;
/// Largest datagram either side sends or reads.
pub const MAX_DATAGRAM: usize = 1200;

/// An NVR's probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Format version, 1.
    pub v: u8,
    /// 16 random bytes, base64url; echoed in answers.
    pub probe: String,
}

/// A camera's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// Format version, 1.
    pub v: u8,
    /// The probe's nonce.
    pub re: String,
    /// The camera.
    pub device_id: DeviceId,
    /// RTSP authorities on the LAN, best first (at most 4).
    pub rtsp: Vec<String>,
    /// Ed25519 signature over [`Announce::signed_bytes`], base64url.
    pub sig: String,
}

/// Why a datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// Not a message of this format.
    #[error("not a discovery message")]
    Malformed,
    /// Signed by another key, or altered.
    #[error("announcement signature does not verify")]
    BadSignature,
    /// An answer to another probe.
    #[error("announcement answers another probe")]
    WrongProbe,
}

impl Probe {
    /// A probe with this nonce.
    pub fn new(nonce: [u8; 16]) -> Self {
        Self {
            v: 1,
            probe: URL_SAFE_NO_PAD.encode(nonce),
        }
    }

    /// Parses a datagram.
    pub fn parse(bytes: &[u8]) -> Result<Self, DiscoverError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(DiscoverError::Malformed);
        }
        let p: Self = serde_json::from_slice(bytes).map_err(|_| DiscoverError::Malformed)?;
        if p.v != 1 || p.probe.len() != 22 {
            return Err(DiscoverError::Malformed);
        }
        Ok(p)
    }

    /// The datagram.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Announce {
    /// What is signed: the nonce, the device and its addresses.
    pub fn signed_bytes(re: &str, device_id: &DeviceId, rtsp: &[String]) -> Vec<u8> {
        format!("peercam/announce/v1\n{re}\n{device_id}\n{}", rtsp.join(",")).into_bytes()
    }

    /// A signed answer to `probe`.
    pub fn new(probe: &Probe, device_id: DeviceId, rtsp: Vec<String>, key: &SigningKey) -> Self {
        let rtsp: Vec<String> = rtsp.into_iter().take(4).collect();
        let sig = key.sign(&Self::signed_bytes(&probe.probe, &device_id, &rtsp));
        Self {
            v: 1,
            re: probe.probe.clone(),
            device_id,
            rtsp,
            sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        }
    }

    /// Parses a datagram (signature not checked yet: see [`Announce::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, DiscoverError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(DiscoverError::Malformed);
        }
        let a: Self = serde_json::from_slice(bytes).map_err(|_| DiscoverError::Malformed)?;
        if a.v != 1 || a.rtsp.len() > 4 || a.rtsp.iter().any(|r| r.len() > 64) {
            return Err(DiscoverError::Malformed);
        }
        Ok(a)
    }

    /// Checks that this answers `probe` and is signed by `key`.
    pub fn verify(&self, probe: &Probe, key: &VerifyingKey) -> Result<(), DiscoverError> {
        if self.re != probe.probe {
            return Err(DiscoverError::WrongProbe);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(&self.sig)
            .map_err(|_| DiscoverError::Malformed)?;
        let bytes: [u8; 64] = raw.try_into().map_err(|_| DiscoverError::Malformed)?;
        key.verify(
            &Self::signed_bytes(&self.re, &self.device_id, &self.rtsp),
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| DiscoverError::BadSignature)
    }

    /// The datagram.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn h626_8_7_2_announcements_verify_only_with_the_camera_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let probe = Probe::new([1; 16]);
        let id = DeviceId::from_random([3; 10]);
        let a = Announce::new(&probe, id, vec!["192.168.1.20:8554".into()], &key);
        let back = Announce::parse(&a.to_bytes()).unwrap();
        assert_eq!(back, a);
        back.verify(&probe, &key.verifying_key()).unwrap();
        assert_eq!(
            back.verify(&probe, &other.verifying_key()),
            Err(DiscoverError::BadSignature)
        );
        assert_eq!(
            back.verify(&Probe::new([2; 16]), &key.verifying_key()),
            Err(DiscoverError::WrongProbe)
        );
        let mut moved = back;
        moved.rtsp = vec!["10.0.0.66:8554".into()];
        assert_eq!(
            moved.verify(&probe, &key.verifying_key()),
            Err(DiscoverError::BadSignature)
        );
        assert_eq!(Probe::parse(&probe.to_bytes()).unwrap(), probe);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = Probe::parse(&bytes);
            let _ = Announce::parse(&bytes);
        }
    }
}
