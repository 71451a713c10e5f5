//! Shared clips (H.626.4 8.7.1 download, issue 17 item 9; docs/design/cloud-storage.md
//! "Shared clip links as built"): the share id, the public link's paths and the limits of a
//! clip.
//!
//! ```text
//! share id = 22 base64url characters (unpadded) of 16 random bytes
//! link     = "/c/" share-id                the page (a <video> and a download link)
//!          | "/c/" share-id "/download"    the clip as an attachment
//! ```
//!
//! The share id is the only secret of a link: 128 random bits, so it cannot be guessed.
//! It names the clip object `<prefix>/clips/<id>.mp4` ([`crate::ClipKey`]) and is the
//! `sub` of the grants that reach it. [`ShareId`]'s parser accepts only the one canonical
//! spelling (the last character carries 2 bits of padding that must be zero), so an id
//! prints back to exactly the text it was read from.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

/// Characters of a share id.
pub const ID_CHARS: usize = 22;
/// Longest clip: 15 minutes of video.
pub const MAX_CLIP_MS: u64 = 15 * 60_000;
/// Longest life of a link: 30 days (the share grant's longest lifetime).
pub const MAX_LIFE_S: u64 = crate::grant::MAX_LIFETIME_S;
/// Shortest life of a link: one minute.
pub const MIN_LIFE_S: u64 = 60;
/// Life of a link when the owner names none: 7 days.
pub const DEFAULT_LIFE_S: u64 = 7 * 86_400;
/// Longest label.
pub const MAX_LABEL: usize = 120;

/// A share id: 16 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareId([u8; 16]);

impl ShareId {
    /// The id of 16 (random) bytes.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    /// Its bytes.
    pub fn bytes(&self) -> [u8; 16] {
        self.0
    }

    /// A short reference for logs and the audit log: its first 6 characters (36 of its
    /// 128 bits), which do not open the link.
    pub fn short(&self) -> String {
        self.to_string()[..6].to_owned()
    }
}

impl fmt::Display for ShareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for ShareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the whole id: it opens the link.
        write!(f, "ShareId({}…)", self.short())
    }
}

impl FromStr for ShareId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        const BAD: Error = Error::Key("a share id is 22 base64url characters");
        if s.len() != ID_CHARS
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(BAD);
        }
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| BAD)?;
        let b: [u8; 16] = raw.try_into().map_err(|_| BAD)?;
        let id = Self(b);
        // One spelling only: the padding bits of the last character are zero.
        if id.to_string() != s {
            return Err(BAD);
        }
        Ok(id)
    }
}

/// What a public link path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPart {
    /// `/c/<id>`: the page.
    Page,
    /// `/c/<id>/download`: the file.
    Download,
}

/// The path of `part` of link `id`.
pub fn link_path(id: &ShareId, part: LinkPart) -> String {
    match part {
        LinkPart::Page => format!("/c/{id}"),
        LinkPart::Download => format!("/c/{id}/download"),
    }
}

/// Parses a public link path (without query), as [`link_path`] prints it.
pub fn parse_link(path: &str) -> Result<(ShareId, LinkPart), Error> {
    let rest = path
        .strip_prefix("/c/")
        .ok_or(Error::Key("a link path starts with /c/"))?;
    let (id, part) = match rest.split_once('/') {
        None => (rest, LinkPart::Page),
        Some((id, "download")) => (id, LinkPart::Download),
        Some(_) => return Err(Error::Key("a link path is /c/<id> or /c/<id>/download")),
    };
    Ok((id.parse()?, part))
}

/// Why a clip request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClipRefusal {
    /// `to` not after `from`.
    #[error("the clip must end after it starts")]
    Empty,
    /// Longer than [`MAX_CLIP_MS`].
    #[error("a clip is at most 15 minutes long")]
    TooLong,
    /// A life outside [`MIN_LIFE_S`]..=[`MAX_LIFE_S`].
    #[error("a link lives 1 minute to 30 days")]
    Life,
    /// A label too long or with control characters.
    #[error("a label is at most 120 characters, without control characters")]
    Label,
}

/// Checks a clip request: its range `[from_ms, to_ms)`, the link's life in seconds and its
/// label. Returns the life (the default when absent).
pub fn check_request(
    from_ms: u64,
    to_ms: u64,
    life_s: Option<u64>,
    label: Option<&str>,
) -> Result<u64, ClipRefusal> {
    if to_ms <= from_ms {
        return Err(ClipRefusal::Empty);
    }
    if to_ms - from_ms > MAX_CLIP_MS {
        return Err(ClipRefusal::TooLong);
    }
    let life = life_s.unwrap_or(DEFAULT_LIFE_S);
    if !(MIN_LIFE_S..=MAX_LIFE_S).contains(&life) {
        return Err(ClipRefusal::Life);
    }
    if label.is_some_and(|l| l.chars().count() > MAX_LABEL || l.chars().any(char::is_control)) {
        return Err(ClipRefusal::Label);
    }
    Ok(life)
}

/// Whether `bytes` begin like an MP4 file (an `ftyp` box first), the only form a clip is
/// stored in.
pub fn looks_like_mp4(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[4..8] == b"ftyp"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn h626_8_7_1_share_ids_and_links_parse_one_spelling() {
        let id = ShareId::from_bytes([7; 16]);
        let s = id.to_string();
        assert_eq!(s.len(), ID_CHARS);
        assert_eq!(s.parse::<ShareId>().unwrap(), id);
        assert_eq!(
            parse_link(&format!("/c/{s}")).unwrap(),
            (id, LinkPart::Page)
        );
        assert_eq!(
            parse_link(&format!("/c/{s}/download")).unwrap(),
            (id, LinkPart::Download)
        );
        for bad in [
            "",
            "/c/",
            &format!("/c/{s}/"),
            &format!("/c/{s}/x"),
            &format!("/t/{s}"),
            &format!("/c/{}", &s[..21]),
            &format!("/c/{s}A"),
            "/c/../../etc/passwd000",
            "/c/AAAAAAAAAAAAAAAAAAAAA=",
            // Non-zero padding bits: the same bytes, a second spelling.
            "/c/AAAAAAAAAAAAAAAAAAAAAB",
        ] {
            assert!(parse_link(bad).is_err(), "{bad}");
        }
        assert!(!format!("{id:?}").contains(&s));
    }

    #[test]
    fn h626_8_7_1_clip_requests_are_bounded() {
        assert_eq!(check_request(0, 1000, None, None), Ok(DEFAULT_LIFE_S));
        assert_eq!(
            check_request(0, MAX_CLIP_MS, Some(60), Some("door")),
            Ok(60)
        );
        assert_eq!(check_request(5, 5, None, None), Err(ClipRefusal::Empty));
        assert_eq!(
            check_request(0, MAX_CLIP_MS + 1, None, None),
            Err(ClipRefusal::TooLong)
        );
        assert_eq!(check_request(0, 1, Some(59), None), Err(ClipRefusal::Life));
        assert_eq!(
            check_request(0, 1, Some(MAX_LIFE_S + 1), None),
            Err(ClipRefusal::Life)
        );
        assert_eq!(
            check_request(0, 1, None, Some("a\nb")),
            Err(ClipRefusal::Label)
        );
        assert!(looks_like_mp4(b"\0\0\0\x18ftypisom"));
        assert!(!looks_like_mp4(b"\0\0\0\x01\x67"));
    }

    proptest! {
        #[test]
        fn h626_8_7_1_share_links_round_trip(b in any::<[u8; 16]>(), dl in any::<bool>()) {
            let id = ShareId::from_bytes(b);
            let part = if dl { LinkPart::Download } else { LinkPart::Page };
            let path = link_path(&id, part);
            prop_assert_eq!(parse_link(&path).unwrap(), (id, part));
            prop_assert_eq!(id.to_string().parse::<ShareId>().unwrap(), id);
        }

        #[test]
        fn h626_8_7_1_any_link_text_that_parses_prints_back(s in "/c/[A-Za-z0-9_-]{20,24}(/download)?") {
            if let Ok((id, part)) = parse_link(&s) {
                prop_assert_eq!(link_path(&id, part), s);
            }
        }
    }
}
