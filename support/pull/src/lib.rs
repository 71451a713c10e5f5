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
//!   clock); a camera's AAC-LC (`mpeg4-generic`, RFC 3640) both as its access units
//!   ([`Item::Aac`], [`Started::aac`]) and decoded to G.711 mu-law at 8 kHz
//!   ([`audio::AacToG711`]; [`Started::decoded_from`] says so). Audio in other formats (or
//!   AAC the decoder refuses, such as HE-AAC) is named in [`Started::audio`] but not set up.
//!
//! retina does RTSP (DESCRIBE, SETUP, PLAY, keep-alives, RTCP); the RTP payloads are read
//! here with `peercam-rtp`'s depacketizers, so a malformed packet is dropped and counted
//! (logged at every power of two) and the session goes on.
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
use peercam_rtp::H264Depacketizer;
pub use peercam_rtp::aac::AacConfig;
use peercam_rtp::aac::AacDepacketizer;
pub use peercam_rtp::g711::AudioCodec;
use retina::client::PacketItem;
use retina::client::{
    Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
    UdpTransportOptions,
};
use retina::codec::ParametersRef;

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
    /// The camera's AAC configuration when its audio is AAC: its access units come as
    /// [`Item::Aac`] as well as decoded to G.711 as [`Item::Audio`].
    pub aac: Option<AacConfig>,
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
    /// An AAC access unit of a camera whose audio is AAC ([`Started::aac`]), as it came.
    Aac {
        /// The raw access unit.
        data: Bytes,
        /// Presentation time in samples ([`AacConfig::sample_rate`]) from the start of this
        /// connection.
        pts: u64,
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
    let mut aac: Option<(AacConfig, audio::AacToG711)> = None;
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
                let decoder = AacConfig::parse(&config).and_then(|c| {
                    audio::AacToG711::new(&config, peercam_rtp::g711::Law::MuLaw).map(|d| (c, d))
                });
                match decoder {
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
    let mut params: Option<AvcConfig> = match described.streams()[video].parameters() {
        Some(ParametersRef::Video(v)) => AvcConfig::parse(v.extra_data()).ok(),
        _ => None,
    };
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
    // The RTP packets as they come: the payloads are read here (H.264 with peercam-rtp's
    // depacketizer, AAC with its RFC 3640 one), so a malformed audio packet is dropped and
    // counted without ending the session (retina's own demuxer would fail the whole stream).
    let mut playing = described.play(PlayOptions::default()).await?;
    tracing::info!(camera = %redacted(&config.url), audio = ?audio.as_ref().map(|a| &a.1), aac = aac.is_some(), "pulling the camera's stream");
    if sink(Event::Started(Started {
        audio: audio.map(|a| a.1),
        decoded_from: aac.is_some().then(|| "mpeg4-generic".to_owned()),
        aac: aac.as_ref().map(|(c, _)| c.clone()),
    })) == Flow::Stop
    {
        return Ok(());
    }
    let mut h264 = H264Depacketizer::new();
    let mut aac_rtp = aac
        .as_ref()
        .map(|(c, _)| AacDepacketizer::new(c.frame_length));
    let mut dropped = Dropped::default();
    loop {
        let item = tokio::time::timeout(SILENCE, playing.next())
            .await
            .map_err(|_| PullError::Silent(SILENCE))?
            .ok_or(PullError::Ended)??;
        let PacketItem::Rtp(pkt) = item else {
            continue;
        };
        let at = Clock::of(&pkt);
        let (seq, ts, mark) = (
            pkt.sequence_number(),
            pkt.timestamp().timestamp() as u32,
            pkt.mark(),
        );
        let mut items = Vec::new();
        if pkt.stream_id() == video {
            if h264.push_payload(seq, ts, mark, pkt.payload()).is_err() {
                count(
                    &mut dropped.video,
                    "an H.264 packet of the camera was malformed",
                );
            }
            while let Some(au) = h264.poll() {
                if let Some((nals, key)) = picture(au.nals, &mut params) {
                    items.push(Item::Video {
                        nals,
                        key,
                        pts_90k: at.ticks(au.timestamp, 90_000),
                    });
                }
            }
        } else if Some(pkt.stream_id()) == audio_setup {
            match (aac.as_mut(), aac_rtp.as_mut()) {
                (Some((c, dec)), Some(d)) => {
                    if let Err(e) = d.push(seq, ts, mark, pkt.payload()) {
                        tracing::debug!(error = %e, "malformed AAC packet");
                        MALFORMED_AUDIO.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        count(
                            &mut dropped.aac,
                            "an AAC packet of the camera was malformed: dropped",
                        );
                    }
                    while let Some(f) = d.poll() {
                        let pts = at.ticks(f.timestamp, u64::from(c.sample_rate));
                        match dec.decode(&f.data) {
                            Ok(g711) if !g711.is_empty() => items.push(Item::Audio {
                                data: Bytes::from(g711),
                                pts_8k: at.ticks(f.timestamp, 8000),
                            }),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(error = %e, "undecodable AAC frame");
                                count(
                                    &mut dropped.frames,
                                    "an AAC frame of the camera did not decode",
                                );
                            }
                        }
                        items.push(Item::Aac {
                            data: Bytes::from(f.data),
                            pts,
                        });
                    }
                }
                _ => {
                    if !pkt.payload().is_empty() {
                        items.push(Item::Audio {
                            data: Bytes::copy_from_slice(pkt.payload()),
                            pts_8k: at.ticks(ts, 8000),
                        });
                    }
                }
            }
        }
        for item in items {
            if sink(Event::Item(item)) == Flow::Stop {
                return Ok(());
            }
        }
    }
}

/// Counters of what the pull dropped from the camera, logged at every power of two.
#[derive(Debug, Default)]
struct Dropped {
    video: u64,
    aac: u64,
    frames: u64,
}

/// Malformed audio packets dropped by every pull of this process, since it started.
static MALFORMED_AUDIO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Malformed camera audio packets (bad AU-headers, an access unit beyond its packet) the
/// pulls of this process dropped so far: the process-wide counter behind the rate-limited
/// warnings.
pub fn malformed_audio_packets() -> u64 {
    MALFORMED_AUDIO.load(std::sync::atomic::Ordering::Relaxed)
}

fn count(n: &mut u64, what: &'static str) {
    *n += 1;
    if n.is_power_of_two() {
        tracing::warn!(count = *n, "{what}");
    }
}

/// A packet's place on its stream's clock, to date what it completes.
struct Clock {
    /// The packet's 32-bit RTP timestamp and its time since the stream started, in ticks.
    ts: u32,
    elapsed: i64,
    rate: u64,
}

impl Clock {
    fn of(pkt: &retina::rtp::ReceivedPacket) -> Self {
        let t = pkt.timestamp();
        Self {
            ts: t.timestamp() as u32,
            elapsed: t.elapsed(),
            rate: u64::from(t.clock_rate().get()),
        }
    }

    /// `ts` (this packet's, or one near it: an access unit it completed, an AAC unit after
    /// it in the packet) as ticks of `rate` since the stream started.
    fn ticks(&self, ts: u32, rate: u64) -> u64 {
        let elapsed = self.elapsed + i64::from(ts.wrapping_sub(self.ts) as i32);
        let elapsed = u128::from(u64::try_from(elapsed).unwrap_or(0));
        u64::try_from(elapsed * u128::from(rate) / u128::from(self.rate.max(1))).unwrap_or(u64::MAX)
    }
}

/// An access unit's NAL units made into [`Item::Video`]'s: SEI kept, AUDs dropped, the
/// stream's SPS and PPS (`params`, updated from in-band ones) in front of a key frame that
/// lacks them. `None` without a picture.
fn picture(nals: Vec<Vec<u8>>, params: &mut Option<AvcConfig>) -> Option<(Vec<Bytes>, bool)> {
    let find = |t: NalType| nals.iter().find(|n| NalType::of(n) == Some(t));
    if let (Some(sps), Some(pps)) = (find(NalType::SPS), find(NalType::PPS))
        && let Ok(c) = AvcConfig::new(sps, pps)
    {
        *params = Some(c);
    }
    let key = find(NalType::IDR).is_some();
    let avcc = annexb::to_avcc(nals.iter().map(Vec::as_slice)).ok()?;
    access_unit(&avcc, key, params.as_ref()).map(|n| (n, key))
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
