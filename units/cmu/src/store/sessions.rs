//! Login sessions (6.1.1): stored by the digest of their bearer token, never the token.

use peercam_signal::cm::AccountStatus;

use super::accounts::{self, Account};
use super::{Store, StoreError, retry, ts};

/// Starts a session for `user` until `expires_at`, and forgets the expired ones.
pub(crate) async fn create(
    db: &Store,
    token_digest: &str,
    user: i64,
    now: u64,
    expires_at: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(ts(now))
            .execute(db.pool())
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_digest)
        .bind(user)
        .bind(ts(now))
        .bind(ts(expires_at))
        .execute(db.pool())
        .await
        .map(drop)
    })
    .await
}

/// Ends one session.
pub(crate) async fn end(db: &Store, token_digest: &str) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_digest)
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// The account of an unexpired session, if it is active and, for a sub-account, its owner
/// is active too (a sub-account of a disabled owner is disabled).
pub(crate) async fn account(
    db: &Store,
    token_digest: &str,
    now: u64,
) -> Result<Option<Account>, StoreError> {
    let user: Option<i64> = retry(|| async {
        sqlx::query_scalar("SELECT user_id FROM sessions WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_digest)
            .bind(ts(now))
            .fetch_optional(db.pool())
            .await
    })
    .await?;
    let Some(user) = user else {
        return Ok(None);
    };
    let Some(account) = accounts::get(db, user).await? else {
        return Ok(None);
    };
    if account.status != AccountStatus::Active {
        return Ok(None);
    }
    if let Some(parent) = account.parent {
        let owner = accounts::get(db, parent).await?;
        if owner.is_none_or(|o| o.status != AccountStatus::Active) {
            return Ok(None);
        }
    }
    Ok(Some(account))
}

#[cfg(test)]
mod tests {
    use crate::store::on_both_backends;
    use peercam_signal::cm::Role;

    use super::*;

    on_both_backends! {
    #[tokio::test]
    async fn sessions_expire_end_and_follow_the_owner(db) {
        let owner = accounts::create(&db, Role::Owner, "+15550100003", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        let sub = accounts::create(&db, Role::Sub, "kid", "h", Some(owner), 1)
            .await
            .unwrap()
            .unwrap();
        create(&db, "a", owner, 10, 20).await.unwrap();
        create(&db, "b", sub, 10, 20).await.unwrap();
        assert_eq!(
            account(&db, "a", 15).await.unwrap().map(|a| a.id),
            Some(owner)
        );
        assert!(account(&db, "a", 20).await.unwrap().is_none(), "expired");
        assert_eq!(
            account(&db, "b", 15).await.unwrap().map(|a| a.id),
            Some(sub)
        );
        accounts::disable(&db, owner).await.unwrap();
        assert!(
            account(&db, "b", 15).await.unwrap().is_none(),
            "the owner is disabled"
        );
        create(&db, "c", sub, 10, 20).await.unwrap();
        end(&db, "c").await.unwrap();
        assert!(account(&db, "c", 15).await.unwrap().is_none());
    }
    }
}
