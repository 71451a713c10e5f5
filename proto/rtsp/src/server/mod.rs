//! The camera end of one RTSP connection as a pure state machine (RFC 2326 appendix A.2).
//!
//! [`ServerConn`] owns no socket and reads no clock. The IO shell feeds it the bytes it
//! reads, writes what it returns, passes decisions to the application, and calls
//! [`ServerConn::handle_timeout`] when [`ServerConn::poll_timeout`] is reached:
//!
//! ```text
//! loop {
//!     while let Some(bytes) = conn.poll_transmit() { socket.write_all(&bytes) }
//!     while let Some(ev) = conn.poll_event() {
//!         match ev {
//!             Describe { cseq, token, path, .. } => authorize, then
//!                 conn.respond_describe(cseq, sdp, Some(base)) or conn.reject(cseq, 401, ""),
//!             Setup { cseq, track, transports, .. } => pick one, then
//!                 conn.accept_setup(cseq, track, chosen) or conn.reject(cseq, 461, ""),
//!             Play { cseq, .. } => start media, conn.accept_play(cseq, &rtp_info),
//!             Pause { .. } | Teardown { .. } => stop media (already answered),
//!             Interleaved { .. } => RTCP from the player,
//!             Closed { .. } => stop media; close the socket once transmits are drained,
//!         }
//!     }
//!     select! {
//!         bytes = socket.read() => conn.handle_input(now, &bytes),  // EOF: handle_peer_closed
//!         _ = sleep_until(conn.poll_timeout()) => conn.handle_timeout(now),
//!     }
//! }
//! ```
//!
//! Media for a TCP-interleaved session is written by the shell itself, framed with
//! [`crate::write_interleaved`], between whole responses.
//!
//! # Behaviour
//!
//! * Requests are handled strictly in order. While a request waits for the application
//!   (DESCRIBE, SETUP, PLAY), later input is buffered, not parsed, so every response goes
//!   out in request order and each decision sees the state its request saw.
//! * OPTIONS, GET_PARAMETER, SET_PARAMETER (keep-alives), PAUSE and TEARDOWN are answered
//!   here. Unknown methods get 501, a version other than 1.x gets 505, a request without a
//!   valid CSeq gets 400 (the connection stays open).
//! * One session per connection, created by the first accepted SETUP; its id is 32 hex
//!   characters from the randomness given to [`ServerConn::new`]. After TEARDOWN no new
//!   session can be set up on the connection. A Session header naming another session is
//!   454; PLAY, PAUSE or TEARDOWN before any SETUP is 455, as is SETUP without a Session
//!   header once a session exists or while playing.
//! * A stream that does not parse is answered 400 (413, 414, 431 for size limits) and the
//!   connection is closed: the stream cannot be resynchronised.
//! * Every complete request or interleaved frame from the player (and [`ServerConn::touch`])
//!   moves the idle deadline to `now + session_timeout`; at the deadline the connection
//!   closes with [`CloseReason::Timeout`].
//! * [`ServerEvent::Closed`] is emitted exactly once; afterwards input is ignored.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::msg::{
    ChannelPair, LowerTransport, Method, Range, Request, Response, RtpInfo, SessionHeader,
    StatusCode, Transport, bearer_token, format_methods, uri,
};
use crate::parse::{Limit, Limits, ParseError, Parsed, parse_with};

/// Connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// How long the player may stay silent; advertised as `Session: id;timeout=N`.
    /// Default 60 s.
    pub session_timeout: Duration,
    /// Parser limits. Default [`Limits::default`].
    pub limits: Limits,
    /// The `Server` header, if any. Default `peercam`.
    pub server_name: Option<String>,
    /// Track numbers (`trackID=N`) must be below this. Default 8.
    pub max_tracks: usize,
    /// Bytes buffered while a request awaits the application; more closes the connection.
    /// Default 256 KiB.
    pub max_buffered: usize,
    /// The largest RTP packet taken on the audio back channel; larger ones are dropped and
    /// counted ([`BackchannelStats::oversized`]). Default 1500 bytes.
    pub max_backchannel_packet: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_secs(60),
            limits: Limits::default(),
            server_name: Some("peercam".into()),
            max_tracks: 8,
            max_buffered: 256 * 1024,
            max_backchannel_packet: 1500,
        }
    }
}

/// What the connection reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// DESCRIBE: authorize, then [`ServerConn::respond_describe`] or [`ServerConn::reject`].
    Describe {
        /// The request's CSeq, to answer with.
        cseq: u32,
        /// The request URI.
        uri: String,
        /// Its path without a trailing `/`, e.g. `/live/pc-0123456789abcdef`.
        path: String,
        /// Its query, without `?`.
        query: Option<String>,
        /// `?token=` (percent-decoded) or else an `Authorization: Bearer` token.
        token: Option<String>,
        /// The player asks for the ONVIF audio back channel (`Require:` [`BACKCHANNEL_TAG`]):
        /// answer with it ([`ServerConn::offer_backchannel`] and an SDP from
        /// [`crate::sdp::CameraSdp::build_with_backchannel`]) or refuse with
        /// [`ServerConn::reject_unsupported`] (551).
        backchannel: bool,
    },
    /// SETUP of one track: [`ServerConn::accept_setup`] with the chosen transport, or
    /// [`ServerConn::reject`] (461 when no offered transport is acceptable).
    Setup {
        /// The request's CSeq.
        cseq: u32,
        /// The request URI.
        uri: String,
        /// The path without the `trackID=N` segment and trailing `/`.
        path: String,
        /// As for [`ServerEvent::Describe`] (players usually drop the query by now).
        token: Option<String>,
        /// `N` from `trackID=N`.
        track: usize,
        /// The transports the player offers, best first.
        transports: Vec<Transport>,
    },
    /// PLAY: start (or resume) sending, then [`ServerConn::accept_play`].
    Play {
        /// The request's CSeq.
        cseq: u32,
        /// The requested range, if any.
        range: Option<Range>,
        /// The `Scale` header (RFC 2326 12.34), or else `Speed` (12.35), verbatim.
        scale: Option<String>,
        /// The `X-Frame-Step` header (`1` or `-1`: show one frame forward or back while
        /// paused; a peercam extension for recordings, see docs/protocol.md), verbatim.
        frame_step: Option<String>,
    },
    /// PAUSE, already answered 200: stop sending, keep the session.
    Pause {
        /// The request's CSeq.
        cseq: u32,
    },
    /// TEARDOWN, already answered 200: the session is gone.
    Teardown {
        /// The request's CSeq.
        cseq: u32,
    },
    /// An RTP packet the player sent on the audio back channel's interleaved RTP channel,
    /// with a payload type the camera offered ([`ServerConn::offer_backchannel`]).
    Backchannel(BackchannelPacket),
    /// An interleaved frame from the player (normally RTCP receiver reports).
    Interleaved {
        /// The channel.
        channel: u8,
        /// The packet.
        payload: Vec<u8>,
    },
    /// The connection is over: stop media, drain [`ServerConn::poll_transmit`], close.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// The option tag of the ONVIF audio back channel (ONVIF Streaming Specification 5.3), sent
/// by the player in `Require:` with DESCRIBE.
pub const BACKCHANNEL_TAG: &str = "www.onvif.org/ver20/backchannel";

/// One RTP packet of the back channel, checked: it parsed, its payload type was offered and
/// its payload is not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelPacket {
    /// The back channel's track number.
    pub track: usize,
    /// The interleaved channel it came on.
    pub channel: u8,
    /// Its RTP payload type (one of those offered).
    pub payload_type: u8,
    /// Its sequence number extended to 64 bits (RFC 3550 A.1): later packets have larger
    /// numbers; a late or repeated packet has one not above those before it.
    pub seq: u64,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// The payload (without padding).
    pub payload: Vec<u8>,
}

/// What the back channel dropped, and what it passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackchannelStats {
    /// Packets passed on as [`ServerEvent::Backchannel`].
    pub received: u64,
    /// Packets dropped for a payload type that was not offered.
    pub wrong_payload_type: u64,
    /// Packets dropped because they are not RTP (or carry no payload).
    pub malformed: u64,
    /// Packets dropped for being larger than [`ServerConfig::max_backchannel_packet`].
    pub oversized: u64,
}

#[derive(Debug)]
struct Backchannel {
    track: usize,
    payload_types: Vec<u8>,
    last_seq: Option<u64>,
    stats: BackchannelStats,
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Nothing from the player within the session timeout.
    Timeout,
    /// The player sent bytes that are not RTSP (answered 400, 413, 414 or 431).
    BadInput(ParseError),
    /// The player sent more than [`ServerConfig::max_buffered`] while a request awaited the
    /// application.
    Overflow,
    /// The player closed the connection ([`ServerConn::handle_peer_closed`]).
    PeerClosed,
    /// The application called [`ServerConn::close`].
    Local,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("session timed out"),
            Self::BadInput(e) => write!(f, "bad input: {e}"),
            Self::Overflow => f.write_str("too much input while awaiting the application"),
            Self::PeerClosed => f.write_str("player closed the connection"),
            Self::Local => f.write_str("closed by the application"),
        }
    }
}

/// A call the connection cannot honour: a mistake by the application, not the player.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// No request with this CSeq awaits an answer.
    #[error("no request with CSeq {0} awaits an answer")]
    NotPending(u32),
    /// The pending request is of another kind.
    #[error("CSeq {cseq} is a {pending} request, not {called}")]
    WrongRequest {
        /// The CSeq.
        cseq: u32,
        /// What is pending.
        pending: &'static str,
        /// What the call answers.
        called: &'static str,
    },
    /// `accept_setup` names another track than the SETUP asked for.
    #[error("SETUP {cseq} is for track {requested}, not {given}")]
    WrongTrack {
        /// The CSeq.
        cseq: u32,
        /// The track in the request.
        requested: usize,
        /// The track given.
        given: usize,
    },
    /// `accept_setup` chose interleaved channels another track of the session already uses
    /// (both streams would be mixed on one channel); the SETUP was answered 461.
    #[error("SETUP {cseq}: interleaved channel {channel} is taken by track {other}")]
    ChannelInUse {
        /// The CSeq.
        cseq: u32,
        /// The channel chosen twice.
        channel: u8,
        /// The track that has it.
        other: usize,
    },
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

/// Where the session stands (RFC 2326 A.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// No session (none yet, or torn down).
    Init,
    /// Set up, not playing.
    Ready,
    /// Playing.
    Playing,
}

/// The methods answered in `Public`.
pub const PUBLIC_METHODS: [Method; 7] = [
    Method::Options,
    Method::Describe,
    Method::Setup,
    Method::Play,
    Method::Pause,
    Method::Teardown,
    Method::GetParameter,
];

/// One RTSP connection, camera side.
#[derive(Debug)]
pub struct ServerConn {
    config: ServerConfig,
    session_id: String,
    now: Instant,
    deadline: Instant,
    buf: Vec<u8>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ServerEvent>,
    pending: Option<Pending>,
    session: Option<Session>,
    session_used: bool,
    closed: bool,
    backchannel: Option<Backchannel>,
}

#[derive(Debug)]
struct Pending {
    cseq: u32,
    kind: PendingKind,
}

#[derive(Debug)]
enum PendingKind {
    Describe,
    Setup { track: usize, uri: String },
    Play,
}

impl PendingKind {
    fn name(&self) -> &'static str {
        match self {
            Self::Describe => "DESCRIBE",
            Self::Setup { .. } => "SETUP",
            Self::Play { .. } => "PLAY",
        }
    }
}

#[derive(Debug)]
struct Session {
    playing: bool,
    tracks: BTreeMap<usize, (String, Transport)>,
}

impl Session {
    /// Another track (not `track`) whose interleaved channels meet `pair`: that track and
    /// the shared channel.
    fn channel_taken(&self, track: usize, pair: ChannelPair) -> Option<(usize, u8)> {
        let wanted = [Some(pair.rtp), pair.rtcp];
        self.tracks
            .iter()
            .filter(|(t, _)| **t != track)
            .find_map(|(t, (_, tr))| {
                let used = tr.interleaved?;
                wanted
                    .into_iter()
                    .flatten()
                    .find(|c| used.contains(*c))
                    .map(|c| (*t, c))
            })
    }
}

/// The interleaved channels for `track` when the player left them to the server: `2 * track`
/// and the next one, or the lowest even pair no other track of the session uses.
fn free_pair(session: Option<&Session>, track: usize) -> ChannelPair {
    let pair = |rtp: u8| ChannelPair {
        rtp,
        rtcp: Some(rtp.wrapping_add(1)),
    };
    let preferred = pair(u8::try_from(track * 2).unwrap_or(0));
    let Some(session) = session else {
        return preferred;
    };
    std::iter::once(preferred)
        .chain((0..=127u8).map(|n| pair(n * 2)))
        .find(|p| session.channel_taken(track, *p).is_none())
        .unwrap_or(preferred)
}

/// Whether an offered transport can be served at all: UDP needs real client ports (port 0 is
/// "any port" to a socket API, never a destination).
fn usable_offer(t: &Transport) -> bool {
    if t.is_tcp() || t.multicast == Some(true) {
        return true;
    }
    t.client_port
        .is_some_and(|p| p.rtp != 0 && p.rtcp != Some(0))
}

impl ServerConn {
    /// A fresh connection. `session_id_random` must come from a CSPRNG: it becomes the
    /// session id, which is all that names the session.
    pub fn new(config: ServerConfig, now: Instant, session_id_random: [u8; 16]) -> Self {
        let session_id = session_id_random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let deadline = now + config.session_timeout;
        Self {
            config,
            session_id,
            now,
            deadline,
            buf: Vec::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            pending: None,
            session: None,
            session_used: false,
            closed: false,
            backchannel: None,
        }
    }

    /// Feeds bytes read from the connection.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.now = self.now.max(now);
        self.buf.extend_from_slice(bytes);
        self.process();
    }

    /// Call when [`Self::poll_timeout`] is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if !self.closed && self.now >= self.deadline {
            self.close_with(CloseReason::Timeout);
        }
    }

    /// The player closed its end (EOF on read).
    pub fn handle_peer_closed(&mut self) {
        self.close_with(CloseReason::PeerClosed);
    }

    /// Closes the connection from this side (e.g. the viewer's authorization was revoked).
    pub fn close(&mut self) {
        self.close_with(CloseReason::Local);
    }

    /// Counts as activity from the player, e.g. RTCP received over UDP.
    pub fn touch(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if !self.closed {
            self.deadline = self.now + self.config.session_timeout;
        }
    }

    /// The next bytes to write to the connection.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When to call [`Self::handle_timeout`]; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then_some(self.deadline)
    }

    /// Whether the connection is over (close it once transmits are drained).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The session's state.
    pub fn state(&self) -> SessionState {
        match &self.session {
            None => SessionState::Init,
            Some(s) if s.playing => SessionState::Playing,
            Some(_) => SessionState::Ready,
        }
    }

    /// The session id, while a session exists.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|_| self.session_id.as_str())
    }

    /// The set-up tracks and their transports, by track number.
    pub fn tracks(&self) -> impl Iterator<Item = (usize, &Transport)> {
        self.session
            .iter()
            .flat_map(|s| s.tracks.iter().map(|(t, (_, tr))| (*t, tr)))
    }

    /// Makes `track` the audio back channel, taking RTP with these payload types: call it
    /// before answering a DESCRIBE that asked for it with an SDP that offers it. Once the
    /// track is set up over interleaved TCP, RTP on its channel comes as
    /// [`ServerEvent::Backchannel`]; wrong payload types, oversized and malformed packets are
    /// dropped and counted ([`Self::backchannel_stats`]) and the stream goes on.
    pub fn offer_backchannel(&mut self, track: usize, payload_types: &[u8]) {
        self.backchannel = Some(Backchannel {
            track,
            payload_types: payload_types.to_vec(),
            last_seq: None,
            stats: BackchannelStats::default(),
        });
    }

    /// The back channel's counters, once offered.
    pub fn backchannel_stats(&self) -> Option<BackchannelStats> {
        self.backchannel.as_ref().map(|b| b.stats)
    }

    /// Refuses the pending request with 551 Option not supported, naming the option tags of
    /// its `Require` header the camera cannot honour in `Unsupported` (RFC 2326 12.32), e.g.
    /// [`BACKCHANNEL_TAG`] from a viewer that may not talk.
    pub fn reject_unsupported(&mut self, cseq: u32, tags: &[&str]) -> Result<(), ServerError> {
        self.take_pending(cseq, "any", |_| true)?;
        let r = self
            .response(StatusCode::OPTION_NOT_SUPPORTED, Some(cseq))
            .with_header("Unsupported", tags.join(", "));
        self.send(&r);
        self.process();
        Ok(())
    }

    /// Answers a pending DESCRIBE with `sdp` (`application/sdp`). `content_base` becomes the
    /// `Content-Base` header; give it a trailing `/` (e.g. `rtsp://cam/live/pc-1/`) so every
    /// player resolves `trackID=N` under it. Without it players resolve against the request
    /// URI.
    pub fn respond_describe(
        &mut self,
        cseq: u32,
        sdp: String,
        content_base: Option<String>,
    ) -> Result<(), ServerError> {
        self.take_pending(cseq, "DESCRIBE", |k| matches!(k, PendingKind::Describe))?;
        let mut r = self.response(StatusCode::OK, Some(cseq));
        if let Some(base) = content_base {
            r.headers.append("Content-Base", base);
        }
        let r = r.with_body("application/sdp", sdp.into_bytes());
        self.send(&r);
        self.process();
        Ok(())
    }

    /// Accepts a pending SETUP with the transport chosen from the offer (answer with the
    /// player's parameters plus `server_port` or `interleaved`, and `ssrc`). Creates the
    /// session on the first SETUP; a repeated SETUP of a track replaces its transport.
    pub fn accept_setup(
        &mut self,
        cseq: u32,
        track: usize,
        transport: Transport,
    ) -> Result<(), ServerError> {
        if let Some(Pending {
            cseq: c,
            kind: PendingKind::Setup {
                track: requested, ..
            },
        }) = &self.pending
            && *c == cseq
            && *requested != track
        {
            return Err(ServerError::WrongTrack {
                cseq,
                requested: *requested,
                given: track,
            });
        }
        if let (Some(pair), Some(session)) = (transport.interleaved, &self.session)
            && let Some((other, channel)) = session.channel_taken(track, pair)
        {
            // Never mix two streams on one channel: the player is told 461 and may set the
            // track up again on other channels.
            self.take_pending(cseq, "SETUP", |k| matches!(k, PendingKind::Setup { .. }))?;
            self.answer(cseq, StatusCode::UNSUPPORTED_TRANSPORT);
            self.process();
            return Err(ServerError::ChannelInUse {
                cseq,
                channel,
                other,
            });
        }
        let PendingKind::Setup { uri, .. } =
            self.take_pending(cseq, "SETUP", |k| matches!(k, PendingKind::Setup { .. }))?
        else {
            return Err(ServerError::NotPending(cseq));
        };
        self.session_used = true;
        let session = self.session.get_or_insert_with(|| Session {
            playing: false,
            tracks: BTreeMap::new(),
        });
        let header = transport.to_string();
        session.tracks.insert(track, (uri, transport));
        let r = self
            .response(StatusCode::OK, Some(cseq))
            .with_header("Transport", header)
            .with_header("Session", self.session_header());
        self.send(&r);
        self.process();
        Ok(())
    }

    /// Accepts a pending PLAY of a live stream: the session is playing and the answer's
    /// `Range` is `npt=now-` (the live edge, RFC 2326 3.6). `rtp_info` gives, per set-up
    /// track, the sequence number and RTP timestamp of the first packet to be sent; it becomes
    /// the `RTP-Info` header (entries for unknown tracks are skipped).
    pub fn accept_play(
        &mut self,
        cseq: u32,
        rtp_info: &[(usize, u16, u32)],
    ) -> Result<(), ServerError> {
        self.answer_play(cseq, rtp_info, "npt=now-", None)
    }

    fn answer_play(
        &mut self,
        cseq: u32,
        rtp_info: &[(usize, u16, u32)],
        range: &str,
        scale: Option<&str>,
    ) -> Result<(), ServerError> {
        let PendingKind::Play =
            self.take_pending(cseq, "PLAY", |k| matches!(k, PendingKind::Play))?
        else {
            return Err(ServerError::NotPending(cseq));
        };
        let mut r = self
            .response(StatusCode::OK, Some(cseq))
            .with_header("Session", self.session_header());
        if let Some(session) = &mut self.session {
            session.playing = true;
            let infos: Vec<RtpInfo> = rtp_info
                .iter()
                .filter_map(|&(track, seq, rtptime)| {
                    let (url, _) = session.tracks.get(&track)?;
                    Some(RtpInfo {
                        url: url.clone(),
                        seq: Some(seq),
                        rtptime: Some(rtptime),
                    })
                })
                .collect();
            r.headers.append("Range", range);
            if let Some(s) = scale {
                r.headers.append("Scale", s);
            }
            if !infos.is_empty() {
                r.headers.append("RTP-Info", RtpInfo::format_list(&infos));
            }
        }
        self.send(&r);
        self.process();
        Ok(())
    }

    /// As [`accept_play`](Self::accept_play), for recordings: `range` replaces the `Range`
    /// of the answer (e.g. the `clock=` position playback starts from) and `scale` is
    /// echoed as the `Scale` header (RFC 2326 12.34).
    pub fn accept_play_at(
        &mut self,
        cseq: u32,
        rtp_info: &[(usize, u16, u32)],
        range: &str,
        scale: Option<&str>,
    ) -> Result<(), ServerError> {
        self.answer_play(cseq, rtp_info, range, scale)
    }

    /// Refuses the pending request with `status` (e.g. 401, 403, 404, 461, 503); an empty
    /// `reason` means the canonical phrase. Nothing else changes.
    pub fn reject(
        &mut self,
        cseq: u32,
        status: StatusCode,
        reason: &str,
    ) -> Result<(), ServerError> {
        self.take_pending(cseq, "any", |_| true)?;
        let mut r = self.response(status, Some(cseq));
        if !reason.is_empty() {
            reason.clone_into(&mut r.reason);
        }
        if matches!(self.state(), SessionState::Ready | SessionState::Playing) {
            r.headers.append("Session", self.session_header());
        }
        self.send(&r);
        self.process();
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // Internals

    fn take_pending(
        &mut self,
        cseq: u32,
        called: &'static str,
        is: impl Fn(&PendingKind) -> bool,
    ) -> Result<PendingKind, ServerError> {
        if self.closed {
            return Err(ServerError::Closed);
        }
        match &self.pending {
            Some(p) if p.cseq == cseq && is(&p.kind) => {}
            Some(p) if p.cseq == cseq => {
                return Err(ServerError::WrongRequest {
                    cseq,
                    pending: p.kind.name(),
                    called,
                });
            }
            _ => return Err(ServerError::NotPending(cseq)),
        }
        self.pending
            .take()
            .map(|p| p.kind)
            .ok_or(ServerError::NotPending(cseq))
    }

    fn close_with(&mut self, reason: CloseReason) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.pending = None;
        self.session = None;
        self.buf = Vec::new();
        self.events.push_back(ServerEvent::Closed { reason });
    }

    /// Parses and handles buffered input until it runs out or a request awaits the
    /// application.
    fn process(&mut self) {
        let mut used = 0;
        while !self.closed && self.pending.is_none() {
            match parse_with(&self.buf[used..], &self.config.limits) {
                Ok(Some((item, n))) => {
                    used += n;
                    self.deadline = self.now + self.config.session_timeout;
                    match item {
                        Parsed::Request(req) => self.handle_request(req),
                        Parsed::Interleaved(f) => self.on_interleaved(f.channel, f.payload),
                        // The camera sends no requests, so a response answers nothing.
                        Parsed::Response(_) => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let status = match &e {
                        ParseError::TooLarge {
                            limit: Limit::Body, ..
                        } => StatusCode::REQUEST_ENTITY_TOO_LARGE,
                        ParseError::TooLarge {
                            limit: Limit::Uri, ..
                        } => StatusCode::REQUEST_URI_TOO_LARGE,
                        ParseError::TooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        _ => StatusCode::BAD_REQUEST,
                    };
                    let r = self.response(status, None);
                    self.send(&r);
                    self.close_with(CloseReason::BadInput(e));
                }
            }
        }
        if !self.closed {
            self.buf.drain(..used);
            if self.pending.is_some() && self.buf.len() > self.config.max_buffered {
                self.close_with(CloseReason::Overflow);
            }
        }
    }

    fn handle_request(&mut self, req: Request) {
        let Ok(Some(cseq)) = req.headers.cseq() else {
            let r = self.response(StatusCode::BAD_REQUEST, None);
            return self.send(&r);
        };
        if req.version.major != 1 {
            return self.answer(cseq, StatusCode::VERSION_NOT_SUPPORTED);
        }
        match req.method {
            Method::Options => {
                let r = self
                    .response(StatusCode::OK, Some(cseq))
                    .with_header("Public", format_methods(&PUBLIC_METHODS));
                self.send(&r);
            }
            Method::Describe => self.on_describe(cseq, req),
            Method::Setup => self.on_setup(cseq, req),
            Method::Play => self.on_play(cseq, &req),
            Method::Pause => {
                if let Err(status) = self.check_session(&req, true) {
                    return self.answer(cseq, status);
                }
                if let Some(s) = &mut self.session {
                    s.playing = false;
                }
                self.answer(cseq, StatusCode::OK);
                self.events.push_back(ServerEvent::Pause { cseq });
            }
            Method::Teardown => {
                if let Err(status) = self.check_session(&req, true) {
                    return self.answer(cseq, status);
                }
                self.answer(cseq, StatusCode::OK);
                self.session = None;
                self.events.push_back(ServerEvent::Teardown { cseq });
            }
            Method::GetParameter | Method::SetParameter => {
                if let Err(status) = self.check_session(&req, false) {
                    return self.answer(cseq, status);
                }
                // Keep-alives carry no body; parameters themselves are not supported.
                let status = if req.body.iter().all(u8::is_ascii_whitespace) {
                    StatusCode::OK
                } else {
                    StatusCode::PARAMETER_NOT_UNDERSTOOD
                };
                self.answer(cseq, status);
            }
            _ => self.answer(cseq, StatusCode::NOT_IMPLEMENTED),
        }
    }

    /// A frame from the player: the back channel's RTP, checked, or anything else as is.
    fn on_interleaved(&mut self, channel: u8, payload: Vec<u8>) {
        let rtp_channel = self.backchannel.as_ref().and_then(|b| {
            let (_, t) = self.session.as_ref()?.tracks.get(&b.track)?;
            t.interleaved.map(|p| p.rtp)
        });
        let max = self.config.max_backchannel_packet;
        match (rtp_channel, &mut self.backchannel) {
            (Some(c), Some(bc)) if c == channel => {
                if let Some(p) = bc.check(channel, &payload, max) {
                    self.events.push_back(ServerEvent::Backchannel(p));
                }
            }
            _ => self
                .events
                .push_back(ServerEvent::Interleaved { channel, payload }),
        }
    }

    fn on_describe(&mut self, cseq: u32, req: Request) {
        if let Some(accept) = req.headers.accept()
            && !accept
                .iter()
                .any(|a| matches!(a.as_str(), "application/sdp" | "application/*" | "*/*"))
        {
            return self.answer(cseq, StatusCode::NOT_ACCEPTABLE);
        }
        // RFC 2326 12.32: options the camera does not know are refused; the back channel is
        // the application's to grant.
        let required: Vec<String> = req
            .headers
            .get_all("Require")
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let unknown: Vec<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|t| !t.eq_ignore_ascii_case(BACKCHANNEL_TAG))
            .collect();
        if !unknown.is_empty() {
            let r = self
                .response(StatusCode::OPTION_NOT_SUPPORTED, Some(cseq))
                .with_header("Unsupported", unknown.join(", "));
            return self.send(&r);
        }
        let backchannel = !required.is_empty();
        let parts = uri::split(&req.uri);
        let path = normalize(parts.path);
        let query = parts.query.map(str::to_owned);
        let token = find_token(parts.query, &req);
        self.pending = Some(Pending {
            cseq,
            kind: PendingKind::Describe,
        });
        self.events.push_back(ServerEvent::Describe {
            cseq,
            uri: req.uri,
            path,
            query,
            token,
            backchannel,
        });
    }

    fn on_setup(&mut self, cseq: u32, req: Request) {
        let Ok(Some(transports)) = req.headers.transport() else {
            return self.answer(cseq, StatusCode::UNSUPPORTED_TRANSPORT);
        };
        let (base, track) = uri::strip_track(&req.uri);
        let Some(track) = track.filter(|t| *t < self.config.max_tracks) else {
            return self.answer(cseq, StatusCode::NOT_FOUND);
        };
        match self.check_session(&req, false) {
            Err(status) => return self.answer(cseq, status),
            // A SETUP without Session asks for a new session: one per connection.
            Ok(false) if self.session.is_some() || self.session_used => {
                return self.answer(cseq, StatusCode::METHOD_NOT_VALID_IN_THIS_STATE);
            }
            Ok(_) => {}
        }
        if self.state() == SessionState::Playing {
            return self.answer(cseq, StatusCode::METHOD_NOT_VALID_IN_THIS_STATE);
        }
        // Offers the session cannot honour are dropped here, so the shell only ever picks a
        // usable one: UDP without real client ports, or interleaved channels another track
        // already uses (RFC 2326 12.39: 461 when nothing acceptable is left).
        // An interleaved offer that leaves the channels to the server gets a free pair here
        // (`2 * track` when free), so no shell can pick one another track uses.
        let transports: Vec<Transport> = transports
            .into_iter()
            .filter(usable_offer)
            .map(|mut t| {
                if t.interleaved.is_none() && t.lower == Some(LowerTransport::Tcp) {
                    t.interleaved = Some(free_pair(self.session.as_ref(), track));
                }
                t
            })
            .filter(|t| match (t.interleaved, &self.session) {
                (Some(pair), Some(session)) => session.channel_taken(track, pair).is_none(),
                _ => true,
            })
            .collect();
        if transports.is_empty() {
            return self.answer(cseq, StatusCode::UNSUPPORTED_TRANSPORT);
        }
        let parts = uri::split(&base);
        let path = normalize(parts.path);
        let token = find_token(parts.query, &req);
        self.pending = Some(Pending {
            cseq,
            kind: PendingKind::Setup {
                track,
                uri: req.uri.clone(),
            },
        });
        self.events.push_back(ServerEvent::Setup {
            cseq,
            uri: req.uri,
            path,
            token,
            track,
            transports,
        });
    }

    fn on_play(&mut self, cseq: u32, req: &Request) {
        if let Err(status) = self.check_session(req, true) {
            return self.answer(cseq, status);
        }
        let Ok(range) = req.headers.range() else {
            return self.answer(cseq, StatusCode::INVALID_RANGE);
        };
        self.pending = Some(Pending {
            cseq,
            kind: PendingKind::Play,
        });
        let scale = req
            .headers
            .get("Scale")
            .or_else(|| req.headers.get("Speed"))
            .map(|s| s.trim().chars().take(32).collect());
        let frame_step = req
            .headers
            .get("X-Frame-Step")
            .map(|s| s.trim().chars().take(8).collect());
        self.events.push_back(ServerEvent::Play {
            cseq,
            range,
            scale,
            frame_step,
        });
    }

    /// `Ok(true)` when the request names our session, `Ok(false)` when it names none and
    /// `need` is false; otherwise the status to refuse it with.
    fn check_session(&self, req: &Request, need: bool) -> Result<bool, StatusCode> {
        match (req.headers.session(), &self.session) {
            (Ok(Some(h)), Some(_)) if h.id == self.session_id => Ok(true),
            (Ok(Some(_)) | Err(_), _) => Err(StatusCode::SESSION_NOT_FOUND),
            (Ok(None), _) if !need => Ok(false),
            (Ok(None), Some(_)) => Err(StatusCode::SESSION_NOT_FOUND),
            (Ok(None), None) => Err(StatusCode::METHOD_NOT_VALID_IN_THIS_STATE),
        }
    }

    fn session_header(&self) -> String {
        let timeout = u32::try_from(self.config.session_timeout.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        SessionHeader {
            id: self.session_id.clone(),
            timeout: Some(timeout),
        }
        .to_string()
    }

    fn response(&self, status: StatusCode, cseq: Option<u32>) -> Response {
        let mut r = Response::new(status);
        if let Some(c) = cseq {
            r.headers.append("CSeq", c.to_string());
        }
        if let Some(name) = &self.config.server_name {
            r.headers.append("Server", name.clone());
        }
        r
    }

    /// A bodiless answer, naming the session when the connection has one.
    fn answer(&mut self, cseq: u32, status: StatusCode) {
        let mut r = self.response(status, Some(cseq));
        if self.session.is_some() && status != StatusCode::SESSION_NOT_FOUND {
            r.headers.append("Session", self.session_header());
        }
        self.send(&r);
    }

    fn send(&mut self, r: &Response) {
        self.out.push_back(r.serialize());
    }
}

impl Backchannel {
    /// The packet if it passes, else counted as dropped.
    fn check(&mut self, channel: u8, bytes: &[u8], max: usize) -> Option<BackchannelPacket> {
        if bytes.len() > max {
            self.stats.oversized += 1;
            return None;
        }
        let Ok(p) = peercam_rtp::packet::RtpPacket::parse(bytes) else {
            self.stats.malformed += 1;
            return None;
        };
        if p.payload().is_empty() {
            self.stats.malformed += 1;
            return None;
        }
        if !self.payload_types.contains(&p.payload_type()) {
            self.stats.wrong_payload_type += 1;
            return None;
        }
        let seq = extend_seq(self.last_seq, p.sequence());
        self.last_seq = Some(self.last_seq.map_or(seq, |l| l.max(seq)));
        self.stats.received += 1;
        Some(BackchannelPacket {
            track: self.track,
            channel,
            payload_type: p.payload_type(),
            seq,
            timestamp: p.timestamp(),
            payload: p.payload().to_vec(),
        })
    }
}

/// A 16-bit RTP sequence number extended next to the highest one so far (RFC 3550 A.1): the
/// nearest 64-bit value with these low 16 bits.
fn extend_seq(highest: Option<u64>, seq: u16) -> u64 {
    const CYCLE: u64 = 1 << 16;
    let Some(h) = highest else {
        // Room below for late packets of the first cycle.
        return CYCLE + u64::from(seq);
    };
    let base = h & !(CYCLE - 1);
    let candidates = [base.saturating_sub(CYCLE), base, base + CYCLE];
    candidates
        .into_iter()
        .map(|b| b + u64::from(seq))
        .min_by_key(|c| c.abs_diff(h))
        .unwrap_or_else(|| base + u64::from(seq))
}

fn normalize(path: &str) -> String {
    let p = path.trim_end_matches('/');
    if p.is_empty() {
        "/".into()
    } else {
        p.to_owned()
    }
}

fn find_token(query: Option<&str>, req: &Request) -> Option<String> {
    query
        .and_then(|q| uri::query_param(q, "token"))
        .filter(|t| !t.is_empty())
        .or_else(|| {
            req.headers
                .get_all("Authorization")
                .find_map(bearer_token)
                .map(str::to_owned)
        })
}

#[cfg(test)]
mod tests;
