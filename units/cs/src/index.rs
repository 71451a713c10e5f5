//! The CS's index (`index.db`, SQLite through sqlx): which objects exist, the write-ahead
//! intents, pending deletions, accounts with their quota and usage, and cameras.
//!
//! The index is opened with `synchronous=FULL` (WAL): a committed row survives power
//! loss, which is half of "acknowledged means durable" (design invariant 1). Every
//! transaction that writes starts with `BEGIN IMMEDIATE` and a transient busy answer is
//! retried a bounded number of times, as in the CMU's store.
//!
//! | table | holds |
//! |---|---|
//! | `accounts` | per account pool: `quota`, `used` (stored bytes of its objects), `reserved` (open intents); the plan's `max_age_days`, `plan`, `plan_epoch` and `prune_after_s` (end of a downgrade's grace) |
//! | `cameras` | per prefix: its `account`, `epoch` (grants below it are dead) and `write_kid` (the data key new objects are sealed with) |
//! | `objects` | one row per stored object; unique on `key`, on (`prefix`, `seq`) and on (`prefix`, `start_ms`) |
//! | `intents` | one row per write in progress (invariant 2); it is also the quota reservation |
//! | `deletions` | objects whose row is gone but whose bytes may still be in the backend (invariant 5) |
//! | `clips` | shared clips (`crate::clips`): key, prefix, account, stored and plain bytes, `kid`; `stored` once the backend holds it |

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use peercam_cloud::quota::{Full, Pool, PrunePlan, PruneScope, Retention, Stored};
use peercam_cloud::{Prefix, SegmentKey};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row as _, Sqlite, SqlitePool, Transaction};

/// Attempts of an operation that met a busy or locked database before giving up.
const ATTEMPTS: u32 = 6;
/// How long one connection waits for a lock before SQLite answers busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &[&str] = &[
    r"
CREATE TABLE accounts (
    account  TEXT PRIMARY KEY,
    quota    INTEGER NOT NULL,
    used     INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE cameras (
    prefix    TEXT PRIMARY KEY,
    account   TEXT NOT NULL REFERENCES accounts(account),
    epoch     INTEGER NOT NULL,
    write_kid TEXT NOT NULL
);
CREATE INDEX cameras_account ON cameras(account);
CREATE TABLE objects (
    key           TEXT PRIMARY KEY,
    prefix        TEXT NOT NULL REFERENCES cameras(prefix),
    seq           INTEGER NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    body_sha256   TEXT NOT NULL,
    stored_sha256 TEXT NOT NULL,
    backfilled    INTEGER NOT NULL DEFAULT 0,
    kid           TEXT NOT NULL,
    UNIQUE (prefix, seq),
    UNIQUE (prefix, start_ms)
);
CREATE TABLE intents (
    key           TEXT PRIMARY KEY,
    prefix        TEXT NOT NULL REFERENCES cameras(prefix),
    account       TEXT NOT NULL REFERENCES accounts(account),
    seq           INTEGER NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    body_sha256   TEXT NOT NULL,
    stored_sha256 TEXT NOT NULL,
    backfilled    INTEGER NOT NULL DEFAULT 0,
    kid           TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    UNIQUE (prefix, seq),
    UNIQUE (prefix, start_ms)
);
CREATE TABLE deletions (
    key   TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL
);
",
    // H.626.4 6.1.13: the account's plan (Su `cs_account`): age limit, plan id, epoch and the
    // end of a downgrade's grace.
    r"
ALTER TABLE accounts ADD COLUMN max_age_days INTEGER;
ALTER TABLE accounts ADD COLUMN plan TEXT;
ALTER TABLE accounts ADD COLUMN plan_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN prune_after_s INTEGER;
",
    // Issue 17 item 9: shared clips (`<prefix>/clips/<share>.mp4`), counted in the pool.
    r"
CREATE TABLE clips (
    key        TEXT PRIMARY KEY,
    prefix     TEXT NOT NULL REFERENCES cameras(prefix),
    account    TEXT NOT NULL REFERENCES accounts(account),
    bytes      INTEGER NOT NULL,
    plain      INTEGER NOT NULL,
    kid        TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    stored     INTEGER NOT NULL DEFAULT 0
);
",
];

/// What the index could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The database stayed busy or locked through every retry; transient.
    #[error("the index is busy")]
    Busy,
    /// A stored value does not decode (a prefix that does not parse, a negative count).
    #[error("index data is invalid: {0}")]
    Corrupt(String),
    /// A camera of an account the index does not hold.
    #[error("no account {0:?}")]
    NoAccount(String),
    /// The database refused or failed otherwise (IO, constraint, schema).
    #[error("index: {0}")]
    Db(#[source] sqlx::Error),
    /// The index file is newer than this CS.
    #[error("index schema version {0} is newer than this CS understands")]
    TooNew(i64),
}

impl From<sqlx::Error> for IndexError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            Self::Busy
        } else {
            Self::Db(e)
        }
    }
}

/// Busy (5) or locked (6) with any extended code, or no connection free in time.
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

/// Runs `op` again while it meets a transient busy, at most [`ATTEMPTS`] times.
pub(crate) async fn retry<T, F, Fut>(mut op: F) -> Result<T, IndexError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, IndexError>>,
{
    let mut pause = Duration::from_millis(5);
    let mut attempt = 1;
    loop {
        match op().await {
            Err(IndexError::Busy) if attempt < ATTEMPTS => {
                let jitter = u64::from(crate::random_bytes::<1>()[0] % 16);
                tokio::time::sleep(pause + Duration::from_millis(jitter)).await;
                pause = pause.saturating_mul(2);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The objects of `rows` (`key`, `start_ms`, `end_ms`, `bytes`) as the quota rules take them.
fn stored_of(rows: &[SqliteRow]) -> Result<Vec<Stored>, IndexError> {
    rows.iter()
        .map(|r| {
            let key: String = r.try_get("key")?;
            Ok(Stored {
                key: key
                    .parse()
                    .map_err(|_| IndexError::Corrupt(format!("key {key:?}")))?,
                start_ms: uint(r, "start_ms")?,
                end_ms: uint(r, "end_ms")?,
                bytes: uint(r, "bytes")?,
            })
        })
        .collect()
}

/// Deletes the rows of `keys` (row first: the files go after the commit), records each
/// deletion and gives `freed` bytes back to `account`'s pool.
async fn forget(
    tx: &mut Transaction<'static, Sqlite>,
    account: &str,
    keys: &[SegmentKey],
    freed: u64,
    now_ms: u64,
) -> Result<(), sqlx::Error> {
    for k in keys {
        let key = k.to_string();
        sqlx::query("DELETE FROM objects WHERE key = ?1")
            .bind(&key)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO deletions (key, at_ms) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&key)
        .bind(int(now_ms))
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE accounts SET used = max(used - ?1, 0) WHERE account = ?2")
        .bind(int(freed))
        .bind(account)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn begin_write(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn uint(row: &SqliteRow, col: &str) -> Result<u64, IndexError> {
    let v: i64 = row.try_get(col)?;
    u64::try_from(v).map_err(|_| IndexError::Corrupt(format!("negative {col}")))
}

fn prefix(row: &SqliteRow) -> Result<Prefix, IndexError> {
    let s: String = row.try_get("prefix")?;
    s.parse()
        .map_err(|_| IndexError::Corrupt(format!("prefix {s:?}")))
}

/// An account's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id (the CMU's).
    pub account: String,
    /// Bytes it may store.
    pub quota: u64,
    /// Bytes its objects take in the store.
    pub used: u64,
    /// Bytes of its open intents.
    pub reserved: u64,
}

impl Account {
    /// The pool for [`peercam_cloud::quota`].
    pub fn pool(&self) -> Pool {
        Pool {
            quota: self.quota,
            used: self.used,
            reserved: self.reserved,
        }
    }
}

/// An account's plan rules (the Su `cs_account` message, H.626.4 6.1.13).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountRules {
    /// Its id (the CMU's).
    pub account: String,
    /// Bytes it may store.
    pub quota: u64,
    /// Objects older than this many days are deleted.
    pub max_age_days: Option<u32>,
    /// The plan's id.
    pub plan: Option<String>,
    /// Orders the CMU's messages: a lower one is stale.
    pub plan_epoch: u64,
    /// Unix seconds from which bytes beyond the quota are pruned (absent: at once).
    pub prune_after_s: Option<u64>,
}

/// An account's pool with its rules and object count (Su `cs_usage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The pool.
    pub account: Account,
    /// Its rules.
    pub rules: AccountRules,
    /// Objects stored.
    pub objects: u64,
}

/// A camera's storage configuration (the Su `cs_camera` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Camera {
    /// Its prefix.
    pub prefix: Prefix,
    /// The account whose pool it uses.
    pub account: String,
    /// Grants of a lower epoch are refused.
    pub epoch: u64,
    /// The data key id new objects are sealed with.
    pub write_kid: String,
}

/// An object, stored (a row of `objects`) or being written (an intent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    /// The key, as the CS built it.
    pub key: String,
    /// The camera's prefix.
    pub prefix: Prefix,
    /// The camera's upload sequence number.
    pub seq: u64,
    /// First frame, Unix ms.
    pub start_ms: u64,
    /// End, Unix ms.
    pub end_ms: u64,
    /// Bytes in the store (the envelope).
    pub bytes: u64,
    /// SHA-256 (hex) of what the camera sent: judges retries.
    pub body_sha256: String,
    /// SHA-256 (hex) of the envelope: judges integrity and recovery.
    pub stored_sha256: String,
    /// Arrived more than 30 s after its end.
    pub backfilled: bool,
    /// The data key id it is sealed with.
    pub kid: String,
}

fn object_row(row: &SqliteRow) -> Result<ObjectRow, IndexError> {
    Ok(ObjectRow {
        key: row.try_get("key")?,
        prefix: prefix(row)?,
        seq: uint(row, "seq")?,
        start_ms: uint(row, "start_ms")?,
        end_ms: uint(row, "end_ms")?,
        bytes: uint(row, "bytes")?,
        body_sha256: row.try_get("body_sha256")?,
        stored_sha256: row.try_get("stored_sha256")?,
        backfilled: row.try_get::<i64, _>("backfilled")? != 0,
        kid: row.try_get("kid")?,
    })
}

fn account_row(row: &SqliteRow) -> Result<Account, IndexError> {
    Ok(Account {
        account: row.try_get("account")?,
        quota: uint(row, "quota")?,
        used: uint(row, "used")?,
        reserved: uint(row, "reserved")?,
    })
}

const OBJECT_COLS: &str =
    "key, prefix, seq, start_ms, end_ms, bytes, body_sha256, stored_sha256, backfilled, kid";

/// The outcome of [`Index::open_intent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The intent is committed and the bytes reserved: write the object.
    Intent,
    /// An object with that key, seq or start is already stored.
    Stored(ObjectRow),
    /// Another write of that key, seq or start is in progress.
    InFlight,
    /// The account's pool has no room.
    Full(Full),
}

/// The index.
#[derive(Debug, Clone)]
pub struct Index {
    pool: SqlitePool,
}

impl Index {
    /// Opens (creating and migrating) the index at `path`.
    pub async fn open(path: &Path) -> Result<Self, IndexError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        retry(|| async {
            let mut tx = begin_write(&pool).await?;
            let version: i64 = sqlx::query("PRAGMA user_version")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            let done = usize::try_from(version).unwrap_or(0);
            if done > SCHEMA.len() {
                return Err(IndexError::TooNew(version));
            }
            for sql in &SCHEMA[done..] {
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA user_version = {}",
                SCHEMA.len()
            )))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await?;
        Ok(Self { pool })
    }

    /// The database (for the clip rows of `crate::clips`).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool (waits for connections to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Creates an account or sets its quota (usage is kept).
    pub async fn set_account(&self, account: &str, quota: u64) -> Result<(), IndexError> {
        retry(|| async {
            sqlx::query(
                "INSERT INTO accounts (account, quota) VALUES (?1, ?2)
                 ON CONFLICT (account) DO UPDATE SET quota = excluded.quota",
            )
            .bind(account)
            .bind(int(quota))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Applies an account's plan rules (Su `cs_account`), creating the account if needed;
    /// usage is kept. A `plan_epoch` below the stored one is stale: nothing changes and
    /// `false` is returned.
    pub async fn apply_account(&self, r: &AccountRules) -> Result<bool, IndexError> {
        retry(|| async {
            let done = sqlx::query(
                "INSERT INTO accounts (account, quota, max_age_days, plan, plan_epoch, prune_after_s)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (account) DO UPDATE SET quota = excluded.quota,
                   max_age_days = excluded.max_age_days, plan = excluded.plan,
                   plan_epoch = excluded.plan_epoch, prune_after_s = excluded.prune_after_s
                 WHERE excluded.plan_epoch >= accounts.plan_epoch",
            )
            .bind(&r.account)
            .bind(int(r.quota))
            .bind(r.max_age_days.map(i64::from))
            .bind(r.plan.as_deref())
            .bind(int(r.plan_epoch))
            .bind(r.prune_after_s.map(int))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    /// Every account id.
    pub async fn accounts(&self) -> Result<Vec<String>, IndexError> {
        retry(|| async {
            let rows = sqlx::query("SELECT account FROM accounts ORDER BY account")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| r.try_get("account").map_err(IndexError::from))
                .collect()
        })
        .await
    }

    /// An account's pool, rules and object count.
    pub async fn usage(&self, account: &str) -> Result<Option<Usage>, IndexError> {
        retry(|| async {
            let Some(row) = sqlx::query(
                "SELECT a.account, a.quota, a.used, a.reserved, a.max_age_days, a.plan,
                        a.plan_epoch, a.prune_after_s,
                        (SELECT count(*) FROM objects o JOIN cameras c ON c.prefix = o.prefix
                          WHERE c.account = a.account) AS objects
                 FROM accounts a WHERE a.account = ?1",
            )
            .bind(account)
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let acc = account_row(&row)?;
            let opt = |col: &str| -> Result<Option<u64>, IndexError> {
                let v: Option<i64> = row.try_get(col)?;
                v.map(|v| u64::try_from(v).map_err(|_| IndexError::Corrupt(format!("{col} {v}"))))
                    .transpose()
            };
            let rules = AccountRules {
                account: acc.account.clone(),
                quota: acc.quota,
                max_age_days: opt("max_age_days")?.map(|d| u32::try_from(d).unwrap_or(u32::MAX)),
                plan: row.try_get("plan")?,
                plan_epoch: uint(&row, "plan_epoch")?,
                prune_after_s: opt("prune_after_s")?,
            };
            Ok(Some(Usage {
                objects: uint(&row, "objects")?,
                account: acc,
                rules,
            }))
        })
        .await
    }

    /// Plans and commits an account's retention (H.626.4 6.1.13: the plan's age limit and,
    /// once a downgrade's grace is over, its quota), row first like
    /// [`prune`](Self::prune): rows, usage and `deletions` rows in one transaction. The
    /// caller deletes the objects and [`finish_deletion`](Self::finish_deletion)s them.
    pub async fn retention(&self, account: &str, now_ms: u64) -> Result<Retention, IndexError> {
        retry(|| async {
            let mut tx = begin_write(&self.pool).await?;
            let Some(acc) = sqlx::query(
                "SELECT quota, used, max_age_days, prune_after_s FROM accounts WHERE account = ?1",
            )
            .bind(account)
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Ok(Retention::default());
            };
            let quota = uint(&acc, "quota")?;
            let used = uint(&acc, "used")?;
            let max_age: Option<i64> = acc.try_get("max_age_days")?;
            let prune_after: Option<i64> = acc.try_get("prune_after_s")?;
            let max_age = max_age.map(|d| u32::try_from(d.max(0)).unwrap_or(u32::MAX));
            let excess = prune_after.is_none_or(|t| now_ms / 1000 >= u64::try_from(t).unwrap_or(0));
            if max_age.is_none() && (used <= quota || !excess) {
                return Ok(Retention::default());
            }
            let rows = sqlx::query(
                "SELECT o.key, o.start_ms, o.end_ms, o.bytes FROM objects o
                 JOIN cameras c ON c.prefix = o.prefix WHERE c.account = ?1",
            )
            .bind(account)
            .fetch_all(&mut *tx)
            .await?;
            let stored = stored_of(&rows)?;
            let plan =
                peercam_cloud::quota::retention_plan(&stored, used, quota, max_age, excess, now_ms);
            if plan.delete.is_empty() {
                return Ok(plan);
            }
            forget(&mut tx, account, &plan.delete, plan.freed, now_ms).await?;
            tx.commit().await?;
            Ok(plan)
        })
        .await
    }

    /// Creates a camera or updates its configuration; its account must exist.
    pub async fn set_camera(&self, c: &Camera) -> Result<(), IndexError> {
        if self.account(&c.account).await?.is_none() {
            return Err(IndexError::NoAccount(c.account.clone()));
        }
        retry(|| async {
            sqlx::query(
                "INSERT INTO cameras (prefix, account, epoch, write_kid) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (prefix) DO UPDATE SET account = excluded.account,
                   epoch = max(epoch, excluded.epoch), write_kid = excluded.write_kid",
            )
            .bind(c.prefix.to_string())
            .bind(&c.account)
            .bind(int(c.epoch))
            .bind(&c.write_kid)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Every camera.
    pub async fn cameras(&self) -> Result<Vec<Camera>, IndexError> {
        retry(|| async {
            let rows = sqlx::query("SELECT prefix, account, epoch, write_kid FROM cameras")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(Camera {
                        prefix: prefix(r)?,
                        account: r.try_get("account")?,
                        epoch: uint(r, "epoch")?,
                        write_kid: r.try_get("write_kid")?,
                    })
                })
                .collect()
        })
        .await
    }

    /// An account's pool.
    pub async fn account(&self, account: &str) -> Result<Option<Account>, IndexError> {
        retry(|| async {
            sqlx::query("SELECT account, quota, used, reserved FROM accounts WHERE account = ?1")
                .bind(account)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(account_row)
                .transpose()
        })
        .await
    }

    /// The stored object with `key`.
    pub async fn object(&self, key: &str) -> Result<Option<ObjectRow>, IndexError> {
        retry(|| async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {OBJECT_COLS} FROM objects WHERE key = ?1"
            )))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(object_row)
            .transpose()
        })
        .await
    }

    /// Every stored object of `prefix`, by seq.
    pub async fn objects_of(&self, p: &Prefix) -> Result<Vec<ObjectRow>, IndexError> {
        retry(|| async {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {OBJECT_COLS} FROM objects WHERE prefix = ?1 ORDER BY seq"
            )))
            .bind(p.to_string())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(object_row).collect()
        })
        .await
    }

    /// Playback (8.7.1): the object of `prefix` playing at `at_ms`, or else the first one
    /// after it.
    pub async fn object_from(
        &self,
        p: &Prefix,
        at_ms: u64,
    ) -> Result<Option<ObjectRow>, IndexError> {
        self.one(
            "WHERE prefix = ?1 AND end_ms > ?2 ORDER BY start_ms LIMIT 1",
            p,
            at_ms,
        )
        .await
    }

    /// Playback: the last object of `prefix` starting at or before `at_ms`.
    pub async fn object_holding(
        &self,
        p: &Prefix,
        at_ms: u64,
    ) -> Result<Option<ObjectRow>, IndexError> {
        self.one(
            "WHERE prefix = ?1 AND start_ms <= ?2 ORDER BY start_ms DESC LIMIT 1",
            p,
            at_ms,
        )
        .await
    }

    /// Playback: the object of `prefix` after (`forward`) or before the one starting at
    /// `start_ms`.
    pub async fn object_next(
        &self,
        p: &Prefix,
        start_ms: u64,
        forward: bool,
    ) -> Result<Option<ObjectRow>, IndexError> {
        let filter = if forward {
            "WHERE prefix = ?1 AND start_ms > ?2 ORDER BY start_ms LIMIT 1"
        } else {
            "WHERE prefix = ?1 AND start_ms < ?2 ORDER BY start_ms DESC LIMIT 1"
        };
        self.one(filter, p, start_ms).await
    }

    /// The objects of `prefix` overlapping `[from_ms, to_ms)`, oldest first (record list,
    /// export).
    pub async fn objects_between(
        &self,
        p: &Prefix,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<ObjectRow>, IndexError> {
        retry(|| async {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {OBJECT_COLS} FROM objects
                 WHERE prefix = ?1 AND end_ms > ?2 AND start_ms < ?3 ORDER BY start_ms"
            )))
            .bind(p.to_string())
            .bind(int(from_ms))
            .bind(int(to_ms))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(object_row).collect()
        })
        .await
    }

    async fn one(
        &self,
        filter: &'static str,
        p: &Prefix,
        ms: u64,
    ) -> Result<Option<ObjectRow>, IndexError> {
        retry(|| async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {OBJECT_COLS} FROM objects {filter}"
            )))
            .bind(p.to_string())
            .bind(int(ms))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(object_row)
            .transpose()
        })
        .await
    }

    /// Whether a write of `key` is in progress.
    pub async fn has_intent(&self, key: &str) -> Result<bool, IndexError> {
        retry(|| async {
            Ok(sqlx::query("SELECT 1 FROM intents WHERE key = ?1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?
                .is_some())
        })
        .await
    }

    /// Every open intent.
    pub async fn intents(&self) -> Result<Vec<ObjectRow>, IndexError> {
        retry(|| async {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {OBJECT_COLS} FROM intents ORDER BY created_ms"
            )))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(object_row).collect()
        })
        .await
    }

    /// Commits the intent to write `o` for `account` and reserves its bytes, unless an
    /// object or another intent holds its key, seq or start, or the pool has no room
    /// (checked with [`peercam_cloud::quota::Pool::admit`] on used + reserved).
    pub async fn open_intent(
        &self,
        o: &ObjectRow,
        account: &str,
        now_ms: u64,
    ) -> Result<Opened, IndexError> {
        retry(|| async {
            let mut tx = begin_write(&self.pool).await?;
            let stored = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {OBJECT_COLS} FROM objects
                 WHERE key = ?1 OR (prefix = ?2 AND (seq = ?3 OR start_ms = ?4))
                 ORDER BY key = ?1 DESC LIMIT 1"
            )))
            .bind(&o.key)
            .bind(o.prefix.to_string())
            .bind(int(o.seq))
            .bind(int(o.start_ms))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = stored {
                return Ok(Opened::Stored(object_row(&row)?));
            }
            let busy = sqlx::query(
                "SELECT 1 FROM intents WHERE key = ?1 OR (prefix = ?2 AND (seq = ?3 OR start_ms = ?4))",
            )
            .bind(&o.key)
            .bind(o.prefix.to_string())
            .bind(int(o.seq))
            .bind(int(o.start_ms))
            .fetch_optional(&mut *tx)
            .await?;
            if busy.is_some() {
                return Ok(Opened::InFlight);
            }
            let acc = sqlx::query(
                "SELECT account, quota, used, reserved FROM accounts WHERE account = ?1",
            )
            .bind(account)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| IndexError::NoAccount(account.to_owned()))?;
            if let Err(full) = account_row(&acc)?.pool().admit(o.bytes) {
                return Ok(Opened::Full(full));
            }
            sqlx::query(
                "INSERT INTO intents (key, prefix, account, seq, start_ms, end_ms, bytes,
                   body_sha256, stored_sha256, backfilled, kid, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .bind(&o.key)
            .bind(o.prefix.to_string())
            .bind(account)
            .bind(int(o.seq))
            .bind(int(o.start_ms))
            .bind(int(o.end_ms))
            .bind(int(o.bytes))
            .bind(&o.body_sha256)
            .bind(&o.stored_sha256)
            .bind(i64::from(o.backfilled))
            .bind(&o.kid)
            .bind(int(now_ms))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE accounts SET reserved = reserved + ?1 WHERE account = ?2")
                .bind(int(o.bytes))
                .bind(account)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Opened::Intent)
        })
        .await
    }

    /// Turns the intent of `key` into an object row and moves its bytes from reserved to
    /// used, in one transaction. `None` if there was no such intent.
    pub async fn commit_intent(&self, key: &str) -> Result<Option<ObjectRow>, IndexError> {
        retry(|| async {
            let mut tx = begin_write(&self.pool).await?;
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {OBJECT_COLS}, account FROM intents WHERE key = ?1"
            )))
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Ok(None);
            };
            let o = object_row(&row)?;
            let account: String = row.try_get("account")?;
            sqlx::query("DELETE FROM intents WHERE key = ?1")
                .bind(key)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO objects ({OBJECT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            )))
            .bind(&o.key)
            .bind(o.prefix.to_string())
            .bind(int(o.seq))
            .bind(int(o.start_ms))
            .bind(int(o.end_ms))
            .bind(int(o.bytes))
            .bind(&o.body_sha256)
            .bind(&o.stored_sha256)
            .bind(i64::from(o.backfilled))
            .bind(&o.kid)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE accounts SET reserved = max(reserved - ?1, 0), used = used + ?1
                 WHERE account = ?2",
            )
            .bind(int(o.bytes))
            .bind(&account)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(o))
        })
        .await
    }

    /// Drops the intent of `key` and frees its reservation.
    pub async fn drop_intent(&self, key: &str) -> Result<(), IndexError> {
        retry(|| async {
            let mut tx = begin_write(&self.pool).await?;
            let row = sqlx::query("SELECT bytes, account FROM intents WHERE key = ?1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = row {
                let bytes: i64 = row.try_get("bytes")?;
                let account: String = row.try_get("account")?;
                sqlx::query("DELETE FROM intents WHERE key = ?1")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE accounts SET reserved = max(reserved - ?1, 0) WHERE account = ?2",
                )
                .bind(bytes)
                .bind(&account)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Plans and commits a prune of `need` bytes from the pool of `asking`'s account
    /// (design invariant 5, row first): the rows go, usage drops and one `deletions` row per
    /// object is written, in one transaction. The caller then deletes the objects and
    /// [`finish_deletion`](Self::finish_deletion)s them. Returns the plan and the account
    /// after it.
    pub async fn prune(
        &self,
        asking: &Prefix,
        need: u64,
        now_ms: u64,
    ) -> Result<(PrunePlan, Account), IndexError> {
        retry(|| async {
            let mut tx = begin_write(&self.pool).await?;
            let account: String = sqlx::query("SELECT account FROM cameras WHERE prefix = ?1")
                .bind(asking.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| IndexError::Corrupt(format!("no camera {asking}")))?
                .try_get("account")?;
            let rows = sqlx::query(
                "SELECT o.key, o.prefix, o.start_ms, o.end_ms, o.bytes FROM objects o
                 JOIN cameras c ON c.prefix = o.prefix WHERE c.account = ?1",
            )
            .bind(&account)
            .fetch_all(&mut *tx)
            .await?;
            let stored = stored_of(&rows)?;
            let plan = peercam_cloud::quota::prune_plan(&stored, need, *asking, PruneScope::Pool);
            forget(&mut tx, &account, &plan.delete, plan.freed, now_ms).await?;
            let acc = sqlx::query(
                "SELECT account, quota, used, reserved FROM accounts WHERE account = ?1",
            )
            .bind(&account)
            .fetch_one(&mut *tx)
            .await?;
            let acc = account_row(&acc)?;
            tx.commit().await?;
            Ok((plan.clone(), acc))
        })
        .await
    }

    /// Records that `key`'s object must be deleted (used by tests and recovery).
    pub async fn add_deletion(&self, key: &str, now_ms: u64) -> Result<(), IndexError> {
        retry(|| async {
            sqlx::query(
                "INSERT INTO deletions (key, at_ms) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(int(now_ms))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Objects whose deletion is pending.
    pub async fn deletions(&self) -> Result<Vec<String>, IndexError> {
        retry(|| async {
            let rows = sqlx::query("SELECT key FROM deletions ORDER BY at_ms, key")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| r.try_get("key").map_err(IndexError::from))
                .collect()
        })
        .await
    }

    /// Forgets a pending deletion once the object is gone.
    pub async fn finish_deletion(&self, key: &str) -> Result<(), IndexError> {
        retry(|| async {
            sqlx::query("DELETE FROM deletions WHERE key = ?1")
                .bind(key)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub(crate) const P: Prefix = Prefix::from_bytes([3; 16]);
    const Q: Prefix = Prefix::from_bytes([4; 16]);

    pub(crate) fn row(p: Prefix, seq: u64, start_ms: u64, bytes: u64) -> ObjectRow {
        let key = SegmentKey::new(p, start_ms, seq).unwrap().to_string();
        ObjectRow {
            key,
            prefix: p,
            seq,
            start_ms,
            end_ms: start_ms + 10_000,
            bytes,
            body_sha256: "b".repeat(64),
            stored_sha256: "s".repeat(64),
            backfilled: false,
            kid: "k1".into(),
        }
    }

    async fn index(dir: &Path) -> Index {
        let i = Index::open(&dir.join("index.db")).await.unwrap();
        i.set_account("acc", 1000).await.unwrap();
        for p in [P, Q] {
            i.set_camera(&Camera {
                prefix: p,
                account: "acc".into(),
                epoch: 1,
                write_kid: "k1".into(),
            })
            .await
            .unwrap();
        }
        i
    }

    #[tokio::test]
    async fn intent_reserves_then_commit_moves_to_used() {
        let dir = tempfile::tempdir().unwrap();
        let i = index(dir.path()).await;
        let o = row(P, 1, 1_000_000, 300);
        assert_eq!(i.open_intent(&o, "acc", 5).await.unwrap(), Opened::Intent);
        let a = i.account("acc").await.unwrap().unwrap();
        assert_eq!((a.used, a.reserved), (0, 300));
        // The same key, seq or start again is in flight.
        assert_eq!(i.open_intent(&o, "acc", 5).await.unwrap(), Opened::InFlight);
        let same_seq = row(P, 1, 2_000_000, 10);
        assert_eq!(
            i.open_intent(&same_seq, "acc", 5).await.unwrap(),
            Opened::InFlight
        );
        // Reserved bytes count against the quota.
        let big = row(Q, 1, 1_000_000, 701);
        assert!(matches!(
            i.open_intent(&big, "acc", 5).await.unwrap(),
            Opened::Full(Full {
                used: 0,
                quota: 1000,
                need: 1
            })
        ));
        assert_eq!(i.commit_intent(&o.key).await.unwrap(), Some(o.clone()));
        let a = i.account("acc").await.unwrap().unwrap();
        assert_eq!((a.used, a.reserved), (300, 0));
        assert_eq!(i.object(&o.key).await.unwrap(), Some(o.clone()));
        assert_eq!(
            i.open_intent(&o, "acc", 5).await.unwrap(),
            Opened::Stored(o.clone())
        );
        let same_start = row(P, 2, 1_000_000, 10);
        assert_eq!(
            i.open_intent(&same_start, "acc", 5).await.unwrap(),
            Opened::Stored(o.clone())
        );
        assert!(i.intents().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn h626_6_1_13_plan_rules_apply_in_epoch_order_and_a_downgrade_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let i = index(dir.path()).await;
        let now = 40 * peercam_cloud::quota::DAY_MS;
        let old = row(P, 1, now - 10 * peercam_cloud::quota::DAY_MS, 200);
        let mid = row(Q, 1, now - 3_600_000, 200);
        let new = row(P, 2, now - 60_000, 200);
        for o in [&old, &mid, &new] {
            i.open_intent(o, "acc", 5).await.unwrap();
            i.commit_intent(&o.key).await.unwrap();
        }
        let rules = |quota, epoch, after| AccountRules {
            account: "acc".into(),
            quota,
            max_age_days: Some(7),
            plan: Some("plus".into()),
            plan_epoch: epoch,
            prune_after_s: after,
        };
        assert!(i.apply_account(&rules(10_000, 2, None)).await.unwrap());
        // An older message is stale.
        assert!(!i.apply_account(&rules(1, 1, None)).await.unwrap());
        let u = i.usage("acc").await.unwrap().unwrap();
        assert_eq!(
            (u.account.quota, u.objects, u.rules.plan_epoch),
            (10_000, 3, 2)
        );
        assert_eq!(u.rules.plan.as_deref(), Some("plus"));
        // The week-old object goes for its age.
        let r = i.retention("acc", now).await.unwrap();
        assert_eq!((r.delete.len(), r.aged), (1, 1));
        assert_eq!(i.object(&old.key).await.unwrap(), None);
        // A downgrade in its grace: refused for new writes, nothing pruned yet.
        let grace_end = now / 1000 + 60;
        i.apply_account(&rules(250, 3, Some(grace_end)))
            .await
            .unwrap();
        assert!(i.retention("acc", now).await.unwrap().delete.is_empty());
        assert!(matches!(
            i.open_intent(&row(P, 3, now, 10), "acc", 5).await.unwrap(),
            Opened::Full(_)
        ));
        // After it, the oldest goes until the pool fits.
        let r = i.retention("acc", (grace_end + 1) * 1000).await.unwrap();
        assert_eq!(r.delete, vec![mid.key.parse().unwrap()]);
        let u = i.usage("acc").await.unwrap().unwrap();
        assert_eq!((u.account.used, u.objects), (200, 1));
        assert_eq!(i.deletions().await.unwrap().len(), 2, "row first");
        assert_eq!(i.accounts().await.unwrap(), vec!["acc".to_owned()]);
        assert!(i.usage("nobody").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn drop_frees_the_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let i = index(dir.path()).await;
        let o = row(P, 1, 1_000_000, 300);
        i.open_intent(&o, "acc", 5).await.unwrap();
        i.drop_intent(&o.key).await.unwrap();
        let a = i.account("acc").await.unwrap().unwrap();
        assert_eq!((a.used, a.reserved), (0, 0));
        assert_eq!(i.commit_intent(&o.key).await.unwrap(), None);
        assert_eq!(i.object(&o.key).await.unwrap(), None);
    }

    #[tokio::test]
    async fn prune_is_row_first_oldest_of_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let i = index(dir.path()).await;
        let a1 = row(P, 1, 1_000_000, 200);
        let b1 = row(Q, 1, 1_500_000, 200);
        let a2 = row(P, 2, 2_000_000, 200);
        for o in [&a1, &b1, &a2] {
            i.open_intent(o, "acc", 5).await.unwrap();
            i.commit_intent(&o.key).await.unwrap();
        }
        let (plan, acc) = i.prune(&P, 300, 9).await.unwrap();
        assert_eq!(plan.freed, 400);
        assert_eq!(plan.own.len(), 1);
        assert_eq!(plan.own[0].key, a1.key);
        assert_eq!(plan.others.objects, 1);
        assert_eq!(acc.used, 200);
        assert_eq!(i.object(&a1.key).await.unwrap(), None);
        assert_eq!(i.object(&b1.key).await.unwrap(), None);
        assert!(i.object(&a2.key).await.unwrap().is_some());
        assert_eq!(
            i.deletions().await.unwrap(),
            vec![a1.key.clone(), b1.key.clone()]
        );
        i.finish_deletion(&a1.key).await.unwrap();
        assert_eq!(i.deletions().await.unwrap(), vec![b1.key]);
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let o = row(P, 1, 1_000_000, 300);
        {
            let i = index(dir.path()).await;
            i.open_intent(&o, "acc", 5).await.unwrap();
            i.close().await;
        }
        let i = Index::open(&dir.path().join("index.db")).await.unwrap();
        assert_eq!(i.intents().await.unwrap(), vec![o]);
        assert_eq!(i.cameras().await.unwrap().len(), 2);
    }
}
