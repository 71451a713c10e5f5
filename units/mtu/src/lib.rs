//! peercam's media transmission unit (MTU, H.626.4 7.2): the relay used when the PU and CU
//! cannot reach each other directly.
//!
//! [`turn`] runs the STUN/TURN server of `peercam_stun::server` on real sockets.

pub mod turn;

mod error;

pub use error::MtuError;
