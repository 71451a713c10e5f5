//! Network management (H.626.4 6.1.14): the CMU detects faults, keeps the fault list
//! (`store/faults.rs`), tells the operator over a webhook, and lets operators acknowledge
//! and resolve faults (`/api/v1/admin/faults`, `peercam admin faults`, the operator page).
//!
//! What raises and clears a fault (docs/design/network-management.md):
//! - presence (Sc, the same event as the 6.1.9 offline alarm, `alarms/up.rs`): a camera,
//!   NVR, CS or MTU going offline raises `camera_offline`, `nvr_offline`, `cs_offline` or
//!   `mtu_lost`; its return clears it;
//! - an SCU node's link to the CMU closing raises `scu_node_lost`; the node linking again
//!   clears it;
//! - a recorder's health report (`DeviceRequest::Health`) raises or clears
//!   `storage_full` and `storage_write_errors`;
//! - the MTU offered for a relayed session (7.2) raises `mtu_overloaded` at or above
//!   `faults.mtu_overload_per_mille` of its capacity and clears it below.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use peercam_base::{DeviceId, Phone};
use peercam_signal::cm::FaultView;
use peercam_signal::cmd::PlatformAnswer;
use peercam_signal::ps::DeviceKind;
use serde::Deserialize;

use crate::api::{RouteInfo, route};
use crate::auth::Principal;
use crate::error::{ApiErr, ApiResult};
use crate::store::faults::{self, Fault};
use crate::{Shared, now_s};

/// Fault kinds.
pub(crate) const CAMERA_OFFLINE: &str = "camera_offline";
pub(crate) const SCU_NODE_LOST: &str = "scu_node_lost";
pub(crate) const MTU_OVERLOADED: &str = "mtu_overloaded";
pub(crate) const STORAGE_FULL: &str = "storage_full";
pub(crate) const STORAGE_WRITE_ERRORS: &str = "storage_write_errors";
pub(crate) const NVR_OFFLINE: &str = "nvr_offline";
pub(crate) const CS_OFFLINE: &str = "cs_offline";
pub(crate) const MTU_LOST: &str = "mtu_lost";

/// `[faults]` of the CMU's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsConfig {
    /// Where each raised, cleared, acknowledged or resolved fault is POSTed as JSON
    /// (docs/protocol.md, "Fault webhook"). Default unset (no webhook).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Attempts per webhook delivery before it is given up (logged and counted). Default 5.
    #[serde(default = "default_attempts")]
    pub webhook_attempts: u32,
    /// Delay before the second attempt, doubling after each failure, ms. Default 500.
    #[serde(default = "default_backoff")]
    pub webhook_backoff_ms: u64,
    /// An MTU offered at or above this share of its capacity, per mille, is overloaded.
    /// Default 900.
    #[serde(default = "default_overload")]
    pub mtu_overload_per_mille: u32,
    /// The operator's phones: each raised and cleared fault of [`Self::alert_kinds`] is sent
    /// to them as an SMS through the platform's gateway (6.2). Default none.
    #[serde(default)]
    pub alert_sms: Vec<Phone>,
    /// The fault kinds that alert by SMS. Default: every kind but `camera_offline` (a
    /// camera offline is its owner's alarm, 6.1.9; one home router's outage is no page for
    /// the network operations centre).
    #[serde(default = "default_alert_kinds")]
    pub alert_kinds: Vec<String>,
    /// At most this many alert SMS per phone in any hour; the rest are counted
    /// (`peercam_cmu_fault_alerts_dropped_total`) and logged, and the next alert that may go
    /// says how many were held back. Default 20.
    #[serde(default = "default_alert_rate")]
    pub alert_sms_per_hour: u32,
}

fn default_attempts() -> u32 {
    5
}
fn default_backoff() -> u64 {
    500
}
fn default_overload() -> u32 {
    900
}
fn default_alert_kinds() -> Vec<String> {
    [
        SCU_NODE_LOST,
        MTU_LOST,
        MTU_OVERLOADED,
        STORAGE_FULL,
        STORAGE_WRITE_ERRORS,
        NVR_OFFLINE,
        CS_OFFLINE,
    ]
    .map(str::to_owned)
    .to_vec()
}
fn default_alert_rate() -> u32 {
    20
}

impl Default for FaultsConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_attempts: default_attempts(),
            webhook_backoff_ms: default_backoff(),
            mtu_overload_per_mille: default_overload(),
            alert_sms: Vec::new(),
            alert_kinds: default_alert_kinds(),
            alert_sms_per_hour: default_alert_rate(),
        }
    }
}

fn view(f: Fault) -> FaultView {
    FaultView {
        id: f.id,
        kind: f.kind,
        subject: f.subject,
        detail: f.detail,
        state: f.state.to_owned(),
        raised_at: f.raised_at,
        cleared_at: f.cleared_at,
        acked_at: f.acked_at,
        acked_by: f.acked_by,
        resolved_at: f.resolved_at,
        resolved_by: f.resolved_by,
    }
}

/// Raises a fault of `kind` on `subject` (nothing if one is active).
pub(crate) async fn raise(st: &Shared, kind: &str, subject: &str, detail: &str) {
    match faults::raise(&st.store, kind, subject, detail, now_s()).await {
        Ok(Some(f)) => {
            tracing::warn!(id = f.id, %kind, %subject, %detail, "fault raised");
            st.metrics.faults_raised.inc();
            let d = format!("{kind}: {detail}");
            crate::logs::system(&st.store, "fault.raised", Some(subject), &d).await;
            changed(st, "raised", f).await;
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, %kind, %subject, "cannot record a fault"),
    }
}

/// The condition of `kind` on `subject` ended: clears its active fault.
pub(crate) async fn clear(st: &Shared, kind: &str, subject: &str) {
    match faults::clear(&st.store, kind, subject, now_s()).await {
        Ok(Some(f)) => {
            tracing::info!(id = f.id, %kind, %subject, "fault cleared");
            crate::logs::system(&st.store, "fault.cleared", Some(subject), kind).await;
            changed(st, "cleared", f).await;
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, %kind, %subject, "cannot clear a fault"),
    }
}

/// After a change: the open count for the metrics, and the webhook.
async fn changed(st: &Shared, event: &'static str, f: Fault) {
    if let Ok(n) = faults::active_count(&st.store).await {
        st.faults_open.store(n, Ordering::Relaxed);
    }
    if matches!(event, "raised" | "cleared") && st.config.faults.alert_kinds.contains(&f.kind) {
        for phone in &st.config.faults.alert_sms {
            alert_sms(st, phone, event, &f);
        }
    }
    if let Some(url) = st.config.faults.webhook_url.clone() {
        let st = st.clone();
        tokio::spawn(async move { deliver(&st, &url, event, view(f)).await });
    }
}

/// Sends one fault alert to an operator's phone, within its hourly budget.
fn alert_sms(st: &Shared, phone: &Phone, event: &str, f: &Fault) {
    let now = now_s();
    let budget = st
        .fault_alerts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take(phone.as_str(), now, st.config.faults.alert_sms_per_hour);
    let Some(held) = budget else {
        tracing::warn!(%phone, id = f.id, kind = %f.kind, "fault alert SMS held back: hourly budget spent");
        st.metrics.fault_alerts_dropped.inc();
        return;
    };
    let mut text = format!("peercam fault {} {event}: {} {}", f.id, f.kind, f.subject);
    if event == "raised" {
        text.push_str(&format!(" ({})", f.detail));
    }
    if held > 0 {
        text.push_str(&format!(" [{held} earlier alerts held back]"));
    }
    let (st, phone) = (st.clone(), phone.clone());
    tokio::spawn(async move {
        if let Err(e) = crate::sms::send_retrying(st.sms.as_ref(), &phone, (&text, None), 3).await {
            tracing::error!(%phone, error = %e, "fault alert SMS failed");
            st.metrics.fault_alerts_dropped.inc();
        }
    });
}

/// Each operator phone's alert budget: a fixed one-hour window (pure; `now` in seconds).
#[derive(Debug, Default)]
pub(crate) struct AlertBudget {
    phones: std::collections::HashMap<String, Window>,
}

#[derive(Debug)]
struct Window {
    start: u64,
    sent: u32,
    held: u32,
}

impl AlertBudget {
    /// May one more alert go to `phone` now? `Some(n)`: yes, and `n` alerts were held back
    /// since the last one that went; `None`: the hour's budget is spent (this one is held).
    pub(crate) fn take(&mut self, phone: &str, now: u64, per_hour: u32) -> Option<u32> {
        let w = self.phones.entry(phone.to_owned()).or_insert(Window {
            start: now,
            sent: 0,
            held: 0,
        });
        if now.saturating_sub(w.start) >= 3600 {
            w.start = now;
            w.sent = 0;
        }
        if w.sent >= per_hour {
            w.held += 1;
            return None;
        }
        w.sent += 1;
        Some(std::mem::take(&mut w.held))
    }
}

/// The webhook's body (docs/protocol.md, "Fault webhook").
#[derive(serde::Serialize)]
struct Hook<'a> {
    event: &'a str,
    fault: &'a FaultView,
}

/// POSTs one fault event, retried with a doubling delay; given up after
/// `webhook_attempts` (counted in `peercam_cmu_fault_webhook_failures_total`).
async fn deliver(st: &Shared, url: &str, event: &str, fault: FaultView) {
    let cfg = &st.config.faults;
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "fault webhook client");
            st.metrics.webhook_failures.inc();
            return;
        }
    };
    let body = Hook {
        event,
        fault: &fault,
    };
    let mut delay = Duration::from_millis(cfg.webhook_backoff_ms.max(1));
    for attempt in 1..=cfg.webhook_attempts.max(1) {
        match client.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(status = %r.status(), attempt, "fault webhook refused"),
            Err(e) => tracing::warn!(error = %e, attempt, "fault webhook failed"),
        }
        if attempt < cfg.webhook_attempts {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = st.shutdown.wait() => break,
            }
            delay = delay.saturating_mul(2).min(Duration::from_secs(60));
        }
    }
    tracing::error!(id = fault.id, %event, "fault webhook given up");
    st.metrics.webhook_failures.inc();
}

/// Sc presence of a device (the event of the 6.1.9 offline alarm).
pub(crate) async fn presence(st: &Shared, id: &DeviceId, kind: DeviceKind, online: bool) {
    let fault = match kind {
        DeviceKind::Pu => CAMERA_OFFLINE,
        DeviceKind::Nvr => NVR_OFFLINE,
        DeviceKind::Cs => CS_OFFLINE,
        DeviceKind::Mtu => MTU_LOST,
    };
    if online {
        clear(st, fault, id.as_str()).await;
    } else {
        raise(
            st,
            fault,
            id.as_str(),
            "offline: no heartbeat or its link closed",
        )
        .await;
    }
}

/// An SCU node's link came up or went away.
pub(crate) async fn node(st: &Shared, node: &str, up: bool) {
    let event = if up { "node.link" } else { "node.unlink" };
    crate::logs::system(&st.store, event, Some(node), "SCU node").await;
    if up {
        clear(st, SCU_NODE_LOST, node).await;
    } else if !st.shutdown.is_triggered() && !st.platform.node_is_up(node) {
        raise(st, SCU_NODE_LOST, node, "its link to the CMU closed").await;
    }
}

/// The MTU offered for a relayed session, with its last load report.
pub(crate) async fn mtu_offered(st: &Shared, offer: &peercam_signal::relay::MtuOffer) {
    let per_mille = offer.load.per_mille();
    let id = offer.mtu.as_str();
    if per_mille >= st.config.faults.mtu_overload_per_mille {
        let detail = format!(
            "{} viewers of {} ({per_mille} per mille), {} kbit/s out",
            offer.load.viewers, offer.load.capacity, offer.load.out_kbps
        );
        raise(st, MTU_OVERLOADED, id, &detail).await;
    } else {
        clear(st, MTU_OVERLOADED, id).await;
    }
}

/// A recorder's health report (`DeviceRequest::Health`).
pub(crate) async fn health(
    st: &Shared,
    device: &DeviceId,
    (used, free, full, write_errors): (u64, u64, bool, u64),
) -> PlatformAnswer {
    let id = device.as_str();
    if full {
        let detail = format!("store full: {used} bytes used, {free} bytes free");
        raise(st, STORAGE_FULL, id, &detail).await;
    } else {
        clear(st, STORAGE_FULL, id).await;
    }
    if write_errors > 0 {
        let detail = format!("{write_errors} writes failed since the previous report");
        raise(st, STORAGE_WRITE_ERRORS, id, &detail).await;
    } else {
        clear(st, STORAGE_WRITE_ERRORS, id).await;
    }
    PlatformAnswer::Noted
}

/// The operator's routes.
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "GET",
            "/api/v1/admin/faults",
            Operator,
            "Operator: the fault list of network management, newest first; active faults only unless ?all=true (6.1.14)",
            None,
            Some("FaultView")
        ),
        route!(
            "POST",
            "/api/v1/admin/faults/{id}/ack",
            Operator,
            "Operator: acknowledge a fault (6.1.14)",
            None,
            Some("FaultView")
        ),
        route!(
            "POST",
            "/api/v1/admin/faults/{id}/resolve",
            Operator,
            "Operator: resolve a fault; a new occurrence raises a new one (6.1.14)",
            None,
            Some("FaultView")
        ),
    ]
}

pub(crate) fn handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<Shared>> {
    use axum::routing::{get, post};
    Some(match (method, path) {
        ("GET", "/api/v1/admin/faults") => get(list),
        ("POST", "/api/v1/admin/faults/{id}/ack") => post(ack),
        ("POST", "/api/v1/admin/faults/{id}/resolve") => post(resolve),
        _ => return None,
    })
}

/// The schemas of the fault routes' bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    b.schema_from::<FaultView>()
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

async fn list(
    State(st): State<Shared>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<FaultView>>> {
    let rows = faults::list(&st.store, !q.all, 500).await?;
    Ok(axum::Json(rows.into_iter().map(view).collect()))
}

async fn ack(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<FaultView>> {
    let f = faults::acknowledge(&st.store, id, p.id, now_s()).await?;
    handled(&st, &p, f, "fault.ack", "acknowledged").await
}

async fn resolve(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<FaultView>> {
    let f = faults::resolve(&st.store, id, p.id, now_s()).await?;
    handled(&st, &p, f, "fault.resolve", "resolved").await
}

/// After an operator acknowledged or resolved a fault: the audit row, the webhook, the answer.
async fn handled(
    st: &Shared,
    p: &Principal,
    f: Option<Fault>,
    action: &'static str,
    change: &'static str,
) -> ApiResult<axum::Json<FaultView>> {
    let f = f.ok_or_else(|| ApiErr::not_found("not_found", "no such fault"))?;
    crate::audit::log(
        &st.store,
        crate::audit::Event::FaultHandled {
            user: p.id,
            action,
            detail: &format!("{} {} {}", f.id, f.kind, f.subject),
        },
    )
    .await;
    changed(st, change, f.clone()).await;
    Ok(axum::Json(view(f)))
}

/// Restores the open count at start (faults outlive a restart).
pub(crate) async fn load(st: &Shared) {
    if let Ok(n) = faults::active_count(&st.store).await {
        st.faults_open.store(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::AlertBudget;

    /// 6.1.14 alerts: at most `per_hour` SMS per phone in an hour; the first one after the
    /// window says how many were held back; phones have their own budgets.
    #[test]
    fn h626_6_1_14_alert_sms_budget_per_phone_and_hour() {
        let mut b = AlertBudget::default();
        assert_eq!(b.take("+1", 1000, 2), Some(0));
        assert_eq!(b.take("+1", 1001, 2), Some(0));
        assert_eq!(b.take("+1", 1002, 2), None);
        assert_eq!(b.take("+1", 1003, 2), None);
        assert_eq!(b.take("+2", 1003, 2), Some(0));
        assert_eq!(b.take("+1", 4599, 2), None);
        assert_eq!(b.take("+1", 4600, 2), Some(3));
        assert_eq!(b.take("+1", 4601, 2), Some(0));
        assert_eq!(b.take("+3", 0, 0), None);
    }
}
