//! The one RTSP server connection driver (Pc/Pc' at the camera, Mc/Cd at the MTU, Nc/Nc'
//! at a recorder): the IO shell around [`peercam_rtsp::ServerConn`].
//!
//! It reads the viewer's bytes into the state machine, writes what the state machine
//! answers and what the unit queued (interleaved RTP/RTCP, RFC 2326 10.12) in one write per
//! wake-up, keeps the state machine's timers (session timeout, RFC 2326 12.37) on one timer
//! moved only when the deadline moves, and ends on the unit's stop signal. A unit supplies
//! only a [`Handler`]: its answer to each request (authorisation, H.626.4 8.4 steps 5-8,
//! and its media source) and the media it is woken for.

use std::future::Future;
use std::time::{Duration, Instant};

use peercam_rtsp::msg::{ChannelPair, LowerTransport, Range, StatusCode, Transport};
use peercam_rtsp::{ServerConfig, ServerConn, ServerEvent};
use peercam_signal::refusal::Refusal;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Why a served RTSP connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Reading from or writing to the viewer failed.
    #[error("RTSP connection: {0}")]
    Io(#[from] std::io::Error),
    /// The state machine closed the session (the viewer left, timed out or sent garbage).
    #[error("RTSP session closed: {0}")]
    Closed(String),
    /// The platform revoked the viewer's access (docs/security.md D5).
    #[error("revoked")]
    Revoked,
    /// The media source ended.
    #[error("{0}")]
    SourceEnded(String),
}

/// The state machine and the bytes queued for the viewer, lent to a [`Handler`].
pub struct Io<'a> {
    /// The connection's state machine: answer requests on it.
    pub conn: &'a mut ServerConn,
    /// Bytes to send after what the state machine queued before: interleaved RTP/RTCP.
    pub out: &'a mut Vec<u8>,
}

impl Io<'_> {
    /// Appends what the state machine has to send to the bytes queued, so that media
    /// appended next goes out behind an answer (the picture after a PLAY answer).
    pub fn drain(&mut self) {
        drain(self.conn, self.out);
    }
}

/// A DESCRIBE: authorise, then [`ServerConn::respond_describe`] or [`ServerConn::reject`].
#[derive(Debug)]
pub struct Describe {
    /// The request's CSeq.
    pub cseq: u32,
    /// The request URI.
    pub uri: String,
    /// Its path without a trailing `/`.
    pub path: String,
    /// Its query, without `?`.
    pub query: Option<String>,
    /// The viewer's token (`?token=` or `Authorization: Bearer`).
    pub token: Option<String>,
    /// The viewer asks for the ONVIF audio back channel (`Require:
    /// www.onvif.org/ver20/backchannel`): offer it or answer 551.
    pub backchannel: bool,
}

/// A SETUP of one track: [`ServerConn::accept_setup`] or [`ServerConn::reject`].
#[derive(Debug)]
pub struct Setup {
    /// The request's CSeq.
    pub cseq: u32,
    /// `N` from `trackID=N`.
    pub track: usize,
    /// The transports the player offers, best first.
    pub transports: Vec<Transport>,
}

/// A PLAY: start or resume sending, then [`ServerConn::accept_play`].
#[derive(Debug)]
pub struct Play {
    /// The request's CSeq.
    pub cseq: u32,
    /// The requested range, if any.
    pub range: Option<Range>,
    /// The `Scale` (or `Speed`) header, verbatim.
    pub scale: Option<String>,
    /// The `X-Frame-Step` header, verbatim.
    pub frame_step: Option<String>,
}

/// What a unit brings to a served RTSP connection: its answers to the requests (with its
/// authorisation, H.626.4 8.4 steps 5-8) and its media.
pub trait Handler: Send {
    /// What wakes the connection beside the viewer's requests (media to send, a timer).
    type Wake: Send;

    /// Answers a DESCRIBE.
    fn describe(&mut self, io: Io<'_>, req: Describe) -> impl Future<Output = ()> + Send;

    /// Answers a SETUP.
    fn setup(&mut self, io: Io<'_>, req: Setup) -> impl Future<Output = ()> + Send;

    /// Answers a PLAY; media appended to `io.out` after [`Io::drain`] follows the answer.
    fn play(&mut self, io: Io<'_>, req: Play) -> impl Future<Output = ()> + Send;

    /// A PAUSE, already answered: stop sending.
    fn pause(&mut self);

    /// A TEARDOWN, already answered: stop sending, forget the tracks' state.
    fn teardown(&mut self) {
        self.pause();
    }

    /// An RTP packet of the audio back channel (checked by the state machine). Default:
    /// ignored.
    fn backchannel(&mut self, packet: peercam_rtsp::server::BackchannelPacket) {
        let _ = packet;
    }

    /// Resolves when the unit has something to do (pending while it has nothing).
    fn wait(&mut self) -> impl Future<Output = Self::Wake> + Send;

    /// Does what [`Handler::wait`] woke for; appends what is to be sent to `io.out`.
    fn wake(
        &mut self,
        io: Io<'_>,
        wake: Self::Wake,
    ) -> impl Future<Output = Result<(), ServeError>> + Send;
}

/// Hands one event of the state machine to the handler.
async fn dispatch<H: Handler>(handler: &mut H, io: Io<'_>, event: ServerEvent) {
    match event {
        ServerEvent::Describe {
            cseq,
            uri,
            path,
            query,
            token,
            backchannel,
        } => {
            let req = Describe {
                cseq,
                uri,
                path,
                query,
                token,
                backchannel,
            };
            handler.describe(io, req).await;
        }
        ServerEvent::Setup {
            cseq,
            track,
            transports,
            ..
        } => {
            let req = Setup {
                cseq,
                track,
                transports,
            };
            handler.setup(io, req).await;
        }
        ServerEvent::Play {
            cseq,
            range,
            scale,
            frame_step,
        } => {
            let req = Play {
                cseq,
                range,
                scale,
                frame_step,
            };
            handler.play(io, req).await;
        }
        ServerEvent::Pause { .. } => handler.pause(),
        ServerEvent::Teardown { .. } => handler.teardown(),
        ServerEvent::Backchannel(p) => handler.backchannel(p),
        _ => {}
    }
}

/// Appends what the state machine has to send to `out`.
pub fn drain(conn: &mut ServerConn, out: &mut Vec<u8>) {
    while let Some(bytes) = conn.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
}

/// Serves one RTSP connection on `io` with `handler` until the session closes, the handler
/// ends it, or `stop` resolves (its result is the connection's).
pub async fn serve<S, H, F>(mut io: S, handler: &mut H, stop: F) -> Result<(), ServeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
    F: Future<Output = Result<(), ServeError>>,
{
    let mut conn = ServerConn::new(ServerConfig::default(), Instant::now(), session_seed());
    let mut out = Vec::with_capacity(64 * 1024);
    let mut buf = vec![0u8; 16 * 1024];
    // One timer for the state machine's deadline, moved only when the deadline moves.
    let far = || Instant::now() + Duration::from_secs(3600);
    let mut deadline = far();
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    tokio::pin!(stop);
    loop {
        // Write what the state machine and the handler produced, then act on one event.
        drain(&mut conn, &mut out);
        flush(&mut io, &mut out).await?;
        if let Some(ev) = conn.poll_event() {
            if let ServerEvent::Closed { reason } = ev {
                drain(&mut conn, &mut out);
                let _ = io.write_all(&out).await;
                return Err(ServeError::Closed(reason.to_string()));
            }
            let io = Io {
                conn: &mut conn,
                out: &mut out,
            };
            dispatch(handler, io, ev).await;
            continue;
        }
        let next = conn.poll_timeout().unwrap_or_else(far);
        if next != deadline {
            deadline = next;
            timer.as_mut().reset(deadline.into());
        }
        tokio::select! {
            r = io.read(&mut buf) => {
                let n = r?;
                if n == 0 {
                    conn.handle_peer_closed();
                } else {
                    conn.handle_input(Instant::now(), &buf[..n]);
                }
            }
            wake = handler.wait() => {
                let io = Io { conn: &mut conn, out: &mut out };
                handler.wake(io, wake).await?;
            }
            () = &mut timer => {
                conn.handle_timeout(Instant::now());
                deadline = far();
                timer.as_mut().reset(deadline.into());
            }
            r = &mut stop => return r,
        }
    }
}

/// Writes what is buffered for the connection, in one call.
async fn flush<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>) -> Result<(), ServeError> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Randomness for the state machine's session ids.
fn session_seed() -> [u8; 16] {
    let mut seed = [0u8; 16];
    if getrandom::fill(&mut seed).is_err() {
        // No OS randomness: the clock still keeps ids apart between connections.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        seed = t.to_le_bytes();
    }
    seed
}

/// The interleaved transport answered to `offer` for `track` (RFC 2326 10.12, H.626.4
/// 6.3.1): the channels the player asked for, or `2n`/`2n+1` when it left them to us.
/// Returns the transport and its (RTP, RTCP) channels.
pub fn interleaved(mut offer: Transport, track: usize) -> (Transport, u8, u8) {
    let pair = offer.interleaved.unwrap_or(ChannelPair {
        rtp: (track * 2) as u8,
        rtcp: Some((track * 2 + 1) as u8),
    });
    let rtcp = pair.rtcp.unwrap_or_else(|| pair.rtp.wrapping_add(1));
    offer.interleaved = Some(ChannelPair {
        rtp: pair.rtp,
        rtcp: Some(rtcp),
    });
    offer.lower = Some(LowerTransport::Tcp);
    (offer, pair.rtp, rtcp)
}

/// Whether a transport offer asks for RTP over the RTSP connection.
pub fn is_interleaved(offer: &Transport) -> bool {
    offer.interleaved.is_some() || offer.lower == Some(LowerTransport::Tcp)
}

/// The `Content-Base` of a DESCRIBE answer: the request URI without its query, ending in
/// `/`.
pub fn content_base(uri: &str) -> String {
    format!(
        "{}/",
        uri.split('?').next().unwrap_or(uri).trim_end_matches('/')
    )
}

/// The answer to a DESCRIBE the platform refused (H.626.4 8.4 step 8): 503 when the
/// platform could not decide now (a transient refusal: unavailable, timeout), else 401.
pub fn refusal(code: &Refusal) -> (StatusCode, &'static str) {
    if code.is_transient() {
        (StatusCode(503), "Service Unavailable")
    } else {
        (StatusCode(401), "Unauthorized")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_channels_default_to_the_track() {
        let offer = Transport::parse("RTP/AVP/TCP;unicast").expect("transport");
        let (t, rtp, rtcp) = interleaved(offer, 1);
        assert_eq!((rtp, rtcp), (2, 3));
        assert_eq!(t.lower, Some(LowerTransport::Tcp));
        assert_eq!(content_base("rtsp://h/live/x/?token=a"), "rtsp://h/live/x/");
        assert_eq!(refusal(&Refusal::Unavailable).0, StatusCode(503));
        assert_eq!(refusal(&Refusal::Timeout).0, StatusCode(503));
        assert_eq!(refusal(&Refusal::Expired).0, StatusCode(401));
    }
}
