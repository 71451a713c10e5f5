//! A third-party RTSP camera as the PU's source (issue 3, "existing cameras join the system
//! through a PU"): the PU pulls the camera's H.264 stream and its own audio with the shared
//! pull (`peercam-pull`, the NVR's too) and re-serves them to the viewers the platform
//! vouched for. The camera is redialled with jittered backoff whenever it drops or is down.

use bytes::Bytes;
use peercam_media::annexb::NalType;

/// Where and how to pull.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// `rtsp://[user:pass@]host[:port]/path`.
    pub url: url::Url,
    /// RTP over the RTSP connection (default) or UDP.
    pub udp: bool,
}

impl PullConfig {
    /// The shared pull's configuration, with this PU's user agent.
    pub fn shared(&self) -> peercam_pull::PullConfig {
        peercam_pull::PullConfig {
            url: self.url.clone(),
            udp: self.udp,
            user_agent: format!("peercam-pu/{}", crate::SW_VERSION),
        }
    }
}

/// Drops the camera's own peercam frame tags (a pulled peercam camera, or a PU behind a
/// PU): the PU tags every access unit it serves itself, and a viewer must find one tag, the
/// PU's. The camera's other SEI messages are kept.
pub fn without_frame_tags(nals: Vec<Bytes>) -> Vec<Bytes> {
    nals.into_iter()
        .filter(|n| {
            NalType::of(n) != Some(NalType::SEI) || peercam_media::sei::parse_sei(n).is_none()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_frame_tags_are_dropped() {
        let tag = peercam_media::sei::sei_nal(&peercam_media::sei::FrameInfo {
            frame: 7,
            capture_unix_us: 1,
            stream: 2,
        });
        // A user-data-unregistered SEI that is not a frame tag (payload type 5, 16 zero
        // bytes of UUID and one byte), kept.
        let other = peercam_media::sei::build_sei_nal(&[(5, &[0u8; 17])]);
        let nals = vec![
            Bytes::from(tag),
            Bytes::from(other.clone()),
            Bytes::from_static(&[0x65, 0x88]),
        ];
        let kept = without_frame_tags(nals);
        assert_eq!(
            kept,
            vec![Bytes::from(other), Bytes::from_static(&[0x65, 0x88])]
        );
    }
}
