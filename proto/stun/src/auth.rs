//! Credentials: the long-term key of RFC 8489 and the time-limited "TURN REST API"
//! credentials that coturn's `use-auth-secret` accepts.
//!
//! REST credentials (draft-uberti-behave-turn-rest-00, as coturn implements it): the
//! service that hands out TURN servers shares a secret with them and mints
//!
//! ```text
//! username = "<unix expiry>:<user id>"
//! password = base64(HMAC-SHA1(secret, username))
//! ```
//!
//! The TURN server needs no user database: it recomputes the password from the username,
//! checks the expiry, and uses the password in the ordinary long-term mechanism
//! ([`RestSecret::long_term_key`]).
//!
//! # Session-scoped credentials (docs/security.md D8)
//!
//! The CMU mints credentials for one media session and may pin the peers the relay may
//! reach inside the user id, which the HMAC then authenticates:
//!
//! ```text
//! username = "<unix expiry>:<user>~s<session>~p<ip>[,<ip>...]"
//! e.g.       "1700000000:u42~ss-981~p198.51.100.2,2001:db8::7"
//! ```
//!
//! `~` separates the scope fields; `s` is the session id, `p` a comma-separated list of
//! peer IP addresses (IPv4 dotted or IPv6 text, ports never). User and session ids hold no
//! `~`, `,` or control characters. To a third-party client the string is an ordinary
//! opaque `expiry:user` REST username ([`RestSecret::mint_scoped`], [`Scope::parse`]).
//!
//! This module does not apply the OpaqueString profile (RFC 8265) or SASLprep to any
//! string; REST usernames and passwords are ASCII by construction.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::Error;
use crate::message::MAX_USERNAME_LEN;

/// The long-term key `MD5(username ":" realm ":" password)` (RFC 8489 9.2.2, algorithm
/// MD5), used as the MESSAGE-INTEGRITY key. The strings must already be prepared
/// (OpaqueString / SASLprep); this function hashes their bytes as given.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// The long-term key `SHA-256(username ":" realm ":" password)` for PASSWORD-ALGORITHM
/// SHA-256 (RFC 8489 9.2.2, 18.5).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// A REST username taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestUsername<'a> {
    /// When the credential stops being valid (Unix seconds).
    pub expiry: u64,
    /// The user id after the first `:`.
    pub user_id: &'a str,
}

impl<'a> RestUsername<'a> {
    /// Split `"<expiry>:<user id>"`. The expiry is 1 to 20 ASCII digits that fit a `u64`;
    /// the user id is non-empty (it may itself contain `:`) and holds no control character.
    pub fn parse(username: &'a str) -> Result<Self, Error> {
        if username.len() > MAX_USERNAME_LEN {
            return Err(Error::BadCredential("username too long"));
        }
        let Some((expiry, user_id)) = username.split_once(':') else {
            return Err(Error::BadCredential("username has no ':'"));
        };
        if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadCredential("expiry is not a decimal number"));
        }
        let Ok(expiry) = expiry.parse::<u64>() else {
            return Err(Error::BadCredential("expiry out of range"));
        };
        check_user_id(user_id)?;
        Ok(Self { expiry, user_id })
    }
}

impl<'a> RestUsername<'a> {
    /// The user part of the user id: everything before the first `~`. Quotas count
    /// allocations per user.
    pub fn user(&self) -> &'a str {
        self.user_id
            .split_once(SCOPE_SEP)
            .map_or(self.user_id, |(user, _)| user)
    }

    /// The session scope carried in the user id, `None` if it carries none.
    pub fn scope(&self) -> Result<Option<Scope>, Error> {
        Scope::parse(self.user_id)
    }
}

/// Separates the user from the scope fields in a scoped user id.
pub const SCOPE_SEP: char = '~';

/// The session scope of a credential: which session it was minted for and the only peer
/// addresses the relay may reach with it (docs/security.md D8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The session id (`s` field).
    pub session: String,
    /// The allowed peer addresses (`p` field), in the order minted.
    pub peers: Vec<IpAddr>,
}

impl Scope {
    /// Parse the scope fields of a user id (`"u42~ss-1~p198.51.100.2"`): `Ok(None)` when
    /// the user id has no `~`, an error when the fields are malformed (missing session or
    /// peer list, an unknown or repeated field, a bad address), so a mangled scope never
    /// degrades into "unscoped".
    pub fn parse(user_id: &str) -> Result<Option<Self>, Error> {
        let mut parts = user_id.split(SCOPE_SEP);
        let user = parts.next().unwrap_or_default();
        let mut session = None;
        let mut peers = None;
        let mut any = false;
        for field in parts {
            any = true;
            let (tag, value) = field.split_at(field.len().min(1));
            match tag {
                "s" if session.is_none() && valid_id(value) => session = Some(value.to_owned()),
                "p" if peers.is_none() && !value.is_empty() => {
                    let list = value
                        .split(',')
                        .map(|ip| ip.parse::<IpAddr>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| Error::BadCredential("bad peer address in scope"))?;
                    peers = Some(list);
                }
                _ => return Err(Error::BadCredential("bad scope field")),
            }
        }
        if !any {
            return Ok(None);
        }
        if !valid_id(user) {
            return Err(Error::BadCredential("bad user in scoped user id"));
        }
        match (session, peers) {
            (Some(session), Some(peers)) => Ok(Some(Self { session, peers })),
            _ => Err(Error::BadCredential("scope lacks a session or peers")),
        }
    }

    /// Whether the scope lets the relay reach `ip`. IPv4 addresses written as IPv4-mapped
    /// IPv6 match their IPv4 form.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let canon = |ip: IpAddr| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        let ip = canon(ip);
        self.peers.iter().any(|p| canon(*p) == ip)
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && !id
            .chars()
            .any(|c| c.is_control() || c == SCOPE_SEP || c == ',')
}

fn check_user_id(user_id: &str) -> Result<(), Error> {
    if user_id.is_empty() {
        return Err(Error::BadCredential("empty user id"));
    }
    if user_id.chars().any(char::is_control) {
        return Err(Error::BadCredential("control character in user id"));
    }
    Ok(())
}

/// A minted REST credential.
#[derive(Clone, PartialEq, Eq)]
pub struct RestCredential {
    /// `"<expiry>:<user id>"`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: String,
}

impl fmt::Debug for RestCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The secret shared between the credential issuer and the TURN servers
/// (coturn's `static-auth-secret`), with the policy for checking credentials.
#[derive(Clone)]
pub struct RestSecret {
    secret: Vec<u8>,
    max_lifetime: Option<u64>,
}

impl fmt::Debug for RestSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestSecret")
            .field("secret", &"<redacted>")
            .field("max_lifetime", &self.max_lifetime)
            .finish()
    }
}

impl RestSecret {
    /// A secret; [`Error::Misuse`] if it is empty.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(Error::Misuse("empty REST secret"));
        }
        Ok(Self {
            secret,
            max_lifetime: None,
        })
    }

    /// Also refuse credentials whose expiry lies more than `seconds` after `now`, so a
    /// leaked far-future credential is not good for years.
    #[must_use]
    pub fn with_max_lifetime(mut self, seconds: u64) -> Self {
        self.max_lifetime = Some(seconds);
        self
    }

    fn mac(&self, username: &str) -> [u8; 20] {
        let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&self.secret) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(username.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The password for a username: `base64(HMAC-SHA1(secret, username))`, standard
    /// alphabet with padding.
    pub fn password(&self, username: &str) -> String {
        STANDARD.encode(self.mac(username))
    }

    /// Mint a credential for `user_id` that expires at `expiry` (Unix seconds). The user
    /// id must not contain `~`, which introduces a scope ([`Self::mint_scoped`]).
    pub fn mint(&self, user_id: &str, expiry: u64) -> Result<RestCredential, Error> {
        check_user_id(user_id).map_err(|_| Error::Misuse("user id empty or has a control"))?;
        if user_id.contains(SCOPE_SEP) {
            return Err(Error::Misuse("user id contains the scope separator '~'"));
        }
        self.mint_raw(user_id, expiry)
    }

    /// Mint a credential for `user` in `session` that lets the relay reach only `peers`
    /// (docs/security.md D8): user id `"<user>~s<session>~p<ip>,<ip>"`. User and session must
    /// be non-empty without `~`, `,` or control characters, and `peers` non-empty.
    pub fn mint_scoped(
        &self,
        user: &str,
        session: &str,
        peers: &[IpAddr],
        expiry: u64,
    ) -> Result<RestCredential, Error> {
        if !valid_id(user) || !valid_id(session) {
            return Err(Error::Misuse(
                "user or session empty or holds '~', ',' or a control",
            ));
        }
        if peers.is_empty() {
            return Err(Error::Misuse("scoped credential without peers"));
        }
        let mut user_id = format!("{user}{SCOPE_SEP}s{session}{SCOPE_SEP}p");
        for (i, p) in peers.iter().enumerate() {
            if i > 0 {
                user_id.push(',');
            }
            user_id.push_str(&p.to_string());
        }
        self.mint_raw(&user_id, expiry)
    }

    fn mint_raw(&self, user_id: &str, expiry: u64) -> Result<RestCredential, Error> {
        let username = format!("{expiry}:{user_id}");
        if username.len() > MAX_USERNAME_LEN {
            return Err(Error::Misuse("user id too long for USERNAME"));
        }
        let password = self.password(&username);
        Ok(RestCredential { username, password })
    }

    /// Parse the username and check its expiry against `now` (Unix seconds): valid while
    /// `now <= expiry`, and not further ahead than the maximum lifetime if one is set.
    pub fn check_username<'a>(
        &self,
        username: &'a str,
        now: u64,
    ) -> Result<RestUsername<'a>, Error> {
        let u = RestUsername::parse(username)?;
        if u.expiry < now {
            return Err(Error::Expired {
                expiry: u.expiry,
                now,
            });
        }
        if let Some(max) = self.max_lifetime
            && u.expiry - now > max
        {
            return Err(Error::BadCredential("expiry too far in the future"));
        }
        Ok(u)
    }

    /// Check a username and password pair at `now`: format, expiry, then the password
    /// (compared in constant time).
    pub fn verify<'a>(
        &self,
        username: &'a str,
        password: &str,
        now: u64,
    ) -> Result<RestUsername<'a>, Error> {
        let u = self.check_username(username, now)?;
        let want = self.password(username);
        if bool::from(want.as_bytes().ct_eq(password.as_bytes())) {
            Ok(u)
        } else {
            Err(Error::BadCredential("wrong password"))
        }
    }

    /// The MESSAGE-INTEGRITY key for a request carrying this USERNAME in `realm`, after
    /// checking the username at `now`: `MD5(username:realm:password)` with the REST
    /// password (RFC 8489 9.2.2).
    pub fn long_term_key(&self, username: &str, realm: &str, now: u64) -> Result<[u8; 16], Error> {
        self.check_username(username, now)?;
        Ok(long_term_key(username, realm, &self.password(username)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn long_term_key_rfc5769() {
        // RFC 5769 2.4: username and password after SASLprep, realm "example.org".
        let key = long_term_key(
            "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}",
            "example.org",
            "TheMatrIX",
        );
        // `printf %s 'マトリックス:example.org:TheMatrIX' | md5sum`
        assert_eq!(
            key,
            [
                0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51, 0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda,
                0xb2, 0xa9
            ]
        );
    }

    #[test]
    fn mint_and_verify() {
        let s = RestSecret::new("north").unwrap();
        let c = s.mint("cam-1", 1_700_000_000).unwrap();
        assert_eq!(c.username, "1700000000:cam-1");
        assert_eq!(c.password.len(), 28);
        let u = s.verify(&c.username, &c.password, 1_699_999_999).unwrap();
        assert_eq!(
            u,
            RestUsername {
                expiry: 1_700_000_000,
                user_id: "cam-1"
            }
        );
        assert!(s.verify(&c.username, &c.password, 1_700_000_000).is_ok());
        assert_eq!(
            s.verify(&c.username, &c.password, 1_700_000_001),
            Err(Error::Expired {
                expiry: 1_700_000_000,
                now: 1_700_000_001
            })
        );
        assert_eq!(
            s.verify(&c.username, "AAAA", 0),
            Err(Error::BadCredential("wrong password"))
        );
        let other = RestSecret::new("south").unwrap();
        assert!(other.verify(&c.username, &c.password, 0).is_err());
        assert!(!format!("{s:?}{c:?}").contains("north"));
        assert!(!format!("{c:?}").contains(&c.password));
    }

    #[test]
    fn known_password() {
        // HMAC-SHA1(key "secret", "1700000000:alice"), computed with
        // `printf %s 1700000000:alice | openssl dgst -sha1 -hmac secret -binary | base64`.
        let s = RestSecret::new("secret").unwrap();
        assert_eq!(s.password("1700000000:alice"), KNOWN_PASSWORD);
    }

    const KNOWN_PASSWORD: &str = "d8soP47RbdIKLDUOpnJPVQyq5Ts=";

    #[test]
    fn max_lifetime() {
        let s = RestSecret::new("k").unwrap().with_max_lifetime(86_400);
        let c = s.mint("u", 1000 + 86_401).unwrap();
        assert_eq!(
            s.verify(&c.username, &c.password, 1000),
            Err(Error::BadCredential("expiry too far in the future"))
        );
        assert!(s.verify(&c.username, &c.password, 1001).is_ok());
    }

    #[test]
    fn username_errors() {
        for bad in [
            "",
            "abc",
            ":u",
            "12",
            "12:",
            "-1:u",
            "+1:u",
            "1a:u",
            "99999999999999999999:u",
            "1:\u{7}",
        ] {
            assert!(
                matches!(RestUsername::parse(bad), Err(Error::BadCredential(_))),
                "{bad:?}"
            );
        }
        assert_eq!(RestUsername::parse("5:a:b").unwrap().user_id, "a:b");
        let s = RestSecret::new("k").unwrap();
        assert!(matches!(s.mint("", 1), Err(Error::Misuse(_))));
        assert!(matches!(s.mint(&"x".repeat(600), 1), Err(Error::Misuse(_))));
        assert!(RestSecret::new("").is_err());
    }

    #[test]
    fn rest_long_term_key() {
        let s = RestSecret::new("k").unwrap();
        let c = s.mint("u", 50).unwrap();
        assert_eq!(
            s.long_term_key(&c.username, "r", 10).unwrap(),
            long_term_key(&c.username, "r", &c.password)
        );
        assert!(s.long_term_key(&c.username, "r", 51).is_err());
    }

    #[test]
    fn scoped() {
        let s = RestSecret::new("k").unwrap();
        let peers: Vec<IpAddr> = vec![
            "198.51.100.2".parse().unwrap(),
            "2001:db8::7".parse().unwrap(),
        ];
        let c = s
            .mint_scoped("u42", "s-981", &peers, 1_700_000_000)
            .unwrap();
        assert_eq!(
            c.username,
            "1700000000:u42~ss-981~p198.51.100.2,2001:db8::7"
        );
        let u = s.verify(&c.username, &c.password, 0).unwrap();
        assert_eq!(u.user(), "u42");
        let scope = u.scope().unwrap().unwrap();
        assert_eq!(scope.session, "s-981");
        assert_eq!(scope.peers, peers);
        assert!(scope.allows("198.51.100.2".parse().unwrap()));
        assert!(scope.allows("::ffff:198.51.100.2".parse().unwrap()));
        assert!(!scope.allows("198.51.100.3".parse().unwrap()));
        // Tampering with the peer list breaks the password.
        let forged = c.username.replace("100.2", "100.9");
        assert!(s.verify(&forged, &c.password, 0).is_err());
        // Unscoped names have no scope; the user is the whole id.
        let plain = s.mint("cam", 5).unwrap();
        let u = RestUsername::parse(&plain.username).unwrap();
        assert_eq!((u.user(), u.scope().unwrap()), ("cam", None));
        for bad in [
            "u~s1",
            "u~p1.2.3.4",
            "u~sx~p1.2.3.4~q",
            "u~sx~p",
            "u~sx~pnot-an-ip",
            "u~sx~sy~p1.2.3.4",
            "~sx~p1.2.3.4",
            "u~",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert!(s.mint("a~b", 1).is_err());
        assert!(s.mint_scoped("a", "b,c", &peers, 1).is_err());
        assert!(s.mint_scoped("a", "b", &[], 1).is_err());
    }

    proptest! {
        #[test]
        fn scoped_roundtrip(user in "[a-z0-9.-]{1,16}", session in "[a-z0-9.-]{1,16}",
                            peers in prop::collection::vec(any::<IpAddr>(), 1..4)) {
            let s = RestSecret::new("k").unwrap();
            let c = s.mint_scoped(&user, &session, &peers, 9).unwrap();
            let u = s.verify(&c.username, &c.password, 0).unwrap();
            prop_assert_eq!(u.user(), user.as_str());
            let scope = u.scope().unwrap().unwrap();
            prop_assert_eq!(scope.session, session);
            prop_assert_eq!(scope.peers, peers);
        }

        #[test]
        fn minted_verifies(user in "[a-zA-Z0-9:._-]{1,64}", expiry in any::<u64>(), now in any::<u64>()) {
            let s = RestSecret::new("k").unwrap();
            let c = s.mint(&user, expiry).unwrap();
            let r = s.verify(&c.username, &c.password, now);
            if now <= expiry {
                prop_assert_eq!(r.unwrap(), RestUsername { expiry, user_id: &user });
            } else {
                prop_assert!(matches!(r, Err(Error::Expired { .. })), "expired credential accepted");
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = RestUsername::parse(&s);
        }
    }
}
