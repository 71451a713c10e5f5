//! The H.626.4 premises unit (PU): the agent that runs on (or beside) a camera.
//!
//! This crate holds the device's identity, registers with the SCU by signed challenge
//! (H.626.4 8.1), keeps the registration alive with heartbeats, answers commands routed from
//! the CMU, and reconnects with jittered exponential backoff when the SCU goes away
//! (SECURITY.md D12). The PU makes outbound connections only (D6) and trusts only the
//! platform CA it was given.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::Backoff;
use peercam_net::rustls::ClientConfig;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_net::{NetError, Shutdown};
use peercam_signal::cmd::{DeviceCommand, DeviceDescription, DeviceReply};
use peercam_signal::identity::{DeviceIdentity, IdentityError};
use peercam_signal::link::{DeviceLink, LinkEvent};
use peercam_signal::ps::RefusalCode;
use serde::Deserialize;
use tokio::sync::watch;

/// The agent's software version, reported at registration.
pub const SW_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors that stop the agent before it starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PuError {
    /// The identity file is missing or invalid.
    #[error("identity {path}: {source}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// Why.
        source: IdentityError,
    },
    /// Certificates or files could not be read.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// Configuration of a PU agent (`pu.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The identity file written at provisioning.
    pub identity: PathBuf,
    /// The SCU's device endpoint, `wss://HOST:PORT/`.
    pub scu_url: String,
    /// The platform CA certificate (PEM) the SCU must chain to; nothing else is trusted.
    pub platform_ca: PathBuf,
    /// First reconnect delay, ms. Default 250.
    #[serde(default = "default_backoff_initial")]
    pub reconnect_initial_ms: u64,
    /// Longest reconnect delay, ms. Default 4000.
    #[serde(default = "default_backoff_max")]
    pub reconnect_max_ms: u64,
}

fn default_backoff_initial() -> u64 {
    250
}
fn default_backoff_max() -> u64 {
    4000
}

impl Config {
    /// A configuration with default reconnect timings.
    pub fn new(identity: PathBuf, scu_url: String, platform_ca: PathBuf) -> Self {
        Self {
            identity,
            scu_url,
            platform_ca,
            reconnect_initial_ms: default_backoff_initial(),
            reconnect_max_ms: default_backoff_max(),
        }
    }
}

/// Where the agent stands with the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PuStatus {
    /// Connecting or waiting to reconnect.
    Connecting,
    /// Registered (H.626.4 8.1 done).
    Registered {
        /// The session id given by the SCU.
        session: String,
    },
    /// The platform refused this device.
    Refused {
        /// Why.
        code: RefusalCode,
        /// Explanation.
        message: String,
    },
}

/// A running agent.
pub struct Running {
    /// Current status; `changed()` to wait for the next.
    pub status: watch::Receiver<PuStatus>,
    /// Finishes when the agent stops.
    pub task: tokio::task::JoinHandle<()>,
    /// Number of registrations completed since start.
    pub registrations: Arc<std::sync::atomic::AtomicU64>,
}

/// Loads the identity and starts the agent in the background.
pub async fn start(config: Config, shutdown: Shutdown) -> Result<Running, PuError> {
    let text = std::fs::read_to_string(&config.identity).map_err(|e| NetError::Io {
        context: format!("reading {}", config.identity.display()),
        source: e,
    })?;
    let identity = DeviceIdentity::parse(&text).map_err(|source| PuError::Identity {
        path: config.identity.clone(),
        source,
    })?;
    let ca = peercam_net::tls::read_pem(&config.platform_ca)?;
    let tls = peercam_net::tls::client_config(&ca)?;
    let (tx, rx) = watch::channel(PuStatus::Connecting);
    let registrations = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let agent = Agent {
        config,
        identity,
        tls,
        status: tx,
        started: Instant::now(),
        registrations: registrations.clone(),
    };
    let task = tokio::spawn(agent.run(shutdown));
    Ok(Running {
        status: rx,
        task,
        registrations,
    })
}

struct Agent {
    config: Config,
    identity: DeviceIdentity,
    tls: Arc<ClientConfig>,
    status: watch::Sender<PuStatus>,
    started: Instant,
    registrations: Arc<std::sync::atomic::AtomicU64>,
}

impl Agent {
    async fn run(self, shutdown: Shutdown) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.reconnect_initial_ms),
            Duration::from_millis(self.config.reconnect_max_ms),
        );
        loop {
            let _ = self.status.send(PuStatus::Connecting);
            match self.session(&shutdown, &mut backoff).await {
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
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    /// One connection; `Ok` only on shutdown.
    async fn session(&self, shutdown: &Shutdown, backoff: &mut Backoff) -> Result<(), String> {
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
        let mut connected_at = Instant::now();
        loop {
            while let Some(frame) = link.poll_transmit() {
                let text = String::from_utf8(frame).unwrap_or_default();
                sink.send(Message::text(text))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            while let Some(ev) = link.poll_event() {
                match ev {
                    LinkEvent::Registered { session } => {
                        tracing::info!(device = %self.identity.device_id, %session, "registered with the SCU");
                        backoff.reset();
                        connected_at = Instant::now();
                        self.registrations
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let _ = self.status.send(PuStatus::Registered { session });
                    }
                    LinkEvent::Refused { code, message } => {
                        tracing::error!(device = %self.identity.device_id, ?code, %message, "registration refused");
                        let _ = self.status.send(PuStatus::Refused {
                            code,
                            message: message.clone(),
                        });
                        return Err(format!("refused: {message}"));
                    }
                    LinkEvent::Command { id, command } => {
                        let reply = self.execute(command, connected_at);
                        link.reply(id, reply);
                    }
                    LinkEvent::Lost { reason } => return Err(reason),
                    _ => {}
                }
            }
            if link.is_closed() {
                return Err("link closed".into());
            }
            let deadline = link
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(t))) => link.handle_input(Instant::now(), t.as_bytes()).map_err(|e| e.to_string())?,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Err("SCU closed the connection".into()),
                    Some(Ok(_)) => {}
                },
                () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
                () = shutdown.wait() => {
                    let _ = sink.close().await;
                    return Ok(());
                }
            }
        }
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
