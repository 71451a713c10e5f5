//! An HTTP/1.1 server loop for axum routers, with optional TLS, peer addresses for handlers
//! (`ConnectInfo<SocketAddr>`), WebSocket upgrades and graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::Shutdown;
use crate::accept::{AcceptConfig, Accepted, Incoming};

/// Serves `router` on `listener` until `shutdown`; TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: Shutdown,
) {
    let mut incoming = Incoming::new(listener, AcceptConfig::new("HTTP"), shutdown.clone());
    while let Some(Accepted { tcp, peer, .. }) = incoming.next().await {
        let app = router.clone().layer(axum::Extension(ConnectInfo(peer)));
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = TowerToHyperService::new(app);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(256 * 1024);
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    run_conn(conn, shutdown, peer).await;
                }
                None => {
                    let conn = builder
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades();
                    run_conn(conn, shutdown, peer).await;
                }
            }
        });
    }
}

async fn run_conn<F, E>(conn: F, shutdown: Shutdown, peer: SocketAddr)
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::select! {
        r = conn => if let Err(e) = r { tracing::debug!(%peer, error = %e, "HTTP connection ended"); },
        () = shutdown.wait() => {}
    }
}
