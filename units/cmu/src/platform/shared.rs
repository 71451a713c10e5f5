//! Presence and routing shared by CMU instances (issue 19, docs/design/scale-out.md
//! section 3).
//!
//! Each instance keeps a [`View`] of every device online on any instance: filled from the
//! `device_presence` and `scu_nodes` rows at start and after a resync, and kept fresh by
//! [`Note`]s on the bus. The instance holding a node's link writes the rows and publishes the
//! notes, in order, from one writer task. A remote entry counts only while its link's lease
//! (renewed by the holding instance every [`RENEW`]) has not ended, so the devices of a
//! killed instance go offline within [`LEASE_MS`].

use std::collections::HashMap;

use peercam_base::DeviceId;
use peercam_signal::relay::DeviceAddresses;
use serde::{Deserialize, Serialize};

use crate::store::presence::{Lease, PresenceRow};

/// How long a node link's lease lasts, ms.
pub(crate) const LEASE_MS: u64 = 10_000;
/// How often the holding instance renews its links' leases (and every instance reads them).
pub(crate) const RENEW: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) use peercam_signal::bus::{
    ALARM, ANSWER, ASK, Answer, Ask, Envelope, Note, PRESENCE, Routed, RoutedAnswer, Undecodable,
    decode, encode,
};

/// An alarm event with its sender.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AlarmNote {
    pub(crate) from: String,
    pub(crate) alarm: crate::alarms::Published,
}

/// Where a device is online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) node: String,
    pub(crate) session: String,
    pub(crate) link: String,
    pub(crate) instance: String,
    pub(crate) addresses: Option<DeviceAddresses>,
}

/// Every instance's presence, as this instance knows it.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) devices: HashMap<DeviceId, Entry>,
    /// link -> Unix ms its lease ends
    pub(crate) leases: HashMap<String, u64>,
}

impl View {
    /// The entry of a device online through another instance's live link.
    pub(crate) fn remote(&self, id: &DeviceId, me: &str, now_ms: u64) -> Option<&Entry> {
        self.devices
            .get(id)
            .filter(|e| e.instance != me && self.leases.get(&e.link).is_some_and(|u| *u > now_ms))
    }

    /// Devices online through other instances' live links.
    pub(crate) fn remote_count(&self, me: &str, now_ms: u64) -> usize {
        self.devices
            .values()
            .filter(|e| e.instance != me && self.leases.get(&e.link).is_some_and(|u| *u > now_ms))
            .count()
    }

    /// Applies a note of instance `from`.
    pub(crate) fn apply(&mut self, from: &str, note: &Note) {
        match note {
            Note::NodeUp { link, until_ms, .. } => {
                self.leases.insert(link.clone(), *until_ms);
            }
            Note::NodeDown { link, .. } => {
                self.leases.remove(link);
                self.devices.retain(|_, e| e.link != *link);
            }
            Note::Online {
                device_id,
                node,
                session,
                link,
            } => {
                let addresses = self
                    .devices
                    .get(device_id)
                    .filter(|e| e.session == *session)
                    .and_then(|e| e.addresses.clone());
                self.devices.insert(
                    device_id.clone(),
                    Entry {
                        node: node.clone(),
                        session: session.clone(),
                        link: link.clone(),
                        instance: from.to_owned(),
                        addresses,
                    },
                );
            }
            Note::Offline {
                device_id,
                node,
                session,
            } => {
                if self
                    .devices
                    .get(device_id)
                    .is_some_and(|e| e.node == *node && e.session == *session)
                {
                    self.devices.remove(device_id);
                }
            }
            Note::Endpoints {
                device_id,
                session,
                addresses,
            } => {
                if let Some(e) = self.devices.get_mut(device_id)
                    && e.session == *session
                {
                    e.addresses = Some(addresses.clone());
                }
            }
            Note::Republished | Note::Revoke { .. } | Note::Kick { .. } => {}
        }
    }

    /// Replaces what other instances hold by the rows (this instance's own entries stay:
    /// its memory is the truth about its links).
    pub(crate) fn reload(
        &mut self,
        me: &str,
        rows: Vec<PresenceRow>,
        leases: &[Lease],
        now_ms: u64,
    ) {
        self.devices.retain(|_, e| e.instance == me);
        for r in rows {
            if r.instance == me {
                continue;
            }
            let Ok(id) = r.device_id.parse::<DeviceId>() else {
                continue;
            };
            let addresses = r
                .endpoints
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok());
            self.devices.insert(
                id,
                Entry {
                    node: r.node,
                    session: r.session,
                    link: r.link,
                    instance: r.instance,
                    addresses,
                },
            );
        }
        self.reload_leases(me, leases, now_ms);
    }

    /// Takes other instances' renewals from the rows. A lease is never shortened here (a
    /// row read before a `node_up` note must not end the new link); an ended link goes by
    /// its `node_down` note or when its lease runs out, and is forgotten a minute later.
    pub(crate) fn reload_leases(&mut self, me: &str, leases: &[Lease], now_ms: u64) {
        for l in leases {
            if l.instance != me {
                let until = self.leases.entry(l.link.clone()).or_insert(0);
                *until = (*until).max(l.until_ms);
            }
        }
        self.leases
            .retain(|_, until| until.saturating_add(60_000) > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_random([n; 10])
    }

    #[test]
    fn h626_7_view_follows_notes_and_leases() {
        let mut v = View::default();
        let d = dev(1);
        v.apply(
            "a",
            &Note::NodeUp {
                node: "scu-1".into(),
                link: "a-1".into(),
                until_ms: 100,
            },
        );
        v.apply(
            "a",
            &Note::Online {
                device_id: d.clone(),
                node: "scu-1".into(),
                session: "s1".into(),
                link: "a-1".into(),
            },
        );
        assert_eq!(
            v.remote(&d, "b", 50).map(|e| e.node.as_str()),
            Some("scu-1")
        );
        // Our own entries are not remote; an ended lease is offline.
        assert!(v.remote(&d, "a", 50).is_none());
        assert!(v.remote(&d, "b", 100).is_none());
        let addresses = DeviceAddresses {
            local: vec!["10.0.0.2:554".into()],
            ..DeviceAddresses::default()
        };
        v.apply(
            "a",
            &Note::Endpoints {
                device_id: d.clone(),
                session: "s0".into(),
                addresses: addresses.clone(),
            },
        );
        assert_eq!(v.devices[&d].addresses, None, "another session's addresses");
        v.apply(
            "a",
            &Note::Endpoints {
                device_id: d.clone(),
                session: "s1".into(),
                addresses: addresses.clone(),
            },
        );
        assert_eq!(v.devices[&d].addresses, Some(addresses));
        // A stale offline leaves the entry; the node's loss takes it.
        v.apply(
            "a",
            &Note::Offline {
                device_id: d,
                node: "scu-1".into(),
                session: "s0".into(),
            },
        );
        assert_eq!(v.remote_count("b", 50), 1);
        v.apply(
            "a",
            &Note::NodeDown {
                node: "scu-1".into(),
                link: "a-1".into(),
            },
        );
        assert_eq!(v.remote_count("b", 50), 0);
    }
}
