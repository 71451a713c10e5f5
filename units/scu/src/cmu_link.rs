//! The node's link to the CMU (Sc / Sm): the tokio driver of
//! [`peercam_signal::sc_link::ScuLink`]. Request ids, deadlines and answers live in the state
//! machine; this file moves frames, runs timers and routes commands to device connections.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::Backoff;
use peercam_net::Shutdown;
use peercam_net::rustls::ClientConfig;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_net::ws::ClientWs;
use peercam_signal::sc::{CommandOutcome, Kick, Presence, Revoke};
use peercam_signal::sc_link::{
    CmNotice, ScNotice, ScResponse, ScTimeouts, ScuLink, ScuLinkConfig, ScuLinkEvent,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::{ConnCmd, NodeState, ToCmu};

/// The link, with the driver's waiters: the sender each device connection awaits.
type Link = ScuLink<oneshot::Sender<ScResponse>>;

/// How long a device gets to answer a routed command (Ps), within the CMU's deadline.
const DEVICE_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Results of routed commands, from the tasks that wait for the devices.
type Results = (
    mpsc::Sender<(u64, CommandOutcome)>,
    mpsc::Receiver<(u64, CommandOutcome)>,
);

pub(crate) async fn run(
    state: Arc<NodeState>,
    tls: Arc<ClientConfig>,
    mut from_conns: mpsc::Receiver<ToCmu>,
    shutdown: Shutdown,
) {
    let mut link: Link = ScuLink::new(ScuLinkConfig {
        node: state.config.node.to_string(),
        secret: state.config.node_secret.clone(),
        timeouts: ScTimeouts::default(),
    });
    let mut results: Results = mpsc::channel(256);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(3));
    loop {
        if shutdown.is_triggered() {
            return;
        }
        match peercam_net::ws::connect(&state.config.cmu_url, tls.clone(), Duration::from_secs(5))
            .await
        {
            Ok(ws) => {
                let welcomed = session(
                    &state,
                    &mut link,
                    ws,
                    &mut from_conns,
                    &mut results,
                    &shutdown,
                )
                .await;
                state.metrics.cmu_connected.set(0);
                if welcomed {
                    backoff.reset();
                }
                tracing::warn!("lost the CMU link; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach the CMU"),
        }
        // While the CMU is away the link answers every request at once with `unavailable`
        // (registrations fail closed, H.626.4 8.1).
        let wake = tokio::time::sleep(backoff.next_delay(rand::random::<f64>()));
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => break,
                msg = from_conns.recv() => match msg {
                    Some(msg) => {
                        to_link(&mut link, msg);
                        drain_events(&state, &mut link, &results.0);
                    }
                    None => return,
                },
                () = shutdown.wait() => return,
            }
        }
    }
}

/// One connection to the CMU; returns whether the CMU welcomed this node.
async fn session(
    state: &Arc<NodeState>,
    link: &mut Link,
    ws: ClientWs,
    from_conns: &mut mpsc::Receiver<ToCmu>,
    (results_tx, results_rx): &mut Results,
    shutdown: &Shutdown,
) -> bool {
    let (mut sink, mut stream) = ws.split();
    link.connect(Instant::now().into_std());
    let mut welcomed = false;
    let mut ping = tokio::time::interval(Duration::from_secs(5));
    let mut last_rx = Instant::now();
    loop {
        if drain_events(state, link, results_tx) {
            welcomed = true;
            state.metrics.cmu_connected.set(1);
            tracing::info!(url = %state.config.cmu_url, "connected to CMU");
        }
        let mut wrote = false;
        while let Some(frame) = link.poll_transmit() {
            let text = String::from_utf8(frame).unwrap_or_default();
            if sink.feed(Message::text(text)).await.is_err() {
                link.link_lost("write to CMU failed");
                break;
            }
            wrote = true;
        }
        if wrote && sink.flush().await.is_err() {
            link.link_lost("write to CMU failed");
        }
        if link.is_down() {
            // Down: answer what the loss failed, then reconnect.
            drain_events(state, link, results_tx);
            let _ = sink.close().await;
            return welcomed;
        }
        let deadline = link.poll_timeout().map_or_else(
            || Instant::now() + Duration::from_secs(3600),
            Instant::from_std,
        );
        tokio::select! {
            msg = from_conns.recv() => match msg {
                Some(msg) => to_link(link, msg),
                None => link.link_lost("SCU shutting down"),
            },
            res = results_rx.recv() => {
                if let Some((re, outcome)) = res {
                    link.command_result(re, outcome);
                }
            }
            msg = stream.next() => {
                last_rx = Instant::now();
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        if let Err(e) = link.handle_input(t.as_bytes()) {
                            tracing::warn!(error = %e, "bad message from CMU; closing");
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Binary(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => link.link_lost("CMU closed the link"),
                }
            }
            _ = ping.tick() => {
                if last_rx.elapsed() > Duration::from_secs(15) {
                    link.link_lost("CMU silent for 15 s");
                } else if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    link.link_lost("write to CMU failed");
                }
            }
            () = tokio::time::sleep_until(deadline) => link.handle_timeout(Instant::now().into_std()),
            () = shutdown.wait() => link.link_lost("SCU shutting down"),
        }
    }
}

/// A device connection's message, handed to the link.
fn to_link(link: &mut Link, msg: ToCmu) {
    match msg {
        ToCmu::Ask { request, reply } => link.request(Instant::now().into_std(), request, reply),
        ToCmu::Notice(notice) => link.notify(notice),
    }
}

/// Acts on the link's events; returns whether the CMU welcomed this node among them.
fn drain_events(
    state: &Arc<NodeState>,
    link: &mut Link,
    results: &mpsc::Sender<(u64, CommandOutcome)>,
) -> bool {
    let mut up = false;
    while let Some(ev) = link.poll_event() {
        match ev {
            ScuLinkEvent::Up => {
                up = true;
                // The CMU may have restarted, or this may be another instance: tell it who is
                // here and where each device reported it can be reached (8.3).
                let held: Vec<_> = state
                    .registry
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .map(|(d, h)| (d.clone(), h.session.clone(), h.endpoints.clone()))
                    .collect();
                for (device_id, session, endpoints) in held {
                    let online = Presence {
                        device_id,
                        session,
                        online: true,
                    };
                    link.notify(ScNotice::Presence(online));
                    if let Some(endpoints) = endpoints {
                        link.notify(ScNotice::Endpoints(*endpoints));
                    }
                }
            }
            ScuLinkEvent::Answered { waiter, response } => {
                let _ = waiter.send(response);
            }
            ScuLinkEvent::Command {
                id,
                device_id,
                command,
            } => {
                let target = state.lookup(&device_id);
                let results = results.clone();
                tokio::spawn(async move {
                    let outcome = match target {
                        None => CommandOutcome::NotConnected,
                        Some((_, tx)) => {
                            let (reply, rx) = oneshot::channel();
                            if tx.send(ConnCmd::Command { command, reply }).await.is_err() {
                                CommandOutcome::NotConnected
                            } else {
                                match tokio::time::timeout(DEVICE_COMMAND_TIMEOUT, rx).await {
                                    Ok(Ok(reply)) => CommandOutcome::Replied { reply },
                                    Ok(Err(_)) => CommandOutcome::NotConnected,
                                    Err(_) => CommandOutcome::Timeout,
                                }
                            }
                        }
                    };
                    let _ = results.send((id, outcome)).await;
                });
            }
            ScuLinkEvent::SelectMtu { id, device_id } => {
                let choice = state.select_mtu();
                tracing::debug!(device = %device_id, mtu = ?choice.as_ref().map(|c| c.mtu.as_str()), "MTU selected");
                link.mtu_choice(id, choice);
            }
            ScuLinkEvent::Notice(CmNotice::Revoke(Revoke { device_id, user })) => {
                if let Some((_, tx)) = state.lookup(&device_id) {
                    let _ = tx.try_send(ConnCmd::Revoke { user });
                }
            }
            ScuLinkEvent::Notice(CmNotice::Kick(Kick {
                device_id,
                session,
                reason,
            })) => {
                if let Some((current, tx)) = state.lookup(&device_id)
                    && current == session
                {
                    let _ = tx.try_send(ConnCmd::Kick { reason });
                }
            }
            ScuLinkEvent::Down { reason } => tracing::warn!(%reason, "CMU link down"),
            _ => {}
        }
    }
    up
}
