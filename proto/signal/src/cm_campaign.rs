//! Cm bodies of fleet upgrade campaigns (H.626.4 8.11.1 run by the operator over many
//! devices: a canary share, then waves, paused by itself when too many fail) and of the
//! operator's system log (6.1.14).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Which devices a campaign upgrades. The model is always the package's; the other
/// filters narrow it down (all given ones apply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignTarget {
    /// Only devices of this model; refused unless it is the package's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Only devices that run this version now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Only these devices (a group); each must be of the package's model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
}

/// `POST /api/v1/admin/campaigns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignCreate {
    /// A name for people.
    pub name: String,
    /// The package to install: its payload's SHA-256 (`GET /api/v1/admin/packages`).
    pub package: String,
    /// Which devices.
    #[serde(default)]
    pub target: CampaignTarget,
    /// The canary's share of the devices, percent (at least one device). Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_percent: Option<u32>,
    /// Devices per wave after the canary. Default a quarter of the rest (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave_size: Option<u32>,
    /// Seconds between the end of a stage and the start of the next. Default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_s: Option<u64>,
    /// The campaign pauses when more than this percentage of a stage's results are
    /// failures. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percent: Option<u32>,
    /// ... once the stage has at least this many results (or all of a smaller stage's).
    /// Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_results: Option<u32>,
    /// A device that reports nothing this long after its order has failed. Default 1800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_timeout_s: Option<u64>,
}

/// The counts of one stage (the canary is stage 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StageCounts {
    /// Stage number (0: the canary).
    pub stage: u32,
    /// Devices in it.
    pub devices: u32,
    /// Not ordered yet.
    pub pending: u32,
    /// Ordered, downloading or installing.
    pub in_flight: u32,
    /// Running the new version.
    pub installed: u32,
    /// Failed.
    pub failed: u32,
    /// Skipped (already newer, or offline when the campaign ended).
    pub skipped: u32,
    /// Offline when its turn came: ordered when it comes back.
    pub offline: u32,
}

/// A campaign, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CampaignView {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The package's SHA-256.
    pub package: String,
    /// The device model.
    pub model: String,
    /// The version installed.
    pub version: String,
    /// `running`, `soaking` (waiting between stages), `paused`, `aborted` or `completed`.
    pub state: String,
    /// Why it is paused or aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The stage under way.
    pub stage: u32,
    /// When the next stage starts while soaking, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_stage_at: Option<u64>,
    /// Parameters in force.
    pub canary_percent: u32,
    /// Devices per wave.
    pub wave_size: u32,
    /// Seconds between stages.
    pub soak_s: u64,
    /// Pause threshold, percent of failures.
    pub failure_percent: u32,
    /// Results needed before the threshold applies.
    pub min_results: u32,
    /// Seconds before a silent device has failed.
    pub device_timeout_s: u64,
    /// Counts per stage.
    pub stages: Vec<StageCounts>,
    /// Who created it (account id).
    pub created_by: i64,
    /// When, Unix seconds.
    pub created_at: u64,
    /// Last change, Unix seconds.
    pub updated_at: u64,
}

/// One device's result in a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CampaignDeviceView {
    /// Device id.
    pub device_id: String,
    /// Its stage.
    pub stage: u32,
    /// `pending`, `sent`, `downloading`, `installing`, `installed`, `failed`, `skipped` or
    /// `offline`.
    pub state: String,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Bytes downloaded, of `total` (while downloading).
    #[serde(default)]
    pub done: u64,
    /// Payload size.
    #[serde(default)]
    pub total: u64,
    /// Last change, Unix seconds.
    pub updated_at: u64,
}

/// `GET /api/v1/admin/campaigns/{id}`: the campaign and every device's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CampaignDetail {
    /// The campaign.
    pub campaign: CampaignView,
    /// Its devices, by stage then id.
    pub devices: Vec<CampaignDeviceView>,
}

/// `POST /api/v1/admin/campaigns/{id}/pause|resume|abort`: an optional reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignAction {
    /// Why (kept in the audit log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One row of the system log: what a unit did or saw (start, stop, an SCU node linking,
/// a fault raised or cleared, a campaign changing state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SystemLogEntry {
    /// Row id (the cursor of the next page).
    pub id: i64,
    /// When, Unix seconds.
    pub at: u64,
    /// `cmu`, `scu`, ...
    pub unit: String,
    /// What, `unit.start`, `node.link`, `fault.raised`, `campaign.paused`, ...
    pub event: String,
    /// The device, node or campaign concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Free text.
    pub detail: String,
}
