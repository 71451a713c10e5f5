//! A third-party RTSP camera as the PU's source (issue 3, "existing cameras join the system
//! through a PU"): the PU pulls the camera's H.264 stream with the `retina` RTSP client (TCP
//! interleaved by default; Digest/Basic credentials from the URL) and re-serves it to the
//! viewers the platform vouched for. The camera is redialled with jittered backoff whenever
//! it drops or is down.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use peercam_base::Backoff;
use peercam_media::mp4::AvcConfig;
use retina::client::{
    Credentials, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::{CodecItem, ParametersRef};

/// One access unit from the camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledUnit {
    /// NAL units without start codes, in decoding order; a key unit carries SPS and PPS.
    pub nals: Vec<Bytes>,
    /// Whether it is a random access point (IDR).
    pub key: bool,
    /// Presentation time, 90 kHz, from the start of this connection to the camera.
    pub pts_90k: u64,
}

/// Where and how to pull.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// `rtsp://[user:pass@]host[:port]/path`.
    pub url: url::Url,
    /// RTP over the RTSP connection (default) or UDP.
    pub udp: bool,
}

/// Splits `data`, NAL units each behind a `len_size`-byte big-endian length, into NAL units.
/// `None` when a length runs past the end.
pub fn split_length_prefixed(data: &[u8], len_size: usize) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (len, body) = rest.split_at_checked(len_size)?;
        let n = len.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
        let (nal, tail) = body.split_at_checked(n)?;
        if !nal.is_empty() {
            out.push(nal);
        }
        rest = tail;
    }
    Some(out)
}

/// Turns one length-prefixed frame into a [`PulledUnit`], putting the stream's SPS and PPS in
/// front of a key frame that does not carry them in band (many cameras send them only in
/// the SDP).
pub fn to_unit(
    data: &[u8],
    key: bool,
    pts_90k: u64,
    params: Option<&AvcConfig>,
) -> Option<PulledUnit> {
    let nals = split_length_prefixed(data, 4)?;
    let has = |t: u8| {
        nals.iter()
            .any(|n| n.first().is_some_and(|b| b & 0x1f == t))
    };
    let mut out: Vec<Bytes> = Vec::with_capacity(nals.len() + 2);
    if key
        && !(has(7) && has(8))
        && let Some(p) = params
    {
        out.extend(p.sps.iter().map(|s| Bytes::copy_from_slice(s)));
        out.extend(p.pps.iter().map(|s| Bytes::copy_from_slice(s)));
    }
    // Access unit delimiters and the camera's own SEI are dropped; the PU adds its SEI tag.
    out.extend(
        nals.iter()
            .filter(|n| n.first().is_some_and(|b| !matches!(b & 0x1f, 6 | 9)))
            .map(|n| Bytes::copy_from_slice(n)),
    );
    out.iter()
        .any(|n| n.first().is_some_and(|b| matches!(b & 0x1f, 1 | 5)))
        .then_some(PulledUnit {
            nals: out,
            key,
            pts_90k,
        })
}

/// Pulls, handing each access unit to `sink` (`None` when the camera was lost, so what was
/// cached from it can be forgotten); redials the camera with backoff after every failure.
/// `sink` returns `false` to stop.
pub async fn run(config: PullConfig, mut sink: impl FnMut(Option<PulledUnit>) -> bool + Send) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        match session(&config, &mut sink, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(camera = %redacted(&config.url), error = %e, "camera stream lost; redialling");
                if !sink(None) {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff.next_delay(rand::random::<f64>())).await;
    }
}

/// The URL without its credentials, for logs.
fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

async fn session(
    config: &PullConfig,
    sink: &mut (impl FnMut(Option<PulledUnit>) -> bool + Send),
    backoff: &mut Backoff,
) -> Result<(), String> {
    let mut url = config.url.clone();
    let creds = (!url.username().is_empty()).then(|| Credentials {
        username: percent_decode(url.username()),
        password: percent_decode(url.password().unwrap_or_default()),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let opts = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("peercam-pu/{}", crate::SW_VERSION));
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
    let transport = if config.udp {
        Transport::Udp(retina::client::UdpTransportOptions::default())
    } else {
        Transport::Tcp(TcpTransportOptions::default())
    };
    described
        .setup(video, SetupOptions::default().transport(transport))
        .await
        .map_err(|e| e.to_string())?;
    let playing = described
        .play(PlayOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut demuxed = playing.demuxed().map_err(|e| e.to_string())?;
    tracing::info!(camera = %redacted(&config.url), "pulling the camera's stream");
    let mut params: Option<AvcConfig> = None;
    let mut first = true;
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), demuxed.next())
            .await
            .map_err(|_| "no media from the camera for 10 s".to_owned())?;
        let Some(item) = item else {
            return Err("the camera ended the stream".into());
        };
        let CodecItem::VideoFrame(frame) = item.map_err(|e| e.to_string())? else {
            continue;
        };
        if frame.has_new_parameters() || params.is_none() {
            params = demuxed
                .streams()
                .get(frame.stream_id())
                .and_then(|s| match s.parameters() {
                    Some(ParametersRef::Video(v)) => AvcConfig::parse(v.extra_data()).ok(),
                    _ => None,
                });
        }
        let ts = frame.timestamp();
        let rate = u64::from(ts.clock_rate().get());
        let pts_90k = u64::try_from(ts.elapsed()).unwrap_or(0) * 90_000 / rate.max(1);
        let Some(unit) = to_unit(
            frame.data(),
            frame.is_random_access_point(),
            pts_90k,
            params.as_ref(),
        ) else {
            continue;
        };
        if first {
            backoff.reset();
            first = false;
        }
        if !sink(Some(unit)) {
            return Ok(());
        }
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
    use super::*;

    #[test]
    fn length_prefixed_frames_split() {
        let data = [0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x06];
        assert_eq!(
            split_length_prefixed(&data, 4).unwrap(),
            vec![&[0x65, 1][..], &[0x06][..]]
        );
        assert!(split_length_prefixed(&[0, 0, 0, 9, 1], 4).is_none());
    }

    #[test]
    fn key_frames_get_the_parameter_sets() {
        // An x264 baseline 720p SPS (proto/media/testdata/x264_sps.txt).
        let sps = [
            0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x24, 0x80,
        ];
        let cfg = AvcConfig::new(&sps, &[0x68, 0xce]).unwrap();
        let data = [0, 0, 0, 1, 0x09, 0, 0, 0, 2, 0x65, 0x88];
        let u = to_unit(&data, true, 90, Some(&cfg)).unwrap();
        let types: Vec<u8> = u.nals.iter().map(|n| n[0] & 0x1f).collect();
        assert_eq!(types, [7, 8, 5], "SPS and PPS first, AUD dropped");
        let p = to_unit(&[0, 0, 0, 2, 0x41, 1], false, 180, Some(&cfg)).unwrap();
        assert_eq!(p.nals.len(), 1);
        assert!(
            to_unit(&[0, 0, 0, 1, 0x09], false, 0, None).is_none(),
            "no picture"
        );
    }
}
