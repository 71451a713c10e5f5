//! The cameras attached to this NVR (8.7.2.1), their strategies (saved on disk, steps
//! 12-13), and the commands the platform sends about them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use peercam_base::DeviceId;
use peercam_net::Shutdown;
use peercam_record::strategy::{Mode, Strategy};
use peercam_signal::cmd::{DeviceCommand, DeviceDescription, DeviceReply};
use peercam_signal::discover::Probe;
use peercam_signal::record::RecordingState;
use peercam_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::agent::PlatformReq;
use peercam_recorder::{CamStatus, Ctl, Writer};

use crate::recorder;
use crate::{Config, now_ms};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    camera: DeviceId,
    public_key: String,
    strategy: Strategy,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedFile {
    version: u32,
    cameras: Vec<Saved>,
}

struct Entry {
    saved: Saved,
    ctl: watch::Sender<Ctl>,
    status: Arc<Mutex<CamStatus>>,
    lan: Arc<Mutex<Option<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub(crate) struct Cameras {
    path: PathBuf,
    store: Store,
    writer: Writer,
    platform: mpsc::Sender<PlatformReq>,
    config: Config,
    shutdown: Shutdown,
    inner: Mutex<HashMap<DeviceId, Entry>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why the saved camera list could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CameraListError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The camera list.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a camera list.
    #[error("{}: {source} (fix or delete the file)", path.display())]
    Parse {
        /// The camera list.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The list could not be encoded.
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    /// The file could not be written.
    #[error("saving {}: {source}", path.display())]
    Save {
        /// The camera list.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn failed(code: &str, message: impl Into<String>) -> DeviceReply {
    DeviceReply::Failed {
        code: code.into(),
        message: message.into(),
    }
}

impl Cameras {
    pub(crate) fn open(
        path: PathBuf,
        store: Store,
        writer: Writer,
        platform: mpsc::Sender<PlatformReq>,
        config: Config,
        shutdown: Shutdown,
    ) -> Result<Self, CameraListError> {
        let saved: SavedFile = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(saved) => saved,
                Err(source) => return Err(CameraListError::Parse { path, source }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedFile::default(),
            Err(source) => return Err(CameraListError::Read { path, source }),
        };
        let me = Self {
            path,
            store,
            writer,
            platform,
            config,
            shutdown,
            inner: Mutex::new(HashMap::new()),
        };
        {
            let mut inner = lock(&me.inner);
            for s in saved.cameras {
                inner.insert(s.camera.clone(), Self::entry(s));
            }
        }
        Ok(me)
    }

    fn entry(saved: Saved) -> Entry {
        let (ctl, _) = watch::channel(Ctl {
            strategy: saved.strategy.clone(),
            alarm_until_ms: 0,
        });
        Entry {
            saved,
            ctl,
            status: Arc::new(Mutex::new(CamStatus::default())),
            lan: Arc::new(Mutex::new(None)),
            task: None,
        }
    }

    /// Starts a recorder for every saved camera.
    pub(crate) fn start_all(self: &Arc<Self>) {
        let ids: Vec<DeviceId> = lock(&self.inner).keys().cloned().collect();
        for id in ids {
            self.spawn(&id);
        }
    }

    fn spawn(self: &Arc<Self>, id: &DeviceId) {
        let mut inner = lock(&self.inner);
        let Some(e) = inner.get_mut(id) else { return };
        let task = recorder::Recorder {
            camera: id.clone(),
            public_key: e.saved.public_key.clone(),
            ctl: e.ctl.subscribe(),
            status: e.status.clone(),
            lan: e.lan.clone(),
            writer: self.writer.clone(),
            store: self.store.clone(),
            platform: self.platform.clone(),
            segment_s: self.config.segment_s.max(1),
            discovery_port: self.config.discovery_port,
            shutdown: self.shutdown.clone(),
        };
        e.task = Some(tokio::spawn(task.run()));
    }

    /// Writes the camera list atomically (temp file, fsync, rename, fsync directory).
    fn save(&self) -> Result<(), CameraListError> {
        let file = SavedFile {
            version: 1,
            cameras: lock(&self.inner)
                .values()
                .map(|e| e.saved.clone())
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(CameraListError::Encode)?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|source| CameraListError::Save {
            path: self.path.clone(),
            source,
        })
    }

    async fn state(&self, camera: &DeviceId) -> Option<RecordingState> {
        let (strategy, st) = {
            let inner = lock(&self.inner);
            let e = inner.get(camera)?;
            (e.saved.strategy.clone(), lock(&e.status).clone())
        };
        Some(RecordingState {
            camera: camera.clone(),
            strategy,
            recording: st.recording,
            used_bytes: self.store.usage(Some(camera.as_str())).await.unwrap_or(0),
            full: st.full,
            oldest_ms: self.store.oldest_ms(camera.as_str()).await.ok().flatten(),
            last_error: st.last_error,
        })
    }

    /// Looks for `camera` on the LAN: the first announcement that verifies with its key.
    async fn discover(&self, camera: &DeviceId, public_key: &str) -> Option<String> {
        recorder::discover(self.config.discovery_port, camera, public_key).await
    }

    pub(crate) async fn execute(
        self: &Arc<Self>,
        command: DeviceCommand,
        describe: DeviceDescription,
    ) -> DeviceReply {
        match command {
            DeviceCommand::Describe => DeviceReply::Description(describe),
            // H.626.4 8.7.2.1 steps 3-5: the NVR takes the camera and looks for it.
            DeviceCommand::RecorderAttach { camera, public_key } => {
                if peercam_signal::register::parse_public_key(&public_key).is_err() {
                    return failed("bad_key", "the camera's public key is not usable");
                }
                let fresh = {
                    let mut inner = lock(&self.inner);
                    match inner.get_mut(&camera) {
                        Some(e) => {
                            e.saved.public_key.clone_from(&public_key);
                            false
                        }
                        None => {
                            inner.insert(
                                camera.clone(),
                                Self::entry(Saved {
                                    camera: camera.clone(),
                                    public_key: public_key.clone(),
                                    strategy: Strategy::default(),
                                }),
                            );
                            true
                        }
                    }
                };
                if let Err(e) = self.save() {
                    return failed("storage", e.to_string());
                }
                let lan = self.discover(&camera, &public_key).await;
                if let Some(e) = lock(&self.inner).get(&camera) {
                    lan.clone_into(&mut lock(&e.lan));
                }
                if fresh {
                    self.spawn(&camera);
                }
                DeviceReply::Attached { camera, lan }
            }
            DeviceCommand::RecorderDetach { camera, wipe } => {
                // Dropping the entry closes its control channel: the recorder finishes its
                // segment and stops.
                let Some(entry) = lock(&self.inner).remove(&camera) else {
                    return failed("not_attached", "that camera is not attached here");
                };
                if let Err(e) = self.save() {
                    return failed("storage", e.to_string());
                }
                drop(entry.ctl);
                if let Some(task) = entry.task {
                    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
                }
                if wipe && let Err(e) = self.writer.forget(camera.as_str()).await {
                    return failed("storage", e.to_string());
                }
                DeviceReply::Done
            }
            // 8.7.2.1 steps 11-13: check, save, apply.
            DeviceCommand::SetRecording { camera, strategy } => {
                if let Some(invalid) = peercam_recorder::check_strategy(&strategy) {
                    return invalid;
                }
                {
                    let mut inner = lock(&self.inner);
                    let Some(e) = inner.get_mut(&camera) else {
                        return failed("not_attached", "attach the camera to this NVR first");
                    };
                    e.saved.strategy = strategy.clone();
                    lock(&e.status).full = false;
                    e.ctl.send_modify(|c| c.strategy = strategy);
                }
                if let Err(e) = self.save() {
                    return failed("storage", e.to_string());
                }
                let _ = self
                    .store
                    .add_event(
                        camera.as_str(),
                        now_ms(),
                        "strategy",
                        "record strategy changed",
                    )
                    .await;
                match self.state(&camera).await {
                    Some(state) => DeviceReply::Recording { state },
                    None => failed("not_attached", "the camera was detached meanwhile"),
                }
            }
            DeviceCommand::GetRecording { camera } => match self.state(&camera).await {
                Some(state) => DeviceReply::Recording { state },
                None => failed("not_attached", "that camera is not attached here"),
            },
            // 8.7.2.2 steps 3-5: the record list.
            DeviceCommand::ListRecordings {
                camera,
                from_ms,
                to_ms,
            } => peercam_recorder::list_reply(&self.store, camera, from_ms, to_ms).await,
            DeviceCommand::RecordEvent {
                camera,
                kind,
                detail,
            } => {
                let now = now_ms();
                {
                    let inner = lock(&self.inner);
                    let Some(e) = inner.get(&camera) else {
                        return failed("not_attached", "that camera is not attached here");
                    };
                    if matches!(e.saved.strategy.mode, Mode::Alarm { .. }) {
                        let s = e.saved.strategy.clone();
                        e.ctl.send_modify(|c| {
                            c.alarm_until_ms = s.alarm_until(now, c.alarm_until_ms)
                        });
                    }
                }
                let detail: String = detail.chars().take(200).collect();
                match self
                    .store
                    .add_event(camera.as_str(), now, &kind, &detail)
                    .await
                {
                    Ok(()) => DeviceReply::Done,
                    Err(e) => failed("storage", e.to_string()),
                }
            }
            _ => failed("unsupported", "an NVR does not take this command"),
        }
    }
}

/// How long a LAN probe waits for answers.
pub(crate) const PROBE_WAIT: Duration = Duration::from_millis(600);

/// A fresh probe.
pub(crate) fn new_probe() -> Probe {
    Probe::new(rand::random())
}
