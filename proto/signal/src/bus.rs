//! Messages between CMU instances on the platform's bus (H.626.4 7: the CMU's location and
//! presence, in several instances; docs/protocol.md, "The bus between CMU instances").
//!
//! Each message is a JSON object with its version in `v` beside its fields; an instance
//! skips, and logs, a message of another version rather than misread it. Subjects:
//! [`PRESENCE`] and [`ALARM`] go to every instance, `ask.INSTANCE` and `answer.INSTANCE` to
//! one.

use serde::{Deserialize, Serialize};

use peercam_base::DeviceId;

use crate::cmd::DeviceCommand;
use crate::relay::{DeviceAddresses, MtuOffer};
use crate::sc::CommandOutcome;

/// Bus subject of presence notes (to every instance).
pub const PRESENCE: &str = "presence";
/// Bus subject of new alarms and resets, to every instance's live alarm streams (8.8).
pub const ALARM: &str = "alarm";
/// Bus subject prefix of requests routed to one instance (`ask.INSTANCE`).
pub const ASK: &str = "ask.";
/// Bus subject prefix of answers to routed requests (`answer.INSTANCE`).
pub const ANSWER: &str = "answer.";

/// The version of the bus's JSON messages, their `v` field (docs/protocol.md, "The bus
/// between CMU instances"). A message of another version (or none) is logged and
/// skipped: instances of two releases that disagree on it do not misread each other.
pub const BUS_VERSION: u64 = 1;

/// Why a bus message was skipped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Undecodable {
    /// `v` is another version, or absent (`None`).
    #[error("bus message of version {0:?}; this instance reads version {BUS_VERSION}")]
    Version(Option<u64>),
    /// Not JSON of the expected shape.
    #[error("malformed bus message: {0}")]
    Malformed(String),
}

/// `msg`'s JSON object with `"v": BUS_VERSION` beside its fields.
pub fn encode<T: Serialize>(msg: &T) -> Result<String, serde_json::Error> {
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
pub fn decode<T: serde::de::DeserializeOwned>(payload: &str) -> Result<T, Undecodable> {
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
pub enum Note {
    /// A node linked to the sender.
    NodeUp {
        /// The SCU node's name.
        node: String,
        /// The link's id (one per connection of the node to an instance).
        link: String,
        /// Unix ms the link's lease ends unless renewed.
        until_ms: u64,
    },
    /// A node's link to the sender is gone, with every device it held.
    NodeDown {
        /// The SCU node's name.
        node: String,
        /// The link that ended.
        link: String,
    },
    /// A device is online on `node` through `link`.
    Online {
        /// The device.
        device_id: DeviceId,
        /// The SCU node holding it.
        node: String,
        /// Its session on that node.
        session: String,
        /// The node's link to the instance that published this.
        link: String,
    },
    /// A device session on `node` ended.
    Offline {
        /// The device.
        device_id: DeviceId,
        /// The SCU node that held it.
        node: String,
        /// The session that ended (a newer one stays).
        session: String,
    },
    /// H.626.4 8.3 step 4: a session's checked addresses.
    Endpoints {
        /// The device.
        device_id: DeviceId,
        /// The session they belong to.
        session: String,
        /// Its local and mapped addresses.
        addresses: DeviceAddresses,
    },
    /// The sender wrote all its presence rows again (after its bus reconnected): read them.
    Republished,
    /// docs/security.md D5: end live sessions on a device and on the MTUs relaying it.
    Revoke {
        /// The device.
        device_id: DeviceId,
        /// Only this user's sessions, or everyone's.
        user: Option<i64>,
        /// MTUs relaying the device, told too.
        mtus: Vec<DeviceId>,
    },
    /// One device, one session: the instance holding `link` drops `session`.
    Kick {
        /// The device.
        device_id: DeviceId,
        /// The session to drop.
        session: String,
        /// The link it is on.
        link: String,
    },
}

/// A note with its sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending instance.
    pub from: String,
    /// What changed.
    pub note: Note,
}

/// A request for the instance holding a device's node link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Routed {
    /// A command for the device, sent through its node.
    Command {
        /// The device.
        device_id: DeviceId,
        /// The command.
        command: DeviceCommand,
    },
    /// Choose an MTU for relaying the device (from the MTUs on its node).
    SelectMtu {
        /// The device.
        device_id: DeviceId,
    },
}

/// Its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoutedAnswer {
    /// What became of a command.
    Command {
        /// The node that carried it.
        node: String,
        /// The device's reply, or why there is none.
        outcome: CommandOutcome,
    },
    /// The chosen MTU, if any.
    Mtu {
        /// The MTU's offer.
        choice: Option<MtuOffer>,
    },
}

/// `ask.INSTANCE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ask {
    /// The asking instance (its answer goes to `answer.FROM`).
    pub from: String,
    /// The request's id, echoed in the answer.
    pub rid: u64,
    /// The request.
    pub request: Routed,
}

/// `answer.INSTANCE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The request's id.
    pub rid: u64,
    /// The answer.
    pub answer: RoutedAnswer,
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
}
