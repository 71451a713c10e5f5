//! Web Push (H.626.4 6.1.9 push channel): the CMU's VAPID key (RFC 8292) and each user's
//! browser subscriptions (RFC 8030 endpoint, RFC 8291 keys).

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Arg, Store, StoreError, begin_write, retry, select, ts};

/// One browser's subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) user: i64,
    pub(crate) endpoint: String,
    /// The browser's uncompressed P-256 public key (65 bytes).
    pub(crate) p256dh: Vec<u8>,
    /// The 16-byte authentication secret.
    pub(crate) auth: Vec<u8>,
}

/// What adding a subscription did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// Kept (new, or the same endpoint's keys renewed).
    Kept,
    /// The user has `max` already; nothing changed.
    Full,
}

fn decode(r: &AnyRow) -> Result<Subscription, sqlx::Error> {
    Ok(Subscription {
        user: r.try_get(0)?,
        endpoint: r.try_get(1)?,
        p256dh: r.try_get(2)?,
        auth: r.try_get(3)?,
    })
}

/// The VAPID private key (32 bytes): the one stored, or `fresh` stored now on first use
/// (several processes starting at once agree on the first one written).
pub(crate) async fn vapid_secret(
    db: &Store,
    fresh: &[u8; 32],
    now: u64,
) -> Result<Vec<u8>, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query(
            "INSERT INTO push_vapid (id, secret, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&fresh[..])
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        let secret: Vec<u8> = sqlx::query_scalar("SELECT secret FROM push_vapid WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(secret)
    })
    .await
}

/// Keeps `sub` for its user, at most `max` per user. An endpoint is one browser's: one
/// subscribed before by another account moves to this one.
pub(crate) async fn add(
    db: &Store,
    sub: &Subscription,
    max: i64,
    now: u64,
) -> Result<Added, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM push_subscriptions WHERE user_id = $1 AND endpoint <> $2",
        )
        .bind(sub.user)
        .bind(&sub.endpoint)
        .fetch_one(&mut *tx)
        .await?;
        if others >= max {
            return Ok(Added::Full);
        }
        sqlx::query(
            "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id,
                 p256dh = excluded.p256dh, auth = excluded.auth, created_at = excluded.created_at",
        )
        .bind(sub.user)
        .bind(&sub.endpoint)
        .bind(&sub.p256dh)
        .bind(&sub.auth)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Added::Kept)
    })
    .await
}

/// The user's subscriptions, oldest first.
pub(crate) async fn of_user(db: &Store, user: i64) -> Result<Vec<Subscription>, StoreError> {
    select(
        db,
        "SELECT user_id, endpoint, p256dh, auth FROM push_subscriptions WHERE user_id = $1 ORDER BY id",
        &[Arg::Int(user)],
        decode,
    )
    .await
}

/// Forgets the user's subscription at `endpoint`: false if there was none.
pub(crate) async fn remove(db: &Store, user: i64, endpoint: &str) -> Result<bool, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let n = sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
            .bind(user)
            .bind(endpoint)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    })
    .await
}

/// Forgets `endpoint` whoever it is (the push service answered it is gone: 404, 410).
pub(crate) async fn gone(db: &Store, endpoint: &str) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
            .bind(endpoint)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
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
    async fn h626_6_1_9_push_vapid_key_kept_and_subscriptions_capped(db) {
        let first = vapid_secret(&db, &[1; 32], 1).await.unwrap();
        assert_eq!(vapid_secret(&db, &[2; 32], 2).await.unwrap(), first);
        let a = accounts::create(&db, Role::Owner, "+15550619001", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        let b = accounts::create(&db, Role::Owner, "+15550619002", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        let sub = |user, n: u8| Subscription {
            user,
            endpoint: format!("https://push.example/{n}"),
            p256dh: vec![4; 65],
            auth: vec![n; 16],
        };
        assert_eq!(add(&db, &sub(a, 1), 2, 1).await.unwrap(), Added::Kept);
        assert_eq!(add(&db, &sub(a, 2), 2, 1).await.unwrap(), Added::Kept);
        assert_eq!(add(&db, &sub(a, 3), 2, 1).await.unwrap(), Added::Full);
        // The same endpoint again renews it, even at the cap.
        assert_eq!(add(&db, &sub(a, 2), 2, 1).await.unwrap(), Added::Kept);
        // Another account subscribing the same browser takes it over.
        assert_eq!(add(&db, &sub(b, 1), 2, 1).await.unwrap(), Added::Kept);
        assert_eq!(of_user(&db, a).await.unwrap(), vec![sub(a, 2)]);
        assert!(!remove(&db, a, "https://push.example/1").await.unwrap());
        assert!(remove(&db, b, "https://push.example/1").await.unwrap());
        gone(&db, "https://push.example/2").await.unwrap();
        assert!(of_user(&db, a).await.unwrap().is_empty());
    }
    }
}
