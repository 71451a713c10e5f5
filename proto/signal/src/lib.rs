//! The peercam platform protocol: the messages H.626.4 leaves to the implementer.
//!
//! H.626.4 names the reference points between units (clause 9) but fixes no wire format for
//! the platform ones. This crate defines them, versioned, and is **sans-IO**: it parses and
//! produces bytes, takes `now` as a parameter and never touches a socket, a file or the clock.
//!
//! | module | reference point | carried over |
//! |---|---|---|
//! | [`ps`] | Ps / Pm: SCU <-> PU (and NVR) | WebSocket over TLS, JSON text frames |
//! | [`sc`] | Sc / Sm: SCU <-> CMU | WebSocket over TLS, JSON text frames |
//! | [`sc_link`] | Sc / Sm as a pair of state machines, and the CMU's route table | |
//! | [`refusal`] | typed refusal codes of play verdicts and platform answers | inside `ps` and `sc` |
//! | [`cmd`] | commands routed CMU -> SCU -> PU and their replies | inside `ps` and `sc` |
//! | [`record`] | recording on NVRs and SD cards (8.7.2, 8.7.3) | inside `cmd` and `cm` |
//! | [`relay`] | the MTU: reports, selection (7.2, Sd), viewing paths | inside `ps`, `sc` and `cm` |
//! | [`cm`] | Cm: CU <-> CMU | HTTP/JSON (see the OpenAPI document the CMU serves) |
//! | [`cm_alarm`] | Cm: the alarm routes (8.8, 6.1.9) | HTTP/JSON and server-sent events |
//! | [`cm_clip`] | Cm: shared clip links (8.7.1 download) | HTTP/JSON |
//! | [`cm_plan`] | Cm: cloud storage plans and usage (6.1.13) | HTTP/JSON |
//! | [`cm_campaign`] | Cm: fleet upgrade campaigns (8.11.1), the system log (6.1.14) | HTTP/JSON |
//! | [`cm_snapshot`] | Cm: the timed snapshot schedule (6.1.12) | HTTP/JSON |
//! | [`cm_users`] | Cm: the operator's user management and two-factor sign-in (6.2) | HTTP/JSON |
//! | [`crm`] | the CMU and the operator's CRM (6.2) | HTTP/JSON |
//!
//! Every WebSocket frame is one [`Envelope`]: a protocol version, a request id, an optional
//! `re` naming the request it answers, and a typed body. [`decode`] enforces the size and
//! nesting limits before any allocation proportional to the input.
//!
//! The registration handshake of H.626.4 8.1 is a signed challenge ([`register`]); the
//! device side and the SCU side are pure state machines in [`link`], driven by the units'
//! IO shells: feed them bytes and `now`, drain `poll_transmit` / `poll_event`, and call
//! `handle_timeout` when `poll_timeout` is reached.

pub mod bus;
pub mod clock;
pub mod cm;
pub mod cm_alarm;
pub mod cm_billing;
pub mod cm_campaign;
pub mod cm_clip;
pub mod cm_equipment;
pub mod cm_plan;
pub mod cm_snapshot;
pub mod cm_users;
pub mod cmd;
pub mod control;
pub mod crm;
pub mod discover;
mod envelope;
pub mod identity;
pub mod link;
pub mod play;
pub mod ps;
pub mod record;
pub mod refusal;
pub mod register;
pub mod relay;
pub mod sc;
pub mod sc_link;
pub mod snapshot_link;
pub mod token;
pub mod trickle;
pub mod upgrade;

/// The alarm model (H.626.4 8.8), re-exported: its types travel in [`cmd`] messages.
pub use peercam_alarm as alarm;

pub use envelope::{
    DecodeError, Envelope, MAX_DEPTH, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, decode, encode,
};
