use proptest::prelude::*;

use super::*;

const FFMPEG_OPTIONS: &[u8] =
    b"OPTIONS rtsp://192.168.1.20:8554/live/pc-0123456789abcdef RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf60.16.100\r\n\r\n";

const DESCRIBE_REPLY: &[u8] = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://cam/live/\r\nContent-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\ns=x\r\n";

fn req(parsed: Parsed) -> Request {
    match parsed {
        Parsed::Request(r) => r,
        other => panic!("not a request: {other:?}"),
    }
}

/// Parses a whole buffer into items, ending with the error or the unparsed tail length.
fn parse_all(buf: &[u8], limits: &Limits) -> (Vec<Parsed>, Result<usize, ParseError>) {
    let mut items = vec![];
    let mut at = 0;
    loop {
        match parse_with(&buf[at..], limits) {
            Ok(Some((p, n))) => {
                assert!(n > 0 && n <= buf.len() - at);
                items.push(p);
                at += n;
            }
            Ok(None) => return (items, Ok(buf.len() - at)),
            Err(e) => return (items, Err(e)),
        }
    }
}

/// Feeds `buf` in the given chunk sizes, parsing after each, as a connection would.
fn parse_chunked(
    buf: &[u8],
    chunks: &[usize],
    limits: &Limits,
) -> (Vec<Parsed>, Result<usize, ParseError>) {
    let mut items = vec![];
    let mut pending: Vec<u8> = vec![];
    let mut fed = 0;
    let mut sizes = chunks.iter().copied().chain(std::iter::repeat(7));
    while fed < buf.len() {
        let n = sizes.next().unwrap_or(1).clamp(1, buf.len() - fed);
        pending.extend_from_slice(&buf[fed..fed + n]);
        fed += n;
        loop {
            match parse_with(&pending, limits) {
                Ok(Some((p, used))) => {
                    items.push(p);
                    pending.drain(..used);
                }
                Ok(None) => break,
                Err(e) => return (items, Err(e)),
            }
        }
    }
    (items, Ok(pending.len()))
}

#[test]
fn ffmpeg_options() {
    let (p, n) = parse(FFMPEG_OPTIONS).unwrap().unwrap();
    assert_eq!(n, FFMPEG_OPTIONS.len());
    let r = req(p);
    assert_eq!(r.method, Method::Options);
    assert_eq!(r.uri, "rtsp://192.168.1.20:8554/live/pc-0123456789abcdef");
    assert_eq!(r.version, Version::RTSP_1_0);
    assert_eq!(r.headers.cseq(), Ok(Some(1)));
    assert_eq!(r.headers.get("user-agent"), Some("Lavf60.16.100"));
    assert!(r.body.is_empty());
    assert_eq!(r.serialize(), FFMPEG_OPTIONS);
}

#[test]
fn every_prefix_needs_more_and_every_split_agrees() {
    let mut stream = FFMPEG_OPTIONS.to_vec();
    stream.extend_from_slice(DESCRIBE_REPLY);
    stream.extend_from_slice(&[b'$', 1, 0, 3, 0x81, 0xc9, 0x00]);
    stream.extend_from_slice(
        b"\r\nGET_PARAMETER rtsp://cam/live/ RTSP/1.0\nCSeq: 9\nSession: 1234\n\n",
    );
    let limits = Limits::default();
    let whole = parse_all(&stream, &limits);
    assert_eq!(whole.0.len(), 4);
    assert_eq!(whole.1, Ok(0));
    for msg in [FFMPEG_OPTIONS, DESCRIBE_REPLY] {
        for i in 0..msg.len() {
            assert_eq!(parse(&msg[..i]), Ok(None), "prefix {i}");
        }
    }
    for i in 0..=stream.len() {
        let (a, b) = stream.split_at(i);
        assert_eq!(
            parse_chunked(&stream, &[a.len(), b.len()], &limits),
            whole,
            "split at {i}"
        );
    }
}

#[test]
fn repeated_equal_content_lengths_round_trip() {
    let buf = b"ANNOUNCE rtsp://cam/ RTSP/1.0\r\nContent-Length: 2\r\nCSeq: 1\r\ncontent-length:02\r\n\r\nab";
    let (p, n) = parse(buf).unwrap().unwrap();
    assert_eq!(n, buf.len());
    assert_eq!(parse(&p.serialize()).unwrap().unwrap().0, p);
}

#[test]
fn lf_only_folding_and_blank_lines() {
    let buf = b"\r\n\nSETUP rtsp://cam/live/trackID=0 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP;unicast;\n\tclient_port=5000-5001\n\n";
    let (p, n) = parse(buf).unwrap().unwrap();
    assert_eq!(n, buf.len());
    let r = req(p);
    assert_eq!(
        r.headers.get("transport"),
        Some("RTP/AVP;unicast; client_port=5000-5001")
    );
    let reparsed = req(parse(&r.serialize()).unwrap().unwrap().0);
    assert_eq!(reparsed, r);
}

#[test]
fn response_with_body_and_interleaved() {
    let (p, n) = parse(DESCRIBE_REPLY).unwrap().unwrap();
    assert_eq!(n, DESCRIBE_REPLY.len());
    let Parsed::Response(r) = p else { panic!() };
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.reason, "OK");
    assert_eq!(r.body, b"v=0\r\ns=x\r\n");
    let frame = [b'$', 0, 0, 2, 9, 8, 7];
    let (p, n) = parse(&frame).unwrap().unwrap();
    assert_eq!(n, 6);
    assert_eq!(
        p,
        Parsed::Interleaved(InterleavedFrame {
            channel: 0,
            payload: vec![9, 8]
        })
    );
    assert_eq!(parse(&frame[..5]), Ok(None));
    let (p, _) = parse(b"RTSP/1.0 454\r\n\r\n").unwrap().unwrap();
    let Parsed::Response(r) = p else { panic!() };
    assert_eq!(
        (r.status, r.reason.as_str()),
        (StatusCode::SESSION_NOT_FOUND, "")
    );
    let (p, _) = parse(b"RTSP/2.0 200 OK\r\n\r\n").unwrap().unwrap();
    let Parsed::Response(r) = p else { panic!() };
    assert_eq!(r.version, Version::RTSP_2_0);
}

#[test]
fn errors_report_position_and_expectation() {
    let cases: &[(&[u8], usize, &str)] = &[
        (b"GARBAGE\r\n\r\n", 7, "SP after the method"),
        (b"\x16\x03\x01\x02\x00", 0, "a method token or RTSP/"),
        (b"OPTIONS * HTTP/1.1\r\n", 10, "RTSP/<digit>.<digit>"),
        (b"OPTIONS  * RTSP/1.0\r\n", 8, "a request URI"),
        (
            b"OPTIONS * RTSP/1.0 x\r\n",
            18,
            "end of line after the version",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n",
            24,
            "a header name followed by ':'",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\n continued\r\n\r\n",
            20,
            "a header field before a continuation line",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nX: a\x01b\r\n\r\n",
            24,
            "a header value without control characters",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nX: a\rb\r\n\r\n",
            24,
            "a header value without control characters",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nX: \xff\r\n\r\n",
            23,
            "a UTF-8 header value",
        ),
        (
            b"OPTIONS * RTSP/1.0\rX",
            18,
            "end of line after the version",
        ),
        (b"\rX", 1, "LF after CR"),
        (
            b"OPTIONS * RTSP/1.0\r\nContent-Length: x\r\n\r\n",
            35,
            "a decimal Content-Length",
        ),
        (
            b"OPTIONS * RTSP/1.0\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n",
            54,
            "Content-Length equal to the earlier one",
        ),
        (b"RTSP/1.0 20x OK\r\n", 11, "a three-digit status code"),
        (b"RTSP/1.0 099 OK\r\n", 9, "a status code from 100"),
        (b"RTSP/1.0 200OK\r\n", 12, "SP after the status code"),
    ];
    for (input, pos, expected) in cases {
        match parse(input) {
            Err(ParseError::Invalid {
                pos: p,
                expected: e,
            }) => {
                assert_eq!(p, *pos, "{:?}", String::from_utf8_lossy(input));
                assert!(e.starts_with(expected), "{e} vs {expected}");
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }
}

#[test]
fn limits_are_enforced_early() {
    let l = Limits::default();
    // A URI that is already too long is refused before its line ends.
    let mut long_uri = b"DESCRIBE rtsp://cam/".to_vec();
    long_uri.resize(l.max_uri + 20, b'a');
    assert_eq!(
        parse(&long_uri),
        Err(ParseError::TooLarge {
            pos: 9,
            limit: Limit::Uri,
            max: 2048
        })
    );
    // A header section that cannot end within the limit.
    let mut big = b"OPTIONS * RTSP/1.0\r\n".to_vec();
    while big.len() < l.max_header_bytes {
        big.extend_from_slice(format!("X-Pad: {}\r\n", "0".repeat(200)).as_bytes());
    }
    assert_eq!(
        parse(&big),
        Err(ParseError::TooLarge {
            pos: 8192,
            limit: Limit::HeaderBytes,
            max: 8192
        })
    );
    assert!(matches!(
        parse(&vec![b'\n'; 9000]),
        Err(ParseError::TooLarge {
            limit: Limit::HeaderBytes,
            ..
        })
    ));
    // Too many fields.
    let mut many = b"OPTIONS * RTSP/1.0\r\n".to_vec();
    for i in 0..=64 {
        many.extend_from_slice(format!("X{i}: y\r\n").as_bytes());
    }
    assert!(matches!(
        parse(&many),
        Err(ParseError::TooLarge {
            limit: Limit::HeaderCount,
            ..
        })
    ));
    // A body over the limit is refused as soon as its length is known.
    let body = b"SET_PARAMETER * RTSP/1.0\r\nContent-Length: 65537\r\n\r\n";
    assert_eq!(
        parse(body),
        Err(ParseError::TooLarge {
            pos: 41,
            limit: Limit::Body,
            max: 65536
        })
    );
    let small = Limits {
        max_body: 3,
        ..Limits::default()
    };
    assert!(matches!(
        parse_with(&[b'$', 0, 0, 4], &small),
        Err(ParseError::TooLarge {
            pos: 2,
            limit: Limit::Body,
            ..
        })
    ));
    assert!(
        parse_with(&[b'$', 0, 0, 3, 1, 2, 3], &small)
            .unwrap()
            .is_some()
    );
    // A method token longer than any real one.
    assert!(matches!(
        parse(&[b'A'; 40]),
        Err(ParseError::Invalid { pos: 32, .. })
    ));
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{0,12}"
}

prop_compose! {
    fn headers()(fields in proptest::collection::vec((token(), "[!-~]([ -~]{0,20}[!-~])?"), 0..8)) -> Headers {
        let mut h = Headers::new();
        for (n, v) in fields {
            if !n.eq_ignore_ascii_case("content-length") {
                h.append(n, v);
            }
        }
        h
    }
}

fn message() -> impl Strategy<Value = Parsed> {
    let request = (
        "OPTIONS|DESCRIBE|SETUP|PLAY|PAUSE|TEARDOWN|GET_PARAMETER|SET_PARAMETER|ANNOUNCE|RECORD",
        "\\*|rtsp://[a-z0-9.]{1,12}(:[0-9]{1,5})?(/[!-~]{0,20})?",
        headers(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(m, uri, headers, body)| {
            Parsed::Request(Request {
                method: Method::from_token(&m),
                uri,
                version: Version::RTSP_1_0,
                headers,
                body,
            })
        });
    let response = (
        100u16..1000,
        "([ -~]{0,20})",
        headers(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(code, reason, headers, body)| {
            Parsed::Response(Response {
                version: Version::RTSP_1_0,
                status: StatusCode(code),
                reason,
                headers,
                body,
            })
        });
    let frame = (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300))
        .prop_map(|(channel, payload)| Parsed::Interleaved(InterleavedFrame { channel, payload }));
    prop_oneof![request, response, frame]
}

/// What survives serialization: everything but a `Content-Length` the serializer adds.
fn without_added_length(p: &Parsed) -> Parsed {
    let mut p = p.clone();
    if let Parsed::Request(Request { headers, .. }) | Parsed::Response(Response { headers, .. }) =
        &mut p
    {
        headers.remove("Content-Length");
    }
    p
}

proptest! {
    #[test]
    fn messages_round_trip(msgs in proptest::collection::vec(message(), 1..5)) {
        let stream: Vec<u8> = msgs.iter().flat_map(Parsed::serialize).collect();
        let (items, rest) = parse_all(&stream, &Limits::default());
        prop_assert_eq!(rest, Ok(0));
        prop_assert_eq!(items.len(), msgs.len());
        for (sent, got) in msgs.iter().zip(&items) {
            prop_assert_eq!(&without_added_length(got), sent);
            // A parsed message serializes to exactly what produced it.
            let again = parse(&got.serialize()).unwrap().unwrap().0;
            prop_assert_eq!(&again, got);
        }
    }

    #[test]
    fn chunking_never_changes_the_result(
        msgs in proptest::collection::vec(message(), 1..4),
        garbage in proptest::collection::vec(any::<u8>(), 0..20),
        chunks in proptest::collection::vec(1usize..40, 0..30),
    ) {
        let mut stream: Vec<u8> = msgs.iter().flat_map(Parsed::serialize).collect();
        stream.extend_from_slice(&garbage);
        let limits = Limits::default();
        prop_assert_eq!(parse_chunked(&stream, &chunks, &limits), parse_all(&stream, &limits));
    }

    #[test]
    fn tight_limits_split_anywhere(
        msgs in proptest::collection::vec(message(), 1..3),
        split in 0usize..400,
        max_header_bytes in 10usize..200,
        max_uri in 1usize..30,
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(Parsed::serialize).collect();
        let limits = Limits { max_header_bytes, max_uri, max_headers: 3, max_body: 20 };
        let split = split.min(stream.len());
        prop_assert_eq!(
            parse_chunked(&stream, &[split, stream.len()], &limits),
            parse_all(&stream, &limits)
        );
    }

    #[test]
    fn never_panics_on_random_bytes(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_all(&buf, &Limits::default());
    }

    #[test]
    fn never_panics_on_near_misses(
        head in "(OPTIONS|RTSP/1\\.0|\\$|PLAY \\* RTSP/1\\.0\r?\n)",
        tail in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b':'), any::<u8>()], 0..200),
    ) {
        let mut buf = head.into_bytes();
        buf.extend_from_slice(&tail);
        let _ = parse_all(&buf, &Limits::default());
    }
}
