//! A small pure RTSP client: builds requests with CSeq, User-Agent and Session, and matches
//! responses to them. Enough to drive a camera from tests and from peercam's own viewer;
//! transport negotiation and media are the caller's.
//!
//! ```
//! use peercam_rtsp::client::{Client, ClientEvent};
//! use peercam_rtsp::msg::Transport;
//!
//! let mut c = Client::new(Some("peercam-test".into()));
//! let options = c.options("rtsp://cam/live/pc-1");
//! let setup = c.setup("rtsp://cam/live/pc-1/trackID=0", &[Transport::tcp_interleaved(0)]);
//! // ... write `options.serialize()` and `setup.serialize()`, then feed what comes back:
//! c.handle_input(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n").unwrap();
//! assert!(matches!(c.poll_event(), Some(ClientEvent::Response { .. })));
//! ```

use std::collections::VecDeque;

use crate::msg::{
    HeaderError, InterleavedFrame, Method, Range, Request, Response, SessionHeader, Transport,
};
use crate::parse::{Limits, ParseError, Parsed, parse_with};

/// A response the client cannot place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The byte stream is broken; close the connection.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A response without a usable CSeq.
    #[error("response without a valid CSeq")]
    MissingCSeq,
    /// A response to no outstanding request.
    #[error("response with CSeq {0} answers no outstanding request")]
    UnknownCSeq(u32),
    /// A header the client relies on is malformed (e.g. `Session` in a SETUP answer).
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The server sent a request; this client does not serve any.
    #[error("unexpected {0} request from the server")]
    UnexpectedRequest(Method),
}

/// What the client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The response to the request with the same CSeq.
    Response {
        /// The request's method.
        method: Method,
        /// The response.
        response: Response,
    },
    /// An interleaved frame (RTP or RTCP).
    Interleaved(InterleavedFrame),
}

/// Request builder and response matcher for one RTSP connection.
#[derive(Debug, Clone)]
pub struct Client {
    next_cseq: u32,
    user_agent: Option<String>,
    session: Option<SessionHeader>,
    outstanding: VecDeque<(u32, Method)>,
    buf: Vec<u8>,
    events: VecDeque<ClientEvent>,
    limits: Limits,
}

impl Client {
    /// A client whose first request has CSeq 1.
    pub fn new(user_agent: Option<String>) -> Self {
        Self {
            next_cseq: 1,
            user_agent,
            session: None,
            outstanding: VecDeque::new(),
            buf: Vec::new(),
            events: VecDeque::new(),
            limits: Limits::default(),
        }
    }

    /// The session the server gave in its SETUP answer.
    pub fn session(&self) -> Option<&SessionHeader> {
        self.session.as_ref()
    }

    /// A request with the next CSeq, the User-Agent and (when known) the Session.
    pub fn request(&mut self, method: Method, uri: &str) -> Request {
        let cseq = self.next_cseq;
        self.next_cseq = self.next_cseq.wrapping_add(1).max(1);
        self.outstanding.push_back((cseq, method.clone()));
        let mut r = Request::new(method, uri).with_header("CSeq", cseq.to_string());
        if let Some(ua) = &self.user_agent {
            r.headers.append("User-Agent", ua.clone());
        }
        if let Some(s) = &self.session {
            r.headers.append("Session", s.id.clone());
        }
        r
    }

    /// OPTIONS.
    pub fn options(&mut self, uri: &str) -> Request {
        self.request(Method::Options, uri)
    }

    /// DESCRIBE with `Accept: application/sdp`.
    pub fn describe(&mut self, uri: &str) -> Request {
        let mut r = self.request(Method::Describe, uri);
        r.headers.append("Accept", "application/sdp");
        r
    }

    /// SETUP offering `transports`, best first.
    pub fn setup(&mut self, uri: &str, transports: &[Transport]) -> Request {
        let mut r = self.request(Method::Setup, uri);
        r.headers
            .append("Transport", Transport::format_list(transports));
        r
    }

    /// PLAY, with a Range if given.
    pub fn play(&mut self, uri: &str, range: Option<&Range>) -> Request {
        let mut r = self.request(Method::Play, uri);
        if let Some(range) = range {
            r.headers.append("Range", range.to_string());
        }
        r
    }

    /// PAUSE.
    pub fn pause(&mut self, uri: &str) -> Request {
        self.request(Method::Pause, uri)
    }

    /// TEARDOWN.
    pub fn teardown(&mut self, uri: &str) -> Request {
        self.request(Method::Teardown, uri)
    }

    /// GET_PARAMETER without a body: the usual keep-alive.
    pub fn get_parameter(&mut self, uri: &str) -> Request {
        self.request(Method::GetParameter, uri)
    }

    /// Feeds bytes read from the connection; responses and frames become events. Stops at
    /// the first error, which is final for the stream.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.buf.extend_from_slice(bytes);
        let mut used = 0;
        let result = loop {
            match parse_with(&self.buf[used..], &self.limits) {
                Ok(Some((item, n))) => {
                    used += n;
                    match item {
                        Parsed::Response(r) => {
                            if let Err(e) = self.handle_response(r) {
                                break Err(e);
                            }
                        }
                        Parsed::Interleaved(f) => {
                            self.events.push_back(ClientEvent::Interleaved(f))
                        }
                        Parsed::Request(r) => break Err(ClientError::UnexpectedRequest(r.method)),
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.into()),
            }
        };
        self.buf.drain(..used);
        result
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Matches a response to its request, learning the session from a SETUP answer and
    /// forgetting it after a TEARDOWN answer.
    pub fn handle_response(&mut self, response: Response) -> Result<(), ClientError> {
        let cseq = response
            .headers
            .cseq()
            .ok()
            .flatten()
            .ok_or(ClientError::MissingCSeq)?;
        let index = self
            .outstanding
            .iter()
            .position(|(c, _)| *c == cseq)
            .ok_or(ClientError::UnknownCSeq(cseq))?;
        let (_, method) = self
            .outstanding
            .remove(index)
            .ok_or(ClientError::UnknownCSeq(cseq))?;
        if response.status.is_success() {
            match method {
                Method::Setup => {
                    if let Some(s) = response.headers.session()? {
                        self.session = Some(s);
                    }
                }
                Method::Teardown => self.session = None,
                _ => {}
            }
        }
        self.events
            .push_back(ClientEvent::Response { method, response });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::StatusCode;

    #[test]
    fn builds_and_matches() {
        let mut c = Client::new(Some("Lavf60.16.100".into()));
        let o = c.options("rtsp://cam/live");
        assert_eq!(
            o.serialize(),
            b"OPTIONS rtsp://cam/live RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf60.16.100\r\n\r\n"
        );
        let s = c.setup(
            "rtsp://cam/live/trackID=0",
            &[Transport::tcp_interleaved(0)],
        );
        assert_eq!(
            s.headers.get("Transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1")
        );
        // Answers may come in any order; frames in between are passed on.
        c.handle_input(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: abc;timeout=60\r\n\r\n$\x01\x00\x01\xffRTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
            .unwrap();
        assert!(matches!(
            c.poll_event(),
            Some(ClientEvent::Response {
                method: Method::Setup,
                ..
            })
        ));
        assert!(matches!(c.poll_event(), Some(ClientEvent::Interleaved(f)) if f.channel == 1));
        assert!(matches!(
            c.poll_event(),
            Some(ClientEvent::Response {
                method: Method::Options,
                ..
            })
        ));
        assert_eq!(c.session().unwrap().timeout, Some(60));
        let p = c.play("rtsp://cam/live/", None);
        assert_eq!(p.headers.get("Session"), Some("abc"));
        assert_eq!(p.headers.cseq(), Ok(Some(3)));
        let t = c.teardown("rtsp://cam/live/");
        let mut ok = Response::new(StatusCode::OK).with_header("CSeq", "4");
        c.handle_response(ok.clone()).unwrap();
        assert!(c.session().is_none());
        assert_eq!(
            c.handle_response(ok.clone()),
            Err(ClientError::UnknownCSeq(4))
        );
        ok.headers.remove("CSeq");
        assert_eq!(c.handle_response(ok), Err(ClientError::MissingCSeq));
        assert_eq!(t.method, Method::Teardown);
        assert!(matches!(
            c.handle_input(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            Err(ClientError::UnexpectedRequest(Method::Options))
        ));
        assert!(matches!(
            c.handle_input(b"\x00"),
            Err(ClientError::Parse(_))
        ));
    }
}
