//! The accounting, statistics and announcement routes of the CMU (H.626.4 clause 7, 6.2)
//! as [`Client`] methods.

use peercam_signal::cm_billing::{
    AnnouncementBody, AnnouncementView, CloseAnswer, DeliveryView, Invoices, StatsView, UsageTotal,
    UsageView,
};
use reqwest::Method;

use crate::{Client, CuError};

/// `?period=P` or nothing.
fn period_query(period: Option<&str>) -> String {
    period.map_or_else(String::new, |p| format!("?period={p}"))
}

impl Client {
    /// The account's usage and invoice so far in `period` (`YYYY-MM`, default the current).
    pub async fn my_usage(&self, period: Option<&str>) -> Result<UsageView, CuError> {
        let path = format!("/api/v1/me/usage{}", period_query(period));
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// The announcements shown now to this account.
    pub async fn announcements(&self) -> Result<Vec<AnnouncementView>, CuError> {
        self.call::<(), _>(Method::GET, "/api/v1/announcements", None)
            .await
    }

    /// Operator: usage totals per account and kind in `period`.
    pub async fn admin_usage(&self, period: Option<&str>) -> Result<Vec<UsageTotal>, CuError> {
        let path = format!("/api/v1/admin/usage{}", period_query(period));
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// Operator: every account's invoice for `period`.
    pub async fn admin_invoices(&self, period: Option<&str>) -> Result<Invoices, CuError> {
        let path = format!("/api/v1/admin/invoices{}", period_query(period));
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// Operator: the invoices of `period` as CSV.
    pub async fn admin_invoices_csv(&self, period: Option<&str>) -> Result<String, CuError> {
        let q = period_query(period);
        let sep = if q.is_empty() { '?' } else { '&' };
        self.get_text(&format!("/api/v1/admin/invoices{q}{sep}format=csv"))
            .await
    }

    /// Operator: the `daily` (`period` `YYYY-MM-DD`) or `monthly` (`YYYY-MM`) report as CSV.
    pub async fn admin_report_csv(
        &self,
        which: &str,
        period: Option<&str>,
    ) -> Result<String, CuError> {
        self.get_text(&format!(
            "/api/v1/admin/reports/{which}.csv{}",
            period_query(period)
        ))
        .await
    }

    /// Operator: the chart series between `from` and `to` (Unix seconds) by `step` seconds.
    pub async fn admin_stats(&self, from: u64, to: u64, step: u64) -> Result<StatsView, CuError> {
        let path = format!("/api/v1/admin/stats?from={from}&to={to}&step={step}");
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// Operator: closes a finished period and starts its webhook delivery.
    pub async fn admin_close_period(&self, period: &str) -> Result<CloseAnswer, CuError> {
        let path = format!("/api/v1/admin/billing/close?period={period}");
        self.call::<(), _>(Method::POST, &path, None).await
    }

    /// Operator: the billing webhook's delivery attempts for `period`.
    pub async fn admin_deliveries(&self, period: &str) -> Result<Vec<DeliveryView>, CuError> {
        let path = format!("/api/v1/admin/billing/deliveries?period={period}");
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// Operator: every announcement.
    pub async fn admin_announcements(&self) -> Result<Vec<AnnouncementView>, CuError> {
        self.call::<(), _>(Method::GET, "/api/v1/admin/announcements", None)
            .await
    }

    /// Operator: publishes an announcement.
    pub async fn admin_announce(
        &self,
        body: &AnnouncementBody,
    ) -> Result<AnnouncementView, CuError> {
        self.call(Method::POST, "/api/v1/admin/announcements", Some(body))
            .await
    }

    /// Operator: deletes an announcement.
    pub async fn admin_unannounce(&self, id: i64) -> Result<(), CuError> {
        let path = format!("/api/v1/admin/announcements/{id}");
        self.call::<(), ()>(Method::DELETE, &path, None).await
    }

    /// A text answer (CSV).
    async fn get_text(&self, path: &str) -> Result<String, CuError> {
        let bytes = self.get_raw(path).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
