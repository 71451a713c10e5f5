//! The CMU end of Sc / Sm: SCU nodes connect here, ask for registration verdicts (H.626.4
//! 8.1 steps 2-3), report presence, and carry commands to the devices they hold.
//!
//! Each node connection is a thin tokio driver of [`CmuPeer`] (request ids, deadlines,
//! answers); which node holds which device is the [`RouteTable`]. Judging a node's requests
//! (registrations, plays, device requests) is the rest of the CMU's.

mod shared;

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
use peercam_signal::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use peercam_signal::ps::RefusalCode;
use peercam_signal::refusal::Refusal;
use peercam_signal::relay::{DeviceAddresses, MtuOffer};
use peercam_signal::sc::{CommandOutcome, Kick, Presence, Revoke, Verdict, VerifyDevice};
use peercam_signal::sc_link::{
    CmNotice, CmRequest, CmResponse, CmuPeer, CmuPeerConfig, CmuPeerEvent, RouteTable, ScNotice,
    ScRequest, ScResponse, ScTimeouts,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use self::shared::{Answer, Ask, Envelope, Note, Routed, RoutedAnswer, View};
use crate::audit::{self, Event};
use crate::bus::{Bus, Delivery};
use crate::error::ApiErr;
use crate::store::{self, Store};
use crate::{Shared, now_ms, now_s};

/// Presence and node links: the links this instance holds (in memory) and what every
/// instance on the database holds (rows, kept fresh by the bus; issue 19).
pub struct Platform {
    inner: Mutex<Inner>,
    /// This instance's name on the bus and in the rows (random at each start).
    instance: String,
    store: Store,
    bus: Arc<dyn Bus>,
    /// Presence changes of this instance's links, written and published in order.
    outbox: mpsc::UnboundedSender<Note>,
    outbox_rx: Mutex<Option<mpsc::UnboundedReceiver<Note>>>,
    /// Requests routed to other instances, waiting for their answers.
    waiting: Mutex<HashMap<u64, oneshot::Sender<RoutedAnswer>>>,
    next_rid: AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// device -> (node, session); node -> epoch of its link (this instance's links only)
    routes: RouteTable,
    /// node -> link (this instance's)
    nodes: HashMap<String, NodeLink>,
    /// Every instance's devices and leases, this one's included.
    view: View,
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
    /// Presence over `store`, shared with other instances through `bus`.
    pub(crate) fn new(store: Store, bus: Arc<dyn Bus>) -> Self {
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        Self {
            inner: Mutex::default(),
            instance: hex::encode(crate::random_bytes::<6>()),
            store,
            bus,
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
            waiting: Mutex::default(),
            next_rid: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The link id of a node link of this instance.
    fn link_id(&self, epoch: u64) -> String {
        format!("{}-{epoch}", self.instance)
    }

    /// Whether node `node` has a live link now.
    pub(crate) fn node_is_up(&self, node: &str) -> bool {
        self.lock().nodes.contains_key(node)
    }

    /// SCU nodes with a live link now.
    pub fn node_count(&self) -> usize {
        self.lock().nodes.len()
    }

    /// Whether the device is registered with some SCU node now (through any instance).
    pub fn is_online(&self, id: &DeviceId) -> bool {
        let inner = self.lock();
        inner.routes.route(id).is_some()
            || inner.view.remote(id, &self.instance, now_ms()).is_some()
    }

    /// The node holding the device.
    pub fn node_of(&self, id: &DeviceId) -> Option<String> {
        let inner = self.lock();
        if let Some(r) = inner.routes.route(id) {
            return Some(r.node.clone());
        }
        inner
            .view
            .remote(id, &self.instance, now_ms())
            .map(|e| e.node.clone())
    }

    /// Number of devices online (through any instance).
    pub fn online_count(&self) -> usize {
        let inner = self.lock();
        inner.routes.len() + inner.view.remote_count(&self.instance, now_ms())
    }

    /// The RTSP endpoints the device reported (H.626.4 8.3), best first.
    pub fn endpoints(&self, id: &DeviceId) -> Vec<String> {
        self.addresses(id).map(|a| a.local).unwrap_or_default()
    }

    /// Everything the device reported of its addresses (H.626.4 8.3), as checked.
    pub fn addresses(&self, id: &DeviceId) -> Option<DeviceAddresses> {
        let inner = self.lock();
        if let Some(r) = inner.routes.route(id) {
            return inner
                .view
                .devices
                .get(id)
                .filter(|e| e.session == r.session)
                .and_then(|e| e.addresses.clone());
        }
        inner
            .view
            .remote(id, &self.instance, now_ms())?
            .addresses
            .clone()
    }

    /// Sends `request` to the node holding `id`, through the instance holding its link;
    /// `None` when the device is offline or its node's link is gone.
    async fn ask(&self, id: &DeviceId, request: CmRequest) -> Option<(String, CmResponse)> {
        if let Some(answer) = self.ask_here(id, request.clone()).await {
            return Some(answer);
        }
        let instance = {
            let inner = self.lock();
            inner
                .view
                .remote(id, &self.instance, now_ms())?
                .instance
                .clone()
        };
        let (routed, deadline) = match request {
            CmRequest::Command { device_id, command } => (
                Routed::Command { device_id, command },
                ScTimeouts::default().command,
            ),
            CmRequest::SelectMtu { device_id } => (
                Routed::SelectMtu { device_id },
                ScTimeouts::default().select_mtu,
            ),
        };
        let is_command = matches!(routed, Routed::Command { .. });
        match self.ask_instance(&instance, routed, deadline).await {
            Some(RoutedAnswer::Command { node, outcome }) => {
                Some((node, CmResponse::Command(outcome)))
            }
            Some(RoutedAnswer::Mtu { choice }) => Some((String::new(), CmResponse::Mtu(choice))),
            // Sent, but no answer within the deadline (and a little for the bus).
            None if is_command => {
                Some((String::new(), CmResponse::Command(CommandOutcome::Timeout)))
            }
            None => None,
        }
    }

    /// Sends `request` through this instance's link to the node holding `id`, if it has it.
    async fn ask_here(&self, id: &DeviceId, request: CmRequest) -> Option<(String, CmResponse)> {
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

    /// Publishes `request` to `instance` and waits for its answer up to `deadline` (the
    /// node link's own deadline) and one second for the bus.
    async fn ask_instance(
        &self,
        instance: &str,
        request: Routed,
        deadline: Duration,
    ) -> Option<RoutedAnswer> {
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting_lock().insert(rid, tx);
        let ask = Ask {
            from: self.instance.clone(),
            rid,
            request,
        };
        let subject = format!("{}{instance}", shared::ASK);
        let sent = match shared::encode(&ask) {
            Ok(json) => self
                .bus
                .publish(&subject, json)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let answer = match sent {
            Ok(()) => tokio::time::timeout(deadline + Duration::from_secs(1), rx)
                .await
                .ok()
                .and_then(Result::ok),
            Err(e) => {
                tracing::warn!(error = %e, %instance, "cannot route a request over the bus");
                None
            }
        };
        self.waiting_lock().remove(&rid);
        answer
    }

    fn waiting_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<RoutedAnswer>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// A viewer was sent to `mtu` for `camera`: the MTU may ask for its upstream until
    /// `until` (a row, seen by every instance).
    pub(crate) async fn allow_relay(&self, mtu: &DeviceId, camera: &DeviceId, until: u64) {
        let now = until.saturating_sub(crate::relay::RELAY_WINDOW_S);
        let pair = (mtu.as_str(), camera.as_str());
        if let Err(e) = store::presence::allow_relay(&self.store, pair, until, now).await {
            tracing::warn!(error = %e, %mtu, %camera, "cannot store a relay permit");
        }
    }

    /// Whether `mtu` may ask for `camera`'s upstream now.
    pub(crate) async fn relay_allowed(&self, mtu: &DeviceId, camera: &DeviceId, now: u64) -> bool {
        store::presence::relay_allowed(&self.store, (mtu.as_str(), camera.as_str()), now)
            .await
            .unwrap_or(false)
    }

    /// The link of the node holding `id`, if this instance holds it.
    fn link_of(inner: &Inner, id: &DeviceId) -> Option<mpsc::Sender<NodeCmd>> {
        let route = inner.routes.route(id)?;
        inner.nodes.get(&route.node).map(|l| l.tx.clone())
    }

    /// Ends live sessions on a device: of one user, or of everyone (docs/security.md D5),
    /// on every instance.
    pub(crate) async fn revoke(&self, id: &DeviceId, user: Option<i64>) {
        // Viewers relayed by MTUs end too (D5): every MTU that may hold a feed of the camera.
        let mtus: Vec<DeviceId> = store::presence::relays_of(&self.store, id.as_str())
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m.parse().ok())
            .collect();
        self.revoke_here(id, user, &mtus);
        let _ = self.outbox.send(Note::Revoke {
            device_id: id.clone(),
            user,
            mtus,
        });
    }

    /// [`Platform::revoke`] on the links this instance holds.
    fn revoke_here(&self, id: &DeviceId, user: Option<i64>, mtus: &[DeviceId]) {
        let inner = self.lock();
        for mtu in mtus {
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
        let note = Note::NodeUp {
            node: node.to_owned(),
            link: self.link_id(epoch),
            until_ms: now_ms() + shared::LEASE_MS,
        };
        inner.view.apply(&self.instance, &note);
        let _ = self.outbox.send(note);
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
        let note = Note::NodeDown {
            node: node.to_owned(),
            link: self.link_id(epoch),
        };
        inner.view.apply(&self.instance, &note);
        let _ = self.outbox.send(note);
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
                let note = Note::Offline {
                    device_id: device_id.clone(),
                    node: node.to_owned(),
                    session: session.clone(),
                };
                inner.view.apply(&self.instance, &note);
                let _ = self.outbox.send(note);
            }
            return current;
        }
        // A session of the device on another instance's link is older: it goes.
        if let Some(old) = inner.view.remote(device_id, &self.instance, now_ms())
            && old.session != *session
        {
            let _ = self.outbox.send(Note::Kick {
                device_id: device_id.clone(),
                session: old.session.clone(),
                link: old.link.clone(),
            });
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
        if let Some(epoch) = inner.nodes.get(node).map(|l| l.epoch) {
            let note = Note::Online {
                device_id: device_id.clone(),
                node: node.to_owned(),
                session: session.clone(),
                link: self.link_id(epoch),
            };
            inner.view.apply(&self.instance, &note);
            let _ = self.outbox.send(note);
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
            let note = Note::Endpoints {
                device_id,
                session: session.to_owned(),
                addresses: checked,
            };
            inner.view.apply(&self.instance, &note);
            let _ = self.outbox.send(note);
        }
    }

    /// Kicks `session` of a device if this instance holds `link`.
    fn kick_here(&self, device_id: &DeviceId, session: &str, link: &str) {
        let inner = self.lock();
        let Some(route) = inner.routes.route(device_id) else {
            return;
        };
        if route.session != session {
            return;
        }
        if let Some(l) = inner.nodes.get(&route.node)
            && self.link_id(l.epoch) == link
        {
            let kick = Kick {
                device_id: device_id.clone(),
                session: session.to_owned(),
                reason: "replaced by a newer session".into(),
            };
            let _ = l.tx.try_send(NodeCmd::Notice(CmNotice::Kick(kick)));
        }
    }

    /// 6.1.1: ends the device's own session (a decommissioned device): on a link of this
    /// instance, or through the bus on the instance that holds it. Its next registration
    /// is refused (`disabled`). True if it was online.
    pub(crate) fn disconnect(&self, id: &DeviceId, reason: &str) -> bool {
        let inner = self.lock();
        if let Some(route) = inner.routes.route(id) {
            if let Some(l) = inner.nodes.get(&route.node) {
                let kick = Kick {
                    device_id: id.clone(),
                    session: route.session.clone(),
                    reason: reason.to_owned(),
                };
                let _ = l.tx.try_send(NodeCmd::Notice(CmNotice::Kick(kick)));
            }
            return true;
        }
        if let Some(e) = inner.view.remote(id, &self.instance, now_ms()) {
            let _ = self.outbox.send(Note::Kick {
                device_id: id.clone(),
                session: e.session.clone(),
                link: e.link.clone(),
            });
            return true;
        }
        false
    }

    /// The notes that rebuild this instance's rows (after its bus reconnected).
    fn own_notes(&self) -> Vec<Note> {
        let inner = self.lock();
        let until_ms = now_ms() + shared::LEASE_MS;
        let mut notes = Vec::new();
        for (node, l) in &inner.nodes {
            notes.push(Note::NodeUp {
                node: node.clone(),
                link: self.link_id(l.epoch),
                until_ms,
            });
        }
        let me = self.instance.as_str();
        for (id, e) in inner.view.devices.iter().filter(|(_, e)| e.instance == me) {
            notes.push(Note::Online {
                device_id: id.clone(),
                node: e.node.clone(),
                session: e.session.clone(),
                link: e.link.clone(),
            });
            if let Some(addresses) = &e.addresses {
                notes.push(Note::Endpoints {
                    device_id: id.clone(),
                    session: e.session.clone(),
                    addresses: addresses.clone(),
                });
            }
        }
        notes.push(Note::Republished);
        notes
    }

    /// Reads every instance's presence and leases from the rows.
    async fn reload(&self) {
        let rows = store::presence::all(&self.store).await;
        let leases = store::presence::leases(&self.store).await;
        match (rows, leases) {
            (Ok(rows), Ok(leases)) => {
                self.lock()
                    .view
                    .reload(&self.instance, rows, &leases, now_ms());
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot read shared presence");
            }
        }
    }
}

/// Starts sharing presence: reads the rows, then runs the writer of this instance's notes,
/// the bus's receiver and the lease renewals until `st.shutdown`.
pub(crate) async fn start(st: &Shared) {
    let p = &st.platform;
    let rx = p.bus.subscribe();
    p.reload().await;
    let outbox = p
        .outbox_rx
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(outbox) = outbox {
        tokio::spawn(writer(st.clone(), outbox));
    }
    tokio::spawn(receiver(st.clone(), rx));
    tokio::spawn(leases(st.clone()));
    let (alarms_tx, alarms_rx) = mpsc::unbounded_channel();
    st.alarm_hub.forward_to(alarms_tx);
    tokio::spawn(alarms_out(st.clone(), alarms_rx));
    tracing::info!(instance = %p.instance, bus = p.bus.name(), "presence shared over the bus");
}

/// Publishes this instance's new alarms and resets to the other instances' live streams.
async fn alarms_out(st: Shared, mut rx: mpsc::UnboundedReceiver<crate::alarms::Published>) {
    let p = &st.platform;
    loop {
        let alarm = tokio::select! {
            a = rx.recv() => match a { Some(a) => a, None => return },
            () = st.shutdown.wait() => return,
        };
        let note = shared::AlarmNote {
            from: p.instance.clone(),
            alarm,
        };
        match shared::encode(&note) {
            Ok(json) => {
                if let Err(e) = p.bus.publish(shared::ALARM, json).await {
                    tracing::warn!(error = %e, "cannot publish an alarm to the other instances");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode an alarm"),
        }
    }
}

/// Writes this instance's notes to the rows and publishes them, one at a time, in order.
/// A stopping instance still writes what its closing node links leave (their devices go
/// offline on every instance at once, not when their leases end), for up to 2 s.
async fn writer(st: Shared, mut outbox: mpsc::UnboundedReceiver<Note>) {
    let p = &st.platform;
    let mut stop_by: Option<Instant> = None;
    loop {
        let note = match stop_by {
            None => tokio::select! {
                n = outbox.recv() => match n { Some(n) => n, None => return },
                () = st.shutdown.wait() => {
                    stop_by = Some(Instant::now() + Duration::from_secs(2));
                    continue;
                }
            },
            Some(by) => {
                // Quiet for 300 ms, or 2 s in all: done.
                let quiet = (Instant::now() + Duration::from_millis(300)).min(by);
                match tokio::time::timeout_at(quiet, outbox.recv()).await {
                    Ok(Some(n)) => n,
                    Ok(None) | Err(_) => return,
                }
            }
        };
        // Issue 19: what queued up meanwhile is written together (a registration storm
        // queues two notes per device, and one round trip at a time fell behind).
        let mut batch = vec![note];
        while batch.len() < WRITE_BATCH {
            match outbox.try_recv() {
                Ok(n) => batch.push(n),
                Err(_) => break,
            }
        }
        write_rows(p, &batch).await;
        for note in batch {
            let envelope = Envelope {
                from: p.instance.clone(),
                note,
            };
            match shared::encode(&envelope) {
                Ok(json) => {
                    if let Err(e) = p.bus.publish(shared::PRESENCE, json).await {
                        tracing::warn!(error = %e, "cannot publish presence");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot encode presence"),
            }
        }
    }
}

/// Notes the writer takes from its queue at a time.
const WRITE_BATCH: usize = 512;
/// Devices whose rows the writer writes side by side.
const WRITE_PARALLEL: usize = 16;

/// The device a note's row belongs to; `None` for a node's notes and those without a row.
fn row_device(note: &Note) -> Option<&DeviceId> {
    match note {
        Note::Online { device_id, .. }
        | Note::Offline { device_id, .. }
        | Note::Endpoints { device_id, .. } => Some(device_id),
        _ => None,
    }
}

/// Writes the rows of a batch of notes: a device's notes in their order, different
/// devices side by side ([`WRITE_PARALLEL`] at a time); a node's note waits for what came
/// before it and goes before what follows (its rows cover every device of the node).
async fn write_rows(p: &Platform, batch: &[Note]) {
    let mut i = 0;
    while i < batch.len() {
        if row_device(&batch[i]).is_none() {
            if let Err(e) = write_row(p, &batch[i]).await {
                tracing::warn!(error = %e, "cannot write shared presence");
            }
            i += 1;
            continue;
        }
        let end = batch[i..]
            .iter()
            .position(|n| row_device(n).is_none())
            .map_or(batch.len(), |k| i + k);
        let mut chains: Vec<(&DeviceId, Vec<&Note>)> = Vec::new();
        let mut at: HashMap<&DeviceId, usize> = HashMap::new();
        for n in &batch[i..end] {
            let Some(d) = row_device(n) else { continue };
            let k = *at.entry(d).or_insert_with(|| {
                chains.push((d, Vec::new()));
                chains.len() - 1
            });
            chains[k].1.push(n);
        }
        futures_util::stream::iter(chains)
            .for_each_concurrent(WRITE_PARALLEL, |(_, notes)| async move {
                for n in notes {
                    if let Err(e) = write_row(p, n).await {
                        tracing::warn!(error = %e, "cannot write shared presence");
                    }
                }
            })
            .await;
        i = end;
    }
}

/// The row change of one of this instance's notes.
async fn write_row(p: &Platform, note: &Note) -> Result<(), store::StoreError> {
    use store::presence as rows;
    let lease = |node: &str, link: &str, until_ms: u64| rows::Lease {
        node: node.to_owned(),
        link: link.to_owned(),
        instance: p.instance.clone(),
        until_ms,
    };
    match note {
        Note::NodeUp {
            node,
            link,
            until_ms,
        } => rows::node_up(&p.store, &lease(node, link, *until_ms)).await,
        Note::NodeDown { link, .. } => rows::node_gone(&p.store, link).await,
        Note::Online {
            device_id,
            node,
            session,
            link,
        } => {
            let row = rows::PresenceRow {
                device_id: device_id.to_string(),
                node: node.clone(),
                session: session.clone(),
                link: link.clone(),
                instance: p.instance.clone(),
                endpoints: None,
            };
            rows::online(&p.store, &row, now_ms()).await
        }
        Note::Offline {
            device_id,
            node,
            session,
        } => rows::offline(&p.store, device_id.as_str(), node, session).await,
        Note::Endpoints {
            device_id,
            session,
            addresses,
        } => {
            let json = serde_json::to_string(addresses)
                .map_err(|e| store::StoreError::Corrupt(e.to_string()))?;
            rows::endpoints(&p.store, device_id.as_str(), session, &json).await
        }
        Note::Republished | Note::Revoke { .. } | Note::Kick { .. } => Ok(()),
    }
}

/// Applies what other instances publish; answers requests routed to this one.
async fn receiver(st: Shared, mut rx: broadcast::Receiver<Delivery>) {
    let p = &st.platform;
    let ask_subject = format!("{}{}", shared::ASK, p.instance);
    let answer_subject = format!("{}{}", shared::ANSWER, p.instance);
    // Reads of all rows happen here, between notes, so that a note received after a read
    // is applied after it (and converges), never overwritten by an older read.
    let mut reread = tokio::time::interval(Duration::from_secs(30));
    reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    reread.tick().await;
    loop {
        let delivery = tokio::select! {
            d = rx.recv() => d,
            _ = reread.tick() => {
                let _ = store::presence::expire(&p.store, now_ms().saturating_sub(60_000)).await;
                p.reload().await;
                continue;
            }
            () = st.shutdown.wait() => return,
        };
        let (subject, payload) = match delivery {
            Ok(Delivery::Message { subject, payload }) => (subject, payload),
            // Messages may be lost: write our rows again, tell the others, read theirs.
            Ok(Delivery::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                for note in p.own_notes() {
                    let _ = p.outbox.send(note);
                }
                p.reload().await;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if subject == shared::PRESENCE {
            let Envelope { from, note } = match shared::decode(&payload) {
                Ok(e) => e,
                Err(e) => {
                    skipped(&subject, &e);
                    continue;
                }
            };
            if from == p.instance {
                continue;
            }
            match &note {
                Note::Republished => p.reload().await,
                Note::Revoke {
                    device_id,
                    user,
                    mtus,
                } => p.revoke_here(device_id, *user, mtus),
                Note::Kick {
                    device_id,
                    session,
                    link,
                } => p.kick_here(device_id, session, link),
                _ => p.lock().view.apply(&from, &note),
            }
        } else if subject == shared::ALARM {
            match shared::decode::<shared::AlarmNote>(&payload) {
                Ok(n) if n.from != p.instance => st.alarm_hub.deliver(n.alarm),
                Ok(_) => {}
                Err(e) => skipped(&subject, &e),
            }
        } else if subject == ask_subject {
            let ask = match shared::decode::<Ask>(&payload) {
                Ok(a) => a,
                Err(e) => {
                    skipped(&subject, &e);
                    continue;
                }
            };
            let st = st.clone();
            tokio::spawn(async move { answer(&st, ask).await });
        } else if subject == answer_subject {
            let Answer { rid, answer } = match shared::decode(&payload) {
                Ok(a) => a,
                Err(e) => {
                    skipped(&subject, &e);
                    continue;
                }
            };
            if let Some(tx) = p.waiting_lock().remove(&rid) {
                let _ = tx.send(answer);
            }
        }
    }
}

/// Logs a bus message this instance cannot read (another release's version, or
/// malformed): the first, then every 1000th, so that a rolling upgrade does not flood the
/// log.
fn skipped(subject: &str, why: &shared::Undecodable) {
    static SKIPPED: AtomicU64 = AtomicU64::new(0);
    let n = SKIPPED.fetch_add(1, Ordering::Relaxed);
    if n.is_multiple_of(1000) {
        tracing::warn!(subject, skipped = n + 1, "skipped a bus message: {why}");
    }
}

/// Sends a routed request through this instance's link and publishes the answer back.
async fn answer(st: &Shared, ask: Ask) {
    let p = &st.platform;
    let answer = match ask.request {
        Routed::Command { device_id, command } => {
            let request = CmRequest::Command {
                device_id: device_id.clone(),
                command,
            };
            match p.ask_here(&device_id, request).await {
                Some((node, CmResponse::Command(outcome))) => {
                    RoutedAnswer::Command { node, outcome }
                }
                _ => RoutedAnswer::Command {
                    node: String::new(),
                    outcome: CommandOutcome::NotConnected,
                },
            }
        }
        Routed::SelectMtu { device_id } => {
            let request = CmRequest::SelectMtu {
                device_id: device_id.clone(),
            };
            match p.ask_here(&device_id, request).await {
                Some((_, CmResponse::Mtu(choice))) => RoutedAnswer::Mtu { choice },
                _ => RoutedAnswer::Mtu { choice: None },
            }
        }
    };
    let answer = Answer {
        rid: ask.rid,
        answer,
    };
    let subject = format!("{}{}", shared::ANSWER, ask.from);
    match shared::encode(&answer) {
        Ok(json) => {
            if let Err(e) = p.bus.publish(&subject, json).await {
                tracing::warn!(error = %e, "cannot publish a routed answer");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode a routed answer"),
    }
}

/// Every [`shared::RENEW`]: renews this instance's links' leases and reads everyone's.
async fn leases(st: Shared) {
    let p = &st.platform;
    let mut tick = tokio::time::interval(shared::RENEW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = st.shutdown.wait() => return,
        }
        let until_ms = now_ms() + shared::LEASE_MS;
        let mine: Vec<store::presence::Lease> = {
            let mut inner = p.lock();
            let mine: Vec<_> = inner
                .nodes
                .iter()
                .map(|(node, l)| store::presence::Lease {
                    node: node.clone(),
                    link: p.link_id(l.epoch),
                    instance: p.instance.clone(),
                    until_ms,
                })
                .collect();
            for l in &mine {
                inner.view.leases.insert(l.link.clone(), until_ms);
            }
            mine
        };
        for l in &mine {
            if let Err(e) = store::presence::renew(&p.store, l).await {
                tracing::warn!(error = %e, node = %l.node, "cannot renew a node lease");
            }
        }
        if let Ok(all) = store::presence::leases(&p.store).await {
            p.lock().view.reload_leases(&p.instance, &all, now_ms());
        }
        offline_by_expiry(&st).await;
    }
}

/// 6.1.9, issue 19: devices whose presence ended with their link's lease (the instance
/// holding it died, and their node has not announced them elsewhere) go offline with
/// their alarm. Each row is claimed by one instance ([`store::presence::claim_expired`]),
/// and `offline_alarms` keeps the alarm to one per outage.
async fn offline_by_expiry(st: &Shared) {
    let p = &st.platform;
    let ids = match store::presence::claim_expired(&p.store, &p.instance, now_ms()).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::debug!(error = %e, "cannot sweep expired presence");
            return;
        }
    };
    for id in ids {
        let Ok(id) = id.parse::<DeviceId>() else {
            continue;
        };
        // A device that is online here (its node already moved to this instance) is not.
        if p.is_online(&id) {
            continue;
        }
        tracing::info!(device = %id, "presence ended with its node link's lease");
        let st = st.clone();
        tokio::spawn(async move { crate::alarms::up::presence(&st, &id, false).await });
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
            // Issue 19: not awaited here. This loop also carries the verdicts of the
            // node's registrations; one database round trip per presence notice in it
            // capped the registrations of a node at one per round trip.
            let (st2, id2) = (st.clone(), p.device_id.clone());
            tokio::spawn(async move {
                let _ = store::devices::touch(&st2.store, &id2, now_s()).await;
            });
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
        // Clause 7 accounting: an MTU's measure of a relayed session.
        DeviceRequest::RelayUsage {
            camera,
            user,
            bytes,
            seconds,
            ..
        } => crate::accounting::relay_usage(st, device_id, &camera, (user, bytes, seconds)).await,
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
