//! Live-view sessions as viewers report them: which path, how fast, how much (8.3, 7).

use peercam_base::DeviceId;
use peercam_signal::cm::{SessionReport, SessionView};
use peercam_signal::relay::PathKind;

use super::{Store, StoreError, retry, ts, unts};

type Row = (i64, i64, String, String, i64, i64, i64);

/// Stores one report of `user` about `device`.
pub(crate) async fn record(
    db: &Store,
    user: i64,
    device: &DeviceId,
    r: &SessionReport,
    now: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO media_sessions (at, user_id, device_id, path, connect_ms, bytes, seconds)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(ts(now))
        .bind(user)
        .bind(device.as_str())
        .bind(r.path.as_str())
        .bind(i64::from(r.connect_ms))
        .bind(ts(r.bytes))
        .bind(i64::from(r.seconds))
        .execute(db.pool())
        .await
        .map(drop)
    })
    .await
}

/// How many sessions went by each path.
pub(crate) async fn counts(db: &Store) -> Result<Vec<(String, u64)>, StoreError> {
    let rows: Vec<(String, i64)> = retry(|| async {
        sqlx::query_as("SELECT path, COUNT(*) FROM media_sessions GROUP BY path")
            .fetch_all(db.pool())
            .await
    })
    .await?;
    Ok(rows.into_iter().map(|(k, n)| (k, unts(n))).collect())
}

/// The newest `limit` sessions, newest first.
pub(crate) async fn recent(db: &Store, limit: u32) -> Result<Vec<SessionView>, StoreError> {
    let rows: Vec<Row> = retry(|| async {
        sqlx::query_as(
            "SELECT at, user_id, device_id, path, connect_ms, bytes, seconds FROM media_sessions
             ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(at, user_id, device_id, path, connect_ms, bytes, seconds)| {
                let path: PathKind =
                    serde_json::from_value(serde_json::Value::String(path)).ok()?;
                Some(SessionView {
                    at: unts(at),
                    user_id,
                    device_id,
                    report: SessionReport {
                        path,
                        connect_ms: u32::try_from(connect_ms).unwrap_or(u32::MAX),
                        bytes: unts(bytes),
                        seconds: u32::try_from(seconds).unwrap_or(0),
                    },
                })
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    on_both_backends! {
    #[tokio::test]
    async fn reports_count_by_path(db) {
        let d = DeviceId::from_random([3; 10]);
        let r = SessionReport {
            path: PathKind::Relay,
            connect_ms: 5,
            bytes: 6,
            seconds: 7,
        };
        record(&db, 1, &d, &r, 10).await.unwrap();
        record(&db, 1, &d, &r, 11).await.unwrap();
        assert_eq!(
            counts(&db).await.unwrap(),
            vec![(PathKind::Relay.as_str().to_owned(), 2)]
        );
        let v = recent(&db, 1).await.unwrap();
        assert_eq!((v.len(), v[0].at, v[0].report.bytes), (1, 11, 6));
    }
    }
}
