//! One device connection: the IO shell around [`ScuPeer`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::DeviceId;
use peercam_net::Shutdown;
use peercam_net::lean_tls::LeanTlsStream;
use peercam_net::rustls::ServerConfig;
use peercam_net::tokio_tungstenite::WebSocketStream;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_net::tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use peercam_signal::cmd::DeviceReply;
use peercam_signal::link::{PeerConfig, PeerEvent, ScuPeer};
use peercam_signal::ps::{DeviceKind, RefusalCode};
use peercam_signal::refusal::Refusal;
use peercam_signal::sc::{Endpoints, Presence, Verdict, VerifyDevice};
use peercam_signal::sc_link::{ScNotice, ScRequest, ScResponse};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::mailbox;
use crate::{ConnCmd, NodeState, ToCmu, random_hex, unix_ms};

type VerdictRx = oneshot::Receiver<ScResponse>;

/// How long the TLS and WebSocket handshakes of a new connection may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The WebSocket read buffer of a device connection, bytes (see [`ws_config`]).
const WS_READ_BUFFER: usize = 512;

/// One device connection's state around its [`ScuPeer`].
struct Conn {
    state: Arc<NodeState>,
    peer: SocketAddr,
    session: String,
    sm: ScuPeer,
    /// Where the node's CMU link and other tasks reach this connection.
    tx: mailbox::Sender,
    verdict: Option<VerdictRx>,
    /// Commands sent to the device (Ps), by id.
    pending: HashMap<u64, oneshot::Sender<DeviceReply>>,
    held: Option<DeviceId>,
    kind: Option<DeviceKind>,
    /// When the last frame arrived, SCU clock (t2 of a time request, 7.2).
    rx_wall_us: u64,
}

impl Conn {
    /// Acts on one event of the state machine; returns whether the device just came online.
    async fn on_event(&mut self, ev: PeerEvent) -> bool {
        let mut online = false;
        match ev {
            PeerEvent::Verify(req) => {
                self.kind = Some(req.kind);
                let (reply, rx) = oneshot::channel();
                self.verdict = Some(rx);
                let msg = ToCmu::Ask {
                    request: ScRequest::Verify(VerifyDevice {
                        device_id: req.device_id,
                        kind: req.kind,
                        node: self.state.config.node.to_string(),
                        nonce: req.nonce,
                        issued_at_ms: req.issued_at_ms,
                        signature: req.signature,
                        session: self.session.clone(),
                        sw_version: req.sw_version,
                    }),
                    reply,
                };
                if self.state.to_cmu.try_send(msg).is_err() {
                    self.sm.verdict(
                        Instant::now().into_std(),
                        String::new(),
                        Err((RefusalCode::Unavailable, "SCU is overloaded".into())),
                    );
                    self.verdict = None;
                }
            }
            PeerEvent::Online { device_id } => {
                tracing::info!(device = %device_id, peer = %self.peer, "device registered");
                self.state.metrics.registrations.inc();
                self.state
                    .hold(device_id.clone(), self.session.clone(), self.tx.clone());
                let _ = self
                    .state
                    .to_cmu
                    .send(ToCmu::Notice(ScNotice::Presence(Presence {
                        device_id: device_id.clone(),
                        session: self.session.clone(),
                        online: true,
                    })))
                    .await;
                self.held = Some(device_id);
                online = true;
            }
            PeerEvent::Endpoints { rtsp, mapped } => {
                if let Some(device_id) = self.held.clone() {
                    // H.626.4 8.3 step 3: the CMU gets what the device reported and the
                    // address its connection came from, to check the mappings against.
                    let endpoints = Endpoints {
                        device_id,
                        session: self.session.clone(),
                        rtsp,
                        mapped,
                        observed: Some(self.peer.ip().to_string()),
                    };
                    self.state.reported(&endpoints);
                    let _ = self
                        .state
                        .to_cmu
                        .send(ToCmu::Notice(ScNotice::Endpoints(endpoints)))
                        .await;
                }
            }
            PeerEvent::MtuReport { addresses, load } => {
                // H.626.4 7.2: only a registered MTU joins the selection table.
                if let (Some(device_id), Some(DeviceKind::Mtu)) = (self.held.clone(), self.kind) {
                    self.state
                        .mtu_report(device_id, &self.session, addresses, load);
                }
            }
            PeerEvent::AuthorizePlay { id, check } => {
                // H.626.4 8.4 step 6: ask the CMU; the answer comes back through our queue.
                if let Some(device_id) = self.held.clone() {
                    let ask = ask(&self.state, ScRequest::Play { device_id, check });
                    let me = self.tx.clone();
                    tokio::spawn(async move {
                        let verdict = ask.await.into_play();
                        if let Some(verdict) = verdict {
                            let _ = me.send(ConnCmd::PlayVerdict { re: id, verdict }).await;
                        }
                    });
                }
            }
            PeerEvent::Request { id, request } => {
                // A device-initiated flow (e.g. 8.7.2.1 step 16): ask the CMU.
                if let Some(device_id) = self.held.clone() {
                    let ask = ask(&self.state, ScRequest::Device { device_id, request });
                    let me = self.tx.clone();
                    tokio::spawn(async move {
                        if let Some(answer) = ask.await.into_answer() {
                            let _ = me.send(ConnCmd::Answer { re: id, answer }).await;
                        }
                    });
                }
            }
            // H.626.4 7.2: the SCU is the devices' time reference.
            PeerEvent::TimeRequest { id, t1_us } => {
                self.sm.time_reply(id, t1_us, self.rx_wall_us, unix_us())
            }
            PeerEvent::Reply { re, reply } => {
                if let Some(waiter) = self.pending.remove(&re) {
                    let _ = waiter.send(reply);
                }
            }
            PeerEvent::Closed { reason } => {
                tracing::debug!(peer = %self.peer, device = ?self.sm.device_id(), %reason, "device connection closing");
            }
            _ => {}
        }
        online
    }
}

pub(crate) async fn run(
    state: Arc<NodeState>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Arc<ServerConfig>,
    shutdown: Shutdown,
) {
    // Admission control: at most N handshakes at once; the rest wait in the accept queue.
    let Ok(permit) = state.handshakes.acquire().await else {
        return;
    };
    // The handshake's state (TLS handshake, HTTP upgrade) is large and short-lived: it is
    // boxed, so that the connection's task, which lives as long as the device stays
    // connected, is only as large as its steady state (issue 19, a lean connection).
    let ws = match Box::pin(accept(tcp, tls)).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "device handshake failed");
            return;
        }
    };
    let (mut sink, mut stream) = ws.split();
    let cfg = &state.config;
    let peer_cfg = PeerConfig {
        node: cfg.node.to_string(),
        heartbeat: Duration::from_millis(cfg.heartbeat_ms),
        dead_after: Duration::from_millis(cfg.dead_after_ms),
        handshake_timeout: Duration::from_secs(15),
    };
    let mut nonce = [0u8; 32];
    if getrandom::fill(&mut nonce).is_err() {
        return;
    }
    let sm = ScuPeer::new(peer_cfg, Instant::now().into_std(), nonce, unix_ms());
    let (tx, mut rx) = mailbox::channel();
    let mut c = Conn {
        state: state.clone(),
        peer,
        session: random_hex(16),
        sm,
        tx,
        verdict: None,
        pending: HashMap::new(),
        held: None,
        kind: None,
        rx_wall_us: unix_us(),
    };
    let mut permit = Some(permit);
    loop {
        // Act on the state machine's events, then send everything it produced (for the
        // input and for the events) before waiting again.
        while let Some(ev) = c.sm.poll_event() {
            // Boxed: an event's work (a message to the CMU) is rare next to waiting, and its
            // state would otherwise be part of every idle connection.
            if Box::pin(c.on_event(ev)).await {
                permit = None; // handshake complete: free a slot
            }
        }
        let mut wrote = false;
        while let Some(frame) = c.sm.poll_transmit() {
            let text = String::from_utf8(frame).unwrap_or_default();
            if sink.feed(Message::text(text)).await.is_err() {
                break;
            }
            c.state.metrics.frames_out.inc();
            wrote = true;
        }
        if wrote && sink.flush().await.is_err() {
            break;
        }
        if c.sm.is_closed() {
            // Flush a final refusal or bye, then close.
            while let Some(frame) = c.sm.poll_transmit() {
                let _ = sink
                    .feed(Message::text(String::from_utf8(frame).unwrap_or_default()))
                    .await;
            }
            let _ = sink.flush().await;
            let _ = sink.close().await;
            break;
        }
        let deadline = c.sm.poll_timeout().map_or_else(
            || Instant::now() + Duration::from_secs(3600),
            Instant::from_std,
        );
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    c.state.metrics.frames_in.inc();
                    c.rx_wall_us = unix_us();
                    c.sm.handle_input(Instant::now().into_std(), t.as_bytes());
                }
                Some(Ok(Message::Binary(b))) => {
                    c.state.metrics.frames_in.inc();
                    c.rx_wall_us = unix_us();
                    c.sm.handle_input(Instant::now().into_std(), &b);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            v = async { c.verdict.as_mut().map_or(Err(()), |_| Ok(()))?; c.verdict.as_mut().ok_or(())?.await.map_err(|_| ()) }, if c.verdict.is_some() => {
                c.verdict = None;
                let v = match v.ok().and_then(ScResponse::into_verdict) {
                    Some(Verdict::Accepted) => Ok(()),
                    Some(Verdict::Refused { code, message }) => Err((code, message)),
                    None => Err((RefusalCode::Unavailable, "the platform did not answer; try again".into())),
                };
                c.sm.verdict(Instant::now().into_std(), c.session.clone(), v);
            }
            cmd = rx.recv() => match cmd {
                ConnCmd::Command { command, reply } => {
                    if let Some(id) = c.sm.send_command(command) {
                        c.pending.insert(id, reply);
                    }
                }
                ConnCmd::PlayVerdict { re, verdict } => c.sm.play_verdict(re, verdict),
                ConnCmd::Answer { re, answer } => c.sm.answer(re, answer),
                ConnCmd::Revoke { user } => c.sm.revoke(user),
                ConnCmd::Kick { reason } => c.sm.kick(&reason),
            },
            () = tokio::time::sleep_until(deadline) => c.sm.handle_timeout(Instant::now().into_std()),
            () = shutdown.wait() => { c.sm.kick("SCU shutting down"); }
        }
    }
    drop(permit);
    drop(rx);
    Box::pin(gone(state, c)).await;
}

/// A connection has ended: the node forgets the device's session and tells the CMU.
async fn gone(state: Arc<NodeState>, c: Conn) {
    let peer = c.peer;
    let Conn { held, session, .. } = c;
    if let Some(device_id) = &held {
        state.mtu_gone(device_id, &session);
    }
    if let Some(device_id) = held
        && state.release(&device_id, &session)
    {
        tracing::info!(device = %device_id, %peer, "device offline");
        let _ = state
            .to_cmu
            .send(ToCmu::Notice(ScNotice::Presence(Presence {
                device_id,
                session,
                online: false,
            })))
            .await;
    }
}

/// The TLS and WebSocket handshakes on an accepted connection (10 s at most).
///
/// TLS runs over rustls's unbuffered API ([`LeanTlsStream`]): a connected device costs no
/// record buffer between messages (issue 19).
async fn accept(
    tcp: TcpStream,
    tls: Arc<ServerConfig>,
) -> Result<WebSocketStream<LeanTlsStream>, peercam_net::NetError> {
    let _ = tcp.set_nodelay(true);
    let tls_err = |e| peercam_net::NetError::Io {
        context: "TLS accept".into(),
        source: e,
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut stream = LeanTlsStream::new(tcp, tls).map_err(tls_err)?;
        stream.handshake().await.map_err(tls_err)?;
        Ok(
            peercam_net::tokio_tungstenite::accept_async_with_config(stream, Some(ws_config()))
                .await?,
        )
    })
    .await
    .map_err(|_| peercam_net::NetError::Timeout("TLS/WebSocket handshake"))?
}

/// The devices' WebSocket settings: the platform's message limits, and a read buffer sized
/// for the link's messages (heartbeats and replies are a few hundred bytes; a larger frame
/// grows the buffer while it is read) rather than for bulk transfer.
fn ws_config() -> WebSocketConfig {
    peercam_net::ws::ws_config().read_buffer_size(WS_READ_BUFFER)
}

/// Hands `request` to the CMU link; resolves to its answer, which the link guarantees (the
/// CMU's, or a refusal on timeout or link loss), or `unavailable` if the link task is gone.
fn ask(state: &NodeState, request: ScRequest) -> impl Future<Output = ScResponse> + use<> {
    let fallback = ScResponse::refusal_for(
        &request,
        Refusal::Unavailable,
        "the platform did not answer; try again",
    );
    let (reply, rx) = oneshot::channel();
    let to_cmu = state.to_cmu.clone();
    async move {
        if to_cmu.send(ToCmu::Ask { request, reply }).await.is_err() {
            return fallback;
        }
        rx.await.unwrap_or(fallback)
    }
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    /// Issue 19, a lean connection: the task of a connected device is as large as its
    /// steady state (the handshakes' state is boxed and gone); it was 10.5 KiB with them.
    #[test]
    fn a_connection_task_stays_small() {
        fn future_size<F>(
            _: impl FnOnce(
                std::sync::Arc<crate::NodeState>,
                tokio::net::TcpStream,
                std::net::SocketAddr,
                std::sync::Arc<peercam_net::rustls::ServerConfig>,
                peercam_net::Shutdown,
            ) -> F,
        ) -> usize {
            size_of::<F>()
        }
        let size = future_size(super::run);
        assert!(size <= 2048, "the connection task's state is {size} bytes");
    }
}
