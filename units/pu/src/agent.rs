//! The device's link with the platform (Ps): registration (H.626.4 8.1), heartbeats,
//! commands, endpoint reports (8.3), play checks (8.4 steps 5-8) and revocations (D5).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::Backoff;
use peercam_net::Shutdown;
use peercam_net::rustls::ClientConfig;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_signal::clock::{Sample, SyncFilter};
use peercam_signal::cmd::{DeviceCommand, DeviceDescription, DeviceReply};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::link::{DeviceLink, LinkEvent};
use peercam_signal::play::PlayVerdict;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::clock::MediaClock;
use crate::control::{Control, ControlError};
use crate::upgrade::{ENV_TRIAL, InstallError, Upgrader};
use crate::wlan::Wlan;
use crate::{Config, PuStatus, running_version};

/// What the media side asks of the platform link.
#[derive(Debug)]
pub enum PlatformRequest {
    /// H.626.4 8.4 step 5: is this viewer's token legitimate?
    AuthorizePlay {
        /// The token from the RTSP request.
        token: String,
        /// The viewer's address.
        client: String,
        /// Where the verdict goes.
        reply: oneshot::Sender<PlayVerdict>,
    },
}

/// A revocation: end the sessions of this user (`None`: of everyone).
pub(crate) type Revocation = Option<i64>;

pub(crate) struct Agent {
    pub(crate) config: Config,
    pub(crate) identity: DeviceIdentity,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) status: watch::Sender<PuStatus>,
    pub(crate) started: Instant,
    pub(crate) registrations: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) advertise: Vec<String>,
    pub(crate) revocations: broadcast::Sender<Revocation>,
    pub(crate) control: Arc<Control>,
    pub(crate) clock: Arc<MediaClock>,
    pub(crate) wlan: Option<Arc<Wlan>>,
    pub(crate) upgrader: Arc<Upgrader>,
    pub(crate) onvif: Option<Arc<crate::onvif::Onvif>>,
    pub(crate) sd: Option<Arc<crate::sd::Sd>>,
    /// The RTSP server, for the MTU's relay channel (Pd).
    pub(crate) rtsp: crate::rtsp::Server,
    /// Gateway port mappings (H.626.4 8.3 step 1), reported with the local addresses.
    pub(crate) mapped: watch::Receiver<Vec<String>>,
}

fn unavailable() -> PlayVerdict {
    PlayVerdict::Refused {
        code: peercam_signal::refusal::Refusal::Unavailable,
        message: "the camera cannot reach the platform to check the request".into(),
    }
}

impl Agent {
    pub(crate) async fn run(
        self,
        mut requests: mpsc::Receiver<PlatformRequest>,
        shutdown: Shutdown,
    ) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.reconnect_initial_ms),
            Duration::from_millis(self.config.reconnect_max_ms),
        );
        loop {
            let _ = self.status.send(PuStatus::Connecting);
            match self.session(&mut requests, &shutdown, &mut backoff).await {
                Ok(()) => return,
                Err(reason) => {
                    tracing::warn!(device = %self.identity.device_id, %reason, "platform link down")
                }
            }
            let delay = match &*self.status.borrow() {
                // A definitive refusal (unknown device, wrong key) is retried slowly only.
                PuStatus::Refused { code, .. } if !code.is_transient() => Duration::from_secs(30),
                _ => backoff.next_delay(rand::random::<f64>()),
            };
            // While away from the platform no viewer can be vouched for: fail closed.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    r = requests.recv() => match r {
                        Some(PlatformRequest::AuthorizePlay { reply, .. }) => { let _ = reply.send(unavailable()); }
                        None => return,
                    },
                    () = shutdown.wait() => return,
                }
            }
        }
    }

    /// One connection; `Ok` only on shutdown.
    async fn session(
        &self,
        requests: &mut mpsc::Receiver<PlatformRequest>,
        shutdown: &Shutdown,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        // H.626.4 6.1.11: a change of network drops the link; it is redialled through the new
        // one (and the WLAN watchdog counts the registration that follows).
        let mut network = self.wlan.as_ref().map(|w| w.network.subscribe());
        if let Some(w) = &self.wlan
            && !w.reaches_platform()
        {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Err("the platform is not reachable through this network".into());
        }
        let ws = tokio::select! {
            r = peercam_net::ws::connect(&self.config.scu_url, self.tls.clone(), Duration::from_secs(10)) => r.map_err(|e| e.to_string())?,
            () = shutdown.wait() => return Ok(()),
        };
        let (mut sink, mut stream) = ws.split();
        let key = self.identity.signing_key().map_err(|e| e.to_string())?;
        let mut link = DeviceLink::new(
            Instant::now(),
            self.identity.device_id.clone(),
            self.identity.kind,
            key,
            &running_version(),
        );
        // H.626.4 8.3: tell the platform where viewers reach us (sent once registered).
        // H.626.4 8.3 step 2: local addresses and the gateway's mappings.
        let mut mapped = self.mapped.clone();
        link.report_addresses(self.advertise.clone(), mapped.borrow_and_update().clone());
        let mut connected_at = Instant::now();
        let mut pending: HashMap<u64, oneshot::Sender<PlayVerdict>> = HashMap::new();
        // H.626.4 7.2: a burst of time requests after registering, then one every 30 s.
        let mut sync = SyncFilter::new();
        let mut next_sync: Option<Instant> = None;
        let mut burst = 0u32;
        let (replies_tx, mut replies_rx) = mpsc::channel::<(u64, DeviceReply)>(16);
        let result = loop {
            let mut end = None;
            while let Some(ev) = link.poll_event() {
                match ev {
                    LinkEvent::Registered { session } => {
                        tracing::info!(device = %self.identity.device_id, %session, "registered with the SCU");
                        backoff.reset();
                        connected_at = Instant::now();
                        self.registrations.fetch_add(1, Ordering::Relaxed);
                        let _ = self.status.send(PuStatus::Registered { session });
                        next_sync = Some(Instant::now());
                        burst = 4;
                        // H.626.4 8.11.1: a release on trial is healthy once it registered.
                        if std::env::var_os(ENV_TRIAL).is_some()
                            && let Err(e) = self.upgrader.firmware().mark_healthy()
                        {
                            tracing::error!(error = %e, "cannot mark this release healthy");
                        }
                    }
                    LinkEvent::Refused { code, message } => {
                        tracing::error!(device = %self.identity.device_id, ?code, %message, "registration refused");
                        let _ = self.status.send(PuStatus::Refused {
                            code,
                            message: message.clone(),
                        });
                        end = Some(format!("refused: {message}"));
                    }
                    // H.626.4 8.5 for a wrapped camera: its own PTZ, over ONVIF, answered
                    // when the camera has answered.
                    LinkEvent::Command {
                        id,
                        command: DeviceCommand::Ptz { order },
                    } if self.onvif.is_some() => {
                        let onvif = self.onvif.clone();
                        let tx = replies_tx.clone();
                        tokio::spawn(async move {
                            let reply = match order.validate() {
                                Err(errors) => DeviceReply::Invalid { errors },
                                Ok(()) => match onvif {
                                    Some(o) => match o.ptz(&order).await {
                                        Ok(state) => DeviceReply::Ptz { state },
                                        Err(message) => DeviceReply::Failed {
                                            code: "camera".into(),
                                            message,
                                        },
                                    },
                                    None => DeviceReply::Failed {
                                        code: "unsupported".into(),
                                        message: "no ONVIF camera configured".into(),
                                    },
                                },
                            };
                            let _ = tx.send((id, reply)).await;
                        });
                    }
                    // Mp: open the outbound media channel to an MTU; answered once it is open.
                    LinkEvent::Command {
                        id,
                        command:
                            DeviceCommand::RelayConnect {
                                tunnel,
                                server_name,
                                ticket,
                            },
                    } => {
                        let (server, tls, tx, sd) = (
                            self.rtsp.clone(),
                            self.tls.clone(),
                            replies_tx.clone(),
                            shutdown.clone(),
                        );
                        tokio::spawn(async move {
                            let reply = match server
                                .relay(&tunnel, &server_name, &ticket, tls, sd)
                                .await
                            {
                                Ok(()) => DeviceReply::Done,
                                Err(message) => {
                                    tracing::warn!(%tunnel, %message, "cannot open the relay channel");
                                    DeviceReply::Failed {
                                        code: "relay_unreachable".into(),
                                        message,
                                    }
                                }
                            };
                            let _ = tx.send((id, reply)).await;
                        });
                    }
                    // H.626.4 8.3: hole punching; answered with the camera's description.
                    LinkEvent::Command {
                        id,
                        command: DeviceCommand::Punch { offer, stun },
                    } => {
                        let (server, tx, sd) =
                            (self.rtsp.clone(), replies_tx.clone(), shutdown.clone());
                        tokio::spawn(async move {
                            let reply = match server.punch(&offer, stun.as_deref(), sd).await {
                                Ok(answer) => DeviceReply::Punch { answer },
                                Err(message) => DeviceReply::Failed {
                                    code: "punch_failed".into(),
                                    message,
                                },
                            };
                            let _ = tx.send((id, reply)).await;
                        });
                    }
                    // Issue 7 / 8.4: a browser's WebRTC offer; the token is judged first.
                    LinkEvent::Command {
                        id,
                        command:
                            DeviceCommand::WebRtc {
                                offer,
                                token,
                                client,
                                stun,
                            },
                    } => {
                        let (server, tx, sd) =
                            (self.rtsp.clone(), replies_tx.clone(), shutdown.clone());
                        tokio::spawn(async move {
                            let reply = match server
                                .webrtc(&offer, token, client, stun.as_deref(), sd)
                                .await
                            {
                                Ok(answer) => DeviceReply::WebRtc { answer },
                                Err((code, message)) => DeviceReply::Failed { code, message },
                            };
                            let _ = tx.send((id, reply)).await;
                        });
                    }
                    // A still picture (thumbnails, 6.1.12, 8.8).
                    LinkEvent::Command {
                        id,
                        command: DeviceCommand::Snapshot { max_width },
                    } => {
                        let (settings, tx) = (self.rtsp.settings.clone(), replies_tx.clone());
                        tokio::spawn(async move {
                            let reply = match crate::snapshot::take(
                                &settings.hub,
                                settings.max_fps,
                                max_width,
                            )
                            .await
                            {
                                Ok(s) => DeviceReply::Snapshot {
                                    jpeg: s.base64(),
                                    width: s.width,
                                    height: s.height,
                                    taken_ms: now_ms(),
                                },
                                Err(message) => DeviceReply::Failed {
                                    code: "snapshot".into(),
                                    message,
                                },
                            };
                            let _ = tx.send((id, reply)).await;
                        });
                    }
                    // 8.7.3 for browsers: the SD card's recordings over WebRTC.
                    LinkEvent::Command {
                        id,
                        command: command @ DeviceCommand::PlaybackWebRtc { .. },
                    } => {
                        let media = self.rtsp.settings.recordings.clone();
                        let (ip, tx, sd) = (
                            self.rtsp.settings.webrtc_ip,
                            replies_tx.clone(),
                            shutdown.clone(),
                        );
                        tokio::spawn(async move {
                            let reply = match media {
                                Some(m) => {
                                    peercam_recorder::webrtc::execute(&m, command, ip, sd).await
                                }
                                None => DeviceReply::Failed {
                                    code: "no_recording".into(),
                                    message: "this camera has no SD card recording".into(),
                                },
                            };
                            let _ = tx.send((id, reply)).await;
                        });
                    }
                    // H.626.4 8.7.3: the SD card's commands touch the card; answered when done.
                    LinkEvent::Command { id, command }
                        if self.sd.as_ref().is_some_and(|sd| sd.handles(&command)) =>
                    {
                        let sd = self.sd.clone();
                        let tx = replies_tx.clone();
                        tokio::spawn(async move {
                            if let Some(sd) = sd {
                                let reply = sd.execute(command).await;
                                let _ = tx.send((id, reply)).await;
                            }
                        });
                    }
                    LinkEvent::Command { id, command } => {
                        if let DeviceCommand::Reset {
                            wipe_recordings: true,
                        } = &command
                            && let Some(sd) = self.sd.clone()
                        {
                            tokio::spawn(async move { sd.wipe().await });
                        }
                        let reply = self.execute(command, connected_at);
                        let reset = matches!(reply, DeviceReply::ResetAccepted);
                        link.reply(id, reply);
                        if reset {
                            // H.626.4 8.10: acknowledged; now reset and register again.
                            end = Some(self.factory_reset());
                        }
                    }
                    LinkEvent::PlayVerdict { re, verdict } => {
                        if let Some(w) = pending.remove(&re) {
                            let _ = w.send(verdict);
                        }
                    }
                    LinkEvent::Revoke { user } => {
                        tracing::info!(device = %self.identity.device_id, ?user, "platform revoked live sessions");
                        let _ = self.revocations.send(user);
                    }
                    LinkEvent::TimeReply {
                        t1_us,
                        t2_us,
                        t3_us,
                    } => {
                        let t4 = self.clock.raw_us();
                        if let Some(s) = Sample::new(t1_us, t2_us, t3_us, t4) {
                            sync.push(s);
                            if let Some(e) = sync.estimate() {
                                self.clock.apply(&e);
                            }
                        }
                    }
                    LinkEvent::Lost { reason } => end = Some(reason),
                    _ => {}
                }
            }
            if let Some(reason) = end {
                // Deliver what is queued (a reset's acknowledgement, 8.10) before leaving.
                while let Some(frame) = link.poll_transmit() {
                    let text = String::from_utf8(frame).unwrap_or_default();
                    if sink.feed(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                let _ = sink.flush().await;
                let _ = sink.close().await;
                break Err(reason);
            }
            // What the events produced (a command's reply) goes out before we wait again.
            let mut failed = None;
            while let Some(frame) = link.poll_transmit() {
                if let Err(e) = sink
                    .feed(Message::text(String::from_utf8(frame).unwrap_or_default()))
                    .await
                {
                    failed = Some(e.to_string());
                    break;
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
            if let Err(e) = sink.flush().await {
                break Err(e.to_string());
            }
            if link.is_closed() {
                break Err("link closed".into());
            }
            if let Some(at) = next_sync
                && Instant::now() >= at
            {
                link.request_time(self.clock.raw_us());
                let gap = if burst > 1 {
                    burst -= 1;
                    Duration::from_millis(250)
                } else {
                    Duration::from_secs(30)
                };
                next_sync = Some(at + gap);
                continue;
            }
            let deadline = link
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            let deadline = next_sync.map_or(deadline, |s| s.min(deadline));
            tokio::select! {
                Ok(()) = mapped.changed() => {
                    let now = mapped.borrow_and_update().clone();
                    link.report_addresses(self.advertise.clone(), now);
                }
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        if let Err(e) = link.handle_input(Instant::now(), t.as_bytes()) {
                            break Err(e.to_string());
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break Err("SCU closed the connection".into()),
                    Some(Ok(_)) => {}
                },
                r = requests.recv() => match r {
                    Some(PlatformRequest::AuthorizePlay { token, client, reply }) => match link.authorize_play(token, client) {
                        Some(id) => { pending.insert(id, reply); }
                        None => { let _ = reply.send(unavailable()); }
                    },
                    None => break Ok(()),
                },
                () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
                Some((id, reply)) = replies_rx.recv() => link.reply(id, reply),
                r = async {
                    match network.as_mut() {
                        Some(n) => n.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let _ = sink.close().await;
                    break Err(if r.is_ok() { "the WLAN changed networks" } else { "WLAN stopped" }.into());
                }
                () = shutdown.wait() => {
                    let _ = sink.close().await;
                    break Ok(());
                }
            }
        };
        for (_, w) in pending {
            let _ = w.send(unavailable());
        }
        result
    }

    /// 8.10: back to factory state. Live sessions end (D5); the link is dropped so the device
    /// registers again, as after a reboot.
    fn factory_reset(&self) -> String {
        if let Err(e) = self.control.factory_reset() {
            tracing::error!(error = %e, "factory reset could not delete the saved state");
        }
        let _ = self.revocations.send(None);
        tracing::warn!(device = %self.identity.device_id, "factory reset done; registering again");
        "factory reset".into()
    }

    fn execute(&self, command: DeviceCommand, connected_at: Instant) -> DeviceReply {
        let now = Instant::now();
        let control_reply = |r: Result<DeviceReply, ControlError>| match r {
            Ok(reply) => reply,
            Err(ControlError::Invalid(errors)) => DeviceReply::Invalid { errors },
            Err(ControlError::Conflict(revision)) => DeviceReply::Conflict { revision },
            Err(ControlError::Storage(message)) => DeviceReply::Failed {
                code: "storage".into(),
                message,
            },
        };
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
                    Err(message) => DeviceReply::Failed {
                        code: "wlan".into(),
                        message,
                    },
                },
                None => no_wlan(),
            },
            DeviceCommand::WlanConnect { config } => match &self.wlan {
                Some(w) => match config.validate() {
                    Err(errors) => DeviceReply::Invalid { errors },
                    Ok(()) => match w.switch(&config, self.registrations.clone()) {
                        Ok(state) => DeviceReply::Wlan { state },
                        Err(message) => DeviceReply::Failed {
                            code: "wlan".into(),
                            message,
                        },
                    },
                },
                None => no_wlan(),
            },
            DeviceCommand::Reset { wipe_recordings } => {
                // The SD card is wiped (when asked) by the task started in the event loop.
                tracing::warn!(wipe_recordings, "factory reset ordered by the platform");
                DeviceReply::ResetAccepted
            }
            DeviceCommand::Describe => DeviceReply::Description(DeviceDescription {
                sw_version: running_version(),
                vendor: self.identity.vendor.clone(),
                model: self.identity.model.clone(),
                uptime_s: self.started.elapsed().as_secs(),
                connected_s: connected_at.elapsed().as_secs(),
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
