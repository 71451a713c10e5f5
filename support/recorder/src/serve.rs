//! Nc/Nc': recorded media straight from the recorder (NVR or camera) to the client
//! (H.626.4 8.7.2.2, 8.7.3).
//!
//! One TCP port serves two protocols, told apart by the first request line:
//!
//! * **RTSP playback** of `rtsp://NVR/rec/CAMERA?start=CLOCK&token=T` over TCP interleaved
//!   RTP. `PLAY` takes `Range: clock=…-` (or `npt=` from `start`) to seek, `Scale` for the
//!   speed (1/4 to 16, negative for reverse) and, while paused, `X-Frame-Step: 1|-1` to show
//!   one frame forward or back (re-encoded as an IDR when the player could not decode it). Fast and reverse modes send key frames only
//!   ([`peercam_record::trick`]). Timestamps follow the wall clock of the output, so any
//!   player shows the speed asked; each frame's recorded time is in its SEI tag and the
//!   `Range` of the PLAY answer. The recorded G.711 audio is track 1 of the description
//!   when the recording has audio; it is sent at normal speed forward only: fast, slow and
//!   reverse play and frame steps send no audio packets (the track stays set up and silent).
//! * **HTTP export** `GET /export/CAMERA.mp4?from=CLOCK&to=CLOCK&token=T`: an MP4 of the
//!   range, cut at key frames, with its length announced.
//!
//! Every request carries a one-time token the CMU minted for this recorder and camera; the
//! NVR has the platform judge it (8.4 steps 5-8) and serves only the camera it names (D3).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peercam_base::{DeviceId, Scope};
use peercam_net::Shutdown;
use peercam_net::accept::{self, AcceptConfig};
use peercam_net::agent::PlatformReq;
use peercam_net::rtsp::serve::{self, Describe, Handler, Io, Play, ServeError, Setup};
use peercam_record::time::{format_clock, parse_clock, parse_clock_range};
use peercam_record::trick::{self, FrameMeta, Scale, Selection};
use peercam_rtp::aac::AacPacketizer;
use peercam_rtp::h264::H264Packetizer;
use peercam_rtp::session::{RtpSender, SenderConfig};
use peercam_rtsp::msg::{NptTime, Range, StatusCode};
use peercam_rtsp::server::ServerConn;
use peercam_signal::play::{PlayGrant, PlayVerdict};
use peercam_store::{AacConfig, AudioChunk, AudioCodec, Frame, SegmentRow, StoreError, to_8k};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::AuthRequest;
use crate::source::SegmentSource;

/// Why a playback or export connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The client sent nothing in time.
    #[error("silent client")]
    Silent,
    /// The client's HTTP request head did not arrive in time.
    #[error("slow request")]
    SlowRequest,
    /// Reading, writing or the export file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The RTSP playback session ended.
    #[error(transparent)]
    Rtsp(#[from] ServeError),
}

/// The playback and export server of one recorder.
pub struct Media {
    pub(crate) source: Arc<dyn SegmentSource>,
    auth: mpsc::Sender<AuthRequest>,
    pub(crate) max_out_fps: u32,
}

/// RTP payload size for interleaved packets.
const MAX_PAYLOAD: usize = 1400;
/// Recorded audio goes out in packets of 20 ms of G.711.
pub(crate) const AUDIO_PACKET: usize = 160;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;

fn random<const N: usize>() -> [u8; N] {
    rand::random()
}

impl Media {
    /// A server over `source`; tokens are judged through `auth`. Fast modes send key frames
    /// only above `max_out_fps`.
    pub fn new(
        source: Arc<dyn SegmentSource>,
        auth: mpsc::Sender<AuthRequest>,
        max_out_fps: u32,
    ) -> Arc<Self> {
        Arc::new(Self {
            source,
            auth,
            max_out_fps: max_out_fps.max(1),
        })
    }

    /// A server over `source` whose tokens the device's platform link judges (H.626.4 8.4
    /// steps 5-8 applied to recordings).
    pub fn with_platform(
        source: Arc<dyn SegmentSource>,
        platform: mpsc::Sender<PlatformReq>,
        max_out_fps: u32,
    ) -> Arc<Self> {
        let (auth_tx, mut auth_rx) = mpsc::channel::<AuthRequest>(64);
        tokio::spawn(async move {
            while let Some(r) = auth_rx.recv().await {
                let req = PlatformReq::AuthorizePlay {
                    token: r.token,
                    client: r.client,
                    reply: r.reply,
                };
                if platform.send(req).await.is_err() {
                    return;
                }
            }
        });
        Self::new(source, auth_tx, max_out_fps)
    }

    /// Accepts connections until `shutdown`.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: Shutdown) {
        let config = AcceptConfig {
            nodelay: false,
            ..AcceptConfig::new("recordings").limit(MAX_CONNECTIONS)
        };
        let sd = shutdown.clone();
        accept::serve(listener, config, shutdown, move |tcp, peer| {
            let (me, sd) = (self.clone(), sd.clone());
            async move {
                if let Err(e) = me.connection(tcp, peer, sd).await {
                    tracing::debug!(%peer, error = %e, "media connection ended");
                }
            }
        })
        .await;
    }

    /// Serves one accepted connection (RTSP playback or HTTP export, told apart by its
    /// first bytes).
    pub async fn connection(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        sd: Shutdown,
    ) -> Result<(), ConnectionError> {
        let mut head = [0u8; 5];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.peek(&mut head))
            .await
            .map_err(|_| ConnectionError::Silent)??;
        if head[..n].starts_with(b"GET ") || head[..n].starts_with(b"HEAD ") {
            self.http(tcp, peer).await
        } else {
            Ok(self.rtsp(tcp, peer, sd).await?)
        }
    }

    /// 8.4 steps 5-8 for a recording: the platform judges the token; it must name this
    /// camera.
    pub(crate) async fn authorize(
        &self,
        token: Option<String>,
        peer: &str,
        camera: &DeviceId,
    ) -> Result<PlayGrant, (u16, String)> {
        let Some(token) = token else {
            return Err((401, "a token is required".into()));
        };
        let (reply, rx) = oneshot::channel();
        self.auth
            .send(AuthRequest {
                token,
                client: peer.to_owned(),
                reply,
            })
            .await
            .map_err(|_| (503, "the recorder is stopping".to_owned()))?;
        match rx.await {
            Ok(PlayVerdict::Granted { grant }) => {
                if grant.cam.as_ref() != Some(camera) || !grant.scopes.contains(Scope::Playback) {
                    return Err((403, "the token is not for this camera's recordings".into()));
                }
                Ok(grant)
            }
            Ok(PlayVerdict::Refused { code, message }) => {
                let status = if code.is_transient() { 503 } else { 401 };
                Err((status, format!("{code}: {message}")))
            }
            Err(_) => Err((503, "no answer from the platform".into())),
        }
    }

    // -------------------------------------------------------------------------------------
    // HTTP export

    async fn http(&self, mut tcp: TcpStream, peer: SocketAddr) -> Result<(), ConnectionError> {
        let mut buf = Vec::with_capacity(2048);
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            if buf.len() > 8192 {
                return respond(&mut tcp, 431, "request head too large").await;
            }
            let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
                .await
                .map_err(|_| ConnectionError::SlowRequest)??;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let line = head.lines().next().unwrap_or_default();
        let mut parts = line.split(' ');
        let (method, target) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let Some(camera) = path
            .strip_prefix("/export/")
            .and_then(|p| p.strip_suffix(".mp4"))
            .and_then(|c| c.parse::<DeviceId>().ok())
        else {
            return respond(&mut tcp, 404, "no such export; use /export/CAMERA.mp4").await;
        };
        let q: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if let Err((status, msg)) = self
            .authorize(get("token"), &peer.to_string(), &camera)
            .await
        {
            return respond(&mut tcp, status, &msg).await;
        }
        let (Some(from), Some(to)) = (
            get("from").and_then(|f| parse_clock(&f).ok()),
            get("to").and_then(|t| parse_clock(&t).ok()),
        ) else {
            return respond(
                &mut tcp,
                400,
                "from and to are required, as RFC 2326 clock times",
            )
            .await;
        };
        if to <= from || to - from > peercam_signal::record::MAX_RANGE_MS {
            return respond(&mut tcp, 400, "the range must be 1 ms to 31 days").await;
        }
        if let Some(plan) = self.source.plan_export(camera.as_str(), from, to) {
            let plan = match plan.await {
                Ok(p) => p,
                Err(StoreError::Empty { .. }) => {
                    return respond(&mut tcp, 404, "nothing was recorded in that range").await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "export failed");
                    return respond(&mut tcp, 500, "the export failed on the NVR").await;
                }
            };
            return send_plan(&mut tcp, method, &head, &camera, &plan).await;
        }
        let dir = self.source.scratch_dir();
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("{}.mp4", hex(&random::<8>())));
        let summary = crate::source::export_mp4(
            self.source.as_ref(),
            camera.as_str(),
            (from, to),
            &file,
            |_, _| {},
        )
        .await;
        let summary = match summary {
            Ok(s) => s,
            Err(StoreError::Empty { .. }) => {
                return respond(&mut tcp, 404, "nothing was recorded in that range").await;
            }
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                tracing::error!(error = %e, "export failed");
                return respond(&mut tcp, 500, "the export failed on the NVR").await;
            }
        };
        let result = async {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\nContent-Disposition: attachment; filename=\"{camera}-{}.mp4\"\r\nX-Frames: {}\r\nX-Start: {}\r\nConnection: close\r\n\r\n",
                summary.bytes,
                format_clock(summary.start_ms),
                summary.frames,
                format_clock(summary.start_ms),
            );
            tcp.write_all(head.as_bytes()).await?;
            if method == "GET" {
                let mut f = tokio::fs::File::open(&file).await?;
                tokio::io::copy(&mut f, &mut tcp).await?;
            }
            tcp.shutdown().await
        }
        .await;
        let _ = std::fs::remove_file(&file);
        Ok(result?)
    }

    // -------------------------------------------------------------------------------------
    // RTSP playback

    /// RTSP playback over a channel the recorder opened to an MTU (Mn/Nd, H.626.4 8.3): the
    /// MTU's pipe joins one viewer to it, and the viewer's requests arrive as from any
    /// client; the first carries a fresh one-time token the platform judges (8.4).
    pub async fn relayed<S>(
        &self,
        io: S,
        peer: SocketAddr,
        shutdown: Shutdown,
    ) -> Result<(), ServeError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        self.rtsp(io, peer, shutdown).await
    }

    async fn rtsp<S>(&self, tcp: S, peer: SocketAddr, shutdown: Shutdown) -> Result<(), ServeError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut playback = Playback {
            media: self,
            peer,
            s: Session {
                camera: None,
                base_ms: 0,
                sender: None,
                channel: 0,
                audio_codec: None,
                audio: None,
                aac_config: None,
                aac: None,
                player: None,
                paused_at: None,
                out: Vec::new(),
                out_ts: 0,
                in_sync: false,
            },
        };
        serve::serve(tcp, &mut playback, async move {
            shutdown.wait().await;
            Ok(())
        })
        .await
    }

    async fn describe(
        &self,
        path: &str,
        query: Option<&str>,
        token: Option<String>,
        peer: SocketAddr,
    ) -> Result<(DeviceId, u64, RecordedAudio, String), (u16, String)> {
        let camera: DeviceId = path
            .strip_prefix("/rec/")
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| (404, "no such recording path; use /rec/CAMERA".to_owned()))?;
        self.authorize(token, &peer.to_string(), &camera).await?;
        let start = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "start")
            .map(|(_, v)| parse_clock(&v).map_err(|e| (400u16, e.to_string())))
            .transpose()?;
        let seg = self
            .source
            .segment_at(camera.as_str(), start.unwrap_or(0))
            .await
            .map_err(|e| (500, e.to_string()))?
            .ok_or_else(|| (404, "nothing recorded at or after that time".to_owned()))?;
        let base_ms = start.unwrap_or_else(|| seg.start_ms());
        // G.711 is track 1; AAC (issue 16) is track 3, as the PU offers a camera's AAC live.
        let audio = seg.audio.filter(|c| c.law().is_some());
        let aac = seg.aac.clone();
        let sdp = peercam_rtsp::sdp::CameraSdp {
            session_id: base_ms / 1000,
            session_version: 1,
            origin_address: String::new(),
            session_name: format!("peercam recording {camera}"),
            video: Some(peercam_rtsp::sdp::H264Video {
                sps: seg.sps.clone(),
                pps: seg.pps.clone(),
                framerate: None,
                dimensions: peercam_media::sps::Sps::parse(&seg.sps)
                    .ok()
                    .map(|s| (s.width, s.height)),
            }),
            audio,
        }
        .build_with_aac(aac.as_ref(), &[]);
        Ok((camera, base_ms, (audio, aac), sdp))
    }

    async fn play(
        &self,
        conn: &mut ServerConn,
        s: &mut Session,
        cseq: u32,
        range: Option<Range>,
        scale: Option<String>,
        frame_step: Option<String>,
    ) {
        let Some(camera) = s.camera.clone() else {
            let _ = conn.reject(cseq, StatusCode(455), "");
            return;
        };
        let scale = match scale.as_deref().map(Scale::parse) {
            None => s
                .player
                .as_ref()
                .or(s.paused_at.as_ref())
                .map_or(Scale::NORMAL, |p| p.scale),
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                let _ = conn.reject(cseq, StatusCode(456), &e.to_string());
                return;
            }
        };
        let seek = match range {
            Some(Range::Npt {
                start: Some(NptTime::At(d)),
                ..
            }) => Some(s.base_ms + d.as_millis() as u64),
            Some(Range::Other(v)) => match parse_clock_range(&v) {
                Ok(span) => Some(span.start_ms),
                Err(e) => {
                    let _ = conn.reject(cseq, StatusCode(457), &e.to_string());
                    return;
                }
            },
            _ => None,
        };
        // A frame step while paused: one frame, then paused again.
        if let Some(step) = frame_step {
            let forward = match step.as_str() {
                "1" | "+1" => true,
                "-1" => false,
                _ => {
                    let _ = conn.reject(cseq, StatusCode(400), "X-Frame-Step is 1 or -1");
                    return;
                }
            };
            let mut p = match s.paused_at.take().or_else(|| s.player.take()) {
                Some(p) => p,
                None => match Player::open(
                    self.source.as_ref(),
                    &camera,
                    seek.unwrap_or(s.base_ms),
                    Scale::NORMAL,
                    self.max_out_fps,
                )
                .await
                {
                    Ok(p) => p,
                    Err((st, m)) => {
                        let _ = conn.reject(cseq, StatusCode(st), &m);
                        return;
                    }
                },
            };
            let stepped = p.step(self.source.as_ref(), forward, s.in_sync).await;
            if let Some((_, reencoded)) = &stepped {
                s.in_sync = !reencoded;
            }
            let frame = stepped.map(|(f, _)| f);
            let info = s.rtp_info();
            let at = frame
                .as_ref()
                .map_or_else(|| p.position_ms(), |f| f.t90k / 90);
            let _ = conn.accept_play_at(
                cseq,
                &info,
                &format!("clock={}-", format_clock(at)),
                Some("0"),
            );
            while let Some(bytes) = conn.poll_transmit() {
                s.out.extend_from_slice(&bytes);
            }
            if let Some(f) = frame {
                s.send_frame(&f, 3600);
            }
            s.paused_at = Some(p);
            return;
        }
        let current = s.player.take().or_else(|| s.paused_at.take());
        let player = self.resume(&camera, current, seek, scale, s.base_ms).await;
        match player {
            Ok(p) => {
                let info = s.rtp_info();
                let scale_text = scale.to_string();
                let _ = conn.accept_play_at(
                    cseq,
                    &info,
                    &format!("clock={}-", format_clock(p.position_ms())),
                    Some(&scale_text),
                );
                s.player = Some(p);
                s.in_sync = true;
            }
            Err((st, m)) => {
                let _ = conn.reject(cseq, StatusCode(st), &m);
            }
        }
    }

    /// The player for a PLAY: the current one resumes where it stands at the same speed; a
    /// new speed reopens where it stands, a seek where asked, and with no player at `base_ms`.
    pub(crate) async fn resume(
        &self,
        camera: &DeviceId,
        current: Option<Player>,
        seek: Option<u64>,
        scale: Scale,
        base_ms: u64,
    ) -> Result<Player, (u16, String)> {
        let at = match (seek, current) {
            (None, Some(mut p)) if p.scale == scale => {
                p.next_at = Instant::now();
                return Ok(p);
            }
            (None, Some(p)) => p.position_ms(),
            (Some(at), _) => at,
            (None, None) => base_ms,
        };
        Player::open(self.source.as_ref(), camera, at, scale, self.max_out_fps).await
    }

    /// Sends the next planned frame; `false` at the end of the recordings.
    async fn send_next(&self, s: &mut Session) -> bool {
        let Some(p) = s.player.as_mut() else {
            return false;
        };
        let Some((frame, wall)) = p.next(self.source.as_ref()).await else {
            return false;
        };
        let (chunks, codec) = p.audio_of(&frame, wall);
        if let Some(aac) = p.aac().cloned() {
            s.send_aac(&chunks, &aac, frame.t90k);
        } else {
            s.send_audio(&chunks, codec, frame.t90k);
        }
        s.send_frame(&frame, wall);
        if let Some(p) = s.player.as_mut() {
            p.next_at += Duration::from_micros(wall * 100 / 9);
            // Never build up a burst after a stall.
            if p.next_at + Duration::from_millis(500) < Instant::now() {
                p.next_at = Instant::now();
            }
        }
        true
    }
}

/// Sends an export laid out over the segment files (no intermediate file): the head at
/// once with the length known, then the pieces (`sendfile` for the segment ranges). One
/// `Range: bytes=` range is honoured (206), as players and download managers ask.
async fn send_plan(
    tcp: &mut TcpStream,
    method: &str,
    request: &str,
    camera: &DeviceId,
    plan: &peercam_store::ExportPlan,
) -> Result<(), ConnectionError> {
    let len = plan.len();
    let range = request.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("range").then(|| v.trim())
    });
    let (status, start, end) = match range
        .map(|r| peercam_cloud::range::byte_range(r, len).map(|r| (r.start, r.end)))
    {
        None => ("200 OK", 0, len),
        Some(Some((a, b))) => ("206 Partial Content", a, b),
        Some(None) => {
            let text = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            tcp.write_all(text.as_bytes()).await?;
            let _ = tcp.shutdown().await;
            return Ok(());
        }
    };
    let s = plan.summary;
    let content_range = if status.starts_with("206") {
        format!("Content-Range: bytes {start}-{}/{len}\r\n", end - 1)
    } else {
        String::new()
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\n{content_range}Content-Disposition: attachment; filename=\"{camera}-{}.mp4\"\r\nX-Frames: {}\r\nX-Start: {}\r\nConnection: close\r\n\r\n",
        end - start,
        format_clock(s.start_ms),
        s.frames,
        format_clock(s.start_ms),
    );
    tcp.write_all(head.as_bytes()).await?;
    if method == "GET"
        && let Err(e) = plan.send(tcp, start, end).await
    {
        // The length is announced: a short body is how the client learns it failed.
        tracing::warn!(error = %e, "export ended early");
        return Ok(());
    }
    tcp.shutdown().await?;
    Ok(())
}

async fn respond(tcp: &mut TcpStream, status: u16, message: &str) -> Result<(), ConnectionError> {
    let reason = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let body = format!("{message}\n");
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(text.as_bytes()).await?;
    let _ = tcp.shutdown().await;
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One RTSP playback connection.
struct Playback<'a> {
    media: &'a Media,
    peer: SocketAddr,
    s: Session,
}

impl Handler for Playback<'_> {
    /// The next frame is due.
    type Wake = ();

    async fn describe(&mut self, io: Io<'_>, req: Describe) {
        let (conn, cseq, uri) = (io.conn, req.cseq, req.uri.as_str());
        let (path, query, token) = (req.path.as_str(), req.query.as_deref(), req.token);
        match self.media.describe(path, query, token, self.peer).await {
            Ok((camera, base_ms, (audio, aac), sdp)) => {
                self.s.camera = Some(camera);
                self.s.base_ms = base_ms;
                self.s.audio_codec = audio;
                self.s.aac_config = aac;
                let base = format!("{}/", uri.split('?').next().unwrap_or(uri));
                let _ = conn.respond_describe(cseq, sdp, Some(base));
            }
            Err((status, msg)) => {
                let _ = conn.reject(cseq, StatusCode(status), &msg);
            }
        }
    }

    async fn setup(&mut self, io: Io<'_>, req: Setup) {
        let (conn, cseq, track) = (io.conn, req.cseq, req.track);
        let transports = req.transports;
        let offer = transports.into_iter().find(serve::is_interleaved);
        match (track, offer, &self.s.camera) {
            (0, Some(offer), Some(_)) => {
                let ssrc = u32::from_be_bytes(random::<4>());
                let Ok(sender) = RtpSender::new(SenderConfig {
                    ssrc,
                    payload_type: 96,
                    initial_sequence: u16::from_be_bytes(random::<2>()),
                    timestamp_offset: u32::from_be_bytes(random::<4>()),
                }) else {
                    let _ = conn.reject(cseq, StatusCode(500), "");
                    return;
                };
                let (mut chosen, rtp, _) = serve::interleaved(offer, 0);
                chosen.ssrc = Some(ssrc);
                self.s.channel = rtp;
                self.s.sender = Some(sender);
                let _ = conn.accept_setup(cseq, 0, chosen);
            }
            (1, Some(offer), Some(_)) if self.s.audio_codec.is_some() => {
                let codec = self.s.audio_codec.unwrap_or(AudioCodec::Pcmu);
                let ssrc = u32::from_be_bytes(random::<4>());
                let Ok(sender) = RtpSender::new(SenderConfig {
                    ssrc,
                    payload_type: codec.payload_type(),
                    initial_sequence: u16::from_be_bytes(random::<2>()),
                    timestamp_offset: u32::from_be_bytes(random::<4>()),
                }) else {
                    let _ = conn.reject(cseq, StatusCode(500), "");
                    return;
                };
                let (mut chosen, rtp, _) = serve::interleaved(offer, 1);
                chosen.ssrc = Some(ssrc);
                self.s.audio = Some(AudioOut {
                    codec,
                    sender,
                    channel: rtp,
                });
                let _ = conn.accept_setup(cseq, 1, chosen);
            }
            (AAC_TRACK, Some(offer), Some(_)) if self.s.aac_config.is_some() => {
                let ssrc = u32::from_be_bytes(random::<4>());
                let Ok(sender) = RtpSender::new(SenderConfig {
                    ssrc,
                    payload_type: peercam_rtsp::sdp::AAC_PAYLOAD_TYPE,
                    initial_sequence: u16::from_be_bytes(random::<2>()),
                    timestamp_offset: u32::from_be_bytes(random::<4>()),
                }) else {
                    let _ = conn.reject(cseq, StatusCode(500), "");
                    return;
                };
                let (mut chosen, rtp, _) = serve::interleaved(offer, AAC_TRACK);
                chosen.ssrc = Some(ssrc);
                self.s.aac = Some(AacOut {
                    sender,
                    channel: rtp,
                });
                let _ = conn.accept_setup(cseq, AAC_TRACK, chosen);
            }
            (0 | 1 | AAC_TRACK, None, _) => {
                let _ = conn.reject(
                    cseq,
                    StatusCode(461),
                    "Recordings play over RTP/AVP/TCP interleaved",
                );
            }
            _ => {
                let _ = conn.reject(cseq, StatusCode(404), "no such track");
            }
        }
    }

    async fn play(&mut self, io: Io<'_>, req: Play) {
        let media = self.media;
        self.s.out = std::mem::take(io.out);
        let Play {
            cseq,
            range,
            scale,
            frame_step,
        } = req;
        media
            .play(io.conn, &mut self.s, cseq, range, scale, frame_step)
            .await;
        *io.out = std::mem::take(&mut self.s.out);
    }

    fn pause(&mut self) {
        if let Some(p) = self.s.player.take() {
            self.s.paused_at = Some(p);
        }
    }

    fn teardown(&mut self) {
        self.s.player = None;
        self.s.paused_at = None;
    }

    async fn wait(&mut self) {
        match self.s.player.as_ref().map(|p| p.next_at) {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    }

    async fn wake(&mut self, io: Io<'_>, (): ()) -> Result<(), ServeError> {
        self.s.out = std::mem::take(io.out);
        if !self.media.send_next(&mut self.s).await {
            // The end of the recordings (or of the range) in this direction.
            self.s.paused_at = self.s.player.take();
        }
        io.conn.touch(Instant::now());
        *io.out = std::mem::take(&mut self.s.out);
        Ok(())
    }
}

/// The recording's audio for the description: G.711 (track 1) or AAC (track 3).
type RecordedAudio = (Option<AudioCodec>, Option<AacConfig>);

/// The track of recorded AAC.
const AAC_TRACK: usize = peercam_rtsp::sdp::AAC_TRACK;

/// The AAC track of a playback: the recorded access units, repacketised (RFC 3640).
struct AacOut {
    sender: RtpSender,
    channel: u8,
}

/// The audio track of a playback: recorded G.711 as it was stored.
struct AudioOut {
    codec: AudioCodec,
    sender: RtpSender,
    channel: u8,
}

struct Session {
    camera: Option<DeviceId>,
    /// The URL's `start`: npt ranges count from it.
    base_ms: u64,
    sender: Option<RtpSender>,
    channel: u8,
    /// The recording's audio codec (track 1 of the description), if it has audio.
    audio_codec: Option<AudioCodec>,
    /// The audio track, once set up.
    audio: Option<AudioOut>,
    /// The recording's AAC configuration (track 3 of the description), if its audio is AAC.
    aac_config: Option<AacConfig>,
    /// The AAC track, once set up.
    aac: Option<AacOut>,
    player: Option<Player>,
    paused_at: Option<Player>,
    out: Vec<u8>,
    /// The output clock, 90 kHz: advances with what is shown.
    out_ts: u64,
    /// The player's decoder holds the recording's own frames (not a re-encoded step).
    in_sync: bool,
}

impl Session {
    fn rtp_info(&self) -> Vec<(usize, u16, u32)> {
        let video = self
            .sender
            .as_ref()
            .map(|s| (0, s.next_sequence(), s.rtp_timestamp(self.out_ts as u32)));
        let audio = self.audio.as_ref().map(|a| {
            let t8k = to_8k(self.out_ts) as u32;
            (1, a.sender.next_sequence(), a.sender.rtp_timestamp(t8k))
        });
        let rate = self.aac_config.as_ref().map_or(8000, |c| c.sample_rate);
        let aac = self.aac.as_ref().map(|a| {
            let t = (u128::from(to_8k(self.out_ts)) * u128::from(rate) / 8000) as u32;
            (
                AAC_TRACK,
                a.sender.next_sequence(),
                a.sender.rtp_timestamp(t),
            )
        });
        video.into_iter().chain(audio).chain(aac).collect()
    }

    /// As [`Session::send_audio`] for a recording whose audio is AAC (`aac`, the loaded
    /// segment's): each chunk is one access unit, sent on the AAC track when the
    /// description's configuration is the segment's.
    fn send_aac(&mut self, chunks: &[AudioChunk], aac: &AacConfig, frame_t90k: u64) {
        let Some(a) = self.aac.as_mut() else {
            return;
        };
        if self.aac_config.as_ref() != Some(aac) {
            return;
        }
        let rate = u128::from(aac.sample_rate);
        let (out_8k, at_8k) = (to_8k(self.out_ts), to_8k(frame_t90k));
        for c in chunks {
            let t8k = out_8k.wrapping_add(c.t8k).wrapping_sub(at_8k);
            let ts = (u128::from(t8k) * rate / 8000) as u32;
            let Ok(payloads) = AacPacketizer::new(MAX_PAYLOAD)
                .and_then(|p| p.packetize(&[&c.bytes], ts, aac.frame_length))
            else {
                continue;
            };
            for p in payloads {
                let Ok(len) = u16::try_from(12 + p.data.len()) else {
                    continue;
                };
                let mark = self.out.len();
                self.out.extend_from_slice(&[b'$', a.channel]);
                self.out.extend_from_slice(&len.to_be_bytes());
                if a.sender
                    .write_raw(&p.data, p.timestamp, p.marker, &mut self.out)
                    .is_err()
                {
                    self.out.truncate(mark);
                }
            }
        }
    }

    /// The recorded audio of the frame shown next (recorded at `frame_t90k`), on the output
    /// clock; call before [`Session::send_frame`] moves the clock on. Only at normal speed
    /// forward (H.626.4 8.7.2.2; other speeds are silent).
    fn send_audio(&mut self, chunks: &[AudioChunk], codec: Option<AudioCodec>, frame_t90k: u64) {
        let Some(a) = self.audio.as_mut() else {
            return;
        };
        // A run recorded with another codec than the description's stays silent.
        if codec != Some(a.codec) {
            return;
        }
        let (out_8k, at_8k) = (to_8k(self.out_ts), to_8k(frame_t90k));
        for c in chunks {
            let ts = out_8k.wrapping_add(c.t8k).wrapping_sub(at_8k) as u32;
            // 20 ms a packet (G.711: a byte per 8 kHz tick), whatever the camera sent.
            for (i, piece) in c.bytes.chunks(AUDIO_PACKET).enumerate() {
                let ts = ts.wrapping_add((i * AUDIO_PACKET) as u32);
                let Ok(len) = u16::try_from(12 + piece.len()) else {
                    continue;
                };
                let mark = self.out.len();
                self.out.extend_from_slice(&[b'$', a.channel]);
                self.out.extend_from_slice(&len.to_be_bytes());
                if a.sender.write_raw(piece, ts, false, &mut self.out).is_err() {
                    self.out.truncate(mark);
                }
            }
        }
    }

    fn send_frame(&mut self, frame: &Frame, wall: u64) {
        let Some(sender) = self.sender.as_mut() else {
            return;
        };
        let Ok(pk) = H264Packetizer::new(MAX_PAYLOAD) else {
            return;
        };
        let nals: Vec<&[u8]> = frame
            .nals
            .iter()
            .map(Vec::as_slice)
            .filter(|n| n.first().is_some_and(|b| (1..=23).contains(&(b & 0x1f))))
            .collect();
        let Ok(payloads) = pk.packetize(&nals, self.out_ts as u32) else {
            return;
        };
        for p in payloads {
            let Ok(len) = u16::try_from(12 + p.data.len()) else {
                continue;
            };
            let mark = self.out.len();
            self.out.extend_from_slice(&[b'$', self.channel]);
            self.out.extend_from_slice(&len.to_be_bytes());
            if sender
                .write_raw(&p.data, p.timestamp, p.marker, &mut self.out)
                .is_err()
            {
                self.out.truncate(mark);
            }
        }
        self.out_ts = self.out_ts.wrapping_add(wall.max(1));
    }
}

/// Why a recording could not be played from where it was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlayerError {
    /// The store could not read the segment.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A segment must start with a key frame (the store cuts them so).
    #[error("segment {0} does not start with a key frame")]
    NoKeyFrame(String),
    /// The H.264 decoder or encoder failed (a frame step re-encoded as an IDR).
    #[error("{what}: {source}")]
    Codec {
        /// What was being done.
        what: &'static str,
        /// The codec's error.
        source: openh264::Error,
    },
    /// Nothing came out of the re-encoding.
    #[error("{0}")]
    Nothing(&'static str),
}

/// Where a playback stands: the loaded segment, the GOP being sent, what is planned.
pub(crate) struct Player {
    camera: String,
    pub(crate) scale: Scale,
    selection: Selection,
    seg: SegmentRow,
    frames: Vec<Frame>,
    /// The segment's audio, in time order.
    audio: Vec<AudioChunk>,
    /// GOP starts (indices into `frames`).
    gops: Vec<usize>,
    gop: usize,
    /// (frame index, wall ticks) still to send from the current GOP.
    queue: VecDeque<(usize, u64)>,
    /// The last frame sent (index into `frames`).
    shown: Option<usize>,
    pub(crate) next_at: Instant,
}

impl Player {
    pub(crate) async fn open(
        store: &dyn SegmentSource,
        camera: &DeviceId,
        at_ms: u64,
        scale: Scale,
        max_out_fps: u32,
    ) -> Result<Self, (u16, String)> {
        let seg = store
            .segment_at(camera.as_str(), at_ms)
            .await
            .map_err(|e| (500, e.to_string()))?
            .ok_or_else(|| (457, "nothing recorded at or after that time".to_owned()))?;
        let mut p = Self {
            camera: camera.to_string(),
            scale,
            selection: Selection::All,
            seg: seg.clone(),
            frames: Vec::new(),
            audio: Vec::new(),
            gops: Vec::new(),
            gop: 0,
            queue: VecDeque::new(),
            shown: None,
            next_at: Instant::now(),
        };
        p.load(store, seg).await.map_err(|e| (500, e.to_string()))?;
        let fps = p.fps();
        p.selection = trick::selection(scale, fps, max_out_fps);
        // Start at the GOP holding `at_ms` (a seek lands within one GOP).
        let at90 = at_ms.saturating_mul(90);
        p.gop = p
            .gops
            .iter()
            .rposition(|&i| p.frames[i].t90k <= at90)
            .unwrap_or(0);
        p.plan();
        Ok(p)
    }

    fn fps(&self) -> u32 {
        let n = self.frames.len() as u64;
        let span = self.seg.end_90k.saturating_sub(self.seg.start_90k).max(1);
        ((n * 90_000 + span / 2) / span).clamp(1, 120) as u32
    }

    async fn load(
        &mut self,
        store: &dyn SegmentSource,
        seg: SegmentRow,
    ) -> Result<(), PlayerError> {
        let media = store.read(&seg).await?;
        self.frames = media.video;
        self.audio = media.audio;
        self.gops = self
            .frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.key)
            .map(|(i, _)| i)
            .collect();
        if self.gops.first() != Some(&0) {
            return Err(PlayerError::NoKeyFrame(seg.path));
        }
        self.seg = seg;
        self.queue.clear();
        self.shown = None;
        Ok(())
    }

    fn gop_range(&self, g: usize) -> std::ops::Range<usize> {
        let start = self.gops[g];
        let end = self.gops.get(g + 1).copied().unwrap_or(self.frames.len());
        start..end
    }

    fn plan(&mut self) {
        let r = self.gop_range(self.gop);
        let metas: Vec<FrameMeta> = self.frames[r.clone()]
            .iter()
            .map(|f| FrameMeta {
                pts: f.t90k,
                key: f.key,
            })
            .collect();
        let end = self.frames.get(r.end).map_or(self.seg.end_90k, |f| f.t90k);
        self.queue = trick::plan_gop(&metas, end, self.scale, self.selection)
            .into_iter()
            .map(|e| (r.start + e.index, e.wall))
            .collect();
    }

    /// Moves to the next GOP in the direction of play, loading segments as needed.
    async fn advance(&mut self, store: &dyn SegmentSource, forward: bool) -> bool {
        if forward && self.gop + 1 < self.gops.len() {
            self.gop += 1;
            return true;
        }
        if !forward && self.gop > 0 {
            self.gop -= 1;
            return true;
        }
        let Ok(Some(seg)) = store
            .neighbour(&self.camera, self.seg.start_90k, forward)
            .await
        else {
            return false;
        };
        if self.load(store, seg).await.is_err() {
            return false;
        }
        self.gop = if forward { 0 } else { self.gops.len() - 1 };
        true
    }

    pub(crate) async fn next(&mut self, store: &dyn SegmentSource) -> Option<(Frame, u64)> {
        if self.queue.is_empty() {
            // The first plan of a freshly opened player is already queued.
            if !self.advance(store, !self.scale.is_reverse()).await {
                return None;
            }
            self.plan();
        }
        let (i, wall) = self.queue.pop_front()?;
        self.shown = Some(i);
        Some((self.frames[i].clone(), wall))
    }

    /// One frame forward or back from the one shown. A frame the player cannot decode
    /// from what it has (any step back, or forward after a re-encoded step) is decoded here
    /// from its GOP's IDR and sent re-encoded as an IDR, with its SEI kept
    /// ([`peercam_record::trick::step`]). Returns the frame and whether it was re-encoded.
    pub(crate) async fn step(
        &mut self,
        store: &dyn SegmentSource,
        forward: bool,
        in_sync: bool,
    ) -> Option<(Frame, bool)> {
        self.queue.clear();
        let previous = self.shown;
        let i = match (self.shown, forward) {
            (None, _) => self.gops[self.gop],
            (Some(i), true) if i + 1 < self.frames.len() => i + 1,
            (Some(_), true) => {
                if !self.advance(store, true).await {
                    return None;
                }
                self.gops[self.gop]
            }
            (Some(i), false) if i > 0 => i - 1,
            (Some(_), false) => {
                if !self.advance(store, false).await {
                    return None;
                }
                self.frames.len() - 1
            }
        };
        let g = self.gops.iter().rposition(|&k| k <= i).unwrap_or(0);
        self.gop = g;
        self.shown = Some(i);
        let metas: Vec<FrameMeta> = self.frames[self.gops[g]..=i]
            .iter()
            .map(|f| FrameMeta {
                pts: f.t90k,
                key: f.key,
            })
            .collect();
        let current = match previous {
            Some(p) if in_sync && p + 1 == i => Some(i - self.gops[g] - 1),
            _ => None,
        };
        let plan = trick::step(&metas, current, i - self.gops[g])?;
        if !plan.reencode {
            return Some((self.frames[i].clone(), false));
        }
        let gop: Vec<Frame> = self.frames[self.gops[g]..=i].to_vec();
        let done = tokio::task::spawn_blocking(move || reencode(&gop))
            .await
            .unwrap_or(Err(PlayerError::Nothing("the re-encoding task failed")));
        match done {
            Ok(f) => Some((f, true)),
            Err(e) => {
                tracing::warn!(error = %e, "frame step: re-encoding failed; sending the key frame");
                Some((self.frames[self.gops[g]].clone(), false))
            }
        }
    }

    /// The recorded audio to play with `frame`, shown for `wall` output ticks, and its
    /// codec: the audio recorded from the frame's time until the next frame's at normal
    /// speed forward, nothing at other speeds and in reverse (H.626.4 8.7.2.2).
    pub(crate) fn audio_of(
        &self,
        frame: &Frame,
        wall: u64,
    ) -> (Vec<AudioChunk>, Option<AudioCodec>) {
        if self.scale != Scale::NORMAL || self.audio.is_empty() {
            return (Vec::new(), None);
        }
        // The first frame of a segment also takes the audio recorded before it in the
        // segment, the last one what was recorded after it: nothing of the segment is lost.
        let from = if self.frames.first().is_some_and(|f| f.t90k == frame.t90k) {
            0
        } else {
            to_8k(frame.t90k)
        };
        let to = if self.frames.last().is_some_and(|f| f.t90k == frame.t90k) {
            u64::MAX
        } else {
            to_8k(frame.t90k.saturating_add(wall))
        };
        let a = self.audio.partition_point(|c| c.t8k < from);
        let b = self.audio.partition_point(|c| c.t8k < to);
        (self.audio[a..b.max(a)].to_vec(), self.seg.audio)
    }

    /// The loaded segment's AAC configuration, when its audio is AAC.
    pub(crate) fn aac(&self) -> Option<&AacConfig> {
        self.seg.aac.as_ref()
    }

    /// The codec of the loaded segment's audio when it is G.711 (what playback sends).
    pub(crate) fn audio_codec(&self) -> Option<AudioCodec> {
        self.seg.audio.filter(|c| c.law().is_some())
    }

    pub(crate) fn position_ms(&self) -> u64 {
        let i = self
            .shown
            .unwrap_or_else(|| self.gops.get(self.gop).copied().unwrap_or(0));
        self.frames.get(i).map_or(self.seg.start_90k, |f| f.t90k) / 90
    }
}

/// Decodes `gop` (from its IDR) and encodes its last frame alone as an IDR, keeping the
/// original frame's SEI (its tag: frame number, capture time).
fn reencode(gop: &[Frame]) -> Result<Frame, PlayerError> {
    use openh264::decoder::Decoder;
    use openh264::encoder::{Encoder, EncoderConfig, RateControlMode, UsageType};
    let codec = |what: &'static str| move |source| PlayerError::Codec { what, source };
    let last = gop.last().ok_or(PlayerError::Nothing("empty GOP"))?;
    let mut dec = Decoder::new().map_err(codec("H.264 decoder"))?;
    let config = EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .rate_control_mode(RateControlMode::Quality)
        .skip_frames(false);
    let mut enc = Encoder::with_api_config(openh264::OpenH264API::from_source(), config)
        .map_err(codec("H.264 encoder"))?;
    let mut encoded = None;
    for (n, f) in gop.iter().enumerate() {
        let annexb = peercam_media::annexb::join(&f.nals);
        let yuv = dec.decode(&annexb).map_err(codec("decoding the GOP"))?;
        if n + 1 == gop.len() {
            let yuv = yuv.ok_or(PlayerError::Nothing("the decoder returned no picture"))?;
            encoded = Some(enc.encode(&yuv).map_err(codec("encoding"))?.to_vec());
        }
    }
    let bytes = encoded.ok_or(PlayerError::Nothing("nothing encoded"))?;
    let mut nals: Vec<Vec<u8>> = Vec::new();
    // The tag first, as the camera writes it.
    nals.extend(
        last.nals
            .iter()
            .filter(|n| n.first().is_some_and(|b| b & 0x1f == 6))
            .cloned(),
    );
    nals.extend(peercam_media::annexb::split(&bytes).map(<[u8]>::to_vec));
    Ok(Frame {
        t90k: last.t90k,
        key: true,
        nals,
    })
}
