//! The CMU's store: every read and write of the database, one submodule per aggregate.
//!
//! Callers see domain structs and [`StoreError`], never a row, a pool or a database code.
//! Two backends sit behind one set of functions, chosen by the URL (`database_url`):
//! SQLite (`sqlite://PATH`, WAL, foreign keys) and PostgreSQL (`postgres://...`). Both go
//! through sqlx's `Any` driver, so every query is written once: placeholders are `$N`
//! (SQLite binds them by number too), ids come back with `RETURNING`, flags and times are
//! integers, and only the schema ([`schema`], one migration list per dialect) differs.
//! docs/design/scale-out.md explains the choice.
//!
//! Concurrency (issue 14): every transaction that writes starts with [`begin_write`]. On
//! SQLite that is `BEGIN IMMEDIATE`: it holds the write lock before it reads and waits for
//! it under the busy timeout instead of failing with `SQLITE_BUSY_SNAPSHOT` when it
//! upgrades. On PostgreSQL it is `SERIALIZABLE`: the same read-then-write transactions stay
//! correct, and a conflict aborts one of them with a serialization failure (40001) or a
//! deadlock (40P01). Either transient answer is retried a bounded number of times
//! ([`retry`]) and only then reported as [`StoreError::Busy`], which the API answers with
//! 503 and `Retry-After`, never 500.

pub(crate) mod accounts;
pub(crate) mod alarms;
pub(crate) mod audit;
pub(crate) mod campaigns;
pub(crate) mod clips;
pub(crate) mod cloud;
pub(crate) mod crm;
pub(crate) mod devices;
pub(crate) mod equipment;
pub(crate) mod faults;
pub(crate) mod logs;
pub(crate) mod media;
pub(crate) mod packages;
pub(crate) mod params;
pub(crate) mod plans;
pub(crate) mod play_keys;
pub(crate) mod presence;
pub(crate) mod push;
pub(crate) mod rate_limits;
pub(crate) mod recordings;
mod schema;
pub(crate) mod sessions;
pub(crate) mod shares;
pub(crate) mod snapshots;
pub(crate) mod tokens;
pub(crate) mod usage;

use std::future::Future;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

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
    /// The connection to the database server failed or the server is shutting down or
    /// starting (PostgreSQL restarted); try again later. Not retried here: a statement cut
    /// off mid-way may have been applied.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
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
        if is_unavailable(&e) {
            return Self::Unavailable(e.to_string());
        }
        match e {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(e.to_string())
            }
            other => Self::Backend(Box::new(other)),
        }
    }
}

/// SQLite busy (5) or locked (6), with any extended code (517 `BUSY_SNAPSHOT`, 261, 773,
/// 262...); PostgreSQL serialization failure (40001) or deadlock (40P01); or no connection
/// free in time: all pass if tried again.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
            d.code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, 5 | 6))
        }
        sqlx::Error::Database(_) => is_conflict(e),
        sqlx::Error::PoolTimedOut => true,
        _ => false,
    }
}

/// The server went away or is not taking work: a lost connection, PostgreSQL's connection
/// exceptions (class 08), shutdown or start-up (57P01-57P03) or too many connections (53300).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(d)
            if d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some() =>
        {
            d.code().is_some_and(|c| {
                c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")
            })
        }
        _ => false,
    }
}

/// Runs `op` again while it meets a transient busy, with a short growing pause; `op` must be
/// safe to repeat (a whole transaction, or one statement). SQLite's busy has waited out the
/// busy timeout already, so it is tried [`ATTEMPTS`] times; PostgreSQL's conflicts come back
/// at once, so they are tried for up to [`BUSY_TIMEOUT`] (the wait SQLite would allow), with
/// pauses spread at random so that the losers of one conflict do not meet again.
pub(super) async fn retry<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e)
                if is_transient(&e)
                    && (attempt < ATTEMPTS
                        || (is_conflict(&e) && started.elapsed() < BUSY_TIMEOUT)) =>
            {
                tracing::debug!(attempt, error = %e, "database busy; trying again");
                let spread = u64::from(crate::random_bytes::<1>()[0]);
                let millis = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
                // Between half and one and a half of the pause.
                let wait = millis / 2 + millis.saturating_mul(spread) / 255;
                tokio::time::sleep(Duration::from_millis(wait)).await;
                pause = pause.saturating_mul(2).min(MAX_PAUSE);
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// A PostgreSQL serialization failure or deadlock: another transaction won.
fn is_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d)
        if d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some()
            && d.code().is_some_and(|c| matches!(&*c, "40001" | "40P01")))
}

/// A write transaction whose reads stay true until it commits: on SQLite it holds the write
/// lock from its first statement; on PostgreSQL it is serializable (a conflict aborts it
/// with 40001, which [`retry`] runs again).
pub(super) async fn begin_write(db: &Store) -> Result<Transaction<'static, Any>, sqlx::Error> {
    match db.backend {
        Backend::Sqlite => db.pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => {
            db.pool
                .begin_with("BEGIN ISOLATION LEVEL SERIALIZABLE")
                .await
        }
    }
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
    decode: fn(&AnyRow) -> Result<T, sqlx::Error>,
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
        "INSERT INTO {table} ({key_column}, expires_at) VALUES ($1, $2) ON CONFLICT ({key_column}) DO NOTHING"
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
    let forget = format!("DELETE FROM {table} WHERE expires_at < $1");
    let _ = retry(|| async {
        sqlx::query(sqlx::AssertSqlSafe(forget.as_str()))
            .bind(ts(now))
            .execute(db.pool())
            .await
    })
    .await;
    Ok(fresh)
}

/// Seconds as stored (SQLite and PostgreSQL integers are signed).
pub(super) fn ts(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Seconds as read back; a negative value (never written) reads as 0.
pub(super) fn unts(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// `sqlite://PATH` (created if missing) or `sqlite::memory:`.
    Sqlite,
    /// `postgres://` or `postgresql://` (the database must exist).
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub(crate) fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::Setup(format!(
                "database_url must start with sqlite: or postgres://, not {:?}",
                url.split(':').next().unwrap_or_default()
            )))
        }
    }
}

/// The CMU's database.
#[derive(Clone)]
pub(crate) struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Audit rows written through this handle (the metrics, 6.1.14).
    pub(crate) audit_rows: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Its URL (it may hold a password: never logged).
    url: std::sync::Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens and migrates the database at `url`: `sqlite://PATH` (created if missing),
    /// `sqlite::memory:`, or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
    #[cfg(test)]
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, schema::POOL_SIZE).await
    }

    /// Opens and migrates the database at `url` (as `database_url` says) with at most
    /// `connections` pooled connections (one for `sqlite::memory:`).
    pub(crate) async fn open_with(url: &str, connections: u32) -> Result<Self, StoreError> {
        let backend = Backend::of_url(url)?;
        let pool = schema::open(url, backend, connections.max(1)).await?;
        Ok(Self {
            pool,
            backend,
            audit_rows: std::sync::Arc::default(),
            url: url.into(),
        })
    }

    /// The URL it was opened with (for the bus's own connection; never log it).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend behind this store.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }
}

/// The throwaway PostgreSQL cluster of the flow tests, shared by source.
#[cfg(test)]
#[allow(unreachable_pub, dead_code)]
#[path = "../../../../support/test/src/postgres.rs"]
mod test_pg;

#[cfg(test)]
pub(crate) mod testing {
    //! Stores for tests: SQLite in memory or in a file, or a fresh PostgreSQL database on a
    //! throwaway cluster (support/test/src/postgres.rs, shared with the flow tests).

    use super::Store;
    use super::test_pg as pg;

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

    /// What keeps a test store's database alive.
    #[derive(Debug)]
    #[allow(dead_code)]
    pub(crate) enum Keep {
        Dir(tempfile::TempDir),
        Postgres(pg::PgDatabase),
    }

    /// A fresh SQLite store in a file.
    pub(crate) async fn sqlite() -> (Store, Keep) {
        let (store, dir) = file().await;
        (store, Keep::Dir(dir))
    }

    /// A fresh PostgreSQL store, or `None` where PostgreSQL is not installed (after
    /// `peercam_net::skip::skip`, which fails the test under CI).
    pub(crate) async fn postgres(test: &str) -> Option<(Store, Keep)> {
        let test = test.to_owned();
        let db = tokio::task::spawn_blocking(move || pg::database(&test))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL helper: {e}"))?;
        let store = Store::open(&db.url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL store: {e}"));
        assert_eq!(store.backend(), super::Backend::Postgres);
        Some((store, Keep::Postgres(db)))
    }
}

/// Runs one store test on each backend: `on_both_backends!(#[tokio::test] async fn name(db)
/// { ... })` makes the module `name` with the tests `sqlite` and `postgres`, each giving the
/// body a fresh [`Store`] as `db`.
#[cfg(test)]
macro_rules! on_both_backends {
    ($(#[$attr:meta])* async fn $name:ident($db:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($db: $crate::store::Store) $body

            $(#[$attr])*
            async fn sqlite() {
                let (db, _keep) = $crate::store::testing::sqlite().await;
                run(db).await;
            }

            $(#[$attr])*
            async fn postgres() {
                let Some((db, _keep)) =
                    $crate::store::testing::postgres(concat!(module_path!(), "::postgres")).await
                else {
                    return;
                };
                run(db).await;
            }
        }
    };
}
#[cfg(test)]
pub(crate) use on_both_backends;

#[cfg(test)]
mod tests {
    use peercam_signal::cm::Role;

    use super::*;

    on_both_backends! {
    /// Issue 14: many writers at once on one file (8 pooled connections, WAL) must all
    /// succeed: write transactions take the lock up front and transient busy is retried.
    /// On PostgreSQL the same transactions are serializable and conflicts are retried.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_all_succeed(db) {
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

    /// The two dialects' migrations reach the same tables and columns, so the shared queries
    /// mean the same on both (SQLite's own `sqlite_sequence`, kept for an `AUTOINCREMENT`
    /// key, and the FTS5 search index `devices_fts` with its shadow tables, aside).
    #[tokio::test]
    async fn both_schemas_have_the_same_tables_and_columns() {
        let Some((pg, _keep)) =
            testing::postgres("store::tests::both_schemas_have_the_same_tables_and_columns").await
        else {
            return;
        };
        let (lite, _dir) = testing::sqlite().await;
        let mut want: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name <> 'sqlite_sequence'
               AND substr(m.name, 1, 11) <> 'devices_fts'",
        )
        .fetch_all(lite.pool())
        .await
        .unwrap();
        let mut got: Vec<(String, String)> = sqlx::query_as(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'peercam_schema'",
        )
        .fetch_all(pg.pool())
        .await
        .unwrap();
        want.sort();
        got.sort();
        assert!(want.len() > 100, "{want:?}");
        assert_eq!(got, want);
    }

    /// Several CMUs starting at once on one PostgreSQL database migrate it once; a second
    /// start finds it current.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_migrates_once_when_cmus_start_together() {
        let Some(db) = tokio::task::spawn_blocking(|| {
            test_pg::database("store::tests::postgres_migrates_once_when_cmus_start_together")
        })
        .await
        .unwrap() else {
            return;
        };
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move { Store::open(&url).await.map(drop) })
            })
            .collect();
        for o in opens {
            o.await.unwrap().unwrap();
        }
        let store = Store::open(&db.url).await.unwrap();
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM peercam_schema")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(versions, [i64::try_from(schema::POSTGRES.len()).unwrap()]);
    }

    /// A wrong or unreachable `database_url` stops the CMU at start with a clear message.
    #[tokio::test]
    async fn a_wrong_database_url_is_a_clear_setup_error() {
        let e = Store::open("mysql://localhost/cmu").await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Setup(m) if m.contains("sqlite: or postgres://")),
            "{e}"
        );
        let e = Store::open("postgres://peercam:secret@127.0.0.1:1/cmu")
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, StoreError::Setup(_)) && msg.contains("PostgreSQL at"),
            "{msg}"
        );
        assert!(msg.contains("refused"), "{msg}");
        assert!(!msg.contains("secret"), "the password is not shown: {msg}");
    }

    /// PostgreSQL restarted under the CMU: a request in flight fails as `Unavailable` (503),
    /// never as a backend error, and the pool reconnects so the next one succeeds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_restart_is_unavailable_then_recovers() {
        let Some(db) = tokio::task::spawn_blocking(|| {
            test_pg::database("store::tests::postgres_restart_is_unavailable_then_recovers")
        })
        .await
        .unwrap() else {
            return;
        };
        let store = Store::open(&db.url).await.unwrap();
        let id = accounts::create(&store, Role::Owner, "+15550109001", "h", None, 1)
            .await
            .unwrap()
            .unwrap();
        // A statement in flight when the server goes down...
        let in_flight = {
            let store = store.clone();
            tokio::spawn(async move {
                sqlx::query("SELECT pg_sleep(30)")
                    .execute(store.pool())
                    .await
                    .map(drop)
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let restart = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || db.restart_server())
        };
        // ...fails as unavailable (503), not as a database error (500).
        let e = in_flight.await.unwrap().unwrap_err();
        let e = StoreError::from(e);
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        // Requests while it goes down and comes back: each succeeds or says unavailable.
        let mut unavailable = 0;
        while !restart.is_finished() {
            match accounts::get(&store, id).await {
                Ok(a) => assert_eq!(a.map(|a| a.id), Some(id)),
                Err(StoreError::Unavailable(_) | StoreError::Busy) => unavailable += 1,
                Err(e) => panic!("a restart must read as unavailable, not {e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        restart.await.unwrap();
        let mut back = false;
        for _ in 0..50 {
            match accounts::get(&store, id).await {
                Ok(a) => {
                    assert_eq!(a.map(|a| a.id), Some(id));
                    back = true;
                    break;
                }
                Err(StoreError::Unavailable(_) | StoreError::Busy) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("after the restart: {e:?}"),
            }
        }
        assert!(
            back,
            "the pool reconnects ({unavailable} requests failed during the restart)"
        );
    }

    /// The SQLite file is the path written in the URL, spaces and capitals included (the
    /// `Any` driver passes the URL through a URL parser).
    #[tokio::test]
    async fn sqlite_file_is_where_the_url_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("My Cams").join("CMU.db");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        accounts::create(&store, Role::Owner, "+15550109002", "h", None, 1)
            .await
            .unwrap();
        assert!(path.exists(), "{}", path.display());
    }
}
