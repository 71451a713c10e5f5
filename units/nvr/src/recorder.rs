//! Recording: one task per attached camera that follows its strategy, pulls the camera
//! when needed and hands its media to the shared [`Cutter`] and [`Writer`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use peercam_base::{Backoff, DeviceId};
use peercam_net::Shutdown;
use peercam_record::strategy::{Retention, Strategy};
use peercam_recorder::{CamStatus, Ctl, Cutter, Job, Writer};
use peercam_signal::cmd::{DeviceRequest, PlatformAnswer};
use peercam_store::{AacConfig, AudioCodec, Draft, Store, to_8k};
use tokio::sync::{mpsc, oneshot, watch};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

use crate::agent::PlatformReq;
use crate::cameras::{PROBE_WAIT, new_probe};
use crate::now_ms;
use crate::pull::{Flow, Item, NvrPullError, pull};

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

/// Why one recording session ended or could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The platform channel is closed.
    #[error("the NVR is stopping")]
    Stopping,
    /// The platform would not hand out the stream.
    #[error("the platform refused the stream ({code}): {message}")]
    Refused {
        /// The platform's reason.
        code: peercam_signal::refusal::Refusal,
        /// Its explanation.
        message: String,
    },
    /// The request got no answer.
    #[error("no answer from the platform")]
    NoAnswer,
    /// The pull failed.
    #[error(transparent)]
    Pull(#[from] NvrPullError),
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
                    let e = e.to_string();
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
    async fn session(&mut self) -> Result<(), SessionError> {
        let (reply, rx) = oneshot::channel();
        self.platform
            .send(PlatformReq::Request {
                request: DeviceRequest::RecorderStream {
                    camera: self.camera.clone(),
                },
                reply,
            })
            .await
            .map_err(|_| SessionError::Stopping)?;
        let (url, token) = match rx.await {
            Ok(PlatformAnswer::Stream { url, token, .. }) => (url, token),
            Ok(PlatformAnswer::Refused { code, message }) => {
                return Err(SessionError::Refused { code, message });
            }
            Ok(_) | Err(_) => return Err(SessionError::NoAnswer),
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
        let mut cut = Cutter::new(self.camera.as_str(), self.segment_s);
        // Wall-clock anchors of this pull: the first frame's arrival.
        let mut anchor: Option<(u64, u64)> = None;
        let mut audio_anchor: Option<(u64, u64)> = None;
        let codec: Mutex<(Option<AudioCodec>, Option<AacConfig>)> = Mutex::new((None, None));
        let mut audio_set = false;
        let shutdown = self.shutdown.clone();
        let mut ctl = self.ctl.clone();
        let status = self.status.clone();
        let writer = self.writer.clone();
        let camera = self.camera.to_string();
        let pulled = {
            let cut = &mut cut;
            let submit = |draft: Draft, retention: Retention| {
                if !writer.submit(Job::new(draft, retention, status.clone())) {
                    lock(&status).dropped += 1;
                    tracing::warn!(camera = %camera, "writer queue full: segment dropped");
                }
            };
            let on_item = |item: Item| -> Flow {
                if shutdown.is_triggered() || ctl.has_changed().is_err() {
                    return Flow::Stop;
                }
                if !audio_set {
                    let (g711, aac) = lock(&codec).clone();
                    cut.set_audio(g711);
                    cut.set_aac(aac);
                    audio_set = true;
                }
                let c = ctl.borrow_and_update().clone();
                let now = now_ms();
                let d = c.strategy.decide(now, c.alarm_until_ms);
                let record = d.record && !lock(&status).full;
                match item {
                    Item::Video { nals, key, pts } => {
                        let (wall, first) = *anchor.get_or_insert((now * 90, pts));
                        let t90k = wall + pts.saturating_sub(first);
                        if !d.pull {
                            if let Some(draft) = cut.close(t90k) {
                                submit(draft, c.strategy.retention);
                            }
                            return Flow::Stop;
                        }
                        for draft in cut.video(nals, key, t90k, record, d.pre_roll_s) {
                            submit(draft, c.strategy.retention);
                        }
                        lock(&status).recording = cut.is_recording();
                    }
                    Item::Audio { bytes, pts } => {
                        let (wall, first) =
                            *audio_anchor.get_or_insert_with(|| (to_8k(now * 90), pts));
                        cut.audio(bytes, wall + pts.saturating_sub(first), d.pre_roll_s);
                    }
                }
                Flow::Continue
            };
            pull(&url, |a, aac| *lock(&codec) = (a, aac), on_item)
                .await
                .map_err(SessionError::from)
        };
        // Whatever ends the pull, the open segment is committed.
        let retention = self.ctl.borrow().strategy.retention;
        if let Some(draft) = cut.close(cut.last_90k() + 3600) {
            let _ = self
                .writer
                .submit(Job::new(draft, retention, self.status.clone()));
        }
        lock(&self.status).recording = false;
        pulled
    }
}
