//! The platform link of every device (PU, NVR, MTU): the IO shell around
//! [`peercam_signal::link::DeviceLink`] that connects to an SCU over WSS, registers (H.626.4
//! 8.1), reconnects with jittered backoff (docs/security.md D12), answers commands through a
//! [`Device`], and carries the device's own requests to the platform (play checks, 8.4 steps
//! 5-8; platform requests such as 8.7.2.1 steps 16-18 or the MTU's Mp and Dm). What one
//! kind of device adds to each connection (the camera's clock synchronisation, 7.2, and its
//! WLAN watch, 6.1.11) comes through a per-connection [`Session`].

use std::collections::HashMap;
use std::future::{Future, pending, ready};
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

use crate::{NetError, Shutdown};

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

/// A boxed future a [`Session`] hands to the link.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a connection to the platform ended (logged, then the link reconnects).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Connecting or writing failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The identity's key is unusable.
    #[error("identity key: {0}")]
    Key(#[from] peercam_signal::register::KeyError),
    /// The SCU sent what the link state machine refuses.
    #[error("link: {0}")]
    Protocol(#[from] peercam_signal::link::LinkError),
    /// The SCU refused the registration.
    #[error("refused: {0}")]
    Refused(String),
    /// The link was lost (the state machine said why) or closed.
    #[error("{0}")]
    Lost(String),
    /// The SCU closed the connection.
    #[error("SCU closed the connection")]
    Closed,
    /// The device ended the connection (a factory reset, a change of network).
    #[error("{0}")]
    Device(&'static str),
}

/// What a device adds to one connection of its link; every method has a default that does
/// nothing. A fresh one is made for each connection by [`Device::session`].
pub trait Session: Send {
    /// Before dialling: `Err(reason)` skips this attempt (the platform is known to be out of
    /// reach), and the link waits its back-off before the next.
    fn before_connect(&mut self) -> HookFuture<'_, Result<(), &'static str>> {
        Box::pin(ready(Ok(())))
    }
    /// On every registration (H.626.4 8.1 step 4).
    fn registered(&mut self, _link: &mut DeviceLink) {}
    /// An event the link does not handle itself (revocations, time replies).
    fn event(&mut self, _link: &mut DeviceLink, _event: LinkEvent) {}
    /// Does what is due at `now`; returns when it wants to be called again.
    fn poll(&mut self, _link: &mut DeviceLink, _now: Instant) -> Option<Instant> {
        None
    }
    /// Resolves when something outside the link changed: `Ok` to have
    /// [`Session::changed`] called, `Err(reason)` to end the connection.
    fn wait(&mut self) -> HookFuture<'_, Result<(), &'static str>> {
        Box::pin(pending())
    }
    /// After [`Session::wait`] resolved with `Ok`.
    fn changed(&mut self, _link: &mut DeviceLink) {}
}

/// The [`Session`] of a device that adds nothing.
#[derive(Debug, Default)]
pub struct NoSession;

impl Session for NoSession {}

/// What the link needs from the device behind it.
pub trait Device: Send + Sync + 'static {
    /// Called on every fresh link before registration: queue what the SCU must hear after
    /// each registration (endpoints, reports).
    fn prepare(&self, link: &mut DeviceLink);
    /// Executes a command; `connected_s` is how long the current registration has lasted.
    fn command(&self, command: DeviceCommand, connected_s: u64) -> ReplyFuture;
    /// Called every [`LinkConfig::tick`] while connected (periodic reports).
    fn tick(&self, _link: &mut DeviceLink) {}
    /// What this device adds to a new connection.
    fn session(&self) -> Box<dyn Session> {
        Box::new(NoSession)
    }
    /// A command's reply was handed to the link: `Some(reason)` ends the connection once
    /// the reply is sent (a factory reset, H.626.4 8.10).
    fn replied(&self, _reply: &DeviceReply) -> Option<&'static str> {
        None
    }
}

/// The default first reconnect delay of a device's configuration, ms.
pub const fn default_reconnect_initial_ms() -> u64 {
    250
}

/// The default longest reconnect delay of a device's configuration, ms.
pub const fn default_reconnect_max_ms() -> u64 {
    4000
}

/// Reads a device's identity file (written at provisioning) and the platform CA it trusts,
/// alone (H.626.4 8.1; the device connects out only, to a pinned CA).
pub fn load_device(
    identity: &std::path::Path,
    platform_ca: &std::path::Path,
) -> Result<(DeviceIdentity, Arc<ClientConfig>), NetError> {
    let text = std::fs::read_to_string(identity)
        .map_err(|e| NetError::io(format!("reading {}", identity.display()), e))?;
    let parsed = DeviceIdentity::parse(&text).map_err(|source| NetError::Identity {
        path: identity.to_owned(),
        source,
    })?;
    let ca = crate::tls::read_pem(platform_ca)?;
    Ok((parsed, crate::tls::client_config(&ca)?))
}

/// The address of the first advertised `host:port` (the one the device reports for its
/// LAN, H.626.4 8.3 step 2), for sockets that must bind there (WebRTC); unspecified when
/// it is not an address.
pub fn advertised_ip(advertise: &[String]) -> std::net::IpAddr {
    advertise
        .first()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| {
            a.ip()
        })
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
    pub sw_version: String,
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
        let mut conn = Connection {
            config: &config,
            device: &device,
            status: &status,
            requests: &mut requests,
            shutdown: &shutdown,
            backoff: &mut backoff,
            pending: Pending::default(),
        };
        match conn.run().await {
            Ok(()) => return,
            Err(reason) => {
                tracing::warn!(device = %config.identity.device_id, %reason, "platform link down");
            }
        }
        let delay = match &*status.borrow() {
            // A definitive refusal (unknown device, wrong key) is retried slowly only.
            LinkStatus::Refused { code, .. } if !code.is_transient() => Duration::from_secs(30),
            _ => backoff.next_delay(rand_unit()),
        };
        // While away from the platform no request can be vouched for: fail closed.
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

/// Requests waiting for the platform's answer on this connection.
#[derive(Default)]
struct Pending {
    plays: HashMap<u64, oneshot::Sender<PlayVerdict>>,
    answers: HashMap<u64, oneshot::Sender<PlatformAnswer>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        for (_, reply) in self.plays.drain() {
            PlatformReq::AuthorizePlay {
                token: String::new(),
                client: String::new(),
                reply,
            }
            .fail();
        }
        for (_, w) in self.answers.drain() {
            let _ = w.send(unavailable_answer());
        }
    }
}

/// One connection to the SCU.
struct Connection<'a, D: Device> {
    config: &'a LinkConfig,
    device: &'a Arc<D>,
    status: &'a watch::Sender<LinkStatus>,
    requests: &'a mut mpsc::Receiver<PlatformReq>,
    shutdown: &'a Shutdown,
    backoff: &'a mut Backoff,
    pending: Pending,
}

type WsSink = futures_util::stream::SplitSink<crate::ws::ClientWs, Message>;

impl<D: Device> Connection<'_, D> {
    /// One connection; `Ok` only on shutdown or when the requests channel closed.
    async fn run(&mut self) -> Result<(), LinkError> {
        let mut session = self.device.session();
        session.before_connect().await.map_err(LinkError::Device)?;
        let ws = tokio::select! {
            r = crate::ws::connect(&self.config.scu_url, self.config.tls.clone(), Duration::from_secs(10)) => r?,
            () = self.shutdown.wait() => return Ok(()),
        };
        let (mut sink, mut stream) = ws.split();
        let identity = &self.config.identity;
        let mut link = DeviceLink::new(
            Instant::now(),
            identity.device_id.clone(),
            identity.kind,
            identity.signing_key()?,
            &self.config.sw_version,
        );
        self.device.prepare(&mut link);
        let mut connected_at = Instant::now();
        let (replies_tx, mut replies_rx) = mpsc::channel::<(u64, DeviceReply)>(32);
        let mut tick = tokio::time::interval(self.config.tick.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut end: Option<LinkError> = None;
        loop {
            while let Some(ev) = link.poll_event() {
                let now_end =
                    self.event(ev, &mut link, &mut *session, &mut connected_at, &replies_tx);
                end = end.or(now_end);
            }
            let wake = session.poll(&mut link, Instant::now());
            if let Some(reason) = end.take() {
                // Deliver what is queued (a reset's acknowledgement, 8.10) before leaving.
                let _ = transmit(&mut link, &mut sink).await;
                let _ = sink.close().await;
                return Err(reason);
            }
            // What the events produced (a command's reply) goes out before we wait again.
            transmit(&mut link, &mut sink).await?;
            if link.is_closed() {
                return Err(LinkError::Lost("link closed".into()));
            }
            let deadline = link
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            let deadline = wake.map_or(deadline, |w| w.min(deadline));
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(t))) => link.handle_input(Instant::now(), t.as_bytes())?,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(LinkError::Closed),
                    Some(Ok(_)) => {}
                },
                r = self.requests.recv() => match r {
                    Some(req) => self.pending.submit(&mut link, req),
                    None => return Ok(()),
                },
                _ = tick.tick() => self.device.tick(&mut link),
                () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
                Some((id, reply)) = replies_rx.recv() => {
                    let ends = self.device.replied(&reply);
                    link.reply(id, reply);
                    end = ends.map(LinkError::Device);
                }
                r = session.wait() => match r {
                    Ok(()) => session.changed(&mut link),
                    Err(reason) => end = Some(LinkError::Device(reason)),
                },
                () = self.shutdown.wait() => {
                    let _ = sink.close().await;
                    return Ok(());
                }
            }
        }
    }

    /// Acts on one event of the link; `Some` ends the connection.
    fn event(
        &mut self,
        ev: LinkEvent,
        link: &mut DeviceLink,
        session: &mut dyn Session,
        connected_at: &mut Instant,
        replies: &mpsc::Sender<(u64, DeviceReply)>,
    ) -> Option<LinkError> {
        let id = &self.config.identity.device_id;
        match ev {
            LinkEvent::Registered { session: s } => {
                tracing::info!(device = %id, session = %s, "registered with the SCU");
                self.backoff.reset();
                *connected_at = Instant::now();
                let _ = self.status.send(LinkStatus::Registered { session: s });
                session.registered(link);
            }
            LinkEvent::Refused { code, message } => {
                tracing::error!(device = %id, ?code, %message, "registration refused");
                let _ = self.status.send(LinkStatus::Refused {
                    code,
                    message: message.clone(),
                });
                return Some(LinkError::Refused(message));
            }
            LinkEvent::Command { id, command } => {
                // Commands may touch disks or networks: answered when done.
                let reply = self
                    .device
                    .command(command, connected_at.elapsed().as_secs());
                let tx = replies.clone();
                tokio::spawn(async move {
                    let _ = tx.send((id, reply.await)).await;
                });
            }
            LinkEvent::PlayVerdict { re, verdict } => {
                if let Some(w) = self.pending.plays.remove(&re) {
                    let _ = w.send(verdict);
                }
            }
            LinkEvent::Answer { re, answer } => {
                if let Some(w) = self.pending.answers.remove(&re) {
                    let _ = w.send(answer);
                }
            }
            LinkEvent::Lost { reason } => return Some(LinkError::Lost(reason)),
            other => session.event(link, other),
        }
        None
    }
}

impl Pending {
    /// Hands a device's request to the link, or fails it when the link cannot carry it.
    fn submit(&mut self, link: &mut DeviceLink, req: PlatformReq) {
        match req {
            PlatformReq::AuthorizePlay {
                token,
                client,
                reply,
            } => match link.authorize_play(token, client) {
                Some(id) => {
                    self.plays.insert(id, reply);
                }
                None => PlatformReq::AuthorizePlay {
                    token: String::new(),
                    client: String::new(),
                    reply,
                }
                .fail(),
            },
            PlatformReq::Request { request, reply } => match link.request(request) {
                Some(id) => {
                    self.answers.insert(id, reply);
                }
                None => {
                    let _ = reply.send(unavailable_answer());
                }
            },
        }
    }
}

/// Sends what the link queued, then flushes.
async fn transmit(link: &mut DeviceLink, sink: &mut WsSink) -> Result<(), LinkError> {
    while let Some(frame) = link.poll_transmit() {
        let text = String::from_utf8(frame).unwrap_or_default();
        sink.feed(Message::text(text))
            .await
            .map_err(NetError::from)?;
    }
    sink.flush().await.map_err(NetError::from)?;
    Ok(())
}

/// H.626.4 6.1.14: sends the [`DeviceRequest::Health`] that `read` builds to the platform
/// 2 s after start and then every `every`, until `shutdown` (a report made while the link
/// is down is answered "unavailable" and simply replaced by the next).
pub fn report_health<F, Fut>(
    platform: mpsc::Sender<PlatformReq>,
    every: Duration,
    mut read: F,
    shutdown: Shutdown,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = DeviceRequest> + Send,
{
    tokio::spawn(async move {
        let mut wait = Duration::from_secs(2).min(every);
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.wait() => return,
            }
            wait = every;
            let request = read().await;
            let (reply, answer) = oneshot::channel();
            if platform
                .send(PlatformReq::Request { request, reply })
                .await
                .is_err()
            {
                return;
            }
            match answer.await {
                Ok(PlatformAnswer::Noted) => {}
                Ok(other) => tracing::debug!(answer = ?other, "health report not taken"),
                Err(_) => {}
            }
        }
    });
}
