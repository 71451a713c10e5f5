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
use peercam_signal::cmd::DeviceCommand;
use peercam_signal::relay::{DeviceAddresses, MtuOffer};
use peercam_signal::sc::CommandOutcome;
use serde::{Deserialize, Serialize};

use crate::store::presence::{Lease, PresenceRow};

/// How long a node link's lease lasts, ms.
pub(crate) const LEASE_MS: u64 = 10_000;
/// How often the holding instance renews its links' leases (and every instance reads them).
pub(crate) const RENEW: std::time::Duration = std::time::Duration::from_secs(1);

/// Bus subject of presence notes (to every instance).
pub(crate) const PRESENCE: &str = "presence";
/// Bus subject of new alarms and resets, to every instance's live alarm streams (8.8).
pub(crate) const ALARM: &str = "alarm";
/// Bus subject prefix of requests routed to one instance (`ask.INSTANCE`).
pub(crate) const ASK: &str = "ask.";
/// Bus subject prefix of answers to routed requests (`answer.INSTANCE`).
pub(crate) const ANSWER: &str = "answer.";

/// The version of the bus's JSON messages, their `v` field (docs/protocol.md, "The bus
/// between CMU instances"). A message of another version (or none) is logged and
/// skipped: instances of two releases that disagree on it do not misread each other.
pub(crate) const BUS_VERSION: u64 = 1;

/// Why a bus message was skipped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Undecodable {
    /// `v` is another version, or absent (`None`).
    #[error("bus message of version {0:?}; this instance reads version {BUS_VERSION}")]
    Version(Option<u64>),
    /// Not JSON of the expected shape.
    #[error("malformed bus message: {0}")]
    Malformed(String),
}

/// `msg`'s JSON object with `"v": BUS_VERSION` beside its fields.
pub(crate) fn encode<T: Serialize>(msg: &T) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Versioned<'a, T> {
        v: u64,
        #[serde(flatten)]
        msg: &'a T,
    }
    serde_json::to_string(&Versioned {
        v: BUS_VERSION,
        msg,
    })
}

/// A message of [`BUS_VERSION`] from `payload`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(payload: &str) -> Result<T, Undecodable> {
    #[derive(Deserialize)]
    struct Version {
        v: Option<u64>,
    }
    let Version { v } =
        serde_json::from_str(payload).map_err(|e| Undecodable::Malformed(e.to_string()))?;
    if v != Some(BUS_VERSION) {
        return Err(Undecodable::Version(v));
    }
    serde_json::from_str(payload).map_err(|e| Undecodable::Malformed(e.to_string()))
}

/// A change of presence, published by the instance holding the node link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Note {
    /// A node linked to the sender.
    NodeUp {
        node: String,
        link: String,
        until_ms: u64,
    },
    /// A node's link to the sender is gone, with every device it held.
    NodeDown { node: String, link: String },
    /// A device is online on `node` through `link`.
    Online {
        device_id: DeviceId,
        node: String,
        session: String,
        link: String,
    },
    /// A device session on `node` ended.
    Offline {
        device_id: DeviceId,
        node: String,
        session: String,
    },
    /// H.626.4 8.3 step 4: a session's checked addresses.
    Endpoints {
        device_id: DeviceId,
        session: String,
        addresses: DeviceAddresses,
    },
    /// The sender wrote all its presence rows again (after its bus reconnected): read them.
    Republished,
    /// docs/security.md D5: end live sessions on a device and on the MTUs relaying it.
    Revoke {
        device_id: DeviceId,
        user: Option<i64>,
        mtus: Vec<DeviceId>,
    },
    /// One device, one session: the instance holding `link` drops `session`.
    Kick {
        device_id: DeviceId,
        session: String,
        link: String,
    },
}

/// A note with its sender.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) from: String,
    pub(crate) note: Note,
}

/// An alarm event with its sender.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AlarmNote {
    pub(crate) from: String,
    pub(crate) alarm: crate::alarms::Published,
}

/// A request for the instance holding a device's node link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Routed {
    Command {
        device_id: DeviceId,
        command: DeviceCommand,
    },
    SelectMtu {
        device_id: DeviceId,
    },
}

/// Its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RoutedAnswer {
    Command {
        node: String,
        outcome: CommandOutcome,
    },
    Mtu {
        choice: Option<MtuOffer>,
    },
}

/// `ask.INSTANCE`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Ask {
    pub(crate) from: String,
    pub(crate) rid: u64,
    pub(crate) request: Routed,
}

/// `answer.INSTANCE`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub(crate) rid: u64,
    pub(crate) answer: RoutedAnswer,
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
    fn h626_7_bus_messages_carry_their_version() {
        let e = Envelope {
            from: "a".into(),
            note: Note::Offline {
                device_id: dev(3),
                node: "scu-1".into(),
                session: "s".into(),
            },
        };
        let json = encode(&e).unwrap();
        assert!(json.starts_with("{\"v\":1,"), "{json}");
        let back: Envelope = decode(&json).unwrap();
        assert_eq!((&back.from, &back.note), (&e.from, &e.note));
        // Another release's message, or one from before versions: skipped, with the reason.
        let v2 = json.replacen("\"v\":1", "\"v\":2", 1);
        assert_eq!(
            decode::<Envelope>(&v2).unwrap_err(),
            Undecodable::Version(Some(2))
        );
        let unversioned = serde_json::to_string(&e).unwrap();
        assert_eq!(
            decode::<Envelope>(&unversioned).unwrap_err(),
            Undecodable::Version(None)
        );
        assert!(matches!(
            decode::<Envelope>("{\"v\":1,\"from\":7}"),
            Err(Undecodable::Malformed(_))
        ));
        assert!(matches!(
            decode::<Envelope>("not json"),
            Err(Undecodable::Malformed(_))
        ));
    }

    proptest::proptest! {
        /// Round trip of any routed answer, and any text is refused cleanly, never a panic.
        #[test]
        fn h626_7_bus_decode_round_trips_and_never_panics(
            rid in proptest::prelude::any::<u64>(),
            junk in ".{0,200}",
        ) {
            let a = Answer {
                rid,
                answer: RoutedAnswer::Mtu { choice: None },
            };
            let back: Answer = decode(&encode(&a).unwrap()).unwrap();
            proptest::prop_assert_eq!(back.rid, rid);
            let _ = decode::<Answer>(&junk);
        }
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
