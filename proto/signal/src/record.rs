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

mod merge;
pub use merge::{MAX_SOURCES, MAX_SPANS_PER_SOURCE, RecorderAnswer, Timeline, TimelineSpan, merge};

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

/// What the camera says about its cloud recording (H.626.4 8.7.1): the recording state as
/// for the other recorders, and where its uploads stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CloudRecordingState {
    /// As for the card and the NVR (`used_bytes`: the account's use on the CS, as last
    /// heard; `full`: stopped on a full pool without overwriting).
    #[serde(flatten)]
    pub recording: RecordingState,
    /// The CS's Cp base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cs_url: Option<String>,
    /// Objects packed and not yet acknowledged.
    pub backlog_objects: u64,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// Objects the CS acknowledged since the camera started.
    pub acked_objects: u64,
    /// Objects dropped before upload (the backlog was full) since the camera started.
    pub lost_objects: u64,
    /// Objects the CS deleted on the camera's prune requests (8.7.1) since it started.
    pub pruned_objects: u64,
    /// The last acknowledgement, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ack_ms: Option<u64>,
    /// The account's quota on the CS, as last heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// The next upload sequence number.
    pub next_seq: u64,
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
    /// Stored late, back-filled after an outage (the cloud; design "One timeline").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfilled: bool,
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

/// A browser's playback control, sent as JSON text on the WebRTC data channel of a
/// recording's playback (8.7.2.2 over WebRTC; docs/protocol.md "Playback over WebRTC").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlaybackControl {
    /// Play (again) at `scale` (`"1"`, `"4"`, `"-2"`, `"1/2"`, as RTSP `Scale`; default the
    /// current one), from `at_ms` (Unix ms; default where it stands).
    Play {
        /// The speed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scale: Option<String>,
        /// Where to seek to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<u64>,
    },
    /// Pause where it stands.
    Pause,
    /// While paused: one frame forward (`forward`) or back.
    Step {
        /// The direction.
        forward: bool,
    },
    /// Send `[from_ms, to_ms)` as an MP4 file on the data channel (8.7.2.2 steps 7-10): an
    /// [`ExportNotice`] `start`, the file in binary messages, then `done` (or `error`).
    Export {
        /// Start, Unix ms.
        from_ms: u64,
        /// End, Unix ms.
        to_ms: u64,
    },
}

/// An export's progress on the data channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportNotice {
    /// `start`, `done` or `error`.
    pub export: String,
    /// File size (with `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// A file name to save it as (with `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Video frames in it (with `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    /// What went wrong (with `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a WebRTC playback stands, sent by the recorder on the data channel every 250 ms
/// and after every control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackStatus {
    /// The recorded time of the frame shown last, Unix ms.
    pub pos_ms: u64,
    /// The speed, as RTSP `Scale`.
    pub scale: String,
    /// `playing`, `paused` or `ended` (no more recording in this direction).
    pub state: String,
    /// Why the last control was refused, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
