//! The CRM outbox (H.626.4 6.2): verifications of sign-ups made while the CRM did not
//! answer, and account changes to tell it, kept until the CRM takes them.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Arg, Store, StoreError, retry, select, ts, unts};

/// A verification of the account waiting for the CRM (its body is empty).
pub(crate) const VERIFY: &str = "verify";
/// An account change to tell the CRM (its body is the event's JSON).
pub(crate) const EVENT: &str = "event";

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) account_id: i64,
    pub(crate) body: String,
    pub(crate) attempts: u32,
    pub(crate) next_ms: u64,
}

fn item(row: &AnyRow) -> Result<Item, sqlx::Error> {
    Ok(Item {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        account_id: row.try_get("account_id")?,
        body: row.try_get("body")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        next_ms: unts(row.try_get("next_ms")?),
    })
}

/// Queues an item, due at once; its id.
pub(crate) async fn push(
    db: &Store,
    kind: &str,
    account_id: i64,
    body: &str,
    now_ms: u64,
) -> Result<i64, StoreError> {
    retry(|| async {
        sqlx::query_scalar(
            "INSERT INTO crm_outbox (kind, account_id, body, next_ms, created_at) VALUES ($1, $2, $3, $4, $5)
             RETURNING id",
        )
        .bind(kind)
        .bind(account_id)
        .bind(body)
        .bind(ts(now_ms))
        .bind(ts(now_ms / 1000))
        .fetch_one(db.pool())
        .await
    })
    .await
}

/// Sets the body of an item (an event's body names its own id).
pub(crate) async fn set_body(db: &Store, id: i64, body: &str) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("UPDATE crm_outbox SET body = $1 WHERE id = $2")
            .bind(body)
            .bind(id)
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// The oldest items (due or not: the outbox is delivered in order).
pub(crate) async fn head(db: &Store, limit: u32) -> Result<Vec<Item>, StoreError> {
    select(
        db,
        "SELECT id, kind, account_id, body, attempts, next_ms FROM crm_outbox ORDER BY id LIMIT $1",
        &[Arg::Int(i64::from(limit))],
        item,
    )
    .await
}

/// Claims a due item until `until_ms` (another CMU instance on the database then leaves
/// it alone); false if another claimed it first.
pub(crate) async fn claim(db: &Store, it: &Item, until_ms: u64) -> Result<bool, StoreError> {
    retry(|| async {
        let r = sqlx::query("UPDATE crm_outbox SET next_ms = $1 WHERE id = $2 AND next_ms = $3")
            .bind(ts(until_ms))
            .bind(it.id)
            .bind(ts(it.next_ms))
            .execute(db.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    })
    .await
}

/// The item is done: gone from the outbox.
pub(crate) async fn done(db: &Store, id: i64) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM crm_outbox WHERE id = $1")
            .bind(id)
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// The item failed: tried again at `next_ms`.
pub(crate) async fn failed(
    db: &Store,
    id: i64,
    next_ms: u64,
    error: &str,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "UPDATE crm_outbox SET attempts = attempts + 1, next_ms = $1, last_error = $2 WHERE id = $3",
        )
        .bind(ts(next_ms))
        .bind(error)
        .bind(id)
        .execute(db.pool())
        .await
        .map(drop)
    })
    .await
}

/// Items waiting in the outbox.
pub(crate) async fn waiting(db: &Store) -> Result<u64, StoreError> {
    retry(|| async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM crm_outbox")
            .fetch_one(db.pool())
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    #[tokio::test]
    async fn outbox_keeps_items_until_done(db) {
        let a = push(&db, VERIFY, 7, "", 1000).await.unwrap();
        let b = push(&db, EVENT, 7, "{}", 1000).await.unwrap();
        set_body(&db, b, "{\"id\":2}").await.unwrap();
        let items = head(&db, 10).await.unwrap();
        assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a, b]);
        assert!(claim(&db, &items[0], 5000).await.unwrap());
        assert!(!claim(&db, &items[0], 5000).await.unwrap(), "claimed once");
        failed(&db, a, 9000, "down").await.unwrap();
        let items = head(&db, 10).await.unwrap();
        assert_eq!((items[0].next_ms, items[0].attempts), (9000, 1));
        assert_eq!(items[1].body.as_str(), "{\"id\":2}");
        done(&db, b).await.unwrap();
        // Ids are never reused (they are the events' idempotency keys).
        let c = push(&db, EVENT, 7, "", 1000).await.unwrap();
        assert!(c > b);
        assert_eq!(waiting(&db).await.unwrap(), 2);
    }
    }
}
