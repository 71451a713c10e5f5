//! The IO shell shared by peercam's units.
//!
//! Protocol logic lives in sans-IO crates (`peercam-signal`); this crate owns the sockets:
//! TLS configuration with a pinned platform CA ([`tls`]), generation of a private CA for
//! the demo and tests ([`pki`]), WebSocket transport of platform messages ([`ws`]), an
//! HTTP(S) server loop for axum routers ([`http`]), a TLS server stream that keeps no buffer
//! between records for the SCU's many idle device links ([`lean_tls`]), the accept loop of every listener
//! ([`accept`]), gateway port mapping ([`portmap`]), a shutdown signal ([`Shutdown`]) and the
//! rule for tests whose peer is missing ([`skip`]).

pub mod accept;
pub mod agent;
pub mod discover;
pub mod http;
pub mod lean_tls;
pub mod metrics;
pub mod pki;
pub mod portmap;
pub mod rtsp;
mod shutdown;
pub mod skip;
pub mod tls;
pub mod tunnel;
pub mod ws;

pub use shutdown::Shutdown;
pub use {rustls, tokio_rustls, tokio_tungstenite};

/// Errors of the IO shell.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Socket or file error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificate or key material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// WebSocket handshake or framing failed.
    #[error("WebSocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// A URL is not usable.
    #[error("bad URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The operation took too long.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// A device's identity file is unusable.
    #[error("identity {path}: {source}")]
    Identity {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: peercam_signal::identity::IdentityError,
    },
}

impl NetError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
