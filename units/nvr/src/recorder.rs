//! Recording: one task per attached camera that follows its strategy, pulls the camera
//! when needed and cuts GOP-aligned segments; one writer that commits them in groups.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use peercam_base::{Backoff, DeviceId};
use peercam_net::Shutdown;
use peercam_record::strategy::{Retention, Strategy};
use peercam_signal::cmd::{DeviceRequest, PlatformAnswer};
use peercam_store::{AudioCodec, Draft, SegmentBuilder, Store, StoreError, to_8k};
use tokio::sync::{mpsc, oneshot, watch};

use crate::agent::PlatformReq;
use crate::cameras::{PROBE_WAIT, new_probe};
use crate::now_ms;
use crate::pull::{Flow, Item, pull};

/// What the recorder of one camera follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ctl {
    pub(crate) strategy: Strategy,
    /// End of the current alarm's post-roll, Unix ms (0: none).
    pub(crate) alarm_until_ms: u64,
}

/// What the recorder reports.
#[derive(Debug, Clone, Default)]
pub(crate) struct CamStatus {
    pub(crate) recording: bool,
    pub(crate) full: bool,
    pub(crate) last_error: Option<String>,
    /// Segments dropped because the writer could not keep up.
    pub(crate) dropped: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A segment for the writer, with what to do after it.
pub(crate) struct Job {
    draft: Draft,
    retention: Retention,
    status: Arc<Mutex<CamStatus>>,
}

/// What the writer does, in queue order.
pub(crate) enum Work {
    /// Commit a segment.
    Segment(Job),
    /// Delete every recording of a camera (after the segments queued before it).
    Forget(String, oneshot::Sender<Result<(), String>>),
}

/// The single writer: commits queued segments in groups (D10) and applies retention.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Work>,
}

/// Segments waiting for the disk, across cameras, before new ones are dropped.
const WRITE_QUEUE: usize = 512;
/// Most segments committed in one transaction.
const GROUP: usize = 64;

impl Writer {
    pub(crate) fn start(store: Store, shutdown: Shutdown) -> Self {
        let (tx, mut rx) = mpsc::channel::<Work>(WRITE_QUEUE);
        tokio::spawn(async move {
            let mut raised = Raised::new();
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
                            commit(&store, std::mem::take(&mut batch), &mut raised).await;
                            let r = store
                                .forget(&camera)
                                .await
                                .map(|_| ())
                                .map_err(|e| e.to_string());
                            let _ = done.send(r);
                        }
                    }
                    if batch.len() < GROUP {
                        next = rx.try_recv().ok();
                    }
                }
                commit(&store, batch, &mut raised).await;
            }
        });
        Self { tx }
    }

    /// Queues a segment; `false` when the queue is full (the segment is lost and counted).
    fn submit(&self, job: Job) -> bool {
        self.tx.try_send(Work::Segment(job)).is_ok()
    }

    /// Deletes `camera`'s recordings once everything queued before is written.
    pub(crate) async fn forget(&self, camera: &str) -> Result<(), String> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Work::Forget(camera.to_owned(), done))
            .await
            .map_err(|_| "the writer stopped".to_owned())?;
        rx.await.map_err(|_| "the writer stopped".to_owned())?
    }
}

/// What to do after a segment's commit: its retention, status and camera.
type After = (Retention, Arc<Mutex<CamStatus>>, String);

/// Storage-full events are raised at most once a minute per camera.
type Raised = std::collections::HashMap<String, u64>;

async fn commit(store: &Store, batch: Vec<Job>, raised: &mut Raised) {
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
                let last = raised.entry(j.draft.camera.clone()).or_insert(0);
                if now.saturating_sub(*last) >= 60_000 {
                    *last = now;
                    let detail = format!(
                        "disk full: {} oldest segments ({} KiB) deleted to make room",
                        r.deleted,
                        r.freed >> 10
                    );
                    let _ = store
                        .add_event(&j.draft.camera, now, "storage_full", &detail)
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
                        if first {
                            tracing::warn!(%camera, "camera quota reached; recording stops (not cyclic)");
                            let _ = store
                                .add_event(
                                    &camera,
                                    now,
                                    "storage_full",
                                    "the camera's quota is full",
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
                let _ = store
                    .add_event(
                        &camera,
                        now,
                        "storage_full",
                        "the disk was full; oldest recordings deleted",
                    )
                    .await;
            }
            Err(e) => {
                tracing::error!(%camera, error = %e, "segment not stored");
                lock(&status).last_error = Some(e.to_string());
            }
        }
    }
}

/// Looks for `camera` on the LAN; the first announcement signed by its key wins.
pub(crate) async fn discover(port: u16, camera: &DeviceId, public_key: &str) -> Option<String> {
    if port == 0 {
        return None;
    }
    let key = peercam_signal::register::parse_public_key(public_key).ok()?;
    let probe = new_probe();
    let answers = peercam_net::discover::probe(port, &probe, PROBE_WAIT)
        .await
        .ok()?;
    answers
        .into_iter()
        .filter(|a| &a.device_id == camera && a.verify(&probe, &key).is_ok())
        .find_map(|a| a.rtsp.into_iter().next())
}

/// One camera's recorder.
pub(crate) struct Recorder {
    pub(crate) camera: DeviceId,
    pub(crate) public_key: String,
    pub(crate) ctl: watch::Receiver<Ctl>,
    pub(crate) status: Arc<Mutex<CamStatus>>,
    pub(crate) lan: Arc<Mutex<Option<String>>>,
    pub(crate) writer: Writer,
    pub(crate) store: Store,
    pub(crate) platform: mpsc::Sender<PlatformReq>,
    pub(crate) segment_s: u32,
    pub(crate) discovery_port: u16,
    pub(crate) shutdown: Shutdown,
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

/// The state of one pull.
struct Cutter {
    camera: String,
    segment_90k: u64,
    audio: Option<AudioCodec>,
    builder: Option<SegmentBuilder>,
    run: i64,
    last_90k: u64,
    preroll: VecDeque<Gop>,
}

impl Cutter {
    fn finish(&mut self, end_90k: u64) -> Option<Draft> {
        self.builder.take().and_then(|b| b.finish(end_90k))
    }

    /// Adds a frame while recording; returns a finished segment when one was cut.
    fn record_video(&mut self, nals: &[Vec<u8>], key: bool, t90k: u64) -> Option<Draft> {
        let mut done = None;
        if let Some(b) = &self.builder
            && key
            && b.span_90k() + (t90k - self.last_90k) >= self.segment_90k
        {
            done = self.finish(t90k);
        }
        if self.builder.is_none() {
            if !key {
                return done;
            }
            if self.run == 0 {
                self.run = i64::try_from(t90k / 90).unwrap_or(i64::MAX);
            }
            self.builder = Some(SegmentBuilder::new(&self.camera, self.run, self.audio));
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

impl Recorder {
    fn decide(&self) -> (Strategy, peercam_record::strategy::Decision) {
        let c = self.ctl.borrow().clone();
        let d = c.strategy.decide(now_ms(), c.alarm_until_ms);
        (c.strategy, d)
    }

    pub(crate) async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        loop {
            if self.shutdown.is_triggered() || self.ctl.has_changed().is_err() {
                return;
            }
            let (_, d) = self.decide();
            if !d.pull {
                let wait = d.next_change_ms.map_or(Duration::from_secs(3600), |n| {
                    Duration::from_millis(n.saturating_sub(now_ms()).max(10))
                });
                tokio::select! {
                    r = self.ctl.changed() => if r.is_err() { return },
                    () = tokio::time::sleep(wait) => {}
                    () = self.shutdown.wait() => return,
                }
                continue;
            }
            match self.session().await {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::warn!(camera = %self.camera, error = %e, "recording stream unavailable");
                    let first = {
                        let mut s = lock(&self.status);
                        s.recording = false;
                        s.last_error.replace(e.clone()).as_deref() != Some(e.as_str())
                    };
                    if first {
                        let _ = self
                            .store
                            .add_event(self.camera.as_str(), now_ms(), "camera_lost", &e)
                            .await;
                    }
                    // The camera may have moved on the LAN.
                    *lock(&self.lan) = None;
                    let delay = backoff.next_delay(rand::random::<f64>());
                    let sleep = tokio::time::sleep(delay);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            () = &mut sleep => break,
                            r = self.ctl.changed() => if r.is_err() { return },
                            () = self.shutdown.wait() => return,
                        }
                    }
                }
            }
        }
    }

    /// 8.7.2.1 steps 16-18: ask the platform, connect (on the LAN if the camera was found
    /// there), record until the strategy no longer pulls.
    async fn session(&mut self) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.platform
            .send(PlatformReq::Request {
                request: DeviceRequest::RecorderStream {
                    camera: self.camera.clone(),
                },
                reply,
            })
            .await
            .map_err(|_| "the NVR is stopping".to_owned())?;
        let (url, token) = match rx.await {
            Ok(PlatformAnswer::Stream { url, token, .. }) => (url, token),
            Ok(PlatformAnswer::Refused { code, message }) => {
                return Err(format!(
                    "the platform refused the stream ({code}): {message}"
                ));
            }
            Ok(_) | Err(_) => return Err("no answer from the platform".into()),
        };
        let lan = lock(&self.lan).clone();
        let lan = match lan {
            Some(l) => Some(l),
            None => {
                let found = discover(self.discovery_port, &self.camera, &self.public_key).await;
                found.clone_into(&mut lock(&self.lan));
                found
            }
        };
        let url = match lan {
            Some(addr) => format!("rtsp://{addr}/live/{}?token={token}", self.camera),
            None => url,
        };
        let mut cut = Cutter {
            camera: self.camera.to_string(),
            segment_90k: u64::from(self.segment_s) * 90_000,
            audio: None,
            builder: None,
            run: 0,
            last_90k: 0,
            preroll: VecDeque::new(),
        };
        // Wall-clock anchors of this pull: the first frame's arrival.
        let mut anchor: Option<(u64, u64)> = None;
        let mut audio_anchor: Option<(u64, u64)> = None;
        let mut stop_reason: Option<String> = None;
        let codec: Mutex<Option<AudioCodec>> = Mutex::new(None);
        let shutdown = self.shutdown.clone();
        let mut ctl = self.ctl.clone();
        let status = self.status.clone();
        let writer = self.writer.clone();
        let camera = self.camera.to_string();
        let pulled = {
            let cut = &mut cut;
            let stop_reason = &mut stop_reason;
            let submit = |draft: Draft, retention: Retention| {
                if !writer.submit(Job {
                    draft,
                    retention,
                    status: status.clone(),
                }) {
                    lock(&status).dropped += 1;
                    tracing::warn!(camera = %camera, "writer queue full: segment dropped");
                }
            };
            let on_item = |item: Item| -> Flow {
                if shutdown.is_triggered() || ctl.has_changed().is_err() {
                    *stop_reason = Some("stopping".into());
                    return Flow::Stop;
                }
                if cut.audio.is_none() {
                    cut.audio = *lock(&codec);
                }
                let c = ctl.borrow_and_update().clone();
                let now = now_ms();
                let d = c.strategy.decide(now, c.alarm_until_ms);
                let full = lock(&status).full;
                let recording = d.record && !full;
                match item {
                    Item::Video { nals, key, pts } => {
                        let (wall, first) = *anchor.get_or_insert((now * 90, pts));
                        let t90k = wall + pts.saturating_sub(first);
                        if !d.pull {
                            if let Some(draft) = cut.finish(t90k) {
                                submit(draft, c.strategy.retention);
                            }
                            return Flow::Stop;
                        }
                        if recording {
                            if cut.builder.is_none() && !cut.preroll.is_empty() {
                                // The alarm fired: the pre-roll goes first.
                                for g in std::mem::take(&mut cut.preroll) {
                                    for b in g {
                                        match b {
                                            Buffered::Video { nals, key, t90k } => {
                                                if let Some(dr) = cut.record_video(&nals, key, t90k)
                                                {
                                                    submit(dr, c.strategy.retention);
                                                }
                                            }
                                            Buffered::Audio { bytes, t8k } => {
                                                if let Some(b) = &mut cut.builder {
                                                    b.push_audio(&bytes, t8k);
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                            if let Some(dr) = cut.record_video(&nals, key, t90k) {
                                submit(dr, c.strategy.retention);
                            }
                            lock(&status).recording = cut.builder.is_some();
                        } else {
                            if let Some(draft) = cut.finish(t90k) {
                                submit(draft, c.strategy.retention);
                            }
                            cut.run = 0;
                            lock(&status).recording = false;
                            if d.pre_roll_s > 0 {
                                cut.buffer(Buffered::Video { nals, key, t90k }, d.pre_roll_s, t90k);
                            }
                        }
                    }
                    Item::Audio { bytes, pts } => {
                        let (wall, first) =
                            *audio_anchor.get_or_insert_with(|| (to_8k(now * 90), pts));
                        let t8k = wall + pts.saturating_sub(first);
                        if let Some(b) = &mut cut.builder {
                            b.push_audio(&bytes, t8k);
                        } else if d.pre_roll_s > 0 {
                            let now90 = now * 90;
                            cut.buffer(Buffered::Audio { bytes, t8k }, d.pre_roll_s, now90);
                        }
                    }
                }
                Flow::Continue
            };
            pull(&url, |a| *lock(&codec) = a, on_item).await
        };
        // Whatever ends the pull, the open segment is committed.
        let retention = self.ctl.borrow().strategy.retention;
        if let Some(draft) = cut.finish(cut.last_90k + 3600) {
            let _ = self.writer.submit(Job {
                draft,
                retention,
                status: self.status.clone(),
            });
        }
        lock(&self.status).recording = false;
        pulled
    }
}
