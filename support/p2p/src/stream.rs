//! QUIC over the punched path and the byte stream on top.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, EndpointConfig, IdleTimeout, RecvStream, SendStream, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Error;
use crate::identity::{Fingerprint, Identity, client_tls, server_tls};
use crate::punch::{AbortOnDrop, Path, Punched, wait_lost};
use crate::socket::DemuxSocket;

/// The first bytes the CU writes on the stream, so the PU's accept returns at once.
const PREFACE: &[u8; 8] = b"PCAMP2P1";
/// Handshake plus stream set-up limit.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// QUIC keep-alive (the ICE consent checks keep the NAT open; this keeps quinn's idle
/// timer from firing on a quiet stream).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// QUIC idle timeout, equal to the ICE consent timeout.
const IDLE_TIMEOUT_MS: u32 = 30_000;
/// Application close code when ICE consent is lost.
const CLOSE_PATH_LOST: u32 = 1;

fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(IDLE_TIMEOUT_MS))));
    t
}

impl Punched {
    fn endpoint(
        self,
        server: Option<quinn::ServerConfig>,
    ) -> Result<
        (
            Endpoint,
            Path,
            tokio::sync::watch::Receiver<crate::punch::PathState>,
            AbortOnDrop,
        ),
        Error,
    > {
        let socket = Arc::new(DemuxSocket::new(self.socket, self.quic_rx));
        let endpoint = Endpoint::new_with_abstract_socket(
            EndpointConfig::default(),
            server,
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        Ok((endpoint, self.path, self.state, self.driver))
    }

    /// CU side: QUIC client to the punched peer, pinning the PU's certificate
    /// fingerprint `peer`; opens the stream.
    pub async fn connect(self, identity: &Identity, peer: Fingerprint) -> Result<P2pStream, Error> {
        let tls = client_tls(identity, peer)?;
        let qc = QuicClientConfig::try_from(tls).map_err(|e| Error::QuicConfig(e.to_string()))?;
        let mut cc = quinn::ClientConfig::new(Arc::new(qc));
        cc.transport_config(Arc::new(transport()));
        let (endpoint, path, state, driver) = self.endpoint(None)?;
        let setup = async {
            let conn = endpoint
                .connect_with(cc, path.remote, "peercam-p2p")?
                .await?;
            let (mut send, recv) = conn.open_bi().await?;
            send.write_all(PREFACE).await?;
            Ok::<_, Error>((conn, send, recv))
        };
        let (conn, send, recv) = tokio::time::timeout(SETUP_TIMEOUT, setup)
            .await
            .map_err(|_| Error::QuicTimeout)??;
        Ok(P2pStream::new(
            endpoint, conn, send, recv, path, state, driver,
        ))
    }

    /// PU side: QUIC server for the punched peer only, requiring its client certificate
    /// with fingerprint `peer`; accepts the stream.
    pub async fn accept(self, identity: &Identity, peer: Fingerprint) -> Result<P2pStream, Error> {
        let tls = server_tls(identity, peer)?;
        let qs = QuicServerConfig::try_from(tls).map_err(|e| Error::QuicConfig(e.to_string()))?;
        let mut sc = quinn::ServerConfig::with_crypto(Arc::new(qs));
        sc.transport_config(Arc::new(transport()));
        let (endpoint, path, state, driver) = self.endpoint(Some(sc))?;
        let setup = async {
            loop {
                let incoming = endpoint.accept().await.ok_or(Error::EndpointClosed)?;
                if incoming.remote_address() != path.remote {
                    tracing::warn!(from = %incoming.remote_address(), "QUIC from a stranger refused");
                    incoming.refuse();
                    continue;
                }
                let conn = incoming.await?;
                let (send, mut recv) = conn.accept_bi().await?;
                let mut preface = [0u8; 8];
                recv.read_exact(&mut preface).await?;
                if &preface != PREFACE {
                    conn.close(VarInt::from_u32(2), b"bad preface");
                    return Err(Error::BadPreface);
                }
                return Ok::<_, Error>((conn, send, recv));
            }
        };
        let (conn, send, recv) = tokio::time::timeout(SETUP_TIMEOUT, setup)
            .await
            .map_err(|_| Error::QuicTimeout)??;
        Ok(P2pStream::new(
            endpoint, conn, send, recv, path, state, driver,
        ))
    }
}

/// One bidirectional QUIC stream over the punched path: `AsyncRead + AsyncWrite`, for the
/// PU's RTSP server and the CU's RTSP client unchanged.
///
/// Dropping it closes the connection at once (unacknowledged data may be lost); call
/// [`P2pStream::close`] to finish sending and wait until the peer has everything.
#[derive(Debug)]
pub struct P2pStream {
    send: SendStream,
    recv: RecvStream,
    conn: Connection,
    endpoint: Endpoint,
    path: Path,
    sent: u64,
    received: u64,
    _watch: AbortOnDrop,
    _driver: AbortOnDrop,
}

impl P2pStream {
    fn new(
        endpoint: Endpoint,
        conn: Connection,
        send: SendStream,
        recv: RecvStream,
        path: Path,
        state: tokio::sync::watch::Receiver<crate::punch::PathState>,
        driver: AbortOnDrop,
    ) -> Self {
        let c = conn.clone();
        // ICE consent lost: the path is dead, close QUIC now rather than after its
        // idle timeout.
        let watch = AbortOnDrop(tokio::spawn(async move {
            wait_lost(state).await;
            c.close(VarInt::from_u32(CLOSE_PATH_LOST), b"ICE consent lost");
        }));
        Self {
            send,
            recv,
            conn,
            endpoint,
            path,
            sent: 0,
            received: 0,
            _watch: watch,
            _driver: driver,
        }
    }

    /// The peer's address on the punched path.
    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// The ICE path.
    pub fn path(&self) -> Path {
        self.path
    }

    /// QUIC's current round-trip estimate.
    pub fn rtt(&self) -> Duration {
        self.conn.rtt()
    }

    /// Stream bytes written so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// Stream bytes read so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// Finish the sending side, wait until the peer has acknowledged everything (or
    /// stopped the stream), then close the connection.
    pub async fn close(mut self) -> Result<(), Error> {
        let _ = self.send.finish();
        let _ = tokio::time::timeout(SETUP_TIMEOUT, self.send.stopped()).await;
        self.conn.close(VarInt::from_u32(0), b"done");
        self.endpoint.wait_idle().await;
        Ok(())
    }
}

impl AsyncRead for P2pStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = AsyncRead::poll_read(Pin::new(&mut this.recv), cx, buf);
        this.received += (buf.filled().len() - before) as u64;
        r
    }
}

impl AsyncWrite for P2pStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = AsyncWrite::poll_write(Pin::new(&mut this.send), cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            this.sent += *n as u64;
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().send), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.get_mut().send), cx)
    }
}
