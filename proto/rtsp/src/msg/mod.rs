//! RTSP messages (RFC 2326 section 6 and 7): [`Request`], [`Response`], their [`Headers`],
//! serialization, and typed helpers for the headers a camera and its players exchange.
//!
//! Messages are plain data. Parsing lives in [`mod@crate::parse`]; `parse(serialize(m)) == m`
//! holds for every message the parser produces (the fuzz target `rtsp_parse` checks it).

mod header;
mod transport;
pub mod uri;

use std::fmt;

pub(crate) use header::parse_content_length;
pub use header::{
    HeaderError, NptTime, Range, RtpInfo, SessionHeader, bearer_token, format_methods,
    parse_accept, parse_methods,
};
pub use transport::{ChannelPair, LowerTransport, PortPair, Transport};

/// A request method (RFC 2326 section 10, RFC 7826 section 13).
///
/// ANNOUNCE, RECORD, REDIRECT and extension methods are [`Method::Other`], spelled as
/// received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `OPTIONS`.
    Options,
    /// `DESCRIBE`.
    Describe,
    /// `SETUP`.
    Setup,
    /// `PLAY`.
    Play,
    /// `PAUSE`.
    Pause,
    /// `TEARDOWN`.
    Teardown,
    /// `GET_PARAMETER`.
    GetParameter,
    /// `SET_PARAMETER`.
    SetParameter,
    /// Any other method token, as received (methods are case-sensitive).
    Other(String),
}

impl Method {
    /// The method for a token (case-sensitive, as RFC 2326 section 6.1 says).
    pub fn from_token(token: &str) -> Self {
        match token {
            "OPTIONS" => Self::Options,
            "DESCRIBE" => Self::Describe,
            "SETUP" => Self::Setup,
            "PLAY" => Self::Play,
            "PAUSE" => Self::Pause,
            "TEARDOWN" => Self::Teardown,
            "GET_PARAMETER" => Self::GetParameter,
            "SET_PARAMETER" => Self::SetParameter,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Options => "OPTIONS",
            Self::Describe => "DESCRIBE",
            Self::Setup => "SETUP",
            Self::Play => "PLAY",
            Self::Pause => "PAUSE",
            Self::Teardown => "TEARDOWN",
            Self::GetParameter => "GET_PARAMETER",
            Self::SetParameter => "SET_PARAMETER",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol version, `RTSP/<major>.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    /// Major version (a single digit on the wire).
    pub major: u8,
    /// Minor version (a single digit on the wire).
    pub minor: u8,
}

impl Version {
    /// `RTSP/1.0`, what this crate speaks.
    pub const RTSP_1_0: Self = Self { major: 1, minor: 0 };
    /// `RTSP/2.0` (RFC 7826), recognised so that it can be refused politely.
    pub const RTSP_2_0: Self = Self { major: 2, minor: 0 };
}

impl Default for Version {
    fn default() -> Self {
        Self::RTSP_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RTSP/{}.{}", self.major, self.minor)
    }
}

/// A response status code (RFC 2326 section 7.1.1), 100 to 999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 200 OK.
    pub const OK: Self = Self(200);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthorized.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not Found.
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// 406 Not Acceptable.
    pub const NOT_ACCEPTABLE: Self = Self(406);
    /// 413 Request Entity Too Large.
    pub const REQUEST_ENTITY_TOO_LARGE: Self = Self(413);
    /// 414 Request-URI Too Large.
    pub const REQUEST_URI_TOO_LARGE: Self = Self(414);
    /// 431 Request Header Fields Too Large (borrowed from RFC 6585; RTSP has no own code).
    pub const REQUEST_HEADER_FIELDS_TOO_LARGE: Self = Self(431);
    /// 451 Parameter Not Understood.
    pub const PARAMETER_NOT_UNDERSTOOD: Self = Self(451);
    /// 453 Not Enough Bandwidth.
    pub const NOT_ENOUGH_BANDWIDTH: Self = Self(453);
    /// 454 Session Not Found.
    pub const SESSION_NOT_FOUND: Self = Self(454);
    /// 455 Method Not Valid in This State.
    pub const METHOD_NOT_VALID_IN_THIS_STATE: Self = Self(455);
    /// 457 Invalid Range.
    pub const INVALID_RANGE: Self = Self(457);
    /// 459 Aggregate Operation Not Allowed.
    pub const AGGREGATE_OPERATION_NOT_ALLOWED: Self = Self(459);
    /// 461 Unsupported Transport.
    pub const UNSUPPORTED_TRANSPORT: Self = Self(461);
    /// 500 Internal Server Error.
    pub const INTERNAL_SERVER_ERROR: Self = Self(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// 505 RTSP Version Not Supported.
    pub const VERSION_NOT_SUPPORTED: Self = Self(505);
    /// 551 Option not supported (RFC 2326 7.1.1: a `Require` the server cannot honour).
    pub const OPTION_NOT_SUPPORTED: Self = Self(551);

    /// The reason phrase RFC 2326 (or RFC 7826) gives this code; `""` for unknown codes.
    pub fn canonical_reason(self) -> &'static str {
        match self.0 {
            100 => "Continue",
            200 => "OK",
            201 => "Created",
            250 => "Low on Storage Space",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            304 => "Not Modified",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            408 => "Request Timeout",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Large",
            415 => "Unsupported Media Type",
            431 => "Request Header Fields Too Large",
            451 => "Parameter Not Understood",
            453 => "Not Enough Bandwidth",
            454 => "Session Not Found",
            455 => "Method Not Valid in This State",
            456 => "Header Field Not Valid for Resource",
            457 => "Invalid Range",
            458 => "Parameter Is Read-Only",
            459 => "Aggregate Operation Not Allowed",
            460 => "Only Aggregate Operation Allowed",
            461 => "Unsupported Transport",
            462 => "Destination Unreachable",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            505 => "RTSP Version Not Supported",
            551 => "Option not supported",
            _ => "",
        }
    }

    /// Whether this is a 2xx code.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.canonical_reason())
    }
}

/// Header fields in the order received; names compare case-insensitively (RFC 2326 4.2).
///
/// Names keep the spelling they arrived (or were added) with, values are stored without
/// surrounding whitespace. Serialization writes them in order, one per line; any CR or LF a
/// caller put into a name or value is written as a space so that one message stays one
/// message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a field, keeping any earlier field of the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    /// Replaces every field called `name` with one field holding `value`, at the position of
    /// the first such field (or at the end).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.position(name) {
            Some(i) => {
                self.fields[i].1 = value;
                let mut seen = 0usize;
                self.fields.retain(|(n, _)| {
                    if n.eq_ignore_ascii_case(name) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.append(name, value),
        }
    }

    /// Removes every field called `name`.
    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.fields[i].1.as_str())
    }

    /// The values of every field called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a field called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Every field as `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Appends a folded continuation line (RFC 2326 4.2 LWS) to the last field's value.
    pub(crate) fn fold_into_last(&mut self, more: &str) -> bool {
        match self.fields.last_mut() {
            Some((_, v)) => {
                if !v.is_empty() && !more.is_empty() {
                    v.push(' ');
                }
                v.push_str(more);
                true
            }
            None => false,
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// `CSeq` (RFC 2326 12.17): `Ok(None)` when absent.
    pub fn cseq(&self) -> Result<Option<u32>, HeaderError> {
        self.get("CSeq")
            .map(|v| header::parse_u32(v, "CSeq"))
            .transpose()
    }

    /// `Session` (RFC 2326 12.37).
    pub fn session(&self) -> Result<Option<SessionHeader>, HeaderError> {
        self.get("Session").map(SessionHeader::parse).transpose()
    }

    /// `Transport` (RFC 2326 12.39): the alternatives, in the sender's order of preference.
    pub fn transport(&self) -> Result<Option<Vec<Transport>>, HeaderError> {
        self.get("Transport").map(Transport::parse_list).transpose()
    }

    /// `Range` (RFC 2326 12.29).
    pub fn range(&self) -> Result<Option<Range>, HeaderError> {
        self.get("Range").map(Range::parse).transpose()
    }

    /// `Content-Length` (RFC 2326 12.14).
    pub fn content_length(&self) -> Result<Option<usize>, HeaderError> {
        self.get("Content-Length")
            .map(parse_content_length)
            .transpose()
    }

    /// `Content-Type`, verbatim (media type and parameters).
    pub fn content_type(&self) -> Option<&str> {
        self.get("Content-Type")
    }

    /// `Public` (RFC 2326 12.28): the methods a server supports.
    pub fn public(&self) -> Option<Vec<Method>> {
        self.get("Public").map(parse_methods)
    }

    /// `Accept` (RFC 2326 12.1): the media ranges, without their parameters.
    pub fn accept(&self) -> Option<Vec<String>> {
        self.get("Accept").map(parse_accept)
    }

    /// `RTP-Info` (RFC 2326 12.33).
    pub fn rtp_info(&self) -> Result<Option<Vec<RtpInfo>>, HeaderError> {
        self.get("RTP-Info").map(RtpInfo::parse_list).transpose()
    }
}

/// An RTSP request (RFC 2326 section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The request URI as received: `rtsp://host[:port]/path[?query]`, a path, or `*`.
    pub uri: String,
    /// The protocol version.
    pub version: Version,
    /// Header fields.
    pub headers: Headers,
    /// The message body (its length is the `Content-Length`).
    pub body: Vec<u8>,
}

impl Request {
    /// An RTSP/1.0 request without headers or body.
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        Self {
            method,
            uri: uri.into(),
            version: Version::RTSP_1_0,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Appends a header field (builder style).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Appends the serialized request to `out`.
    ///
    /// `Content-Length` is written to match the body: an existing field that disagrees is
    /// corrected in place, and one is added when the body is not empty and there is none.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        write_sanitized(out, self.method.as_str());
        out.push(b' ');
        write_sanitized_uri(out, &self.uri);
        out.push(b' ');
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        write_headers_and_body(out, &self.headers, &self.body);
    }

    /// The serialized request.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        self.write_to(&mut out);
        out
    }
}

/// An RTSP response (RFC 2326 section 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The protocol version.
    pub version: Version,
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase, verbatim.
    pub reason: String,
    /// Header fields.
    pub headers: Headers,
    /// The message body.
    pub body: Vec<u8>,
}

impl Response {
    /// An RTSP/1.0 response with the canonical reason phrase.
    pub fn new(status: StatusCode) -> Self {
        Self {
            version: Version::RTSP_1_0,
            status,
            reason: status.canonical_reason().to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Appends a header field (builder style).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the body and its `Content-Type` (builder style).
    #[must_use]
    pub fn with_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers.set("Content-Type", content_type);
        self.body = body;
        self
    }

    /// Appends the serialized response to `out`; `Content-Length` as for
    /// [`Request::write_to`].
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.version.to_string().as_bytes());
        // Codes outside 100..=999 cannot be written as three digits; clamp rather than emit
        // something the peer cannot parse.
        let code = self.status.0.clamp(100, 999);
        out.extend_from_slice(format!(" {code} ").as_bytes());
        write_sanitized(out, &self.reason);
        out.extend_from_slice(b"\r\n");
        write_headers_and_body(out, &self.headers, &self.body);
    }

    /// The serialized response.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        self.write_to(&mut out);
        out
    }
}

/// An interleaved binary frame (RFC 2326 10.12): `$`, channel, 16-bit length, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterleavedFrame {
    /// The channel (as negotiated by `Transport: ...;interleaved=a-b`).
    pub channel: u8,
    /// The payload: an RTP or RTCP packet.
    pub payload: Vec<u8>,
}

/// The payload given to [`write_interleaved`] does not fit the 16-bit length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interleaved payload of {0} bytes exceeds 65535")]
pub struct FrameTooLarge(pub usize);

/// Frames `payload` for RTSP-interleaved transport (RFC 2326 10.12) and appends it to `out`.
pub fn write_interleaved(
    channel: u8,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FrameTooLarge> {
    let len = u16::try_from(payload.len()).map_err(|_| FrameTooLarge(payload.len()))?;
    out.reserve(4 + payload.len());
    out.push(b'$');
    out.push(channel);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

fn write_sanitized(out: &mut Vec<u8>, s: &str) {
    out.extend(
        s.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

/// A URI must stay one token on the request line.
fn write_sanitized_uri(out: &mut Vec<u8>, s: &str) {
    if s.is_empty() {
        out.push(b'*');
        return;
    }
    out.extend(s.bytes().map(|b| {
        if b.is_ascii_whitespace() || b.is_ascii_control() {
            b'_'
        } else {
            b
        }
    }));
}

fn write_headers_and_body(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    let mut wrote_length = false;
    for (name, value) in headers.iter() {
        write_sanitized(out, name);
        out.extend_from_slice(b": ");
        // Every Content-Length field states the body's length, whatever it said before.
        if name.eq_ignore_ascii_case("Content-Length")
            && parse_content_length(value).ok() != Some(body.len())
        {
            out.extend_from_slice(body.len().to_string().as_bytes());
        } else {
            write_sanitized(out, value);
        }
        wrote_length |= name.eq_ignore_ascii_case("Content-Length");
        out.extend_from_slice(b"\r\n");
    }
    if !wrote_length && !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive_and_ordered() {
        let mut h = Headers::new();
        h.append("CSeq", "1");
        h.append("x-a", "1");
        h.append("X-A", "2");
        assert_eq!(h.get("cseq"), Some("1"));
        assert_eq!(h.get_all("x-A").collect::<Vec<_>>(), ["1", "2"]);
        h.set("x-a", "3");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("CSeq", "1"), ("x-a", "3")]);
        h.remove("CSEQ");
        assert_eq!(h.len(), 1);
        assert_eq!(h.cseq(), Ok(None));
    }

    #[test]
    fn serialization_fixes_content_length_and_defuses_crlf() {
        let mut r = Response::new(StatusCode::OK).with_header("CSeq", "2\r\nX-Evil: 1");
        r.body = b"v=0\r\n".to_vec();
        let text = String::from_utf8(r.serialize()).unwrap();
        assert_eq!(
            text,
            "RTSP/1.0 200 OK\r\nCSeq: 2  X-Evil: 1\r\nContent-Length: 5\r\n\r\nv=0\r\n"
        );
        let mut q =
            Request::new(Method::Describe, "rtsp://h/a b").with_header("content-length", "9");
        q.body = b"ab".to_vec();
        let text = String::from_utf8(q.serialize()).unwrap();
        assert_eq!(
            text,
            "DESCRIBE rtsp://h/a_b RTSP/1.0\r\ncontent-length: 2\r\n\r\nab"
        );
    }

    #[test]
    fn interleaved_framing() {
        let mut out = vec![];
        write_interleaved(1, &[0x80, 0xc9], &mut out).unwrap();
        assert_eq!(out, [b'$', 1, 0, 2, 0x80, 0xc9]);
        assert_eq!(
            write_interleaved(0, &vec![0; 70_000], &mut out),
            Err(FrameTooLarge(70_000))
        );
    }

    #[test]
    fn methods_and_status() {
        for m in [
            "OPTIONS",
            "DESCRIBE",
            "SETUP",
            "PLAY",
            "PAUSE",
            "TEARDOWN",
            "GET_PARAMETER",
            "SET_PARAMETER",
            "RECORD",
        ] {
            assert_eq!(Method::from_token(m).as_str(), m);
        }
        assert_eq!(
            Method::from_token("ANNOUNCE"),
            Method::Other("ANNOUNCE".into())
        );
        assert_eq!(StatusCode(454).to_string(), "454 Session Not Found");
        assert!(StatusCode::OK.is_success());
    }
}
