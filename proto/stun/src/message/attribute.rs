//! Attributes: address families, error codes and the typed attribute codec.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::Error;

use super::{MAGIC_COOKIE, MAX_TEXT_LEN, MAX_USERNAME_LEN, TransactionId, attr};

/// An address family code (RFC 8489 14.1, RFC 8656 18.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// `0x01`.
    V4,
    /// `0x02`.
    V6,
    /// Any other code; a TURN server answers 440 (RFC 8656 7.2).
    Other(u8),
}

impl AddressFamily {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Self::V4 => 0x01,
            Self::V6 => 0x02,
            Self::Other(c) => c,
        }
    }

    /// The family for a wire code.
    pub fn from_code(code: u8) -> Self {
        match code {
            0x01 => Self::V4,
            0x02 => Self::V6,
            c => Self::Other(c),
        }
    }
}

/// ERROR-CODE: a code 300..=699 and a reason phrase (RFC 8489 14.8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    /// The code, `class * 100 + number`.
    pub code: u16,
    /// The UTF-8 reason phrase, at most [`MAX_TEXT_LEN`] bytes.
    pub reason: String,
}

impl ErrorCode {
    /// 300 Try Alternate (RFC 8489 14.8).
    pub const TRY_ALTERNATE: u16 = 300;
    /// 400 Bad Request.
    pub const BAD_REQUEST: u16 = 400;
    /// 401 Unauthenticated.
    pub const UNAUTHENTICATED: u16 = 401;
    /// 403 Forbidden (RFC 8656 6).
    pub const FORBIDDEN: u16 = 403;
    /// 420 Unknown Attribute.
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    /// 437 Allocation Mismatch (RFC 8656).
    pub const ALLOCATION_MISMATCH: u16 = 437;
    /// 438 Stale Nonce.
    pub const STALE_NONCE: u16 = 438;
    /// 440 Address Family not Supported (RFC 8656).
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: u16 = 440;
    /// 441 Wrong Credentials (RFC 8656).
    pub const WRONG_CREDENTIALS: u16 = 441;
    /// 442 Unsupported Transport Protocol (RFC 8656).
    pub const UNSUPPORTED_TRANSPORT: u16 = 442;
    /// 443 Peer Address Family Mismatch (RFC 8656).
    pub const PEER_ADDRESS_FAMILY_MISMATCH: u16 = 443;
    /// 486 Allocation Quota Reached (RFC 8656).
    pub const ALLOCATION_QUOTA_REACHED: u16 = 486;
    /// 500 Server Error.
    pub const SERVER_ERROR: u16 = 500;
    /// 508 Insufficient Capacity (RFC 8656).
    pub const INSUFFICIENT_CAPACITY: u16 = 508;

    /// An error code with a reason phrase.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// One attribute, typed where this crate knows the type.
///
/// Addresses carry only IP and port: an IPv6 flow label or scope id is not on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Attribute {
    /// MAPPED-ADDRESS (RFC 8489 14.1).
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS (RFC 8489 14.2).
    XorMappedAddress(SocketAddr),
    /// XOR-PEER-ADDRESS (RFC 8656 18.3).
    XorPeerAddress(SocketAddr),
    /// XOR-RELAYED-ADDRESS (RFC 8656 18.5).
    XorRelayedAddress(SocketAddr),
    /// ALTERNATE-SERVER (RFC 8489 14.15).
    AlternateServer(SocketAddr),
    /// RESPONSE-ORIGIN (RFC 5780 7.3).
    ResponseOrigin(SocketAddr),
    /// OTHER-ADDRESS (RFC 5780 7.4).
    OtherAddress(SocketAddr),
    /// USERNAME (RFC 8489 14.3), at most [`MAX_USERNAME_LEN`] bytes.
    Username(String),
    /// REALM (RFC 8489 14.9).
    Realm(String),
    /// NONCE (RFC 8489 14.10).
    Nonce(String),
    /// SOFTWARE (RFC 8489 14.14).
    Software(String),
    /// ERROR-CODE (RFC 8489 14.8).
    ErrorCode(ErrorCode),
    /// UNKNOWN-ATTRIBUTES (RFC 8489 14.13).
    UnknownAttributes(Vec<u16>),
    /// LIFETIME in seconds (RFC 8656 18.2).
    Lifetime(u32),
    /// REQUESTED-TRANSPORT protocol number, 17 for UDP (RFC 8656 18.8).
    RequestedTransport(u8),
    /// DATA (RFC 8656 18.4).
    Data(Vec<u8>),
    /// CHANNEL-NUMBER (RFC 8656 18.1). Any 16-bit value decodes; the TURN layer checks
    /// the 0x4000-0x4FFF range.
    ChannelNumber(u16),
    /// EVEN-PORT with its R (reserve next port) bit (RFC 8656 18.7).
    EvenPort(bool),
    /// DONT-FRAGMENT (RFC 8656 18.9).
    DontFragment,
    /// RESERVATION-TOKEN (RFC 8656 18.10).
    ReservationToken([u8; 8]),
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 18.6).
    RequestedAddressFamily(AddressFamily),
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 18.11).
    AdditionalAddressFamily(AddressFamily),
    /// PASSWORD-ALGORITHMS, value kept raw (RFC 8489 14.11).
    PasswordAlgorithms(Vec<u8>),
    /// PASSWORD-ALGORITHM, value kept raw (RFC 8489 14.12).
    PasswordAlgorithm(Vec<u8>),
    /// CHANGE-REQUEST (RFC 5780 7.2).
    ChangeRequest {
        /// The "change IP" flag.
        change_ip: bool,
        /// The "change port" flag.
        change_port: bool,
    },
    /// MESSAGE-INTEGRITY, the HMAC-SHA1 value as received (RFC 8489 14.5).
    MessageIntegrity([u8; 20]),
    /// MESSAGE-INTEGRITY-SHA256, 16 to 32 bytes in steps of 4 (RFC 8489 14.6).
    MessageIntegritySha256(Vec<u8>),
    /// FINGERPRINT, the value as received (RFC 8489 14.7).
    Fingerprint(u32),
    /// PRIORITY of the peer-reflexive candidate a check would learn (RFC 8445 7.1.1).
    Priority(u32),
    /// USE-CANDIDATE: the controlling agent nominates the pair (RFC 8445 7.1.2).
    UseCandidate,
    /// ICE-CONTROLLED with the sender's tie-breaker (RFC 8445 7.1.3).
    IceControlled(u64),
    /// ICE-CONTROLLING with the sender's tie-breaker (RFC 8445 7.1.3).
    IceControlling(u64),
    /// Any other type, value kept raw (without padding).
    Unknown {
        /// The attribute type. Never one of the [`attr::is_known`] types.
        typ: u16,
        /// The value.
        value: Vec<u8>,
    },
}

impl Attribute {
    /// The wire type code.
    pub fn typ(&self) -> u16 {
        match self {
            Self::MappedAddress(_) => attr::MAPPED_ADDRESS,
            Self::XorMappedAddress(_) => attr::XOR_MAPPED_ADDRESS,
            Self::XorPeerAddress(_) => attr::XOR_PEER_ADDRESS,
            Self::XorRelayedAddress(_) => attr::XOR_RELAYED_ADDRESS,
            Self::AlternateServer(_) => attr::ALTERNATE_SERVER,
            Self::ResponseOrigin(_) => attr::RESPONSE_ORIGIN,
            Self::OtherAddress(_) => attr::OTHER_ADDRESS,
            Self::Username(_) => attr::USERNAME,
            Self::Realm(_) => attr::REALM,
            Self::Nonce(_) => attr::NONCE,
            Self::Software(_) => attr::SOFTWARE,
            Self::ErrorCode(_) => attr::ERROR_CODE,
            Self::UnknownAttributes(_) => attr::UNKNOWN_ATTRIBUTES,
            Self::Lifetime(_) => attr::LIFETIME,
            Self::RequestedTransport(_) => attr::REQUESTED_TRANSPORT,
            Self::Data(_) => attr::DATA,
            Self::ChannelNumber(_) => attr::CHANNEL_NUMBER,
            Self::EvenPort(_) => attr::EVEN_PORT,
            Self::DontFragment => attr::DONT_FRAGMENT,
            Self::ReservationToken(_) => attr::RESERVATION_TOKEN,
            Self::RequestedAddressFamily(_) => attr::REQUESTED_ADDRESS_FAMILY,
            Self::AdditionalAddressFamily(_) => attr::ADDITIONAL_ADDRESS_FAMILY,
            Self::PasswordAlgorithms(_) => attr::PASSWORD_ALGORITHMS,
            Self::PasswordAlgorithm(_) => attr::PASSWORD_ALGORITHM,
            Self::ChangeRequest { .. } => attr::CHANGE_REQUEST,
            Self::MessageIntegrity(_) => attr::MESSAGE_INTEGRITY,
            Self::MessageIntegritySha256(_) => attr::MESSAGE_INTEGRITY_SHA256,
            Self::Fingerprint(_) => attr::FINGERPRINT,
            Self::Priority(_) => attr::PRIORITY,
            Self::UseCandidate => attr::USE_CANDIDATE,
            Self::IceControlled(_) => attr::ICE_CONTROLLED,
            Self::IceControlling(_) => attr::ICE_CONTROLLING,
            Self::Unknown { typ, .. } => *typ,
        }
    }

    /// Whether this is one of the integrity or fingerprint attributes that
    /// [`Message::encode_sealed`](super::Message::encode_sealed) appends itself.
    pub fn is_seal(&self) -> bool {
        matches!(
            self,
            Self::MessageIntegrity(_) | Self::MessageIntegritySha256(_) | Self::Fingerprint(_)
        )
    }

    /// Decode one attribute value. `offset` is where the attribute header starts, for errors.
    pub(super) fn decode(
        typ: u16,
        v: &[u8],
        tid: &TransactionId,
        offset: usize,
    ) -> Result<Self, Error> {
        let fixed = |n: usize, what: &'static str| -> Result<(), Error> {
            if v.len() == n {
                Ok(())
            } else {
                Err(Error::invalid(what, offset, "wrong length"))
            }
        };
        Ok(match typ {
            attr::MAPPED_ADDRESS => Self::MappedAddress(decode_address(v, None, offset)?),
            attr::XOR_MAPPED_ADDRESS => {
                Self::XorMappedAddress(decode_address(v, Some(tid), offset)?)
            }
            attr::XOR_PEER_ADDRESS => Self::XorPeerAddress(decode_address(v, Some(tid), offset)?),
            attr::XOR_RELAYED_ADDRESS => {
                Self::XorRelayedAddress(decode_address(v, Some(tid), offset)?)
            }
            attr::ALTERNATE_SERVER => Self::AlternateServer(decode_address(v, None, offset)?),
            attr::RESPONSE_ORIGIN => Self::ResponseOrigin(decode_address(v, None, offset)?),
            attr::OTHER_ADDRESS => Self::OtherAddress(decode_address(v, None, offset)?),
            attr::USERNAME => Self::Username(decode_text(v, MAX_USERNAME_LEN, "USERNAME", offset)?),
            attr::REALM => Self::Realm(decode_text(v, MAX_TEXT_LEN, "REALM", offset)?),
            attr::NONCE => Self::Nonce(decode_text(v, MAX_TEXT_LEN, "NONCE", offset)?),
            attr::SOFTWARE => Self::Software(decode_text(v, MAX_TEXT_LEN, "SOFTWARE", offset)?),
            attr::ERROR_CODE => {
                // RFC 8489 14.8: 21 reserved bits, 3-bit class, 8-bit number, reason.
                if v.len() < 4 {
                    return Err(Error::invalid("ERROR-CODE", offset, "shorter than 4 bytes"));
                }
                let class = u16::from(v[2] & 0x07);
                let number = u16::from(v[3]);
                if !(3..=6).contains(&class) || number > 99 {
                    return Err(Error::invalid("ERROR-CODE", offset, "code out of range"));
                }
                let reason = decode_text(&v[4..], MAX_TEXT_LEN, "ERROR-CODE", offset)?;
                Self::ErrorCode(ErrorCode {
                    code: class * 100 + number,
                    reason,
                })
            }
            attr::UNKNOWN_ATTRIBUTES => {
                if !v.len().is_multiple_of(2) {
                    return Err(Error::invalid("UNKNOWN-ATTRIBUTES", offset, "odd length"));
                }
                Self::UnknownAttributes(
                    v.chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect(),
                )
            }
            attr::LIFETIME => {
                fixed(4, "LIFETIME")?;
                Self::Lifetime(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            attr::REQUESTED_TRANSPORT => {
                // RFC 8656 18.8: protocol, then 24 RFFU bits (ignored on receipt).
                fixed(4, "REQUESTED-TRANSPORT")?;
                Self::RequestedTransport(v[0])
            }
            attr::DATA => Self::Data(v.to_vec()),
            attr::CHANNEL_NUMBER => {
                // RFC 8656 18.1: channel number, then 16 RFFU bits.
                fixed(4, "CHANNEL-NUMBER")?;
                Self::ChannelNumber(u16::from_be_bytes([v[0], v[1]]))
            }
            attr::EVEN_PORT => {
                // RFC 8656 18.7: one byte, R is the top bit.
                fixed(1, "EVEN-PORT")?;
                Self::EvenPort(v[0] & 0x80 != 0)
            }
            attr::DONT_FRAGMENT => {
                fixed(0, "DONT-FRAGMENT")?;
                Self::DontFragment
            }
            attr::RESERVATION_TOKEN => {
                fixed(8, "RESERVATION-TOKEN")?;
                let mut t = [0; 8];
                t.copy_from_slice(v);
                Self::ReservationToken(t)
            }
            attr::REQUESTED_ADDRESS_FAMILY => {
                fixed(4, "REQUESTED-ADDRESS-FAMILY")?;
                Self::RequestedAddressFamily(AddressFamily::from_code(v[0]))
            }
            attr::ADDITIONAL_ADDRESS_FAMILY => {
                fixed(4, "ADDITIONAL-ADDRESS-FAMILY")?;
                Self::AdditionalAddressFamily(AddressFamily::from_code(v[0]))
            }
            attr::PASSWORD_ALGORITHMS => Self::PasswordAlgorithms(v.to_vec()),
            attr::PASSWORD_ALGORITHM => Self::PasswordAlgorithm(v.to_vec()),
            attr::CHANGE_REQUEST => {
                // RFC 5780 7.2: A (0x04) change IP, B (0x02) change port, in the last byte.
                fixed(4, "CHANGE-REQUEST")?;
                Self::ChangeRequest {
                    change_ip: v[3] & 0x04 != 0,
                    change_port: v[3] & 0x02 != 0,
                }
            }
            attr::MESSAGE_INTEGRITY => {
                fixed(20, "MESSAGE-INTEGRITY")?;
                let mut h = [0; 20];
                h.copy_from_slice(v);
                Self::MessageIntegrity(h)
            }
            attr::MESSAGE_INTEGRITY_SHA256 => {
                if !valid_sha256_len(v.len()) {
                    return Err(Error::invalid(
                        "MESSAGE-INTEGRITY-SHA256",
                        offset,
                        "length not 16..=32 in steps of 4",
                    ));
                }
                Self::MessageIntegritySha256(v.to_vec())
            }
            attr::FINGERPRINT => {
                fixed(4, "FINGERPRINT")?;
                Self::Fingerprint(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            attr::PRIORITY => {
                fixed(4, "PRIORITY")?;
                Self::Priority(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            attr::USE_CANDIDATE => {
                fixed(0, "USE-CANDIDATE")?;
                Self::UseCandidate
            }
            attr::ICE_CONTROLLED | attr::ICE_CONTROLLING => {
                let Ok(b) = <[u8; 8]>::try_from(v) else {
                    return Err(Error::invalid("ICE-CONTROL", offset, "wrong length"));
                };
                let tie_breaker = u64::from_be_bytes(b);
                if typ == attr::ICE_CONTROLLED {
                    Self::IceControlled(tie_breaker)
                } else {
                    Self::IceControlling(tie_breaker)
                }
            }
            typ => Self::Unknown {
                typ,
                value: v.to_vec(),
            },
        })
    }

    /// Append the value (without header or padding) to `out`.
    pub(super) fn encode_value(&self, tid: &TransactionId, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Self::MappedAddress(a)
            | Self::AlternateServer(a)
            | Self::ResponseOrigin(a)
            | Self::OtherAddress(a) => encode_address(*a, None, out),
            Self::XorMappedAddress(a) | Self::XorPeerAddress(a) | Self::XorRelayedAddress(a) => {
                encode_address(*a, Some(tid), out);
            }
            Self::Username(s) => encode_text(s, MAX_USERNAME_LEN, out)?,
            Self::Realm(s) | Self::Nonce(s) | Self::Software(s) => {
                encode_text(s, MAX_TEXT_LEN, out)?;
            }
            Self::ErrorCode(e) => {
                if !(300..=699).contains(&e.code) {
                    return Err(Error::Misuse("ERROR-CODE outside 300..=699"));
                }
                // Both fit a byte: the class is 3..=6 and the number below 100.
                out.extend_from_slice(&[0, 0, (e.code / 100) as u8, (e.code % 100) as u8]);
                encode_text(&e.reason, MAX_TEXT_LEN, out)?;
            }
            Self::UnknownAttributes(types) => {
                for t in types {
                    out.extend_from_slice(&t.to_be_bytes());
                }
            }
            Self::Lifetime(s) => out.extend_from_slice(&s.to_be_bytes()),
            Self::RequestedTransport(p) => out.extend_from_slice(&[*p, 0, 0, 0]),
            Self::Data(d) | Self::PasswordAlgorithms(d) | Self::PasswordAlgorithm(d) => {
                out.extend_from_slice(d);
            }
            Self::ChannelNumber(c) => {
                out.extend_from_slice(&c.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            Self::EvenPort(r) => out.push(if *r { 0x80 } else { 0 }),
            Self::DontFragment => {}
            Self::ReservationToken(t) => out.extend_from_slice(t),
            Self::RequestedAddressFamily(f) | Self::AdditionalAddressFamily(f) => {
                out.extend_from_slice(&[f.code(), 0, 0, 0]);
            }
            Self::ChangeRequest {
                change_ip,
                change_port,
            } => {
                let flags = if *change_ip { 0x04 } else { 0 } | if *change_port { 0x02 } else { 0 };
                out.extend_from_slice(&[0, 0, 0, flags]);
            }
            Self::MessageIntegrity(h) => out.extend_from_slice(h),
            Self::MessageIntegritySha256(h) => {
                if !valid_sha256_len(h.len()) {
                    return Err(Error::Misuse(
                        "MESSAGE-INTEGRITY-SHA256 length not 16..=32 in steps of 4",
                    ));
                }
                out.extend_from_slice(h);
            }
            Self::Fingerprint(f) | Self::Priority(f) => out.extend_from_slice(&f.to_be_bytes()),
            Self::UseCandidate => {}
            Self::IceControlled(t) | Self::IceControlling(t) => {
                out.extend_from_slice(&t.to_be_bytes());
            }
            Self::Unknown { typ, value } => {
                if attr::is_known(*typ) {
                    return Err(Error::Misuse("Attribute::Unknown with a known type"));
                }
                out.extend_from_slice(value);
            }
        }
        Ok(())
    }
}

pub(super) fn valid_sha256_len(n: usize) -> bool {
    (16..=32).contains(&n) && n.is_multiple_of(4)
}

pub(super) fn decode_text(
    v: &[u8],
    max: usize,
    what: &'static str,
    offset: usize,
) -> Result<String, Error> {
    if v.len() > max {
        return Err(Error::invalid(what, offset, "too long"));
    }
    match std::str::from_utf8(v) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(Error::invalid(what, offset, "not UTF-8")),
    }
}

pub(super) fn encode_text(s: &str, max: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    if s.len() > max {
        return Err(Error::TooLarge {
            context: "text attribute",
            limit: max,
        });
    }
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// The XOR pad for an address: the cookie, then the transaction id (RFC 8489 14.2).
pub(super) fn xor_pad(tid: &TransactionId) -> [u8; 16] {
    let mut pad = [0; 16];
    pad[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    pad[4..].copy_from_slice(&tid.0);
    pad
}

/// RFC 8489 14.1 / 14.2: reserved byte, family, port, address; XORed when `tid` is given.
pub(super) fn decode_address(
    v: &[u8],
    tid: Option<&TransactionId>,
    offset: usize,
) -> Result<SocketAddr, Error> {
    if v.len() < 4 {
        return Err(Error::invalid("address", offset, "shorter than 4 bytes"));
    }
    let pad = tid.map(xor_pad).unwrap_or([0; 16]);
    let port = u16::from_be_bytes([v[2] ^ pad[0], v[3] ^ pad[1]]);
    let ip = match (v[1], v.len()) {
        (0x01, 8) => {
            let mut a = [0; 4];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v[4 + i] ^ pad[i];
            }
            IpAddr::V4(Ipv4Addr::from(a))
        }
        (0x02, 20) => {
            let mut a = [0; 16];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v[4 + i] ^ pad[i];
            }
            IpAddr::V6(Ipv6Addr::from(a))
        }
        (0x01 | 0x02, _) => return Err(Error::invalid("address", offset, "wrong length")),
        _ => return Err(Error::invalid("address", offset, "unknown address family")),
    };
    Ok(SocketAddr::new(ip, port))
}

pub(super) fn encode_address(a: SocketAddr, tid: Option<&TransactionId>, out: &mut Vec<u8>) {
    let pad = tid.map(xor_pad).unwrap_or([0; 16]);
    let port = a.port().to_be_bytes();
    let mut octets = [0; 16];
    let (family, len) = match a.ip() {
        IpAddr::V4(ip) => {
            octets[..4].copy_from_slice(&ip.octets());
            (0x01, 4)
        }
        IpAddr::V6(ip) => {
            octets.copy_from_slice(&ip.octets());
            (0x02, 16)
        }
    };
    out.extend_from_slice(&[0, family, port[0] ^ pad[0], port[1] ^ pad[1]]);
    out.extend(octets[..len].iter().zip(pad).map(|(b, p)| b ^ p));
}
