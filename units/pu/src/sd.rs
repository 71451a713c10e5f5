//! Recording on the camera's own SD card (H.626.4 8.7.3, 6.1.6): the same recorder library
//! as the NVR, fed straight from the camera's encoder.
//!
//! The strategy arrives CU -> CMU -> SCU -> PU, is saved beside the camera's settings and
//! applied at once; recordings are listed through the platform and played back or exported
//! from the camera's own RTSP port (paths `/rec/…` and `GET /export/…`), under tokens the
//! platform minted and judges, like any viewer's.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use peercam_base::DeviceId;
use peercam_net::Shutdown;
use peercam_record::strategy::Strategy;
use peercam_recorder::{CamStatus, Ctl, Cutter, Job, Writer, now_ms};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::play::Caps;
use peercam_signal::record::RecordingState;
use peercam_store::{Store, StoreConfig};
use tokio::sync::{broadcast, mpsc, watch};

use crate::agent::PlatformRequest;
use crate::media::hub::{MediaHub, Profile};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why the recording strategy could not be saved; its `Display` is the message the platform
/// is answered with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaveError {
    /// The strategy could not be encoded.
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    /// The strategy file could not be written.
    #[error("saving the strategy: {0}")]
    Write(#[source] std::io::Error),
}

/// Why the SD card recorder could not start.
#[derive(Debug, thiserror::Error)]
pub enum SdError {
    /// The card's store could not be opened or repaired.
    #[error("SD card: {0}")]
    Store(#[source] peercam_store::StoreError),
    /// The saved strategy file is unreadable.
    #[error("{}: {source}", path.display())]
    Strategy {
        /// The strategy file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

fn failed(code: &str, message: impl Into<String>) -> DeviceReply {
    DeviceReply::Failed {
        code: code.into(),
        message: message.into(),
    }
}

/// The SD card recorder.
pub(crate) struct Sd {
    camera: DeviceId,
    store: Store,
    writer: Writer,
    ctl: watch::Sender<Ctl>,
    status: Arc<Mutex<CamStatus>>,
    strategy_path: PathBuf,
}

impl Sd {
    /// Opens (and repairs) the card's store, loads the saved strategy and starts recording.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        dir: PathBuf,
        min_free_mb: u64,
        quota_mb: u64,
        camera: DeviceId,
        hub: Arc<MediaHub>,
        max_fps: u8,
        strategy_path: PathBuf,
        platform: mpsc::Sender<PlatformRequest>,
        shutdown: Shutdown,
    ) -> Result<Arc<Self>, SdError> {
        let mut cfg = StoreConfig::new(dir);
        cfg.min_free_bytes = min_free_mb << 20;
        cfg.disk_quota_bytes = quota_mb << 20;
        let (store, report) = Store::open(cfg).await.map_err(SdError::Store)?;
        if report.orphans_removed > 0 || !report.rows_dropped.is_empty() {
            tracing::warn!(?report, "SD card store repaired");
        }
        let strategy: Strategy = match std::fs::read(&strategy_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| SdError::Strategy {
                path: strategy_path.clone(),
                source,
            })?,
            Err(_) => Strategy::default(),
        };
        let (ctl, rx) = watch::channel(Ctl {
            strategy,
            alarm_until_ms: 0,
        });
        // 6.1.9: a full card is reported to the platform at once, for the camera itself.
        let full = peercam_recorder::storage_full_to_platform(platform, Some(camera.clone()));
        let sd = Arc::new(Self {
            camera,
            writer: Writer::start(store.clone(), shutdown.clone(), Some(full)),
            store,
            ctl,
            status: Arc::new(Mutex::new(CamStatus::default())),
            strategy_path,
        });
        tokio::spawn(sd.clone().record(rx, hub, max_fps, shutdown));
        Ok(sd)
    }

    /// The card's store (playback and export read it).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The camera recorded (alarm marks name it).
    pub(crate) fn camera(&self) -> &DeviceId {
        &self.camera
    }

    /// Whether `command` is a recording command for this camera's card.
    pub(crate) fn handles(&self, command: &DeviceCommand) -> bool {
        match command {
            DeviceCommand::SetRecording { camera, .. }
            | DeviceCommand::GetRecording { camera }
            | DeviceCommand::ListRecordings { camera, .. }
            | DeviceCommand::RecordEvent { camera, .. } => camera == &self.camera,
            _ => false,
        }
    }

    async fn state(&self) -> RecordingState {
        let st = lock(&self.status).clone();
        let strategy = self.ctl.borrow().strategy.clone();
        RecordingState {
            camera: self.camera.clone(),
            strategy,
            recording: st.recording,
            used_bytes: self
                .store
                .usage(Some(self.camera.as_str()))
                .await
                .unwrap_or(0),
            full: st.full,
            oldest_ms: self
                .store
                .oldest_ms(self.camera.as_str())
                .await
                .ok()
                .flatten(),
            last_error: st.last_error,
        }
    }

    fn save(&self, strategy: &Strategy) -> Result<(), SaveError> {
        use std::io::Write as _;
        let bytes = serde_json::to_vec_pretty(strategy).map_err(SaveError::Encode)?;
        let tmp = self.strategy_path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.strategy_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.strategy_path)
        };
        write().map_err(SaveError::Write)
    }

    /// 8.7.3: strategy set, state, record list and events for the card.
    pub(crate) async fn execute(&self, command: DeviceCommand) -> DeviceReply {
        match command {
            DeviceCommand::SetRecording { strategy, .. } => {
                if let Some(invalid) = peercam_recorder::check_strategy(&strategy) {
                    return invalid;
                }
                if let Err(e) = self.save(&strategy) {
                    return failed("storage", e.to_string());
                }
                lock(&self.status).full = false;
                self.ctl.send_modify(|c| c.strategy = strategy);
                let _ = self
                    .store
                    .add_event(
                        self.camera.as_str(),
                        now_ms(),
                        "strategy",
                        "record strategy changed",
                    )
                    .await;
                DeviceReply::Recording {
                    state: self.state().await,
                }
            }
            DeviceCommand::GetRecording { .. } => DeviceReply::Recording {
                state: self.state().await,
            },
            DeviceCommand::ListRecordings { from_ms, to_ms, .. } => {
                peercam_recorder::list_reply(&self.store, self.camera.clone(), from_ms, to_ms).await
            }
            DeviceCommand::RecordEvent { kind, detail, .. } => {
                let now = now_ms();
                let s = self.ctl.borrow().strategy.clone();
                self.ctl
                    .send_modify(|c| c.alarm_until_ms = s.alarm_until(now, c.alarm_until_ms));
                let detail: String = detail.chars().take(200).collect();
                match self
                    .store
                    .add_event(self.camera.as_str(), now, &kind, &detail)
                    .await
                {
                    Ok(()) => DeviceReply::Done,
                    Err(e) => failed("storage", e.to_string()),
                }
            }
            _ => failed("unsupported", "not a recording command"),
        }
    }

    /// 8.10 with `wipe_recordings`: the card is emptied (after what is queued).
    pub(crate) async fn wipe(&self) {
        self.ctl.send_modify(|c| c.strategy = Strategy::default());
        let _ = std::fs::remove_file(&self.strategy_path);
        if let Err(e) = self.writer.forget(self.camera.as_str()).await {
            tracing::error!(error = %e, "wiping the SD card failed");
        }
    }

    /// Follows the strategy: subscribes to the encoder while it pulls, cuts segments.
    async fn record(
        self: Arc<Self>,
        ctl: watch::Receiver<Ctl>,
        hub: Arc<MediaHub>,
        max_fps: u8,
        shutdown: Shutdown,
    ) {
        let camera = self.camera.to_string();
        let status = self.status.clone();
        follow(
            ctl,
            &hub,
            max_fps,
            &camera,
            &status,
            &shutdown,
            |dr, retention| {
                self.submit(dr, retention);
            },
        )
        .await;
    }

    fn submit(&self, draft: peercam_store::Draft, retention: peercam_record::strategy::Retention) {
        if !self
            .writer
            .submit(Job::new(draft, retention, self.status.clone()))
        {
            lock(&self.status).dropped += 1;
        }
    }
}

/// Follows a record strategy (8.7.1, 8.7.3): subscribes to the encoder while the strategy
/// pulls (continuous, schedule, alarm with pre- and post-roll), cuts 2 s segments and
/// hands each finished one to `submit` with the retention in effect. Shared by the SD card
/// and the cloud uploader ([`crate::cloud`]). Returns on shutdown.
pub(crate) async fn follow(
    mut ctl: watch::Receiver<Ctl>,
    hub: &Arc<MediaHub>,
    max_fps: u8,
    camera: &str,
    status: &Mutex<CamStatus>,
    shutdown: &Shutdown,
    mut submit: impl FnMut(peercam_store::Draft, peercam_record::strategy::Retention),
) {
    let profile = Profile::for_caps(&Caps::default(), max_fps);
    loop {
        let c = ctl.borrow_and_update().clone();
        let d = c.strategy.decide(now_ms(), c.alarm_until_ms);
        if !d.pull {
            let wait = d.next_change_ms.map_or(Duration::from_secs(3600), |n| {
                Duration::from_millis(n.saturating_sub(now_ms()).max(10))
            });
            tokio::select! {
                r = ctl.changed() => if r.is_err() { return },
                () = tokio::time::sleep(wait) => {}
                () = shutdown.wait() => return,
            }
            continue;
        }
        let mut sub = match hub.subscribe(profile) {
            Ok(s) => s,
            Err(e) => {
                lock(status).last_error = Some(e.to_string());
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut cut = Cutter::new(camera, 2);
        loop {
            let au = tokio::select! {
                r = sub.rx.recv() => r,
                () = shutdown.wait() => break,
            };
            let au = match au {
                Ok(au) => au,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // Frames were lost: close the segment; the next starts at an IDR.
                    tracing::warn!(skipped = n, "SD recorder lagged");
                    let retention = ctl.borrow().strategy.retention;
                    if let Some(dr) = cut.close(cut.last_90k() + 1) {
                        submit(dr, retention);
                    }
                    sub.request_idr();
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let c = ctl.borrow_and_update().clone();
            let d = c.strategy.decide(now_ms(), c.alarm_until_ms);
            // The camera's disciplined clock (H.626.4 7.2) stamps the recording.
            let t90k = au.capture_unix_us * 9 / 100;
            if !d.pull {
                if let Some(dr) = cut.close(t90k) {
                    submit(dr, c.strategy.retention);
                }
                break;
            }
            let record = d.record && !lock(status).full;
            let nals = au.nals.iter().map(|n| n.to_vec()).collect();
            for dr in cut.video(nals, au.key, t90k, record, d.pre_roll_s) {
                submit(dr, c.strategy.retention);
            }
            lock(status).recording = cut.is_recording();
        }
        let retention = ctl.borrow().strategy.retention;
        if let Some(dr) = cut.close(cut.last_90k() + 3600) {
            submit(dr, retention);
        }
        lock(status).recording = false;
        if shutdown.is_triggered() {
            return;
        }
    }
}
