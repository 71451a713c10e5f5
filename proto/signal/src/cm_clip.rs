//! Cm bodies of shared clips (H.626.4 8.7.1 download; issue 17 item 9): an owner exports a
//! range of a camera's recordings and gets a signed, expiring, revocable link that plays
//! and downloads the clip in a browser without an account.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `POST /api/v1/devices/{id}/clips`: share `[from, to)` of the camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClipRequest {
    /// Start, RFC 3339 UTC (as the record list's times).
    pub from: String,
    /// End (excluded), RFC 3339 UTC; at most 15 minutes after `from`.
    pub to: String,
    /// The recorder the client exports from (`sd`, an NVR's id or `cloud`), for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<String>,
    /// Seconds until the link stops working: 60 to 30 days (default 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
    /// A note for the owner's list (at most 120 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Where the client uploads the clip's MP4: one `PUT` of the whole file to `url` with
/// `Authorization: Bearer <grant>` (a share grant for this clip's key only, op `clip`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClipUpload {
    /// The CS's upload URL of this clip.
    pub url: String,
    /// The upload grant (`pcg1...`).
    pub grant: String,
    /// When the grant expires, Unix seconds.
    pub expires_at: u64,
    /// Largest MP4 the CS takes, bytes.
    pub max_bytes: u64,
}

/// A shared clip as its owner sees it (`GET /api/v1/clips`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClipView {
    /// The share id (22 characters; it is the link's secret).
    pub id: String,
    /// The public link: `https://CMU/c/<id>`.
    pub link: String,
    /// The camera.
    pub camera: String,
    /// Start and end of the clip, Unix ms.
    pub from_ms: u64,
    /// End (excluded), Unix ms.
    pub to_ms: u64,
    /// The recorder it was exported from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<String>,
    /// The owner's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Created, Unix seconds.
    pub created_at: u64,
    /// The link stops working then, Unix seconds.
    pub expires_at: u64,
    /// Revoked then, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// Pages opened.
    pub views: u64,
    /// Downloads.
    pub downloads: u64,
}

/// The answer to `POST /api/v1/devices/{id}/clips`: the clip and where to upload it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClipCreated {
    /// The clip (its link works once the upload is done).
    pub clip: ClipView,
    /// Where to upload the MP4.
    pub upload: ClipUpload,
}
