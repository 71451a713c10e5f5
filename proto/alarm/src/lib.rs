//! Alarm logic for peercam (H.626.4 8.8 alarm flow, 6.1.9 alarm messages, 6.1.12 timed
//! snapshots), with no IO: functions take times, pictures and events and return decisions.
//!
//! | module | what |
//! |---|---|
//! | [`model`] | the alarm a camera raises, the per-camera alarm strategy (armed sources, weekly schedule, zones, sensitivity, cooldown, linkage) and the state a camera reports |
//! | [`snapshot_schedule`] | 6.1.12 timed snapshots: every so often inside weekly windows, when the next is due |
//! | [`template`] | 6.1.9 message templates: placeholders, rendering, SMS encoding and segments |
//! | [`engine`] | the camera's alarm engine: arming, cooldowns, the ordered queue of alarms for the platform, the alarm output |
//! | [`motion`] | motion and tamper detection on a small luma plane |
//! | [`onvif`] | ONVIF PullPoint notifications of a wrapped camera, read as events |
//!
//! The camera's sources (pictures, input lines) live in `peercam-pu`, the linkage (recording,
//! snapshot, messages) in `peercam-cmu`; both call into this crate for every decision.

pub mod engine;
mod error;
pub mod model;
pub mod motion;
pub mod onvif;
pub mod snapshot_schedule;
pub mod template;

pub use error::Error;
pub use model::{
    Alarm, AlarmKind, AlarmState, AlarmStrategy, InputState, Linkage, MAX_ALARM_ID, MAX_DETAIL,
    MAX_ZONES, Zone,
};
