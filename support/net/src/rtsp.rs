//! A minimal RTSP client connection over any byte stream: a TCP connection, the MTU's relay
//! channel from a camera (Pd), or a QUIC stream over a hole-punched path. Requests are sent
//! one at a time; interleaved RTP/RTCP frames that arrive meanwhile are kept for
//! [`RtspConn::next`]. The server side, one driver for every unit, is [`serve`].

pub mod serve;

use std::collections::VecDeque;
use std::time::Duration;

use peercam_rtsp::{InterleavedFrame, Parsed, Response, parse};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// A byte stream an RTSP session can run over.
pub trait RtspStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RtspStream for T {}

/// What went wrong on an RTSP connection.
#[derive(Debug, thiserror::Error)]
pub enum RtspError {
    /// The peer cannot be reached.
    #[error("cannot reach {0}")]
    Connect(String),
    /// Reading or writing failed, or the peer closed.
    #[error("RTSP connection: {0}")]
    Io(String),
    /// The peer sent something that is not RTSP.
    #[error("the peer sent bad RTSP: {0}")]
    Protocol(String),
    /// The peer answered with an error status.
    #[error("{method} refused: {status} {reason}")]
    Refused {
        /// The request's method.
        method: String,
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
}

/// One RTSP client connection.
pub struct RtspConn {
    stream: Box<dyn RtspStream>,
    buf: Vec<u8>,
    cseq: u32,
    /// Interleaved frames read while waiting for a response.
    early: VecDeque<InterleavedFrame>,
    user_agent: String,
    /// The session id from the first SETUP answer.
    pub session: Option<String>,
}

impl RtspConn {
    /// An RTSP connection over `stream`.
    pub fn new(stream: Box<dyn RtspStream>, user_agent: &str) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            cseq: 0,
            early: VecDeque::new(),
            user_agent: user_agent.to_owned(),
            session: None,
        }
    }

    /// Connects over TCP to the authority of an `rtsp://` URL within `timeout`.
    pub async fn connect(
        url: &str,
        timeout: Duration,
        user_agent: &str,
    ) -> Result<Self, RtspError> {
        let rest = url
            .strip_prefix("rtsp://")
            .ok_or_else(|| RtspError::Connect(format!("{url}: not an rtsp:// URL")))?;
        let hostport = rest.split(['/', '?']).next().unwrap_or_default();
        let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(hostport))
            .await
            .map_err(|_| RtspError::Connect(format!("{hostport}: no answer in time")))?
            .map_err(|e| RtspError::Connect(format!("{hostport}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        Ok(Self::new(Box::new(tcp), user_agent))
    }

    /// The next message from the peer: an early interleaved frame first, then what arrives.
    pub async fn next(&mut self) -> Result<Parsed, RtspError> {
        if let Some(f) = self.early.pop_front() {
            return Ok(Parsed::Interleaved(f));
        }
        loop {
            if let Some((msg, used)) =
                parse(&self.buf).map_err(|e| RtspError::Protocol(e.to_string()))?
            {
                self.buf.drain(..used);
                return Ok(msg);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| RtspError::Io(e.to_string()))?;
            if n == 0 {
                return Err(RtspError::Io("the peer closed the connection".into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a request (`extra`: further header lines, each ending in CRLF) without
    /// waiting for the answer.
    pub async fn send(&mut self, method: &str, uri: &str, extra: &str) -> Result<u32, RtspError> {
        self.cseq += 1;
        let session = self
            .session
            .as_ref()
            .map(|s| format!("Session: {s}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {uri} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: {}\r\n{session}{extra}\r\n",
            self.cseq, self.user_agent
        );
        self.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| RtspError::Io(e.to_string()))?;
        Ok(self.cseq)
    }

    /// Sends a request and waits for a successful answer; interleaved frames that arrive
    /// meanwhile are kept for [`RtspConn::next`]. A SETUP answer's session id is kept.
    pub async fn request(
        &mut self,
        method: &str,
        uri: &str,
        extra: &str,
    ) -> Result<Response, RtspError> {
        self.send(method, uri, extra).await?;
        loop {
            let msg = if let Some((msg, used)) =
                parse(&self.buf).map_err(|e| RtspError::Protocol(e.to_string()))?
            {
                self.buf.drain(..used);
                msg
            } else {
                let mut chunk = [0u8; 16 * 1024];
                let n = self
                    .stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| RtspError::Io(e.to_string()))?;
                if n == 0 {
                    return Err(RtspError::Io("the peer closed the connection".into()));
                }
                self.buf.extend_from_slice(&chunk[..n]);
                continue;
            };
            match msg {
                Parsed::Response(r) => {
                    if !r.status.is_success() {
                        return Err(RtspError::Refused {
                            method: method.to_owned(),
                            status: r.status.0,
                            reason: r.reason,
                        });
                    }
                    if self.session.is_none()
                        && let Some(s) = r.headers.get("session")
                    {
                        self.session = Some(s.split(';').next().unwrap_or(s).trim().to_owned());
                    }
                    return Ok(r);
                }
                Parsed::Interleaved(f) => {
                    if self.early.len() < 1024 {
                        self.early.push_back(f);
                    }
                }
                Parsed::Request(_) => {}
            }
        }
    }

    /// SETUP of track `track` over interleaved channels `2*track`, `2*track+1`.
    pub async fn setup_interleaved(
        &mut self,
        base: &str,
        track: usize,
    ) -> Result<Response, RtspError> {
        let (rtp, rtcp) = (track * 2, track * 2 + 1);
        self.request(
            "SETUP",
            &format!("{base}/trackID={track}"),
            &format!("Transport: RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp}\r\n"),
        )
        .await
    }

    /// Writes raw bytes (an interleaved frame) to the peer.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), RtspError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| RtspError::Io(e.to_string()))
    }
}
