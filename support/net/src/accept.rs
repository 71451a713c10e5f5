//! The one TCP accept loop of every unit: a connection limit, a back-off when accepting
//! fails for want of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) instead of a busy loop,
//! and an end on [`Shutdown`].
//!
//! [`Incoming`] yields accepted connections one by one, so callers on a `LocalSet` (the
//! TURN shards) spawn them as they need; [`serve`] spawns each on the runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{NetError, Shutdown};

/// First delay after a failed accept; it doubles on each failure in a row.
const BACKOFF_INITIAL: Duration = Duration::from_millis(20);
/// Ceiling of the delay after failed accepts.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How a listener is served.
#[derive(Debug, Clone, Copy)]
pub struct AcceptConfig {
    /// What the listener serves, for logs.
    pub name: &'static str,
    /// Connections served at once; a connection beyond is closed at once. `None`: no limit
    /// here (the unit limits sessions itself).
    pub max_connections: Option<usize>,
    /// Disable Nagle's algorithm on accepted connections (media and request/response).
    pub nodelay: bool,
}

impl AcceptConfig {
    /// A listener named `name`, without a connection limit, with `TCP_NODELAY`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            max_connections: None,
            nodelay: true,
        }
    }

    /// The same with at most `max` connections at once.
    pub const fn limit(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }
}

/// An accepted connection.
#[derive(Debug)]
pub struct Accepted {
    /// The connection.
    pub tcp: TcpStream,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Holds the connection's place under [`AcceptConfig::max_connections`]; keep it for as
    /// long as the connection is served.
    pub slot: Option<OwnedSemaphorePermit>,
}

/// The connections a listener accepts, until shutdown.
#[derive(Debug)]
pub struct Incoming {
    listener: TcpListener,
    config: AcceptConfig,
    shutdown: Shutdown,
    slots: Option<Arc<Semaphore>>,
    failures: u32,
}

impl Incoming {
    /// Connections of `listener` served as `config` says, until `shutdown`.
    pub fn new(listener: TcpListener, config: AcceptConfig, shutdown: Shutdown) -> Self {
        Self {
            listener,
            slots: config.max_connections.map(|n| Arc::new(Semaphore::new(n))),
            config,
            shutdown,
            failures: 0,
        }
    }

    /// The next connection to serve; `None` on shutdown.
    pub async fn next(&mut self) -> Option<Accepted> {
        loop {
            let r = tokio::select! {
                r = self.listener.accept() => r,
                () = self.shutdown.wait() => return None,
            };
            let (tcp, peer) = match r {
                Ok(x) => x,
                Err(e) if is_per_connection(&e) => {
                    tracing::debug!(listener = self.config.name, error = %e, "accept: connection gone");
                    continue;
                }
                Err(e) => {
                    self.back_off(&e).await?;
                    continue;
                }
            };
            self.failures = 0;
            let slot = match &self.slots {
                Some(slots) => match slots.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        tracing::debug!(listener = self.config.name, %peer, "connection limit reached; closed");
                        continue;
                    }
                },
                None => None,
            };
            if self.config.nodelay {
                let _ = tcp.set_nodelay(true);
            }
            return Some(Accepted { tcp, peer, slot });
        }
    }

    /// Waits after a failed accept (out of descriptors or memory), longer on each failure
    /// in a row; `None` on shutdown.
    async fn back_off(&mut self, e: &std::io::Error) -> Option<()> {
        let delay = BACKOFF_INITIAL
            .saturating_mul(1 << self.failures.min(10))
            .min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        tracing::warn!(listener = self.config.name, error = %e, ?delay, "accept failed; backing off");
        tokio::select! {
            () = tokio::time::sleep(delay) => Some(()),
            () = self.shutdown.wait() => None,
        }
    }
}

/// Errors that concern one connection only (it was aborted before we took it): accept the
/// next at once.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    )
}

/// Binds a listener for `what` (named in errors); returns it with its address.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<(TcpListener, SocketAddr), NetError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| NetError::io(format!("binding {what} {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| NetError::io(format!("{what} address"), e))?;
    Ok((listener, local))
}

/// Accepts connections of `listener` until `shutdown`, serving each in a task of its own.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    config: AcceptConfig,
    shutdown: Shutdown,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut incoming = Incoming::new(listener, config, shutdown);
    while let Some(Accepted { tcp, peer, slot }) = incoming.next().await {
        let task = handle(tcp, peer);
        tokio::spawn(async move {
            task.await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn limit_closes_the_connection_beyond_and_shutdown_ends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let config = AcceptConfig::new("test").limit(1);
        let mut incoming = Incoming::new(listener, config, shutdown.clone());
        let _a = TcpStream::connect(addr).await.expect("connect");
        let first = incoming.next().await.expect("first");
        // Beyond the limit while the first is served: closed at once.
        let mut b = TcpStream::connect(addr).await.expect("connect");
        let waited = tokio::time::timeout(Duration::from_millis(200), incoming.next()).await;
        assert!(waited.is_err(), "no second connection within the limit");
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(2), b.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
        drop(first);
        let c = TcpStream::connect(addr).await.expect("connect");
        let third = incoming.next().await.expect("third");
        assert_eq!(third.peer, c.local_addr().expect("local"));
        shutdown.trigger();
        assert!(incoming.next().await.is_none());
    }
}
