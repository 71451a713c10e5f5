//! Fleet upgrade campaigns (H.626.4 8.11.1 over many devices): the campaign, its rollout
//! state, and one row per device with its stage and result. The rollout's rules are in
//! `campaigns/machine.rs`; this module only keeps its state, so that a campaign goes on
//! after a CMU restart (or on another CMU of the same database).

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Arg, Store, StoreError, begin_write, retry, select, ts, unts};

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Campaign {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) sha256: String,
    pub(crate) model: String,
    pub(crate) version: String,
    pub(crate) state: String,
    pub(crate) reason: Option<String>,
    pub(crate) stage: u32,
    pub(crate) stages: u32,
    pub(crate) next_stage_at: Option<u64>,
    pub(crate) waived_stage: Option<u32>,
    pub(crate) canary_percent: u32,
    pub(crate) wave_size: u32,
    pub(crate) soak_s: u64,
    pub(crate) failure_percent: u32,
    pub(crate) min_results: u32,
    pub(crate) device_timeout_s: u64,
    pub(crate) created_by: i64,
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
}

/// One device of a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) device_id: String,
    pub(crate) stage: u32,
    pub(crate) state: String,
    pub(crate) reason: Option<String>,
    pub(crate) ordered_at: Option<u64>,
    pub(crate) done: u64,
    pub(crate) total: u64,
    pub(crate) updated_at: u64,
}

const COLUMNS: &str = "id, name, sha256, model, version, state, reason, stage, stages, next_stage_at, \
     waived_stage, canary_percent, wave_size, soak_s, failure_percent, min_results, \
     device_timeout_s, created_by, created_at, updated_at";

fn small(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn campaign(r: &AnyRow) -> Result<Campaign, sqlx::Error> {
    Ok(Campaign {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        sha256: r.try_get("sha256")?,
        model: r.try_get("model")?,
        version: r.try_get("version")?,
        state: r.try_get("state")?,
        reason: r.try_get("reason")?,
        stage: small(r.try_get("stage")?),
        stages: small(r.try_get("stages")?),
        next_stage_at: r.try_get::<Option<i64>, _>("next_stage_at")?.map(unts),
        waived_stage: r.try_get::<Option<i64>, _>("waived_stage")?.map(small),
        canary_percent: small(r.try_get("canary_percent")?),
        wave_size: small(r.try_get("wave_size")?),
        soak_s: unts(r.try_get("soak_s")?),
        failure_percent: small(r.try_get("failure_percent")?),
        min_results: small(r.try_get("min_results")?),
        device_timeout_s: unts(r.try_get("device_timeout_s")?),
        created_by: r.try_get("created_by")?,
        created_at: unts(r.try_get("created_at")?),
        updated_at: unts(r.try_get("updated_at")?),
    })
}

fn member(r: &AnyRow) -> Result<Member, sqlx::Error> {
    Ok(Member {
        device_id: r.try_get("device_id")?,
        stage: small(r.try_get("stage")?),
        state: r.try_get("state")?,
        reason: r.try_get("reason")?,
        ordered_at: r.try_get::<Option<i64>, _>("ordered_at")?.map(unts),
        done: unts(r.try_get("done")?),
        total: unts(r.try_get("total")?),
        updated_at: unts(r.try_get("updated_at")?),
    })
}

/// Creates a campaign (its `id` is ignored) with its devices in order, each with its stage;
/// returns its id.
pub(crate) async fn create(
    db: &Store,
    c: &Campaign,
    devices: &[(String, u32)],
) -> Result<i64, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (name, sha256, model, version, state, stage, stages, \
             canary_percent, wave_size, soak_s, failure_percent, min_results, device_timeout_s, \
             created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING id",
        )
        .bind(&c.name)
        .bind(&c.sha256)
        .bind(&c.model)
        .bind(&c.version)
        .bind(&c.state)
        .bind(i64::from(c.stages))
        .bind(i64::from(c.canary_percent))
        .bind(i64::from(c.wave_size))
        .bind(ts(c.soak_s))
        .bind(i64::from(c.failure_percent))
        .bind(i64::from(c.min_results))
        .bind(ts(c.device_timeout_s))
        .bind(c.created_by)
        .bind(ts(c.created_at))
        .fetch_one(&mut *tx)
        .await?;
        for (seq, (device, stage)) in devices.iter().enumerate() {
            sqlx::query(
                "INSERT INTO campaign_devices (campaign_id, device_id, seq, stage, state, updated_at) \
                 VALUES ($1, $2, $3, $4, 'pending', $5)",
            )
            .bind(id)
            .bind(device)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(i64::from(*stage))
            .bind(ts(c.created_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    })
    .await
}

/// The campaign `id`.
pub(crate) async fn get(db: &Store, id: i64) -> Result<Option<Campaign>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1");
    Ok(select(db, &sql, &[Arg::Int(id)], campaign).await?.pop())
}

/// Every campaign, newest first.
pub(crate) async fn list(db: &Store, limit: u32) -> Result<Vec<Campaign>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM campaigns ORDER BY id DESC LIMIT $1");
    select(db, &sql, &[Arg::Int(i64::from(limit))], campaign).await
}

/// The campaigns the driver has work for (running or soaking).
pub(crate) async fn active(db: &Store) -> Result<Vec<Campaign>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM campaigns WHERE state IN ('running', 'soaking') ORDER BY id"
    );
    select(db, &sql, &[], campaign).await
}

/// The devices of campaign `id`, in their order.
pub(crate) async fn members(db: &Store, id: i64) -> Result<Vec<Member>, StoreError> {
    select(
        db,
        "SELECT device_id, stage, state, reason, ordered_at, done, total, updated_at \
         FROM campaign_devices WHERE campaign_id = $1 ORDER BY seq",
        &[Arg::Int(id)],
        member,
    )
    .await
}

/// The rollout fields of a campaign that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rollout<'a> {
    pub(crate) state: &'a str,
    pub(crate) reason: Option<&'a str>,
    pub(crate) stage: u32,
    pub(crate) next_stage_at: Option<u64>,
    pub(crate) waived_stage: Option<u32>,
}

/// Stores the rollout of campaign `id` if its state is still `expected` (an operator's
/// pause or abort in between wins); returns whether it was stored.
pub(crate) async fn save(
    db: &Store,
    id: i64,
    expected: &str,
    r: &Rollout<'_>,
    now: u64,
) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query(
            "UPDATE campaigns SET state = $3, reason = $4, stage = $5, next_stage_at = $6, \
             waived_stage = $7, updated_at = $8 WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(expected)
        .bind(r.state)
        .bind(r.reason)
        .bind(i64::from(r.stage))
        .bind(r.next_stage_at.map(ts))
        .bind(r.waived_stage.map(i64::from))
        .bind(ts(now))
        .execute(db.pool())
        .await
        .map(|d| d.rows_affected() == 1)
    })
    .await
}

/// One device's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change<'a> {
    pub(crate) state: &'a str,
    pub(crate) reason: Option<&'a str>,
    pub(crate) ordered_at: Option<u64>,
    pub(crate) done: u64,
    pub(crate) total: u64,
}

/// Moves `device` of campaign `id` from state `from` to `c`; false if it was not in `from`
/// any more (another CMU got there first).
pub(crate) async fn move_device(
    db: &Store,
    id: i64,
    device: &str,
    from: &str,
    c: &Change<'_>,
    now: u64,
) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query(
            "UPDATE campaign_devices SET state = $4, reason = $5, ordered_at = $6, done = $7, \
             total = $8, updated_at = $9 WHERE campaign_id = $1 AND device_id = $2 AND state = $3",
        )
        .bind(id)
        .bind(device)
        .bind(from)
        .bind(c.state)
        .bind(c.reason)
        .bind(c.ordered_at.map(ts))
        .bind(ts(c.done))
        .bind(ts(c.total))
        .bind(ts(now))
        .execute(db.pool())
        .await
        .map(|d| d.rows_affected() == 1)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    pub(crate) fn sample() -> Campaign {
        Campaign {
            id: 0,
            name: "spring".into(),
            sha256: "ab".repeat(32),
            model: "m".into(),
            version: "1.2.0".into(),
            state: "running".into(),
            reason: None,
            stage: 0,
            stages: 2,
            next_stage_at: None,
            waived_stage: None,
            canary_percent: 5,
            wave_size: 1,
            soak_s: 60,
            failure_percent: 20,
            min_results: 3,
            device_timeout_s: 600,
            created_by: 1,
            created_at: 100,
            updated_at: 100,
        }
    }

    on_both_backends! {
    #[tokio::test]
    async fn campaigns_keep_their_rollout_and_devices(db) {
        let devices = vec![("d1".to_owned(), 0), ("d2".to_owned(), 1)];
        let id = create(&db, &sample(), &devices).await.unwrap();
        let c = get(&db, id).await.unwrap().unwrap();
        assert_eq!((c.id, c.stages, c.state.as_str()), (id, 2, "running"));
        assert_eq!(active(&db).await.unwrap().len(), 1);
        let m = members(&db, id).await.unwrap();
        assert_eq!(m.iter().map(|m| (m.device_id.as_str(), m.stage)).collect::<Vec<_>>(), vec![("d1", 0), ("d2", 1)]);
        let sent = Change { state: "sent", reason: None, ordered_at: Some(101), done: 0, total: 0 };
        assert!(move_device(&db, id, "d1", "pending", &sent, 101).await.unwrap());
        assert!(!move_device(&db, id, "d1", "pending", &sent, 101).await.unwrap(), "only once");
        let r = Rollout { state: "paused", reason: Some("too many"), stage: 0, next_stage_at: None, waived_stage: None };
        assert!(save(&db, id, "running", &r, 102).await.unwrap());
        assert!(!save(&db, id, "running", &r, 103).await.unwrap(), "state moved on");
        let c = get(&db, id).await.unwrap().unwrap();
        assert_eq!((c.state.as_str(), c.reason.as_deref(), c.updated_at), ("paused", Some("too many"), 102));
        assert!(active(&db).await.unwrap().is_empty());
        assert_eq!(list(&db, 10).await.unwrap().len(), 1);
        assert_eq!(members(&db, id).await.unwrap()[0].ordered_at, Some(101));
    }
    }
}
