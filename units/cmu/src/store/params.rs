//! Parameter documents of the CMU (8.9.2: `platform`, `user:ID`) and the single-use
//! configuration permits (8.9.1 steps 7-8, 8.9.2), stored by the digest of the permit.

use super::{Store, StoreError, begin_write, retry, ts, unts};

/// What applying a parameter document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Stored at this new revision; the permit is spent.
    Stored(u64),
    /// No valid permit; nothing changed.
    NoPermit,
    /// The document moved on to this revision meanwhile; the permit is spent anyway.
    Stale(u64),
}

/// The document stored under `key`: its revision and JSON text.
pub(crate) async fn load(db: &Store, key: &str) -> Result<Option<(u64, String)>, StoreError> {
    let row: Option<(i64, String)> = retry(|| async {
        sqlx::query_as("SELECT revision, doc FROM cmu_params WHERE key = $1")
            .bind(key)
            .fetch_optional(db.pool())
            .await
    })
    .await?;
    Ok(row.map(|(r, d)| (unts(r), d)))
}

/// Stores a permit for `user` to change `key` until `expires_at`; forgets expired permits.
pub(crate) async fn issue_permit(
    db: &Store,
    digest: &str,
    user: i64,
    key: &str,
    expires_at: u64,
    now: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query("DELETE FROM config_permits WHERE expires_at < $1")
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO config_permits (permit_hash, user_id, device_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(digest)
        .bind(user)
        .bind(key)
        .bind(ts(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .await
}

const SPEND: &str = "DELETE FROM config_permits WHERE permit_hash = $1 AND user_id = $2 AND device_id = $3 AND expires_at >= $4";

/// Spends a valid permit of `user` for `key`; false if there is none.
pub(crate) async fn spend_permit(
    db: &Store,
    digest: &str,
    user: i64,
    key: &str,
    now: u64,
) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query(SPEND)
            .bind(digest)
            .bind(user)
            .bind(key)
            .bind(ts(now))
            .execute(db.pool())
            .await
            .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// Spends the permit, checks the revision and stores `doc`, in one transaction.
pub(crate) async fn apply(
    db: &Store,
    (digest, user): (&str, i64),
    key: &str,
    base_revision: u64,
    doc: &str,
    now: u64,
) -> Result<Applied, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let spent = sqlx::query(SPEND)
            .bind(digest)
            .bind(user)
            .bind(key)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if spent != 1 {
            return Ok(Applied::NoPermit);
        }
        let current: i64 = sqlx::query_scalar("SELECT revision FROM cmu_params WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        if unts(current) != base_revision {
            // Committing spends the permit even though nothing else changes.
            tx.commit().await?;
            return Ok(Applied::Stale(unts(current)));
        }
        sqlx::query(
            "INSERT INTO cmu_params (key, revision, doc) VALUES ($1, $2, $3)
             ON CONFLICT(key) DO UPDATE SET revision = excluded.revision, doc = excluded.doc",
        )
        .bind(key)
        .bind(current + 1)
        .bind(doc)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Applied::Stored(unts(current + 1)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use crate::store::on_both_backends;
    use peercam_signal::cm::Role;

    use super::*;
    use crate::store::accounts;

    on_both_backends! {
    #[tokio::test]
    async fn permits_serve_once_and_revisions_guard(db) {
        let u = accounts::create(&db, Role::Owner, "+15550100007", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(load(&db, "k").await.unwrap(), None);
        issue_permit(&db, "p1", u, "k", 100, 1).await.unwrap();
        assert_eq!(
            apply(&db, ("p1", u), "k", 0, "{}", 2).await.unwrap(),
            Applied::Stored(1)
        );
        assert_eq!(
            apply(&db, ("p1", u), "k", 1, "{}", 2).await.unwrap(),
            Applied::NoPermit
        );
        issue_permit(&db, "p2", u, "k", 100, 1).await.unwrap();
        assert_eq!(
            apply(&db, ("p2", u), "k", 0, "{}", 2).await.unwrap(),
            Applied::Stale(1)
        );
        assert_eq!(
            apply(&db, ("p2", u), "k", 1, "{}", 2).await.unwrap(),
            Applied::NoPermit
        );
        issue_permit(&db, "p3", u, "dev", 10, 1).await.unwrap();
        assert!(
            !spend_permit(&db, "p3", u, "dev", 11).await.unwrap(),
            "expired"
        );
        issue_permit(&db, "p4", u, "dev", 10, 1).await.unwrap();
        assert!(spend_permit(&db, "p4", u, "dev", 5).await.unwrap());
        assert!(!spend_permit(&db, "p4", u, "dev", 5).await.unwrap());
        assert_eq!(load(&db, "k").await.unwrap(), Some((1, "{}".to_owned())));
    }
    }
}
