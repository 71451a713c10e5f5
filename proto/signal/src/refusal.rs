//! Typed refusal codes of the platform's answers (play verdicts, answers to device requests).
//!
//! On the wire a refusal code is a stable snake_case string (`"unavailable"`, `"expired"`,
//! ...). [`Refusal`] is that string as a type: every code the platform sends has a variant,
//! and a code this build does not know (a newer peer's) is kept as [`Refusal::Other`] so that
//! it survives a round trip instead of failing the whole message (docs/protocol.md,
//! "Compatibility").

use serde::{Deserialize, Serialize};

use crate::play::TokenRefusal;

/// Why the platform (or an SCU on its behalf) refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
#[non_exhaustive]
pub enum Refusal {
    /// The platform cannot decide now (CMU unreachable, link lost, database error): transient.
    Unavailable,
    /// Nobody answered in time along the path (`timeout`): transient.
    Timeout,
    /// No such object, or one the asker has no relation to (`not_found`).
    NotFound,
    /// The asker may not do this (`not_allowed`): the node does not hold the device, the
    /// device is not an MTU, the user may no longer watch.
    Forbidden,
    /// The receiver does not serve this request (`unsupported`).
    Unsupported,
    /// The device the request needs is offline (`device_offline`).
    DeviceOffline,
    /// The camera is not attached to the asking recorder (`not_attached`).
    NotAttached,
    /// No viewer was sent to this MTU for the camera (`no_session`).
    NoSession,
    /// A field is out of bounds (`bad_request`).
    BadRequest,
    /// The token is not of the play-token form (`malformed`).
    Malformed,
    /// The token's MAC does not verify (`forged`).
    Forged,
    /// The token is past its expiry (`expired`).
    Expired,
    /// The token was minted for another device (`wrong_device`).
    WrongDevice,
    /// The token was used before (`replayed`).
    Replayed,
    /// Sharing or binding changed since the token was minted (`stale_acl`).
    StaleAcl,
    /// A code this build does not know, kept as received.
    Other(String),
}

/// Every known variant with its wire code; [`Refusal::parse`] and [`Refusal::as_str`] agree
/// by construction.
const CODES: [(Refusal, &str); 15] = [
    (Refusal::Unavailable, "unavailable"),
    (Refusal::Timeout, "timeout"),
    (Refusal::NotFound, "not_found"),
    (Refusal::Forbidden, "not_allowed"),
    (Refusal::Unsupported, "unsupported"),
    (Refusal::DeviceOffline, "device_offline"),
    (Refusal::NotAttached, "not_attached"),
    (Refusal::NoSession, "no_session"),
    (Refusal::BadRequest, "bad_request"),
    (Refusal::Malformed, "malformed"),
    (Refusal::Forged, "forged"),
    (Refusal::Expired, "expired"),
    (Refusal::WrongDevice, "wrong_device"),
    (Refusal::Replayed, "replayed"),
    (Refusal::StaleAcl, "stale_acl"),
];

impl Refusal {
    /// The wire code.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(code) => code,
            known => CODES
                .iter()
                .find(|(r, _)| r == known)
                .map_or("", |(_, code)| code),
        }
    }

    /// The refusal a wire code names; an unknown code becomes [`Refusal::Other`].
    pub fn parse(code: &str) -> Self {
        CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map_or_else(|| Self::Other(code.to_owned()), |(r, _)| r.clone())
    }

    /// Whether asking again later may succeed (the platform or the path was the problem, not
    /// the request). Devices answer such refusals with "service unavailable" rather than
    /// "unauthorised" (RTSP 503, not 401).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Refusal {
    fn from(code: String) -> Self {
        Self::parse(&code)
    }
}

impl From<Refusal> for String {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Other(code) => code,
            known => known.as_str().to_owned(),
        }
    }
}

impl From<TokenRefusal> for Refusal {
    fn from(t: TokenRefusal) -> Self {
        match t {
            TokenRefusal::Malformed => Self::Malformed,
            TokenRefusal::Forged => Self::Forged,
            TokenRefusal::Expired => Self::Expired,
            TokenRefusal::WrongDevice => Self::WrongDevice,
            TokenRefusal::Replayed => Self::Replayed,
            TokenRefusal::StaleAcl => Self::StaleAcl,
            TokenRefusal::NotAllowed => Self::Forbidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_known_code_round_trips_and_token_codes_agree() {
        for (r, code) in &CODES {
            assert_eq!(r.as_str(), *code);
            assert_eq!(Refusal::parse(code), *r);
            let json = serde_json::to_string(r).unwrap_or_default();
            assert_eq!(json, format!("\"{code}\""));
        }
        for t in [
            TokenRefusal::Malformed,
            TokenRefusal::Forged,
            TokenRefusal::Expired,
            TokenRefusal::WrongDevice,
            TokenRefusal::Replayed,
            TokenRefusal::StaleAcl,
            TokenRefusal::NotAllowed,
        ] {
            assert_eq!(Refusal::from(t).as_str(), t.code());
        }
        assert!(Refusal::Unavailable.is_transient());
        assert!(!Refusal::Forged.is_transient());
    }

    proptest! {
        /// Any code, known or not, survives decode -> encode unchanged; whatever decodes
        /// re-decodes to the same value.
        #[test]
        fn refusal_codec_round_trip(code in "[a-z_]{0,24}|\\PC{0,24}") {
            let json = serde_json::to_string(&code).unwrap_or_default();
            let r: Refusal = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(r.as_str(), code.as_str());
            let again = serde_json::to_string(&r).unwrap_or_default();
            prop_assert_eq!(&again, &json);
            let r2: Refusal = serde_json::from_str(&again).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(r2, r);
        }
    }
}
