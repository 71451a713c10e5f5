//! A port-mapping client as a sans-IO state machine (H.626.4 8.3 step 1).
//!
//! [`Mapper`] tries PCP (RFC 6887), then NAT-PMP (RFC 6886), then UPnP IGD, keeps the
//! mapping alive by renewing it at half its lifetime, and deletes it on
//! [`Mapper::release`]. It never reads a clock and owns no socket; the driver:
//!
//! 1. sends every [`Transmit`] from [`Mapper::poll_transmit`]: [`Transmit::Gateway`] to
//!    UDP port 5351 of the gateway (one socket, connected, so that ICMP "port unreachable"
//!    shows up as an error: report it with [`Mapper::handle_gateway_unreachable`]),
//!    [`Transmit::Ssdp`] from a second UDP socket, and [`Transmit::Http`] as one HTTP
//!    exchange over a new TCP connection whose whole answer (read to end of stream) goes to
//!    [`Mapper::handle_http`];
//! 2. feeds datagrams from the gateway to [`Mapper::handle_gateway`] and datagrams on the
//!    SSDP socket to [`Mapper::handle_ssdp`];
//! 3. calls [`Mapper::handle_timeout`] at [`Mapper::poll_timeout`];
//! 4. takes [`Event`]s from [`Mapper::poll_event`].
//!
//! Retransmission follows RFC 6886 3.1 for both PCP and NAT-PMP: the first retry after
//! [`Config::initial_rto`] (250 ms), doubling each time, [`Config::natpmp_tries`] (9)
//! sends in all; PCP gets [`Config::pcp_tries`] sends before the client falls back (a
//! NAT-PMP gateway answers PCP at once with "unsupported version", RFC 6887 9).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::upnp::{self, Action, PortMapping, WanService, http, ssdp};
use crate::{Error, Protocol, natpmp, pcp};

/// How a mapping was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Port Control Protocol (RFC 6887).
    Pcp,
    /// NAT Port Mapping Protocol (RFC 6886).
    NatPmp,
    /// UPnP Internet Gateway Device.
    Upnp,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pcp => "PCP",
            Self::NatPmp => "NAT-PMP",
            Self::Upnp => "UPnP",
        })
    }
}

/// A mapping granted by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The public address and port peers connect to.
    pub external: SocketAddr,
    /// The protocol that obtained it.
    pub method: Method,
    /// The lifetime granted (for UPnP: the lease asked for, or the renewal interval when
    /// the gateway only grants permanent leases).
    pub lifetime: Duration,
}

/// What the client wants and how patient it is.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The local port to map.
    pub internal_port: u16,
    /// The external port to ask for (commonly the internal port).
    pub suggested_external_port: u16,
    /// The lifetime to ask for (RFC 6886 recommends two hours).
    pub lifetime: Duration,
    /// The gateway's address (PCP/NAT-PMP server).
    pub gateway: Ipv4Addr,
    /// The client's own address on the gateway's LAN (PCP client address, UPnP
    /// `NewInternalClient`).
    pub client: Ipv4Addr,
    /// A random PCP mapping nonce (RFC 6887 11.1), from the caller's random source.
    pub nonce: [u8; 12],
    /// First retransmission timeout (RFC 6886 3.1: 250 ms).
    pub initial_rto: Duration,
    /// NAT-PMP sends before giving up (RFC 6886 3.1: 9).
    pub natpmp_tries: u32,
    /// PCP sends before falling back to NAT-PMP.
    pub pcp_tries: u32,
    /// Which methods to try, in order.
    pub methods: Vec<Method>,
    /// How long to wait for SSDP answers.
    pub ssdp_wait: Duration,
    /// `NewPortMappingDescription` for UPnP.
    pub description: String,
}

impl Config {
    /// Defaults of the RFCs for mapping `internal_port` through `gateway`.
    pub fn new(
        protocol: Protocol,
        internal_port: u16,
        gateway: Ipv4Addr,
        client: Ipv4Addr,
        nonce: [u8; 12],
    ) -> Self {
        Self {
            protocol,
            internal_port,
            suggested_external_port: internal_port,
            lifetime: Duration::from_secs(7200),
            gateway,
            client,
            nonce,
            initial_rto: Duration::from_millis(250),
            natpmp_tries: 9,
            pcp_tries: 3,
            methods: vec![Method::Pcp, Method::NatPmp, Method::Upnp],
            ssdp_wait: Duration::from_secs(3),
            description: "peercam".to_owned(),
        }
    }

    fn lifetime_secs(&self) -> u32 {
        u32::try_from(self.lifetime.as_secs()).unwrap_or(u32::MAX)
    }
}

/// Something for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A datagram to UDP port 5351 of the gateway.
    Gateway(Vec<u8>),
    /// An SSDP datagram.
    Ssdp {
        /// Multicast group or the gateway.
        dst: SocketAddrV4,
        /// The M-SEARCH.
        payload: Vec<u8>,
    },
    /// An HTTP exchange over a fresh TCP connection.
    Http {
        /// Echo this to [`Mapper::handle_http`].
        id: u64,
        /// Host to connect to.
        host: String,
        /// Port to connect to.
        port: u16,
        /// The whole request.
        request: Vec<u8>,
    },
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A mapping was created or renewed (the external address may have changed).
    Mapped(Mapping),
    /// A renewal failed; the mapper starts over with the first method.
    Lost(String),
    /// Every method failed; the mapper stops (create a new one to try again).
    Failed(String),
    /// The mapping was deleted after [`Mapper::release`] (or the gateway did not answer
    /// the deletion in time).
    Released,
}

#[derive(Debug, Clone)]
enum Held {
    Pcp,
    NatPmp,
    Upnp {
        service: WanService,
        ext_ip: Ipv4Addr,
        lease: u32,
    },
}

#[derive(Debug, Clone)]
enum State {
    Pcp {
        tries: u32,
    },
    NatPmpAddress {
        tries: u32,
    },
    NatPmpMap {
        tries: u32,
        ext_ip: Ipv4Addr,
    },
    UpnpSearch {
        until: Instant,
        sent: u32,
    },
    UpnpDescribe {
        id: u64,
        location: http::HttpUrl,
    },
    UpnpExternalIp {
        id: u64,
        service: WanService,
    },
    UpnpAdd {
        id: u64,
        service: WanService,
        ext_ip: Ipv4Addr,
        port: u16,
        lease: u32,
        attempts: u32,
    },
    Mapped {
        held: Held,
        mapping: Mapping,
    },
    Releasing {
        id: u64,
        tries: u32,
        payload: Vec<u8>,
    },
    Done,
}

/// The client state machine; see the [module docs](self).
#[derive(Debug)]
pub struct Mapper {
    cfg: Config,
    state: State,
    /// Whether the current request renews a held mapping.
    renewing: bool,
    /// The external port held or last granted.
    external_port: u16,
    deadline: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_id: u64,
    last_error: String,
}

impl Mapper {
    /// Starts with the first configured method.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let mut m = Self {
            external_port: cfg.suggested_external_port,
            cfg,
            state: State::Done,
            renewing: false,
            deadline: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
            last_error: "no method configured".to_owned(),
        };
        m.start_method(0, now);
        m
    }

    /// The next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Mapper::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the mapper has stopped (failed or released).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The mapping currently held.
    pub fn mapping(&self) -> Option<Mapping> {
        match &self.state {
            State::Mapped { mapping, .. } => Some(*mapping),
            _ => None,
        }
    }

    fn method_index(&self, m: Method) -> usize {
        self.cfg
            .methods
            .iter()
            .position(|x| *x == m)
            .unwrap_or(usize::MAX)
    }

    fn next_method(&mut self, after: Method, why: String, now: Instant) {
        self.last_error = format!("{after}: {why}");
        let i = self.method_index(after).saturating_add(1);
        self.start_method(i, now);
    }

    fn start_method(&mut self, i: usize, now: Instant) {
        self.renewing = false;
        match self.cfg.methods.get(i) {
            None => {
                self.state = State::Done;
                self.deadline = None;
                self.events
                    .push_back(Event::Failed(self.last_error.clone()));
            }
            Some(Method::Pcp) => {
                self.state = State::Pcp { tries: 0 };
                self.send_udp(now);
            }
            Some(Method::NatPmp) => {
                self.state = State::NatPmpAddress { tries: 0 };
                self.send_udp(now);
            }
            Some(Method::Upnp) => {
                self.state = State::UpnpSearch {
                    until: now + self.cfg.ssdp_wait,
                    sent: 0,
                };
                self.send_ssdp(now);
            }
        }
    }

    fn pcp_request(&self, lifetime: u32) -> Vec<u8> {
        pcp::MapRequest {
            lifetime,
            client: IpAddr::V4(self.cfg.client),
            map: pcp::MapData {
                nonce: self.cfg.nonce,
                protocol: self.cfg.protocol.iana(),
                internal_port: self.cfg.internal_port,
                external_port: self.external_port,
                external_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
            options: Vec::new(),
        }
        .encode()
    }

    fn natpmp_map(&self, lifetime: u32) -> Vec<u8> {
        natpmp::Request::Map {
            protocol: self.cfg.protocol,
            internal_port: self.cfg.internal_port,
            // RFC 6886 3.4: deletion requests carry external port 0.
            suggested_external_port: if lifetime == 0 { 0 } else { self.external_port },
            lifetime,
        }
        .encode()
    }

    /// Sends (or re-sends) the UDP request of the current state and arms its timer.
    fn send_udp(&mut self, now: Instant) {
        let lifetime = self.cfg.lifetime_secs();
        let (payload, tries) = match &mut self.state {
            State::Pcp { tries } => {
                *tries += 1;
                let t = *tries;
                (self.pcp_request(lifetime), t)
            }
            State::NatPmpAddress { tries } => {
                *tries += 1;
                (natpmp::Request::ExternalAddress.encode(), *tries)
            }
            State::NatPmpMap { tries, .. } => {
                *tries += 1;
                let t = *tries;
                (self.natpmp_map(lifetime), t)
            }
            _ => return,
        };
        self.transmits.push_back(Transmit::Gateway(payload));
        self.deadline = Some(now + self.rto(tries));
    }

    /// RFC 6886 3.1: 250 ms, doubling.
    fn rto(&self, tries: u32) -> Duration {
        self.cfg
            .initial_rto
            .saturating_mul(1 << tries.saturating_sub(1).min(16))
    }

    fn send_ssdp(&mut self, now: Instant) {
        let State::UpnpSearch { until, sent } = &mut self.state else {
            return;
        };
        *sent += 1;
        let until = *until;
        for st in [ssdp::ST_IGD_1, ssdp::ST_IGD_2] {
            let payload = ssdp::m_search(st, 2);
            self.transmits.push_back(Transmit::Ssdp {
                dst: ssdp::MULTICAST,
                payload: payload.clone(),
            });
            self.transmits.push_back(Transmit::Ssdp {
                dst: SocketAddrV4::new(self.cfg.gateway, ssdp::MULTICAST.port()),
                payload,
            });
        }
        self.deadline = Some(until.min(now + Duration::from_secs(1)));
    }

    fn http(&mut self, url: &http::HttpUrl, request: Vec<u8>) -> u64 {
        self.next_id += 1;
        self.transmits.push_back(Transmit::Http {
            id: self.next_id,
            host: url.host.clone(),
            port: url.port,
            request,
        });
        self.deadline = None;
        self.next_id
    }

    fn mapped(&mut self, held: Held, mapping: Mapping, now: Instant) {
        self.external_port = mapping.external.port();
        // Renew at half the lifetime (RFC 6886 3.3, RFC 6887 11.2.1), never busier than
        // once a second.
        let half = (mapping.lifetime / 2).max(Duration::from_secs(1));
        self.deadline = Some(now + half);
        self.renewing = false;
        self.state = State::Mapped { held, mapping };
        self.events.push_back(Event::Mapped(mapping));
    }

    fn lost_or_next(&mut self, method: Method, why: String, now: Instant) {
        if self.renewing {
            self.events
                .push_back(Event::Lost(format!("{method} renewal: {why}")));
            self.external_port = self.cfg.suggested_external_port;
            self.start_method(0, now);
        } else {
            self.next_method(method, why, now);
        }
    }

    /// A datagram from the gateway's port 5351.
    pub fn handle_gateway(&mut self, data: &[u8], now: Instant) {
        match self.state.clone() {
            State::Pcp { .. } => self.on_pcp(data, now),
            State::NatPmpAddress { .. } => {
                let Ok(r) = natpmp::Response::decode(data) else {
                    return;
                };
                if r.opcode != natpmp::OP_EXTERNAL_ADDRESS {
                    return;
                }
                match (r.result, r.body) {
                    (
                        natpmp::ResultCode::Success,
                        Some(natpmp::ResponseBody::ExternalAddress(ext_ip)),
                    ) => {
                        self.state = State::NatPmpMap { tries: 0, ext_ip };
                        self.send_udp(now);
                    }
                    (res, _) => self.lost_or_next(
                        Method::NatPmp,
                        format!("external address: result {}", res.code()),
                        now,
                    ),
                }
            }
            State::NatPmpMap { ext_ip, .. } => {
                let Ok(r) = natpmp::Response::decode(data) else {
                    return;
                };
                if r.opcode != self.cfg.protocol.natpmp_opcode() {
                    return;
                }
                match (r.result, r.body) {
                    (
                        natpmp::ResultCode::Success,
                        Some(natpmp::ResponseBody::Map {
                            internal_port,
                            external_port,
                            lifetime,
                        }),
                    ) if internal_port == self.cfg.internal_port => {
                        let mapping = Mapping {
                            external: SocketAddr::from((ext_ip, external_port)),
                            method: Method::NatPmp,
                            lifetime: Duration::from_secs(lifetime.into()),
                        };
                        self.mapped(Held::NatPmp, mapping, now);
                    }
                    (natpmp::ResultCode::Success, _) => {}
                    (res, _) => self.lost_or_next(
                        Method::NatPmp,
                        format!("map: result {}", res.code()),
                        now,
                    ),
                }
            }
            State::Releasing { id: 0, .. } => {
                // Any answer to the deletion ends it.
                let done =
                    pcp::Response::decode(data).is_ok() || natpmp::Response::decode(data).is_ok();
                if done {
                    self.released();
                }
            }
            _ => {}
        }
    }

    fn on_pcp(&mut self, data: &[u8], now: Instant) {
        let r = match pcp::Response::decode(data) {
            Ok(r) => r,
            Err(Error::Version { version, .. }) if version != pcp::VERSION => {
                // A NAT-PMP server answering PCP (RFC 6887 9), or an older PCP version.
                self.lost_or_next(Method::Pcp, format!("server speaks version {version}"), now);
                return;
            }
            Err(_) => return,
        };
        let Some(map) = r.map.filter(|m| m.nonce == self.cfg.nonce) else {
            if r.result == pcp::ResultCode::UnsuppVersion {
                self.lost_or_next(Method::Pcp, "unsupported version".to_owned(), now);
            }
            return;
        };
        if r.opcode != pcp::OP_MAP || map.internal_port != self.cfg.internal_port {
            return;
        }
        if r.result != pcp::ResultCode::Success {
            self.lost_or_next(
                Method::Pcp,
                format!("result {:?} ({})", r.result, r.result.code()),
                now,
            );
            return;
        }
        let mapping = Mapping {
            external: SocketAddr::new(map.external_addr, map.external_port),
            method: Method::Pcp,
            lifetime: Duration::from_secs(r.lifetime.into()),
        };
        self.mapped(Held::Pcp, mapping, now);
    }

    /// The gateway's port 5351 is closed (ICMP port unreachable on the connected socket):
    /// neither PCP nor NAT-PMP is served, so go straight on to UPnP.
    pub fn handle_gateway_unreachable(&mut self, now: Instant) {
        match self.state {
            State::Pcp { .. } | State::NatPmpAddress { .. } | State::NatPmpMap { .. } => {
                let method = if matches!(self.state, State::Pcp { .. }) {
                    Method::Pcp
                } else {
                    Method::NatPmp
                };
                if self.renewing {
                    self.lost_or_next(method, "gateway port 5351 unreachable".to_owned(), now);
                    return;
                }
                self.last_error = format!("{method}: gateway port 5351 unreachable");
                let cur = self.method_index(method);
                let next = self
                    .cfg
                    .methods
                    .iter()
                    .enumerate()
                    .find(|(i, m)| *i > cur && !matches!(m, Method::Pcp | Method::NatPmp))
                    .map_or(usize::MAX, |(i, _)| i);
                self.start_method(next, now);
            }
            State::Releasing { id: 0, .. } => self.released(),
            _ => {}
        }
    }

    /// A datagram on the SSDP socket.
    pub fn handle_ssdp(&mut self, data: &[u8], _now: Instant) {
        if !matches!(self.state, State::UpnpSearch { .. }) {
            return;
        }
        let Ok(r) = ssdp::SsdpResponse::parse(data) else {
            return;
        };
        if !r.is_igd() {
            return;
        }
        let Ok(location) = http::HttpUrl::parse(&r.location) else {
            return;
        };
        let id = self.http(&location, http::get(&location));
        self.state = State::UpnpDescribe { id, location };
    }

    /// The outcome of a [`Transmit::Http`]: everything read until the server closed, or
    /// `None` when connecting, writing or reading failed.
    pub fn handle_http(&mut self, id: u64, response: Option<&[u8]>, now: Instant) {
        let current = match &self.state {
            State::UpnpDescribe { id, .. }
            | State::UpnpExternalIp { id, .. }
            | State::UpnpAdd { id, .. }
            | State::Releasing { id, .. } => *id,
            _ => return,
        };
        if current != id {
            return;
        }
        let parsed = response
            .ok_or_else(|| "HTTP exchange failed".to_owned())
            .and_then(|b| {
                http::HttpResponse::parse(b, true)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "incomplete HTTP answer".to_owned())
            });
        if matches!(self.state, State::Releasing { .. }) {
            self.released();
            return;
        }
        let resp = match parsed {
            Ok(r) => r,
            Err(e) => return self.lost_or_next(Method::Upnp, e, now),
        };
        match self.state.clone() {
            State::UpnpDescribe { location, .. } => {
                if resp.status != 200 {
                    return self.lost_or_next(
                        Method::Upnp,
                        format!("description: HTTP {}", resp.status),
                        now,
                    );
                }
                let Some(service) = upnp::find_wan_service(&resp.text(), &location) else {
                    return self.lost_or_next(
                        Method::Upnp,
                        "no WAN connection service in the description".to_owned(),
                        now,
                    );
                };
                let id = self.http(
                    &service.control_url,
                    Action::GetExternalIpAddress.http_request(&service),
                );
                self.state = State::UpnpExternalIp { id, service };
            }
            State::UpnpExternalIp { service, .. } => {
                let ip = upnp::parse_action_response(
                    Action::GetExternalIpAddress.name(),
                    resp.status,
                    &resp.text(),
                )
                .and_then(|args| upnp::external_ip(&args));
                match ip {
                    Ok(ext_ip) => {
                        let lease = self.cfg.lifetime_secs();
                        let port = self.external_port;
                        self.upnp_add(service, ext_ip, port, lease, 0);
                    }
                    Err(e) => self.lost_or_next(Method::Upnp, e.to_string(), now),
                }
            }
            State::UpnpAdd {
                service,
                ext_ip,
                port,
                lease,
                attempts,
                ..
            } => {
                let r = upnp::parse_action_response("AddPortMapping", resp.status, &resp.text());
                match r {
                    Ok(_) => {
                        let lifetime = if lease == 0 {
                            self.cfg.lifetime
                        } else {
                            Duration::from_secs(lease.into())
                        };
                        let mapping = Mapping {
                            external: SocketAddr::from((ext_ip, port)),
                            method: Method::Upnp,
                            lifetime,
                        };
                        self.mapped(
                            Held::Upnp {
                                service,
                                ext_ip,
                                lease,
                            },
                            mapping,
                            now,
                        );
                    }
                    Err(Error::UpnpFault { code, .. })
                        if code == upnp::ERR_ONLY_PERMANENT_LEASES && lease != 0 =>
                    {
                        self.upnp_add(service, ext_ip, port, 0, attempts + 1);
                    }
                    Err(Error::UpnpFault { code, .. })
                        if code == upnp::ERR_CONFLICT && attempts < 4 && !self.renewing =>
                    {
                        // Another client holds that port: try a few others.
                        let next = 1024 + (u32::from(port) + 1 + attempts * 7919) % (65536 - 1024);
                        let next = u16::try_from(next).unwrap_or(port);
                        self.upnp_add(service, ext_ip, next, lease, attempts + 1);
                    }
                    Err(e) => self.lost_or_next(Method::Upnp, e.to_string(), now),
                }
            }
            _ => {}
        }
    }

    fn upnp_add(
        &mut self,
        service: WanService,
        ext_ip: Ipv4Addr,
        port: u16,
        lease: u32,
        attempts: u32,
    ) {
        let action = Action::AddPortMapping(PortMapping {
            remote_host: String::new(),
            external_port: port,
            protocol: self.cfg.protocol,
            internal_port: self.cfg.internal_port,
            internal_client: self.cfg.client.to_string(),
            enabled: true,
            description: self.cfg.description.clone(),
            lease_duration: lease,
        });
        let id = self.http(&service.control_url, action.http_request(&service));
        self.state = State::UpnpAdd {
            id,
            service,
            ext_ip,
            port,
            lease,
            attempts,
        };
    }

    /// Timers: retransmissions, the end of the SSDP search, renewals.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        self.deadline = None;
        match self.state.clone() {
            State::Pcp { tries } => {
                if tries >= self.cfg.pcp_tries {
                    self.lost_or_next(Method::Pcp, format!("no answer to {tries} requests"), now);
                } else {
                    self.send_udp(now);
                }
            }
            State::NatPmpAddress { tries } | State::NatPmpMap { tries, .. } => {
                if tries >= self.cfg.natpmp_tries {
                    self.lost_or_next(
                        Method::NatPmp,
                        format!("no answer to {tries} requests"),
                        now,
                    );
                } else {
                    self.send_udp(now);
                }
            }
            State::UpnpSearch { until, .. } => {
                if now >= until {
                    self.lost_or_next(Method::Upnp, "no gateway answered SSDP".to_owned(), now);
                } else {
                    self.send_ssdp(now);
                }
            }
            State::Mapped { held, .. } => {
                self.renewing = true;
                match held {
                    Held::Pcp => {
                        self.state = State::Pcp { tries: 0 };
                        self.send_udp(now);
                    }
                    Held::NatPmp => {
                        self.state = State::NatPmpAddress { tries: 0 };
                        self.send_udp(now);
                    }
                    Held::Upnp {
                        service,
                        ext_ip,
                        lease,
                    } => {
                        let port = self.external_port;
                        self.upnp_add(service, ext_ip, port, lease, 0);
                    }
                }
            }
            State::Releasing {
                id: 0,
                tries,
                payload,
            } => {
                if tries >= 3 {
                    self.released();
                } else {
                    self.transmits.push_back(Transmit::Gateway(payload.clone()));
                    self.release_udp_wait(tries + 1, payload, now);
                }
            }
            _ => {}
        }
    }

    /// Deletes the mapping held (PCP/NAT-PMP: lifetime 0, RFC 6887 15 / RFC 6886 3.4;
    /// UPnP: DeletePortMapping) and stops. [`Event::Released`] follows once the gateway
    /// answered or gave up; without a mapping it follows at once.
    pub fn release(&mut self, now: Instant) {
        let held = match &self.state {
            State::Mapped { held, .. } => Some(held.clone()),
            // A request in flight for a renewal: the old mapping is still there.
            State::Pcp { .. } if self.renewing => Some(Held::Pcp),
            State::NatPmpAddress { .. } | State::NatPmpMap { .. } if self.renewing => {
                Some(Held::NatPmp)
            }
            State::UpnpAdd {
                service,
                ext_ip,
                lease,
                ..
            } if self.renewing => Some(Held::Upnp {
                service: service.clone(),
                ext_ip: *ext_ip,
                lease: *lease,
            }),
            State::Releasing { .. } | State::Done => return,
            _ => None,
        };
        match held {
            None => self.released(),
            Some(Held::Pcp) => {
                let payload = self.pcp_request(0);
                self.transmits.push_back(Transmit::Gateway(payload.clone()));
                self.release_udp_wait(1, payload, now);
            }
            Some(Held::NatPmp) => {
                let payload = self.natpmp_map(0);
                self.transmits.push_back(Transmit::Gateway(payload.clone()));
                self.release_udp_wait(1, payload, now);
            }
            Some(Held::Upnp { service, .. }) => {
                let action = Action::DeletePortMapping {
                    remote_host: String::new(),
                    external_port: self.external_port,
                    protocol: self.cfg.protocol,
                };
                let id = self.http(&service.control_url, action.http_request(&service));
                self.state = State::Releasing {
                    id,
                    tries: 1,
                    payload: Vec::new(),
                };
            }
        }
    }

    fn release_udp_wait(&mut self, tries: u32, payload: Vec<u8>, now: Instant) {
        self.state = State::Releasing {
            id: 0,
            tries,
            payload,
        };
        self.deadline = Some(now + self.rto(tries));
    }

    fn released(&mut self) {
        self.state = State::Done;
        self.deadline = None;
        self.events.push_back(Event::Released);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests need some Instant to start from
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
    const EXT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    fn cfg() -> Config {
        let mut c = Config::new(Protocol::Tcp, 8554, GW, ME, [7; 12]);
        c.lifetime = Duration::from_secs(120);
        c
    }

    fn gateway_tx(m: &mut Mapper) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(t) = m.poll_transmit() {
            if let Transmit::Gateway(b) = t {
                out.push(b);
            }
        }
        out
    }

    /// A NAT-PMP-only gateway (RFC 6886), answering PCP with version 0 (RFC 6887 9).
    fn natpmp_gateway(req: &[u8]) -> Vec<u8> {
        if req[0] != 0 {
            return natpmp::Response {
                opcode: req[1] & 0x7f,
                result: natpmp::ResultCode::UnsupportedVersion,
                epoch: 10,
                body: None,
            }
            .encode();
        }
        match natpmp::Request::decode(req).unwrap() {
            natpmp::Request::ExternalAddress => natpmp::Response {
                opcode: 0,
                result: natpmp::ResultCode::Success,
                epoch: 10,
                body: Some(natpmp::ResponseBody::ExternalAddress(EXT)),
            },
            natpmp::Request::Map {
                protocol,
                internal_port,
                lifetime,
                ..
            } => natpmp::Response {
                opcode: protocol.natpmp_opcode(),
                result: natpmp::ResultCode::Success,
                epoch: 10,
                body: Some(natpmp::ResponseBody::Map {
                    internal_port,
                    external_port: if lifetime == 0 { 0 } else { 40000 },
                    lifetime: lifetime.min(60),
                }),
            },
        }
        .encode()
    }

    #[test]
    fn h626_8_3_falls_back_from_pcp_to_natpmp_renews_and_releases() {
        let t0 = Instant::now();
        let mut m = Mapper::new(cfg(), t0);
        let mut mapped = None;
        for _ in 0..10 {
            for req in gateway_tx(&mut m) {
                m.handle_gateway(&natpmp_gateway(&req), t0);
            }
            if let Some(Event::Mapped(x)) = m.poll_event() {
                mapped = Some(x);
                break;
            }
        }
        let mapped = mapped.expect("mapped");
        assert_eq!(mapped.method, Method::NatPmp);
        assert_eq!(mapped.external, SocketAddr::from((EXT, 40000)));
        assert_eq!(mapped.lifetime, Duration::from_secs(60));
        // Renewal at half the lifetime.
        assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        let t1 = t0 + Duration::from_secs(30);
        m.handle_timeout(t1);
        for _ in 0..3 {
            for req in gateway_tx(&mut m) {
                m.handle_gateway(&natpmp_gateway(&req), t1);
            }
        }
        assert!(matches!(m.poll_event(), Some(Event::Mapped(_))));
        m.release(t1);
        let del = gateway_tx(&mut m);
        assert_eq!(
            natpmp::Request::decode(&del[0]).unwrap(),
            natpmp::Request::Map {
                protocol: Protocol::Tcp,
                internal_port: 8554,
                suggested_external_port: 0,
                lifetime: 0
            }
        );
        m.handle_gateway(&natpmp_gateway(&del[0]), t1);
        assert_eq!(m.poll_event(), Some(Event::Released));
        assert!(m.is_done());
    }

    #[test]
    fn h626_8_3_maps_with_pcp() {
        let t0 = Instant::now();
        let mut m = Mapper::new(cfg(), t0);
        let req = gateway_tx(&mut m).remove(0);
        let r = pcp::MapRequest::decode(&req).unwrap();
        assert_eq!(r.client, IpAddr::V4(ME));
        assert_eq!(r.map.protocol, 6);
        let resp = pcp::Response {
            opcode: pcp::OP_MAP,
            result: pcp::ResultCode::Success,
            lifetime: 100,
            epoch: 5,
            map: Some(pcp::MapData {
                external_port: 50000,
                external_addr: IpAddr::V4(EXT),
                ..r.map
            }),
            options: vec![],
        };
        // A response with another nonce is ignored.
        let mut forged = resp.clone();
        if let Some(f) = forged.map.as_mut() {
            f.nonce = [1; 12];
        }
        m.handle_gateway(&forged.encode(), t0);
        assert_eq!(m.poll_event(), None);
        m.handle_gateway(&resp.encode(), t0);
        assert_eq!(
            m.poll_event(),
            Some(Event::Mapped(Mapping {
                external: SocketAddr::from((EXT, 50000)),
                method: Method::Pcp,
                lifetime: Duration::from_secs(100)
            }))
        );
        m.release(t0);
        let del = pcp::MapRequest::decode(&gateway_tx(&mut m)[0]).unwrap();
        assert_eq!(del.lifetime, 0);
        assert_eq!(del.map.nonce, [7; 12]);
        // No answer: three tries, then released anyway.
        let mut t = t0;
        for _ in 0..3 {
            t = m.poll_timeout().unwrap();
            m.handle_timeout(t);
        }
        assert_eq!(m.poll_event(), Some(Event::Released));
        assert!(t - t0 >= Duration::from_millis(250 + 500 + 1000));
    }

    #[test]
    fn retransmits_per_rfc_6886_then_tries_upnp() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.methods = vec![Method::NatPmp, Method::Upnp];
        let mut m = Mapper::new(c, t0);
        let mut sends = vec![t0];
        assert_eq!(gateway_tx(&mut m).len(), 1);
        while let Some(t) = m.poll_timeout() {
            m.handle_timeout(t);
            if gateway_tx(&mut m).is_empty() {
                break;
            }
            sends.push(t);
        }
        assert_eq!(sends.len(), 9);
        let gaps: Vec<_> = sends
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        assert_eq!(gaps, [250, 500, 1000, 2000, 4000, 8000, 16000, 32000]);
        // Now searching by SSDP.
        let mut m2 = Mapper::new(
            Config {
                methods: vec![Method::Pcp, Method::NatPmp, Method::Upnp],
                ..cfg()
            },
            t0,
        );
        m2.handle_gateway_unreachable(t0);
        let first: Vec<_> = std::iter::from_fn(|| m2.poll_transmit()).collect();
        assert!(first.iter().any(|t| matches!(t, Transmit::Ssdp { .. })));
    }

    #[test]
    fn h626_8_3_maps_with_upnp_and_deletes() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.methods = vec![Method::Upnp];
        let mut m = Mapper::new(c, t0);
        assert!(matches!(m.poll_transmit(), Some(Transmit::Ssdp { .. })));
        while m.poll_transmit().is_some() {}
        let answer = ssdp::SsdpResponse {
            location: "http://10.0.1.1:5000/rootDesc.xml".into(),
            st: Some(ssdp::ST_IGD_1.into()),
            usn: None,
        };
        m.handle_ssdp(&answer.encode(), t0);
        let serve = |req: &[u8]| -> Vec<u8> {
            let text = String::from_utf8_lossy(req).into_owned();
            let body = if text.starts_with("GET /rootDesc.xml") {
                format!(
                    "<root><device><serviceList><service><serviceType>{}</serviceType><controlURL>/ctl/IPConn</controlURL></service></serviceList></device></root>",
                    upnp::WAN_IP_1
                )
            } else {
                let soap = &text[text.find("\r\n\r\n").unwrap() + 4..];
                match Action::parse_request(soap).unwrap() {
                    Action::GetExternalIpAddress => upnp::encode_action_response(
                        upnp::WAN_IP_1,
                        "GetExternalIPAddress",
                        &[("NewExternalIPAddress", EXT.to_string())],
                    ),
                    Action::AddPortMapping(p) if p.external_port == 8554 => {
                        return http::HttpResponse {
                            status: 500,
                            headers: vec![],
                            body: upnp::encode_fault(718, "ConflictInMappingEntry").into_bytes(),
                        }
                        .encode();
                    }
                    Action::AddPortMapping(p) => {
                        assert_eq!(p.internal_client, ME.to_string());
                        upnp::encode_action_response(upnp::WAN_IP_1, "AddPortMapping", &[])
                    }
                    Action::DeletePortMapping { .. } => {
                        upnp::encode_action_response(upnp::WAN_IP_1, "DeletePortMapping", &[])
                    }
                }
            };
            http::HttpResponse {
                status: 200,
                headers: vec![],
                body: body.into_bytes(),
            }
            .encode()
        };
        let mut mapped = None;
        for _ in 0..10 {
            if let Some(Transmit::Http { id, request, .. }) = m.poll_transmit() {
                m.handle_http(id, Some(&serve(&request)), t0);
            }
            if let Some(Event::Mapped(x)) = m.poll_event() {
                mapped = Some(x);
                break;
            }
        }
        let mapped = mapped.expect("mapped");
        assert_eq!(mapped.method, Method::Upnp);
        assert_eq!(mapped.external.ip(), IpAddr::V4(EXT));
        assert_ne!(
            mapped.external.port(),
            8554,
            "718 conflict picks another port"
        );
        m.release(t0);
        let Some(Transmit::Http { id, request, .. }) = m.poll_transmit() else {
            panic!("no DeletePortMapping");
        };
        assert!(String::from_utf8_lossy(&request).contains("DeletePortMapping"));
        m.handle_http(id, Some(&serve(&request)), t0);
        assert_eq!(m.poll_event(), Some(Event::Released));
    }

    #[test]
    fn fails_when_nothing_answers() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.natpmp_tries = 2;
        c.pcp_tries = 1;
        c.ssdp_wait = Duration::from_secs(2);
        let mut m = Mapper::new(c, t0);
        let mut n = 0;
        while let Some(t) = m.poll_timeout() {
            m.handle_timeout(t);
            while m.poll_transmit().is_some() {}
            n += 1;
            assert!(n < 50);
        }
        assert!(matches!(m.poll_event(), Some(Event::Failed(e)) if e.contains("SSDP")));
    }
}
