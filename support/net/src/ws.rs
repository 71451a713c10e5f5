//! WebSocket over TLS for platform messages (Ps, Sc).

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::NetError;

/// A client-side platform connection.
pub type ClientWs = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;
/// A server-side platform connection.
pub type ServerWs = WebSocketStream<tokio_rustls::server::TlsStream<TcpStream>>;

/// WebSocket limits matching the platform protocol's message limit.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(peercam_signal::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(peercam_signal::MAX_MESSAGE_BYTES))
        .write_buffer_size(0)
        .read_buffer_size(4096)
}

/// Connects to a `wss://host:port/path` URL, trusting only `tls`'s roots.
pub async fn connect(
    url: &str,
    tls: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<ClientWs, NetError> {
    let parsed = url::Url::parse(url).map_err(|e| NetError::Url {
        url: url.into(),
        reason: e.to_string(),
    })?;
    if parsed.scheme() != "wss" {
        return Err(NetError::Url {
            url: url.into(),
            reason: "only wss:// is allowed (no plaintext platform links)".into(),
        });
    }
    let host = parsed.host_str().ok_or_else(|| NetError::Url {
        url: url.into(),
        reason: "no host".into(),
    })?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port().unwrap_or(443);
    let fut = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| NetError::io(format!("connecting to {host}:{port}"), e))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.clone()).map_err(|e| NetError::Url {
            url: url.into(),
            reason: e.to_string(),
        })?;
        let tls_stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| NetError::io(format!("TLS with {host}:{port}"), e))?;
        let (ws, _resp) =
            tokio_tungstenite::client_async_with_config(url, tls_stream, Some(ws_config())).await?;
        Ok(ws)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| NetError::Timeout("platform connection"))?
}

/// Completes TLS and the WebSocket handshake on an accepted TCP connection.
pub async fn accept(
    tcp: TcpStream,
    tls: TlsAcceptor,
    timeout: Duration,
) -> Result<ServerWs, NetError> {
    let _ = tcp.set_nodelay(true);
    let fut = async {
        let stream = tls
            .accept(tcp)
            .await
            .map_err(|e| NetError::io("TLS accept", e))?;
        Ok(tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await?)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| NetError::Timeout("TLS/WebSocket handshake"))?
}
