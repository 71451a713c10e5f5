//! Recording to cloud storage (H.626.4 8.7.1, Cp; docs/design/cloud-storage.md): the
//! camera follows its cloud strategy with the SD card's code ([`crate::sd::follow`]:
//! continuous, weekly schedule, alarm with pre- and post-roll), packs finished segments
//! into `PCO1` objects of about `object_s`, keeps them in a bounded backlog until the CS
//! acknowledged them, and uploads them over two lanes (live: newest first; back-fill:
//! oldest first), as [`peercam_cloud::upload::Outbox`] decides.
//!
//! * Acknowledged means durable: an object leaves the backlog only on the CS's 200/201.
//! * Errors: network and 5xx retry with the jittered back-off of `peercam_base::backoff`;
//!   401 refreshes the grant (Ps `cloud_grant`, also done at two thirds of its life); 507
//!   with a cyclic strategy asks the CS to delete the oldest files (`prune`, 8.7.1) and
//!   retries; without one, cloud recording stops and `storage_full` is raised (6.1.9).
//! * The backlog: on a camera with an SD card, a spool directory on the card
//!   (`cloud-outbox/`, one file per object, written and synced before the first attempt, so
//!   a restart resumes with the same keys and bytes), bounded by `cloud_spool_mb`; without
//!   a card, a RAM ring of `cloud_backlog_mb`. When full the oldest object not in flight is
//!   dropped and counted. (The design's outbox rows in the card's own store are not built;
//!   see the design note.)
//! * The next sequence number is kept in the camera's state directory and raised past the
//!   CS's `last_seq` at every `hello`, so numbers never repeat.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use peercam_base::DeviceId;
use peercam_cloud::Prefix;
use peercam_cloud::object::{self, Object, Segment};
use peercam_cloud::upload::{Action, Answer, Lane, Outbox};
use peercam_net::Shutdown;
use peercam_record::strategy::Strategy;
use peercam_recorder::{CamStatus, Ctl, now_ms};
use peercam_signal::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use peercam_signal::record::{CloudRecordingState, RecordingState};
use peercam_store::Draft;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use crate::agent::PlatformRequest;
use crate::media::hub::MediaHub;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn failed(code: &str, message: impl Into<String>) -> DeviceReply {
    DeviceReply::Failed {
        code: code.into(),
        message: message.into(),
    }
}

/// What the platform set (`set_cloud_recording`), saved in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    strategy: Strategy,
    cs_url: String,
    prefix: Prefix,
    grant: String,
}

/// Where uploads go and with which grant.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    cs_url: String,
    prefix: Prefix,
    grant: String,
    /// When the grant should be refreshed (two thirds of its life), Unix s.
    refresh_at: u64,
}

/// The `exp` of a `pcg1` grant (read, not verified: the CS verifies), Unix s.
fn grant_exp(grant: &str) -> Option<u64> {
    let claims = grant.strip_prefix("pcg1.")?.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some((v.get("iat")?.as_u64()?, v.get("exp")?.as_u64()?)).map(|(_, exp)| exp)
}

fn refresh_at(grant: &str) -> u64 {
    let now = now_ms() / 1000;
    match grant_exp(grant) {
        Some(exp) if exp > now => now + (exp - now) * 2 / 3,
        _ => now,
    }
}

/// Counters and the pool as last heard, for `get_cloud_recording`.
#[derive(Debug, Default, Clone)]
struct Report {
    backlog_objects: u64,
    backlog_bytes: u64,
    acked: u64,
    lost: u64,
    pruned: u64,
    last_ack_ms: Option<u64>,
    used: u64,
    quota: Option<u64>,
    next_seq: u64,
}

/// The camera's cloud recorder.
pub(crate) struct Cloud {
    camera: DeviceId,
    ctl: watch::Sender<Ctl>,
    status: Arc<Mutex<CamStatus>>,
    target: watch::Sender<Option<Target>>,
    report: Arc<Mutex<Report>>,
    path: PathBuf,
    resume: tokio::sync::Notify,
}

/// Settings of the cloud recorder (`pu.toml`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The RAM backlog, bytes.
    pub(crate) backlog_bytes: u64,
    /// Target object length, ms.
    pub(crate) object_ms: u64,
    /// The spool directory on the SD card, if the camera has one, and its bound, bytes.
    pub(crate) spool: Option<(PathBuf, u64)>,
}

impl Cloud {
    /// Loads the saved strategy and starts following it and uploading.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        camera: DeviceId,
        hub: Arc<MediaHub>,
        max_fps: u8,
        state_dir: &std::path::Path,
        settings: Settings,
        tls: Option<peercam_net::rustls::ClientConfig>,
        platform: mpsc::Sender<PlatformRequest>,
        shutdown: Shutdown,
    ) -> Arc<Self> {
        let path = state_dir.join("cloud-strategy.json");
        let saved: Option<Saved> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let (ctl, ctl_rx) = watch::channel(Ctl {
            strategy: saved
                .as_ref()
                .map(|s| s.strategy.clone())
                .unwrap_or_default(),
            alarm_until_ms: 0,
        });
        let (target, target_rx) = watch::channel(saved.map(|s| Target {
            refresh_at: refresh_at(&s.grant),
            cs_url: s.cs_url,
            prefix: s.prefix,
            grant: s.grant,
        }));
        let seq_path = state_dir.join("cloud-seq");
        let next_seq = std::fs::read_to_string(&seq_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let report = Arc::new(Mutex::new(Report {
            next_seq,
            ..Report::default()
        }));
        let cloud = Arc::new(Self {
            camera: camera.clone(),
            ctl,
            status: Arc::new(Mutex::new(CamStatus::default())),
            target,
            report,
            path,
            resume: tokio::sync::Notify::new(),
        });
        let (drafts_tx, drafts) = mpsc::unbounded_channel();
        {
            let (status, sd) = (cloud.status.clone(), shutdown.clone());
            let name = camera.to_string();
            tokio::spawn(async move {
                crate::sd::follow(ctl_rx, &hub, max_fps, &name, &status, &sd, |dr, _| {
                    let _ = drafts_tx.send(dr);
                })
                .await;
            });
        }
        let http = {
            let b = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60));
            match tls {
                Some(t) => b.use_preconfigured_tls(t),
                None => b,
            }
            .build()
            .unwrap_or_default()
        };
        let up = Uploader {
            cloud: cloud.clone(),
            http,
            platform,
            settings,
            seq_path,
            ring: BTreeMap::new(),
            pending: Vec::new(),
            last_draft: Instant::now(),
            epoch: Instant::now(),
            helloed: None,
        };
        tokio::spawn(up.run(drafts, target_rx, shutdown));
        cloud
    }

    /// Whether `command` is for the cloud recorder.
    pub(crate) fn handles(command: &DeviceCommand) -> bool {
        matches!(
            command,
            DeviceCommand::SetCloudRecording { .. }
                | DeviceCommand::GetCloudRecording
                | DeviceCommand::CloudResume
        )
    }

    /// An alarm or manual event: extends the alarm strategy's recording (post-roll).
    pub(crate) fn mark_event(&self) {
        let now = now_ms();
        let s = self.ctl.borrow().strategy.clone();
        self.ctl
            .send_modify(|c| c.alarm_until_ms = s.alarm_until(now, c.alarm_until_ms));
    }

    fn state(&self) -> CloudRecordingState {
        let st = lock(&self.status).clone();
        let r = lock(&self.report).clone();
        CloudRecordingState {
            recording: RecordingState {
                camera: self.camera.clone(),
                strategy: self.ctl.borrow().strategy.clone(),
                recording: st.recording,
                used_bytes: r.used,
                full: st.full,
                oldest_ms: None,
                last_error: st.last_error,
            },
            cs_url: self.target.borrow().as_ref().map(|t| t.cs_url.clone()),
            backlog_objects: r.backlog_objects,
            backlog_bytes: r.backlog_bytes,
            acked_objects: r.acked,
            lost_objects: r.lost,
            pruned_objects: r.pruned,
            last_ack_ms: r.last_ack_ms,
            quota_bytes: r.quota,
            next_seq: r.next_seq,
        }
    }

    fn save(&self, saved: &Saved) -> std::io::Result<()> {
        use std::io::Write as _;
        let bytes = serde_json::to_vec_pretty(saved).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }

    /// 8.7.1: `set_cloud_recording` and `get_cloud_recording`.
    pub(crate) fn execute(&self, command: DeviceCommand) -> DeviceReply {
        match command {
            DeviceCommand::SetCloudRecording {
                strategy,
                cs_url,
                prefix,
                grant,
            } => {
                if let Some(invalid) = peercam_recorder::check_strategy(&strategy) {
                    return invalid;
                }
                let Ok(prefix) = prefix.parse::<Prefix>() else {
                    return DeviceReply::Invalid {
                        errors: vec![peercam_signal::control::FieldError::new(
                            "prefix",
                            "s and 22 base64url characters",
                        )],
                    };
                };
                if !(cs_url.starts_with("https://") || cs_url.starts_with("http://")) {
                    return DeviceReply::Invalid {
                        errors: vec![peercam_signal::control::FieldError::new(
                            "cs_url",
                            "an https:// URL",
                        )],
                    };
                }
                let saved = Saved {
                    strategy: strategy.clone(),
                    cs_url: cs_url.trim_end_matches('/').to_owned(),
                    prefix,
                    grant,
                };
                if let Err(e) = self.save(&saved) {
                    return failed("storage", format!("saving the cloud strategy: {e}"));
                }
                lock(&self.status).full = false;
                self.ctl.send_modify(|c| c.strategy = strategy);
                self.target.send_replace(Some(Target {
                    refresh_at: refresh_at(&saved.grant),
                    cs_url: saved.cs_url,
                    prefix: saved.prefix,
                    grant: saved.grant,
                }));
                // A plan change or a new strategy: a stopped outbox tries again at once.
                self.resume.notify_one();
                DeviceReply::CloudRecording {
                    state: Box::new(self.state()),
                }
            }
            DeviceCommand::GetCloudRecording => DeviceReply::CloudRecording {
                state: Box::new(self.state()),
            },
            // 6.1.13: the account's quota was raised (a plan change); a camera that stopped
            // full tries again at once, without waiting for its back-off.
            DeviceCommand::CloudResume => {
                if std::mem::take(&mut lock(&self.status).full) {
                    tracing::info!("cloud recording resumes (quota raised)");
                }
                self.resume.notify_one();
                DeviceReply::CloudRecording {
                    state: Box::new(self.state()),
                }
            }
            _ => failed("unsupported", "not a cloud recording command"),
        }
    }
}

/// A packed object in the backlog.
struct Packed {
    key: String,
    /// The bytes, in RAM (no card) ...
    body: Option<Arc<Vec<u8>>>,
    /// ... or in the spool file.
    file: Option<PathBuf>,
    len: u64,
    sha256: String,
}

/// What a finished request tells the uploader.
enum Done {
    /// The answer, and the bytes newly stored (201).
    Upload(Lane, u64, Answer, u64),
    Prune(Option<PruneResp>),
    Grant(Option<(String, u64, String)>),
    Hello(Option<HelloResp>),
}

#[derive(Debug, Deserialize)]
struct HelloResp {
    last_seq: Option<u64>,
    used: u64,
    quota: u64,
}

#[derive(Debug, Deserialize)]
struct PruneResp {
    deleted: Vec<serde_json::Value>,
    used: u64,
    quota: u64,
}

struct Uploader {
    cloud: Arc<Cloud>,
    http: reqwest::Client,
    platform: mpsc::Sender<PlatformRequest>,
    settings: Settings,
    seq_path: PathBuf,
    ring: BTreeMap<u64, Packed>,
    /// Segments of the object being filled (one run, contiguous).
    pending: Vec<Draft>,
    last_draft: Instant,
    epoch: Instant,
    /// The prefix `hello` was answered for.
    helloed: Option<Prefix>,
}

/// An idle gap after which the object being filled is packed (segments are 2 s).
const IDLE_PACK: Duration = Duration::from_secs(3);

impl Uploader {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn run(
        mut self,
        mut drafts: mpsc::UnboundedReceiver<Draft>,
        mut target: watch::Receiver<Option<Target>>,
        shutdown: Shutdown,
    ) {
        let cyclic = |c: &Cloud| c.ctl.borrow().strategy.retention.cyclic;
        let mut outbox = Outbox::new(cyclic(&self.cloud), rand::random());
        let mut outbox_cyclic = cyclic(&self.cloud);
        self.load_spool(&mut outbox);
        let (done_tx, mut done) = mpsc::unbounded_channel::<Done>();
        let mut hello_at = self.now();
        let mut hello_busy = false;
        let mut grant_busy = false;
        loop {
            // A strategy change of the overwrite rule: a new outbox with the same backlog.
            if cyclic(&self.cloud) != outbox_cyclic && !grant_busy {
                outbox_cyclic = cyclic(&self.cloud);
                outbox = Outbox::new(outbox_cyclic, rand::random());
                for seq in self.ring.keys() {
                    outbox.pack(*seq);
                }
            }
            let now = self.now();
            let t = target.borrow_and_update().clone();
            // 8.7.1: the camera registers with the CS (`hello`) and learns its last seq.
            if let Some(t) = &t
                && self.helloed != Some(t.prefix)
                && !hello_busy
                && now >= hello_at
            {
                hello_busy = true;
                let (http, t, tx) = (self.http.clone(), t.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(Done::Hello(hello(&http, &t).await));
                });
            }
            // Two thirds of the grant's life: refresh it.
            if let Some(t) = &t
                && now_ms() / 1000 >= t.refresh_at
                && !grant_busy
            {
                grant_busy = true;
                self.spawn_grant(&done_tx);
            }
            if let Some(t) = &t {
                while let Some(action) = outbox.poll(now) {
                    match action {
                        Action::Upload { lane, seq } => {
                            let Some(p) = self.ring.get(&seq) else {
                                outbox.lose(seq);
                                continue;
                            };
                            let (http, t, tx) = (self.http.clone(), t.clone(), done_tx.clone());
                            let (key, body, file, sha) = (
                                p.key.clone(),
                                p.body.clone(),
                                p.file.clone(),
                                p.sha256.clone(),
                            );
                            tokio::spawn(async move {
                                let body = match (body, file) {
                                    (Some(b), _) => Some(b),
                                    (None, Some(f)) => tokio::fs::read(&f).await.ok().map(Arc::new),
                                    (None, None) => None,
                                };
                                let (a, stored) = match body {
                                    Some(body) => put(&http, &t, &key, body, &sha).await,
                                    // The spool file is gone: these bytes cannot be sent.
                                    None => (Answer::Rejected, 0),
                                };
                                let _ = tx.send(Done::Upload(lane, seq, a, stored));
                            });
                        }
                        Action::Prune { need } => {
                            let (http, t, tx) = (self.http.clone(), t.clone(), done_tx.clone());
                            tokio::spawn(async move {
                                let _ = tx.send(Done::Prune(prune(&http, &t, need).await));
                            });
                        }
                        Action::RefreshGrant => {
                            if !grant_busy {
                                grant_busy = true;
                                self.spawn_grant(&done_tx);
                            }
                        }
                        Action::ReportFull { need } => {
                            lock(&self.cloud.status).full = true;
                            let detail = format!("cloud storage full ({need} more bytes needed)");
                            tracing::warn!(%detail, "cloud recording stopped");
                            self.storage_full(&detail);
                        }
                    }
                }
            }
            self.take_finished(&mut outbox);
            let wake = outbox
                .next_wake()
                .map(|w| Duration::from_millis(w.saturating_sub(now)))
                .unwrap_or(Duration::from_secs(5))
                .min(Duration::from_secs(5))
                .max(Duration::from_millis(5));
            tokio::select! {
                d = drafts.recv() => match d {
                    Some(d) => self.add_draft(d, &mut outbox),
                    None => return,
                },
                Some(d) = done.recv() => match d {
                    Done::Upload(lane, seq, a, stored) => {
                        lock(&self.cloud.report).used += stored;
                        outbox.answer(self.now(), lane, seq, a);
                    }
                    Done::Prune(r) => {
                        if let Some(r) = &r {
                            let mut rep = lock(&self.cloud.report);
                            rep.pruned += r.deleted.len() as u64;
                            rep.used = r.used;
                            rep.quota = Some(r.quota);
                            tracing::info!(deleted = r.deleted.len(), "the CS deleted the oldest objects (8.7.1)");
                        }
                        outbox.prune_done(self.now(), r.is_some());
                    }
                    Done::Grant(g) => {
                        grant_busy = false;
                        let ok = g.is_some();
                        if let Some((grant, _exp, cs_url)) = g {
                            self.cloud.target.send_modify(|t| {
                                if let Some(t) = t {
                                    t.refresh_at = refresh_at(&grant);
                                    t.grant = grant;
                                    t.cs_url = cs_url;
                                }
                            });
                        } else if let Some(t) = target.borrow().clone() {
                            // Try again in a minute.
                            let later = (now_ms() / 1000 + 60).min(grant_exp(&t.grant).unwrap_or(0).max(now_ms() / 1000 + 5));
                            self.cloud.target.send_modify(|t| {
                                if let Some(t) = t {
                                    t.refresh_at = later;
                                }
                            });
                        }
                        outbox.grant_done(self.now(), ok);
                    }
                    Done::Hello(h) => {
                        hello_busy = false;
                        match h {
                            Some(h) => {
                                self.helloed = target.borrow().as_ref().map(|t| t.prefix);
                                let mut rep = lock(&self.cloud.report);
                                rep.used = h.used;
                                rep.quota = Some(h.quota);
                                if let Some(last) = h.last_seq
                                    && last >= rep.next_seq
                                {
                                    rep.next_seq = last + 1;
                                }
                            }
                            None => hello_at = self.now() + 2000,
                        }
                    }
                },
                r = target.changed() => if r.is_err() { return },
                () = self.cloud.resume.notified() => outbox.resume(),
                () = tokio::time::sleep(wake) => {
                    if !self.pending.is_empty() && self.last_draft.elapsed() >= IDLE_PACK {
                        self.pack(&mut outbox);
                    }
                }
                () = shutdown.wait() => return,
            }
        }
    }

    /// After a restart: the objects spooled on the card and not yet acknowledged go back
    /// into the outbox, with their keys and bytes (those of another prefix, an earlier
    /// binding, are deleted).
    fn load_spool(&mut self, outbox: &mut Outbox) {
        let Some((dir, _)) = self.settings.spool.clone() else {
            return;
        };
        let Some(prefix) = self.cloud.target.borrow().as_ref().map(|t| t.prefix) else {
            return;
        };
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let seq = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".pco")?
                    .parse()
                    .ok()?;
                Some((seq, path))
            })
            .collect();
        found.sort();
        for (seq, path) in found {
            let checked = std::fs::read(&path).ok().and_then(|body| {
                let (obj, _) = Object::decode(&body).ok()?;
                let key = obj.key().ok()?;
                (obj.prefix == prefix && obj.seq == seq).then(|| (key.to_string(), body))
            });
            let Some((key, body)) = checked else {
                tracing::info!(file = %path.display(), "dropping a spooled object of another binding or unreadable");
                let _ = std::fs::remove_file(&path);
                continue;
            };
            if !outbox.pack(seq) {
                continue;
            }
            self.ring.insert(
                seq,
                Packed {
                    key,
                    sha256: hex::encode(Sha256::digest(&body)),
                    len: body.len() as u64,
                    body: None,
                    file: Some(path),
                },
            );
            let mut rep = lock(&self.cloud.report);
            if rep.next_seq <= seq {
                rep.next_seq = seq + 1;
            }
        }
        if !self.ring.is_empty() {
            tracing::info!(
                objects = self.ring.len(),
                "cloud backlog resumed from the card"
            );
        }
        let mut rep = lock(&self.cloud.report);
        self.update_backlog(&mut rep);
    }

    fn spawn_grant(&self, done: &mpsc::UnboundedSender<Done>) {
        let (platform, camera, tx) = (
            self.platform.clone(),
            self.cloud.camera.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            let (reply, answer) = oneshot::channel();
            let request = PlatformRequest::Request {
                request: DeviceRequest::CloudGrant { camera },
                reply,
            };
            let g = if platform.send(request).await.is_ok() {
                match answer.await {
                    Ok(PlatformAnswer::CloudGrant {
                        grant,
                        expires_at,
                        cs_url,
                    }) => Some((grant, expires_at, cs_url)),
                    other => {
                        tracing::info!(answer = ?other, "no fresh cloud grant");
                        None
                    }
                }
            } else {
                None
            };
            let _ = tx.send(Done::Grant(g));
        });
    }

    fn storage_full(&self, detail: &str) {
        let (platform, request) = (
            self.platform.clone(),
            DeviceRequest::storage_full(self.cloud.camera.clone(), detail),
        );
        tokio::spawn(async move {
            let (reply, answer) = oneshot::channel();
            if platform
                .send(PlatformRequest::Request { request, reply })
                .await
                .is_ok()
            {
                let _ = answer.await;
            }
        });
    }

    /// Frees acknowledged objects, forgets lost ones, and keeps the counters.
    fn take_finished(&mut self, outbox: &mut Outbox) {
        let acked = outbox.take_acked();
        let lost = outbox.take_lost();
        if acked.is_empty() && lost.is_empty() {
            return;
        }
        for seq in &acked {
            if let Some(p) = self.ring.remove(seq) {
                remove_spooled(&p);
            }
        }
        for seq in &lost {
            if let Some(p) = self.ring.remove(seq) {
                remove_spooled(&p);
            }
            tracing::warn!(seq, "cloud object lost before upload");
        }
        let mut rep = lock(&self.cloud.report);
        rep.acked += acked.len() as u64;
        rep.lost += lost.len() as u64;
        if !acked.is_empty() {
            rep.last_ack_ms = Some(now_ms());
        }
        self.update_backlog(&mut rep);
    }

    fn update_backlog(&self, rep: &mut Report) {
        rep.backlog_objects = self.ring.len() as u64;
        rep.backlog_bytes = self.ring.values().map(|p| p.len).sum();
    }

    /// A finished segment: joins the object being filled, which is packed when it is long
    /// enough or the segment does not continue it.
    fn add_draft(&mut self, d: Draft, outbox: &mut Outbox) {
        self.last_draft = Instant::now();
        if !self.pending.is_empty() && !joins(&self.pending, &d) {
            self.pack(outbox);
        }
        self.pending.push(d);
        if span_ms(&self.pending) >= self.settings.object_ms {
            self.pack(outbox);
        }
    }

    /// Packs the segments being filled into an object (`PCO1`) with the next sequence
    /// number, adds it to the backlog and the outbox.
    fn pack(&mut self, outbox: &mut Outbox) {
        let segments = std::mem::take(&mut self.pending);
        let Some(first) = segments.first() else {
            return;
        };
        let Some(prefix) = self.cloud.target.borrow().as_ref().map(|t| t.prefix) else {
            return;
        };
        let seq = lock(&self.cloud.report).next_seq;
        let obj = Object {
            prefix,
            seq,
            audio: first.audio.map(|a| match a {
                peercam_store::AudioCodec::Pcmu => object::AudioCodec::Pcmu,
                peercam_store::AudioCodec::Pcma => object::AudioCodec::Pcma,
                peercam_store::AudioCodec::G722 => object::AudioCodec::G722,
            }),
            sps: first.sps.clone(),
            pps: first.pps.clone(),
            segments: segments
                .into_iter()
                .map(|d| Segment {
                    start_90k: d.start_90k,
                    end_90k: d.end_90k,
                    index: d.index,
                    data: d.data,
                })
                .collect(),
        };
        let (key, body) = match obj.key().and_then(|k| Ok((k, obj.encode()?))) {
            Ok(kb) => kb,
            Err(e) => {
                tracing::warn!(error = %e, "segments not packed for the cloud");
                lock(&self.cloud.status).last_error = Some(format!("packing: {e}"));
                return;
            }
        };
        let sha256 = hex::encode(Sha256::digest(&body));
        {
            let mut rep = lock(&self.cloud.report);
            rep.next_seq = seq + 1;
        }
        if let Err(e) = write_seq(&self.seq_path, seq + 1) {
            tracing::warn!(error = %e, "cannot keep the next cloud sequence number");
        }
        let len = body.len() as u64;
        // On a card the object is written (and synced) before its first attempt.
        let file = self.settings.spool.as_ref().and_then(|(dir, _)| {
            let path = dir.join(format!("{seq:010}.pco"));
            match write_durable(dir, &path, &body) {
                Ok(()) => Some(path),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot spool a cloud object on the card; kept in RAM");
                    None
                }
            }
        });
        self.ring.insert(
            seq,
            Packed {
                key: key.to_string(),
                body: file.is_none().then(|| Arc::new(body)),
                file,
                len,
                sha256,
            },
        );
        outbox.pack(seq);
        // The backlog is bounded: the oldest object not in flight goes first.
        let limit = self
            .settings
            .spool
            .as_ref()
            .map_or(self.settings.backlog_bytes, |(_, max)| *max);
        let mut total: u64 = self.ring.values().map(|p| p.len).sum();
        let oldest: Vec<u64> = self.ring.keys().copied().collect();
        for s in oldest {
            if total <= limit {
                break;
            }
            if s != seq
                && outbox.state(s) == Some(peercam_cloud::upload::State::Packed)
                && outbox.lose(s)
            {
                total -= self.ring.get(&s).map_or(0, |p| p.len);
            }
        }
        self.take_finished(outbox);
        let mut rep = lock(&self.cloud.report);
        self.update_backlog(&mut rep);
    }
}

/// Whether segment `d` may join the object being filled (`pending`, not empty): the same
/// run, starting where the last one ends, the same parameter sets, and room left.
fn joins(pending: &[Draft], d: &Draft) -> bool {
    let Some(last) = pending.last() else {
        return true;
    };
    let bytes: usize = pending.iter().map(|p| p.data.len() + p.index.len()).sum();
    last.run == d.run
        && last.end_90k == d.start_90k
        && last.sps == d.sps
        && last.pps == d.pps
        && pending.len() < object::MAX_SEGMENTS
        && bytes + d.data.len() + d.index.len() + 4096 < object::MAX_OBJECT
}

/// The time the segments span, ms.
fn span_ms(segments: &[Draft]) -> u64 {
    match (segments.first(), segments.last()) {
        (Some(a), Some(b)) => b.end_90k.saturating_sub(a.start_90k) / 90,
        _ => 0,
    }
}

fn remove_spooled(p: &Packed) {
    if let Some(f) = &p.file
        && let Err(e) = std::fs::remove_file(f)
    {
        tracing::warn!(file = %f.display(), error = %e, "cannot remove a spooled cloud object");
    }
}

/// Writes `path` in `dir` durably: a temporary file, fsync, rename, fsync of the directory.
fn write_durable(
    dir: &std::path::Path,
    path: &std::path::Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn write_seq(path: &std::path::Path, next: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, next.to_string())?;
    std::fs::rename(&tmp, path)
}

async fn hello(http: &reqwest::Client, t: &Target) -> Option<HelloResp> {
    let r = http
        .post(format!("{}/cp/v1/hello", t.cs_url))
        .bearer_auth(&t.grant)
        .json(&serde_json::json!({ "prefix": t.prefix }))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        tracing::info!(status = %r.status(), "cloud hello refused");
        return None;
    }
    r.json().await.ok()
}

async fn put(
    http: &reqwest::Client,
    t: &Target,
    key: &str,
    body: Arc<Vec<u8>>,
    sha256: &str,
) -> (Answer, u64) {
    let r = match http
        .put(format!("{}/cp/v1/o/{key}", t.cs_url))
        .bearer_auth(&t.grant)
        .header("x-pc-sha256", sha256)
        .body(body.as_ref().clone())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%key, error = %e, "cloud upload failed");
            return (Answer::Retry, 0);
        }
    };
    let status = r.status().as_u16();
    let answer = match status {
        201 => {
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            let bytes = v
                .get("bytes")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            return (Answer::Stored, bytes);
        }
        200 => Answer::Stored,
        401 => Answer::Expired,
        507 => {
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            let need = v
                .get("need")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(body.len() as u64);
            Answer::Full { need }
        }
        400 | 409 | 413 => {
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            tracing::warn!(%key, status, answer = %v, "the CS refused an object");
            Answer::Rejected
        }
        _ => {
            tracing::debug!(%key, status, "cloud upload to retry");
            Answer::Retry
        }
    };
    (answer, 0)
}

async fn prune(http: &reqwest::Client, t: &Target, need: u64) -> Option<PruneResp> {
    let r = http
        .post(format!("{}/cp/v1/prune", t.cs_url))
        .bearer_auth(&t.grant)
        .json(&serde_json::json!({ "need_bytes": need }))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        tracing::warn!(status = %r.status(), "prune refused");
        return None;
    }
    r.json().await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(run: i64, start_s: u64, len_s: u64) -> Draft {
        Draft {
            camera: "cam".into(),
            run,
            start_90k: start_s * 90_000,
            end_90k: (start_s + len_s) * 90_000,
            frames: 1,
            index: vec![0; 8],
            data: vec![0; 100],
            sps: vec![0x67, 1],
            pps: vec![0x68, 1],
            audio: None,
            aac: None,
        }
    }

    #[test]
    fn h626_8_7_1_objects_hold_one_run_of_contiguous_segments() {
        let pending = vec![draft(1, 100, 2), draft(1, 102, 2)];
        assert_eq!(span_ms(&pending), 4000);
        assert!(joins(&pending, &draft(1, 104, 2)));
        // Another run, a gap, other parameter sets: a new object.
        assert!(!joins(&pending, &draft(2, 104, 2)));
        assert!(!joins(&pending, &draft(1, 105, 2)));
        let mut other = draft(1, 104, 2);
        other.sps = vec![0x67, 2];
        assert!(!joins(&pending, &other));
        // Never more than the format's segments or bytes.
        let many: Vec<Draft> = (0..object::MAX_SEGMENTS as u64)
            .map(|i| draft(1, 100 + i, 1))
            .collect();
        assert!(!joins(
            &many,
            &draft(1, 100 + object::MAX_SEGMENTS as u64, 1)
        ));
        let mut big = draft(1, 104, 2);
        big.data = vec![0; object::MAX_OBJECT];
        assert!(!joins(&pending, &big));
        assert!(joins(&[], &draft(5, 0, 2)));
        assert_eq!(span_ms(&[]), 0);
    }

    #[test]
    fn h626_8_7_1_grant_expiry_is_read_without_verifying() {
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"iat":100,"exp":1000}"#);
        assert_eq!(grant_exp(&format!("pcg1.{claims}.sig")), Some(1000));
        assert_eq!(grant_exp("pcg1.!!.x"), None);
        assert_eq!(grant_exp("nope"), None);
    }
}
