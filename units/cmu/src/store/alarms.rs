//! Alarms (H.626.4 8.8: stored once per camera and alarm id), the snapshots kept with them,
//! each camera's alarm strategy, and each user's message templates and notification
//! settings per alarm kind (6.1.9).

use peercam_alarm::{Alarm, AlarmKind};
use peercam_base::DeviceId;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Arg, Store, StoreError, begin_write, retry, select, ts, unts};

/// Largest snapshot kept with an alarm, bytes.
pub(crate) const MAX_SNAPSHOT_BYTES: usize = 512 * 1024;
/// Snapshots kept per camera; older ones are dropped (their alarms stay).
pub(crate) const SNAPSHOTS_PER_CAMERA: i64 = 200;

/// One stored alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlarmRow {
    /// The platform's id.
    pub(crate) id: i64,
    /// Whose it is: the camera's owner when it was stored (the account, for login alarms).
    pub(crate) owner: i64,
    /// The device concerned.
    pub(crate) camera: Option<DeviceId>,
    /// As raised.
    pub(crate) alarm: Alarm,
    /// Unix ms.
    pub(crate) received_ms: u64,
    /// Reset (by, Unix ms), if it was.
    pub(crate) reset: Option<(Option<i64>, u64)>,
    /// Whether a snapshot is kept.
    pub(crate) snapshot: bool,
}

/// What storing an alarm did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Stored now, with this id.
    New(i64),
    /// Stored before (a retransmission), with this id: nothing changed.
    Again(i64),
}

/// Who is looking at alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Viewer {
    /// An owner (or the account itself): its own alarms.
    Owner(i64),
    /// A sub-account: its own account alarms and the alarms of the cameras its parent owns
    /// and shares with it, while the share lasts.
    Sub {
        /// The sub-account.
        user: i64,
        /// Its owner.
        parent: i64,
    },
}

/// Filters of the alarm list.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) camera: Option<DeviceId>,
    pub(crate) kind: Option<AlarmKind>,
    pub(crate) state: Option<&'static str>,
    pub(crate) from_ms: Option<u64>,
    pub(crate) to_ms: Option<u64>,
    /// Only alarms with a smaller id (the page cursor).
    pub(crate) before: Option<i64>,
    pub(crate) limit: u32,
}

const COLUMNS: &str = "a.id, a.owner_id, a.camera_id, a.alarm_id, a.kind, a.at_ms, a.received_ms, a.level, a.input, a.zone, a.detail, a.state, a.reset_by, a.reset_at, a.snapshot_id";

fn decode(r: &AnyRow) -> Result<AlarmRow, sqlx::Error> {
    let kind: String = r.try_get(4)?;
    let kind = AlarmKind::parse(&kind)
        .ok_or_else(|| sqlx::Error::Decode(format!("alarm kind {kind:?}").into()))?;
    let camera: Option<String> = r.try_get(2)?;
    let small = |v: Option<i64>| v.and_then(|v| u8::try_from(v).ok());
    let state: String = r.try_get(11)?;
    let reset_at: Option<i64> = r.try_get(13)?;
    let snapshot: Option<i64> = r.try_get(14)?;
    Ok(AlarmRow {
        id: r.try_get(0)?,
        owner: r.try_get(1)?,
        camera: camera.and_then(|c| c.parse().ok()),
        alarm: Alarm {
            id: r.try_get(3)?,
            kind,
            at_ms: unts(r.try_get(5)?),
            input: small(r.try_get(8)?),
            zone: small(r.try_get(9)?),
            level: small(Some(r.try_get(7)?)).unwrap_or(0),
            detail: r.try_get(10)?,
        },
        received_ms: unts(r.try_get(6)?),
        reset: (state == "reset")
            .then(|| (r.try_get(12).ok().flatten(), unts(reset_at.unwrap_or(0)))),
        snapshot: snapshot.is_some(),
    })
}

/// H.626.4 8.8: stores `alarm` of `camera` for `owner` once per (camera, alarm id).
pub(crate) async fn store(
    db: &Store,
    owner: i64,
    camera: Option<&DeviceId>,
    alarm: &Alarm,
    received_ms: u64,
) -> Result<Stored, StoreError> {
    let camera = camera.map(DeviceId::as_str);
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let known: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM alarms WHERE camera_id IS NOT DISTINCT FROM $1 AND alarm_id = $2",
        )
        .bind(camera)
        .bind(&alarm.id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = known {
            return Ok(Stored::Again(id));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO alarms (owner_id, camera_id, alarm_id, kind, at_ms, received_ms, level, input, zone, detail, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active') RETURNING id",
        )
        .bind(owner)
        .bind(camera)
        .bind(&alarm.id)
        .bind(alarm.kind.as_str())
        .bind(ts(alarm.at_ms))
        .bind(ts(received_ms))
        .bind(i64::from(alarm.level))
        .bind(alarm.input.map(i64::from))
        .bind(alarm.zone.map(i64::from))
        .bind(&alarm.detail)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Stored::New(id))
    })
    .await
}

/// The WHERE clause of what `viewer` may see; its arguments start at `$1`.
fn visible(viewer: Viewer) -> (&'static str, Vec<Arg<'static>>) {
    match viewer {
        Viewer::Owner(id) => ("a.owner_id = $1", vec![Arg::Int(id)]),
        // The share must be from the camera's current owner, the sub-account's parent.
        Viewer::Sub { user, parent } => (
            "(a.owner_id = $1 OR (a.owner_id = $2 AND a.camera_id IN (
                SELECT s.device_id FROM shares s JOIN devices d ON d.id = s.device_id
                 WHERE s.user_id = $1 AND d.owner_id = $2)))",
            vec![Arg::Int(user), Arg::Int(parent)],
        ),
    }
}

/// Adds `AND cond ?N` with `arg` bound as `?N`.
fn and<'a>(cond: &str, arg: Arg<'a>, args: &mut Vec<Arg<'a>>, sql: &mut String) {
    args.push(arg);
    sql.push_str(&format!(" AND {cond} ${}", args.len()));
}

/// The alarms `viewer` may see, newest first, filtered.
pub(crate) async fn list(
    db: &Store,
    viewer: Viewer,
    f: &Filter,
) -> Result<Vec<AlarmRow>, StoreError> {
    let (clause, visible_args) = visible(viewer);
    let mut args: Vec<Arg<'_>> = visible_args;
    let mut sql = format!("SELECT {COLUMNS} FROM alarms a WHERE {clause}");
    if let Some(c) = &f.camera {
        and("a.camera_id =", Arg::Text(c.as_str()), &mut args, &mut sql);
    }
    if let Some(k) = f.kind {
        and("a.kind =", Arg::Text(k.as_str()), &mut args, &mut sql);
    }
    if let Some(s) = f.state {
        and("a.state =", Arg::Text(s), &mut args, &mut sql);
    }
    if let Some(t) = f.from_ms {
        and("a.at_ms >=", Arg::Int(ts(t)), &mut args, &mut sql);
    }
    if let Some(t) = f.to_ms {
        and("a.at_ms <", Arg::Int(ts(t)), &mut args, &mut sql);
    }
    if let Some(b) = f.before {
        and("a.id <", Arg::Int(b), &mut args, &mut sql);
    }
    sql.push_str(&format!(
        " ORDER BY a.id DESC LIMIT {}",
        f.limit.clamp(1, 500)
    ));
    select(db, &sql, &args, decode).await
}

/// One alarm, if `viewer` may see it (D3: "not yours" and "none" are one answer).
pub(crate) async fn get(
    db: &Store,
    viewer: Viewer,
    id: i64,
) -> Result<Option<AlarmRow>, StoreError> {
    let (clause, mut args) = visible(viewer);
    args.push(Arg::Int(id));
    let sql = format!(
        "SELECT {COLUMNS} FROM alarms a WHERE {clause} AND a.id = ${}",
        args.len()
    );
    Ok(select(db, &sql, &args, decode).await?.into_iter().next())
}

/// H.626.4 8.8: marks an active alarm reset; false if it was reset before.
pub(crate) async fn reset(db: &Store, id: i64, by: i64, at_ms: u64) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query(
            "UPDATE alarms SET state = 'reset', reset_by = $2, reset_at = $3 WHERE id = $1 AND state = 'active'",
        )
        .bind(id)
        .bind(by)
        .bind(ts(at_ms))
        .execute(db.pool())
        .await
        .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// Inserts a snapshot of `camera` in `tx`, `timed` (6.1.12) or taken with an alarm, then
/// drops the camera's oldest snapshots of the same sort past `keep`. Returns its id.
pub(super) async fn insert_snapshot(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    camera: &DeviceId,
    (jpeg, taken_ms): (&[u8], u64),
    timed: bool,
    keep: i64,
) -> Result<i64, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alarm_snapshots (camera_id, taken_ms, jpeg, timed) VALUES ($1, $2, $3, $4)
         RETURNING id",
    )
    .bind(camera.as_str())
    .bind(ts(taken_ms))
    .bind(jpeg)
    .bind(i64::from(timed))
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM alarm_snapshots WHERE camera_id = $1 AND timed = $3 AND id NOT IN
           (SELECT id FROM alarm_snapshots WHERE camera_id = $1 AND timed = $3
            ORDER BY id DESC LIMIT $2)",
    )
    .bind(camera.as_str())
    .bind(keep)
    .bind(i64::from(timed))
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Keeps `jpeg` with alarm `id` of `camera` (at most [`MAX_SNAPSHOT_BYTES`]; false if larger),
/// dropping the camera's oldest snapshots past [`SNAPSHOTS_PER_CAMERA`].
pub(crate) async fn keep_snapshot(
    db: &Store,
    id: i64,
    camera: &DeviceId,
    jpeg: &[u8],
    taken_ms: u64,
) -> Result<bool, StoreError> {
    if jpeg.len() > MAX_SNAPSHOT_BYTES || jpeg.is_empty() {
        return Ok(false);
    }
    retry(|| async {
        let mut tx = begin_write(db).await?;
        let snap = insert_snapshot(
            &mut tx,
            camera,
            (jpeg, taken_ms),
            false,
            SNAPSHOTS_PER_CAMERA,
        )
        .await?;
        sqlx::query("UPDATE alarms SET snapshot_id = $2 WHERE id = $1")
            .bind(id)
            .bind(snap)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    })
    .await
}

/// The snapshot kept with alarm `id`.
pub(crate) async fn snapshot(db: &Store, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
    retry(|| async {
        sqlx::query_scalar(
            "SELECT s.jpeg FROM alarms a JOIN alarm_snapshots s ON s.id = a.snapshot_id WHERE a.id = $1",
        )
        .bind(id)
        .fetch_optional(db.pool())
        .await
    })
    .await
}

/// A camera's alarm strategy on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedStrategy {
    pub(crate) revision: u64,
    /// JSON of [`peercam_alarm::AlarmStrategy`].
    pub(crate) doc: String,
    /// Whether the camera applied this revision.
    pub(crate) applied: bool,
}

/// The saved strategy of `camera`.
pub(crate) async fn strategy(
    db: &Store,
    camera: &DeviceId,
) -> Result<Option<SavedStrategy>, StoreError> {
    let row: Option<(i64, String, i64)> = retry(|| async {
        sqlx::query_as("SELECT revision, doc, applied FROM alarm_strategies WHERE camera_id = $1")
            .bind(camera.as_str())
            .fetch_optional(db.pool())
            .await
    })
    .await?;
    Ok(row.map(|(revision, doc, applied)| SavedStrategy {
        revision: unts(revision),
        doc,
        applied: applied != 0,
    }))
}

/// Saves `doc` as `camera`'s strategy (not applied yet); returns its revision.
pub(crate) async fn save_strategy(
    db: &Store,
    camera: &DeviceId,
    doc: &str,
    now: u64,
) -> Result<u64, StoreError> {
    let rev: i64 = retry(|| async {
        let mut tx = begin_write(db).await?;
        let rev: i64 = sqlx::query_scalar(
            "INSERT INTO alarm_strategies (camera_id, revision, doc, applied, updated_at) VALUES ($1, 1, $2, 0, $3)
             ON CONFLICT (camera_id) DO UPDATE SET revision = alarm_strategies.revision + 1, doc = excluded.doc, applied = 0, updated_at = excluded.updated_at
             RETURNING revision",
        )
        .bind(camera.as_str())
        .bind(doc)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rev)
    })
    .await?;
    Ok(unts(rev))
}

/// The camera applied `revision` (a later save stays pending).
pub(crate) async fn strategy_applied(
    db: &Store,
    camera: &DeviceId,
    revision: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "UPDATE alarm_strategies SET applied = 1 WHERE camera_id = $1 AND revision = $2",
        )
        .bind(camera.as_str())
        .bind(ts(revision))
        .execute(db.pool())
        .await
    })
    .await
    .map(|_| ())
}

/// The user's own templates: (kind, template).
pub(crate) async fn templates(db: &Store, user: i64) -> Result<Vec<(String, String)>, StoreError> {
    retry(|| async {
        sqlx::query_as(
            "SELECT kind, template FROM alarm_templates WHERE user_id = $1 ORDER BY kind",
        )
        .bind(user)
        .fetch_all(db.pool())
        .await
    })
    .await
}

/// Replaces the user's templates with `set` (kinds left out go back to their default).
pub(crate) async fn put_templates(
    db: &Store,
    user: i64,
    set: &[(String, String)],
) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query("DELETE FROM alarm_templates WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        for (kind, text) in set {
            sqlx::query(
                "INSERT INTO alarm_templates (user_id, kind, template) VALUES ($1, $2, $3)",
            )
            .bind(user)
            .bind(kind)
            .bind(text)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })
    .await
}

/// Channels of one kind: (sms, push, app).
pub(crate) type Channels = (bool, bool, bool);

/// The user's stored notification settings: (kind, channels).
pub(crate) async fn notify(db: &Store, user: i64) -> Result<Vec<(String, Channels)>, StoreError> {
    let rows: Vec<(String, i64, i64, i64)> = retry(|| async {
        sqlx::query_as(
            "SELECT kind, sms, push, app FROM alarm_notify WHERE user_id = $1 ORDER BY kind",
        )
        .bind(user)
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(k, s, p, a)| (k, (s != 0, p != 0, a != 0)))
        .collect())
}

/// Sets the user's channels of the kinds in `set` (the others keep theirs).
pub(crate) async fn put_notify(
    db: &Store,
    user: i64,
    set: &[(String, Channels)],
) -> Result<(), StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        for (kind, (sms, push, app)) in set {
            sqlx::query(
                "INSERT INTO alarm_notify (user_id, kind, sms, push, app) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (user_id, kind) DO UPDATE SET sms = excluded.sms, push = excluded.push, app = excluded.app",
            )
            .bind(user)
            .bind(kind)
            .bind(i64::from(*sms))
            .bind(i64::from(*push))
            .bind(i64::from(*app))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })
    .await
}

#[cfg(test)]
mod tests {
    use crate::store::on_both_backends;
    use peercam_signal::cm::Role;

    use super::*;
    use crate::store::{accounts, devices, shares};

    fn alarm(id: &str, kind: AlarmKind, at_ms: u64) -> Alarm {
        Alarm {
            id: id.into(),
            kind,
            at_ms,
            input: None,
            zone: Some(1),
            level: 40,
            detail: "d".into(),
        }
    }

    async fn setup(db: Store) -> (Store, i64, i64, DeviceId, DeviceId) {
        let (a, b) = (
            devices::tests::new_device(50),
            devices::tests::new_device(51),
        );
        devices::provision(&db, &[a.clone(), b.clone()], 1)
            .await
            .unwrap();
        let owner = accounts::create(&db, Role::Owner, "+15550100050", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        let sub = accounts::create(&db, Role::Sub, "s50", "h", Some(owner), 1)
            .await
            .unwrap()
            .unwrap();
        devices::bind(&db, &a.id, owner, None).await.unwrap();
        devices::bind(&db, &b.id, owner, None).await.unwrap();
        (db, owner, sub, a.id, b.id)
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_8_8_alarm_stored_once_per_camera_and_id(db) {
        let (db, owner, _, cam, other) = setup(db).await;
        let a = alarm("m-1", AlarmKind::Motion, 1000);
        let first = store(&db, owner, Some(&cam), &a, 2000).await.unwrap();
        let Stored::New(id) = first else {
            panic!("{first:?}")
        };
        assert_eq!(
            store(&db, owner, Some(&cam), &a, 3000).await.unwrap(),
            Stored::Again(id)
        );
        // The same id from another camera is another alarm.
        assert!(matches!(
            store(&db, owner, Some(&other), &a, 3000).await.unwrap(),
            Stored::New(_)
        ));
        let row = get(&db, Viewer::Owner(owner), id).await.unwrap().unwrap();
        assert_eq!(
            (row.alarm, row.received_ms, row.reset, row.snapshot),
            (a, 2000, None, false)
        );
        assert_eq!(row.camera, Some(cam));
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_8_8_list_filters_pages_and_sub_accounts_see_shared_cameras_only(db) {
        let (db, owner, sub, cam, other) = setup(db).await;
        for i in 0..5u64 {
            let kind = if i % 2 == 0 {
                AlarmKind::Motion
            } else {
                AlarmKind::Input
            };
            store(
                &db,
                owner,
                Some(&cam),
                &alarm(&format!("c{i}"), kind, i * 10),
                1,
            )
            .await
            .unwrap();
            store(
                &db,
                owner,
                Some(&other),
                &alarm(&format!("o{i}"), kind, i * 10),
                1,
            )
            .await
            .unwrap();
        }
        let all = |limit| Filter {
            limit,
            ..Filter::default()
        };
        let page = list(&db, Viewer::Owner(owner), &all(4)).await.unwrap();
        assert_eq!(page.len(), 4);
        assert!(page.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let rest = Filter {
            before: Some(page[3].id),
            ..all(100)
        };
        assert_eq!(
            list(&db, Viewer::Owner(owner), &rest).await.unwrap().len(),
            6
        );
        let f = Filter {
            camera: Some(cam.clone()),
            kind: Some(AlarmKind::Motion),
            from_ms: Some(10),
            to_ms: Some(40),
            ..all(100)
        };
        let got = list(&db, Viewer::Owner(owner), &f).await.unwrap();
        assert_eq!(
            got.iter().map(|r| r.alarm.id.as_str()).collect::<Vec<_>>(),
            ["c2"]
        );
        let viewer = Viewer::Sub {
            user: sub,
            parent: owner,
        };
        assert!(list(&db, viewer, &all(100)).await.unwrap().is_empty());
        shares::put(&db, &cam, sub, peercam_base::ScopeSet::all(), 1)
            .await
            .unwrap();
        let seen = list(&db, viewer, &all(100)).await.unwrap();
        assert_eq!(seen.len(), 5);
        assert!(seen.iter().all(|r| r.camera.as_ref() == Some(&cam)));
        let of_other = list(
            &db,
            Viewer::Owner(owner),
            &Filter {
                camera: Some(other),
                ..all(1)
            },
        )
        .await
        .unwrap();
        assert_eq!(get(&db, viewer, of_other[0].id).await.unwrap(), None);
        shares::remove(&db, &cam, sub).await.unwrap();
        assert!(list(&db, viewer, &all(100)).await.unwrap().is_empty());
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_8_8_reset_once_and_snapshot_kept_within_limits(db) {
        let (db, owner, _, cam, _) = setup(db).await;
        let Stored::New(id) = store(&db, owner, Some(&cam), &alarm("x", AlarmKind::Tamper, 1), 1)
            .await
            .unwrap()
        else {
            panic!("stored before")
        };
        assert!(reset(&db, id, owner, 77).await.unwrap());
        assert!(!reset(&db, id, owner, 78).await.unwrap());
        let row = get(&db, Viewer::Owner(owner), id).await.unwrap().unwrap();
        assert_eq!(row.reset, Some((Some(owner), 77)));
        assert!(
            !keep_snapshot(&db, id, &cam, &vec![0; MAX_SNAPSHOT_BYTES + 1], 5)
                .await
                .unwrap()
        );
        assert!(
            keep_snapshot(&db, id, &cam, b"\xff\xd8jpeg", 5)
                .await
                .unwrap()
        );
        assert_eq!(
            snapshot(&db, id).await.unwrap().as_deref(),
            Some(&b"\xff\xd8jpeg"[..])
        );
        let state = Filter {
            state: Some("reset"),
            limit: 10,
            ..Filter::default()
        };
        assert_eq!(
            list(&db, Viewer::Owner(owner), &state).await.unwrap().len(),
            1
        );
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_8_8_strategy_revisions_and_applied(db) {
        let (db, _, _, cam, _) = setup(db).await;
        assert_eq!(strategy(&db, &cam).await.unwrap(), None);
        assert_eq!(save_strategy(&db, &cam, "{}", 1).await.unwrap(), 1);
        assert_eq!(
            save_strategy(&db, &cam, "{\"armed\":true}", 2)
                .await
                .unwrap(),
            2
        );
        strategy_applied(&db, &cam, 1).await.unwrap();
        assert!(
            !strategy(&db, &cam).await.unwrap().unwrap().applied,
            "an older revision"
        );
        strategy_applied(&db, &cam, 2).await.unwrap();
        let s = strategy(&db, &cam).await.unwrap().unwrap();
        assert_eq!(
            (s.revision, s.doc.as_str(), s.applied),
            (2, "{\"armed\":true}", true)
        );
    }
    }

    on_both_backends! {
    #[tokio::test]
    async fn h626_6_1_9_templates_and_notification_settings_per_user_and_kind(db) {
        let (db, owner, sub, _, _) = setup(db).await;
        let set = vec![("motion".to_owned(), "M {camera}".to_owned())];
        put_templates(&db, owner, &set).await.unwrap();
        assert_eq!(templates(&db, owner).await.unwrap(), set);
        assert!(templates(&db, sub).await.unwrap().is_empty());
        put_templates(&db, owner, &[]).await.unwrap();
        assert!(templates(&db, owner).await.unwrap().is_empty());
        put_notify(&db, owner, &[("motion".into(), (true, false, true))])
            .await
            .unwrap();
        put_notify(&db, owner, &[("login".into(), (false, false, true))])
            .await
            .unwrap();
        assert_eq!(
            notify(&db, owner).await.unwrap(),
            vec![
                ("login".into(), (false, false, true)),
                ("motion".into(), (true, false, true))
            ]
        );
    }
    }
}
