//! ICE candidates trickled through the platform (issue 20, H.626.4 8.3 and 8.4 for browsers).
//!
//! A browser sends its WebRTC offer as soon as it has one, before its candidates are
//! gathered (RFC 8838 trickle ICE), and sends each later candidate, then the end of its
//! candidates, in `POST /api/v1/devices/{id}/webrtc/{session}/candidates`. The CMU checks the
//! body here, then routes it to the camera as
//! [`DeviceCommand::WebRtcCandidates`](crate::cmd::DeviceCommand::WebRtcCandidates); the
//! camera adds the candidates to the session's ICE agent.
//!
//! The body is `{"candidates": ["candidate:..."], "end": false}`: at most
//! [`MAX_CANDIDATES`] candidate attributes (RFC 8839 5.1, without `a=`), each at most
//! [`MAX_CANDIDATE_LEN`] bytes of printable ASCII; `end` (default `false`) says the browser
//! has no more. Candidates are kept as the browser wrote them (they may name an mDNS host
//! or a TCP transport, which the camera may skip), but each is checked for the fields every
//! candidate has: foundation, component, transport, priority, address, port, `typ` and a
//! known type.

use serde::{Deserialize, Serialize};

/// Candidates in one message, at most.
pub const MAX_CANDIDATES: usize = 16;
/// Bytes of one candidate attribute, at most.
pub const MAX_CANDIDATE_LEN: usize = 512;
/// Bytes of a body, at most (what the CMU reads).
pub const MAX_BODY: usize = 16 * 1024;

/// Why a trickle body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrickleError {
    /// Not the JSON object described in the module documentation.
    #[error("the body is not {{\"candidates\": [...], \"end\": bool}}: {0}")]
    Json(String),
    /// Longer than [`MAX_BODY`].
    #[error("the body is longer than {MAX_BODY} bytes")]
    TooLong,
    /// More than [`MAX_CANDIDATES`] candidates.
    #[error("more than {MAX_CANDIDATES} candidates in one message")]
    TooMany,
    /// Neither a candidate nor the end.
    #[error("no candidate and no end: nothing to send")]
    Empty,
    /// Candidate number `index` (from 0) is malformed.
    #[error("candidate {index} is malformed: {why}")]
    Candidate {
        /// Its place in the list.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
}

/// A checked trickle message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Trickle {
    /// Candidate attributes (`candidate:...`, RFC 8839 5.1), as the browser gathered them.
    #[serde(default)]
    pub candidates: Vec<String>,
    /// The browser has gathered all its candidates (end-of-candidates, RFC 8838 8.2).
    #[serde(default)]
    pub end: bool,
}

impl Trickle {
    /// Checks the limits and every candidate.
    pub fn validate(&self) -> Result<(), TrickleError> {
        if self.candidates.len() > MAX_CANDIDATES {
            return Err(TrickleError::TooMany);
        }
        if self.candidates.is_empty() && !self.end {
            return Err(TrickleError::Empty);
        }
        for (index, c) in self.candidates.iter().enumerate() {
            check_candidate(c).map_err(|why| TrickleError::Candidate { index, why })?;
        }
        Ok(())
    }
}

/// Parses and checks a body.
pub fn parse(body: &[u8]) -> Result<Trickle, TrickleError> {
    if body.len() > MAX_BODY {
        return Err(TrickleError::TooLong);
    }
    let t: Trickle = serde_json::from_slice(body).map_err(|e| TrickleError::Json(e.to_string()))?;
    t.validate()?;
    Ok(t)
}

/// The body of a checked message.
pub fn encode(t: &Trickle) -> Vec<u8> {
    // A struct of strings and a bool always serializes.
    serde_json::to_vec(t).unwrap_or_default()
}

/// Checks one candidate attribute: `candidate:<foundation> <component> <transport>
/// <priority> <address> <port> typ <type> [<name> <value>]...` (RFC 8839 5.1).
pub fn check_candidate(c: &str) -> Result<(), &'static str> {
    if c.len() > MAX_CANDIDATE_LEN {
        return Err("longer than 512 bytes");
    }
    if !c.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("not printable ASCII");
    }
    let rest = c
        .strip_prefix("candidate:")
        .ok_or("missing \"candidate:\"")?;
    let words: Vec<&str> = rest.split(' ').collect();
    if words.len() < 8 || words.iter().any(|w| w.is_empty()) {
        return Err("too few fields, or two spaces in a row");
    }
    let ice_chars = |w: &str| {
        w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    if words[0].len() > 32 || !ice_chars(words[0]) {
        return Err("bad foundation");
    }
    match words[1].parse::<u16>() {
        Ok(1..=256) => {}
        _ => return Err("bad component"),
    }
    if !words[2].eq_ignore_ascii_case("udp") && !words[2].eq_ignore_ascii_case("tcp") {
        return Err("transport is neither UDP nor TCP");
    }
    match words[3].parse::<u32>() {
        Ok(1..) => {}
        _ => return Err("bad priority"),
    }
    let host = words[4];
    if host.len() > 255
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-' | b'%'))
    {
        return Err("bad address");
    }
    if words[5].parse::<u16>().is_err() {
        return Err("bad port");
    }
    if words[6] != "typ" {
        return Err("expected \"typ\"");
    }
    if !matches!(words[7], "host" | "srflx" | "prflx" | "relay") {
        return Err("unknown type");
    }
    if !(words.len() - 8).is_multiple_of(2) {
        return Err("extension without a value");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "candidate:1467250027 1 udp 2122260223 192.168.1.5 46243 typ host generation 0 ufrag abcd network-cost 999";
    const MDNS: &str =
        "candidate:2 1 udp 2122260223 4ab1ce0c-1c7e-4d6f-8b3e-2b1f0c9d8e7a.local 50000 typ host";
    const RELAY: &str =
        "candidate:3 1 udp 41885439 10.0.0.1 3478 typ relay raddr 192.168.1.5 rport 46243";

    #[test]
    fn h626_8_4_trickle_accepts_what_browsers_gather() {
        let t = Trickle {
            candidates: vec![HOST.into(), MDNS.into(), RELAY.into()],
            end: false,
        };
        assert_eq!(parse(&encode(&t)), Ok(t));
        let end = br#"{"end": true}"#;
        assert_eq!(
            parse(end),
            Ok(Trickle {
                candidates: vec![],
                end: true
            })
        );
        assert_eq!(
            parse(br#"{"candidates": ["candidate:1 1 tcp 1 ::1 9 typ host tcptype active"]}"#)
                .map(|t| t.candidates.len()),
            Ok(1)
        );
    }

    #[test]
    fn h626_8_4_trickle_refuses_what_is_not_a_candidate() {
        assert_eq!(parse(b"{}"), Err(TrickleError::Empty));
        assert!(matches!(
            parse(br#"{"candidates": [], "end": true, "x": 1}"#),
            Err(TrickleError::Json(_))
        ));
        assert!(matches!(parse(b"[1]"), Err(TrickleError::Json(_))));
        assert_eq!(parse(&vec![b' '; MAX_BODY + 1]), Err(TrickleError::TooLong));
        let many = Trickle {
            candidates: vec![HOST.into(); MAX_CANDIDATES + 1],
            end: false,
        };
        assert_eq!(parse(&encode(&many)), Err(TrickleError::TooMany));
        for bad in [
            "a=candidate:1 1 udp 1 1.2.3.4 5 typ host",
            "candidate:1 1 udp 1 1.2.3.4 5 typ",
            "candidate:1 1 udp 0 1.2.3.4 5 typ host",
            "candidate:1 0 udp 1 1.2.3.4 5 typ host",
            "candidate:1 1 sctp 1 1.2.3.4 5 typ host",
            "candidate:1 1 udp 1 1.2.3.4 70000 typ host",
            "candidate:1 1 udp 1 1.2.3.4 5 type host",
            "candidate:1 1 udp 1 1.2.3.4 5 typ nat",
            "candidate:1 1 udp 1 1.2.3.4 5 typ host raddr",
            "candidate:1 1 udp 1 1.2.3.4  5 typ host",
            "candidate:1 1 udp 1 1.2.3.4 5 typ host\r\na=x",
            "candidate:1 1 udp 1 <b>.local 5 typ host",
            "candidate:x_y 1 udp 1 1.2.3.4 5 typ host",
        ] {
            let t = Trickle {
                candidates: vec![HOST.into(), bad.into()],
                end: false,
            };
            assert!(
                matches!(t.validate(), Err(TrickleError::Candidate { index: 1, .. })),
                "{bad}"
            );
        }
    }

    fn candidate() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        (
            "[a-zA-Z0-9+/]{1,32}",
            1u16..=256,
            prop_oneof![Just("udp"), Just("UDP"), Just("tcp")],
            1u32..,
            prop_oneof![
                any::<std::net::IpAddr>().prop_map(|a| a.to_string()),
                "[a-f0-9-]{8,36}\\.local",
            ],
            any::<u16>(),
            prop_oneof![Just("host"), Just("srflx"), Just("prflx"), Just("relay")],
            proptest::collection::vec(("[a-z-]{1,12}", "[a-zA-Z0-9.:]{1,16}"), 0..4),
        )
            .prop_map(|(f, c, t, p, a, port, ty, ext)| {
                let mut s = format!("candidate:{f} {c} {t} {p} {a} {port} typ {ty}");
                for (n, v) in ext {
                    s.push(' ');
                    s.push_str(&n);
                    s.push(' ');
                    s.push_str(&v);
                }
                s
            })
    }

    proptest::proptest! {
        #[test]
        fn h626_8_4_trickle_round_trips(
            candidates in proptest::collection::vec(candidate(), 0..=MAX_CANDIDATES),
            end: bool,
        ) {
            let t = Trickle { candidates, end };
            let t = if t.candidates.is_empty() { Trickle { end: true, ..t } } else { t };
            let body = encode(&t);
            proptest::prop_assert_eq!(parse(&body), Ok(t));
            proptest::prop_assert_eq!(parse(&body).map(|t| encode(&t)), Ok(body));
        }

        #[test]
        fn h626_8_4_trickle_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Ok(t) = parse(&body) {
                proptest::prop_assert!(t.validate().is_ok());
                proptest::prop_assert_eq!(parse(&encode(&t)), Ok(t));
            }
        }
    }
}
