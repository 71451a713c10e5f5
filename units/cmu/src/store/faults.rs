//! The fault list of network management (H.626.4 6.1.14).
//!
//! A fault is raised for a (kind, subject) when a condition starts: a camera offline, a
//! recorder's disk full, an SCU node's link lost, an MTU gone or overloaded. At most one
//! fault per (kind, subject) is *active* at a time; raising it again while it is active does
//! nothing. The CMU clears it when the condition ends (`cleared_at`); an operator may
//! acknowledge it (`acked_at`, `acked_by`) and resolve it (`resolved_at`, `resolved_by`).
//! Clearing or resolving ends its activity: the next occurrence is a new fault.

use serde::Serialize;

use super::{Store, StoreError, retry, ts, unts};

/// A fault as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Fault {
    pub(crate) id: i64,
    /// `camera_offline`, `storage_full`, `storage_write_errors`, `scu_node_lost`,
    /// `mtu_lost`, `mtu_overloaded`.
    pub(crate) kind: String,
    /// The device id or node id.
    pub(crate) subject: String,
    pub(crate) detail: String,
    /// Unix seconds.
    pub(crate) raised_at: u64,
    pub(crate) cleared_at: Option<u64>,
    pub(crate) acked_at: Option<u64>,
    pub(crate) acked_by: Option<i64>,
    pub(crate) resolved_at: Option<u64>,
    pub(crate) resolved_by: Option<i64>,
    /// `open`, `acknowledged`, `cleared` or `resolved`.
    pub(crate) state: &'static str,
}

type Row = (
    i64,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// The columns of a [`Row`], in order.
macro_rules! columns {
    () => {
        "id, kind, subject, detail, raised_at, cleared_at, acked_at, acked_by, resolved_at, resolved_by"
    };
}

fn fault(r: Row) -> Fault {
    let (id, kind, subject, detail, raised, cleared, acked, acked_by, resolved, resolved_by) = r;
    let state = if resolved.is_some() {
        "resolved"
    } else if cleared.is_some() {
        "cleared"
    } else if acked.is_some() {
        "acknowledged"
    } else {
        "open"
    };
    Fault {
        id,
        kind,
        subject,
        detail,
        raised_at: unts(raised),
        cleared_at: cleared.map(unts),
        acked_at: acked.map(unts),
        acked_by,
        resolved_at: resolved.map(unts),
        resolved_by,
        state,
    }
}

/// Raises a fault of `kind` on `subject` unless one is active; returns the new fault.
pub(crate) async fn raise(
    db: &Store,
    kind: &str,
    subject: &str,
    detail: &str,
    now: u64,
) -> Result<Option<Fault>, StoreError> {
    let row: Option<Row> = retry(|| async {
        sqlx::query_as(concat!(
            "INSERT INTO faults (kind, subject, detail, raised_at, active) VALUES ($1, $2, $3, $4, 1)
             ON CONFLICT (kind, subject) WHERE active = 1 DO NOTHING RETURNING ", columns!(), ""
        ))
        .bind(kind)
        .bind(subject)
        .bind(detail)
        .bind(ts(now))
        .fetch_optional(db.pool())
        .await
    })
    .await?;
    Ok(row.map(fault))
}

/// The condition of `kind` on `subject` ended: clears its active fault, if any.
pub(crate) async fn clear(
    db: &Store,
    kind: &str,
    subject: &str,
    now: u64,
) -> Result<Option<Fault>, StoreError> {
    let row: Option<Row> = retry(|| async {
        sqlx::query_as(concat!(
            "UPDATE faults SET cleared_at = $3, active = 0
             WHERE kind = $1 AND subject = $2 AND active = 1 RETURNING ",
            columns!(),
            ""
        ))
        .bind(kind)
        .bind(subject)
        .bind(ts(now))
        .fetch_optional(db.pool())
        .await
    })
    .await?;
    Ok(row.map(fault))
}

/// An operator acknowledges fault `id` (once; later calls keep the first). `None`: no such
/// fault.
pub(crate) async fn acknowledge(
    db: &Store,
    id: i64,
    by: i64,
    now: u64,
) -> Result<Option<Fault>, StoreError> {
    handled(
        db,
        concat!(
            "UPDATE faults SET acked_at = COALESCE(acked_at, $2), acked_by = COALESCE(acked_by, $3)
             WHERE id = $1 RETURNING ",
            columns!()
        ),
        (id, by, now),
    )
    .await
}

/// An operator resolves fault `id`: it is no longer active (a new occurrence raises a new
/// fault). `None`: no such fault.
pub(crate) async fn resolve(
    db: &Store,
    id: i64,
    by: i64,
    now: u64,
) -> Result<Option<Fault>, StoreError> {
    handled(
        db,
        concat!(
            "UPDATE faults SET resolved_at = COALESCE(resolved_at, $2),
               resolved_by = COALESCE(resolved_by, $3), active = 0
             WHERE id = $1 RETURNING ",
            columns!()
        ),
        (id, by, now),
    )
    .await
}

/// An operator's update `sql` of fault `$1` by `$3` at `$2`, returning the fault.
async fn handled(
    db: &Store,
    sql: &'static str,
    (id, by, now): (i64, i64, u64),
) -> Result<Option<Fault>, StoreError> {
    let row: Option<Row> = retry(|| async {
        sqlx::query_as(sql)
            .bind(id)
            .bind(ts(now))
            .bind(by)
            .fetch_optional(db.pool())
            .await
    })
    .await?;
    Ok(row.map(fault))
}

/// The newest `limit` faults, newest first; only active ones with `active_only`.
pub(crate) async fn list(
    db: &Store,
    active_only: bool,
    limit: u32,
) -> Result<Vec<Fault>, StoreError> {
    let rows: Vec<Row> = retry(|| async {
        sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM faults WHERE ($1 = 0 OR active = 1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(i64::from(active_only))
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows.into_iter().map(fault).collect())
}

/// How many faults are active now.
pub(crate) async fn active_count(db: &Store) -> Result<u64, StoreError> {
    let n: i64 = retry(|| async {
        sqlx::query_scalar("SELECT COUNT(*) FROM faults WHERE active = 1")
            .fetch_one(db.pool())
            .await
    })
    .await?;
    Ok(unts(n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    /// 6.1.14: one active fault per (kind, subject); clearing ends it and the next
    /// occurrence is a new fault; acknowledge keeps the first operator; resolve ends it.
    #[tokio::test]
    async fn h626_6_1_14_faults_raise_clear_ack_resolve(db) {
        let f = raise(&db, "camera_offline", "PC-1", "no heartbeat", 10).await.unwrap().unwrap();
        assert_eq!(f.state, "open");
        assert!(raise(&db, "camera_offline", "PC-1", "again", 11).await.unwrap().is_none());
        let other = raise(&db, "storage_full", "PC-1", "disk", 12).await.unwrap().unwrap();
        assert_eq!(active_count(&db).await.unwrap(), 2);
        let a = acknowledge(&db, f.id, 7, 20).await.unwrap().unwrap();
        assert_eq!((a.state, a.acked_by, a.acked_at), ("acknowledged", Some(7), Some(20)));
        let a2 = acknowledge(&db, f.id, 8, 21).await.unwrap().unwrap();
        assert_eq!((a2.acked_by, a2.acked_at), (Some(7), Some(20)));
        let c = clear(&db, "camera_offline", "PC-1", 30).await.unwrap().unwrap();
        assert_eq!((c.id, c.state, c.cleared_at), (f.id, "cleared", Some(30)));
        assert!(clear(&db, "camera_offline", "PC-1", 31).await.unwrap().is_none());
        let again = raise(&db, "camera_offline", "PC-1", "no heartbeat", 40).await.unwrap().unwrap();
        assert_ne!(again.id, f.id);
        let r = resolve(&db, other.id, 7, 50).await.unwrap().unwrap();
        assert_eq!((r.state, r.resolved_by), ("resolved", Some(7)));
        assert!(clear(&db, "storage_full", "PC-1", 51).await.unwrap().is_none());
        assert!(resolve(&db, 999_999, 7, 50).await.unwrap().is_none());
        let all = list(&db, false, 10).await.unwrap();
        assert_eq!(all.iter().map(|f| f.id).collect::<Vec<_>>(), vec![again.id, other.id, f.id]);
        let active = list(&db, true, 10).await.unwrap();
        assert_eq!(active.iter().map(|f| f.id).collect::<Vec<_>>(), vec![again.id]);
        assert_eq!(active_count(&db).await.unwrap(), 1);
    }
    }
}
