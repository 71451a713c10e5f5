//! Identifier newtypes with validated syntax.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// A syntactically invalid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A device id must be `pc-` followed by 16 Crockford base32 characters.
    #[error(
        "invalid device id {0:?}: expected `pc-` and 16 characters of 0-9, a-z (no i, l, o, u)"
    )]
    Device(String),
    /// A node id is 1-64 characters of `a-z 0-9 - _ .`.
    #[error("invalid node id {0:?}: 1-64 characters of a-z, 0-9, '-', '_', '.'")]
    Node(String),
    /// A phone number must be E.164: `+` and 8 to 15 digits.
    #[error("invalid phone number: expected E.164 form, `+` then 8 to 15 digits")]
    Phone,
}

/// Crockford base32 alphabet, lower case (no i, l, o, u).
pub(crate) const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A device (PU or NVR) identifier: the public *label* printed on the sticker.
///
/// It is never an authenticator (docs/security.md D1): a device proves who it is with its key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// Number of random characters after the `pc-` prefix.
    pub const RANDOM_LEN: usize = 16;

    /// Builds a device id from 10 random bytes (80 bits).
    pub fn from_random(bytes: [u8; 10]) -> Self {
        let mut s = String::with_capacity(3 + Self::RANDOM_LEN);
        s.push_str("pc-");
        let mut acc: u128 = 0;
        for b in bytes {
            acc = (acc << 8) | u128::from(b);
        }
        for i in (0..Self::RANDOM_LEN).rev() {
            let idx = ((acc >> (i * 5)) & 31) as usize;
            s.push(char::from(CROCKFORD[idx]));
        }
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DeviceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let lower = s.to_ascii_lowercase();
        let ok = lower.len() == 3 + Self::RANDOM_LEN
            && lower.starts_with("pc-")
            && lower.as_bytes()[3..].iter().all(|c| CROCKFORD.contains(c));
        if ok {
            Ok(Self(lower))
        } else {
            Err(IdError::Device(s.chars().take(40).collect()))
        }
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.0)
    }
}

/// The name of one node of a distributed unit (an SCU node, say).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Node(s.chars().take(64).collect()))
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// A mobile phone number in E.164 form (H.626.4 6.1.1: accounts are registered by phone).
///
/// Personal data: its `Debug` shows only the last two digits.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// The number as text, `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Phone {
    type Err = IdError;
    /// Accepts `+` then 8-15 digits; spaces, dashes, dots and brackets are removed first.
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() > 32 {
            return Err(IdError::Phone);
        }
        let cleaned: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = cleaned.strip_prefix('+').ok_or(IdError::Phone)?;
        let ok = (8..=15).contains(&digits.len())
            && digits.bytes().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(cleaned))
        } else {
            Err(IdError::Phone)
        }
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = &self.0[self.0.len().saturating_sub(2)..];
        write!(f, "Phone(+…{tail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn device_id_syntax() {
        let id = DeviceId::from_random([0xff; 10]);
        assert_eq!(id.as_str(), "pc-zzzzzzzzzzzzzzzz");
        assert!("PC-0123456789ABCDEF".parse::<DeviceId>().is_ok());
        assert!("pc-0123456789abcdeu".parse::<DeviceId>().is_err());
        assert!("pc-short".parse::<DeviceId>().is_err());
    }

    #[test]
    fn phone_syntax() {
        assert_eq!(
            "+44 20 7946-0958".parse::<Phone>().map(|p| p.0),
            Ok("+442079460958".into())
        );
        assert!("0044207946".parse::<Phone>().is_err());
        assert!("+0123456789".parse::<Phone>().is_err());
        assert!("+1234".parse::<Phone>().is_err());
        let p: Phone = "+15551234567".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{p:?}"), "Phone(+…67)");
    }

    proptest! {
        #[test]
        fn device_id_round_trips(bytes in any::<[u8; 10]>()) {
            let id = DeviceId::from_random(bytes);
            let parsed: DeviceId = id.as_str().parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert_eq!(&parsed, &id);
            let json = serde_json_like(&id);
            prop_assert_eq!(json, format!("\"{}\"", id.as_str()));
        }

        #[test]
        fn device_id_parse_never_panics(s in ".{0,40}") {
            let _ = s.parse::<DeviceId>();
            let _ = s.parse::<Phone>();
            let _ = s.parse::<NodeId>();
        }
    }

    fn serde_json_like(id: &DeviceId) -> String {
        format!("\"{id}\"")
    }
}
