//! The NVR's link with the platform (Ps, as a device): registration (8.1), commands for
//! recording (8.7.2), play checks for its playback clients (8.4 steps 5-8 applied to
//! recordings) and its own stream requests (8.7.2.1 steps 16-18). The link itself is
//! [`peercam_net::agent`]; this is what the NVR brings to it.

use std::sync::Arc;
use std::time::Instant;

use peercam_net::agent::{Device, HookFuture, ReplyFuture, Session};
use peercam_signal::cmd::{DeviceCommand, DeviceDescription, DeviceReply};
use peercam_signal::link::DeviceLink;

use crate::cameras::Cameras;

/// Where the NVR stands with the platform.
pub type NvrStatus = peercam_net::agent::LinkStatus;

/// What the NVR's other parts ask of the platform.
pub(crate) use peercam_net::agent::PlatformReq;

pub(crate) struct Nvr {
    pub(crate) advertise: Vec<String>,
    pub(crate) cameras: Arc<Cameras>,
    pub(crate) started: Instant,
    pub(crate) vendor: String,
    pub(crate) model: String,
    /// Playback for browsers (WebRTC) binds here: the NVR's LAN address.
    pub(crate) media: Arc<peercam_recorder::serve::Media>,
    pub(crate) webrtc_ip: std::net::IpAddr,
    pub(crate) shutdown: peercam_net::Shutdown,
    /// The platform CA, to check an MTU's tunnel certificate (Mn/Nd).
    pub(crate) tls: Arc<peercam_net::rustls::ClientConfig>,
    /// The gateway's mappings of the media port (8.3 step 1), `host:port`.
    pub(crate) mapped: tokio::sync::watch::Receiver<Vec<String>>,
}

impl Device for Nvr {
    fn prepare(&self, link: &mut DeviceLink) {
        // H.626.4 8.3 step 2, as a camera: local addresses and the gateway's mappings.
        link.report_addresses(self.advertise.clone(), self.mapped.borrow().clone());
    }

    fn session(&self) -> Box<dyn Session> {
        let mut mapped = self.mapped.clone();
        mapped.mark_unchanged();
        Box::new(NvrSession {
            advertise: self.advertise.clone(),
            mapped,
        })
    }

    fn command(&self, command: DeviceCommand, connected_s: u64) -> ReplyFuture {
        let describe = DeviceDescription {
            sw_version: crate::SW_VERSION.into(),
            vendor: self.vendor.clone(),
            model: self.model.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            connected_s,
            clock_offset_us: None,
            clock_jitter_us: None,
        };
        if matches!(command, DeviceCommand::PlaybackWebRtc { .. }) {
            // 8.7.2.2 for browsers: the token is judged before anything is answered.
            let (media, ip, sd) = (self.media.clone(), self.webrtc_ip, self.shutdown.clone());
            return Box::pin(async move {
                peercam_recorder::webrtc::execute(&media, command, ip, sd).await
            });
        }
        if let DeviceCommand::RelayConnect {
            tunnel,
            server_name,
            ticket,
        } = command
        {
            // Mn / Nd (H.626.4 8.3): one piped viewer's channel to the MTU, dialled out as a
            // camera does for Pd; answered once it is open.
            let (media, tls, sd) = (self.media.clone(), self.tls.clone(), self.shutdown.clone());
            return Box::pin(async move {
                match peercam_net::tunnel::dial(&tunnel, &server_name, &ticket, tls).await {
                    Ok((channel, peer)) => {
                        tokio::spawn(async move {
                            tracing::info!(%peer, "pipe channel to the MTU open");
                            let r = media.relayed(channel, peer, sd).await;
                            tracing::info!(%peer, result = ?r, "pipe channel to the MTU closed");
                        });
                        DeviceReply::Done
                    }
                    Err(e) => {
                        tracing::warn!(%tunnel, error = %e, "cannot open the pipe channel");
                        DeviceReply::Failed {
                            code: "relay_unreachable".into(),
                            message: e.to_string(),
                        }
                    }
                }
            });
        }
        if let DeviceCommand::Punch { offer, stun } = command {
            // H.626.4 8.3 for recordings: a punched path for one playback client; its RTSP
            // request's token is judged as on the LAN.
            let (media, sd) = (self.media.clone(), self.shutdown.clone());
            return Box::pin(async move {
                let stop = {
                    let sd = sd.clone();
                    async move { sd.wait().await }
                };
                let serve = move |stream: peercam_p2p::P2pStream| async move {
                    let peer = stream.remote_addr();
                    tracing::info!(%peer, "punched playback path open");
                    let r = media.relayed(stream, peer, sd).await;
                    tracing::debug!(%peer, result = ?r, "punched playback ended");
                };
                match peercam_p2p::answer_punch(&offer, stun.as_deref(), stop, serve).await {
                    Ok(answer) => DeviceReply::Punch { answer },
                    Err(e) => DeviceReply::Failed {
                        code: "punch_failed".into(),
                        message: e.to_string(),
                    },
                }
            });
        }
        let cams = self.cameras.clone();
        Box::pin(async move { cams.execute(command, describe).await })
    }
}

/// What the NVR adds to one connection of its link: a new or lost gateway mapping is
/// reported at once (8.3 step 2).
struct NvrSession {
    advertise: Vec<String>,
    mapped: tokio::sync::watch::Receiver<Vec<String>>,
}

impl Session for NvrSession {
    fn wait(&mut self) -> HookFuture<'_, Result<(), &'static str>> {
        let mapped = &mut self.mapped;
        Box::pin(async move {
            if mapped.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }

    fn changed(&mut self, link: &mut DeviceLink) {
        let now = self.mapped.borrow_and_update().clone();
        link.report_addresses(self.advertise.clone(), now);
    }
}
