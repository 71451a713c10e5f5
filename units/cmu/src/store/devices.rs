//! Devices (8.1 provisioning and registration, 8.2 binding, 8.10 release): their keys, owner,
//! name and the ACL version that every play token carries (docs/security.md D4, D5).

use peercam_base::DeviceId;
use peercam_signal::ps::DeviceKind;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Arg, Store, StoreError, begin_write, retry, select, ts, unts};

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    pub(crate) id: DeviceId,
    pub(crate) kind: DeviceKind,
    /// The Ed25519 key recorded at provisioning (D1: never changes).
    pub(crate) public_key: String,
    pub(crate) bind_code_sha256: String,
    pub(crate) vendor: String,
    pub(crate) model: String,
    pub(crate) name: Option<String>,
    pub(crate) registered_at: Option<u64>,
    pub(crate) last_seen: Option<u64>,
    pub(crate) sw_version: Option<String>,
    pub(crate) owner: Option<i64>,
    pub(crate) acl_version: i64,
    /// Decommissioned (6.1.1): its key no longer admits it.
    pub(crate) disabled: bool,
    pub(crate) decommissioned_at: Option<u64>,
}

/// A device to provision (8.1).
#[derive(Debug, Clone)]
pub(crate) struct NewDevice {
    pub(crate) id: DeviceId,
    pub(crate) kind: DeviceKind,
    pub(crate) public_key: String,
    pub(crate) bind_code_sha256: String,
    pub(crate) vendor: String,
    pub(crate) model: String,
    /// 6.1.1: the account the device is assigned to at once (an import row's), if any.
    pub(crate) owner: Option<i64>,
    pub(crate) name: Option<String>,
}

/// What provisioning did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Provisioned {
    /// All stored: how many were new, how many were there already with the same key, and
    /// how many were assigned to an owner.
    Done {
        created: usize,
        unchanged: usize,
        assigned: usize,
    },
    /// Nothing stored: this id is provisioned with another key (D1).
    KeyConflict(DeviceId),
}

pub(crate) fn parse_kind(s: &str) -> DeviceKind {
    match s {
        "nvr" => DeviceKind::Nvr,
        "mtu" => DeviceKind::Mtu,
        "cs" => DeviceKind::Cs,
        _ => DeviceKind::Pu,
    }
}

pub(super) const COLUMNS: &str = "id, kind, public_key, bind_code_sha256, vendor, model, name, \
                       registered_at, last_seen, sw_version, owner_id, acl_version, disabled, \
                       decommissioned_at";

pub(super) fn device(row: &AnyRow) -> Result<Device, sqlx::Error> {
    let id: String = row.try_get("id")?;
    let id = id
        .parse()
        .map_err(|e: peercam_base::IdError| sqlx::Error::ColumnDecode {
            index: "id".into(),
            source: Box::new(e),
        })?;
    Ok(Device {
        id,
        kind: parse_kind(&row.try_get::<String, _>("kind")?),
        public_key: row.try_get("public_key")?,
        bind_code_sha256: row.try_get("bind_code_sha256")?,
        vendor: row.try_get("vendor")?,
        model: row.try_get("model")?,
        name: row.try_get("name")?,
        registered_at: row.try_get::<Option<i64>, _>("registered_at")?.map(unts),
        last_seen: row.try_get::<Option<i64>, _>("last_seen")?.map(unts),
        sw_version: row.try_get("sw_version")?,
        owner: row.try_get("owner_id")?,
        acl_version: row.try_get("acl_version")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        decommissioned_at: row
            .try_get::<Option<i64>, _>("decommissioned_at")?
            .map(unts),
    })
}

/// The device with this id.
pub(crate) async fn get(db: &Store, id: &DeviceId) -> Result<Option<Device>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE id = $1");
    Ok(select(db, &sql, &[Arg::Text(id.as_str())], device)
        .await?
        .pop())
}

/// Every device, by id (operator).
pub(crate) async fn all(db: &Store) -> Result<Vec<Device>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM devices ORDER BY id");
    select(db, &sql, &[], device).await
}

/// The devices of one kind, by id (the few CSs or MTUs among the cameras, without reading
/// every camera's row).
pub(crate) async fn of_kind(db: &Store, kind: DeviceKind) -> Result<Vec<Device>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE kind = $1 ORDER BY id");
    select(db, &sql, &[Arg::Text(kind.as_str())], device).await
}

/// The devices `owner` has bound, by id.
pub(crate) async fn owned_by(db: &Store, owner: i64) -> Result<Vec<Device>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE owner_id = $1 ORDER BY id");
    select(db, &sql, &[Arg::Int(owner)], device).await
}

/// 8.1: stores every new device, all or nothing; a known id must come with its key.
pub(crate) async fn provision(
    db: &Store,
    devices: &[NewDevice],
    now: u64,
) -> Result<Provisioned, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let (mut created, mut unchanged, mut assigned) = (0, 0, 0);
        for d in devices {
            let existing: Option<String> =
                sqlx::query_scalar("SELECT public_key FROM devices WHERE id = $1")
                    .bind(d.id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            match existing {
                Some(k) if k != d.public_key => return Ok(Provisioned::KeyConflict(d.id.clone())),
                Some(_) => {
                    unchanged += 1;
                    if let Some(owner) = d.owner {
                        // 6.1.1: an unassigned device named again with an account.
                        let r = sqlx::query(
                            "UPDATE devices SET owner_id = $1, name = $2, acl_version = acl_version + 1
                             WHERE id = $3 AND owner_id IS NULL AND disabled = 0",
                        )
                        .bind(owner)
                        .bind(d.name.as_deref())
                        .bind(d.id.as_str())
                        .execute(&mut *tx)
                        .await?;
                        assigned += usize::try_from(r.rows_affected()).unwrap_or(0);
                    }
                }
                None => {
                    sqlx::query(
                        "INSERT INTO devices (id, kind, public_key, bind_code_sha256, vendor, model,
                           created_at, owner_id, name)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(d.id.as_str())
                    .bind(d.kind.as_str())
                    .bind(&d.public_key)
                    .bind(d.bind_code_sha256.to_lowercase())
                    .bind(&d.vendor)
                    .bind(&d.model)
                    .bind(ts(now))
                    .bind(d.owner)
                    .bind(d.name.as_deref())
                    .execute(&mut *tx)
                    .await?;
                    created += 1;
                    assigned += usize::from(d.owner.is_some());
                }
            }
        }
        tx.commit().await?;
        Ok(Provisioned::Done {
            created,
            unchanged,
            assigned,
        })
    })
    .await
}

/// 8.2: binds an unbound device to `owner` (the ACL version moves); false if it has an owner.
pub(crate) async fn bind(
    db: &Store,
    id: &DeviceId,
    owner: i64,
    name: Option<&str>,
) -> Result<bool, StoreError> {
    retry(|| async {
        let r = sqlx::query(
            "UPDATE devices SET owner_id = $1, name = $2, acl_version = acl_version + 1
             WHERE id = $3 AND owner_id IS NULL",
        )
        .bind(owner)
        .bind(name)
        .bind(id.as_str())
        .execute(db.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    })
    .await
}

/// Renames a device.
pub(crate) async fn rename(db: &Store, id: &DeviceId, name: &str) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("UPDATE devices SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id.as_str())
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// 8.2 unbind, 8.10 reset: the device loses its owner, name, shares and recorder links, and
/// its ACL version moves (every outstanding token goes stale, D5). One transaction.
pub(crate) async fn release(db: &Store, id: &DeviceId) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        release_links(&mut tx, id).await?;
        sqlx::query(
            "UPDATE devices SET owner_id = NULL, name = NULL, acl_version = acl_version + 1 WHERE id = $1",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .await
}

/// What a device leaves when it changes hands: its shares, its recorder links and its
/// timed snapshots (8.2 unbind, 8.10 reset, 6.1.1 move and decommission).
pub(super) async fn release_links(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &DeviceId,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM shares WHERE device_id = $1")
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    // A released camera leaves its NVRs; a released NVR records nobody (8.7.2).
    sqlx::query("DELETE FROM recorders WHERE camera_id = $1 OR recorder_id = $1")
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    // H.626.4 6.1.12: a released camera sends no more timed snapshots.
    sqlx::query("DELETE FROM snapshot_schedules WHERE camera_id = $1")
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves the ACL version of every device `user` owns or was shared, so that every token
/// minted for them before is stale (D5); returns those devices.
pub(crate) async fn bump_acl_of_user(db: &Store, user: i64) -> Result<Vec<DeviceId>, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM devices WHERE owner_id = $1 UNION SELECT device_id FROM shares WHERE user_id = $1",
        )
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE devices SET acl_version = acl_version + 1
             WHERE owner_id = $1 OR id IN (SELECT device_id FROM shares WHERE user_id = $1)",
        )
        .bind(user)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
    })
    .await
}

/// Presence: the platform last heard of the device at `now`.
pub(crate) async fn touch(db: &Store, id: &DeviceId, now: u64) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query("UPDATE devices SET last_seen = $1 WHERE id = $2")
            .bind(ts(now))
            .bind(id.as_str())
            .execute(db.pool())
            .await
            .map(drop)
    })
    .await
}

/// 8.1: the device registered (first time kept) running `sw_version`.
pub(crate) async fn registered(
    db: &Store,
    id: &DeviceId,
    now: u64,
    sw_version: &str,
) -> Result<(), StoreError> {
    let sw: String = sw_version.chars().take(64).collect();
    retry(|| async {
        sqlx::query(
            "UPDATE devices SET registered_at = COALESCE(registered_at, $1), sw_version = $2 WHERE id = $3",
        )
        .bind(ts(now))
        .bind(&sw)
        .bind(id.as_str())
        .execute(db.pool())
        .await
        .map(drop)
    })
    .await
}

/// 8.1: spends a registration challenge nonce (valid until `expires_at`); false if it was
/// seen before. Forgets expired nonces.
pub(crate) async fn spend_nonce(
    db: &Store,
    nonce: &str,
    expires_at: u64,
    now: u64,
) -> Result<bool, StoreError> {
    super::spend_once(db, ("used_nonces", "nonce"), nonce, expires_at, now).await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::on_both_backends;

    pub(crate) fn new_device(n: u8) -> NewDevice {
        NewDevice {
            id: DeviceId::from_random([n; 10]),
            kind: DeviceKind::Pu,
            public_key: format!("key{n}"),
            bind_code_sha256: "AB".repeat(32),
            vendor: "v".into(),
            model: "m".into(),
            owner: None,
            name: None,
        }
    }

    on_both_backends! {
    #[tokio::test]
    async fn provision_is_all_or_nothing_and_keys_never_change(db) {
        let (a, b) = (new_device(1), new_device(2));
        let r = provision(&db, &[a.clone(), b.clone()], 7).await.unwrap();
        assert_eq!(
            r,
            Provisioned::Done {
                created: 2,
                unchanged: 0,
                assigned: 0
            }
        );
        let mut other = a.clone();
        other.public_key = "another".into();
        let c = new_device(3);
        let r = provision(&db, &[c.clone(), other], 8).await.unwrap();
        assert_eq!(r, Provisioned::KeyConflict(a.id.clone()));
        assert!(get(&db, &c.id).await.unwrap().is_none(), "rolled back");
        let r = provision(&db, std::slice::from_ref(&a), 9).await.unwrap();
        assert_eq!(
            r,
            Provisioned::Done {
                created: 0,
                unchanged: 1,
                assigned: 0
            }
        );
        let d = get(&db, &a.id).await.unwrap().unwrap();
        assert_eq!(d.bind_code_sha256, "ab".repeat(32));
        assert_eq!((d.owner, d.registered_at, d.disabled), (None, None, false));
        assert_eq!(all(&db).await.unwrap().len(), 2);
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn bind_release_and_registration(db) {
        let a = new_device(4);
        provision(&db, std::slice::from_ref(&a), 1).await.unwrap();
        let owner = crate::store::accounts::create(
            &db,
            peercam_signal::cm::Role::Owner,
            "+15550100004",
            "h",
            None,
            1,
        )
        .await
        .unwrap()
        .unwrap();
        let acl0 = get(&db, &a.id).await.unwrap().unwrap().acl_version;
        assert!(bind(&db, &a.id, owner, Some("door")).await.unwrap());
        assert!(!bind(&db, &a.id, owner, None).await.unwrap(), "bound once");
        let d = get(&db, &a.id).await.unwrap().unwrap();
        assert_eq!(
            (d.owner, d.name.as_deref(), d.acl_version),
            (Some(owner), Some("door"), acl0 + 1)
        );
        assert_eq!(owned_by(&db, owner).await.unwrap(), vec![d]);
        rename(&db, &a.id, "gate").await.unwrap();
        assert_eq!(
            bump_acl_of_user(&db, owner).await.unwrap(),
            vec![a.id.clone()]
        );
        release(&db, &a.id).await.unwrap();
        let d = get(&db, &a.id).await.unwrap().unwrap();
        assert_eq!((d.owner, d.name, d.acl_version), (None, None, acl0 + 3));
        registered(&db, &a.id, 50, "1.2.3").await.unwrap();
        registered(&db, &a.id, 60, "1.2.4").await.unwrap();
        touch(&db, &a.id, 70).await.unwrap();
        let d = get(&db, &a.id).await.unwrap().unwrap();
        assert_eq!(
            (d.registered_at, d.sw_version.as_deref(), d.last_seen),
            (Some(50), Some("1.2.4"), Some(70))
        );
        assert!(spend_nonce(&db, "n", 100, 10).await.unwrap());
        assert!(!spend_nonce(&db, "n", 100, 10).await.unwrap());
    }
    }
}
