//! The CMU's store: every read and write of the database, one submodule per aggregate.
//!
//! Callers see domain structs and [`StoreError`], never a row, a pool or an SQLite code, so
//! a second backend (PostgreSQL through sqlx) can implement the same functions. Today the
//! one backend is SQLite through sqlx (WAL, foreign keys), migrated by [`schema`].
//!
//! Concurrency (issue 14): every transaction that writes starts with `BEGIN IMMEDIATE`, so it
//! holds the write lock before it reads and waits for it under the busy timeout instead of
//! failing with `SQLITE_BUSY_SNAPSHOT` when it upgrades; a transient busy or locked answer
//! is retried a bounded number of times ([`retry`]) and only then reported as
//! [`StoreError::Busy`], which the API answers with 503 and `Retry-After`, never 500.

pub(crate) mod accounts;
pub(crate) mod alarms;
pub(crate) mod audit;
pub(crate) mod cloud;
pub(crate) mod devices;
pub(crate) mod media;
pub(crate) mod packages;
pub(crate) mod params;
pub(crate) mod push;
pub(crate) mod recordings;
mod schema;
pub(crate) mod sessions;
pub(crate) mod shares;
pub(crate) mod snapshots;
pub(crate) mod tokens;

use std::future::Future;
use std::time::Duration;

use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, SqlitePool, Transaction};

/// Attempts of an operation that met a busy or locked database before giving up.
const ATTEMPTS: u32 = 6;
/// How long one connection waits for a lock before SQLite answers busy.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the store could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StoreError {
    /// The database stayed busy or locked through every retry; transient, try again later.
    #[error("the database is busy")]
    Busy,
    /// A stored value does not decode into its domain type.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database refused or failed otherwise (IO, constraint, schema).
    #[error("database: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database is newer than this CMU or its URL is wrong.
    #[error("{0}")]
    Setup(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            return Self::Busy;
        }
        match e {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(e.to_string())
            }
            other => Self::Backend(Box::new(other)),
        }
    }
}

/// Busy (5) or locked (6), with any extended code (517 `BUSY_SNAPSHOT`, 261, 773, 262...),
/// or no connection free in time: all pass if tried again.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        sqlx::Error::PoolTimedOut => true,
        _ => false,
    }
}

/// Runs `op` again while it meets a transient busy, at most [`ATTEMPTS`] times, with a short
/// growing pause; `op` must be safe to repeat (a whole transaction, or one statement).
pub(super) async fn retry<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut pause = Duration::from_millis(5);
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if is_transient(&e) && attempt < ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "database busy; trying again");
                let jitter = u64::from(crate::random_bytes::<1>()[0] % 16);
                tokio::time::sleep(pause + Duration::from_millis(jitter)).await;
                pause = pause.saturating_mul(2);
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A write transaction that holds the write lock from its first statement.
pub(super) async fn begin_write(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// A value for a numbered parameter of [`select`].
#[derive(Clone, Copy, Debug)]
pub(super) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    /// Text or NULL.
    MaybeText(Option<&'a str>),
}

/// Runs one `SELECT` with `args` bound in order and decodes every row with `decode`.
pub(super) async fn select<T>(
    db: &Store,
    sql: &str,
    args: &[Arg<'_>],
    decode: fn(&SqliteRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, StoreError> {
    retry(|| async {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = match *a {
                Arg::Text(s) => q.bind(s),
                Arg::Int(i) => q.bind(i),
                Arg::MaybeText(s) => q.bind(s),
            };
        }
        q.fetch_all(db.pool()).await?.iter().map(decode).collect()
    })
    .await
}

/// Spends a one-time `key` in `table` (a table of `key_column`, `expires_at`) valid until
/// `expires_at`: false if it was spent before. Forgets keys expired by `now`.
pub(super) async fn spend_once(
    db: &Store,
    (table, key_column): (&'static str, &'static str),
    key: &str,
    expires_at: u64,
    now: u64,
) -> Result<bool, StoreError> {
    let insert = format!(
        "INSERT INTO {table} ({key_column}, expires_at) VALUES (?1, ?2) ON CONFLICT ({key_column}) DO NOTHING"
    );
    let fresh = retry(|| async {
        sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
            .bind(key)
            .bind(ts(expires_at))
            .execute(db.pool())
            .await
            .map(|r| r.rows_affected() == 1)
    })
    .await?;
    // Housekeeping; a failure here loses nothing.
    let forget = format!("DELETE FROM {table} WHERE expires_at < ?1");
    let _ = retry(|| async {
        sqlx::query(sqlx::AssertSqlSafe(forget.as_str()))
            .bind(ts(now))
            .execute(db.pool())
            .await
    })
    .await;
    Ok(fresh)
}

/// Seconds as stored (SQLite integers are signed).
pub(super) fn ts(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Seconds as read back; a negative value (never written) reads as 0.
pub(super) fn unts(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The CMU's database.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url` (`sqlite://PATH` or
    /// `sqlite::memory:`).
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = schema::open(url).await?;
        Ok(Self { pool })
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Stores for tests: in memory, or in a file for concurrency.

    use super::Store;

    /// A fresh in-memory store.
    pub(crate) async fn memory() -> Store {
        Store::open("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("in-memory store: {e}"))
    }

    /// A fresh store in a file under a new temporary directory (kept alive by the guard).
    pub(crate) async fn file() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("cmu.db").display());
        let store = Store::open(&url)
            .await
            .unwrap_or_else(|e| panic!("file store: {e}"));
        (store, dir)
    }
}

#[cfg(test)]
mod tests {
    use peercam_signal::cm::Role;

    use super::*;

    /// Issue 14: many writers at once on one file (8 pooled connections, WAL) must all
    /// succeed: write transactions take the lock up front and transient busy is retried.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_all_succeed() {
        let (db, _dir) = testing::file().await;
        let d = devices::tests::new_device(40);
        devices::provision(&db, std::slice::from_ref(&d), 1)
            .await
            .unwrap();
        let owner = accounts::create(&db, Role::Owner, "+15550100040", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        devices::bind(&db, &d.id, owner, None).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let (db, id) = (db.clone(), d.id.clone());
            tasks.push(tokio::spawn(async move {
                let name = format!("sub{i}");
                let sub = accounts::create(&db, Role::Sub, &name, "h", Some(owner), i)
                    .await?
                    .unwrap_or_default();
                // Read-then-write transactions, the kind that met SQLITE_BUSY_SNAPSHOT.
                shares::put(&db, &id, sub, peercam_base::ScopeSet::all(), i).await?;
                devices::provision(
                    &db,
                    &[devices::tests::new_device(
                        100 + u8::try_from(i).unwrap_or(0),
                    )],
                    i,
                )
                .await?;
                sessions::create(&db, &format!("t{i}"), sub, i, i + 100).await?;
                let r = audit::Record {
                    at: i,
                    actor: Some(sub),
                    action: "t.w",
                    device: None,
                    outcome: "ok",
                    detail: String::new(),
                };
                audit::append(&db, &r).await?;
                tokens::spend(&db, &format!("j{i}"), i + 10, i).await?;
                shares::remove(&db, &id, sub).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().map_err(|e| e.to_string()), Ok(true));
        }
        let dev = devices::get(&db, &d.id).await.unwrap().unwrap();
        assert_eq!(
            dev.acl_version,
            2 + 2 * 64,
            "every share and unshare moved the ACL once"
        );
        assert_eq!(audit::recent(&db, 1000).await.unwrap().len(), 64);
    }
}
