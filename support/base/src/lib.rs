//! The small shared vocabulary of peercam.
//!
//! Everything here is pure (no IO, no clock reads) and has at least two users among the
//! units. Identifiers are newtypes, not aliases, so a device id can never be passed where a
//! user id is expected.

mod backoff;
mod ids;
mod pii;
mod scope;

pub use backoff::Backoff;
pub use ids::{DeviceId, IdError, NodeId, Phone};
pub use pii::Pii;
pub use scope::{Scope, ScopeParseError, ScopeSet};
