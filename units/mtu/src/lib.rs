//! The media transmission unit (H.626.4 7, "used only when the P2P channel fails").
//!
//! - **RTSP relay with fan-out** ([`relay`]; Mp / Pd towards the camera, Mc / Cd towards
//!   viewers): a viewer that cannot reach a camera directly plays
//!   `rtsp://MTU/relay/CAMERA?token=...`. The MTU checks the token with the platform (Dm),
//!   and, for the first viewer of a camera, asks the platform for the camera's stream: the
//!   camera opens an outbound TLS channel to the MTU (so it works behind any NAT, even with
//!   UDP blocked) and serves RTSP over it. One upstream per camera feeds every viewer
//!   (7.3: one unicast feed turned into many).
//! - **STUN/TURN** ([`turn`]; RFC 8489, RFC 8656 over UDP, TCP and TLS): for WebRTC
//!   viewers and ICE, with credentials the CMU mints from a shared secret (scoped to the
//!   session's peers, docs/security.md D8). See docs/turn.md.
//! - **Registration and load reports** (`agent`): the MTU registers with an SCU like a
//!   device and reports its addresses and load, from which the SCU chooses an MTU per
//!   session (7.2, Sd).

mod agent;
mod error;
pub mod multicast;
mod pipe;
pub mod relay;
mod talk;
pub mod transcode;
pub mod turn;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use peercam_net::{NetError, Shutdown};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::relay::MtuAddresses;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

pub use agent::MtuStatus;
pub use error::MtuError;

/// Software version reported to the platform.
pub const SW_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Configuration of an MTU (`mtu.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The MTU's identity file (provisioned with `peercam admin device provision --kind mtu`).
    pub identity: PathBuf,
    /// The SCU, `wss://HOST:PORT/`.
    pub scu_url: String,
    /// CA certificate (PEM) of the platform.
    pub platform_ca: PathBuf,
    /// Certificate chain (PEM) the MTU presents to cameras on the tunnel port; it must name
    /// `server_name` and chain to the platform CA.
    pub tls_cert: PathBuf,
    /// Its key (PEM).
    pub tls_key: PathBuf,
    /// The name on `tls_cert` cameras check. Default `localhost`.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// Where viewers connect (Mc). Default `0.0.0.0:8654`.
    #[serde(default = "default_rtsp_listen")]
    pub rtsp_listen: SocketAddr,
    /// Where cameras open their relay channel (Pd). Default `0.0.0.0:8655`.
    #[serde(default = "default_tunnel_listen")]
    pub tunnel_listen: SocketAddr,
    /// The host name or address viewers and cameras reach this MTU at. Default: the
    /// listening address, or 127.0.0.1 when listening on all interfaces.
    #[serde(default)]
    pub public_host: Option<String>,
    /// STUN/TURN URIs to report; default: those of the `[turn]` service, on `public_host`.
    #[serde(default)]
    pub turn_uris: Vec<String>,
    /// The STUN/TURN service (docs/turn.md); none when absent.
    #[serde(default)]
    pub turn: Option<turn::Config>,
    /// RTP multicast towards viewers on networks that allow it (7.3); off when absent.
    #[serde(default)]
    pub multicast: Option<multicast::Config>,
    /// Viewers this MTU is sized for; the SCU stops choosing it when full. Default 500.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// Region label, for "nearest" in MTU selection. Default empty.
    #[serde(default)]
    pub region: String,
    /// How often the load is reported, ms. Default 2000.
    #[serde(default = "default_report_ms")]
    pub report_ms: u64,
    /// How long an upstream lingers after its last viewer left, ms. Default 5000.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Reconnect backoff, initial, ms. Default 500.
    #[serde(default = "default_backoff_initial")]
    pub reconnect_initial_ms: u64,
    /// Reconnect backoff, ceiling, ms. Default 30000.
    #[serde(default = "default_backoff_max")]
    pub reconnect_max_ms: u64,
    /// Where `GET /metrics` (Prometheus text format: the relay's and TURN's figures) is
    /// served, plain HTTP; bind it to loopback or a management network (docs/security.md).
    /// Default unset.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_server_name() -> String {
    "localhost".into()
}
fn default_rtsp_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8654))
}
fn default_tunnel_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8655))
}
fn default_capacity() -> u32 {
    500
}
fn default_report_ms() -> u64 {
    2000
}
fn default_linger_ms() -> u64 {
    5000
}
fn default_backoff_initial() -> u64 {
    500
}
fn default_backoff_max() -> u64 {
    30_000
}

impl Config {
    /// A configuration with defaults for everything optional.
    pub fn new(
        identity: PathBuf,
        scu_url: String,
        platform_ca: PathBuf,
        tls_cert: PathBuf,
        tls_key: PathBuf,
    ) -> Self {
        Self {
            identity,
            scu_url,
            platform_ca,
            tls_cert,
            tls_key,
            server_name: default_server_name(),
            rtsp_listen: default_rtsp_listen(),
            tunnel_listen: default_tunnel_listen(),
            public_host: None,
            turn_uris: Vec::new(),
            turn: None,
            multicast: None,
            capacity: default_capacity(),
            region: String::new(),
            report_ms: default_report_ms(),
            linger_ms: default_linger_ms(),
            reconnect_initial_ms: default_backoff_initial(),
            reconnect_max_ms: default_backoff_max(),
            metrics_listen: None,
        }
    }
}

/// A running MTU.
#[derive(Debug)]
pub struct Running {
    /// Registration state.
    pub status: watch::Receiver<MtuStatus>,
    /// Where viewers connect.
    pub rtsp_addr: SocketAddr,
    /// Where cameras connect.
    pub tunnel_addr: SocketAddr,
    /// Relay counters.
    pub stats: Arc<relay::Stats>,
    /// The STUN/TURN service, when configured.
    pub turn: Option<turn::Running>,
    /// The agent task (ends on shutdown).
    pub task: tokio::task::JoinHandle<()>,
    /// Where `GET /metrics` is served, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
}

/// The MTU's metrics (H.626.4 6.1.14; docs/metrics.md): the relay's counters read at scrape
/// time, and the TURN service's.
fn registry(
    stats: &Arc<relay::Stats>,
    turn: Option<&turn::Running>,
    status: watch::Receiver<MtuStatus>,
) -> Arc<peercam_net::metrics::Registry> {
    use std::sync::atomic::Ordering::Relaxed;
    let r = peercam_net::metrics::Registry::new("mtu");
    r.gauge_fn(
        "peercam_mtu_registered",
        "1 while the MTU is registered with its SCU.",
        &[],
        move || {
            f64::from(u8::from(matches!(
                *status.borrow(),
                MtuStatus::Registered { .. }
            )))
        },
    );
    let s = stats.clone();
    r.gauge_fn(
        "peercam_mtu_relay_viewers",
        "RTSP relay viewers connected and authorised now.",
        &[],
        move || f64::from(s.viewers.load(Relaxed)),
    );
    let s = stats.clone();
    r.gauge_fn(
        "peercam_mtu_relay_upstreams",
        "Cameras with a running relay upstream now.",
        &[],
        move || f64::from(s.upstreams.load(Relaxed)),
    );
    type Field = fn(&relay::Stats) -> &std::sync::atomic::AtomicU64;
    let counters: [(&'static str, &'static str, Field); 6] = [
        (
            "peercam_mtu_relay_upstreams_total",
            "Relay upstreams (camera sessions) ever opened.",
            |s| &s.upstreams_total,
        ),
        (
            "peercam_mtu_relay_bytes_in_total",
            "Bytes received from cameras over the relay.",
            |s| &s.bytes_in,
        ),
        (
            "peercam_mtu_relay_bytes_out_total",
            "Bytes sent to relay viewers.",
            |s| &s.bytes_out,
        ),
        (
            "peercam_mtu_relay_refused_total",
            "Relay viewers refused (bad token, camera unreachable).",
            |s| &s.refused,
        ),
        (
            "peercam_mtu_multicast_bytes_out_total",
            "Bytes sent to multicast groups.",
            |s| &s.multicast_bytes_out,
        ),
        (
            "peercam_mtu_transcodes_total",
            "Feeds transcoded because the camera could not serve the profile.",
            |s| &s.transcodes_total,
        ),
    ];
    for (name, help, field) in counters {
        let s = stats.clone();
        r.counter_fn(name, help, &[], move || field(&s).load(Relaxed) as f64);
    }
    if let Some(t) = turn {
        let read = t.stats_reader();
        r.text_fn(move || turn::render_metrics(&read()));
    }
    r
}

async fn bind(
    addr: SocketAddr,
    what: &str,
) -> Result<(tokio::net::TcpListener, SocketAddr), MtuError> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NetError::Io {
            context: format!("binding {what} {addr}"),
            source: e,
        })?;
    let a = l.local_addr().map_err(|e| NetError::Io {
        context: format!("{what} address"),
        source: e,
    })?;
    Ok((l, a))
}

/// Loads the identity, binds the relay's listeners and starts the agent.
pub async fn start(config: Config, shutdown: Shutdown) -> Result<Running, MtuError> {
    let text = std::fs::read_to_string(&config.identity).map_err(|e| NetError::Io {
        context: format!("reading {}", config.identity.display()),
        source: e,
    })?;
    let identity = DeviceIdentity::parse(&text)
        .map_err(|e| MtuError::Identity(format!("{}: {e}", config.identity.display())))?;
    if identity.kind != peercam_signal::ps::DeviceKind::Mtu {
        return Err(MtuError::Identity(format!(
            "{} is not an MTU identity",
            config.identity.display()
        )));
    }
    if let Some(m) = &config.multicast {
        m.validate()?;
    }
    let ca = peercam_net::tls::read_pem(&config.platform_ca)?;
    let client_tls = peercam_net::tls::client_config(&ca)?;
    let cert = peercam_net::tls::read_pem(&config.tls_cert)?;
    let key = peercam_net::tls::read_pem(&config.tls_key)?;
    let server_tls = peercam_net::tls::server_config(&cert, &key, &[])?;
    let (rtsp_l, rtsp_addr) = bind(config.rtsp_listen, "RTSP relay").await?;
    let (tunnel_l, tunnel_addr) = bind(config.tunnel_listen, "relay tunnel").await?;
    let host = config.public_host.clone().unwrap_or_else(|| {
        if rtsp_addr.ip().is_unspecified() {
            "127.0.0.1".into()
        } else {
            rtsp_addr.ip().to_string()
        }
    });
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let turn = match config.turn.clone() {
        Some(t) => Some(turn::TurnService::spawn(t, shutdown.clone()).await?),
        None => None,
    };
    let mut turn_uris = config.turn_uris.clone();
    if turn_uris.is_empty()
        && let Some(t) = &turn
    {
        // RFC 7064 / 7065 URIs of what the service listens on, at the MTU's public host.
        if let Some(a) = t.udp {
            turn_uris.push(format!("turn:{host}:{}?transport=udp", a.port()));
        }
        if let Some(a) = t.tcp {
            turn_uris.push(format!("turn:{host}:{}?transport=tcp", a.port()));
        }
        if let Some(a) = t.tls {
            turn_uris.push(format!("turns:{host}:{}?transport=tcp", a.port()));
        }
    }
    let addresses = MtuAddresses {
        rtsp: format!("{host}:{}", rtsp_addr.port()),
        tunnel: format!("{host}:{}", tunnel_addr.port()),
        turn: turn_uris,
        region: config.region.clone(),
    };
    let (platform_tx, platform_rx) = mpsc::channel(256);
    let relay = relay::Relay::new(
        platform_tx,
        addresses.tunnel.clone(),
        config.server_name.clone(),
        Duration::from_millis(config.linger_ms),
        config.multicast.clone(),
        shutdown.clone(),
    );
    let stats = relay.stats.clone();
    tokio::spawn(relay.clone().serve_viewers(rtsp_l));
    tokio::spawn(relay.clone().expire_tickets());
    tokio::spawn(relay.clone().serve_tunnels(
        tunnel_l,
        peercam_net::tokio_rustls::TlsAcceptor::from(server_tls),
    ));
    let (status_tx, status) = watch::channel(MtuStatus::Connecting);
    tracing::info!(%rtsp_addr, %tunnel_addr, mtu = %identity.device_id, "MTU relay listening");
    let mtu = Arc::new(agent::Mtu {
        addresses,
        capacity: config.capacity,
        stats: stats.clone(),
        relay,
    });
    let link = peercam_net::agent::LinkConfig {
        scu_url: config.scu_url.clone(),
        tls: client_tls,
        identity,
        sw_version: SW_VERSION.into(),
        reconnect_initial: Duration::from_millis(config.reconnect_initial_ms),
        reconnect_max: Duration::from_millis(config.reconnect_max_ms),
        tick: Duration::from_millis(config.report_ms),
    };
    let metrics_shutdown = shutdown.clone();
    let task = tokio::spawn(peercam_net::agent::run(
        link,
        mtu,
        status_tx,
        platform_rx,
        shutdown,
    ));
    let metrics_addr = match config.metrics_listen {
        Some(l) => Some(
            peercam_net::metrics::serve(
                l,
                registry(&stats, turn.as_ref(), status.clone()),
                metrics_shutdown,
            )
            .await?,
        ),
        None => None,
    };
    Ok(Running {
        status,
        rtsp_addr,
        tunnel_addr,
        stats,
        turn,
        task,
        metrics_addr,
    })
}
