//! PCP (RFC 6887) MAP messages.
//!
//! A PCP message is a 24-byte common header, opcode-specific data and options, at most
//! [`MAX_SIZE`] bytes, a multiple of four (RFC 6887 7). Addresses are always 16 bytes;
//! IPv4 addresses use the IPv4-mapped IPv6 form `::ffff:a.b.c.d` (RFC 6887 5).
//!
//! A NAT-PMP-only gateway answers a PCP request with a NAT-PMP "unsupported version"
//! response (version 0, RFC 6887 9 and RFC 6886 3.5); [`Response::decode`] reports that as
//! [`Error::Version`] with `version: 0`, and the client falls back to NAT-PMP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::Error;
use crate::natpmp::{be16, be32};

/// The PCP version this crate speaks (RFC 6887 7.1).
pub const VERSION: u8 = 2;
/// The largest PCP message (RFC 6887 7).
pub const MAX_SIZE: usize = 1100;
/// The MAP opcode (RFC 6887 11).
pub const OP_MAP: u8 = 1;
/// The PEER opcode (RFC 6887 12), not built by this crate.
pub const OP_PEER: u8 = 2;
/// The ANNOUNCE opcode (RFC 6887 14.1), not built by this crate.
pub const OP_ANNOUNCE: u8 = 0;

/// A PCP result code (RFC 6887 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the names are the RFC's
pub enum ResultCode {
    Success,
    UnsuppVersion,
    NotAuthorized,
    MalformedRequest,
    UnsuppOpcode,
    UnsuppOption,
    MalformedOption,
    NetworkFailure,
    NoResources,
    UnsuppProtocol,
    UserExQuota,
    CannotProvideExternal,
    AddressMismatch,
    ExcessiveRemotePeers,
    /// Any other code.
    Other(u8),
}

impl ResultCode {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::UnsuppVersion => 1,
            Self::NotAuthorized => 2,
            Self::MalformedRequest => 3,
            Self::UnsuppOpcode => 4,
            Self::UnsuppOption => 5,
            Self::MalformedOption => 6,
            Self::NetworkFailure => 7,
            Self::NoResources => 8,
            Self::UnsuppProtocol => 9,
            Self::UserExQuota => 10,
            Self::CannotProvideExternal => 11,
            Self::AddressMismatch => 12,
            Self::ExcessiveRemotePeers => 13,
            Self::Other(c) => c,
        }
    }

    /// The result code of a wire value.
    pub const fn from_code(c: u8) -> Self {
        match c {
            0 => Self::Success,
            1 => Self::UnsuppVersion,
            2 => Self::NotAuthorized,
            3 => Self::MalformedRequest,
            4 => Self::UnsuppOpcode,
            5 => Self::UnsuppOption,
            6 => Self::MalformedOption,
            7 => Self::NetworkFailure,
            8 => Self::NoResources,
            9 => Self::UnsuppProtocol,
            10 => Self::UserExQuota,
            11 => Self::CannotProvideExternal,
            12 => Self::AddressMismatch,
            13 => Self::ExcessiveRemotePeers,
            c => Self::Other(c),
        }
    }

    /// Whether retrying later may succeed (RFC 6887 7.4: "short lifetime" errors).
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Self::NetworkFailure | Self::NoResources | Self::UserExQuota
        )
    }
}

/// A PCP option (RFC 6887 7.3): code, and data padded to four bytes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcpOption {
    /// The option code (e.g. 1 THIRD_PARTY, 2 PREFER_FAILURE, 3 FILTER).
    pub code: u8,
    /// The option data without padding.
    pub data: Vec<u8>,
}

/// The MAP opcode's fields (RFC 6887 11.1), the same in requests and responses; in a
/// response the port and address are the ones assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapData {
    /// Random, chosen by the client, echoed by the server; the same for renewals and the
    /// deletion of one mapping (RFC 6887 11.1).
    pub nonce: [u8; 12],
    /// IANA protocol number (6 TCP, 17 UDP, 0 all protocols).
    pub protocol: u8,
    /// The client's port.
    pub internal_port: u16,
    /// Suggested (request) or assigned (response) external port.
    pub external_port: u16,
    /// Suggested (request; `0.0.0.0` or `::` for none) or assigned (response) external
    /// address.
    pub external_addr: IpAddr,
}

/// A PCP MAP request (RFC 6887 7.1 + 11.1). Lifetime 0 deletes the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRequest {
    /// Requested lifetime in seconds.
    pub lifetime: u32,
    /// The client's own address, as it sends the request (checked by the server against
    /// the source address: ADDRESS_MISMATCH).
    pub client: IpAddr,
    /// The mapping.
    pub map: MapData,
    /// Options.
    pub options: Vec<PcpOption>,
}

impl MapRequest {
    /// The request on the wire (a multiple of four bytes; at most [`MAX_SIZE`] when the
    /// options are small).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(60);
        b.extend_from_slice(&[VERSION, OP_MAP, 0, 0]);
        b.extend_from_slice(&self.lifetime.to_be_bytes());
        b.extend_from_slice(&encode_addr(self.client));
        encode_map(&mut b, &self.map);
        encode_options(&mut b, &self.options);
        b
    }

    /// Parses a MAP request (what a server does; for test gateways and fuzzing).
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        check_size("PCP request", b)?;
        if b[1] & 0x80 != 0 {
            return Err(Error::invalid("PCP request", "R bit set"));
        }
        if b[1] != OP_MAP {
            return Err(Error::invalid("PCP request", "not a MAP request"));
        }
        let map = decode_map(b)?;
        Ok(Self {
            lifetime: be32(b, 4),
            client: decode_addr(&b[8..24]),
            map,
            options: decode_options(&b[60..])?,
        })
    }
}

/// A PCP response (RFC 6887 7.2). `map` is present for MAP responses long enough to carry
/// it (success responses always are; error responses usually echo the request's fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The opcode answered (the wire has the R bit set as well).
    pub opcode: u8,
    /// The result.
    pub result: ResultCode,
    /// Granted lifetime on success; on error, how long the error is likely to persist.
    pub lifetime: u32,
    /// The server's epoch time, seconds (RFC 6887 8.5).
    pub epoch: u32,
    /// The MAP fields of a MAP response.
    pub map: Option<MapData>,
    /// Options.
    pub options: Vec<PcpOption>,
}

impl Response {
    /// The response on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(60);
        b.extend_from_slice(&[VERSION, self.opcode | 0x80, 0, self.result.code()]);
        b.extend_from_slice(&self.lifetime.to_be_bytes());
        b.extend_from_slice(&self.epoch.to_be_bytes());
        b.extend_from_slice(&[0; 12]);
        if let Some(m) = &self.map {
            encode_map(&mut b, m);
        }
        encode_options(&mut b, &self.options);
        b
    }

    /// Parses a response. A datagram with version 0 is a NAT-PMP gateway's answer and
    /// gives `Error::Version { version: 0, .. }` (RFC 6887 9).
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        if b.len() >= 2 && b[0] != VERSION {
            return Err(Error::Version {
                context: "PCP response",
                version: b[0],
            });
        }
        check_size("PCP response", b)?;
        if b[1] & 0x80 == 0 {
            return Err(Error::invalid("PCP response", "R bit clear"));
        }
        let opcode = b[1] & 0x7f;
        let (map, rest) = if opcode == OP_MAP && b.len() >= 60 {
            (Some(decode_map(b)?), &b[60..])
        } else if opcode == OP_MAP && b.len() > 24 {
            return Err(Error::truncated("PCP MAP response", b.len()));
        } else {
            (None, &b[24..])
        };
        Ok(Self {
            opcode,
            result: ResultCode::from_code(b[3]),
            lifetime: be32(b, 4),
            epoch: be32(b, 8),
            map,
            options: decode_options(rest)?,
        })
    }
}

fn check_size(context: &'static str, b: &[u8]) -> Result<(), Error> {
    if b.len() < 24 {
        return Err(Error::truncated(context, b.len()));
    }
    if b.len() > MAX_SIZE {
        return Err(Error::TooLarge {
            context,
            limit: MAX_SIZE,
        });
    }
    if !b.len().is_multiple_of(4) {
        return Err(Error::invalid(context, "length not a multiple of 4"));
    }
    if b[0] != VERSION {
        return Err(Error::Version {
            context,
            version: b[0],
        });
    }
    Ok(())
}

/// The 16-byte form of an address: IPv4 as IPv4-mapped IPv6 (RFC 6887 5).
pub fn encode_addr(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address of a 16-byte field; an IPv4-mapped address becomes IPv4 (RFC 6887 5).
/// Shorter input reads as `::`.
pub fn decode_addr(b: &[u8]) -> IpAddr {
    let Ok(o) = <[u8; 16]>::try_from(b) else {
        return IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    };
    let v6 = Ipv6Addr::from(o);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The unspecified address of the family of `a` (a MAP request's "no suggestion").
pub fn unspecified_like(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

fn encode_map(b: &mut Vec<u8>, m: &MapData) {
    b.extend_from_slice(&m.nonce);
    b.extend_from_slice(&[m.protocol, 0, 0, 0]);
    b.extend_from_slice(&m.internal_port.to_be_bytes());
    b.extend_from_slice(&m.external_port.to_be_bytes());
    b.extend_from_slice(&encode_addr(m.external_addr));
}

fn decode_map(b: &[u8]) -> Result<MapData, Error> {
    let Some(m) = b.get(24..60) else {
        return Err(Error::truncated("PCP MAP data", b.len()));
    };
    let mut nonce = [0; 12];
    nonce.copy_from_slice(&m[..12]);
    Ok(MapData {
        nonce,
        protocol: m[12],
        internal_port: be16(m, 16),
        external_port: be16(m, 18),
        external_addr: decode_addr(&m[20..36]),
    })
}

fn encode_options(b: &mut Vec<u8>, options: &[PcpOption]) {
    for o in options {
        let len = u16::try_from(o.data.len()).unwrap_or(u16::MAX);
        b.extend_from_slice(&[o.code, 0]);
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&o.data[..usize::from(len)]);
        b.resize(b.len().next_multiple_of(4), 0);
    }
}

fn decode_options(mut b: &[u8]) -> Result<Vec<PcpOption>, Error> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(Error::truncated("PCP option", b.len()));
        }
        let len = usize::from(be16(b, 2));
        let padded = len.next_multiple_of(4);
        let Some(data) = b.get(4..4 + len) else {
            return Err(Error::truncated("PCP option", b.len()));
        };
        out.push(PcpOption {
            code: b[0],
            data: data.to_vec(),
        });
        b = b.get(4 + padded..).unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|a| IpAddr::V4(a.into())),
            any::<[u8; 16]>().prop_map(|a| decode_addr(&a)),
        ]
    }

    fn map() -> impl Strategy<Value = MapData> {
        (
            any::<[u8; 12]>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            addr(),
        )
            .prop_map(
                |(nonce, protocol, internal_port, external_port, external_addr)| MapData {
                    nonce,
                    protocol,
                    internal_port,
                    external_port,
                    external_addr,
                },
            )
    }

    fn options() -> impl Strategy<Value = Vec<PcpOption>> {
        proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(code, data)| PcpOption { code, data }),
            0..4,
        )
    }

    proptest! {
        #[test]
        fn request_round_trips(lifetime in any::<u32>(), client in addr(), map in map(), options in options()) {
            let r = MapRequest { lifetime, client, map, options };
            let b = r.encode();
            prop_assert_eq!(b.len() % 4, 0);
            prop_assert_eq!(MapRequest::decode(&b)?, r);
        }

        #[test]
        fn response_round_trips(result in any::<u8>(), lifetime in any::<u32>(), epoch in any::<u32>(),
                                map in proptest::option::of(map()), opcode in 0u8..128, options in options()) {
            let opcode = if map.is_some() { OP_MAP } else if opcode == OP_MAP { OP_PEER } else { opcode };
            let r = Response { opcode, result: ResultCode::from_code(result), lifetime, epoch, map, options };
            prop_assert_eq!(Response::decode(&r.encode())?, r);
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = MapRequest::decode(&b);
            let _ = Response::decode(&b);
        }
    }

    #[test]
    fn rfc_6887_wire_layout() {
        let r = MapRequest {
            lifetime: 7200,
            client: "10.0.1.2".parse().unwrap(),
            map: MapData {
                nonce: [9; 12],
                protocol: 6,
                internal_port: 8554,
                external_port: 8554,
                external_addr: "0.0.0.0".parse().unwrap(),
            },
            options: vec![],
        };
        let b = r.encode();
        assert_eq!(b.len(), 60);
        assert_eq!(&b[..8], &[2, 1, 0, 0, 0, 0, 0x1c, 0x20]);
        assert_eq!(
            &b[8..24],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, 2]
        );
        assert_eq!(&b[36..40], &[6, 0, 0, 0]);
        assert_eq!(&b[56..60], &[0, 0, 0, 0]);
        assert_eq!(&b[52..56], &[0, 0, 0xff, 0xff]);
        // A NAT-PMP gateway's answer (RFC 6887 9).
        assert!(matches!(
            Response::decode(&[0, 0x81, 0, 1, 0, 0, 0, 5]),
            Err(Error::Version { version: 0, .. })
        ));
    }
}
