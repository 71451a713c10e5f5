//! Accounting and charging (H.626.4 clause 7, CMU): usage records per account, their daily
//! rollups, sampled statistics, announcements (6.2 "advertising"), closed billing periods
//! and the billing webhook's deliveries.
//!
//! Every usage record is written with its day's rollup (`usage_daily`, one row per day,
//! account and kind) in one transaction, so that a period's totals are read from at most
//! 31 rows per account and kind whatever the number of records (docs/design/accounting.md).

use super::{Store, StoreError, begin_write, retry, ts, unts};

/// Seconds in a day (usage days are UTC days since the epoch).
pub(crate) const DAY_S: u64 = 86_400;

/// One usage record, as measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// When, Unix seconds.
    pub(crate) at: u64,
    /// The account billed (the owner; 0 for the platform itself, e.g. a sign-up SMS).
    pub(crate) account: i64,
    /// What was used (`relay_bytes`, `live_s_direct`, ...; see `crate::usage::Kind`).
    pub(crate) kind: &'a str,
    /// How much, in the kind's unit.
    pub(crate) quantity: u64,
    /// The device concerned, if any.
    pub(crate) device: Option<&'a str>,
}

/// Stores one record and adds it to its day's rollup.
pub(crate) async fn record(db: &Store, r: &Record<'_>) -> Result<(), StoreError> {
    let day = ts(r.at / DAY_S);
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query(
            "INSERT INTO usage_records (at, day, account_id, kind, quantity, device_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(ts(r.at))
        .bind(day)
        .bind(r.account)
        .bind(r.kind)
        .bind(ts(r.quantity))
        .bind(r.device)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO usage_daily (day, account_id, kind, quantity, records)
             VALUES ($1, $2, $3, $4, 1)
             ON CONFLICT (day, account_id, kind) DO UPDATE
             SET quantity = usage_daily.quantity + excluded.quantity,
                 records = usage_daily.records + 1",
        )
        .bind(day)
        .bind(r.account)
        .bind(r.kind)
        .bind(ts(r.quantity))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
    .await
}

/// A total of one kind for one account over some days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Total {
    /// The account.
    pub(crate) account: i64,
    /// The kind.
    pub(crate) kind: String,
    /// The sum of the quantities.
    pub(crate) quantity: u64,
    /// How many records.
    pub(crate) records: u64,
}

type TotalRow = (i64, String, i64, i64);

fn total((account, kind, q, n): TotalRow) -> Total {
    Total {
        account,
        kind,
        quantity: unts(q),
        records: unts(n),
    }
}

/// Totals per account and kind over the days `[from_day, to_day)`, from the rollups; only
/// `account`'s when given. Ordered by account, then kind.
pub(crate) async fn totals(
    db: &Store,
    (from_day, to_day): (u64, u64),
    account: Option<i64>,
) -> Result<Vec<Total>, StoreError> {
    let rows: Vec<TotalRow> = retry(|| async {
        sqlx::query_as(
            "SELECT account_id, kind, CAST(SUM(quantity) AS BIGINT), CAST(SUM(records) AS BIGINT) FROM usage_daily
             WHERE day >= $1 AND day < $2 AND ($3 < 0 OR account_id = $3)
             GROUP BY account_id, kind ORDER BY account_id, kind",
        )
        .bind(ts(from_day))
        .bind(ts(to_day))
        .bind(account.unwrap_or(-1))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows.into_iter().map(total).collect())
}

/// The same totals computed from the records themselves (checks and the benchmark's
/// comparison; the rollups answer the reports).
pub(crate) async fn totals_from_records(
    db: &Store,
    (from_day, to_day): (u64, u64),
) -> Result<Vec<Total>, StoreError> {
    let rows: Vec<TotalRow> = retry(|| async {
        sqlx::query_as(
            "SELECT account_id, kind, CAST(SUM(quantity) AS BIGINT), COUNT(*) FROM usage_records
             WHERE day >= $1 AND day < $2
             GROUP BY account_id, kind ORDER BY account_id, kind",
        )
        .bind(ts(from_day))
        .bind(ts(to_day))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows.into_iter().map(total).collect())
}

/// One day's total of one kind for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DayTotal {
    /// UTC day since the epoch.
    pub(crate) day: u64,
    /// The total.
    pub(crate) total: Total,
}

/// The rollups of the days `[from_day, to_day)`, by day, account and kind.
pub(crate) async fn days(
    db: &Store,
    (from_day, to_day): (u64, u64),
) -> Result<Vec<DayTotal>, StoreError> {
    let rows: Vec<(i64, i64, String, i64, i64)> = retry(|| async {
        sqlx::query_as(
            "SELECT day, account_id, kind, quantity, records FROM usage_daily
             WHERE day >= $1 AND day < $2 ORDER BY day, account_id, kind",
        )
        .bind(ts(from_day))
        .bind(ts(to_day))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(day, a, k, q, n)| DayTotal {
            day: unts(day),
            total: total((a, k, q, n)),
        })
        .collect())
}

/// Sums of `kind` over all accounts per bucket of `step` seconds in `[from, to)`, from the
/// records: `(bucket start, sum)`, only the buckets with records.
pub(crate) async fn series(
    db: &Store,
    kind: &str,
    (from, to, step): (u64, u64, u64),
) -> Result<Vec<(u64, u64)>, StoreError> {
    let rows: Vec<(i64, i64)> = retry(|| async {
        sqlx::query_as(
            "SELECT (at - $2) / $4, CAST(SUM(quantity) AS BIGINT) FROM usage_records
             WHERE kind = $1 AND day >= $5 AND day <= $6 AND at >= $2 AND at < $3
             GROUP BY 1 ORDER BY 1",
        )
        .bind(kind)
        .bind(ts(from))
        .bind(ts(to))
        .bind(ts(step.max(1)))
        .bind(ts(from / DAY_S))
        .bind(ts(to / DAY_S))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(b, s)| (from + unts(b) * step.max(1), unts(s)))
        .collect())
}

/// Rebuilds the rollups of the days `[from_day, to_day)` from the records (after a bulk
/// load or a repair); returns the rollup rows written.
pub(crate) async fn rebuild_days(
    db: &Store,
    (from_day, to_day): (u64, u64),
) -> Result<u64, StoreError> {
    retry(|| async {
        let mut tx = begin_write(db).await?;
        sqlx::query("DELETE FROM usage_daily WHERE day >= $1 AND day < $2")
            .bind(ts(from_day))
            .bind(ts(to_day))
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "INSERT INTO usage_daily (day, account_id, kind, quantity, records)
             SELECT day, account_id, kind, CAST(SUM(quantity) AS BIGINT), COUNT(*) FROM usage_records
             WHERE day >= $1 AND day < $2 GROUP BY day, account_id, kind",
        )
        .bind(ts(from_day))
        .bind(ts(to_day))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    })
    .await
}

/// Stores one statistics sample (a gauge read now and then, e.g. devices online); a second
/// sample of the same metric and second replaces the first.
pub(crate) async fn sample(
    db: &Store,
    at: u64,
    metric: &str,
    value: u64,
) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO stats_samples (at, metric, value) VALUES ($1, $2, $3)
             ON CONFLICT (metric, at) DO UPDATE SET value = excluded.value",
        )
        .bind(ts(at))
        .bind(metric)
        .bind(ts(value))
        .execute(db.pool())
        .await
        .map(drop)
    })
    .await
}

/// The samples of the metrics starting with `prefix` in `[from, to)`, as
/// `(metric, at, value)`, by metric and time.
pub(crate) async fn samples(
    db: &Store,
    prefix: &str,
    (from, to): (u64, u64),
) -> Result<Vec<(String, u64, u64)>, StoreError> {
    let rows: Vec<(String, i64, i64)> = retry(|| async {
        sqlx::query_as(
            "SELECT metric, at, value FROM stats_samples
             WHERE metric >= $1 AND metric < $2 AND at >= $3 AND at < $4 ORDER BY metric, at",
        )
        .bind(prefix)
        .bind(format!("{prefix}\u{7f}"))
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(m, a, v)| (m, unts(a), unts(v)))
        .collect())
}

/// Counts of rows of `table` (`users` or `alarms`) created per bucket of `step` seconds in
/// `[from, to)`.
pub(crate) async fn created(
    db: &Store,
    what: Created,
    (from, to, step): (u64, u64, u64),
) -> Result<Vec<(u64, u64)>, StoreError> {
    // The column is seconds for users, milliseconds for alarms.
    let sql = match what {
        Created::Signups => {
            "SELECT (created_at - $1) / $3, COUNT(*) FROM users
             WHERE role = 'owner' AND created_at >= $1 AND created_at < $2 GROUP BY 1 ORDER BY 1"
        }
        Created::Alarms => {
            "SELECT (received_ms / 1000 - $1) / $3, COUNT(*) FROM alarms
             WHERE received_ms >= $1 * 1000 AND received_ms < $2 * 1000 GROUP BY 1 ORDER BY 1"
        }
    };
    let step = step.max(1);
    let rows: Vec<(i64, i64)> = retry(|| async {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(ts(from))
            .bind(ts(to))
            .bind(ts(step))
            .fetch_all(db.pool())
            .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(b, n)| (from + unts(b) * step, unts(n)))
        .collect())
}

/// What [`created`] counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Created {
    /// Owner accounts created (sign-ups).
    Signups,
    /// Alarms received.
    Alarms,
}

/// An announcement (6.2 "advertising") as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announcement {
    /// Its id.
    pub(crate) id: i64,
    /// Title.
    pub(crate) title: String,
    /// Body, plain text.
    pub(crate) body: String,
    /// Who sees it: none for every account, else a plan id.
    pub(crate) audience: Option<String>,
    /// Shown from, Unix seconds.
    pub(crate) starts_at: u64,
    /// Shown until (excluded), Unix seconds; none: until deleted.
    pub(crate) ends_at: Option<u64>,
    /// When it was made.
    pub(crate) created_at: u64,
}

type AnnRow = (i64, String, String, Option<String>, i64, Option<i64>, i64);

fn ann((id, title, body, audience, s, e, c): AnnRow) -> Announcement {
    Announcement {
        id,
        title,
        body,
        audience,
        starts_at: unts(s),
        ends_at: e.map(unts),
        created_at: unts(c),
    }
}

/// Stores a new announcement made by `by`; its id.
pub(crate) async fn announce(db: &Store, a: &Announcement, by: i64) -> Result<i64, StoreError> {
    retry(|| async {
        sqlx::query_scalar(
            "INSERT INTO announcements (title, body, audience, starts_at, ends_at, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&a.title)
        .bind(&a.body)
        .bind(a.audience.as_deref())
        .bind(ts(a.starts_at))
        .bind(a.ends_at.map(ts))
        .bind(ts(a.created_at))
        .bind(by)
        .fetch_one(db.pool())
        .await
    })
    .await
}

/// Replaces an announcement's content; false when there is none with that id.
pub(crate) async fn update_announcement(db: &Store, a: &Announcement) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query(
            "UPDATE announcements SET title = $2, body = $3, audience = $4, starts_at = $5, ends_at = $6
             WHERE id = $1",
        )
        .bind(a.id)
        .bind(&a.title)
        .bind(&a.body)
        .bind(a.audience.as_deref())
        .bind(ts(a.starts_at))
        .bind(a.ends_at.map(ts))
        .execute(db.pool())
        .await
        .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// Deletes an announcement; false when there was none.
pub(crate) async fn delete_announcement(db: &Store, id: i64) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query("DELETE FROM announcements WHERE id = $1")
            .bind(id)
            .execute(db.pool())
            .await
            .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// Every announcement, newest first.
pub(crate) async fn announcements(db: &Store) -> Result<Vec<Announcement>, StoreError> {
    let rows: Vec<AnnRow> = retry(|| async {
        sqlx::query_as(
            "SELECT id, title, body, audience, starts_at, ends_at, created_at FROM announcements
             ORDER BY id DESC",
        )
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows.into_iter().map(ann).collect())
}

/// Marks `period` closed (once); false if it was closed before.
pub(crate) async fn close_period(
    db: &Store,
    period: &str,
    by: Option<i64>,
    now: u64,
) -> Result<bool, StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO billing_periods (period, closed_at, closed_by) VALUES ($1, $2, $3)
             ON CONFLICT (period) DO NOTHING",
        )
        .bind(period)
        .bind(ts(now))
        .bind(by)
        .execute(db.pool())
        .await
        .map(|r| r.rows_affected() == 1)
    })
    .await
}

/// When `period` was closed, if it was.
pub(crate) async fn period_closed(db: &Store, period: &str) -> Result<Option<u64>, StoreError> {
    let at: Option<i64> = retry(|| async {
        sqlx::query_scalar("SELECT closed_at FROM billing_periods WHERE period = $1")
            .bind(period)
            .fetch_optional(db.pool())
            .await
    })
    .await?;
    Ok(at.map(unts))
}

/// One attempt to deliver a closed period to the billing system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The period.
    pub(crate) period: String,
    /// When, Unix seconds.
    pub(crate) at: u64,
    /// Attempt number, from 1.
    pub(crate) attempt: u32,
    /// The HTTP status answered, if any.
    pub(crate) status: Option<u16>,
    /// Why it failed, if it did.
    pub(crate) error: Option<String>,
    /// Whether the billing system took it (2xx).
    pub(crate) ok: bool,
}

/// Records one delivery attempt.
pub(crate) async fn delivered(db: &Store, d: &Delivery) -> Result<(), StoreError> {
    retry(|| async {
        sqlx::query(
            "INSERT INTO billing_deliveries (period, at, attempt, status, error, ok)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&d.period)
        .bind(ts(d.at))
        .bind(i64::from(d.attempt))
        .bind(d.status.map(i64::from))
        .bind(d.error.as_deref())
        .bind(i64::from(d.ok))
        .execute(db.pool())
        .await
        .map(drop)
    })
    .await
}

type DeliveryRow = (String, i64, i64, Option<i64>, Option<String>, i64);

/// The delivery attempts of `period`, oldest first.
pub(crate) async fn deliveries(db: &Store, period: &str) -> Result<Vec<Delivery>, StoreError> {
    let rows: Vec<DeliveryRow> = retry(|| async {
        sqlx::query_as(
            "SELECT period, at, attempt, status, error, ok FROM billing_deliveries
             WHERE period = $1 ORDER BY id",
        )
        .bind(period)
        .fetch_all(db.pool())
        .await
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(period, at, attempt, status, error, ok)| Delivery {
            period,
            at: unts(at),
            attempt: u32::try_from(attempt).unwrap_or(0),
            status: status.and_then(|s| u16::try_from(s).ok()),
            error,
            ok: ok != 0,
        })
        .collect())
}

/// The benchmark's bulk load: `records` synthetic records over `accounts` accounts, spread
/// over `span` seconds from `start`, in one statement (a recursive CTE; one transaction).
pub(crate) async fn bulk_load(
    db: &Store,
    records: u64,
    accounts: u64,
    (start, span): (u64, u64),
) -> Result<(), StoreError> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO usage_records (at, day, account_id, kind, quantity, device_id)
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1)
         SELECT $2 + (i * 7919) % $3, ($2 + (i * 7919) % $3) / 86400, 1 + i % $4,
                CASE i % 7 WHEN 0 THEN 'live_s_direct' WHEN 1 THEN 'live_s_punched'
                WHEN 2 THEN 'live_s_relay' WHEN 3 THEN 'relay_bytes' WHEN 4 THEN 'cloud_kb_h'
                WHEN 5 THEN 'sms' ELSE 'snapshots' END,
                1 + i % 1000, NULL
         FROM n",
    )
    .bind(ts(records))
    .bind(ts(start))
    .bind(ts(span.max(1)))
    .bind(ts(accounts.max(1)))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The owners with a cloud storage pool (a camera on a CS), for the GB-days sampler.
pub(crate) async fn cloud_owners(db: &Store) -> Result<Vec<i64>, StoreError> {
    retry(|| async {
        sqlx::query_scalar("SELECT DISTINCT owner_id FROM cloud_cameras ORDER BY owner_id")
            .fetch_all(db.pool())
            .await
    })
    .await
}

/// Every owner that ever subscribed to a plan, with the plan held now.
pub(crate) async fn subscribers(db: &Store) -> Result<Vec<(i64, String)>, StoreError> {
    retry(|| async {
        sqlx::query_as("SELECT user_id, plan FROM cloud_subscriptions ORDER BY user_id")
            .fetch_all(db.pool())
            .await
    })
    .await
}

/// The login of every customer account (owners and sub-accounts).
pub(crate) async fn logins(
    db: &Store,
) -> Result<std::collections::HashMap<i64, String>, StoreError> {
    let rows: Vec<(i64, String)> = retry(|| async {
        sqlx::query_as("SELECT id, login FROM users WHERE role <> 'operator'")
            .fetch_all(db.pool())
            .await
    })
    .await?;
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use crate::store::on_both_backends;

    use super::*;

    on_both_backends! {
    #[tokio::test]
    async fn h626_7_accounting_records_roll_up_per_day(db) {
        let day0 = 20_000 * DAY_S;
        for (at, account, kind, q) in [
            (day0 + 5, 1, "relay_bytes", 100u64),
            (day0 + 6, 1, "relay_bytes", 50),
            (day0 + DAY_S + 1, 1, "relay_bytes", 7),
            (day0 + 9, 2, "sms", 1),
            (day0 + 2 * DAY_S, 2, "sms", 1),
        ] {
            record(&db, &Record { at, account, kind, quantity: q, device: None })
                .await
                .unwrap();
        }
        let t = totals(&db, (20_000, 20_002), None).await.unwrap();
        assert_eq!(t, totals_from_records(&db, (20_000, 20_002)).await.unwrap());
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].account, t[0].quantity, t[0].records), (1, 157, 3));
        assert_eq!((t[1].account, t[1].quantity), (2, 1));
        assert_eq!(totals(&db, (20_000, 20_003), Some(2)).await.unwrap()[0].quantity, 2);
        assert_eq!(days(&db, (20_000, 20_001)).await.unwrap().len(), 2);
        let s = series(&db, "relay_bytes", (day0, day0 + 2 * DAY_S, DAY_S)).await.unwrap();
        assert_eq!(s, vec![(day0, 150), (day0 + DAY_S, 7)]);
        assert_eq!(rebuild_days(&db, (20_000, 20_003)).await.unwrap(), 4);
        assert_eq!(totals(&db, (20_000, 20_002), None).await.unwrap(), t);
        sample(&db, 10, "devices_online", 3).await.unwrap();
        sample(&db, 10, "devices_online", 4).await.unwrap();
        sample(&db, 20, "storage_bytes:free", 9).await.unwrap();
        assert_eq!(samples(&db, "devices_online", (0, 100)).await.unwrap(), vec![("devices_online".into(), 10, 4)]);
        assert_eq!(samples(&db, "storage_bytes:", (0, 100)).await.unwrap().len(), 1);
        assert!(close_period(&db, "2024-05", None, 1).await.unwrap());
        assert!(!close_period(&db, "2024-05", None, 2).await.unwrap());
        assert_eq!(period_closed(&db, "2024-05").await.unwrap(), Some(1));
    }
    }
}
