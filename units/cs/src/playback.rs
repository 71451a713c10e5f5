//! Cc playback (H.626.4 8.7.1 playback, design "Cc: list, playback, download"): the CS is a
//! recorder. [`CloudSource`] is its [`SegmentSource`], so the RTSP player, trick play,
//! WebRTC playback and the MP4 export of `peercam-recorder` serve the cloud unchanged.
//!
//! A segment of the cloud is one store segment inside an upload object. Reading one fetches
//! the object with a ranged GET (its length from the index, so S3 needs no HEAD), opens the
//! envelope with the camera's data key (from the key service, as for uploads) and decodes
//! the object. Decoded objects stay in an LRU of `cache_mb`; each move to a neighbouring
//! object starts loading the next one in the direction of play, so fast and reverse modes
//! do not wait for the store. Two readers of one object share one load.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures_util::StreamExt as _;
use peercam_cloud::object::{self, Object};
use peercam_cloud::{Prefix, envelope};
use peercam_recorder::source::{SegmentSource, SourceFuture};
use peercam_store::{AudioCodec, Event, SegmentMedia, SegmentRow, Span, StoreError};
use tokio::sync::OnceCell;

use crate::backend::Backend;
use crate::index::{Index, IndexError, ObjectRow};
use crate::keys::Keys;

/// Camera device id -> its prefix, as Su `cs_camera` names them.
pub type CameraPrefixes = Arc<RwLock<HashMap<String, Prefix>>>;

/// Objects a range read (list of segments, export) loads at once.
const LOADS_AT_ONCE: usize = 4;

/// Spans closer than this are one (as the local store joins them).
const JOIN_GAP_MS: u64 = 1500;

/// One object, decoded: its segments as rows and their sample bytes.
#[derive(Debug)]
struct Loaded {
    rows: Vec<SegmentRow>,
    data: Vec<Vec<u8>>,
    bytes: usize,
}

type Slot = Arc<OnceCell<Arc<Loaded>>>;

#[derive(Debug, Default)]
struct Lru {
    slots: HashMap<String, (u64, Slot)>,
    tick: u64,
}

/// Counters of the cache, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Objects fetched from the store.
    pub fetched: u64,
    /// Reads served from the cache.
    pub hits: u64,
    /// Decoded bytes held now.
    pub held_bytes: u64,
}

#[derive(Debug)]
struct Inner {
    index: Index,
    backend: Arc<dyn Backend>,
    keys: Arc<dyn Keys>,
    prefixes: CameraPrefixes,
    cache: Mutex<Lru>,
    stats: Mutex<CacheStats>,
    cache_bytes: usize,
    scratch: PathBuf,
}

/// The CS's segments, read from its object store (see the module documentation).
#[derive(Debug, Clone)]
pub struct CloudSource {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn source_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Source(e.to_string())
}

impl From<IndexError> for StoreError {
    fn from(e: IndexError) -> Self {
        source_err(e)
    }
}

fn audio_of(a: Option<object::AudioCodec>) -> Option<AudioCodec> {
    match a? {
        object::AudioCodec::Pcmu => Some(AudioCodec::Pcmu),
        object::AudioCodec::Pcma => Some(AudioCodec::Pcma),
        object::AudioCodec::G722 => Some(AudioCodec::G722),
    }
}

impl CloudSource {
    /// A source over `index` and `backend`; data keys from `keys`, cameras' prefixes from
    /// `prefixes`; at most `cache_bytes` of decoded objects kept; exports written in
    /// `scratch`.
    pub fn new(
        index: Index,
        backend: Arc<dyn Backend>,
        keys: Arc<dyn Keys>,
        prefixes: CameraPrefixes,
        cache_bytes: usize,
        scratch: PathBuf,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                index,
                backend,
                keys,
                prefixes,
                cache: Mutex::new(Lru::default()),
                stats: Mutex::new(CacheStats::default()),
                cache_bytes,
                scratch,
            }),
        }
    }

    /// The cache's counters now.
    pub fn stats(&self) -> CacheStats {
        *lock(&self.inner.stats)
    }

    /// Drops every cached object (a cold start, for benchmarks).
    pub fn clear_cache(&self) {
        lock(&self.inner.cache).slots.clear();
        lock(&self.inner.stats).held_bytes = 0;
    }

    fn prefix(&self, camera: &str) -> Option<Prefix> {
        self.inner
            .prefixes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(camera)
            .copied()
    }

    /// The decoded object of `row`, from the cache or the store.
    async fn load(&self, camera: &str, row: &ObjectRow) -> Result<Arc<Loaded>, StoreError> {
        let slot = {
            let mut c = lock(&self.inner.cache);
            c.tick += 1;
            let tick = c.tick;
            let e = c
                .slots
                .entry(row.key.clone())
                .or_insert_with(|| (tick, Slot::default()));
            e.0 = tick;
            e.1.clone()
        };
        if let Some(l) = slot.get() {
            lock(&self.inner.stats).hits += 1;
            return Ok(l.clone());
        }
        let got = slot.get_or_try_init(|| self.fetch(camera, row)).await;
        match got {
            Ok(l) => {
                self.evict();
                Ok(l.clone())
            }
            Err(e) => {
                // A failed load is not cached: the next reader tries again.
                let mut c = lock(&self.inner.cache);
                if c.slots
                    .get(&row.key)
                    .is_some_and(|(_, s)| Arc::ptr_eq(s, &slot))
                {
                    c.slots.remove(&row.key);
                }
                Err(e)
            }
        }
    }

    /// Keeps the decoded bytes under the budget, dropping the least recently used.
    fn evict(&self) {
        let mut c = lock(&self.inner.cache);
        let held = |c: &Lru| -> usize {
            c.slots
                .values()
                .filter_map(|(_, s)| s.get().map(|l| l.bytes))
                .sum()
        };
        let mut total = held(&c);
        while total > self.inner.cache_bytes && c.slots.len() > 1 {
            let Some(oldest) = c
                .slots
                .iter()
                .filter(|(_, (_, s))| s.initialized())
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((_, s)) = c.slots.remove(&oldest) {
                total -= s.get().map_or(0, |l| l.bytes);
            }
        }
        lock(&self.inner.stats).held_bytes = total as u64;
    }

    /// Ranged GET of the whole envelope (length from the index), open, decode.
    async fn fetch(&self, camera: &str, row: &ObjectRow) -> Result<Arc<Loaded>, StoreError> {
        let sealed = self
            .inner
            .backend
            .get_range(&row.key, Some(0..row.bytes))
            .await
            .map_err(source_err)?;
        lock(&self.inner.stats).fetched += 1;
        let header = envelope::Header::parse(&sealed).map_err(source_err)?;
        let dek = self
            .inner
            .keys
            .dek(&row.prefix, header.kid())
            .await
            .ok_or_else(|| source_err(format!("no data key {} for {}", header.kid(), row.key)))?;
        let (camera, key) = (camera.to_owned(), row.key.clone());
        tokio::task::spawn_blocking(move || decode(&camera, &key, &dek, &sealed))
            .await
            .map_err(source_err)?
            .map(Arc::new)
    }

    /// Starts loading the object after (`forward`) or before `row` in the background.
    fn prefetch(&self, camera: &str, row: &ObjectRow, forward: bool) {
        let (me, camera, row) = (self.clone(), camera.to_owned(), row.clone());
        tokio::spawn(async move {
            if let Ok(Some(next)) = me
                .inner
                .index
                .object_next(&row.prefix, row.start_ms, forward)
                .await
                && let Err(e) = me.load(&camera, &next).await
            {
                tracing::debug!(key = %next.key, error = %e, "prefetch failed");
            }
        });
    }

    async fn segment_at_impl(
        &self,
        camera: &str,
        at_ms: u64,
    ) -> Result<Option<SegmentRow>, StoreError> {
        let Some(p) = self.prefix(camera) else {
            return Ok(None);
        };
        let mut next = self.inner.index.object_from(&p, at_ms).await?;
        let at90 = at_ms.saturating_mul(90);
        while let Some(row) = next {
            let l = self.load(camera, &row).await?;
            if let Some(s) = l.rows.iter().find(|s| s.end_90k > at90) {
                self.prefetch(camera, &row, true);
                return Ok(Some(s.clone()));
            }
            next = self.inner.index.object_next(&p, row.start_ms, true).await?;
        }
        Ok(None)
    }

    async fn neighbour_impl(
        &self,
        camera: &str,
        start_90k: u64,
        forward: bool,
    ) -> Result<Option<SegmentRow>, StoreError> {
        let Some(p) = self.prefix(camera) else {
            return Ok(None);
        };
        let Some(row) = self.inner.index.object_holding(&p, start_90k / 90).await? else {
            return Ok(None);
        };
        let l = self.load(camera, &row).await?;
        let inside = if forward {
            l.rows.iter().find(|s| s.start_90k > start_90k)
        } else {
            l.rows.iter().rev().find(|s| s.start_90k < start_90k)
        };
        if let Some(s) = inside {
            return Ok(Some(s.clone()));
        }
        let mut at = row;
        loop {
            let Some(next) = self
                .inner
                .index
                .object_next(&p, at.start_ms, forward)
                .await?
            else {
                return Ok(None);
            };
            let l = self.load(camera, &next).await?;
            let pick = if forward {
                l.rows.first()
            } else {
                l.rows.last()
            };
            if let Some(s) = pick {
                // The player moves on in this direction: have the next object ready.
                self.prefetch(camera, &next, forward);
                return Ok(Some(s.clone()));
            }
            at = next;
        }
    }

    async fn segments_impl(
        &self,
        camera: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<SegmentRow>, StoreError> {
        let Some(p) = self.prefix(camera) else {
            return Ok(Vec::new());
        };
        let (from90, to90) = (from_ms.saturating_mul(90), to_ms.saturating_mul(90));
        let rows = self.inner.index.objects_between(&p, from_ms, to_ms).await?;
        // A few objects in flight at once: a long range is a store round trip per object.
        let mut loads = futures_util::stream::iter(rows.into_iter().map(|row| {
            let (me, camera) = (self.clone(), camera.to_owned());
            async move { me.load(&camera, &row).await }
        }))
        .buffered(LOADS_AT_ONCE);
        let mut out = Vec::new();
        while let Some(l) = loads.next().await {
            let l = l?;
            out.extend(
                l.rows
                    .iter()
                    .filter(|s| s.end_90k > from90 && s.start_90k < to90)
                    .cloned(),
            );
        }
        Ok(out)
    }

    async fn read_impl(&self, seg: &SegmentRow) -> Result<SegmentMedia, StoreError> {
        let (key, n) = seg
            .path
            .rsplit_once('#')
            .and_then(|(k, n)| Some((k, n.parse::<usize>().ok()?)))
            .ok_or_else(|| source_err(format!("not a cloud segment: {}", seg.path)))?;
        let row = self
            .inner
            .index
            .object(key)
            .await?
            .ok_or_else(|| source_err(format!("{key} is no longer stored")))?;
        let l = self.load(&seg.camera, &row).await?;
        let data = l
            .data
            .get(n)
            .ok_or_else(|| source_err(format!("{} has no segment {n}", row.key)))?;
        peercam_store::decode_media(seg.start_90k, &seg.index, data)
    }

    async fn spans_impl(
        &self,
        camera: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<Span>, StoreError> {
        let Some(p) = self.prefix(camera) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Span> = Vec::new();
        for r in self.inner.index.objects_between(&p, from_ms, to_ms).await? {
            let (s, e) = (r.start_ms.max(from_ms), r.end_ms.min(to_ms));
            match out.last_mut() {
                // Back-filled objects stay spans of their own (one timeline, 6.3.2).
                Some(last) if s <= last.end_ms + JOIN_GAP_MS && last.backfilled == r.backfilled => {
                    last.end_ms = last.end_ms.max(e);
                    last.bytes += r.bytes;
                }
                _ => out.push(Span {
                    start_ms: s,
                    end_ms: e,
                    bytes: r.bytes,
                    backfilled: r.backfilled,
                }),
            }
        }
        Ok(out)
    }
}

/// Opens and decodes one object into segment rows (CPU work, off the runtime).
fn decode(
    camera: &str,
    key: &str,
    dek: &envelope::Key32,
    sealed: &[u8],
) -> Result<Loaded, StoreError> {
    let plain = envelope::open(|_| Some(*dek), sealed).map_err(source_err)?;
    let (obj, summary) = Object::decode(&plain).map_err(source_err)?;
    let audio = audio_of(obj.audio);
    let run = i64::try_from(summary.start_ms()).unwrap_or(i64::MAX);
    let mut rows = Vec::with_capacity(obj.segments.len());
    let mut data = Vec::with_capacity(obj.segments.len());
    let mut bytes = 0;
    for (i, s) in obj.segments.into_iter().enumerate() {
        bytes += s.data.len() + s.index.len();
        rows.push(SegmentRow {
            id: i64::try_from(obj.seq)
                .unwrap_or(i64::MAX)
                .saturating_mul(64)
                + i as i64,
            camera: camera.to_owned(),
            run,
            start_90k: s.start_90k,
            end_90k: s.end_90k,
            frames: summary.segment_frames.get(i).copied().unwrap_or(0),
            bytes: s.data.len() as u64,
            path: format!("{key}#{i}"),
            index: s.index,
            sps: obj.sps.clone(),
            pps: obj.pps.clone(),
            audio,
            // Cloud objects carry G.711 only (the PU uploads its own recording).
            aac: None,
        });
        data.push(s.data);
    }
    Ok(Loaded { rows, data, bytes })
}

impl SegmentSource for CloudSource {
    fn segment_at<'a>(
        &'a self,
        camera: &'a str,
        at_ms: u64,
    ) -> SourceFuture<'a, Option<SegmentRow>> {
        Box::pin(self.segment_at_impl(camera, at_ms))
    }

    fn neighbour<'a>(
        &'a self,
        camera: &'a str,
        start_90k: u64,
        forward: bool,
    ) -> SourceFuture<'a, Option<SegmentRow>> {
        Box::pin(self.neighbour_impl(camera, start_90k, forward))
    }

    fn segments<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> SourceFuture<'a, Vec<SegmentRow>> {
        Box::pin(self.segments_impl(camera, from_ms, to_ms))
    }

    fn read<'a>(&'a self, seg: &'a SegmentRow) -> SourceFuture<'a, SegmentMedia> {
        Box::pin(self.read_impl(seg))
    }

    fn spans<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> SourceFuture<'a, Vec<Span>> {
        Box::pin(self.spans_impl(camera, from_ms, to_ms))
    }

    /// The CS keeps no events (alarms are the platform's and the card's); the list is
    /// spans only.
    fn events<'a>(
        &'a self,
        _camera: &'a str,
        _from_ms: u64,
        _to_ms: u64,
    ) -> SourceFuture<'a, Vec<Event>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn scratch_dir(&self) -> PathBuf {
        self.inner.scratch.clone()
    }
}
