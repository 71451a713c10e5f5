//! Accounting and charging (H.626.4 clause 7, a CMU function) and the operator's statistics
//! and reports (6.2): usage records per account, plans with prices, invoices per account and
//! period, the billing webhook, announcements (6.2 "advertising"). docs/design/accounting.md
//! explains the choices.
//!
//! Who pays: the viewer's owner account (a sub-account's usage goes to its owner); an
//! SMS sent before an account exists (a sign-up code) goes to account 0, the platform.
//!
//! Where usage comes from:
//! - live seconds over direct (LAN, public, mapped) and punched paths: the viewers' own
//!   session reports (`POST /api/v1/devices/{id}/sessions`);
//! - relayed seconds and bytes: the MTU, which measures what it sends each viewer
//!   ([`DeviceRequest::RelayUsage`](peercam_signal::cmd::DeviceRequest::RelayUsage)); a
//!   viewer's own report of a relayed session is not billed again;
//! - cloud kilobyte-hours: the sampler asks each pool's CS (Su `cs_usage`) every
//!   `billing.sample_interval_s`;
//! - SMS: every message the gateway took; snapshots: every timed snapshot stored.

#[doc(hidden)]
pub mod bench;
pub(crate) mod routes;
pub(crate) mod webhook;

use std::time::Duration;

use peercam_base::DeviceId;
use peercam_signal::cm::{Role, SessionReport};
use peercam_signal::cm_billing::{Invoice, InvoiceLine, KindPrice, Period};
use peercam_signal::cmd::PlatformAnswer;
use peercam_signal::ps::DeviceKind;
use peercam_signal::refusal::Refusal;
use peercam_signal::relay::PathKind;
use serde::Deserialize;

use crate::config::FREE_PLAN;
use crate::store::usage::{self, DAY_S, Record, Total};
use crate::store::{self, StoreError};
use crate::{Shared, now_s};

/// `[billing]`: accounting and charging (clause 7) and statistics (6.2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Where closed periods' invoices are posted (docs/protocol.md, "Billing webhook");
    /// default none.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the webhook's `X-Peercam-Signature`, at least 16 characters;
    /// required with `webhook_url`.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Attempts per delivery before it is given up (each one recorded). Default 5.
    #[serde(default = "default_attempts")]
    pub webhook_attempts: u32,
    /// Pause before the second attempt, doubled after each, milliseconds. Default 1000.
    #[serde(default = "default_backoff")]
    pub webhook_backoff_ms: u64,
    /// How often statistics are sampled (devices online, storage per plan) and cloud use is
    /// recorded, seconds (10 to 86400). Default 300.
    #[serde(default = "default_sample")]
    pub sample_interval_s: u64,
    /// Close the previous month by itself once a new one began (and deliver it). Default
    /// true.
    #[serde(default = "yes")]
    pub auto_close: bool,
}

fn default_attempts() -> u32 {
    5
}
fn default_backoff() -> u64 {
    1000
}
fn default_sample() -> u64 {
    300
}
fn yes() -> bool {
    true
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: None,
            webhook_attempts: default_attempts(),
            webhook_backoff_ms: default_backoff(),
            sample_interval_s: default_sample(),
            auto_close: true,
        }
    }
}

impl BillingConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(10..=86_400).contains(&self.sample_interval_s) {
            return Err("billing.sample_interval_s must be 10 to 86400".into());
        }
        if self.webhook_url.is_some() && self.webhook_secret.as_ref().is_none_or(|s| s.len() < 16) {
            return Err("billing.webhook_secret of at least 16 characters is required with billing.webhook_url".into());
        }
        Ok(())
    }
}

/// The account that pays for `user`'s use: itself, or its owner for a sub-account.
async fn payer(st: &Shared, user: i64) -> i64 {
    match store::accounts::get(&st.store, user).await {
        Ok(Some(a)) if a.role == Role::Sub => a.parent.unwrap_or(user),
        _ => user,
    }
}

/// Records one use; a failure is logged (usage is never worth failing the service for).
pub(crate) async fn record(
    st: &Shared,
    account: i64,
    kind: &str,
    quantity: u64,
    device: Option<&DeviceId>,
) {
    let r = Record {
        at: now_s(),
        account,
        kind,
        quantity,
        device: device.map(DeviceId::as_str),
    };
    if let Err(e) = usage::record(&st.store, &r).await {
        tracing::error!(error = %e, account, kind, quantity, "usage record lost");
    }
}

/// A viewer's report of a live view: its seconds over a direct or punched path.
pub(crate) async fn session_reported(st: &Shared, user: i64, device: &DeviceId, r: &SessionReport) {
    let kind = match r.path {
        PathKind::Lan | PathKind::Public | PathKind::Mapped => "live_s_direct",
        PathKind::Punched => "live_s_punched",
        // The MTU measures relayed sessions itself.
        PathKind::Relay => return,
    };
    let account = payer(st, user).await;
    record(st, account, kind, u64::from(r.seconds), Some(device)).await;
}

/// An MTU's report of a relayed session (`relay_usage`).
pub(crate) async fn relay_usage(
    st: &Shared,
    mtu: &DeviceId,
    camera: &DeviceId,
    (user, bytes, seconds): (i64, u64, u32),
) -> PlatformAnswer {
    match store::devices::get(&st.store, mtu).await {
        Ok(Some(d)) if d.kind == DeviceKind::Mtu && !d.disabled => {}
        Ok(_) => {
            return PlatformAnswer::Refused {
                code: Refusal::Forbidden,
                message: "only an MTU reports relay usage".into(),
            };
        }
        Err(e) => {
            tracing::error!(error = %e, "database error on a relay usage report");
            return PlatformAnswer::Refused {
                code: Refusal::Unavailable,
                message: "the platform cannot record now".into(),
            };
        }
    }
    let account = payer(st, user).await;
    record(st, account, "relay_bytes", bytes, Some(camera)).await;
    if seconds > 0 {
        record(
            st,
            account,
            "live_s_relay",
            u64::from(seconds),
            Some(camera),
        )
        .await;
    }
    tracing::debug!(%mtu, %camera, account, bytes, seconds, "relay usage recorded");
    PlatformAnswer::Stored { id: String::new() }
}

/// One SMS (or MMS) the gateway took for `account` (0: no account yet).
pub(crate) async fn sms_sent(st: &Shared, account: i64) {
    let account = if account == 0 {
        0
    } else {
        payer(st, account).await
    };
    record(st, account, "sms", 1, None).await;
}

/// The plan `owner` held at the end of `(from_day, to_day)` (for an open period: now).
async fn plan_at(st: &Shared, owner: i64, to_day: u64) -> Result<String, StoreError> {
    let changes = store::plans::changes(&st.store, owner).await?;
    let end = to_day * DAY_S;
    let held = changes
        .iter()
        .rev()
        .find(|c| c.at < end)
        .map(|c| c.plan.clone())
        .or_else(|| changes.first().map(|c| c.previous.clone()));
    Ok(held.unwrap_or_else(|| FREE_PLAN.to_owned()))
}

/// `account`'s invoice for `period` from its usage totals.
async fn invoice(
    st: &Shared,
    period: Period,
    (account, login): (i64, Option<String>),
    totals: &[&Total],
    closed: bool,
) -> Result<Invoice, StoreError> {
    let (_, to_day) = period.days();
    let plan_id = if account == 0 {
        FREE_PLAN.to_owned()
    } else {
        plan_at(st, account, to_day).await?
    };
    let cloud = &st.config.cloud;
    let plan = cloud.plan(&plan_id).or_else(|| cloud.plan(FREE_PLAN));
    Ok(price(
        period,
        (account, login),
        plan.as_ref().map_or((plan_id.as_str(), 0, None), |p| {
            (p.id.as_str(), p.price_minor, Some(&p.usage))
        }),
        (totals, &cloud.currency, closed),
    ))
}

/// The pure pricing of an invoice: the plan's price, then each kind used beyond what the
/// plan includes (integers only).
pub(crate) fn price(
    period: Period,
    (account, login): (i64, Option<String>),
    (plan, price_minor, usage): (
        &str,
        u64,
        Option<&std::collections::BTreeMap<String, KindPrice>>,
    ),
    (totals, currency, closed): (&[&Total], &str, bool),
) -> Invoice {
    let mut lines = vec![InvoiceLine {
        item: "plan".into(),
        quantity: 1,
        included: 0,
        amount_minor: price_minor,
    }];
    for t in totals {
        let p = usage
            .and_then(|u| u.get(&t.kind))
            .copied()
            .unwrap_or_default();
        lines.push(InvoiceLine {
            item: t.kind.clone(),
            quantity: t.quantity,
            included: p.included,
            amount_minor: p.charge(t.quantity),
        });
    }
    let total_minor = lines
        .iter()
        .fold(0u64, |s, l| s.saturating_add(l.amount_minor));
    Invoice {
        period: period.to_string(),
        account,
        login,
        plan: plan.to_owned(),
        currency: currency.to_owned(),
        lines,
        total_minor,
        closed,
    }
}

/// Every invoice of `period` (one per account with usage or a subscription), or only
/// `account`'s.
pub(crate) async fn invoices(
    st: &Shared,
    period: Period,
    account: Option<i64>,
) -> Result<(bool, Vec<Invoice>), StoreError> {
    let closed = usage::period_closed(&st.store, &period.to_string())
        .await?
        .is_some();
    let totals = usage::totals(&st.store, period.days(), account).await?;
    let logins = usage::logins(&st.store).await?;
    let mut accounts: std::collections::BTreeSet<i64> = totals.iter().map(|t| t.account).collect();
    if account.is_none() {
        for (owner, _) in usage::subscribers(&st.store).await? {
            accounts.insert(owner);
        }
    } else if let Some(a) = account {
        accounts.insert(a);
    }
    let mut out = Vec::with_capacity(accounts.len());
    for a in accounts {
        let mine: Vec<&Total> = totals.iter().filter(|t| t.account == a).collect();
        out.push(invoice(st, period, (a, logins.get(&a).cloned()), &mine, closed).await?);
    }
    Ok((closed, out))
}

/// The current period.
pub(crate) fn current_period() -> Period {
    Period::of_day(now_s() / DAY_S)
}

/// Starts the sampler: statistics samples, cloud use, and closing finished periods.
pub(crate) fn spawn_sampler(st: Shared, shutdown: peercam_net::Shutdown) {
    tokio::spawn(async move {
        let every = Duration::from_secs(st.config.billing.sample_interval_s.clamp(10, 86_400));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => sample(&st).await,
                () = shutdown.wait() => return,
            }
        }
    });
}

/// One round of the sampler.
pub(crate) async fn sample(st: &Shared) {
    let now = now_s();
    let interval = st.config.billing.sample_interval_s;
    let online = u64::try_from(st.platform.online_count()).unwrap_or(u64::MAX);
    if let Err(e) = usage::sample(&st.store, now, "devices_online", online).await {
        tracing::warn!(error = %e, "statistics sample lost");
    }
    // Cloud use: kilobyte-hours of each pool over the interval, and bytes per plan.
    let owners = usage::cloud_owners(&st.store).await.unwrap_or_default();
    let mut per_plan: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for owner in owners {
        let Ok(used) = crate::cloud::plans::pool_usage(st, owner).await else {
            continue;
        };
        let kb_h = u128::from(used.used_bytes) * u128::from(interval) / 3_600_000;
        if kb_h > 0 {
            record(
                st,
                owner,
                "cloud_kb_h",
                u64::try_from(kb_h).unwrap_or(u64::MAX),
                None,
            )
            .await;
        }
        let plan = plan_at(st, owner, now / DAY_S + 1)
            .await
            .unwrap_or_else(|_| FREE_PLAN.into());
        *per_plan.entry(plan).or_default() += used.used_bytes;
    }
    for (plan, bytes) in per_plan {
        let _ = usage::sample(&st.store, now, &format!("storage_bytes:{plan}"), bytes).await;
    }
    if st.config.billing.auto_close {
        let current = current_period();
        let (from, _) = current.days();
        let previous = Period::of_day(from - 1);
        match usage::period_closed(&st.store, &previous.to_string()).await {
            Ok(None) => {
                if let Err(e) = close(st, previous, None).await {
                    tracing::warn!(error = %e, period = %previous, "closing the period failed");
                }
            }
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!(error = %e, "billing periods unreadable"),
        }
    }
}

/// Closes `period` (once) and hands its invoices to the billing webhook, if any; the
/// invoices and whether a delivery started. A period not over yet is refused by the
/// caller.
pub(crate) async fn close(
    st: &Shared,
    period: Period,
    by: Option<i64>,
) -> Result<(u64, usize, bool), StoreError> {
    let name = period.to_string();
    let now = now_s();
    let fresh = usage::close_period(&st.store, &name, by, now).await?;
    let closed_at = usage::period_closed(&st.store, &name).await?.unwrap_or(now);
    let (_, all) = invoices(st, period, None).await?;
    let n = all.len();
    let started = fresh && st.config.billing.webhook_url.is_some();
    if started {
        let st = st.clone();
        tokio::spawn(async move { webhook::deliver(&st, &name, all).await });
    }
    Ok((closed_at, n, started))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use peercam_signal::cm_billing::{KindPrice, Period, invoices_csv, parse_csv};

    use super::{Total, price};

    #[test]
    fn h626_7_accounting_invoice_of_known_records() {
        let t = |kind: &str, quantity| Total {
            account: 7,
            kind: kind.into(),
            quantity,
            records: 1,
        };
        let totals = [
            t("relay_bytes", 12_500_000_000),
            t("sms", 3),
            t("snapshots", 40),
        ];
        let refs: Vec<&Total> = totals.iter().collect();
        let usage: BTreeMap<String, KindPrice> = [
            (
                "relay_bytes".to_owned(),
                KindPrice {
                    included: 10_000_000_000,
                    per: 1_000_000_000,
                    minor: 50,
                },
            ),
            (
                "sms".to_owned(),
                KindPrice {
                    included: 0,
                    per: 1,
                    minor: 9,
                },
            ),
        ]
        .into();
        let p = Period::parse("2026-11").unwrap();
        let inv = price(
            p,
            (7, Some("+1555,0".into())),
            ("plus", 299, Some(&usage)),
            (&refs, "EUR", true),
        );
        let amounts: Vec<(&str, u64)> = inv
            .lines
            .iter()
            .map(|l| (l.item.as_str(), l.amount_minor))
            .collect();
        // 2.5 GB beyond the included 10 GB: three started blocks of 1 GB at 0.50.
        assert_eq!(
            amounts,
            [
                ("plan", 299),
                ("relay_bytes", 150),
                ("sms", 27),
                ("snapshots", 0)
            ]
        );
        assert_eq!(inv.total_minor, 476);
        // A login that is not a plain number and starts like a formula is written with a
        // quote mark (a phone number alone stays a number).
        let rows = parse_csv(&invoices_csv(std::slice::from_ref(&inv))).unwrap();
        assert_eq!(rows.len(), 1 + 4 + 1);
        assert_eq!(
            rows[2],
            [
                "2026-11",
                "7",
                "'+1555,0",
                "plus",
                "EUR",
                "relay_bytes",
                "12500000000",
                "10000000000",
                "150"
            ]
        );
        assert_eq!(rows[5][5..], ["total", "", "", "476"]);
    }
}
