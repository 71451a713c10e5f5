//! STUN and TURN wire protocol for peercam's STUN/TURN server (the MTU of H.626.4).
//!
//! The crate is **sans-IO**: functions take and return bytes, addresses and times, and
//! the caller owns sockets and clocks. There is no async runtime and no global state.
//!
//! | module | what |
//! |---|---|
//! | [`message`] | STUN messages (RFC 8489): header, typed attributes for STUN, TURN (RFC 8656) and RFC 5780, MESSAGE-INTEGRITY(-SHA256), FINGERPRINT |
//! | [`framing`] | ChannelData (RFC 8656 12.4) and cutting a TCP/TLS byte stream into STUN messages and ChannelData frames |
//! | [`classic`] | Binding requests of RFC 3489 clients (no magic cookie), answered as RFC 8489 12 says |
//! | [`auth`] | long-term keys (RFC 8489 9.2) and coturn-style time-limited REST credentials |
//! | [`policy`] | which peer addresses a TURN server may relay to (docs/security.md D8, F3) |
//! | [`server`] | the TURN server state machine: allocations, permissions, channels, nonces, quotas |
//!
//! The codec modules know nothing of allocations; [`server`] builds the TURN server's state
//! machine on them (still sans-IO: the `peercam-mtu` crate drives it over sockets). The
//! crate does not apply SASLprep or the OpaqueString profile to user strings.
//!
//! # Example: answer a Binding request
//!
//! ```
//! use peercam_stun::message::{Attribute, Class, Message, Method, TransactionId};
//! # fn main() -> Result<(), peercam_stun::Error> {
//! let request = Message::new(Class::Request, Method::BINDING, TransactionId([7; 12]))
//!     .encode_sealed(None, true)?;
//!
//! let req = Message::decode(&request)?;
//! peercam_stun::message::verify_fingerprint(&request)?;
//! let from = "203.0.113.9:40000".parse().expect("address");
//! let response = Message::new(Class::SuccessResponse, req.method, req.transaction_id)
//!     .with(Attribute::XorMappedAddress(from))
//!     .encode_sealed(None, true)?;
//! assert_eq!(Message::decode(&response)?.xor_mapped_address(), Some(from));
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod classic;
mod error;
pub mod framing;
pub mod message;
pub mod policy;
pub mod server;

pub use error::Error;
