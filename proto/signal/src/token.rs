//! Bearer tokens of the CMU API.
//!
//! A session token is `pcs_` followed by 32 random bytes in base64url. The CMU stores only
//! its SHA-256, so a database leak yields no usable token.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::register::decode_fixed;

const PREFIX: &str = "pcs_";

/// A CMU session token.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken([u8; 32]);

/// The token is not of the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed session token")]
pub struct TokenError;

impl SessionToken {
    /// From 32 random bytes.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses `pcs_<base64url>`.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let body = text.strip_prefix(PREFIX).ok_or(TokenError)?;
        decode_fixed::<32>(body, "token")
            .map(Self)
            .map_err(|_| TokenError)
    }

    /// The token text, to hand to the client once.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// What the server stores and looks up: SHA-256 of the raw bytes, hex.
    pub fn digest(&self) -> String {
        Sha256::digest(self.0)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn token_round_trips(bytes in any::<[u8; 32]>()) {
            let t = SessionToken::from_random(bytes);
            prop_assert_eq!(SessionToken::parse(&t.reveal()), Ok(t));
        }

        #[test]
        fn token_parse_never_panics(s in ".{0,80}") {
            let _ = SessionToken::parse(&s);
        }
    }

    #[test]
    fn rejects_wrong_forms() {
        assert_eq!(SessionToken::parse("pcs_"), Err(TokenError));
        assert_eq!(SessionToken::parse("xyz_AAAA"), Err(TokenError));
        let t = SessionToken::from_random([1; 32]).reveal();
        assert_eq!(SessionToken::parse(&format!("{t}A")), Err(TokenError));
    }
}
