//! Cloud storage plans (H.626.4 6.1.13: free storage for every account, paid storage beyond
//! it; design "Quota and full storage"). The catalogue is in the configuration
//! (`[cloud]`, a `free` plan always); each owner holds one plan (`free` until it chooses
//! another), kept with its time and an epoch in `cloud_subscriptions`, every change in
//! `cloud_plan_changes` (what the accounting issue bills from) and in the audit log.
//!
//! A change reaches the cloud storage units at once: `PUT /api/v1/me/plan` commits it, sends
//! Su `cs_account` (quota, age limit, plan, epoch, grace) to every CS holding a camera of the
//! account and waits for each, then sends `cloud_resume` to the account's cameras online, so
//! a camera that stopped full uploads again without waiting for its back-off. A CS that was
//! offline gets the newest `cs_account` when it registers; the epoch makes an older one
//! harmless. A lower quota refuses new writes at once; the bytes beyond it are deleted,
//! oldest first, after `cloud.downgrade_grace_days`.

use std::collections::BTreeSet;

use axum::Extension;
use axum::extract::State;
use peercam_base::DeviceId;
use peercam_signal::cm::Role;
use peercam_signal::cm_plan::{CloudUsage, PlanChange, PlanState, PlanView};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};

use crate::api::{RouteInfo, route};
use crate::audit::{self, Event};
use crate::auth::Principal;
use crate::config::{FREE_PLAN, PlanConfig};
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::plans::{self, Subscription};
use crate::{Shared, now_s};

/// The account id of an owner's pool on the CS.
pub(crate) fn account_of(owner: i64) -> String {
    format!("u{owner}")
}

fn view(p: &PlanConfig) -> PlanView {
    PlanView {
        id: p.id.clone(),
        name: p.name.clone(),
        quota_bytes: p.quota_bytes,
        max_age_days: p.max_age_days,
        price: p.price.clone(),
    }
}

/// The plan `owner` holds and its subscription (none: the free plan, never changed). A
/// plan no longer in the catalogue counts as the free plan.
async fn plan_of(st: &Shared, owner: i64) -> ApiResult<(PlanConfig, Option<Subscription>)> {
    let sub = plans::get(&st.store, owner).await?;
    let cloud = &st.config.cloud;
    let plan = sub
        .as_ref()
        .and_then(|s| cloud.plan(&s.plan))
        .or_else(|| cloud.plan(FREE_PLAN))
        .ok_or_else(|| ApiErr::internal("plans", &"no free plan"))?;
    Ok((plan, sub))
}

/// Su `cs_account` for `owner`'s pool: its plan's quota and rules, with the epoch.
pub(crate) async fn account_command(st: &Shared, owner: i64) -> ApiResult<DeviceCommand> {
    let (plan, sub) = plan_of(st, owner).await?;
    Ok(DeviceCommand::CsAccount {
        account: account_of(owner),
        quota_bytes: plan.quota_bytes,
        max_age_days: plan.max_age_days,
        plan: Some(plan.id),
        plan_epoch: sub.as_ref().map_or(0, |s| s.epoch),
        prune_excess_after_s: sub.and_then(|s| s.prune_after),
    })
}

/// The owner whose pool `p` uses (a sub-account uses its owner's).
fn pool_owner(p: &Principal) -> ApiResult<i64> {
    match p.role {
        Role::Owner => Ok(p.id),
        Role::Sub => p
            .parent
            .ok_or_else(|| ApiErr::internal("sub-account", &"no owner")),
        Role::Operator => Err(ApiErr::forbidden("operators hold no storage plan")),
    }
}

/// The distinct cloud storage units holding a camera of `owner`, and the cameras.
async fn units_of(st: &Shared, owner: i64) -> ApiResult<(BTreeSet<DeviceId>, Vec<DeviceId>)> {
    let pairs = plans::cameras_of(&st.store, owner).await?;
    let units = pairs.iter().map(|(cs, _)| cs.clone()).collect();
    let cameras = pairs.into_iter().map(|(_, cam)| cam).collect();
    Ok((units, cameras))
}

/// The pool's use, summed over the units that answer Su `cs_usage` (also the source of
/// the accounting's cloud kilobyte-hours).
pub(crate) async fn pool_usage(st: &Shared, owner: i64) -> ApiResult<CloudUsage> {
    let (units, _) = units_of(st, owner).await?;
    let mut u = CloudUsage::default();
    for cs in units {
        u.units += 1;
        if !st.platform.is_online(&cs) {
            u.unreachable += 1;
            continue;
        }
        let cmd = DeviceCommand::CsUsage {
            account: account_of(owner),
        };
        match st.platform.command(&cs, cmd).await {
            Ok((
                _,
                DeviceReply::CsUsage {
                    used_bytes,
                    objects,
                    ..
                },
            )) => {
                u.used_bytes = u.used_bytes.saturating_add(used_bytes);
                u.objects = u.objects.saturating_add(objects);
            }
            // The CS holds nothing of the account yet.
            Ok((_, DeviceReply::Invalid { .. })) => {}
            other => {
                tracing::info!(%cs, reply = ?other, "cs_usage not answered");
                u.unreachable += 1;
            }
        }
    }
    Ok(u)
}

async fn state(st: &Shared, owner: i64) -> ApiResult<PlanState> {
    let (plan, sub) = plan_of(st, owner).await?;
    Ok(PlanState {
        plan: view(&plan),
        since: sub.as_ref().map(|s| s.since),
        epoch: sub.as_ref().map_or(0, |s| s.epoch),
        // Shown while the grace runs; after it the CS has pruned (or prunes at its next
        // round).
        prune_excess_after: sub.and_then(|s| s.prune_after).filter(|t| *t > now_s()),
        usage: pool_usage(st, owner).await?,
    })
}

/// `GET /api/v1/plans`: the plans owners may choose.
pub(crate) async fn list(State(st): State<Shared>) -> ApiResult<Json<Vec<PlanView>>> {
    Ok(Json(
        st.config
            .cloud
            .catalogue()
            .iter()
            .filter(|p| p.public)
            .map(view)
            .collect(),
    ))
}

/// `GET /api/v1/me/plan`: the account's plan and pool (a sub-account sees its owner's).
pub(crate) async fn get_mine(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<PlanState>> {
    let owner = pool_owner(&p)?;
    Ok(Json(state(&st, owner).await?))
}

/// `PUT /api/v1/me/plan` (owners): subscribes to a plan of the catalogue and makes it
/// effective at once on the cloud storage units (6.1.13).
pub(crate) async fn set_mine(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<PlanChange>,
) -> ApiResult<Json<PlanState>> {
    let owner = p.id;
    let new = st
        .config
        .cloud
        .plan(&req.plan)
        .filter(|x| x.public)
        .ok_or_else(|| ApiErr::not_found("unknown_plan", "no such plan; see GET /api/v1/plans"))?;
    let (old, _) = plan_of(&st, owner).await?;
    if old.id != new.id {
        let now = now_s();
        // A downgrade: new writes meet the new quota at once, the excess goes after the
        // grace.
        let prune_after = (new.quota_bytes < old.quota_bytes)
            .then(|| now + u64::from(st.config.cloud.downgrade_grace_days) * 86_400);
        let sub = plans::subscribe(&st.store, owner, &new.id, &old.id, prune_after, now).await?;
        let change = format!("{} -> {}", old.id, new.id);
        audit::log(
            &st.store,
            Event::PlanChanged {
                by: owner,
                change: &change,
            },
        )
        .await;
        tracing::info!(owner, %change, epoch = sub.epoch, "cloud plan changed");
        // H.626.4 6.2: the CRM is told of account changes (through the outbox).
        let login = crate::store::accounts::get(&st.store, owner)
            .await?
            .map(|a| a.login)
            .unwrap_or_default();
        crate::crm::changed(&st, "account.plan_changed", owner, &login, Some(&change)).await;
        push(&st, owner).await?;
    }
    Ok(Json(state(&st, owner).await?))
}

/// Sends `owner`'s `cs_account` to every CS holding one of its cameras (offline ones get it
/// when they register), then `cloud_resume` to its cameras online.
async fn push(st: &Shared, owner: i64) -> ApiResult<()> {
    let (units, cameras) = units_of(st, owner).await?;
    let cmd = account_command(st, owner).await?;
    for cs in &units {
        if !st.platform.is_online(cs) {
            tracing::info!(%cs, "CS offline; it gets the plan when it registers");
            continue;
        }
        match st.platform.command(cs, cmd.clone()).await {
            Ok((_, DeviceReply::Done)) => {}
            other => tracing::warn!(%cs, reply = ?other, "cs_account not applied"),
        }
    }
    for cam in &cameras {
        if !st.platform.is_online(cam) {
            continue;
        }
        match st.platform.command(cam, DeviceCommand::CloudResume).await {
            Ok((_, DeviceReply::CloudRecording { .. })) => {}
            other => tracing::info!(camera = %cam, reply = ?other, "cloud_resume not applied"),
        }
    }
    Ok(())
}

/// The plan routes (6.1.13), declared like every other route.
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "GET",
            "/api/v1/plans",
            Account,
            "The cloud storage plans owners may choose: quota, age limit, price (6.1.13)",
            None,
            Some("PlanView")
        ),
        route!(
            "GET",
            "/api/v1/me/plan",
            Customer,
            "The account's cloud storage plan and its pool's use on the cloud storage units (a sub-account sees its owner's; 6.1.13)",
            None,
            Some("PlanState")
        ),
        route!(
            "PUT",
            "/api/v1/me/plan",
            Owner,
            "Choose a cloud storage plan: effective at once on the cloud storage units; after a downgrade the bytes beyond the new quota are deleted, oldest first, after a grace (6.1.13)",
            Some("PlanChange"),
            Some("PlanState")
        ),
    ]
}

/// The handler of a plan route.
pub(crate) fn handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<Shared>> {
    use axum::routing::{get, put};
    Some(match (method, path) {
        ("GET", "/api/v1/plans") => get(list),
        ("GET", "/api/v1/me/plan") => get(get_mine),
        ("PUT", "/api/v1/me/plan") => put(set_mine),
        _ => return None,
    })
}

/// The schemas of the plan routes' bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    b.schema_from::<PlanView>()
        .schema_from::<PlanChange>()
        .schema_from::<PlanState>()
        .schema_from::<CloudUsage>()
}

#[cfg(test)]
mod tests {
    use crate::config::{CloudConfig, PlanConfig};

    #[test]
    fn h626_6_1_13_the_catalogue_always_has_a_free_plan() {
        let mut c = CloudConfig {
            free_quota_bytes: 5,
            ..CloudConfig::default()
        };
        let all = c.catalogue();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].id.as_str(), all[0].quota_bytes), ("free", 5));
        assert_eq!(all[0].max_age_days, Some(7));
        let plus = PlanConfig {
            id: "plus".into(),
            name: "Plus".into(),
            quota_bytes: 50,
            max_age_days: Some(30),
            price: Some("EUR 2/month".into()),
            public: true,
            ..PlanConfig::default()
        };
        c.plans = vec![plus.clone()];
        assert_eq!(c.catalogue().len(), 2);
        assert_eq!(c.plan("plus"), Some(plus.clone()));
        assert!(c.check().is_ok());
        // A configured free plan replaces the one made of free_quota_bytes.
        c.plans.push(PlanConfig {
            id: "free".into(),
            quota_bytes: 9,
            ..plus.clone()
        });
        assert_eq!(c.plan("free").map(|p| p.quota_bytes), Some(9));
        assert_eq!(c.catalogue().len(), 2);
        // Refused: a duplicate id, a bad id, a hidden free plan.
        c.plans.push(plus.clone());
        assert!(c.check().unwrap_err().contains("twice"));
        c.plans = vec![PlanConfig {
            id: "Plus!".into(),
            ..plus.clone()
        }];
        assert!(c.check().is_err());
        c.plans = vec![PlanConfig {
            id: "free".into(),
            public: false,
            ..plus
        }];
        assert!(c.check().is_err());
    }
}
