//! Playback of recordings over WebRTC for browsers (H.626.4 8.7.2.2, 8.7.3; issue 7).
//!
//! The same player as RTSP playback ([`crate::serve`]): trick modes send key frames only,
//! frame steps are re-encoded as IDRs when the browser could not decode them, and the RTP
//! clock follows the output's wall clock so the browser shows the speed asked. Control
//! travels on the offer's data channel as [`PlaybackControl`] JSON; the recorder answers
//! each control and, every 250 ms, with a [`PlaybackStatus`] (the recorded time shown, for
//! the client's timeline). The recorded G.711 audio goes with the picture at normal speed
//! forward only, as in RTSP playback; other speeds, reverse and steps are silent.

use peercam_rtp::camera_audio::AacToG711;
use peercam_rtp::g711::Law;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peercam_base::DeviceId;
use peercam_net::Shutdown;
use peercam_p2p::webrtc::{Endpoint, EndpointConfig, Happening};
use peercam_record::trick::Scale;
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::record::{ExportNotice, PlaybackControl, PlaybackStatus};
use peercam_store::Frame;
use tokio::sync::oneshot;

use crate::serve::{Media, Player};

/// A browser's request to play recordings.
#[derive(Debug, Clone)]
pub struct PlaybackOffer {
    /// The camera whose recordings to play.
    pub camera: DeviceId,
    /// Where to start, Unix ms.
    pub start_ms: u64,
    /// The SDP offer.
    pub offer: String,
    /// The one-time playback token.
    pub token: String,
    /// The viewer, as the platform saw it.
    pub client: String,
    /// The address to bind.
    pub bind_ip: IpAddr,
    /// The STUN server.
    pub stun: Option<SocketAddr>,
}

/// Closes a session that never connects.
const CONNECT_WITHIN: Duration = Duration::from_secs(20);

impl Media {
    /// Answers a playback offer once the platform has granted the token for this camera;
    /// the session runs in the background. Errors are `(code, message)` for the platform.
    pub async fn webrtc(
        self: &Arc<Self>,
        req: PlaybackOffer,
        shutdown: Shutdown,
    ) -> Result<String, (String, String)> {
        let refused = |(status, message): (u16, String)| {
            let code = match status {
                401 | 403 => "refused",
                404 | 457 => "no_recording",
                503 => "unavailable",
                _ => "failed",
            };
            (code.to_owned(), message)
        };
        // 8.4 steps 5-8: the token must be granted and name this camera.
        self.authorize(Some(req.token), &req.client, &req.camera)
            .await
            .map_err(refused)?;
        let player = Player::open(
            self.source.as_ref(),
            &req.camera,
            req.start_ms,
            Scale::NORMAL,
            self.max_out_fps,
        )
        .await
        .map_err(refused)?;
        // Browsers take G.711, not AAC: an AAC recording is decoded to mu-law (issue 16).
        let audio = player
            .audio_codec()
            .or_else(|| player.aac().map(|_| peercam_store::AudioCodec::Pcmu));
        let config = EndpointConfig {
            bind_ip: req.bind_ip,
            stun: req.stun,
            audio,
            stun_timeout: Duration::from_millis(800),
            // Nobody talks to a recording.
            talk: false,
        };
        let (ep, answer) = Endpoint::answer(&req.offer, &config)
            .await
            .map_err(|e| ("bad_offer".to_owned(), e.to_string()))?;
        tracing::info!(camera = %req.camera, client = %req.client, start_ms = req.start_ms, "WebRTC playback granted");
        let session = Session {
            export: None,
            media: self.clone(),
            camera: req.camera,
            ep,
            playing: Some(player),
            paused: None,
            ended: false,
            out_ts: 0,
            audio,
            aac: None,
            in_sync: true,
            pos_ms: req.start_ms,
            started: Instant::now(),
        };
        let client = req.client;
        tokio::spawn(async move {
            match session.run(shutdown).await {
                Ok(why) => tracing::info!(%client, why, "WebRTC playback ended"),
                Err(e) => tracing::info!(%client, error = %e, "WebRTC playback failed"),
            }
        });
        Ok(answer)
    }
}

/// Why a playback session ended early: its WebRTC endpoint failed.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    /// Receiving, sending or the connection's upkeep failed.
    #[error("{0}")]
    Endpoint(#[from] peercam_p2p::Error),
}

/// Why an export could not be made; the text goes to the browser as the notice's message.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    /// The exports directory could not be created.
    #[error("{0}")]
    Dir(#[source] std::io::Error),
    /// Nothing is recorded in the range.
    #[error("nothing was recorded in that range")]
    Empty,
    /// The store could not write the MP4.
    #[error("the export failed: {0}")]
    Store(#[source] peercam_store::StoreError),
    /// The task making the MP4 ended without an answer.
    #[error("the export stopped")]
    Stopped,
}

/// The MP4 made for an export: its temporary file and what it holds.
type Made = Result<(std::path::PathBuf, peercam_store::ExportSummary), ExportError>;

/// An export on its way to the browser.
enum Export {
    /// The MP4 is being written.
    Making(oneshot::Receiver<Made>),
    /// The file is being sent; `left` bytes to go.
    Sending {
        file: std::fs::File,
        path: std::path::PathBuf,
        left: u64,
    },
}

/// Bytes per binary message of an export.
const EXPORT_CHUNK: usize = 16 * 1024;
/// Queue at most this much on the data channel before waiting for acknowledgements.
const EXPORT_WINDOW: usize = 512 * 1024;

struct Session {
    export: Option<Export>,
    media: Arc<Media>,
    camera: DeviceId,
    ep: Endpoint,
    playing: Option<Player>,
    paused: Option<Player>,
    /// Nothing more recorded in the direction of play.
    ended: bool,
    /// The output clock, 90 kHz.
    out_ts: u64,
    /// The audio codec answered (the recording's G.711, or mu-law for AAC), if any.
    audio: Option<peercam_store::AudioCodec>,
    /// The decoder of an AAC recording's audio, with the configuration it was made for.
    aac: Option<(peercam_store::AacConfig, AacToG711)>,
    /// The browser's decoder holds the recording's own frames (not a re-encoded step).
    in_sync: bool,
    pos_ms: u64,
    started: Instant,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(Export::Sending { path, .. }) = &self.export {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Session {
    async fn run(mut self, shutdown: Shutdown) -> Result<&'static str, SessionError> {
        let mut status = tokio::time::interval(Duration::from_millis(250));
        loop {
            for h in self.ep.drain()? {
                match h {
                    Happening::Connected => {
                        if let Some(p) = self.playing.as_mut() {
                            p.next_at = Instant::now();
                        }
                    }
                    Happening::Text(t) => self.control(&t).await,
                    Happening::Closed => return Ok("the viewer left"),
                    Happening::KeyframeRequest | Happening::Audio(_) => {}
                }
            }
            if !self.ep.is_connected() && self.started.elapsed() > CONNECT_WITHIN {
                return Ok("never connected");
            }
            let next = self
                .playing
                .as_ref()
                .filter(|_| self.ep.is_connected())
                .map(|p| p.next_at);
            let can_send = matches!(self.export, Some(Export::Sending { .. }))
                && self.ep.channel_buffered() < EXPORT_WINDOW;
            tokio::select! {
                made = async {
                    match &mut self.export {
                        Some(Export::Making(rx)) => rx.await.unwrap_or(Err(ExportError::Stopped)),
                        _ => std::future::pending().await,
                    }
                } => self.export_made(made),
                () = std::future::ready(()), if can_send => self.export_chunk(),
                r = self.ep.wait() => r?,
                () = async {
                    match next {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                } => self.send_next().await?,
                _ = status.tick() => self.status(None),
                () = shutdown.wait() => {
                    self.ep.close();
                    return Ok("shutdown");
                }
            }
        }
    }

    async fn send_next(&mut self) -> Result<(), SessionError> {
        let Some(p) = self.playing.as_mut() else {
            return Ok(());
        };
        let Some((frame, wall)) = p.next(self.media.source.as_ref()).await else {
            // The end of the recordings in this direction: hold the last picture.
            self.paused = self.playing.take();
            self.ended = true;
            self.status(None);
            return Ok(());
        };
        p.next_at += Duration::from_micros(wall * 100 / 9);
        // Never build up a burst after a stall.
        if p.next_at + Duration::from_millis(500) < Instant::now() {
            p.next_at = Instant::now();
        }
        let (chunks, codec) = p.audio_of(&frame, wall);
        let aac = p.aac().cloned();
        if let Some(config) = aac {
            if self.audio == Some(peercam_store::AudioCodec::Pcmu) {
                self.send_aac(&chunks, config, frame.t90k)?;
            }
        } else if codec.is_some() && codec == self.audio {
            let out_8k = peercam_store::to_8k(self.out_ts);
            let at_8k = peercam_store::to_8k(frame.t90k);
            for c in chunks {
                let ts = out_8k.wrapping_add(c.t8k).wrapping_sub(at_8k) as u32;
                for (i, piece) in c.bytes.chunks(crate::serve::AUDIO_PACKET).enumerate() {
                    let t = ts.wrapping_add((i * crate::serve::AUDIO_PACKET) as u32);
                    self.ep.send_audio(piece.to_vec(), t)?;
                }
            }
        }
        self.send(&frame, wall)
    }

    /// An AAC recording's access units, decoded to G.711 mu-law (the symphonia decoder the
    /// pull uses) and sent in 20 ms packets on the output clock.
    fn send_aac(
        &mut self,
        chunks: &[peercam_store::AudioChunk],
        config: peercam_store::AacConfig,
        frame_t90k: u64,
    ) -> Result<(), SessionError> {
        if self.aac.as_ref().is_none_or(|(c, _)| *c != config) {
            self.aac = AacToG711::new(&config.config, Law::MuLaw)
                .ok()
                .map(|d| (config, d));
        }
        let Some((_, dec)) = self.aac.as_mut() else {
            return Ok(());
        };
        let out_8k = peercam_store::to_8k(self.out_ts);
        let at_8k = peercam_store::to_8k(frame_t90k);
        let mut packets = Vec::new();
        for c in chunks {
            let Ok(g711) = dec.decode(&c.bytes) else {
                continue;
            };
            let ts = out_8k.wrapping_add(c.t8k).wrapping_sub(at_8k) as u32;
            for (i, piece) in g711.chunks(crate::serve::AUDIO_PACKET).enumerate() {
                let t = ts.wrapping_add((i * crate::serve::AUDIO_PACKET) as u32);
                packets.push((piece.to_vec(), t));
            }
        }
        for (piece, t) in packets {
            self.ep.send_audio(piece, t)?;
        }
        Ok(())
    }

    fn send(&mut self, frame: &Frame, wall: u64) -> Result<(), SessionError> {
        let nals: Vec<&[u8]> = frame
            .nals
            .iter()
            .map(Vec::as_slice)
            .filter(|n| n.first().is_some_and(|b| (1..=23).contains(&(b & 0x1f))))
            .collect();
        let data = peercam_media::annexb::join(&nals);
        self.pos_ms = frame.t90k / 90;
        self.ep.send_video(data, self.out_ts)?;
        self.out_ts = self.out_ts.wrapping_add(wall.max(1));
        Ok(())
    }

    fn notice(&mut self, n: &ExportNotice) {
        if let Ok(text) = serde_json::to_string(n) {
            self.ep.send_text(&text);
        }
    }

    fn export_failed(&mut self, message: String) {
        self.notice(&ExportNotice {
            export: "error".into(),
            bytes: None,
            name: None,
            frames: None,
            message: Some(message),
        });
    }

    fn export_made(&mut self, made: Made) {
        self.export = None;
        let (path, summary) = match made {
            Ok(x) => x,
            Err(e) => return self.export_failed(e.to_string()),
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return self.export_failed(format!("reading the export: {e}"));
            }
        };
        let name = format!(
            "{}-{}.mp4",
            self.camera,
            peercam_record::time::format_clock(summary.start_ms)
        );
        self.notice(&ExportNotice {
            export: "start".into(),
            bytes: Some(summary.bytes),
            name: Some(name),
            frames: Some(summary.frames),
            message: None,
        });
        self.export = Some(Export::Sending {
            file,
            path,
            left: summary.bytes,
        });
    }

    fn export_chunk(&mut self) {
        use std::io::Read as _;
        let Some(Export::Sending { file, path, left }) = self.export.as_mut() else {
            return;
        };
        let mut chunk = vec![0u8; EXPORT_CHUNK.min(usize::try_from(*left).unwrap_or(EXPORT_CHUNK))];
        let done = match file.read_exact(&mut chunk) {
            Ok(()) if chunk.is_empty() => Ok(true),
            Ok(()) => {
                if self.ep.send_binary(&chunk) {
                    *left -= chunk.len() as u64;
                    Ok(*left == 0)
                } else {
                    // Full: rewind and try again once acknowledgements drained the queue.
                    use std::io::Seek as _;
                    file.seek(std::io::SeekFrom::Current(-(chunk.len() as i64)))
                        .map(|_| false)
                        .map_err(|e| e.to_string())
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let path = path.clone();
        match done {
            Ok(false) => {}
            Ok(true) => {
                self.export = None;
                let _ = std::fs::remove_file(&path);
                self.notice(&ExportNotice {
                    export: "done".into(),
                    bytes: None,
                    name: None,
                    frames: None,
                    message: None,
                });
            }
            Err(e) => {
                self.export = None;
                let _ = std::fs::remove_file(&path);
                self.export_failed(format!("reading the export: {e}"));
            }
        }
    }

    fn start_export(&mut self, from_ms: u64, to_ms: u64) -> Option<String> {
        if self.export.is_some() {
            return Some("an export is already under way".into());
        }
        if to_ms <= from_ms || to_ms - from_ms > peercam_signal::record::MAX_RANGE_MS {
            return Some("the range must be 1 ms to 31 days".into());
        }
        if !self.ep.has_channel() {
            return Some("no data channel".into());
        }
        let (tx, rx) = oneshot::channel();
        let (source, camera) = (self.media.source.clone(), self.camera.clone());
        tokio::spawn(async move {
            let r = async {
                let dir = source.scratch_dir();
                std::fs::create_dir_all(&dir).map_err(ExportError::Dir)?;
                let name: [u8; 8] = rand::random();
                let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
                let file = dir.join(format!("{hex}.mp4"));
                match crate::source::export_mp4(
                    source.as_ref(),
                    camera.as_str(),
                    (from_ms, to_ms),
                    &file,
                    |_, _| {},
                )
                .await
                {
                    Ok(s) => Ok((file, s)),
                    Err(peercam_store::StoreError::Empty { .. }) => {
                        let _ = std::fs::remove_file(&file);
                        Err(ExportError::Empty)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&file);
                        Err(ExportError::Store(e))
                    }
                }
            }
            .await;
            // Nobody waits any more (the session ended): do not leave the file behind.
            if let Err(Ok((file, _))) = tx.send(r) {
                let _ = std::fs::remove_file(file);
            }
        });
        self.export = Some(Export::Making(rx));
        None
    }

    fn status(&mut self, error: Option<String>) {
        let (scale, state) = match (&self.playing, &self.paused) {
            (Some(p), _) => (p.scale, "playing"),
            (None, Some(p)) => (p.scale, if self.ended { "ended" } else { "paused" }),
            (None, None) => (Scale::NORMAL, "ended"),
        };
        let s = PlaybackStatus {
            pos_ms: self.pos_ms,
            scale: scale.to_string(),
            state: state.into(),
            error,
        };
        if let Ok(text) = serde_json::to_string(&s) {
            self.ep.send_text(&text);
        }
    }

    async fn control(&mut self, text: &str) {
        let c = match serde_json::from_str::<PlaybackControl>(text) {
            Ok(c) => c,
            Err(e) => {
                self.status(Some(format!("not a playback control: {e}")));
                return;
            }
        };
        if let PlaybackControl::Export { from_ms, to_ms } = c {
            if let Some(e) = self.start_export(from_ms, to_ms) {
                self.export_failed(e);
            }
            return;
        }
        let current = self.playing.take().or_else(|| self.paused.take());
        let error = match c {
            PlaybackControl::Export { .. } => None,
            PlaybackControl::Pause => {
                self.paused = current;
                None
            }
            PlaybackControl::Play { scale, at_ms } => {
                let scale = match scale.as_deref().map(Scale::parse) {
                    None => current.as_ref().map_or(Scale::NORMAL, |p| p.scale),
                    Some(Ok(s)) => s,
                    Some(Err(e)) => {
                        self.paused = current;
                        self.status(Some(e.to_string()));
                        return;
                    }
                };
                // A player that reached the end reopens where it stands.
                let current = if self.ended { None } else { current };
                let at = at_ms.unwrap_or(self.pos_ms);
                match self
                    .media
                    .resume(&self.camera, current, at_ms, scale, at)
                    .await
                {
                    Ok(p) => {
                        self.playing = Some(p);
                        self.ended = false;
                        self.in_sync = true;
                        None
                    }
                    Err((_, m)) => Some(m),
                }
            }
            PlaybackControl::Step { forward } => {
                let mut p = match current {
                    Some(p) => p,
                    None => match Player::open(
                        self.media.source.as_ref(),
                        &self.camera,
                        self.pos_ms,
                        Scale::NORMAL,
                        self.media.max_out_fps,
                    )
                    .await
                    {
                        Ok(p) => p,
                        Err((_, m)) => {
                            self.status(Some(m));
                            return;
                        }
                    },
                };
                let stepped = p
                    .step(self.media.source.as_ref(), forward, self.in_sync)
                    .await;
                self.paused = Some(p);
                self.ended = false;
                match stepped {
                    Some((frame, reencoded)) => {
                        self.in_sync = !reencoded;
                        self.send(&frame, 3600).err().map(|e| e.to_string())
                    }
                    None => Some("no frame there".into()),
                }
            }
        };
        self.status(error);
    }
}

/// Carries out [`DeviceCommand::PlaybackWebRtc`] for the unit holding the recordings (an
/// NVR, or a camera for its SD card); other commands are answered `unsupported`.
pub async fn execute(
    media: &Arc<Media>,
    command: DeviceCommand,
    bind_ip: IpAddr,
    shutdown: Shutdown,
) -> DeviceReply {
    let DeviceCommand::PlaybackWebRtc {
        camera,
        start_ms,
        offer,
        token,
        client,
        stun,
    } = command
    else {
        return DeviceReply::Failed {
            code: "unsupported".into(),
            message: "not a playback offer".into(),
        };
    };
    let stun = match stun {
        Some(s) => tokio::net::lookup_host(s)
            .await
            .ok()
            .and_then(|mut a| a.find(SocketAddr::is_ipv4)),
        None => None,
    };
    let req = PlaybackOffer {
        camera,
        start_ms,
        offer,
        token,
        client,
        bind_ip,
        stun,
    };
    match media.webrtc(req, shutdown).await {
        Ok(answer) => DeviceReply::WebRtc { answer },
        Err((code, message)) => DeviceReply::Failed { code, message },
    }
}
