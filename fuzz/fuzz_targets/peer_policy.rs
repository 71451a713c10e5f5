//! `peercam_stun::policy`: an IPv4 address (4 bytes) and an encoding choice (1 byte), then
//! optional operator lists.
//!
//! Never panics. With the default policy, and with an operator list built from the rest
//! of the input, the verdict for an IPv4 address agrees with the verdict for each of its
//! IPv6 spellings (mapped, translated, compatible, 6to4, NAT64 well-known); Teredo and
//! local-use NAT64 addresses are always denied by default; an address in a default-denied
//! range is never allowed unless an allow-list entry covers it, and loopback and 0/8 are
//! never allowed at all (docs/security.md F3).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use peercam_stun::policy::{Cidr, PeerPolicy, default_denied, embedded_ipv4, ipv6_encodings};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let v4 = Ipv4Addr::from(u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
    let encodings = ipv6_encodings(v4);
    let choice = usize::from(data[4]) % encodings.len();
    let v6 = encodings[choice];
    assert_eq!(embedded_ipv4(v6), Some(v4));

    // Operator lists: 5-byte records [allow|deny][a][b][c][prefix].
    let mut policy = PeerPolicy::new();
    for rec in data[5..].chunks_exact(5) {
        let addr = IpAddr::V4(Ipv4Addr::new(rec[1], rec[2], rec[3], 0));
        let Ok(cidr) = Cidr::new(addr, rec[4] % 33) else {
            continue;
        };
        policy = if rec[0] % 2 == 0 {
            policy.allow(cidr)
        } else {
            policy.deny(cidr)
        };
    }

    for p in [&PeerPolicy::new(), &policy] {
        let want = p.is_allowed(IpAddr::V4(v4));
        assert_eq!(p.is_allowed(IpAddr::V6(v6)), want, "{v4} and {v6} disagree");
        if default_denied(IpAddr::V4(v4)).is_some() && want {
            assert!(p.allowed().iter().any(|c| c.contains(IpAddr::V4(v4))));
        }
        if v4.is_loopback() || v4.octets()[0] == 0 {
            assert!(!want, "{v4} allowed");
        }
    }

    let low = u128::from(u32::from(v4));
    let teredo = Ipv6Addr::from(0x2001_0000_u128 << 96 | low << 16);
    let nat64_local = Ipv6Addr::from(0x0064_ff9b_0001_u128 << 80 | low);
    assert!(!PeerPolicy::new().is_allowed(IpAddr::V6(teredo)));
    assert!(!PeerPolicy::new().is_allowed(IpAddr::V6(nat64_local)));
});
