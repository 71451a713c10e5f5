//! The timed-snapshot routes of the CMU (H.626.4 6.1.12) as [`Client`] methods.

use peercam_signal::cm_snapshot::{SnapshotScheduleRequest, SnapshotScheduleState};
use reqwest::Method;

use crate::{Client, CuError};

impl Client {
    /// A camera's timed-snapshot schedule and how it went.
    pub async fn snapshot_schedule(&self, device: &str) -> Result<SnapshotScheduleState, CuError> {
        let path = format!("/api/v1/devices/{device}/snapshot-schedule");
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// Sets a camera's timed snapshots (every N minutes in weekly windows, SMS to a phone).
    pub async fn set_snapshot_schedule(
        &self,
        device: &str,
        schedule: &SnapshotScheduleRequest,
    ) -> Result<SnapshotScheduleState, CuError> {
        let path = format!("/api/v1/devices/{device}/snapshot-schedule");
        self.call(Method::PUT, &path, Some(schedule)).await
    }

    /// Stops a camera's timed snapshots.
    pub async fn delete_snapshot_schedule(&self, device: &str) -> Result<(), CuError> {
        let path = format!("/api/v1/devices/{device}/snapshot-schedule");
        self.call::<(), ()>(Method::DELETE, &path, None).await
    }
}
