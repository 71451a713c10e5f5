//! The CS's link with the platform: it registers with an SCU as a device of kind `cs`
//! (H.626.4 8.1, exactly like the NVR), reports where Cp listens, and takes Su commands
//! from the CMU ([`crate::su`]). The link itself is [`peercam_net::agent`].

use std::time::Instant;

use peercam_net::agent::{Device, ReplyFuture};
use peercam_signal::cmd::{DeviceCommand, DeviceDescription, DeviceReply};
use peercam_signal::link::DeviceLink;

use crate::su::Su;

/// Where the CS stands with the platform.
pub type CsStatus = peercam_net::agent::LinkStatus;

pub(crate) struct CsDevice {
    /// Cc playback over RTSP and WebRTC (with a platform, which judges the tokens).
    pub(crate) media: Option<std::sync::Arc<peercam_recorder::serve::Media>>,
    /// The record list's source.
    pub(crate) source: crate::CloudSource,
    /// WebRTC playback binds here.
    pub(crate) webrtc_ip: std::net::IpAddr,
    pub(crate) shutdown: peercam_net::Shutdown,
    pub(crate) advertise: Vec<String>,
    pub(crate) su: Su,
    pub(crate) started: Instant,
    pub(crate) vendor: String,
    pub(crate) model: String,
}

impl Device for CsDevice {
    fn prepare(&self, link: &mut DeviceLink) {
        link.report_endpoints(self.advertise.clone());
    }

    fn command(&self, command: DeviceCommand, connected_s: u64) -> ReplyFuture {
        if matches!(command, DeviceCommand::Describe) {
            let d = DeviceDescription {
                sw_version: crate::SW_VERSION.into(),
                vendor: self.vendor.clone(),
                model: self.model.clone(),
                uptime_s: self.started.elapsed().as_secs(),
                connected_s,
                clock_offset_us: None,
                clock_jitter_us: None,
            };
            return Box::pin(async move { DeviceReply::Description(d) });
        }
        // Cc through the CMU (8.7.1 playback steps): the record list from the index, and
        // WebRTC playback with a one-time token judged by the platform, as on an NVR.
        if let DeviceCommand::ListRecordings {
            camera,
            from_ms,
            to_ms,
        } = command
        {
            let source = self.source.clone();
            return Box::pin(async move {
                peercam_recorder::list_reply(&source, camera, from_ms, to_ms).await
            });
        }
        if matches!(command, DeviceCommand::PlaybackWebRtc { .. })
            && let Some(media) = self.media.clone()
        {
            let (ip, sd) = (self.webrtc_ip, self.shutdown.clone());
            return Box::pin(async move {
                peercam_recorder::webrtc::execute(&media, command, ip, sd).await
            });
        }
        if !Su::handles(&command) {
            return Box::pin(async {
                DeviceReply::Failed {
                    code: "unsupported".into(),
                    message: "a CS does not do this".into(),
                }
            });
        }
        let su = self.su.clone();
        Box::pin(async move { su.apply(&command).await })
    }
}
