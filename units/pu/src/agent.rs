//! The device's link with the platform (Ps): registration (H.626.4 8.1), heartbeats,
//! commands, endpoint reports (8.3), play checks (8.4 steps 5-8), revocations (D5) and clock
//! synchronisation (7.2). The link itself is [`peercam_net::agent`]; this is what the camera
//! brings to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peercam_net::Shutdown;
use peercam_net::agent::{Device, HookFuture, ReplyFuture, Session};
use peercam_net::rustls::ClientConfig;
use peercam_signal::clock::{Sample, SyncFilter};
use peercam_signal::cmd::{DeviceCommand, DeviceDescription, DeviceReply};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::link::{DeviceLink, LinkEvent};
use tokio::sync::{broadcast, watch};

use crate::clock::MediaClock;
use crate::control::{Control, ControlError};
use crate::running_version;
use crate::upgrade::{ENV_TRIAL, InstallError, Upgrader};
use crate::wlan::Wlan;

/// What the media side asks of the platform link (H.626.4 8.4 step 5: is this viewer's
/// token legitimate?).
pub use peercam_net::agent::PlatformReq as PlatformRequest;

/// A revocation: end the sessions of this user (`None`: of everyone).
pub(crate) type Revocation = Option<i64>;

pub(crate) struct Agent {
    pub(crate) identity: DeviceIdentity,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) started: Instant,
    pub(crate) registrations: Arc<AtomicU64>,
    pub(crate) advertise: Vec<String>,
    pub(crate) revocations: broadcast::Sender<Revocation>,
    pub(crate) control: Arc<Control>,
    pub(crate) clock: Arc<MediaClock>,
    pub(crate) wlan: Option<Arc<Wlan>>,
    pub(crate) upgrader: Arc<Upgrader>,
    pub(crate) onvif: Option<Arc<crate::onvif::Onvif>>,
    pub(crate) sd: Option<Arc<crate::sd::Sd>>,
    /// Recording to cloud storage (H.626.4 8.7.1).
    pub(crate) cloud: Arc<crate::cloud::Cloud>,
    /// The RTSP server, for the MTU's relay channel (Pd).
    pub(crate) rtsp: crate::rtsp::Server,
    /// Gateway port mappings (H.626.4 8.3 step 1), reported with the local addresses.
    pub(crate) mapped: watch::Receiver<Vec<String>>,
    /// The camera's alarms (H.626.4 8.8).
    pub(crate) alarms: Arc<crate::alarm::Alarms>,
    pub(crate) shutdown: Shutdown,
}

impl Device for Agent {
    fn prepare(&self, link: &mut DeviceLink) {
        // H.626.4 8.3 step 2: tell the platform where viewers reach us (sent once
        // registered): local addresses and the gateway's mappings.
        link.report_addresses(self.advertise.clone(), self.mapped.borrow().clone());
    }

    fn command(&self, command: DeviceCommand, connected_s: u64) -> ReplyFuture {
        match command {
            // H.626.4 8.5 for a wrapped camera: its own PTZ, over ONVIF, answered when the
            // camera has answered.
            DeviceCommand::Ptz { order } if self.onvif.is_some() => {
                let onvif = self.onvif.clone();
                Box::pin(async move {
                    match (order.validate(), onvif) {
                        (Err(errors), _) => DeviceReply::Invalid { errors },
                        (Ok(()), Some(o)) => match o.ptz(&order).await {
                            Ok(state) => DeviceReply::Ptz { state },
                            Err(e) => failed("camera", e.to_string()),
                        },
                        (Ok(()), None) => failed("unsupported", "no ONVIF camera configured"),
                    }
                })
            }
            // Mp: open the outbound media channel to an MTU; answered once it is open.
            DeviceCommand::RelayConnect {
                tunnel,
                server_name,
                ticket,
            } => {
                let (server, tls, sd) =
                    (self.rtsp.clone(), self.tls.clone(), self.shutdown.clone());
                Box::pin(async move {
                    match server.relay(&tunnel, &server_name, &ticket, tls, sd).await {
                        Ok(()) => DeviceReply::Done,
                        Err(e) => {
                            tracing::warn!(%tunnel, error = %e, "cannot open the relay channel");
                            failed("relay_unreachable", e.to_string())
                        }
                    }
                })
            }
            // H.626.4 8.3: hole punching; answered with the camera's description.
            DeviceCommand::Punch { offer, stun } => {
                let (server, sd) = (self.rtsp.clone(), self.shutdown.clone());
                Box::pin(async move {
                    match server.punch(&offer, stun.as_deref(), sd).await {
                        Ok(answer) => DeviceReply::Punch { answer },
                        Err(e) => failed("punch_failed", e.to_string()),
                    }
                })
            }
            // Issue 7 / 8.4: a browser's WebRTC offer; the token is judged first.
            DeviceCommand::WebRtc {
                offer,
                token,
                client,
                stun,
                session,
            } => {
                let (server, sd) = (self.rtsp.clone(), self.shutdown.clone());
                Box::pin(async move {
                    match server
                        .webrtc(&offer, token, client, (stun.as_deref(), session), sd)
                        .await
                    {
                        Ok(answer) => DeviceReply::WebRtc { answer },
                        Err((code, message)) => DeviceReply::Failed { code, message },
                    }
                })
            }
            // Issue 20: trickle ICE for a live view.
            DeviceCommand::WebRtcCandidates {
                session,
                user,
                candidates,
                end: _,
            } => {
                let server = self.rtsp.clone();
                Box::pin(async move {
                    match server.trickle(&session, user, candidates).await {
                        Ok(()) => DeviceReply::Done,
                        Err((code, message)) => DeviceReply::Failed { code, message },
                    }
                })
            }
            command => self.command_more(command, connected_s),
        }
    }

    fn session(&self) -> Box<dyn Session> {
        let mut mapped = self.mapped.clone();
        // `prepare` reports the current mappings; later changes are reported as they come.
        mapped.mark_unchanged();
        Box::new(PuSession {
            device: self.identity.device_id.to_string(),
            network: self.wlan.as_ref().map(|w| w.network.subscribe()),
            wlan: self.wlan.clone(),
            advertise: self.advertise.clone(),
            mapped,
            registrations: self.registrations.clone(),
            upgrader: self.upgrader.clone(),
            revocations: self.revocations.clone(),
            clock: self.clock.clone(),
            sync: SyncFilter::new(),
            next_sync: None,
            burst: 0,
        })
    }

    fn replied(&self, reply: &DeviceReply) -> Option<&'static str> {
        // H.626.4 8.10: acknowledged; now reset and register again.
        matches!(reply, DeviceReply::ResetAccepted).then(|| self.factory_reset())
    }
}

fn failed(code: &str, message: impl Into<String>) -> DeviceReply {
    DeviceReply::Failed {
        code: code.into(),
        message: message.into(),
    }
}

impl Agent {
    /// The commands that are not a network operation.
    fn command_more(&self, command: DeviceCommand, connected_s: u64) -> ReplyFuture {
        match command {
            // A still picture (thumbnails, 6.1.12, 8.8).
            DeviceCommand::Snapshot { max_width } => {
                let settings = self.rtsp.settings.clone();
                Box::pin(async move {
                    match crate::snapshot::take(&settings.hub, settings.max_fps, max_width).await {
                        Ok(s) => DeviceReply::Snapshot {
                            jpeg: s.base64(),
                            width: s.width,
                            height: s.height,
                            taken_ms: now_ms(),
                        },
                        Err(e) => failed("snapshot", e.to_string()),
                    }
                })
            }
            // 8.7.3 for browsers: the SD card's recordings over WebRTC.
            command @ DeviceCommand::PlaybackWebRtc { .. } => {
                let media = self.rtsp.settings.recordings.clone();
                let (ip, sd) = (self.rtsp.settings.webrtc_ip, self.shutdown.clone());
                Box::pin(async move {
                    match media {
                        Some(m) => peercam_recorder::webrtc::execute(&m, command, ip, sd).await,
                        None => failed("no_recording", "this camera has no SD card recording"),
                    }
                })
            }
            // H.626.4 8.7.1: the cloud strategy and state.
            command if crate::cloud::Cloud::handles(&command) => {
                Box::pin(std::future::ready(self.cloud.execute(command)))
            }
            // An event also extends the cloud strategy's alarm recording.
            DeviceCommand::RecordEvent {
                camera,
                kind,
                detail,
            } if camera == self.identity.device_id && self.sd.is_none() => {
                let _ = (kind, detail);
                self.cloud.mark_event();
                Box::pin(std::future::ready(DeviceReply::Done))
            }
            // H.626.4 8.7.3: the SD card's commands touch the card; answered when done.
            command if self.sd.as_ref().is_some_and(|sd| sd.handles(&command)) => {
                if matches!(command, DeviceCommand::RecordEvent { .. }) {
                    self.cloud.mark_event();
                }
                let sd = self.sd.clone();
                Box::pin(async move {
                    match sd {
                        Some(sd) => sd.execute(command).await,
                        None => failed("unsupported", "no SD card"),
                    }
                })
            }
            command => {
                if let DeviceCommand::Reset {
                    wipe_recordings: true,
                } = &command
                    && let Some(sd) = self.sd.clone()
                {
                    tokio::spawn(async move { sd.wipe().await });
                }
                Box::pin(std::future::ready(self.execute(command, connected_s)))
            }
        }
    }

    /// 8.10: back to factory state. Live sessions end (D5); the link is dropped so the device
    /// registers again, as after a reboot.
    fn factory_reset(&self) -> &'static str {
        if let Err(e) = self.control.factory_reset() {
            tracing::error!(error = %e, "factory reset could not delete the saved state");
        }
        self.alarms.factory_reset();
        let _ = self.revocations.send(None);
        tracing::warn!(device = %self.identity.device_id, "factory reset done; registering again");
        "factory reset"
    }

    fn execute(&self, command: DeviceCommand, connected_s: u64) -> DeviceReply {
        let now = Instant::now();
        let control_reply = |r: Result<DeviceReply, ControlError>| match r {
            Ok(reply) => reply,
            Err(ControlError::Invalid(errors)) => DeviceReply::Invalid { errors },
            Err(ControlError::Conflict(revision)) => DeviceReply::Conflict { revision },
            Err(ControlError::Storage(e)) => DeviceReply::Failed {
                code: "storage".into(),
                message: e.to_string(),
            },
        };
        if crate::alarm::Alarms::handles(&command) {
            // H.626.4 8.8: alarm strategy, state, reset and simulated inputs.
            return self.alarms.execute(command, self.clock.now_us() / 1000);
        }
        match command {
            // H.626.4 8.5 step 4: the PU executes the PTZ order and reports where it looks.
            DeviceCommand::Ptz { order } => control_reply(
                self.control
                    .ptz(&order, now)
                    .map(|state| DeviceReply::Ptz { state }),
            ),
            // 8.9.1: query, and configuration applied all or nothing.
            DeviceCommand::GetParams => DeviceReply::Params {
                state: self.control.params_state(now),
            },
            DeviceCommand::SetParams {
                base_revision,
                params,
            } => control_reply(
                self.control
                    .set_params(base_revision, params, now)
                    .map(|state| DeviceReply::Params { state }),
            ),
            // H.626.4 8.11.1 steps 3-4: check, download, install, restart.
            DeviceCommand::Upgrade { release, url } => {
                match self.upgrader.start(release, url, now_s()) {
                    Ok(status) => DeviceReply::Upgrade { status },
                    Err(InstallError::Refused(e)) => DeviceReply::Failed {
                        code: e.code().into(),
                        message: e.to_string(),
                    },
                    Err(e) => DeviceReply::Failed {
                        code: "unavailable".into(),
                        message: e.to_string(),
                    },
                }
            }
            DeviceCommand::UpgradeStatus => DeviceReply::Upgrade {
                status: self.upgrader.status(),
            },
            // H.626.4 6.1.11.
            DeviceCommand::WlanScan => match &self.wlan {
                Some(w) => match w.state() {
                    Ok(state) => DeviceReply::Wlan { state },
                    Err(e) => DeviceReply::Failed {
                        code: "wlan".into(),
                        message: e.to_string(),
                    },
                },
                None => no_wlan(),
            },
            DeviceCommand::WlanConnect { config } => match &self.wlan {
                Some(w) => match config.validate() {
                    Err(errors) => DeviceReply::Invalid { errors },
                    Ok(()) => match w.switch(&config, self.registrations.clone()) {
                        Ok(state) => DeviceReply::Wlan { state },
                        Err(e) => DeviceReply::Failed {
                            code: "wlan".into(),
                            message: e.to_string(),
                        },
                    },
                },
                None => no_wlan(),
            },
            DeviceCommand::Reset { wipe_recordings } => {
                // The SD card is wiped (when asked) by the task started in `command`.
                tracing::warn!(wipe_recordings, "factory reset ordered by the platform");
                DeviceReply::ResetAccepted
            }
            DeviceCommand::Describe => DeviceReply::Description(DeviceDescription {
                sw_version: running_version(),
                vendor: self.identity.vendor.clone(),
                model: self.identity.model.clone(),
                uptime_s: self.started.elapsed().as_secs(),
                connected_s,
                clock_offset_us: self.clock.status().map(|s| s.0),
                clock_jitter_us: self.clock.status().map(|s| s.1),
            }),
            _ => DeviceReply::Failed {
                code: "unsupported".into(),
                message: "this agent does not know the command".into(),
            },
        }
    }
}

/// What the camera adds to one connection of its link.
struct PuSession {
    device: String,
    /// H.626.4 6.1.11: a change of network drops the link; it is redialled through the new
    /// one (and the WLAN watchdog counts the registration that follows).
    network: Option<watch::Receiver<u64>>,
    wlan: Option<Arc<Wlan>>,
    advertise: Vec<String>,
    mapped: watch::Receiver<Vec<String>>,
    registrations: Arc<AtomicU64>,
    upgrader: Arc<Upgrader>,
    revocations: broadcast::Sender<Revocation>,
    clock: Arc<MediaClock>,
    /// H.626.4 7.2: a burst of time requests after registering, then one every 30 s.
    sync: SyncFilter,
    next_sync: Option<Instant>,
    burst: u32,
}

impl Session for PuSession {
    fn before_connect(&mut self) -> HookFuture<'_, Result<(), &'static str>> {
        let unreachable = self.wlan.as_ref().is_some_and(|w| !w.reaches_platform());
        Box::pin(async move {
            if unreachable {
                tokio::time::sleep(Duration::from_secs(2)).await;
                return Err("the platform is not reachable through this network");
            }
            Ok(())
        })
    }

    fn registered(&mut self, _link: &mut DeviceLink) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
        self.next_sync = Some(Instant::now());
        self.burst = 4;
        // H.626.4 8.11.1: a release on trial is healthy once it registered.
        if std::env::var_os(ENV_TRIAL).is_some()
            && let Err(e) = self.upgrader.firmware().mark_healthy()
        {
            tracing::error!(error = %e, "cannot mark this release healthy");
        }
    }

    fn event(&mut self, _link: &mut DeviceLink, event: LinkEvent) {
        match event {
            LinkEvent::Revoke { user } => {
                tracing::info!(device = %self.device, ?user, "platform revoked live sessions");
                let _ = self.revocations.send(user);
            }
            LinkEvent::TimeReply {
                t1_us,
                t2_us,
                t3_us,
            } => {
                let t4 = self.clock.raw_us();
                if let Some(s) = Sample::new(t1_us, t2_us, t3_us, t4) {
                    self.sync.push(s);
                    if let Some(e) = self.sync.estimate() {
                        self.clock.apply(&e);
                    }
                }
            }
            _ => {}
        }
    }

    fn poll(&mut self, link: &mut DeviceLink, now: Instant) -> Option<Instant> {
        if let Some(at) = self.next_sync
            && now >= at
        {
            link.request_time(self.clock.raw_us());
            let gap = if self.burst > 1 {
                self.burst -= 1;
                Duration::from_millis(250)
            } else {
                Duration::from_secs(30)
            };
            self.next_sync = Some(at + gap);
        }
        self.next_sync
    }

    fn wait(&mut self) -> HookFuture<'_, Result<(), &'static str>> {
        let (mapped, network) = (&mut self.mapped, self.network.as_mut());
        Box::pin(async move {
            let mapped = async {
                if mapped.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let network = async {
                match network {
                    Some(n) => n.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = mapped => Ok(()),
                changed = network => Err(if changed { "the WLAN changed networks" } else { "WLAN stopped" }),
            }
        })
    }

    fn changed(&mut self, link: &mut DeviceLink) {
        let now = self.mapped.borrow_and_update().clone();
        link.report_addresses(self.advertise.clone(), now);
    }
}

fn no_wlan() -> DeviceReply {
    DeviceReply::Failed {
        code: "unsupported".into(),
        message: "this camera has no WLAN configured (pu.toml `wlan`)".into(),
    }
}

fn now_s() -> u64 {
    now_ms() / 1000
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
