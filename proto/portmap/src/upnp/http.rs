//! Just enough HTTP/1.1 for UPnP: `http://` URLs, GET and SOAP POST requests (always
//! `Connection: close`), and framing a response by `Content-Length`, chunked transfer
//! coding or end of stream.

use crate::Error;

/// The largest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// The largest response body accepted (device descriptions are a few KiB).
pub const MAX_BODY: usize = 256 * 1024;

/// An `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or address; IPv6 without brackets.
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path with query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses an absolute `http://` URL.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let url = url.trim();
        let rest = url
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("http://"))
            .map(|_| &url[7..])
            .ok_or(Error::invalid("URL", "not http://"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or(Error::invalid("URL", "unclosed ["))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || host.contains(|c: char| {
                c.is_whitespace() || c.is_control() || matches!(c, '[' | ']' | '@' | '/' | '?')
            })
        {
            return Err(Error::invalid("URL", "bad host"));
        }
        let port = match port {
            None | Some("") => 80,
            Some(p) => p.parse().map_err(|_| Error::invalid("URL", "bad port"))?,
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid("URL", "bad path"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// `host:port` for a `Host:` header (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves a reference found in a device description (`controlURL`) against this
    /// URL: absolute URLs stand, `/path` replaces the path, anything else is relative
    /// to this URL's directory.
    pub fn join(&self, reference: &str) -> Result<Self, Error> {
        let r = reference.trim();
        if r.get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        {
            return Self::parse(r);
        }
        let path = if r.starts_with('/') {
            r.to_owned()
        } else {
            let dir = self.path.split('?').next().unwrap_or("/");
            let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
            let dir = if dir.is_empty() { "/" } else { dir };
            format!("{dir}{r}")
        };
        Self::parse(&format!("http://{}{path}", self.authority()))
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// A GET request for `url`.
pub fn get(url: &HttpUrl) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: peercam UPnP/1.1\r\n\r\n",
        url.path,
        url.authority()
    )
    .into_bytes()
}

/// A SOAP POST request (UPnP Device Architecture 1.1, 3.2.1).
pub fn soap_post(url: &HttpUrl, soap_action: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: \"{}\"\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: peercam UPnP/1.1\r\n\r\n{}",
        url.path,
        url.authority(),
        soap_action,
        body.len(),
        body
    )
    .into_bytes()
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Frames a response from the bytes read so far. `Ok(None)`: more bytes are needed;
    /// `eof` says the peer closed, which ends a body without a length and makes a short
    /// body an error.
    pub fn parse(buf: &[u8], eof: bool) -> Result<Option<Self>, Error> {
        let Some(head_end) = find(buf, b"\r\n\r\n") else {
            if buf.len() > MAX_HEAD {
                return Err(Error::TooLarge {
                    context: "HTTP head",
                    limit: MAX_HEAD,
                });
            }
            return if eof {
                Err(Error::truncated("HTTP head", buf.len()))
            } else {
                Ok(None)
            };
        };
        if head_end > MAX_HEAD {
            return Err(Error::TooLarge {
                context: "HTTP head",
                limit: MAX_HEAD,
            });
        }
        let head = String::from_utf8_lossy(&buf[..head_end]);
        let mut lines = head.split("\r\n");
        let status = parse_status_line(lines.next().unwrap_or_default())?;
        let headers = parse_headers(lines);
        let rest = &buf[head_end + 4..];
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            match dechunk(rest)? {
                Some(b) => b,
                None if eof => return Err(Error::truncated("HTTP chunked body", rest.len())),
                None => return Ok(None),
            }
        } else if let Some(len) = header(&headers, "content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| Error::invalid("HTTP", "bad Content-Length"))?;
            if len > MAX_BODY {
                return Err(Error::TooLarge {
                    context: "HTTP body",
                    limit: MAX_BODY,
                });
            }
            match rest.get(..len) {
                Some(b) => b.to_vec(),
                None if eof => return Err(Error::truncated("HTTP body", rest.len())),
                None => return Ok(None),
            }
        } else if eof || status == 204 || status == 304 || (100..200).contains(&status) {
            rest.to_vec()
        } else {
            if rest.len() > MAX_BODY {
                return Err(Error::TooLarge {
                    context: "HTTP body",
                    limit: MAX_BODY,
                });
            }
            return Ok(None);
        };
        if body.len() > MAX_BODY {
            return Err(Error::TooLarge {
                context: "HTTP body",
                limit: MAX_BODY,
            });
        }
        Ok(Some(Self {
            status,
            headers,
            body,
        }))
    }

    /// The response on the wire with a `Content-Length` (for test servers).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} X\r\n", self.status);
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("content-length")
                && !k.eq_ignore_ascii_case("transfer-encoding")
            {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut b = out.into_bytes();
        b.extend_from_slice(&self.body);
        b
    }
}

/// Parses `HTTP/1.x NNN reason`, giving NNN.
pub(crate) fn parse_status_line(line: &str) -> Result<u16, Error> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(Error::invalid("HTTP", "not an HTTP/1.x status line"));
    }
    let code = parts.next().unwrap_or_default();
    match code.parse::<u16>() {
        Ok(c) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) && c >= 100 => Ok(c),
        _ => Err(Error::invalid("HTTP", "bad status code")),
    }
}

/// `Name: value` lines; lines without a colon are skipped.
pub(crate) fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body (RFC 9112 7.1); `Ok(None)` while incomplete. Trailers are
/// skipped.
fn dechunk(mut b: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(b, b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&b[..eol]);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| Error::invalid("HTTP chunk", "bad chunk size"))?;
        if size > MAX_BODY || out.len() + size > MAX_BODY {
            return Err(Error::TooLarge {
                context: "HTTP body",
                limit: MAX_BODY,
            });
        }
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://10.0.1.1:5000/rootDesc.xml").unwrap();
        assert_eq!(u.authority(), "10.0.1.1:5000");
        assert_eq!(
            u.join("/ctl/IPConn").unwrap().to_string(),
            "http://10.0.1.1:5000/ctl/IPConn"
        );
        assert_eq!(u.join("ctl").unwrap().path, "/ctl");
        assert_eq!(u.join("http://10.0.1.1:6000/x").unwrap().port, 6000);
        assert_eq!(
            HttpUrl::parse("http://[fe80::1]:80").unwrap().host,
            "fe80::1"
        );
        assert!(HttpUrl::parse("https://x/").is_err());
        assert!(HttpUrl::parse("http://x:99999/").is_err());
    }

    #[test]
    fn frames_chunked_and_length_and_eof() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            HttpResponse::parse(r, false).unwrap().unwrap().body,
            b"abcde"
        );
        assert_eq!(HttpResponse::parse(&r[..r.len() - 9], false).unwrap(), None);
        let r = b"HTTP/1.0 500 Internal\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(HttpResponse::parse(r, false).unwrap().unwrap().status, 500);
        // Fuzz regression: a status of "010" is not 10.
        assert!(HttpResponse::parse(b"HTTP/1.5 010 X\r\n\r\n", true).is_err());
        let r = b"HTTP/1.1 200 OK\r\n\r\nuntil close";
        assert_eq!(HttpResponse::parse(r, false).unwrap(), None);
        assert_eq!(
            HttpResponse::parse(r, true).unwrap().unwrap().body,
            b"until close"
        );
    }

    proptest! {
        #[test]
        fn response_round_trips(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..300),
                                headers in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[!-~]([ !-~]{0,20}[!-~])?"), 0..5)) {
            let headers: Vec<(String, String)> = headers.into_iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("transfer-encoding"))
                .collect();
            let r = HttpResponse { status, headers, body };
            let mut parsed = HttpResponse::parse(&r.encode(), false)?.unwrap();
            prop_assert_eq!(parsed.headers.pop().map(|h| h.0), Some("Content-Length".to_owned()));
            prop_assert_eq!(parsed, r);
        }

        #[test]
        fn url_round_trips(host in "[a-z0-9.-]{1,20}", port in any::<u16>(), path in "(/[a-zA-Z0-9._~%-]{0,8}){1,4}") {
            let u = HttpUrl { host, port, path };
            prop_assert_eq!(HttpUrl::parse(&u.to_string())?, u);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200), eof in any::<bool>()) {
            let _ = HttpResponse::parse(&b, eof);
            let _ = HttpUrl::parse(&String::from_utf8_lossy(&b));
        }
    }
}
