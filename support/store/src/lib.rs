//! The recording store of peercam's recorders: the NVR (H.626.4 8.7.2) and the camera's SD
//! card (8.7.3).
//!
//! Media is kept in *segments* of whole GOPs (about two seconds each), one data file per
//! segment under `segments/<camera>/`, and one row per segment in a SQLite index
//! (`index.db`) holding its time span and [sample index](peercam_record::index). The
//! invariants and the commit protocol are in `docs/design/recording.md`; in short
//! (docs/security.md D10):
//!
//! 1. A segment is acknowledged only after its file is written and `fsync`ed, its directory
//!    is `fsync`ed, and its row is committed (`synchronous=FULL`).
//! 2. Every row names a file whose length is the row's byte count and whose samples decode
//!    with the row's index.
//! 3. A file without a row is an unacknowledged write: [`Store::open`] deletes it.
//! 4. Deleting removes the row first, then the file (a crash in between leaves case 3).
//!
//! Retention follows each camera's [`Retention`]: maximum age, a byte quota with cyclic
//! overwrite (oldest first) or stop-when-full, and a disk-wide floor of free space.

mod export;
mod layout;
mod segment;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use peercam_record::strategy::Retention;
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use export::{ExportSummary, export_mp4, write_mp4};
pub use layout::{ExportPlan, Piece, plan_mp4};
pub use segment::{
    AacConfig, AudioChunk, AudioCodec, Draft, Frame, SegmentBuilder, SegmentMedia, decode_media,
    to_8k,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk (or the store's share of it) is full; nothing was committed.
    #[error("storage full: {0}")]
    Full(String),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The index database failed.
    #[error("index database: {0}")]
    Db(#[from] sqlx::Error),
    /// A recorded file or row does not match the invariants.
    #[error("corrupt recording: {0}")]
    Corrupt(String),
    /// A segment being built was given bad media.
    #[error("segment: {0}")]
    Segment(&'static str),
    /// Nothing recorded in the requested span.
    #[error("no recording between {from} and {to}")]
    Empty {
        /// RFC 3339 start.
        from: String,
        /// RFC 3339 end.
        to: String,
    },
    /// A remote holder of segments (the cloud's object store) failed or refused.
    #[error("segment source: {0}")]
    Source(String),
    /// The MP4 writer refused the media.
    #[error("export: {0}")]
    Export(#[from] peercam_media::Error),
}

impl StoreError {
    fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(28) || source.kind() == std::io::ErrorKind::StorageFull {
            return Self::Full(format!("{op} {}: {source}", path.display()));
        }
        Self::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The directory holding `index.db` and `segments/`.
    pub root: PathBuf,
    /// Keep at least this many bytes free on the file system; below it the oldest
    /// recordings (of any camera) are deleted. Default 64 MiB.
    pub min_free_bytes: u64,
    /// Bytes all cameras together may use (0: no limit beyond the disk). Default 0.
    pub disk_quota_bytes: u64,
}

impl StoreConfig {
    /// Defaults for `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            min_free_bytes: 64 << 20,
            disk_quota_bytes: 0,
        }
    }
}

/// What [`Store::open`] repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Files without a committed row (writes interrupted before their commit), deleted.
    pub orphans_removed: usize,
    /// Rows whose file is missing or has the wrong length, dropped (not expected unless
    /// the disk lost acknowledged data).
    pub rows_dropped: Vec<String>,
    /// Segments indexed after repair.
    pub segments: usize,
}

/// One committed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    /// Row id.
    pub id: i64,
    /// Camera.
    pub camera: String,
    /// Recording run.
    pub run: i64,
    /// First frame, absolute 90 kHz.
    pub start_90k: u64,
    /// End, absolute 90 kHz.
    pub end_90k: u64,
    /// Video frames.
    pub frames: u32,
    /// Data bytes.
    pub bytes: u64,
    /// Data file, relative to the store root.
    pub path: String,
    /// Encoded sample index.
    pub index: Vec<u8>,
    /// SPS.
    pub sps: Vec<u8>,
    /// PPS.
    pub pps: Vec<u8>,
    /// Audio codec (G.711 or G.722).
    pub audio: Option<AudioCodec>,
    /// The AAC configuration when the segment's audio is AAC.
    pub aac: Option<AacConfig>,
}

impl SegmentRow {
    /// Start, Unix ms.
    pub fn start_ms(&self) -> u64 {
        self.start_90k / 90
    }

    /// End, Unix ms.
    pub fn end_ms(&self) -> u64 {
        self.end_90k.div_ceil(90)
    }
}

/// A stretch of uninterrupted recording (what a timeline draws).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start, Unix ms.
    pub start_ms: u64,
    /// End, Unix ms.
    pub end_ms: u64,
    /// Bytes.
    pub bytes: u64,
    /// Uploaded late, from the camera's backlog (a cloud recorder's spans only; 6.3.2).
    pub backfilled: bool,
}

/// Something that happened to a camera's recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Camera.
    pub camera: String,
    /// When, Unix ms.
    pub at_ms: u64,
    /// `alarm`, `storage_full`, `recording_started`, `recording_stopped`, ...
    pub kind: String,
    /// Free text.
    pub detail: String,
}

/// What [`Store::retain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    /// Segments deleted.
    pub deleted: usize,
    /// Bytes freed.
    pub freed: u64,
    /// The camera is at a non-cyclic quota: recording must stop.
    pub full: bool,
}

/// Whether two segments of a run that touch belong to one span: gaps up to this are joined.
const JOIN_GAP_MS: u64 = 1500;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS segments (
    id        INTEGER PRIMARY KEY,
    camera    TEXT NOT NULL,
    run       INTEGER NOT NULL,
    start_90k INTEGER NOT NULL,
    end_90k   INTEGER NOT NULL CHECK (end_90k > start_90k),
    frames    INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    path      TEXT NOT NULL UNIQUE,
    idx       BLOB NOT NULL,
    sps       BLOB NOT NULL,
    pps       BLOB NOT NULL,
    audio     TEXT
);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments (camera, start_90k);
CREATE TABLE IF NOT EXISTS events (
    id     INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    at_ms  INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (camera, at_ms);
";

/// The store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    cfg: StoreConfig,
    db: SqlitePool,
    stats: Arc<StoreStats>,
}

/// What the store has written since it was opened (the unit's metrics, H.626.4 6.1.14).
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Segments committed.
    pub segments_written: std::sync::atomic::AtomicU64,
    /// Bytes of the segments committed.
    pub bytes_written: std::sync::atomic::AtomicU64,
    /// Segments that could not be stored (disk full, IO or index errors).
    pub write_errors: std::sync::atomic::AtomicU64,
    /// Of those, the ones refused because the disk or index was full.
    pub full_errors: std::sync::atomic::AtomicU64,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

fn valid_camera(camera: &str) -> bool {
    !camera.is_empty()
        && camera.len() <= 64
        && camera
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Store {
    /// Opens (creating if needed) the store at `cfg.root` and repairs it to the invariants.
    pub async fn open(cfg: StoreConfig) -> Result<(Self, RepairReport), StoreError> {
        let seg_dir = cfg.root.join("segments");
        std::fs::create_dir_all(&seg_dir).map_err(|e| StoreError::io("create", &seg_dir, e))?;
        let db_path = cfg.root.join("index.db");
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&db_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Keep the WAL small: it shares the disk with the recordings.
            .pragma("wal_autocheckpoint", "100")
            .pragma("journal_size_limit", "1048576")
            .busy_timeout(Duration::from_secs(10));
        let db = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&db).await?;
        let store = Self {
            cfg,
            db,
            stats: Arc::default(),
        };
        if !store.reserve_path().exists() {
            store.restore_reserve();
        }
        let report = store.repair().await?;
        if report.orphans_removed > 0 || !report.rows_dropped.is_empty() {
            tracing::warn!(?report, "recording store repaired");
        }
        Ok((store, report))
    }

    /// The store's write counters.
    pub fn stats(&self) -> &Arc<StoreStats> {
        &self.stats
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    async fn repair(&self) -> Result<RepairReport, StoreError> {
        let mut report = RepairReport::default();
        let check: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&self.db)
            .await?;
        if check != "ok" {
            return Err(StoreError::Corrupt(format!("index database: {check}")));
        }
        let rows = sqlx::query("SELECT id, path, bytes FROM segments")
            .fetch_all(&self.db)
            .await?;
        let mut known = std::collections::HashSet::with_capacity(rows.len());
        for r in rows {
            let (id, path, bytes): (i64, String, i64) = (r.get(0), r.get(1), r.get(2));
            let full = self.cfg.root.join(&path);
            match std::fs::metadata(&full) {
                Ok(m) if m.len() == u(bytes) => {
                    known.insert(path);
                }
                found => {
                    let why = match found {
                        Ok(m) => format!("{path}: {} bytes, index says {bytes}", m.len()),
                        Err(e) => format!("{path}: {e}"),
                    };
                    sqlx::query("DELETE FROM segments WHERE id = ?")
                        .bind(id)
                        .execute(&self.db)
                        .await?;
                    report.rows_dropped.push(why);
                }
            }
        }
        report.segments = known.len();
        let seg_dir = self.cfg.root.join("segments");
        let cams = std::fs::read_dir(&seg_dir).map_err(|e| StoreError::io("list", &seg_dir, e))?;
        for cam in cams.flatten() {
            let Ok(files) = std::fs::read_dir(cam.path()) else {
                continue;
            };
            for f in files.flatten() {
                let rel = format!(
                    "segments/{}/{}",
                    cam.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                );
                if !known.contains(&rel) {
                    std::fs::remove_file(f.path())
                        .map_err(|e| StoreError::io("remove orphan", &f.path(), e))?;
                    report.orphans_removed += 1;
                }
            }
            fsync_dir(&cam.path())?;
        }
        Ok(report)
    }

    /// Commits segments as one group: each file is written and `fsync`ed, the directories
    /// are `fsync`ed, then all rows are inserted in one transaction. Returns, per draft, its
    /// row id or why it was not stored; a failed draft leaves no file behind.
    pub async fn commit(&self, drafts: Vec<Draft>) -> Vec<Result<i64, StoreError>> {
        let out = self.commit_inner(drafts).await;
        let st = &self.stats;
        for r in &out {
            match r {
                Ok(_) => st.segments_written.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    if matches!(e, StoreError::Full(_)) {
                        st.full_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    st.write_errors.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        out
    }

    async fn commit_inner(&self, drafts: Vec<Draft>) -> Vec<Result<i64, StoreError>> {
        let root = self.cfg.root.clone();
        let written = tokio::task::spawn_blocking(move || write_files(&root, drafts))
            .await
            .unwrap_or_else(|e| vec![Err(StoreError::Corrupt(format!("writer task: {e}")))]);
        let ok: Vec<&(Draft, String)> = written.iter().filter_map(|w| w.as_ref().ok()).collect();
        let inserted = if ok.is_empty() {
            Ok(Vec::new())
        } else {
            self.insert_rows(&ok).await
        };
        match inserted {
            Ok(ids) => {
                let bytes: usize = ok.iter().map(|(d, _)| d.data.len()).sum();
                self.stats
                    .bytes_written
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                let mut ids = ids.into_iter();
                written
                    .into_iter()
                    .map(|w| w.map(|_| ids.next().unwrap_or_default()))
                    .collect()
            }
            Err(e) => {
                // Not committed: the files are orphans now; remove them (open() would too).
                for (_, path) in &ok {
                    let _ = std::fs::remove_file(self.cfg.root.join(path));
                }
                let full = matches!(e, StoreError::Full(_));
                let msg = e.to_string();
                written
                    .into_iter()
                    .map(|w| {
                        w.and_then(|_| {
                            Err(if full {
                                StoreError::Full(msg.clone())
                            } else {
                                StoreError::Corrupt(format!("index commit failed: {msg}"))
                            })
                        })
                    })
                    .collect()
            }
        }
    }

    async fn insert_rows(&self, ok: &[&(Draft, String)]) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.db.begin().await.map_err(db_full)?;
        let mut ids = Vec::with_capacity(ok.len());
        for (d, path) in ok {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO segments (camera, run, start_90k, end_90k, frames, bytes, path, idx, sps, pps, audio)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&d.camera)
            .bind(d.run)
            .bind(i(d.start_90k))
            .bind(i(d.end_90k))
            .bind(d.frames)
            .bind(d.data.len() as i64)
            .bind(path)
            .bind(&d.index)
            .bind(&d.sps)
            .bind(&d.pps)
            .bind(segment::audio_column(d.audio, d.aac.as_ref()))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_full)?;
            ids.push(id);
        }
        tx.commit().await.map_err(db_full)?;
        Ok(ids)
    }

    /// Segments of `camera` overlapping `[from_ms, to_ms)`, oldest first.
    pub async fn segments(
        &self,
        camera: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<SegmentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, camera, run, start_90k, end_90k, frames, bytes, path, idx, sps, pps, audio
             FROM segments WHERE camera = ? AND end_90k > ? AND start_90k < ? ORDER BY start_90k",
        )
        .bind(camera)
        .bind(i(from_ms.saturating_mul(90)))
        .bind(i(to_ms.saturating_mul(90)))
        .fetch_all(&self.db)
        .await?;
        Ok(rows.iter().map(row).collect())
    }

    /// The segment playing at `at_ms`, or else the first one after it.
    pub async fn segment_at(
        &self,
        camera: &str,
        at_ms: u64,
    ) -> Result<Option<SegmentRow>, StoreError> {
        let r = sqlx::query(
            "SELECT id, camera, run, start_90k, end_90k, frames, bytes, path, idx, sps, pps, audio
             FROM segments WHERE camera = ? AND end_90k > ? ORDER BY start_90k LIMIT 1",
        )
        .bind(camera)
        .bind(i(at_ms.saturating_mul(90)))
        .fetch_optional(&self.db)
        .await?;
        Ok(r.as_ref().map(row))
    }

    /// The segment after (`forward`) or before the one starting at `start_90k`.
    pub async fn neighbour(
        &self,
        camera: &str,
        start_90k: u64,
        forward: bool,
    ) -> Result<Option<SegmentRow>, StoreError> {
        let sql = if forward {
            "SELECT id, camera, run, start_90k, end_90k, frames, bytes, path, idx, sps, pps, audio
             FROM segments WHERE camera = ? AND start_90k > ? ORDER BY start_90k LIMIT 1"
        } else {
            "SELECT id, camera, run, start_90k, end_90k, frames, bytes, path, idx, sps, pps, audio
             FROM segments WHERE camera = ? AND start_90k < ? ORDER BY start_90k DESC LIMIT 1"
        };
        let r = sqlx::query(sql)
            .bind(camera)
            .bind(i(start_90k))
            .fetch_optional(&self.db)
            .await?;
        Ok(r.as_ref().map(row))
    }

    /// Uninterrupted spans of `camera` within `[from_ms, to_ms)` (clipped to it): the
    /// coverage map a timeline draws.
    pub async fn spans(
        &self,
        camera: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<Span>, StoreError> {
        let rows = sqlx::query(
            "SELECT start_90k, end_90k, bytes FROM segments
             WHERE camera = ? AND end_90k > ? AND start_90k < ? ORDER BY start_90k",
        )
        .bind(camera)
        .bind(i(from_ms.saturating_mul(90)))
        .bind(i(to_ms.saturating_mul(90)))
        .fetch_all(&self.db)
        .await?;
        let mut out: Vec<Span> = Vec::new();
        for r in rows {
            let s = (u(r.get(0)) / 90).max(from_ms);
            let e = u(r.get::<i64, _>(1)).div_ceil(90).min(to_ms);
            let b = u(r.get(2));
            match out.last_mut() {
                Some(last) if s <= last.end_ms + JOIN_GAP_MS => {
                    last.end_ms = last.end_ms.max(e);
                    last.bytes += b;
                }
                _ => out.push(Span {
                    start_ms: s,
                    end_ms: e,
                    bytes: b,
                    backfilled: false,
                }),
            }
        }
        Ok(out)
    }

    /// Records an event.
    pub async fn add_event(
        &self,
        camera: &str,
        at_ms: u64,
        kind: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO events (camera, at_ms, kind, detail) VALUES (?, ?, ?, ?)")
            .bind(camera)
            .bind(i(at_ms))
            .bind(kind)
            .bind(detail)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Events of `camera` in `[from_ms, to_ms)`, oldest first (at most 10 000).
    pub async fn events(
        &self,
        camera: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT camera, at_ms, kind, detail FROM events
             WHERE camera = ? AND at_ms >= ? AND at_ms < ? ORDER BY at_ms LIMIT 10000",
        )
        .bind(camera)
        .bind(i(from_ms))
        .bind(i(to_ms))
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Event {
                camera: r.get(0),
                at_ms: u(r.get(1)),
                kind: r.get(2),
                detail: r.get(3),
            })
            .collect())
    }

    /// Start of the oldest recording of `camera`, Unix ms.
    pub async fn oldest_ms(&self, camera: &str) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MIN(start_90k) FROM segments WHERE camera = ?")
                .bind(camera)
                .fetch_one(&self.db)
                .await?;
        Ok(v.map(|t| u(t) / 90))
    }

    /// Bytes recorded for `camera` (or all cameras).
    pub async fn usage(&self, camera: Option<&str>) -> Result<u64, StoreError> {
        let v: Option<i64> = match camera {
            Some(c) => {
                sqlx::query_scalar("SELECT SUM(bytes) FROM segments WHERE camera = ?")
                    .bind(c)
                    .fetch_one(&self.db)
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT SUM(bytes) FROM segments")
                    .fetch_one(&self.db)
                    .await?
            }
        };
        Ok(u(v.unwrap_or(0)))
    }

    /// Applies `camera`'s retention at `now_ms`: deletes what is older than its maximum
    /// age, then, over its quota, the oldest segments (cyclic) or reports it full.
    pub async fn retain(
        &self,
        camera: &str,
        retention: &Retention,
        now_ms: u64,
    ) -> Result<Retained, StoreError> {
        let mut out = Retained::default();
        if retention.max_age_days > 0 {
            let cutoff = now_ms.saturating_sub(u64::from(retention.max_age_days) * 86_400_000);
            let old = sqlx::query(
                "SELECT id, path, bytes FROM segments WHERE camera = ? AND end_90k <= ?",
            )
            .bind(camera)
            .bind(i(cutoff.saturating_mul(90)))
            .fetch_all(&self.db)
            .await?;
            for r in old {
                out.freed += self
                    .delete(r.get(0), &r.get::<String, _>(1), u(r.get(2)))
                    .await?;
                out.deleted += 1;
            }
        }
        if retention.quota_bytes > 0 {
            let mut used = self.usage(Some(camera)).await?;
            if used > retention.quota_bytes {
                if retention.cyclic {
                    let oldest = sqlx::query(
                        "SELECT id, path, bytes FROM segments WHERE camera = ? ORDER BY start_90k",
                    )
                    .bind(camera)
                    .fetch_all(&self.db)
                    .await?;
                    for r in oldest {
                        if used <= retention.quota_bytes {
                            break;
                        }
                        let b = self
                            .delete(r.get(0), &r.get::<String, _>(1), u(r.get(2)))
                            .await?;
                        used -= b.min(used);
                        out.freed += b;
                        out.deleted += 1;
                    }
                } else {
                    out.full = true;
                }
            }
        }
        Ok(out)
    }

    /// Frees space disk-wide: while the file system has less than `min_free_bytes` free
    /// (plus `need` bytes) or the store exceeds `disk_quota_bytes`, deletes the oldest
    /// segment of any camera. Returns what was freed.
    pub async fn make_room(&self, need: u64) -> Result<Retained, StoreError> {
        let mut out = Retained::default();
        loop {
            let free = free_bytes(&self.cfg.root).unwrap_or(u64::MAX);
            let used = self.usage(None).await?;
            // The index needs room too (its WAL grows with each commit).
            let disk_short = free
                < self
                    .cfg
                    .min_free_bytes
                    .saturating_add(need)
                    .saturating_add(INDEX_HEADROOM);
            let over_quota = self.cfg.disk_quota_bytes > 0
                && used.saturating_add(need) > self.cfg.disk_quota_bytes;
            if !disk_short && !over_quota {
                return Ok(out);
            }
            let Some(r) =
                sqlx::query("SELECT id, path, bytes FROM segments ORDER BY start_90k LIMIT 1")
                    .fetch_optional(&self.db)
                    .await?
            else {
                out.full = true;
                return Ok(out);
            };
            match self
                .delete(r.get(0), &r.get::<String, _>(1), u(r.get(2)))
                .await
            {
                Ok(b) => {
                    out.freed += b;
                    out.deleted += 1;
                }
                // The disk is so full that SQLite cannot even log the deletion: give it the
                // reserve, then go on (the reserve is put back once there is room).
                Err(StoreError::Full(_)) if self.release_reserve() => {}
                Err(e) => return Err(e),
            }
            if out.deleted > 0 && !self.reserve_path().exists() {
                self.restore_reserve();
            }
        }
    }

    fn reserve_path(&self) -> PathBuf {
        self.cfg.root.join("reserve")
    }

    /// Deletes the reserve file; `true` if there was one.
    fn release_reserve(&self) -> bool {
        let gone = std::fs::remove_file(self.reserve_path()).is_ok();
        if gone {
            tracing::warn!(root = %self.cfg.root.display(), "disk full: reserve released so the index can delete");
        }
        gone
    }

    /// Puts the reserve back if the disk has room for it and some to spare.
    fn restore_reserve(&self) {
        let room = free_bytes(&self.cfg.root).unwrap_or(0);
        if room >= RESERVE_BYTES * 2 {
            let _ = write_reserve(&self.reserve_path());
        }
    }

    /// Deletes every recording of `camera` (after an unbind or a wipe).
    pub async fn forget(&self, camera: &str) -> Result<Retained, StoreError> {
        let mut out = Retained::default();
        let rows = sqlx::query("SELECT id, path, bytes FROM segments WHERE camera = ?")
            .bind(camera)
            .fetch_all(&self.db)
            .await?;
        for r in rows {
            out.freed += self
                .delete(r.get(0), &r.get::<String, _>(1), u(r.get(2)))
                .await?;
            out.deleted += 1;
        }
        sqlx::query("DELETE FROM events WHERE camera = ?")
            .bind(camera)
            .execute(&self.db)
            .await?;
        Ok(out)
    }

    /// Row first, then file (invariant 4).
    async fn delete(&self, id: i64, path: &str, bytes: u64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM segments WHERE id = ?")
            .bind(id)
            .execute(&self.db)
            .await
            .map_err(db_full)?;
        let full = self.cfg.root.join(path);
        match std::fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove", &full, e)),
        }
        Ok(bytes)
    }

    /// Plans `camera`'s export of `[from_ms, to_ms)` as an MP4 laid out over the segment
    /// files (see [`plan_mp4`]): nothing is copied until the plan is written or sent.
    pub async fn plan_export(
        &self,
        camera: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<ExportPlan, StoreError> {
        let segments = self.segments(camera, from_ms, to_ms).await?;
        let root = self.cfg.root.clone();
        tokio::task::spawn_blocking(move || plan_mp4(&segments, (from_ms, to_ms), &root))
            .await
            .map_err(|e| StoreError::Corrupt(format!("export planner task: {e}")))?
    }

    /// Reads and decodes a segment's media, checking it against its row.
    pub async fn read(&self, seg: &SegmentRow) -> Result<SegmentMedia, StoreError> {
        let path = self.cfg.root.join(&seg.path);
        let seg = seg.clone();
        tokio::task::spawn_blocking(move || {
            let data = std::fs::read(&path).map_err(|e| StoreError::io("read", &path, e))?;
            if data.len() as u64 != seg.bytes {
                return Err(StoreError::Corrupt(format!(
                    "{}: {} bytes, index says {}",
                    seg.path,
                    data.len(),
                    seg.bytes
                )));
            }
            decode_media(seg.start_90k, &seg.index, &data)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("reader task: {e}")))?
    }

    /// Full integrity check: SQLite's `integrity_check`, then every segment read and
    /// decoded (invariant 2). Returns the number of segments and the problems found.
    pub async fn check(&self) -> Result<(usize, Vec<String>), StoreError> {
        let mut problems = Vec::new();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.db)
            .await?;
        if check != "ok" {
            problems.push(format!("index database: {check}"));
        }
        let rows = sqlx::query(
            "SELECT id, camera, run, start_90k, end_90k, frames, bytes, path, idx, sps, pps, audio
             FROM segments ORDER BY camera, start_90k",
        )
        .fetch_all(&self.db)
        .await?;
        let mut prev: Option<SegmentRow> = None;
        for r in &rows {
            let seg = row(r);
            match self.read(&seg).await {
                Ok(m) => {
                    if m.video.len() != seg.frames as usize {
                        problems.push(format!(
                            "{}: {} frames, row says {}",
                            seg.path,
                            m.video.len(),
                            seg.frames
                        ));
                    }
                    if !m.video.first().is_some_and(|f| f.key) {
                        problems.push(format!("{}: does not start with an IDR", seg.path));
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
            if let Some(p) = &prev
                && p.camera == seg.camera
                && p.end_90k > seg.start_90k
            {
                problems.push(format!("{} overlaps {}", seg.path, p.path));
            }
            prev = Some(seg);
        }
        Ok((rows.len(), problems))
    }
}

fn row(r: &sqlx::sqlite::SqliteRow) -> SegmentRow {
    let (audio, aac) = segment::parse_audio_column(r.get::<Option<String>, _>(11).as_deref());
    SegmentRow {
        id: r.get(0),
        camera: r.get(1),
        run: r.get(2),
        start_90k: u(r.get(3)),
        end_90k: u(r.get(4)),
        frames: r.get::<u32, _>(5),
        bytes: u(r.get(6)),
        path: r.get(7),
        index: r.get(8),
        sps: r.get(9),
        pps: r.get(10),
        audio,
        aac,
    }
}

/// Free space always kept beyond `min_free_bytes` for the index's own writes.
pub const INDEX_HEADROOM: u64 = 256 << 10;

/// Bytes kept in `<root>/reserve` so that the index can still delete on a full disk.
pub const RESERVE_BYTES: u64 = 256 << 10;

fn write_reserve(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path)?;
    f.write_all(&vec![0u8; RESERVE_BYTES as usize])?;
    f.sync_all()
}

/// SQLite's "database or disk is full" (SQLITE_FULL, 13) as [`StoreError::Full`].
fn db_full(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.code().as_deref() == Some("13")
    {
        return StoreError::Full(format!("index database: {d}"));
    }
    StoreError::Db(e)
}

/// Free bytes on the file system holding `path` (for unprivileged users).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Writes and fsyncs each draft's file; then fsyncs the directories touched.
fn write_files(root: &Path, drafts: Vec<Draft>) -> Vec<Result<(Draft, String), StoreError>> {
    use std::io::Write as _;
    let mut dirs = std::collections::BTreeSet::new();
    let mut out: Vec<Result<(Draft, String), StoreError>> = drafts
        .into_iter()
        .map(|d| {
            if !valid_camera(&d.camera) {
                return Err(StoreError::Segment("camera id is not a safe file name"));
            }
            let dir = root.join("segments").join(&d.camera);
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
                dirs.insert(root.join("segments"));
            }
            let name = format!("{:016x}-{:x}.seg", d.start_90k, d.run);
            let rel = format!("segments/{}/{name}", d.camera);
            let path = dir.join(&name);
            let res = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| {
                    f.write_all(&d.data)?;
                    f.sync_all()
                });
            if let Err(e) = res {
                let _ = std::fs::remove_file(&path);
                return Err(StoreError::io("write segment", &path, e));
            }
            dirs.insert(dir);
            Ok((d, rel))
        })
        .collect();
    for dir in dirs {
        if let Err(e) = fsync_dir(&dir) {
            // The files may not survive a crash: fail the drafts in this directory.
            let msg = e.to_string();
            for w in &mut out {
                if let Ok((d, rel)) = w
                    && dir.ends_with(&d.camera)
                {
                    let _ = std::fs::remove_file(root.join(&*rel));
                    *w = Err(StoreError::Corrupt(msg.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
