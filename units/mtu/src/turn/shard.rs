//! One shard: a thread with a single-threaded runtime, its listeners, its relay sockets
//! and its `TurnServer`. Every task of the shard runs on this thread, so the server sits
//! in a `RefCell` and no lock is taken per packet.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::PoisonError;
use std::time::Duration;

use peercam_net::accept::{AcceptConfig, Accepted, Incoming};
use peercam_stun::server::{
    BindError, ClientTransport, Event, FiveTuple, Output, RelayFamily, RelayId, TurnServer,
    stream_frame_len,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::batch::{FLUSH_AT, Inbox, Outbox, enable_gro};
use super::{ShardSetup, TICK, unix_now};

/// Bytes a stream client may have queued before frames to it are dropped.
const MAX_STREAM_BACKLOG: usize = 4 << 20;
/// Read buffer of a TCP/TLS client: two of the largest frames.
const STREAM_BUFFER: usize = 2 * MAX_FRAME;
/// The largest frame on a stream: a STUN message or a padded ChannelData message.
const MAX_FRAME: usize = 20 + 65_536;
/// How long a TLS handshake may take.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

struct Shard {
    server: RefCell<TurnServer>,
    udp: Option<Rc<UdpSocket>>,
    relays: RefCell<Vec<Option<Relay>>>,
    streams: RefCell<HashMap<FiveTuple, Rc<StreamOut>>>,
    relay_ip: IpAddr,
    relay_ports: [u16; 2],
    /// GSO on sends to clients, GRO on the listener and relay sockets.
    udp_offload: bool,
    rng: Cell<u64>,
    /// Receive and send buffers shared by every datagram task of the shard: they are
    /// borrowed only between an `await` and the next, so one set serves all sockets
    /// and an allocation costs no buffer of its own.
    inbox: RefCell<Inbox>,
    tx: RefCell<Vec<u8>>,
    /// Datagrams for UDP clients, sent together on the listener once every task that
    /// the same wake-up made ready has run (or when a batch is full).
    outbox: RefCell<Outbox>,
    flush: Notify,
}

struct Relay {
    id: RelayId,
    socket: Rc<UdpSocket>,
    task: JoinHandle<()>,
}

/// The queue of bytes to one TCP/TLS client, drained by its writer task.
#[derive(Default)]
struct StreamOut {
    buf: RefCell<Vec<u8>>,
    notify: Notify,
}

/// The shard thread's body.
pub(super) fn run(setup: ShardSetup) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "TURN shard runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, main(setup));
}

async fn main(setup: ShardSetup) {
    let now = Instant::now().into_std();
    let udp = setup.udp.and_then(|s| match UdpSocket::from_std(s) {
        Ok(s) => {
            if setup.udp_offload {
                enable_gro(&s);
            }
            Some(Rc::new(s))
        }
        Err(e) => {
            tracing::error!(error = %e, "TURN UDP listener");
            None
        }
    });
    let shard = Rc::new(Shard {
        server: RefCell::new(TurnServer::new(setup.server, now, unix_now())),
        udp: udp.clone(),
        relays: RefCell::new(Vec::new()),
        streams: RefCell::new(HashMap::new()),
        relay_ip: setup.relay_ip,
        relay_ports: setup.relay_ports,
        udp_offload: setup.udp_offload,
        rng: Cell::new(setup.seed | 1),
        inbox: RefCell::new(Inbox::new()),
        tx: RefCell::new(Vec::with_capacity(65_600)),
        outbox: RefCell::new(Outbox::new(setup.udp_offload)),
        flush: Notify::new(),
    });
    if let Some(udp) = udp {
        tokio::task::spawn_local(udp_loop(shard.clone(), udp));
        tokio::task::spawn_local(flush_loop(shard.clone()));
    }
    for (listener, tls) in [(setup.tcp, None), (setup.tls, setup.acceptor)] {
        let Some(listener) = listener else { continue };
        match TcpListener::from_std(listener) {
            Ok(l) => {
                tokio::task::spawn_local(accept_loop(
                    shard.clone(),
                    l,
                    tls,
                    setup.shutdown.clone(),
                ));
            }
            Err(e) => tracing::error!(error = %e, "TURN TCP listener"),
        }
    }
    let publish = |shard: &Shard| {
        let stats = *shard.server.borrow().stats();
        if let Some(slot) = setup.stats.get(setup.index) {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = stats;
        }
    };
    // Timers (poll_timeout), re-checked at least every TICK, which also publishes stats.
    loop {
        let now = Instant::now();
        let next = shard.server.borrow().poll_timeout().map(Instant::from_std);
        let wake = next.map_or(now + TICK, |t| t.min(now + TICK));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = setup.shutdown.wait() => break,
        }
        shard
            .server
            .borrow_mut()
            .handle_timeout(Instant::now().into_std());
        shard.drain_events();
        publish(&shard);
    }
    publish(&shard);
    for r in shard.relays.borrow_mut().drain(..).flatten() {
        r.task.abort();
    }
}

async fn udp_loop(shard: Rc<Shard>, udp: Rc<UdpSocket>) {
    let Ok(local) = udp.local_addr() else { return };
    let v4 = local.is_ipv4();
    loop {
        if udp.readable().await.is_err() {
            continue;
        }
        // Drain the socket a batch at a time; a short batch clears readiness.
        let mut failed = false;
        loop {
            let mut inbox = shard.inbox.borrow_mut();
            let more = match inbox.recv(&udp, v4) {
                Ok(more) => more,
                Err(e) => {
                    tracing::debug!(error = %e, "TURN UDP receive");
                    failed = true;
                    break;
                }
            };
            let now = Instant::now().into_std();
            let mut tx = shard.tx.borrow_mut();
            for (bytes, from) in inbox.iter() {
                let tuple = FiveTuple {
                    transport: ClientTransport::Udp,
                    client: from,
                    server: local,
                };
                shard.dispatch(now, tuple, bytes, &mut tx);
            }
            if !more {
                break;
            }
        }
        shard.flush_udp();
        if failed {
            tokio::task::yield_now().await;
        }
    }
}

/// Send what tasks queued for UDP clients, once per wake-up of the shard.
async fn flush_loop(shard: Rc<Shard>) {
    loop {
        shard.flush.notified().await;
        shard.flush_udp();
    }
}

async fn accept_loop(
    shard: Rc<Shard>,
    listener: TcpListener,
    tls: Option<peercam_net::tokio_rustls::TlsAcceptor>,
    shutdown: peercam_net::Shutdown,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let mut incoming = Incoming::new(listener, AcceptConfig::new("TURN"), shutdown);
    while let Some(Accepted {
        tcp: stream, peer, ..
    }) = incoming.next().await
    {
        let shard = shard.clone();
        match &tls {
            None => {
                let tuple = FiveTuple {
                    transport: ClientTransport::Tcp,
                    client: peer,
                    server: local,
                };
                tokio::task::spawn_local(connection(shard, stream, tuple));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::task::spawn_local(async move {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let tuple = FiveTuple {
                        transport: ClientTransport::Tls,
                        client: peer,
                        server: local,
                    };
                    connection(shard, stream, tuple).await;
                });
            }
        }
    }
}

/// One TCP or TLS client: cut the stream into STUN and ChannelData frames
/// (RFC 8656 12.5) and write queued frames back.
async fn connection<S>(shard: Rc<Shard>, stream: S, tuple: FiveTuple)
where
    S: AsyncRead + AsyncWrite + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let queue = Rc::new(StreamOut::default());
    shard.streams.borrow_mut().insert(tuple, queue.clone());
    let writer = async {
        let mut spare = Vec::new();
        loop {
            queue.notify.notified().await;
            loop {
                std::mem::swap(&mut *queue.buf.borrow_mut(), &mut spare);
                if spare.is_empty() {
                    break;
                }
                if wr.write_all(&spare).await.is_err() {
                    return;
                }
                spare.clear();
            }
        }
    };
    let reader = async {
        // Zeroed once; bytes `start..end` are read but not yet cut into frames.
        let mut buf = vec![0u8; STREAM_BUFFER];
        let (mut start, mut end) = (0, 0);
        let mut out = Vec::with_capacity(2048);
        loop {
            let n = match rd.read(&mut buf[end..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            end += n;
            let now = Instant::now().into_std();
            loop {
                match stream_frame_len(&buf[start..end]) {
                    Ok(Some(flen)) if end - start >= flen => {
                        shard.dispatch(now, tuple, &buf[start..start + flen], &mut out);
                        start += flen;
                    }
                    Ok(_) => break,
                    // Not STUN nor ChannelData: the stream cannot be resynchronised.
                    Err(_) => return,
                }
            }
            if start == end {
                (start, end) = (0, 0);
            } else if buf.len() - end < MAX_FRAME {
                // Keep room for a whole frame after the partial one.
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    shard.streams.borrow_mut().remove(&tuple);
    shard
        .server
        .borrow_mut()
        .client_closed(Instant::now().into_std(), &tuple);
    shard.drain_events();
}

/// A relay socket: datagrams from peers go to the allocation's client.
async fn relay_loop(shard: Rc<Shard>, id: RelayId, socket: Rc<UdpSocket>) {
    let v4 = shard.relay_ip.is_ipv4();
    loop {
        if socket.readable().await.is_err() {
            continue;
        }
        let mut failed = false;
        loop {
            let mut inbox = shard.inbox.borrow_mut();
            let more = match inbox.recv(&socket, v4) {
                Ok(more) => more,
                Err(e) => {
                    tracing::debug!(error = %e, "TURN relay receive");
                    failed = true;
                    break;
                }
            };
            let now = Instant::now().into_std();
            let mut tx = shard.tx.borrow_mut();
            for (bytes, peer) in inbox.iter() {
                let to = shard
                    .server
                    .borrow_mut()
                    .handle_peer(now, id, peer, bytes, &mut tx);
                if let Some(tuple) = to {
                    shard.to_client(&tuple, &tx);
                }
            }
            if !more {
                break;
            }
        }
        if failed {
            tokio::task::yield_now().await;
        }
    }
}

/// Send a datagram with a plain `sendto`: tokio's `try_send_to` answers `WouldBlock`
/// until the reactor has seen the socket writable, which a busy shard may not have polled
/// yet; UDP send buffers are deep, and a full one drops the datagram as the network would.
fn send_to(socket: &UdpSocket, data: &[u8], to: SocketAddr) {
    let _ = socket2::SockRef::from(socket).send_to(data, &to.into());
}

impl Shard {
    /// Feed one datagram or frame from a client to the server and carry out the result.
    fn dispatch(
        self: &Rc<Self>,
        now: std::time::Instant,
        tuple: FiveTuple,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) {
        let mut server = self.server.borrow_mut();
        match server.handle_client(now, tuple, bytes, out) {
            Output::None => {}
            Output::Reply => self.to_client(&tuple, out),
            Output::ToPeer { relay, peer, data } => {
                if let Some(Some(r)) = self.relays.borrow().get(relay.index())
                    && r.id == relay
                {
                    send_to(&r.socket, data, peer);
                }
            }
            Output::BindRelay { family, even_port } => {
                let bound = self.bind_relay(family, even_port);
                let result = match &bound {
                    Ok((_, addr)) => Ok(*addr),
                    Err(e) => Err(*e),
                };
                let id = server.relay_bound(now, tuple, result, out);
                if let (Some(id), Ok((socket, _))) = (id, bound) {
                    let socket = Rc::new(socket);
                    let task =
                        tokio::task::spawn_local(relay_loop(self.clone(), id, socket.clone()));
                    let mut relays = self.relays.borrow_mut();
                    if relays.len() <= id.index() {
                        relays.resize_with(id.index() + 1, || None);
                    }
                    if let Some(old) = relays[id.index()].replace(Relay { id, socket, task }) {
                        old.task.abort();
                    }
                }
                self.to_client(&tuple, out);
            }
        }
        drop(server);
        self.drain_events();
    }

    fn drain_events(&self) {
        loop {
            let ev = self.server.borrow_mut().poll_event();
            let Some(Event::AllocationClosed { relay, .. }) = ev else {
                break;
            };
            let mut relays = self.relays.borrow_mut();
            if let Some(slot) = relays.get_mut(relay.index())
                && slot.as_ref().is_some_and(|r| r.id == relay)
                && let Some(r) = slot.take()
            {
                r.task.abort();
            }
        }
    }

    /// Send the datagrams queued for UDP clients.
    fn flush_udp(&self) {
        let mut outbox = self.outbox.borrow_mut();
        if outbox.len() == 0 {
            return;
        }
        match &self.udp {
            Some(udp) => outbox.flush(udp),
            None => outbox.clear(),
        }
    }

    fn to_client(&self, tuple: &FiveTuple, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match tuple.transport {
            ClientTransport::Udp => {
                let mut outbox = self.outbox.borrow_mut();
                outbox.push(bytes, tuple.client);
                if outbox.len() >= FLUSH_AT {
                    drop(outbox);
                    self.flush_udp();
                } else if outbox.len() == 1 {
                    self.flush.notify_one();
                }
            }
            ClientTransport::Tcp | ClientTransport::Tls => {
                if let Some(q) = self.streams.borrow().get(tuple) {
                    let mut buf = q.buf.borrow_mut();
                    if buf.len() + bytes.len() <= MAX_STREAM_BACKLOG {
                        buf.extend_from_slice(bytes);
                        q.notify.notify_one();
                    }
                }
            }
        }
    }

    /// Bind a relay socket on a random free port of the range (RFC 8656 7.2: the port
    /// should be hard to guess).
    fn bind_relay(
        &self,
        family: RelayFamily,
        even_port: bool,
    ) -> Result<(UdpSocket, SocketAddr), BindError> {
        let want_v4 = family == RelayFamily::V4;
        if self.relay_ip.is_ipv4() != want_v4 {
            return Err(BindError::FamilyUnsupported);
        }
        let [lo, hi] = self.relay_ports;
        let span = u64::from(hi - lo) + 1;
        for _ in 0..64 {
            let mut port = lo + (self.next_random() % span) as u16;
            if even_port && port % 2 == 1 {
                port = if port < hi { port + 1 } else { port - 1 };
                if port % 2 == 1 || port < lo {
                    continue;
                }
            }
            let Ok(s) = std::net::UdpSocket::bind((self.relay_ip, port)) else {
                continue;
            };
            let Ok(addr) = s.local_addr() else { continue };
            if s.set_nonblocking(true).is_err() {
                continue;
            }
            if let Ok(s) = UdpSocket::from_std(s) {
                if self.udp_offload {
                    enable_gro(&s);
                }
                return Ok((s, addr));
            }
        }
        Err(BindError::Capacity)
    }

    /// xorshift64: port choice only, seeded from the OS.
    fn next_random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }
}
