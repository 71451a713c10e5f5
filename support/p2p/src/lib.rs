//! The P2P path between a CU and a PU (H.626.4 8.3, 8.4): gather candidates, punch a
//! hole through both NATs with the sans-IO [`peercam_ice`] agent, then run QUIC over the
//! very same UDP socket and hand out one bidirectional byte stream ([`P2pStream`]) that
//! carries the RTSP session (RTP interleaved) unchanged.
//!
//! ```text
//! CU (controlling, QUIC client)                           PU (controlled, QUIC server)
//! gather(&socket, stun) ──► SessionDescription ─ platform signalling ─► SessionDescription
//! punch(socket, agent, &remote, timeout) ◄──── STUN checks on the socket ────► punch(..)
//! Punched::connect(&identity, pu_fingerprint)  ◄── QUIC + TLS 1.3 ──►  Punched::accept(..)
//! P2pStream: AsyncRead + AsyncWrite  ◄════════ RTSP / RTP interleaved ════════► P2pStream
//! ```
//!
//! # Design choices
//!
//! - **One socket, demultiplexed** (RFC 7983): after ICE has selected a pair, a driver
//!   task keeps reading the socket. Datagrams whose first byte is 0..=3 with the STUN
//!   magic cookie go to the ICE agent, everything else to quinn through
//!   [`quinn::AsyncUdpSocket`] (the socket module). So the controlled side can answer
//!   the controlling side's nomination retransmissions after it has moved on, QUIC
//!   packets that arrive before a side has finished ICE are queued, not lost, and ICE
//!   consent keeps running under QUIC.
//! - **Keepalive**: ICE consent checks (RFC 7675) every 2.5 s in both directions keep the
//!   NAT bindings open and detect a dead path (30 s → the stream is closed); QUIC
//!   keep-alive every 5 s keeps quinn's 30 s idle timer from firing.
//! - **Authentication by pinning**, like DTLS fingerprints in WebRTC (RFC 8122): each
//!   side has a self-signed certificate ([`Identity`]); the SHA-256 [`Fingerprint`] of
//!   its DER travels in the platform's already authenticated signalling. The client pins
//!   the server's certificate and the server requires a client certificate and pins it
//!   too (mutual). Names and CAs are not used; signatures are still verified, so only the
//!   holder of the pinned key completes the handshake.
//! - The CU is the QUIC client and opens the stream; it writes an 8-byte preface so the
//!   PU's `accept` returns before the RTSP client speaks.

mod gather;
mod identity;
mod punch;
mod socket;
mod stream;
pub mod webrtc;

use std::net::SocketAddr;
use std::time::Duration;

use peercam_ice::{Candidate, Credentials};
use serde::{Deserialize, Serialize};

pub use gather::{gather, interface_addrs};
pub use identity::{Fingerprint, Identity};
pub use peercam_ice;
pub use punch::{Path, Punched, new_agent, punch, random_seed};
pub use stream::P2pStream;

/// What one side signals to the other through the platform to set up a P2P path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// ICE ufrag and password.
    pub credentials: Credentials,
    /// ICE candidates in RFC 8839 text form.
    pub candidates: Vec<Candidate>,
    /// The SHA-256 fingerprint of the side's QUIC certificate.
    pub fingerprint: Fingerprint,
}

impl SessionDescription {
    /// The description as the platform carries it (`peercam_signal::relay`).
    pub fn to_signal(&self) -> peercam_signal::relay::PunchDescription {
        peercam_signal::relay::PunchDescription {
            credentials: peercam_signal::relay::PunchCredentials {
                ufrag: self.credentials.ufrag().to_owned(),
                pwd: self.credentials.pwd().to_owned(),
            },
            candidates: self.candidates.iter().map(ToString::to_string).collect(),
            fingerprint: self.fingerprint.to_string(),
        }
    }

    /// Reads a description the platform carried; refuses malformed credentials, candidates
    /// or fingerprints.
    pub fn from_signal(d: &peercam_signal::relay::PunchDescription) -> Result<Self, Error> {
        let bad = |what: &'static str| Error::Description(what);
        Ok(Self {
            credentials: Credentials::new(d.credentials.ufrag.clone(), d.credentials.pwd.clone())
                .map_err(|_| bad("ICE credentials"))?,
            candidates: d
                .candidates
                .iter()
                .map(|c| c.parse::<Candidate>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad("ICE candidate"))?,
            fingerprint: d.fingerprint.parse()?,
        })
    }
}

/// One side of a P2P path being set up: the socket, the ICE agent holding the gathered
/// candidates, the QUIC identity, and the description to signal to the other side.
#[derive(Debug)]
pub struct Prepared {
    /// The socket the path will use.
    pub socket: tokio::net::UdpSocket,
    /// The agent, holding the local candidates.
    pub agent: peercam_ice::Agent,
    /// The QUIC certificate and key.
    pub identity: Identity,
    /// What to send to the other side.
    pub description: SessionDescription,
}

/// Binds a UDP socket on all interfaces, gathers its candidates (host, and server-reflexive
/// from `stun` within `timeout`), makes an agent for `role` and a QUIC identity.
pub async fn prepare(
    role: peercam_ice::Role,
    stun: Option<SocketAddr>,
    timeout: Duration,
) -> Result<Prepared, Error> {
    let socket = tokio::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).await?;
    let candidates = gather(&socket, stun, timeout).await?;
    let agent = new_agent(role, &candidates)?;
    let identity = Identity::generate()?;
    let description = SessionDescription {
        credentials: agent.local_credentials().clone(),
        candidates,
        fingerprint: identity.fingerprint(),
    };
    Ok(Prepared {
        socket,
        agent,
        identity,
        description,
    })
}

/// H.626.4 8.3, the device side of hole punching (a camera's live view, a recorder's
/// playback): gathers candidates (asking `stun` for the public address), returns the
/// device's description at once, and in the background runs ICE against the viewer's
/// `offer`, accepts its QUIC connection (pinned to the offer's fingerprint) and hands the
/// stream to `serve`, unless `stop` fires first. The viewer's RTSP request on the stream
/// carries its token, judged as in 8.4 by whatever `serve` runs.
pub async fn answer_punch<F, Fut, S>(
    offer: &peercam_signal::relay::PunchDescription,
    stun: Option<&str>,
    stop: S,
    serve: F,
) -> Result<peercam_signal::relay::PunchDescription, Error>
where
    F: FnOnce(P2pStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
    S: Future<Output = ()> + Send + 'static,
{
    let offer = SessionDescription::from_signal(offer)?;
    let stun = match stun {
        Some(s) => tokio::net::lookup_host(s)
            .await
            .ok()
            .and_then(|mut a| a.next()),
        None => None,
    };
    let prepared = prepare(
        peercam_ice::Role::Controlled,
        stun,
        Duration::from_millis(1500),
    )
    .await?;
    let answer = prepared.description.to_signal();
    tokio::spawn(async move {
        let Prepared {
            socket,
            agent,
            identity,
            ..
        } = prepared;
        let stream = async {
            let punched = punch(socket, agent, &offer, Duration::from_secs(10)).await?;
            punched.accept(&identity, offer.fingerprint).await
        };
        let stream = tokio::select! {
            s = stream => s,
            () = stop => return,
        };
        match stream {
            Ok(stream) => serve(stream).await,
            Err(e) => {
                tracing::info!(error = %e, "hole punching failed; the viewer uses the relay")
            }
        }
    });
    Ok(answer)
}

/// What went wrong on the P2P path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The WebRTC engine refused an offer or an operation.
    #[error("WebRTC: {0}")]
    WebRtc(String),
    /// A signalled description is malformed.
    #[error("malformed description: {0}")]
    Description(&'static str),
    /// ICE failed (every pair failed or the agent's own timeout): use the relay.
    #[error("hole punching failed: {0:?}")]
    PunchFailed(peercam_ice::Failure),
    /// [`punch`]'s timeout expired before a pair was selected: use the relay.
    #[error("hole punching timed out after {0:?}")]
    PunchTimeout(Duration),
    /// The punched path died (ICE consent lost).
    #[error("the P2P path was lost (no ICE consent)")]
    PathLost,
    /// Building a certificate failed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A fingerprint string is malformed.
    #[error("bad fingerprint: {0}")]
    Fingerprint(&'static str),
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// QUIC configuration failed.
    #[error("QUIC configuration: {0}")]
    QuicConfig(String),
    /// Starting the QUIC connection failed.
    #[error("QUIC connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC connection failed, e.g. the peer's certificate is not the pinned one.
    #[error("QUIC connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing the stream preface failed.
    #[error("QUIC write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading the stream preface failed.
    #[error("QUIC read: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// The stream did not start with the peercam preface.
    #[error("the peer's stream did not start with the peercam preface")]
    BadPreface,
    /// A QUIC connection came from another address than the punched peer.
    #[error("QUIC connection from {0}, not the punched peer")]
    UnexpectedPeer(SocketAddr),
    /// The QUIC handshake and stream set-up took too long.
    #[error("QUIC set-up timed out")]
    QuicTimeout,
    /// The QUIC endpoint was closed before a connection arrived.
    #[error("QUIC endpoint closed")]
    EndpointClosed,
}
