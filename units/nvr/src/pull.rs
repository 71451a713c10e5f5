//! Receiving a camera's stream for recording (8.7.2.1 step 18, Pn): RTSP over TCP with
//! `retina`, H.264 video and G.711 audio when the camera sends it.
//!
//! Unlike a live re-server, the recorder keeps the camera's SEI messages (the synthetic
//! camera's frame tags end up in the recording) and drops only access unit delimiters.

use std::time::Duration;

use futures_util::StreamExt as _;
use peercam_media::mp4::AvcConfig;
use retina::client::{PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport};
use retina::codec::{CodecItem, ParametersRef};

use peercam_store::AudioCodec;

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

/// Whether to go on.
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Splits a length-prefixed (4-byte) frame, keeps SEI, drops AUDs, and puts the stream's
/// parameter sets in front of a key frame that lacks them.
fn unit(data: &[u8], key: bool, params: Option<&AvcConfig>) -> Option<Vec<Vec<u8>>> {
    let nals = peercam_media::annexb::split_avcc(data, 4).ok()?;
    let has = |t: u8| {
        nals.iter()
            .any(|n| n.first().is_some_and(|b| b & 0x1f == t))
    };
    let mut out = Vec::with_capacity(nals.len() + 2);
    if key
        && !(has(7) && has(8))
        && let Some(p) = params
    {
        out.extend(p.sps.iter().cloned());
        out.extend(p.pps.iter().cloned());
    }
    out.extend(
        nals.iter()
            .filter(|n| n.first().is_some_and(|b| b & 0x1f != 9))
            .map(|n| n.to_vec()),
    );
    out.iter()
        .any(|n| n.first().is_some_and(|b| matches!(b & 0x1f, 1 | 5)))
        .then_some(out)
}

/// Opens `url` and hands every item to `sink` until it says stop (`Ok`) or the stream
/// fails (`Err`). `on_start` learns the audio codec once the session plays.
pub(crate) async fn pull(
    url: &str,
    mut on_start: impl FnMut(Option<AudioCodec>),
    mut sink: impl FnMut(Item) -> Flow,
) -> Result<(), String> {
    let url = url::Url::parse(url).map_err(|e| format!("stream URL: {e}"))?;
    let opts = SessionOptions::default().user_agent(format!("peercam-nvr/{}", crate::SW_VERSION));
    let mut described = tokio::time::timeout(
        Duration::from_secs(10),
        retina::client::Session::describe(url, opts),
    )
    .await
    .map_err(|_| "DESCRIBE timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let video = described
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"))
        .ok_or("the camera offers no H.264 video")?;
    let audio = described.streams().iter().position(|s| {
        s.media() == "audio"
            && (s.encoding_name().eq_ignore_ascii_case("pcmu")
                || s.encoding_name().eq_ignore_ascii_case("pcma"))
    });
    let codec = audio.and_then(|i| {
        let name = described.streams()[i].encoding_name().to_ascii_lowercase();
        AudioCodec::parse(&name)
    });
    for s in [Some(video), audio].into_iter().flatten() {
        described
            .setup(
                s,
                SetupOptions::default().transport(Transport::Tcp(TcpTransportOptions::default())),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    let playing = described
        .play(PlayOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut demuxed = playing.demuxed().map_err(|e| e.to_string())?;
    on_start(codec);
    let mut params: Option<AvcConfig> = None;
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), demuxed.next())
            .await
            .map_err(|_| "no media from the camera for 10 s".to_owned())?;
        let Some(item) = item else {
            return Err("the camera ended the stream".into());
        };
        let flow = match item.map_err(|e| e.to_string())? {
            CodecItem::VideoFrame(frame) => {
                if frame.has_new_parameters() || params.is_none() {
                    params = demuxed.streams().get(frame.stream_id()).and_then(|s| {
                        match s.parameters() {
                            Some(ParametersRef::Video(v)) => AvcConfig::parse(v.extra_data()).ok(),
                            _ => None,
                        }
                    });
                }
                let ts = frame.timestamp();
                let rate = u64::from(ts.clock_rate().get()).max(1);
                let pts = u64::try_from(ts.elapsed()).unwrap_or(0) * 90_000 / rate;
                let key = frame.is_random_access_point();
                match unit(frame.data(), key, params.as_ref()) {
                    Some(nals) => sink(Item::Video { nals, key, pts }),
                    None => Flow::Continue,
                }
            }
            CodecItem::AudioFrame(frame) => {
                let ts = frame.timestamp();
                let rate = u64::from(ts.clock_rate().get()).max(1);
                let pts = u64::try_from(ts.elapsed()).unwrap_or(0) * 8000 / rate;
                sink(Item::Audio {
                    bytes: frame.data().to_vec(),
                    pts,
                })
            }
            _ => Flow::Continue,
        };
        if matches!(flow, Flow::Stop) {
            return Ok(());
        }
    }
}
