//! The peercam NVR: a network video recorder beside the cameras (H.626.4 8.7.2, 6.1.7).
//!
//! * It is a device of its own: it has an identity, registers with an SCU like a camera
//!   (8.1) and is bound to an owner (8.2).
//! * The owner attaches cameras to it (8.7.2.1 steps 1-8); it looks for each on its LAN
//!   with a multicast probe the cameras answer with a signed announcement (Np).
//! * Each camera gets a record strategy (steps 9-15). When the strategy fires, the NVR asks
//!   the platform for the camera's stream (steps 16-18) and records it into a crash-safe
//!   [`peercam_store::Store`].
//! * Users list recordings, play them back over RTSP (seek, fast, slow, reverse, frame
//!   step) and export MP4 files over HTTP, straight from the NVR (Nc/Nc'), with one-time
//!   tokens the platform minted and checks (8.7.2.2).
//!
//! ```text
//!            Ps (WebSocket)                     RTSP /live (token)
//!   SCU <------------------- agent ------------------------------> PU
//!                              |  commands         recorder tasks --+
//!                              v                        | drafts
//!                           cameras ---- strategy ---> writer --> Store (files + SQLite)
//!                                                                   ^
//!   CU  --- RTSP /rec (Range, Scale) / HTTP /export ----> media ----+
//! ```

mod agent;
mod cameras;
mod pull;
mod recorder;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use peercam_net::{NetError, Shutdown};
use peercam_store::{Store, StoreConfig};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

pub use agent::NvrStatus;
pub use cameras::CameraListError;
use peercam_recorder::now_ms;

/// This NVR's software version.
pub const SW_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the NVR could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NvrError {
    /// Network setup failed, or the identity file is unusable.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The identity is not an NVR's.
    #[error("identity {0} is not an NVR's (kind must be \"nvr\")")]
    NotAnNvr(PathBuf),
    /// The recording store failed to open.
    #[error("recording store: {0}")]
    Store(#[from] peercam_store::StoreError),
    /// The saved camera list is unusable.
    #[error(transparent)]
    State(#[from] CameraListError),
}

/// Configuration of an NVR (`nvr.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The identity file written at provisioning (kind `nvr`).
    pub identity: PathBuf,
    /// The SCU's device endpoint, `wss://HOST:PORT/`.
    pub scu_url: String,
    /// The platform CA certificate (PEM).
    pub platform_ca: PathBuf,
    /// Where recordings and the index live. Default: beside the identity file,
    /// `<identity minus .toml>.recordings/`.
    #[serde(default)]
    pub store_dir: Option<PathBuf>,
    /// Where playback (RTSP) and export (HTTP) listen, on one port. Default `0.0.0.0:8556`.
    #[serde(default = "default_media_listen")]
    pub media_listen: SocketAddr,
    /// Addresses (`host:port`) clients use to reach `media_listen`, best first, reported
    /// to the platform. Default: the listening address (loopback when on all interfaces).
    #[serde(default)]
    pub advertise: Vec<String>,
    /// The cameras' LAN discovery port (Np); 0 turns discovery off. Default 45454.
    #[serde(default = "peercam_net::discover::default_port")]
    pub discovery_port: u16,
    /// Target segment length, seconds (a segment is acknowledged as a whole: this bounds
    /// what a crash can lose). Default 2.
    #[serde(default = "default_segment_s")]
    pub segment_s: u32,
    /// Keep at least this many MiB free on the disk; below, the oldest recordings go.
    /// Default 64.
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
    /// MiB all cameras may use together (0: the disk's size). Default 0.
    #[serde(default)]
    pub disk_quota_mb: u64,
    /// Most frames per second sent in trick play before fast modes switch to key frames
    /// only. Default 60.
    #[serde(default = "default_max_out_fps")]
    pub max_out_fps: u32,
    /// First reconnect delay to the SCU, ms. Default 250.
    #[serde(default = "peercam_net::agent::default_reconnect_initial_ms")]
    pub reconnect_initial_ms: u64,
    /// Longest reconnect delay, ms. Default 4000.
    #[serde(default = "peercam_net::agent::default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// H.626.4 8.3 step 1, as for a camera: ask the home gateway (PCP, NAT-PMP, then UPnP
    /// IGD) to map the media port, and report the mapping so that clients anywhere reach
    /// playback directly. Default true.
    #[serde(default = "default_true")]
    pub port_mapping: bool,
    /// The gateway to ask; default: the default route's gateway.
    #[serde(default)]
    pub gateway: Option<std::net::IpAddr>,
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

fn default_true() -> bool {
    true
}

fn default_media_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8556))
}
fn default_segment_s() -> u32 {
    2
}
fn default_min_free_mb() -> u64 {
    64
}
fn default_max_out_fps() -> u32 {
    60
}

impl Config {
    /// A configuration with defaults for everything optional.
    pub fn new(identity: PathBuf, scu_url: String, platform_ca: PathBuf) -> Self {
        Self {
            identity,
            scu_url,
            platform_ca,
            store_dir: None,
            media_listen: default_media_listen(),
            advertise: Vec::new(),
            discovery_port: peercam_net::discover::default_port(),
            segment_s: default_segment_s(),
            min_free_mb: default_min_free_mb(),
            disk_quota_mb: 0,
            max_out_fps: default_max_out_fps(),
            reconnect_initial_ms: peercam_net::agent::default_reconnect_initial_ms(),
            reconnect_max_ms: peercam_net::agent::default_reconnect_max_ms(),
            port_mapping: false,
            gateway: None,
            metrics_listen: None,
            health_report_s: default_health_report_s(),
        }
    }

    /// The store directory in effect.
    pub fn store_dir(&self) -> PathBuf {
        self.store_dir
            .clone()
            .unwrap_or_else(|| self.identity.with_extension("recordings"))
    }
}

/// A running NVR.
#[derive(Debug)]
pub struct Running {
    /// Registration state.
    pub status: watch::Receiver<NvrStatus>,
    /// Where playback and export listen.
    pub media_addr: SocketAddr,
    /// The recording store.
    pub store: Store,
    /// The agent task (ends on shutdown).
    pub task: tokio::task::JoinHandle<()>,
    /// Where `GET /metrics` is served, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
}

/// Loads the identity, opens (and repairs) the store, binds the media listener and starts
/// the agent, the writer and one recorder per attached camera.
pub async fn start(config: Config, shutdown: Shutdown) -> Result<Running, NvrError> {
    let (identity, tls) = peercam_net::agent::load_device(&config.identity, &config.platform_ca)?;
    if identity.kind != peercam_signal::ps::DeviceKind::Nvr {
        return Err(NvrError::NotAnNvr(config.identity.clone()));
    }
    let mut store_cfg = StoreConfig::new(config.store_dir());
    store_cfg.min_free_bytes = config.min_free_mb << 20;
    store_cfg.disk_quota_bytes = config.disk_quota_mb << 20;
    let (store, report) = Store::open(store_cfg).await?;
    tracing::info!(
        segments = report.segments,
        orphans = report.orphans_removed,
        dropped = report.rows_dropped.len(),
        "recording store open"
    );
    let (listener, media_addr) = peercam_net::accept::bind(config.media_listen, "media").await?;
    let advertise = if config.advertise.is_empty() {
        if media_addr.ip().is_unspecified() {
            vec![format!("127.0.0.1:{}", media_addr.port())]
        } else {
            vec![media_addr.to_string()]
        }
    } else {
        config.advertise.clone()
    };
    let (platform_tx, platform_rx) = mpsc::channel(256);
    // 6.1.14: the store's health, reported periodically.
    if config.health_report_s > 0 {
        let (store, mut seen) = (store.clone(), (0u64, 0u64));
        peercam_net::agent::report_health(
            platform_tx.clone(),
            std::time::Duration::from_secs(config.health_report_s),
            move || {
                let store = store.clone();
                let st = store.stats().clone();
                let (errors, full) = (
                    st.write_errors.load(std::sync::atomic::Ordering::Relaxed),
                    st.full_errors.load(std::sync::atomic::Ordering::Relaxed),
                );
                let (new_errors, new_full) =
                    (errors.saturating_sub(seen.0), full.saturating_sub(seen.1));
                seen = (errors, full);
                async move {
                    let used = store.usage(None).await.unwrap_or(0);
                    let free = peercam_store::free_bytes(&store.config().root).unwrap_or(u64::MAX);
                    peercam_signal::cmd::DeviceRequest::Health {
                        disk_used_bytes: used,
                        disk_free_bytes: free,
                        full: new_full > 0 || free < store.config().min_free_bytes,
                        write_errors: new_errors,
                    }
                }
            },
            shutdown.clone(),
        );
    }
    // 6.1.9: a full disk is reported to the platform at once, for each camera it hits.
    let full = peercam_recorder::storage_full_to_platform(platform_tx.clone(), None);
    let writer = peercam_recorder::Writer::start(store.clone(), shutdown.clone(), Some(full));
    let cams = Arc::new(cameras::Cameras::open(
        config.store_dir().join("cameras.json"),
        store.clone(),
        writer,
        platform_tx.clone(),
        config.clone(),
        shutdown.clone(),
    )?);
    cams.start_all();
    // Playback and export clients' tokens go to the platform through the agent.
    let media = peercam_recorder::serve::Media::with_platform(
        Arc::new(store.clone()),
        platform_tx,
        config.max_out_fps,
    );
    tokio::spawn(media.clone().serve(listener, shutdown.clone()));
    let webrtc_ip = peercam_net::agent::advertised_ip(&advertise);
    // 8.3 steps 1-2 for recorders: the media port mapped on the gateway, reported beside
    // the local addresses (the CMU offers both in playback answers, Mn/Nd last).
    let (mapped_tx, mapped) = watch::channel(Vec::new());
    if config.port_mapping {
        peercam_net::portmap::keep_mapped(
            config.gateway,
            media_addr.port(),
            mapped_tx,
            shutdown.clone(),
        );
    }
    let (status_tx, status) = watch::channel(NvrStatus::Connecting);
    let nvr = Arc::new(agent::Nvr {
        advertise,
        cameras: cams,
        started: std::time::Instant::now(),
        vendor: identity.vendor.clone(),
        model: identity.model.clone(),
        media,
        webrtc_ip,
        shutdown: shutdown.clone(),
        tls: tls.clone(),
        mapped,
    });
    let link = peercam_net::agent::LinkConfig {
        scu_url: config.scu_url.clone(),
        tls,
        identity,
        sw_version: SW_VERSION.into(),
        reconnect_initial: std::time::Duration::from_millis(config.reconnect_initial_ms),
        reconnect_max: std::time::Duration::from_millis(config.reconnect_max_ms),
        tick: std::time::Duration::from_secs(3600),
    };
    let metrics_shutdown = shutdown.clone();
    let task = tokio::spawn(peercam_net::agent::run(
        link,
        nvr,
        status_tx,
        platform_rx,
        shutdown,
    ));
    let metrics_addr = match config.metrics_listen {
        Some(l) => Some(
            peercam_net::metrics::serve(
                l,
                registry(&store, metrics_shutdown.clone()),
                metrics_shutdown,
            )
            .await?,
        ),
        None => None,
    };
    Ok(Running {
        status,
        media_addr,
        store,
        task,
        metrics_addr,
    })
}

/// The NVR's metrics (H.626.4 6.1.14; docs/metrics.md): the store's write counters, and its
/// disk use refreshed every 5 s by a task of its own.
fn registry(store: &Store, shutdown: Shutdown) -> Arc<peercam_net::metrics::Registry> {
    use std::sync::atomic::Ordering::Relaxed;
    let r = peercam_net::metrics::Registry::new("nvr");
    let st = store.stats().clone();
    let s = st.clone();
    r.counter_fn(
        "peercam_nvr_segments_written_total",
        "Recording segments committed to the store.",
        &[],
        move || s.segments_written.load(Relaxed) as f64,
    );
    let s = st.clone();
    r.counter_fn(
        "peercam_nvr_bytes_written_total",
        "Bytes of the recording segments committed.",
        &[],
        move || s.bytes_written.load(Relaxed) as f64,
    );
    let s = st.clone();
    r.counter_fn(
        "peercam_nvr_write_errors_total",
        "Segments that could not be stored (disk full, IO or index errors).",
        &[],
        move || s.write_errors.load(Relaxed) as f64,
    );
    let s = st;
    r.counter_fn(
        "peercam_nvr_disk_full_errors_total",
        "Segments refused because the disk or the index was full.",
        &[],
        move || s.full_errors.load(Relaxed) as f64,
    );
    let used = r.gauge(
        "peercam_nvr_disk_used_bytes",
        "Bytes the recordings use (all cameras).",
        &[],
    );
    let free = r.gauge(
        "peercam_nvr_disk_free_bytes",
        "Bytes free for unprivileged users on the store's file system.",
        &[],
    );
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            if let Ok(u) = store.usage(None).await {
                used.set(i64::try_from(u).unwrap_or(i64::MAX));
            }
            if let Some(f) = peercam_store::free_bytes(&store.config().root) {
                free.set(i64::try_from(f).unwrap_or(i64::MAX));
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                () = shutdown.wait() => return,
            }
        }
    });
    r
}
