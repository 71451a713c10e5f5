//! Cloud storage (H.626.4 8.7.1): which CS stores each camera, under which opaque prefix,
//! for which account, with which strategy; and the data keys per prefix, wrapped by the
//! CMU's key-encryption key.

use peercam_base::DeviceId;

use super::{Store, StoreError, begin_write, retry, ts};

/// A camera's cloud storage assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloudCamera {
    pub(crate) camera: DeviceId,
    pub(crate) cs: DeviceId,
    pub(crate) prefix: String,
    /// The owner whose pool it uses (the binding the prefix belongs to).
    pub(crate) owner: i64,
    pub(crate) epoch: u64,
    pub(crate) write_kid: String,
    /// The cloud strategy (JSON), once set.
    pub(crate) strategy: Option<String>,
}

type Row = (String, String, String, i64, i64, String, Option<String>);

fn from_row(r: Row) -> Result<CloudCamera, StoreError> {
    let parse = |s: &str| {
        s.parse::<DeviceId>()
            .map_err(|_| StoreError::Corrupt(format!("cloud_cameras: bad device id {s:?}")))
    };
    Ok(CloudCamera {
        camera: parse(&r.0)?,
        cs: parse(&r.1)?,
        prefix: r.2,
        owner: r.3,
        epoch: u64::try_from(r.4).unwrap_or(0),
        write_kid: r.5,
        strategy: r.6,
    })
}

/// The assignment of `camera`, if any.
pub(crate) async fn get(db: &Store, camera: &DeviceId) -> Result<Option<CloudCamera>, StoreError> {
    let row: Option<Row> = retry(|| async {
        sqlx::query_as(
            "SELECT camera_id, cs_id, prefix, owner_id, epoch, write_kid, strategy FROM cloud_cameras WHERE camera_id = $1",
        )
        .bind(camera.as_str())
        .fetch_optional(db.pool())
        .await
    })
    .await?;
    row.map(from_row).transpose()
}

/// The assignment holding `prefix`, if any.
pub(crate) async fn by_prefix(db: &Store, prefix: &str) -> Result<Option<CloudCamera>, StoreError> {
    let row: Option<Row> = retry(|| async {
        sqlx::query_as(
            "SELECT camera_id, cs_id, prefix, owner_id, epoch, write_kid, strategy FROM cloud_cameras WHERE prefix = $1",
        )
        .bind(prefix)
        .fetch_optional(db.pool())
        .await
    })
    .await?;
    row.map(from_row).transpose()
}

/// Every camera stored on `cs`.
pub(crate) async fn of_cs(db: &Store, cs: &DeviceId) -> Result<Vec<CloudCamera>, StoreError> {
    let rows: Vec<Row> = retry(|| async {
        sqlx::query_as(
            "SELECT camera_id, cs_id, prefix, owner_id, epoch, write_kid, strategy FROM cloud_cameras WHERE cs_id = $1 ORDER BY created_at",
        )
        .bind(cs.as_str())
        .fetch_all(db.pool())
        .await
    })
    .await?;
    rows.into_iter().map(from_row).collect()
}

/// Assigns `c` (replacing an earlier assignment of the camera) with its first data key,
/// `wrapped`, in one transaction.
pub(crate) async fn assign(
    db: &Store,
    c: &CloudCamera,
    wrapped: &[u8],
    now: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query(
            "INSERT INTO cloud_cameras (camera_id, cs_id, prefix, owner_id, epoch, write_kid, strategy, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (camera_id) DO UPDATE SET cs_id = excluded.cs_id, prefix = excluded.prefix,
               owner_id = excluded.owner_id, epoch = excluded.epoch, write_kid = excluded.write_kid,
               strategy = excluded.strategy, created_at = excluded.created_at",
        )
        .bind(c.camera.as_str())
        .bind(c.cs.as_str())
        .bind(&c.prefix)
        .bind(c.owner)
        .bind(ts(c.epoch))
        .bind(&c.write_kid)
        .bind(c.strategy.as_deref())
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO cloud_keys (prefix, kid, wrapped, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (prefix, kid) DO NOTHING",
        )
        .bind(&c.prefix)
        .bind(&c.write_kid)
        .bind(wrapped)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .await
}

/// Saves the camera's cloud strategy (JSON).
pub(crate) async fn set_strategy(
    db: &Store,
    camera: &DeviceId,
    doc: &str,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("UPDATE cloud_cameras SET strategy = $2 WHERE camera_id = $1")
            .bind(camera.as_str())
            .bind(doc)
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// The wrapped data key `kid` of `prefix`.
pub(crate) async fn wrapped_key(
    db: &Store,
    prefix: &str,
    kid: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    retry(|| async {
        sqlx::query_scalar("SELECT wrapped FROM cloud_keys WHERE prefix = $1 AND kid = $2")
            .bind(prefix)
            .bind(kid)
            .fetch_optional(db.pool())
            .await
    })
    .await
}
