//! The `Transport` header (RFC 2326 12.39, RFC 7826 18.54).

use std::fmt;

use super::header::{HeaderError, parse_digits};

const H: &str = "Transport";

/// The lower transport of an RTP profile: `RTP/AVP` is UDP, `RTP/AVP/TCP` interleaves RTP in
/// the RTSP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LowerTransport {
    /// `.../UDP` (the default when absent).
    Udp,
    /// `.../TCP`.
    Tcp,
}

/// A port or a pair of ports: `5000` or `5000-5001` (RTP, RTCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortPair {
    /// The RTP port.
    pub rtp: u16,
    /// The RTCP port, when given.
    pub rtcp: Option<u16>,
}

/// An interleaved channel or pair of channels: `0` or `0-1` (RTP, RTCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelPair {
    /// The channel RTP travels on.
    pub rtp: u8,
    /// The channel RTCP travels on, when given.
    pub rtcp: Option<u8>,
}

impl ChannelPair {
    /// Whether `channel` is one of this pair's.
    pub fn contains(&self, channel: u8) -> bool {
        self.rtp == channel || self.rtcp == Some(channel)
    }
}

/// One transport alternative of a `Transport` header.
///
/// Construct with [`Transport::default`] (`RTP/AVP`, nothing else) or by cloning the
/// client's offer, then set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transport {
    /// Transport protocol, `RTP`.
    pub protocol: String,
    /// Profile, `AVP` (or `SAVP`, `AVPF`, ...).
    pub profile: String,
    /// Lower transport as written; `None` means UDP.
    pub lower: Option<LowerTransport>,
    /// `Some(false)` for `unicast`, `Some(true)` for `multicast`.
    pub multicast: Option<bool>,
    /// `destination=`.
    pub destination: Option<String>,
    /// `source=`.
    pub source: Option<String>,
    /// `interleaved=a-b`.
    pub interleaved: Option<ChannelPair>,
    /// `ttl=` (multicast).
    pub ttl: Option<u8>,
    /// `port=` (multicast).
    pub port: Option<PortPair>,
    /// `client_port=`.
    pub client_port: Option<PortPair>,
    /// `server_port=`.
    pub server_port: Option<PortPair>,
    /// `ssrc=` (hexadecimal on the wire).
    pub ssrc: Option<u32>,
    /// `mode=`, without quotes (`PLAY`, `RECORD`).
    pub mode: Option<String>,
    /// Any other parameter, verbatim (`append`, `layers=2`, ...).
    pub other: Vec<String>,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            protocol: "RTP".into(),
            profile: "AVP".into(),
            lower: None,
            multicast: None,
            destination: None,
            source: None,
            interleaved: None,
            ttl: None,
            port: None,
            client_port: None,
            server_port: None,
            ssrc: None,
            mode: None,
            other: Vec::new(),
        }
    }
}

impl Transport {
    /// `RTP/AVP/TCP;unicast;interleaved=<rtp>-<rtp+1>`.
    pub fn tcp_interleaved(rtp_channel: u8) -> Self {
        Self {
            lower: Some(LowerTransport::Tcp),
            multicast: Some(false),
            interleaved: Some(ChannelPair {
                rtp: rtp_channel,
                rtcp: rtp_channel.checked_add(1),
            }),
            ..Self::default()
        }
    }

    /// `RTP/AVP;unicast;client_port=<rtp>-<rtp+1>`.
    pub fn udp_unicast(client_rtp_port: u16) -> Self {
        Self {
            multicast: Some(false),
            client_port: Some(PortPair {
                rtp: client_rtp_port,
                rtcp: client_rtp_port.checked_add(1),
            }),
            ..Self::default()
        }
    }

    /// Whether RTP travels interleaved in the RTSP connection.
    pub fn is_tcp(&self) -> bool {
        self.lower == Some(LowerTransport::Tcp)
    }

    /// Whether this is plain `RTP/AVP` (over UDP or TCP), the profile cameras serve.
    pub fn is_rtp_avp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("RTP") && self.profile.eq_ignore_ascii_case("AVP")
    }

    /// Parses a whole header value: comma-separated alternatives, in preference order.
    pub fn parse_list(value: &str) -> Result<Vec<Self>, HeaderError> {
        let mut out = Vec::new();
        for (at, piece) in split_outside_quotes(value, b',') {
            if piece.trim().is_empty() {
                continue;
            }
            out.push(
                Self::parse_one(piece).map_err(|e| HeaderError::new(H, at + e.pos, e.expected))?,
            );
        }
        if out.is_empty() {
            return Err(HeaderError::new(H, 0, "a transport specification"));
        }
        Ok(out)
    }

    /// Formats alternatives as one header value.
    pub fn format_list(alternatives: &[Self]) -> String {
        alternatives
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses one alternative (no top-level commas).
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        Self::parse_one(value)
    }

    fn parse_one(spec: &str) -> Result<Self, HeaderError> {
        if let Some(q) = spec.rfind('"')
            && spec.bytes().filter(|&b| b == b'"').count() % 2 == 1
        {
            return Err(HeaderError::new(H, q, "a closing quote"));
        }
        let mut params = split_outside_quotes(spec, b';').into_iter();
        let (at, head) = params.next().unwrap_or((0, ""));
        let mut t = Self::default();
        let lead = head.len() - head.trim_start().len();
        let mut parts = head.trim().split('/');
        let tok = |s: Option<&str>| {
            s.filter(|s| !s.is_empty() && s.bytes().all(is_token_char))
                .map(str::to_owned)
                .ok_or_else(|| HeaderError::new(H, at + lead, "RTP/AVP[/TCP|/UDP]"))
        };
        t.protocol = tok(parts.next())?;
        t.profile = tok(parts.next())?;
        t.lower = match parts.next() {
            None => None,
            Some(l) if l.eq_ignore_ascii_case("TCP") => Some(LowerTransport::Tcp),
            Some(l) if l.eq_ignore_ascii_case("UDP") => Some(LowerTransport::Udp),
            Some(_) => return Err(HeaderError::new(H, at + lead, "TCP or UDP lower transport")),
        };
        if parts.next().is_some() {
            return Err(HeaderError::new(
                H,
                at + lead,
                "at most three /-separated parts",
            ));
        }
        for (at, raw) in params {
            let p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let pos = at + (raw.len() - raw.trim_start().len());
            let (key, value) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (p, None),
            };
            let err = |expected| HeaderError::new(H, pos, expected);
            let key_is = |k: &str| key.eq_ignore_ascii_case(k);
            match value {
                None if key_is("unicast") => t.multicast = Some(false),
                None if key_is("multicast") => t.multicast = Some(true),
                Some(v) if key_is("destination") => {
                    t.destination = Some(plain(v).ok_or_else(|| err("destination=<address>"))?);
                }
                Some(v) if key_is("source") => {
                    t.source = Some(plain(v).ok_or_else(|| err("source=<address>"))?)
                }
                Some(v) if key_is("interleaved") => {
                    let (a, b) = pair(v).ok_or_else(|| err("interleaved=<0-255>[-<0-255>]"))?;
                    t.interleaved = Some(ChannelPair {
                        rtp: u8::try_from(a).map_err(|_| err("a channel below 256"))?,
                        rtcp: b
                            .map(u8::try_from)
                            .transpose()
                            .map_err(|_| err("a channel below 256"))?,
                    });
                }
                Some(v) if key_is("ttl") => {
                    t.ttl = Some(
                        parse_digits(v)
                            .and_then(|n| u8::try_from(n).ok())
                            .ok_or_else(|| err("ttl=<0-255>"))?,
                    );
                }
                Some(v) if key_is("port") => {
                    t.port = Some(port_pair(v).ok_or_else(|| err("port=<p>[-<p>]"))?)
                }
                Some(v) if key_is("client_port") => {
                    t.client_port = Some(port_pair(v).ok_or_else(|| err("client_port=<p>[-<p>]"))?);
                }
                Some(v) if key_is("server_port") => {
                    t.server_port = Some(port_pair(v).ok_or_else(|| err("server_port=<p>[-<p>]"))?);
                }
                Some(v) if key_is("ssrc") => {
                    let v = unquote(v);
                    if v.is_empty() || v.len() > 8 {
                        return Err(err("ssrc=<1-8 hex digits>"));
                    }
                    t.ssrc =
                        Some(u32::from_str_radix(v, 16).map_err(|_| err("ssrc=<1-8 hex digits>"))?);
                }
                Some(v) if key_is("mode") => {
                    let m = unquote(v);
                    if m.contains('"') {
                        return Err(err("mode=\"<methods>\""));
                    }
                    t.mode = Some(m.to_owned());
                }
                _ => {
                    if !p.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
                        return Err(err("a visible parameter"));
                    }
                    t.other.push(p.to_owned());
                }
            }
        }
        Ok(t)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.profile)?;
        match self.lower {
            Some(LowerTransport::Tcp) => f.write_str("/TCP")?,
            Some(LowerTransport::Udp) => f.write_str("/UDP")?,
            None => {}
        }
        match self.multicast {
            Some(false) => f.write_str(";unicast")?,
            Some(true) => f.write_str(";multicast")?,
            None => {}
        }
        if let Some(d) = &self.destination {
            write!(f, ";destination={d}")?;
        }
        if let Some(s) = &self.source {
            write!(f, ";source={s}")?;
        }
        if let Some(i) = self.interleaved {
            write!(f, ";interleaved={}", i.rtp)?;
            if let Some(r) = i.rtcp {
                write!(f, "-{r}")?;
            }
        }
        if let Some(t) = self.ttl {
            write!(f, ";ttl={t}")?;
        }
        for (name, p) in [
            ("port", self.port),
            ("client_port", self.client_port),
            ("server_port", self.server_port),
        ] {
            if let Some(p) = p {
                write!(f, ";{name}={}", p.rtp)?;
                if let Some(r) = p.rtcp {
                    write!(f, "-{r}")?;
                }
            }
        }
        if let Some(s) = self.ssrc {
            write!(f, ";ssrc={s:08X}")?;
        }
        if let Some(m) = &self.mode {
            write!(f, ";mode=\"{m}\"")?;
        }
        for o in &self.other {
            write!(f, ";{o}")?;
        }
        Ok(())
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// An unquoted value that can be written back without quotes.
fn plain(v: &str) -> Option<String> {
    let v = unquote(v);
    (!v.contains(['"', ';', ','])).then(|| v.to_owned())
}

fn pair(v: &str) -> Option<(u64, Option<u64>)> {
    match v.split_once('-') {
        Some((a, b)) => Some((parse_digits(a.trim())?, Some(parse_digits(b.trim())?))),
        None => Some((parse_digits(v)?, None)),
    }
}

fn port_pair(v: &str) -> Option<PortPair> {
    let (a, b) = pair(v)?;
    Some(PortPair {
        rtp: u16::try_from(a).ok()?,
        rtcp: b.map(u16::try_from).transpose().ok()?,
    })
}

/// Splits at `sep` outside double quotes, with each piece's byte offset.
fn split_outside_quotes(s: &str, sep: u8) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, b) in s.bytes().enumerate() {
        if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            out.push((start, &s[start..i]));
            start = i + 1;
        }
    }
    out.push((start, &s[start..]));
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ffmpeg_tcp_offer() {
        let l = Transport::parse_list("RTP/AVP/TCP;unicast;interleaved=0-1").unwrap();
        assert_eq!(l, [Transport::tcp_interleaved(0)]);
        assert!(l[0].is_tcp() && l[0].is_rtp_avp());
    }

    #[test]
    fn gstreamer_udp_offer_and_server_answer() {
        let l = Transport::parse_list("RTP/AVP;unicast;client_port=5000-5001").unwrap();
        assert_eq!(l, [Transport::udp_unicast(5000)]);
        let mut answer = l[0].clone();
        answer.server_port = Some(PortPair {
            rtp: 6970,
            rtcp: Some(6971),
        });
        answer.ssrc = Some(0xdead_beef);
        assert_eq!(
            answer.to_string(),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=DEADBEEF"
        );
    }

    #[test]
    fn alternatives_quotes_and_oddities() {
        let v = "RTP/AVP/UDP;unicast;client_port=5000-5001;mode=\"PLAY,RECORD\", RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=1f;";
        let l = Transport::parse_list(v).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].mode.as_deref(), Some("PLAY,RECORD"));
        assert_eq!(l[0].lower, Some(LowerTransport::Udp));
        assert_eq!(l[1].ssrc, Some(0x1f));
        assert_eq!(
            Transport::parse_list(&Transport::format_list(&l)).unwrap(),
            l
        );
        let m = Transport::parse(
            "RTP/AVP;multicast;destination=224.2.0.1;port=3456-3457;ttl=16;append",
        )
        .unwrap();
        assert_eq!(m.multicast, Some(true));
        assert_eq!(m.ttl, Some(16));
        assert_eq!(m.other, ["append"]);
    }

    #[test]
    fn errors_carry_positions() {
        let e = Transport::parse_list("RTP/AVP;unicast, RTP/AVP;client_port=70000").unwrap_err();
        assert_eq!(e.pos, 25);
        assert_eq!(e.expected, "client_port=<p>[-<p>]");
        assert!(Transport::parse_list("").is_err());
        assert!(Transport::parse_list("RTP").is_err());
        assert!(Transport::parse_list("RTP/AVP/SCTP").is_err());
        assert!(Transport::parse_list("RTP/AVP;interleaved=300").is_err());
        assert!(Transport::parse_list("RTP/AVP;ssrc=123456789").is_err());
    }

    fn ports() -> impl Strategy<Value = Option<PortPair>> {
        proptest::option::of(
            (any::<u16>(), proptest::option::of(any::<u16>()))
                .prop_map(|(rtp, rtcp)| PortPair { rtp, rtcp }),
        )
    }

    prop_compose! {
        fn transport()(
            profile in "AVP|SAVP|AVPF",
            lower in proptest::option::of(prop_oneof![Just(LowerTransport::Udp), Just(LowerTransport::Tcp)]),
            multicast in proptest::option::of(any::<bool>()),
            destination in proptest::option::of("[0-9.]{1,15}"),
            source in proptest::option::of("[a-z0-9.]{1,15}"),
            interleaved in proptest::option::of((any::<u8>(), proptest::option::of(any::<u8>()))),
            ttl in proptest::option::of(any::<u8>()),
            port in ports(), client_port in ports(), server_port in ports(),
            ssrc in proptest::option::of(any::<u32>()),
            mode in proptest::option::of("PLAY|RECORD|play"),
            other in proptest::collection::vec("x-[a-z]{1,5}(=[a-z0-9]{1,4})?|append", 0..3),
        ) -> Transport {
            Transport {
                protocol: "RTP".into(), profile, lower, multicast, destination, source,
                interleaved: interleaved.map(|(rtp, rtcp)| ChannelPair { rtp, rtcp }),
                ttl, port, client_port, server_port, ssrc, mode, other,
            }
        }
    }

    proptest! {
        #[test]
        fn round_trips(list in proptest::collection::vec(transport(), 1..4)) {
            let text = Transport::format_list(&list);
            prop_assert_eq!(Transport::parse_list(&text), Ok(list));
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            if let Ok(l) = Transport::parse_list(&s) {
                prop_assert_eq!(Transport::parse_list(&Transport::format_list(&l)), Ok(l));
            }
        }

        #[test]
        fn reformatting_parsed_input_is_stable(s in "RTP/AVP(/TCP)?(;[a-z_]{1,12}(=[0-9a-z\"-]{1,8})?){0,5}") {
            if let Ok(l) = Transport::parse_list(&s) {
                prop_assert_eq!(Transport::parse_list(&Transport::format_list(&l)), Ok(l));
            }
        }
    }
}
