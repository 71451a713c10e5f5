//! Playing a camera directly (H.626.4 Pc / Pc'): RTSP over TCP with interleaved RTP, as
//! 6.3.1 requires of the mobile client, and recording what arrives into a standard MP4.

use std::time::{Duration, Instant};

use peercam_media::mp4::{Mp4Writer, VideoParams};
use peercam_rtp::{H264Depacketizer, RtpPacket};
use peercam_rtsp::{Parsed, Response, parse};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

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
}

fn err(msg: impl Into<String>) -> CuError {
    CuError::Media(msg.into())
}

pub(crate) struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    pub(crate) session: Option<String>,
}

impl Conn {
    /// Connects to the authority of an `rtsp://` URL.
    pub(crate) async fn connect(url: &str) -> Result<Self, CuError> {
        let rest = url
            .strip_prefix("rtsp://")
            .ok_or_else(|| err("not an rtsp:// URL"))?;
        let hostport = rest.split('/').next().unwrap_or_default();
        let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(hostport))
            .await
            .map_err(|_| err("the server did not answer in time"))?
            .map_err(|e| err(format!("cannot reach {hostport}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        Ok(Self {
            tcp,
            buf: Vec::new(),
            cseq: 0,
            session: None,
        })
    }

    /// SETUP of the video track (`trackID=0`) over TCP interleaved channels 0-1; the
    /// session id is kept for the requests that follow.
    pub(crate) async fn setup_video(&mut self, base: &str) -> Result<(), CuError> {
        let s = self
            .request(
                "SETUP",
                &format!("{base}/trackID=0"),
                "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
            )
            .await?;
        self.session = s
            .headers
            .get("session")
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        Ok(())
    }

    pub(crate) async fn next(&mut self) -> Result<Parsed, CuError> {
        loop {
            if let Some((msg, used)) =
                parse(&self.buf).map_err(|e| err(format!("camera sent bad RTSP: {e}")))?
            {
                self.buf.drain(..used);
                return Ok(msg);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self
                .tcp
                .read(&mut chunk)
                .await
                .map_err(|e| err(format!("reading from the camera: {e}")))?;
            if n == 0 {
                return Err(err("the camera closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub(crate) async fn request(
        &mut self,
        method: &str,
        uri: &str,
        extra: &str,
    ) -> Result<Response, CuError> {
        self.cseq += 1;
        let session = self
            .session
            .as_ref()
            .map(|s| format!("Session: {s}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {uri} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: peercam-cu\r\n{session}{extra}\r\n",
            self.cseq
        );
        self.tcp
            .write_all(req.as_bytes())
            .await
            .map_err(|e| err(format!("writing to the camera: {e}")))?;
        loop {
            if let Parsed::Response(r) = self.next().await? {
                if !r.status.is_success() {
                    return Err(err(format!(
                        "{method} refused by the camera: {} {}",
                        r.status.0, r.reason
                    )));
                }
                return Ok(r);
            }
        }
    }
}

/// Plays `url` (an rtsp:// URL from [`crate::Client::play`]) for `duration` and records the
/// video into an MP4. `progress` is called with the seconds received so far.
pub async fn record(
    url: &str,
    duration: Duration,
    mut progress: impl FnMut(f64),
) -> Result<Recording, CuError> {
    let base = url.split('?').next().unwrap_or(url).trim_end_matches('/');
    let mut c = Conn::connect(url).await?;
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
    Ok(Recording {
        mp4,
        frames,
        seconds,
        lost,
    })
}
