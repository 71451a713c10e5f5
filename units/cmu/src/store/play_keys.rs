//! The signing keys of the 8.4 play tokens (docs/security.md D4), shared by every CMU
//! instance on this database: the newest signs, older ones still verify until every token
//! they signed has expired (docs/design/scale-out.md section 2).

use super::{Store, StoreError, begin_write, retry, ts, unts};

/// One signing key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PlayKey {
    /// Its id, the `kid` in tokens.
    pub(crate) id: i64,
    /// The HMAC-SHA256 key.
    pub(crate) secret: [u8; 32],
    /// When it was made, Unix s.
    pub(crate) created_at: u64,
}

impl std::fmt::Debug for PlayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("PlayKey")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

type Row = (i64, Vec<u8>, i64);

fn decode(rows: Vec<Row>) -> Result<Vec<PlayKey>, StoreError> {
    rows.into_iter()
        .map(|(id, secret, created_at)| {
            Ok(PlayKey {
                id,
                secret: secret
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("play key {id} is not 32 bytes")))?,
                created_at: unts(created_at),
            })
        })
        .collect()
}

const ALL: &str = "SELECT id, secret, created_at FROM play_keys ORDER BY id";

/// Every kept key, oldest first.
pub(crate) async fn all(db: &Store) -> Result<Vec<PlayKey>, StoreError> {
    let rows: Vec<Row> = retry(|| async { sqlx::query_as(ALL).fetch_all(db.pool()).await }).await?;
    decode(rows)
}

/// What [`rotate`] is told.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rotation {
    /// Now, Unix s.
    pub(crate) now: u64,
    /// A new key is made when the newest is this old, s.
    pub(crate) every_s: u64,
    /// A key is forgotten once its successor is this old (the longest token lifetime and
    /// some slack): no token it signed can still be valid.
    pub(crate) keep_s: u64,
}

/// Makes a key from `fresh` when there is none or the newest is [`Rotation::every_s`] old,
/// forgets keys no valid token can name any more, and returns the kept keys, oldest first.
/// One write transaction: instances that rotate at the same moment make one key.
pub(crate) async fn rotate(
    db: &Store,
    fresh: [u8; 32],
    r: Rotation,
) -> Result<Vec<PlayKey>, StoreError> {
    let rows: Vec<Row> = retry(|| async {
        let mut tx = begin_write(db).await?;
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(created_at) FROM play_keys")
            .fetch_one(&mut *tx)
            .await?;
        if newest.is_none_or(|t| unts(t).saturating_add(r.every_s) <= r.now) {
            sqlx::query("INSERT INTO play_keys (secret, created_at) VALUES ($1, $2)")
                .bind(fresh.as_slice())
                .bind(ts(r.now))
                .execute(&mut *tx)
                .await?;
        }
        // A key stops signing when its successor is made; its last tokens expire within
        // `keep_s` of that.
        sqlx::query(
            "DELETE FROM play_keys WHERE id < (SELECT MAX(id) FROM play_keys WHERE created_at < $1)",
        )
        .bind(ts(r.now.saturating_sub(r.keep_s)))
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query_as(ALL).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    })
    .await?;
    decode(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    fn at(now: u64) -> Rotation {
        Rotation {
            now,
            every_s: 100,
            keep_s: 30,
        }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_8_4_play_keys_rotate_and_retire(db) {
        assert!(all(&db).await.unwrap().is_empty());
        let first = rotate(&db, [1; 32], at(1000)).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].secret, first[0].created_at), ([1; 32], 1000));
        // Another instance soon after finds it and makes none.
        assert_eq!(rotate(&db, [2; 32], at(1050)).await.unwrap(), first);
        assert_eq!(all(&db).await.unwrap(), first);
        // Due: a new key; the old one still verifies.
        let both = rotate(&db, [3; 32], at(1100)).await.unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(both[0], first[0]);
        assert!(both[1].id > both[0].id);
        assert_eq!(both[1].secret, [3; 32]);
        // Until its successor is keep_s old: then it goes.
        assert_eq!(rotate(&db, [4; 32], at(1130)).await.unwrap(), both);
        let kept = rotate(&db, [4; 32], at(1131)).await.unwrap();
        assert_eq!(kept, both[1..]);
        assert!(!format!("{:?}", kept[0]).contains("3, 3"), "no secret in Debug");
    }
    }

    on_both_backends! {
    /// Issue 19: CMU instances rotating at once make one key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn h626_8_4_instances_rotating_together_make_one_key(db) {
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { rotate(&db, [i; 32], at(5000)).await })
            })
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap().unwrap());
        }
        assert_eq!(seen[0].len(), 1);
        assert!(seen.iter().all(|k| *k == seen[0]), "{seen:?}");
    }
    }
}
