//! The camera's alarms (H.626.4 8.8, camera side): the IO shell around
//! [`peercam_alarm::engine::Engine`].
//!
//! * The strategy and the queue of alarms not yet acknowledged are kept in the state
//!   directory (`alarms.json`), so alarms raised while the platform was unreachable survive
//!   a restart and go up in order, with their original times.
//! * Sources ([`sources`]): motion and tamper from the synthetic scene, alarm input lines
//!   (sysfs GPIO value files or simulated), video loss of a file or pulled source.
//! * The alarm output: a sysfs GPIO value file, or simulated (state and a log line).
//! * Alarms go up as `DeviceRequest::Alarm` over the platform link (the `uplink` module).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use peercam_alarm::engine::{Engine, Saved, SourceKey, Trigger};
use peercam_alarm::motion::Analysis;
use peercam_alarm::{AlarmKind, InputState};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::control::FieldError;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::control::{Control, StateError};

pub mod sources;
pub(crate) mod uplink;

/// An alarm input wired to a GPIO line (`[[alarm_gpio_inputs]]` in `pu.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioInput {
    /// The input number, 1-8 (as in the camera's `alarm_inputs` parameters).
    pub input: u8,
    /// The line's sysfs value file, e.g. `/sys/class/gpio/gpio17/value` (`1`: contact
    /// closed).
    pub path: PathBuf,
}

/// Where the alarm hardware is (from `pu.toml`).
#[derive(Debug, Clone, Default)]
pub struct Wiring {
    /// Inputs wired to GPIO lines; the others are simulated.
    pub inputs: Vec<GpioInput>,
    /// The alarm output's GPIO value file; none: simulated.
    pub output: Option<PathBuf>,
}

struct Inner {
    engine: Engine,
    /// Simulated lines' state (`trip_input`), by input number.
    simulated: BTreeMap<u8, bool>,
    /// GPIO lines' last state (active), by input number.
    wired: BTreeMap<u8, bool>,
}

/// The camera's alarm shell.
pub struct Alarms {
    inner: Mutex<Inner>,
    /// Woken when there is something to send, or the output changed.
    pub(crate) wake: Notify,
    file: Option<PathBuf>,
    control: Arc<Control>,
    wiring: Wiring,
    /// SD card, marked when an alarm with `linkage.record` is raised (pre/post-roll).
    sd: Option<Arc<crate::sd::Sd>>,
    cloud: Option<Arc<crate::cloud::Cloud>>,
}

fn field_errors(e: &peercam_alarm::Error) -> Vec<FieldError> {
    match e {
        peercam_alarm::Error::Invalid { field, reason } => vec![FieldError::new(field, *reason)],
        other => vec![FieldError::new("strategy", other.to_string())],
    }
}

fn failed(code: &str, message: impl Into<String>) -> DeviceReply {
    DeviceReply::Failed {
        code: code.into(),
        message: message.into(),
    }
}

impl Alarms {
    /// Loads the saved strategy and queue from `state_dir` (none: kept in memory). `prefix`
    /// starts every alarm id raised by this run and must differ from every earlier run's.
    pub fn open(
        state_dir: Option<&Path>,
        prefix: &str,
        control: Arc<Control>,
        wiring: Wiring,
    ) -> Result<Self, StateError> {
        let file = state_dir.map(|d| d.join("alarms.json"));
        let saved: Saved = match &file {
            Some(f) if f.exists() => {
                let text = std::fs::read(f).map_err(|source| StateError::Io {
                    path: f.clone(),
                    source,
                })?;
                serde_json::from_slice(&text).map_err(|source| StateError::Parse {
                    path: f.clone(),
                    source,
                })?
            }
            _ => Saved::default(),
        };
        let invalid = |e: peercam_alarm::Error| StateError::Invalid {
            path: file.clone().unwrap_or_default(),
            errors: field_errors(&e),
        };
        let engine = Engine::restore(prefix, saved).map_err(invalid)?;
        Ok(Self {
            inner: Mutex::new(Inner {
                engine,
                simulated: BTreeMap::new(),
                wired: BTreeMap::new(),
            }),
            wake: Notify::new(),
            file,
            control,
            wiring,
            sd: None,
            cloud: None,
        })
    }

    /// Extends the cloud strategy's alarm recording when an alarm asks for recording.
    pub(crate) fn with_cloud(mut self, cloud: Arc<crate::cloud::Cloud>) -> Self {
        self.cloud = Some(cloud);
        self
    }

    /// Marks `sd` when an alarm asks for recording.
    pub(crate) fn with_sd(mut self, sd: Option<Arc<crate::sd::Sd>>) -> Self {
        self.sd = sd;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the engine, then applies what changed: the output, persistence, a wake-up
    /// of the uplink.
    pub(crate) fn with_engine<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> T {
        let mut inner = self.lock();
        let out = f(&mut inner.engine);
        if let Some(on) = inner.engine.poll_output() {
            self.drive_output(on);
        }
        if inner.engine.take_dirty() {
            if let Err(e) = self.save(&inner.engine.saved()) {
                tracing::error!(error = %e, "cannot save the alarm queue");
            }
            self.wake.notify_one();
        }
        out
    }

    /// Raises what `t` triggers (H.626.4 8.8 step 5) and performs the camera's own linkage.
    pub fn trigger(&self, t: Trigger, now_ms: u64) -> Option<peercam_alarm::Alarm> {
        let raised = self.with_engine(|e| e.trigger(t, now_ms));
        if let Some(a) = &raised {
            tracing::warn!(id = %a.id, kind = %a.kind, input = ?a.input, zone = ?a.zone, level = a.level, "alarm raised");
            self.mark_recording(a);
        }
        raised
    }

    /// A level-style source is quiet again.
    pub fn quiet(&self, kind: AlarmKind, channel: Option<u8>) {
        self.with_engine(|e| e.quiet(SourceKey { kind, channel }));
    }

    /// Whether `kind` raises alarms now (the sources skip work otherwise).
    pub fn armed_for(&self, kind: AlarmKind, now_ms: u64) -> bool {
        self.lock().engine.armed_for(kind, now_ms)
    }

    /// The strategy's sensitivity and zones, for the motion detector.
    pub(crate) fn motion_settings(&self) -> (u8, Vec<peercam_alarm::Zone>) {
        let inner = self.lock();
        let s = inner.engine.strategy();
        (s.sensitivity, s.zones.clone())
    }

    /// Feeds one analysed frame: each zone's motion and tamper, as triggers or quiet.
    pub fn feed_analysis(&self, a: &Analysis, zones: usize, now_ms: u64) {
        let channels: Vec<Option<u8>> = if zones == 0 {
            vec![None]
        } else {
            (0..zones)
                .filter_map(|z| u8::try_from(z).ok())
                .map(Some)
                .collect()
        };
        for ch in channels {
            match a.motion.iter().find(|(z, _)| *z == ch) {
                Some(&(zone, level)) => {
                    self.trigger(
                        Trigger {
                            zone,
                            level,
                            ..Trigger::new(AlarmKind::Motion)
                        },
                        now_ms,
                    );
                }
                None => self.quiet(AlarmKind::Motion, ch),
            }
        }
        match a.tamper {
            Some(level) => {
                self.trigger(
                    Trigger {
                        level,
                        ..Trigger::new(AlarmKind::Tamper)
                    },
                    now_ms,
                );
            }
            None => self.quiet(AlarmKind::Tamper, None),
        }
    }

    /// An input line changed (simulated or wired). It raises an alarm only when the camera's
    /// `alarm_inputs` parameters list it enabled (8.9.1) and the strategy arms `input`.
    pub fn input_changed(&self, input: u8, active: bool, now_ms: u64) {
        let enabled = self
            .control
            .params()
            .alarm_inputs
            .iter()
            .any(|a| a.input == input && a.enabled);
        if active && enabled {
            self.trigger(
                Trigger {
                    input: Some(input),
                    detail: format!("input {input}"),
                    ..Trigger::new(AlarmKind::Input)
                },
                now_ms,
            );
        } else {
            self.quiet(AlarmKind::Input, Some(input));
        }
    }

    /// The camera's alarm commands (H.626.4 8.8): strategy, state, reset, simulated input.
    pub fn handles(command: &DeviceCommand) -> bool {
        matches!(
            command,
            DeviceCommand::SetAlarmStrategy { .. }
                | DeviceCommand::GetAlarms
                | DeviceCommand::ResetAlarm { .. }
                | DeviceCommand::TripInput { .. }
        )
    }

    /// Executes one of the commands [`Alarms::handles`].
    pub fn execute(&self, command: DeviceCommand, now_ms: u64) -> DeviceReply {
        match command {
            // H.626.4 8.8 steps 1-4: the strategy, applied all or nothing.
            DeviceCommand::SetAlarmStrategy { strategy } => {
                match self.with_engine(|e| e.set_strategy(strategy)) {
                    Ok(()) => self.reply(),
                    Err(e) => DeviceReply::Invalid {
                        errors: field_errors(&e),
                    },
                }
            }
            DeviceCommand::GetAlarms => self.reply(),
            // H.626.4 8.8 alarm reset: the alarm (or all) cleared, the output off with the last.
            DeviceCommand::ResetAlarm { id } => {
                match self.with_engine(|e| e.reset(id.as_deref())) {
                    Ok(()) => self.reply(),
                    Err(_) => failed("not_found", "no such active alarm"),
                }
            }
            DeviceCommand::TripInput { input, active } => {
                if !(1..=peercam_alarm::model::MAX_INPUTS).contains(&input) {
                    return DeviceReply::Invalid {
                        errors: vec![FieldError::new("input", "input 1 to 8")],
                    };
                }
                if self.wiring.inputs.iter().any(|g| g.input == input) {
                    return failed("not_simulated", "this input is wired to a GPIO line");
                }
                self.lock().simulated.insert(input, active);
                self.input_changed(input, active, now_ms);
                self.reply()
            }
            _ => failed("unsupported", "not an alarm command"),
        }
    }

    fn reply(&self) -> DeviceReply {
        DeviceReply::Alarms {
            state: self.state(),
        }
    }

    /// The camera's alarm state: the inputs are those of the `alarm_inputs` parameters, plus
    /// any wired or tripped line.
    pub fn state(&self) -> peercam_alarm::AlarmState {
        let inner = self.lock();
        let mut lines: BTreeMap<u8, InputState> = BTreeMap::new();
        let listed = self.control.params().alarm_inputs;
        let numbers = listed
            .iter()
            .map(|a| a.input)
            .chain(self.wiring.inputs.iter().map(|g| g.input))
            .chain(inner.simulated.keys().copied());
        for input in numbers {
            let simulated = !self.wiring.inputs.iter().any(|g| g.input == input);
            let active = if simulated {
                inner.simulated.get(&input).copied().unwrap_or(false)
            } else {
                inner.wired.get(&input).copied().unwrap_or(false)
            };
            lines.insert(
                input,
                InputState {
                    input,
                    active,
                    simulated,
                },
            );
        }
        inner.engine.state(lines.into_values().collect())
    }

    /// Alarms dropped from a full queue, and alarms the platform refused for good.
    pub fn lost(&self) -> (u64, u64) {
        self.lock().engine.lost()
    }

    /// H.626.4 8.10: back to factory state: no strategy, no alarm, output off.
    pub fn factory_reset(&self) {
        self.with_engine(|e| {
            let _ = e.reset(None);
            let _ = e.set_strategy(peercam_alarm::AlarmStrategy::default());
        });
    }

    /// Shows or hides the synthetic scene's moving object.
    pub fn set_scene_motion(&self, on: bool) {
        self.control.set_scene_motion(on);
    }

    fn drive_output(&self, on: bool) {
        match &self.wiring.output {
            Some(path) => {
                if let Err(e) = std::fs::write(path, if on { "1" } else { "0" }) {
                    tracing::error!(path = %path.display(), error = %e, "cannot drive the alarm output");
                } else {
                    tracing::info!(on, "alarm output switched");
                }
            }
            None => tracing::info!(on, "alarm output (simulated) switched"),
        }
    }

    fn mark_recording(&self, a: &peercam_alarm::Alarm) {
        let record = self.lock().engine.strategy().linkage.record;
        if record && let Some(cloud) = &self.cloud {
            cloud.mark_event();
        }
        let (Some(sd), true) = (self.sd.clone(), record) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let command = DeviceCommand::RecordEvent {
            camera: sd.camera().clone(),
            kind: "alarm".into(),
            detail: format!("{} {}", a.kind, a.id),
        };
        rt.spawn(async move {
            if let DeviceReply::Failed { message, .. } = sd.execute(command).await {
                tracing::warn!(%message, "cannot mark the alarm on the SD card");
            }
        });
    }

    /// Writes the saved state atomically (temporary file, then rename).
    fn save(&self, saved: &Saved) -> Result<(), StateError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let dir = file.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let bytes = serde_json::to_vec(saved).map_err(StateError::Encode)?;
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, file))
            .map_err(|source| StateError::Save {
                path: file.clone(),
                source,
            })
    }

    /// Records a wired line's state; true when it changed.
    fn set_wired(&self, input: u8, active: bool) -> bool {
        self.lock().wired.insert(input, active) != Some(active)
    }
}

/// The id prefix of this run: a boot counter kept in `state_dir` and the start time, so ids
/// stay unique across restarts and factory resets (H.626.4 8.8: the platform stores an id
/// once).
pub fn boot_prefix(state_dir: Option<&Path>, now_ms: u64) -> String {
    let mut boot = 0u64;
    if let Some(dir) = state_dir {
        let f = dir.join("alarm-boot");
        boot = std::fs::read_to_string(&f)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let _ = std::fs::create_dir_all(dir);
        if let Err(e) = std::fs::write(&f, boot.to_string()) {
            tracing::warn!(error = %e, "cannot save the boot counter");
        }
    }
    format!("b{boot}t{}", base36(now_ms / 1000))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests;
