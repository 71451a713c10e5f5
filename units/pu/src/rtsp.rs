//! The camera's RTSP server (Pc / Pc'): the IO shell around `peercam_rtsp::server::ServerConn`.
//!
//! A viewer's request is answered only after the platform vouched for its token (H.626.4 8.4
//! steps 5-8). Media goes out as RTP over the RTSP connection (interleaved, required by
//! 6.3.1) or over UDP, with RTCP sender reports that tie RTP time to the wall clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peercam_base::{DeviceId, Scope};
use peercam_net::Shutdown;
use peercam_net::accept::{AcceptConfig, Accepted, Incoming};
use peercam_net::rtsp::serve::{self, Describe, Handler, Io, Play, ServeError, Setup};
use peercam_rtp::aac::AacPacketizer;
use peercam_rtp::session::{RtpSender, SenderConfig};
use peercam_rtsp::msg::{PortPair, StatusCode};
use peercam_signal::play::{AudioCodec, PlayGrant, PlayVerdict};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::agent::{PlatformRequest, Revocation};
use crate::media::audio::{
    AacPacket, AacSubscription, AudioPacket, AudioSubscription, payload_type,
};
use crate::media::{AccessUnit, MediaHub, Profile, Subscription};

/// The back channel's track (`trackID=2`).
const BACKCHANNEL_TRACK: usize = peercam_rtsp::sdp::BACKCHANNEL_TRACK;
const AAC_TRACK: usize = peercam_rtsp::sdp::AAC_TRACK;
const AAC_PAYLOAD_TYPE: u8 = peercam_rtsp::sdp::AAC_PAYLOAD_TYPE;
/// What the back channel takes, preferred first (ONVIF Profile T: G.711 at least).
const BACKCHANNEL_CODECS: [AudioCodec; 2] = [AudioCodec::Pcmu, AudioCodec::Pcma];

pub(crate) struct ServerSettings {
    /// Playback and export of the SD card (8.7.3), on the same port.
    pub(crate) recordings: Option<Arc<peercam_recorder::serve::Media>>,
    pub(crate) device_id: DeviceId,
    pub(crate) max_fps: u8,
    pub(crate) max_sessions: usize,
    pub(crate) hub: Arc<MediaHub>,
    pub(crate) control: Arc<crate::control::Control>,
    pub(crate) platform: mpsc::Sender<PlatformRequest>,
    pub(crate) revocations: broadcast::Sender<Revocation>,
    /// The address WebRTC sessions bind to: the one the camera reports for its LAN.
    pub(crate) webrtc_ip: std::net::IpAddr,
    /// The camera's speaker, if it has one (talk, 6.1.8).
    pub(crate) intercom: Option<Arc<crate::speaker::Intercom>>,
    /// Mute the camera's audio toward a viewer while it talks.
    pub(crate) talk_half_duplex: bool,
}

impl ServerSettings {
    /// H.626.4 8.4 steps 5-8: the platform judges a viewer's token (`None`: no answer).
    pub(crate) async fn judge(&self, token: String, client: String) -> Option<PlayVerdict> {
        let (reply, rx) = oneshot::channel();
        let req = PlatformRequest::AuthorizePlay {
            token,
            client,
            reply,
        };
        if self.platform.send(req).await.is_err() {
            return None;
        }
        tokio::time::timeout(Duration::from_secs(8), rx)
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Clause 7 within the camera's own limits (H.626.4 8.9.1 video parameters): what a
    /// granted viewer gets.
    pub(crate) fn viewer_caps(&self, grant: &PlayGrant) -> (peercam_signal::play::Caps, Profile) {
        let params = self.control.params();
        let (max_w, max_h) = params.video.max_resolution.size();
        let mut caps = grant.caps;
        caps.max_width = caps.max_width.min(max_w);
        caps.max_height = caps.max_height.min(max_h);
        caps.max_kbps = caps.max_kbps.min(params.video.max_kbps);
        if !params.audio.enabled {
            caps.audio = None;
        }
        let profile = Profile::for_caps(&caps, self.max_fps.min(params.video.max_fps));
        (caps, profile)
    }
}

#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) settings: Arc<ServerSettings>,
    pub(crate) sessions: Arc<AtomicUsize>,
    /// Live views that take trickled candidates (issue 20).
    pub(crate) trickles: crate::webrtc::Trickles,
}

impl Server {
    pub(crate) fn new(settings: ServerSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            sessions: Arc::new(AtomicUsize::new(0)),
            trickles: crate::webrtc::Trickles::default(),
        }
    }

    pub(crate) async fn serve(self, listener: TcpListener, shutdown: Shutdown) {
        // Sessions are limited below (relayed and punched ones count too), with a 503.
        let config = AcceptConfig::new("RTSP");
        let mut incoming = Incoming::new(listener, config, shutdown.clone());
        while let Some(Accepted { tcp, peer, .. }) = incoming.next().await {
            let settings = self.settings.clone();
            let sessions = self.sessions.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                // Recordings (`/rec/…` RTSP, `GET /export/…`) go to the SD card's server.
                if let Some(rec) = &settings.recordings
                    && wants_recordings(&tcp).await
                {
                    if let Err(e) = rec.connection(tcp, peer, shutdown).await {
                        tracing::debug!(%peer, error = %e, "recording connection ended");
                    }
                    return;
                }
                let n = sessions.fetch_add(1, Ordering::AcqRel);
                let r = if n >= settings.max_sessions {
                    refuse_busy(tcp).await.map_err(ServeError::Io)
                } else {
                    match tcp.local_addr() {
                        Ok(local) => {
                            Connection::new(settings, peer, Some(local))
                                .run(tcp, shutdown)
                                .await
                        }
                        Err(e) => Err(ServeError::Io(e)),
                    }
                };
                sessions.fetch_sub(1, Ordering::AcqRel);
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "RTSP connection ended");
                }
            });
        }
    }
}

impl Server {
    /// Mp / Pd: opens the outbound media channel to an MTU at `tunnel` (TLS, the MTU's
    /// certificate checked against the platform CA for `server_name`), presents `ticket`,
    /// and serves one RTSP viewer, the MTU, over it (its token is judged as in 8.4).
    /// Returns once the channel is open; the session runs in the background.
    pub(crate) async fn relay(
        &self,
        tunnel: &str,
        server_name: &str,
        ticket: &str,
        tls: Arc<peercam_net::rustls::ClientConfig>,
        shutdown: Shutdown,
    ) -> Result<(), PathError> {
        let (stream, peer) = peercam_net::tunnel::dial(tunnel, server_name, ticket, tls).await?;
        let n = self.sessions.fetch_add(1, Ordering::AcqRel);
        if n >= self.settings.max_sessions {
            self.sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(PathError::Busy);
        }
        let (settings, sessions) = (self.settings.clone(), self.sessions.clone());
        tokio::spawn(async move {
            tracing::info!(%peer, "relay channel to the MTU open");
            let r = Connection::new(settings, peer, None)
                .run(stream, shutdown)
                .await;
            sessions.fetch_sub(1, Ordering::AcqRel);
            tracing::info!(%peer, result = ?r, "relay channel to the MTU closed");
        });
        Ok(())
    }
}

impl Server {
    /// H.626.4 8.3 hole punching, camera side: gathers candidates (asking `stun` for the
    /// public address), returns the camera's description at once, and in the background
    /// runs ICE against the viewer's `offer`, accepts its QUIC connection (pinned to the
    /// offer's fingerprint) and serves RTSP over it; the RTSP request's token is judged as
    /// in 8.4.
    pub(crate) async fn punch(
        &self,
        offer: &peercam_signal::relay::PunchDescription,
        stun: Option<&str>,
        shutdown: Shutdown,
    ) -> Result<peercam_signal::relay::PunchDescription, PathError> {
        let (settings, sessions) = (self.settings.clone(), self.sessions.clone());
        let stop = {
            let sd = shutdown.clone();
            async move { sd.wait().await }
        };
        let answer = peercam_p2p::answer_punch(offer, stun, stop, move |stream| async move {
            let peer = stream.remote_addr();
            let n = sessions.fetch_add(1, Ordering::AcqRel);
            if n < settings.max_sessions {
                tracing::info!(%peer, "punched path open; serving RTSP over QUIC");
                let r = Connection::new(settings, peer, None)
                    .run(stream, shutdown)
                    .await;
                tracing::debug!(%peer, result = ?r, "punched session ended");
            }
            sessions.fetch_sub(1, Ordering::AcqRel);
        })
        .await?;
        Ok(answer)
    }
}

/// Why the camera could not open a media path the platform asked for (the MTU's relay
/// channel, Mp/Pd; a punched path, 8.3).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PathError {
    /// The channel to the MTU could not be opened.
    #[error(transparent)]
    Tunnel(#[from] peercam_net::tunnel::TunnelError),
    /// Every session the camera serves is taken.
    #[error("the camera serves as many sessions as it can")]
    Busy,
    /// Hole punching could not start.
    #[error(transparent)]
    Punch(#[from] peercam_p2p::Error),
}

/// Whether a new connection asks for recordings: its first request line names a `/rec/`
/// path or is an HTTP `GET`. Waits at most 5 s for that line.
async fn wants_recordings(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await else {
            return false;
        };
        let head = &buf[..n];
        if head.starts_with(b"GET ") || head.starts_with(b"HEAD ") {
            return true;
        }
        if let Some(end) = head.windows(2).position(|w| w == b"\r\n") {
            return head[..end].windows(5).any(|w| w == b"/rec/");
        }
        if n == 0 || n == buf.len() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn refuse_busy(mut tcp: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 2048];
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
    tcp.write_all(b"RTSP/1.0 503 Service Unavailable\r\nCSeq: 0\r\n\r\n")
        .await
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).unwrap_or_else(|_| rand::fill(&mut b[..]));
    b
}

/// How a track's packets leave.
enum Path {
    Interleaved {
        rtp: u8,
        rtcp: u8,
    },
    Udp {
        rtp: UdpSocket,
        rtcp: UdpSocket,
        to_rtp: SocketAddr,
        to_rtcp: SocketAddr,
    },
}

struct Track {
    path: Path,
    sender: RtpSender,
}

struct Connection {
    settings: Arc<ServerSettings>,
    peer: SocketAddr,
    grant: Option<PlayGrant>,
    /// The platform user this connection serves, for the revocation watcher.
    viewer: watch::Sender<Option<i64>>,
    sub: Option<Subscription>,
    audio: Option<AudioSubscription>,
    /// A pulled AAC camera's access units, offered as they came (track 3) to a viewer that
    /// takes audio (H.626.4 6.3.2).
    aac: Option<AacSubscription>,
    tracks: HashMap<usize, Track>,
    playing: bool,
    waiting_key: bool,
    /// The address UDP transport binds to; `None` where only interleaved is offered.
    local: Option<SocketAddr>,
    /// RTCP sender reports while playing.
    rtcp_tick: tokio::time::Interval,
    /// Scratch for one UDP packet.
    pkt: Vec<u8>,
    /// The last (media timestamp, capture time) sent per track, for sender reports.
    last_video: Option<(u32, u64)>,
    last_audio: Option<(u32, u64)>,
    last_aac: Option<(u32, u64)>,
    /// The ONVIF audio back channel (talk, 6.1.8): offered at DESCRIBE to a viewer whose
    /// grant holds `talk`, on a camera with a speaker.
    backchannel_offered: bool,
    /// The back channel once set up: the viewer's place at the camera's speaker.
    talker: Option<crate::speaker::Talker>,
}

impl Connection {
    fn new(settings: Arc<ServerSettings>, peer: SocketAddr, local: Option<SocketAddr>) -> Self {
        Self {
            settings,
            peer,
            grant: None,
            viewer: watch::Sender::new(None),
            sub: None,
            audio: None,
            aac: None,
            tracks: HashMap::new(),
            playing: false,
            waiting_key: true,
            local,
            rtcp_tick: tokio::time::interval(Duration::from_secs(2)),
            pkt: Vec::with_capacity(1500),
            last_video: None,
            last_audio: None,
            last_aac: None,
            backchannel_offered: false,
            talker: None,
        }
    }

    /// Serves one viewer on `io`: a TCP connection, or the MTU's relay channel (Pd), where
    /// `local` is `None` and only interleaved transport is offered.
    async fn run<S>(mut self, io: S, shutdown: Shutdown) -> Result<(), ServeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Revocations and shutdown are watched by a side task, so the per-frame loop polls
        // only this connection's own futures (no shared channel locks per frame).
        let (end_tx, end_rx) = oneshot::channel();
        tokio::spawn(watch_end(
            self.settings.revocations.subscribe(),
            shutdown,
            self.viewer.subscribe(),
            end_tx,
        ));
        let peer = self.peer;
        let stop = async move {
            match end_rx.await {
                Ok(End::Revoked) => {
                    // docs/security.md D5: access changed; this viewer's session ends now.
                    tracing::info!(%peer, "session revoked by the platform");
                    Err(ServeError::Revoked)
                }
                Ok(End::Shutdown) | Err(_) => Ok(()),
            }
        };
        serve::serve(io, &mut self, stop).await
    }

    /// PLAY (again): what was queued while not playing is stale. Start from the newest key
    /// access unit among it if it is fresh (the IDR made for this viewer at DESCRIBE, a
    /// round trip ago), so the first picture goes out with the PLAY answer; otherwise ask
    /// the encoder for an IDR and wait for it.
    fn start_playing(&mut self) -> Vec<Arc<AccessUnit>> {
        self.playing = true;
        self.waiting_key = true;
        if let Some(a) = self.audio.as_mut() {
            while !matches!(
                a.rx.try_recv(),
                Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
            ) {}
        }
        if let Some(a) = self.aac.as_mut() {
            while !matches!(
                a.rx.try_recv(),
                Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
            ) {}
        }
        let Some(sub) = self.sub.as_mut() else {
            return Vec::new();
        };
        let mut queued: Vec<Arc<AccessUnit>> = Vec::new();
        loop {
            match sub.rx.try_recv() {
                Ok(au) => {
                    if au.key {
                        queued.clear();
                    }
                    if au.key || !queued.is_empty() {
                        queued.push(au);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => queued.clear(),
                Err(_) => break,
            }
        }
        let fresh = queued.first().is_some_and(|k| {
            self.settings
                .hub
                .clock()
                .now_us()
                .saturating_sub(k.capture_unix_us)
                < FRESH_KEY_US
        });
        if fresh {
            self.waiting_key = false;
            return queued;
        }
        // A source that cannot make an IDR now (a pulled camera) keeps its current GOP: start
        // from its IDR, then what came after.
        let gop = sub.gop();
        if let Some(last) = gop.last().map(|a| a.frame) {
            self.waiting_key = false;
            let mut start = gop;
            start.extend(queued.into_iter().filter(|a| a.frame > last));
            return start;
        }
        sub.request_idr();
        Vec::new()
    }

    /// Appends the access unit's shared payloads with this session's RTP headers (interleaved),
    /// or sends them (UDP).
    async fn send_video(&mut self, au: &AccessUnit, out: &mut Vec<u8>) {
        let Some(track) = self.tracks.get_mut(&0) else {
            return;
        };
        let ts = au.rtp_timestamp();
        self.last_video = Some((ts, au.capture_unix_us));
        for p in &au.payloads {
            send_packet(track, &p.data, ts, p.marker, out, &mut self.pkt).await;
        }
    }

    async fn send_audio(&mut self, frame: &AudioPacket, out: &mut Vec<u8>) {
        let Some(track) = self.tracks.get_mut(&1) else {
            return;
        };
        self.last_audio = Some((frame.media_ts, frame.capture_unix_us));
        send_packet(
            track,
            &frame.payload,
            frame.media_ts,
            false,
            out,
            &mut self.pkt,
        )
        .await;
    }

    /// One AAC access unit of a pulled camera, repacketised (RFC 3640 AAC-hbr) with this
    /// session's sequence and timestamps, untranscoded.
    async fn send_aac(&mut self, p: &AacPacket, out: &mut Vec<u8>) {
        let Some(track) = self.tracks.get_mut(&AAC_TRACK) else {
            return;
        };
        self.last_aac = Some((p.media_ts, p.capture_unix_us));
        let frame = self.aac.as_ref().map_or(1024, |a| a.config.frame_length);
        // 1400 bytes of payload: what the video's packets hold too.
        let Ok(payloads) = AacPacketizer::default().packetize(&[&p.au], p.media_ts, frame) else {
            return;
        };
        for pl in payloads {
            send_packet(track, &pl.data, pl.timestamp, pl.marker, out, &mut self.pkt).await;
        }
    }

    /// RTCP sender reports (RFC 3550 6.4.1) tying each track's RTP time to the wall clock.
    async fn send_reports(&mut self, out: &mut Vec<u8>) {
        // H.626.4 7.2: sender reports carry the clock synchronised with the SCU.
        let now = self.settings.hub.clock().now_us();
        for (t, track) in &mut self.tracks {
            let (last, rate) = match *t {
                0 => (self.last_video, 90_000),
                AAC_TRACK => (
                    self.last_aac,
                    self.aac
                        .as_ref()
                        .map_or(8000, |a| u64::from(a.config.sample_rate)),
                ),
                _ => (self.last_audio, 8_000),
            };
            let Some((ts, at)) = last else { continue };
            let elapsed = now.saturating_sub(at) * rate / 1_000_000;
            let media_ts = ts.wrapping_add(u32::try_from(elapsed).unwrap_or(0));
            self.pkt.clear();
            if track
                .sender
                .write_rtcp(now, media_ts, b"peercam", &mut self.pkt)
                .is_err()
            {
                continue;
            }
            match &track.path {
                Path::Interleaved { rtcp, .. } => {
                    let _ = peercam_rtsp::write_interleaved(*rtcp, &self.pkt, out);
                }
                Path::Udp { rtcp, to_rtcp, .. } => {
                    let _ = rtcp.send_to(&self.pkt, to_rtcp).await;
                }
            }
        }
    }
}

/// What wakes a viewer's connection.
enum Wake {
    Video(Result<Arc<AccessUnit>, broadcast::error::RecvError>),
    Audio(Result<Arc<AudioPacket>, broadcast::error::RecvError>),
    Aac(Result<Arc<AacPacket>, broadcast::error::RecvError>),
    Reports,
}

impl Handler for Connection {
    type Wake = Wake;

    /// H.626.4 8.4 steps 4-9: the DESCRIBE is answered only with the platform's consent.
    async fn describe(&mut self, io: Io<'_>, req: Describe) {
        let Describe {
            cseq,
            uri,
            token,
            path,
            backchannel,
            ..
        } = req;
        let (conn, uri, path) = (io.conn, uri.as_str(), path.as_str());
        let expected = format!("/live/{}", self.settings.device_id);
        if path.trim_end_matches('/') != expected {
            let _ = conn.reject(cseq, StatusCode(404), "Not Found");
            return;
        }
        if self.grant.is_none() {
            let Some(token) = token else {
                let _ = conn.reject(cseq, StatusCode(401), "Unauthorized");
                return;
            };
            match self.settings.judge(token, self.peer.to_string()).await {
                Some(PlayVerdict::Granted { grant }) => {
                    // From now on a revocation for this user ends the connection.
                    self.viewer.send_replace(Some(grant.user));
                    self.grant = Some(grant);
                }
                Some(PlayVerdict::Refused { code, .. }) => {
                    tracing::info!(peer = %self.peer, %code, "play refused by the platform");
                    let (status, reason) = serve::refusal(&code);
                    let _ = conn.reject(cseq, status, reason);
                    return;
                }
                None => {
                    let _ = conn.reject(cseq, StatusCode(503), "Service Unavailable");
                    return;
                }
            }
        }
        let Some(grant) = self.grant.clone() else {
            return;
        };
        // 6.1.8: the back channel is offered only to a viewer granted `talk`, by a camera
        // that has a speaker; anyone else asking for it is told 551 and may DESCRIBE again
        // without it (video and the camera's audio as usual).
        if backchannel {
            let refusal = if !grant.scopes.contains(Scope::Talk) {
                Some("the viewer's grant does not hold the talk scope")
            } else if self.settings.intercom.is_none() {
                Some("this camera has no speaker (speaker_wav is not set)")
            } else {
                None
            };
            if let Some(why) = refusal {
                tracing::info!(peer = %self.peer, user = grant.user, "RTSP back channel refused: {why}");
                let _ = conn.reject_unsupported(cseq, &[peercam_rtsp::BACKCHANNEL_TAG]);
                return;
            }
            conn.offer_backchannel(
                BACKCHANNEL_TRACK,
                &BACKCHANNEL_CODECS.map(AudioCodec::payload_type),
            );
            self.backchannel_offered = true;
        }
        let (caps, profile) = self.settings.viewer_caps(&grant);
        let mut sub = match self.settings.hub.subscribe(profile) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the encoder");
                let _ = conn.reject(cseq, StatusCode(500), "Internal Server Error");
                return;
            }
        };
        let Some((sps, pps)) = sub.parameter_sets(Duration::from_secs(5)).await else {
            let _ = conn.reject(cseq, StatusCode(503), "Service Unavailable");
            return;
        };
        self.audio = match self.settings.hub.subscribe_audio(caps.audio) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the audio feed");
                None
            }
        };
        // H.626.4 6.3.2: a pulled AAC camera's audio is offered as it is (track 3, first)
        // beside the G.711 transcode (track 1) to a viewer that takes audio.
        self.aac = if self.audio.is_some() {
            self.settings.hub.subscribe_aac()
        } else {
            None
        };
        let back: &[AudioCodec] = if self.backchannel_offered {
            &BACKCHANNEL_CODECS
        } else {
            &[]
        };
        let sdp = sdp(
            &sps,
            &pps,
            profile,
            self.audio.as_ref().map(|a| a.codec),
            self.aac.as_ref().map(|a| &a.config),
            back,
        );
        self.sub = Some(sub);
        let _ = conn.respond_describe(cseq, sdp, Some(serve::content_base(uri)));
    }

    async fn setup(&mut self, io: Io<'_>, req: Setup) {
        let Setup {
            cseq,
            track,
            transports,
        } = req;
        let conn = io.conn;
        let local = self.local;
        if self.grant.is_none() || self.sub.is_none() {
            let _ = conn.reject(cseq, StatusCode(455), "Method Not Valid in This State");
            return;
        }
        if track == BACKCHANNEL_TRACK && self.backchannel_offered {
            // The viewer's RTP comes back on the RTSP connection: interleaved only.
            let Some(offer) = transports
                .into_iter()
                .find(|t| t.multicast != Some(true) && serve::is_interleaved(t))
            else {
                let _ = conn.reject(cseq, StatusCode(461), "Unsupported Transport");
                return;
            };
            let (answer, _, _) = serve::interleaved(offer, track);
            if conn.accept_setup(cseq, track, answer).is_ok()
                && let Some(ic) = &self.settings.intercom
            {
                self.talker = Some(crate::speaker::Talker::new(ic.clone()));
                tracing::info!(peer = %self.peer, "RTSP back channel set up: the viewer may talk");
            }
            return;
        }
        let aac = track == AAC_TRACK && self.aac.is_some();
        if !aac && (track > 1 || (track == 1 && self.audio.is_none())) {
            let _ = conn.reject(cseq, StatusCode(404), "Not Found");
            return;
        }
        // The first alternative we can serve: TCP interleaved (H.626.4 6.3.1) or unicast UDP.
        let Some(offer) = transports.into_iter().find(|t| {
            t.multicast != Some(true)
                && (serve::is_interleaved(t) || (t.client_port.is_some() && local.is_some()))
        }) else {
            let _ = conn.reject(cseq, StatusCode(461), "Unsupported Transport");
            return;
        };
        let ssrc = u32::from_be_bytes(random::<4>());
        let pt = if track == 0 {
            96
        } else if aac {
            AAC_PAYLOAD_TYPE
        } else {
            self.audio.as_ref().map_or(0, |a| payload_type(a.codec))
        };
        let Ok(sender) = RtpSender::new(SenderConfig {
            ssrc,
            payload_type: pt,
            initial_sequence: u16::from_be_bytes(random::<2>()),
            timestamp_offset: u32::from_be_bytes(random::<4>()),
        }) else {
            let _ = conn.reject(cseq, StatusCode(500), "Internal Server Error");
            return;
        };
        let mut chosen = offer.clone();
        chosen.ssrc = Some(ssrc);
        let path = if serve::is_interleaved(&offer) {
            let (answer, rtp, rtcp) = serve::interleaved(chosen, track);
            chosen = answer;
            Path::Interleaved { rtp, rtcp }
        } else {
            let (Some(cp), Some(local)) = (offer.client_port, local) else {
                return;
            };
            let Some((a, b)) = bind_pair(local.ip()).await else {
                let _ = conn.reject(cseq, StatusCode(500), "Internal Server Error");
                return;
            };
            let (pa, pb) = (
                a.local_addr().map(|x| x.port()).unwrap_or(0),
                b.local_addr().map(|x| x.port()).unwrap_or(0),
            );
            chosen.server_port = Some(PortPair {
                rtp: pa,
                rtcp: Some(pb),
            });
            let to_rtp = SocketAddr::new(self.peer.ip(), cp.rtp);
            let to_rtcp = SocketAddr::new(
                self.peer.ip(),
                cp.rtcp.unwrap_or_else(|| cp.rtp.wrapping_add(1)),
            );
            Path::Udp {
                rtp: a,
                rtcp: b,
                to_rtp,
                to_rtcp,
            }
        };
        self.tracks.insert(track, Track { path, sender });
        if let Err(e) = conn.accept_setup(cseq, track, chosen) {
            tracing::debug!(error = %e, "SETUP not accepted by the state machine");
            self.tracks.remove(&track);
        }
    }

    /// PLAY: answered with where each track starts, then the picture the viewer starts
    /// from.
    async fn play(&mut self, mut io: Io<'_>, req: Play) {
        let start = self.start_playing();
        let info: Vec<(usize, u16, u32)> = self
            .tracks
            .iter()
            .map(|(t, tr)| (*t, tr.sender.next_sequence(), tr.sender.rtp_timestamp(0)))
            .collect();
        let _ = io.conn.accept_play(req.cseq, &info);
        // The answer first, then the picture the viewer starts from.
        io.drain();
        for au in start {
            self.send_video(&au, io.out).await;
        }
    }

    fn pause(&mut self) {
        self.playing = false;
    }

    fn teardown(&mut self) {
        self.playing = false;
        // Talk ends with the session.
        self.talker = None;
    }

    /// The viewer's voice on the back channel, to the camera's speaker.
    fn backchannel(&mut self, p: peercam_rtsp::server::BackchannelPacket) {
        let codec = BACKCHANNEL_CODECS
            .into_iter()
            .find(|c| c.payload_type() == p.payload_type);
        if let (Some(t), Some(codec)) = (&mut self.talker, codec) {
            // RTSP has no way to tell the talker: the camera's log only.
            let _ = t.hear(codec, p.seq, &p.payload);
        }
    }

    async fn wait(&mut self) -> Wake {
        let video = self.playing && self.tracks.contains_key(&0);
        let audio = self.playing && self.tracks.contains_key(&1);
        let aac = self.playing && self.tracks.contains_key(&AAC_TRACK);
        let au_rx = async {
            match self.sub.as_mut() {
                Some(s) if video => s.rx.recv().await,
                _ => std::future::pending().await,
            }
        };
        let audio_rx = async {
            match self.audio.as_mut() {
                Some(a) if audio => a.rx.recv().await,
                _ => std::future::pending().await,
            }
        };
        let aac_rx = async {
            match self.aac.as_mut() {
                Some(a) if aac => a.rx.recv().await,
                _ => std::future::pending().await,
            }
        };
        let playing = self.playing;
        tokio::select! {
            au = au_rx => Wake::Video(au),
            frame = audio_rx => Wake::Audio(frame),
            unit = aac_rx => Wake::Aac(unit),
            _ = self.rtcp_tick.tick(), if playing => Wake::Reports,
        }
    }

    async fn wake(&mut self, io: Io<'_>, wake: Wake) -> Result<(), ServeError> {
        let out = io.out;
        match wake {
            Wake::Video(Ok(au)) => {
                if self.waiting_key && !au.key {
                    return Ok(());
                }
                self.waiting_key = false;
                self.send_video(&au, out).await;
            }
            Wake::Video(Err(broadcast::error::RecvError::Lagged(n))) => {
                // Too slow a viewer: skip to a fresh IDR instead of sending garbage.
                tracing::debug!(peer = %self.peer, skipped = n, "viewer lagged; resyncing on an IDR");
                self.waiting_key = true;
                if let Some(s) = &self.sub {
                    s.request_idr();
                }
            }
            Wake::Video(Err(broadcast::error::RecvError::Closed)) => {
                return Err(ServeError::SourceEnded("encoder stopped".into()));
            }
            Wake::Audio(Ok(frame)) => self.send_audio(&frame, out).await,
            Wake::Audio(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Wake::Audio(Err(broadcast::error::RecvError::Closed)) => self.audio = None,
            Wake::Aac(Ok(unit)) => self.send_aac(&unit, out).await,
            Wake::Aac(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Wake::Aac(Err(broadcast::error::RecvError::Closed)) => self.aac = None,
            Wake::Reports => self.send_reports(out).await,
        }
        Ok(())
    }
}

/// Why a connection must end now.
pub(crate) enum End {
    Revoked,
    Shutdown,
}

/// Ends a connection when the platform revokes its viewer's access (H.626.4 8.6, D5) or the
/// PU shuts down. `user` is the viewer once the platform vouched for it.
pub(crate) async fn watch_end(
    mut revocations: broadcast::Receiver<Revocation>,
    shutdown: Shutdown,
    mut user: watch::Receiver<Option<i64>>,
    mut end: oneshot::Sender<End>,
) {
    loop {
        tokio::select! {
            r = revocations.recv() => match r {
                Ok(revoked) => {
                    let viewer = *user.borrow();
                    if viewer.is_some_and(|v| revoked.is_none_or(|r| r == v)) {
                        let _ = end.send(End::Revoked);
                        return;
                    }
                }
                // Missed revocations: end to be safe rather than keep a revoked viewer.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if user.borrow().is_some() {
                        let _ = end.send(End::Revoked);
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = end.send(End::Shutdown);
                    return;
                }
            },
            r = user.changed() => if r.is_err() { return },
            () = shutdown.wait() => {
                let _ = end.send(End::Shutdown);
                return;
            }
            () = end.closed() => return,
        }
    }
}

/// How fresh a queued key frame must be to start a viewer from it.
const FRESH_KEY_US: u64 = 500_000;

/// One RTP packet: interleaved ones are framed straight into `out` (one copy of the payload,
/// one write per access unit), UDP ones go out one datagram each.
async fn send_packet(
    track: &mut Track,
    data: &[u8],
    ts: u32,
    marker: bool,
    out: &mut Vec<u8>,
    pkt: &mut Vec<u8>,
) {
    match &track.path {
        Path::Interleaved { rtp, .. } => {
            // RFC 2326 10.12: '$', channel, 16-bit length, then the RTP packet.
            let Ok(len) = u16::try_from(RTP_HEADER_LEN + data.len()) else {
                return;
            };
            let mark = out.len();
            out.extend_from_slice(&[b'$', *rtp]);
            out.extend_from_slice(&len.to_be_bytes());
            if track.sender.write_raw(data, ts, marker, out).is_err() {
                out.truncate(mark);
            }
        }
        Path::Udp { rtp, to_rtp, .. } => {
            pkt.clear();
            if track.sender.write_raw(data, ts, marker, pkt).is_ok() {
                let _ = rtp.send_to(pkt, to_rtp).await;
            }
        }
    }
}

/// The fixed RTP header the sender writes (no CSRC, no extension).
const RTP_HEADER_LEN: usize = 12;

/// Two UDP sockets on consecutive ports, the first even (RFC 3550 convention).
async fn bind_pair(ip: std::net::IpAddr) -> Option<(UdpSocket, UdpSocket)> {
    for _ in 0..20 {
        let a = UdpSocket::bind(SocketAddr::new(ip, 0)).await.ok()?;
        let port = a.local_addr().ok()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(b) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
            return Some((a, b));
        }
    }
    None
}

/// The SDP of a DESCRIBE answer: H.264 video (track 0), optionally a pulled camera's AAC
/// (track 3) and G.711/G.722 audio (track 1), and the back channel (track 2).
fn sdp(
    sps: &[u8],
    pps: &[u8],
    profile: Profile,
    audio: Option<AudioCodec>,
    aac: Option<&peercam_pull::AacConfig>,
    backchannel: &[AudioCodec],
) -> String {
    use peercam_rtsp::sdp::{CameraSdp, H264Video};
    CameraSdp {
        session_id: unix_us() / 1_000_000,
        session_version: 1,
        origin_address: String::new(),
        session_name: "peercam".into(),
        video: Some(H264Video {
            sps: sps.to_vec(),
            pps: pps.to_vec(),
            // A pulled camera's size comes from its SPS; its rate is not announced.
            framerate: (profile.fps > 0).then(|| f64::from(profile.fps)),
            dimensions: if profile.width > 0 {
                Some((u32::from(profile.width), u32::from(profile.height)))
            } else {
                peercam_media::sps::Sps::parse(sps)
                    .ok()
                    .map(|s| (s.width, s.height))
            },
        }),
        audio,
    }
    .build_with_aac(aac, backchannel)
}
