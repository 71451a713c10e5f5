//! Our client against our server, in one thread and in virtual time, through the public API
//! only: what peercam's own viewer does against a peercam camera.
#![allow(
    clippy::disallowed_methods,
    reason = "tests take one real instant as the origin of virtual time"
)]
#![allow(clippy::unwrap_used, reason = "the harness helpers are test code too")]

use std::time::{Duration, Instant};

use peercam_rtsp::client::{Client, ClientEvent};
use peercam_rtsp::msg::{ChannelPair, Method, NptTime, Range};
use peercam_rtsp::sdp::{AudioCodec, CameraSdp, H264Video, SessionDescription};
use peercam_rtsp::server::{CloseReason, ServerConfig, ServerConn, ServerEvent, SessionState};
use peercam_rtsp::{Response, StatusCode, Transport, write_interleaved};

const BASE: &str = "rtsp://127.0.0.1:8554/live/pc-0123456789abcdef";

struct Pair {
    now: Instant,
    client: Client,
    server: ServerConn,
    /// Media the camera's shell writes after the responses.
    media: Vec<u8>,
    playing: bool,
    closed: Option<CloseReason>,
}

impl Pair {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            now,
            client: Client::new(Some("peercam-cu/0.1".into())),
            server: ServerConn::new(ServerConfig::default(), now, [0xa5; 16]),
            media: Vec::new(),
            playing: false,
            closed: None,
        }
    }

    /// Sends one request and runs the camera (authorizing token `good`) until it answers.
    fn exchange(&mut self, bytes: &[u8]) -> Response {
        self.server.handle_input(self.now, bytes);
        self.run_camera();
        let mut wire = Vec::new();
        while let Some(b) = self.server.poll_transmit() {
            wire.extend(b);
        }
        wire.append(&mut self.media);
        self.client.handle_input(&wire).expect("server speaks RTSP");
        let mut response = None;
        while let Some(ev) = self.client.poll_event() {
            match ev {
                ClientEvent::Response { response: r, .. } => response = Some(r),
                ClientEvent::Interleaved(f) => assert_eq!(f.channel, 0),
                _ => {}
            }
        }
        response.expect("one response")
    }

    /// The camera application.
    fn run_camera(&mut self) {
        while let Some(ev) = self.server.poll_event() {
            match ev {
                ServerEvent::Describe {
                    cseq, token, path, ..
                } => {
                    if token.as_deref() != Some("good") || path != "/live/pc-0123456789abcdef" {
                        self.server
                            .reject(cseq, StatusCode::UNAUTHORIZED, "")
                            .unwrap();
                        continue;
                    }
                    let sdp = CameraSdp {
                        session_id: 1,
                        session_version: 1,
                        origin_address: "127.0.0.1".into(),
                        session_name: "pc".into(),
                        video: Some(H264Video {
                            sps: vec![0x67, 0x42, 0xc0, 0x1f],
                            pps: vec![0x68, 0xce, 0x3c, 0x80],
                            framerate: None,
                            dimensions: None,
                        }),
                        audio: Some(AudioCodec::Pcma),
                    };
                    self.server
                        .respond_describe(cseq, sdp.build(), Some(format!("{BASE}/")))
                        .unwrap();
                }
                ServerEvent::Setup {
                    cseq,
                    track,
                    transports,
                    ..
                } => {
                    match transports
                        .into_iter()
                        .find(|t| t.is_tcp() && t.is_rtp_avp())
                    {
                        Some(mut t) => {
                            t.ssrc = Some(0xcafe_0000 + track as u32);
                            self.server.accept_setup(cseq, track, t).unwrap();
                        }
                        None => self
                            .server
                            .reject(cseq, StatusCode::UNSUPPORTED_TRANSPORT, "")
                            .unwrap(),
                    }
                }
                ServerEvent::Play { cseq, .. } => {
                    self.server
                        .accept_play(cseq, &[(0, 100, 0), (1, 200, 0)])
                        .unwrap();
                    self.playing = true;
                }
                ServerEvent::Pause { .. } | ServerEvent::Teardown { .. } => self.playing = false,
                ServerEvent::Closed { reason } => {
                    self.playing = false;
                    self.closed = Some(reason);
                }
                _ => {}
            }
        }
        if self.playing {
            write_interleaved(0, &[0x80, 96, 0, 100], &mut self.media).unwrap();
        }
    }
}

#[test]
fn viewer_plays_over_tcp_and_tears_down() {
    let mut p = Pair::new();

    let req = p.client.options(BASE);
    let r = p.exchange(&req.serialize());
    assert!(r.headers.public().unwrap().contains(&Method::Describe));

    let req = p.client.describe(&format!("{BASE}?token=bad"));
    assert_eq!(
        p.exchange(&req.serialize()).status,
        StatusCode::UNAUTHORIZED
    );
    let req = p.client.describe(&format!("{BASE}?token=good"));
    let r = p.exchange(&req.serialize());
    assert_eq!(r.status, StatusCode::OK);
    let base = r.headers.get("Content-Base").unwrap().to_owned();
    let sdp = SessionDescription::parse(&r.body).unwrap();
    let cam = CameraSdp::from_description(&sdp).unwrap();
    assert_eq!(cam.audio, Some(AudioCodec::Pcma));

    // UDP only is refused; TCP is accepted. Controls resolve under the Content-Base.
    for (i, m) in sdp.media.iter().enumerate() {
        let url = format!("{base}{}", m.control().unwrap());
        if i == 0 {
            let req = p.client.setup(&url, &[Transport::udp_unicast(5000)]);
            assert_eq!(
                p.exchange(&req.serialize()).status,
                StatusCode::UNSUPPORTED_TRANSPORT
            );
        }
        let channel = u8::try_from(2 * i).unwrap();
        let req = p.client.setup(
            &url,
            &[
                Transport::udp_unicast(5000),
                Transport::tcp_interleaved(channel),
            ],
        );
        let r = p.exchange(&req.serialize());
        assert_eq!(r.status, StatusCode::OK);
        let t = &r.headers.transport().unwrap().unwrap()[0];
        assert_eq!(
            t.interleaved,
            Some(ChannelPair {
                rtp: channel,
                rtcp: Some(channel + 1)
            })
        );
    }
    let session = p.client.session().unwrap().clone();
    assert_eq!(session.id, "a5".repeat(16));
    assert_eq!(session.timeout, Some(60));
    assert_eq!(p.server.state(), SessionState::Ready);

    let range = Range::Npt {
        start: Some(NptTime::Now),
        end: None,
    };
    let req = p.client.play(&base, Some(&range));
    let r = p.exchange(&req.serialize());
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers.range().unwrap(), Some(range));
    assert_eq!(r.headers.rtp_info().unwrap().unwrap().len(), 2);
    assert_eq!(p.server.state(), SessionState::Playing);

    // Keep-alives every 30 s hold the session for ten minutes.
    for _ in 0..20 {
        p.now += Duration::from_secs(30);
        p.server.handle_timeout(p.now);
        let req = p.client.get_parameter(&base);
        assert_eq!(p.exchange(&req.serialize()).status, StatusCode::OK);
    }
    assert!(p.closed.is_none());

    let req = p.client.teardown(&base);
    assert_eq!(p.exchange(&req.serialize()).status, StatusCode::OK);
    assert!(p.client.session().is_none());
    assert!(!p.playing);

    // Then silence: the camera closes the connection.
    p.now += Duration::from_secs(61);
    p.server.handle_timeout(p.now);
    p.run_camera();
    assert_eq!(p.closed, Some(CloseReason::Timeout));
}
