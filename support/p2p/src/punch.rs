//! The tokio driver of the ICE agent: punch, then keep consent running under QUIC.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peercam_ice::{Agent, Candidate, CandidateKind, Config, Credentials, Event, Failure, Role};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::socket::Datagram;
use crate::{Error, SessionDescription};

/// How many QUIC datagrams may wait for quinn (e.g. while the other side finishes ICE).
const QUIC_QUEUE: usize = 1024;

/// The selected path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    /// The local base address.
    pub local: SocketAddr,
    /// The peer's address as this side reaches it.
    pub remote: SocketAddr,
    /// How the peer sees this side (host: no NAT in between; reflexive: through a NAT).
    pub local_kind: CandidateKind,
    /// What the peer's address is (host: same LAN or no NAT; reflexive: punched).
    pub remote_kind: CandidateKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathState {
    Checking,
    Connected(Path),
    Failed(Failure),
    Lost,
}

/// Fresh random bytes for [`Config::new`] and [`Credentials::from_random`].
pub fn random_seed() -> Result<[u8; 32], Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Io(std::io::Error::other(e)))?;
    Ok(seed)
}

/// An agent with fresh credentials and the default [`Config`] (random seed), holding
/// the local `candidates` from [`crate::gather`]. The CU is [`Role::Controlling`], the
/// PU [`Role::Controlled`]. Change settings with [`Agent`]'s constructor directly.
pub fn new_agent(role: Role, candidates: &[Candidate]) -> Result<Agent, Error> {
    let config = Config::new(random_seed()?);
    let creds = Credentials::from_random(random_seed()?);
    let mut agent = Agent::new(role, creds, config, Instant::now());
    for c in candidates {
        agent
            .add_local_candidate(c.clone())
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    }
    Ok(agent)
}

/// Stops a task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A punched path: ICE selected a pair and keeps checking consent on it. Turn it into a
/// byte stream with [`Punched::connect`] (CU) or [`Punched::accept`] (PU).
#[derive(Debug)]
pub struct Punched {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) quic_rx: mpsc::Receiver<Datagram>,
    pub(crate) path: Path,
    pub(crate) state: watch::Receiver<PathState>,
    pub(crate) driver: AbortOnDrop,
}

impl Punched {
    /// The selected path.
    pub fn path(&self) -> Path {
        self.path
    }
}

/// Run ICE on `socket` with `agent` against the peer's description until a pair is
/// selected; fails with [`Error::PunchFailed`] when ICE fails and [`Error::PunchTimeout`]
/// after `timeout`, so the caller can fall back to the relay.
///
/// The socket must not be read by anyone else from now on: the driver task started here
/// owns its receive side for the life of the path.
pub async fn punch(
    socket: UdpSocket,
    mut agent: Agent,
    remote: &SessionDescription,
    timeout: Duration,
) -> Result<Punched, Error> {
    agent.set_remote_credentials(remote.credentials.clone());
    for c in &remote.candidates {
        agent.add_remote_candidate(c.clone());
    }
    agent.set_remote_candidates_complete();
    let socket = Arc::new(socket);
    let (quic_tx, quic_rx) = mpsc::channel(QUIC_QUEUE);
    let (state_tx, mut state) = watch::channel(PathState::Checking);
    let driver = AbortOnDrop(tokio::spawn(drive(
        socket.clone(),
        agent,
        quic_tx,
        state_tx,
    )));
    match tokio::time::timeout(timeout, wait_selected(&mut state)).await {
        Ok(Ok(path)) => {
            tracing::debug!(?path, "ICE selected a pair");
            Ok(Punched {
                socket,
                quic_rx,
                path,
                state,
                driver,
            })
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::PunchTimeout(timeout)),
    }
}

async fn wait_selected(state: &mut watch::Receiver<PathState>) -> Result<Path, Error> {
    loop {
        match *state.borrow_and_update() {
            PathState::Checking => {}
            PathState::Connected(p) => return Ok(p),
            PathState::Failed(f) => return Err(Error::PunchFailed(f)),
            PathState::Lost => return Err(Error::PathLost),
        }
        if state.changed().await.is_err() {
            return Err(Error::PathLost);
        }
    }
}

/// Wait until consent is lost (or the driver is gone).
pub(crate) async fn wait_lost(mut state: watch::Receiver<PathState>) {
    loop {
        if *state.borrow_and_update() == PathState::Lost {
            return;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// The driver: the only reader of the socket. STUN goes to the agent, the rest to quinn.
async fn drive(
    socket: Arc<UdpSocket>,
    mut agent: Agent,
    quic_tx: mpsc::Sender<Datagram>,
    state: watch::Sender<PathState>,
) {
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(t) = agent.poll_transmit() {
            if let Err(e) = socket.send_to(&t.bytes, t.to).await {
                tracing::debug!(error = %e, to = %t.to, "ICE send failed");
            }
        }
        while let Some(e) = agent.poll_event() {
            match e {
                Event::Connected {
                    local,
                    remote,
                    local_kind,
                    remote_kind,
                } => {
                    state.send_replace(PathState::Connected(Path {
                        local,
                        remote,
                        local_kind,
                        remote_kind,
                    }));
                }
                Event::Failed(f) => {
                    state.send_replace(PathState::Failed(f));
                    return;
                }
                Event::ConsentLost => {
                    tracing::info!("ICE consent lost: the P2P path is dead");
                    state.send_replace(PathState::Lost);
                    return;
                }
                _ => {}
            }
        }
        let wake = agent.poll_timeout();
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let data = &buf[..n];
                    if !agent.handle_receive(Instant::now(), local, from, data) {
                        // Full queue: drop, as a congested socket buffer would.
                        let _ = quic_tx.try_send((from, data.to_vec()));
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive failed");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
            () = sleep_opt(wake) => agent.handle_timeout(Instant::now()),
            () = state.closed() => return,
        }
    }
}

async fn sleep_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}
