//! The camera's controllable state: PTZ position and presets (H.626.4 8.5, 6.1.4), the
//! parameter document (8.9.1) and night vision (6.1.5), persisted in the state directory and
//! returned to factory state by a reset (8.10).
//!
//! The synthetic camera reads a [`View`] for every frame it renders, so a PTZ order or a
//! parameter change shows in the picture at the next frame.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use peercam_signal::control::{
    DeviceParams, FieldError, MAX_ZOOM, NightMode, ParamsState, Preset, PtzCommand, PtzState,
};
use serde::{Deserialize, Serialize};

/// What the renderer needs for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Pan, -1..=1.
    pub pan: f32,
    /// Tilt, -1..=1.
    pub tilt: f32,
    /// Zoom, 1..=MAX_ZOOM.
    pub zoom: f32,
    /// Scene light, 0..=1.
    pub light: f32,
    /// IR lamp on: the picture is monochrome and lit by the lamp.
    pub ir_on: bool,
    /// OSD caption.
    pub osd_text: String,
    /// Burn in the clock.
    pub show_clock: bool,
    /// Offset of the OSD clock from UTC, minutes.
    pub utc_offset_min: i16,
    /// Seconds between IDR frames.
    pub gop_s: u8,
    /// The synthetic scene's moving object is in the picture (H.626.4 8.8 motion source).
    pub object: bool,
}

impl Default for View {
    fn default() -> Self {
        Self {
            pan: 0.0,
            tilt: 0.0,
            zoom: 1.0,
            light: 1.0,
            ir_on: false,
            osd_text: String::new(),
            show_clock: true,
            utc_offset_min: 0,
            gop_s: 2,
            object: true,
        }
    }
}

/// What survives a restart (and is wiped by a reset).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Persisted {
    revision: u64,
    params: DeviceParams,
    presets: BTreeMap<u8, Preset>,
    pan: f32,
    tilt: f32,
    zoom: f32,
}

#[derive(Debug)]
struct Motion {
    speed: (f32, f32, f32),
    since: Instant,
    until: Instant,
}

#[derive(Debug)]
struct State {
    saved: Persisted,
    motion: Option<Motion>,
    ir_on: bool,
    /// Since when the light has been on the other side of the threshold.
    crossing_since: Option<Instant>,
}

/// Full-speed pan/tilt covers the whole range (2.0) in 4 s; zoom 1x to 4x in 3 s.
const PAN_PER_S: f32 = 0.5;
const ZOOM_PER_S: f32 = 1.0;

/// The camera's control state.
pub struct Control {
    state: Mutex<State>,
    file: Option<PathBuf>,
    started: Instant,
    day_cycle: Option<Duration>,
    scene_object: std::sync::atomic::AtomicBool,
}

/// Why a control order failed.
#[derive(Debug)]
pub enum ControlError {
    /// Values out of range; nothing changed.
    Invalid(Vec<FieldError>),
    /// The set was based on an old revision; nothing changed.
    Conflict(u64),
    /// The state could not be saved; nothing changed.
    Storage(StateError),
}

/// Why the saved control state could not be read, written or deleted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state file or its directory could not be read, created or deleted.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not valid JSON.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The saved parameters are out of range.
    #[error("{}: invalid saved parameters: {errors:?}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is out of range.
        errors: Vec<FieldError>,
    },
    /// The state could not be encoded.
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    /// The state could not be written.
    #[error("saving {}: {source}", path.display())]
    Save {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Control {
    /// Factory state, saved nowhere (tests, and hubs without a state directory).
    pub fn in_memory(day_cycle: Option<Duration>) -> Self {
        Self::with_state(
            Persisted {
                zoom: 1.0,
                ..Persisted::default()
            },
            None,
            day_cycle,
        )
    }

    fn with_state(saved: Persisted, file: Option<PathBuf>, day_cycle: Option<Duration>) -> Self {
        Self {
            state: Mutex::new(State {
                saved,
                motion: None,
                ir_on: false,
                crossing_since: None,
            }),
            file,
            started: Instant::now(),
            day_cycle,
            scene_object: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Loads the saved state from `state_dir` (factory state when there is none). The scene's
    /// light follows a day of `day_cycle` (none: always day).
    pub fn open(state_dir: Option<&Path>, day_cycle: Option<Duration>) -> Result<Self, StateError> {
        let file = state_dir.map(|d| d.join("control.json"));
        let saved = match &file {
            Some(f) if f.exists() => {
                let text = std::fs::read(f).map_err(io_error(f))?;
                let p: Persisted =
                    serde_json::from_slice(&text).map_err(|source| StateError::Parse {
                        path: f.clone(),
                        source,
                    })?;
                p.params.validate().map_err(|errors| StateError::Invalid {
                    path: f.clone(),
                    errors,
                })?;
                p
            }
            _ => Persisted {
                zoom: 1.0,
                ..Persisted::default()
            },
        };
        Ok(Self::with_state(saved, file, day_cycle))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The scene's light at `now`, 0..=1: a cosine day starting at noon.
    fn light(&self, now: Instant) -> f32 {
        let Some(cycle) = self.day_cycle.filter(|c| !c.is_zero()) else {
            return 1.0;
        };
        let phase = now.duration_since(self.started).as_secs_f32() / cycle.as_secs_f32();
        0.5 + 0.5 * (phase * std::f32::consts::TAU).cos()
    }

    /// Brings motion and night vision up to `now`.
    fn advance(&self, st: &mut State, now: Instant) {
        if let Some(m) = &st.motion {
            let end = now.min(m.until);
            let dt = end.saturating_duration_since(m.since).as_secs_f32();
            let s = &mut st.saved;
            s.pan = (s.pan + m.speed.0 * PAN_PER_S * dt).clamp(-1.0, 1.0);
            s.tilt = (s.tilt + m.speed.1 * PAN_PER_S * dt).clamp(-1.0, 1.0);
            s.zoom = (s.zoom + m.speed.2 * ZOOM_PER_S * dt).clamp(1.0, MAX_ZOOM);
            if now >= m.until {
                st.motion = None;
            } else if let Some(m) = st.motion.as_mut() {
                // Callers on other threads may bring an older `now`: never integrate twice.
                m.since = m.since.max(now);
            }
        }
        // H.626.4 6.1.5: in auto mode the lamp follows the light, with hysteresis.
        let night = &st.saved.params.night;
        let want = match night.mode {
            NightMode::Day => false,
            NightMode::Night => true,
            NightMode::Auto => {
                let dark = self.light(now) * 100.0 < f32::from(night.dark_threshold_pct);
                if dark == st.ir_on {
                    st.crossing_since = None;
                    st.ir_on
                } else {
                    let since = *st.crossing_since.get_or_insert(now);
                    if now.duration_since(since) >= Duration::from_secs(night.switch_delay_s.into())
                    {
                        st.crossing_since = None;
                        dark
                    } else {
                        st.ir_on
                    }
                }
            }
        };
        if want != st.ir_on {
            tracing::info!(ir_lamp = want, "night vision switched");
        }
        st.ir_on = want;
    }

    /// The view for a frame rendered at `now`.
    pub fn view(&self, now: Instant) -> View {
        let mut st = self.lock();
        self.advance(&mut st, now);
        let s = &st.saved;
        View {
            pan: s.pan,
            tilt: s.tilt,
            zoom: s.zoom,
            light: self.light(now),
            ir_on: st.ir_on,
            osd_text: s.params.osd.text.clone(),
            show_clock: s.params.osd.show_clock,
            utc_offset_min: s.params.utc_offset_min,
            gop_s: s.params.video.gop_s,
            object: self.scene_object.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Shows (or hides) the synthetic scene's moving object: what the motion detector of
    /// the demo camera sees move (`scene_motion` in `pu.toml`, and tests).
    pub fn set_scene_motion(&self, on: bool) {
        self.scene_object
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The current parameters.
    pub fn params(&self) -> DeviceParams {
        self.lock().saved.params.clone()
    }

    /// Parameters, revision and the camera's current night state (8.9.1 query).
    pub fn params_state(&self, now: Instant) -> ParamsState {
        let mut st = self.lock();
        self.advance(&mut st, now);
        ParamsState {
            revision: st.saved.revision,
            params: st.saved.params.clone(),
            ir_lamp_on: st.ir_on,
            light_pct: (self.light(now) * 100.0).round() as u8,
        }
    }

    /// Replaces the parameters if still at `base_revision`: validated first, saved, then
    /// applied, so a refused or unsaved document changes nothing (8.9.1).
    pub fn set_params(
        &self,
        base_revision: u64,
        params: DeviceParams,
        now: Instant,
    ) -> Result<ParamsState, ControlError> {
        params.validate().map_err(ControlError::Invalid)?;
        {
            let mut st = self.lock();
            if st.saved.revision != base_revision {
                return Err(ControlError::Conflict(st.saved.revision));
            }
            let mut next = st.saved.clone();
            next.params = params;
            next.revision += 1;
            self.save(&next).map_err(ControlError::Storage)?;
            st.saved = next;
            st.crossing_since = None;
        }
        Ok(self.params_state(now))
    }

    /// Executes a PTZ order (8.5) and returns where the camera looks.
    pub fn ptz(&self, order: &PtzCommand, now: Instant) -> Result<PtzState, ControlError> {
        order.validate().map_err(ControlError::Invalid)?;
        let mut st = self.lock();
        self.advance(&mut st, now);
        let mut next = st.saved.clone();
        let mut motion = None;
        match order {
            PtzCommand::Move {
                pan,
                tilt,
                zoom,
                timeout_ms,
            } => {
                motion = Some(Motion {
                    speed: (*pan, *tilt, *zoom),
                    since: now,
                    until: now + Duration::from_millis((*timeout_ms).into()),
                });
            }
            PtzCommand::Stop => {}
            PtzCommand::Absolute { pan, tilt, zoom } => {
                (next.pan, next.tilt, next.zoom) = (*pan, *tilt, *zoom);
            }
            PtzCommand::Relative { pan, tilt, zoom } => {
                next.pan = (next.pan + pan).clamp(-1.0, 1.0);
                next.tilt = (next.tilt + tilt).clamp(-1.0, 1.0);
                next.zoom = (next.zoom + zoom).clamp(1.0, MAX_ZOOM);
            }
            PtzCommand::PresetSet { slot, name } => {
                next.presets.insert(
                    *slot,
                    Preset {
                        slot: *slot,
                        name: name.clone(),
                        pan: next.pan,
                        tilt: next.tilt,
                        zoom: next.zoom,
                    },
                );
            }
            PtzCommand::PresetGoto { slot } => {
                let Some(p) = next.presets.get(slot) else {
                    return Err(ControlError::Invalid(vec![FieldError::new(
                        "slot",
                        format!("preset {slot} is not set"),
                    )]));
                };
                (next.pan, next.tilt, next.zoom) = (p.pan, p.tilt, p.zoom);
            }
            PtzCommand::PresetRemove { slot } => {
                if next.presets.remove(slot).is_none() {
                    return Err(ControlError::Invalid(vec![FieldError::new(
                        "slot",
                        format!("preset {slot} is not set"),
                    )]));
                }
            }
        }
        // Positions and presets survive a restart; a continuous move is not saved mid-way.
        if matches!(
            order,
            PtzCommand::PresetSet { .. } | PtzCommand::PresetRemove { .. }
        ) {
            self.save(&next).map_err(ControlError::Storage)?;
        }
        st.saved = next;
        st.motion = motion;
        Ok(ptz_state(&st))
    }

    /// Returns to factory state (8.10): forgets parameters, presets and position, and deletes
    /// the saved state.
    pub fn factory_reset(&self) -> Result<(), StateError> {
        let mut st = self.lock();
        if let Some(f) = &self.file
            && f.exists()
        {
            std::fs::remove_file(f).map_err(io_error(f))?;
        }
        st.saved = Persisted {
            zoom: 1.0,
            ..Persisted::default()
        };
        st.motion = None;
        st.crossing_since = None;
        Ok(())
    }

    /// Writes the state atomically: temporary file, fsync, rename, directory fsync.
    fn save(&self, p: &Persisted) -> Result<(), StateError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let dir = file.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let tmp = file.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(p).map_err(StateError::Encode)?;
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, file)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|source| StateError::Save {
            path: file.clone(),
            source,
        })
    }
}

fn ptz_state(st: &State) -> PtzState {
    PtzState {
        pan: st.saved.pan,
        tilt: st.saved.tilt,
        zoom: st.saved.zoom,
        moving: st.motion.is_some(),
        presets: st.saved.presets.values().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_move_integrates_and_times_out() {
        let c = Control::open(None, None).unwrap();
        let t0 = Instant::now();
        c.ptz(
            &PtzCommand::Move {
                pan: 1.0,
                tilt: 0.0,
                zoom: 0.0,
                timeout_ms: 1000,
            },
            t0,
        )
        .unwrap();
        let v = c.view(t0 + Duration::from_millis(500));
        assert!((v.pan - 0.25).abs() < 1e-3, "{}", v.pan);
        // The move stops by itself after its timeout.
        let v = c.view(t0 + Duration::from_secs(5));
        assert!((v.pan - 0.5).abs() < 1e-3, "{}", v.pan);
    }

    #[test]
    fn presets_return_to_the_same_view_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::now();
        {
            let c = Control::open(Some(dir.path()), None).unwrap();
            c.ptz(
                &PtzCommand::Absolute {
                    pan: 0.3,
                    tilt: -0.2,
                    zoom: 2.0,
                },
                now,
            )
            .unwrap();
            c.ptz(
                &PtzCommand::PresetSet {
                    slot: 3,
                    name: "gate".into(),
                },
                now,
            )
            .unwrap();
        }
        let c = Control::open(Some(dir.path()), None).unwrap();
        c.ptz(
            &PtzCommand::Absolute {
                pan: -1.0,
                tilt: 1.0,
                zoom: 1.0,
            },
            now,
        )
        .unwrap();
        let s = c.ptz(&PtzCommand::PresetGoto { slot: 3 }, now).unwrap();
        assert_eq!((s.pan, s.tilt, s.zoom), (0.3, -0.2, 2.0));
        assert!(matches!(
            c.ptz(&PtzCommand::PresetGoto { slot: 4 }, now),
            Err(ControlError::Invalid(_))
        ));
        c.factory_reset().unwrap();
        assert!(c.ptz(&PtzCommand::PresetGoto { slot: 3 }, now).is_err());
        assert!(!dir.path().join("control.json").exists());
    }

    #[test]
    fn params_set_is_all_or_nothing_and_revisioned() {
        let c = Control::open(None, None).unwrap();
        let now = Instant::now();
        let mut p = DeviceParams::default();
        p.video.max_fps = 10;
        let s = c.set_params(0, p.clone(), now).unwrap();
        assert_eq!(s.revision, 1);
        let mut bad = p.clone();
        bad.video.max_fps = 30;
        bad.osd.text = "hello".into();
        assert!(matches!(
            c.set_params(1, bad, now),
            Err(ControlError::Invalid(_))
        ));
        assert_eq!(c.params(), p, "nothing of the bad document applied");
        assert!(matches!(
            c.set_params(0, p, now),
            Err(ControlError::Conflict(1))
        ));
    }

    #[test]
    fn auto_night_vision_follows_the_light_with_hysteresis() {
        let c = Control::open(None, Some(Duration::from_secs(20))).unwrap();
        let t0 = c.started;
        let mut p = DeviceParams::default();
        p.night.switch_delay_s = 1;
        c.set_params(0, p, t0).unwrap();
        assert!(!c.view(t0).ir_on, "noon");
        // Light is below 30 % from about 6.3 s to 13.7 s of the 20 s day.
        assert!(
            !c.view(t0 + Duration::from_millis(6600)).ir_on,
            "not yet: hysteresis"
        );
        assert!(c.view(t0 + Duration::from_millis(7700)).ir_on, "night");
        assert!(
            c.view(t0 + Duration::from_millis(14000)).ir_on,
            "still: hysteresis"
        );
        assert!(
            !c.view(t0 + Duration::from_millis(15100)).ir_on,
            "day again"
        );
    }
}
