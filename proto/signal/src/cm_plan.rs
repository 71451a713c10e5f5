//! Cm bodies of cloud storage plans (H.626.4 6.1.13: free storage for every account, paid
//! storage beyond it): the CMU's plan catalogue, an owner's subscription and the pool's
//! usage as the cloud storage units report it.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One plan of the catalogue (`GET /api/v1/plans`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlanView {
    /// Its id (`free`, `plus`, ...).
    pub id: String,
    /// Its name, for people.
    pub name: String,
    /// Bytes the account's cameras may store together.
    pub quota_bytes: u64,
    /// Recordings older than this many days are deleted (absent: kept until the pool is
    /// full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<u32>,
    /// The price as the operator's billing names it (for example `EUR 2.99/month`);
    /// absent for a free plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
}

/// `PUT /api/v1/me/plan`: subscribe the account to a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlanChange {
    /// The plan's id, one of `GET /api/v1/plans`.
    pub plan: String,
}

/// The account's pool on the cloud storage units that hold its cameras.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CloudUsage {
    /// Bytes stored (ciphertext), over every CS that answered.
    pub used_bytes: u64,
    /// Objects stored.
    pub objects: u64,
    /// Cloud storage units that hold a camera of the account.
    pub units: u32,
    /// Of those, the ones that did not answer (offline); their bytes are not counted.
    pub unreachable: u32,
}

/// `GET /api/v1/me/plan` (and the answer to `PUT`): the account's plan and pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlanState {
    /// The plan in effect (a sub-account sees its owner's).
    pub plan: PlanView,
    /// Since when, Unix seconds (absent for the free plan never changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Raised by every change.
    pub epoch: u64,
    /// After a downgrade, Unix seconds from which bytes beyond the quota are deleted,
    /// oldest first; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_excess_after: Option<u64>,
    /// The pool's use.
    pub usage: CloudUsage,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn h626_6_1_13_plan_bodies_round_trip() {
        let s = PlanState {
            plan: PlanView {
                id: "free".into(),
                name: "Free".into(),
                quota_bytes: 1 << 30,
                max_age_days: Some(7),
                price: None,
            },
            since: None,
            epoch: 0,
            prune_excess_after: None,
            usage: CloudUsage::default(),
        };
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["plan"].get("price").is_none());
        assert_eq!(serde_json::from_value::<PlanState>(json).unwrap(), s);
        assert!(serde_json::from_str::<PlanChange>(r#"{"plan":"p","x":1}"#).is_err());
    }
}
