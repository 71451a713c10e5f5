//! The camera's alarm sources (H.626.4 8.8 step 5): motion and tamper of the synthetic
//! scene, GPIO input lines, video loss of a file or pulled source.

use std::sync::Arc;
use std::time::{Duration, Instant};

use peercam_alarm::AlarmKind;
use peercam_alarm::engine::Trigger;
use peercam_alarm::motion::{MotionDetector, Plane};
use peercam_net::Shutdown;

use super::Alarms;
use crate::clock::MediaClock;
use crate::control::{Control, View};
use crate::media::scene::{Frame, add_noise, render_scene};

/// Analysed frames per second.
pub const ANALYSIS_FPS: u64 = 5;
/// The analysed picture (the encoder's input, scaled down).
pub const ANALYSIS_SIZE: (usize, usize) = (320, 180);
/// The demo sensor's noise, ± luma levels.
pub const SENSOR_NOISE: u8 = 6;
/// No frame from the source for this long is a video loss.
pub const VIDEO_LOSS: Duration = Duration::from_secs(3);
/// How often GPIO input lines are read.
pub const GPIO_POLL: Duration = Duration::from_millis(100);

/// Motion and tamper detection of the synthetic scene.
pub struct SceneAnalyser {
    detector: MotionDetector,
    frame: Frame,
    view: Option<(f32, f32, f32, bool)>,
}

impl Default for SceneAnalyser {
    fn default() -> Self {
        Self {
            detector: MotionDetector::default(),
            frame: Frame::new(ANALYSIS_SIZE.0, ANALYSIS_SIZE.1),
            view: None,
        }
    }
}

impl SceneAnalyser {
    /// Renders scene frame `n` (25 a second) as `view` shows it, with sensor noise, analyses
    /// it and feeds the result to `alarms` at `now_ms`.
    pub fn step(&mut self, alarms: &Alarms, view: &View, n: u64, now_ms: u64) {
        // A PTZ move or the IR lamp changes the whole picture: learn it again.
        let v = (view.pan, view.tilt, view.zoom, view.ir_on);
        if self.view.is_some_and(|old| old != v) {
            self.detector.reset();
        }
        self.view = Some(v);
        let (sensitivity, zones) = alarms.motion_settings();
        self.detector.configure(sensitivity, &zones);
        render_scene(&mut self.frame, n, view);
        add_noise(&mut self.frame.y, n, SENSOR_NOISE);
        let (width, height) = self.frame.size();
        let plane = Plane {
            data: &self.frame.y,
            width,
            height,
            stride: width,
        };
        match self.detector.analyse(plane) {
            Ok(a) => alarms.feed_analysis(&a, zones.len(), now_ms),
            Err(e) => tracing::warn!(error = %e, "motion analysis"),
        }
    }

    /// Forgets the background (the sources are disarmed).
    pub fn reset(&mut self) {
        self.detector.reset();
        self.view = None;
    }
}

/// Analyses the synthetic scene at [`ANALYSIS_FPS`] while motion or tamper is armed.
pub(crate) fn spawn_scene_analysis(
    alarms: Arc<Alarms>,
    control: Arc<Control>,
    clock: Arc<MediaClock>,
    shutdown: Shutdown,
) {
    tokio::spawn(async move {
        let mut analyser = SceneAnalyser::default();
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / ANALYSIS_FPS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.wait() => return,
            }
            let now_ms = clock.now_us() / 1000;
            if !alarms.armed_for(AlarmKind::Motion, now_ms)
                && !alarms.armed_for(AlarmKind::Tamper, now_ms)
            {
                analyser.reset();
                continue;
            }
            let now = Instant::now();
            // Frame numbers as the encoder counts them (25 a second).
            let n = now.duration_since(started).as_millis() as u64 / 40;
            analyser.step(&alarms, &control.view(now), n, now_ms);
        }
    });
}

/// Reads a GPIO value file: `Some(true)` when the line is high (contact closed).
fn read_line(path: &std::path::Path) -> Option<bool> {
    let text = std::fs::read_to_string(path).ok()?;
    match text.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// Polls the GPIO-wired inputs every [`GPIO_POLL`]. A normally open contact is active when
/// closed, a normally closed one when open (the camera's `alarm_inputs` parameters).
pub(crate) fn spawn_gpio(
    alarms: Arc<Alarms>,
    control: Arc<Control>,
    clock: Arc<MediaClock>,
    shutdown: Shutdown,
) {
    if alarms.wiring.inputs.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(GPIO_POLL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.wait() => return,
            }
            let params = control.params().alarm_inputs;
            for g in &alarms.wiring.inputs {
                let Some(closed) = read_line(&g.path) else {
                    continue;
                };
                let normally_open = params
                    .iter()
                    .find(|a| a.input == g.input)
                    .is_none_or(|a| a.normally_open);
                let active = closed == normally_open;
                if alarms.set_wired(g.input, active) {
                    alarms.input_changed(g.input, active, clock.now_us() / 1000);
                }
            }
        }
    });
}

/// Analysed key frames a pulled or file source needs before motion is reported.
pub const KEY_FRAME_WARM_UP: u32 = 3;

/// A file or pulled source, watched while `video_loss`, `motion` or `tamper` is armed:
/// no frame for [`VIDEO_LOSS`] raises video loss (the next frame ends it), and its key
/// frames are decoded and analysed for motion and tamper (key frames only: decoding every
/// frame would cost far more than the 2 % of a core allowed; a key frame comes every 1-2 s,
/// so motion shows within two of them). The synthetic scene is analysed before its overlay
/// instead ([`spawn_scene_analysis`]).
pub(crate) fn spawn_video_watch(
    alarms: Arc<Alarms>,
    hub: Arc<crate::media::MediaHub>,
    clock: Arc<MediaClock>,
    shutdown: Shutdown,
) {
    tokio::spawn(async move {
        let profile = crate::media::Profile {
            width: 352,
            height: 288,
            fps: 5,
            kbps: 400,
        };
        let mut detector = MotionDetector::default().with_warm_up(KEY_FRAME_WARM_UP);
        loop {
            let sub = if watched(&alarms, clock.now_us() / 1000) {
                hub.subscribe(profile).ok()
            } else {
                None
            };
            let Some(mut sub) = sub else {
                detector.reset();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = shutdown.wait() => return,
                }
            };
            loop {
                let got = tokio::select! {
                    r = tokio::time::timeout(VIDEO_LOSS, sub.rx.recv()) => r,
                    () = shutdown.wait() => return,
                };
                let now_ms = clock.now_us() / 1000;
                match got {
                    Ok(Ok(au)) => {
                        alarms.quiet(AlarmKind::VideoLoss, None);
                        if au.key {
                            detector = analyse_key_frame(&alarms, detector, au, now_ms).await;
                        }
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    Ok(Err(_closed)) => break,
                    Err(_elapsed) => {
                        alarms.trigger(Trigger::new(AlarmKind::VideoLoss), now_ms);
                    }
                }
                if !watched(&alarms, now_ms) {
                    break;
                }
            }
        }
    });
}

fn watched(alarms: &Alarms, now_ms: u64) -> bool {
    [AlarmKind::VideoLoss, AlarmKind::Motion, AlarmKind::Tamper]
        .into_iter()
        .any(|k| alarms.armed_for(k, now_ms))
}

/// Decodes key frame `au` (off the runtime) and feeds its analysis to `alarms`.
async fn analyse_key_frame(
    alarms: &Alarms,
    mut detector: MotionDetector,
    au: Arc<crate::media::AccessUnit>,
    now_ms: u64,
) -> MotionDetector {
    if !alarms.armed_for(AlarmKind::Motion, now_ms) && !alarms.armed_for(AlarmKind::Tamper, now_ms)
    {
        return detector;
    }
    let (sensitivity, zones) = alarms.motion_settings();
    detector.configure(sensitivity, &zones);
    let done = tokio::task::spawn_blocking(move || {
        use openh264::formats::YUVSource as _;
        let mut dec = openh264::decoder::Decoder::new().ok()?;
        let annexb = peercam_media::annexb::join(&au.nals);
        let yuv = dec.decode(&annexb).ok()??;
        let (width, height) = yuv.dimensions();
        let stride = yuv.strides().0;
        let analysis = detector.analyse(Plane {
            data: yuv.y(),
            width,
            height,
            stride,
        });
        Some((detector, analysis))
    })
    .await;
    match done {
        Ok(Some((detector, Ok(a)))) => {
            alarms.feed_analysis(&a, zones.len(), now_ms);
            detector
        }
        Ok(Some((detector, Err(e)))) => {
            tracing::debug!(error = %e, "key frame not analysed");
            detector
        }
        _ => {
            tracing::debug!("key frame not decoded");
            MotionDetector::default().with_warm_up(KEY_FRAME_WARM_UP)
        }
    }
}

/// ONVIF events of a wrapped camera (PullPoint), while the `onvif` source is armed: each
/// notification whose state turns active raises an `onvif` alarm with its topic.
pub(crate) fn spawn_onvif_events(
    alarms: Arc<Alarms>,
    onvif: Arc<crate::onvif::Onvif>,
    clock: Arc<MediaClock>,
    shutdown: Shutdown,
) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let armed = alarms.armed_for(AlarmKind::Onvif, clock.now_us() / 1000);
            let pause = if armed {
                match onvif_session(&alarms, &onvif, &clock).await {
                    Ok(()) => Duration::from_secs(1),
                    Err(e) => {
                        tracing::warn!(error = %e, "ONVIF events");
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                        backoff
                    }
                }
            } else {
                backoff = Duration::from_secs(1);
                Duration::from_secs(1)
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => return,
            }
        }
    });
}

/// One subscription, pulled until the source is disarmed or the camera fails.
async fn onvif_session(
    alarms: &Alarms,
    onvif: &crate::onvif::Onvif,
    clock: &MediaClock,
) -> Result<(), crate::onvif::OnvifError> {
    let address = onvif.subscribe_events().await?;
    loop {
        let events = onvif.pull_events(&address).await?;
        if events.is_empty() {
            // A camera that answers at once (not holding the pull): do not spin.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let now_ms = clock.now_us() / 1000;
        for e in events {
            if e.active == Some(true) {
                alarms.trigger(
                    Trigger {
                        detail: e.detail(),
                        ..Trigger::new(AlarmKind::Onvif)
                    },
                    now_ms,
                );
            }
        }
        if !alarms.armed_for(AlarmKind::Onvif, now_ms) {
            return Ok(());
        }
    }
}
