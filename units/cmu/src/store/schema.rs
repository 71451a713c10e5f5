//! The SQLite schema: opening the database (WAL, foreign keys, busy timeout) and its
//! ordered migrations.
//!
//! Only SQLite is implemented. The SQL avoids what other databases lack where it costs
//! nothing (integer keys, text, `ON CONFLICT`), but migration 7 edits `sqlite_master`, so a
//! PostgreSQL backend needs its own schema; callers would not notice (see [`super`]).

use std::str::FromStr as _;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};

use super::StoreError;

/// Ordered schema migrations; the index + 1 is the schema version stored in `user_version`.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'sub', 'operator')),
    login         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending_approval', 'active', 'disabled')),
    parent_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL
);
CREATE TABLE signup_codes (
    phone         TEXT PRIMARY KEY,
    code_hash     TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('pu', 'nvr')),
    public_key       TEXT NOT NULL,
    bind_code_sha256 TEXT NOT NULL,
    vendor           TEXT NOT NULL,
    model            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    registered_at    INTEGER,
    last_seen        INTEGER,
    sw_version       TEXT,
    owner_id         INTEGER REFERENCES users(id) ON DELETE SET NULL,
    name             TEXT,
    acl_version      INTEGER NOT NULL DEFAULT 1,
    disabled         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_owner ON devices(owner_id);
CREATE TABLE shares (
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scopes     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, user_id)
);
CREATE INDEX shares_user ON shares(user_id);
CREATE TABLE used_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor_id  INTEGER,
    action    TEXT NOT NULL,
    device_id TEXT,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX audit_device ON audit(device_id);
CREATE INDEX audit_actor ON audit(actor_id);
",
    r"
CREATE TABLE used_play_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
",
    // H.626.4 8.9.1 steps 7-8: configuration permits, single use.
    r"
CREATE TABLE config_permits (
    permit_hash TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
",
    // H.626.4 8.11.1: signed release packages.
    r"
CREATE TABLE packages (
    sha256      TEXT PRIMARY KEY,
    version     TEXT NOT NULL,
    model       TEXT NOT NULL,
    size        INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    manifest    TEXT NOT NULL,
    stored      INTEGER NOT NULL DEFAULT 0,
    uploaded_at INTEGER NOT NULL,
    UNIQUE (model, version)
);
",
    // H.626.4 8.9.2: CMU parameter documents (`platform`, `user:ID`).
    r"
CREATE TABLE cmu_params (
    key      TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    doc      TEXT NOT NULL
);
",
    // H.626.4 8.7.2 / 8.7.3: which device records which camera (an NVR, or the camera
    // itself for its SD card), and the strategy last set there.
    r"
CREATE TABLE recorders (
    camera_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    recorder_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    strategy    TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (camera_id, recorder_id)
);
CREATE INDEX recorders_by_recorder ON recorders(recorder_id);
",
    // H.626.4 7: MTUs register like devices. Widening a CHECK constraint is the one schema
    // change SQLite documents doing in place (lang_altertable.html, "other kinds of table
    // schema changes"): no row changes, so no table rebuild and no cascades.
    r"
PRAGMA writable_schema = ON;
UPDATE sqlite_master SET sql = replace(sql, 'CHECK (kind IN (''pu'', ''nvr''))', 'CHECK (kind IN (''pu'', ''nvr'', ''mtu''))')
 WHERE type = 'table' AND name = 'devices';
PRAGMA writable_schema = OFF;
",
    // Live-view sessions as clients report them: which path, how fast, how much.
    r"
CREATE TABLE media_sessions (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    device_id  TEXT NOT NULL,
    path       TEXT NOT NULL,
    connect_ms INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    seconds    INTEGER NOT NULL
);
CREATE INDEX media_sessions_at ON media_sessions(at);
",
    // H.626.4 8.8 / 6.1.9: alarms (stored once per camera and alarm id), the snapshots kept
    // with them, each camera's alarm strategy, and each user's templates and notification
    // settings per alarm kind.
    r"
CREATE TABLE alarm_snapshots (
    id        INTEGER PRIMARY KEY,
    camera_id TEXT NOT NULL,
    taken_ms  INTEGER NOT NULL,
    jpeg      BLOB NOT NULL
);
CREATE INDEX alarm_snapshots_camera ON alarm_snapshots(camera_id, id);
CREATE TABLE alarms (
    id          INTEGER PRIMARY KEY,
    owner_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    camera_id   TEXT,
    alarm_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    level       INTEGER NOT NULL,
    input       INTEGER,
    zone        INTEGER,
    detail      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'reset')),
    reset_by    INTEGER,
    reset_at    INTEGER,
    snapshot_id INTEGER REFERENCES alarm_snapshots(id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX alarms_once ON alarms(camera_id, alarm_id);
CREATE INDEX alarms_owner ON alarms(owner_id, id);
CREATE TABLE alarm_strategies (
    camera_id  TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    revision   INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    applied    INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
CREATE TABLE alarm_templates (
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    template TEXT NOT NULL,
    PRIMARY KEY (user_id, kind)
);
CREATE TABLE alarm_notify (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    sms     INTEGER NOT NULL,
    push    INTEGER NOT NULL,
    app     INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind)
);
",
    // H.626.4 6.1.9 push channel: the CMU's VAPID key (RFC 8292, one row) and each user's
    // browsers' push subscriptions (RFC 8030/8291).
    r"
CREATE TABLE push_vapid (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE push_subscriptions (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL UNIQUE,
    p256dh     BLOB NOT NULL,
    auth       BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id);
",
    // 6.1.12 timed snapshots: the schedule per camera (its last due time taken, so one due
    // time is taken once), the owner's SMS count per UTC day, the persistent link key.
    // Timed snapshots share the alarms' snapshot table, told apart by `timed`.
    r"
ALTER TABLE alarm_snapshots ADD COLUMN timed INTEGER NOT NULL DEFAULT 0;
CREATE TABLE snapshot_schedules (
    camera_id   TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    owner_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    doc         TEXT NOT NULL,
    phone       TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    last_due_ms INTEGER,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE snapshot_sms_days (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day     INTEGER NOT NULL,
    sent    INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
);
CREATE TABLE link_keys (
    purpose TEXT PRIMARY KEY,
    key     BLOB NOT NULL
);
",
    // H.626.4 8.7.1: cloud storage units register like devices (kind `cs`); the CHECK is
    // widened in place as for the MTU.
    r"
PRAGMA writable_schema = ON;
UPDATE sqlite_master SET sql = replace(sql, 'CHECK (kind IN (''pu'', ''nvr'', ''mtu''))', 'CHECK (kind IN (''pu'', ''nvr'', ''mtu'', ''cs''))')
 WHERE type = 'table' AND name = 'devices';
PRAGMA writable_schema = OFF;
",
    // H.626.4 8.7.1 cloud storage: each camera's CS, opaque prefix (per camera and
    // binding), account pool, epoch and cloud strategy; data keys per prefix, wrapped by
    // the CMU's key-encryption key (docs/design/cloud-storage.md).
    r"
CREATE TABLE cloud_cameras (
    camera_id  TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    cs_id      TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    prefix     TEXT NOT NULL UNIQUE,
    owner_id   INTEGER NOT NULL,
    epoch      INTEGER NOT NULL,
    write_kid  TEXT NOT NULL,
    strategy   TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX cloud_cameras_cs ON cloud_cameras(cs_id);
CREATE TABLE cloud_keys (
    prefix     TEXT NOT NULL,
    kid        TEXT NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (prefix, kid)
);
",
];

/// Opens (creating if needed) and migrates the database at `url` (`sqlite://PATH` or
/// `sqlite::memory:`).
pub(super) async fn open(url: &str) -> Result<SqlitePool, StoreError> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Setup(format!("database URL {url:?}: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(super::BUSY_TIMEOUT);
    let max = if url.contains(":memory:") { 1 } else { 8 };
    let pool = SqlitePoolOptions::new()
        .max_connections(max)
        .connect_with(opts)
        .await?;
    // Several CMU processes may start on one file at once: the migration holds the write lock
    // from its first statement (it reads the version, then writes).
    super::retry(|| migrate(&pool)).await??;
    Ok(pool)
}

/// Outer error: the database (retried when transient); inner: the schema is too new.
async fn migrate(pool: &SqlitePool) -> Result<Result<(), StoreError>, sqlx::Error> {
    let mut tx = super::begin_write(pool).await?;
    let version: i64 = sqlx::query("PRAGMA user_version")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let version = usize::try_from(version).unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Ok(Err(StoreError::Setup(format!(
            "database schema version {version} is newer than this CMU understands ({}); upgrade peercam",
            MIGRATIONS.len()
        ))));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tracing::info!(from = i, to = i + 1, "migrating CMU database");
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        if sql.contains("writable_schema") {
            // Other connections must reload the schema they compiled.
            let v: i64 = sqlx::query("PRAGMA schema_version")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA schema_version = {}",
                v + 1
            )))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            i + 1
        )))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(()))
}
