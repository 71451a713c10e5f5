//! Timed snapshots (H.626.4 6.1.12): each camera's schedule with the last due time taken,
//! the JPEGs kept (in the alarms' snapshot table, marked `timed`), the owners' SMS count
//! per UTC day, and the persistent keys of signed links.

use peercam_base::DeviceId;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::alarms::{MAX_SNAPSHOT_BYTES, insert_snapshot};
use super::{Arg, Store, StoreError, begin_write, retry, select, ts, unts};

/// A camera's saved schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedSchedule {
    pub(crate) camera: DeviceId,
    /// The camera's owner when it was saved (who pays for the SMS).
    pub(crate) owner: i64,
    /// JSON of [`peercam_signal::cm_snapshot::SnapshotScheduleRequest`].
    pub(crate) doc: String,
    pub(crate) enabled: bool,
    /// The last due time taken, Unix ms.
    pub(crate) last_due_ms: Option<u64>,
}

const COLUMNS: &str = "s.camera_id, s.owner_id, s.doc, s.enabled, s.last_due_ms";

fn decode(r: &AnyRow) -> Result<SavedSchedule, sqlx::Error> {
    let camera: String = r.try_get(0)?;
    let last: Option<i64> = r.try_get(4)?;
    Ok(SavedSchedule {
        camera: camera
            .parse()
            .map_err(|e: peercam_base::IdError| sqlx::Error::Decode(Box::new(e)))?,
        owner: r.try_get(1)?,
        doc: r.try_get(2)?,
        enabled: r.try_get::<i64, _>(3)? != 0,
        last_due_ms: last.map(unts),
    })
}

/// The schedule of `camera`.
pub(crate) async fn get(
    db: &Store,
    camera: &DeviceId,
) -> Result<Option<SavedSchedule>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM snapshot_schedules s WHERE s.camera_id = $1");
    Ok(select(db, &sql, &[Arg::Text(camera.as_str())], decode)
        .await?
        .into_iter()
        .next())
}

/// Every enabled schedule of a camera still owned by whoever saved it.
pub(crate) async fn enabled(db: &Store) -> Result<Vec<SavedSchedule>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM snapshot_schedules s JOIN devices d ON d.id = s.camera_id
         WHERE s.enabled = 1 AND d.owner_id = s.owner_id"
    );
    select(db, &sql, &[], decode).await
}

/// Saves `camera`'s schedule. The last due time taken is kept across saves, so saving again
/// never fires an extra snapshot early.
pub(crate) async fn save(
    db: &Store,
    camera: &DeviceId,
    owner: i64,
    (doc, phone, enabled): (&str, &str, bool),
    now: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query(
            "INSERT INTO snapshot_schedules (camera_id, owner_id, doc, phone, enabled, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (camera_id) DO UPDATE SET owner_id = $2, doc = $3, phone = $4,
               enabled = $5, updated_at = $6",
        )
        .bind(camera.as_str())
        .bind(owner)
        .bind(doc)
        .bind(phone)
        .bind(i64::from(enabled))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .await
}

/// Removes `camera`'s schedule (its snapshots stay until their retention); false if none.
pub(crate) async fn remove(db: &Store, camera: &DeviceId) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM snapshot_schedules WHERE camera_id = $1")
            .bind(camera.as_str())
            .execute(db.pool())
            .await
            .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// Takes the due time `due` of `camera` when the last one taken is still `last`: true for
/// exactly one caller, so one due time is taken once however slow the CMU is.
pub(crate) async fn claim(
    db: &Store,
    camera: &DeviceId,
    last: Option<u64>,
    due: u64,
) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query(
            "UPDATE snapshot_schedules SET last_due_ms = $3
             WHERE camera_id = $1 AND last_due_ms IS NOT DISTINCT FROM $2 AND enabled = 1",
        )
        .bind(camera.as_str())
        .bind(last.map(ts))
        .bind(ts(due))
        .execute(db.pool())
        .await
        .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// Keeps a timed snapshot of `camera` (at most [`MAX_SNAPSHOT_BYTES`]; `None` if larger or
/// empty), then drops the camera's timed snapshots past `keep`. Returns its id.
pub(crate) async fn keep(
    db: &Store,
    camera: &DeviceId,
    jpeg: &[u8],
    taken_ms: u64,
    keep: u32,
) -> Result<Option<i64>, StoreError> {
    if jpeg.len() > MAX_SNAPSHOT_BYTES || jpeg.is_empty() {
        return Ok(None);
    }
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let id = insert_snapshot(&mut tx, camera, (jpeg, taken_ms), true, i64::from(keep)).await?;
        tx.commit().await?;
        Ok(Some(id))
    })
    .await
}

/// Drops timed snapshots taken before `cutoff_ms` (the retention in days); how many.
pub(crate) async fn expire(db: &Store, cutoff_ms: u64) -> Result<u64, StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM alarm_snapshots WHERE timed = 1 AND taken_ms < $1")
            .bind(ts(cutoff_ms))
            .execute(db.pool())
            .await
            .map(|r| r.rows_affected())
    })
    .await
}

/// How many timed snapshots of `camera` are kept.
pub(crate) async fn kept(db: &Store, camera: &DeviceId) -> Result<u32, StoreError> {
    let n: i64 = retry(|| async {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM alarm_snapshots WHERE camera_id = $1 AND timed = 1",
        )
        .bind(camera.as_str())
        .fetch_one(db.pool())
        .await
    })
    .await?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The JPEG of timed snapshot `id`.
pub(crate) async fn jpeg(db: &Store, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
    retry(|| async {
        sqlx::query_scalar("SELECT jpeg FROM alarm_snapshots WHERE id = $1 AND timed = 1")
            .bind(id)
            .fetch_optional(db.pool())
            .await
    })
    .await
}

/// Counts one SMS of `user` on UTC `day` if fewer than `limit` were sent: false when the
/// quota is used up (nothing counted).
pub(crate) async fn count_sms(
    db: &Store,
    user: i64,
    day: u64,
    limit: u32,
) -> Result<bool, StoreError> {
    if limit == 0 {
        return Ok(false);
    }
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let counted = sqlx::query(
            "INSERT INTO snapshot_sms_days (user_id, day, sent) VALUES ($1, $2, 1)
             ON CONFLICT (user_id, day) DO UPDATE SET sent = snapshot_sms_days.sent + 1 WHERE snapshot_sms_days.sent < $3",
        )
        .bind(user)
        .bind(ts(day))
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        sqlx::query("DELETE FROM snapshot_sms_days WHERE user_id = $1 AND day < $2")
            .bind(user)
            .bind(ts(day.saturating_sub(7)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(counted)
    })
    .await
}

/// Timed-snapshot SMS sent to `user` on UTC `day`.
pub(crate) async fn sms_sent(db: &Store, user: i64, day: u64) -> Result<u32, StoreError> {
    let n: Option<i64> = retry(|| async {
        sqlx::query_scalar("SELECT sent FROM snapshot_sms_days WHERE user_id = $1 AND day = $2")
            .bind(user)
            .bind(ts(day))
            .fetch_optional(db.pool())
            .await
    })
    .await?;
    Ok(n.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
}

/// The key of signed links for `purpose`, made (from `fresh`) on first use and kept in the
/// database, so links stay valid across restarts.
pub(crate) async fn link_key(
    db: &Store,
    purpose: &str,
    fresh: [u8; 32],
) -> Result<[u8; 32], StoreError> {
    let key: Vec<u8> = retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query(
            "INSERT INTO link_keys (purpose, key) VALUES ($1, $2) ON CONFLICT (purpose) DO NOTHING",
        )
        .bind(purpose)
        .bind(fresh.as_slice())
        .execute(&mut *tx)
        .await?;
        let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM link_keys WHERE purpose = $1")
            .bind(purpose)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(key)
    })
    .await?;
    key.try_into()
        .map_err(|_| StoreError::Corrupt(format!("link key {purpose} is not 32 bytes")))
}

#[cfg(test)]
mod tests {
    use crate::store::on_both_backends;
    use peercam_signal::cm::Role;

    use super::super::{accounts, devices};
    use super::*;

    async fn setup(db: Store) -> (Store, i64, DeviceId) {
        let d = devices::tests::new_device(61);
        devices::provision(&db, std::slice::from_ref(&d), 1)
            .await
            .unwrap();
        let owner = accounts::create(&db, Role::Owner, "+15550161201", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        devices::bind(&db, &d.id, owner, None).await.unwrap();
        (db, owner, d.id)
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_6_1_12_due_time_taken_once_and_schedule_follows_the_owner(db) {
        let (db, owner, cam) = setup(db).await;
        save(&db, &cam, owner, ("{}", "+15550161299", true), 1)
            .await
            .unwrap();
        assert_eq!(enabled(&db).await.unwrap().len(), 1);
        assert!(claim(&db, &cam, None, 1000).await.unwrap());
        assert!(!claim(&db, &cam, None, 1000).await.unwrap(), "taken once");
        assert!(!claim(&db, &cam, None, 2000).await.unwrap(), "stale last");
        assert!(claim(&db, &cam, Some(1000), 2000).await.unwrap());
        // Saving again keeps the last due time.
        save(&db, &cam, owner, ("{}", "+15550161299", true), 2)
            .await
            .unwrap();
        assert_eq!(
            get(&db, &cam).await.unwrap().unwrap().last_due_ms,
            Some(2000)
        );
        // Released: no schedule any more.
        devices::release(&db, &cam).await.unwrap();
        assert!(enabled(&db).await.unwrap().is_empty());
        assert!(!remove(&db, &cam).await.unwrap());
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_6_1_12_kept_within_limits_and_quota_counted_per_day(db) {
        let (db, owner, cam) = setup(db).await;
        assert_eq!(
            keep(&db, &cam, &vec![0; MAX_SNAPSHOT_BYTES + 1], 1, 2)
                .await
                .unwrap(),
            None
        );
        let mut ids = Vec::new();
        for t in 1..=3 {
            ids.push(
                keep(&db, &cam, b"\xff\xd8x\xff\xd9", t * 1000, 2)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(kept(&db, &cam).await.unwrap(), 2, "keep 2");
        assert_eq!(jpeg(&db, ids[0]).await.unwrap(), None, "the oldest went");
        assert!(jpeg(&db, ids[2]).await.unwrap().is_some());
        assert_eq!(expire(&db, 3000).await.unwrap(), 1);
        assert_eq!(kept(&db, &cam).await.unwrap(), 1);
        assert!(count_sms(&db, owner, 10, 2).await.unwrap());
        assert!(count_sms(&db, owner, 10, 2).await.unwrap());
        assert!(
            !count_sms(&db, owner, 10, 2).await.unwrap(),
            "quota used up"
        );
        assert_eq!(sms_sent(&db, owner, 10).await.unwrap(), 2);
        assert!(count_sms(&db, owner, 11, 2).await.unwrap(), "a new day");
        assert!(!count_sms(&db, owner, 12, 0).await.unwrap());
        let k = link_key(&db, "snapshot-link", [1; 32]).await.unwrap();
        assert_eq!(k, [1; 32]);
        assert_eq!(
            link_key(&db, "snapshot-link", [2; 32]).await.unwrap(),
            k,
            "kept"
        );
    }
    }
}
