//! The device side of an MTU's tunnel port (H.626.4 7.3: Mp/Pd for a camera, Mn/Nd for a
//! recorder): the device dials out to the MTU over TLS (the MTU's certificate checked
//! against the platform CA for the name the platform gave), presents the one-time ticket
//! of the platform's `relay_connect`, and then serves RTSP over the channel as to any
//! viewer. Shared by the PU and the NVR; the MTU's side is `units/mtu/src/relay.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

/// The channel to the MTU, after the hello.
pub type Channel = tokio_rustls::client::TlsStream<TcpStream>;

/// Why the channel to the MTU could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// The MTU's name is not a TLS server name.
    #[error("bad MTU server name {0}")]
    ServerName(String),
    /// The MTU did not accept the connection in time.
    #[error("the MTU at {0} did not answer in time")]
    Silent(String),
    /// The MTU refused the connection.
    #[error("cannot reach the MTU at {tunnel}: {source}")]
    Connect {
        /// The MTU's tunnel address.
        tunnel: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS handshake took too long.
    #[error("TLS with the MTU timed out")]
    TlsTimeout,
    /// The TLS handshake failed (the MTU's certificate is checked against the platform CA).
    #[error("TLS with the MTU failed: {0}")]
    Tls(std::io::Error),
    /// The hello could not be sent.
    #[error("writing to the MTU: {0}")]
    Write(std::io::Error),
    /// A socket could not say its address.
    #[error("{0}")]
    Io(std::io::Error),
}

/// Dials the MTU's tunnel port at `tunnel` (`host:port`), checks its certificate for
/// `server_name` with `tls` (the platform CA) and sends `PEERCAM-RELAY/1 <ticket>`; returns
/// the channel and the MTU's address.
pub async fn dial(
    tunnel: &str,
    server_name: &str,
    ticket: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<(Channel, SocketAddr), TunnelError> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| TunnelError::ServerName(format!("{server_name:?}: {e}")))?;
    let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(tunnel))
        .await
        .map_err(|_| TunnelError::Silent(tunnel.to_owned()))?
        .map_err(|source| TunnelError::Connect {
            tunnel: tunnel.to_owned(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().map_err(TunnelError::Io)?;
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .map_err(|_| TunnelError::TlsTimeout)?
    .map_err(TunnelError::Tls)?;
    stream
        .write_all(format!("{} {ticket}\r\n", peercam_signal::relay::RELAY_HELLO).as_bytes())
        .await
        .map_err(TunnelError::Write)?;
    Ok((stream, peer))
}
