//! The peercam cloud storage unit (CS): one of the eight entities of H.626.4 clause 7. It
//! stores cameras' recordings (8.7.1), enforces each account's quota (6.1.13) and encrypts
//! everything it stores. The design is `docs/design/cloud-storage.md`.
//!
//! Its modules:
//!
//! | module | what |
//! |---|---|
//! | [`backend`] | where object bytes live: the [`backend::Backend`] trait and [`backend::LocalDir`] (temp file, fsync, rename, fsync dir) |
//! | [`s3`] | [`S3Store`]: any S3 endpoint through `object_store` (SHA-256 checksummed PUT, multipart above a threshold, path or virtual-host style) |
//! | [`index`] | `index.db` (SQLite, `synchronous=FULL`): objects, write-ahead intents (also the quota reservation), pending deletions, accounts, cameras |
//! | [`recover`] | at start: adopt, delete or drop each interrupted write; finish pending deletions |
//! | [`keys`] | data keys: the CMU key service (`cloud_key`, memory-only cache), or the configuration |
//! | `api` | Cp over HTTP (axum): `hello`, `PUT /cp/v1/o/<key>`, `prune` |
//! | [`su`] | Su (CMU -> CS): `cs_config`, `cs_camera`, `cs_account`, `cs_usage`, `cs_clip_delete` applied to the running CS |
//! | [`clips`] | shared clips: upload once, stored encrypted, served decrypted with `Range` to a share grant (issue 17 item 9) |
//! | `retention` | the plan's age limit and a downgrade's smaller quota (6.1.13), row first |
//! | [`agent`] | registration with an SCU as a device of kind `cs` (8.1), carrying Su |
//!
//! ```text
//!   PU --- Cp (HTTP, Bearer pcg1 grant) ---> api --- intent --> index.db
//!                                             |  seal (PCE1, camera's DEK)
//!                                             +--- put (durable) --> Backend (LocalDir, S3)
//!                                             +--- row + usage ----> index.db --> 201
//! ```
//!
//! With a `[platform]` section the CS registers with an SCU and takes its grant keys,
//! accounts and cameras from the CMU (Su); the values of [`CsConfig`] are the starting
//! point (and all a CS without a platform has). Not here yet: `skip` and shared clips.
//! Playback (Cc) is [`playback`] and `export`. Cp serves HTTPS with the configured certificate
//! (`tls`), plain HTTP without one (loopback only).

pub mod agent;
mod api;
pub mod backend;
pub mod clips;
mod error;
mod export;
pub mod index;
pub mod keys;
pub mod playback;
pub mod recover;
mod retention;
pub mod s3;
pub mod su;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use peercam_cloud::Prefix;
use peercam_net::Shutdown;
use serde::Deserialize;

pub use backend::{Backend, BackendError, LocalDir};
pub use index::{Index, IndexError};
pub use keys::{Keys, PlatformKeys, StaticKeys};
pub use playback::CloudSource;
pub use recover::RecoveryReport;
pub use s3::{S3Config, S3Store};
pub use su::Su;

/// The CS's software version, reported at registration.
pub const SW_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the CS could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsError {
    /// A configuration value is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The object store failed.
    #[error("object store: {0}")]
    Backend(#[from] BackendError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] peercam_net::NetError),
    /// The identity file is not of this CS (kind `cs`, id `device_id`).
    #[error("{0} is not this CS's identity (kind \"cs\" and its device_id)")]
    NotACs(PathBuf),
    /// The listener could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// One of the CMU's grant verification keys (from Su `cs_config` later; configured now).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantKey {
    /// The key id grants name in `kid`.
    pub kid: String,
    /// The Ed25519 public key, 32 bytes in base64url without padding.
    pub public_key: String,
}

/// An account pool (from Su `cs_account` later; configured now).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The account id.
    pub account: String,
    /// Bytes its cameras may store together (ciphertext).
    pub quota_bytes: u64,
}

/// A camera's storage configuration (from Su `cs_camera` later; configured now).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Its prefix (`s` + 22 base64url characters).
    pub prefix: Prefix,
    /// The account whose pool it uses (one of `accounts`).
    pub account: String,
    /// Grants of a lower epoch are refused. Default 0.
    #[serde(default)]
    pub epoch: u64,
    /// The data key id new objects are sealed with.
    pub write_kid: String,
    /// The camera's device id, for playback (Cc); Su `cs_camera` names it. Default none.
    #[serde(default)]
    pub camera: Option<String>,
}

/// Cp's TLS certificate and key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// A data key (from the CMU key service later; configured now, for tests and the demo).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataKeyConfig {
    /// The camera's prefix.
    pub prefix: Prefix,
    /// The key id.
    pub kid: String,
    /// 32 bytes in base64url without padding.
    pub key: String,
}

impl std::fmt::Debug for DataKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyConfig")
            .field("prefix", &self.prefix)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The CS's registration with the platform (H.626.4 8.1, as a device of kind `cs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformLink {
    /// The identity file written at provisioning (`peercam admin devices provision --kind
    /// cs`); its device id must be `device_id`.
    pub identity: PathBuf,
    /// The SCU, `wss://HOST:PORT/`.
    pub scu_url: String,
    /// The platform CA certificate (PEM) the SCU's certificate must chain to.
    pub platform_ca: PathBuf,
    /// Where cameras reach Cp, `https://host:port` (or `host:port`, the scheme then follows
    /// `tls`), reported to the platform; default the listen
    /// address (`127.0.0.1` for an unspecified one).
    #[serde(default)]
    pub advertise: Vec<String>,
    /// First reconnect delay to the SCU, ms. Default 250.
    #[serde(default = "peercam_net::agent::default_reconnect_initial_ms")]
    pub reconnect_initial_ms: u64,
    /// Longest reconnect delay, ms. Default 4000.
    #[serde(default = "peercam_net::agent::default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
}

impl PlatformLink {
    /// A link with defaults for everything optional.
    pub fn new(identity: PathBuf, scu_url: String, platform_ca: PathBuf) -> Self {
        Self {
            identity,
            scu_url,
            platform_ca,
            advertise: Vec::new(),
            reconnect_initial_ms: peercam_net::agent::default_reconnect_initial_ms(),
            reconnect_max_ms: peercam_net::agent::default_reconnect_max_ms(),
        }
    }
}

/// Configuration of a CS (`cs.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsConfig {
    /// The CS's device id: grants must name it in `aud`.
    pub device_id: String,
    /// Where Cp listens. Default `127.0.0.1:8570`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Cp's certificate and key; without them Cp is plain HTTP (only for loopback use, the
    /// demo and tests). Default none.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// The object directory of the `LocalDir` store (the default store), and the index's
    /// default place. Default: none (then `store` and `index` are needed).
    #[serde(default)]
    pub store_dir: PathBuf,
    /// The object store: `{ kind = "dir", path }` or `{ kind = "s3", endpoint, bucket,
    /// region, path_style, credentials_file }`. Default: `LocalDir` on `store_dir`.
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// The index database. Default: `index.db` beside `store_dir`.
    #[serde(default)]
    pub index: Option<PathBuf>,
    /// The CMU's grant verification keys until the CMU sends its own (Su `cs_config`).
    #[serde(default)]
    pub grant_keys: Vec<GrantKey>,
    /// Account pools, created or updated at start.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Cameras, created or updated at start.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// Data keys, held in memory only.
    #[serde(default)]
    pub data_keys: Vec<DataKeyConfig>,
    /// Largest upload body, bytes (at most the object format's 8 MiB). Default 8 MiB.
    #[serde(default = "default_max_object_bytes")]
    pub max_object_bytes: usize,
    /// Largest shared clip the CS takes, bytes of MP4 (issue 17 item 9; a 15-minute clip
    /// at 4 Mbit/s is about 450 MB). The CS holds a clip in memory while it seals it.
    /// Default 512 MiB.
    #[serde(default = "default_max_clip_bytes")]
    pub max_clip_bytes: usize,
    /// How long an upload waits for another write of the same key to finish before it
    /// answers 503, ms. Default 30000.
    #[serde(default = "default_intent_wait_ms")]
    pub intent_wait_ms: u64,
    /// An object arriving this long after its end is marked back-filled, ms. Default 30000.
    #[serde(default = "default_backfill_after_ms")]
    pub backfill_after_ms: u64,
    /// How often retention (the plan's age limit, a downgrade's quota) runs over every
    /// account, seconds. Default 600.
    #[serde(default = "default_retention_interval_s")]
    pub retention_interval_s: u64,
    /// Registration with the platform; without it the CS runs alone on the values above.
    #[serde(default)]
    pub platform: Option<PlatformLink>,
    /// Where Cc playback (plain RTSP, with a one-time token) listens; only with a platform,
    /// which judges the tokens. Default: Cp's address with a port the system picks (it is
    /// reported to the platform) when Cp listens on loopback, else no RTSP playback (video
    /// would leave in clear; WebRTC playback and HTTPS downloads remain).
    #[serde(default)]
    pub media_listen: Option<SocketAddr>,
    /// Decoded objects kept for playback, MiB (LRU). Default 256.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// Fast playback sends key frames only above this frame rate. Default 60.
    #[serde(default = "default_max_out_fps")]
    pub max_out_fps: u32,
    /// Where `GET /metrics` (Prometheus text format) is served, plain HTTP; bind it to
    /// loopback or a management network (docs/security.md). Default unset.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds between storage health reports to the platform (6.1.14); 0: none.
    /// Default 60.
    #[serde(default = "default_health_report_s")]
    pub health_report_s: u64,
}

fn default_health_report_s() -> u64 {
    60
}

/// Below this many bytes free on the store's file system the CS reports itself full.
const CS_MIN_FREE_BYTES: u64 = 64 << 20;

fn default_cache_mb() -> u64 {
    256
}
fn default_max_out_fps() -> u32 {
    60
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8570))
}
fn default_max_object_bytes() -> usize {
    peercam_cloud::object::MAX_OBJECT
}
fn default_max_clip_bytes() -> usize {
    512 << 20
}
fn default_intent_wait_ms() -> u64 {
    30_000
}
fn default_backfill_after_ms() -> u64 {
    30_000
}
fn default_retention_interval_s() -> u64 {
    600
}

impl CsConfig {
    /// A configuration with defaults for everything optional.
    pub fn new(device_id: String, store_dir: PathBuf) -> Self {
        Self {
            device_id,
            listen: default_listen(),
            tls: None,
            store_dir,
            store: None,
            index: None,
            grant_keys: Vec::new(),
            accounts: Vec::new(),
            cameras: Vec::new(),
            data_keys: Vec::new(),
            max_object_bytes: default_max_object_bytes(),
            max_clip_bytes: default_max_clip_bytes(),
            intent_wait_ms: default_intent_wait_ms(),
            backfill_after_ms: default_backfill_after_ms(),
            retention_interval_s: default_retention_interval_s(),
            platform: None,
            media_listen: None,
            cache_mb: default_cache_mb(),
            max_out_fps: default_max_out_fps(),
            metrics_listen: None,
            health_report_s: default_health_report_s(),
        }
    }

    /// The index path in effect.
    pub fn index_path(&self) -> PathBuf {
        self.index.clone().unwrap_or_else(|| {
            let dir = match &self.store {
                Some(StoreConfig::Dir { path }) => path,
                _ => &self.store_dir,
            };
            dir.parent()
                .map_or_else(|| PathBuf::from("index.db"), |p| p.join("index.db"))
        })
    }

    /// The configured data keys.
    pub fn static_keys(&self) -> Result<StaticKeys, CsError> {
        let mut keys = StaticKeys::new();
        for k in &self.data_keys {
            keys.insert(k.prefix, &k.kid, decode32(&k.key, "data key")?);
        }
        Ok(keys)
    }

    fn grant_keys(&self) -> Result<HashMap<String, VerifyingKey>, CsError> {
        let mut out = HashMap::new();
        for g in &self.grant_keys {
            let raw = decode32(&g.public_key, "grant key")?;
            let key = VerifyingKey::from_bytes(&raw)
                .map_err(|_| CsError::Config(format!("grant key {:?} is not a key", g.kid)))?;
            out.insert(g.kid.clone(), key);
        }
        Ok(out)
    }
}

fn decode32(s: &str, what: &str) -> Result<[u8; 32], CsError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| CsError::Config(format!("{what}: not 32 bytes of base64url")))
}

/// A running CS.
#[derive(Debug)]
pub struct Running {
    /// Where Cp listens.
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// Where Cc playback (RTSP) listens, with a platform.
    pub media_addr: Option<SocketAddr>,
    /// The CS's segments as the players read them (its cache counters for tests).
    pub source: CloudSource,
    /// The index (shared with the server).
    pub index: Index,
    /// What recovery did at start.
    pub recovery: RecoveryReport,
    /// The server task (ends on shutdown).
    pub task: tokio::task::JoinHandle<()>,
    /// Su, as the platform applies it (a test may apply commands directly).
    pub su: Su,
    /// Registration state, with a `[platform]` section.
    pub status: Option<tokio::sync::watch::Receiver<agent::CsStatus>>,
    /// The agent task, with a `[platform]` section (ends on shutdown).
    pub agent: Option<tokio::task::JoinHandle<()>>,
}

/// Which object store the CS writes to (`store` in `cs.toml`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StoreConfig {
    /// [`LocalDir`] on `path`.
    Dir {
        /// The object directory.
        path: PathBuf,
    },
    /// [`S3Store`]: any S3 endpoint.
    S3(S3Config),
}

impl CsConfig {
    /// Opens the configured store: `store`, or `LocalDir` on `store_dir`.
    pub async fn open_store(&self) -> Result<Arc<dyn Backend>, CsError> {
        Ok(match &self.store {
            Some(StoreConfig::S3(c)) => Arc::new(S3Store::open(c)?),
            Some(StoreConfig::Dir { path }) => Arc::new(LocalDir::open(path).await?),
            None if self.store_dir.as_os_str().is_empty() => {
                return Err(CsError::Config("neither store nor store_dir is set".into()));
            }
            None => Arc::new(LocalDir::open(&self.store_dir).await?),
        })
    }
}

/// Opens the configured store (`store`, else `LocalDir` on `store_dir`) and the index,
/// applies the configured accounts and cameras, recovers interrupted writes and deletions,
/// then serves Cp until `shutdown`.
pub async fn start(
    config: CsConfig,
    keys: Arc<dyn Keys>,
    shutdown: Shutdown,
) -> Result<Running, CsError> {
    let backend = config.open_store().await?;
    start_with(config, keys, backend, shutdown).await
}

/// [`start`] on another backend (`store` and `store_dir` are then unused): a test's
/// backend that stops at a chosen point.
pub async fn start_with(
    config: CsConfig,
    keys: Arc<dyn Keys>,
    backend: Arc<dyn Backend>,
    shutdown: Shutdown,
) -> Result<Running, CsError> {
    if config.max_object_bytes > peercam_cloud::object::MAX_OBJECT {
        return Err(CsError::Config(format!(
            "max_object_bytes over {}",
            peercam_cloud::object::MAX_OBJECT
        )));
    }
    let grant_keys = config.grant_keys()?;
    let platform = match &config.platform {
        Some(p) => {
            let (identity, tls) = peercam_net::agent::load_device(&p.identity, &p.platform_ca)?;
            if identity.kind != peercam_signal::ps::DeviceKind::Cs
                || identity.device_id.as_str() != config.device_id
            {
                return Err(CsError::NotACs(p.identity.clone()));
            }
            Some((p.clone(), identity, tls))
        }
        None => None,
    };
    let index = Index::open(&config.index_path()).await?;
    for a in &config.accounts {
        index.set_account(&a.account, a.quota_bytes).await?;
    }
    let prefixes: playback::CameraPrefixes = Arc::default();
    for c in &config.cameras {
        if let Some(cam) = &c.camera {
            prefixes
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(cam.clone(), c.prefix);
        }
        index
            .set_camera(&index::Camera {
                prefix: c.prefix,
                account: c.account.clone(),
                epoch: c.epoch,
                write_kid: c.write_kid.clone(),
            })
            .await?;
    }
    let recovery = recover::recover(&index, backend.as_ref()).await?;
    let clips_dropped = clips::recover(&index, backend.as_ref()).await?;
    if clips_dropped > 0 {
        tracing::info!(clips_dropped, "clips whose upload was cut short removed");
    }
    let cameras = index
        .cameras()
        .await?
        .into_iter()
        .map(|c| (c.prefix, c))
        .collect();
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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| CsError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| CsError::Listen {
        addr: config.listen,
        source,
    })?;
    // With a platform, data keys come from the CMU's key service (kept in memory only).
    let (requests_tx, requests) = tokio::sync::mpsc::channel(16);
    let keys: Arc<dyn Keys> = if platform.is_some() {
        Arc::new(PlatformKeys::new(keys, requests_tx.clone()))
    } else {
        keys
    };
    // Exports are kept only while their grants live: none survives a restart.
    let scratch = config.index_path().with_file_name("exports");
    if let Ok(dir) = std::fs::read_dir(&scratch) {
        for e in dir.flatten() {
            if e.path().extension().is_some_and(|x| x == "mp4") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let source = CloudSource::new(
        index.clone(),
        backend.clone(),
        keys.clone(),
        prefixes.clone(),
        usize::try_from(config.cache_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        scratch,
    );
    // Cc playback: RTSP (and HTTP export with a one-time token) on its own port; the
    // platform judges the tokens (8.4 steps 5-8, as for an NVR).
    // Plain RTSP carries decrypted video: by default it listens only where Cp listens on
    // loopback (the demo, tests); elsewhere only when `media_listen` names it (rtsps is not
    // built yet) and WebRTC playback (DTLS-SRTP) and HTTPS downloads remain.
    let media = match &platform {
        Some(_) => {
            let media = peercam_recorder::serve::Media::with_platform(
                Arc::new(source.clone()),
                requests_tx.clone(),
                config.max_out_fps,
            );
            let want = config
                .media_listen
                .unwrap_or_else(|| SocketAddr::new(addr.ip(), 0));
            let media_addr = if config.media_listen.is_some() || want.ip().is_loopback() {
                let listen_err = |source| CsError::Listen { addr: want, source };
                let listener = tokio::net::TcpListener::bind(want)
                    .await
                    .map_err(listen_err)?;
                let media_addr = listener.local_addr().map_err(listen_err)?;
                tokio::spawn(media.clone().serve(listener, shutdown.clone()));
                Some(media_addr)
            } else {
                tracing::warn!(%addr, "no RTSP playback: set media_listen to serve it off loopback (plain RTSP)");
                None
            };
            Some((media, media_addr))
        }
        None => None,
    };
    let state = Arc::new(api::Cs {
        index: index.clone(),
        prefixes,
        source: source.clone(),
        exports: export::Exports::default(),
        backend,
        keys,
        grant_keys: std::sync::RwLock::new(grant_keys),
        device_id: config.device_id.clone(),
        cameras: std::sync::RwLock::new(cameras),
        max_body: config.max_object_bytes,
        max_clip: config.max_clip_bytes,
        intent_wait: std::time::Duration::from_millis(config.intent_wait_ms),
        backfill_after_ms: config.backfill_after_ms,
    });
    let su = Su::new(state.clone());
    tokio::spawn(retention::run(
        state.clone(),
        std::time::Duration::from_secs(config.retention_interval_s.max(1)),
        shutdown.clone(),
    ));
    let registry = peercam_net::metrics::Registry::new("cs");
    let http = peercam_net::metrics::HttpMetrics::new(
        &registry,
        "peercam_cs_http_requests_total",
        "peercam_cs_http_request_duration_seconds",
        &["hello", "upload", "prune", "export", "other"],
        |path| {
            if path.starts_with("/cp/v1/o/") {
                "upload"
            } else if path == "/cp/v1/hello" {
                "hello"
            } else if path == "/cp/v1/prune" {
                "prune"
            } else if path.starts_with("/cc/v1/export/") {
                "export"
            } else {
                "other"
            }
        },
    );
    storage_metrics(&registry, index.clone(), shutdown.clone());
    // 6.1.14: the store's health, reported periodically (uploads failing on the CS's side
    // are its write errors).
    if platform.is_some() && config.health_report_s > 0 {
        let (index, http, dir, mut seen) =
            (index.clone(), http.clone(), config.store_dir.clone(), 0u64);
        peercam_net::agent::report_health(
            requests_tx.clone(),
            std::time::Duration::from_secs(config.health_report_s),
            move || {
                let errors = http.server_errors("upload");
                let new_errors = errors.saturating_sub(seen);
                seen = errors;
                let (index, dir) = (index.clone(), dir.clone());
                async move {
                    let mut used = 0u64;
                    for a in index.accounts().await.unwrap_or_default() {
                        if let Ok(Some(u)) = index.usage(&a).await {
                            used = used.saturating_add(u.account.used);
                        }
                    }
                    let free = peercam_store::free_bytes(&dir).unwrap_or(u64::MAX);
                    peercam_signal::cmd::DeviceRequest::Health {
                        disk_used_bytes: used,
                        disk_free_bytes: free,
                        full: free < CS_MIN_FREE_BYTES,
                        write_errors: new_errors,
                    }
                }
            },
            shutdown.clone(),
        );
    }
    let metrics_addr = match config.metrics_listen {
        Some(l) => Some(peercam_net::metrics::serve(l, registry, shutdown.clone()).await?),
        None => None,
    };
    let app = http.layer(api::router(state));
    tracing::info!(%addr, tls = tls.is_some(), "CS serving Cp");
    let task = tokio::spawn(peercam_net::http::serve(
        listener,
        tls,
        app,
        shutdown.clone(),
    ));
    let (status, agent) = match platform {
        Some((p, identity, tls)) => {
            // Cp's base URL, scheme included (the CMU hands it to cameras).
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let advertise = if p.advertise.is_empty() {
                if addr.ip().is_unspecified() {
                    vec![format!("{scheme}://127.0.0.1:{}", addr.port())]
                } else {
                    vec![format!("{scheme}://{addr}")]
                }
            } else {
                p.advertise
                    .iter()
                    .map(|a| {
                        if a.contains("://") {
                            a.clone()
                        } else {
                            format!("{scheme}://{a}")
                        }
                    })
                    .collect()
            };
            // Playback's address after Cp's (the CMU gives cameras the first).
            let mut advertise = advertise;
            if let Some((_, Some(m))) = &media {
                let ip = advertise
                    .first()
                    .and_then(|a| a.split("://").nth(1))
                    .and_then(|a| a.rsplit_once(':'))
                    .map_or_else(|| "127.0.0.1".to_owned(), |(h, _)| h.to_owned());
                advertise.push(format!("rtsp://{ip}:{}", m.port()));
            }
            // WebRTC playback binds where playback listens (loopback for an unspecified one).
            let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
            let webrtc_ip = media
                .as_ref()
                .and_then(|(_, m)| m.map_or(Some(addr.ip()), |m| Some(m.ip())))
                .filter(|ip| !ip.is_unspecified())
                .unwrap_or(loopback);
            let device = Arc::new(agent::CsDevice {
                media: media.as_ref().map(|(m, _)| m.clone()),
                source: source.clone(),
                webrtc_ip,
                shutdown: shutdown.clone(),
                advertise,
                su: su.clone(),
                started: std::time::Instant::now(),
                vendor: identity.vendor.clone(),
                model: identity.model.clone(),
            });
            let link = peercam_net::agent::LinkConfig {
                scu_url: p.scu_url.clone(),
                tls,
                identity,
                sw_version: SW_VERSION.into(),
                reconnect_initial: std::time::Duration::from_millis(p.reconnect_initial_ms),
                reconnect_max: std::time::Duration::from_millis(p.reconnect_max_ms),
                tick: std::time::Duration::from_secs(3600),
            };
            let (status_tx, status) = tokio::sync::watch::channel(agent::CsStatus::Connecting);
            // The CS asks the platform for data keys (Su `cloud_key`).
            let task = tokio::spawn(async move {
                let _keep = requests_tx;
                peercam_net::agent::run(link, device, status_tx, requests, shutdown).await;
            });
            (Some(status), Some(task))
        }
        None => (None, None),
    };
    Ok(Running {
        addr,
        metrics_addr,
        media_addr: media.and_then(|(_, a)| a),
        source,
        index,
        recovery,
        task,
        su,
        status,
        agent,
    })
}

/// `N` bytes from the OS random number generator.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not recoverable for a storage service that encrypts.
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("OS random number generator failed: {e}"));
    b
}

/// Now, Unix ms.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The CS's storage figures (H.626.4 6.1.14; docs/metrics.md), refreshed from the index
/// every 5 s.
fn storage_metrics(r: &peercam_net::metrics::Registry, index: Index, shutdown: Shutdown) {
    let objects = r.gauge(
        "peercam_cs_objects",
        "Objects (segments) stored, all accounts.",
        &[],
    );
    let used = r.gauge(
        "peercam_cs_quota_used_bytes",
        "Bytes the accounts' objects take in the store, all accounts.",
        &[],
    );
    let quota = r.gauge(
        "peercam_cs_quota_bytes",
        "Bytes the accounts may store together.",
        &[],
    );
    let accounts = r.gauge("peercam_cs_accounts", "Storage accounts known.", &[]);
    tokio::spawn(async move {
        loop {
            if let Ok(list) = index.accounts().await {
                let (mut o, mut u, mut q) = (0u64, 0u64, 0u64);
                for a in &list {
                    if let Ok(Some(us)) = index.usage(a).await {
                        o = o.saturating_add(us.objects);
                        u = u.saturating_add(us.account.used);
                        q = q.saturating_add(us.account.quota);
                    }
                }
                let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                accounts.set(g(list.len() as u64));
                objects.set(g(o));
                used.set(g(u));
                quota.set(g(q));
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                () = shutdown.wait() => return,
            }
        }
    });
}
