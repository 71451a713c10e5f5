//! Cm bodies of the timed snapshots (H.626.4 6.1.12): a camera's snapshot schedule as the
//! user sets it, and what the platform reports about it.

use peercam_record::strategy::Window;
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

fn default_width() -> u16 {
    640
}

fn default_keep() -> u32 {
    48
}

/// H.626.4 6.1.12: one snapshot every `every_min` minutes inside weekly windows of local
/// time, each sent to `phone` as an SMS carrying a short, expiring link to the JPEG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SnapshotScheduleRequest {
    /// Whether snapshots are taken at all.
    #[serde(default)]
    pub enabled: bool,
    /// One snapshot every this many minutes (1 to 1440).
    pub every_min: u32,
    /// Weekly windows of local time, like alarm strategies (empty: around the clock).
    #[serde(default)]
    pub schedule: Vec<Window>,
    /// Minutes east of UTC in which `schedule` is written (-840 to 840).
    #[serde(default)]
    pub utc_offset_min: i16,
    /// Where the SMS go, E.164 (`+` and 8 to 15 digits).
    pub phone: String,
    /// Widest picture, pixels (16 to 1280). Default 640.
    #[serde(default = "default_width")]
    pub max_width: u16,
    /// How many snapshots of this camera are kept (1 to 1000); the oldest go first.
    /// Default 48.
    #[serde(default = "default_keep")]
    pub keep: u32,
}

/// A camera's snapshot schedule and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SnapshotScheduleState {
    /// As saved.
    pub schedule: SnapshotScheduleRequest,
    /// The last due time taken (Unix ms), whether or not the camera answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_due_ms: Option<u64>,
    /// When the next snapshot is due (Unix ms); none when disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due_ms: Option<u64>,
    /// Snapshots of this camera kept now.
    pub kept: u32,
    /// Timed-snapshot SMS the camera's owner was sent today (UTC).
    pub sms_today: u32,
    /// The owner's daily quota of timed-snapshot SMS.
    pub sms_per_day: u32,
}
