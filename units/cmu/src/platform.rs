//! The CMU end of Sc / Sm: SCU nodes connect here, ask for registration verdicts (H.626.4
//! 8.1 steps 2-3), report presence, and carry commands to the devices they hold.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::DeviceId;
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::ps::RefusalCode;
use peercam_signal::relay::{DeviceAddresses, MtuOffer};
use peercam_signal::sc::{CmuToScu, CommandOutcome, MtuChoice, ScuToCmu, Verdict};
use peercam_signal::{Envelope, PROTOCOL_VERSION, decode, encode};
use subtle::ConstantTimeEq as _;
use tokio::sync::{mpsc, oneshot};

use crate::audit::{self, Event};
use crate::error::ApiErr;
use crate::store;
use crate::{Shared, now_ms, now_s};

/// Presence and node links, in memory (the authoritative "online" view of this CMU).
#[derive(Default)]
pub struct Platform {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// device -> (node, session)
    presence: HashMap<DeviceId, (String, String)>,
    /// device -> addresses it reported for its current session, as checked (8.3 step 4)
    endpoints: HashMap<DeviceId, DeviceAddresses>,
    /// node -> link
    nodes: HashMap<String, NodeLink>,
    /// (MTU, camera) -> Unix s until which the MTU may ask for the camera's upstream
    relays: HashMap<(DeviceId, DeviceId), u64>,
}

struct NodeLink {
    /// Distinguishes a reconnected node from its previous link.
    epoch: u64,
    tx: mpsc::Sender<Envelope<CmuToScu>>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<CommandOutcome>>>>,
    choices: Arc<Mutex<HashMap<u64, oneshot::Sender<MtuChoice>>>>,
}

impl Platform {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the device is registered with some SCU node now.
    pub fn is_online(&self, id: &DeviceId) -> bool {
        self.lock().presence.contains_key(id)
    }

    /// The node holding the device.
    pub fn node_of(&self, id: &DeviceId) -> Option<String> {
        self.lock().presence.get(id).map(|(n, _)| n.clone())
    }

    /// Number of devices online.
    pub fn online_count(&self) -> usize {
        self.lock().presence.len()
    }

    /// The RTSP endpoints the device reported (H.626.4 8.3), best first.
    pub fn endpoints(&self, id: &DeviceId) -> Vec<String> {
        let inner = self.lock();
        if inner.presence.contains_key(id) {
            inner
                .endpoints
                .get(id)
                .map(|a| a.local.clone())
                .unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    /// Everything the device reported of its addresses (H.626.4 8.3), as checked.
    pub fn addresses(&self, id: &DeviceId) -> Option<DeviceAddresses> {
        let inner = self.lock();
        if inner.presence.contains_key(id) {
            inner.endpoints.get(id).cloned()
        } else {
            None
        }
    }

    /// H.626.4 7.2 / Sd: asks the SCU holding `id` to choose an MTU for a relayed session.
    /// `None` when the device is offline, its node has no MTU with room, or the node does
    /// not answer within 3 s.
    pub(crate) async fn select_mtu(&self, id: &DeviceId) -> Option<MtuOffer> {
        let (tx, choices) = {
            let inner = self.lock();
            let (node, _) = inner.presence.get(id)?;
            let link = inner.nodes.get(node)?;
            (link.tx.clone(), link.choices.clone())
        };
        let req_id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply_tx, reply_rx) = oneshot::channel();
        choices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(req_id, reply_tx);
        let sent = tx
            .send(Envelope::new(
                req_id,
                CmuToScu::SelectMtu {
                    device_id: id.clone(),
                },
            ))
            .await;
        let choice = match sent {
            Ok(()) => tokio::time::timeout(Duration::from_secs(3), reply_rx)
                .await
                .ok()
                .and_then(Result::ok)
                .flatten(),
            Err(_) => None,
        };
        choices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&req_id);
        choice
    }

    /// A viewer was sent to `mtu` for `camera`: the MTU may ask for its upstream until `until`.
    pub(crate) fn allow_relay(&self, mtu: &DeviceId, camera: &DeviceId, until: u64) {
        let mut inner = self.lock();
        let now = until.saturating_sub(crate::relay::RELAY_WINDOW_S);
        inner.relays.retain(|_, t| *t > now);
        inner.relays.insert((mtu.clone(), camera.clone()), until);
    }

    /// Whether `mtu` may ask for `camera`'s upstream now.
    pub(crate) fn relay_allowed(&self, mtu: &DeviceId, camera: &DeviceId, now: u64) -> bool {
        self.lock()
            .relays
            .get(&(mtu.clone(), camera.clone()))
            .is_some_and(|t| *t >= now)
    }

    /// Ends live sessions on a device: of one user, or of everyone (SECURITY.md D5).
    pub(crate) fn revoke(&self, id: &DeviceId, user: Option<i64>) {
        let inner = self.lock();
        // Viewers relayed by MTUs end too (D5): every MTU that may hold a feed of the camera.
        for (mtu, _) in inner.relays.keys().filter(|(_, cam)| cam == id) {
            let Some(link) = inner
                .presence
                .get(mtu)
                .and_then(|(n, _)| inner.nodes.get(n))
            else {
                continue;
            };
            let rid = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            let _ = link.tx.try_send(Envelope::new(
                rid,
                CmuToScu::Command {
                    device_id: mtu.clone(),
                    command: DeviceCommand::RelayRevoke {
                        camera: id.clone(),
                        user,
                    },
                },
            ));
        }
        let Some((node, _)) = inner.presence.get(id) else {
            return;
        };
        if let Some(link) = inner.nodes.get(node) {
            let rid = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            let _ = link.tx.try_send(Envelope::new(
                rid,
                CmuToScu::Revoke {
                    device_id: id.clone(),
                    user,
                },
            ));
        }
    }

    /// Sends a command to a device through its SCU and waits for the answer.
    pub(crate) async fn command(
        &self,
        id: &DeviceId,
        command: DeviceCommand,
    ) -> Result<(String, DeviceReply), ApiErr> {
        let offline = || {
            ApiErr::conflict(
                "device_offline",
                "the device is offline; check its power and network",
            )
        };
        let (node, tx, pending) = {
            let inner = self.lock();
            let (node, _) = inner.presence.get(id).ok_or_else(offline)?;
            let link = inner.nodes.get(node).ok_or_else(offline)?;
            (node.clone(), link.tx.clone(), link.pending.clone())
        };
        let req_id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply_tx, reply_rx) = oneshot::channel();
        pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(req_id, reply_tx);
        let env = Envelope::new(
            req_id,
            CmuToScu::Command {
                device_id: id.clone(),
                command,
            },
        );
        if tx.send(env).await.is_err() {
            pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&req_id);
            return Err(offline());
        }
        let outcome = tokio::time::timeout(Duration::from_secs(12), reply_rx).await;
        pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&req_id);
        match outcome {
            Ok(Ok(CommandOutcome::Replied { reply })) => Ok((node, reply)),
            Ok(Ok(CommandOutcome::NotConnected) | Err(_)) => Err(offline()),
            Ok(Ok(CommandOutcome::Timeout)) | Err(_) => Err(ApiErr::new(
                StatusCode::GATEWAY_TIMEOUT,
                "device_timeout",
                "the device did not answer in time",
            )),
        }
    }

    /// Records a device online on `node`; returns the session it replaces on another node.
    fn online(&self, id: DeviceId, node: &str, session: String) -> Option<(String, String)> {
        let mut inner = self.lock();
        let old = inner
            .presence
            .insert(id, (node.to_owned(), session.clone()));
        old.filter(|(n, s)| n != node || *s != session)
    }

    fn offline(&self, id: &DeviceId, node: &str, session: &str) -> bool {
        let mut inner = self.lock();
        if inner
            .presence
            .get(id)
            .is_some_and(|(n, s)| n == node && s == session)
        {
            inner.presence.remove(id);
            inner.endpoints.remove(id);
            true
        } else {
            false
        }
    }

    fn kick(&self, node: &str, device_id: DeviceId, session: String, reason: &str) {
        let inner = self.lock();
        if let Some(link) = inner.nodes.get(node) {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            let _ = link.tx.try_send(Envelope::new(
                id,
                CmuToScu::Kick {
                    device_id,
                    session,
                    reason: reason.to_owned(),
                },
            ));
        }
    }
}

/// `GET /platform/v1/scu`: upgrade to WebSocket; the node authenticates in its first message.
pub(crate) async fn ws_handler(State(st): State<Shared>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(peercam_signal::MAX_MESSAGE_BYTES)
        .max_frame_size(peercam_signal::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| node_session(st, socket))
}

fn text(env: &Envelope<CmuToScu>) -> Message {
    Message::Text(String::from_utf8(encode(env)).unwrap_or_default().into())
}

async fn node_session(st: Shared, mut socket: WebSocket) {
    // 1. Authenticate the node.
    let first = tokio::time::timeout(Duration::from_secs(5), socket.recv()).await;
    let Ok(Some(Ok(Message::Text(t)))) = first else {
        return;
    };
    let node = match decode::<ScuToCmu>(t.as_bytes()).map(|e| e.body) {
        Ok(ScuToCmu::NodeHello {
            node,
            secret,
            versions,
        }) => {
            let secret_ok = st
                .config
                .scu_secrets
                .iter()
                .any(|s| bool::from(s.as_bytes().ct_eq(secret.as_bytes())));
            let node_ok = node.parse::<peercam_base::NodeId>().is_ok();
            if !secret_ok || !node_ok || !versions.contains(&PROTOCOL_VERSION) {
                let msg = if secret_ok {
                    "bad node id or no common protocol version"
                } else {
                    "bad node secret"
                };
                tracing::warn!(%node, "refused SCU node: {msg}");
                let detail = format!("{node}: {msg}");
                audit::log(&st.store, Event::NodeRefused { detail: &detail }).await;
                let _ = socket
                    .send(text(&Envelope::new(
                        1,
                        CmuToScu::NodeRefused {
                            message: msg.into(),
                        },
                    )))
                    .await;
                return;
            }
            node
        }
        _ => return,
    };
    if socket
        .send(text(&Envelope::new(1, CmuToScu::NodeWelcome)))
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(%node, "SCU node connected");

    // 2. Register the link (a reconnecting node replaces its previous link).
    let (tx, mut rx) = mpsc::channel::<Envelope<CmuToScu>>(1024);
    let pending = Arc::new(Mutex::new(HashMap::new()));
    let choices = Arc::new(Mutex::new(HashMap::new()));
    let epoch = st.platform.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    {
        let mut inner = st.platform.lock();
        inner.nodes.insert(
            node.clone(),
            NodeLink {
                epoch,
                tx: tx.clone(),
                pending: pending.clone(),
                choices: choices.clone(),
            },
        );
        // Devices the previous link of this node held are re-announced by the node itself.
        inner.presence.retain(|_, (n, _)| *n != node);
    }

    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(env) = rx.recv().await {
            if sink.send(text(&env)).await.is_err() {
                break;
            }
        }
    });
    while let Some(msg) = stream.next().await {
        let bytes = match msg {
            Ok(Message::Text(t)) => t.as_bytes().to_vec(),
            Ok(Message::Binary(b)) => b.to_vec(),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => break,
        };
        let env = match decode::<ScuToCmu>(&bytes) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(%node, error = %e, "bad message from SCU node; closing");
                break;
            }
        };
        match env.body {
            ScuToCmu::VerifyDevice {
                device_id,
                kind,
                node: claimed,
                nonce,
                issued_at_ms,
                signature,
                session,
                sw_version,
            } => {
                let st = st.clone();
                let tx = tx.clone();
                let node = node.clone();
                let id = env.id;
                tokio::spawn(async move {
                    let verdict = if claimed == node {
                        verify_device(
                            &st,
                            &node,
                            &device_id,
                            kind,
                            &nonce,
                            issued_at_ms,
                            &signature,
                            &sw_version,
                        )
                        .await
                    } else {
                        Verdict::Refused {
                            code: RefusalCode::BadSignature,
                            message: "challenge issued by another node".into(),
                        }
                    };
                    let _ = session;
                    let _ = tx
                        .send(Envelope::reply(0, id, CmuToScu::DeviceVerdict { verdict }))
                        .await;
                });
            }
            ScuToCmu::Presence {
                device_id,
                session,
                online,
            } => {
                if online {
                    // Sc: PU status. One device, one session: kick an older one elsewhere.
                    if let Some((old_node, old_session)) =
                        st.platform.online(device_id.clone(), &node, session)
                    {
                        tracing::info!(device = %device_id, %old_node, "replacing an older device session");
                        st.platform.kick(
                            &old_node,
                            device_id.clone(),
                            old_session,
                            "replaced by a newer session",
                        );
                    }
                    let _ = store::devices::touch(&st.store, &device_id, now_s()).await;
                } else if st.platform.offline(&device_id, &node, &session) {
                    let _ = store::devices::touch(&st.store, &device_id, now_s()).await;
                }
            }
            ScuToCmu::Endpoints {
                device_id,
                session,
                rtsp,
                mapped,
                observed,
            } => {
                let checked = check_addresses(&device_id, rtsp, mapped, observed);
                let mut inner = st.platform.lock();
                if inner
                    .presence
                    .get(&device_id)
                    .is_some_and(|(n, s)| *n == node && *s == session)
                {
                    inner.endpoints.insert(device_id, checked);
                }
            }
            ScuToCmu::MtuChoice { choice } => {
                if let Some(w) = env.re.and_then(|re| {
                    choices
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&re)
                }) {
                    let _ = w.send(choice);
                }
            }
            ScuToCmu::AuthorizePlay {
                device_id,
                token,
                client,
            } => {
                let st = st.clone();
                let tx = tx.clone();
                let id = env.id;
                // The device must be held by this node: a node cannot ask for another's devices.
                let holds = st.platform.node_of(&device_id).as_deref() == Some(node.as_str());
                tokio::spawn(async move {
                    let verdict = if holds {
                        crate::token::authorize(&st, &device_id, &token, &client).await
                    } else {
                        peercam_signal::play::PlayVerdict::Refused {
                            code: "not_allowed".into(),
                            message: "this node does not hold the device".into(),
                        }
                    };
                    let _ = tx
                        .send(Envelope::reply(0, id, CmuToScu::PlayVerdict { verdict }))
                        .await;
                });
            }
            ScuToCmu::DeviceRequest { device_id, request } => {
                let st = st.clone();
                let tx = tx.clone();
                let id = env.id;
                let holds = st.platform.node_of(&device_id).as_deref() == Some(node.as_str());
                tokio::spawn(async move {
                    let answer = match request {
                        _ if !holds => peercam_signal::cmd::PlatformAnswer::Refused {
                            code: "not_allowed".into(),
                            message: "this node does not hold the device".into(),
                        },
                        peercam_signal::cmd::DeviceRequest::RecorderStream { camera } => {
                            crate::recording::recorder_stream(&st, &device_id, &camera).await
                        }
                        peercam_signal::cmd::DeviceRequest::RelayUpstream {
                            camera,
                            ticket,
                            tunnel,
                            server_name,
                            caps,
                        } => {
                            crate::relay::upstream(
                                &st,
                                &device_id,
                                &camera,
                                ticket,
                                (tunnel, server_name),
                                caps.unwrap_or_default(),
                            )
                            .await
                        }
                        peercam_signal::cmd::DeviceRequest::RelayAuthorize {
                            camera,
                            token,
                            client,
                        } => {
                            crate::relay::authorize(&st, &device_id, &camera, &token, &client).await
                        }
                        _ => peercam_signal::cmd::PlatformAnswer::Refused {
                            code: "unsupported".into(),
                            message: "this CMU does not serve that request".into(),
                        },
                    };
                    let _ = tx
                        .send(Envelope::reply(0, id, CmuToScu::Answer { answer }))
                        .await;
                });
            }
            ScuToCmu::CommandResult { result } => {
                if let Some(w) = env.re.and_then(|re| {
                    pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&re)
                }) {
                    let _ = w.send(result);
                }
            }
            ScuToCmu::NodeHello { .. } => break,
            _ => {}
        }
    }
    writer.abort();
    // 3. The node is gone: everything it held is offline (unless it already reconnected).
    let mut inner = st.platform.lock();
    if inner.nodes.get(&node).is_some_and(|l| l.epoch == epoch) {
        inner.nodes.remove(&node);
        let before = inner.presence.len();
        inner.presence.retain(|_, (n, _)| *n != node);
        tracing::warn!(%node, devices = before - inner.presence.len(), "SCU node disconnected; its devices are offline");
    }
}

/// H.626.4 8.1 steps 2-3: is this the device it claims to be? (docs/security.md D1)
#[allow(clippy::too_many_arguments)]
async fn verify_device(
    st: &Shared,
    node: &str,
    device_id: &DeviceId,
    kind: peercam_signal::ps::DeviceKind,
    nonce: &str,
    issued_at_ms: u64,
    signature: &str,
    sw_version: &str,
) -> Verdict {
    let refuse = |code, message: &str| Verdict::Refused {
        code,
        message: message.to_owned(),
    };
    let row = match store::devices::get(&st.store, device_id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "database error during registration");
            return refuse(
                RefusalCode::Unavailable,
                "the platform cannot decide now; try again",
            );
        }
    };
    let outcome = match row {
        None => refuse(
            RefusalCode::UnknownDevice,
            "no device with this id was provisioned",
        ),
        Some(row) => {
            let key = row.public_key;
            let skew = now_ms().abs_diff(issued_at_ms);
            if row.disabled {
                refuse(
                    RefusalCode::Disabled,
                    "this device is disabled by the operator",
                )
            } else if row.kind != kind {
                refuse(
                    RefusalCode::BadSignature,
                    "device kind does not match its provisioning",
                )
            } else if skew > 5 * 60 * 1000 || peercam_signal::register::check_nonce(nonce).is_err()
            {
                refuse(
                    RefusalCode::StaleChallenge,
                    "the challenge is too old or malformed",
                )
            } else {
                match peercam_signal::register::parse_public_key(&key).and_then(|pk| {
                    peercam_signal::register::verify(
                        &pk,
                        node,
                        device_id,
                        nonce,
                        issued_at_ms,
                        signature,
                    )
                }) {
                    Err(_) => refuse(
                        RefusalCode::BadSignature,
                        "the signature does not match this device's key",
                    ),
                    Ok(()) => {
                        // A nonce is good for one registration only.
                        let fresh =
                            store::devices::spend_nonce(&st.store, nonce, now_s() + 600, now_s())
                                .await;
                        match fresh {
                            Ok(true) => Verdict::Accepted,
                            Ok(false) => refuse(
                                RefusalCode::StaleChallenge,
                                "this challenge was already used",
                            ),
                            Err(_) => refuse(
                                RefusalCode::Unavailable,
                                "the platform cannot decide now; try again",
                            ),
                        }
                    }
                }
            }
        }
    };
    match &outcome {
        Verdict::Accepted => {
            let _ = store::devices::registered(&st.store, device_id, now_s(), sw_version).await;
            audit::log(
                &st.store,
                Event::Registered {
                    device: device_id,
                    node,
                },
            )
            .await;
        }
        Verdict::Refused { code, message } => {
            tracing::warn!(device = %device_id, ?code, %message, "registration refused");
            let code = serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let (device, code) = (device_id, code.as_str());
            audit::log(
                &st.store,
                Event::RegistrationRefused {
                    device,
                    code,
                    message,
                },
            )
            .await;
        }
    }
    outcome
}

/// H.626.4 8.3 step 4: the CMU checks what a device reported before anyone is sent there.
/// A local address must be a LAN address or the very address the device's connection came
/// from (a camera with a public address of its own); a gateway mapping must be on the
/// observed public address. Anything else would let a device point viewers at third
/// parties, so it is dropped (and logged).
fn check_addresses(
    device: &DeviceId,
    rtsp: Vec<String>,
    mapped: Vec<String>,
    observed: Option<String>,
) -> DeviceAddresses {
    let observed_ip: Option<std::net::IpAddr> = observed.as_deref().and_then(|o| o.parse().ok());
    let ip_of = |a: &str| a.parse::<std::net::SocketAddr>().ok().map(|s| s.ip());
    let (mut local, mut good_mapped) = (Vec::new(), Vec::new());
    for a in rtsp {
        match ip_of(&a) {
            Some(ip) if peercam_signal::relay::is_lan_ip(ip) || Some(ip) == observed_ip => {
                local.push(a);
            }
            // A host name (configured by an operator) is taken as given.
            None if !a.is_empty() => local.push(a),
            _ => {
                tracing::warn!(%device, address = %a, "dropping a reported local address that is neither LAN nor the device's own")
            }
        }
    }
    for a in mapped {
        match ip_of(&a) {
            Some(ip) if Some(ip) == observed_ip => good_mapped.push(a),
            _ => {
                tracing::warn!(%device, address = %a, observed = ?observed_ip, "dropping a port mapping that is not on the device's public address")
            }
        }
    }
    DeviceAddresses {
        local,
        mapped: good_mapped,
        observed_ip: observed_ip.map(|ip| ip.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_8_3_cmu_keeps_only_legitimate_addresses() {
        let dev = DeviceId::from_random([7; 10]);
        let a = check_addresses(
            &dev,
            vec![
                "10.0.1.2:8554".into(),
                "198.51.100.2:8554".into(),
                "203.0.113.9:22".into(),
                "camera.local:8554".into(),
            ],
            vec!["198.51.100.2:40000".into(), "203.0.113.9:554".into()],
            Some("198.51.100.2".into()),
        );
        // LAN addresses and the device's own public address stay; a third party's goes.
        assert_eq!(
            a.local,
            vec!["10.0.1.2:8554", "198.51.100.2:8554", "camera.local:8554"]
        );
        // A mapping must be on the public address the SCU saw.
        assert_eq!(a.mapped, vec!["198.51.100.2:40000"]);
        assert_eq!(a.observed_ip.as_deref(), Some("198.51.100.2"));
        // Without an observed address no mapping is believable.
        let b = check_addresses(&dev, vec![], vec!["198.51.100.2:1".into()], None);
        assert!(b.mapped.is_empty());
    }
}
