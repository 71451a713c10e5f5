//! Recording on an NVR (H.626.4 8.7.2) and on the camera's SD card (8.7.3): the values the
//! recording commands and the CMU's recording API carry.
//!
//! A *recorder* is the device that stores a camera's media: an NVR bound to the camera, or
//! the camera itself (SD card). The CMU names it in every recording command, and the
//! recorder serves playback (RTSP, `Range: clock=` and `Scale`) and export (HTTP GET of an
//! MP4) on its media endpoint under a token the CMU mints for the exact camera.

use peercam_base::DeviceId;
pub use peercam_record::strategy::{Mode, Retention, Strategy, Window};
use serde::{Deserialize, Serialize};

/// What a recorder says about one camera's recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordingState {
    /// The camera.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub camera: DeviceId,
    /// Its strategy.
    pub strategy: Strategy,
    /// Writing now.
    pub recording: bool,
    /// Bytes stored for the camera.
    pub used_bytes: u64,
    /// Stopped at a non-cyclic quota or a full disk (a storage-full event was raised).
    pub full: bool,
    /// Oldest recording kept, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_ms: Option<u64>,
    /// The last problem (camera unreachable, disk error), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One uninterrupted stretch of recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordedSpan {
    /// Start, Unix ms.
    pub start_ms: u64,
    /// End, Unix ms.
    pub end_ms: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Something that happened (alarm, storage full, recording started or stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordedEvent {
    /// When, Unix ms.
    pub at_ms: u64,
    /// `alarm`, `storage_full`, `recording_started`, `recording_stopped`, `camera_lost`.
    pub kind: String,
    /// Detail.
    pub detail: String,
}

/// The recordings of a camera in a time range (8.7.2.2 record list): the coverage map a
/// timeline draws, and the events in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordingList {
    /// The camera.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub camera: DeviceId,
    /// The range asked, Unix ms.
    pub from_ms: u64,
    /// End of the range, Unix ms.
    pub to_ms: u64,
    /// Recorded spans, clipped to the range, oldest first.
    pub spans: Vec<RecordedSpan>,
    /// Events in the range, oldest first.
    pub events: Vec<RecordedEvent>,
}

/// Longest range one list or export may cover: 31 days.
pub const MAX_RANGE_MS: u64 = 31 * 86_400_000;
