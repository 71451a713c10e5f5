//! The H.626.4 centre management unit (CMU).
//!
//! Accounts (6.1.1 self-service sign-up by phone with operator approval), devices and their
//! keys (provisioning, 8.1 registration verdicts), binding (8.2), sharing with sub-accounts
//! (8.6, 6.1.10), presence, command routing through SCU nodes, alarms (8.8, 6.1.9), timed
//! snapshots to a phone (6.1.12: a scheduler, signed links at `/s/{token}`), and an audit
//! log.
//!
//! Two faces on one listener:
//! - `/api/v1/...`: the Cm interface for CUs, HTTP/JSON, described by the OpenAPI document
//!   at `/api/v1/openapi.json`. Every route is declared once in [`api`] with its access rule;
//!   access is deny-by-default and device access is decided per request from the database
//!   (docs/security.md D3, D7).
//! - `/platform/v1/scu`: the Sc/Sm WebSocket that SCU nodes connect to ([`platform`]).
//! - `/`, `/app/*`: the web client (CU, M_CU of 6.3), embedded in the binary (`src/web.rs`).

#[doc(hidden)]
pub mod accounting;
mod accounts;
mod admin;
mod alarms;
pub mod api;
mod audit;
mod auth;
mod bus;
mod campaigns;
mod clips;
mod cloud;
mod config;
mod control;
mod crm;
mod devices;
mod equipment;
mod error;
mod faults;
mod json;
mod logs;
mod metrics;
mod packages;
pub mod platform;
mod play;
mod ratelimit;
mod recording;
mod relay;
mod settings;
mod sharing;
pub mod sms;
mod snapshots;
mod store;
mod timeline;
mod token;
mod totp;
mod users;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use peercam_net::{NetError, Shutdown};
use tokio::net::TcpListener;

pub use accounting::BillingConfig;
pub use bus::BusKind;
pub use config::{CloudConfig, Config, PlanConfig, SmsConfig, SnapshotClock, TlsFiles};
pub use crm::CrmConfig;
pub use faults::FaultsConfig;

/// Errors that stop the CMU.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmuError {
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Database failure.
    #[error("database: {0}")]
    Db(String),
    /// The bus between CMU instances cannot start (issue 19).
    #[error("bus: {0}")]
    Bus(String),
    /// Network or TLS setup failure.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Other IO failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
}

impl From<store::StoreError> for CmuError {
    fn from(e: store::StoreError) -> Self {
        Self::Db(e.to_string())
    }
}

pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) store: store::Store,
    pub(crate) sms: Box<dyn sms::SmsGateway>,
    pub(crate) platform: platform::Platform,
    pub(crate) limits: ratelimit::Limits,
    /// HMAC keys of the 8.4 play tokens, kept in the database and rotating (issue 19).
    pub(crate) play_keys: token::Keys,
    /// Where devices download packages (8.11.1).
    pub(crate) public_url: String,
    /// New alarms and resets, to the live alarm streams (8.8).
    pub(crate) alarm_hub: alarms::Hub,
    /// Devices with an offline alarm and no online alarm since (6.1.9).
    pub(crate) offline: alarms::up::Offline,
    /// Web Push of alarms: the VAPID key and the sender (6.1.9).
    pub(crate) push: alarms::push::WebPush,
    /// HMAC key of the 6.1.12 snapshot links, kept in the database (survives restarts).
    pub(crate) link_key: [u8; 32],
    /// The cloud storage grant key (8.7.1), kept in the database.
    pub(crate) cloud: cloud::Cloud,
    /// Triggered when this CMU stops (node links close with it).
    pub(crate) shutdown: Shutdown,
    /// The metrics (6.1.14).
    pub(crate) metrics: metrics::CmuMetrics,
    /// Faults open now (6.1.14), for the metrics.
    pub(crate) faults_open: std::sync::atomic::AtomicU64,
    /// Each operator phone's hourly budget of fault alert SMS (6.1.14).
    pub(crate) fault_alerts: std::sync::Mutex<faults::AlertBudget>,
    /// The operator's CRM (6.2), when configured.
    pub(crate) crm: Option<Arc<crm::Crm>>,
}

pub(crate) type Shared = Arc<AppState>;

/// A running CMU.
pub struct Running {
    /// The bound address of the API and platform listener.
    pub addr: SocketAddr,
    /// Finishes when the CMU has stopped.
    pub task: tokio::task::JoinHandle<()>,
    /// Where the generated operator password was written, on first start.
    pub admin_password_file: Option<PathBuf>,
    /// Where `GET /metrics` is served, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
}

pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not recoverable for a security service.
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("OS random number generator failed: {e}"));
    b
}

/// Opens the database, bootstraps the operator account and starts serving.
pub async fn start(config: Config, shutdown: Shutdown) -> Result<Running, CmuError> {
    config.validate()?;
    let store =
        store::Store::open_with(&config.database_url, config.database_max_connections).await?;
    let admin_password_file = auth::bootstrap_operator(&store, &config).await?;
    let link_key =
        store::snapshots::link_key(&store, "snapshot-link", random_bytes::<32>()).await?;
    // H.626.4 8.4: play-token keys are shared by every CMU on the database (issue 19).
    let play_keys = token::Keys::load(&store, config.token_key_rotate_s).await?;
    // H.626.4 8.7.1: the grant signing key is made on first start and kept.
    let mut cloud = cloud::Cloud::load(&store, random_bytes::<32>()).await?;
    // The key-encryption key of the cameras' data keys: `cloud.kek_file`, else the
    // database's (docs/security.md).
    if let Some(path) = &config.cloud.kek_file {
        cloud = cloud.with_kek(cloud::read_kek_file(path).map_err(CmuError::Config)?);
    }
    let sms: Box<dyn sms::SmsGateway> = match &config.sms {
        SmsConfig::Outbox { dir, mms } => Box::new(
            sms::OutboxSms::new(dir.clone())
                .map_err(|e| CmuError::Io {
                    context: format!("SMS outbox {}", dir.display()),
                    source: e,
                })?
                .with_mms(*mms),
        ),
        SmsConfig::Http { url, api_key } => Box::new(
            sms::HttpSms::new(url.clone(), api_key.clone()).map_err(|e| CmuError::Config(e.0))?,
        ),
    };
    let tls = match &config.tls {
        Some(files) => {
            let cert = peercam_net::tls::read_pem(&files.cert)?;
            let key = peercam_net::tls::read_pem(&files.key)?;
            Some(peercam_net::tokio_rustls::TlsAcceptor::from(
                peercam_net::tls::server_config(&cert, &key, &[b"http/1.1"])?,
            ))
        }
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| CmuError::Io {
            context: format!("binding {}", config.listen),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| CmuError::Io {
        context: "local address".into(),
        source: e,
    })?;
    let public_url = config.public_url.clone().unwrap_or_else(|| {
        let host = if addr.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            addr.ip().to_string()
        };
        format!("https://{host}:{}", addr.port())
    });
    // H.626.4 6.1.9: the VAPID key is made on first start and kept in the database.
    let push = alarms::push::WebPush::load(&store, public_url.clone())
        .await
        .map_err(|e| CmuError::Config(e.to_string()))?;
    // Issue 19: presence and routing are shared with the other instances over the bus.
    let bus = bus::start(config.bus, &store, &shutdown).await?;
    let metrics = metrics::CmuMetrics::new(store.audit_rows.clone());
    let crm = match &config.crm {
        Some(c) => Some(Arc::new(
            crm::Crm::new(c.clone()).map_err(CmuError::Config)?,
        )),
        None => None,
    };
    let state = Arc::new(AppState {
        crm,
        metrics,
        faults_open: std::sync::atomic::AtomicU64::new(0),
        fault_alerts: std::sync::Mutex::default(),
        push,
        public_url,
        platform: platform::Platform::new(store.clone(), bus),
        limits: ratelimit::Limits::new(store.clone()),
        play_keys,
        alarm_hub: alarms::Hub::default(),
        offline: alarms::up::Offline::default(),
        link_key,
        cloud,
        config,
        store,
        sms,
        shutdown: shutdown.clone(),
    });
    platform::start(&state).await;
    snapshots::scheduler::spawn(state.clone(), shutdown.clone());
    clips::spawn_sweeper(state.clone(), shutdown.clone());
    accounting::spawn_sampler(state.clone(), shutdown.clone());
    state.metrics.watch(&state);
    faults::load(&state).await;
    crm::spawn(&state);
    campaigns::spawn_driver(state.clone());
    logs::spawn_retention(state.clone());
    let metrics_addr = match state.config.metrics_listen {
        Some(l) => Some(
            peercam_net::metrics::serve(l, state.metrics.registry.clone(), shutdown.clone())
                .await?,
        ),
        None => None,
    };
    let db_errors = state.metrics.db_errors.clone();
    let http = state.metrics.http.clone();
    let router = http.layer(metrics::count_db_errors(
        web::router(state.clone())
            .merge(clips::public_router(state.clone()))
            .merge(api::router(state)),
        db_errors,
    ));
    tracing::info!(%addr, tls = tls.is_some(), "CMU listening");
    let task = tokio::spawn(peercam_net::http::serve(listener, tls, router, shutdown));
    Ok(Running {
        addr,
        task,
        admin_password_file,
        metrics_addr,
    })
}
