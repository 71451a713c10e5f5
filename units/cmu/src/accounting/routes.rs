//! The routes of accounting and charging (clause 7), statistics and reports (6.2) and
//! announcements (6.2 "advertising").

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use peercam_signal::cm::Role;
use peercam_signal::cm_billing::{
    self as billing, AnnouncementBody, AnnouncementView, CloseAnswer, DeliveryView, Invoices,
    Period, StatsView, UsageTotal, UsageView, csv_line,
};
use serde::Deserialize;

use crate::api::{RouteInfo, route};
use crate::audit::{self, Event};
use crate::auth::Principal;
use crate::config::FREE_PLAN;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::usage::{self, Announcement, Created, DAY_S};
use crate::{Shared, now_s};

/// The accounting routes, declared like every other route.
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "GET",
            "/api/v1/me/usage",
            Customer,
            "The account's usage and invoice so far in a period (?period=YYYY-MM, default the current one; a sub-account sees its owner's; clause 7, 6.2)",
            None,
            Some("UsageView")
        ),
        route!(
            "GET",
            "/api/v1/announcements",
            Account,
            "The operator's announcements shown now to this account (6.2 advertising)",
            None,
            Some("AnnouncementView")
        ),
        route!(
            "GET",
            "/api/v1/admin/usage",
            Operator,
            "Operator: usage totals per account and kind in a period (?period=YYYY-MM, ?account=ID; clause 7)",
            None,
            Some("UsageTotal")
        ),
        route!(
            "GET",
            "/api/v1/admin/invoices",
            Operator,
            "Operator: the invoice of every account for a period (?period=YYYY-MM, ?account=ID, ?format=csv; integer minor currency units; clause 7)",
            None,
            Some("Invoices")
        ),
        route!(
            "POST",
            "/api/v1/admin/billing/close",
            Operator,
            "Operator: close a finished period (?period=YYYY-MM) and post its invoices to the billing webhook (clause 7)",
            None,
            Some("CloseAnswer")
        ),
        route!(
            "GET",
            "/api/v1/admin/billing/deliveries",
            Operator,
            "Operator: the billing webhook's delivery attempts for a period (?period=YYYY-MM)",
            None,
            Some("DeliveryView")
        ),
        route!(
            "GET",
            "/api/v1/admin/stats",
            Operator,
            "Operator: series for the charts (?from=&to= Unix seconds, ?step= seconds): devices online, live seconds by path, relay bytes, storage per plan, sign-ups, alarms, SMS (6.2)",
            None,
            Some("StatsView")
        ),
        route!(
            "GET",
            "/api/v1/admin/reports/daily.csv",
            Operator,
            "Operator: the daily report as CSV (?period=YYYY-MM-DD, default yesterday): usage per account and kind",
            None,
            None
        ),
        route!(
            "GET",
            "/api/v1/admin/reports/monthly.csv",
            Operator,
            "Operator: the monthly report as CSV (?period=YYYY-MM, default the current month): usage per account and kind",
            None,
            None
        ),
        route!(
            "GET",
            "/api/v1/admin/announcements",
            Operator,
            "Operator: every announcement, newest first (6.2 advertising)",
            None,
            Some("AnnouncementView")
        ),
        route!(
            "POST",
            "/api/v1/admin/announcements",
            Operator,
            "Operator: publish an announcement shown in the user portal (6.2 advertising)",
            Some("AnnouncementBody"),
            Some("AnnouncementView")
        ),
        route!(
            "PUT",
            "/api/v1/admin/announcements/{id}",
            Operator,
            "Operator: change an announcement",
            Some("AnnouncementBody"),
            Some("AnnouncementView")
        ),
        route!(
            "DELETE",
            "/api/v1/admin/announcements/{id}",
            Operator,
            "Operator: delete an announcement",
            None,
            None
        ),
    ]
}

/// The handler of an accounting route.
pub(crate) fn handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<Shared>> {
    use axum::routing::{delete, get, post, put};
    Some(match (method, path) {
        ("GET", "/api/v1/me/usage") => get(my_usage),
        ("GET", "/api/v1/announcements") => get(current_announcements),
        ("GET", "/api/v1/admin/usage") => get(admin_usage),
        ("GET", "/api/v1/admin/invoices") => get(admin_invoices),
        ("POST", "/api/v1/admin/billing/close") => post(close),
        ("GET", "/api/v1/admin/billing/deliveries") => get(deliveries),
        ("GET", "/api/v1/admin/stats") => get(stats),
        ("GET", "/api/v1/admin/reports/daily.csv") => get(daily_csv),
        ("GET", "/api/v1/admin/reports/monthly.csv") => get(monthly_csv),
        ("GET", "/api/v1/admin/announcements") => get(list_announcements),
        ("POST", "/api/v1/admin/announcements") => post(create_announcement),
        ("PUT", "/api/v1/admin/announcements/{id}") => put(update_announcement),
        ("DELETE", "/api/v1/admin/announcements/{id}") => delete(delete_announcement),
        _ => return None,
    })
}

/// The schemas of the accounting routes' bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    b.schema_from::<UsageView>()
        .schema_from::<UsageTotal>()
        .schema_from::<Invoices>()
        .schema_from::<billing::Invoice>()
        .schema_from::<billing::InvoiceLine>()
        .schema_from::<billing::KindPrice>()
        .schema_from::<CloseAnswer>()
        .schema_from::<DeliveryView>()
        .schema_from::<StatsView>()
        .schema_from::<AnnouncementView>()
        .schema_from::<AnnouncementBody>()
}

#[derive(Debug, Deserialize)]
struct PeriodQuery {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    account: Option<i64>,
    #[serde(default)]
    format: Option<String>,
}

fn period_of(q: Option<&str>) -> ApiResult<Period> {
    match q {
        None | Some("") => Ok(super::current_period()),
        Some(p) => Period::parse(p).map_err(|e| ApiErr::bad_request("bad_period", e.to_string())),
    }
}

/// The owner whose usage `p` sees.
fn owner_of(p: &Principal) -> ApiResult<i64> {
    match p.role {
        Role::Owner => Ok(p.id),
        Role::Sub => p
            .parent
            .ok_or_else(|| ApiErr::internal("sub-account", &"no owner")),
        Role::Operator => Err(ApiErr::forbidden("operators have no usage of their own")),
    }
}

async fn my_usage(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<axum::Json<UsageView>> {
    let owner = owner_of(&p)?;
    let period = period_of(q.period.as_deref())?;
    let (_, mut all) = super::invoices(&st, period, Some(owner)).await?;
    let invoice = all
        .pop()
        .ok_or_else(|| ApiErr::internal("usage", &"no invoice"))?;
    let used: BTreeMap<String, u64> = invoice
        .lines
        .iter()
        .filter(|l| l.item != "plan")
        .map(|l| (l.item.clone(), l.quantity))
        .collect();
    Ok(axum::Json(UsageView {
        period: period.to_string(),
        account: owner,
        used,
        invoice,
    }))
}

async fn admin_usage(
    State(st): State<Shared>,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<axum::Json<Vec<UsageTotal>>> {
    let period = period_of(q.period.as_deref())?;
    let totals = usage::totals(&st.store, period.days(), q.account).await?;
    Ok(axum::Json(
        totals
            .into_iter()
            .map(|t| UsageTotal {
                account: t.account,
                kind: t.kind,
                quantity: t.quantity,
                records: t.records,
            })
            .collect(),
    ))
}

fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

async fn admin_invoices(
    State(st): State<Shared>,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<Response> {
    let period = period_of(q.period.as_deref())?;
    let (closed, invoices) = super::invoices(&st, period, q.account).await?;
    match q.format.as_deref() {
        Some("csv") => Ok(csv_response(
            &format!("invoices-{period}.csv"),
            billing::invoices_csv(&invoices),
        )),
        None | Some("json") => Ok(axum::Json(Invoices {
            period: period.to_string(),
            closed,
            invoices,
        })
        .into_response()),
        Some(_) => Err(ApiErr::bad_request("bad_format", "format is json or csv")),
    }
}

async fn close(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<axum::Json<CloseAnswer>> {
    let Some(name) = q.period.as_deref() else {
        return Err(ApiErr::bad_request(
            "bad_period",
            "?period=YYYY-MM is required",
        ));
    };
    let period = period_of(Some(name))?;
    let (_, to_day) = period.days();
    if to_day * DAY_S > now_s() {
        return Err(ApiErr::conflict(
            "period_open",
            "the period is not over yet",
        ));
    }
    let (closed_at, invoices, webhook) = super::close(&st, period, Some(p.id)).await?;
    audit::log(
        &st.store,
        Event::Billing {
            user: p.id,
            action: "billing.close",
            detail: &period.to_string(),
        },
    )
    .await;
    Ok(axum::Json(CloseAnswer {
        period: period.to_string(),
        closed_at,
        invoices,
        webhook,
    }))
}

async fn deliveries(
    State(st): State<Shared>,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<axum::Json<Vec<DeliveryView>>> {
    let period = period_of(q.period.as_deref())?;
    let all = usage::deliveries(&st.store, &period.to_string()).await?;
    Ok(axum::Json(
        all.into_iter()
            .map(|d| DeliveryView {
                period: d.period,
                at: d.at,
                attempt: d.attempt,
                status: d.status,
                error: d.error,
                ok: d.ok,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    from: Option<u64>,
    to: Option<u64>,
    step: Option<u64>,
}

/// Most buckets one stats answer holds.
const MAX_BUCKETS: u64 = 2000;

async fn stats(
    State(st): State<Shared>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<axum::Json<StatsView>> {
    let to = q.to.unwrap_or_else(|| now_s() + 1);
    let from = q.from.unwrap_or_else(|| to.saturating_sub(7 * DAY_S));
    let step = q.step.unwrap_or(3600);
    if from >= to || step == 0 || (to - from).div_ceil(step) > MAX_BUCKETS {
        return Err(ApiErr::bad_request(
            "bad_range",
            format!("from < to, step > 0, at most {MAX_BUCKETS} buckets"),
        ));
    }
    let mut series: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for kind in [
        "live_s_direct",
        "live_s_punched",
        "live_s_relay",
        "relay_bytes",
        "sms",
    ] {
        series.insert(
            kind.to_owned(),
            usage::series(&st.store, kind, (from, to, step)).await?,
        );
    }
    // Gauges: the last sample in each bucket.
    for prefix in ["devices_online", "storage_bytes:"] {
        for (metric, at, value) in usage::samples(&st.store, prefix, (from, to)).await? {
            let bucket = from + (at - from) / step * step;
            let s = series.entry(metric).or_default();
            match s.last_mut() {
                Some(last) if last.0 == bucket => last.1 = value,
                _ => s.push((bucket, value)),
            }
        }
    }
    series.entry("devices_online".into()).or_default();
    series.insert(
        "signups".into(),
        usage::created(&st.store, Created::Signups, (from, to, step)).await?,
    );
    series.insert(
        "alarms".into(),
        usage::created(&st.store, Created::Alarms, (from, to, step)).await?,
    );
    Ok(axum::Json(StatsView {
        from,
        to,
        step,
        series,
    }))
}

const REPORT_HEADER: &[&str] = &["period", "account", "login", "kind", "quantity", "records"];

async fn daily_csv(State(st): State<Shared>, Query(q): Query<PeriodQuery>) -> ApiResult<Response> {
    let day = match q.period.as_deref() {
        None | Some("") => (now_s() / DAY_S).saturating_sub(1),
        Some(d) => {
            billing::parse_day(d).map_err(|e| ApiErr::bad_request("bad_period", e.to_string()))?
        }
    };
    let logins = usage::logins(&st.store).await?;
    let name = billing::format_day(day);
    let mut out = csv_line(REPORT_HEADER);
    for d in usage::days(&st.store, (day, day + 1)).await? {
        let t = d.total;
        out.push_str(&csv_line(&[
            name.clone(),
            t.account.to_string(),
            logins.get(&t.account).cloned().unwrap_or_default(),
            t.kind,
            t.quantity.to_string(),
            t.records.to_string(),
        ]));
    }
    Ok(csv_response(&format!("daily-{name}.csv"), out))
}

async fn monthly_csv(
    State(st): State<Shared>,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<Response> {
    let period = period_of(q.period.as_deref())?;
    let body = monthly_report(&st.store, period).await?;
    Ok(csv_response(&format!("monthly-{period}.csv"), body))
}

/// The monthly report: one CSV row per account and kind, from the daily rollups.
pub(crate) async fn monthly_report(
    db: &crate::store::Store,
    period: Period,
) -> Result<String, crate::store::StoreError> {
    let logins = usage::logins(db).await?;
    let name = period.to_string();
    let mut out = csv_line(REPORT_HEADER);
    for t in usage::totals(db, period.days(), None).await? {
        out.push_str(&csv_line(&[
            name.clone(),
            t.account.to_string(),
            logins.get(&t.account).cloned().unwrap_or_default(),
            t.kind,
            t.quantity.to_string(),
            t.records.to_string(),
        ]));
    }
    Ok(out)
}

fn ann_view(a: Announcement) -> AnnouncementView {
    AnnouncementView {
        id: a.id,
        title: a.title,
        body: a.body,
        audience: a.audience,
        starts_at: a.starts_at,
        ends_at: a.ends_at,
    }
}

async fn current_announcements(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<axum::Json<Vec<AnnouncementView>>> {
    let now = now_s();
    let plan = match owner_of(&p) {
        Ok(owner) => Some(
            crate::store::plans::get(&st.store, owner)
                .await?
                .map_or_else(|| FREE_PLAN.to_owned(), |s| s.plan),
        ),
        Err(_) => None,
    };
    let all = usage::announcements(&st.store).await?;
    Ok(axum::Json(
        all.into_iter()
            .filter(|a| a.starts_at <= now && a.ends_at.is_none_or(|e| now < e))
            .filter(|a| a.audience.is_none() || p.role == Role::Operator || a.audience == plan)
            .map(ann_view)
            .collect(),
    ))
}

async fn list_announcements(
    State(st): State<Shared>,
) -> ApiResult<axum::Json<Vec<AnnouncementView>>> {
    let all = usage::announcements(&st.store).await?;
    Ok(axum::Json(all.into_iter().map(ann_view).collect()))
}

/// Checks an announcement's body; the stored form.
fn checked(st: &Shared, id: i64, b: AnnouncementBody) -> ApiResult<Announcement> {
    let title = b.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 120 || b.body.chars().count() > 2000 {
        return Err(ApiErr::bad_request(
            "bad_announcement",
            "a title of 1 to 120 characters and a body of at most 2000",
        ));
    }
    if let Some(a) = &b.audience
        && st.config.cloud.plan(a).is_none()
    {
        return Err(ApiErr::bad_request(
            "bad_audience",
            "the audience is a plan id",
        ));
    }
    let now = now_s();
    let starts_at = b.starts_at.unwrap_or(now);
    if b.ends_at.is_some_and(|e| e <= starts_at) {
        return Err(ApiErr::bad_request(
            "bad_announcement",
            "ends_at must follow starts_at",
        ));
    }
    Ok(Announcement {
        id,
        title,
        body: b.body,
        audience: b.audience.filter(|a| !a.is_empty()),
        starts_at,
        ends_at: b.ends_at,
        created_at: now,
    })
}

async fn audit_ann(st: &Shared, p: &Principal, action: &'static str, id: i64) {
    audit::log(
        &st.store,
        Event::Billing {
            user: p.id,
            action,
            detail: &id.to_string(),
        },
    )
    .await;
}

async fn create_announcement(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(b): Json<AnnouncementBody>,
) -> ApiResult<axum::Json<AnnouncementView>> {
    let mut a = checked(&st, 0, b)?;
    a.id = usage::announce(&st.store, &a, p.id).await?;
    audit_ann(&st, &p, "announcement.create", a.id).await;
    Ok(axum::Json(ann_view(a)))
}

async fn update_announcement(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
    Json(b): Json<AnnouncementBody>,
) -> ApiResult<axum::Json<AnnouncementView>> {
    let a = checked(&st, id, b)?;
    if !usage::update_announcement(&st.store, &a).await? {
        return Err(ApiErr::not_found("not_found", "no such announcement"));
    }
    audit_ann(&st, &p, "announcement.update", id).await;
    Ok(axum::Json(ann_view(a)))
}

async fn delete_announcement(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult<axum::http::StatusCode> {
    if !usage::delete_announcement(&st.store, id).await? {
        return Err(ApiErr::not_found("not_found", "no such announcement"));
    }
    audit_ann(&st, &p, "announcement.delete", id).await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
