//! The NVR's link with the platform (Ps, as a device): registration (8.1), commands for
//! recording (8.7.2), play checks for its playback clients (8.4 steps 5-8 applied to
//! recordings) and its own stream requests (8.7.2.1 steps 16-18).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::Backoff;
use peercam_net::Shutdown;
use peercam_net::rustls::ClientConfig;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_signal::cmd::{DeviceDescription, DeviceReply, DeviceRequest, PlatformAnswer};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::link::{DeviceLink, LinkEvent};
use peercam_signal::play::PlayVerdict;
use peercam_signal::ps::RefusalCode;
use tokio::sync::{mpsc, oneshot, watch};

use crate::Config;
use crate::cameras::Cameras;

/// Where the NVR stands with the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NvrStatus {
    /// Connecting or waiting to reconnect.
    Connecting,
    /// Registered.
    Registered {
        /// The SCU's session id.
        session: String,
    },
    /// Refused.
    Refused {
        /// Why.
        code: RefusalCode,
        /// Explanation.
        message: String,
    },
}

/// What the NVR's other parts ask of the platform.
#[derive(Debug)]
pub(crate) enum PlatformReq {
    /// A playback client's token: legitimate for this recording?
    AuthorizePlay {
        token: String,
        client: String,
        reply: oneshot::Sender<PlayVerdict>,
    },
    /// A device request (the stream of an attached camera).
    Request {
        request: DeviceRequest,
        reply: oneshot::Sender<PlatformAnswer>,
    },
}

pub(crate) struct Agent {
    pub(crate) config: Config,
    pub(crate) identity: DeviceIdentity,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) status: watch::Sender<NvrStatus>,
    pub(crate) advertise: Vec<String>,
    pub(crate) cameras: Arc<Cameras>,
    pub(crate) started: Instant,
}

fn unavailable_verdict() -> PlayVerdict {
    PlayVerdict::Refused {
        code: "unavailable".into(),
        message: "the NVR cannot reach the platform to check the request".into(),
    }
}

fn unavailable_answer() -> PlatformAnswer {
    PlatformAnswer::Refused {
        code: "unavailable".into(),
        message: "the NVR is not connected to the platform".into(),
    }
}

fn fail(req: PlatformReq) {
    match req {
        PlatformReq::AuthorizePlay { reply, .. } => {
            let _ = reply.send(unavailable_verdict());
        }
        PlatformReq::Request { reply, .. } => {
            let _ = reply.send(unavailable_answer());
        }
    }
}

impl Agent {
    pub(crate) async fn run(self, mut requests: mpsc::Receiver<PlatformReq>, shutdown: Shutdown) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.reconnect_initial_ms),
            Duration::from_millis(self.config.reconnect_max_ms),
        );
        loop {
            let _ = self.status.send(NvrStatus::Connecting);
            match self.session(&mut requests, &shutdown, &mut backoff).await {
                Ok(()) => return,
                Err(reason) => {
                    tracing::warn!(device = %self.identity.device_id, %reason, "platform link down");
                }
            }
            let delay = match &*self.status.borrow() {
                NvrStatus::Refused { code, .. } if !code.is_transient() => Duration::from_secs(30),
                _ => backoff.next_delay(rand::random::<f64>()),
            };
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    r = requests.recv() => match r {
                        Some(req) => fail(req),
                        None => return,
                    },
                    () = shutdown.wait() => return,
                }
            }
        }
    }

    async fn session(
        &self,
        requests: &mut mpsc::Receiver<PlatformReq>,
        shutdown: &Shutdown,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        let ws = tokio::select! {
            r = peercam_net::ws::connect(&self.config.scu_url, self.tls.clone(), Duration::from_secs(10)) => r.map_err(|e| e.to_string())?,
            () = shutdown.wait() => return Ok(()),
        };
        let (mut sink, mut stream) = ws.split();
        let key = self.identity.signing_key().map_err(|e| e.to_string())?;
        let mut link = DeviceLink::new(
            Instant::now(),
            self.identity.device_id.clone(),
            self.identity.kind,
            key,
            crate::SW_VERSION,
        );
        link.report_endpoints(self.advertise.clone());
        let mut connected_at = Instant::now();
        let mut plays: HashMap<u64, oneshot::Sender<PlayVerdict>> = HashMap::new();
        let mut answers: HashMap<u64, oneshot::Sender<PlatformAnswer>> = HashMap::new();
        let (replies_tx, mut replies_rx) = mpsc::channel::<(u64, DeviceReply)>(32);
        let result = loop {
            let mut end = None;
            while let Some(ev) = link.poll_event() {
                match ev {
                    LinkEvent::Registered { session } => {
                        tracing::info!(device = %self.identity.device_id, %session, "NVR registered with the SCU");
                        backoff.reset();
                        connected_at = Instant::now();
                        let _ = self.status.send(NvrStatus::Registered { session });
                    }
                    LinkEvent::Refused { code, message } => {
                        tracing::error!(device = %self.identity.device_id, ?code, %message, "registration refused");
                        let _ = self.status.send(NvrStatus::Refused {
                            code,
                            message: message.clone(),
                        });
                        end = Some(format!("refused: {message}"));
                    }
                    LinkEvent::Command { id, command } => {
                        // Recording commands touch the disk: answered when done.
                        let cams = self.cameras.clone();
                        let tx = replies_tx.clone();
                        let describe = DeviceDescription {
                            sw_version: crate::SW_VERSION.into(),
                            vendor: self.identity.vendor.clone(),
                            model: self.identity.model.clone(),
                            uptime_s: self.started.elapsed().as_secs(),
                            connected_s: connected_at.elapsed().as_secs(),
                            clock_offset_us: None,
                            clock_jitter_us: None,
                        };
                        tokio::spawn(async move {
                            let reply = cams.execute(command, describe).await;
                            let _ = tx.send((id, reply)).await;
                        });
                    }
                    LinkEvent::PlayVerdict { re, verdict } => {
                        if let Some(w) = plays.remove(&re) {
                            let _ = w.send(verdict);
                        }
                    }
                    LinkEvent::Answer { re, answer } => {
                        if let Some(w) = answers.remove(&re) {
                            let _ = w.send(answer);
                        }
                    }
                    LinkEvent::Lost { reason } => end = Some(reason),
                    _ => {}
                }
            }
            let mut failed = None;
            while let Some(frame) = link.poll_transmit() {
                if let Err(e) = sink
                    .feed(Message::text(String::from_utf8(frame).unwrap_or_default()))
                    .await
                {
                    failed = Some(e.to_string());
                    break;
                }
            }
            if let Some(reason) = end.or(failed) {
                let _ = sink.close().await;
                break Err(reason);
            }
            if let Err(e) = sink.flush().await {
                break Err(e.to_string());
            }
            if link.is_closed() {
                break Err("link closed".into());
            }
            let deadline = link
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        if let Err(e) = link.handle_input(Instant::now(), t.as_bytes()) {
                            break Err(e.to_string());
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break Err("SCU closed the connection".into()),
                    Some(Ok(_)) => {}
                },
                r = requests.recv() => match r {
                    Some(PlatformReq::AuthorizePlay { token, client, reply }) => match link.authorize_play(token, client) {
                        Some(id) => { plays.insert(id, reply); }
                        None => { let _ = reply.send(unavailable_verdict()); }
                    },
                    Some(PlatformReq::Request { request, reply }) => match link.request(request) {
                        Some(id) => { answers.insert(id, reply); }
                        None => { let _ = reply.send(unavailable_answer()); }
                    },
                    None => break Ok(()),
                },
                () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
                Some((id, reply)) = replies_rx.recv() => link.reply(id, reply),
                () = shutdown.wait() => {
                    let _ = sink.close().await;
                    break Ok(());
                }
            }
        };
        for (_, w) in plays {
            let _ = w.send(unavailable_verdict());
        }
        for (_, w) in answers {
            let _ = w.send(unavailable_answer());
        }
        result
    }
}
