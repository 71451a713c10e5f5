//! Rate limits shared by every CMU instance on this database (issue 19): fixed-window
//! counters and pacing slots, one row per name, each changed by one atomic upsert.
//! Times are wall-clock Unix milliseconds.

use super::{Store, StoreError, retry, ts, unts};

/// Counts one event in the window of `name` (`window_ms` long, `max` events) unless it is
/// full: `Ok(())`, or `Err(ms until the window ends)`. A full window is not counted further.
pub(crate) async fn hit(
    db: &Store,
    name: &str,
    (max, window_ms): (u32, u64),
    now_ms: u64,
) -> Result<Result<(), u64>, StoreError> {
    // The count stops at max + 1 ("full, refused"), so a refused event does not move it.
    let (count, expires): (i64, i64) = retry(|| async {
        sqlx::query_as(
            "INSERT INTO rate_windows (name, count, expires_ms) VALUES ($1, 1, $2 + $3)
             ON CONFLICT (name) DO UPDATE SET
               count = CASE WHEN rate_windows.expires_ms <= $2 THEN 1
                            WHEN rate_windows.count > $4 THEN rate_windows.count
                            ELSE rate_windows.count + 1 END,
               expires_ms = CASE WHEN rate_windows.expires_ms <= $2 THEN $2 + $3
                                 ELSE rate_windows.expires_ms END
             RETURNING count, expires_ms",
        )
        .bind(name)
        .bind(ts(now_ms))
        .bind(ts(window_ms))
        .bind(i64::from(max))
        .fetch_one(db.pool())
        .await
    })
    .await?;
    if count > i64::from(max) {
        return Ok(Err(unts(expires).saturating_sub(now_ms)));
    }
    Ok(Ok(()))
}

/// Would one more event of `name` fit in its window (`max` events)? `Err(ms until the
/// window ends)` if not. Counts nothing.
pub(crate) async fn check(
    db: &Store,
    name: &str,
    max: u32,
    now_ms: u64,
) -> Result<Result<(), u64>, StoreError> {
    let row: Option<(i64, i64)> = retry(|| async {
        sqlx::query_as("SELECT count, expires_ms FROM rate_windows WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await
    })
    .await?;
    Ok(match row {
        Some((count, expires)) if unts(expires) > now_ms && count >= i64::from(max) => {
            Err(unts(expires) - now_ms)
        }
        _ => Ok(()),
    })
}

/// Forgets the window of `name`.
pub(crate) async fn clear(db: &Store, name: &str) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM rate_windows WHERE name = $1")
            .bind(name)
            .execute(db.pool())
            .await
    })
    .await?;
    Ok(())
}

/// Takes the next slot of `name`, slots `interval_ms` apart: `Ok(ms to wait for it)`, or
/// `Err(ms to wait)` without taking it when that is more than `max_wait_ms`.
pub(crate) async fn pace(
    db: &Store,
    name: &str,
    (interval_ms, max_wait_ms): (u64, u64),
    now_ms: u64,
) -> Result<Result<u64, u64>, StoreError> {
    // Every SET expression reads the row as it was, so `refused` and `next_ms` agree.
    let (next, refused): (i64, i64) = retry(|| async {
        sqlx::query_as(
            "INSERT INTO rate_slots (name, next_ms, refused) VALUES ($1, $2 + $3, 0)
             ON CONFLICT (name) DO UPDATE SET
               refused = CASE WHEN rate_slots.next_ms - $2 > $4 THEN 1 ELSE 0 END,
               next_ms = CASE WHEN rate_slots.next_ms - $2 > $4 THEN rate_slots.next_ms
                              WHEN rate_slots.next_ms > $2 THEN rate_slots.next_ms + $3
                              ELSE $2 + $3 END
             RETURNING next_ms, refused",
        )
        .bind(name)
        .bind(ts(now_ms))
        .bind(ts(interval_ms))
        .bind(ts(max_wait_ms))
        .fetch_one(db.pool())
        .await
    })
    .await?;
    let next = unts(next);
    if refused != 0 {
        return Ok(Err(next.saturating_sub(now_ms)));
    }
    Ok(Ok(next.saturating_sub(interval_ms).saturating_sub(now_ms)))
}

/// Housekeeping: forgets windows that ended and slots that passed by `now_ms`.
pub(crate) async fn forget(db: &Store, now_ms: u64) -> Result<u64, StoreError> {
    retry(|| async {
        let w = sqlx::query("DELETE FROM rate_windows WHERE expires_ms <= $1")
            .bind(ts(now_ms))
            .execute(db.pool())
            .await?;
        let s = sqlx::query("DELETE FROM rate_slots WHERE next_ms <= $1")
            .bind(ts(now_ms))
            .execute(db.pool())
            .await?;
        Ok(w.rows_affected() + s.rows_affected())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    #[tokio::test]
    async fn h626_6_1_9_shared_window_counts_caps_and_reopens(db) {
        let w = (3, 100);
        for _ in 0..3 {
            assert_eq!(hit(&db, "k", w, 1000).await.unwrap(), Ok(()));
        }
        assert_eq!(hit(&db, "k", w, 1040).await.unwrap(), Err(60));
        assert_eq!(hit(&db, "k", w, 1050).await.unwrap(), Err(50), "not counted further");
        assert_eq!(check(&db, "k", 3, 1050).await.unwrap(), Err(50));
        assert_eq!(check(&db, "other", 3, 1050).await.unwrap(), Ok(()));
        // A new window at its end.
        assert_eq!(check(&db, "k", 3, 1100).await.unwrap(), Ok(()));
        assert_eq!(hit(&db, "k", w, 1100).await.unwrap(), Ok(()));
        assert_eq!(check(&db, "k", 1, 1101).await.unwrap(), Err(99));
        clear(&db, "k").await.unwrap();
        assert_eq!(check(&db, "k", 1, 1101).await.unwrap(), Ok(()));
        // The largest limit counts without overflow.
        assert_eq!(hit(&db, "big", (u32::MAX, 10), 1).await.unwrap(), Ok(()));
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_6_1_1_shared_pacing_and_housekeeping(db) {
        let p = (1000, 1500);
        assert_eq!(pace(&db, "p", p, 10_000).await.unwrap(), Ok(0));
        assert_eq!(pace(&db, "p", p, 10_100).await.unwrap(), Ok(900));
        assert_eq!(pace(&db, "p", p, 10_100).await.unwrap(), Err(1900), "too far out");
        assert_eq!(pace(&db, "p", p, 10_100).await.unwrap(), Err(1900), "not taken");
        // Past the schedule: a slot now.
        assert_eq!(pace(&db, "p", p, 20_000).await.unwrap(), Ok(0));
        hit(&db, "w", (1, 50), 20_000).await.unwrap().unwrap();
        assert_eq!(forget(&db, 20_049).await.unwrap(), 0);
        assert_eq!(forget(&db, 21_000).await.unwrap(), 2);
    }
    }
}
