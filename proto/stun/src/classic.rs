//! Binding requests of RFC 3489 ("classic STUN") clients.
//!
//! Before RFC 5389 the four bytes after the length were part of a 128-bit transaction id;
//! many NAT-test tools still send such requests. RFC 8489 12 says how a current server
//! answers them: recognise the missing magic cookie, echo the whole 16-byte id, and put the
//! address in a plain MAPPED-ADDRESS (the client knows no XOR-MAPPED-ADDRESS).
//!
//! A server with one address cannot honour CHANGE-REQUEST (RFC 3489 11.2.4, RFC 5780 7.2):
//! a request asking to change address or port gets 420 with the attribute listed, never a
//! success that the client would read as "the other address answered".

use std::net::SocketAddr;

use crate::Error;
use crate::message::{HEADER_LEN, MAGIC_COOKIE, attr};

/// Message type of a Binding request.
const BINDING_REQUEST: u16 = 0x0001;
/// Message type of a Binding success response.
const BINDING_RESPONSE: u16 = 0x0101;
/// Message type of a Binding error response.
const BINDING_ERROR: u16 = 0x0111;
/// Largest message taken (a classic request is a header and a CHANGE-REQUEST at most).
const MAX_LEN: usize = 548;

/// A classic STUN message: type, 128-bit transaction id and raw attributes in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMessage {
    /// The 14-bit message type.
    pub typ: u16,
    /// Bytes 4..20 of the header.
    pub transaction_id: [u8; 16],
    /// `(type, value)` of each attribute, values without padding.
    pub attributes: Vec<(u16, Vec<u8>)>,
}

/// Whether `buf` is a classic (cookie-less) Binding request, the only classic message a
/// server answers.
pub fn is_classic_binding(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN
        && u16::from_be_bytes([buf[0], buf[1]]) == BINDING_REQUEST
        && buf[4..8] != MAGIC_COOKIE.to_be_bytes()
}

impl ClassicMessage {
    /// Decodes one message that fills `buf` exactly (RFC 3489 11.1: attributes are
    /// multiples of four bytes long there; padding is accepted and dropped).
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated {
                context: "classic header",
                offset: buf.len(),
            });
        }
        if buf.len() > MAX_LEN {
            return Err(Error::TooLarge {
                context: "classic STUN message",
                limit: MAX_LEN,
            });
        }
        let typ = u16::from_be_bytes([buf[0], buf[1]]);
        if typ & 0xC000 != 0 {
            return Err(invalid(0, "top two bits not zero"));
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if HEADER_LEN + len != buf.len() {
            return Err(invalid(2, "length does not match the datagram"));
        }
        let mut transaction_id = [0; 16];
        transaction_id.copy_from_slice(&buf[4..HEADER_LEN]);
        let mut attributes = Vec::new();
        let mut at = HEADER_LEN;
        while at < buf.len() {
            let Some(head) = buf.get(at..at + 4) else {
                return Err(Error::Truncated {
                    context: "classic attribute",
                    offset: at,
                });
            };
            let t = u16::from_be_bytes([head[0], head[1]]);
            let n = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let Some(value) = buf.get(at + 4..at + 4 + n) else {
                return Err(Error::Truncated {
                    context: "classic attribute",
                    offset: at,
                });
            };
            attributes.push((t, value.to_vec()));
            at += 4 + n.next_multiple_of(4);
        }
        if at != buf.len() {
            return Err(invalid(at, "padding runs past the message"));
        }
        Ok(Self {
            typ,
            transaction_id,
            attributes,
        })
    }

    /// Encodes the message, padding each value to four bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.typ.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.transaction_id);
        for (t, v) in &self.attributes {
            let n = u16::try_from(v.len()).map_err(|_| Error::TooLarge {
                context: "classic attribute",
                limit: usize::from(u16::MAX),
            })?;
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(v);
            out.resize(out.len().next_multiple_of(4), 0);
        }
        if out.len() > MAX_LEN {
            return Err(Error::TooLarge {
                context: "classic STUN message",
                limit: MAX_LEN,
            });
        }
        let len = (out.len() - HEADER_LEN) as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }

    /// The value of the first attribute of type `t`.
    pub fn get(&self, t: u16) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(a, _)| *a == t)
            .map(|(_, v)| v.as_slice())
    }
}

/// The answer to the classic Binding request `buf` from `client`: a success with
/// MAPPED-ADDRESS, or 420 when it asks for a change of address or port this server cannot
/// make. `Err` for input that is not a well-formed classic Binding request (drop it).
pub fn answer_binding(buf: &[u8], client: SocketAddr) -> Result<Vec<u8>, Error> {
    if !is_classic_binding(buf) {
        return Err(invalid(0, "not a classic Binding request"));
    }
    let req = ClassicMessage::decode(buf)?;
    let wants_change = req
        .get(attr::CHANGE_REQUEST)
        .is_some_and(|v| v.len() == 4 && v[3] & 0b0110 != 0);
    let resp = if wants_change {
        let reason = b"Unknown Attribute: no alternate address";
        let mut code = vec![0, 0, 4, 20];
        code.extend_from_slice(reason);
        ClassicMessage {
            typ: BINDING_ERROR,
            transaction_id: req.transaction_id,
            attributes: vec![
                (attr::ERROR_CODE, code),
                (
                    attr::UNKNOWN_ATTRIBUTES,
                    attr::CHANGE_REQUEST.to_be_bytes().to_vec(),
                ),
            ],
        }
    } else {
        ClassicMessage {
            typ: BINDING_RESPONSE,
            transaction_id: req.transaction_id,
            attributes: vec![(attr::MAPPED_ADDRESS, mapped_address(client))],
        }
    };
    resp.encode()
}

/// A MAPPED-ADDRESS value (RFC 3489 11.2.1; IPv6 as in RFC 8489 14.1).
fn mapped_address(a: SocketAddr) -> Vec<u8> {
    let mut v = vec![0];
    match a {
        SocketAddr::V4(s) => {
            v.push(1);
            v.extend_from_slice(&s.port().to_be_bytes());
            v.extend_from_slice(&s.ip().octets());
        }
        SocketAddr::V6(s) => {
            v.push(2);
            v.extend_from_slice(&s.port().to_be_bytes());
            v.extend_from_slice(&s.ip().octets());
        }
    }
    v
}

fn invalid(offset: usize, reason: &'static str) -> Error {
    Error::Invalid {
        context: "classic STUN message",
        offset,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn request(tid: [u8; 16], change: Option<u8>) -> Vec<u8> {
        ClassicMessage {
            typ: BINDING_REQUEST,
            transaction_id: tid,
            attributes: change
                .map(|f| vec![(attr::CHANGE_REQUEST, vec![0, 0, 0, f])])
                .unwrap_or_default(),
        }
        .encode()
        .unwrap()
    }

    /// RFC 8489 12: the whole 128-bit id echoed, the address in MAPPED-ADDRESS.
    #[test]
    fn h626_7_3_classic_binding_gets_mapped_address_and_its_own_id() {
        let tid = [0xA5; 16];
        let client: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let resp =
            ClassicMessage::decode(&answer_binding(&request(tid, None), client).unwrap()).unwrap();
        assert_eq!(resp.typ, BINDING_RESPONSE);
        assert_eq!(resp.transaction_id, tid);
        assert_eq!(
            resp.get(attr::MAPPED_ADDRESS).unwrap(),
            &[0, 1, 0x9C, 0x40, 198, 51, 100, 7]
        );
        // A CHANGE-REQUEST that changes nothing is honoured as it stands.
        let same = answer_binding(&request(tid, Some(0)), client).unwrap();
        assert_eq!(ClassicMessage::decode(&same).unwrap().typ, BINDING_RESPONSE);
    }

    /// RFC 5780 7.2: one address cannot answer "from the other address": 420, not success.
    #[test]
    fn h626_7_3_classic_change_request_without_alternate_address_is_refused() {
        let client: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        for flags in [0b0100, 0b0010, 0b0110] {
            let resp = ClassicMessage::decode(
                &answer_binding(&request([1; 16], Some(flags)), client).unwrap(),
            )
            .unwrap();
            assert_eq!(resp.typ, BINDING_ERROR);
            assert_eq!(resp.get(attr::ERROR_CODE).unwrap()[2..4], [4, 20]);
            assert_eq!(resp.get(attr::UNKNOWN_ATTRIBUTES).unwrap(), &[0, 3]);
        }
    }

    #[test]
    fn current_stun_and_garbage_are_not_classic() {
        let mut modern = request([0; 16], None);
        modern[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(!is_classic_binding(&modern));
        assert!(answer_binding(&modern, "1.2.3.4:5".parse().unwrap()).is_err());
        assert!(answer_binding(&[0, 1, 0, 4], "1.2.3.4:5".parse().unwrap()).is_err());
        let mut bad_len = request([0; 16], Some(2));
        bad_len[3] = 4;
        assert!(ClassicMessage::decode(&bad_len).is_err());
    }

    proptest! {
        #[test]
        fn classic_round_trip(
            typ in 0u16..0x4000,
            tid in any::<[u8; 16]>(),
            attrs in prop::collection::vec((any::<u16>(), prop::collection::vec(any::<u8>(), 0..40)), 0..6),
        ) {
            let m = ClassicMessage { typ, transaction_id: tid, attributes: attrs };
            let bytes = m.encode().unwrap();
            prop_assert_eq!(ClassicMessage::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn classic_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
            let _ = ClassicMessage::decode(&bytes);
            let _ = answer_binding(&bytes, "1.2.3.4:5".parse().unwrap());
        }
    }
}
