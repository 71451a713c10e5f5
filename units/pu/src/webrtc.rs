//! Live view for browsers: the camera's WebRTC endpoint (H.626.4 6.3.1, 8.4; issue 7).
//!
//! A viewer's SDP offer reaches the camera through the platform
//! ([`DeviceCommand::WebRtc`](peercam_signal::cmd::DeviceCommand::WebRtc)) with a one-time
//! play token. The camera has the platform judge the token exactly as for an RTSP DESCRIBE
//! (8.4 steps 5-8) before it answers anything. It then binds a UDP socket on its LAN
//! address, gathers a host and (with the MTU's STUN server) a server-reflexive candidate, and
//! answers with [`str0m`]: ICE, DTLS-SRTP, H.264 from the profile's encoder (the same one RTSP
//! viewers share) and G.711/G.722 audio. The browser reaches the camera directly when it can,
//! and through the MTU's TURN relay (its own relayed candidate) when it cannot.
//!
//! The session runs as one task: socket datagrams, the engine's timeouts, access units and
//! audio frames in; it ends when the viewer goes (ICE disconnected, DTLS closed), when the
//! platform revokes the viewer (8.6, D5), or at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use peercam_net::Shutdown;
use peercam_signal::play::{AudioCodec, PlayVerdict};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, oneshot, watch};

use crate::media::audio::{AudioPacket, AudioSubscription};
use crate::media::{AccessUnit, Subscription};
use crate::rtsp::{End, Server, watch_end};

/// How long a session may take to connect (ICE and DTLS) before it is dropped.
const CONNECT_WITHIN: Duration = Duration::from_secs(20);
/// The longest SDP offer accepted.
const MAX_OFFER: usize = 32 * 1024;

impl Server {
    /// Answers a viewer's WebRTC offer once the platform has granted its token (8.4), and runs
    /// the session in the background. Errors are `(code, message)` for the platform.
    pub(crate) async fn webrtc(
        &self,
        offer: &str,
        token: String,
        client: String,
        stun: Option<&str>,
        shutdown: Shutdown,
    ) -> Result<String, (String, String)> {
        let fail = |c: &str, m: String| (c.to_owned(), m);
        if offer.len() > MAX_OFFER {
            return Err(fail("bad_offer", "the SDP offer is too long".into()));
        }
        // H.626.4 8.4 steps 5-8: nothing is answered before the platform consents.
        let grant = match self.settings.judge(token, client.clone()).await {
            Some(PlayVerdict::Granted { grant }) => grant,
            Some(PlayVerdict::Refused { code, message }) => {
                tracing::info!(%client, %code, "WebRTC play refused by the platform");
                return Err((code, message));
            }
            None => return Err(fail("unavailable", "the platform did not answer".into())),
        };
        let n = self.sessions.fetch_add(1, Ordering::AcqRel);
        let guard = SessionCount(self.sessions.clone());
        if n >= self.settings.max_sessions {
            return Err(fail(
                "busy",
                "the camera serves as many viewers as it can".into(),
            ));
        }
        let (caps, profile) = self.settings.viewer_caps(&grant);
        let sub = self
            .settings
            .hub
            .subscribe(profile)
            .map_err(|e| fail("encoder", e))?;
        let audio = self
            .settings
            .hub
            .subscribe_audio(caps.audio)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "no audio for a WebRTC viewer");
                None
            });
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| fail("bad_offer", format!("the SDP offer does not parse: {e}")))?;
        let socket = UdpSocket::bind(SocketAddr::new(self.settings.webrtc_ip, 0))
            .await
            .map_err(|e| fail("socket", format!("binding the WebRTC socket: {e}")))?;
        let stun = match stun {
            Some(s) => tokio::net::lookup_host(s)
                .await
                .ok()
                .and_then(|mut a| a.find(SocketAddr::is_ipv4)),
            None => None,
        };
        let candidates = peercam_p2p::gather(&socket, stun, Duration::from_millis(800))
            .await
            .map_err(|e| fail("socket", e.to_string()))?;
        let audio_codec = audio.as_ref().map_or(AudioCodec::None, |a| a.codec);
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_pcmu(audio_codec == AudioCodec::Pcmu, false)
            .enable_pcma(audio_codec == AudioCodec::Pcma, false)
            .enable_g722(audio_codec == AudioCodec::G722, false)
            .build(Instant::now());
        let local = socket
            .local_addr()
            .map_err(|e| fail("socket", e.to_string()))?;
        for c in &candidates {
            let cand = match c.related {
                Some(base) => Candidate::server_reflexive(c.addr, base, "udp"),
                None => Candidate::host(c.addr, "udp"),
            };
            match cand {
                Ok(cand) => {
                    rtc.add_local_candidate(cand);
                }
                Err(e) => tracing::debug!(addr = %c.addr, error = %e, "candidate skipped"),
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| fail("bad_offer", format!("cannot answer the offer: {e}")))?;
        tracing::info!(%client, user = grant.user, ?profile, %local, "WebRTC viewer granted");
        let (user_tx, user_rx) = watch::channel(Some(grant.user));
        let (end_tx, end_rx) = oneshot::channel();
        tokio::spawn(watch_end(
            self.settings.revocations.subscribe(),
            shutdown,
            user_rx,
            end_tx,
        ));
        let session = Session {
            rtc,
            socket,
            local,
            sub,
            audio,
            video: None,
            audio_mid: None,
            connected: false,
            waiting_key: true,
            started: Instant::now(),
        };
        tokio::spawn(async move {
            let _guard = guard;
            let _user = user_tx;
            match session.run(end_rx).await {
                Ok(why) => tracing::info!(%client, why, "WebRTC session ended"),
                Err(e) => tracing::info!(%client, error = %e, "WebRTC session failed"),
            }
        });
        Ok(answer.to_sdp_string())
    }
}

/// Counts a session while it lives.
struct SessionCount(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for SessionCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Session {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    sub: Subscription,
    audio: Option<AudioSubscription>,
    /// The video m-line and the H.264 payload type negotiated on it.
    video: Option<(Mid, Pt)>,
    audio_mid: Option<(Mid, Pt)>,
    connected: bool,
    waiting_key: bool,
    started: Instant,
}

impl Session {
    async fn run(mut self, mut end: oneshot::Receiver<End>) -> Result<&'static str, String> {
        let mut buf = vec![0u8; 2048];
        loop {
            let Some(deadline) = self.drain()? else {
                return Ok("closed");
            };
            if !self.connected && self.started.elapsed() > CONNECT_WITHIN {
                return Ok("never connected");
            }
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            let audio = async {
                match self.audio.as_mut() {
                    Some(a) => a.rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r.map_err(|e| e.to_string())?;
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    });
                    if self.rtc.accepts(&input) {
                        self.rtc.handle_input(input).map_err(|e| e.to_string())?;
                    }
                }
                au = self.sub.rx.recv() => match au {
                    Ok(au) => self.video(&au)?,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow: resume at the next IDR, which we ask for.
                        self.waiting_key = true;
                        self.sub.request_idr();
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok("the encoder stopped"),
                },
                a = audio => match a {
                    Ok(p) => self.audio(&p)?,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => self.audio = None,
                },
                () = tokio::time::sleep(wait) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now())).map_err(|e| e.to_string())?;
                }
                e = &mut end => {
                    self.rtc.disconnect();
                    return Ok(match e {
                        Ok(End::Revoked) => "revoked by the platform",
                        _ => "shutdown",
                    });
                }
            }
        }
    }

    /// Polls the engine until it wants time (its deadline) or is closed (`None`).
    fn drain(&mut self) -> Result<Option<Instant>, String> {
        loop {
            if !self.rtc.is_alive() {
                return Ok(None);
            }
            match self.rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Timeout(t) => return Ok(Some(t)),
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.waiting_key = true;
                        self.sub.request_idr();
                        tracing::debug!(
                            ms = self.started.elapsed().as_millis(),
                            "WebRTC viewer connected"
                        );
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Ok(None);
                    }
                    Event::MediaAdded(m) => self.media_added(m.mid, m.kind),
                    Event::KeyframeRequest(_) => self.sub.request_idr(),
                    _ => {}
                },
            }
        }
    }

    fn media_added(&mut self, mid: Mid, kind: MediaKind) {
        let Some(w) = self.rtc.writer(mid) else {
            return;
        };
        let params: Vec<_> = w.payload_params().cloned().collect();
        match kind {
            MediaKind::Video => {
                // Packetization mode 1, constrained baseline first (what the encoder makes).
                let h264 = |p: &&str0m::format::PayloadParams| p.spec().codec == Codec::H264;
                let pick = params
                    .iter()
                    .filter(h264)
                    .filter(|p| p.spec().format.packetization_mode == Some(1))
                    .min_by_key(|p| {
                        let pl = p.spec().format.profile_level_id.unwrap_or(0);
                        u8::from(pl >> 16 != 0x42)
                    })
                    .or_else(|| params.iter().find(h264));
                if let Some(p) = pick {
                    self.video = Some((mid, p.pt()));
                }
            }
            MediaKind::Audio => {
                let want = match self.audio.as_ref().map(|a| a.codec) {
                    Some(AudioCodec::Pcmu) => Codec::PCMU,
                    Some(AudioCodec::Pcma) => Codec::PCMA,
                    Some(AudioCodec::G722) => Codec::G722,
                    _ => return,
                };
                if let Some(p) = params.iter().find(|p| p.spec().codec == want) {
                    self.audio_mid = Some((mid, p.pt()));
                }
            }
        }
    }

    fn video(&mut self, au: &AccessUnit) -> Result<(), String> {
        let Some((mid, pt)) = self.video else {
            return Ok(());
        };
        if !self.connected {
            return Ok(());
        }
        if self.waiting_key {
            if !au.key {
                return Ok(());
            }
            self.waiting_key = false;
        }
        let mut data = Vec::with_capacity(au.nals.iter().map(|n| n.len() + 4).sum());
        peercam_rtp::h264::write_annex_b(&au.nals, &mut data);
        if let Some(w) = self.rtc.writer(mid) {
            w.write(pt, Instant::now(), MediaTime::from_90khz(au.pts_90k), data)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn audio(&mut self, p: &AudioPacket) -> Result<(), String> {
        let Some((mid, pt)) = self.audio_mid else {
            return Ok(());
        };
        if !self.connected {
            return Ok(());
        }
        let t = MediaTime::new(u64::from(p.media_ts), Frequency::EIGHT_KHZ);
        if let Some(w) = self.rtc.writer(mid) {
            w.write(pt, Instant::now(), t, p.payload.clone())
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
