//! The signed link of a timed-snapshot SMS (H.626.4 6.1.12): `/s/{token}` opens one JPEG
//! kept by the CMU, without a login, until the link expires.
//!
//! A token is 28 bytes in unpadded base64url (38 characters): the snapshot's id (8 bytes,
//! big-endian), the expiry in Unix seconds (8 bytes, big-endian) and the first 12 bytes of
//! an HMAC-SHA-256 over both under the platform's link key, prefixed by a purpose label so
//! the tag can never be taken for another use of the key. A token is only ever read by the
//! platform that minted it, so nothing else is in it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// Separates these tags from any other use of HMAC.
const PURPOSE: &[u8] = b"peercam/6.1.12/snapshot-link/v1\0";
/// Bytes of the tag kept.
const TAG: usize = 12;
/// Bytes of the signed body: id (8) and expiry (8).
const BODY: usize = 16;
/// Bytes of a decoded token.
const LEN: usize = BODY + TAG;
/// Characters of a token.
pub const TOKEN_CHARS: usize = (LEN * 8).div_ceil(6);

/// Why a link does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkRefusal {
    /// Not a token this platform signed (malformed or tampered with): as if absent.
    #[error("no such link")]
    Forged,
    /// Signed here, but past its expiry.
    #[error("this link has expired")]
    Expired,
}

fn tagger(key: &[u8; 32], body: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(PURPOSE);
    m.update(body);
    m
}

/// A link token for snapshot `id`, valid until `exp_s` (Unix seconds) included.
pub fn mint(key: &[u8; 32], id: i64, exp_s: u64) -> String {
    let mut raw = Vec::with_capacity(LEN);
    raw.extend_from_slice(&id.to_be_bytes());
    raw.extend_from_slice(&exp_s.to_be_bytes());
    let tag = tagger(key, &raw).finalize().into_bytes();
    raw.extend_from_slice(&tag[..TAG]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The snapshot a token names, if it was signed with `key` and is not expired at `now_s`.
/// The tag is checked first (in constant time), so a forged token says nothing, not even
/// whether it would have expired.
pub fn verify(key: &[u8; 32], token: &str, now_s: u64) -> Result<i64, LinkRefusal> {
    if token.len() != TOKEN_CHARS {
        return Err(LinkRefusal::Forged);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| LinkRefusal::Forged)?;
    let (body, tag) = raw.split_at_checked(BODY).ok_or(LinkRefusal::Forged)?;
    if tag.len() != TAG {
        return Err(LinkRefusal::Forged);
    }
    tagger(key, body)
        .verify_truncated_left(tag)
        .map_err(|_| LinkRefusal::Forged)?;
    let (id, exp) = body.split_at(8);
    let id = i64::from_be_bytes(id.try_into().map_err(|_| LinkRefusal::Forged)?);
    let exp = u64::from_be_bytes(exp.try_into().map_err(|_| LinkRefusal::Forged)?);
    if exp < now_s {
        return Err(LinkRefusal::Expired);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn h626_6_1_12_link_token_is_bound_signed_and_expires() {
        let key = [7u8; 32];
        let t = mint(&key, 42, 1000);
        assert_eq!(t.len(), TOKEN_CHARS);
        assert_eq!(verify(&key, &t, 999), Ok(42));
        assert_eq!(verify(&key, &t, 1000), Ok(42));
        assert_eq!(verify(&key, &t, 1001), Err(LinkRefusal::Expired));
        assert_eq!(
            verify(&[8u8; 32], &t, 0),
            Err(LinkRefusal::Forged),
            "another key"
        );
        // Every changed character (but the last, whose low bits are padding) is refused.
        for i in 0..t.len() - 1 {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(b).unwrap();
            assert_eq!(
                verify(&key, &forged, 0),
                Err(LinkRefusal::Forged),
                "changed at {i}"
            );
        }
        assert_eq!(verify(&key, "short", 0), Err(LinkRefusal::Forged));
        assert_eq!(verify(&key, &format!("{t}A"), 0), Err(LinkRefusal::Forged));
        assert_ne!(mint(&key, 43, 1000), t);
    }

    proptest! {
        #[test]
        fn h626_6_1_12_link_token_round_trips(
            key in any::<[u8; 32]>(),
            id in any::<i64>(),
            exp in any::<u64>(),
            now in any::<u64>(),
        ) {
            let t = mint(&key, id, exp);
            prop_assert_eq!(t.len(), TOKEN_CHARS);
            let want = if exp < now { Err(LinkRefusal::Expired) } else { Ok(id) };
            prop_assert_eq!(verify(&key, &t, now), want);
        }

        #[test]
        fn h626_6_1_12_any_text_is_refused_or_names_a_minted_link(
            key in any::<[u8; 32]>(),
            text in "[A-Za-z0-9_-]{0,48}",
        ) {
            if let Ok(id) = verify(&key, &text, 0) {
                // Only a minted token opens; minting what it carries gives it back.
                let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
                let exp = u64::from_be_bytes(raw[8..16].try_into().unwrap());
                prop_assert_eq!(mint(&key, id, exp), text);
            }
        }
    }
}
