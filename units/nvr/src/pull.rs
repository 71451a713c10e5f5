//! Receiving a camera's stream for recording (8.7.2.1 step 18, Pn): the shared pull
//! (`peercam-pull`, the PU's too) over TCP, H.264 video and the camera's G.711 audio when it
//! sends it (the store records G.711; a camera's G.722 is not recorded).
//!
//! Unlike a live re-server, the recorder keeps the camera's SEI messages (the synthetic
//! camera's frame tags end up in the recording) and drops only access unit delimiters.

use peercam_pull::{AudioCodec as Pulled, CameraAudio, Event, PullConfig, PullError};
use peercam_store::AudioCodec;

pub(crate) use peercam_pull::Flow;

/// What the camera sent.
#[derive(Debug)]
pub(crate) enum Item {
    /// An access unit: NAL units without start codes; a key unit carries SPS and PPS.
    Video {
        nals: Vec<Vec<u8>>,
        key: bool,
        /// 90 kHz since the start of the stream.
        pts: u64,
    },
    /// G.711 bytes.
    Audio {
        bytes: Vec<u8>,
        /// 8 kHz since the start of the stream.
        pts: u64,
    },
}

/// Why the NVR's pull ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NvrPullError {
    #[error("stream URL: {0}")]
    Url(#[from] url::ParseError),
    #[error(transparent)]
    Pull(#[from] PullError),
}

/// The store's codec for what the camera sends, if the NVR records it.
fn recorded(audio: Option<&CameraAudio>) -> Option<AudioCodec> {
    match audio? {
        CameraAudio::Codec(Pulled::Pcmu) => Some(AudioCodec::Pcmu),
        CameraAudio::Codec(Pulled::Pcma) => Some(AudioCodec::Pcma),
        CameraAudio::Codec(Pulled::G722) | CameraAudio::Unsupported(_) => None,
    }
}

/// Opens `url` and hands every item to `sink` until it says stop (`Ok`) or the stream
/// fails (`Err`). `on_start` learns the audio codec once the session plays.
pub(crate) async fn pull(
    url: &str,
    mut on_start: impl FnMut(Option<AudioCodec>),
    mut sink: impl FnMut(Item) -> Flow,
) -> Result<(), NvrPullError> {
    let config = PullConfig {
        url: url::Url::parse(url)?,
        udp: false,
        user_agent: format!("peercam-nvr/{}", crate::SW_VERSION),
    };
    let mut records_audio = false;
    peercam_pull::session(&config, |event| match event {
        Event::Started(started) => {
            let audio = recorded(started.audio.as_ref());
            records_audio = audio.is_some();
            on_start(audio);
            Flow::Continue
        }
        Event::Item(peercam_pull::Item::Video { nals, key, pts_90k }) => sink(Item::Video {
            nals: nals.iter().map(|n| n.to_vec()).collect(),
            key,
            pts: pts_90k,
        }),
        Event::Item(peercam_pull::Item::Audio { data, pts_8k }) if records_audio => {
            sink(Item::Audio {
                bytes: data.to_vec(),
                pts: pts_8k,
            })
        }
        Event::Item(peercam_pull::Item::Audio { .. }) | Event::Lost => Flow::Continue,
    })
    .await?;
    Ok(())
}
