//! The audit log: append-only rows of who did what to which device, and how it ended.

use peercam_signal::cm::AuditEntry;

use super::{Store, StoreError, retry, ts, unts};

/// One row to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) at: u64,
    pub(crate) actor: Option<i64>,
    pub(crate) action: &'static str,
    pub(crate) device: Option<&'a str>,
    pub(crate) outcome: &'a str,
    pub(crate) detail: String,
}

type Row = (
    i64,
    i64,
    Option<i64>,
    String,
    Option<String>,
    String,
    String,
);

fn entries(rows: Vec<Row>) -> Vec<AuditEntry> {
    rows.into_iter()
        .map(
            |(id, at, actor, action, device_id, outcome, detail)| AuditEntry {
                id,
                at: unts(at),
                actor,
                action,
                device_id,
                outcome,
                detail,
            },
        )
        .collect()
}

/// Appends one row.
pub(crate) async fn append(db: &Store, r: &Record<'_>) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO audit (at, actor_id, action, device_id, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(ts(r.at))
        .bind(r.actor)
        .bind(r.action)
        .bind(r.device)
        .bind(r.outcome)
        .bind(&r.detail)
        .execute(db.pool())
        .await
        .map(drop)
    })
    .await?;
    db.audit_rows
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The newest `limit` rows, newest first (operator).
#[cfg(test)]
pub(crate) async fn recent(db: &Store, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = retry(|| async {
        sqlx::query_as(
            "SELECT id, at, actor_id, action, device_id, outcome, detail FROM audit ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(entries(rows))
}

/// The newest `limit` rows that `user` did or that concern a device it owns, newest first.
pub(crate) async fn of_account(
    db: &Store,
    user: i64,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = retry(|| async {
        sqlx::query_as(
            "SELECT id, at, actor_id, action, device_id, outcome, detail FROM audit
             WHERE actor_id = $1 OR device_id IN (SELECT id FROM devices WHERE owner_id = $1)
             ORDER BY id DESC LIMIT $2",
        )
        .bind(user)
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(entries(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    #[tokio::test]
    async fn append_and_read_back_newest_first(db) {
        for (i, actor) in [(1, Some(5)), (2, None), (3, Some(6))] {
            let r = Record {
                at: i,
                actor,
                action: "x.y",
                device: None,
                outcome: "ok",
                detail: format!("{i}"),
            };
            append(&db, &r).await.unwrap();
        }
        let all = recent(&db, 10).await.unwrap();
        assert_eq!(all.iter().map(|e| e.at).collect::<Vec<_>>(), vec![3, 2, 1]);
        assert_eq!(recent(&db, 1).await.unwrap().len(), 1);
        let mine = of_account(&db, 5, 10).await.unwrap();
        assert_eq!((mine.len(), mine[0].detail.as_str()), (1, "1"));
    }
    }
}
