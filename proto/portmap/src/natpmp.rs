//! NAT-PMP (RFC 6886) messages.
//!
//! All fields are big-endian. A client sends requests to UDP port [`PORT`] of its default
//! gateway; every response carries the gateway's epoch ("seconds since start of epoch",
//! RFC 6886 3.6) so that a client can notice a gateway reboot.

use std::net::Ipv4Addr;

use crate::{Error, Protocol};

/// The UDP port a NAT-PMP (and PCP) server listens on (RFC 6886 3.1, RFC 6887 19.1).
pub const PORT: u16 = 5351;
/// The NAT-PMP protocol version (RFC 6886 3.2).
pub const VERSION: u8 = 0;
/// Opcode of the external address request (RFC 6886 3.2).
pub const OP_EXTERNAL_ADDRESS: u8 = 0;

/// A request from client to gateway (RFC 6886 3.2, 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// "Determining the external address" (RFC 6886 3.2): two bytes.
    ExternalAddress,
    /// "Requesting a mapping" (RFC 6886 3.3): twelve bytes. Lifetime 0 with suggested
    /// external port 0 deletes the mapping (RFC 6886 3.4).
    Map {
        /// UDP (opcode 1) or TCP (opcode 2).
        protocol: Protocol,
        /// The client's port.
        internal_port: u16,
        /// The external port the client would like; the gateway may choose another.
        suggested_external_port: u16,
        /// Requested lifetime in seconds (RFC 6886 recommends 7200).
        lifetime: u32,
    },
}

impl Request {
    /// The request on the wire.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Self::ExternalAddress => vec![VERSION, OP_EXTERNAL_ADDRESS],
            Self::Map {
                protocol,
                internal_port,
                suggested_external_port,
                lifetime,
            } => {
                let mut b = Vec::with_capacity(12);
                b.extend_from_slice(&[VERSION, protocol.natpmp_opcode(), 0, 0]);
                b.extend_from_slice(&internal_port.to_be_bytes());
                b.extend_from_slice(&suggested_external_port.to_be_bytes());
                b.extend_from_slice(&lifetime.to_be_bytes());
                b
            }
        }
    }

    /// Parses a request (what a gateway does; used by test gateways and fuzzing).
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        if b.len() < 2 {
            return Err(Error::truncated("NAT-PMP request", b.len()));
        }
        if b[0] != VERSION {
            return Err(Error::Version {
                context: "NAT-PMP request",
                version: b[0],
            });
        }
        let protocol = match b[1] {
            OP_EXTERNAL_ADDRESS => return Ok(Self::ExternalAddress),
            1 => Protocol::Udp,
            2 => Protocol::Tcp,
            _ => return Err(Error::invalid("NAT-PMP request", "unknown opcode")),
        };
        if b.len() < 12 {
            return Err(Error::truncated("NAT-PMP map request", b.len()));
        }
        Ok(Self::Map {
            protocol,
            internal_port: be16(b, 4),
            suggested_external_port: be16(b, 6),
            lifetime: be32(b, 8),
        })
    }
}

/// A NAT-PMP result code (RFC 6886 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    /// 0: success.
    Success,
    /// 1: unsupported version (also what a NAT-PMP gateway answers to PCP, RFC 6887 9).
    UnsupportedVersion,
    /// 2: not authorized / refused (e.g. the box supports mapping but it is disabled).
    NotAuthorized,
    /// 3: network failure (e.g. the gateway has no external address yet).
    NetworkFailure,
    /// 4: out of resources (no more mappings possible).
    OutOfResources,
    /// 5: unsupported opcode.
    UnsupportedOpcode,
    /// Any other code.
    Other(u16),
}

impl ResultCode {
    /// The code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            Self::Success => 0,
            Self::UnsupportedVersion => 1,
            Self::NotAuthorized => 2,
            Self::NetworkFailure => 3,
            Self::OutOfResources => 4,
            Self::UnsupportedOpcode => 5,
            Self::Other(c) => c,
        }
    }

    /// The result code of a wire value.
    pub const fn from_code(c: u16) -> Self {
        match c {
            0 => Self::Success,
            1 => Self::UnsupportedVersion,
            2 => Self::NotAuthorized,
            3 => Self::NetworkFailure,
            4 => Self::OutOfResources,
            5 => Self::UnsupportedOpcode,
            c => Self::Other(c),
        }
    }
}

/// The opcode-specific part of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// The answer to [`Request::ExternalAddress`] (RFC 6886 3.2).
    ExternalAddress(Ipv4Addr),
    /// The answer to [`Request::Map`] (RFC 6886 3.3).
    Map {
        /// The client's port, echoed.
        internal_port: u16,
        /// The external port the gateway mapped (0 when deleting).
        external_port: u16,
        /// The lifetime granted, in seconds.
        lifetime: u32,
    },
}

/// A response from gateway to client (RFC 6886 3.2, 3.3, 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The opcode of the request answered (the wire carries `128 + opcode`).
    pub opcode: u8,
    /// The result.
    pub result: ResultCode,
    /// Seconds since the gateway's mapping table was (re)initialised (RFC 6886 3.6).
    pub epoch: u32,
    /// The opcode-specific fields. `None` for the short eight-byte error responses a
    /// gateway sends for unsupported versions and opcodes (RFC 6886 3.5).
    pub body: Option<ResponseBody>,
}

impl Response {
    /// The response on the wire. A body that does not fit the opcode (an external
    /// address for a MAP opcode, say) is written as its own layout anyway.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16);
        b.push(VERSION);
        b.push(self.opcode | 0x80);
        b.extend_from_slice(&self.result.code().to_be_bytes());
        b.extend_from_slice(&self.epoch.to_be_bytes());
        match self.body {
            None => {}
            Some(ResponseBody::ExternalAddress(a)) => b.extend_from_slice(&a.octets()),
            Some(ResponseBody::Map {
                internal_port,
                external_port,
                lifetime,
            }) => {
                b.extend_from_slice(&internal_port.to_be_bytes());
                b.extend_from_slice(&external_port.to_be_bytes());
                b.extend_from_slice(&lifetime.to_be_bytes());
            }
        }
        b
    }

    /// Parses a response. The body is read when the datagram is long enough for the
    /// opcode's layout (opcode 0: 12 bytes, opcodes 1 and 2: 16 bytes); trailing bytes
    /// are ignored.
    pub fn decode(b: &[u8]) -> Result<Self, Error> {
        if b.len() < 8 {
            return Err(Error::truncated("NAT-PMP response", b.len()));
        }
        if b[0] != VERSION {
            return Err(Error::Version {
                context: "NAT-PMP response",
                version: b[0],
            });
        }
        if b[1] & 0x80 == 0 {
            return Err(Error::invalid("NAT-PMP response", "not a response opcode"));
        }
        let opcode = b[1] & 0x7f;
        let body = match opcode {
            OP_EXTERNAL_ADDRESS if b.len() >= 12 => Some(ResponseBody::ExternalAddress(
                Ipv4Addr::new(b[8], b[9], b[10], b[11]),
            )),
            1 | 2 if b.len() >= 16 => Some(ResponseBody::Map {
                internal_port: be16(b, 8),
                external_port: be16(b, 10),
                lifetime: be32(b, 12),
            }),
            _ => None,
        };
        Ok(Self {
            opcode,
            result: ResultCode::from_code(be16(b, 2)),
            epoch: be32(b, 4),
            body,
        })
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn protocol() -> impl Strategy<Value = Protocol> {
        prop_oneof![Just(Protocol::Udp), Just(Protocol::Tcp)]
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            Just(Request::ExternalAddress),
            (protocol(), any::<u16>(), any::<u16>(), any::<u32>()).prop_map(|(p, i, e, l)| {
                Request::Map {
                    protocol: p,
                    internal_port: i,
                    suggested_external_port: e,
                    lifetime: l,
                }
            })
        ]
    }

    fn response() -> impl Strategy<Value = Response> {
        let body = prop_oneof![
            Just(None),
            any::<[u8; 4]>().prop_map(|a| Some(ResponseBody::ExternalAddress(a.into()))),
            (any::<u16>(), any::<u16>(), any::<u32>()).prop_map(|(i, e, l)| Some(
                ResponseBody::Map {
                    internal_port: i,
                    external_port: e,
                    lifetime: l
                }
            )),
        ];
        (body, any::<u16>(), any::<u32>(), 3u8..128).prop_map(|(body, code, epoch, other)| {
            let opcode = match body {
                Some(ResponseBody::ExternalAddress(_)) => 0,
                Some(ResponseBody::Map { .. }) => 1 + (other % 2),
                None => other,
            };
            Response {
                opcode,
                result: ResultCode::from_code(code),
                epoch,
                body,
            }
        })
    }

    proptest! {
        #[test]
        fn request_round_trips(r in request()) {
            prop_assert_eq!(Request::decode(&r.encode())?, r);
        }

        #[test]
        fn response_round_trips(r in response()) {
            prop_assert_eq!(Response::decode(&r.encode())?, r);
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = Request::decode(&b);
            let _ = Response::decode(&b);
        }
    }

    #[test]
    fn rfc_6886_wire_layout() {
        let r = Request::Map {
            protocol: Protocol::Tcp,
            internal_port: 0x1234,
            suggested_external_port: 0x5678,
            lifetime: 7200,
        };
        assert_eq!(
            r.encode(),
            [0, 2, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x1c, 0x20]
        );
        // An external address answer from a gateway with address 198.51.100.2.
        let a = Response::decode(&[0, 128, 0, 0, 0, 0, 0, 9, 198, 51, 100, 2]).unwrap();
        assert_eq!(
            a.body,
            Some(ResponseBody::ExternalAddress(Ipv4Addr::new(
                198, 51, 100, 2
            )))
        );
        assert_eq!(a.epoch, 9);
        // A NAT-PMP gateway's answer to a PCP request (RFC 6887 9): version 0, result 1.
        let v = Response::decode(&[0, 0x81, 0, 1, 0, 0, 0, 5]).unwrap();
        assert_eq!(v.result, ResultCode::UnsupportedVersion);
        assert_eq!(v.body, None);
    }
}
