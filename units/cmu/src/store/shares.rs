//! Shares (8.6, 6.1.10): which of an owner's devices each of its sub-accounts may use, with
//! which scopes. Every change moves the device's ACL version (docs/security.md D5).

use peercam_base::{DeviceId, ScopeSet};

use super::{Store, StoreError, begin_write, retry, ts};

fn scopes(bits: i64) -> ScopeSet {
    ScopeSet::from_bits(u8::try_from(bits).unwrap_or(0))
}

/// The scopes `owner` shared `device` with its sub-account `user`, if `owner` still owns it.
pub(crate) async fn scopes_from_owner(
    db: &Store,
    device: &DeviceId,
    user: i64,
    owner: i64,
) -> Result<Option<ScopeSet>, StoreError> {
    let bits: Option<i64> = retry(|| async {
        sqlx::query_scalar(
            "SELECT s.scopes FROM shares s JOIN devices d ON d.id = s.device_id
             WHERE s.device_id = $1 AND s.user_id = $2 AND d.owner_id = $3",
        )
        .bind(device.as_str())
        .bind(user)
        .bind(owner)
        .fetch_optional(db.pool())
        .await
    })
    .await?;
    Ok(bits.map(scopes))
}

/// 8.4 step 7: the scopes `user` holds on `device` owned by `owner`, counting only a share
/// between active accounts (empty if none).
pub(crate) async fn live_scopes(
    db: &Store,
    device: &DeviceId,
    user: i64,
    owner: i64,
) -> Result<ScopeSet, StoreError> {
    let bits: Option<i64> = retry(|| async {
        sqlx::query_scalar(
            "SELECT s.scopes FROM shares s JOIN users u ON u.id = s.user_id JOIN users o ON o.id = u.parent_id
             WHERE s.device_id = $1 AND s.user_id = $2 AND u.status = 'active' AND o.status = 'active' AND o.id = $3",
        )
        .bind(device.as_str())
        .bind(user)
        .bind(owner)
        .fetch_optional(db.pool())
        .await
    })
    .await?;
    Ok(bits.map_or(ScopeSet::EMPTY, scopes))
}

/// The devices shared with `user` by `owner` (its parent), by id.
pub(crate) async fn shared_with(
    db: &Store,
    user: i64,
    owner: i64,
) -> Result<Vec<(DeviceId, ScopeSet)>, StoreError> {
    let rows: Vec<(String, i64)> = retry(|| async {
        sqlx::query_as(
            "SELECT d.id, s.scopes FROM shares s JOIN devices d ON d.id = s.device_id
             WHERE s.user_id = $1 AND d.owner_id = $2 ORDER BY d.id",
        )
        .bind(user)
        .bind(owner)
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, bits)| Some((id.parse().ok()?, scopes(bits))))
        .collect())
}

/// Who `device` is shared with: (username, scopes), by username.
pub(crate) async fn of_device(
    db: &Store,
    device: &DeviceId,
) -> Result<Vec<(String, ScopeSet)>, StoreError> {
    let rows: Vec<(String, i64)> = retry(|| async {
        sqlx::query_as(
            "SELECT u.login, s.scopes FROM shares s JOIN users u ON u.id = s.user_id
             WHERE s.device_id = $1 ORDER BY u.login",
        )
        .bind(device.as_str())
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows.into_iter().map(|(u, b)| (u, scopes(b))).collect())
}

/// Shares `device` with `user` (or changes the scopes), moving the ACL version.
pub(crate) async fn put(
    db: &Store,
    device: &DeviceId,
    user: i64,
    scopes: ScopeSet,
    now: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query(
            "INSERT INTO shares (device_id, user_id, scopes, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (device_id, user_id) DO UPDATE SET scopes = excluded.scopes",
        )
        .bind(device.as_str())
        .bind(user)
        .bind(i64::from(scopes.bits()))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE devices SET acl_version = acl_version + 1 WHERE id = $1")
            .bind(device.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    })
    .await
}

/// Ends the share of `device` with `user`, moving the ACL version; false if there was none.
pub(crate) async fn remove(db: &Store, device: &DeviceId, user: i64) -> Result<bool, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let gone = sqlx::query("DELETE FROM shares WHERE device_id = $1 AND user_id = $2")
            .bind(device.as_str())
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE devices SET acl_version = acl_version + 1 WHERE id = $1")
            .bind(device.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use crate::store::on_both_backends;
    use peercam_base::Scope;
    use peercam_signal::cm::Role;

    use super::*;
    use crate::store::{accounts, devices};

    on_both_backends! {
    #[tokio::test]
    async fn h626_8_6_share_change_and_unshare_move_the_acl(db) {
        let d = devices::tests::new_device(9);
        devices::provision(&db, std::slice::from_ref(&d), 1)
            .await
            .unwrap();
        let owner = accounts::create(&db, Role::Owner, "+15550100005", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        let sub = accounts::create(&db, Role::Sub, "kid", "h", Some(owner), 1)
            .await
            .unwrap()
            .unwrap();
        devices::bind(&db, &d.id, owner, None).await.unwrap();
        let acl = |db: Store, id: DeviceId| async move {
            devices::get(&db, &id).await.unwrap().unwrap().acl_version
        };
        let a0 = acl(db.clone(), d.id.clone()).await;
        let live = ScopeSet::from_iter([Scope::Live]);
        put(&db, &d.id, sub, live, 2).await.unwrap();
        assert_eq!(acl(db.clone(), d.id.clone()).await, a0 + 1);
        assert_eq!(
            scopes_from_owner(&db, &d.id, sub, owner).await.unwrap(),
            Some(live)
        );
        assert_eq!(scopes_from_owner(&db, &d.id, sub, sub).await.unwrap(), None);
        assert_eq!(live_scopes(&db, &d.id, sub, owner).await.unwrap(), live);
        assert_eq!(
            shared_with(&db, sub, owner).await.unwrap(),
            vec![(d.id.clone(), live)]
        );
        assert_eq!(
            of_device(&db, &d.id).await.unwrap(),
            vec![("kid".to_owned(), live)]
        );
        accounts::disable(&db, owner).await.unwrap();
        assert_eq!(
            live_scopes(&db, &d.id, sub, owner).await.unwrap(),
            ScopeSet::EMPTY
        );
        assert!(remove(&db, &d.id, sub).await.unwrap());
        assert!(!remove(&db, &d.id, sub).await.unwrap());
        assert_eq!(acl(db.clone(), d.id.clone()).await, a0 + 2);
    }
    }
}
