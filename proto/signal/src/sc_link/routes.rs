//! The CMU's view of which SCU node holds which device (H.626.4 7.2 presence; Sm routing).

use std::collections::HashMap;

use peercam_base::DeviceId;

use super::{ScRequest, ScResponse};
use crate::ps::RefusalCode;
use crate::refusal::Refusal;
use crate::sc::Verdict;

/// Where a device is held: its node and its session there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The SCU node.
    pub node: String,
    /// The device's session on that node.
    pub session: String,
}

/// Presence and routes of every device, and the links of every node. One device has at most
/// one route (one live session, docs/protocol.md "Presence rules").
#[derive(Debug, Default)]
pub struct RouteTable {
    devices: HashMap<DeviceId, Route>,
    /// node -> epoch of its current link.
    nodes: HashMap<String, u64>,
    next_epoch: u64,
}

impl RouteTable {
    /// A node's link came up; returns its epoch. A reconnecting node replaces its previous
    /// link, and the devices that link held are dropped: the node announces again what it
    /// holds now.
    pub fn node_up(&mut self, node: &str) -> u64 {
        self.next_epoch += 1;
        self.nodes.insert(node.to_owned(), self.next_epoch);
        self.devices.retain(|_, r| r.node != node);
        self.next_epoch
    }

    /// A node's link with `epoch` went away: every device it held is offline (returned),
    /// unless the node already reconnected (a newer epoch), which then owns the routes.
    pub fn node_down(&mut self, node: &str, epoch: u64) -> Vec<DeviceId> {
        if self.nodes.get(node) != Some(&epoch) {
            return Vec::new();
        }
        self.nodes.remove(node);
        let gone: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|(_, r)| r.node == node)
            .map(|(d, _)| d.clone())
            .collect();
        for d in &gone {
            self.devices.remove(d);
        }
        gone
    }

    /// Whether the node has a link now.
    pub fn node_is_up(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    /// Sc: a device registered on `node`. Returns the older route it replaces (on another
    /// node, or another session on the same node), which the caller kicks.
    pub fn online(&mut self, device: DeviceId, node: &str, session: String) -> Option<Route> {
        let route = Route {
            node: node.to_owned(),
            session,
        };
        self.devices
            .insert(device, route.clone())
            .filter(|old| *old != route)
    }

    /// Sc: a device left `node`. Applied only if it names the current route (a late
    /// "offline" from a node the device moved away from changes nothing); returns whether
    /// it was.
    pub fn offline(&mut self, device: &DeviceId, node: &str, session: &str) -> bool {
        let current = self
            .devices
            .get(device)
            .is_some_and(|r| r.node == node && r.session == session);
        if current {
            self.devices.remove(device);
        }
        current
    }

    /// Where a device is held now.
    pub fn route(&self, device: &DeviceId) -> Option<&Route> {
        self.devices.get(device)
    }

    /// Whether `node` holds `device` now.
    pub fn holds(&self, node: &str, device: &DeviceId) -> bool {
        self.devices.get(device).is_some_and(|r| r.node == node)
    }

    /// Devices online.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is online.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// What a node may ask: the refusal to send instead of judging, if any. A node asks
    /// registrations only for challenges it issued itself (H.626.4 8.1, docs/security.md
    /// D1), and plays and requests only for devices it holds (8.4 step 7).
    pub fn screen(&self, node: &str, request: &ScRequest) -> Option<ScResponse> {
        match request {
            ScRequest::Verify(v) if v.node != node => Some(ScResponse::Verdict(Verdict::Refused {
                code: RefusalCode::BadSignature,
                message: "challenge issued by another node".into(),
            })),
            ScRequest::Verify(_) => None,
            ScRequest::Play { device_id, .. } | ScRequest::Device { device_id, .. }
                if !self.holds(node, device_id) =>
            {
                Some(ScResponse::refusal_for(
                    request,
                    Refusal::Forbidden,
                    "this node does not hold the device",
                ))
            }
            _ => None,
        }
    }
}
