//! The platform link of a service-like device (NVR, MTU): the IO shell around
//! [`peercam_signal::link::DeviceLink`] that connects to an SCU over WSS, registers (H.626.4
//! 8.1), reconnects with jittered backoff, answers commands through a [`Device`], and carries
//! the device's own requests to the platform (play checks, 8.4 steps 5-8; platform requests
//! such as 8.7.2.1 steps 16-18 or the MTU's Mp and Dm).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::Backoff;
use peercam_signal::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::link::{DeviceLink, LinkEvent};
use peercam_signal::play::PlayVerdict;
use peercam_signal::ps::RefusalCode;
use rustls::ClientConfig;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::Shutdown;

/// Where a device stands with the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkStatus {
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

/// What a device's other parts ask of the platform.
#[derive(Debug)]
pub enum PlatformReq {
    /// A client's token: legitimate for this device?
    AuthorizePlay {
        /// The token.
        token: String,
        /// The client's address.
        client: String,
        /// Where the verdict goes.
        reply: oneshot::Sender<PlayVerdict>,
    },
    /// A device request.
    Request {
        /// The request.
        request: DeviceRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<PlatformAnswer>,
    },
}

impl PlatformReq {
    /// Answers the request with "unavailable" (no platform link).
    pub fn fail(self) {
        match self {
            Self::AuthorizePlay { reply, .. } => {
                let _ = reply.send(PlayVerdict::Refused {
                    code: peercam_signal::refusal::Refusal::Unavailable,
                    message: "the device cannot reach the platform to check the request".into(),
                });
            }
            Self::Request { reply, .. } => {
                let _ = reply.send(unavailable_answer());
            }
        }
    }
}

/// The answer to a request that cannot reach the platform.
pub fn unavailable_answer() -> PlatformAnswer {
    PlatformAnswer::Refused {
        code: peercam_signal::refusal::Refusal::Unavailable,
        message: "the device is not connected to the platform".into(),
    }
}

/// A boxed future of a command's reply.
pub type ReplyFuture = Pin<Box<dyn Future<Output = DeviceReply> + Send>>;

/// What the link needs from the device behind it.
pub trait Device: Send + Sync + 'static {
    /// Called on every fresh link before registration: queue what the SCU must hear after
    /// each registration (endpoints, reports).
    fn prepare(&self, link: &mut DeviceLink);
    /// Executes a command; `connected_s` is how long the current registration has lasted.
    fn command(&self, command: DeviceCommand, connected_s: u64) -> ReplyFuture;
    /// Called every [`LinkConfig::tick`] while connected (periodic reports).
    fn tick(&self, _link: &mut DeviceLink) {}
}

/// How to reach the platform.
#[derive(Clone)]
pub struct LinkConfig {
    /// The SCU, `wss://HOST:PORT/`.
    pub scu_url: String,
    /// TLS towards the SCU (pinned platform CA).
    pub tls: Arc<ClientConfig>,
    /// The device's identity.
    pub identity: DeviceIdentity,
    /// Software version reported in the hello.
    pub sw_version: &'static str,
    /// Reconnect backoff, first delay.
    pub reconnect_initial: Duration,
    /// Reconnect backoff, ceiling.
    pub reconnect_max: Duration,
    /// Period of [`Device::tick`].
    pub tick: Duration,
}

/// Runs the link until `shutdown` or until `requests` closes.
pub async fn run<D: Device>(
    config: LinkConfig,
    device: Arc<D>,
    status: watch::Sender<LinkStatus>,
    mut requests: mpsc::Receiver<PlatformReq>,
    shutdown: Shutdown,
) {
    let mut backoff = Backoff::new(config.reconnect_initial, config.reconnect_max);
    loop {
        let _ = status.send(LinkStatus::Connecting);
        match session(
            &config,
            &device,
            &status,
            &mut requests,
            &shutdown,
            &mut backoff,
        )
        .await
        {
            Ok(()) => return,
            Err(reason) => {
                tracing::warn!(device = %config.identity.device_id, %reason, "platform link down");
            }
        }
        let delay = match &*status.borrow() {
            LinkStatus::Refused { code, .. } if !code.is_transient() => Duration::from_secs(30),
            _ => backoff.next_delay(rand_unit()),
        };
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                r = requests.recv() => match r {
                    Some(req) => req.fail(),
                    None => return,
                },
                () = shutdown.wait() => return,
            }
        }
    }
}

fn rand_unit() -> f64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

async fn session<D: Device>(
    config: &LinkConfig,
    device: &Arc<D>,
    status: &watch::Sender<LinkStatus>,
    requests: &mut mpsc::Receiver<PlatformReq>,
    shutdown: &Shutdown,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let id = &config.identity.device_id;
    let ws = tokio::select! {
        r = crate::ws::connect(&config.scu_url, config.tls.clone(), Duration::from_secs(10)) => r.map_err(|e| e.to_string())?,
        () = shutdown.wait() => return Ok(()),
    };
    let (mut sink, mut stream) = ws.split();
    let key = config.identity.signing_key().map_err(|e| e.to_string())?;
    let mut link = DeviceLink::new(
        Instant::now(),
        id.clone(),
        config.identity.kind,
        key,
        config.sw_version,
    );
    device.prepare(&mut link);
    let mut connected_at = Instant::now();
    let mut plays: HashMap<u64, oneshot::Sender<PlayVerdict>> = HashMap::new();
    let mut answers: HashMap<u64, oneshot::Sender<PlatformAnswer>> = HashMap::new();
    let (replies_tx, mut replies_rx) = mpsc::channel::<(u64, DeviceReply)>(32);
    let mut tick = tokio::time::interval(config.tick.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        let mut end = None;
        while let Some(ev) = link.poll_event() {
            match ev {
                LinkEvent::Registered { session } => {
                    tracing::info!(device = %id, %session, "registered with the SCU");
                    backoff.reset();
                    connected_at = Instant::now();
                    let _ = status.send(LinkStatus::Registered { session });
                }
                LinkEvent::Refused { code, message } => {
                    tracing::error!(device = %id, ?code, %message, "registration refused");
                    let _ = status.send(LinkStatus::Refused {
                        code,
                        message: message.clone(),
                    });
                    end = Some(format!("refused: {message}"));
                }
                LinkEvent::Command { id, command } => {
                    // Commands may touch disks or networks: answered when done.
                    let reply = device.command(command, connected_at.elapsed().as_secs());
                    let tx = replies_tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send((id, reply.await)).await;
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
                    None => PlatformReq::AuthorizePlay { token: String::new(), client: String::new(), reply }.fail(),
                },
                Some(PlatformReq::Request { request, reply }) => match link.request(request) {
                    Some(id) => { answers.insert(id, reply); }
                    None => { let _ = reply.send(unavailable_answer()); }
                },
                None => break Ok(()),
            },
            _ = tick.tick() => device.tick(&mut link),
            () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
            Some((id, reply)) = replies_rx.recv() => link.reply(id, reply),
            () = shutdown.wait() => {
                let _ = sink.close().await;
                break Ok(());
            }
        }
    };
    for (_, w) in plays {
        PlatformReq::AuthorizePlay {
            token: String::new(),
            client: String::new(),
            reply: w,
        }
        .fail();
    }
    for (_, w) in answers {
        let _ = w.send(unavailable_answer());
    }
    result
}
