//! SDP (RFC 4566): the description a camera answers DESCRIBE with ([`CameraSdp`]) and a
//! tolerant parser for the ones cameras and servers send ([`SessionDescription::parse`]).
//!
//! The parser keeps every line in order, so `parse(x.to_string()) == x`; typed accessors
//! read the few fields a player needs (`rtpmap`, `fmtp`, `control`).

mod base64;
mod camera;

use std::fmt;

pub use camera::{
    AAC_PAYLOAD_TYPE, AAC_TRACK, AUDIO_TRACK, AudioCodec, BACKCHANNEL_TRACK, CameraSdp, H264Video,
    VIDEO_PAYLOAD_TYPE, VIDEO_TRACK, aac_media, backchannel_media, find_backchannel,
};

/// Size limits for [`SessionDescription::parse_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SdpLimits {
    /// Bytes. Default 64 KiB.
    pub max_bytes: usize,
    /// Lines. Default 1024.
    pub max_lines: usize,
    /// Media sections. Default 32.
    pub max_media: usize,
}

impl Default for SdpLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024,
            max_lines: 1024,
            max_media: 32,
        }
    }
}

/// Why a session description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// Larger than [`SdpLimits::max_bytes`].
    #[error("SDP of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// More lines or media sections than allowed.
    #[error("SDP has too many {0}")]
    TooMany(&'static str),
    /// A line that is not `<letter>=<value>`, or a bad `m=` line.
    #[error("malformed SDP at line {line}: expected {expected}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// What the grammar wanted.
        expected: &'static str,
    },
}

/// One `<type>=<value>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpLine {
    /// The type letter (`v`, `o`, `a`, ...).
    pub kind: char,
    /// Everything after `=`, trailing whitespace removed.
    pub value: String,
}

impl SdpLine {
    /// A line.
    pub fn new(kind: char, value: impl Into<String>) -> Self {
        Self {
            kind,
            value: value.into(),
        }
    }

    /// For an `a=` line, its name and value (`a=control:x` gives `("control", Some("x"))`,
    /// `a=recvonly` gives `("recvonly", None)`).
    pub fn attribute(&self) -> Option<(&str, Option<&str>)> {
        if self.kind != 'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (self.value.as_str(), None),
        })
    }
}

/// A session description: session-level lines, then media sections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// Session-level lines in order (`v=`, `o=`, `s=`, `c=`, `t=`, `a=`...).
    pub lines: Vec<SdpLine>,
    /// Media sections in order.
    pub media: Vec<MediaDescription>,
}

/// One media section (`m=` and the lines up to the next `m=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `video`, `audio`, `application`...
    pub media: String,
    /// The port (0 in RTSP, where SETUP negotiates it).
    pub port: u16,
    /// The `/<count>` after the port, if any.
    pub port_count: Option<u16>,
    /// `RTP/AVP`...
    pub proto: String,
    /// Formats (RTP payload types for RTP profiles).
    pub formats: Vec<String>,
    /// The lines after `m=`, in order.
    pub lines: Vec<SdpLine>,
}

/// A parsed `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap<'a> {
    /// The payload type.
    pub payload_type: u8,
    /// The encoding name (`H264`, `PCMU`...), as written.
    pub encoding: &'a str,
    /// The RTP clock rate.
    pub clock_rate: u32,
    /// Encoding parameters (audio channels), if any.
    pub channels: Option<&'a str>,
}

fn attribute<'a>(lines: &'a [SdpLine], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .filter_map(SdpLine::attribute)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.unwrap_or(""))
}

impl SessionDescription {
    /// [`Self::parse_with`] under the default limits.
    pub fn parse(text: &[u8]) -> Result<Self, SdpError> {
        Self::parse_with(text, &SdpLimits::default())
    }

    /// Parses a description. Tolerated: LF-only endings, blank lines, trailing whitespace,
    /// missing `v=`, unknown line types, invalid UTF-8 (replaced). Refused: lines without
    /// `<letter>=`, malformed `m=` lines, anything over the limits.
    pub fn parse_with(text: &[u8], limits: &SdpLimits) -> Result<Self, SdpError> {
        if text.len() > limits.max_bytes {
            return Err(SdpError::TooLarge(text.len()));
        }
        let text = String::from_utf8_lossy(text);
        let mut sd = Self::default();
        let mut count = 0usize;
        for (index, raw) in text.split('\n').enumerate() {
            let raw = raw.replace('\r', " ");
            let line = raw.trim_end_matches(|c: char| c.is_whitespace() || c == '\0');
            if line.is_empty() {
                continue;
            }
            count += 1;
            if count > limits.max_lines {
                return Err(SdpError::TooMany("lines"));
            }
            let n = index + 1;
            let mut chars = line.chars();
            let (Some(kind), Some('=')) = (chars.next(), chars.next()) else {
                return Err(SdpError::Invalid {
                    line: n,
                    expected: "<letter>=<value>",
                });
            };
            if !kind.is_ascii_alphabetic() {
                return Err(SdpError::Invalid {
                    line: n,
                    expected: "<letter>=<value>",
                });
            }
            let value = &line[2..];
            if kind == 'm' {
                if sd.media.len() >= limits.max_media {
                    return Err(SdpError::TooMany("media sections"));
                }
                sd.media
                    .push(MediaDescription::parse_m(value).ok_or(SdpError::Invalid {
                        line: n,
                        expected: "m=<media> <port>[/<count>] <proto> <format>...",
                    })?);
            } else {
                let l = SdpLine::new(kind, value);
                match sd.media.last_mut() {
                    Some(m) => m.lines.push(l),
                    None => sd.lines.push(l),
                }
            }
        }
        Ok(sd)
    }

    /// The first session-level line of a type.
    pub fn line(&self, kind: char) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.kind == kind)
            .map(|l| l.value.as_str())
    }

    /// `s=`.
    pub fn session_name(&self) -> Option<&str> {
        self.line('s')
    }

    /// A session-level attribute's value (`""` for a flag), by case-insensitive name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        attribute(&self.lines, name)
    }

    /// The session-level `a=control:`.
    pub fn control(&self) -> Option<&str> {
        self.attribute("control")
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            write_line(f, l.kind, &l.value)?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.media, m.port)?;
            if let Some(c) = m.port_count {
                write!(f, "/{c}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt in &m.formats {
                write!(f, " {fmt}")?;
            }
            f.write_str("\r\n")?;
            for l in &m.lines {
                write_line(f, l.kind, &l.value)?;
            }
        }
        Ok(())
    }
}

fn write_line(f: &mut fmt::Formatter<'_>, kind: char, value: &str) -> fmt::Result {
    // One value, one line.
    let value: String = value
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    write!(f, "{kind}={}\r\n", value.trim_end())
}

impl MediaDescription {
    fn parse_m(value: &str) -> Option<Self> {
        let mut it = value.split_ascii_whitespace();
        let media = it.next()?.to_owned();
        let port = it.next()?;
        let (port, port_count) = match port.split_once('/') {
            Some((p, c)) => (p.parse().ok()?, Some(c.parse().ok()?)),
            None => (port.parse().ok()?, None),
        };
        let proto = it.next()?.to_owned();
        Some(Self {
            media,
            port,
            port_count,
            proto,
            formats: it.map(str::to_owned).collect(),
            lines: Vec::new(),
        })
    }

    /// An attribute's value (`""` for a flag), by case-insensitive name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        attribute(&self.lines, name)
    }

    /// `a=control:` (`trackID=0` in what [`CameraSdp`] builds).
    pub fn control(&self) -> Option<&str> {
        self.attribute("control")
    }

    /// The `a=rtpmap:` for payload type `pt`.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap<'_>> {
        self.pt_attributes("rtpmap", pt).find_map(|v| {
            let mut parts = v.split('/');
            let encoding = parts.next()?.trim();
            let clock_rate = parts.next()?.trim().parse().ok()?;
            Some(RtpMap {
                payload_type: pt,
                encoding,
                clock_rate,
                channels: parts.next().map(str::trim),
            })
        })
    }

    /// The `a=fmtp:` parameters for payload type `pt`, split at `;` into `(name, value)`.
    pub fn fmtp(&self, pt: u8) -> Option<Vec<(&str, &str)>> {
        self.pt_attributes("fmtp", pt).next().map(|v| {
            v.split(';')
                .filter_map(|p| {
                    let p = p.trim();
                    (!p.is_empty()).then(|| p.split_once('=').unwrap_or((p, "")))
                })
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect()
        })
    }

    /// The H.264 parameter sets (SPS, PPS, ...) from `sprop-parameter-sets` (RFC 6184 8.1),
    /// decoded; `None` if absent or not base64.
    pub fn h264_parameter_sets(&self, pt: u8) -> Option<Vec<Vec<u8>>> {
        let (_, sets) = self
            .fmtp(pt)?
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("sprop-parameter-sets"))?;
        sets.split(',')
            .filter(|s| !s.is_empty())
            .map(base64::decode)
            .collect()
    }

    /// Values of `a=<name>:<pt> <value>` lines for `pt`.
    fn pt_attributes<'a>(&'a self, name: &'a str, pt: u8) -> impl Iterator<Item = &'a str> + 'a {
        self.lines
            .iter()
            .filter_map(SdpLine::attribute)
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(move |(_, v)| {
                let v = v?.trim_start();
                let (p, rest) = v.split_once([' ', '\t']).unwrap_or((v, ""));
                (p.parse::<u8>().ok() == Some(pt)).then_some(rest.trim())
            })
    }

    /// The RTP payload types among the formats.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What a Hikvision DS-2CD2xx camera answers DESCRIBE with (session id shortened).
    const HIKVISION: &str = "v=0\r\no=- 1109162014219182 1109162014219192 IN IP4 x.y.z.w\r\ns=Media Presentation\r\ne=NONE\r\nb=AS:5050\r\nt=0 0\r\na=control:rtsp://192.168.5.106:554/Streaming/Channels/101/?transportmode=unicast\r\nm=video 0 RTP/AVP 96\r\nb=AS:5000\r\na=control:rtsp://192.168.5.106:554/Streaming/Channels/101/trackID=1?transportmode=unicast\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKZpkA8ARPyzUBAQFAAADA+gAAOpgBA==,aO48gA==\r\na=Media_header:MEDIAINFO=494D4B48010100000400010000000000000000000000000000000000000000000000000000000000;\r\na=appversion:1.0\r\n";

    #[test]
    fn parses_a_real_camera() {
        let sd = SessionDescription::parse(HIKVISION.as_bytes()).unwrap();
        assert_eq!(sd.session_name(), Some("Media Presentation"));
        assert_eq!(sd.media.len(), 1);
        let v = &sd.media[0];
        assert_eq!(
            (v.media.as_str(), v.port, v.proto.as_str()),
            ("video", 0, "RTP/AVP")
        );
        assert_eq!(v.rtpmap(96).unwrap().encoding, "H264");
        assert_eq!(v.rtpmap(96).unwrap().clock_rate, 90_000);
        assert!(v.control().unwrap().contains("trackID=1"));
        let sets = v.h264_parameter_sets(96).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[1], [0x68, 0xee, 0x3c, 0x80]);
        assert_eq!(
            SessionDescription::parse(sd.to_string().as_bytes()).unwrap(),
            sd
        );
    }

    #[test]
    fn tolerance_and_errors() {
        let sd =
            SessionDescription::parse(b"\ns=x  \n\nm=audio 0/2 RTP/AVP\na=recvonly\n\0\0").unwrap();
        assert_eq!(sd.media[0].port_count, Some(2));
        assert_eq!(sd.media[0].attribute("RECVONLY"), Some(""));
        assert_eq!(
            SessionDescription::parse(b"v=0\nbogus\n"),
            Err(SdpError::Invalid {
                line: 2,
                expected: "<letter>=<value>"
            })
        );
        assert!(matches!(
            SessionDescription::parse(b"m=video x RTP/AVP 96"),
            Err(SdpError::Invalid { line: 1, .. })
        ));
        assert_eq!(
            SessionDescription::parse(&vec![b'a'; 70_000]),
            Err(SdpError::TooLarge(70_000))
        );
        assert_eq!(
            SessionDescription::parse("a=x\n".repeat(1025).as_bytes()),
            Err(SdpError::TooMany("lines"))
        );
        assert_eq!(
            SessionDescription::parse("m=video 0 RTP/AVP 96\n".repeat(33).as_bytes()),
            Err(SdpError::TooMany("media sections"))
        );
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(sd) = SessionDescription::parse(&buf) {
                prop_assert_eq!(SessionDescription::parse(sd.to_string().as_bytes()), Ok(sd.clone()));
                for m in &sd.media {
                    for pt in 0..=127 {
                        let _ = m.rtpmap(pt);
                        let _ = m.h264_parameter_sets(pt);
                    }
                }
            }
        }

        #[test]
        fn near_misses_never_panic(lines in proptest::collection::vec("[vosmact]=[ -~]{0,30}|m=(video|audio) [0-9/]{1,7} RTP/AVP( [0-9]{1,3}){0,3}|a=(rtpmap|fmtp):[0-9]{1,3} [ -~]{0,40}", 0..20)) {
            let text = lines.join("\r\n");
            if let Ok(sd) = SessionDescription::parse(text.as_bytes()) {
                prop_assert_eq!(SessionDescription::parse(sd.to_string().as_bytes()), Ok(sd.clone()));
                for m in &sd.media {
                    for pt in m.payload_types().collect::<Vec<_>>() {
                        let _ = m.rtpmap(pt);
                        let _ = m.fmtp(pt);
                        let _ = m.h264_parameter_sets(pt);
                    }
                }
            }
        }
    }
}
