//! The node's link to the CMU (Sc / Sm): verification requests, presence, routed commands.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::Backoff;
use peercam_net::Shutdown;
use peercam_net::rustls::ClientConfig;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_net::ws::ClientWs;
use peercam_signal::cmd::PlatformAnswer;
use peercam_signal::play::PlayVerdict;
use peercam_signal::ps::RefusalCode;
use peercam_signal::sc::{CmuToScu, CommandOutcome, ScuToCmu, Verdict};
use peercam_signal::{Envelope, PROTOCOL_VERSION, decode, encode};
use tokio::sync::{mpsc, oneshot};

use crate::{ConnCmd, NodeState, ToCmu};

type VerdictTx = oneshot::Sender<Result<(), (RefusalCode, String)>>;

pub(crate) async fn run(
    state: Arc<NodeState>,
    tls: Arc<ClientConfig>,
    mut from_conns: mpsc::Receiver<ToCmu>,
    shutdown: Shutdown,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(3));
    loop {
        if shutdown.is_triggered() {
            return;
        }
        match connect(&state, tls.clone()).await {
            Ok(ws) => {
                backoff.reset();
                tracing::info!(url = %state.config.cmu_url, "connected to CMU");
                session(&state, ws, &mut from_conns, &shutdown).await;
                tracing::warn!("lost the CMU link; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach the CMU"),
        }
        // While the CMU is away, registrations fail closed: answer pending requests.
        while let Ok(msg) = from_conns.try_recv() {
            if let ToCmu::Verify { reply, .. } = msg {
                let _ = reply.send(Err((
                    RefusalCode::Unavailable,
                    "the platform is unreachable; try again".into(),
                )));
            }
        }
        let delay = backoff.next_delay(rand::random::<f64>());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => return,
        }
    }
}

async fn connect(state: &NodeState, tls: Arc<ClientConfig>) -> Result<ClientWs, String> {
    let mut ws = peercam_net::ws::connect(&state.config.cmu_url, tls, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    let hello = Envelope::new(
        1,
        ScuToCmu::NodeHello {
            node: state.config.node.to_string(),
            secret: state.config.node_secret.clone(),
            versions: vec![PROTOCOL_VERSION],
        },
    );
    ws.send(Message::text(
        String::from_utf8(encode(&hello)).unwrap_or_default(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .map_err(|_| "CMU did not welcome us".to_owned())?;
    let Some(Ok(Message::Text(t))) = answer else {
        return Err("CMU closed the link".into());
    };
    match decode::<CmuToScu>(t.as_bytes())
        .map_err(|e| e.to_string())?
        .body
    {
        CmuToScu::NodeWelcome => Ok(ws),
        CmuToScu::NodeRefused { message } => Err(format!("CMU refused this node: {message}")),
        other => Err(format!("unexpected first message from CMU: {other:?}")),
    }
}

async fn session(
    state: &Arc<NodeState>,
    ws: ClientWs,
    from_conns: &mut mpsc::Receiver<ToCmu>,
    shutdown: &Shutdown,
) {
    let (mut sink, mut stream) = ws.split();
    let mut next_id: u64 = 2;
    let mut pending: HashMap<u64, VerdictTx> = HashMap::new();
    let mut plays: HashMap<u64, oneshot::Sender<PlayVerdict>> = HashMap::new();
    let mut answers: HashMap<u64, oneshot::Sender<PlatformAnswer>> = HashMap::new();
    let (results_tx, mut results_rx) = mpsc::channel::<Envelope<ScuToCmu>>(256);

    // The CMU may have restarted: tell it who is here.
    let held: Vec<_> = state
        .registry
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(d, h)| (d.clone(), h.session.clone()))
        .collect();
    for (device_id, session) in held {
        let env = Envelope::new(
            next_id,
            ScuToCmu::Presence {
                device_id,
                session,
                online: true,
            },
        );
        next_id += 1;
        if sink
            .feed(Message::text(
                String::from_utf8(encode(&env)).unwrap_or_default(),
            ))
            .await
            .is_err()
        {
            return;
        }
    }
    if sink.flush().await.is_err() {
        return;
    }

    let mut ping = tokio::time::interval(Duration::from_secs(5));
    let mut last_rx = tokio::time::Instant::now();
    let out = loop {
        let env = tokio::select! {
            msg = from_conns.recv() => {
                let Some(msg) = msg else { break Ok(()) };
                let id = next_id;
                next_id += 1;
                match msg {
                    ToCmu::Verify { req, session, reply } => {
                        pending.insert(id, reply);
                        Envelope::new(id, ScuToCmu::VerifyDevice {
                            device_id: req.device_id,
                            kind: req.kind,
                            node: state.config.node.to_string(),
                            nonce: req.nonce,
                            issued_at_ms: req.issued_at_ms,
                            signature: req.signature,
                            session,
                            sw_version: req.sw_version,
                        })
                    }
                    ToCmu::Presence { device_id, session, online } => Envelope::new(id, ScuToCmu::Presence { device_id, session, online }),
                    ToCmu::Endpoints { device_id, session, rtsp, mapped, observed } => Envelope::new(id, ScuToCmu::Endpoints { device_id, session, rtsp, mapped, observed: Some(observed) }),
                    ToCmu::AuthorizePlay { device_id, token, client, reply } => {
                        plays.insert(id, reply);
                        Envelope::new(id, ScuToCmu::AuthorizePlay { device_id, token, client })
                    }
                    ToCmu::DeviceRequest { device_id, request, reply } => {
                        answers.insert(id, reply);
                        Envelope::new(id, ScuToCmu::DeviceRequest { device_id, request })
                    }
                }
            }
            res = results_rx.recv() => {
                let Some(mut env) = res else { break Ok(()) };
                env.id = next_id;
                next_id += 1;
                env
            }
            msg = stream.next() => {
                last_rx = tokio::time::Instant::now();
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        if let Err(e) = on_cmu_message(state, t.as_bytes(), &mut pending, &mut plays, &mut answers, &results_tx) {
                            break Err(e);
                        }
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Binary(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break Err("CMU closed the link".to_owned()),
                }
            }
            _ = ping.tick() => {
                if last_rx.elapsed() > Duration::from_secs(15) {
                    break Err("CMU silent for 15 s".to_owned());
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break Err("write to CMU failed".to_owned());
                }
                continue;
            }
            () = shutdown.wait() => break Ok(()),
        };
        if sink
            .send(Message::text(
                String::from_utf8(encode(&env)).unwrap_or_default(),
            ))
            .await
            .is_err()
        {
            break Err("write to CMU failed".to_owned());
        }
    };
    if let Err(e) = out {
        tracing::warn!(error = %e, "CMU link ended");
    }
    for (_, reply) in pending {
        let _ = reply.send(Err((
            RefusalCode::Unavailable,
            "the platform link dropped; try again".into(),
        )));
    }
}

fn on_cmu_message(
    state: &Arc<NodeState>,
    bytes: &[u8],
    pending: &mut HashMap<u64, VerdictTx>,
    plays: &mut HashMap<u64, oneshot::Sender<PlayVerdict>>,
    answers: &mut HashMap<u64, oneshot::Sender<PlatformAnswer>>,
    results: &mpsc::Sender<Envelope<ScuToCmu>>,
) -> Result<(), String> {
    let env: Envelope<CmuToScu> =
        decode(bytes).map_err(|e| format!("bad message from CMU: {e}"))?;
    match env.body {
        CmuToScu::DeviceVerdict { verdict } => {
            if let Some(reply) = env.re.and_then(|re| pending.remove(&re)) {
                let v = match verdict {
                    Verdict::Accepted => Ok(()),
                    Verdict::Refused { code, message } => Err((code, message)),
                };
                let _ = reply.send(v);
            }
        }
        CmuToScu::Command { device_id, command } => {
            let re = env.id;
            let results = results.clone();
            let target = state.lookup(&device_id);
            tokio::spawn(async move {
                let outcome = match target {
                    None => CommandOutcome::NotConnected,
                    Some((_, tx)) => {
                        let (reply, rx) = oneshot::channel();
                        if tx.send(ConnCmd::Command { command, reply }).await.is_err() {
                            CommandOutcome::NotConnected
                        } else {
                            match tokio::time::timeout(Duration::from_secs(10), rx).await {
                                Ok(Ok(reply)) => CommandOutcome::Replied { reply },
                                Ok(Err(_)) => CommandOutcome::NotConnected,
                                Err(_) => CommandOutcome::Timeout,
                            }
                        }
                    }
                };
                let _ = results
                    .send(Envelope::reply(
                        0,
                        re,
                        ScuToCmu::CommandResult { result: outcome },
                    ))
                    .await;
            });
        }
        CmuToScu::PlayVerdict { verdict } => {
            if let Some(reply) = env.re.and_then(|re| plays.remove(&re)) {
                let _ = reply.send(verdict);
            }
        }
        CmuToScu::Answer { answer } => {
            if let Some(reply) = env.re.and_then(|re| answers.remove(&re)) {
                let _ = reply.send(answer);
            }
        }
        CmuToScu::SelectMtu { device_id } => {
            let choice = state.select_mtu();
            tracing::debug!(device = %device_id, mtu = ?choice.as_ref().map(|c| c.mtu.as_str()), "MTU selected");
            let _ = results.try_send(Envelope::reply(0, env.id, ScuToCmu::MtuChoice { choice }));
        }
        CmuToScu::Revoke { device_id, user } => {
            if let Some((_, tx)) = state.lookup(&device_id) {
                let _ = tx.try_send(ConnCmd::Revoke { user });
            }
        }
        CmuToScu::Kick {
            device_id,
            session,
            reason,
        } => {
            if let Some((current, tx)) = state.lookup(&device_id)
                && current == session
            {
                let _ = tx.try_send(ConnCmd::Kick { reason });
            }
        }
        CmuToScu::NodeWelcome | CmuToScu::NodeRefused { .. } => {}
        _ => {}
    }
    Ok(())
}
