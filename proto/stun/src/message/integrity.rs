//! MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT checks on received bytes.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::Error;

use super::attribute::valid_sha256_len;
use super::{FINGERPRINT_XOR, HEADER_LEN, IntegrityAlgorithm, RawAttrs, attr, parse_header};

/// HMAC over `head` (a header whose length field is already adjusted, plus the attributes
/// that precede the integrity attribute) followed by `rest`.
pub(super) fn compute_hmac(
    alg: IntegrityAlgorithm,
    key: &[u8],
    head: &[u8],
    rest: &[u8],
) -> Vec<u8> {
    match alg {
        IntegrityAlgorithm::HmacSha1 => {
            let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key) else {
                unreachable!("HMAC accepts keys of any length")
            };
            mac.update(head);
            mac.update(rest);
            mac.finalize().into_bytes().to_vec()
        }
        IntegrityAlgorithm::HmacSha256 => {
            let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
                unreachable!("HMAC accepts keys of any length")
            };
            mac.update(head);
            mac.update(rest);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// CRC-32 of `bytes` XORed with 0x5354554e (RFC 8489 14.7).
pub(super) fn fingerprint_value(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes) ^ FINGERPRINT_XOR
}

/// Check the message integrity of a received message against `key`.
///
/// With MESSAGE-INTEGRITY-SHA256 present (and not itself after an ignored attribute),
/// that one is checked; otherwise MESSAGE-INTEGRITY (RFC 8489 9.1.3, 9.2.4). The HMAC
/// covers the header, with its length field set to the end of the checked attribute, and
/// every attribute before it (RFC 8489 14.5, 14.6); the comparison is constant-time.
/// Attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and
/// FINGERPRINT do not affect the result. Returns the algorithm that passed.
pub fn verify_integrity(buf: &[u8], key: &[u8]) -> Result<IntegrityAlgorithm, Error> {
    parse_header(buf)?;
    let mut sha1: Option<(usize, usize, &[u8])> = None;
    let mut sha256: Option<(usize, usize, &[u8])> = None;
    for raw in RawAttrs::new(buf) {
        let raw = raw?;
        match raw.typ {
            attr::MESSAGE_INTEGRITY if sha1.is_none() => {
                sha1 = Some((raw.offset, raw.end, raw.value));
            }
            attr::MESSAGE_INTEGRITY_SHA256 => {
                sha256 = Some((raw.offset, raw.end, raw.value));
                break;
            }
            _ if sha1.is_some() => break,
            _ => {}
        }
    }
    let (alg, (offset, end, value)) = match (sha256, sha1) {
        (Some(s), _) => (IntegrityAlgorithm::HmacSha256, s),
        (None, Some(s)) => (IntegrityAlgorithm::HmacSha1, s),
        (None, None) => return Err(Error::IntegrityMissing),
    };
    let ok_len = match alg {
        IntegrityAlgorithm::HmacSha1 => value.len() == 20,
        IntegrityAlgorithm::HmacSha256 => valid_sha256_len(value.len()),
    };
    if !ok_len {
        return Err(Error::invalid(
            "integrity attribute",
            offset,
            "wrong length",
        ));
    }
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&buf[..HEADER_LEN]);
    // `end` lies within a buffer whose body length fits u16.
    header[2..4].copy_from_slice(&((end - HEADER_LEN) as u16).to_be_bytes());
    let mac = compute_hmac(alg, key, &header, &buf[HEADER_LEN..offset]);
    if bool::from(mac[..value.len()].ct_eq(value)) {
        Ok(alg)
    } else {
        Err(Error::IntegrityMismatch)
    }
}

/// Check that a received message ends in a FINGERPRINT that matches it (RFC 8489 14.7).
pub fn verify_fingerprint(buf: &[u8]) -> Result<(), Error> {
    parse_header(buf)?;
    let mut last = None;
    for raw in RawAttrs::new(buf) {
        let raw = raw?;
        last = Some((raw.typ, raw.offset, raw.value));
    }
    let Some((attr::FINGERPRINT, offset, value)) = last else {
        return Err(Error::FingerprintMissing);
    };
    let Ok(v) = <[u8; 4]>::try_from(value) else {
        return Err(Error::invalid("FINGERPRINT", offset, "wrong length"));
    };
    if fingerprint_value(&buf[..offset]) == u32::from_be_bytes(v) {
        Ok(())
    } else {
        Err(Error::FingerprintMismatch)
    }
}
