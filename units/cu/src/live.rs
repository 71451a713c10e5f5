//! Playing a camera directly (H.626.4 Pc / Pc'): RTSP over TCP with interleaved RTP, as
//! 6.3.1 requires of the mobile client, and recording what arrives into a standard MP4.

use std::time::{Duration, Instant};

use peercam_media::mp4::{Mp4Writer, VideoParams};
use peercam_net::rtsp::{RtspConn, RtspError};
use peercam_rtp::{H264Depacketizer, RtpPacket};
use peercam_rtsp::{Parsed, Response};
use peercam_signal::relay::{MediaPath, PathKind};

use crate::CuError;

/// What a recording session got.
#[derive(Debug)]
pub struct Recording {
    /// The MP4 file.
    pub mp4: Vec<u8>,
    /// Video frames written.
    pub frames: u64,
    /// Media time covered, seconds.
    pub seconds: f64,
    /// Frames lost to packet loss or gaps.
    pub lost: u64,
    /// Media bytes received (RTP over the RTSP connection).
    pub bytes: u64,
}

fn err(msg: impl Into<String>) -> CuError {
    CuError::Media(msg.into())
}

/// An RTSP connection to a camera, an NVR or an MTU.
pub(crate) struct Conn(RtspConn);

fn rtsp_err(e: RtspError) -> CuError {
    err(e.to_string())
}

impl Conn {
    /// Connects to the authority of an `rtsp://` URL.
    pub(crate) async fn connect(url: &str) -> Result<Self, CuError> {
        RtspConn::connect(url, Duration::from_secs(10), "peercam-cu")
            .await
            .map(Self)
            .map_err(rtsp_err)
    }

    /// SETUP of the video track (`trackID=0`) over TCP interleaved channels 0-1; the
    /// session id is kept for the requests that follow.
    pub(crate) async fn setup_video(&mut self, base: &str) -> Result<(), CuError> {
        self.0
            .setup_interleaved(base, 0)
            .await
            .map(drop)
            .map_err(rtsp_err)
    }

    pub(crate) async fn next(&mut self) -> Result<Parsed, CuError> {
        self.0.next().await.map_err(rtsp_err)
    }

    pub(crate) async fn request(
        &mut self,
        method: &str,
        uri: &str,
        extra: &str,
    ) -> Result<Response, CuError> {
        self.0.request(method, uri, extra).await.map_err(rtsp_err)
    }
}

/// Which path a live view took and how long reaching the camera took.
#[derive(Debug, Clone)]
pub struct Reached {
    /// The path.
    pub kind: PathKind,
    /// The URL played.
    pub url: String,
    /// Time to establish the connection (a TCP round trip for direct paths), ms.
    pub connect_ms: f64,
}

/// P2P first, relay last (H.626.4 8.3 / 7): tries the CMU's paths in their order, starting
/// the next one every 250 ms while none has connected (so a dead LAN address costs a
/// quarter second, not a timeout), and keeps the first that connects. The token is only
/// spent by the RTSP request that follows, so trying several paths is safe.
pub(crate) async fn connect_best(paths: &[MediaPath]) -> Result<(Conn, Reached), CuError> {
    if paths.is_empty() {
        return Err(err("the platform offered no way to reach the camera"));
    }
    let started = Instant::now();
    let mut tries = tokio::task::JoinSet::new();
    let mut next = 0usize;
    let mut last_err = String::new();
    loop {
        if next < paths.len() {
            let p = paths[next].clone();
            let order = next;
            tries.spawn(async move {
                let r = RtspConn::connect(&p.url, Duration::from_secs(5), "peercam-cu").await;
                (order, p, r)
            });
            next += 1;
        }
        let wait = if next < paths.len() {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(6)
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let joined = tokio::time::timeout_at(deadline, tries.join_next()).await;
            match joined {
                Ok(Some(Ok((_, p, Ok(conn))))) => {
                    tries.abort_all();
                    let reached = Reached {
                        kind: p.kind,
                        url: p.url,
                        connect_ms: started.elapsed().as_secs_f64() * 1000.0,
                    };
                    return Ok((Conn(conn), reached));
                }
                Ok(Some(Ok((_, p, Err(e))))) => {
                    last_err = format!("{} path: {e}", p.kind.as_str());
                }
                Ok(Some(Err(_))) => {}
                Ok(None) => {
                    if next >= paths.len() {
                        return Err(err(format!(
                            "no path to the camera worked (last: {last_err})"
                        )));
                    }
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

/// Plays `url` (an rtsp:// URL from [`crate::Client::play`]) for `duration` and records the
/// video into an MP4. `progress` is called with the seconds received so far.
pub async fn record(
    url: &str,
    duration: Duration,
    progress: impl FnMut(f64),
) -> Result<Recording, CuError> {
    let paths = [MediaPath {
        kind: PathKind::Lan,
        url: url.to_owned(),
    }];
    record_best(&paths, duration, progress)
        .await
        .map(|(r, _)| r)
}

/// Like [`record`], over the best of `paths` (tried in order, the next one started every
/// 250 ms while none has connected: P2P first, relay last); also says which path won.
pub async fn record_best(
    paths: &[MediaPath],
    duration: Duration,
    mut progress: impl FnMut(f64),
) -> Result<(Recording, Reached), CuError> {
    let (mut c, reached) = connect_best(paths).await?;
    let url = reached.url.as_str();
    let base = url.split('?').next().unwrap_or(url).trim_end_matches('/');
    let d = c
        .request("DESCRIBE", url, "Accept: application/sdp\r\n")
        .await?;
    let sdp = peercam_rtsp::sdp::SessionDescription::parse(&d.body)
        .map_err(|e| err(format!("camera SDP: {e}")))?;
    let video = sdp
        .media
        .iter()
        .find(|m| m.h264_parameter_sets(96).is_some())
        .ok_or_else(|| err("the camera offers no H.264 video"))?;
    let sets = video
        .h264_parameter_sets(96)
        .ok_or_else(|| err("no sprop-parameter-sets"))?;
    let sps = sets
        .iter()
        .find(|n| n.first().is_some_and(|b| b & 0x1f == 7))
        .cloned()
        .ok_or_else(|| err("no SPS in the SDP"))?;
    let pps = sets
        .iter()
        .find(|n| n.first().is_some_and(|b| b & 0x1f == 8))
        .cloned()
        .ok_or_else(|| err("no PPS in the SDP"))?;
    c.setup_video(base).await?;
    c.request("PLAY", &format!("{base}/"), "Range: npt=0.000-\r\n")
        .await?;

    let mut mp4 =
        Mp4Writer::new(VideoParams::new(sps, pps), None).map_err(|e| err(e.to_string()))?;
    let mut depack = H264Depacketizer::new();
    let (mut first_ts, mut frames, mut last_pts, mut started) = (None::<u64>, 0u64, 0u64, false);
    let deadline = Instant::now() + duration;
    let mut ts_ext: Option<u64> = None;
    let mut bytes = 0u64;
    while Instant::now() < deadline {
        let msg = match tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            c.next(),
        )
        .await
        {
            Ok(m) => m?,
            Err(_) => break,
        };
        let Parsed::Interleaved(frame) = msg else {
            continue;
        };
        bytes += frame.payload.len() as u64;
        if frame.channel != 0 {
            continue;
        }
        let Ok(pkt) = RtpPacket::parse(&frame.payload) else {
            continue;
        };
        let _ = depack.push(&pkt);
        while let Some(au) = depack.poll() {
            let key = au
                .nals
                .iter()
                .any(|n| n.first().is_some_and(|b| b & 0x1f == 5));
            if !started && !key {
                continue; // start on an IDR
            }
            started = true;
            let ts = peercam_rtp::session::extend_timestamp(
                ts_ext.unwrap_or_else(|| u64::from(au.timestamp)),
                au.timestamp,
            );
            ts_ext = Some(ts);
            let base_ts = *first_ts.get_or_insert(ts);
            let pts = ts - base_ts;
            if frames > 0 && pts <= last_pts {
                continue;
            }
            let nals: Vec<&[u8]> = au
                .nals
                .iter()
                .map(Vec::as_slice)
                .filter(|n| n.first().is_some_and(|b| !matches!(b & 0x1f, 7..=9)))
                .collect();
            mp4.push_video_nals(nals, pts, key)
                .map_err(|e| err(e.to_string()))?;
            frames += 1;
            last_pts = pts;
            progress(pts as f64 / 90_000.0);
        }
    }
    let _ = c.request("TEARDOWN", &format!("{base}/"), "").await;
    let lost = depack.stats().dropped_access_units;
    let seconds = last_pts as f64 / 90_000.0;
    let mp4 = mp4.finish().map_err(|e| err(e.to_string()))?;
    Ok((
        Recording {
            mp4,
            frames,
            seconds,
            lost,
            bytes,
        },
        reached,
    ))
}
