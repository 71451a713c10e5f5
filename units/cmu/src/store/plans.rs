//! Cloud storage plans (H.626.4 6.1.13): which plan of the catalogue each owner holds, since
//! when, its epoch (raised by every change; it orders the Su `cs_account` messages) and the
//! end of a downgrade's grace; and every change, the row the accounting issue bills from.
//! An owner without a row holds the free plan at epoch 0.

use peercam_base::DeviceId;

use super::{Store, StoreError, begin_write, retry, ts, unts};

/// An owner's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) plan: String,
    pub(crate) epoch: u64,
    /// Unix seconds.
    pub(crate) since: u64,
    /// Unix seconds from which bytes beyond the quota are pruned (a downgrade's grace).
    pub(crate) prune_after: Option<u64>,
}

/// One plan change (the accounting row: the plan billed for a period).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) plan: String,
    pub(crate) previous: String,
    pub(crate) at: u64,
}

/// The plan of `owner`, if it ever chose one.
pub(crate) async fn get(db: &Store, owner: i64) -> Result<Option<Subscription>, StoreError> {
    let row: Option<(String, i64, i64, Option<i64>)> = retry(|| async {
        sqlx::query_as(
            "SELECT plan, epoch, since, prune_after FROM cloud_subscriptions WHERE user_id = $1",
        )
        .bind(owner)
        .fetch_optional(db.pool())
        .await
    })
    .await?;
    Ok(row.map(|(plan, epoch, since, prune_after)| Subscription {
        plan,
        epoch: unts(epoch),
        since: unts(since),
        prune_after: prune_after.map(unts),
    }))
}

/// Subscribes `owner` to `plan` (from `previous`) at `now`: raises the epoch and records the
/// change, in one transaction. Returns the new subscription.
pub(crate) async fn subscribe(
    db: &Store,
    owner: i64,
    plan: &str,
    previous: &str,
    prune_after: Option<u64>,
    now: u64,
) -> Result<Subscription, StoreError> {
    let epoch: i64 = retry(|| async {
        let mut tx = begin_write(db).await?;
        let epoch: i64 = sqlx::query_scalar(
            "INSERT INTO cloud_subscriptions (user_id, plan, epoch, since, prune_after)
             VALUES ($1, $2, 1, $3, $4)
             ON CONFLICT (user_id) DO UPDATE SET plan = excluded.plan,
               epoch = cloud_subscriptions.epoch + 1, since = excluded.since,
               prune_after = excluded.prune_after
             RETURNING epoch",
        )
        .bind(owner)
        .bind(plan)
        .bind(ts(now))
        .bind(prune_after.map(ts))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO cloud_plan_changes (user_id, plan, previous, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(owner)
        .bind(plan)
        .bind(previous)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(epoch)
    })
    .await?;
    Ok(Subscription {
        plan: plan.to_owned(),
        epoch: unts(epoch),
        since: now,
        prune_after,
    })
}

/// The plan changes of `owner`, oldest first (the accounting bills the plan held at the
/// end of a period from them).
pub(crate) async fn changes(db: &Store, owner: i64) -> Result<Vec<Change>, StoreError> {
    let rows: Vec<(String, String, i64)> = retry(|| async {
        sqlx::query_as(
            "SELECT plan, previous, at FROM cloud_plan_changes WHERE user_id = $1 ORDER BY at, id",
        )
        .bind(owner)
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(plan, previous, at)| Change {
            plan,
            previous,
            at: unts(at),
        })
        .collect())
}

/// The cloud storage units holding a camera of `owner`'s pool, and those cameras.
pub(crate) async fn cameras_of(
    db: &Store,
    owner: i64,
) -> Result<Vec<(DeviceId, DeviceId)>, StoreError> {
    let rows: Vec<(String, String)> = retry(|| async {
        sqlx::query_as(
            "SELECT cs_id, camera_id FROM cloud_cameras WHERE owner_id = $1 ORDER BY cs_id, camera_id",
        )
        .bind(owner)
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .iter()
        .filter_map(|(cs, cam)| Some((cs.parse().ok()?, cam.parse().ok()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use peercam_signal::cm::Role;

    use super::*;
    use crate::store::{accounts, on_both_backends};

    on_both_backends! {
    /// 6.1.13: a subscription is kept with its time; each change raises the epoch and
    /// leaves an accounting row; owners are apart; a deleted owner's plan goes with it.
    #[tokio::test]
    async fn h626_6_1_13_subscriptions_keep_time_epoch_and_changes(db) {
        let a = accounts::create(&db, Role::Owner, "+15550613001", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        let b = accounts::create(&db, Role::Owner, "+15550613002", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(get(&db, a).await.unwrap(), None);
        let s = subscribe(&db, a, "plus", "free", None, 100).await.unwrap();
        assert_eq!((s.epoch, s.since), (1, 100));
        let s = subscribe(&db, a, "free", "plus", Some(700), 200).await.unwrap();
        assert_eq!(s.epoch, 2);
        assert_eq!(get(&db, a).await.unwrap(), Some(s));
        assert_eq!(get(&db, b).await.unwrap(), None, "owners are apart");
        let ch = changes(&db, a).await.unwrap();
        assert_eq!(
            ch,
            vec![
                Change { plan: "plus".into(), previous: "free".into(), at: 100 },
                Change { plan: "free".into(), previous: "plus".into(), at: 200 },
            ]
        );
        assert!(changes(&db, b).await.unwrap().is_empty());
        assert!(cameras_of(&db, a).await.unwrap().is_empty());
        accounts::delete(&db, a).await.unwrap();
        assert_eq!(get(&db, a).await.unwrap(), None);
    }
    }
}
