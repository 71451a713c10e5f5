//! Cloud storage logic for peercam (the CS of H.626.4 clause 7, 8.7.1 recording to the cloud,
//! 6.1.13 free and paid storage), with no IO: functions take bytes, keys and times and
//! return decisions. The design is `docs/design/cloud-storage.md`.
//!
//! | module | what |
//! |---|---|
//! | [`key`] | object keys (`<prefix>/<yyyy>/<mm>/<dd>/<start>-<seq>.seg`, manifests, clips) and camera prefixes: one spelling each, a parser that refuses anything else |
//! | [`grant`] | grants (`pcg1`): claims, Ed25519 signing, the CS's ordered checks with one refusal each |
//! | [`object`] | the upload object (`PCO1`): header, segment table with `peercam_record` sample indexes, samples; deterministic encoding and a decoder that checks everything |
//! | [`clip`] | shared clips: the 128-bit share id, the public link's paths (`/s/<id>`, `/s/<id>/download`), the limits of a clip request |
//! | [`envelope`] | encryption at rest (`PCE1`): 64 KiB AES-256-GCM chunks under a per-object HKDF key, ranged opening; data keys wrapped under the CMU's key |
//! | [`quota`] | the account pool: admit a write or answer `Full {used, quota, need}`; which objects a prune deletes, and what the asking camera is told |
//! | [`upload`] | the camera's outbox: packed, in flight, acked or lost; a live lane (newest first) and a back-fill lane (oldest first); back-off, prune on 507, grant refresh on 401 |
//!
//! The CS (`peercam-cs`), the camera's uploader (`peercam-pu`) and the CMU's grant and key
//! service call into this crate for every format and decision.

pub mod clip;
pub mod envelope;
mod error;
pub mod grant;
pub mod key;
pub mod object;
pub mod quota;
pub mod range;
pub mod upload;

pub use error::Error;
pub use key::{ClipKey, ManifestKey, ObjectKey, Prefix, SegmentKey};
