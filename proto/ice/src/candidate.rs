//! Candidates (RFC 8445 5.1), their priorities and foundations, ICE credentials, and the
//! text form both travel in through the platform's signalling.
//!
//! # Signalling encoding
//!
//! A [`Candidate`] is carried as the value of an SDP `a=candidate` attribute
//! (RFC 8839 5.1), without the `a=` prefix:
//!
//! ```text
//! candidate:<foundation> <component> udp <priority> <ip> <port> typ <host|srflx|prflx|relay> [raddr <ip> rport <port>]
//! ```
//!
//! for example `candidate:1a2b3c4d 1 udp 2130706431 192.168.1.20 40000 typ host` or
//! `candidate:9f8e7d6c 1 udp 1694498815 203.0.113.7 61000 typ srflx raddr 192.168.1.20 rport 40000`.
//! `Display` writes it, `FromStr` reads it, and serde (de)serializes a candidate as that
//! string, so a JSON message carries `"candidate:…"`. Only UDP and component 1 are used by
//! peercam; the parser accepts any component (1..=256) and the agent ignores other
//! components. Extension attributes after the mandatory ones (`generation 0`, `ufrag …`)
//! are skipped, as RFC 8839 5.1 requires.
//!
//! [`Credentials`] travel as a serde struct `{ "ufrag": "…", "pwd": "…" }`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The kind of a candidate (RFC 8445 5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CandidateKind {
    /// An address of a local interface.
    Host,
    /// The address a NAT mapped a host candidate to, learned from a STUN server.
    ServerReflexive,
    /// The address a NAT mapped a host candidate to, learned from a connectivity check.
    PeerReflexive,
    /// An address on a TURN server relaying for the agent (input only: the agent does not
    /// allocate; the driver sends a relayed candidate's transmits through its TURN client).
    Relayed,
}

impl CandidateKind {
    /// The recommended type preference (RFC 8445 5.1.2.2).
    pub fn type_preference(self) -> u32 {
        match self {
            Self::Host => 126,
            Self::PeerReflexive => 110,
            Self::ServerReflexive => 100,
            Self::Relayed => 0,
        }
    }

    /// The `typ` token of RFC 8839 5.1.
    pub fn token(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::ServerReflexive => "srflx",
            Self::PeerReflexive => "prflx",
            Self::Relayed => "relay",
        }
    }

    fn from_token(s: &str) -> Option<Self> {
        Some(match s {
            "host" => Self::Host,
            "srflx" => Self::ServerReflexive,
            "prflx" => Self::PeerReflexive,
            "relay" => Self::Relayed,
            _ => return None,
        })
    }
}

impl fmt::Display for CandidateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// The component every peercam candidate belongs to: one byte stream, one component.
pub const COMPONENT: u16 = 1;

/// The local preference of the only (or first) interface (RFC 8445 5.1.2.1).
pub const DEFAULT_LOCAL_PREFERENCE: u16 = 65535;

/// A candidate transport address (RFC 8445 5.1), local or remote; UDP only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// The kind.
    pub kind: CandidateKind,
    /// The transport address peers send to.
    pub addr: SocketAddr,
    /// The related address (RFC 8839 5.1 `raddr`/`rport`): the base of a server- or
    /// peer-reflexive candidate, the mapped address of a relayed one, `None` for a host.
    pub related: Option<SocketAddr>,
    /// The priority (RFC 8445 5.1.2).
    pub priority: u32,
    /// The foundation (RFC 8445 5.1.1.3): 1 to 32 ice-chars.
    pub foundation: String,
    /// The component id, [`COMPONENT`] for peercam.
    pub component: u16,
}

impl Candidate {
    /// A host candidate on a local interface address.
    pub fn host(addr: SocketAddr, local_preference: u16) -> Self {
        Self {
            kind: CandidateKind::Host,
            addr,
            related: None,
            priority: priority(CandidateKind::Host, local_preference, COMPONENT),
            foundation: foundation(CandidateKind::Host, addr.ip(), None),
            component: COMPONENT,
        }
    }

    /// A server-reflexive candidate: `base` mapped to `mapped`, learned from `server`.
    pub fn server_reflexive(
        mapped: SocketAddr,
        base: SocketAddr,
        server: SocketAddr,
        local_preference: u16,
    ) -> Self {
        Self {
            kind: CandidateKind::ServerReflexive,
            addr: mapped,
            related: Some(base),
            priority: priority(CandidateKind::ServerReflexive, local_preference, COMPONENT),
            foundation: foundation(CandidateKind::ServerReflexive, base.ip(), Some(server.ip())),
            component: COMPONENT,
        }
    }

    /// A relayed candidate: `relayed` on the TURN `server`, with the agent's `mapped`
    /// address as seen by the server.
    pub fn relayed(
        relayed: SocketAddr,
        mapped: SocketAddr,
        server: SocketAddr,
        local_preference: u16,
    ) -> Self {
        Self {
            kind: CandidateKind::Relayed,
            addr: relayed,
            related: Some(mapped),
            priority: priority(CandidateKind::Relayed, local_preference, COMPONENT),
            foundation: foundation(CandidateKind::Relayed, relayed.ip(), Some(server.ip())),
            component: COMPONENT,
        }
    }

    /// The address a local candidate sends from (RFC 8445 5.1.1): a host or relayed
    /// candidate is its own base, a reflexive one has its related address as base.
    pub fn base(&self) -> SocketAddr {
        match self.kind {
            CandidateKind::Host | CandidateKind::Relayed => self.addr,
            CandidateKind::ServerReflexive | CandidateKind::PeerReflexive => {
                self.related.unwrap_or(self.addr)
            }
        }
    }

    /// The local preference encoded in the priority.
    pub fn local_preference(&self) -> u16 {
        // Bits 8..24 of the priority (RFC 8445 5.1.2.1); the mask keeps 16 bits.
        ((self.priority >> 8) & 0xFFFF) as u16
    }
}

/// `priority = 2^24 * type preference + 2^8 * local preference + (256 - component)`
/// (RFC 8445 5.1.2.1).
pub fn priority(kind: CandidateKind, local_preference: u16, component: u16) -> u32 {
    (kind.type_preference() << 24)
        + (u32::from(local_preference) << 8)
        + (256 - u32::from(component.clamp(1, 256)))
}

/// A foundation: equal for candidates of the same kind, base IP and server IP
/// (RFC 8445 5.1.1.3). An FNV-1a hash, 8 hex digits.
pub fn foundation(kind: CandidateKind, base: IpAddr, server: Option<IpAddr>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    eat(kind.token().as_bytes());
    eat(&ip_bytes(base));
    if let Some(s) = server {
        eat(&ip_bytes(s));
    }
    format!("{h:08x}")
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Longest accepted candidate line, a bound for hostile signalling input.
pub const MAX_CANDIDATE_LEN: usize = 512;

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "candidate:{} {} udp {} {} {} typ {}",
            self.foundation,
            self.component,
            self.priority,
            self.addr.ip(),
            self.addr.port(),
            self.kind
        )?;
        if let Some(r) = self.related {
            write!(f, " raddr {} rport {}", r.ip(), r.port())?;
        }
        Ok(())
    }
}

impl FromStr for Candidate {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() > MAX_CANDIDATE_LEN {
            return Err(Error::Candidate("longer than 512 bytes"));
        }
        let s = s.strip_prefix("a=").unwrap_or(s);
        let Some(rest) = s.strip_prefix("candidate:") else {
            return Err(Error::Candidate("missing \"candidate:\""));
        };
        let mut it = rest.split(' ');
        let mut next = |what: &'static str| it.next().filter(|t| !t.is_empty()).ok_or(what);
        let mut parse = || -> Result<Self, &'static str> {
            let foundation = next("no foundation")?;
            if foundation.len() > 32 || !foundation.bytes().all(is_ice_char) {
                return Err("bad foundation");
            }
            let component: u16 = next("no component")?.parse().map_err(|_| "bad component")?;
            if !(1..=256).contains(&component) {
                return Err("component out of range");
            }
            if !next("no transport")?.eq_ignore_ascii_case("udp") {
                return Err("transport is not UDP");
            }
            let priority: u32 = next("no priority")?.parse().map_err(|_| "bad priority")?;
            if priority == 0 {
                return Err("priority zero");
            }
            let ip: IpAddr = next("no address")?.parse().map_err(|_| "bad address")?;
            let port: u16 = next("no port")?.parse().map_err(|_| "bad port")?;
            if next("no typ")? != "typ" {
                return Err("expected \"typ\"");
            }
            let kind = CandidateKind::from_token(next("no type")?).ok_or("unknown type")?;
            let mut related_ip = None;
            let mut related_port = None;
            // Extension attributes come in name/value pairs (RFC 8839 5.1).
            while let Ok(name) = next("") {
                let value = next("extension without a value")?;
                match name {
                    "raddr" => related_ip = Some(value.parse().map_err(|_| "bad raddr")?),
                    "rport" => related_port = Some(value.parse().map_err(|_| "bad rport")?),
                    _ => {}
                }
            }
            let related = match (related_ip, related_port) {
                (Some(i), Some(p)) => Some(SocketAddr::new(i, p)),
                (None, None) => None,
                _ => return Err("raddr without rport or the reverse"),
            };
            Ok(Self {
                kind,
                addr: SocketAddr::new(ip, port),
                related,
                priority,
                foundation: foundation.to_owned(),
                component,
            })
        };
        parse().map_err(Error::Candidate)
    }
}

impl Serialize for Candidate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Candidate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `ice-char = ALPHA / DIGIT / "+" / "/"` (RFC 8839 5.4).
fn is_ice_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Short-term credentials of one agent (RFC 8445 5.3): the username fragment and the
/// password. Checks carry `USERNAME = remote ufrag ":" local ufrag` and are signed with
/// the receiver's password (RFC 8445 7.2.2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCredentials", into = "RawCredentials")]
pub struct Credentials {
    ufrag: String,
    pwd: String,
}

#[derive(Serialize, Deserialize)]
struct RawCredentials {
    ufrag: String,
    pwd: String,
}

impl TryFrom<RawCredentials> for Credentials {
    type Error = Error;
    fn try_from(r: RawCredentials) -> Result<Self, Error> {
        Self::new(r.ufrag, r.pwd)
    }
}

impl From<Credentials> for RawCredentials {
    fn from(c: Credentials) -> Self {
        Self {
            ufrag: c.ufrag,
            pwd: c.pwd,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password is a secret: never in logs.
        f.debug_struct("Credentials")
            .field("ufrag", &self.ufrag)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from strings: ufrag 4..=256 and pwd 22..=256 ice-chars (RFC 8839 5.4).
    pub fn new(ufrag: impl Into<String>, pwd: impl Into<String>) -> Result<Self, Error> {
        let (ufrag, pwd) = (ufrag.into(), pwd.into());
        if !(4..=256).contains(&ufrag.len()) || !ufrag.bytes().all(is_ice_char) {
            return Err(Error::Credentials("ufrag must be 4 to 256 ice-chars"));
        }
        if !(22..=256).contains(&pwd.len()) || !pwd.bytes().all(is_ice_char) {
            return Err(Error::Credentials("pwd must be 22 to 256 ice-chars"));
        }
        Ok(Self { ufrag, pwd })
    }

    /// Fresh credentials from 32 random bytes: an 8-character ufrag (48 bits) and a
    /// 24-character password (144 bits).
    pub fn from_random(random: [u8; 32]) -> Self {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let chars: String = random
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
            .collect();
        Self {
            ufrag: chars[..8].to_owned(),
            pwd: chars[8..].to_owned(),
        }
    }

    /// The username fragment.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// The password.
    pub fn pwd(&self) -> &str {
        &self.pwd
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn rfc8445_priorities() {
        assert_eq!(priority(CandidateKind::Host, 65535, 1), 2_130_706_431);
        assert_eq!(
            priority(CandidateKind::ServerReflexive, 65535, 1),
            1_694_498_815
        );
        let c = Candidate::host("192.168.1.20:40000".parse().unwrap(), 65535);
        assert_eq!(c.local_preference(), 65535);
        assert_eq!(c.base(), c.addr);
    }

    #[test]
    fn foundations_group_by_kind_base_and_server() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            foundation(CandidateKind::Host, a, None),
            foundation(CandidateKind::Host, a, None)
        );
        assert_ne!(
            foundation(CandidateKind::Host, a, None),
            foundation(CandidateKind::Host, b, None)
        );
        assert_ne!(
            foundation(CandidateKind::Host, a, None),
            foundation(CandidateKind::ServerReflexive, a, Some(s))
        );
    }

    #[test]
    fn text_form() {
        let c = Candidate::server_reflexive(
            "203.0.113.7:61000".parse().unwrap(),
            "192.168.1.20:40000".parse().unwrap(),
            "198.51.100.1:3478".parse().unwrap(),
            65535,
        );
        let s = c.to_string();
        assert!(s.starts_with("candidate:"), "{s}");
        assert!(
            s.ends_with(
                " 1 udp 1694498815 203.0.113.7 61000 typ srflx raddr 192.168.1.20 rport 40000"
            ),
            "{s}"
        );
        assert_eq!(s.parse::<Candidate>().unwrap(), c);
        let chrome = "a=candidate:842163049 1 udp 1677729535 198.51.100.9 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999";
        let p: Candidate = chrome.parse().unwrap();
        assert_eq!(p.kind, CandidateKind::ServerReflexive);
        assert_eq!(p.related, Some("0.0.0.0:0".parse().unwrap()));
        for bad in [
            "",
            "candidate:",
            "candidate:1 1 tcp 1 1.2.3.4 5 typ host",
            "candidate:1 1 udp 1 1.2.3.4 5 typ bogus",
            "candidate:1 0 udp 1 1.2.3.4 5 typ host",
            "candidate:1 1 udp 0 1.2.3.4 5 typ host",
            "candidate:1 1 udp 1 1.2.3.4 5 typ host raddr 1.2.3.4",
            "candidate:1 1 udp 1 1.2.3.4 5 typ host generation",
            "candidate:a-b 1 udp 1 1.2.3.4 5 typ host",
        ] {
            assert!(bad.parse::<Candidate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn json_forms() {
        let c = Candidate::host("[2001:db8::1]:5000".parse().unwrap(), 100);
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(j, format!("\"{c}\""));
        assert_eq!(serde_json::from_str::<Candidate>(&j).unwrap(), c);
        let creds = Credentials::from_random([7; 32]);
        let j = serde_json::to_string(&creds).unwrap();
        assert_eq!(serde_json::from_str::<Credentials>(&j).unwrap(), creds);
        assert!(serde_json::from_str::<Credentials>(r#"{"ufrag":"ab","pwd":"x"}"#).is_err());
        assert!(!format!("{creds:?}").contains(creds.pwd()));
    }

    fn arb_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::new(IpAddr::from(a), p)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(a, p)| SocketAddr::new(IpAddr::from(a), p)),
        ]
    }

    fn arb_candidate() -> impl Strategy<Value = Candidate> {
        (
            0usize..4,
            arb_addr(),
            proptest::option::of(arb_addr()),
            1u32..,
            "[A-Za-z0-9+/]{1,32}",
            1u16..=256,
        )
            .prop_map(
                |(k, addr, related, priority, foundation, component)| Candidate {
                    kind: [
                        CandidateKind::Host,
                        CandidateKind::ServerReflexive,
                        CandidateKind::PeerReflexive,
                        CandidateKind::Relayed,
                    ][k],
                    addr,
                    related,
                    priority,
                    foundation,
                    component,
                },
            )
    }

    proptest! {
        #[test]
        fn candidate_text_round_trip(c in arb_candidate()) {
            let s = c.to_string();
            prop_assert!(s.len() <= MAX_CANDIDATE_LEN);
            prop_assert_eq!(&s.parse::<Candidate>().unwrap(), &c);
            let j = serde_json::to_string(&c).unwrap();
            prop_assert_eq!(serde_json::from_str::<Candidate>(&j).unwrap(), c);
        }

        #[test]
        fn candidate_parse_never_panics(s in "\\PC{0,200}") {
            let _ = s.parse::<Candidate>();
        }

        #[test]
        fn random_credentials_are_valid(r in any::<[u8; 32]>()) {
            let c = Credentials::from_random(r);
            prop_assert!(Credentials::new(c.ufrag(), c.pwd()).is_ok());
        }
    }
}
