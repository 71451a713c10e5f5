//! The MTU pipe's first-request rewrite (Mn/Nd, H.626.4 8.3) on arbitrary bytes.
//!
//! Input: a viewer's first request as it reached the MTU.
//!
//! Oracles besides "never panics":
//! * a request that rewrites names a pipe target (recorder and token) in its URI;
//! * the rewritten request keeps every byte after the request line, holds the fresh token
//!   as its only `token=`, and its URI is shorter by exactly the pipe prefix;
//! * whatever parsed as a request before still parses as one after, with the same method.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_rtsp::pipe::{is_pipe, rewrite, target};

const FRESH: &str = "FRESH.token-9_x";

fuzz_target!(|data: &[u8]| {
    let Ok(out) = rewrite(data, FRESH) else {
        return;
    };
    let eol = data.iter().position(|b| *b == b'\n').expect("a line was rewritten");
    let line = std::str::from_utf8(&data[..eol]).expect("the line was text");
    let uri = line.split(' ').nth(1).expect("a URI");
    let t = target(uri).expect("a rewritten request names its target");
    assert!(!t.recorder.is_empty() && !t.token.is_empty());
    assert!(out.ends_with(&data[eol + 1..]), "the rest is kept");
    let out_eol = out.iter().position(|b| *b == b'\n').expect("a line");
    let new_line = std::str::from_utf8(&out[..out_eol]).expect("text");
    let new_uri = new_line.split(' ').nth(1).expect("a URI");
    let (_, query) = new_uri.split_once('?').expect("a query");
    let fresh = format!("token={FRESH}");
    assert_eq!(query.split('&').filter(|kv| kv.starts_with("token=")).collect::<Vec<_>>(), [fresh.as_str()], "{new_uri}");
    // The pipe prefix is gone: what is left is the recorder's own path.
    let prefix = format!("/pipe/{}/", t.recorder);
    assert_eq!(new_uri.len() + prefix.len() - 1, uri.len() - t.token.len() + FRESH.len(), "{uri} -> {new_uri}");
    let _ = is_pipe(new_uri);
    if let Ok(Some((peercam_rtsp::Parsed::Request(a), _))) = peercam_rtsp::parse(data) {
        match peercam_rtsp::parse(&out) {
            Ok(Some((peercam_rtsp::Parsed::Request(b), _))) => assert_eq!(a.method, b.method),
            other => panic!("the rewrite broke a request: {other:?}"),
        }
    }
});
