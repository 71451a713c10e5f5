//! The server driven by the requests real players send, in virtual time.
#![allow(
    clippy::disallowed_methods,
    reason = "tests take one real instant as the origin of virtual time"
)]

use proptest::prelude::*;

use super::*;
use crate::msg::{ChannelPair, NptTime, PortPair};
use crate::parse::parse;
use crate::sdp::{AudioCodec, CameraSdp, H264Video, SessionDescription};

const RANDOM: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
];
const SID: &str = "0123456789abcdeffedcba9876543210";
const URL: &str = "rtsp://192.168.1.20:8554/live/pc-0123456789abcdef";

struct Harness {
    now: Instant,
    conn: ServerConn,
}

impl Harness {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            now,
            conn: ServerConn::new(ServerConfig::default(), now, RANDOM),
        }
    }

    /// Feeds text and returns every response and event it produced.
    fn feed(&mut self, bytes: &[u8]) -> (Vec<Response>, Vec<ServerEvent>) {
        self.conn.handle_input(self.now, bytes);
        (self.responses(), self.events())
    }

    fn responses(&mut self) -> Vec<Response> {
        std::iter::from_fn(|| self.conn.poll_transmit())
            .map(|b| {
                let (p, n) = parse(&b).unwrap().unwrap();
                assert_eq!(n, b.len(), "one response per transmit");
                match p {
                    Parsed::Response(r) => r,
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    /// Feeds one request and returns its single response.
    fn one(&mut self, text: &str) -> Response {
        let (mut r, _) = self.feed(text.as_bytes());
        assert_eq!(r.len(), 1, "{text}: {r:?}");
        r.remove(0)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
            self.conn.handle_timeout(self.now);
        }
    }

    /// SETUP of track 0 over TCP, accepted.
    fn setup_tcp(&mut self, cseq: u32) {
        let (r, ev) = self.feed(
            format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: {cseq}\r\n\r\n")
                .as_bytes(),
        );
        assert!(r.is_empty());
        let [ServerEvent::Setup { transports, .. }] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        let t = transports[0].clone();
        self.conn.accept_setup(cseq, 0, t).unwrap();
        assert_eq!(self.responses()[0].status, StatusCode::OK);
    }
}

fn camera_sdp() -> String {
    CameraSdp {
        session_id: 42,
        session_version: 1,
        origin_address: "192.168.1.20".into(),
        session_name: "pc-0123456789abcdef".into(),
        video: Some(H264Video {
            sps: vec![0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40],
            pps: vec![0x68, 0xce, 0x3c, 0x80],
            framerate: Some(25.0),
            dimensions: Some((1280, 720)),
        }),
        audio: Some(AudioCodec::Pcmu),
    }
    .build()
}

fn status_of(r: &Response) -> (u16, Option<u32>) {
    (r.status.0, r.headers.cseq().unwrap())
}

/// ffmpeg 6.1 (`ffplay -rtsp_transport tcp`), with the Session it was given.
fn ffmpeg_tcp() -> Vec<String> {
    let ua = "User-Agent: Lavf60.16.100\r\n";
    let s = format!("Session: {SID}\r\n");
    vec![
        format!("OPTIONS {URL}?token=tok-123 RTSP/1.0\r\nCSeq: 1\r\n{ua}\r\n"),
        format!(
            "DESCRIBE {URL}?token=tok-123 RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\n{ua}\r\n"
        ),
        format!(
            "SETUP {URL}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 3\r\n{ua}\r\n"
        ),
        format!(
            "SETUP {URL}/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\nCSeq: 4\r\n{ua}{s}\r\n"
        ),
        format!("PLAY {URL}/ RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 5\r\n{ua}{s}\r\n"),
        format!("GET_PARAMETER {URL}/ RTSP/1.0\r\nCSeq: 6\r\n{ua}{s}\r\n"),
        format!("TEARDOWN {URL}/ RTSP/1.0\r\nCSeq: 7\r\n{ua}{s}\r\n"),
    ]
}

/// Plays the application: accepts everything with the client's first offer.
fn answer_all(h: &mut Harness, events: &[ServerEvent]) {
    for ev in events {
        match ev {
            ServerEvent::Describe { cseq, .. } => h
                .conn
                .respond_describe(*cseq, camera_sdp(), Some(format!("{URL}/")))
                .unwrap(),
            ServerEvent::Setup {
                cseq,
                track,
                transports,
                ..
            } => {
                let mut t = transports[0].clone();
                t.ssrc = Some(0x1234_5678 + *track as u32);
                if !t.is_tcp() {
                    t.server_port = Some(PortPair {
                        rtp: 6970,
                        rtcp: Some(6971),
                    });
                }
                h.conn.accept_setup(*cseq, *track, t).unwrap();
            }
            ServerEvent::Play { cseq, .. } => h
                .conn
                .accept_play(*cseq, &[(0, 1000, 90_000), (1, 7, 8000)])
                .unwrap(),
            _ => {}
        }
    }
}

#[test]
fn ffmpeg_tcp_session() {
    let mut h = Harness::new();
    let reqs = ffmpeg_tcp();

    let r = h.one(&reqs[0]);
    assert_eq!(status_of(&r), (200, Some(1)));
    assert_eq!(r.headers.public().unwrap(), PUBLIC_METHODS);
    assert_eq!(r.headers.get("Server"), Some("peercam"));

    let (r, ev) = h.feed(reqs[1].as_bytes());
    assert!(r.is_empty(), "DESCRIBE waits for the application");
    assert_eq!(
        ev,
        [ServerEvent::Describe {
            cseq: 2,
            uri: format!("{URL}?token=tok-123"),
            path: "/live/pc-0123456789abcdef".into(),
            query: Some("token=tok-123".into()),
            token: Some("tok-123".into()),
            backchannel: false,
        }]
    );
    answer_all(&mut h, &ev);
    let r = h.responses().remove(0);
    assert_eq!(status_of(&r), (200, Some(2)));
    assert_eq!(r.headers.content_type(), Some("application/sdp"));
    assert_eq!(
        r.headers.get("Content-Base"),
        Some(format!("{URL}/").as_str())
    );
    let sdp = SessionDescription::parse(&r.body).unwrap();
    assert_eq!(sdp.media[0].control(), Some("trackID=0"));

    let (r, ev) = h.feed(reqs[2].as_bytes());
    assert!(r.is_empty());
    let [
        ServerEvent::Setup {
            cseq: 3,
            track: 0,
            transports,
            path,
            token: None,
            ..
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(path, "/live/pc-0123456789abcdef");
    assert_eq!(
        transports[0].interleaved,
        Some(ChannelPair {
            rtp: 0,
            rtcp: Some(1)
        })
    );
    answer_all(&mut h, &ev);
    let r = h.responses().remove(0);
    assert_eq!(status_of(&r), (200, Some(3)));
    assert_eq!(
        r.headers.get("Session"),
        Some(format!("{SID};timeout=60").as_str())
    );
    assert_eq!(
        r.headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=12345678")
    );
    assert_eq!(h.conn.state(), SessionState::Ready);
    assert_eq!(h.conn.session_id(), Some(SID));

    let (_, ev) = h.feed(reqs[3].as_bytes());
    answer_all(&mut h, &ev);
    assert_eq!(status_of(&h.responses()[0]), (200, Some(4)));
    assert_eq!(h.conn.tracks().count(), 2);

    let (_, ev) = h.feed(reqs[4].as_bytes());
    assert_eq!(
        ev,
        [ServerEvent::Play {
            cseq: 5,
            range: Some(Range::Npt {
                start: Some(NptTime::At(Duration::ZERO)),
                end: None
            }),
            scale: None,
            frame_step: None,
        }]
    );
    answer_all(&mut h, &ev);
    let r = h.responses().remove(0);
    assert_eq!(status_of(&r), (200, Some(5)));
    // A live stream plays from the live edge, whatever start the player asked for.
    assert_eq!(r.headers.get("Range"), Some("npt=now-"));
    let info = r.headers.rtp_info().unwrap().unwrap();
    assert_eq!(info[0].url, format!("{URL}/trackID=0"));
    assert_eq!((info[0].seq, info[0].rtptime), (Some(1000), Some(90_000)));
    assert_eq!(info[1].url, format!("{URL}/trackID=1"));
    assert_eq!(h.conn.state(), SessionState::Playing);

    // An RTCP receiver report over the connection, then the keep-alive.
    let (r, ev) = h.feed(&[b'$', 1, 0, 8, 0x80, 0xc9, 0, 1, 0, 0, 0, 1]);
    assert!(r.is_empty());
    assert_eq!(
        ev,
        [ServerEvent::Interleaved {
            channel: 1,
            payload: vec![0x80, 0xc9, 0, 1, 0, 0, 0, 1]
        }]
    );
    let r = h.one(&reqs[5]);
    assert_eq!(status_of(&r), (200, Some(6)));

    let (r, ev) = h.feed(reqs[6].as_bytes());
    assert_eq!(status_of(&r[0]), (200, Some(7)));
    assert_eq!(ev, [ServerEvent::Teardown { cseq: 7 }]);
    assert_eq!(h.conn.state(), SessionState::Init);
    assert!(!h.conn.is_closed());
}

#[test]
fn whole_transcript_in_one_write_or_byte_by_byte_gives_the_same_answers() {
    let stream: String = ffmpeg_tcp().concat();
    let run = |chunk: usize| {
        let mut h = Harness::new();
        let mut out = vec![];
        for piece in stream.as_bytes().chunks(chunk) {
            let (r, mut ev) = h.feed(piece);
            out.extend(r);
            // Each answer lets the next buffered request through.
            while !ev.is_empty() {
                answer_all(&mut h, &ev);
                out.extend(h.responses());
                ev = h.events();
            }
        }
        out
    };
    let whole = run(stream.len());
    assert_eq!(whole.len(), 7);
    let cseqs: Vec<_> = whole.iter().map(status_of).collect();
    assert_eq!(cseqs, (1..=7).map(|c| (200, Some(c))).collect::<Vec<_>>());
    for chunk in [1, 2, 3, 7, 64] {
        assert_eq!(run(chunk), whole, "chunks of {chunk}");
    }
}

#[test]
fn gstreamer_udp_setup() {
    let mut h = Harness::new();
    let ua = "User-Agent: GStreamer/1.22.0\r\nDate: Wed, 10 Jan 2024 10:00:00 GMT\r\n";
    let (_, ev) = h.feed(format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 2\r\n{ua}Accept: application/sdp\r\nAuthorization: Bearer tok-abc\r\n\r\n").as_bytes());
    assert!(
        matches!(&ev[..], [ServerEvent::Describe { token: Some(t), query: None, .. }] if t == "tok-abc")
    );
    answer_all(&mut h, &ev);
    h.responses();
    let (_, ev) = h.feed(
        format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\n{ua}Transport: RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")
            .as_bytes(),
    );
    let [ServerEvent::Setup { transports, .. }] = ev.as_slice() else {
        panic!()
    };
    assert_eq!(transports.len(), 2);
    assert!(!transports[0].is_tcp() && transports[1].is_tcp());
    answer_all(&mut h, &ev);
    let r = h.responses().remove(0);
    assert_eq!(
        r.headers.get("Transport"),
        Some("RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=12345678")
    );
    let (_, ev) = h.feed(
        format!("PLAY {URL}/ RTSP/1.0\r\nCSeq: 4\r\n{ua}Range: npt=0-\r\nSession: {SID}\r\n\r\n")
            .as_bytes(),
    );
    answer_all(&mut h, &ev);
    assert_eq!(status_of(&h.responses()[0]), (200, Some(4)));
    // Media goes over UDP, so RTCP arrives there: the shell keeps the session alive.
    h.advance(Duration::from_secs(50));
    h.conn.touch(h.now);
    h.advance(Duration::from_secs(50));
    assert!(!h.conn.is_closed());
    let (r, ev) =
        h.feed(format!("PAUSE {URL}/ RTSP/1.0\r\nCSeq: 5\r\nSession: {SID}\r\n\r\n").as_bytes());
    assert_eq!(status_of(&r[0]), (200, Some(5)));
    assert_eq!(ev, [ServerEvent::Pause { cseq: 5 }]);
    assert_eq!(h.conn.state(), SessionState::Ready);
}

#[test]
fn vlc_live555_and_query_tokens_behind_tracks() {
    let mut h = Harness::new();
    let ua = "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2016.11.28)\r\n";
    // Without a trailing-slash Content-Base, ffmpeg appends the control after the query.
    let (_, ev) = h.feed(format!("SETUP {URL}?token=a%2Bb/trackID=1 RTSP/1.0\r\nCSeq: 4\r\n{ua}Transport: RTP/AVP;unicast;client_port=61234-61235\r\n\r\n").as_bytes());
    let [
        ServerEvent::Setup {
            track: 1,
            token: Some(t),
            path,
            ..
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (t.as_str(), path.as_str()),
        ("a+b", "/live/pc-0123456789abcdef")
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut h = Harness::new();
    let text = format!(
        "OPTIONS {URL} RTSP/1.0\r\nCSeq: 1\r\n\r\nDESCRIBE {URL} RTSP/1.0\r\nCSeq: 2\r\n\r\nOPTIONS {URL} RTSP/1.0\r\nCSeq: 3\r\n\r\n"
    );
    let (r, ev) = h.feed(text.as_bytes());
    assert_eq!(
        r.iter().map(status_of).collect::<Vec<_>>(),
        [(200, Some(1))]
    );
    assert_eq!(ev.len(), 1);
    h.conn.reject(2, StatusCode::UNAUTHORIZED, "").unwrap();
    let r = h.responses();
    assert_eq!(
        r.iter().map(status_of).collect::<Vec<_>>(),
        [(401, Some(2)), (200, Some(3))]
    );
    assert_eq!(r[0].reason, "Unauthorized");
}

#[test]
fn play_without_setup_and_wrong_sessions() {
    let mut h = Harness::new();
    let r = h.one(&format!("PLAY {URL}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"));
    assert_eq!(status_of(&r), (455, Some(1)));
    let r = h.one(&format!(
        "PLAY {URL}/ RTSP/1.0\r\nCSeq: 2\r\nSession: {SID}\r\n\r\n"
    ));
    assert_eq!(status_of(&r), (454, Some(2)), "no session issued yet");
    for m in ["PAUSE", "TEARDOWN"] {
        assert_eq!(
            h.one(&format!("{m} {URL}/ RTSP/1.0\r\nCSeq: 3\r\n\r\n"))
                .status
                .0,
            455
        );
    }
    h.setup_tcp(4);
    for (hdr, code) in [
        ("Session: 00000000000000000000000000000000\r\n", 454),
        ("Session: not a session\r\n", 454),
        ("", 454),
    ] {
        let r = h.one(&format!("PLAY {URL}/ RTSP/1.0\r\nCSeq: 5\r\n{hdr}\r\n"));
        assert_eq!(status_of(&r), (code, Some(5)), "{hdr:?}");
        assert!(r.headers.get("Session").is_none());
    }
    let r = h.one(&format!(
        "GET_PARAMETER {URL}/ RTSP/1.0\r\nCSeq: 6\r\nSession: deadbeef\r\n\r\n"
    ));
    assert_eq!(status_of(&r), (454, Some(6)));
    // SETUP naming another session is 454; SETUP naming none would be a second session.
    let r = h.one(&format!("SETUP {URL}/trackID=1 RTSP/1.0\r\nCSeq: 7\r\nSession: ffff\r\nTransport: RTP/AVP/TCP;interleaved=2-3\r\n\r\n"));
    assert_eq!(status_of(&r), (454, Some(7)));
    let r = h.one(&format!("SETUP {URL}/trackID=1 RTSP/1.0\r\nCSeq: 8\r\nTransport: RTP/AVP/TCP;interleaved=2-3\r\n\r\n"));
    assert_eq!(status_of(&r), (455, Some(8)));
    assert!(h.events().is_empty());
    // The same track again, in the session, is fine and replaces the transport.
    let (_, ev) = h.feed(format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 9\r\nSession: {SID}\r\nTransport: RTP/AVP/TCP;interleaved=4-5\r\n\r\n").as_bytes());
    answer_all(&mut h, &ev);
    assert_eq!(status_of(&h.responses()[0]), (200, Some(9)));
    assert_eq!(
        h.conn.tracks().next().unwrap().1.interleaved,
        Some(ChannelPair {
            rtp: 4,
            rtcp: Some(5)
        })
    );
    // No SETUP while playing.
    let (_, ev) =
        h.feed(format!("PLAY {URL}/ RTSP/1.0\r\nCSeq: 10\r\nSession: {SID}\r\n\r\n").as_bytes());
    answer_all(&mut h, &ev);
    h.responses();
    let r = h.one(&format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 11\r\nSession: {SID}\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n"));
    assert_eq!(status_of(&r), (455, Some(11)));
    assert_eq!(r.headers.session().unwrap().unwrap().id, SID);
}

#[test]
fn setup_teardown_flood_creates_one_session_only() {
    let mut h = Harness::new();
    h.setup_tcp(1);
    let (r, ev) =
        h.feed(format!("TEARDOWN {URL}/ RTSP/1.0\r\nCSeq: 2\r\nSession: {SID}\r\n\r\n").as_bytes());
    assert_eq!(r[0].status, StatusCode::OK);
    assert_eq!(ev, [ServerEvent::Teardown { cseq: 2 }]);
    let mut flood = String::new();
    for i in 0..500 {
        flood.push_str(&format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: {}\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n", 3 + 2 * i));
        flood.push_str(&format!(
            "TEARDOWN {URL}/ RTSP/1.0\r\nCSeq: {}\r\nSession: {SID}\r\n\r\n",
            4 + 2 * i
        ));
    }
    let (r, ev) = h.feed(flood.as_bytes());
    assert_eq!(r.len(), 1000);
    assert!(r.iter().step_by(2).all(|r| r.status.0 == 455));
    assert!(r.iter().skip(1).step_by(2).all(|r| r.status.0 == 454));
    assert!(ev.is_empty());
    assert_eq!(h.conn.state(), SessionState::Init);
    assert!(h.conn.buf.is_empty());
}

#[test]
fn malformed_and_oversized_input_is_answered_then_closed() {
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: cam\r\n\r\n".to_vec(), 400),
        (
            format!(
                "OPTIONS {URL} RTSP/1.0\r\nCSeq: 1\r\nX: {}\r\n",
                "a".repeat(9000)
            )
            .into_bytes(),
            431,
        ),
        (
            format!("DESCRIBE rtsp://cam/{} RTSP/1.0\r\n", "a".repeat(3000)).into_bytes(),
            414,
        ),
        (
            b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 100000\r\n\r\n".to_vec(),
            413,
        ),
    ];
    for (input, code) in cases {
        let mut h = Harness::new();
        let (r, ev) = h.feed(&input);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status.0, code);
        assert!(
            matches!(
                &ev[..],
                [ServerEvent::Closed {
                    reason: CloseReason::BadInput(_)
                }]
            ),
            "{ev:?}"
        );
        assert!(h.conn.is_closed() && h.conn.poll_timeout().is_none());
        let (r, ev) = h.feed(format!("OPTIONS {URL} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes());
        assert!(
            r.is_empty() && ev.is_empty(),
            "input after close is ignored"
        );
    }
}

/// H.626.4 8.4 (RTSP live view): a second track set up onto the interleaved channels the
/// first one uses would mix both streams on one channel: refused with 461, while free
/// channels or another offer in the same header are taken; the shell cannot force it either.
#[test]
fn h626_8_4_rtsp_setup_refuses_interleaved_channels_in_use() {
    let mut h = Harness::new();
    h.setup_tcp(2);
    let setup = |cseq: u32, transport: &str| {
        format!(
            "SETUP {URL}/trackID=1 RTSP/1.0\r\nTransport: {transport}\r\nCSeq: {cseq}\r\nSession: {SID}\r\n\r\n"
        )
    };
    for clash in ["interleaved=0-1", "interleaved=1-2", "interleaved=2-0"] {
        let r = h.one(&setup(3, &format!("RTP/AVP/TCP;unicast;{clash}")));
        assert_eq!(status_of(&r), (461, Some(3)), "{clash}");
    }
    // Of two offers, the clashing one is dropped before the shell sees them.
    let (r, ev) = h.feed(
        setup(
            4,
            "RTP/AVP/TCP;unicast;interleaved=0-1,RTP/AVP/TCP;unicast;interleaved=2-3",
        )
        .as_bytes(),
    );
    assert!(r.is_empty(), "{r:?}");
    let [ServerEvent::Setup { transports, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(transports.len(), 1);
    assert_eq!(transports[0].interleaved.map(|p| p.rtp), Some(2));
    // A shell that picks a taken pair anyway gets an error, not a mixed stream.
    let mut forced = transports[0].clone();
    forced.interleaved = Some(ChannelPair {
        rtp: 1,
        rtcp: Some(2),
    });
    assert!(matches!(
        h.conn.accept_setup(4, 1, forced),
        Err(ServerError::ChannelInUse {
            channel: 1,
            other: 0,
            ..
        })
    ));
    assert_eq!(status_of(&h.responses()[0]), (461, Some(4)));
    let (_, ev) = h.feed(setup(4, "RTP/AVP/TCP;unicast;interleaved=2-3").as_bytes());
    let [ServerEvent::Setup { transports, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    h.conn.accept_setup(4, 1, transports[0].clone()).unwrap();
    assert_eq!(status_of(&h.responses()[0]), (200, Some(4)));
    // Setting a track up again on its own channels is a transport change, not a clash.
    let (_, ev) = h.feed(setup(5, "RTP/AVP/TCP;unicast;interleaved=2-3").as_bytes());
    assert!(
        matches!(ev.as_slice(), [ServerEvent::Setup { .. }]),
        "{ev:?}"
    );
}

/// H.626.4 8.4: a TCP offer that leaves the channels to the server gets a pair no other track
/// uses (track 1 would default to 2-3, which track 0 took, so it gets 0-1): the shell never has to pick, and the player never sees a 461 for it.
#[test]
fn h626_8_4_rtsp_setup_picks_free_interleaved_channels() {
    let mut h = Harness::new();
    let (_, ev) = h.feed(
        format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\nCSeq: 2\r\n\r\n")
            .as_bytes(),
    );
    let [ServerEvent::Setup { transports, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    h.conn.accept_setup(2, 0, transports[0].clone()).unwrap();
    assert_eq!(status_of(&h.responses()[0]), (200, Some(2)));
    let (r, ev) = h.feed(
        format!("SETUP {URL}/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast\r\nCSeq: 3\r\nSession: {SID}\r\n\r\n")
            .as_bytes(),
    );
    assert!(r.is_empty(), "{r:?}");
    let [ServerEvent::Setup { transports, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        transports[0].interleaved,
        Some(ChannelPair {
            rtp: 0,
            rtcp: Some(1)
        })
    );
    h.conn.accept_setup(3, 1, transports[0].clone()).unwrap();
    assert_eq!(status_of(&h.responses()[0]), (200, Some(3)));
}

/// H.626.4 8.4: UDP offers must name real client ports; `client_port=0-1` (port 0 is "any
/// port" to a socket API, never a destination) is refused with 461.
#[test]
fn h626_8_4_rtsp_setup_refuses_client_port_zero() {
    let mut h = Harness::new();
    for (cseq, ports) in [(2, "0-1"), (3, "0"), (4, "5000-0")] {
        let r = h.one(&format!(
            "SETUP {URL}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP;unicast;client_port={ports}\r\nCSeq: {cseq}\r\n\r\n"
        ));
        assert_eq!(status_of(&r), (461, Some(cseq)), "{ports}");
    }
    let (r, ev) = h.feed(
        format!(
            "SETUP {URL}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\nCSeq: 5\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(r.is_empty());
    assert!(
        matches!(ev.as_slice(), [ServerEvent::Setup { .. }]),
        "{ev:?}"
    );
}

#[test]
fn small_mistakes_keep_the_connection() {
    let mut h = Harness::new();
    assert_eq!(
        status_of(&h.one(&format!("OPTIONS {URL} RTSP/1.0\r\n\r\n"))),
        (400, None)
    );
    assert_eq!(
        status_of(&h.one(&format!("OPTIONS {URL} RTSP/1.0\r\nCSeq: x\r\n\r\n"))),
        (400, None)
    );
    assert_eq!(
        status_of(&h.one(&format!("ANNOUNCE {URL} RTSP/1.0\r\nCSeq: 3\r\n\r\n"))),
        (501, Some(3))
    );
    assert_eq!(
        status_of(&h.one(&format!("RECORD {URL} RTSP/1.0\r\nCSeq: 4\r\n\r\n"))),
        (501, Some(4))
    );
    assert_eq!(
        status_of(&h.one(&format!("OPTIONS {URL} RTSP/2.0\r\nCSeq: 5\r\n\r\n"))),
        (505, Some(5))
    );
    assert_eq!(
        status_of(&h.one(&format!(
            "DESCRIBE {URL} RTSP/1.0\r\nCSeq: 6\r\nAccept: text/html\r\n\r\n"
        ))),
        (406, Some(6))
    );
    assert_eq!(
        status_of(&h.one(&format!(
            "SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 7\r\n\r\n"
        ))),
        (461, Some(7))
    );
    assert_eq!(
        status_of(&h.one(&format!(
            "SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 8\r\nTransport: garbage\r\n\r\n"
        ))),
        (461, Some(8))
    );
    assert_eq!(
        status_of(&h.one(&format!(
            "SETUP {URL} RTSP/1.0\r\nCSeq: 9\r\nTransport: RTP/AVP;unicast;client_port=1-2\r\n\r\n"
        ))),
        (404, Some(9))
    );
    assert_eq!(
        status_of(&h.one(&format!("SETUP {URL}/trackID=8 RTSP/1.0\r\nCSeq: 10\r\nTransport: RTP/AVP;unicast;client_port=1-2\r\n\r\n"))),
        (404, Some(10))
    );
    assert_eq!(
        status_of(&h.one(&format!("GET_PARAMETER {URL} RTSP/1.0\r\nCSeq: 11\r\n\r\n"))),
        (200, Some(11))
    );
    assert_eq!(
        status_of(&h.one(&format!(
            "GET_PARAMETER {URL} RTSP/1.0\r\nCSeq: 12\r\nContent-Length: 8\r\n\r\nposition"
        ))),
        (451, Some(12))
    );
    assert_eq!(
        status_of(&h.one(&format!("SET_PARAMETER {URL} RTSP/1.0\r\nCSeq: 13\r\n\r\n"))),
        (200, Some(13))
    );
    // Responses from the player are ignored.
    assert_eq!(
        h.feed(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"),
        (vec![], vec![])
    );
    // An app-rejected SETUP leaves no session.
    let (_, ev) = h.feed(
        format!(
            "SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 14\r\nTransport: RTP/AVP/UDP;multicast\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(ev.len(), 1);
    h.conn
        .reject(14, StatusCode::UNSUPPORTED_TRANSPORT, "Only unicast")
        .unwrap();
    let r = h.responses().remove(0);
    assert_eq!((r.status.0, r.reason.as_str()), (461, "Only unicast"));
    assert_eq!(h.conn.state(), SessionState::Init);
    h.setup_tcp(15);
    let r = h.one(&format!(
        "PLAY {URL}/ RTSP/1.0\r\nCSeq: 16\r\nSession: {SID}\r\nRange: npt=x-\r\n\r\n"
    ));
    assert_eq!(status_of(&r), (457, Some(16)));
    assert!(!h.conn.is_closed());
}

#[test]
fn application_mistakes_are_errors_not_panics() {
    let mut h = Harness::new();
    assert_eq!(
        h.conn.respond_describe(1, String::new(), None),
        Err(ServerError::NotPending(1))
    );
    let (_, ev) = h.feed(format!("SETUP {URL}/trackID=1 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n").as_bytes());
    assert_eq!(ev.len(), 1);
    assert_eq!(
        h.conn.accept_setup(2, 0, Transport::default()),
        Err(ServerError::WrongTrack {
            cseq: 2,
            requested: 1,
            given: 0
        })
    );
    assert_eq!(
        h.conn.accept_play(2, &[]),
        Err(ServerError::WrongRequest {
            cseq: 2,
            pending: "SETUP",
            called: "PLAY"
        })
    );
    assert_eq!(
        h.conn.accept_setup(3, 1, Transport::default()),
        Err(ServerError::NotPending(3))
    );
    assert!(h.responses().is_empty());
    h.conn
        .accept_setup(2, 1, Transport::udp_unicast(5000))
        .unwrap();
    assert_eq!(
        h.conn.accept_setup(2, 1, Transport::default()),
        Err(ServerError::NotPending(2))
    );
    h.conn.close();
    assert_eq!(
        h.conn.reject(2, StatusCode::FORBIDDEN, ""),
        Err(ServerError::Closed)
    );
    assert_eq!(
        h.events(),
        [ServerEvent::Closed {
            reason: CloseReason::Local
        }]
    );
    h.conn.handle_peer_closed();
    assert!(h.events().is_empty(), "Closed is reported once");
}

#[test]
fn idle_connections_time_out_and_activity_refreshes() {
    let mut h = Harness::new();
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(60)));
    h.setup_tcp(1);
    for _ in 0..10 {
        h.advance(Duration::from_secs(45));
        // RTCP over the interleaved channel is enough.
        h.feed(&[b'$', 1, 0, 0]);
    }
    h.advance(Duration::from_secs(45));
    let r = h.one(&format!(
        "GET_PARAMETER {URL} RTSP/1.0\r\nCSeq: 2\r\nSession: {SID}\r\n\r\n"
    ));
    assert_eq!(r.status, StatusCode::OK);
    h.advance(Duration::from_secs(59));
    assert!(!h.conn.is_closed());
    // Half a request does not count.
    h.feed(b"GET_PARAMETER * RTSP/1.0\r\n");
    h.advance(Duration::from_secs(1));
    assert!(h.conn.is_closed());
    assert_eq!(
        h.events(),
        [ServerEvent::Closed {
            reason: CloseReason::Timeout
        }]
    );
    assert_eq!(h.conn.session_id(), None);
    assert_eq!(h.conn.poll_timeout(), None);
    h.conn.handle_timeout(h.now + Duration::from_secs(1000));
    assert!(h.events().is_empty());
}

#[test]
fn input_piling_up_behind_a_pending_request_closes() {
    let mut h = Harness::new();
    let (_, ev) = h.feed(format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes());
    assert_eq!(ev.len(), 1);
    let frame: Vec<u8> = [b'$', 0, 0xff, 0xff]
        .into_iter()
        .chain([0u8; 0xffff])
        .collect();
    for _ in 0..3 {
        h.feed(&frame);
    }
    assert!(!h.conn.is_closed());
    let (_, ev) = h.feed(&frame);
    assert_eq!(
        ev,
        [ServerEvent::Closed {
            reason: CloseReason::Overflow
        }]
    );
}

#[derive(Debug, Clone)]
enum Step {
    Bytes(Vec<u8>),
    Request(usize),
    Advance(u16),
    Decide(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Step::Bytes),
        (0usize..7).prop_map(Step::Request),
        any::<u16>().prop_map(Step::Advance),
        any::<u8>().prop_map(Step::Decide),
    ]
}

proptest! {
    /// Random mixes of real requests, garbage, time and decisions: nothing panics, every
    /// transmit is one well-formed response, and Closed comes once.
    #[test]
    fn never_panics_and_stays_well_formed(steps in proptest::collection::vec(step(), 0..40)) {
        let mut h = Harness::new();
        let reqs = ffmpeg_tcp();
        let mut pending: Vec<ServerEvent> = vec![];
        let mut closed = 0;
        for s in steps {
            match s {
                Step::Bytes(b) => h.conn.handle_input(h.now, &b),
                Step::Request(i) => h.conn.handle_input(h.now, reqs[i].as_bytes()),
                Step::Advance(ms) => h.advance(Duration::from_millis(u64::from(ms) * 10)),
                Step::Decide(bits) => {
                    for ev in pending.drain(..) {
                        let (cseq, accept) = match &ev {
                            ServerEvent::Describe { cseq, .. } | ServerEvent::Setup { cseq, .. } | ServerEvent::Play { cseq, .. } => (*cseq, bits & 1 == 1),
                            _ => continue,
                        };
                        let res = if !accept {
                            h.conn.reject(cseq, StatusCode(400 + u16::from(bits >> 2)), "")
                        } else {
                            match ev {
                                ServerEvent::Describe { .. } => h.conn.respond_describe(cseq, camera_sdp(), None),
                                ServerEvent::Setup { track, transports, .. } => h.conn.accept_setup(cseq, track, transports[0].clone()),
                                _ => h.conn.accept_play(cseq, &[(0, 1, 2)]),
                            }
                        };
                        prop_assert!(res.is_ok() || h.conn.is_closed(), "{res:?}");
                    }
                }
            }
            while let Some(out) = h.conn.poll_transmit() {
                let Ok(Some((Parsed::Response(r), n))) = parse(&out) else { panic!("bad transmit {out:?}") };
                prop_assert_eq!(n, out.len());
                prop_assert!(r.status.0 >= 200);
            }
            while let Some(ev) = h.conn.poll_event() {
                if matches!(ev, ServerEvent::Closed { .. }) {
                    closed += 1;
                }
                pending.push(ev);
            }
            prop_assert!(closed <= 1);
            prop_assert_eq!(closed == 1, h.conn.is_closed());
        }
    }
}

/// The ONVIF audio back channel (H.626.4 6.1.8 talk from RTSP clients).
mod backchannel {
    use super::*;
    use crate::sdp::find_backchannel;

    fn rtp(pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn frame(channel: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::write_interleaved(channel, payload, &mut out).unwrap();
        out
    }

    /// What GStreamer's `rtspsrc backchannel=onvif` sends, up to PLAY; the back channel on
    /// interleaved channels 4-5.
    fn playing() -> Harness {
        let mut h = Harness::new();
        let (r, ev) = h.feed(
            format!(
                "DESCRIBE {URL}?token=t RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\nRequire: www.onvif.org/ver20/backchannel\r\n\r\n"
            )
            .as_bytes(),
        );
        assert!(r.is_empty());
        let [ServerEvent::Describe { backchannel, .. }] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert!(backchannel);
        h.conn.offer_backchannel(2, &[0, 8]);
        let sdp = CameraSdp::from_description(
            &SessionDescription::parse(camera_sdp().as_bytes()).unwrap(),
        )
        .unwrap()
        .build_with_backchannel(&[AudioCodec::Pcmu, AudioCodec::Pcma]);
        h.conn
            .respond_describe(1, sdp, Some(format!("{URL}/")))
            .unwrap();
        let r = h.responses();
        let sd = SessionDescription::parse(&r[0].body).unwrap();
        assert_eq!(find_backchannel(&sd).unwrap().0, "trackID=2");
        h.setup_tcp(2);
        let (r, ev) = h.feed(
            format!("SETUP {URL}/trackID=2 RTSP/1.0\r\nCSeq: 3\r\nSession: {SID}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n\r\n").as_bytes(),
        );
        assert!(r.is_empty());
        let [
            ServerEvent::Setup {
                track: 2,
                transports,
                ..
            },
        ] = ev.as_slice()
        else {
            panic!("{ev:?}")
        };
        h.conn.accept_setup(3, 2, transports[0].clone()).unwrap();
        assert_eq!(h.responses()[0].status, StatusCode::OK);
        let (_, ev) =
            h.feed(format!("PLAY {URL}/ RTSP/1.0\r\nCSeq: 4\r\nSession: {SID}\r\n\r\n").as_bytes());
        assert!(matches!(ev.as_slice(), [ServerEvent::Play { cseq: 4, .. }]));
        h.conn.accept_play(4, &[]).unwrap();
        assert_eq!(h.responses()[0].status, StatusCode::OK);
        h
    }

    #[test]
    fn rtp_on_the_back_channel_is_surfaced_checked() {
        let mut h = playing();
        let (_, ev) = h.feed(&frame(4, &rtp(0, 65535, &[0xff; 160])));
        let [ServerEvent::Backchannel(p)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (p.track, p.channel, p.payload_type, p.timestamp),
            (2, 4, 0, 65535 * 160)
        );
        assert_eq!(p.payload, vec![0xff; 160]);
        let first = p.seq;
        // A wrong payload type, an oversized and a malformed packet are dropped, counted, and
        // the stream goes on (across the sequence number's wrap).
        let mut bad = frame(4, &rtp(96, 0, &[1; 160]));
        bad.extend(frame(4, &rtp(0, 1, &[1; 1600])));
        bad.extend(frame(4, &[0x80, 0]));
        bad.extend(frame(4, &rtp(0, 2, &[])));
        bad.extend(frame(4, &rtp(8, 3, &[0xd5; 160])));
        let (r, ev) = h.feed(&bad);
        assert!(r.is_empty());
        let [ServerEvent::Backchannel(p)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!((p.payload_type, p.seq), (8, first + 4));
        assert_eq!(
            h.conn.backchannel_stats(),
            Some(BackchannelStats {
                received: 2,
                wrong_payload_type: 1,
                malformed: 2,
                oversized: 1,
            })
        );
        // RTCP on the back channel's second channel and on the video's is passed as is.
        let (_, ev) = h.feed(&[frame(5, b"rtcp"), frame(1, b"rr")].concat());
        assert_eq!(
            ev,
            vec![
                ServerEvent::Interleaved {
                    channel: 5,
                    payload: b"rtcp".to_vec()
                },
                ServerEvent::Interleaved {
                    channel: 1,
                    payload: b"rr".to_vec()
                }
            ]
        );
        assert!(!h.conn.is_closed());
        // After TEARDOWN nothing is the back channel any more.
        h.feed(format!("TEARDOWN {URL}/ RTSP/1.0\r\nCSeq: 5\r\nSession: {SID}\r\n\r\n").as_bytes());
        let (_, ev) = h.feed(&frame(4, &rtp(0, 4, &[0; 160])));
        assert!(matches!(
            ev.as_slice(),
            [ServerEvent::Interleaved { channel: 4, .. }]
        ));
    }

    #[test]
    fn without_an_offer_frames_are_plain_interleaved() {
        let mut h = Harness::new();
        h.setup_tcp(1);
        let (_, ev) = h.feed(&frame(0, &rtp(0, 1, &[0; 160])));
        assert!(matches!(
            ev.as_slice(),
            [ServerEvent::Interleaved { channel: 0, .. }]
        ));
        assert_eq!(h.conn.backchannel_stats(), None);
    }

    #[test]
    fn require_without_the_back_channel() {
        let mut h = Harness::new();
        // No Require: as before.
        let (r, ev) = h.feed(format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes());
        assert!(r.is_empty());
        assert!(matches!(
            ev.as_slice(),
            [ServerEvent::Describe {
                backchannel: false,
                ..
            }]
        ));
        // The application refuses the back channel (a viewer that may not talk): 551.
        h.conn.reject_unsupported(1, &[BACKCHANNEL_TAG]).unwrap();
        let r = h.responses();
        assert_eq!(status_of(&r[0]), (551, Some(1)));
        assert_eq!(r[0].headers.get("Unsupported"), Some(BACKCHANNEL_TAG));
        // An option the camera does not know is refused at once, naming only it.
        let (r, ev) = h.feed(
            format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 2\r\nRequire: www.onvif.org/ver20/backchannel, funky\r\nRequire: x.y\r\n\r\n").as_bytes(),
        );
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(status_of(&r[0]), (551, Some(2)));
        assert_eq!(r[0].headers.get("Unsupported"), Some("funky, x.y"));
        // The connection goes on.
        let r = h.one(&format!("OPTIONS {URL} RTSP/1.0\r\nCSeq: 3\r\n\r\n"));
        assert_eq!(status_of(&r), (200, Some(3)));
    }

    #[test]
    fn sequence_numbers_extend_across_wraps() {
        let mut h = None;
        let mut out = Vec::new();
        for i in 0..200_000u32 {
            let seq = (i.wrapping_add(65_000) & 0xffff) as u16;
            let e = extend_seq(h, seq);
            h = Some(h.map_or(e, |x: u64| x.max(e)));
            out.push(e);
        }
        assert!(out.windows(2).all(|w| w[1] == w[0] + 1));
        // A late packet is below the highest.
        let top = h.unwrap();
        assert!(extend_seq(h, ((top - 3) & 0xffff) as u16) < top);
    }

    proptest! {
        /// Whatever the player sends on the back channel, the connection stays up, every
        /// frame is either passed on or counted, and what is passed on is what was offered.
        #[test]
        fn any_frames_are_passed_or_counted(
            frames in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..40),
                    (any::<u8>(), any::<u16>(), 0usize..2000).prop_map(|(pt, s, n)| rtp(pt & 0x7f, s, &vec![0x55; n])),
                ],
                0..30,
            ),
        ) {
            let mut h = playing();
            let mut passed = 0u64;
            for f in &frames {
                let (r, ev) = h.feed(&frame(4, f));
                prop_assert!(r.is_empty());
                for e in ev {
                    let ServerEvent::Backchannel(p) = e else { panic!("{e:?}") };
                    prop_assert!(p.payload_type == 0 || p.payload_type == 8);
                    prop_assert!(!p.payload.is_empty());
                    passed += 1;
                }
            }
            let s = h.conn.backchannel_stats().unwrap();
            prop_assert_eq!(s.received, passed);
            prop_assert_eq!(s.received + s.wrong_payload_type + s.malformed + s.oversized, frames.len() as u64);
            prop_assert!(!h.conn.is_closed());
        }
    }
}
