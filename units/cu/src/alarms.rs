//! The alarm routes of the CMU (H.626.4 8.8, 6.1.9) as [`Client`] methods.

use peercam_alarm::{AlarmKind, AlarmState, AlarmStrategy};
use peercam_signal::cm_alarm::{
    AlarmInputRequest, AlarmList, AlarmStrategyState, AlarmTemplates, AlarmView, TemplatePreview,
    TemplatePreviewRequest,
};
use reqwest::Method;

use crate::{Client, CuError};

impl Client {
    /// Alarms, newest first; `query` is the query string without `?` (`kind=motion&limit=5`).
    pub async fn alarms(&self, query: &str) -> Result<AlarmList, CuError> {
        self.call::<(), _>(Method::GET, &format!("/api/v1/alarms?{query}"), None)
            .await
    }

    /// One alarm.
    pub async fn alarm(&self, id: i64) -> Result<AlarmView, CuError> {
        self.call::<(), _>(Method::GET, &format!("/api/v1/alarms/{id}"), None)
            .await
    }

    /// Resets an alarm (8.8); the camera clears it and its output.
    pub async fn reset_alarm(&self, id: i64) -> Result<AlarmView, CuError> {
        self.call::<(), _>(Method::POST, &format!("/api/v1/alarms/{id}/reset"), None)
            .await
    }

    /// A camera's alarm strategy as saved, and what the camera reports.
    pub async fn alarm_strategy(&self, device: &str) -> Result<AlarmStrategyState, CuError> {
        let path = format!("/api/v1/devices/{device}/alarm-strategy");
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// Saves a camera's alarm strategy and sends it (8.8 steps 1-4).
    pub async fn set_alarm_strategy(
        &self,
        device: &str,
        strategy: &AlarmStrategy,
    ) -> Result<AlarmStrategyState, CuError> {
        let path = format!("/api/v1/devices/{device}/alarm-strategy");
        self.call(Method::PUT, &path, Some(strategy)).await
    }

    /// Switches a simulated alarm input of the camera.
    pub async fn trip_input(
        &self,
        device: &str,
        input: u8,
        active: bool,
    ) -> Result<AlarmState, CuError> {
        let path = format!("/api/v1/devices/{device}/alarm-input");
        let req = AlarmInputRequest { input, active };
        self.call(Method::POST, &path, Some(&req)).await
    }

    /// The caller's message templates per kind (6.1.9).
    pub async fn alarm_templates(&self) -> Result<AlarmTemplates, CuError> {
        self.call::<(), _>(Method::GET, "/api/v1/me/alarm-templates", None)
            .await
    }

    /// Replaces the caller's message templates.
    pub async fn set_alarm_templates(
        &self,
        templates: &AlarmTemplates,
    ) -> Result<AlarmTemplates, CuError> {
        self.call(Method::PUT, "/api/v1/me/alarm-templates", Some(templates))
            .await
    }

    /// Renders a template for a sample alarm of `kind`.
    pub async fn preview_template(
        &self,
        kind: AlarmKind,
        template: &str,
    ) -> Result<TemplatePreview, CuError> {
        let req = TemplatePreviewRequest {
            kind,
            template: template.to_owned(),
        };
        self.call(
            Method::POST,
            "/api/v1/me/alarm-templates/preview",
            Some(&req),
        )
        .await
    }
}
