//! The lean TLS stream against rustls's own client (through tokio-rustls), with the
//! client's bytes cut into pieces of every size so records arrive split across reads.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::LeanTlsStream;
use crate::pki::Pki;

/// A TCP stream whose writes carry at most `chunk` bytes each (nodelay: each its own segment).
struct Dribble {
    tcp: TcpStream,
    chunk: usize,
}

impl AsyncRead for Dribble {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Dribble {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = data.len().min(self.chunk);
        Pin::new(&mut self.tcp).poll_write(cx, &data[..n])
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

struct Setup {
    listener: TcpListener,
    server: Arc<rustls::ServerConfig>,
    client: tokio_rustls::TlsConnector,
}

async fn setup() -> Setup {
    let pki = Pki::generate(&["localhost"]).unwrap();
    let server = crate::tls::server_config(
        pki.server_cert_pem.as_bytes(),
        pki.server_key_pem.as_bytes(),
        &[],
    )
    .unwrap();
    let client = crate::tls::client_config(pki.ca_cert_pem.as_bytes()).unwrap();
    Setup {
        listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        server,
        client: tokio_rustls::TlsConnector::from(client),
    }
}

/// Echoes every byte back until the client closes; returns, after each write, the bytes
/// echoed so far and the bytes the connection then held in buffers of its own.
async fn echo_server(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> Vec<(usize, usize)> {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = LeanTlsStream::new(tcp, config).unwrap();
    let mut buf = vec![0u8; 3000];
    let mut held = Vec::new();
    let mut total = 0;
    loop {
        let n = tls.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        tls.write_all(&buf[..n]).await.unwrap();
        tls.flush().await.unwrap();
        total += n;
        held.push((total, tls.buffered_capacity()));
    }
    tls.shutdown().await.ok();
    held
}

fn message(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// H.626.4 7 (SCU), issue 19: whatever the cut of the client's bytes, every message comes
/// back intact, and between messages the connection holds no buffer of its own.
#[tokio::test]
async fn h626_7_lean_tls_echoes_every_size_and_cut() {
    for chunk in [1usize, 7, 300, 5000, 1 << 20] {
        let s = setup().await;
        let addr = s.listener.local_addr().unwrap();
        let server = tokio::spawn(echo_server(s.listener, s.server));
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = s
            .client
            .connect(name, Dribble { tcp, chunk })
            .await
            .unwrap();
        let sizes: &[usize] = if chunk == 1 {
            &[1, 100, 17_000]
        } else {
            &[1, 100, 16_384, 16_385, 100_000]
        };
        for (i, &len) in sizes.iter().enumerate() {
            let sent = message(len, i as u8);
            tls.write_all(&sent).await.unwrap();
            tls.flush().await.unwrap();
            let mut back = vec![0u8; len];
            tls.read_exact(&mut back).await.unwrap();
            assert!(
                back == sent,
                "chunk {chunk}: message of {len} bytes changed"
            );
        }
        tls.shutdown().await.unwrap();
        let held = server.await.unwrap();
        let mut boundary = 0;
        for len in sizes {
            boundary += len;
            let at = held.iter().find(|(total, _)| *total == boundary);
            assert_eq!(
                at.map(|(_, bytes)| *bytes),
                Some(0),
                "chunk {chunk}: buffers kept after a whole message"
            );
        }
    }
}

/// A record cut off by the end of the stream is an error, not a short message.
#[tokio::test]
async fn h626_7_lean_tls_truncated_record_is_an_error() {
    let s = setup().await;
    let addr = s.listener.local_addr().unwrap();
    let config = s.server.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = s.listener.accept().await.unwrap();
        let mut tls = LeanTlsStream::new(tcp, config).unwrap();
        let mut buf = [0u8; 64];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(e.kind()),
            }
        }
    });
    // A handshake record's header promising 300 bytes, then only 10 of them.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x01, 0x2c])
        .await
        .unwrap();
    tcp.write_all(&[1; 10]).await.unwrap();
    tcp.shutdown().await.unwrap();
    drop(tcp);
    assert_eq!(
        server.await.unwrap(),
        Some(std::io::ErrorKind::UnexpectedEof)
    );
}

/// Bytes that are not TLS get a clear error at once.
#[tokio::test]
async fn h626_7_lean_tls_refuses_plain_http() {
    let s = setup().await;
    let addr = s.listener.local_addr().unwrap();
    let config = s.server.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = s.listener.accept().await.unwrap();
        let mut tls = LeanTlsStream::new(tcp, config).unwrap();
        let mut buf = [0u8; 64];
        tls.read(&mut buf).await
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
}
