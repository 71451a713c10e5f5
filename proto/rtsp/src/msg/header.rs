//! Typed views of individual header fields. Each type parses from the field value and
//! formats back with `Display`; `parse(format(x)) == x` for every value of the type.

use std::fmt;
use std::time::Duration;

use super::Method;

/// A header field whose value does not follow its grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {header} header at byte {pos} of its value: expected {expected}")]
pub struct HeaderError {
    /// The header's canonical name.
    pub header: &'static str,
    /// Byte offset inside the (untrimmed) value where parsing stopped.
    pub pos: usize,
    /// What the grammar wanted there.
    pub expected: &'static str,
}

impl HeaderError {
    pub(crate) fn new(header: &'static str, pos: usize, expected: &'static str) -> Self {
        Self {
            header,
            pos,
            expected,
        }
    }
}

/// Parses `1*DIGIT` (surrounding whitespace allowed) into a `u32`.
pub(crate) fn parse_u32(value: &str, header: &'static str) -> Result<u32, HeaderError> {
    let (start, digits) = trimmed(value);
    parse_digits(digits)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| HeaderError::new(header, start, "a decimal number below 2^32"))
}

/// Parses a `Content-Length` value.
pub(crate) fn parse_content_length(value: &str) -> Result<usize, HeaderError> {
    let (start, digits) = trimmed(value);
    parse_digits(digits)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| HeaderError::new("Content-Length", start, "a decimal length"))
}

/// `1*DIGIT` into a `u64`, `None` on anything else or overflow.
pub(crate) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The value without surrounding whitespace, and where it starts.
fn trimmed(value: &str) -> (usize, &str) {
    let t = value.trim_start();
    let start = value.len() - t.len();
    (start, t.trim_end())
}

/// The `Session` header (RFC 2326 12.37): `id[;timeout=seconds]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHeader {
    /// The session identifier (opaque, case-sensitive).
    pub id: String,
    /// The timeout the server advertises, in seconds.
    pub timeout: Option<u32>,
}

impl SessionHeader {
    /// Parses a `Session` value; unknown parameters are ignored.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        const H: &str = "Session";
        let mut parts = value.split(';');
        let raw_id = parts.next().unwrap_or_default();
        let (start, id) = trimmed(raw_id);
        if id.is_empty() || id.len() > 256 || !id.bytes().all(is_session_char) {
            return Err(HeaderError::new(
                H,
                start,
                "a session id of 1-256 visible characters",
            ));
        }
        let mut timeout = None;
        let mut offset = raw_id.len() + 1;
        for param in parts {
            if let Some((k, v)) = param.split_once('=')
                && k.trim().eq_ignore_ascii_case("timeout")
            {
                let at = offset + k.len() + 1;
                timeout =
                    Some(parse_u32(v, H).map_err(|e| HeaderError::new(H, at + e.pos, e.expected))?);
            }
            offset += param.len() + 1;
        }
        Ok(Self {
            id: id.to_owned(),
            timeout,
        })
    }
}

fn is_session_char(b: u8) -> bool {
    b.is_ascii_graphic() && b != b';' && b != b','
}

impl fmt::Display for SessionHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        if let Some(t) = self.timeout {
            write!(f, ";timeout={t}")?;
        }
        Ok(())
    }
}

/// A point in normal play time (RFC 2326 3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NptTime {
    /// `now`: the live edge.
    Now,
    /// An offset from the start of the presentation (nanosecond precision).
    At(Duration),
}

impl NptTime {
    fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("now") {
            return Some(Self::Now);
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs = if whole.contains(':') {
            let mut it = whole.split(':');
            let (h, m, sec) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || m.len() != 2 || sec.len() != 2 {
                return None;
            }
            let (h, m, sec) = (parse_digits(h)?, parse_digits(m)?, parse_digits(sec)?);
            if m > 59 || sec > 59 {
                return None;
            }
            h.checked_mul(3600)?.checked_add(m * 60 + sec)?
        } else {
            parse_digits(whole)?
        };
        // Digits past nanoseconds are dropped.
        let mut nanos = 0u32;
        for (i, b) in frac.bytes().take(9).enumerate() {
            nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
        }
        Some(Self::At(Duration::new(secs, nanos)))
    }
}

impl fmt::Display for NptTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Now => f.write_str("now"),
            Self::At(d) if d.subsec_nanos() % 1_000_000 == 0 => {
                write!(f, "{}.{:03}", d.as_secs(), d.subsec_millis())
            }
            Self::At(d) => write!(f, "{}.{:09}", d.as_secs(), d.subsec_nanos()),
        }
    }
}

/// The `Range` header (RFC 2326 12.29).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// `npt=[start]-[end]`; at least one end is present. Parameters such as `;time=` are
    /// not kept.
    Npt {
        /// Where to start.
        start: Option<NptTime>,
        /// Where to stop.
        end: Option<NptTime>,
    },
    /// Any other unit (`smpte=`, `clock=`), verbatim.
    Other(String),
}

impl Range {
    /// Parses a `Range` value.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        const H: &str = "Range";
        let (start_pos, v) = trimmed(value);
        if v.is_empty() {
            return Err(HeaderError::new(H, start_pos, "a range"));
        }
        let spec = v.split(';').next().unwrap_or_default().trim_end();
        let Some((unit, times)) = spec.split_once('=') else {
            return Err(HeaderError::new(H, start_pos, "unit=range"));
        };
        if !unit.trim().eq_ignore_ascii_case("npt") {
            return Ok(Self::Other(v.to_owned()));
        }
        let at = start_pos + unit.len() + 1;
        let Some((a, b)) = times.split_once('-') else {
            return Err(HeaderError::new(H, at, "npt start-end"));
        };
        let side = |s: &str, off: usize| -> Result<Option<NptTime>, HeaderError> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            NptTime::parse(s)
                .map(Some)
                .ok_or_else(|| HeaderError::new(H, off, "an npt time (now, seconds or h:mm:ss)"))
        };
        let start = side(a, at)?;
        let end = side(b, at + a.len() + 1)?;
        if start.is_none() && end.is_none() {
            return Err(HeaderError::new(H, at, "an npt start or end"));
        }
        Ok(Self::Npt { start, end })
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Npt { start, end } => {
                f.write_str("npt=")?;
                if let Some(s) = start {
                    write!(f, "{s}")?;
                }
                f.write_str("-")?;
                if let Some(e) = end {
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// One stream's entry in the `RTP-Info` header (RFC 2326 12.33).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpInfo {
    /// The stream's URL (as used in its SETUP).
    pub url: String,
    /// Sequence number of the first packet sent after PLAY.
    pub seq: Option<u16>,
    /// RTP timestamp corresponding to the start of the range.
    pub rtptime: Option<u32>,
}

impl RtpInfo {
    /// Parses a whole `RTP-Info` value (comma-separated entries).
    pub fn parse_list(value: &str) -> Result<Vec<Self>, HeaderError> {
        const H: &str = "RTP-Info";
        // Entries are split at commas that start a new `url=`; a comma inside a URL stays.
        let mut entries: Vec<(usize, String)> = Vec::new();
        let mut offset = 0;
        for piece in value.split(',') {
            match entries.last_mut() {
                Some((_, e)) if !piece.trim_start().starts_with("url=") => {
                    e.push(',');
                    e.push_str(piece);
                }
                _ => entries.push((offset, piece.to_owned())),
            }
            offset += piece.len() + 1;
        }
        let mut out = Vec::with_capacity(entries.len());
        for (at, entry) in entries {
            let entry = entry.trim();
            let mut parts = entry.split(';');
            let url = parts
                .next()
                .and_then(|u| u.trim().strip_prefix("url="))
                .map(|u| u.trim_matches('"'))
                .filter(|u| !u.is_empty())
                .ok_or_else(|| HeaderError::new(H, at, "url="))?;
            let mut info = Self {
                url: url.to_owned(),
                seq: None,
                rtptime: None,
            };
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let bad = || HeaderError::new(H, at, "a number after seq= or rtptime=");
                match k.trim() {
                    "seq" => {
                        info.seq = Some(
                            parse_digits(v.trim())
                                .and_then(|n| u16::try_from(n).ok())
                                .ok_or_else(bad)?,
                        );
                    }
                    "rtptime" => {
                        info.rtptime = Some(
                            parse_digits(v.trim())
                                .and_then(|n| u32::try_from(n).ok())
                                .ok_or_else(bad)?,
                        );
                    }
                    _ => {}
                }
            }
            out.push(info);
        }
        Ok(out)
    }

    /// Formats entries as one `RTP-Info` value.
    pub fn format_list(entries: &[Self]) -> String {
        entries
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for RtpInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "url={}", self.url)?;
        if let Some(s) = self.seq {
            write!(f, ";seq={s}")?;
        }
        if let Some(t) = self.rtptime {
            write!(f, ";rtptime={t}")?;
        }
        Ok(())
    }
}

/// Parses a comma-separated method list (`Public`, `Allow`).
pub fn parse_methods(value: &str) -> Vec<Method> {
    value
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(Method::from_token)
        .collect()
}

/// Formats a method list for `Public`.
pub fn format_methods(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses an `Accept` value into lowercase media ranges, parameters (`;q=`) dropped.
pub fn parse_accept(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|r| r.split(';').next())
        .map(|r| r.trim().to_ascii_lowercase())
        .filter(|r| !r.is_empty())
        .collect()
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750 2.1), if that is what it
/// is.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let v = authorization.trim();
    let (scheme, rest) = v.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty() && !token.contains(char::is_whitespace)).then_some(token)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn session_header() {
        let s = SessionHeader::parse(" 0123abcd;timeout=60").unwrap();
        assert_eq!(s.id, "0123abcd");
        assert_eq!(s.timeout, Some(60));
        assert_eq!(s.to_string(), "0123abcd;timeout=60");
        assert_eq!(
            SessionHeader::parse("x; Timeout = 5 ;foo").unwrap().timeout,
            Some(5)
        );
        assert_eq!(
            SessionHeader::parse("ab;timeout=x").unwrap_err(),
            HeaderError::new("Session", 11, "a decimal number below 2^32")
        );
        assert!(SessionHeader::parse(" ;timeout=1").is_err());
        assert!(SessionHeader::parse("a b").is_err());
    }

    #[test]
    fn ranges() {
        let r = Range::parse("npt=0.000-").unwrap();
        assert_eq!(
            r,
            Range::Npt {
                start: Some(NptTime::At(Duration::ZERO)),
                end: None
            }
        );
        assert_eq!(r.to_string(), "npt=0.000-");
        assert_eq!(Range::parse("npt=now-").unwrap().to_string(), "npt=now-");
        assert_eq!(
            Range::parse("npt=1:02:03.5-1:02:04").unwrap().to_string(),
            "npt=3723.500-3724.000"
        );
        assert_eq!(
            Range::parse("npt = -20 ;time=x").unwrap().to_string(),
            "npt=-20.000"
        );
        assert_eq!(
            Range::parse("clock=19961108T142300Z-").unwrap(),
            Range::Other("clock=19961108T142300Z-".into())
        );
        assert!(Range::parse("npt=-").is_err());
        assert!(Range::parse("npt=abc-").is_err());
        assert!(Range::parse("npt=99999999999999999999999-").is_err());
        assert!(Range::parse("npt=1:99:00-").is_err());
    }

    #[test]
    fn rtp_info() {
        let v =
            "url=rtsp://cam/live/trackID=0;seq=17;rtptime=9000, url=rtsp://cam/a,b/trackID=1;seq=5";
        let l = RtpInfo::parse_list(v).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].url, "rtsp://cam/a,b/trackID=1");
        assert_eq!(l[0].rtptime, Some(9000));
        assert_eq!(RtpInfo::parse_list(&RtpInfo::format_list(&l)).unwrap(), l);
        assert!(RtpInfo::parse_list("seq=1").is_err());
        assert!(RtpInfo::parse_list("url=x;seq=70000").is_err());
    }

    #[test]
    fn lists_and_auth() {
        assert_eq!(
            parse_methods("OPTIONS, DESCRIBE,,PLAY"),
            [Method::Options, Method::Describe, Method::Play]
        );
        assert_eq!(
            parse_accept("application/sdp;q=1, Application/X-Foo"),
            ["application/sdp", "application/x-foo"]
        );
        assert_eq!(bearer_token("bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("Basic Zm9v"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(parse_u32(" 42 ", "CSeq"), Ok(42));
        assert!(parse_u32("4294967296", "CSeq").is_err());
        assert!(parse_content_length("-1").is_err());
    }

    fn npt() -> impl Strategy<Value = NptTime> {
        prop_oneof![
            Just(NptTime::Now),
            (0u64..1 << 40, 0u32..1_000_000_000)
                .prop_map(|(s, n)| NptTime::At(Duration::new(s, n))),
        ]
    }

    proptest! {
        #[test]
        fn range_round_trips(start in proptest::option::of(npt()), end in proptest::option::of(npt())) {
            prop_assume!(start.is_some() || end.is_some());
            let r = Range::Npt { start, end };
            prop_assert_eq!(Range::parse(&r.to_string()), Ok(r));
        }

        #[test]
        fn session_round_trips(id in "[A-Za-z0-9$._+-]{1,40}", timeout in proptest::option::of(any::<u32>())) {
            let s = SessionHeader { id, timeout };
            prop_assert_eq!(SessionHeader::parse(&s.to_string()), Ok(s));
        }

        /// Whatever parses formats back to text that parses to the same value.
        #[test]
        fn parsed_values_reformat_stably(s in "\\PC{0,64}|(npt|NPT) ?= ?[0-9:.now -]{0,16}|url=[a-z/=,;\"]{0,12}(;(seq|rtptime)=[0-9]{1,6}){0,2}(,url=[a-z,]{0,5})?") {
            if let Ok(v) = SessionHeader::parse(&s) {
                prop_assert_eq!(SessionHeader::parse(&v.to_string()), Ok(v));
            }
            if let Ok(v) = Range::parse(&s) {
                prop_assert_eq!(Range::parse(&v.to_string()), Ok(v));
            }
            if let Ok(v) = RtpInfo::parse_list(&s) {
                prop_assert_eq!(RtpInfo::parse_list(&RtpInfo::format_list(&v)), Ok(v));
            }
            let _ = bearer_token(&s);
        }
    }
}
