//! Searching the audit log and the system log (H.626.4 6.1.14, issue 18 item 4): by time
//! range, actor, device, action and outcome, newest first, a page at a time (the cursor is
//! the last row id seen); the system log's rows; pruning both past their retention.

use peercam_signal::cm::AuditEntry;
use peercam_signal::cm_campaign::SystemLogEntry;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Arg, Store, StoreError, retry, select, ts, unts};

/// What to look for; every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// At or after, Unix seconds.
    pub(crate) from: Option<u64>,
    /// Before, Unix seconds.
    pub(crate) to: Option<u64>,
    /// Audit: the acting account.
    pub(crate) actor: Option<i64>,
    /// Audit: the device; system log: the subject (device, node or campaign).
    pub(crate) device: Option<String>,
    /// Audit: the action; system log: the event. A trailing `*` matches a prefix
    /// (`campaign.*`).
    pub(crate) action: Option<String>,
    /// Audit: the outcome (`ok` or a refusal code); system log: the unit.
    pub(crate) outcome: Option<String>,
    /// Only rows with a smaller id (the next page).
    pub(crate) cursor: Option<i64>,
}

/// Column names of the two logs for [`Filter`]'s fields.
struct Columns {
    table: &'static str,
    select: &'static str,
    actor: Option<&'static str>,
    device: &'static str,
    action: &'static str,
    outcome: &'static str,
}

const AUDIT: Columns = Columns {
    table: "audit",
    select: "id, at, actor_id, action, device_id, outcome, detail",
    actor: Some("actor_id"),
    device: "device_id",
    action: "action",
    outcome: "outcome",
};

const SYSTEM: Columns = Columns {
    table: "system_log",
    select: "id, at, unit, event, subject, detail",
    actor: None,
    device: "subject",
    action: "event",
    outcome: "unit",
};

/// `LIKE` pattern of a prefix, with the wildcards in it escaped.
fn prefix_pattern(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 1);
    for c in p.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The query for `f` on `c`, newest first, at most `limit` rows; and its arguments.
fn query<'a>(
    c: &Columns,
    f: &'a Filter,
    pattern: &'a Option<String>,
    limit: u32,
) -> (String, Vec<Arg<'a>>) {
    let mut sql = format!("SELECT {} FROM {} WHERE 1 = 1", c.select, c.table);
    let mut args = Vec::new();
    let mut add = |cond: &str, a: Arg<'a>, sql: &mut String| {
        args.push(a);
        sql.push_str(&format!(" AND {cond} ${}", args.len()));
    };
    if let Some(v) = f.from {
        add("at >=", Arg::Int(ts(v)), &mut sql);
    }
    if let Some(v) = f.to {
        add("at <", Arg::Int(ts(v)), &mut sql);
    }
    if let (Some(v), Some(col)) = (f.actor, c.actor) {
        add(&format!("{col} ="), Arg::Int(v), &mut sql);
    }
    if let Some(v) = &f.device {
        add(&format!("{} =", c.device), Arg::Text(v), &mut sql);
    }
    if let Some(p) = pattern {
        add(&format!("{} LIKE", c.action), Arg::Text(p), &mut sql);
        sql.push_str(" ESCAPE '\\'");
    } else if let Some(v) = &f.action {
        add(&format!("{} =", c.action), Arg::Text(v), &mut sql);
    }
    if let Some(v) = &f.outcome {
        add(&format!("{} =", c.outcome), Arg::Text(v), &mut sql);
    }
    if let Some(v) = f.cursor {
        add("id <", Arg::Int(v), &mut sql);
    }
    args.push(Arg::Int(i64::from(limit)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
    (sql, args)
}

fn pattern_of(f: &Filter) -> Option<String> {
    f.action
        .as_deref()
        .and_then(|a| a.strip_suffix('*'))
        .map(prefix_pattern)
}

fn audit_entry(r: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        id: r.try_get("id")?,
        at: unts(r.try_get("at")?),
        actor: r.try_get("actor_id")?,
        action: r.try_get("action")?,
        device_id: r.try_get("device_id")?,
        outcome: r.try_get("outcome")?,
        detail: r.try_get("detail")?,
    })
}

fn system_entry(r: &AnyRow) -> Result<SystemLogEntry, sqlx::Error> {
    Ok(SystemLogEntry {
        id: r.try_get("id")?,
        at: unts(r.try_get("at")?),
        unit: r.try_get("unit")?,
        event: r.try_get("event")?,
        subject: r.try_get("subject")?,
        detail: r.try_get("detail")?,
    })
}

/// Audit rows matching `f`, newest first.
pub(crate) async fn audit(
    db: &Store,
    f: &Filter,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    let pattern = pattern_of(f);
    let (sql, args) = query(&AUDIT, f, &pattern, limit);
    select(db, &sql, &args, audit_entry).await
}

/// System log rows matching `f`, newest first.
pub(crate) async fn system(
    db: &Store,
    f: &Filter,
    limit: u32,
) -> Result<Vec<SystemLogEntry>, StoreError> {
    let pattern = pattern_of(f);
    let (sql, args) = query(&SYSTEM, f, &pattern, limit);
    select(db, &sql, &args, system_entry).await
}

/// One system log row to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemRecord<'a> {
    pub(crate) at: u64,
    pub(crate) unit: &'a str,
    pub(crate) event: &'a str,
    pub(crate) subject: Option<&'a str>,
    pub(crate) detail: &'a str,
}

/// Appends a system log row.
pub(crate) async fn append_system(db: &Store, r: &SystemRecord<'_>) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO system_log (at, unit, event, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ts(r.at))
        .bind(r.unit)
        .bind(r.event)
        .bind(r.subject)
        .bind(r.detail)
        .execute(db.pool())
        .await
        .map(drop)
    })
    .await
}

/// Deletes the rows of both logs older than `before` (Unix seconds), at most `batch` per
/// log; returns how many went.
pub(crate) async fn prune(db: &Store, before: u64, batch: u32) -> Result<u64, StoreError> {
    let mut n = 0;
    for table in ["audit", "system_log"] {
        let sql = format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE at < $1 ORDER BY id LIMIT $2)"
        );
        n += retry(|| async {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(ts(before))
                .bind(i64::from(batch))
                .execute(db.pool())
                .await
                .map(|d| d.rows_affected())
        })
        .await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::{Record, append};
    use crate::store::on_both_backends;

    on_both_backends! {
    #[tokio::test]
    async fn logs_search_by_time_actor_device_action_and_page(db) {
        for i in 0..10u64 {
            let r = Record {
                at: 100 + i,
                actor: Some(if i % 2 == 0 { 1 } else { 2 }),
                action: if i < 5 { "campaign.create" } else { "device.bind" },
                device: (i == 7).then_some("pc-x"),
                outcome: if i == 9 { "refused" } else { "ok" },
                detail: format!("{i}"),
            };
            append(&db, &r).await.unwrap();
            let s = SystemRecord { at: 100 + i, unit: "cmu", event: "fault.raised", subject: Some("pc-x"), detail: "d" };
            append_system(&db, &s).await.unwrap();
        }
        let all = audit(&db, &Filter::default(), 100).await.unwrap();
        assert_eq!(all.len(), 10);
        let f = Filter { from: Some(102), to: Some(106), ..Filter::default() };
        let got: Vec<u64> = audit(&db, &f, 100).await.unwrap().iter().map(|e| e.at).collect();
        assert_eq!(got, vec![105, 104, 103, 102]);
        let f = Filter { actor: Some(2), action: Some("device.*".into()), ..Filter::default() };
        assert_eq!(audit(&db, &f, 100).await.unwrap().len(), 3, "5, 7, 9");
        let f = Filter { device: Some("pc-x".into()), ..Filter::default() };
        assert_eq!(audit(&db, &f, 100).await.unwrap()[0].at, 107);
        let f = Filter { outcome: Some("refused".into()), ..Filter::default() };
        assert_eq!(audit(&db, &f, 100).await.unwrap()[0].at, 109);
        let f = Filter { action: Some("campaign_*".into()), ..Filter::default() };
        assert!(audit(&db, &f, 100).await.unwrap().is_empty(), "_ is no wildcard");
        // Pages: the cursor is the last id seen.
        let first = audit(&db, &Filter::default(), 4).await.unwrap();
        let next = Filter { cursor: Some(first[3].id), ..Filter::default() };
        let second = audit(&db, &next, 4).await.unwrap();
        assert_eq!(second[0].at, first[3].at - 1);
        let f = Filter { outcome: Some("cmu".into()), from: Some(108), ..Filter::default() };
        assert_eq!(system(&db, &f, 100).await.unwrap().len(), 2);
        assert_eq!(prune(&db, 105, 1000).await.unwrap(), 10);
        assert_eq!(audit(&db, &Filter::default(), 100).await.unwrap().len(), 5);
        assert_eq!(system(&db, &Filter::default(), 100).await.unwrap().len(), 5);
    }
    }
}
