use std::net::SocketAddr;
use std::path::PathBuf;

use peercam_base::NodeId;
use serde::Deserialize;

use crate::ScuError;

/// Configuration of one SCU node (`scu.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address devices connect to. Default `0.0.0.0:7001`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// This node's id, unique among the SCUs of one CMU. Default `scu-1`.
    #[serde(default = "default_node")]
    pub node: NodeId,
    /// Region label; MTUs in the same region are preferred at equal load (H.626.4 7.2,
    /// "nearest"). Default empty.
    #[serde(default)]
    pub region: String,
    /// Certificate chain (PEM) presented to devices.
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    pub tls_key: PathBuf,
    /// The CMU's platform endpoint, `wss://HOST:PORT/platform/v1/scu`.
    pub cmu_url: String,
    /// CA certificate (PEM) the CMU's certificate must chain to.
    pub cmu_ca: PathBuf,
    /// Shared secret that authenticates this node to the CMU (at least 16 characters).
    pub node_secret: String,
    /// Heartbeat period asked of devices, ms. Default 4000.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// Silence after which a device is offline, ms. Default 10000.
    #[serde(default = "default_dead_after")]
    pub dead_after_ms: u64,
    /// Device handshakes (TLS + registration) in progress at once; more wait (admission
    /// control against reconnect storms, docs/security.md D12). Default 512.
    #[serde(default = "default_handshakes")]
    pub max_concurrent_handshakes: usize,
    /// Where `GET /metrics` (Prometheus text format) is served, plain HTTP; unset: nowhere.
    /// Bind it to loopback or a management network (docs/security.md). Default unset.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7001))
}
fn default_node() -> NodeId {
    NodeId::from_static_ok("scu-1")
}
fn default_heartbeat() -> u64 {
    4000
}
fn default_dead_after() -> u64 {
    10_000
}
fn default_handshakes() -> usize {
    512
}

trait FromStaticOk {
    fn from_static_ok(s: &str) -> Self;
}
impl FromStaticOk for NodeId {
    fn from_static_ok(s: &str) -> Self {
        s.parse()
            .unwrap_or_else(|_| unreachable!("static node id is valid"))
    }
}

impl Config {
    /// A configuration with defaults for everything that has one.
    pub fn new(
        tls_cert: PathBuf,
        tls_key: PathBuf,
        cmu_url: String,
        cmu_ca: PathBuf,
        node_secret: String,
    ) -> Self {
        Self {
            listen: default_listen(),
            node: default_node(),
            region: String::new(),
            tls_cert,
            tls_key,
            cmu_url,
            cmu_ca,
            node_secret,
            heartbeat_ms: default_heartbeat(),
            dead_after_ms: default_dead_after(),
            max_concurrent_handshakes: default_handshakes(),
            metrics_listen: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ScuError> {
        if self.node_secret.len() < 16 {
            return Err(ScuError::Config(
                "node_secret must be at least 16 characters".into(),
            ));
        }
        if self.heartbeat_ms < 500 || self.dead_after_ms < self.heartbeat_ms * 2 {
            return Err(ScuError::Config(
                "heartbeat_ms >= 500 and dead_after_ms >= 2 * heartbeat_ms".into(),
            ));
        }
        if self.max_concurrent_handshakes == 0 {
            return Err(ScuError::Config(
                "max_concurrent_handshakes must be positive".into(),
            ));
        }
        Ok(())
    }
}
