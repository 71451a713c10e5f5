//! Object keys: where the CS puts each object in the store (H.626.4 8.7.1).
//!
//! ```text
//! segment object   <prefix>/<yyyy>/<mm>/<dd>/<start>-<seq>.seg
//! day manifest     <prefix>/<yyyy>/<mm>/<dd>/manifest
//! shared clip      <prefix>/clips/<share>.mp4
//! prefix           s + 22 base64url characters (16 random bytes, unpadded)
//! ```
//!
//! `<start>` is the Unix time of the object's first frame in milliseconds, 13 digits with
//! leading zeros; `<seq>` the camera's upload sequence number, 10 digits; the date is the
//! UTC date of `<start>`. `<share>` is 1 to 64 characters of `A-Z a-z 0-9 _ -`.
//!
//! The CS never uses a key from a request as a string: it parses it here and writes the
//! [`Display`](std::fmt::Display) of what was parsed. The parser accepts exactly the
//! strings `Display` produces (one spelling per key), so no `..`, doubled or trailing
//! slash, sign, short number or mismatched date gets through.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

/// Largest `<start>`: 13 digits of Unix milliseconds (year 2286).
pub const MAX_START_MS: u64 = 9_999_999_999_999;
/// Largest `<seq>`: 10 digits.
pub const MAX_SEQ: u64 = 9_999_999_999;
/// Milliseconds in a UTC day.
pub const DAY_MS: u64 = 86_400_000;
/// Largest day number (days since 1970-01-01) a key can name.
pub const MAX_DAY: u32 = (MAX_START_MS / DAY_MS) as u32;
/// Longest share id in a clip key.
pub const MAX_SHARE: usize = 64;
/// Characters of a prefix: `s` and 22 base64url characters.
pub const PREFIX_CHARS: usize = 23;

/// A camera's opaque sub-space in the store, assigned by the CMU per (camera, binding).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix([u8; 16]);

impl Prefix {
    /// The prefix of 16 random bytes (the caller draws them).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Its 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({self})")
    }
}

impl FromStr for Prefix {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let body = s
            .strip_prefix('s')
            .filter(|b| b.len() == PREFIX_CHARS - 1)
            .ok_or(Error::Key("a prefix is s and 22 base64url characters"))?;
        // The decoder refuses non-zero trailing bits, so each prefix has one spelling.
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Error::Key("a prefix is s and 22 base64url characters"))?;
        let bytes: [u8; 16] = raw
            .try_into()
            .map_err(|_| Error::Key("a prefix is s and 22 base64url characters"))?;
        Ok(Self(bytes))
    }
}

impl serde::Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A calendar date in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Year, 1970 to 2286.
    pub year: u16,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 31.
    pub day: u8,
}

impl Date {
    /// The date of day number `days` (days since 1970-01-01).
    pub fn from_days(days: u32) -> Self {
        // Howard Hinnant's civil_from_days, for non-negative day numbers.
        let z = i64::from(days) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year: year as u16,
            month: month as u8,
            day: day as u8,
        }
    }

    /// Its day number, if it is a real date from 1970-01-01 to the last day a key can name.
    pub fn to_days(self) -> Option<u32> {
        if !(1..=12).contains(&self.month) || !(1..=31).contains(&self.day) {
            return None;
        }
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = u32::try_from(era * 146_097 + doe - 719_468).ok()?;
        // 31 February comes back as 3 March: only real dates round-trip.
        (days <= MAX_DAY && Self::from_days(days) == self).then_some(days)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}/{:02}/{:02}", self.year, self.month, self.day)
    }
}

/// The key of an uploaded segment object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentKey {
    prefix: Prefix,
    start_ms: u64,
    seq: u64,
}

impl SegmentKey {
    /// The key of object `seq` of `prefix` whose first frame is at `start_ms` (Unix ms).
    pub fn new(prefix: Prefix, start_ms: u64, seq: u64) -> Result<Self, Error> {
        if start_ms > MAX_START_MS {
            return Err(Error::Key("start beyond 13 digits"));
        }
        if seq > MAX_SEQ {
            return Err(Error::Key("seq beyond 10 digits"));
        }
        Ok(Self {
            prefix,
            start_ms,
            seq,
        })
    }

    /// The camera's prefix.
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    /// First frame, Unix ms.
    pub fn start_ms(&self) -> u64 {
        self.start_ms
    }

    /// The upload sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Day number (days since 1970-01-01, UTC) of the first frame.
    pub fn day(&self) -> u32 {
        (self.start_ms / DAY_MS) as u32
    }
}

impl fmt::Display for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{:013}-{:010}.seg",
            self.prefix,
            Date::from_days(self.day()),
            self.start_ms,
            self.seq
        )
    }
}

/// The key of a day's manifest (that day's index rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestKey {
    prefix: Prefix,
    day: u32,
}

impl ManifestKey {
    /// The manifest of `prefix` for day number `day` (days since 1970-01-01, UTC).
    pub fn new(prefix: Prefix, day: u32) -> Result<Self, Error> {
        if day > MAX_DAY {
            return Err(Error::Key("day beyond the last day a key can name"));
        }
        Ok(Self { prefix, day })
    }

    /// The camera's prefix.
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    /// The day number.
    pub fn day(&self) -> u32 {
        self.day
    }
}

impl fmt::Display for ManifestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/manifest", self.prefix, Date::from_days(self.day))
    }
}

/// The key of a shared clip.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClipKey {
    prefix: Prefix,
    share: String,
}

impl ClipKey {
    /// The clip of share `share` (1 to 64 characters of `A-Z a-z 0-9 _ -`) under `prefix`.
    pub fn new(prefix: Prefix, share: &str) -> Result<Self, Error> {
        if !is_share_id(share) {
            return Err(Error::Key("a share id is 1 to 64 of A-Z a-z 0-9 _ -"));
        }
        Ok(Self {
            prefix,
            share: share.to_owned(),
        })
    }

    /// The camera's prefix.
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    /// The share id.
    pub fn share(&self) -> &str {
        &self.share
    }
}

impl fmt::Display for ClipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/clips/{}.mp4", self.prefix, self.share)
    }
}

/// Whether `s` can be a share id.
pub fn is_share_id(s: &str) -> bool {
    (1..=MAX_SHARE).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Any key the CS writes under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKey {
    /// An uploaded segment object.
    Segment(SegmentKey),
    /// A day's manifest.
    Manifest(ManifestKey),
    /// A shared clip.
    Clip(ClipKey),
}

impl ObjectKey {
    /// The prefix the key is under.
    pub fn prefix(&self) -> Prefix {
        match self {
            Self::Segment(k) => k.prefix,
            Self::Manifest(k) => k.prefix,
            Self::Clip(k) => k.prefix,
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Segment(k) => k.fmt(f),
            Self::Manifest(k) => k.fmt(f),
            Self::Clip(k) => k.fmt(f),
        }
    }
}

/// The directory holding a day's objects and manifest, with its trailing slash (for LIST).
pub fn day_dir(prefix: Prefix, day: u32) -> Result<String, Error> {
    let m = ManifestKey::new(prefix, day)?;
    Ok(format!("{}/{}/", m.prefix, Date::from_days(m.day)))
}

/// Exactly `n` ASCII digits as a number.
fn digits(s: &str, n: usize) -> Result<u64, Error> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Key("wrong number of digits"));
    }
    s.parse().map_err(|_| Error::Key("wrong number of digits"))
}

fn parse_date(y: &str, m: &str, d: &str) -> Result<u32, Error> {
    let date = Date {
        year: digits(y, 4)? as u16,
        month: digits(m, 2)? as u8,
        day: digits(d, 2)? as u8,
    };
    date.to_days()
        .ok_or(Error::Key("not a date a key can name"))
}

impl FromStr for SegmentKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.parse()? {
            ObjectKey::Segment(k) => Ok(k),
            _ => Err(Error::Key("not a segment object key")),
        }
    }
}

impl FromStr for ObjectKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() > 160 {
            return Err(Error::Key("too long"));
        }
        let parts: Vec<&str> = s.split('/').collect();
        match parts[..] {
            [p, "clips", file] => {
                let share = file
                    .strip_suffix(".mp4")
                    .ok_or(Error::Key("a clip is <share>.mp4"))?;
                Ok(Self::Clip(ClipKey::new(p.parse()?, share)?))
            }
            [p, y, m, d, "manifest"] => Ok(Self::Manifest(ManifestKey::new(
                p.parse()?,
                parse_date(y, m, d)?,
            )?)),
            [p, y, m, d, file] => {
                let prefix = p.parse()?;
                let day = parse_date(y, m, d)?;
                let name = file
                    .strip_suffix(".seg")
                    .ok_or(Error::Key("a segment object is <start>-<seq>.seg"))?;
                let (start, seq) = name
                    .split_once('-')
                    .ok_or(Error::Key("a segment object is <start>-<seq>.seg"))?;
                let key = SegmentKey::new(prefix, digits(start, 13)?, digits(seq, 10)?)?;
                if key.day() != day {
                    return Err(Error::Key("the date is not the UTC date of the start"));
                }
                Ok(Self::Segment(key))
            }
            _ => Err(Error::Key("not a key of this layout")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    const P: Prefix = Prefix([0xa5; 16]);

    #[test]
    fn h626_8_7_1_key_layout() {
        let p = P.to_string();
        assert_eq!(p.len(), PREFIX_CHARS);
        assert_eq!(p, "spaWlpaWlpaWlpaWlpaWlpQ");
        // 2026-12-07 06:00:00.123 UTC.
        let k = SegmentKey::new(P, 1_796_623_200_123, 42).unwrap();
        assert_eq!(
            k.to_string(),
            format!("{p}/2026/12/07/1796623200123-0000000042.seg")
        );
        let m = ManifestKey::new(P, k.day()).unwrap();
        assert_eq!(m.to_string(), format!("{p}/2026/12/07/manifest"));
        assert_eq!(day_dir(P, k.day()).unwrap(), format!("{p}/2026/12/07/"));
        let c = ClipKey::new(P, "Ab_9-x").unwrap();
        assert_eq!(c.to_string(), format!("{p}/clips/Ab_9-x.mp4"));
        for key in [
            ObjectKey::Segment(k),
            ObjectKey::Manifest(m),
            ObjectKey::Clip(c),
        ] {
            assert_eq!(key.to_string().parse::<ObjectKey>().unwrap(), key);
            assert_eq!(key.prefix(), P);
        }
        assert_eq!(
            SegmentKey::new(P, 0, 0).unwrap().to_string(),
            format!("{p}/1970/01/01/0000000000000-0000000000.seg")
        );
        let last = SegmentKey::new(P, MAX_START_MS, MAX_SEQ).unwrap();
        assert_eq!(
            last.to_string(),
            format!("{p}/2286/11/20/9999999999999-9999999999.seg")
        );
        assert!(SegmentKey::new(P, MAX_START_MS + 1, 0).is_err());
        assert!(SegmentKey::new(P, 0, MAX_SEQ + 1).is_err());
        assert!(ManifestKey::new(P, MAX_DAY + 1).is_err());
    }

    #[test]
    fn h626_8_7_1_key_parser_refuses_path_tricks() {
        let p = P.to_string();
        let good = format!("{p}/2026/12/07/1796623200123-0000000042.seg");
        assert!(good.parse::<ObjectKey>().is_ok());
        let bad = [
            format!("{p}/2026/12/06/1796623200123-0000000042.seg"), // date of another day
            format!("{p}/2026/12/07/1796623200123-42.seg"),
            format!("{p}/2026/12/07/+796623200123-0000000042.seg"),
            format!("{p}/2026/12/7/1796623200123-0000000042.seg"),
            format!("{p}/2026/12/07/1796623200123-0000000042.seg/"),
            format!("{p}//2026/12/07/1796623200123-0000000042.seg"),
            format!("/{p}/2026/12/07/1796623200123-0000000042.seg"),
            format!("{p}/2026/12/07/../07/1796623200123-0000000042.seg"),
            format!("{p}/../2026/12/07/manifest"),
            format!("{p}/2026/12/07/1796623200123-0000000042.mp4"),
            format!("{p}/2026/02/30/manifest"),
            format!("{p}/2026/13/01/manifest"),
            format!("{p}/2026/00/01/manifest"),
            format!("{p}/1969/12/31/manifest"),
            format!("{p}/2287/01/01/manifest"),
            format!("{p}/2026/12/07/Manifest"),
            format!("{p}/clips/../x.mp4"),
            format!("{p}/clips/.mp4"),
            format!("{p}/clips/a.b.mp4"),
            format!("{p}/clips/{}.mp4", "a".repeat(MAX_SHARE + 1)),
            format!("{p}/clips/a/b.mp4"),
            format!("{p}/clips/a"),
            format!("{p}x/clips/a.mp4"),
            "sAAAAAAAAAAAAAAAAAAAAAB/clips/a.mp4".into(), // non-zero trailing bits
            "tAAAAAAAAAAAAAAAAAAAAAA/clips/a.mp4".into(),
            "s+AAAAAAAAAAAAAAAAAAAAA/clips/a.mp4".into(),
            String::new(),
            p.clone(),
        ];
        for b in &bad {
            assert!(b.parse::<ObjectKey>().is_err(), "{b:?} parsed");
        }
        assert!("sAAAAAAAAAAAAAAAAAAAAAA".parse::<Prefix>().is_ok());
        assert!(format!("{p}/clips/a.mp4").parse::<SegmentKey>().is_err());
    }

    #[test]
    fn h626_8_7_1_dates_match_the_calendar() {
        for (days, y, m, d) in [
            (0, 1970, 1, 1),
            (59, 1970, 3, 1),
            (11_016, 2000, 2, 29),
            (11_017, 2000, 3, 1),
            (20_794, 2026, 12, 7),
        ] {
            let date = Date {
                year: y,
                month: m,
                day: d,
            };
            assert_eq!(Date::from_days(days), date);
            assert_eq!(date.to_days(), Some(days));
        }
        let feb29 = |year| Date {
            year,
            month: 2,
            day: 29,
        };
        assert!(feb29(2100).to_days().is_none());
        assert!(feb29(2024).to_days().is_some());
    }

    #[test]
    fn prefix_serde_is_its_text() {
        let json = serde_json::to_string(&P).unwrap();
        assert_eq!(json, format!("\"{P}\""));
        assert_eq!(serde_json::from_str::<Prefix>(&json).unwrap(), P);
        assert!(serde_json::from_str::<Prefix>("\"s\"").is_err());
    }

    fn arb_key() -> impl Strategy<Value = ObjectKey> {
        let prefix = any::<[u8; 16]>().prop_map(Prefix::from_bytes);
        prop_oneof![
            (prefix.clone(), 0..=MAX_START_MS, 0..=MAX_SEQ)
                .prop_map(|(p, s, q)| { ObjectKey::Segment(SegmentKey::new(p, s, q).unwrap()) }),
            (prefix.clone(), 0..=MAX_DAY)
                .prop_map(|(p, d)| ObjectKey::Manifest(ManifestKey::new(p, d).unwrap())),
            (prefix, "[A-Za-z0-9_-]{1,64}")
                .prop_map(|(p, s)| ObjectKey::Clip(ClipKey::new(p, &s).unwrap())),
        ]
    }

    proptest! {
        #[test]
        fn h626_8_7_1_key_format_parse_round_trips(key in arb_key()) {
            let text = key.to_string();
            prop_assert_eq!(text.parse::<ObjectKey>().unwrap(), key);
        }

        #[test]
        fn h626_8_7_1_key_parse_format_is_identity(
            text in "s[A-Za-z0-9_-]{22}/([0-9]{4}/[01][0-9]/[0-3][0-9]/([0-9]{13}-[0-9]{10}\\.seg|manifest)|clips/[a-z._/-]{1,4}\\.mp4)",
        ) {
            if let Ok(key) = text.parse::<ObjectKey>() {
                prop_assert_eq!(key.to_string(), text);
            }
        }

        #[test]
        fn h626_8_7_1_key_edits_reparse_to_their_own_text(
            key in arb_key(),
            at in any::<prop::sample::Index>(),
            ch in prop::sample::select(vec!['/', '.', '0', '9', 'a', '-', '+']),
        ) {
            let mut text = key.to_string();
            let i = at.index(text.len());
            text.insert(i, ch);
            if let Ok(k) = text.parse::<ObjectKey>() {
                prop_assert_eq!(k.to_string(), text);
            }
        }
    }
}
