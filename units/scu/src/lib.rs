//! The H.626.4 service control unit (SCU).
//!
//! An SCU node accepts device connections (Ps, over WebSocket + TLS), runs the signed
//! registration of H.626.4 8.1 with the CMU as the judge, keeps presence from heartbeats,
//! routes CMU commands to the devices it holds and reports their results and presence back
//! (Sc / Sm). Several nodes may serve one CMU; a device is held by exactly one session.
//!
//! The per-connection protocol is the pure [`peercam_signal::link::ScuPeer`]; this crate is
//! its IO shell: [`start`] binds the listener and returns at once with the bound address.

mod cmu_link;
mod config;
mod conn;
mod mailbox;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use peercam_base::DeviceId;
use peercam_net::{NetError, Shutdown};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::relay::{MtuAddresses, MtuLoad, MtuOffer, select_mtu};
use peercam_signal::sc_link::{ScNotice, ScRequest, ScResponse};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};

pub use config::Config;

/// Errors that stop an SCU node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScuError {
    /// Listener, certificates or CA could not be set up.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A running SCU node.
pub struct Running {
    /// Where devices connect.
    pub addr: SocketAddr,
    /// Finishes when the node has stopped.
    pub task: tokio::task::JoinHandle<()>,
    /// Where `GET /metrics` is served, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    state: Arc<NodeState>,
}

impl Running {
    /// How many devices are registered on this node now.
    pub fn online_count(&self) -> usize {
        self.state
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Messages a device connection task accepts.
pub(crate) enum ConnCmd {
    Command {
        command: DeviceCommand,
        reply: oneshot::Sender<DeviceReply>,
    },
    PlayVerdict {
        re: u64,
        verdict: peercam_signal::play::PlayVerdict,
    },
    Answer {
        re: u64,
        answer: peercam_signal::cmd::PlatformAnswer,
    },
    Revoke {
        user: Option<i64>,
    },
    Kick {
        reason: String,
    },
}

pub(crate) struct Held {
    pub(crate) session: String,
    pub(crate) tx: mailbox::Sender,
    /// The addresses the device last reported (H.626.4 8.3 step 3), announced again with
    /// its presence on a new CMU link (issue 19: a CMU restart or move loses nothing).
    /// Boxed: the registry holds one entry per device (a lean connection, issue 19).
    pub(crate) endpoints: Option<Box<peercam_signal::sc::Endpoints>>,
}

/// Messages from connection tasks to the CMU link.
pub(crate) enum ToCmu {
    /// A request for the CMU; the link answers `reply` exactly once (the CMU's answer, or a
    /// refusal on timeout or link loss).
    Ask {
        request: ScRequest,
        reply: oneshot::Sender<ScResponse>,
    },
    /// Presence and addresses of the devices held here (Sc).
    Notice(ScNotice),
}

pub(crate) struct NodeState {
    pub(crate) config: Config,
    pub(crate) registry: Mutex<HashMap<DeviceId, Held>>,
    /// H.626.4 7.2: the MTUs registered here (session, what they last reported).
    pub(crate) mtus: Mutex<HashMap<DeviceId, (String, MtuOffer)>>,
    pub(crate) to_cmu: mpsc::Sender<ToCmu>,
    pub(crate) handshakes: Semaphore,
    pub(crate) metrics: Metrics,
}

/// The node's metrics (H.626.4 6.1.14; docs/metrics.md).
pub(crate) struct Metrics {
    pub(crate) registry: Arc<peercam_net::metrics::Registry>,
    pub(crate) registrations: peercam_net::metrics::Counter,
    pub(crate) frames_in: peercam_net::metrics::Counter,
    pub(crate) frames_out: peercam_net::metrics::Counter,
    pub(crate) cmu_connected: peercam_net::metrics::Gauge,
}

impl Metrics {
    fn new() -> Self {
        let registry = peercam_net::metrics::Registry::new("scu");
        Self {
            registrations: registry.counter(
                "peercam_scu_registrations_total",
                "Device registrations completed on this node.",
                &[],
            ),
            frames_in: registry.counter(
                "peercam_scu_device_messages_total",
                "Platform messages exchanged with devices (Ps), by direction.",
                &[("direction", "in")],
            ),
            frames_out: registry.counter(
                "peercam_scu_device_messages_total",
                "Platform messages exchanged with devices (Ps), by direction.",
                &[("direction", "out")],
            ),
            cmu_connected: registry.gauge(
                "peercam_scu_cmu_connected",
                "1 while the node's link to the CMU (Sc) is up.",
                &[],
            ),
            registry,
        }
    }
}

impl NodeState {
    /// Records a newly registered session; kicks an older session of the same device
    /// (no duplicate device sessions).
    pub(crate) fn hold(&self, device_id: DeviceId, session: String, tx: mailbox::Sender) {
        let old = self
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                device_id,
                Held {
                    session,
                    tx,
                    endpoints: None,
                },
            );
        if let Some(old) = old {
            let _ = old.tx.try_send(ConnCmd::Kick {
                reason: "replaced by a newer session".into(),
            });
        }
    }

    /// Forgets a session if it is still the current one; returns whether it was.
    pub(crate) fn release(&self, device_id: &DeviceId, session: &str) -> bool {
        let mut reg = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if reg.get(device_id).is_some_and(|h| h.session == session) {
            reg.remove(device_id);
            true
        } else {
            false
        }
    }

    /// An MTU's report: joins or updates the selection table.
    pub(crate) fn mtu_report(
        &self,
        mtu: DeviceId,
        session: &str,
        addresses: MtuAddresses,
        load: MtuLoad,
    ) {
        let mut mtus = self.mtus.lock().unwrap_or_else(PoisonError::into_inner);
        mtus.insert(
            mtu.clone(),
            (
                session.to_owned(),
                MtuOffer {
                    mtu,
                    addresses,
                    load,
                },
            ),
        );
    }

    /// An MTU's session ended: it is never chosen again until it reports anew (a failed
    /// MTU gets no new sessions).
    pub(crate) fn mtu_gone(&self, mtu: &DeviceId, session: &str) {
        let mut mtus = self.mtus.lock().unwrap_or_else(PoisonError::into_inner);
        if mtus.get(mtu).is_some_and(|(s, _)| s == session) {
            mtus.remove(mtu);
        }
    }

    /// H.626.4 7.2: the MTU for a new relayed session, counted at once so that a burst of
    /// sessions spreads over the MTUs before their next reports.
    pub(crate) fn select_mtu(&self) -> Option<MtuOffer> {
        let mut mtus = self.mtus.lock().unwrap_or_else(PoisonError::into_inner);
        let offers: Vec<MtuOffer> = mtus.values().map(|(_, o)| o.clone()).collect();
        let chosen = select_mtu(&offers, &self.config.region)?.clone();
        if let Some((_, o)) = mtus.get_mut(&chosen.mtu) {
            o.load.viewers = o.load.viewers.saturating_add(1);
        }
        Some(chosen)
    }

    /// Keeps what a device's session reported, if it is still the current one.
    pub(crate) fn reported(&self, endpoints: &peercam_signal::sc::Endpoints) {
        let mut reg = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = reg.get_mut(&endpoints.device_id)
            && h.session == endpoints.session
        {
            h.endpoints = Some(Box::new(endpoints.clone()));
        }
    }

    pub(crate) fn lookup(&self, device_id: &DeviceId) -> Option<(String, mailbox::Sender)> {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(device_id)
            .map(|h| (h.session.clone(), h.tx.clone()))
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).unwrap_or_else(|_| rand::fill(&mut buf[..]));
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Binds the device listener, connects to the CMU in the background and serves until
/// `shutdown`.
pub async fn start(config: Config, shutdown: Shutdown) -> Result<Running, ScuError> {
    config.validate()?;
    let cert = peercam_net::tls::read_pem(&config.tls_cert)?;
    let key = peercam_net::tls::read_pem(&config.tls_key)?;
    let server_tls = peercam_net::tls::server_config(&cert, &key, &[])?;
    let cmu_ca = peercam_net::tls::read_pem(&config.cmu_ca)?;
    let cmu_tls = peercam_net::tls::client_config(&cmu_ca)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| NetError::Io {
            context: format!("binding {}", config.listen),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| NetError::Io {
        context: "local address".into(),
        source: e,
    })?;
    let (to_cmu, from_conns) = mpsc::channel(4096);
    let state = Arc::new(NodeState {
        registry: Mutex::new(HashMap::new()),
        mtus: Mutex::new(HashMap::new()),
        to_cmu,
        handshakes: Semaphore::new(config.max_concurrent_handshakes),
        metrics: Metrics::new(),
        config,
    });
    let weak = Arc::downgrade(&state);
    state.metrics.registry.gauge_fn(
        "peercam_scu_devices_connected",
        "Devices registered on this node now.",
        &[],
        move || {
            weak.upgrade().map_or(0.0, |s| {
                s.registry
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len() as f64
            })
        },
    );
    let weak = Arc::downgrade(&state);
    state.metrics.registry.gauge_fn(
        "peercam_scu_mtus",
        "MTUs registered on this node and offered for relayed sessions (7.2).",
        &[],
        move || {
            weak.upgrade().map_or(0.0, |s| {
                s.mtus.lock().unwrap_or_else(PoisonError::into_inner).len() as f64
            })
        },
    );
    let metrics_addr = match state.config.metrics_listen {
        Some(l) => Some(
            peercam_net::metrics::serve(l, state.metrics.registry.clone(), shutdown.clone())
                .await?,
        ),
        None => None,
    };
    tracing::info!(%addr, node = %state.config.node, "SCU listening for devices");
    let link = tokio::spawn(cmu_link::run(
        state.clone(),
        cmu_tls,
        from_conns,
        shutdown.clone(),
    ));
    let acceptor = server_tls;
    let st = state.clone();
    let task = tokio::spawn(async move {
        let config = peercam_net::accept::AcceptConfig {
            nodelay: false,
            ..peercam_net::accept::AcceptConfig::new("SCU devices")
        };
        let mut incoming = peercam_net::accept::Incoming::new(listener, config, shutdown.clone());
        while let Some(peercam_net::accept::Accepted { tcp, peer, .. }) = incoming.next().await {
            tokio::spawn(conn::run(
                st.clone(),
                tcp,
                peer,
                acceptor.clone(),
                shutdown.clone(),
            ));
        }
        let _ = link.await;
    });
    Ok(Running {
        addr,
        task,
        metrics_addr,
        state,
    })
}
