//! The recorder library of peercam, shared by the NVR (H.626.4 8.7.2) and the camera's SD
//! card (8.7.3). The unit supplies the media (an RTSP pull, or the camera's own encoder)
//! and the strategy; this crate does the rest:
//!
//! * [`Cutter`] turns access units into GOP-aligned segments, keeping alarm pre-roll;
//! * [`Writer`] commits segments in groups (docs/security.md D10), applies retention and raises
//!   storage-full events, telling its owner ([`StorageFull`]) so the platform hears at once;
//! * [`serve::Media`] serves playback (RTSP, trick play) and export (HTTP MP4).

pub mod serve;
pub mod source;
pub mod webrtc;

pub use source::SegmentSource;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use peercam_base::DeviceId;
use peercam_net::Shutdown;
use peercam_net::agent::PlatformReq;
use peercam_record::strategy::{Retention, Strategy};
use peercam_signal::cmd::{DeviceReply, DeviceRequest, PlatformAnswer};
use peercam_signal::control::FieldError;
use peercam_signal::play::PlayVerdict;
use peercam_signal::record::{MAX_RANGE_MS, RecordedEvent, RecordedSpan, RecordingList};
use peercam_store::{AacConfig, AudioCodec, Draft, SegmentBuilder, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// A token to judge (8.4 steps 5-8 for recordings): the unit forwards it to the platform.
#[derive(Debug)]
pub struct AuthRequest {
    /// The token from the request.
    pub token: String,
    /// The client's address (for the audit log).
    pub client: String,
    /// Where the verdict goes.
    pub reply: oneshot::Sender<PlayVerdict>,
}

/// Passes the writer's storage-full notices on to the platform, each as a
/// [`DeviceRequest::StorageFull`] (H.626.4 6.1.9) for its camera, or for `own` when given
/// (a camera's SD card reports for the camera itself). Returns the sender to give
/// [`Writer::start`].
///
/// Nothing here holds the writer up: the notice channel is never waited on, and each answer
/// is awaited in a task of its own. A notice is lost when the platform link is down (the
/// device answers `unavailable` at once) or the queues are full; that is acceptable because
/// the next occurrence (a minute later while the disk stays full) sends again, and reading
/// the recording state raises the alarm too; the platform keeps one alarm per camera,
/// recorder and day however often it hears.
pub fn storage_full_to_platform(
    platform: mpsc::Sender<PlatformReq>,
    own: Option<DeviceId>,
) -> mpsc::Sender<StorageFull> {
    let (tx, mut rx) = Writer::notices();
    tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            let camera = match &own {
                Some(c) => c.clone(),
                None => match n.camera.parse::<DeviceId>() {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "storage-full notice for an unknown camera");
                        continue;
                    }
                },
            };
            let (reply, answer) = oneshot::channel();
            let request = PlatformReq::Request {
                request: DeviceRequest::storage_full(camera.clone(), &n.detail),
                reply,
            };
            if platform.send(request).await.is_err() {
                // The device is stopping.
                return;
            }
            tokio::spawn(async move {
                match answer.await {
                    Ok(PlatformAnswer::Stored { id }) => {
                        tracing::info!(%camera, %id, "storage-full alarm raised on the platform");
                    }
                    Ok(other) => {
                        tracing::warn!(%camera, answer = ?other, "storage-full report not taken");
                    }
                    Err(_) => {}
                }
            });
        }
    });
    tx
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the recorder of one camera follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctl {
    /// The strategy.
    pub strategy: Strategy,
    /// End of the current alarm's post-roll, Unix ms (0: none).
    pub alarm_until_ms: u64,
}

/// What the recorder reports.
#[derive(Debug, Clone, Default)]
pub struct CamStatus {
    /// Writing now.
    pub recording: bool,
    /// Stopped at a non-cyclic quota.
    pub full: bool,
    /// The last problem.
    pub last_error: Option<String>,
    /// Segments dropped because the writer could not keep up.
    pub dropped: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A segment for the writer, with what to do after it.
pub struct Job {
    draft: Draft,
    retention: Retention,
    status: Arc<Mutex<CamStatus>>,
}

impl Job {
    /// A finished segment, the camera's retention, and where to report.
    pub fn new(draft: Draft, retention: Retention, status: Arc<Mutex<CamStatus>>) -> Self {
        Self {
            draft,
            retention,
            status,
        }
    }
}

/// Why the writer could not delete a camera's recordings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForgetError {
    /// The writer task has ended (the unit is stopping).
    #[error("the writer stopped")]
    Stopped,
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What the writer does, in queue order.
enum Work {
    /// Commit a segment.
    Segment(Job),
    /// Delete every recording of a camera (after the segments queued before it).
    Forget(String, oneshot::Sender<Result<(), ForgetError>>),
}

/// The single writer: commits queued segments in groups (D10) and applies retention.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Work>,
}

/// Segments waiting for the disk, across cameras, before new ones are dropped.
const WRITE_QUEUE: usize = 512;
/// Most segments committed in one transaction.
const GROUP: usize = 64;

/// A storage-full occurrence (H.626.4 6.1.9 "storage full"), for the recorder's owner to
/// pass on to the platform. The writer sends one wherever it adds a `storage_full` event to
/// the store, and as seldom: once a minute per camera at most while the disk is full, once
/// per stop when a camera's own quota stops its (non-cyclic) recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFull {
    /// The camera whose recordings met the full store (its device id, as the store keys it).
    pub camera: String,
    /// A short reason, fit for the platform's alarm text (the store's event says more).
    pub detail: String,
}

/// Storage-full notices the writer could not hand over (the owner's queue was full) are
/// dropped: the event is in the store all the same, and the next occurrence sends anew.
const NOTICE_QUEUE: usize = 16;

impl Writer {
    /// Starts the writer task; it commits what is queued when `shutdown` fires, then ends.
    /// Storage-full occurrences go to `notices` when given (see [`Writer::notices`]); the
    /// writer never waits for their reader.
    pub fn start(
        store: Store,
        shutdown: Shutdown,
        notices: Option<mpsc::Sender<StorageFull>>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Work>(WRITE_QUEUE);
        tokio::spawn(async move {
            let mut alerts = Alerts {
                raised: Raised::new(),
                notices,
            };
            loop {
                let first = tokio::select! {
                    j = rx.recv() => j,
                    () = shutdown.wait() => {
                        // Commit what is queued, then stop.
                        rx.close();
                        rx.recv().await
                    }
                };
                let Some(first) = first else { return };
                let mut batch = Vec::new();
                let mut next = Some(first);
                while let Some(work) = next.take() {
                    match work {
                        Work::Segment(j) => batch.push(j),
                        Work::Forget(camera, done) => {
                            commit(&store, std::mem::take(&mut batch), &mut alerts).await;
                            let r = store
                                .forget(&camera)
                                .await
                                .map(|_| ())
                                .map_err(ForgetError::from);
                            let _ = done.send(r);
                        }
                    }
                    if batch.len() < GROUP {
                        next = rx.try_recv().ok();
                    }
                }
                commit(&store, batch, &mut alerts).await;
            }
        });
        Self { tx }
    }

    /// A channel for [`Writer::start`]'s storage-full notices, sized so a slow reader never
    /// holds the writer up (what does not fit is dropped, see [`StorageFull`]).
    pub fn notices() -> (mpsc::Sender<StorageFull>, mpsc::Receiver<StorageFull>) {
        mpsc::channel(NOTICE_QUEUE)
    }

    /// Queues a segment; `false` when the queue is full (the segment is lost and counted).
    pub fn submit(&self, job: Job) -> bool {
        self.tx.try_send(Work::Segment(job)).is_ok()
    }

    /// Deletes `camera`'s recordings once everything queued before is written.
    pub async fn forget(&self, camera: &str) -> Result<(), ForgetError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Work::Forget(camera.to_owned(), done))
            .await
            .map_err(|_| ForgetError::Stopped)?;
        rx.await.map_err(|_| ForgetError::Stopped)?
    }
}

/// What to do after a segment's commit: its retention, status and camera.
type After = (Retention, Arc<Mutex<CamStatus>>, String);

/// When storage-full events were last raised, per camera (Unix ms).
type Raised = std::collections::HashMap<String, u64>;

/// Storage-full events are raised at most once a minute per camera.
const RAISE_EVERY_MS: u64 = 60_000;

/// Where the writer's storage-full occurrences go: the store's events, and the owner.
struct Alerts {
    raised: Raised,
    notices: Option<mpsc::Sender<StorageFull>>,
}

impl Alerts {
    /// Whether `camera` may raise again now (once a minute); notes it if so.
    fn due(&mut self, camera: &str, now: u64) -> bool {
        let last = self.raised.entry(camera.to_owned()).or_insert(0);
        if now.saturating_sub(*last) >= RAISE_EVERY_MS {
            *last = now;
            true
        } else {
            false
        }
    }

    /// A `storage_full` event in the store (`detail`) and a notice to the owner (`reason`).
    async fn raise(&self, store: &Store, camera: &str, now: u64, detail: &str, reason: &str) {
        if let Err(e) = store.add_event(camera, now, "storage_full", detail).await {
            tracing::warn!(%camera, error = %e, "storage-full event not stored");
        }
        if let Some(tx) = &self.notices {
            let notice = StorageFull {
                camera: camera.to_owned(),
                detail: reason.to_owned(),
            };
            // Never wait: the writer is on the recording path.
            if tx.try_send(notice).is_err() {
                tracing::warn!(%camera, "storage-full notice dropped (its reader is behind or gone)");
            }
        }
    }
}

async fn commit(store: &Store, batch: Vec<Job>, alerts: &mut Alerts) {
    if batch.is_empty() {
        return;
    }
    let need: u64 = batch.iter().map(|j| j.draft.data.len() as u64).sum();
    match store.make_room(need).await {
        // The disk (or the store's share of it) was full: the oldest recordings went to make
        // room. The alarm system hears of it (6.1.9 "storage full").
        Ok(r) if r.deleted > 0 => {
            let now = now_ms();
            for j in &batch {
                if alerts.due(&j.draft.camera, now) {
                    let detail = format!(
                        "disk full: {} oldest segments ({} KiB) deleted to make room",
                        r.deleted,
                        r.freed >> 10
                    );
                    alerts
                        .raise(
                            store,
                            &j.draft.camera,
                            now,
                            &detail,
                            "disk full, oldest deleted",
                        )
                        .await;
                }
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot make room for recordings"),
    }
    let (drafts, rest): (Vec<Draft>, Vec<After>) = batch
        .into_iter()
        .map(|j| (j.draft.clone(), (j.retention, j.status, j.draft.camera)))
        .unzip();
    let results = store.commit(drafts).await;
    let now = now_ms();
    for (r, (retention, status, camera)) in results.into_iter().zip(rest) {
        match r {
            Ok(_) => {
                lock(&status).last_error = None;
                match store.retain(&camera, &retention, now).await {
                    Ok(k) if k.full => {
                        let first = {
                            let mut s = lock(&status);
                            !std::mem::replace(&mut s.full, true)
                        };
                        // Once per stop (`full` stays until the strategy changes): never
                        // held back by the minute limit, which would lose it for good.
                        if first {
                            alerts.raised.insert(camera.clone(), now);
                            tracing::warn!(%camera, "camera quota reached; recording stops (not cyclic)");
                            alerts
                                .raise(
                                    store,
                                    &camera,
                                    now,
                                    "the camera's quota is full",
                                    "quota full, recording stopped",
                                )
                                .await;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(%camera, error = %e, "retention failed"),
                }
            }
            Err(StoreError::Full(msg)) => {
                // The disk is full: free the oldest and go on with the next segment.
                tracing::warn!(%camera, %msg, "disk full; segment lost, freeing space");
                lock(&status).last_error = Some(format!("disk full: {msg}"));
                let _ = store.make_room(need.saturating_mul(2)).await;
                if alerts.due(&camera, now) {
                    alerts
                        .raise(
                            store,
                            &camera,
                            now,
                            "the disk was full; oldest recordings deleted",
                            "disk full, a segment lost",
                        )
                        .await;
                }
            }
            Err(e) => {
                tracing::error!(%camera, error = %e, "segment not stored");
                lock(&status).last_error = Some(e.to_string());
            }
        }
    }
}

/// Buffered media for alarm pre-roll, GOP by GOP.
type Gop = Vec<Buffered>;

enum Buffered {
    Video {
        nals: Vec<Vec<u8>>,
        key: bool,
        t90k: u64,
    },
    Audio {
        bytes: Vec<u8>,
        t8k: u64,
    },
}

/// Cuts one camera's media into GOP-aligned segments while its strategy records, and
/// keeps the last seconds in memory while it only waits for an alarm (pre-roll).
///
/// Times are absolute (90 kHz video, 8 kHz audio, since the Unix epoch).
pub struct Cutter {
    camera: String,
    segment_90k: u64,
    audio: Option<AudioCodec>,
    aac: Option<AacConfig>,
    builder: Option<SegmentBuilder>,
    run: i64,
    last_90k: u64,
    preroll: VecDeque<Gop>,
}

impl Cutter {
    /// A cutter for `camera` aiming at segments of `segment_s` seconds.
    pub fn new(camera: &str, segment_s: u32) -> Self {
        Self {
            camera: camera.to_owned(),
            segment_90k: u64::from(segment_s.max(1)) * 90_000,
            audio: None,
            aac: None,
            builder: None,
            run: 0,
            last_90k: 0,
            preroll: VecDeque::new(),
        }
    }

    /// The audio codec of the segments to come.
    pub fn set_audio(&mut self, audio: Option<AudioCodec>) {
        self.audio = audio;
    }

    /// The segments to come record AAC described by `aac` (their audio chunks are access
    /// units) instead of G.711.
    pub fn set_aac(&mut self, aac: Option<AacConfig>) {
        self.aac = aac;
    }

    /// Whether a segment is open (recording now).
    pub fn is_recording(&self) -> bool {
        self.builder.is_some()
    }

    /// The last video time seen.
    pub fn last_90k(&self) -> u64 {
        self.last_90k
    }

    /// Closes the open segment, if any, at `end_90k`.
    pub fn close(&mut self, end_90k: u64) -> Option<Draft> {
        self.builder.take().and_then(|b| b.finish(end_90k))
    }

    /// One access unit. `record`: the strategy records now; `pre_roll_s`: seconds to keep
    /// while it does not. Returns the segments finished by this frame.
    pub fn video(
        &mut self,
        nals: Vec<Vec<u8>>,
        key: bool,
        t90k: u64,
        record: bool,
        pre_roll_s: u32,
    ) -> Vec<Draft> {
        let mut done = Vec::new();
        if record {
            if self.builder.is_none() && !self.preroll.is_empty() {
                // The alarm fired: the pre-roll goes first.
                for g in std::mem::take(&mut self.preroll) {
                    for b in g {
                        match b {
                            Buffered::Video { nals, key, t90k } => {
                                done.extend(self.record_video(&nals, key, t90k))
                            }
                            Buffered::Audio { bytes, t8k } => {
                                if let Some(b) = &mut self.builder {
                                    b.push_audio(&bytes, t8k);
                                }
                            }
                        }
                    }
                }
            }
            done.extend(self.record_video(&nals, key, t90k));
        } else {
            done.extend(self.close(t90k));
            self.run = 0;
            self.last_90k = t90k;
            if pre_roll_s > 0 {
                self.buffer(Buffered::Video { nals, key, t90k }, pre_roll_s, t90k);
            } else {
                self.preroll.clear();
            }
        }
        done
    }

    /// G.711 bytes captured at `t8k`: into the open segment, or the pre-roll.
    pub fn audio(&mut self, bytes: Vec<u8>, t8k: u64, pre_roll_s: u32) {
        if let Some(b) = &mut self.builder {
            b.push_audio(&bytes, t8k);
        } else if pre_roll_s > 0 {
            let now = self.last_90k;
            self.buffer(Buffered::Audio { bytes, t8k }, pre_roll_s, now);
        }
    }

    /// Adds a frame while recording; returns a finished segment when one was cut.
    fn record_video(&mut self, nals: &[Vec<u8>], key: bool, t90k: u64) -> Option<Draft> {
        let mut done = None;
        if let Some(b) = &self.builder
            && key
            && b.span_90k() + t90k.saturating_sub(self.last_90k) >= self.segment_90k
        {
            done = self.close(t90k);
        }
        if self.builder.is_none() {
            if !key {
                self.last_90k = t90k;
                return done;
            }
            if self.run == 0 {
                self.run = i64::try_from(t90k / 90).unwrap_or(i64::MAX);
            }
            self.builder = Some(
                SegmentBuilder::new(&self.camera, self.run, self.audio).with_aac(self.aac.clone()),
            );
        }
        if let Some(b) = &mut self.builder
            && let Err(e) = b.push_video(nals, t90k, key)
        {
            tracing::debug!(camera = %self.camera, error = %e, "frame not recorded");
        }
        self.last_90k = t90k;
        done
    }

    fn buffer(&mut self, item: Buffered, pre_roll_s: u32, now_90k: u64) {
        match &item {
            Buffered::Video { key: true, .. } => self.preroll.push_back(vec![item]),
            _ => match self.preroll.back_mut() {
                Some(g) => g.push(item),
                None => return,
            },
        }
        // Keep the GOPs that cover the last `pre_roll_s` seconds.
        let keep_from = now_90k.saturating_sub(u64::from(pre_roll_s) * 90_000);
        while self.preroll.len() > 1 {
            let second_start = match self.preroll.get(1).and_then(|g| g.first()) {
                Some(Buffered::Video { t90k, .. }) => *t90k,
                _ => u64::MAX,
            };
            if second_start <= keep_from {
                self.preroll.pop_front();
            } else {
                break;
            }
        }
    }
}

/// The answer to `list_recordings` (8.7.2.2 / 8.7.3 / 8.7.1 record list) from `store`.
pub async fn list_reply(
    store: &dyn SegmentSource,
    camera: DeviceId,
    from_ms: u64,
    to_ms: u64,
) -> DeviceReply {
    if to_ms <= from_ms || to_ms - from_ms > MAX_RANGE_MS {
        return DeviceReply::Failed {
            code: "bad_range".into(),
            message: "the range must be 1 ms to 31 days".into(),
        };
    }
    let spans = match store.spans(camera.as_str(), from_ms, to_ms).await {
        Ok(s) => s,
        Err(e) => {
            return DeviceReply::Failed {
                code: "storage".into(),
                message: e.to_string(),
            };
        }
    };
    let events = store
        .events(camera.as_str(), from_ms, to_ms)
        .await
        .unwrap_or_default();
    DeviceReply::Recordings {
        list: RecordingList {
            camera,
            from_ms,
            to_ms,
            spans: spans
                .into_iter()
                .map(|s| RecordedSpan {
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                    bytes: s.bytes,
                    backfilled: s.backfilled,
                })
                .collect(),
            events: events
                .into_iter()
                .map(|e| RecordedEvent {
                    at_ms: e.at_ms,
                    kind: e.kind,
                    detail: e.detail,
                })
                .collect(),
        },
    }
}

/// `invalid`, naming the field, when `strategy` cannot run.
pub fn check_strategy(strategy: &Strategy) -> Option<DeviceReply> {
    let e = strategy.validate().err()?;
    let field = match &e {
        peercam_record::Error::Strategy { field, .. } => format!("strategy.{field}"),
        _ => "strategy".into(),
    };
    Some(DeviceReply::Invalid {
        errors: vec![FieldError::new(field, e.to_string())],
    })
}

#[cfg(test)]
mod tests;
