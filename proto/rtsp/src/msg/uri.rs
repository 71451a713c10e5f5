//! Just enough of RTSP URL handling (RFC 2326 3.2) for a camera: the path, the query, a
//! `trackID=N` control suffix, and query parameters such as `token=`.
//!
//! Players build per-track control URLs in different ways. With a `Content-Base` of
//! `rtsp://cam/live/pc-1/` and `a=control:trackID=0` all of them ask for
//! `rtsp://cam/live/pc-1/trackID=0`; when the base carries a query, ffmpeg appends the
//! control after it (`rtsp://cam/live/pc-1?token=t/trackID=0`). [`strip_track`] accepts both.

/// The parts of a request URI a server routes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriParts<'a> {
    /// The path, starting with `/` (or `*`); `/` when the URI has none.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
}

/// Splits `rtsp://host[:port]/path[?query][#fragment]`, `/path[?query]` or `*`.
pub fn split(uri: &str) -> UriParts<'_> {
    let rest = match uri.find("://") {
        Some(i)
            if uri[..i]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            let after = &uri[i + 3..];
            match after.find(['/', '?', '#']) {
                Some(j) => &after[j..],
                None => "",
            }
        }
        _ => uri,
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    UriParts {
        path: if path.is_empty() { "/" } else { path },
        query,
    }
}

/// Removes a `trackID=N` path segment (see the module docs), returning the URI without it
/// and `N`. Without such a segment the URI comes back unchanged with `None`.
pub fn strip_track(uri: &str) -> (String, Option<usize>) {
    const KEY: &[u8] = b"trackid=";
    let bytes = uri.as_bytes();
    let found = bytes
        .windows(KEY.len())
        .enumerate()
        .rev()
        .find(|(i, w)| w.eq_ignore_ascii_case(KEY) && *i > 0 && bytes[i - 1] == b'/')
        .map(|(i, _)| i);
    let Some(start) = found else {
        return (uri.to_owned(), None);
    };
    let digits_at = start + KEY.len();
    let digits = bytes[digits_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let end = digits_at + digits;
    let boundary = bytes.get(end).is_none_or(|b| b"/?&#".contains(b));
    let track = uri[digits_at..end]
        .parse::<usize>()
        .ok()
        .filter(|_| digits <= 6);
    match track {
        Some(t) if boundary => {
            let mut base = String::with_capacity(uri.len());
            base.push_str(&uri[..start - 1]);
            // Keep a separator if the segment sat between a path and a query.
            base.push_str(&uri[end..]);
            (base, Some(t))
        }
        _ => (uri.to_owned(), None),
    }
}

/// The value of the first `name=value` pair in a `&`-separated query, percent-decoded (the
/// raw value if it does not decode to UTF-8).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split(['&', ';']).find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v).unwrap_or_else(|| v.to_owned()))
    })
}

/// Decodes `%XX` escapes; `None` if the result is not UTF-8. A `%` not followed by two hex
/// digits stays as it is.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn splits() {
        let p = split("rtsp://10.0.0.2:8554/live/pc-1?token=a%2Bb#x");
        assert_eq!(p.path, "/live/pc-1");
        assert_eq!(p.query, Some("token=a%2Bb"));
        assert_eq!(
            query_param(p.query.unwrap(), "token").as_deref(),
            Some("a+b")
        );
        assert_eq!(split("rtsp://cam").path, "/");
        assert_eq!(split("rtsp://cam?x=1").query, Some("x=1"));
        assert_eq!(split("*").path, "*");
        assert_eq!(split("/a?b").path, "/a");
        assert_eq!(query_param("a=1&token=&b", "token").as_deref(), Some(""));
        assert_eq!(query_param("a=1", "token"), None);
        assert_eq!(percent_decode("%zz%4"), Some("%zz%4".into()));
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn tracks_as_players_spell_them() {
        let cases = [
            (
                "rtsp://cam/live/pc-1/trackID=0",
                "rtsp://cam/live/pc-1",
                Some(0),
            ),
            (
                "rtsp://cam/live/pc-1?token=t/trackID=1",
                "rtsp://cam/live/pc-1?token=t",
                Some(1),
            ),
            (
                "rtsp://cam/live/pc-1/trackid=12?token=t",
                "rtsp://cam/live/pc-1?token=t",
                Some(12),
            ),
            ("rtsp://cam/live/pc-1/", "rtsp://cam/live/pc-1/", None),
            (
                "rtsp://cam/live/xtrackID=1",
                "rtsp://cam/live/xtrackID=1",
                None,
            ),
            (
                "rtsp://cam/live/trackID=1a",
                "rtsp://cam/live/trackID=1a",
                None,
            ),
            ("rtsp://cam/live/trackID=", "rtsp://cam/live/trackID=", None),
            (
                "rtsp://cam/trackID=99999999999999999999",
                "rtsp://cam/trackID=99999999999999999999",
                None,
            ),
        ];
        for (uri, base, track) in cases {
            assert_eq!(strip_track(uri), (base.to_owned(), track), "{uri}");
        }
    }

    proptest! {
        #[test]
        fn never_panic(s in "\\PC{0,60}") {
            let _ = split(&s);
            let _ = strip_track(&s);
            let _ = percent_decode(&s);
            let _ = query_param(&s, "token");
        }
    }
}
