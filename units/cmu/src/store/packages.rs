//! Signed release packages (8.11.1, 8.11.2): the manifest as uploaded and whether the payload
//! is stored.

use peercam_signal::cm::PackageView;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Arg, Store, StoreError, retry, select, ts, unts};

/// A package as stored.
#[derive(Debug, Clone)]
pub(crate) struct Package {
    pub(crate) view: PackageView,
    /// The signed manifest, JSON.
    pub(crate) manifest: String,
}

/// A package to register.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewPackage<'a> {
    pub(crate) sha256: &'a str,
    pub(crate) version: &'a str,
    pub(crate) model: &'a str,
    pub(crate) size: u64,
    pub(crate) expires_at: u64,
    pub(crate) manifest: &'a str,
}

const COLUMNS: &str = "sha256, version, model, size, expires_at, stored, manifest";

fn package(row: &AnyRow) -> Result<Package, sqlx::Error> {
    Ok(Package {
        view: PackageView {
            sha256: row.try_get("sha256")?,
            version: row.try_get("version")?,
            model: row.try_get("model")?,
            size: unts(row.try_get("size")?),
            expires_at: unts(row.try_get("expires_at")?),
            stored: row.try_get::<i64, _>("stored")? != 0,
        },
        manifest: row.try_get("manifest")?,
    })
}

async fn packages(db: &Store, filter: &str, args: &[Arg<'_>]) -> Result<Vec<Package>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM packages {filter}");
    select(db, &sql, args, package).await
}

/// Registers a manifest, or refreshes it for the same payload, version and model; false if
/// another package has this version for this model or this payload another version.
pub(crate) async fn put_manifest(
    db: &Store,
    p: NewPackage<'_>,
    now: u64,
) -> Result<bool, StoreError> {
    let r = retry(|| async {
        sqlx::query(
            "INSERT INTO packages (sha256, version, model, size, expires_at, manifest, uploaded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT(sha256) DO UPDATE SET manifest = excluded.manifest, expires_at = excluded.expires_at
             WHERE packages.version = excluded.version AND packages.model = excluded.model",
        )
        .bind(p.sha256)
        .bind(p.version)
        .bind(p.model)
        .bind(ts(p.size))
        .bind(ts(p.expires_at))
        .bind(p.manifest)
        .bind(ts(now))
        .execute(db.pool())
        .await
    })
    .await;
    match r {
        Ok(done) => Ok(done.rows_affected() == 1),
        // UNIQUE (model, version): another payload has this version.
        Err(StoreError::Backend(e))
            if e.downcast_ref::<sqlx::Error>().is_some_and(
                |e| matches!(e, sqlx::Error::Database(d) if d.is_unique_violation()),
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The package with this payload hash.
pub(crate) async fn get(db: &Store, sha256: &str) -> Result<Option<Package>, StoreError> {
    Ok(packages(db, "WHERE sha256 = $1", &[Arg::Text(sha256)])
        .await?
        .pop())
}

/// The payload of `sha256` is stored and checked.
pub(crate) async fn mark_stored(db: &Store, sha256: &str) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("UPDATE packages SET stored = 1 WHERE sha256 = $1")
            .bind(sha256)
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// Every package, by model and upload time.
pub(crate) async fn all(db: &Store) -> Result<Vec<Package>, StoreError> {
    packages(db, "ORDER BY model, uploaded_at", &[]).await
}

/// The package of `model` at `version`.
pub(crate) async fn by_version(
    db: &Store,
    model: &str,
    version: &str,
) -> Result<Option<Package>, StoreError> {
    Ok(packages(
        db,
        "WHERE model = $1 AND version = $2",
        &[Arg::Text(model), Arg::Text(version)],
    )
    .await?
    .pop())
}

/// The stored, unexpired packages of `model` (a device model or a client platform).
pub(crate) async fn available(
    db: &Store,
    model: &str,
    now: u64,
) -> Result<Vec<Package>, StoreError> {
    packages(
        db,
        "WHERE model = $1 AND stored = 1 AND expires_at >= $2",
        &[Arg::Text(model), Arg::Int(ts(now))],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    #[tokio::test]
    async fn manifests_payloads_and_versions(db) {
        let p = NewPackage {
            sha256: "aa",
            version: "1.0.0",
            model: "m",
            size: 3,
            expires_at: 50,
            manifest: "{}",
        };
        assert!(put_manifest(&db, p, 1).await.unwrap());
        assert!(
            put_manifest(&db, p, 2).await.unwrap(),
            "the same package again"
        );
        let other = NewPackage { sha256: "bb", ..p };
        assert!(
            !put_manifest(&db, other, 3).await.unwrap(),
            "same version, other payload"
        );
        let moved = NewPackage {
            version: "2.0.0",
            ..p
        };
        assert!(
            !put_manifest(&db, moved, 3).await.unwrap(),
            "same payload, other version"
        );
        assert!(!get(&db, "aa").await.unwrap().unwrap().view.stored);
        assert!(available(&db, "m", 10).await.unwrap().is_empty());
        mark_stored(&db, "aa").await.unwrap();
        assert_eq!(available(&db, "m", 10).await.unwrap().len(), 1);
        assert!(available(&db, "m", 51).await.unwrap().is_empty(), "expired");
        assert_eq!(
            by_version(&db, "m", "1.0.0")
                .await
                .unwrap()
                .unwrap()
                .view
                .size,
            3
        );
        assert_eq!(all(&db).await.unwrap().len(), 1);
    }
    }
}
