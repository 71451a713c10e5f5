//! Recording logic for peercam's recorders (the NVR of H.626.4 8.7.2 and the camera's SD card
//! of 8.7.3), with no IO: functions take times and bytes and return decisions.
//!
//! | module | what |
//! |---|---|
//! | [`strategy`] | record strategies (continuous, weekly, periodic, alarm with pre/post-roll) and retention (cyclic overwrite or stop when full); when to record and when to look again |
//! | [`index`] | the per-segment sample index: one compact entry per video frame or audio chunk |
//! | [`time`] | wall-clock playback ranges: RFC 2326 `clock=` times, RFC 3339 |
//! | [`trick`] | playback speeds (`Scale`) and which frames a trick-play mode sends, and when |
//!
//! The store that writes segments, the recorder that pulls cameras and the playback server
//! live in `peercam-store` and `peercam-nvr`; they call into this crate for every decision.

mod error;
pub mod index;
pub mod strategy;
pub mod time;
pub mod trick;

pub use error::Error;
