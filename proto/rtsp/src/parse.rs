//! An incremental parser for the RTSP byte stream: requests, responses and interleaved
//! binary frames (RFC 2326 sections 4, 6, 7 and 10.12).
//!
//! [`parse`] looks at the start of a buffer and returns one message and the number of bytes
//! it took, `Ok(None)` when the buffer holds only part of a message, or an error with the
//! byte offset where the grammar broke and what it expected. The result depends only on the
//! bytes, so feeding a stream in arbitrary pieces gives the same messages and the same
//! error as feeding it whole (a property test checks every split point), and a partial
//! message that can already be seen to be invalid or too large is refused without waiting
//! for the rest.
//!
//! Tolerated: LF-only line endings, blank lines between messages, folded header lines
//! (RFC 2326 4.2). Refused: bare CR inside a line, control characters in values, non-UTF-8
//! text, conflicting `Content-Length` fields.

use crate::msg::{Headers, InterleavedFrame, Method, Request, Response, StatusCode, Version};

/// Size limits. A message over a limit is refused with [`ParseError::TooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Start line plus header fields plus the blank line, in bytes. Default 8 KiB.
    pub max_header_bytes: usize,
    /// Header fields per message. Default 64.
    pub max_headers: usize,
    /// Body (and interleaved payload) bytes. Default 64 KiB.
    pub max_body: usize,
    /// Request-URI bytes. Default 2 KiB.
    pub max_uri: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 8 * 1024,
            max_headers: 64,
            max_body: 64 * 1024,
            max_uri: 2 * 1024,
        }
    }
}

/// Which [`Limits`] field was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Limits::max_header_bytes`].
    HeaderBytes,
    /// [`Limits::max_headers`].
    HeaderCount,
    /// [`Limits::max_body`].
    Body,
    /// [`Limits::max_uri`].
    Uri,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::HeaderBytes => "header section",
            Self::HeaderCount => "header count",
            Self::Body => "body",
            Self::Uri => "request URI",
        })
    }
}

/// Why the bytes at the start of a buffer are not an RTSP message. The stream cannot be
/// resynchronised after either; answer (400, 413, 414 or 431) and close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes break the grammar.
    #[error("malformed RTSP message at byte {pos}: expected {expected}")]
    Invalid {
        /// Offset in the buffer.
        pos: usize,
        /// What the grammar wanted there.
        expected: &'static str,
    },
    /// A size limit was exceeded.
    #[error("RTSP {limit} exceeds the limit of {max} at byte {pos}")]
    TooLarge {
        /// Offset in the buffer where the limit was crossed or the offending part starts.
        pos: usize,
        /// Which limit.
        limit: Limit,
        /// Its value.
        max: usize,
    },
}

impl ParseError {
    /// The byte offset the error refers to.
    pub fn pos(&self) -> usize {
        match self {
            Self::Invalid { pos, .. } | Self::TooLarge { pos, .. } => *pos,
        }
    }
}

/// One item of the RTSP stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
    /// An interleaved binary frame.
    Interleaved(InterleavedFrame),
}

impl Parsed {
    /// The serialized form (`parse` of it gives `self` back).
    pub fn serialize(&self) -> Vec<u8> {
        match self {
            Self::Request(r) => r.serialize(),
            Self::Response(r) => r.serialize(),
            Self::Interleaved(f) => {
                let mut out = Vec::with_capacity(4 + f.payload.len());
                // A parsed frame's payload fits 16 bits; a hand-made oversized one is
                // written as an empty frame rather than a corrupt one.
                if crate::msg::write_interleaved(f.channel, &f.payload, &mut out).is_err() {
                    out.extend_from_slice(&[b'$', f.channel, 0, 0]);
                }
                out
            }
        }
    }
}

/// [`parse_with`] under the default [`Limits`].
pub fn parse(buf: &[u8]) -> Result<Option<(Parsed, usize)>, ParseError> {
    parse_with(buf, &Limits::default())
}

/// Parses one item from the start of `buf`: `Ok(Some((item, consumed)))`, `Ok(None)` when
/// more bytes are needed, or the reason the stream is broken.
pub fn parse_with(buf: &[u8], limits: &Limits) -> Result<Option<(Parsed, usize)>, ParseError> {
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let too_big_header = ParseError::TooLarge {
        pos: limits.max_header_bytes,
        limit: Limit::HeaderBytes,
        max: limits.max_header_bytes,
    };
    // Blank lines between messages.
    let mut start = 0;
    loop {
        match (window.get(start), window.get(start + 1)) {
            (Some(b'\n'), _) => start += 1,
            (Some(b'\r'), Some(b'\n')) => start += 2,
            (Some(b'\r'), Some(_)) => return Err(invalid(start + 1, "LF after CR")),
            (Some(b'\r'), None) if buf.len() >= limits.max_header_bytes => {
                return Err(too_big_header);
            }
            (Some(b'\r'), None) => return Ok(None),
            (Some(_), _) => break,
            (None, _) if buf.len() >= limits.max_header_bytes => return Err(too_big_header),
            (None, _) => return Ok(None),
        }
    }
    if window[start] == b'$' {
        return parse_interleaved(buf, start, limits);
    }

    let mut pos = start;
    let mut start_line = None;
    let mut headers = Headers::new();
    let mut length_fields = Vec::new();
    let header_end = loop {
        let Some(nl) = window[pos..].iter().position(|&b| b == b'\n') else {
            if start_line.is_none() {
                // A trailing CR may be the first half of the line's CRLF.
                let partial = &window[pos..];
                let partial = partial.strip_suffix(b"\r").unwrap_or(partial);
                scan_start_line(partial, pos, false, limits)?;
            }
            if buf.len() >= limits.max_header_bytes {
                return Err(too_big_header);
            }
            return Ok(None);
        };
        let line_end = pos + nl;
        let content_end = if nl > 0 && window[line_end - 1] == b'\r' {
            line_end - 1
        } else {
            line_end
        };
        let line = &window[pos..content_end];
        if start_line.is_none() {
            start_line = scan_start_line(line, pos, true, limits)?;
        } else if line.is_empty() {
            break line_end + 1;
        } else if line[0] == b' ' || line[0] == b'\t' {
            let value = header_value(&line[1..], pos + 1)?;
            if !headers.fold_into_last(value) {
                return Err(invalid(pos, "a header field before a continuation line"));
            }
        } else {
            let colon = line
                .iter()
                .position(|&b| !is_token_char(b))
                .unwrap_or(line.len());
            if colon == 0 || line.get(colon) != Some(&b':') {
                return Err(invalid(pos + colon, "a header name followed by ':'"));
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::TooLarge {
                    pos,
                    limit: Limit::HeaderCount,
                    max: limits.max_headers,
                });
            }
            let name = std::str::from_utf8(&line[..colon]).unwrap_or_default();
            let value = header_value(&line[colon + 1..], pos + colon + 1)?;
            if name.eq_ignore_ascii_case("Content-Length") {
                length_fields.push((headers.len(), pos + colon + 1));
            }
            headers.append(name, value);
        }
        pos = line_end + 1;
    };

    let mut body_len: Option<usize> = None;
    for (index, value_pos) in length_fields {
        let value = headers
            .iter()
            .nth(index)
            .map(|(_, v)| v)
            .unwrap_or_default();
        let len = crate::msg::parse_content_length(value)
            .map_err(|_| invalid(value_pos, "a decimal Content-Length"))?;
        if body_len.is_some_and(|l| l != len) {
            return Err(invalid(
                value_pos,
                "Content-Length equal to the earlier one",
            ));
        }
        if len > limits.max_body {
            return Err(ParseError::TooLarge {
                pos: value_pos,
                limit: Limit::Body,
                max: limits.max_body,
            });
        }
        body_len = Some(len);
    }
    let body_len = body_len.unwrap_or(0);
    let Some(body) = buf.get(header_end..header_end + body_len) else {
        return Ok(None);
    };
    let body = body.to_vec();
    let consumed = header_end + body_len;
    let parsed = match start_line {
        Some(StartLine::Request {
            method,
            uri,
            version,
        }) => Parsed::Request(Request {
            method,
            uri,
            version,
            headers,
            body,
        }),
        Some(StartLine::Response {
            version,
            status,
            reason,
        }) => Parsed::Response(Response {
            version,
            status,
            reason,
            headers,
            body,
        }),
        None => return Err(invalid(start, "a start line")),
    };
    Ok(Some((parsed, consumed)))
}

fn parse_interleaved(
    buf: &[u8],
    start: usize,
    limits: &Limits,
) -> Result<Option<(Parsed, usize)>, ParseError> {
    let (Some(&channel), Some(&hi), Some(&lo)) =
        (buf.get(start + 1), buf.get(start + 2), buf.get(start + 3))
    else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > limits.max_body {
        return Err(ParseError::TooLarge {
            pos: start + 2,
            limit: Limit::Body,
            max: limits.max_body,
        });
    }
    let end = start + 4 + len;
    Ok(buf.get(start + 4..end).map(|payload| {
        (
            Parsed::Interleaved(InterleavedFrame {
                channel,
                payload: payload.to_vec(),
            }),
            end,
        )
    }))
}

enum StartLine {
    Request {
        method: Method,
        uri: String,
        version: Version,
    },
    Response {
        version: Version,
        status: StatusCode,
        reason: String,
    },
}

/// Longest method token accepted (the longest standard one, `SET_PARAMETER`, has 13).
const MAX_METHOD: usize = 32;

/// Checks a start line left to right. With `complete == false` the line may continue:
/// running out of bytes is `Ok(None)`, but anything already wrong is reported, so a prefix
/// and the whole line give the same error.
fn scan_start_line(
    line: &[u8],
    base: usize,
    complete: bool,
    limits: &Limits,
) -> Result<Option<StartLine>, ParseError> {
    let mut c = Cursor {
        b: line,
        i: 0,
        base,
        complete,
    };
    if line.starts_with(b"RTSP/") {
        let Some(version) = c.version()? else {
            return Ok(None);
        };
        if !c.byte(b' ', "SP after the version")? {
            return Ok(None);
        }
        let mut status = 0u16;
        for _ in 0..3 {
            match c.peek() {
                Some(d) if d.is_ascii_digit() => {
                    status = status * 10 + u16::from(d - b'0');
                    c.i += 1;
                }
                Some(_) => return Err(c.err("a three-digit status code")),
                None if complete => return Err(c.err("a three-digit status code")),
                None => return Ok(None),
            }
        }
        if status < 100 {
            return Err(invalid(base + c.i - 3, "a status code from 100"));
        }
        let reason_start = match c.peek() {
            None if complete => line.len(),
            None => return Ok(None),
            Some(b' ') => c.i + 1,
            Some(_) => return Err(c.err("SP after the status code")),
        };
        let reason = &line[reason_start.min(line.len())..];
        if let Some(bad) = reason.iter().position(|&b| !is_text(b)) {
            return Err(invalid(
                base + reason_start + bad,
                "a printable reason phrase",
            ));
        }
        if !complete {
            return Ok(None);
        }
        let reason = std::str::from_utf8(reason).map_err(|e| {
            invalid(
                base + reason_start + e.valid_up_to(),
                "a UTF-8 reason phrase",
            )
        })?;
        return Ok(Some(StartLine::Response {
            version,
            status: StatusCode(status),
            reason: reason.to_owned(),
        }));
    }

    // Method.
    let method_len = line.iter().take_while(|&&b| is_token_char(b)).count();
    if method_len > MAX_METHOD {
        return Err(invalid(
            base + MAX_METHOD,
            "a method token of at most 32 bytes",
        ));
    }
    c.i = method_len;
    if method_len == 0 && (complete || !line.is_empty()) {
        return Err(c.err("a method token or RTSP/"));
    }
    if !c.byte(b' ', "SP after the method")? {
        return Ok(None);
    }
    // Request-URI.
    let uri_start = c.i;
    let uri_len = line[uri_start..]
        .iter()
        .take_while(|&&b| b > b' ' && b != 0x7f)
        .count();
    if uri_len > limits.max_uri {
        return Err(ParseError::TooLarge {
            pos: base + uri_start,
            limit: Limit::Uri,
            max: limits.max_uri,
        });
    }
    c.i += uri_len;
    if uri_len == 0 && (complete || c.peek().is_some()) {
        return Err(c.err("a request URI"));
    }
    if !c.byte(b' ', "SP after the request URI")? {
        return Ok(None);
    }
    let Some(version) = c.version()? else {
        return Ok(None);
    };
    if c.peek().is_some() {
        return Err(c.err("end of line after the version"));
    }
    if !complete {
        return Ok(None);
    }
    let method = std::str::from_utf8(&line[..method_len]).unwrap_or_default();
    let uri = std::str::from_utf8(&line[uri_start..uri_start + uri_len])
        .map_err(|e| invalid(base + uri_start + e.valid_up_to(), "a UTF-8 request URI"))?;
    Ok(Some(StartLine::Request {
        method: Method::from_token(method),
        uri: uri.to_owned(),
        version,
    }))
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
    base: usize,
    complete: bool,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn err(&self, expected: &'static str) -> ParseError {
        invalid(self.base + self.i, expected)
    }

    /// Consumes `want`: `Ok(true)`, `Ok(false)` if the (incomplete) line ended first.
    fn byte(&mut self, want: u8, expected: &'static str) -> Result<bool, ParseError> {
        match self.peek() {
            Some(b) if b == want => {
                self.i += 1;
                Ok(true)
            }
            None if !self.complete => Ok(false),
            _ => Err(self.err(expected)),
        }
    }

    /// `RTSP/<digit>.<digit>`.
    fn version(&mut self) -> Result<Option<Version>, ParseError> {
        const EXPECTED: &str = "RTSP/<digit>.<digit>";
        let mut digits = [0u8; 2];
        for (k, want) in b"RTSP/0.0".iter().enumerate() {
            match self.peek() {
                None if !self.complete => return Ok(None),
                Some(b) if *want == b'0' && b.is_ascii_digit() => {
                    digits[usize::from(k > 5)] = b - b'0'
                }
                Some(b) if b == *want && *want != b'0' => {}
                _ => return Err(self.err(EXPECTED)),
            }
            self.i += 1;
        }
        Ok(Some(Version {
            major: digits[0],
            minor: digits[1],
        }))
    }
}

fn invalid(pos: usize, expected: &'static str) -> ParseError {
    ParseError::Invalid { pos, expected }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Text allowed in values and reason phrases: HTAB, SP, visible ASCII, and non-ASCII bytes
/// (checked for UTF-8 afterwards).
fn is_text(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

fn header_value(raw: &[u8], base: usize) -> Result<&str, ParseError> {
    if let Some(bad) = raw.iter().position(|&b| !is_text(b)) {
        return Err(invalid(
            base + bad,
            "a header value without control characters",
        ));
    }
    let s = std::str::from_utf8(raw)
        .map_err(|e| invalid(base + e.valid_up_to(), "a UTF-8 header value"))?;
    Ok(s.trim_matches([' ', '\t']))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
