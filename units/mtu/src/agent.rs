//! The MTU's link with the platform: registration like a device (8.1), load reports for
//! MTU selection (7.2, Sd), and the MTU's requests: viewers' tokens (Dm) and cameras'
//! upstreams (Mp).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::Backoff;
use peercam_net::Shutdown;
use peercam_net::rustls::ClientConfig;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_signal::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::link::{DeviceLink, LinkEvent};
use peercam_signal::ps::RefusalCode;
use peercam_signal::relay::MtuAddresses;
use tokio::sync::{mpsc, oneshot, watch};

use crate::Config;
use crate::relay::Stats;

/// Where the MTU stands with the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtuStatus {
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

/// A request for the platform, answered on `reply`.
#[derive(Debug)]
pub(crate) struct PlatformReq {
    pub(crate) request: DeviceRequest,
    pub(crate) reply: oneshot::Sender<PlatformAnswer>,
}

pub(crate) fn unavailable() -> PlatformAnswer {
    PlatformAnswer::Refused {
        code: "unavailable".into(),
        message: "the MTU is not connected to the platform".into(),
    }
}

pub(crate) struct Agent {
    pub(crate) config: Config,
    pub(crate) identity: DeviceIdentity,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) status: watch::Sender<MtuStatus>,
    pub(crate) addresses: MtuAddresses,
    pub(crate) stats: Arc<Stats>,
    pub(crate) relay: Arc<crate::relay::Relay>,
}

impl Agent {
    pub(crate) async fn run(self, mut requests: mpsc::Receiver<PlatformReq>, shutdown: Shutdown) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.reconnect_initial_ms),
            Duration::from_millis(self.config.reconnect_max_ms),
        );
        loop {
            let _ = self.status.send(MtuStatus::Connecting);
            match self.session(&mut requests, &shutdown, &mut backoff).await {
                Ok(()) => return,
                Err(reason) => {
                    tracing::warn!(mtu = %self.identity.device_id, %reason, "platform link down");
                }
            }
            let delay = match &*self.status.borrow() {
                MtuStatus::Refused { code, .. } if !code.is_transient() => Duration::from_secs(30),
                _ => backoff.next_delay(rand::random::<f64>()),
            };
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    r = requests.recv() => match r {
                        Some(req) => { let _ = req.reply.send(unavailable()); }
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
        let capacity = self.config.capacity;
        link.report_mtu(self.addresses.clone(), self.stats.load(capacity));
        let mut answers: HashMap<u64, oneshot::Sender<PlatformAnswer>> = HashMap::new();
        let mut report =
            tokio::time::interval(Duration::from_millis(self.config.report_ms.max(100)));
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            let mut end = None;
            while let Some(ev) = link.poll_event() {
                match ev {
                    LinkEvent::Registered { session } => {
                        tracing::info!(mtu = %self.identity.device_id, %session, "MTU registered with the SCU");
                        backoff.reset();
                        let _ = self.status.send(MtuStatus::Registered { session });
                    }
                    LinkEvent::Refused { code, message } => {
                        tracing::error!(mtu = %self.identity.device_id, ?code, %message, "registration refused");
                        let _ = self.status.send(MtuStatus::Refused {
                            code,
                            message: message.clone(),
                        });
                        end = Some(format!("refused: {message}"));
                    }
                    LinkEvent::Command {
                        id,
                        command: DeviceCommand::RelayRevoke { camera, user },
                    } => {
                        // SECURITY.md D5: access changed; the relayed sessions concerned end now.
                        let n = self.relay.revoke(&camera, user);
                        tracing::info!(%camera, ?user, ended = n, "relayed sessions revoked");
                        link.reply(id, DeviceReply::Done);
                    }
                    LinkEvent::Command { id, .. } => link.reply(
                        id,
                        DeviceReply::Failed {
                            code: "unsupported".into(),
                            message: "an MTU takes no such command".into(),
                        },
                    ),
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
                    Some(PlatformReq { request, reply }) => match link.request(request) {
                        Some(id) => { answers.insert(id, reply); }
                        None => { let _ = reply.send(unavailable()); }
                    },
                    None => break Ok(()),
                },
                _ = report.tick() => link.report_mtu(self.addresses.clone(), self.stats.load(capacity)),
                () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
                () = shutdown.wait() => {
                    let _ = sink.close().await;
                    break Ok(());
                }
            }
        };
        for (_, w) in answers {
            let _ = w.send(unavailable());
        }
        result
    }
}
