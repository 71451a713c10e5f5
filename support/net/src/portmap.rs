//! Gateway port mapping for the camera (H.626.4 8.3 step 1: "PU asks its gateway for
//! traversal (port mapping) and gets the result").
//!
//! A thin tokio driver around the sans-IO [`peercam_portmap::mapper::Mapper`]: it finds
//! the default gateway (from `/proc/thread-self/net/route`, so that it works on a thread
//! moved into another network namespace), asks it by PCP, then NAT-PMP, then UPnP IGD,
//! keeps the mapping renewed in a background task, and deletes it when the
//! [`PortMapping`] handle is released or dropped, or when the [`Shutdown`] fires.
//!
//! ```no_run
//! # async fn f() -> Result<(), peercam_net::portmap::PortMapError> {
//! use std::time::Duration;
//! use peercam_net::portmap::{self, Protocol};
//! let m = portmap::map_port(Protocol::Tcp, 8554, Duration::from_secs(3600)).await?;
//! println!("reachable at {} by {}", m.mapping().external, m.mapping().method);
//! m.release().await;
//! # Ok(()) }
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

pub use peercam_portmap::Protocol;
use peercam_portmap::mapper::{Config, Event, Mapper, Transmit};
pub use peercam_portmap::mapper::{Mapping, Method};
use peercam_portmap::upnp::http::{HttpResponse, MAX_BODY, MAX_HEAD};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::Shutdown;

/// Errors of port mapping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortMapError {
    /// No gateway configured and no default route found.
    #[error("no default gateway: {0}")]
    NoGateway(String),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Every method failed (no PCP/NAT-PMP answer, no UPnP gateway, or refusals).
    #[error("the gateway gave no mapping: {0}")]
    Failed(String),
    /// Shutdown was triggered before a mapping was obtained.
    #[error("shut down before a mapping was obtained")]
    Shutdown,
}

impl PortMapError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// How to map.
#[derive(Debug, Clone)]
pub struct PortMapConfig {
    /// The gateway; `None`: the default route's gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Methods to try, in order (default PCP, NAT-PMP, UPnP).
    pub methods: Vec<Method>,
    /// First PCP/NAT-PMP retransmission timeout (RFC 6886 3.1: 250 ms).
    pub initial_rto: Duration,
    /// NAT-PMP sends before giving up (RFC 6886 3.1: 9).
    pub natpmp_tries: u32,
    /// PCP sends before falling back to NAT-PMP.
    pub pcp_tries: u32,
    /// How long to wait for SSDP answers.
    pub ssdp_wait: Duration,
    /// Limit for one UPnP HTTP exchange.
    pub http_timeout: Duration,
    /// How long a release may take before the task gives up on the gateway.
    pub release_timeout: Duration,
    /// UPnP `NewPortMappingDescription`.
    pub description: String,
}

impl Default for PortMapConfig {
    fn default() -> Self {
        Self {
            gateway: None,
            methods: vec![Method::Pcp, Method::NatPmp, Method::Upnp],
            initial_rto: Duration::from_millis(250),
            natpmp_tries: 9,
            pcp_tries: 3,
            ssdp_wait: Duration::from_secs(3),
            http_timeout: Duration::from_secs(5),
            release_timeout: Duration::from_secs(3),
            description: "peercam".to_owned(),
        }
    }
}

/// Maps `internal_port` with the default configuration until the returned handle is
/// released or dropped.
pub async fn map_port(
    protocol: Protocol,
    internal_port: u16,
    lifetime: Duration,
) -> Result<PortMapping, PortMapError> {
    PortMapper::new(PortMapConfig::default())
        .map_port(protocol, internal_port, lifetime, &Shutdown::new())
        .await
}

/// Creates port mappings.
#[derive(Debug, Clone, Default)]
pub struct PortMapper {
    cfg: PortMapConfig,
}

impl PortMapper {
    /// A mapper with this configuration.
    pub fn new(cfg: PortMapConfig) -> Self {
        Self { cfg }
    }

    /// Asks the gateway to map `internal_port` for `lifetime` (renewed at half of it) and
    /// returns once a mapping exists. The mapping is deleted when `shutdown` fires or the
    /// returned handle is released or dropped.
    pub async fn map_port(
        &self,
        protocol: Protocol,
        internal_port: u16,
        lifetime: Duration,
        shutdown: &Shutdown,
    ) -> Result<PortMapping, PortMapError> {
        let gateway = match self.cfg.gateway {
            Some(g) => g,
            None => default_gateway()?,
        };
        let gw_sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .await
            .map_err(|e| PortMapError::io("bind PCP/NAT-PMP socket", e))?;
        gw_sock
            .connect((gateway, peercam_portmap::natpmp::PORT))
            .await
            .map_err(|e| PortMapError::io(format!("connect to gateway {gateway}"), e))?;
        let client = match gw_sock.local_addr() {
            Ok(SocketAddr::V4(a)) => *a.ip(),
            Ok(other) => {
                return Err(PortMapError::NoGateway(format!(
                    "local address {other} is not IPv4"
                )));
            }
            Err(e) => return Err(PortMapError::io("local address", e)),
        };
        let ssdp_sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .await
            .map_err(|e| PortMapError::io("bind SSDP socket", e))?;

        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| {
            PortMapError::io("random PCP nonce", std::io::Error::other(e.to_string()))
        })?;
        let mut mc = Config::new(protocol, internal_port, gateway, client, nonce);
        mc.lifetime = lifetime;
        mc.methods.clone_from(&self.cfg.methods);
        mc.initial_rto = self.cfg.initial_rto;
        mc.natpmp_tries = self.cfg.natpmp_tries;
        mc.pcp_tries = self.cfg.pcp_tries;
        mc.ssdp_wait = self.cfg.ssdp_wait;
        mc.description.clone_from(&self.cfg.description);
        let mapper = Mapper::new(mc, Instant::now().into_std());

        let (ready_tx, ready_rx) = oneshot::channel();
        let (current_tx, current_rx) = watch::channel(None);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let driver = Driver {
            mapper,
            gw_sock,
            ssdp_sock,
            http_timeout: self.cfg.http_timeout,
            release_timeout: self.cfg.release_timeout,
            ready: Some(ready_tx),
            current: current_tx,
        };
        tokio::spawn(driver.run(stop_rx, shutdown.clone(), done_tx));
        let first = tokio::select! {
            r = ready_rx => r.unwrap_or_else(|_| Err(PortMapError::Failed("driver ended".into()))),
            () = shutdown.wait() => Err(PortMapError::Shutdown),
        }?;
        tracing::info!(
            external = %first.external,
            method = %first.method,
            lifetime_s = first.lifetime.as_secs(),
            gateway = %gateway,
            "port mapped (H.626.4 8.3)"
        );
        Ok(PortMapping {
            first,
            current: current_rx,
            stop: Some(stop_tx),
            done: Some(done_rx),
        })
    }
}

/// A mapping held by a background task that renews it; deleted on [`PortMapping::release`]
/// or drop (the deletion is then sent in the background).
#[derive(Debug)]
pub struct PortMapping {
    first: Mapping,
    current: watch::Receiver<Option<Mapping>>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl PortMapping {
    /// The mapping as last granted (the first one if a renewal is under way or failed).
    pub fn mapping(&self) -> Mapping {
        (*self.current.borrow()).unwrap_or(self.first)
    }

    /// Follows renewals: `None` while a lost mapping is being re-established.
    pub fn watch(&self) -> watch::Receiver<Option<Mapping>> {
        self.current.clone()
    }

    /// Deletes the mapping at the gateway and waits until it answered (or the release
    /// timeout passed).
    pub async fn release(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

impl Drop for PortMapping {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

struct Driver {
    mapper: Mapper,
    gw_sock: UdpSocket,
    ssdp_sock: UdpSocket,
    http_timeout: Duration,
    release_timeout: Duration,
    ready: Option<oneshot::Sender<Result<Mapping, PortMapError>>>,
    current: watch::Sender<Option<Mapping>>,
}

impl Driver {
    async fn run(
        mut self,
        mut stop: oneshot::Receiver<()>,
        shutdown: Shutdown,
        done: oneshot::Sender<()>,
    ) {
        let (http_tx, mut http_rx) = mpsc::channel::<(u64, Option<Vec<u8>>)>(4);
        let mut gw_buf = [0u8; 1100];
        let mut ssdp_buf = [0u8; 4096];
        let mut releasing: Option<Instant> = None;
        loop {
            self.flush(&http_tx).await;
            if self.handle_events() {
                break;
            }
            if self.mapper.is_done() {
                break;
            }
            let timeout = self.mapper.poll_timeout().map(Instant::from_std);
            let release_deadline = releasing;
            tokio::select! {
                r = self.gw_sock.recv(&mut gw_buf) => {
                    let now = Instant::now().into_std();
                    match r {
                        Ok(n) => self.mapper.handle_gateway(&gw_buf[..n], now),
                        // ICMP port unreachable on the connected socket (Linux).
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                            self.mapper.handle_gateway_unreachable(now);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "PCP/NAT-PMP socket");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                r = self.ssdp_sock.recv_from(&mut ssdp_buf) => {
                    if let Ok((n, _)) = r {
                        self.mapper.handle_ssdp(&ssdp_buf[..n], Instant::now().into_std());
                    }
                }
                Some((id, resp)) = http_rx.recv() => {
                    self.mapper.handle_http(id, resp.as_deref(), Instant::now().into_std());
                }
                () = sleep_until_opt(timeout) => {
                    self.mapper.handle_timeout(Instant::now().into_std());
                }
                _ = &mut stop, if releasing.is_none() => {
                    releasing = Some(Instant::now() + self.release_timeout);
                    self.mapper.release(Instant::now().into_std());
                }
                () = shutdown.wait(), if releasing.is_none() => {
                    releasing = Some(Instant::now() + self.release_timeout);
                    self.mapper.release(Instant::now().into_std());
                }
                () = sleep_until_opt(release_deadline) => {
                    tracing::warn!("port mapping release not confirmed by the gateway");
                    break;
                }
            }
        }
        let _ = self.current.send(None);
        let _ = done.send(());
    }

    /// Sends what the mapper wants sent; HTTP exchanges run as tasks.
    async fn flush(&mut self, http_tx: &mpsc::Sender<(u64, Option<Vec<u8>>)>) {
        while let Some(t) = self.mapper.poll_transmit() {
            match t {
                Transmit::Gateway(b) => {
                    if let Err(e) = self.gw_sock.send(&b).await
                        && e.kind() == std::io::ErrorKind::ConnectionRefused
                    {
                        self.mapper
                            .handle_gateway_unreachable(Instant::now().into_std());
                    }
                }
                Transmit::Ssdp { dst, payload } => {
                    let _ = self.ssdp_sock.send_to(&payload, dst).await;
                }
                Transmit::Http {
                    id,
                    host,
                    port,
                    request,
                } => {
                    let tx = http_tx.clone();
                    let limit = self.http_timeout;
                    tokio::spawn(async move {
                        let r = tokio::time::timeout(limit, http_exchange(&host, port, &request))
                            .await
                            .ok()
                            .flatten();
                        let _ = tx.send((id, r)).await;
                    });
                }
            }
        }
    }

    /// Passes events on; true when the task should end.
    fn handle_events(&mut self) -> bool {
        while let Some(e) = self.mapper.poll_event() {
            match e {
                Event::Mapped(m) => {
                    let _ = self.current.send(Some(m));
                    if let Some(r) = self.ready.take() {
                        let _ = r.send(Ok(m));
                    } else {
                        tracing::debug!(external = %m.external, method = %m.method, "port mapping renewed");
                    }
                }
                Event::Lost(why) => {
                    tracing::warn!(%why, "port mapping lost; mapping again");
                    let _ = self.current.send(None);
                }
                Event::Failed(why) => {
                    if let Some(r) = self.ready.take() {
                        let _ = r.send(Err(PortMapError::Failed(why)));
                    } else {
                        tracing::warn!(%why, "port mapping failed");
                    }
                    return true;
                }
                Event::Released => {
                    tracing::info!("port mapping released");
                    return true;
                }
            }
        }
        false
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One HTTP/1.1 exchange: the bytes of the response, complete per its framing or up to
/// the end of the stream; `None` on any failure.
async fn http_exchange(host: &str, port: u16, request: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect((host, port)).await.ok()?;
    s.write_all(request).await.ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return Some(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD + MAX_BODY + 1024 {
            return None;
        }
        if let Ok(Some(_)) = HttpResponse::parse(&buf, false) {
            return Some(buf);
        }
    }
}

/// The gateway of the default IPv4 route of the calling thread's network namespace.
pub fn default_gateway() -> Result<Ipv4Addr, PortMapError> {
    // /proc/net is the namespace of the process's main thread; thread-self is ours.
    let text = std::fs::read_to_string("/proc/thread-self/net/route")
        .or_else(|_| std::fs::read_to_string("/proc/net/route"))
        .map_err(|e| PortMapError::io("read /proc/net/route", e))?;
    parse_default_gateway(&text)
        .ok_or_else(|| PortMapError::NoGateway("no default route with a gateway".into()))
}

/// The gateway of the first default route in `/proc/net/route` text.
fn parse_default_gateway(route: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (dest, gw, flags, mask) = (f.get(1)?, f.get(2)?, f.get(3)?, f.get(7)?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        if *dest != "00000000" || *mask != "00000000" || flags & (RTF_UP | RTF_GATEWAY) != 3 {
            return None;
        }
        // The kernel prints the address's network-order bytes as a native u32.
        let gw = u32::from_str_radix(gw, 16).ok()?;
        Some(Ipv4Addr::from(gw.to_ne_bytes()))
    })
}

/// The SSDP group, for callers that want to reason about it.
pub const SSDP_GROUP: SocketAddrV4 = peercam_portmap::upnp::ssdp::MULTICAST;

/// H.626.4 8.3 step 1 for a device's media port: asks the gateway (`gateway`, else the
/// default route's) for a TCP mapping of `port` and keeps `mapped` up to date with its
/// external `host:port` (renewals, loss, retried every 5 minutes without a gateway), until
/// `shutdown`, when the mapping is released. The PU and the NVR report it (8.3 step 2).
pub fn keep_mapped(
    gateway: Option<std::net::IpAddr>,
    port: u16,
    mapped: watch::Sender<Vec<String>>,
    shutdown: Shutdown,
) {
    let gateway = match gateway {
        Some(std::net::IpAddr::V4(g)) => Some(g),
        Some(std::net::IpAddr::V6(g)) => {
            tracing::warn!(gateway = %g, "IPv6 gateways are not asked for mappings");
            return;
        }
        None => None,
    };
    let mapper = PortMapper::new(PortMapConfig {
        gateway,
        ..PortMapConfig::default()
    });
    tokio::spawn(async move {
        loop {
            match mapper
                .map_port(Protocol::Tcp, port, Duration::from_secs(3600), &shutdown)
                .await
            {
                Ok(m) => {
                    let mut current = m.watch();
                    mapped.send_replace(vec![m.mapping().external.to_string()]);
                    loop {
                        tokio::select! {
                            r = current.changed() => {
                                if r.is_err() {
                                    break;
                                }
                                let now = *current.borrow_and_update();
                                mapped.send_replace(now.map(|x| vec![x.external.to_string()]).unwrap_or_default());
                            }
                            () = shutdown.wait() => {
                                // 8.3: mappings are released when the device stops.
                                m.release().await;
                                return;
                            }
                        }
                    }
                    mapped.send_replace(Vec::new());
                }
                Err(PortMapError::Shutdown) => return,
                Err(e) => {
                    tracing::info!(error = %e, "no gateway port mapping; viewers use the other paths");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(300)) => {}
                () = shutdown.wait() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_default_gateway() {
        let t = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                 eth0\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        if cfg!(target_endian = "little") {
            assert_eq!(parse_default_gateway(t), Some(Ipv4Addr::new(10, 0, 1, 1)));
        }
        assert_eq!(parse_default_gateway("Iface\n"), None);
    }

    /// A NAT-PMP gateway on loopback (RFC 6886) that answers PCP with "unsupported
    /// version" (RFC 6887 9): the driver falls back, maps, and deletes on release.
    #[tokio::test]
    async fn h626_8_3_driver_maps_and_releases_against_a_natpmp_gateway() {
        use peercam_portmap::natpmp;
        let gw = UdpSocket::bind("127.0.0.1:5351").await;
        let Ok(gw) = gw else {
            crate::skip::skip(
                "h626_8_3_driver_maps_and_releases_against_a_natpmp_gateway",
                "127.0.0.1:5351 is taken on this machine",
            );
            return;
        };
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = [0u8; 1100];
            while let Ok((n, from)) = gw.recv_from(&mut buf).await {
                let req = &buf[..n];
                let resp = if req.first() != Some(&0) {
                    natpmp::Response {
                        opcode: req.get(1).copied().unwrap_or(0) & 0x7f,
                        result: natpmp::ResultCode::UnsupportedVersion,
                        epoch: 1,
                        body: None,
                    }
                } else {
                    match natpmp::Request::decode(req) {
                        Ok(natpmp::Request::ExternalAddress) => natpmp::Response {
                            opcode: 0,
                            result: natpmp::ResultCode::Success,
                            epoch: 1,
                            body: Some(natpmp::ResponseBody::ExternalAddress(Ipv4Addr::new(
                                203, 0, 113, 5,
                            ))),
                        },
                        Ok(
                            r @ natpmp::Request::Map {
                                protocol,
                                internal_port,
                                lifetime,
                                ..
                            },
                        ) => {
                            let _ = seen_tx.send(r);
                            natpmp::Response {
                                opcode: protocol.natpmp_opcode(),
                                result: natpmp::ResultCode::Success,
                                epoch: 1,
                                body: Some(natpmp::ResponseBody::Map {
                                    internal_port,
                                    external_port: if lifetime == 0 { 0 } else { 41000 },
                                    lifetime,
                                }),
                            }
                        }
                        Err(_) => continue,
                    }
                };
                let _ = gw.send_to(&resp.encode(), from).await;
            }
        });
        let cfg = PortMapConfig {
            gateway: Some(Ipv4Addr::LOCALHOST),
            initial_rto: Duration::from_millis(50),
            ..PortMapConfig::default()
        };
        let m = PortMapper::new(cfg)
            .map_port(
                Protocol::Udp,
                5000,
                Duration::from_secs(600),
                &Shutdown::new(),
            )
            .await
            .unwrap();
        assert_eq!(m.mapping().method, Method::NatPmp);
        assert_eq!(
            m.mapping().external,
            SocketAddr::from(([203, 0, 113, 5], 41000))
        );
        m.release().await;
        let mut last = None;
        while let Ok(r) = seen_rx.try_recv() {
            last = Some(r);
        }
        assert_eq!(
            last,
            Some(natpmp::Request::Map {
                protocol: Protocol::Udp,
                internal_port: 5000,
                suggested_external_port: 0,
                lifetime: 0
            })
        );
    }
}
