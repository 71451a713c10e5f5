//! What the monthly-report benchmark (`cargo bench -p peercam-cmu --bench monthly_report`)
//! needs of the store: a bulk load of usage records and the report itself. Not an API.

use std::time::{Duration, Instant};

use peercam_signal::cm_billing::Period;

use crate::store::Store;
use crate::store::usage::{self, DAY_S};

/// A store failure, as text (the store's error type is not public).
pub type BenchError = String;

/// A database for the benchmark at `url` (migrated).
pub async fn open(url: &str) -> Result<BenchDb, BenchError> {
    Ok(BenchDb(
        Store::open_with(url, 4).await.map_err(|e| e.to_string())?,
    ))
}

/// The store behind the benchmark.
pub struct BenchDb(Store);

impl BenchDb {
    /// Inserts `records` usage records spread over `period` and `accounts` accounts in one
    /// statement (a recursive CTE, SQLite), then builds the period's daily rollups; the two
    /// times.
    pub async fn seed(
        &self,
        records: u64,
        accounts: u64,
        period: Period,
    ) -> Result<(Duration, Duration), BenchError> {
        let (from, to) = period.days();
        let span = (to - from) * DAY_S;
        let t = Instant::now();
        usage::bulk_load(&self.0, records, accounts, (from * DAY_S, span))
            .await
            .map_err(|e| e.to_string())?;
        let loaded = t.elapsed();
        let t = Instant::now();
        usage::rebuild_days(&self.0, (from, to))
            .await
            .map_err(|e| e.to_string())?;
        Ok((loaded, t.elapsed()))
    }

    /// The monthly report (CSV) from the rollups, and how long it took.
    pub async fn monthly(&self, period: Period) -> Result<(String, Duration), BenchError> {
        let t = Instant::now();
        let csv = super::routes::monthly_report(&self.0, period)
            .await
            .map_err(|e| e.to_string())?;
        Ok((csv, t.elapsed()))
    }

    /// The same totals summed from the records themselves (what the rollups save), with
    /// their count and time.
    pub async fn from_records(&self, period: Period) -> Result<(usize, Duration), BenchError> {
        let t = Instant::now();
        let n = usage::totals_from_records(&self.0, period.days())
            .await
            .map_err(|e| e.to_string())?
            .len();
        Ok((n, t.elapsed()))
    }
}
