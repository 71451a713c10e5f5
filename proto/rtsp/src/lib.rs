//! RTSP 1.0 (RFC 2326, with bits of RFC 7826) for peercam cameras and the players that talk
//! to them (ffmpeg/ffprobe, GStreamer `rtspsrc`, VLC). **Sans-IO**: this crate parses and
//! produces bytes, takes `now` and randomness as parameters, and never touches a socket, a
//! file or the clock.
//!
//! | module | what |
//! |---|---|
//! | [`msg`] | [`Request`], [`Response`], [`Headers`](msg::Headers), typed headers ([`Transport`], [`Range`](msg::Range), [`SessionHeader`](msg::SessionHeader), ...), serialization, [`write_interleaved`] |
//! | [`parse`](mod@parse) | the incremental stream parser: requests, responses, `$` frames, with limits and positioned errors |
//! | [`sdp`] | the camera's DESCRIBE answer ([`sdp::CameraSdp`]) and a tolerant SDP parser |
//! | [`server`] | [`ServerConn`]: one connection, camera side, as a state machine |
//! | [`client`] | [`client::Client`]: request builder and response matcher |
//! | [`pipe`] | the MTU's pipe for recorder playback (Mn/Nd): its target and the token swap of the first request |
//!
//! # Driving a connection
//!
//! ```
//! # #[allow(clippy::disallowed_methods)] let now = std::time::Instant::now();
//! use peercam_rtsp::server::{ServerConfig, ServerConn, ServerEvent};
//!
//! let mut conn = ServerConn::new(ServerConfig::default(), now, [7; 16]);
//! conn.handle_input(now, b"OPTIONS rtsp://cam/live/pc-1 RTSP/1.0\r\nCSeq: 1\r\n\r\n");
//! let answer = conn.poll_transmit().unwrap();
//! assert!(answer.starts_with(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n"));
//!
//! conn.handle_input(now, b"DESCRIBE rtsp://cam/live/pc-1?token=t1 RTSP/1.0\r\nCSeq: 2\r\n\r\n");
//! let Some(ServerEvent::Describe { cseq, token, path, .. }) = conn.poll_event() else { panic!() };
//! assert_eq!((path.as_str(), token.as_deref()), ("/live/pc-1", Some("t1")));
//! conn.respond_describe(cseq, "v=0\r\n".into(), Some("rtsp://cam/live/pc-1/".into())).unwrap();
//! assert!(conn.poll_transmit().is_some());
//! ```
//!
//! The full loop, with timeouts and the application's decisions, is in [`server`].

pub mod client;
pub mod msg;
pub mod parse;
pub mod pipe;
pub mod sdp;
pub mod server;

pub use msg::{
    FrameTooLarge, InterleavedFrame, Request, Response, StatusCode, Transport, write_interleaved,
};
pub use parse::{Limits, ParseError, Parsed, parse};
pub use server::{BACKCHANNEL_TAG, ServerConfig, ServerConn, ServerEvent};
