//! The device's link with the platform (Ps): registration (H.626.4 8.1), heartbeats,
//! commands, endpoint reports (8.3), play checks (8.4 steps 5-8) and revocations (D5).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::Backoff;
use peercam_net::Shutdown;
use peercam_net::rustls::ClientConfig;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_signal::cmd::{DeviceCommand, DeviceDescription, DeviceReply};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::link::{DeviceLink, LinkEvent};
use peercam_signal::play::PlayVerdict;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::{Config, PuStatus, SW_VERSION};

/// What the media side asks of the platform link.
#[derive(Debug)]
pub enum PlatformRequest {
    /// H.626.4 8.4 step 5: is this viewer's token legitimate?
    AuthorizePlay {
        /// The token from the RTSP request.
        token: String,
        /// The viewer's address.
        client: String,
        /// Where the verdict goes.
        reply: oneshot::Sender<PlayVerdict>,
    },
}

/// A revocation: end the sessions of this user (`None`: of everyone).
pub(crate) type Revocation = Option<i64>;

pub(crate) struct Agent {
    pub(crate) config: Config,
    pub(crate) identity: DeviceIdentity,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) status: watch::Sender<PuStatus>,
    pub(crate) started: Instant,
    pub(crate) registrations: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) advertise: Vec<String>,
    pub(crate) revocations: broadcast::Sender<Revocation>,
}

fn unavailable() -> PlayVerdict {
    PlayVerdict::Refused {
        code: "unavailable".into(),
        message: "the camera cannot reach the platform to check the request".into(),
    }
}

impl Agent {
    pub(crate) async fn run(
        self,
        mut requests: mpsc::Receiver<PlatformRequest>,
        shutdown: Shutdown,
    ) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.reconnect_initial_ms),
            Duration::from_millis(self.config.reconnect_max_ms),
        );
        loop {
            let _ = self.status.send(PuStatus::Connecting);
            match self.session(&mut requests, &shutdown, &mut backoff).await {
                Ok(()) => return,
                Err(reason) => {
                    tracing::warn!(device = %self.identity.device_id, %reason, "platform link down")
                }
            }
            let delay = match &*self.status.borrow() {
                // A definitive refusal (unknown device, wrong key) is retried slowly only.
                PuStatus::Refused { code, .. } if !code.is_transient() => Duration::from_secs(30),
                _ => backoff.next_delay(rand::random::<f64>()),
            };
            // While away from the platform no viewer can be vouched for: fail closed.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    r = requests.recv() => match r {
                        Some(PlatformRequest::AuthorizePlay { reply, .. }) => { let _ = reply.send(unavailable()); }
                        None => return,
                    },
                    () = shutdown.wait() => return,
                }
            }
        }
    }

    /// One connection; `Ok` only on shutdown.
    async fn session(
        &self,
        requests: &mut mpsc::Receiver<PlatformRequest>,
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
            SW_VERSION,
        );
        // H.626.4 8.3: tell the platform where viewers reach us (sent once registered).
        link.report_endpoints(self.advertise.clone());
        let mut connected_at = Instant::now();
        let mut pending: HashMap<u64, oneshot::Sender<PlayVerdict>> = HashMap::new();
        let result = loop {
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
            if let Some(e) = failed {
                break Err(e);
            }
            if let Err(e) = sink.flush().await {
                break Err(e.to_string());
            }
            let mut end = None;
            while let Some(ev) = link.poll_event() {
                match ev {
                    LinkEvent::Registered { session } => {
                        tracing::info!(device = %self.identity.device_id, %session, "registered with the SCU");
                        backoff.reset();
                        connected_at = Instant::now();
                        self.registrations.fetch_add(1, Ordering::Relaxed);
                        let _ = self.status.send(PuStatus::Registered { session });
                    }
                    LinkEvent::Refused { code, message } => {
                        tracing::error!(device = %self.identity.device_id, ?code, %message, "registration refused");
                        let _ = self.status.send(PuStatus::Refused {
                            code,
                            message: message.clone(),
                        });
                        end = Some(format!("refused: {message}"));
                    }
                    LinkEvent::Command { id, command } => {
                        let reply = self.execute(command, connected_at);
                        link.reply(id, reply);
                    }
                    LinkEvent::PlayVerdict { re, verdict } => {
                        if let Some(w) = pending.remove(&re) {
                            let _ = w.send(verdict);
                        }
                    }
                    LinkEvent::Revoke { user } => {
                        tracing::info!(device = %self.identity.device_id, ?user, "platform revoked live sessions");
                        let _ = self.revocations.send(user);
                    }
                    LinkEvent::Lost { reason } => end = Some(reason),
                    _ => {}
                }
            }
            if let Some(reason) = end {
                break Err(reason);
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
                    Some(PlatformRequest::AuthorizePlay { token, client, reply }) => match link.authorize_play(token, client) {
                        Some(id) => { pending.insert(id, reply); }
                        None => { let _ = reply.send(unavailable()); }
                    },
                    None => break Ok(()),
                },
                () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
                () = shutdown.wait() => {
                    let _ = sink.close().await;
                    break Ok(());
                }
            }
        };
        for (_, w) in pending {
            let _ = w.send(unavailable());
        }
        result
    }

    fn execute(&self, command: DeviceCommand, connected_at: Instant) -> DeviceReply {
        match command {
            DeviceCommand::Describe => DeviceReply::Description(DeviceDescription {
                sw_version: SW_VERSION.into(),
                vendor: self.identity.vendor.clone(),
                model: self.identity.model.clone(),
                uptime_s: self.started.elapsed().as_secs(),
                connected_s: connected_at.elapsed().as_secs(),
            }),
            _ => DeviceReply::Failed {
                code: "unsupported".into(),
                message: "this agent does not know the command".into(),
            },
        }
    }
}
