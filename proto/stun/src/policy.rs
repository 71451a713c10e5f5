//! Which peer addresses a TURN server may relay to (docs/security.md D8 and F3).
//!
//! A TURN server that relays to any address is an open proxy into the networks it sits
//! in (the Slack TURN SSRF, coturn CVE-2020-26262). [`PeerPolicy`] denies by default the
//! special-purpose ranges of the IANA registries (RFC 6890 and successors): loopback,
//! private, shared, link-local, documentation, benchmarking, multicast, reserved.
//!
//! An IPv6 address that *embeds* an IPv4 address is judged by that IPv4 address, so a
//! denied IPv4 cannot be reached through another spelling: IPv4-mapped `::ffff:a.b.c.d`,
//! IPv4-translated `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d`, 6to4
//! `2002:AABB:CCDD::/48` and the NAT64 well-known prefix `64:ff9b::/96`
//! ([`embedded_ipv4`]). Teredo `2001::/32` and the local-use NAT64 prefix
//! `64:ff9b:1::/48` (where the embedding depends on the operator's prefix length) are
//! denied outright.
//!
//! Order of evaluation in [`PeerPolicy::check`]: the operator's deny list; then loopback
//! and "this network" (`127/8`, `0/8`, `::1`, `::` in every spelling), which no allow list
//! can open; then the operator's allow list (labs use it to reach private ranges); then
//! the default deny list; whatever is left is allowed. IPv4 CIDRs in either list match the embedded IPv4 of
//! an IPv6 address as well. The per-session peer allow-list of D8 is the TURN server's
//! business and comes on top of this.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::Error;

/// An address range, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A range; [`Error::Misuse`] if the prefix is longer than the address. Host bits
    /// are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, Error> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(Error::Misuse("CIDR prefix longer than the address"));
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Ok(Self { addr, prefix })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in the range (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = Error;

    /// `"10.0.0.0/8"`, `"fd00::/8"`, or a bare address meaning a single host.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("CIDR", 0, "not addr/prefix");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                (a, Some(p.parse::<u8>().map_err(|_| bad())?))
            }
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let host = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(host);
        Self::new(addr, prefix).map_err(|_| Error::invalid("CIDR", 0, "prefix too long"))
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// The default IPv4 deny list: (network, prefix, name). IANA IPv4 Special-Purpose
/// Address Registry (RFC 6890), plus multicast (RFC 5771) and 240/4 (RFC 1112).
const DENIED_V4: &[(u32, u8, &str)] = &[
    (0x0000_0000, 8, "this network 0.0.0.0/8"),
    (0x0A00_0000, 8, "private 10/8"),
    (0x6440_0000, 10, "shared 100.64/10"),
    (0x7F00_0000, 8, "loopback 127/8"),
    (0xA9FE_0000, 16, "link-local 169.254/16"),
    (0xAC10_0000, 12, "private 172.16/12"),
    (0xC000_0000, 24, "IETF protocol assignments 192.0.0/24"),
    (0xC000_0200, 24, "documentation 192.0.2/24"),
    (0xC058_6300, 24, "6to4 relay anycast 192.88.99/24"),
    (0xC0A8_0000, 16, "private 192.168/16"),
    (0xC612_0000, 15, "benchmarking 198.18/15"),
    (0xC633_6400, 24, "documentation 198.51.100/24"),
    (0xCB00_7100, 24, "documentation 203.0.113/24"),
    (0xE000_0000, 4, "multicast 224/4"),
    (0xF000_0000, 4, "reserved 240/4"),
    (0xFFFF_FFFF, 32, "limited broadcast"),
];

/// The default IPv6 deny list, after embedded IPv4 addresses have been taken care of.
/// IANA IPv6 Special-Purpose Address Registry (RFC 6890) and RFC 4291.
const DENIED_V6: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified ::"),
    (1, 128, "loopback ::1"),
    (0xfc00 << 112, 7, "unique local fc00::/7"),
    (0xfe80 << 112, 10, "link-local fe80::/10"),
    (0xfec0 << 112, 10, "site-local fec0::/10"),
    (0xff00 << 112, 8, "multicast ff00::/8"),
    (0x2001_0db8 << 96, 32, "documentation 2001:db8::/32"),
    (0x3fff << 112, 20, "documentation 3fff::/20"),
    (0x0100 << 112, 64, "discard 100::/64"),
    (0x2001_0000 << 96, 32, "Teredo 2001::/32"),
    (0x2001_0002 << 96, 48, "benchmarking 2001:2::/48"),
    (0x2001_0010 << 96, 28, "ORCHID 2001:10::/28"),
    (0x2001_0020 << 96, 28, "ORCHIDv2 2001:20::/28"),
    (0x0064_ff9b_0001 << 80, 48, "local-use NAT64 64:ff9b:1::/48"),
];

/// The IPv4 address an IPv6 address carries, for the encodings a relay could be tricked
/// with: IPv4-mapped `::ffff:0:0/96`, IPv4-translated `::ffff:0:0:0/96`,
/// IPv4-compatible `::/96` (so `::` and `::1` give `0.0.0.0` and `0.0.0.1`), 6to4
/// `2002::/16` (RFC 3056) and the NAT64 well-known prefix `64:ff9b::/96` (RFC 6052).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let v = u128::from(ip);
    let low32 = Ipv4Addr::from(v as u32);
    let top96 = v >> 32;
    if top96 == 0 || top96 == 0xffff || top96 == 0xffff_0000 || top96 == 0x0064_ff9b_u128 << 64 {
        return Some(low32);
    }
    if v >> 112 == 0x2002 {
        return Some(Ipv4Addr::from((v >> 80) as u32));
    }
    None
}

/// The default verdict for an address, ignoring any operator lists: `Some(name)` of the
/// special-purpose range that denies it, or `None` if it may be relayed to.
pub fn default_denied(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => denied_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return denied_v4(v4);
            }
            let v = u128::from(v6);
            DENIED_V6
                .iter()
                .find(|(net, prefix, _)| v & mask128(*prefix) == *net)
                .map(|(_, _, name)| *name)
        }
    }
}

fn denied_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let v = u32::from(ip);
    DENIED_V4
        .iter()
        .find(|(net, prefix, _)| v & mask32(*prefix) == *net)
        .map(|(_, _, name)| *name)
}

/// The outcome of [`PeerPolicy::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A public address.
    Allowed,
    /// Allowed by the operator's allow list despite the default.
    AllowListed(Cidr),
    /// Denied by the operator's deny list.
    DenyListed(Cidr),
    /// Denied as part of the named special-purpose range.
    SpecialPurpose(&'static str),
}

impl Verdict {
    /// Whether the relay may send to the address.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed | Self::AllowListed(_))
    }
}

/// The peer-address policy of a TURN server: default deny list plus operator lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerPolicy {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    loopback: bool,
}

impl PeerPolicy {
    /// The default policy: deny the special-purpose ranges, allow the rest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allow a range even if the default denies it (a lab's private network).
    #[must_use]
    pub fn allow(mut self, cidr: Cidr) -> Self {
        self.allow.push(cidr);
        self
    }

    /// Deny a range, whatever else says (the server's own addresses, say).
    #[must_use]
    pub fn deny(mut self, cidr: Cidr) -> Self {
        self.deny.push(cidr);
        self
    }

    /// Let the allow list admit loopback addresses (`127/8`, `::1` and their IPv6
    /// spellings). Off by default: without it loopback is denied whatever the allow list
    /// says. Only for a lab or test whose peers run on the relay's own host; loopback is
    /// then reachable only where an allow-list entry covers it.
    #[must_use]
    pub fn allow_loopback(mut self, allow: bool) -> Self {
        self.loopback = allow;
        self
    }

    /// Whether [`Self::allow_loopback`] is on.
    pub fn loopback_allowed(&self) -> bool {
        self.loopback
    }

    /// The operator's allow list.
    pub fn allowed(&self) -> &[Cidr] {
        &self.allow
    }

    /// The operator's deny list.
    pub fn denied(&self) -> &[Cidr] {
        &self.deny
    }

    /// Judge a peer address.
    pub fn check(&self, ip: IpAddr) -> Verdict {
        // Match lists on the address and on the IPv4 address it embeds.
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let hit = |list: &[Cidr]| {
            list.iter()
                .find(|c| c.contains(ip) || embedded.is_some_and(|e| c.contains(e)))
                .copied()
        };
        if let Some(c) = hit(&self.deny) {
            return Verdict::DenyListed(c);
        }
        // The relay's own host is never a peer, whatever the allow list says, unless the
        // operator explicitly opened loopback for a lab (and then only via the allow list).
        let host = embedded.unwrap_or(ip);
        if (ip == IpAddr::V6(Ipv6Addr::LOCALHOST) || host.is_loopback()) && !self.loopback {
            return Verdict::SpecialPurpose("loopback");
        }
        let lab_v6_loopback = self.loopback && ip == IpAddr::V6(Ipv6Addr::LOCALHOST);
        if ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            || (matches!(host, IpAddr::V4(v4) if v4.octets()[0] == 0) && !lab_v6_loopback)
        {
            return Verdict::SpecialPurpose("this network");
        }
        if let Some(c) = hit(&self.allow) {
            return Verdict::AllowListed(c);
        }
        match default_denied(ip) {
            Some(name) => Verdict::SpecialPurpose(name),
            None => Verdict::Allowed,
        }
    }

    /// Shorthand for `check(ip).is_allowed()`.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        self.check(ip).is_allowed()
    }
}

/// The IPv6 spellings of an IPv4 address that [`embedded_ipv4`] understands, for tests
/// and fuzzing: mapped, translated, compatible, 6to4 and NAT64.
pub fn ipv6_encodings(ip: Ipv4Addr) -> [Ipv6Addr; 5] {
    let v = u128::from(u32::from(ip));
    [
        Ipv6Addr::from(0xffff_u128 << 32 | v),
        Ipv6Addr::from(0xffff_0000_u128 << 32 | v),
        Ipv6Addr::from(v),
        Ipv6Addr::from(0x2002_u128 << 112 | v << 80),
        Ipv6Addr::from(0x0064_ff9b_u128 << 96 | v),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults() {
        let p = PeerPolicy::new();
        for denied in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::ffff:127.0.0.1",
            "::ffff:0:10.0.0.1",
            "::169.254.169.254",
            "2002:c0a8:0101::1",
            "2002:7f00:0001:1234::1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
        ] {
            assert!(!p.is_allowed(ip(denied)), "{denied} allowed");
        }
        for allowed in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "198.17.255.255",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
            "64:ff9b::8.8.8.8",
        ] {
            assert_eq!(p.check(ip(allowed)), Verdict::Allowed, "{allowed}");
        }
        assert_eq!(
            p.check(ip("169.254.169.254")),
            Verdict::SpecialPurpose("link-local 169.254/16")
        );
    }

    #[test]
    fn operator_lists() {
        let lab: Cidr = "10.20.0.0/16".parse().unwrap();
        let own: Cidr = "10.20.0.1".parse().unwrap();
        let p = PeerPolicy::new().deny(own).allow(lab);
        assert_eq!(p.check(ip("10.20.3.4")), Verdict::AllowListed(lab));
        assert_eq!(p.check(ip("::ffff:10.20.3.4")), Verdict::AllowListed(lab));
        assert_eq!(p.check(ip("10.20.0.1")), Verdict::DenyListed(own));
        assert_eq!(p.check(ip("2002:0a14:0001::")), Verdict::DenyListed(own));
        assert!(!p.is_allowed(ip("10.21.0.1")));
        let everything = PeerPolicy::new()
            .allow("0.0.0.0/0".parse().unwrap())
            .allow("::/0".parse().unwrap());
        for never in [
            "127.0.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "2002:7f00:1::",
        ] {
            assert!(!everything.is_allowed(ip(never)), "{never}");
        }
        assert!(everything.is_allowed(ip("10.0.0.1")));
        assert!(everything.is_allowed(ip("fe80::1")));
        let public: Cidr = "8.8.8.0/24".parse().unwrap();
        let p = PeerPolicy::new().deny(public);
        assert!(!p.is_allowed(ip("64:ff9b::8.8.8.8")));
        assert_eq!(p.denied(), &[public]);
    }

    #[test]
    fn loopback_opt_in() {
        let lo: Cidr = "127.0.0.0/8".parse().unwrap();
        let doc: Cidr = "198.51.100.0/24".parse().unwrap();
        let closed = PeerPolicy::new().allow(lo).allow(doc);
        assert!(!closed.is_allowed(ip("127.0.0.1")));
        assert!(closed.is_allowed(ip("198.51.100.2")));
        let lab = closed.allow_loopback(true);
        assert!(lab.loopback_allowed());
        assert!(lab.is_allowed(ip("127.0.0.1")));
        assert!(lab.is_allowed(ip("::ffff:127.0.0.1")));
        assert!(lab.is_allowed(ip("64:ff9b::7f00:1")));
        // Opening loopback does not open it without an allow-list entry, nor 0/8.
        let open = PeerPolicy::new().allow_loopback(true);
        assert!(!open.is_allowed(ip("127.0.0.1")));
        assert!(!open.is_allowed(ip("::1")));
        let all = PeerPolicy::new()
            .allow_loopback(true)
            .allow("0.0.0.0/0".parse().unwrap());
        assert!(!all.is_allowed(ip("0.0.0.0")));
    }

    #[test]
    fn cidr_parse() {
        let c: Cidr = "192.168.1.77/16".parse().unwrap();
        assert_eq!(c.to_string(), "192.168.0.0/16");
        assert_eq!("fd00::/8".parse::<Cidr>().unwrap().prefix(), 8);
        assert_eq!("::/0".parse::<Cidr>().unwrap().addr(), ip("::"));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("1.2.3.4")));
        assert!(!"0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("::1")));
        for bad in [
            "",
            "1.2.3.4/33",
            "::/129",
            "1.2.3.4/",
            "1.2.3/8",
            "1.2.3.4/-1",
            "x/8",
            "1.2.3.4/0008",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn embeddings() {
        let v4 = Ipv4Addr::new(192, 0, 2, 33);
        for e in ipv6_encodings(v4) {
            assert_eq!(embedded_ipv4(e), Some(v4), "{e}");
        }
        assert_eq!(embedded_ipv4(ip6("2001:db8::1")), None);
        assert_eq!(ipv6_encodings(v4)[3], ip6("2002:c000:0221::"));
        assert_eq!(ipv6_encodings(v4)[4], ip6("64:ff9b::192.0.2.33"));
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn in_range() -> impl Strategy<Value = Ipv4Addr> {
        (0..DENIED_V4.len(), any::<u32>()).prop_map(|(i, host)| {
            let (net, prefix, _) = DENIED_V4[i];
            Ipv4Addr::from(net | (host & !mask32(prefix)))
        })
    }

    proptest! {
        #[test]
        fn denied_ranges_denied_in_every_encoding(v4 in in_range()) {
            let p = PeerPolicy::new();
            prop_assert!(!p.is_allowed(IpAddr::V4(v4)));
            for e in ipv6_encodings(v4) {
                prop_assert!(!p.is_allowed(IpAddr::V6(e)), "{} as {}", v4, e);
            }
        }

        #[test]
        fn encodings_agree(v4 in any::<u32>().prop_map(Ipv4Addr::from)) {
            let p = PeerPolicy::new();
            let want = p.is_allowed(IpAddr::V4(v4));
            for e in ipv6_encodings(v4) {
                prop_assert_eq!(p.is_allowed(IpAddr::V6(e)), want, "{} as {}", v4, e);
            }
            let in_list = DENIED_V4.iter().any(|(n, pre, _)| u32::from(v4) & mask32(*pre) == *n);
            prop_assert_eq!(want, !in_list);
        }

        #[test]
        fn public_unicast_allowed(a in 1u8..=223, b: u8, c: u8, d: u8) {
            let v4 = Ipv4Addr::new(a, b, c, d);
            let special = matches!((a, b, c), (10, ..) | (127, ..) | (169, 254, _) | (192, 168, _)
                | (192, 0, 0) | (192, 0, 2) | (192, 88, 99) | (198, 51, 100) | (203, 0, 113))
                || (a == 100 && (64..128).contains(&b))
                || (a == 172 && (16..32).contains(&b))
                || (a == 198 && (b == 18 || b == 19));
            prop_assert_eq!(PeerPolicy::new().is_allowed(IpAddr::V4(v4)), !special, "{}", v4);
        }

        #[test]
        fn teredo_always_denied(low in any::<u128>()) {
            let t = Ipv6Addr::from(0x2001_0000_u128 << 96 | (low >> 32));
            prop_assert!(!PeerPolicy::new().is_allowed(IpAddr::V6(t)));
        }
    }
}
