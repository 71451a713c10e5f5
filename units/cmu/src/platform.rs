//! The CMU end of Sc / Sm: SCU nodes connect here, ask for registration verdicts (H.626.4
//! 8.1 steps 2-3), report presence, and carry commands to the devices they hold.
//!
//! Each node connection is a thin tokio driver of [`CmuPeer`] (request ids, deadlines,
//! answers); which node holds which device is the [`RouteTable`]. Judging a node's requests
//! (registrations, plays, device requests) is the rest of the CMU's.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::DeviceId;
use peercam_signal::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use peercam_signal::ps::RefusalCode;
use peercam_signal::refusal::Refusal;
use peercam_signal::relay::{DeviceAddresses, MtuOffer};
use peercam_signal::sc::{CommandOutcome, Kick, Presence, Revoke, Verdict, VerifyDevice};
use peercam_signal::sc_link::{
    CmNotice, CmRequest, CmResponse, CmuPeer, CmuPeerConfig, CmuPeerEvent, RouteTable, ScNotice,
    ScRequest, ScResponse, ScTimeouts,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::audit::{self, Event};
use crate::error::ApiErr;
use crate::store;
use crate::{Shared, now_ms, now_s};

/// Presence and node links, in memory (the authoritative "online" view of this CMU).
#[derive(Default)]
pub struct Platform {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// device -> (node, session); node -> epoch of its link
    routes: RouteTable,
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
    tx: mpsc::Sender<NodeCmd>,
}

/// What the rest of the CMU asks of a node's connection task.
enum NodeCmd {
    /// A request; its answer goes to `reply` (none: nobody waits).
    Ask {
        request: CmRequest,
        reply: Option<oneshot::Sender<CmResponse>>,
    },
    /// A revocation or a kick for the node.
    Notice(CmNotice),
}

impl Platform {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether node `node` has a live link now.
    pub(crate) fn node_is_up(&self, node: &str) -> bool {
        self.lock().nodes.contains_key(node)
    }

    /// SCU nodes with a live link now.
    pub fn node_count(&self) -> usize {
        self.lock().nodes.len()
    }

    /// Whether the device is registered with some SCU node now.
    pub fn is_online(&self, id: &DeviceId) -> bool {
        self.lock().routes.route(id).is_some()
    }

    /// The node holding the device.
    pub fn node_of(&self, id: &DeviceId) -> Option<String> {
        self.lock().routes.route(id).map(|r| r.node.clone())
    }

    /// Number of devices online.
    pub fn online_count(&self) -> usize {
        self.lock().routes.len()
    }

    /// The RTSP endpoints the device reported (H.626.4 8.3), best first.
    pub fn endpoints(&self, id: &DeviceId) -> Vec<String> {
        self.addresses(id).map(|a| a.local).unwrap_or_default()
    }

    /// Everything the device reported of its addresses (H.626.4 8.3), as checked.
    pub fn addresses(&self, id: &DeviceId) -> Option<DeviceAddresses> {
        let inner = self.lock();
        inner.routes.route(id)?;
        inner.endpoints.get(id).cloned()
    }

    /// Sends `request` to the node holding `id`; `None` when the device is offline or its
    /// node's link is gone.
    async fn ask(&self, id: &DeviceId, request: CmRequest) -> Option<(String, CmResponse)> {
        let (node, tx) = {
            let inner = self.lock();
            let node = inner.routes.route(id)?.node.clone();
            let tx = inner.nodes.get(&node)?.tx.clone();
            (node, tx)
        };
        let (reply, rx) = oneshot::channel();
        let ask = NodeCmd::Ask {
            request,
            reply: Some(reply),
        };
        tx.send(ask).await.ok()?;
        // The node's link answers exactly once: its answer, a timeout, or a loss.
        Some((node, rx.await.ok()?))
    }

    /// H.626.4 7.2 / Sd: asks the SCU holding `id` to choose an MTU for a relayed session.
    /// `None` when the device is offline, its node has no MTU with room, or the node does
    /// not answer within 3 s.
    pub(crate) async fn select_mtu(&self, id: &DeviceId) -> Option<MtuOffer> {
        let request = CmRequest::SelectMtu {
            device_id: id.clone(),
        };
        match self.ask(id, request).await? {
            (_, CmResponse::Mtu(choice)) => choice,
            _ => None,
        }
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

    /// The link of the node holding `id`.
    fn link_of(inner: &Inner, id: &DeviceId) -> Option<mpsc::Sender<NodeCmd>> {
        let route = inner.routes.route(id)?;
        inner.nodes.get(&route.node).map(|l| l.tx.clone())
    }

    /// Ends live sessions on a device: of one user, or of everyone (docs/security.md D5).
    pub(crate) fn revoke(&self, id: &DeviceId, user: Option<i64>) {
        let inner = self.lock();
        // Viewers relayed by MTUs end too (D5): every MTU that may hold a feed of the camera.
        for (mtu, _) in inner.relays.keys().filter(|(_, cam)| cam == id) {
            if let Some(tx) = Self::link_of(&inner, mtu) {
                let request = CmRequest::Command {
                    device_id: mtu.clone(),
                    command: DeviceCommand::RelayRevoke {
                        camera: id.clone(),
                        user,
                    },
                };
                let _ = tx.try_send(NodeCmd::Ask {
                    request,
                    reply: None,
                });
            }
        }
        if let Some(tx) = Self::link_of(&inner, id) {
            let revoke = Revoke {
                device_id: id.clone(),
                user,
            };
            let _ = tx.try_send(NodeCmd::Notice(CmNotice::Revoke(revoke)));
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
        let request = CmRequest::Command {
            device_id: id.clone(),
            command,
        };
        match self.ask(id, request).await.ok_or_else(offline)? {
            (node, CmResponse::Command(CommandOutcome::Replied { reply })) => Ok((node, reply)),
            (_, CmResponse::Command(CommandOutcome::Timeout)) => Err(ApiErr::new(
                StatusCode::GATEWAY_TIMEOUT,
                "device_timeout",
                "the device did not answer in time",
            )),
            _ => Err(offline()),
        }
    }

    /// A node's link is up; returns its epoch.
    fn node_up(&self, node: &str, tx: mpsc::Sender<NodeCmd>) -> u64 {
        let mut inner = self.lock();
        let epoch = inner.routes.node_up(node);
        inner.nodes.insert(node.to_owned(), NodeLink { epoch, tx });
        epoch
    }

    /// A node's link `epoch` is gone: everything it held is offline (unless it already
    /// reconnected).
    fn node_gone(&self, node: &str, epoch: u64) {
        let mut inner = self.lock();
        if inner.nodes.get(node).is_some_and(|l| l.epoch == epoch) {
            inner.nodes.remove(node);
        }
        let gone = inner.routes.node_down(node, epoch);
        for d in &gone {
            inner.endpoints.remove(d);
        }
        if !gone.is_empty() || !inner.routes.node_is_up(node) {
            tracing::warn!(%node, devices = gone.len(), "SCU node disconnected; its devices are offline");
        }
    }

    /// Sc: a device's presence on `node` changed; returns whether it counts (its last-seen
    /// time is then updated). One device, one session: an older session elsewhere is kicked.
    fn presence(&self, node: &str, p: &Presence) -> bool {
        let Presence {
            device_id,
            session,
            online,
        } = p;
        let mut inner = self.lock();
        if !*online {
            let current = inner.routes.offline(device_id, node, session);
            if current {
                inner.endpoints.remove(device_id);
            }
            return current;
        }
        if let Some(old) = inner
            .routes
            .online(device_id.clone(), node, session.to_owned())
        {
            tracing::info!(device = %device_id, old_node = %old.node, "replacing an older device session");
            if let Some(link) = inner.nodes.get(&old.node) {
                let kick = Kick {
                    device_id: device_id.clone(),
                    session: old.session,
                    reason: "replaced by a newer session".into(),
                };
                let _ = link.tx.try_send(NodeCmd::Notice(CmNotice::Kick(kick)));
            }
        }
        true
    }

    /// H.626.4 8.3 step 4: keeps the checked addresses if they are of the current session.
    fn reported(&self, device_id: DeviceId, node: &str, session: &str, checked: DeviceAddresses) {
        let mut inner = self.lock();
        if inner
            .routes
            .route(&device_id)
            .is_some_and(|r| r.node == node && r.session == session)
        {
            inner.endpoints.insert(device_id, checked);
        }
    }
}

/// `GET /platform/v1/scu`: upgrade to WebSocket; the node authenticates in its first message.
pub(crate) async fn ws_handler(State(st): State<Shared>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(peercam_signal::MAX_MESSAGE_BYTES)
        .max_frame_size(peercam_signal::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| node_session(st, socket))
}

type Peer = CmuPeer<Option<oneshot::Sender<CmResponse>>>;

/// One node connection: frames, timers and the rest of the CMU around [`CmuPeer`].
async fn node_session(st: Shared, socket: WebSocket) {
    let config = CmuPeerConfig {
        secrets: st.config.scu_secrets.clone(),
        timeouts: ScTimeouts::default(),
    };
    let mut peer: Peer = CmuPeer::new(config, Instant::now().into_std());
    let (tx, mut rx) = mpsc::channel::<NodeCmd>(1024);
    // Answers to the node's requests, from the tasks that judge them.
    let (answers_tx, mut answers_rx) = mpsc::channel::<(u64, ScResponse)>(256);
    let mut up: Option<(String, u64)> = None;
    let (mut sink, mut stream) = socket.split();
    loop {
        while let Some(ev) = peer.poll_event() {
            on_event(&st, &mut peer, ev, &mut up, &tx, &answers_tx).await;
        }
        let mut wrote = false;
        while let Some(frame) = peer.poll_transmit() {
            let text = String::from_utf8(frame).unwrap_or_default();
            wrote = true;
            if sink.feed(Message::Text(text.into())).await.is_err() {
                peer.close("write to the node failed");
                break;
            }
        }
        if wrote && sink.flush().await.is_err() {
            peer.close("write to the node failed");
        }
        if peer.is_closed() {
            while let Some(ev) = peer.poll_event() {
                on_event(&st, &mut peer, ev, &mut up, &tx, &answers_tx).await;
            }
            break;
        }
        let deadline = peer.poll_timeout().map_or_else(
            || Instant::now() + Duration::from_secs(3600),
            Instant::from_std,
        );
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => input(&mut peer, up.as_ref(), t.as_bytes()),
                Some(Ok(Message::Binary(b))) => input(&mut peer, up.as_ref(), &b),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => peer.close("the node closed the link"),
            },
            cmd = rx.recv() => match cmd {
                Some(NodeCmd::Ask { request, reply }) => peer.request(Instant::now().into_std(), request, reply),
                Some(NodeCmd::Notice(notice)) => peer.notify(notice),
                None => {}
            },
            answer = answers_rx.recv() => {
                if let Some((id, response)) = answer {
                    peer.respond(id, response);
                }
            }
            () = tokio::time::sleep_until(deadline) => peer.handle_timeout(Instant::now().into_std()),
            // A stopping CMU lets its nodes go, so that they reconnect to another instance
            // (an upgraded WebSocket outlives the HTTP server's connection tasks).
            () = st.shutdown.wait() => peer.close("the CMU is stopping"),
        }
    }
    // The node is gone: everything it held is offline (unless it already reconnected).
    if let Some((node, epoch)) = up {
        st.platform.node_gone(&node, epoch);
        // 6.1.14: a node lost is a fault (unless it already linked again).
        crate::faults::node(&st, &node, false).await;
    }
}

fn input(peer: &mut Peer, up: Option<&(String, u64)>, bytes: &[u8]) {
    if let Err(e) = peer.handle_input(bytes) {
        let node = up.map_or("", |(n, _)| n.as_str());
        tracing::warn!(%node, error = %e, "bad message from SCU node; closing");
    }
}

/// Acts on one event of a node's link.
async fn on_event(
    st: &Shared,
    peer: &mut Peer,
    ev: CmuPeerEvent<Option<oneshot::Sender<CmResponse>>>,
    up: &mut Option<(String, u64)>,
    tx: &mpsc::Sender<NodeCmd>,
    answers: &mpsc::Sender<(u64, ScResponse)>,
) {
    let node = up.as_ref().map(|(n, _)| n.clone()).unwrap_or_default();
    match ev {
        CmuPeerEvent::NodeUp { node } => {
            tracing::info!(%node, "SCU node connected");
            // A reconnecting node replaces its previous link; the devices that link held are
            // re-announced by the node itself.
            let epoch = st.platform.node_up(&node, tx.clone());
            crate::faults::node(st, &node, true).await;
            *up = Some((node, epoch));
        }
        CmuPeerEvent::NodeRefused { node, reason } => {
            tracing::warn!(%node, "refused SCU node: {reason}");
            let detail = format!("{node}: {reason}");
            audit::log(&st.store, Event::NodeRefused { detail: &detail }).await;
        }
        CmuPeerEvent::Request { id, request } => {
            // A node asks only for what it may (its challenges, its devices).
            if let Some(refusal) = st.platform.lock().routes.screen(&node, &request) {
                peer.respond(id, refusal);
                return;
            }
            let (st, answers) = (st.clone(), answers.clone());
            tokio::spawn(async move {
                let response = judge(&st, &node, request).await;
                let _ = answers.send((id, response)).await;
            });
        }
        CmuPeerEvent::Notice(ScNotice::Presence(p)) if st.platform.presence(&node, &p) => {
            let _ = store::devices::touch(&st.store, &p.device_id, now_s()).await;
            // 6.1.9: offline and back-online alarms; a pending alarm strategy (8.8).
            let (st, id, online) = (st.clone(), p.device_id.clone(), p.online);
            if online {
                // Su: a CS gets its configuration at every registration, a camera its cloud
                // strategy (8.7.1).
                let (st, id) = (st.clone(), id.clone());
                tokio::spawn(async move { crate::cloud::online(&st, &id).await });
            }
            tokio::spawn(async move { crate::alarms::up::presence(&st, &id, online).await });
        }
        CmuPeerEvent::Notice(ScNotice::Endpoints(e)) => {
            let checked = check_addresses(&e.device_id, e.rtsp, e.mapped, e.observed);
            st.platform
                .reported(e.device_id, &node, &e.session, checked);
        }
        CmuPeerEvent::Answered {
            waiter: Some(waiter),
            response,
        } => {
            let _ = waiter.send(response);
        }
        CmuPeerEvent::Closed { reason } => tracing::debug!(%node, %reason, "SCU node link closed"),
        _ => {}
    }
}

/// Judges a node's request (after [`RouteTable::screen`]).
async fn judge(st: &Shared, node: &str, request: ScRequest) -> ScResponse {
    match request {
        ScRequest::Verify(v) => ScResponse::Verdict(verify_device(st, node, &v).await),
        // H.626.4 8.4 step 7.
        ScRequest::Play { device_id, check } => ScResponse::Play(
            crate::token::authorize(st, &device_id, &check.token, &check.client).await,
        ),
        ScRequest::Device { device_id, request } => {
            ScResponse::Answer(device_request(st, &device_id, request).await)
        }
    }
}

/// A device's request for the platform, forwarded by the node holding it.
async fn device_request(
    st: &Shared,
    device_id: &DeviceId,
    request: DeviceRequest,
) -> PlatformAnswer {
    match request {
        DeviceRequest::RecorderStream { camera } => {
            crate::recording::recorder_stream(st, device_id, &camera).await
        }
        DeviceRequest::RelayUpstream {
            camera,
            ticket,
            tunnel,
            server_name,
            caps,
            pipe,
        } => {
            if pipe {
                crate::relay::pipe_upstream(st, device_id, &camera, ticket, (tunnel, server_name))
                    .await
            } else {
                crate::relay::upstream(
                    st,
                    device_id,
                    &camera,
                    ticket,
                    (tunnel, server_name),
                    caps.unwrap_or_default(),
                )
                .await
            }
        }
        DeviceRequest::RelayAuthorize {
            camera,
            token,
            client,
            backchannel,
            pipe,
        } => {
            if pipe {
                crate::relay::pipe_authorize(st, device_id, &camera, (&token, &client)).await
            } else {
                crate::relay::authorize(st, device_id, &camera, (&token, &client), backchannel)
                    .await
            }
        }
        // H.626.4 8.8 alarm up.
        DeviceRequest::Alarm { alarm } => crate::alarms::up::alarm_up(st, device_id, alarm).await,
        // 6.1.9 storage full, from the recorder itself.
        DeviceRequest::StorageFull { camera, detail } => {
            crate::alarms::up::storage_full_request(st, device_id, &camera, &detail).await
        }
        // H.626.4 8.7.1: a camera's grant refresh (Ps) and a CS's data key (Su).
        DeviceRequest::CloudGrant { camera } => {
            crate::cloud::cloud_grant(st, device_id, &camera).await
        }
        DeviceRequest::CloudKey { prefix, kid } => {
            crate::cloud::cloud_key(st, device_id, &prefix, &kid).await
        }
        // 6.1.14: a recorder's storage health.
        DeviceRequest::Health {
            disk_used_bytes,
            disk_free_bytes,
            full,
            write_errors,
        } => {
            crate::faults::health(
                st,
                device_id,
                (disk_used_bytes, disk_free_bytes, full, write_errors),
            )
            .await
        }
        _ => PlatformAnswer::Refused {
            code: Refusal::Unsupported,
            message: "this CMU does not serve that request".into(),
        },
    }
}

/// H.626.4 8.1 steps 2-3: is this the device it claims to be? (docs/security.md D1)
async fn verify_device(st: &Shared, node: &str, v: &VerifyDevice) -> Verdict {
    let VerifyDevice {
        device_id,
        kind,
        nonce,
        issued_at_ms,
        signature,
        sw_version,
        ..
    } = v;
    let (kind, issued_at_ms) = (*kind, *issued_at_ms);
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
    let old_version = row.as_ref().and_then(|r| r.sw_version.clone());
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
            if let Some(old) = old_version.filter(|o| !o.is_empty() && o != sw_version)
                && !sw_version.is_empty()
            {
                // 6.1.9: the device came back with another version (8.11.1).
                let (st, id, to) = (st.clone(), device_id.clone(), sw_version.clone());
                tokio::spawn(async move {
                    crate::alarms::up::upgrade_result(&st, &id, &old, &to).await;
                });
            }
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
