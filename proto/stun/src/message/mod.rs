//! STUN messages (RFC 8489) with the TURN (RFC 8656) and NAT behaviour discovery (RFC 5780)
//! attributes.
//!
//! [`Message::decode`] parses one whole message from a buffer (a UDP datagram, or a frame
//! cut from a stream by [`crate::framing`]). It never panics, allocates at most in
//! proportion to the input, and rejects anything after the length the header announces.
//! Attributes this crate does not know are kept as [`Attribute::Unknown`];
//! [`Message::unknown_comprehension_required`] lists the ones an agent must refuse with
//! 420 (RFC 8489 6.3.1.1).
//!
//! Integrity is checked on the *received bytes*, not on a re-encoding:
//! [`verify_integrity`] and [`verify_fingerprint`]. [`Message::encode_sealed`] appends
//! MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT with the length field adjusted as RFC 8489
//! 14.5–14.7 describe.
//!
//! Strings are carried as received. This crate does not apply the OpaqueString profile
//! (RFC 8265) or SASLprep; callers pass usernames and passwords already prepared.

mod attribute;
mod integrity;
#[cfg(test)]
pub(crate) mod tests;

use std::net::SocketAddr;

use crate::Error;

pub use attribute::{AddressFamily, Attribute, ErrorCode};
use integrity::{compute_hmac, fingerprint_value};
pub use integrity::{verify_fingerprint, verify_integrity};
/// The magic cookie in bytes 4..8 of every STUN message (RFC 8489 5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// The length of the fixed STUN header (RFC 8489 5).
pub const HEADER_LEN: usize = 20;
/// The value FINGERPRINT's CRC-32 is XORed with (RFC 8489 14.7).
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// The largest message body: the 16-bit length field, rounded down to a multiple of 4.
pub const MAX_BODY_LEN: usize = 0xFFFC;
/// USERNAME must be shorter than 513 bytes (RFC 5389 15.3; RFC 8489 14.3 tightens this
/// to 509, which senders should keep to).
pub const MAX_USERNAME_LEN: usize = 512;
/// REALM, NONCE, SOFTWARE and the ERROR-CODE reason may be up to 763 bytes
/// (RFC 8489 14.9, 14.10, 14.8, 14.14).
pub const MAX_TEXT_LEN: usize = 763;

/// The attribute type codes this crate knows (RFC 8489 18.3, RFC 8656 18, RFC 5780 7).
pub mod attr {
    /// MAPPED-ADDRESS (RFC 8489 14.1).
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// CHANGE-REQUEST (RFC 5780 7.2).
    pub const CHANGE_REQUEST: u16 = 0x0003;
    /// USERNAME (RFC 8489 14.3).
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (RFC 8489 14.5).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE (RFC 8489 14.8).
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES (RFC 8489 14.13).
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// CHANNEL-NUMBER (RFC 8656 18.1).
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    /// LIFETIME (RFC 8656 18.2).
    pub const LIFETIME: u16 = 0x000D;
    /// XOR-PEER-ADDRESS (RFC 8656 18.3).
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    /// DATA (RFC 8656 18.4).
    pub const DATA: u16 = 0x0013;
    /// REALM (RFC 8489 14.9).
    pub const REALM: u16 = 0x0014;
    /// NONCE (RFC 8489 14.10).
    pub const NONCE: u16 = 0x0015;
    /// XOR-RELAYED-ADDRESS (RFC 8656 18.5).
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 18.6).
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    /// EVEN-PORT (RFC 8656 18.7).
    pub const EVEN_PORT: u16 = 0x0018;
    /// REQUESTED-TRANSPORT (RFC 8656 18.8).
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    /// DONT-FRAGMENT (RFC 8656 18.9).
    pub const DONT_FRAGMENT: u16 = 0x001A;
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 14.6).
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    /// PASSWORD-ALGORITHM (RFC 8489 14.12).
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    /// XOR-MAPPED-ADDRESS (RFC 8489 14.2).
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// RESERVATION-TOKEN (RFC 8656 18.10).
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    /// PRIORITY (RFC 8445 16.1).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (RFC 8445 16.1).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 18.11).
    pub const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
    /// PASSWORD-ALGORITHMS (RFC 8489 14.11).
    pub const PASSWORD_ALGORITHMS: u16 = 0x8002;
    /// SOFTWARE (RFC 8489 14.14).
    pub const SOFTWARE: u16 = 0x8022;
    /// ALTERNATE-SERVER (RFC 8489 14.15).
    pub const ALTERNATE_SERVER: u16 = 0x8023;
    /// FINGERPRINT (RFC 8489 14.7).
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED (RFC 8445 16.1).
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING (RFC 8445 16.1).
    pub const ICE_CONTROLLING: u16 = 0x802A;
    /// RESPONSE-ORIGIN (RFC 5780 7.3).
    pub const RESPONSE_ORIGIN: u16 = 0x802B;
    /// OTHER-ADDRESS (RFC 5780 7.4).
    pub const OTHER_ADDRESS: u16 = 0x802C;

    /// Whether an agent that does not understand this type must reject the message
    /// (types 0x0000-0x7FFF, RFC 8489 14).
    pub fn is_comprehension_required(typ: u16) -> bool {
        typ < 0x8000
    }

    /// Whether this crate decodes the type into a typed [`super::Attribute`].
    pub fn is_known(typ: u16) -> bool {
        matches!(
            typ,
            MAPPED_ADDRESS
                | CHANGE_REQUEST
                | USERNAME
                | MESSAGE_INTEGRITY
                | ERROR_CODE
                | UNKNOWN_ATTRIBUTES
                | CHANNEL_NUMBER
                | LIFETIME
                | XOR_PEER_ADDRESS
                | DATA
                | REALM
                | NONCE
                | XOR_RELAYED_ADDRESS
                | REQUESTED_ADDRESS_FAMILY
                | EVEN_PORT
                | REQUESTED_TRANSPORT
                | DONT_FRAGMENT
                | MESSAGE_INTEGRITY_SHA256
                | PASSWORD_ALGORITHM
                | XOR_MAPPED_ADDRESS
                | RESERVATION_TOKEN
                | ADDITIONAL_ADDRESS_FAMILY
                | PASSWORD_ALGORITHMS
                | SOFTWARE
                | ALTERNATE_SERVER
                | FINGERPRINT
                | RESPONSE_ORIGIN
                | OTHER_ADDRESS
                | PRIORITY
                | USE_CANDIDATE
                | ICE_CONTROLLED
                | ICE_CONTROLLING
        )
    }
}

/// The message class, two bits of the message type (RFC 8489 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `0b00`.
    Request,
    /// `0b01`.
    Indication,
    /// `0b10`.
    SuccessResponse,
    /// `0b11`.
    ErrorResponse,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Self::Request => 0b00,
            Self::Indication => 0b01,
            Self::SuccessResponse => 0b10,
            Self::ErrorResponse => 0b11,
        }
    }

    fn from_bits(bits: u16) -> Self {
        match bits & 0b11 {
            0b00 => Self::Request,
            0b01 => Self::Indication,
            0b10 => Self::SuccessResponse,
            _ => Self::ErrorResponse,
        }
    }
}

/// A 12-bit STUN method (RFC 8489 18.2, RFC 8656 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(u16);

impl Method {
    /// Binding (RFC 8489).
    pub const BINDING: Self = Self(0x001);
    /// Allocate (RFC 8656 7).
    pub const ALLOCATE: Self = Self(0x003);
    /// Refresh (RFC 8656 8).
    pub const REFRESH: Self = Self(0x004);
    /// Send (RFC 8656 11).
    pub const SEND: Self = Self(0x006);
    /// Data (RFC 8656 11).
    pub const DATA: Self = Self(0x007);
    /// CreatePermission (RFC 8656 10).
    pub const CREATE_PERMISSION: Self = Self(0x008);
    /// ChannelBind (RFC 8656 12).
    pub const CHANNEL_BIND: Self = Self(0x009);

    /// A method from its 12-bit number; `None` above 0xFFF.
    pub const fn new(number: u16) -> Option<Self> {
        if number <= 0xFFF {
            Some(Self(number))
        } else {
            None
        }
    }

    /// The 12-bit method number.
    pub const fn number(self) -> u16 {
        self.0
    }
}

/// The 96-bit transaction id (RFC 8489 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId(pub [u8; 12]);

/// Encode class and method into the 14-bit message type (RFC 8489 5, figure 3):
/// `M11..M7 C1 M6..M4 C0 M3..M0`.
pub fn message_type(class: Class, method: Method) -> u16 {
    let m = method.0;
    let c = class.bits();
    (m & 0x000F) | ((c & 0b01) << 4) | ((m & 0x0070) << 1) | ((c & 0b10) << 7) | ((m & 0x0F80) << 2)
}

/// Split a message type into class and method; `None` if either of the two top bits is
/// set (RFC 8489 5).
pub fn split_message_type(typ: u16) -> Option<(Class, Method)> {
    if typ & 0xC000 != 0 {
        return None;
    }
    let m = (typ & 0x000F) | ((typ >> 1) & 0x0070) | ((typ >> 2) & 0x0F80);
    let c = ((typ >> 4) & 0b01) | ((typ >> 7) & 0b10);
    Some((Class::from_bits(c), Method(m)))
}
/// Which HMAC protects a message (RFC 8489 14.5, 14.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegrityAlgorithm {
    /// MESSAGE-INTEGRITY, HMAC-SHA1, 20 bytes.
    HmacSha1,
    /// MESSAGE-INTEGRITY-SHA256, HMAC-SHA256, sent as 32 bytes.
    HmacSha256,
}

/// A STUN message: header fields and the attributes in wire order.
///
/// `attributes` holds everything that was on the wire, including attributes after
/// MESSAGE-INTEGRITY that RFC 8489 14.5 says to ignore; read through
/// [`Message::effective_attributes`] (or the typed getters, which use it) to honour that.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// The class.
    pub class: Class,
    /// The method.
    pub method: Method,
    /// The transaction id.
    pub transaction_id: TransactionId,
    /// The attributes in order.
    pub attributes: Vec<Attribute>,
}

/// The fixed header of a message as found in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    class: Class,
    method: Method,
    tid: TransactionId,
}

/// Check the header and that the buffer holds exactly one message (RFC 8489 5, 6.3).
fn parse_header(buf: &[u8]) -> Result<Header, Error> {
    if buf.len() < HEADER_LEN {
        return Err(Error::truncated("header", buf.len()));
    }
    let typ = u16::from_be_bytes([buf[0], buf[1]]);
    let Some((class, method)) = split_message_type(typ) else {
        return Err(Error::invalid("header", 0, "top two bits not zero"));
    };
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if len % 4 != 0 {
        return Err(Error::invalid("header", 2, "length not a multiple of 4"));
    }
    if u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) != MAGIC_COOKIE {
        return Err(Error::invalid("header", 4, "wrong magic cookie"));
    }
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Err(Error::truncated("message", buf.len()));
    }
    if buf.len() > total {
        return Err(Error::invalid("message", total, "bytes after the message"));
    }
    let mut tid = [0; 12];
    tid.copy_from_slice(&buf[8..20]);
    Ok(Header {
        class,
        method,
        tid: TransactionId(tid),
    })
}

/// One attribute as found in a buffer: type, offset of its header, and its value.
struct RawAttr<'a> {
    typ: u16,
    offset: usize,
    value: &'a [u8],
    /// Offset just past the padding.
    end: usize,
}

/// Walk the attributes of a buffer whose header [`parse_header`] accepted.
struct RawAttrs<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> RawAttrs<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            offset: HEADER_LEN,
        }
    }
}

impl<'a> Iterator for RawAttrs<'a> {
    type Item = Result<RawAttr<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let off = self.offset;
        if off >= self.buf.len() {
            return None;
        }
        // RFC 8489 14: type, length, value, padding to a multiple of 4.
        let Some(h) = self.buf.get(off..off + 4) else {
            self.offset = self.buf.len();
            return Some(Err(Error::truncated("attribute header", off)));
        };
        let typ = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let start = off + 4;
        let end = start + len;
        let padded = start + pad4(len);
        if padded > self.buf.len() {
            self.offset = self.buf.len();
            return Some(Err(Error::truncated("attribute", off)));
        }
        self.offset = padded;
        Some(Ok(RawAttr {
            typ,
            offset: off,
            value: &self.buf[start..end],
            end: padded,
        }))
    }
}

/// `n` rounded up to a multiple of 4.
pub(crate) fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Whether `buf` starts like a STUN message: top bits zero, magic cookie, length a
/// multiple of 4 (RFC 8489 5; the demultiplexing test of RFC 7983).
pub fn looks_like_stun(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN
        && buf[0] & 0xC0 == 0
        && buf[3].is_multiple_of(4)
        && buf[4..8] == MAGIC_COOKIE.to_be_bytes()
}

impl Message {
    /// An empty message.
    pub fn new(class: Class, method: Method, transaction_id: TransactionId) -> Self {
        Self {
            class,
            method,
            transaction_id,
            attributes: Vec::new(),
        }
    }

    /// Builder: append an attribute.
    #[must_use]
    pub fn with(mut self, attribute: Attribute) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// Decode exactly one message from `buf`.
    ///
    /// Rejects a bad header, a length that disagrees with `buf` (so trailing bytes are an
    /// error), truncated or malformed attributes of the known types, and any attribute
    /// after FINGERPRINT (RFC 8489 14.7). Padding bytes are ignored (RFC 8489 14).
    /// Integrity and fingerprint are *not* checked here: see [`verify_integrity`] and
    /// [`verify_fingerprint`].
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let h = parse_header(buf)?;
        let mut attributes = Vec::new();
        let mut after_fingerprint = false;
        for raw in RawAttrs::new(buf) {
            let raw = raw?;
            if after_fingerprint {
                return Err(Error::invalid(
                    "attribute",
                    raw.offset,
                    "attribute after FINGERPRINT",
                ));
            }
            after_fingerprint = raw.typ == attr::FINGERPRINT;
            attributes.push(Attribute::decode(raw.typ, raw.value, &h.tid, raw.offset)?);
        }
        Ok(Self {
            class: h.class,
            method: h.method,
            transaction_id: h.tid,
            attributes,
        })
    }

    /// Encode the message with its attributes exactly as they are, integrity and
    /// fingerprint values included verbatim. Padding is written as zeros.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = self.encode_header();
        for a in &self.attributes {
            push_attr(&mut out, a, &self.transaction_id)?;
        }
        finish_length(&mut out)?;
        Ok(out)
    }

    /// Encode the message and append MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256
    /// computed with `integrity`'s key, then FINGERPRINT if asked.
    ///
    /// The length field is set to the end of each appended attribute before it is
    /// computed (RFC 8489 14.5, 14.6, 14.7). The message must not already hold any of
    /// these attributes ([`Error::Misuse`]). The key is the short-term password or the
    /// long-term key of [`crate::auth::long_term_key`].
    pub fn encode_sealed(
        &self,
        integrity: Option<(IntegrityAlgorithm, &[u8])>,
        fingerprint: bool,
    ) -> Result<Vec<u8>, Error> {
        if self.attributes.iter().any(Attribute::is_seal) {
            return Err(Error::Misuse(
                "message already holds MESSAGE-INTEGRITY or FINGERPRINT",
            ));
        }
        let mut out = self.encode()?;
        if let Some((alg, key)) = integrity {
            let (typ, len) = match alg {
                IntegrityAlgorithm::HmacSha1 => (attr::MESSAGE_INTEGRITY, 20),
                IntegrityAlgorithm::HmacSha256 => (attr::MESSAGE_INTEGRITY_SHA256, 32),
            };
            let body = out.len() - HEADER_LEN + 4 + len;
            set_length(&mut out, body)?;
            let mac = compute_hmac(alg, key, &out, &[]);
            out.extend_from_slice(&typ.to_be_bytes());
            out.extend_from_slice(&(len as u16).to_be_bytes());
            out.extend_from_slice(&mac[..len]);
        }
        if fingerprint {
            let body = out.len() - HEADER_LEN + 8;
            set_length(&mut out, body)?;
            let crc = fingerprint_value(&out);
            out.extend_from_slice(&attr::FINGERPRINT.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&crc.to_be_bytes());
        }
        finish_length(&mut out)?;
        Ok(out)
    }

    fn encode_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        out.extend_from_slice(&message_type(self.class, self.method).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0);
        out
    }

    /// The attributes an agent acts on: everything up to and including the first
    /// MESSAGE-INTEGRITY, then only a MESSAGE-INTEGRITY-SHA256 right after it, and
    /// FINGERPRINT (RFC 8489 14.5, 14.6). Once an attribute has been ignored, a later
    /// MESSAGE-INTEGRITY-SHA256 is ignored too; [`verify_integrity`] reads the same way.
    pub fn effective_attributes(&self) -> impl Iterator<Item = &Attribute> {
        // 0: before any integrity; 1: right after MESSAGE-INTEGRITY; 2: closed.
        let mut state = 0u8;
        self.attributes.iter().filter(move |a| match (state, a) {
            (0, Attribute::MessageIntegrity(_)) => {
                state = 1;
                true
            }
            (0 | 1, Attribute::MessageIntegritySha256(_)) => {
                state = 2;
                true
            }
            (0, _) | (_, Attribute::Fingerprint(_)) => true,
            _ => {
                state = 2;
                false
            }
        })
    }

    /// The first effective attribute of the given type.
    pub fn get(&self, typ: u16) -> Option<&Attribute> {
        self.effective_attributes().find(|a| a.typ() == typ)
    }

    /// The effective attribute types, comprehension-required and unknown to this crate,
    /// in order and without repeats: what a 420 response lists in UNKNOWN-ATTRIBUTES
    /// (RFC 8489 6.3.1.1).
    pub fn unknown_comprehension_required(&self) -> Vec<u16> {
        let mut out = Vec::new();
        for a in self.effective_attributes() {
            if let Attribute::Unknown { typ, .. } = a
                && attr::is_comprehension_required(*typ)
                && !out.contains(typ)
            {
                out.push(*typ);
            }
        }
        out
    }

    fn text(&self, typ: u16) -> Option<&str> {
        match self.get(typ)? {
            Attribute::Username(s)
            | Attribute::Realm(s)
            | Attribute::Nonce(s)
            | Attribute::Software(s) => Some(s),
            _ => None,
        }
    }

    fn address(&self, typ: u16) -> Option<SocketAddr> {
        match self.get(typ)? {
            Attribute::MappedAddress(a)
            | Attribute::XorMappedAddress(a)
            | Attribute::XorPeerAddress(a)
            | Attribute::XorRelayedAddress(a)
            | Attribute::AlternateServer(a)
            | Attribute::ResponseOrigin(a)
            | Attribute::OtherAddress(a) => Some(*a),
            _ => None,
        }
    }

    /// USERNAME.
    pub fn username(&self) -> Option<&str> {
        self.text(attr::USERNAME)
    }

    /// REALM.
    pub fn realm(&self) -> Option<&str> {
        self.text(attr::REALM)
    }

    /// NONCE.
    pub fn nonce(&self) -> Option<&str> {
        self.text(attr::NONCE)
    }

    /// SOFTWARE.
    pub fn software(&self) -> Option<&str> {
        self.text(attr::SOFTWARE)
    }

    /// ERROR-CODE.
    pub fn error_code(&self) -> Option<&ErrorCode> {
        match self.get(attr::ERROR_CODE)? {
            Attribute::ErrorCode(e) => Some(e),
            _ => None,
        }
    }

    /// XOR-MAPPED-ADDRESS.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.address(attr::XOR_MAPPED_ADDRESS)
    }

    /// MAPPED-ADDRESS.
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.address(attr::MAPPED_ADDRESS)
    }

    /// XOR-RELAYED-ADDRESS (the first; an Allocate success may carry two, RFC 8656 7.3).
    pub fn xor_relayed_address(&self) -> Option<SocketAddr> {
        self.address(attr::XOR_RELAYED_ADDRESS)
    }

    /// Every effective XOR-PEER-ADDRESS (CreatePermission may carry several,
    /// RFC 8656 10.1).
    pub fn xor_peer_addresses(&self) -> Vec<SocketAddr> {
        self.effective_attributes()
            .filter_map(|a| match a {
                Attribute::XorPeerAddress(p) => Some(*p),
                _ => None,
            })
            .collect()
    }

    /// LIFETIME.
    pub fn lifetime(&self) -> Option<u32> {
        match self.get(attr::LIFETIME)? {
            Attribute::Lifetime(s) => Some(*s),
            _ => None,
        }
    }

    /// REQUESTED-TRANSPORT.
    pub fn requested_transport(&self) -> Option<u8> {
        match self.get(attr::REQUESTED_TRANSPORT)? {
            Attribute::RequestedTransport(p) => Some(*p),
            _ => None,
        }
    }

    /// CHANNEL-NUMBER.
    pub fn channel_number(&self) -> Option<u16> {
        match self.get(attr::CHANNEL_NUMBER)? {
            Attribute::ChannelNumber(c) => Some(*c),
            _ => None,
        }
    }

    /// DATA.
    pub fn data(&self) -> Option<&[u8]> {
        match self.get(attr::DATA)? {
            Attribute::Data(d) => Some(d),
            _ => None,
        }
    }

    /// PRIORITY (RFC 8445 7.1.1).
    pub fn priority(&self) -> Option<u32> {
        match self.get(attr::PRIORITY)? {
            Attribute::Priority(p) => Some(*p),
            _ => None,
        }
    }

    /// Whether USE-CANDIDATE is present (RFC 8445 7.1.2).
    pub fn use_candidate(&self) -> bool {
        self.get(attr::USE_CANDIDATE).is_some()
    }

    /// The tie-breaker of ICE-CONTROLLED (RFC 8445 7.1.3).
    pub fn ice_controlled(&self) -> Option<u64> {
        match self.get(attr::ICE_CONTROLLED)? {
            Attribute::IceControlled(t) => Some(*t),
            _ => None,
        }
    }

    /// The tie-breaker of ICE-CONTROLLING (RFC 8445 7.1.3).
    pub fn ice_controlling(&self) -> Option<u64> {
        match self.get(attr::ICE_CONTROLLING)? {
            Attribute::IceControlling(t) => Some(*t),
            _ => None,
        }
    }
}

fn push_attr(out: &mut Vec<u8>, a: &Attribute, tid: &TransactionId) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(&a.typ().to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    a.encode_value(tid, out)?;
    let len = out.len() - start - 4;
    let Ok(len16) = u16::try_from(len) else {
        return Err(Error::TooLarge {
            context: "attribute value",
            limit: usize::from(u16::MAX),
        });
    };
    out[start + 2..start + 4].copy_from_slice(&len16.to_be_bytes());
    out.resize(start + 4 + pad4(len), 0);
    if out.len() - HEADER_LEN > MAX_BODY_LEN {
        return Err(Error::TooLarge {
            context: "message body",
            limit: MAX_BODY_LEN,
        });
    }
    Ok(())
}

fn set_length(out: &mut [u8], body: usize) -> Result<(), Error> {
    if body > MAX_BODY_LEN {
        return Err(Error::TooLarge {
            context: "message body",
            limit: MAX_BODY_LEN,
        });
    }
    // MAX_BODY_LEN fits in u16.
    out[2..4].copy_from_slice(&(body as u16).to_be_bytes());
    Ok(())
}

fn finish_length(out: &mut [u8]) -> Result<(), Error> {
    let body = out.len() - HEADER_LEN;
    set_length(out, body)
}
