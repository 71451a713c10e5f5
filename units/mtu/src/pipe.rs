//! The pipe (Mn/Nd, H.626.4 8.3): recorder playback for a viewer off the recorder's LAN.
//!
//! The viewer plays `rtsp://MTU/pipe/RECORDER/rec/CAMERA?start=…&token=T`. Before its
//! DESCRIBE the MTU answers OPTIONS itself. At the DESCRIBE it has the platform spend `T`
//! (Dm, `relay_authorize` with `pipe`) and gets a fresh one-time token for the same user,
//! recorder and camera; it asks for a channel from the recorder (`relay_upstream` with
//! `pipe`: the recorder dials the tunnel port with a one-time ticket, as a camera does for
//! Pd), forwards the DESCRIBE with the fresh token and without `/pipe/RECORDER`
//! ([`peercam_rtsp::pipe::rewrite`]), and from then on copies bytes both ways, unchanged:
//! one channel per viewer, no fan-out (every viewer has its own position in time). The
//! recorder judges the fresh token as any client's (8.4) and serves only the camera it
//! names. D8: the pipe joins exactly the authorised viewer and the channel the platform
//! ordered that recorder to open for it (the ticket is random and used once).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use peercam_base::DeviceId;
use peercam_rtsp::msg::Method;
use peercam_rtsp::{Parsed, StatusCode};
use peercam_signal::cmd::{DeviceRequest, PlatformAnswer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::relay::Relay;

/// The most a viewer may send before its DESCRIBE is complete, bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Whether a new viewer connection asks for a pipe: its first request line names a
/// `/pipe/` path. Waits at most 5 s for that line.
pub(crate) async fn wants_pipe(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await else {
            return false;
        };
        let head = &buf[..n];
        if let Some(end) = head.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&head[..end]);
            return line
                .split(' ')
                .nth(1)
                .is_some_and(peercam_rtsp::pipe::is_pipe);
        }
        if n == 0 || n == buf.len() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Why a pipe ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PipeEnd {
    /// Reading or writing either side failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The viewer sent nothing usable in time.
    #[error("the viewer's first requests did not come in time")]
    Slow,
    /// The viewer's requests were refused (answered already).
    #[error("refused: {0}")]
    Refused(String),
    /// The platform ended the viewer's rights (D5).
    #[error("revoked by the platform")]
    Revoked,
}

async fn answer(
    tcp: &mut TcpStream,
    cseq: u32,
    status: StatusCode,
    extra: &str,
) -> std::io::Result<()> {
    let reason = status.canonical_reason();
    tcp.write_all(
        format!(
            "RTSP/1.0 {} {reason}\r\nCSeq: {cseq}\r\n{extra}\r\n",
            status.0
        )
        .as_bytes(),
    )
    .await
}

/// Serves one piped viewer on `tcp`.
pub(crate) async fn run(
    relay: Arc<Relay>,
    mut tcp: TcpStream,
    peer: SocketAddr,
) -> Result<(), PipeEnd> {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    // Until the DESCRIBE: OPTIONS answered here; nothing else is valid yet.
    let (describe, cseq) = loop {
        match peercam_rtsp::parse(&buf) {
            Ok(Some((Parsed::Request(r), used))) => {
                let cseq = r.headers.cseq().ok().flatten().unwrap_or(0);
                match r.method {
                    Method::Options => {
                        buf.drain(..used);
                        answer(
                            &mut tcp,
                            cseq,
                            StatusCode(200),
                            "Public: OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER\r\n",
                        )
                        .await?;
                        continue;
                    }
                    Method::Describe => {
                        let raw: Vec<u8> = buf.drain(..used).collect();
                        break ((r.uri, raw), cseq);
                    }
                    _ => {
                        answer(&mut tcp, cseq, StatusCode(455), "").await?;
                        return Err(PipeEnd::Refused("a request before DESCRIBE".into()));
                    }
                }
            }
            Ok(Some(_)) => {
                answer(&mut tcp, 0, StatusCode(400), "").await?;
                return Err(PipeEnd::Refused("not an RTSP request".into()));
            }
            Ok(None) if buf.len() < MAX_HEAD => {
                let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
                    .await
                    .map_err(|_| PipeEnd::Slow)??;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok(None) | Err(_) => {
                answer(&mut tcp, 0, StatusCode(400), "").await?;
                return Err(PipeEnd::Refused("malformed request".into()));
            }
        }
    };
    let ((uri, raw), rest) = (describe, buf);
    let refuse = |why: String| PipeEnd::Refused(why);
    let target = match peercam_rtsp::pipe::target(&uri) {
        Ok(t) => t,
        Err(e) => {
            let status = match e {
                peercam_rtsp::pipe::PipeError::Token => StatusCode(401),
                _ => StatusCode(404),
            };
            answer(&mut tcp, cseq, status, "").await?;
            return Err(refuse(e.to_string()));
        }
    };
    let Ok(recorder) = target.recorder.parse::<DeviceId>() else {
        answer(&mut tcp, cseq, StatusCode(404), "").await?;
        return Err(refuse("not a device id".into()));
    };
    // Dm: the platform spends the viewer's token and mints the recorder's.
    let answered = relay
        .ask(DeviceRequest::RelayAuthorize {
            camera: recorder.clone(),
            token: target.token,
            client: peer.to_string(),
            backchannel: false,
            pipe: true,
        })
        .await;
    let (grant, fresh) = match answered {
        PlatformAnswer::Granted {
            grant,
            pipe_token: Some(fresh),
            ..
        } => (grant, fresh),
        PlatformAnswer::Refused { code, message } => {
            relay.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, %recorder, %code, "pipe viewer refused");
            let (status, _) = peercam_net::rtsp::serve::refusal(&code);
            answer(&mut tcp, cseq, status, "").await?;
            return Err(refuse(format!("{code}: {message}")));
        }
        other => {
            tracing::info!(%peer, %recorder, answer = ?other, "pipe viewer: no usable grant");
            answer(&mut tcp, cseq, StatusCode(503), "").await?;
            return Err(refuse("no grant from the platform".into()));
        }
    };
    let forwarded = match peercam_rtsp::pipe::rewrite(&raw, &fresh) {
        Ok(f) => f,
        Err(e) => {
            answer(&mut tcp, cseq, StatusCode(500), "").await?;
            return Err(refuse(e.to_string()));
        }
    };
    // Nd: the recorder's own channel, for this viewer only.
    let mut channel = match relay.open_pipe(&recorder).await {
        Ok(c) => c,
        Err(e) => {
            relay.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, %recorder, error = %e, "pipe: the recorder's channel is unavailable");
            answer(&mut tcp, cseq, StatusCode(503), "").await?;
            return Err(refuse(e.to_string()));
        }
    };
    channel.write_all(&forwarded).await?;
    if !rest.is_empty() {
        channel.write_all(&rest).await?;
    }
    channel.flush().await?;
    tracing::info!(%peer, %recorder, "pipe open");
    relay.stats.viewers.fetch_add(1, Ordering::Relaxed);
    let mut revocations = relay.subscribe_revocations();
    let camera = grant.cam.clone();
    let user = grant.user;
    let shutdown = relay.shutdown();
    // Bytes 1:1 both ways; either side closing ends the pipe.
    let (mut viewer_rx, mut viewer_tx) = tcp.split();
    let (mut rec_rx, mut rec_tx) = tokio::io::split(channel);
    let up = pump(&mut viewer_rx, &mut rec_tx, None);
    let down = pump(&mut rec_rx, &mut viewer_tx, Some(&relay.stats.bytes_out));
    tokio::pin!(up, down);
    let r = loop {
        tokio::select! {
            r = &mut up => break r.map_err(PipeEnd::Io),
            r = &mut down => break r.map_err(PipeEnd::Io),
            rev = revocations.recv() => match rev {
                // D5: unshare, unbind, reset end a piped playback at once.
                Ok((c, u)) if Some(&c) == camera.as_ref() && u.is_none_or(|x| x == user) => {
                    break Err(PipeEnd::Revoked);
                }
                Ok(_) => {}
                // Missed revocations: end rather than risk serving a revoked viewer.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break Err(PipeEnd::Revoked),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break Ok(()),
            },
            () = shutdown.wait() => break Ok(()),
        }
    };
    relay.stats.viewers.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(%peer, %recorder, result = ?r, "pipe closed");
    r
}

/// Copies `from` to `to` until `from` ends, counting into `counter`.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    counter: Option<&std::sync::atomic::AtomicU64>,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        if let Some(c) = counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}
