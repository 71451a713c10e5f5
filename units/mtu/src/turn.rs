//! The STUN/TURN service: [`TurnService::spawn`] binds the listeners and runs
//! `peercam_stun::server::TurnServer` on them (H.626.4 7.2, reference points Mp/Pd/Mn/Nd).
//!
//! # Threads and the fast path
//!
//! The service runs `threads` shards. Each shard is one OS thread with its own
//! single-threaded tokio runtime and its own `TurnServer`; every listener (UDP, TCP, TLS) is
//! bound once per shard with `SO_REUSEPORT`, so the kernel spreads clients over shards by
//! their address and a client always lands on the same shard. A shard owns the relay
//! sockets of its allocations. Relaying a packet therefore takes no lock shared with
//! another thread and allocates nothing: a socket task borrows the shard's server, gets an
//! [`Output`](peercam_stun::server::Output), and sends from a reused buffer. The only
//! cross-shard state is the allocation ledger (quotas), touched on Allocate and on deletion.
//!
//! Datagram I/O is batched (Linux): each socket is read with `recvmmsg`, up to 32
//! datagrams a call into buffers shared by the shard, and a short batch ends the drain
//! without a last read that would only answer `EAGAIN`; datagrams for UDP clients are
//! queued and sent with one `sendmmsg` once every task of the same wake-up has run.
//! Datagrams to peers leave one `sendto` each (one relay socket per allocation). With
//! `udp_offload` (the default), a run of datagrams of one size to the same client (a video
//! frame's packets) leaves as one GSO send, and sockets take coalesced runs with GRO.
//!
//! # Metrics
//!
//! With `metrics` set, `GET /metrics` serves the counters of
//! [`peercam_stun::server::Stats`] summed over shards in the Prometheus text format,
//! named `peercam_mtu_turn_*`. Shards publish their counters every 200 ms.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peercam_net::Shutdown;
use peercam_stun::auth::RestSecret;
use peercam_stun::policy::{Cidr, PeerPolicy};
use peercam_stun::server::{AllocationLedger, Quotas, ServerConfig, Stats};
use serde::Deserialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::MtuError;

mod batch;
mod shard;

/// Configuration of the TURN service (the `[turn]` section of the MTU's config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UDP listener for STUN/TURN. Default `0.0.0.0:3478`; `None` disables it.
    pub listen_udp: Option<SocketAddr>,
    /// TCP listener (RFC 8656 3.1). Default `0.0.0.0:3478`; `None` disables it.
    pub listen_tcp: Option<SocketAddr>,
    /// TLS listener. Default none (set with `tls_cert` and `tls_key`, usually port 5349).
    pub listen_tls: Option<SocketAddr>,
    /// PEM certificate chain for `listen_tls`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `listen_tls`.
    pub tls_key: Option<PathBuf>,
    /// The address relay sockets bind to and that clients are told (XOR-RELAYED-ADDRESS).
    /// Default: the UDP listener's address; required when that is unspecified (`0.0.0.0`).
    pub relay_ip: Option<IpAddr>,
    /// Relay port range, inclusive. Default `[49152, 65535]`.
    pub relay_ports: [u16; 2],
    /// REALM. Default `"peercam"`.
    pub realm: String,
    /// The REST secret shared with the CMU, which mints the credentials. Required.
    pub secret: String,
    /// Refuse credentials without a session scope (docs/security.md D8). Default `true`; turn
    /// off only for third-party test clients such as `turnutils_uclient`.
    pub require_scoped: bool,
    /// Refuse credentials that expire more than this many seconds ahead (plus 5 minutes
    /// of clock skew). Default 86 400.
    pub max_credential_lifetime: Option<u64>,
    /// Peer ranges allowed despite the default deny list (a lab's private network).
    pub allow_peers: Vec<String>,
    /// Peer ranges always denied (for example the relay's own addresses).
    pub deny_peers: Vec<String>,
    /// Let `allow_peers` admit loopback peers. Default `false`; tests on one host only.
    pub allow_loopback_peers: bool,
    /// Quotas.
    pub quotas: QuotaConfig,
    /// Address of the Prometheus `/metrics` endpoint. Default none.
    pub metrics: Option<SocketAddr>,
    /// Shards (threads). Default: the number of CPUs.
    pub threads: Option<usize>,
    /// SOFTWARE attribute in responses. Default `"peercam-mtu"`.
    pub software: Option<String>,
    /// Use UDP segmentation offload (GSO) for runs of datagrams to one client and GRO on
    /// receive, where the kernel has them (Linux; checked at run time). Default `true`.
    pub udp_offload: bool,
}

impl Default for Config {
    fn default() -> Self {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 3478);
        Self {
            listen_udp: Some(any),
            listen_tcp: Some(any),
            listen_tls: None,
            tls_cert: None,
            tls_key: None,
            relay_ip: None,
            relay_ports: [49152, 65535],
            realm: "peercam".into(),
            secret: String::new(),
            require_scoped: true,
            max_credential_lifetime: Some(86_400),
            allow_peers: Vec::new(),
            deny_peers: Vec::new(),
            allow_loopback_peers: false,
            quotas: QuotaConfig::default(),
            metrics: None,
            threads: None,
            software: Some("peercam-mtu".into()),
            udp_offload: true,
        }
    }
}

/// Quotas (RFC 8656 486 / 508), with the defaults of `peercam_stun::server::Quotas`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Allocations in the whole service. Default 10 000.
    pub max_allocations: u32,
    /// Allocations per user (the user part of the REST username). Default 16.
    pub max_allocations_per_user: u32,
    /// Permissions per allocation. Default 32.
    pub max_permissions: usize,
    /// Channels per allocation. Default 32.
    pub max_channels: usize,
    /// Relayed bytes per second per allocation, both directions; `None` for no cap.
    /// Default 5 000 000.
    pub bandwidth: Option<u64>,
    /// Bucket depth in bytes. Default: one second of `bandwidth`.
    pub burst: Option<u64>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        let q = Quotas::default();
        Self {
            max_allocations: q.max_allocations,
            max_allocations_per_user: q.max_allocations_per_user,
            max_permissions: q.max_permissions,
            max_channels: q.max_channels,
            bandwidth: q.bandwidth,
            burst: q.burst,
        }
    }
}

/// The TURN service.
#[derive(Debug)]
pub struct TurnService;

/// A running service: its bound addresses and counters. It stops when the shutdown
/// signal given to [`TurnService::spawn`] fires.
#[derive(Debug)]
pub struct Running {
    /// The UDP listener.
    pub udp: Option<SocketAddr>,
    /// The TCP listener.
    pub tcp: Option<SocketAddr>,
    /// The TLS listener.
    pub tls: Option<SocketAddr>,
    /// The metrics endpoint.
    pub metrics: Option<SocketAddr>,
    stats: Arc<Vec<Mutex<Stats>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// A reader of [`Running::stats`] for the unit's metrics registry.
    pub(crate) fn stats_reader(&self) -> impl Fn() -> Stats + Send + Sync + 'static {
        let stats = self.stats.clone();
        move || sum(&stats)
    }

    /// The counters summed over shards (each at most 200 ms old).
    pub fn stats(&self) -> Stats {
        sum(&self.stats)
    }

    /// Wait for every shard thread to finish (after shutdown).
    pub async fn stopped(self) {
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

fn sum(stats: &[Mutex<Stats>]) -> Stats {
    let mut total = Stats::default();
    for s in stats {
        total.merge(&s.lock().unwrap_or_else(PoisonError::into_inner));
    }
    total
}

/// What a shard needs, built once by [`TurnService::spawn`].
struct ShardSetup {
    server: ServerConfig,
    udp: Option<std::net::UdpSocket>,
    tcp: Option<std::net::TcpListener>,
    tls: Option<std::net::TcpListener>,
    acceptor: Option<peercam_net::tokio_rustls::TlsAcceptor>,
    relay_ip: IpAddr,
    relay_ports: [u16; 2],
    udp_offload: bool,
    seed: u64,
    stats: Arc<Vec<Mutex<Stats>>>,
    index: usize,
    shutdown: Shutdown,
}

impl TurnService {
    /// Validate `config`, bind every listener and start the shards. Must be called inside
    /// a tokio runtime (the metrics endpoint runs on it).
    pub async fn spawn(config: Config, shutdown: Shutdown) -> Result<Running, MtuError> {
        let threads = config
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, 64);
        let server = server_config(&config)?;
        let relay_ip = match (config.relay_ip, config.listen_udp) {
            (Some(ip), _) => ip,
            (None, Some(a)) if !a.ip().is_unspecified() => a.ip(),
            _ => {
                return Err(MtuError::Config(
                    "relay_ip is required when listen_udp is unspecified or off".into(),
                ));
            }
        };
        let [lo, hi] = config.relay_ports;
        if lo == 0 || lo > hi {
            return Err(MtuError::Config(format!("bad relay_ports [{lo}, {hi}]")));
        }
        let acceptor = match (&config.listen_tls, &config.tls_cert, &config.tls_key) {
            (None, ..) => None,
            (Some(_), Some(cert), Some(key)) => {
                let cert = peercam_net::tls::read_pem(cert)?;
                let key = peercam_net::tls::read_pem(key)?;
                let tls = peercam_net::tls::server_config(&cert, &key, &[])?;
                Some(peercam_net::tokio_rustls::TlsAcceptor::from(tls))
            }
            (Some(_), ..) => {
                return Err(MtuError::Config(
                    "listen_tls needs tls_cert and tls_key".into(),
                ));
            }
        };

        // Bind every listener once per shard on the same address (SO_REUSEPORT); port 0
        // resolves on the first bind.
        let mut udp = bind_n(config.listen_udp, threads, Type::DGRAM)?;
        let mut tcp = bind_n(config.listen_tcp, threads, Type::STREAM)?;
        let mut tls = bind_n(config.listen_tls, threads, Type::STREAM)?;
        let local = |v: &[Socket]| -> Result<Option<SocketAddr>, MtuError> {
            v.first()
                .map(|s| {
                    s.local_addr()
                        .map_err(|e| MtuError::io("local address", e))?
                        .as_socket()
                        .ok_or_else(|| MtuError::Config("listener is not an IP socket".into()))
                })
                .transpose()
        };
        let (udp_addr, tcp_addr, tls_addr) = (local(&udp)?, local(&tcp)?, local(&tls)?);

        let stats: Arc<Vec<Mutex<Stats>>> =
            Arc::new((0..threads).map(|_| Mutex::new(Stats::default())).collect());
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| MtuError::Config(format!("no randomness: {e}")))?;
        let seed = u64::from_le_bytes(seed);
        let mut handles = Vec::with_capacity(threads);
        for index in (0..threads).rev() {
            let setup = ShardSetup {
                server: server.clone(),
                udp: udp.pop().map(Into::into),
                tcp: tcp.pop().map(Into::into),
                tls: tls.pop().map(Into::into),
                acceptor: acceptor.clone(),
                relay_ip,
                relay_ports: config.relay_ports,
                udp_offload: config.udp_offload,
                seed: seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                stats: stats.clone(),
                index,
                shutdown: shutdown.clone(),
            };
            let h = std::thread::Builder::new()
                .name(format!("turn-{index}"))
                .spawn(move || shard::run(setup))
                .map_err(|e| MtuError::io("spawning a shard thread", e))?;
            handles.push(h);
        }

        let metrics = match config.metrics {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| MtuError::io(format!("binding metrics {addr}"), e))?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| MtuError::io("metrics address", e))?;
                let s = stats.clone();
                let router = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let s = s.clone();
                        async move {
                            (
                                [("content-type", "text/plain; version=0.0.4")],
                                render_metrics(&sum(&s)),
                            )
                        }
                    }),
                );
                tokio::spawn(peercam_net::http::serve(
                    listener,
                    None,
                    router,
                    shutdown.clone(),
                ));
                Some(bound)
            }
            None => None,
        };
        tracing::info!(udp = ?udp_addr, tcp = ?tcp_addr, tls = ?tls_addr, %relay_ip, threads, "TURN service started");
        Ok(Running {
            udp: udp_addr,
            tcp: tcp_addr,
            tls: tls_addr,
            metrics,
            stats,
            threads: handles,
        })
    }
}

/// The Prometheus text exposition of `stats`.
pub fn render_metrics(stats: &Stats) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for m in stats.metrics() {
        let _ = writeln!(out, "# HELP peercam_mtu_turn_{} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE peercam_mtu_turn_{} {}", m.name, m.kind);
        let _ = writeln!(out, "peercam_mtu_turn_{} {}", m.name, m.value);
    }
    out
}

fn server_config(c: &Config) -> Result<ServerConfig, MtuError> {
    let mut secret = RestSecret::new(c.secret.as_bytes())
        .map_err(|_| MtuError::Config("secret must not be empty".into()))?;
    if let Some(max) = c.max_credential_lifetime {
        // Issuers mint "now + max" (turnutils_uclient: now + 86 400); allow clock skew.
        secret = secret.with_max_lifetime(max.saturating_add(CLOCK_SKEW));
    }
    let cidr = |s: &String| {
        s.parse::<Cidr>()
            .map_err(|_| MtuError::Config(format!("bad CIDR {s:?}")))
    };
    let mut policy = PeerPolicy::new().allow_loopback(c.allow_loopback_peers);
    for s in &c.allow_peers {
        policy = policy.allow(cidr(s)?);
    }
    for s in &c.deny_peers {
        policy = policy.deny(cidr(s)?);
    }
    let mut nonce_key = [0u8; 32];
    getrandom::fill(&mut nonce_key).map_err(|e| MtuError::Config(format!("no randomness: {e}")))?;
    let mut server = ServerConfig::new(c.realm.clone(), secret, nonce_key);
    server.policy = policy;
    server.require_scoped = c.require_scoped;
    server.software.clone_from(&c.software);
    server.ledger = Arc::new(AllocationLedger::new());
    let q = &c.quotas;
    server.quotas = Quotas {
        max_allocations: q.max_allocations,
        max_allocations_per_user: q.max_allocations_per_user,
        max_permissions: q.max_permissions,
        max_channels: q.max_channels,
        bandwidth: q.bandwidth,
        burst: q.burst,
    };
    Ok(server)
}

/// Bind `n` sockets to `addr` with `SO_REUSEPORT`, nonblocking; TCP ones listening.
fn bind_n(addr: Option<SocketAddr>, n: usize, ty: Type) -> Result<Vec<Socket>, MtuError> {
    let Some(mut addr) = addr else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let proto = if ty == Type::DGRAM {
            Protocol::UDP
        } else {
            Protocol::TCP
        };
        let s = Socket::new(Domain::for_address(addr), ty, Some(proto))
            .map_err(|e| MtuError::io("creating a socket", e))?;
        let ctx = |e| MtuError::io(format!("binding {addr}"), e);
        s.set_reuse_address(true).map_err(ctx)?;
        s.set_reuse_port(true).map_err(ctx)?;
        s.set_nonblocking(true).map_err(ctx)?;
        if ty == Type::DGRAM {
            // Bursts of relayed media: deep kernel buffers (best effort).
            let _ = s.set_recv_buffer_size(4 << 20);
            let _ = s.set_send_buffer_size(4 << 20);
        }
        s.bind(&addr.into()).map_err(ctx)?;
        if ty == Type::STREAM {
            s.listen(1024).map_err(ctx)?;
        }
        if addr.port() == 0 {
            addr = s
                .local_addr()
                .map_err(ctx)?
                .as_socket()
                .ok_or_else(|| MtuError::Config("listener is not an IP socket".into()))?;
        }
        out.push(s);
    }
    Ok(out)
}

/// Seconds since the Unix epoch, for credential expiry.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds of clock skew tolerated between the credential issuer and the relay.
const CLOCK_SKEW: u64 = 300;

/// How often shards publish counters and re-check timers.
const TICK: Duration = Duration::from_millis(200);
