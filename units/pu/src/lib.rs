//! The H.626.4 premises unit (PU): the agent that runs on (or beside) a camera.
//!
//! This crate holds the device's identity, registers with the SCU by signed challenge
//! (H.626.4 8.1), keeps the registration alive with heartbeats, answers commands routed from
//! the CMU, and reconnects with jittered exponential backoff when the SCU goes away
//! (docs/security.md D12). The PU makes outbound connections only (D6) and trusts only the
//! platform CA it was given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peercam_net::{NetError, Shutdown};
use peercam_signal::identity::DeviceIdentity;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, watch};

mod agent;
pub mod alarm;
pub mod clock;
mod cloud;
pub mod control;
pub mod media;
pub mod onvif;
mod rtsp;
mod sd;
mod snapshot;
pub mod speaker;
#[cfg(feature = "alsa")]
pub mod speaker_alsa;
pub mod upgrade;
mod webrtc;
pub mod wlan;

pub use agent::PlatformRequest;

/// The version this binary was built as (the factory version).
pub const SW_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version running: the installed slot's (set by the upgrade supervisor, 8.11.1), else
/// [`SW_VERSION`].
pub fn running_version() -> String {
    std::env::var(upgrade::ENV_SLOT_VERSION)
        .ok()
        .filter(|v| v.parse::<peercam_signal::upgrade::Version>().is_ok())
        .unwrap_or_else(|| SW_VERSION.to_owned())
}

/// Errors that stop the agent before it starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PuError {
    /// The identity, certificates or files could not be read.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The media source is unusable.
    #[error("media source: {0}")]
    Source(String),
    /// The SD card recorder could not start.
    #[error(transparent)]
    Sd(#[from] sd::SdError),
    /// The speaker (`speaker_alsa`) could not be opened, or this build has no ALSA.
    #[error("speaker: {0}")]
    Speaker(String),
}

/// Configuration of a PU agent (`pu.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The identity file written at provisioning.
    pub identity: PathBuf,
    /// The SCU's device endpoint, `wss://HOST:PORT/`.
    pub scu_url: String,
    /// The platform CA certificate (PEM) the SCU must chain to; nothing else is trusted.
    pub platform_ca: PathBuf,
    /// First reconnect delay, ms. Default 250.
    #[serde(default = "peercam_net::agent::default_reconnect_initial_ms")]
    pub reconnect_initial_ms: u64,
    /// Longest reconnect delay, ms. Default 4000.
    #[serde(default = "peercam_net::agent::default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// Where the RTSP server listens (Pc/Pc'). Default `0.0.0.0:8554`.
    #[serde(default = "default_rtsp_listen")]
    pub rtsp_listen: SocketAddr,
    /// Addresses (`host:port`) viewers use to reach the RTSP server, best first, reported to
    /// the platform (H.626.4 8.3). Default: the listening address, or every local address
    /// when listening on all interfaces.
    #[serde(default)]
    pub advertise: Vec<String>,
    /// UDP port on which the camera answers NVRs' LAN discovery probes (Np, multicast
    /// group 239.255.70.26); 0 turns discovery off. Default 45454.
    #[serde(default = "peercam_net::discover::default_port")]
    pub discovery_port: u16,
    /// H.626.4 8.3 step 1: ask the home gateway (PCP, NAT-PMP, then UPnP IGD) to map the
    /// RTSP port, and report the mapping so viewers anywhere reach the camera directly.
    /// Default true.
    #[serde(default = "default_true")]
    pub port_mapping: bool,
    /// The gateway to ask; default: the default route's gateway.
    #[serde(default)]
    pub gateway: Option<std::net::IpAddr>,
    /// The SD card (H.626.4 8.7.3): where the camera records when a strategy is set. Set
    /// `sd_card = false` for a camera without one. Default: beside the identity file,
    /// `<identity minus .toml>.sd/`.
    #[serde(default)]
    pub sd_dir: Option<PathBuf>,
    /// Whether the camera has an SD card. Default true.
    #[serde(default = "yes")]
    pub sd_card: bool,
    /// Keep at least this many MiB free on the card. Default 64.
    #[serde(default = "default_sd_min_free")]
    pub sd_min_free_mb: u64,
    /// MiB the recordings may use on the card (0: all of it). Default 0.
    #[serde(default)]
    pub sd_quota_mb: u64,
    /// The camera's highest frame rate, 1-25. Default 25.
    #[serde(default = "default_max_fps")]
    pub max_fps: u8,
    /// RTSP sessions at most, over all viewers. Default 64.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// An H.264 Annex B file to loop instead of the synthetic scene (served at its own size,
    /// at `max_fps`). Default: none, the synthetic camera.
    #[serde(default)]
    pub source_file: Option<PathBuf>,
    /// A third-party RTSP camera to pull and re-serve instead of the synthetic scene:
    /// `rtsp://user:password@host:port/path` (credentials optional, Digest or Basic). Its
    /// H.264 stream is served as it is. Default: none.
    #[serde(default)]
    pub source_rtsp: Option<String>,
    /// How to pull `source_rtsp`: `tcp` (interleaved, default) or `udp`.
    #[serde(default)]
    pub source_rtsp_transport: Option<String>,
    /// The wrapped camera's ONVIF device service, `http://user:pass@host/onvif/device_service`:
    /// PTZ orders (H.626.4 8.5) then drive the camera itself. Default: none (PTZ moves the
    /// synthetic camera's view).
    #[serde(default)]
    pub onvif_url: Option<String>,
    /// Where the camera keeps its settings (parameters, PTZ presets; H.626.4 8.9.1, 8.5),
    /// wiped by a factory reset (8.10). Default: beside the identity file, named like it
    /// with the extension `.state` (`pu.toml` -> `pu.state/`).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Length of the synthetic scene's day, seconds, for night vision (6.1.5); 0 keeps it
    /// day. Default 0.
    #[serde(default)]
    pub day_cycle_s: u32,
    /// Labs and tests only: pretend the device's clock is off by this much, ms, to watch
    /// synchronisation with the SCU (H.626.4 7.2) correct it. Default 0.
    #[serde(default)]
    pub clock_skew_ms: i64,
    /// WLAN backend (H.626.4 6.1.11): `networkmanager`, or `file:PATH` (a JSON description
    /// of the networks in range, for the demo and tests). Default: none (WLAN commands are
    /// refused as unsupported).
    #[serde(default)]
    pub wlan: Option<String>,
    /// How long a WLAN switch has to reach the platform before the camera returns to the
    /// previous network, seconds. Default 60.
    #[serde(default = "default_wlan_confirm")]
    pub wlan_confirm_s: u32,
    /// Release public keys (base64url Ed25519) whose signatures upgrades need (H.626.4
    /// 8.11.1, D9). Default: none, and upgrades are refused.
    #[serde(default)]
    pub release_keys: Vec<String>,
    /// How many distinct release keys must sign a release. Default 1.
    #[serde(default = "default_threshold")]
    pub release_threshold: usize,
    /// Where installed releases live (slots), apart from `state_dir` so a factory reset keeps
    /// the software. Default: beside the identity file, `<identity minus .toml>.firmware/`.
    #[serde(default)]
    pub firmware_dir: Option<PathBuf>,
    /// How long a new release has to register with the platform before the supervisor rolls
    /// back to the previous one, seconds. Default 60.
    #[serde(default = "default_health")]
    pub upgrade_health_s: u32,
    /// The synthetic scene's moving object is shown from the start (the motion detector's
    /// demo; tests switch it with `Running::alarms`). Default true.
    #[serde(default = "yes")]
    pub scene_motion: bool,
    /// Alarm inputs wired to GPIO lines (H.626.4 8.8): `[[alarm_gpio_inputs]]` tables of
    /// `input` (1-8) and `path` (the sysfs value file, read every 100 ms). The other inputs
    /// are simulated (switched by the `trip_input` command). Default: none.
    #[serde(default)]
    pub alarm_gpio_inputs: Vec<alarm::GpioInput>,
    /// The alarm output's GPIO value file (`1` on, `0` off). Default: none, simulated.
    #[serde(default)]
    pub alarm_output_gpio: Option<PathBuf>,
    /// The camera's speaker as a WAV file (16-bit PCM, mono, 8 kHz): what viewers with the
    /// `talk` scope say to the camera (intercom, H.626.4 6.1.8) is written there, created on
    /// the first sound. Default: none, and the camera declines talk.
    #[serde(default)]
    pub speaker_wav: Option<PathBuf>,
    /// The camera's loudspeaker as an ALSA PCM device (`default`, `plughw:0,0`, ...): talk
    /// is played there (16-bit mono, 8 kHz; the device must convert or take that). Needs a
    /// build with the `alsa` feature (it links libasound); without it the PU refuses to
    /// start with this set. With `speaker_wav` as well, talk goes to both. Default: none.
    #[serde(default)]
    pub speaker_alsa: Option<String>,
    /// Half duplex talk: while a viewer talks (and for 0.5 s after its last sound), the
    /// camera's own audio is not sent to that viewer, so its speaker does not echo its voice
    /// back. Default false (full duplex).
    #[serde(default)]
    pub talk_half_duplex: bool,
    /// Cloud recording (H.626.4 8.7.1): the backlog of objects waiting for the CS, MiB of
    /// RAM. Default 32.
    #[serde(default = "default_cloud_backlog")]
    pub cloud_backlog_mb: u64,
    /// Cloud recording on a camera with an SD card: the backlog spooled on the card, MiB.
    /// Default 1024.
    #[serde(default = "default_cloud_spool")]
    pub cloud_spool_mb: u64,
    /// Cloud recording: the length of an upload object, seconds (1-60). Default 10.
    #[serde(default = "default_cloud_object")]
    pub cloud_object_s: u32,
    /// Forward talk to the wrapped camera (`source_rtsp`) over its own ONVIF audio back
    /// channel, opened when a viewer starts talking and closed 5 s after the last sound
    /// (G.711 as that camera asks; credentials from the URL). With `speaker_wav` as well,
    /// talk goes to both. Default false.
    #[serde(default)]
    pub talk_to_source: bool,
}

fn default_rtsp_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8554))
}
fn yes() -> bool {
    true
}
fn default_sd_min_free() -> u64 {
    64
}
fn default_max_fps() -> u8 {
    25
}
fn default_max_sessions() -> usize {
    64
}
fn default_wlan_confirm() -> u32 {
    60
}
fn default_threshold() -> usize {
    1
}
fn default_health() -> u32 {
    60
}

fn default_true() -> bool {
    true
}

fn default_cloud_backlog() -> u64 {
    32
}

fn default_cloud_spool() -> u64 {
    1024
}

fn default_cloud_object() -> u32 {
    10
}

impl Config {
    /// A configuration with defaults for everything that has one (gateway port mapping off:
    /// set `port_mapping` for a camera behind a home router).
    pub fn new(identity: PathBuf, scu_url: String, platform_ca: PathBuf) -> Self {
        Self {
            identity,
            scu_url,
            platform_ca,
            reconnect_initial_ms: peercam_net::agent::default_reconnect_initial_ms(),
            reconnect_max_ms: peercam_net::agent::default_reconnect_max_ms(),
            rtsp_listen: default_rtsp_listen(),
            advertise: Vec::new(),
            discovery_port: peercam_net::discover::default_port(),
            port_mapping: false,
            gateway: None,
            sd_dir: None,
            sd_card: true,
            sd_min_free_mb: default_sd_min_free(),
            sd_quota_mb: 0,
            max_fps: default_max_fps(),
            max_sessions: default_max_sessions(),
            source_file: None,
            source_rtsp: None,
            source_rtsp_transport: None,
            onvif_url: None,
            state_dir: None,
            day_cycle_s: 0,
            clock_skew_ms: 0,
            wlan: None,
            wlan_confirm_s: default_wlan_confirm(),
            release_keys: Vec::new(),
            release_threshold: default_threshold(),
            firmware_dir: None,
            upgrade_health_s: default_health(),
            scene_motion: true,
            alarm_gpio_inputs: Vec::new(),
            alarm_output_gpio: None,
            speaker_wav: None,
            speaker_alsa: None,
            talk_half_duplex: false,
            cloud_backlog_mb: default_cloud_backlog(),
            cloud_spool_mb: default_cloud_spool(),
            cloud_object_s: default_cloud_object(),
            talk_to_source: false,
        }
    }

    /// The firmware directory (slots of installed releases).
    pub fn firmware_dir(&self) -> PathBuf {
        self.firmware_dir
            .clone()
            .unwrap_or_else(|| self.identity.with_extension("firmware"))
    }
}

/// Where the agent stands with the platform (registered: H.626.4 8.1 done).
pub type PuStatus = peercam_net::agent::LinkStatus;

/// A running agent.
pub struct Running {
    /// Current status; `changed()` to wait for the next.
    pub status: watch::Receiver<PuStatus>,
    /// Finishes when the agent stops.
    pub task: tokio::task::JoinHandle<()>,
    /// Number of registrations completed since start.
    pub registrations: Arc<std::sync::atomic::AtomicU64>,
    /// Where the RTSP server listens.
    pub rtsp_addr: SocketAddr,
    /// The encoders.
    pub hub: Arc<media::MediaHub>,
    /// The camera's alarms (H.626.4 8.8): state, sources, the scene's moving object.
    pub alarms: Arc<alarm::Alarms>,
    /// Turns `true` when an upgrade is installed and the process should exit with
    /// [`upgrade::EXIT_RESTART`] for the supervisor to start it (8.11.1).
    pub restart: watch::Receiver<bool>,
}

/// Loads the identity, binds the RTSP listener and starts the agent in the background.
pub async fn start(config: Config, shutdown: Shutdown) -> Result<Running, PuError> {
    let (identity, tls) = peercam_net::agent::load_device(&config.identity, &config.platform_ca)?;
    let (listener, rtsp_addr) = peercam_net::accept::bind(config.rtsp_listen, "RTSP").await?;
    let advertise = if config.advertise.is_empty() {
        default_advertise(rtsp_addr, &config.scu_url)
    } else {
        config.advertise.clone()
    };
    let (status_tx, status) = watch::channel(PuStatus::Connecting);
    let registrations = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (revoke_tx, _) = broadcast::channel(64);
    let stream_id = u32::from_be_bytes(
        identity.device_id.as_str().as_bytes()[3..7]
            .try_into()
            .unwrap_or([0; 4]),
    );
    let source = media_source(&config)?;
    let state_dir = config
        .state_dir
        .clone()
        .unwrap_or_else(|| config.identity.with_extension("state"));
    let day = (config.day_cycle_s > 0).then(|| Duration::from_secs(config.day_cycle_s.into()));
    let control = Arc::new(
        control::Control::open(Some(&state_dir), day)
            .map_err(|e| PuError::Source(e.to_string()))?,
    );
    let clock = Arc::new(clock::MediaClock::new(config.clock_skew_ms));
    let onvif = match &config.onvif_url {
        Some(u) => Some(Arc::new(
            onvif::Onvif::new(u).map_err(|e| PuError::Source(e.to_string()))?,
        )),
        None => None,
    };
    let upgrader = upgrader(&config, &identity.model, &tls)?;
    let wlan = wlan_backend(&config)?;
    control.set_scene_motion(config.scene_motion);
    let synthetic = matches!(source, media::Source::Synthetic);
    let hub = media::MediaHub::with_parts(stream_id, source, control.clone(), clock.clone());
    // H.626.4 8.7.3: the SD card, and its playback and export on the RTSP port.
    let sd = start_sd(
        &config,
        &identity.device_id,
        &hub,
        &state_dir,
        cmd_tx.clone(),
        &shutdown,
    )
    .await?;
    // H.626.4 8.7.1: recording to cloud storage.
    let cloud = cloud::Cloud::start(
        identity.device_id.clone(),
        hub.clone(),
        config.max_fps,
        &state_dir,
        cloud::Settings {
            backlog_bytes: config.cloud_backlog_mb.max(1) << 20,
            object_ms: u64::from(config.cloud_object_s.clamp(1, 60)) * 1000,
            spool: config.sd_card.then(|| {
                let sd =
                    (config.sd_dir.clone()).unwrap_or_else(|| config.identity.with_extension("sd"));
                (sd.join("cloud-outbox"), config.cloud_spool_mb.max(1) << 20)
            }),
        },
        Some((*tls).clone()),
        cmd_tx.clone(),
        shutdown.clone(),
    );
    // H.626.4 8.7.3: playback and export of the SD card, their tokens judged by the platform.
    let recordings = sd.as_ref().map(|sd| {
        peercam_recorder::serve::Media::with_platform(
            Arc::new(sd.store().clone()),
            cmd_tx.clone(),
            60,
        )
    });
    // H.626.4 8.8: the camera's alarms, their sources and their way up.
    let alarms = start_alarms(
        &config,
        &state_dir,
        &control,
        &clock,
        (sd.clone(), cloud.clone()),
        (&hub, synthetic),
        &shutdown,
    )?;
    if let Some(o) = &onvif {
        alarm::sources::spawn_onvif_events(
            alarms.clone(),
            o.clone(),
            clock.clone(),
            shutdown.clone(),
        );
    }
    let alarm_platform = cmd_tx.clone();
    let server = rtsp::Server::new(rtsp::ServerSettings {
        recordings,
        device_id: identity.device_id.clone(),
        max_fps: config.max_fps,
        max_sessions: config.max_sessions,
        hub: hub.clone(),
        control: control.clone(),
        platform: cmd_tx,
        revocations: revoke_tx.clone(),
        webrtc_ip: peercam_net::agent::advertised_ip(&advertise),
        intercom: speakers(&config, &shutdown)?.map(|s| Arc::new(speaker::Intercom::new(s))),
        talk_half_duplex: config.talk_half_duplex,
    });
    tokio::spawn(server.clone().serve(listener, shutdown.clone()));
    // H.626.4 8.3 step 1: gateway port mappings, reported with the local addresses.
    let (mapped_tx, mapped) = watch::channel(Vec::new());
    spawn_port_mapping(&config, rtsp_addr, mapped_tx, shutdown.clone());
    spawn_discovery(&config, &identity, &advertise, &shutdown)?;
    let link = peercam_net::agent::LinkConfig {
        scu_url: config.scu_url.clone(),
        tls: tls.clone(),
        identity: identity.clone(),
        sw_version: running_version(),
        reconnect_initial: Duration::from_millis(config.reconnect_initial_ms),
        reconnect_max: Duration::from_millis(config.reconnect_max_ms),
        // Nothing periodic beyond heartbeats and clock synchronisation (the session's).
        tick: Duration::from_secs(3600),
    };
    let agent = agent::Agent {
        identity,
        tls,
        started: Instant::now(),
        registrations: registrations.clone(),
        advertise,
        revocations: revoke_tx,
        control,
        clock,
        wlan,
        upgrader: upgrader.clone(),
        onvif,
        sd,
        cloud,
        rtsp: server,
        mapped,
        alarms: alarms.clone(),
        shutdown: shutdown.clone(),
    };
    alarm::uplink::spawn(
        alarms.clone(),
        alarm_platform,
        status.clone(),
        agent.clock.clone(),
        shutdown.clone(),
    );
    let task = tokio::spawn(peercam_net::agent::run(
        link,
        Arc::new(agent),
        status_tx,
        cmd_rx,
        shutdown,
    ));
    let restart = upgrader.restart.subscribe();
    Ok(Running {
        status,
        task,
        registrations,
        rtsp_addr,
        hub,
        alarms,
        restart,
    })
}

/// The upgrader of signed releases (H.626.4 8.11.1) with the configured release keys.
fn upgrader(
    config: &Config,
    model: &str,
    tls: &Arc<peercam_net::rustls::ClientConfig>,
) -> Result<Arc<upgrade::Upgrader>, PuError> {
    let keys = config
        .release_keys
        .iter()
        .map(|k| peercam_signal::upgrade::parse_key(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PuError::Source(format!("release_keys: {e}")))?;
    Ok(Arc::new(upgrade::Upgrader::new(
        upgrade::Firmware::new(config.firmware_dir()),
        keys,
        config.release_threshold,
        model.to_owned(),
        running_version(),
        Some((**tls).clone()),
    )))
}

/// The SD card recorder (H.626.4 8.7.3), when the camera has one.
async fn start_sd(
    config: &Config,
    camera: &peercam_base::DeviceId,
    hub: &Arc<media::MediaHub>,
    state_dir: &std::path::Path,
    platform: mpsc::Sender<PlatformRequest>,
    shutdown: &Shutdown,
) -> Result<Option<Arc<sd::Sd>>, PuError> {
    if !config.sd_card {
        return Ok(None);
    }
    let dir = config
        .sd_dir
        .clone()
        .unwrap_or_else(|| config.identity.with_extension("sd"));
    let sd = sd::Sd::start(
        dir,
        config.sd_min_free_mb,
        config.sd_quota_mb,
        camera.clone(),
        hub.clone(),
        config.max_fps,
        state_dir.join("sd-strategy.json"),
        platform,
        shutdown.clone(),
    )
    .await?;
    Ok(Some(sd))
}

/// Opens the camera's alarms and starts their sources (H.626.4 8.8).
fn start_alarms(
    config: &Config,
    state_dir: &std::path::Path,
    control: &Arc<control::Control>,
    clock: &Arc<clock::MediaClock>,
    (sd, cloud): (Option<Arc<sd::Sd>>, Arc<cloud::Cloud>),
    (hub, synthetic): (&Arc<media::MediaHub>, bool),
    shutdown: &Shutdown,
) -> Result<Arc<alarm::Alarms>, PuError> {
    let prefix = alarm::boot_prefix(Some(state_dir), clock.now_us() / 1000);
    let wiring = alarm::Wiring {
        inputs: config.alarm_gpio_inputs.clone(),
        output: config.alarm_output_gpio.clone(),
    };
    let alarms = Arc::new(
        alarm::Alarms::open(Some(state_dir), &prefix, control.clone(), wiring)
            .map_err(|e| PuError::Source(format!("alarms: {e}")))?
            .with_sd(sd)
            .with_cloud(cloud),
    );
    if synthetic {
        alarm::sources::spawn_scene_analysis(
            alarms.clone(),
            control.clone(),
            clock.clone(),
            shutdown.clone(),
        );
    } else {
        alarm::sources::spawn_video_watch(
            alarms.clone(),
            hub.clone(),
            clock.clone(),
            shutdown.clone(),
        );
    }
    alarm::sources::spawn_gpio(
        alarms.clone(),
        control.clone(),
        clock.clone(),
        shutdown.clone(),
    );
    Ok(alarms)
}

/// The camera's speakers (6.1.8): its WAV file, the wrapped camera's back channel, or both;
/// none when neither is configured (the camera declines talk).
fn speakers(
    config: &Config,
    shutdown: &Shutdown,
) -> Result<Option<Box<dyn speaker::Speaker>>, PuError> {
    let mut out: Vec<Box<dyn speaker::Speaker>> = Vec::new();
    if let Some(p) = &config.speaker_wav {
        out.push(Box::new(speaker::WavFile::new(p.clone())));
    }
    if let Some(device) = &config.speaker_alsa {
        out.push(alsa_speaker(device)?);
    }
    if config.talk_to_source {
        let url = config
            .source_rtsp
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .ok_or_else(|| {
                PuError::Source("talk_to_source needs source_rtsp, the camera to talk to".into())
            })?;
        out.push(Box::new(media::backchannel::spawn(url, shutdown.clone())));
    }
    Ok(match out.len() {
        0 => None,
        1 => out.pop(),
        _ => Some(Box::new(media::backchannel::Both(out))),
    })
}

/// The ALSA loudspeaker `device` (clause 7: the PU's optional audio playback).
#[cfg(feature = "alsa")]
fn alsa_speaker(device: &str) -> Result<Box<dyn speaker::Speaker>, PuError> {
    speaker_alsa::Alsa::open(device)
        .map(|s| Box::new(s) as Box<dyn speaker::Speaker>)
        .map_err(|e| PuError::Speaker(e.to_string()))
}

#[cfg(not(feature = "alsa"))]
fn alsa_speaker(device: &str) -> Result<Box<dyn speaker::Speaker>, PuError> {
    Err(PuError::Speaker(format!(
        "speaker_alsa = {device:?} needs a peercam built with ALSA: install libasound2-dev and \
         build with `--features alsa`"
    )))
}

/// The picture source `config` names: a file, a third-party RTSP camera, or the synthetic
/// scene.
fn media_source(config: &Config) -> Result<media::Source, PuError> {
    Ok(match (&config.source_file, &config.source_rtsp) {
        (Some(_), Some(_)) => {
            return Err(PuError::Source(
                "source_file and source_rtsp are exclusive: pick one".into(),
            ));
        }
        (Some(path), None) => {
            media::Source::file(path, config.max_fps).map_err(|e| PuError::Source(e.to_string()))?
        }
        (None, Some(url)) => {
            let parsed = url::Url::parse(url)
                .ok()
                .filter(|u| u.scheme() == "rtsp" && u.host().is_some())
                .ok_or_else(|| {
                    PuError::Source("source_rtsp must be an rtsp://host/path URL".into())
                })?;
            let udp = match config.source_rtsp_transport.as_deref() {
                None | Some("tcp") => false,
                Some("udp") => true,
                Some(other) => {
                    return Err(PuError::Source(format!(
                        "source_rtsp_transport = {other:?}: expected tcp or udp"
                    )));
                }
            };
            media::Source::Rtsp(media::pull::PullConfig { url: parsed, udp })
        }
        (None, None) => media::Source::Synthetic,
    })
}

/// The WLAN backend `config` names (H.626.4 6.1.11), if any.
fn wlan_backend(config: &Config) -> Result<Option<Arc<wlan::Wlan>>, PuError> {
    let confirm = Duration::from_secs(config.wlan_confirm_s.max(1).into());
    Ok(match config.wlan.as_deref() {
        None | Some("" | "none") => None,
        Some("networkmanager") => {
            Some(Box::new(wlan::NetworkManager) as Box<dyn wlan::WlanBackend>)
        }
        Some(other) => match other.strip_prefix("file:") {
            Some(path) => {
                Some(Box::new(wlan::FileBackend::new(path.into())) as Box<dyn wlan::WlanBackend>)
            }
            None => {
                return Err(PuError::Source(format!(
                    "wlan = {other:?}: expected \"networkmanager\" or \"file:PATH\""
                )));
            }
        },
    }
    .map(|b| Arc::new(wlan::Wlan::new(b, confirm))))
}

/// Np: NVRs on the LAN find the camera by a multicast probe.
fn spawn_discovery(
    config: &Config,
    identity: &DeviceIdentity,
    advertise: &[String],
    shutdown: &Shutdown,
) -> Result<(), PuError> {
    if config.discovery_port != 0 {
        let key = identity
            .signing_key()
            .map_err(|e| PuError::Source(format!("identity key: {e}")))?;
        let (port, id, addrs, sd) = (
            config.discovery_port,
            identity.device_id.clone(),
            advertise.to_vec(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = peercam_net::discover::answer_probes(port, id, addrs, key, sd).await {
                tracing::warn!(error = %e, port, "LAN discovery is off");
            }
        });
    }
    Ok(())
}

/// Addresses to report when none are configured (H.626.4 8.3 step 2): the bound one; when
/// bound to all interfaces, the address this host uses towards the SCU (the one its LAN
/// knows it by), else loopback. Gateway mappings are reported beside them.
fn default_advertise(addr: SocketAddr, scu_url: &str) -> Vec<String> {
    if !addr.ip().is_unspecified() {
        return vec![addr.to_string()];
    }
    let scu = scu_url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', '?']).next())
        .unwrap_or_default();
    let primary = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| {
            s.connect(scu)?;
            s.local_addr()
        })
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    match primary {
        Some(ip) => vec![SocketAddr::new(ip, addr.port()).to_string()],
        None => vec![format!("127.0.0.1:{}", addr.port())],
    }
}

/// H.626.4 8.3 step 1: asks the gateway for a mapping of the RTSP port when `port_mapping`
/// is on, and keeps `mapped` up to date (renewals, loss).
fn spawn_port_mapping(
    config: &Config,
    rtsp: SocketAddr,
    mapped: watch::Sender<Vec<String>>,
    shutdown: Shutdown,
) {
    if config.port_mapping {
        peercam_net::portmap::keep_mapped(config.gateway, rtsp.port(), mapped, shutdown);
    }
}
