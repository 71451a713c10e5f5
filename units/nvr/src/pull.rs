//! Receiving a camera's stream for recording (8.7.2.1 step 18, Pn): the shared pull
//! (`peercam-pull`, the PU's too) over TCP, H.264 video and the camera's audio when it sends
//! it: the store records G.711, so G.711 is kept as it came and G.722 is transcoded to G.711
//! mu-law (the shared [`peercam_pull::audio::Transcoder`]); AAC is recorded as it came
//! (its access units, with the stream's AudioSpecificConfig; issue 16).
//!
//! Unlike a live re-server, the recorder keeps the camera's SEI messages (the synthetic
//! camera's frame tags end up in the recording) and drops only access unit delimiters.

use peercam_pull::audio::Transcoder;
use peercam_pull::{AudioCodec as Pulled, CameraAudio, Event, PullConfig, PullError};
use peercam_store::{AacConfig, AudioCodec};

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
    /// G.711 bytes, or one AAC access unit.
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

/// The store's codec for what the camera sends, if the NVR records it, and whether it must
/// be transcoded to it (the store keeps G.711 only; H.626.4 6.3.2).
fn recorded(audio: Option<&CameraAudio>) -> Option<(AudioCodec, bool)> {
    match audio? {
        CameraAudio::Codec(Pulled::Pcmu) => Some((AudioCodec::Pcmu, false)),
        CameraAudio::Codec(Pulled::Pcma) => Some((AudioCodec::Pcma, false)),
        CameraAudio::Codec(Pulled::G722) => Some((AudioCodec::Pcmu, true)),
        CameraAudio::Unsupported(_) => None,
    }
}

/// Opens `url` and hands every item to `sink` until it says stop (`Ok`) or the stream
/// fails (`Err`). `on_start` learns the audio codec (G.711, or the AAC configuration)
/// once the session plays.
pub(crate) async fn pull(
    url: &str,
    mut on_start: impl FnMut(Option<AudioCodec>, Option<AacConfig>),
    mut sink: impl FnMut(Item) -> Flow,
) -> Result<(), NvrPullError> {
    let config = PullConfig {
        url: url::Url::parse(url)?,
        udp: false,
        user_agent: format!("peercam-nvr/{}", crate::SW_VERSION),
    };
    let mut records_audio = false;
    let mut aac_rate: Option<u64> = None;
    let mut transcoder: Option<Transcoder> = None;
    peercam_pull::session(&config, |event| match event {
        Event::Started(started) => {
            // H.626.4 6.3.2, issue 16: AAC is kept as AAC; the G.711 decoded beside it is
            // not recorded.
            aac_rate = started.aac.as_ref().map(|c| u64::from(c.sample_rate));
            let audio = recorded(started.audio.as_ref()).filter(|_| aac_rate.is_none());
            records_audio = audio.is_some();
            transcoder = audio
                .filter(|(_, recode)| *recode)
                .map(|(to, _)| Transcoder::new(Pulled::G722, to));
            on_start(audio.map(|(codec, _)| codec), started.aac);
            Flow::Continue
        }
        Event::Item(peercam_pull::Item::Aac { data, pts }) if aac_rate.is_some() => {
            let rate = aac_rate.unwrap_or(8000).max(1);
            let pts = u64::try_from(u128::from(pts) * 8000 / u128::from(rate)).unwrap_or(u64::MAX);
            sink(Item::Audio {
                bytes: data.to_vec(),
                pts,
            })
        }
        Event::Item(peercam_pull::Item::Video { nals, key, pts_90k }) => sink(Item::Video {
            nals: nals.iter().map(|n| n.to_vec()).collect(),
            key,
            pts: pts_90k,
        }),
        Event::Item(peercam_pull::Item::Audio { data, pts_8k }) if records_audio => {
            let bytes = match transcoder.as_mut() {
                Some(t) => t.convert(&data),
                None => data.to_vec(),
            };
            sink(Item::Audio { bytes, pts: pts_8k })
        }
        Event::Item(peercam_pull::Item::Audio { .. } | peercam_pull::Item::Aac { .. })
        | Event::Lost => Flow::Continue,
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_6_3_2_the_nvr_records_g711_of_every_camera_codec_it_takes() {
        let codec = |a: CameraAudio| recorded(Some(&a));
        assert_eq!(
            codec(CameraAudio::Codec(Pulled::Pcmu)),
            Some((AudioCodec::Pcmu, false))
        );
        assert_eq!(
            codec(CameraAudio::Codec(Pulled::Pcma)),
            Some((AudioCodec::Pcma, false))
        );
        assert_eq!(
            codec(CameraAudio::Codec(Pulled::G722)),
            Some((AudioCodec::Pcmu, true)),
            "G.722 is transcoded to G.711 for the store"
        );
        assert_eq!(codec(CameraAudio::Unsupported("opus".into())), None);
        assert!(recorded(None).is_none());
    }
}
