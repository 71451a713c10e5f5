//! The cloud storage plan routes of the CMU (H.626.4 6.1.13) as [`Client`] methods.

use peercam_signal::cm_plan::{PlanChange, PlanState, PlanView};
use reqwest::Method;

use crate::{Client, CuError};

impl Client {
    /// The plans owners may choose.
    pub async fn plans(&self) -> Result<Vec<PlanView>, CuError> {
        self.call::<(), _>(Method::GET, "/api/v1/plans", None).await
    }

    /// The account's plan and its pool's use (a sub-account sees its owner's).
    pub async fn my_plan(&self) -> Result<PlanState, CuError> {
        self.call::<(), _>(Method::GET, "/api/v1/me/plan", None)
            .await
    }

    /// Chooses a plan (owners); effective at once on the cloud storage units.
    pub async fn set_plan(&self, plan: &str) -> Result<PlanState, CuError> {
        let body = PlanChange {
            plan: plan.to_owned(),
        };
        self.call(Method::PUT, "/api/v1/me/plan", Some(&body)).await
    }
}
