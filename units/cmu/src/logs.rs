//! The operator's logs (H.626.4 6.1.14, issue 18 item 4): the audit log and the system log
//! searched by time range, actor, device, action and outcome; exported as CSV or JSON lines,
//! streamed a page at a time (never built in memory); and pruned daily past
//! `audit_retention_days`.
//!
//! The system log is what the units did or saw, as opposed to what people did: the CMU
//! starting and stopping, SCU nodes linking and unlinking, faults raised and cleared,
//! campaigns changing state, the daily prune.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::Stream;
// The formula-safe CSV field of the billing and report exports: one rule for every export
// an operator opens in a spreadsheet.
use peercam_signal::cm::AuditEntry;
use peercam_signal::cm_billing::csv_field;
use peercam_signal::cm_campaign::SystemLogEntry;
use serde::Deserialize;

use crate::api::{RouteInfo, route};
use crate::error::{ApiErr, ApiResult};
use crate::store::logs::{self, Filter, SystemRecord};
use crate::store::{Store, StoreError};
use crate::{Shared, now_s};

/// Rows per page of an export (and per chunk of its body).
const EXPORT_PAGE: u32 = 1000;

/// Appends a row to the system log of this CMU; a failure is logged, never fatal.
pub(crate) async fn system(db: &Store, event: &str, subject: Option<&str>, detail: &str) {
    let r = SystemRecord {
        at: now_s(),
        unit: "cmu",
        event,
        subject,
        detail,
    };
    if let Err(e) = logs::append_system(db, &r).await {
        tracing::error!(error = %e, %event, "system log write failed");
    }
}

/// The operator's routes.
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "GET",
            "/api/v1/admin/audit",
            Operator,
            "The audit log, newest first: `?from=&to=` (Unix seconds), `actor`, `device`, `action` (a trailing `*` matches a prefix), `outcome`, `limit` (default 200, at most 5000), `cursor` (the last id seen: the next page)",
            None,
            Some("AuditEntry")
        ),
        route!(
            "GET",
            "/api/v1/admin/audit/export",
            Operator,
            "The audit log as `?format=csv` or `jsonl` (streamed), with the filters of GET /api/v1/admin/audit and no limit",
            None,
            None
        ),
        route!(
            "GET",
            "/api/v1/admin/syslog",
            Operator,
            "The system log (unit start/stop, SCU node link/unlink, faults, campaigns), newest first: `?from=&to=&device=` (the subject) `&action=` (the event) `&unit=&limit=&cursor=`",
            None,
            Some("SystemLogEntry")
        ),
        route!(
            "GET",
            "/api/v1/admin/syslog/export",
            Operator,
            "The system log as `?format=csv` or `jsonl` (streamed), with the filters of GET /api/v1/admin/syslog",
            None,
            None
        ),
    ]
}

pub(crate) fn handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<Shared>> {
    use axum::routing::get;
    Some(match (method, path) {
        ("GET", "/api/v1/admin/audit") => get(audit),
        ("GET", "/api/v1/admin/audit/export") => get(audit_export),
        ("GET", "/api/v1/admin/syslog") => get(syslog),
        ("GET", "/api/v1/admin/syslog/export") => get(syslog_export),
        _ => return None,
    })
}

/// The schemas of the log routes' bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    b.schema_from::<SystemLogEntry>()
}

/// The query of the log routes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogQuery {
    from: Option<u64>,
    to: Option<u64>,
    actor: Option<i64>,
    device: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    unit: Option<String>,
    limit: Option<u32>,
    cursor: Option<i64>,
    format: Option<String>,
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl LogQuery {
    fn filter(self, system: bool) -> (Filter, Option<u32>, Option<String>) {
        let outcome = if system { self.unit } else { self.outcome };
        (
            Filter {
                from: self.from,
                to: self.to,
                actor: if system { None } else { self.actor },
                device: nonempty(self.device),
                action: nonempty(self.action),
                outcome: nonempty(outcome),
                cursor: self.cursor,
            },
            self.limit,
            self.format,
        )
    }
}

/// `GET /api/v1/admin/audit`.
async fn audit(
    State(st): State<Shared>,
    Query(q): Query<LogQuery>,
) -> ApiResult<axum::Json<Vec<AuditEntry>>> {
    let (f, limit, _) = q.filter(false);
    let limit = limit.unwrap_or(200).clamp(1, 5000);
    Ok(axum::Json(logs::audit(&st.store, &f, limit).await?))
}

/// `GET /api/v1/admin/syslog`.
async fn syslog(
    State(st): State<Shared>,
    Query(q): Query<LogQuery>,
) -> ApiResult<axum::Json<Vec<SystemLogEntry>>> {
    let (f, limit, _) = q.filter(true);
    let limit = limit.unwrap_or(200).clamp(1, 5000);
    Ok(axum::Json(logs::system(&st.store, &f, limit).await?))
}

/// An export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

fn format_of(f: Option<&str>) -> ApiResult<Format> {
    match f.unwrap_or("csv") {
        "csv" => Ok(Format::Csv),
        "jsonl" | "ndjson" => Ok(Format::JsonLines),
        _ => Err(ApiErr::bad_request("bad_format", "format is csv or jsonl")),
    }
}

/// A row of one of the logs, in both export formats.
pub(crate) trait LogRow: serde::Serialize + Send + 'static {
    /// The CSV header.
    const HEADER: &'static str;
    /// The row's id (the cursor).
    fn id(&self) -> i64;
    /// The CSV fields.
    fn fields(&self) -> Vec<String>;
}

impl LogRow for AuditEntry {
    const HEADER: &'static str = "id,at,actor,action,device_id,outcome,detail\r\n";
    fn id(&self) -> i64 {
        self.id
    }
    fn fields(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.at.to_string(),
            self.actor.map(|a| a.to_string()).unwrap_or_default(),
            self.action.clone(),
            self.device_id.clone().unwrap_or_default(),
            self.outcome.clone(),
            self.detail.clone(),
        ]
    }
}

impl LogRow for SystemLogEntry {
    const HEADER: &'static str = "id,at,unit,event,subject,detail\r\n";
    fn id(&self) -> i64 {
        self.id
    }
    fn fields(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.at.to_string(),
            self.unit.clone(),
            self.event.clone(),
            self.subject.clone().unwrap_or_default(),
            self.detail.clone(),
        ]
    }
}

fn encode<T: LogRow>(rows: &[T], format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        match format {
            Format::Csv => {
                let f: Vec<String> = r.fields().iter().map(|f| csv_field(f)).collect();
                out.extend_from_slice(f.join(",").as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Format::JsonLines => {
                if serde_json::to_writer(&mut out, r).is_ok() {
                    out.push(b'\n');
                }
            }
        }
    }
    out
}

/// A page of rows being read.
type Page<T> = Pin<Box<dyn Future<Output = Result<Vec<T>, StoreError>> + Send>>;

/// Reads a page of one of the logs.
type Fetch<T> = fn(Store, Filter, u32) -> Page<T>;

/// The export's body: the header, then one chunk per page of rows, read as the client
/// takes them.
pub(crate) fn export_stream<T: LogRow>(
    db: Store,
    filter: Filter,
    format: Format,
    fetch: Fetch<T>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let header = (format == Format::Csv).then(|| Bytes::from_static(T::HEADER.as_bytes()));
    let start = futures_util::stream::iter(header.map(Ok));
    let pages = futures_util::stream::unfold(Some(filter), move |f| {
        let db = db.clone();
        async move {
            let f = f?;
            match fetch(db, f.clone(), EXPORT_PAGE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = (rows.len() == EXPORT_PAGE as usize).then(|| Filter {
                        cursor: rows.last().map(LogRow::id),
                        ..f
                    });
                    Some((Ok(Bytes::from(encode(&rows, format))), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    futures_util::StreamExt::chain(start, pages)
}

fn fetch_audit(db: Store, f: Filter, n: u32) -> Page<AuditEntry> {
    Box::pin(async move { logs::audit(&db, &f, n).await })
}

fn fetch_system(db: Store, f: Filter, n: u32) -> Page<SystemLogEntry> {
    Box::pin(async move { logs::system(&db, &f, n).await })
}

fn download<T: LogRow>(
    st: &Shared,
    name: &str,
    q: LogQuery,
    system: bool,
    fetch: Fetch<T>,
) -> ApiResult<Response> {
    let (f, _, format) = q.filter(system);
    let format = format_of(format.as_deref())?;
    let (ext, mime) = match format {
        Format::Csv => ("csv", "text/csv; charset=utf-8"),
        Format::JsonLines => ("jsonl", "application/x-ndjson"),
    };
    let mut resp = Response::new(Body::from_stream(export_stream(
        st.store.clone(),
        f,
        format,
        fetch,
    )));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `GET /api/v1/admin/audit/export`.
async fn audit_export(State(st): State<Shared>, Query(q): Query<LogQuery>) -> ApiResult<Response> {
    download(&st, "audit", q, false, fetch_audit)
}

/// `GET /api/v1/admin/syslog/export`.
async fn syslog_export(State(st): State<Shared>, Query(q): Query<LogQuery>) -> ApiResult<Response> {
    download(&st, "syslog", q, true, fetch_system)
}

/// Starts the daily prune of both logs past `audit_retention_days` (0: never), and
/// records this unit's start and stop in the system log.
pub(crate) fn spawn_retention(st: Shared) {
    tokio::spawn(async move {
        system(
            &st.store,
            "unit.start",
            None,
            concat!("peercam CMU ", env!("CARGO_PKG_VERSION")),
        )
        .await;
        loop {
            let days = u64::from(st.config.audit_retention_days);
            if days > 0 {
                let before = now_s().saturating_sub(days * 86_400);
                let mut total = 0;
                loop {
                    match logs::prune(&st.store, before, 10_000).await {
                        Ok(n) => {
                            total += n;
                            if n < 10_000 {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "log prune failed");
                            break;
                        }
                    }
                }
                if total > 0 {
                    let detail = format!("{total} rows older than {days} days deleted");
                    system(&st.store, "log.pruned", None, &detail).await;
                }
            }
            tokio::select! {
                () = st.shutdown.wait() => break,
                () = tokio::time::sleep(Duration::from_secs(86_400)) => {}
            }
        }
        system(&st.store, "unit.stop", None, "shutting down").await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::{Record, append};
    use futures_util::StreamExt as _;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
    }

    /// Bad input and size: an export over many rows comes as one chunk per page, never
    /// as one body built in memory, and holds every row once.
    #[tokio::test]
    async fn h626_6_1_14_logs_export_over_many_rows_streams() {
        let (db, _keep) = crate::store::testing::sqlite().await;
        let rows = 2 * EXPORT_PAGE as usize + 17;
        for i in 0..rows {
            let r = Record {
                at: 1000 + i as u64,
                actor: Some(1),
                action: "x.y",
                device: None,
                outcome: "ok",
                detail: format!("row, {i}"),
            };
            append(&db, &r).await.unwrap();
        }
        for format in [Format::Csv, Format::JsonLines] {
            let chunks: Vec<Bytes> =
                export_stream(db.clone(), Filter::default(), format, fetch_audit)
                    .map(|c| c.unwrap())
                    .collect()
                    .await;
            let data_chunks = chunks.len() - usize::from(format == Format::Csv);
            assert_eq!(data_chunks, 3, "one chunk per page of {EXPORT_PAGE}");
            let text: String = chunks
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let lines = text.lines().count();
            assert_eq!(lines, rows + usize::from(format == Format::Csv));
            if format == Format::JsonLines {
                let ids: std::collections::HashSet<i64> = text
                    .lines()
                    .map(|l| serde_json::from_str::<AuditEntry>(l).unwrap().id)
                    .collect();
                assert_eq!(ids.len(), rows, "each row once");
            } else {
                assert!(text.contains("\"row, 5\""));
            }
        }
    }
}
