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
//!
//! Talk (intercom, 6.1.8): the camera judges the `talk` scope of the grant like the others.
//! A viewer that holds it, on a camera with a speaker, gets its microphone answered
//! (`sendrecv` audio) and heard through [`crate::speaker`]; any other viewer's microphone is
//! declined (`sendonly` audio) and the camera logs why, while its video and the camera's
//! audio play as usual. A revoked session stops talking with the session, at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peercam_base::Scope;
use peercam_net::Shutdown;
use peercam_p2p::webrtc::{Endpoint, EndpointConfig, Happening, offers_microphone};
use peercam_signal::play::PlayVerdict;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::media::Subscription;
use crate::media::audio::AudioSubscription;
use crate::rtsp::{End, Server, watch_end};
use crate::speaker::Talker;

/// Why a WebRTC session ended in failure (logged with its `Display`).
#[derive(Debug, thiserror::Error)]
enum SessionError {
    /// The WebRTC endpoint failed (ICE, DTLS, SRTP or sending).
    #[error(transparent)]
    Endpoint(peercam_p2p::Error),
}

/// The live views that take trickled candidates (issue 20, RFC 8838): the session id the
/// platform gave with the offer -> the viewer's account and the session task's inbox.
#[derive(Clone, Default)]
pub(crate) struct Trickles(Arc<Mutex<HashMap<String, TrickleInbox>>>);

/// A session's viewer account and the inbox of its task.
type TrickleInbox = (i64, mpsc::Sender<Vec<String>>);

/// Keeps a session in [`Trickles`] while it runs.
struct TrickleEntry(Trickles, String);

impl Drop for TrickleEntry {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.0.lock() {
            m.remove(&self.1);
        }
    }
}

/// Candidate messages a session may have waiting.
const TRICKLE_QUEUE: usize = 16;

/// How long a session may take to connect (ICE and DTLS) before it is dropped.
const CONNECT_WITHIN: Duration = Duration::from_secs(20);

impl Server {
    /// Answers a viewer's WebRTC offer once the platform has granted its token (8.4), and runs
    /// the session in the background. Errors are `(code, message)` for the platform.
    pub(crate) async fn webrtc(
        &self,
        offer: &str,
        token: String,
        client: String,
        (stun, session): (Option<&str>, Option<String>),
        shutdown: Shutdown,
    ) -> Result<String, (String, String)> {
        let fail = |c: &str, m: String| (c.to_owned(), m);
        if offer.len() > peercam_p2p::webrtc::MAX_OFFER {
            return Err(fail("bad_offer", "the SDP offer is too long".into()));
        }
        // H.626.4 8.4 steps 5-8: nothing is answered before the platform consents.
        let grant = match self.settings.judge(token, client.clone()).await {
            Some(PlayVerdict::Granted { grant }) => grant,
            Some(PlayVerdict::Refused { code, message }) => {
                tracing::info!(%client, %code, "WebRTC play refused by the platform");
                return Err((code.into(), message));
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
        let mut sub = self
            .settings
            .hub
            .subscribe(profile)
            .map_err(|e| fail("encoder", e.to_string()))?;
        if self.settings.hub.is_pulled() {
            // A pulled camera says what audio it sends once its stream plays (the RTSP
            // server waits for the parameter sets before DESCRIBE answers, likewise).
            let _ = sub.parameter_sets(Duration::from_secs(5)).await;
        }
        let audio = self
            .settings
            .hub
            .subscribe_audio(caps.audio)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "no audio for a WebRTC viewer");
                None
            });
        let stun = match stun {
            Some(s) => tokio::net::lookup_host(s)
                .await
                .ok()
                .and_then(|mut a| a.find(SocketAddr::is_ipv4)),
            None => None,
        };
        // 6.1.8: the microphone is taken only from a viewer granted `talk`, by a camera that
        // has a speaker.
        let intercom = match &self.settings.intercom {
            Some(ic) if grant.scopes.contains(Scope::Talk) => Some(ic.clone()),
            _ if !offers_microphone(offer) => None,
            Some(_) => {
                tracing::info!(%client, user = grant.user, "talk refused: the viewer's grant does not hold the talk scope; video and the camera's audio only");
                None
            }
            None => {
                tracing::info!(%client, user = grant.user, "talk declined: this camera has no speaker (speaker_wav is not set)");
                None
            }
        };
        let config = EndpointConfig {
            bind_ip: self.settings.webrtc_ip,
            stun,
            audio: audio.as_ref().map(|a| a.codec),
            stun_timeout: Duration::from_millis(800),
            talk: intercom.is_some(),
        };
        let (ep, answer) = Endpoint::answer(offer, &config)
            .await
            .map_err(|e| fail("bad_offer", e.to_string()))?;
        let talker = intercom.filter(|_| ep.talk_answered()).map(Talker::new);
        tracing::info!(%client, user = grant.user, ?profile, local = %ep.local_addr(), talk = talker.is_some(), "WebRTC viewer granted");
        let (user_tx, user_rx) = watch::channel(Some(grant.user));
        let (end_tx, end_rx) = oneshot::channel();
        tokio::spawn(watch_end(
            self.settings.revocations.subscribe(),
            shutdown,
            user_rx,
            end_tx,
        ));
        // Issue 20: the browser trickles its later candidates to this session id.
        let (trickle_tx, trickle_rx) = mpsc::channel(TRICKLE_QUEUE);
        let entry = session.map(|id| {
            if let Ok(mut m) = self.trickles.0.lock() {
                m.insert(id.clone(), (grant.user, trickle_tx));
            }
            TrickleEntry(self.trickles.clone(), id)
        });
        let session = Session {
            ep,
            trickled: trickle_rx,
            sub,
            audio,
            talker,
            floor_note: None,
            half_duplex: self.settings.talk_half_duplex,
            waiting_key: true,
            started: Instant::now(),
        };
        tokio::spawn(async move {
            let _guard = guard;
            let _user = user_tx;
            let _entry = entry;
            match session.run(end_rx).await {
                Ok(why) => tracing::info!(%client, why, "WebRTC session ended"),
                Err(e) => tracing::info!(%client, error = %e, "WebRTC session failed"),
            }
        });
        Ok(answer)
    }
}

impl Server {
    /// Trickle ICE (issue 20): hands `candidates` to the live view `session` when it is
    /// `user`'s. Errors are `(code, message)` for the platform; "not yours" is `no_session`
    /// like "no such session".
    pub(crate) async fn trickle(
        &self,
        session: &str,
        user: i64,
        candidates: Vec<String>,
    ) -> Result<(), (String, String)> {
        let tx = self.trickles.0.lock().ok().and_then(|m| {
            m.get(session)
                .filter(|(u, _)| *u == user)
                .map(|(_, tx)| tx.clone())
        });
        let Some(tx) = tx else {
            return Err(("no_session".into(), "no such live view".into()));
        };
        if candidates.is_empty() {
            // The end of the browser's candidates: nothing for the agent to do.
            return Ok(());
        }
        tx.send(candidates)
            .await
            .map_err(|_| ("no_session".to_owned(), "the live view ended".to_owned()))
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
    ep: Endpoint,
    /// Candidates the browser trickled (issue 20).
    trickled: mpsc::Receiver<Vec<String>>,
    sub: Subscription,
    audio: Option<AudioSubscription>,
    talker: Option<Talker>,
    /// A change of the talker's place at the speaker not yet told (the data channel was
    /// not open yet).
    floor_note: Option<crate::speaker::Floor>,
    /// Mute the camera's audio toward this viewer while it talks.
    half_duplex: bool,
    waiting_key: bool,
    started: Instant,
}

impl Session {
    /// Half duplex: whether this viewer is talking, and so does not get the camera's audio.
    fn muted_for_talk(&self) -> bool {
        self.half_duplex
            && self
                .talker
                .as_ref()
                .is_some_and(|t| t.intercom.is_talking(t.id, Instant::now()))
    }

    async fn run(mut self, mut end: oneshot::Receiver<End>) -> Result<&'static str, SessionError> {
        loop {
            for h in self.ep.drain().map_err(SessionError::Endpoint)? {
                match h {
                    Happening::Connected => {
                        self.waiting_key = true;
                        self.sub.request_idr();
                        tracing::debug!(
                            ms = self.started.elapsed().as_millis(),
                            "WebRTC viewer connected"
                        );
                    }
                    Happening::KeyframeRequest => self.sub.request_idr(),
                    Happening::Closed => return Ok("the viewer left"),
                    Happening::Text(_) => {}
                    Happening::Audio(p) => {
                        if let Some(t) = &mut self.talker
                            && let Some(change) = t.hear(p.codec, p.seq, &p.payload)
                        {
                            self.floor_note = Some(change);
                        }
                    }
                }
            }
            // 6.1.8: tell the viewer whether it is heard, on the data channel its offer
            // carried, once that is open (the latest news only; no channel: the log only).
            if let Some(f) = self.floor_note
                && self.ep.send_text(f.message())
            {
                self.floor_note = None;
            }
            if !self.ep.is_connected() && self.started.elapsed() > CONNECT_WITHIN {
                return Ok("never connected");
            }
            let audio = async {
                match self.audio.as_mut() {
                    Some(a) => a.rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.ep.wait() => r.map_err(SessionError::Endpoint)?,
                au = self.sub.rx.recv() => match au {
                    Ok(au) => {
                        if self.waiting_key && au.key && self.ep.is_connected() {
                            self.waiting_key = false;
                        }
                        if !self.waiting_key {
                            let data = peercam_media::annexb::join(&au.nals);
                            self.ep.send_video(data, au.pts_90k).map_err(SessionError::Endpoint)?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow: resume at the next IDR, which we ask for.
                        self.waiting_key = true;
                        self.sub.request_idr();
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok("the encoder stopped"),
                },
                a = audio => match a {
                    Ok(_) if self.muted_for_talk() => {}
                    Ok(p) => self.ep.send_audio(p.payload.clone(), p.media_ts).map_err(SessionError::Endpoint)?,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => self.audio = None,
                },
                Some(lines) = self.trickled.recv() => {
                    for line in &lines {
                        if !self.ep.add_remote_candidate(line) {
                            tracing::debug!(candidate = %line, "trickled candidate skipped");
                        }
                    }
                }
                () = tokio::time::sleep(Duration::from_secs(1)), if !self.ep.is_connected() => {}
                e = &mut end => {
                    // Talk ends with the session, before anything else arrives.
                    self.talker = None;
                    self.ep.close();
                    return Ok(match e {
                        Ok(End::Revoked) => "revoked by the platform",
                        _ => "shutdown",
                    });
                }
            }
        }
    }
}
