//! Commands the CMU routes to a device through the SCU that holds it, and their replies.
//!
//! H.626.4 routes device control CU -> CMU -> SCU -> PU with the result going back the same
//! way (8.5, 8.9.1, 8.10, 8.11.1). Each later flow adds its command here.

use serde::{Deserialize, Serialize};

/// A command for a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceCommand {
    /// Ask the device to describe itself (software, uptime).
    Describe,
}

/// A device's answer to a [`DeviceCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceReply {
    /// Answer to [`DeviceCommand::Describe`].
    Description(DeviceDescription),
    /// The command failed on the device.
    Failed {
        /// Machine-readable reason.
        code: String,
        /// Human-readable explanation.
        message: String,
    },
}

/// What a device says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceDescription {
    /// Software version of the device agent.
    pub sw_version: String,
    /// Manufacturer.
    pub vendor: String,
    /// Hardware model.
    pub model: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Seconds this registration with the SCU has lasted.
    pub connected_s: u64,
}
