//! Which device records which camera (8.7.2 an NVR, 8.7.3 the camera's own SD card), and
//! the record strategy last set there.

use peercam_base::DeviceId;

use super::{Store, StoreError, retry, ts};

/// Whether `recorder` records `camera`.
pub(crate) async fn is_attached(
    db: &Store,
    camera: &DeviceId,
    recorder: &DeviceId,
) -> Result<bool, StoreError> {
    let one: Option<i64> = retry(|| async {
        sqlx::query_scalar("SELECT 1 FROM recorders WHERE camera_id = $1 AND recorder_id = $2")
            .bind(camera.as_str())
            .bind(recorder.as_str())
            .fetch_optional(db.pool())
            .await
    })
    .await?;
    Ok(one.is_some())
}

/// The first NVR attached to `camera` (not its SD card).
pub(crate) async fn first_nvr(
    db: &Store,
    camera: &DeviceId,
) -> Result<Option<DeviceId>, StoreError> {
    let id: Option<String> = retry(|| async {
        sqlx::query_scalar(
            "SELECT recorder_id FROM recorders WHERE camera_id = $1 AND recorder_id <> camera_id
             ORDER BY created_at LIMIT 1",
        )
        .bind(camera.as_str())
        .fetch_optional(db.pool())
        .await
    })
    .await?;
    Ok(id.and_then(|i| i.parse().ok()))
}

/// Every recorder of `camera`.
pub(crate) async fn recorders_of(
    db: &Store,
    camera: &DeviceId,
) -> Result<Vec<DeviceId>, StoreError> {
    let ids: Vec<String> = retry(|| async {
        sqlx::query_scalar("SELECT recorder_id FROM recorders WHERE camera_id = $1")
            .bind(camera.as_str())
            .fetch_all(db.pool())
            .await
    })
    .await?;
    Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
}

/// Links `recorder` to `camera` (kept if linked), with `strategy` (a JSON document) if given.
pub(crate) async fn attach(
    db: &Store,
    camera: &DeviceId,
    recorder: &DeviceId,
    strategy: Option<&str>,
    now: u64,
) -> Result<(), StoreError> {
    let sql = if strategy.is_some() {
        "INSERT INTO recorders (camera_id, recorder_id, strategy, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (camera_id, recorder_id) DO UPDATE SET strategy = excluded.strategy"
    } else {
        "INSERT INTO recorders (camera_id, recorder_id, strategy, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (camera_id, recorder_id) DO NOTHING"
    };
    retry(|| async {
        sqlx::query(sql)
            .bind(camera.as_str())
            .bind(recorder.as_str())
            .bind(strategy)
            .bind(ts(now))
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// Unlinks `recorder` from `camera`; false if they were not linked.
pub(crate) async fn detach(
    db: &Store,
    camera: &DeviceId,
    recorder: &DeviceId,
) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM recorders WHERE camera_id = $1 AND recorder_id = $2")
            .bind(camera.as_str())
            .bind(recorder.as_str())
            .execute(db.pool())
            .await
            .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// 8.7.2.1 steps 16-18: the owner and ACL version of `camera` when `nvr` records it and both
/// have one owner.
pub(crate) async fn stream_grant(
    db: &Store,
    camera: &DeviceId,
    nvr: &DeviceId,
) -> Result<Option<(i64, i64)>, StoreError> {
    retry(|| async {
        sqlx::query_as(
            "SELECT c.owner_id, c.acl_version FROM recorders r
             JOIN devices c ON c.id = r.camera_id JOIN devices n ON n.id = r.recorder_id
             WHERE r.camera_id = $1 AND r.recorder_id = $2 AND c.owner_id IS NOT NULL AND c.owner_id = n.owner_id",
        )
        .bind(camera.as_str())
        .bind(nvr.as_str())
        .fetch_optional(db.pool())
        .await
    })
    .await
}

#[cfg(test)]
mod tests {
    use crate::store::on_both_backends;
    use peercam_signal::cm::Role;

    use super::*;
    use crate::store::{accounts, devices};

    on_both_backends! {
    #[tokio::test]
    async fn attach_strategy_detach_and_grant(db) {
        let (cam, nvr) = (
            devices::tests::new_device(20),
            devices::tests::new_device(21),
        );
        devices::provision(&db, &[cam.clone(), nvr.clone()], 1)
            .await
            .unwrap();
        let (c, n) = (cam.id, nvr.id);
        assert!(!is_attached(&db, &c, &n).await.unwrap());
        attach(&db, &c, &n, None, 1).await.unwrap();
        attach(&db, &c, &c, Some("{}"), 2).await.unwrap();
        assert!(is_attached(&db, &c, &n).await.unwrap());
        assert_eq!(first_nvr(&db, &c).await.unwrap(), Some(n.clone()));
        assert_eq!(recorders_of(&db, &c).await.unwrap().len(), 2);
        assert_eq!(stream_grant(&db, &c, &n).await.unwrap(), None, "unbound");
        let o = accounts::create(&db, Role::Owner, "+15550100006", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        devices::bind(&db, &c, o, None).await.unwrap();
        devices::bind(&db, &n, o, None).await.unwrap();
        let acl = devices::get(&db, &c).await.unwrap().unwrap().acl_version;
        assert_eq!(stream_grant(&db, &c, &n).await.unwrap(), Some((o, acl)));
        assert!(detach(&db, &c, &n).await.unwrap());
        assert!(!detach(&db, &c, &n).await.unwrap());
        assert_eq!(first_nvr(&db, &c).await.unwrap(), None);
    }
    }
}
