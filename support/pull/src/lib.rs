//! The one RTSP pull of a camera, shared by the PU (an existing camera re-served through the
//! platform, issue 3) and the NVR (recording, H.626.4 8.7.2.1 step 18, Pn).
//!
//! It opens the camera with the `retina` RTSP client (TCP interleaved by default, UDP on
//! request; Digest/Basic credentials from the URL), sets up its H.264 video and, when the
//! camera has one, its G.711 or G.722 audio stream, and hands out:
//!
//! - access units as NAL units without start codes, **with the camera's SEI messages**
//!   (only access unit delimiters are dropped), the stream's SPS and PPS put in front of a
//!   key frame that lacks them (many cameras send them only in the SDP);
//! - the camera's own audio frames as they came (G.711 mu/A-law or G.722 bytes, 8 kHz RTP
//!   clock); a camera's AAC-LC (`mpeg4-generic`) decoded to G.711 mu-law at 8 kHz
//!   ([`audio::AacToG711`]; [`Started::decoded_from`] says so). Audio in other formats (or
//!   AAC the decoder refuses, such as HE-AAC) is named in [`Started::audio`] but not set up.
//!
//! [`session`] is one connection; [`run`] redials with jittered backoff after every failure.

/// A camera's audio for viewers and recorders (transcoding, AAC decoding).
pub use peercam_rtp::camera_audio as audio;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use peercam_base::Backoff;
use peercam_media::annexb::{self, NalType};
use peercam_media::mp4::AvcConfig;
pub use peercam_rtp::g711::AudioCodec;
use retina::client::{
    Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
    UdpTransportOptions,
};
use retina::codec::{CodecItem, ParametersRef};

/// Why a pull ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The camera did not answer DESCRIBE in time.
    #[error("DESCRIBE timed out")]
    DescribeTimeout,
    /// The camera offers no H.264 video stream.
    #[error("the camera offers no H.264 video")]
    NoH264,
    /// No media for the given time.
    #[error("no media from the camera for {0:?}")]
    Silent(Duration),
    /// The camera ended the stream.
    #[error("the camera ended the stream")]
    Ended,
    /// The RTSP client failed (connection, protocol, depacketization).
    #[error("RTSP: {0}")]
    Rtsp(#[from] retina::Error),
}

/// Where and how to pull.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// `rtsp://[user:pass@]host[:port]/path[?query]`.
    pub url: url::Url,
    /// RTP over UDP instead of the RTSP connection.
    pub udp: bool,
    /// The `User-Agent` to send, e.g. `peercam-pu/0.1.0`.
    pub user_agent: String,
}

/// The camera's audio, as its SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraAudio {
    /// G.711 or G.722: set up, its frames come as [`Item::Audio`].
    Codec(AudioCodec),
    /// Another format (the SDP encoding name in lower case, e.g. `mpeg4-generic` for AAC):
    /// not set up.
    Unsupported(String),
}

/// What the camera offers, known once the session plays.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Started {
    /// The camera's audio stream, if it has one: for AAC, the codec it is decoded to.
    pub audio: Option<CameraAudio>,
    /// The camera's own audio format when the pull decodes it (`mpeg4-generic` for AAC).
    pub decoded_from: Option<String>,
}

/// What the camera sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An access unit.
    Video {
        /// NAL units without start codes, in decoding order, SEI kept, AUDs dropped; a key
        /// unit carries SPS and PPS.
        nals: Vec<Bytes>,
        /// Whether it is a random access point (IDR).
        key: bool,
        /// Presentation time, 90 kHz, from the start of this connection.
        pts_90k: u64,
    },
    /// An audio frame of the codec in [`Started::audio`], as the camera packed it.
    Audio {
        /// G.711 or G.722 bytes (one byte per 8 kHz tick for all three).
        data: Bytes,
        /// Presentation time, 8 kHz, from the start of this connection.
        pts_8k: u64,
    },
}

/// Whether to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep pulling.
    Continue,
    /// Stop: [`session`] returns `Ok`, [`run`] returns.
    Stop,
}

/// What [`session`] and [`run`] report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection plays.
    Started(Started),
    /// Media from it.
    Item(Item),
    /// The camera was lost (what was cached from it should be forgotten); a redial follows
    /// ([`run`] only).
    Lost,
}

/// Turns one length-prefixed (4-byte) frame into the NAL units of an access unit: keeps SEI,
/// drops access unit delimiters, and puts `params` (the stream's SPS and PPS) in front of a key
/// frame that does not carry them in band. `None` when the lengths do not add up or there is
/// no picture.
pub fn access_unit(data: &[u8], key: bool, params: Option<&AvcConfig>) -> Option<Vec<Bytes>> {
    let nals = annexb::split_avcc(data, 4).ok()?;
    let has = |t: NalType| nals.iter().any(|n| NalType::of(n) == Some(t));
    let mut out: Vec<Bytes> = Vec::with_capacity(nals.len() + 2);
    if key
        && !(has(NalType::SPS) && has(NalType::PPS))
        && let Some(p) = params
    {
        out.extend(p.sps.iter().map(|s| Bytes::copy_from_slice(s)));
        out.extend(p.pps.iter().map(|s| Bytes::copy_from_slice(s)));
    }
    out.extend(
        nals.iter()
            .filter(|n| NalType::of(n).is_some_and(|t| t != NalType::AUD))
            .map(|n| Bytes::copy_from_slice(n)),
    );
    out.iter()
        .any(|n| NalType::of(n).is_some_and(NalType::is_vcl))
        .then_some(out)
}

/// The URL without its credentials, for logs.
pub fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

/// How long the camera may stay silent before the pull gives up.
const SILENCE: Duration = Duration::from_secs(10);

/// One connection to the camera: DESCRIBE, SETUP of the video (and audio) stream, PLAY, then
/// [`Event::Started`] (what the camera offers) and every [`Event::Item`] to `sink` until it
/// says [`Flow::Stop`] (`Ok`) or the stream fails (`Err`).
pub async fn session(
    config: &PullConfig,
    mut sink: impl FnMut(Event) -> Flow,
) -> Result<(), PullError> {
    let mut url = config.url.clone();
    let creds = (!url.username().is_empty()).then(|| Credentials {
        username: percent_decode(url.username()),
        password: percent_decode(url.password().unwrap_or_default()),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let opts = SessionOptions::default()
        .creds(creds)
        .user_agent(config.user_agent.clone());
    let mut described = tokio::time::timeout(SILENCE, retina::client::Session::describe(url, opts))
        .await
        .map_err(|_| PullError::DescribeTimeout)??;
    let video = described
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"))
        .ok_or(PullError::NoH264)?;
    let audio_stream = described
        .streams()
        .iter()
        .position(|s| s.media() == "audio");
    let mut aac: Option<audio::AacToG711> = None;
    let audio = audio_stream.map(|i| {
        let stream = &described.streams()[i];
        let name = stream.encoding_name().to_ascii_lowercase();
        match AudioCodec::from_encoding_name(&name) {
            Some(c) => (Some(i), CameraAudio::Codec(c)),
            None if name == "mpeg4-generic" => {
                let config = match stream.parameters() {
                    Some(ParametersRef::Audio(a)) => a.extra_data().to_vec(),
                    _ => Vec::new(),
                };
                match audio::AacToG711::new(&config, peercam_rtp::g711::Law::MuLaw) {
                    Ok(d) => {
                        aac = Some(d);
                        (Some(i), CameraAudio::Codec(AudioCodec::Pcmu))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the camera's AAC cannot be decoded");
                        (None, CameraAudio::Unsupported(name))
                    }
                }
            }
            None => (None, CameraAudio::Unsupported(name)),
        }
    });
    let audio_setup = audio.as_ref().and_then(|(i, _)| *i);
    for s in [Some(video), audio_setup].into_iter().flatten() {
        let transport = if config.udp {
            Transport::Udp(UdpTransportOptions::default())
        } else {
            Transport::Tcp(TcpTransportOptions::default())
        };
        described
            .setup(s, SetupOptions::default().transport(transport))
            .await?;
    }
    let playing = described.play(PlayOptions::default()).await?;
    let mut demuxed = playing.demuxed()?;
    tracing::info!(camera = %redacted(&config.url), audio = ?audio.as_ref().map(|a| &a.1), aac_decoded = aac.is_some(), "pulling the camera's stream");
    if sink(Event::Started(Started {
        audio: audio.map(|a| a.1),
        decoded_from: aac.is_some().then(|| "mpeg4-generic".to_owned()),
    })) == Flow::Stop
    {
        return Ok(());
    }
    let mut params: Option<AvcConfig> = None;
    let mut aac_errors = 0u64;
    loop {
        let item = tokio::time::timeout(SILENCE, demuxed.next())
            .await
            .map_err(|_| PullError::Silent(SILENCE))?
            .ok_or(PullError::Ended)??;
        let flow = match item {
            CodecItem::VideoFrame(frame) => {
                if frame.has_new_parameters() || params.is_none() {
                    params = demuxed.streams().get(frame.stream_id()).and_then(|s| {
                        match s.parameters() {
                            Some(ParametersRef::Video(v)) => AvcConfig::parse(v.extra_data()).ok(),
                            _ => None,
                        }
                    });
                }
                let key = frame.is_random_access_point();
                match access_unit(frame.data(), key, params.as_ref()) {
                    Some(nals) => sink(Event::Item(Item::Video {
                        nals,
                        key,
                        pts_90k: ticks(frame.timestamp(), 90_000),
                    })),
                    None => Flow::Continue,
                }
            }
            CodecItem::AudioFrame(frame) => {
                let data = match aac.as_mut() {
                    None => Some(Bytes::copy_from_slice(frame.data())),
                    Some(d) => match d.decode(frame.data()) {
                        Ok(g711) => Some(Bytes::from(g711)),
                        Err(e) => {
                            aac_errors += 1;
                            if aac_errors.is_power_of_two() {
                                tracing::warn!(error = %e, count = aac_errors, "an AAC frame of the camera was dropped");
                            }
                            None
                        }
                    },
                };
                match data {
                    Some(data) if !data.is_empty() => sink(Event::Item(Item::Audio {
                        data,
                        pts_8k: ticks(frame.timestamp(), 8000),
                    })),
                    _ => Flow::Continue,
                }
            }
            _ => Flow::Continue,
        };
        if flow == Flow::Stop {
            return Ok(());
        }
    }
}

/// Pulls, redialling the camera with jittered backoff after every failure, until `on`
/// answers [`Flow::Stop`].
pub async fn run(config: PullConfig, mut on: impl FnMut(Event) -> Flow) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        let mut first = true;
        let r = session(&config, |event| {
            if first && matches!(event, Event::Item(_)) {
                backoff.reset();
                first = false;
            }
            on(event)
        })
        .await;
        match r {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(camera = %redacted(&config.url), error = %e, "camera stream lost; redialling");
                if on(Event::Lost) == Flow::Stop {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff.next_delay(rand::random::<f64>())).await;
    }
}

/// A retina timestamp as ticks of `rate` since the start of the stream.
fn ticks(ts: retina::Timestamp, rate: u64) -> u64 {
    let clock = u64::from(ts.clock_rate().get()).max(1);
    let elapsed = u128::from(u64::try_from(ts.elapsed()).unwrap_or(0));
    u64::try_from(elapsed * u128::from(rate) / u128::from(clock)).unwrap_or(u64::MAX)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cfg() -> AvcConfig {
        // An x264 baseline 720p SPS (proto/media/testdata/x264_sps.txt).
        let sps = [
            0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x24, 0x80,
        ];
        AvcConfig::new(&sps, &[0x68, 0xce]).unwrap()
    }

    #[test]
    fn key_frames_get_the_parameter_sets_and_keep_sei() {
        let data = [
            0, 0, 0, 1, 0x09, 0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 2, 0x65, 0x88,
        ];
        let u = access_unit(&data, true, Some(&cfg())).unwrap();
        let types: Vec<u8> = u.iter().map(|n| n[0] & 0x1f).collect();
        assert_eq!(
            types,
            [7, 8, 6, 5],
            "SPS and PPS first, AUD dropped, SEI kept"
        );
        let p = access_unit(&[0, 0, 0, 2, 0x41, 1], false, Some(&cfg())).unwrap();
        assert_eq!(p.len(), 1);
        assert!(
            access_unit(&[0, 0, 0, 1, 0x09], false, None).is_none(),
            "no picture"
        );
        assert!(
            access_unit(&[0, 0, 0, 9, 1], false, None).is_none(),
            "bad length"
        );
    }

    #[test]
    fn logs_never_show_credentials_or_tokens() {
        let u = url::Url::parse("rtsp://admin:secret@cam:554/live?token=abc").unwrap();
        let r = redacted(&u);
        assert!(
            !r.contains("secret") && !r.contains("abc") && !r.contains("admin"),
            "{r}"
        );
    }

    proptest::proptest! {
        #[test]
        fn access_units_keep_every_nal_but_auds(
            nals in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..40), 0..8)
        ) {
            let avcc = annexb::to_avcc(nals.iter().map(Vec::as_slice)).unwrap();
            let want: Vec<&Vec<u8>> = nals.iter().filter(|n| n[0] & 0x1f != 9).collect();
            match access_unit(&avcc, false, None) {
                Some(got) => {
                    proptest::prop_assert_eq!(got.len(), want.len());
                    for (g, w) in got.iter().zip(want) {
                        proptest::prop_assert_eq!(&g[..], &w[..]);
                    }
                }
                None => proptest::prop_assert!(
                    !want.iter().any(|n| NalType::of(n).is_some_and(NalType::is_vcl))
                ),
            }
        }
    }
}
