//! The NVR's link with the platform (Ps, as a device): registration (8.1), commands for
//! recording (8.7.2), play checks for its playback clients (8.4 steps 5-8 applied to
//! recordings) and its own stream requests (8.7.2.1 steps 16-18). The link itself is
//! [`peercam_net::agent`]; this is what the NVR brings to it.

use std::sync::Arc;
use std::time::Instant;

use peercam_net::agent::{Device, ReplyFuture};
use peercam_signal::cmd::{DeviceCommand, DeviceDescription};
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
}

impl Device for Nvr {
    fn prepare(&self, link: &mut DeviceLink) {
        link.report_endpoints(self.advertise.clone());
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
        let cams = self.cameras.clone();
        Box::pin(async move { cams.execute(command, describe).await })
    }
}
