//! The MTU's pipe for recorder playback (Mn/Nd, H.626.4 8.3): a viewer off the recorder's
//! LAN plays `rtsp://MTU/pipe/RECORDER/rec/CAMERA?start=…&token=T`. The MTU has the
//! platform spend `T` and gets a fresh one-time token `T2` for the same user, recorder and
//! camera; it forwards the viewer's DESCRIBE to the recorder's own channel as
//! `rtsp://MTU/rec/CAMERA?start=…&token=T2` ([`rewrite`]) and from then on copies bytes
//! both ways, unchanged. Sans-IO: bytes in, bytes out.

/// The path prefix of a pipe.
pub const PREFIX: &str = "/pipe/";

/// Longest recorder id in a pipe path, bytes.
const MAX_RECORDER: usize = 64;

/// What a pipe request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeTarget {
    /// The recorder's device id, as written in the path.
    pub recorder: String,
    /// The viewer's token (`token=` in the query).
    pub token: String,
}

/// Why a request cannot go through a pipe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// The request line is not `METHOD URI VERSION`.
    #[error("malformed request line")]
    RequestLine,
    /// The path is not `/pipe/RECORDER/…`.
    #[error("not a pipe path; use /pipe/RECORDER/rec/CAMERA")]
    NotPipe,
    /// The query has no `token=`, or more than one.
    #[error("a pipe request needs exactly one token= in its query")]
    Token,
    /// The fresh token holds characters a URL query cannot carry as they are.
    #[error("the fresh token is not URL-safe")]
    FreshToken,
}

/// Splits `uri` into its scheme and authority (empty for a bare path), its path and its
/// query.
fn split_uri(uri: &str) -> (&str, &str, Option<&str>) {
    // An absolute URI begins with a scheme (RFC 3986 3.1) and `://`; a `://` later on (in
    // the path or the query) is not one.
    let scheme = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    let (origin, rest) = match uri.find("://").filter(|i| scheme(&uri[..*i])) {
        Some(i) => {
            let after = &uri[i + 3..];
            let end = after.find(['/', '?']).map_or(uri.len(), |j| i + 3 + j);
            uri.split_at(end)
        }
        None => ("", uri),
    };
    match rest.split_once('?') {
        Some((p, q)) => (origin, p, Some(q)),
        None => (origin, rest, None),
    }
}

/// The recorder and the inner path of a pipe path (`/pipe/RECORDER/INNER…`).
fn split_path(path: &str) -> Result<(&str, &str), PipeError> {
    let rest = path.strip_prefix(PREFIX).ok_or(PipeError::NotPipe)?;
    let (recorder, inner) = rest.split_at(rest.find('/').ok_or(PipeError::NotPipe)?);
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if recorder.is_empty() || recorder.len() > MAX_RECORDER || !recorder.chars().all(ok) {
        return Err(PipeError::NotPipe);
    }
    if inner.len() < 2 {
        return Err(PipeError::NotPipe);
    }
    Ok((recorder, inner))
}

/// The only `token=` value of `query`.
fn token_of(query: Option<&str>) -> Result<&str, PipeError> {
    let mut tokens = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.strip_prefix("token="));
    match (tokens.next(), tokens.next()) {
        (Some(t), None) if !t.is_empty() => Ok(t),
        _ => Err(PipeError::Token),
    }
}

/// Whether a request URI asks for a pipe (its path begins with [`PREFIX`]).
pub fn is_pipe(uri: &str) -> bool {
    split_uri(uri).1.starts_with(PREFIX)
}

/// What the pipe request URI `uri` names.
pub fn target(uri: &str) -> Result<PipeTarget, PipeError> {
    let (_, path, query) = split_uri(uri);
    let (recorder, _) = split_path(path)?;
    Ok(PipeTarget {
        recorder: recorder.to_owned(),
        token: token_of(query)?.to_owned(),
    })
}

/// The request `raw` (one whole request as the viewer sent it: request line, headers,
/// body) as the recorder gets it: the URI without `/pipe/RECORDER` and with `fresh` in
/// place of the viewer's token; everything after the request line unchanged.
pub fn rewrite(raw: &[u8], fresh: &str) -> Result<Vec<u8>, PipeError> {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
    if fresh.is_empty() || !fresh.chars().all(safe) {
        return Err(PipeError::FreshToken);
    }
    let eol = raw
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(PipeError::RequestLine)?;
    let line = std::str::from_utf8(&raw[..eol]).map_err(|_| PipeError::RequestLine)?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PipeError::RequestLine);
    };
    if method.is_empty() || version.is_empty() {
        return Err(PipeError::RequestLine);
    }
    let (origin, path, query) = split_uri(uri);
    let (_, inner) = split_path(path)?;
    token_of(query)?;
    let query: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .map(|kv| {
            if kv.starts_with("token=") {
                format!("token={fresh}")
            } else {
                kv.to_owned()
            }
        })
        .collect();
    let mut out = Vec::with_capacity(raw.len() + fresh.len());
    out.extend_from_slice(
        format!("{method} {origin}{inner}?{} {version}\r\n", query.join("&")).as_bytes(),
    );
    out.extend_from_slice(&raw[eol + 1..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REQ: &[u8] = b"DESCRIBE rtsp://10.0.0.1:8554/pipe/pn-00aa/rec/pc-11bb?start=20261207T120000Z&token=T1 RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n";

    #[test]
    fn h626_8_3_pipe_target_and_rewrite() {
        let uri = "rtsp://10.0.0.1:8554/pipe/pn-00aa/rec/pc-11bb?start=x&token=T1";
        assert!(is_pipe(uri));
        assert!(!is_pipe("rtsp://10.0.0.1:8554/relay/pc-11bb?token=T1"));
        assert_eq!(
            target(uri).unwrap(),
            PipeTarget {
                recorder: "pn-00aa".into(),
                token: "T1".into()
            }
        );
        let out = rewrite(REQ, "T2.x-y_z").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "DESCRIBE rtsp://10.0.0.1:8554/rec/pc-11bb?start=20261207T120000Z&token=T2.x-y_z RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n"
        );
        // The result parses as an RTSP request naming the recorder's own path.
        let out = rewrite(REQ, "T2").unwrap();
        let Ok(Some((crate::Parsed::Request(r), n))) = crate::parse(&out) else {
            panic!("rewritten request does not parse")
        };
        assert_eq!(n, out.len());
        assert!(
            r.uri
                .ends_with("/rec/pc-11bb?start=20261207T120000Z&token=T2"),
            "{}",
            r.uri
        );
    }

    #[test]
    fn h626_8_3_pipe_refuses_what_it_cannot_carry() {
        assert_eq!(
            target("rtsp://m/pipe/pn-1?token=a"),
            Err(PipeError::NotPipe)
        );
        assert_eq!(
            target("rtsp://m/pipe//rec/c?token=a"),
            Err(PipeError::NotPipe)
        );
        assert_eq!(
            target("rtsp://m/pipe/p%2e/rec/c?token=a"),
            Err(PipeError::NotPipe)
        );
        assert_eq!(target("rtsp://m/pipe/pn-1/rec/c"), Err(PipeError::Token));
        assert_eq!(
            target("rtsp://m/pipe/pn-1/rec/c?token=a&token=b"),
            Err(PipeError::Token)
        );
        assert_eq!(
            target("rtsp://m/pipe/pn-1/rec/c?token="),
            Err(PipeError::Token)
        );
        assert_eq!(rewrite(REQ, "a b"), Err(PipeError::FreshToken));
        assert_eq!(rewrite(REQ, "a&token=b"), Err(PipeError::FreshToken));
        assert_eq!(
            rewrite(b"DESCRIBE\r\n\r\n", "t"),
            Err(PipeError::RequestLine)
        );
        assert_eq!(rewrite(b"no line end", "t"), Err(PipeError::RequestLine));
        // A `://` in the query is no scheme (found by the fuzz target).
        let odd = "*///pipe/p-00aa/r1bb?tsp:///r1bb?token=T";
        assert_eq!(target(odd), Err(PipeError::NotPipe));
        let odd = "/pipe/p-00aa/r1bb?x=tsp://h/pipe/q/r&token=T";
        assert_eq!(target(odd).map(|t| t.recorder), Ok("p-00aa".into()));
        let out = rewrite(format!("PLAY {odd} RTSP/1.0\r\n\r\n").as_bytes(), "U").unwrap();
        assert_eq!(
            out,
            b"PLAY /r1bb?x=tsp://h/pipe/q/r&token=U RTSP/1.0\r\n\r\n"
        );
    }

    proptest! {
        /// Round trip: whatever the query around it, the rewrite replaces exactly the token,
        /// drops exactly the pipe prefix and keeps the rest of the request byte for byte.
        #[test]
        fn h626_8_3_pipe_rewrite_round_trip(
            recorder in "[a-z]{2}-[0-9a-f]{1,20}",
            inner in "(/[a-zA-Z0-9._-]{1,12}){1,3}",
            before in proptest::collection::vec("[a-z]{1,5}=[a-zA-Z0-9]{0,6}", 0..3),
            after in proptest::collection::vec("[a-z]{1,5}=[a-zA-Z0-9]{0,6}", 0..3),
            token in "[A-Za-z0-9_.-]{1,40}",
            fresh in "[A-Za-z0-9_.-]{1,40}",
            rest in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let before: Vec<String> = before.into_iter().filter(|kv| !kv.starts_with("token=")).collect();
            let after: Vec<String> = after.into_iter().filter(|kv| !kv.starts_with("token=")).collect();
            let mut q = before.clone();
            q.push(format!("token={token}"));
            q.extend(after.iter().cloned());
            let uri = format!("rtsp://mtu:1/pipe/{recorder}{inner}?{}", q.join("&"));
            let t = target(&uri).unwrap();
            prop_assert_eq!(&t.recorder, &recorder);
            prop_assert_eq!(&t.token, &token);
            let mut raw = format!("PLAY {uri} RTSP/1.0\r\n").into_bytes();
            raw.extend_from_slice(&rest);
            let out = rewrite(&raw, &fresh).unwrap();
            let mut q2 = before;
            q2.push(format!("token={fresh}"));
            q2.extend(after);
            let mut want = format!("PLAY rtsp://mtu:1{inner}?{} RTSP/1.0\r\n", q2.join("&")).into_bytes();
            want.extend_from_slice(&rest);
            prop_assert_eq!(out, want);
        }

        /// Any bytes: no panic.
        #[test]
        fn h626_8_3_pipe_rewrite_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = rewrite(&raw, "t");
            if let Ok(s) = std::str::from_utf8(&raw) {
                let _ = target(s);
            }
        }
    }
}
