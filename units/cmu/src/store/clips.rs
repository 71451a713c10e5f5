//! Shared clip links (issue 17 item 9, H.626.4 8.7.1 download): one row per link, with the
//! camera, its owner, the CS and prefix holding the clip object, the range, when it was
//! made, when it expires, when it was revoked, when the CS confirmed the object's deletion,
//! and how often the page was opened and the file downloaded.

use peercam_base::DeviceId;

use super::{Store, StoreError, retry, ts, unts};

/// A shared clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clip {
    /// The share id (the link's secret).
    pub(crate) id: String,
    pub(crate) camera: DeviceId,
    pub(crate) owner: i64,
    /// The CS holding the clip object.
    pub(crate) cs: DeviceId,
    pub(crate) prefix: String,
    pub(crate) epoch: u64,
    pub(crate) from_ms: u64,
    pub(crate) to_ms: u64,
    pub(crate) recorder: Option<String>,
    pub(crate) label: Option<String>,
    /// Unix seconds.
    pub(crate) created_at: u64,
    pub(crate) expires_at: u64,
    pub(crate) revoked_at: Option<u64>,
    pub(crate) deleted_at: Option<u64>,
    pub(crate) views: u64,
    pub(crate) downloads: u64,
}

impl Clip {
    /// Whether the link works at `now` (Unix seconds).
    pub(crate) fn active(&self, now: u64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

const COLUMNS: &str = "id, camera_id, owner_id, cs_id, prefix, epoch, from_ms, to_ms, recorder, \
     label, created_at, expires_at, revoked_at, deleted_at, views, downloads";

type Row = (
    String,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
);

fn of(r: Row) -> Option<Clip> {
    Some(Clip {
        id: r.0,
        camera: r.1.parse().ok()?,
        owner: r.2,
        cs: r.3.parse().ok()?,
        prefix: r.4,
        epoch: unts(r.5),
        from_ms: unts(r.6),
        to_ms: unts(r.7),
        recorder: r.8,
        label: r.9,
        created_at: unts(r.10),
        expires_at: unts(r.11),
        revoked_at: r.12.map(unts),
        deleted_at: r.13.map(unts),
        views: unts(r.14),
        downloads: unts(r.15),
    })
}

/// Stores a new clip.
pub(crate) async fn insert(db: &Store, c: &Clip) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO clips (id, camera_id, owner_id, cs_id, prefix, epoch, from_ms, to_ms,
               recorder, label, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&c.id)
        .bind(c.camera.as_str())
        .bind(c.owner)
        .bind(c.cs.as_str())
        .bind(&c.prefix)
        .bind(ts(c.epoch))
        .bind(ts(c.from_ms))
        .bind(ts(c.to_ms))
        .bind(c.recorder.as_deref())
        .bind(c.label.as_deref())
        .bind(ts(c.created_at))
        .bind(ts(c.expires_at))
        .execute(db.pool())
        .await?;
        Ok(())
    })
    .await
}

/// The clip `id`.
pub(crate) async fn get(db: &Store, id: &str) -> Result<Option<Clip>, StoreError> {
    let row: Option<Row> = retry(|| async {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM clips WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(db.pool())
        .await
    })
    .await?;
    Ok(row.and_then(of))
}

/// The clips of `owner`, newest first.
pub(crate) async fn of_owner(db: &Store, owner: i64) -> Result<Vec<Clip>, StoreError> {
    let rows: Vec<Row> = retry(|| async {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM clips WHERE owner_id = $1 ORDER BY created_at DESC, id"
        )))
        .bind(owner)
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows.into_iter().filter_map(of).collect())
}

/// Clips whose object must go (revoked or expired at `now`) and whose deletion the CS has
/// not confirmed, at most `limit`.
pub(crate) async fn to_delete(db: &Store, now: u64, limit: u32) -> Result<Vec<Clip>, StoreError> {
    let rows: Vec<Row> = retry(|| async {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM clips
             WHERE deleted_at IS NULL AND (revoked_at IS NOT NULL OR expires_at <= $1)
             ORDER BY expires_at, id LIMIT $2"
        )))
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows.into_iter().filter_map(of).collect())
}

/// Revokes `owner`'s clip `id` at `now` (a second revocation keeps the first time).
/// Returns the clip, or `None` when `owner` has no such clip.
pub(crate) async fn revoke(
    db: &Store,
    owner: i64,
    id: &str,
    now: u64,
) -> Result<Option<Clip>, StoreError> {
    retry(|| async {
        sqlx::query(
            "UPDATE clips SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND owner_id = $3",
        )
        .bind(ts(now))
        .bind(id)
        .bind(owner)
        .execute(db.pool())
        .await?;
        Ok(())
    })
    .await?;
    Ok(get(db, id).await?.filter(|c| c.owner == owner))
}

/// Records that the CS deleted the clip object.
pub(crate) async fn deleted(db: &Store, id: &str, now: u64) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("UPDATE clips SET deleted_at = $1 WHERE id = $2")
            .bind(ts(now))
            .bind(id)
            .execute(db.pool())
            .await?;
        Ok(())
    })
    .await
}

/// Counts one use: a page view, or a download when `download`.
pub(crate) async fn count_use(db: &Store, id: &str, download: bool) -> Result<(), StoreError> {
    let sql = if download {
        "UPDATE clips SET downloads = downloads + 1 WHERE id = $1"
    } else {
        "UPDATE clips SET views = views + 1 WHERE id = $1"
    };
    retry(|| async {
        sqlx::query(sql).bind(id).execute(db.pool()).await?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use peercam_signal::cm::Role;

    use super::*;
    use crate::store::{accounts, devices, on_both_backends};

    async fn device(db: &Store, n: u8) -> DeviceId {
        let d = devices::tests::new_device(n);
        devices::provision(db, std::slice::from_ref(&d), 1)
            .await
            .unwrap();
        d.id
    }

    on_both_backends! {
    /// Issue 17 item 9: a clip is kept with its range and times; its owner lists and
    /// revokes it, nobody else; revoked and expired clips wait for the CS's deletion;
    /// uses are counted.
    #[tokio::test]
    async fn h626_8_7_1_clip_rows_keep_owner_times_and_uses(db) {
        let a = accounts::create(&db, Role::Owner, "+15550871201", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        let b = accounts::create(&db, Role::Owner, "+15550871202", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        let cam = device(&db, 71).await;
        let cs = device(&db, 72).await;
        let clip = |id: &str, created_at: u64, expires_at: u64| Clip {
            id: id.into(),
            camera: cam.clone(),
            owner: a,
            cs: cs.clone(),
            prefix: "sAAAAAAAAAAAAAAAAAAAAAA".into(),
            epoch: 1,
            from_ms: 1_000,
            to_ms: 61_000,
            recorder: Some("cloud".into()),
            label: Some("door".into()),
            created_at,
            expires_at,
            revoked_at: None,
            deleted_at: None,
            views: 0,
            downloads: 0,
        };
        let one = clip("BwcHBwcHBwcHBwcHBwcHBw", 100, 1_000);
        let two = clip("CAgICAgICAgICAgICAgICA", 200, 5_000);
        insert(&db, &one).await.unwrap();
        insert(&db, &two).await.unwrap();
        assert!(insert(&db, &one).await.is_err(), "ids are unique");
        assert_eq!(get(&db, &one.id).await.unwrap(), Some(one.clone()));
        assert_eq!(of_owner(&db, a).await.unwrap(), vec![two.clone(), one.clone()]);
        assert!(of_owner(&db, b).await.unwrap().is_empty());
        assert!(one.active(999) && !one.active(1_000));
        // Only the owner revokes.
        assert_eq!(revoke(&db, b, &one.id, 300).await.unwrap(), None);
        assert_eq!(get(&db, &one.id).await.unwrap().unwrap().revoked_at, None);
        assert!(to_delete(&db, 400, 10).await.unwrap().is_empty());
        let r = revoke(&db, a, &two.id, 400).await.unwrap().unwrap();
        assert_eq!(r.revoked_at, Some(400));
        assert!(!r.active(401));
        // A second revocation keeps the first time.
        let r = revoke(&db, a, &two.id, 500).await.unwrap().unwrap();
        assert_eq!(r.revoked_at, Some(400));
        // Revoked now, expired later: both wait for the CS.
        let due: Vec<String> = to_delete(&db, 1_000, 10).await.unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(due, vec![one.id.clone(), two.id.clone()]);
        deleted(&db, &two.id, 600).await.unwrap();
        let due: Vec<String> = to_delete(&db, 1_000, 10).await.unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(due, vec![one.id.clone()]);
        count_use(&db, &one.id, false).await.unwrap();
        count_use(&db, &one.id, false).await.unwrap();
        count_use(&db, &one.id, true).await.unwrap();
        let got = get(&db, &one.id).await.unwrap().unwrap();
        assert_eq!((got.views, got.downloads), (2, 1));
        // A deleted owner's clips go with it.
        accounts::delete(&db, a).await.unwrap();
        assert_eq!(get(&db, &one.id).await.unwrap(), None);
    }
    }
}
