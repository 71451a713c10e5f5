//! The camera's media: a synthetic scene (or other sources), H.264 encoders adapted to each
//! viewer's capabilities (H.626.4 clause 7), and the hub that shares one encoder among the
//! sessions that ask for the same profile.

pub mod audio;
pub mod backchannel;
mod font;
pub mod hub;
pub mod pull;
pub mod scene;

pub use hub::{AccessUnit, MediaHub, Profile, Source, Subscription};
