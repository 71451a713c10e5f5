//! Cloud storage logic for peercam (the CS of H.626.4 clause 7, 8.7.1 recording to the cloud,
//! 6.1.13 free and paid storage), with no IO: functions take bytes, keys and times and
//! return decisions. The design is `docs/design/cloud-storage.md`.
//!
//! | module | what |
//! |---|---|
//! | [`key`] | object keys (`<prefix>/<yyyy>/<mm>/<dd>/<start>-<seq>.seg`, manifests, clips) and camera prefixes: one spelling each, a parser that refuses anything else |
//!
//! The CS (`peercam-cs`), the camera's uploader (`peercam-pu`) and the CMU's grant and key
//! service call into this crate for every format and decision.

pub mod envelope;
mod error;
pub mod grant;
pub mod key;
pub mod object;

pub use error::Error;
pub use key::{ClipKey, ManifestKey, ObjectKey, Prefix, SegmentKey};
