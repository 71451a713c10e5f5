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

    /// SETUP of `trackID=track` over TCP interleaved channels `2 track` and `2 track + 1`.
    pub(crate) async fn setup_track(&mut self, base: &str, track: usize) -> Result<(), CuError> {
        self.0
            .setup_interleaved(base, track)
            .await
            .map(drop)
            .map_err(rtsp_err)
    }

    pub(crate) async fn next(&mut self) -> Result<Parsed, CuError> {
        self.0.next().await.map_err(rtsp_err)
    }

    /// Writes raw bytes (an interleaved frame) to the camera.
    pub(crate) async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), CuError> {
        self.0.write_raw(bytes).await.map_err(rtsp_err)
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

/// Who to ask for a hole-punched path: the CMU client and the camera.
#[derive(Debug, Clone)]
pub struct Puncher {
    /// A logged-in client of the CMU.
    pub client: crate::Client,
    /// The camera's id.
    pub device: String,
    /// For a playback: the recorder to punch to (an NVR's id), 8.3 for recorders.
    pub recorder: Option<String>,
}

/// How long to give a path before also starting the next one: a TCP connect answers
/// within a round trip, so 250 ms; hole punching needs the platform's round trip and ICE
/// checks, so 2.5 s (a failure starts the next path at once; a punch that completes after
/// the next path connected is dropped).
fn patience(kind: PathKind) -> Duration {
    if kind == PathKind::Punched {
        Duration::from_millis(2500)
    } else {
        Duration::from_millis(250)
    }
}

/// H.626.4 8.3 hole punching, viewer side: gather (with the CMU's STUN server), send the
/// description through the platform, run ICE against the camera's, open QUIC pinned to the
/// camera's fingerprint. The RTSP session then runs over the QUIC stream.
async fn punched(p: Puncher, path: MediaPath) -> Result<RtspConn, RtspError> {
    let fail = |e: String| RtspError::Connect(format!("punched path: {e}"));
    let stun = match &path.stun {
        Some(s) => tokio::net::lookup_host(s.as_str())
            .await
            .ok()
            .and_then(|mut a| a.next()),
        None => None,
    };
    let prepared = peercam_p2p::prepare(
        peercam_p2p::peercam_ice::Role::Controlling,
        stun,
        Duration::from_millis(1500),
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    // No answer from the STUN server: UDP is blocked here (or the server is down), and
    // host candidates alone do not cross NATs; give way to the relay at once.
    if stun.is_some()
        && !prepared
            .description
            .candidates
            .iter()
            .any(|c| c.kind == peercam_p2p::peercam_ice::CandidateKind::ServerReflexive)
    {
        return Err(fail(
            "no answer from the STUN server; UDP seems blocked".into(),
        ));
    }
    let answer = p
        .client
        .punch_to(
            &p.device,
            p.recorder.as_deref(),
            &prepared.description.to_signal(),
        )
        .await
        .map_err(|e| fail(e.to_string()))?;
    let answer =
        peercam_p2p::SessionDescription::from_signal(&answer).map_err(|e| fail(e.to_string()))?;
    let peercam_p2p::Prepared {
        socket,
        agent,
        identity,
        ..
    } = prepared;
    let path = peercam_p2p::punch(socket, agent, &answer, Duration::from_secs(5))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let stream = path
        .connect(&identity, answer.fingerprint)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(RtspConn::new(Box::new(stream), "peercam-cu"))
}

/// P2P first, relay last (H.626.4 8.3 / 7): tries the CMU's paths in their order, giving
/// each its [`patience`] before also starting the next (so a dead LAN address costs a
/// quarter second, not a timeout), and keeps the first that connects. A punched path is
/// tried only with a `puncher`. The token is only spent by the RTSP request that follows,
/// so trying several paths is safe.
pub(crate) async fn connect_best(
    paths: &[MediaPath],
    puncher: Option<&Puncher>,
) -> Result<(Conn, Reached), CuError> {
    let paths: Vec<&MediaPath> = paths
        .iter()
        .filter(|p| p.kind != PathKind::Punched || puncher.is_some())
        .collect();
    if paths.is_empty() {
        return Err(err("the platform offered no way to reach the camera"));
    }
    let started = Instant::now();
    let mut tries = tokio::task::JoinSet::new();
    let mut next = 0usize;
    let mut last_err = String::new();
    loop {
        let mut wait = Duration::from_secs(10);
        if next < paths.len() {
            let p = paths[next].clone();
            wait = patience(p.kind);
            let punch = puncher.cloned();
            let order = next;
            tries.spawn(async move {
                let r = match (p.kind, punch) {
                    (PathKind::Punched, Some(punch)) => punched(punch, p.clone()).await,
                    _ => RtspConn::connect(&p.url, Duration::from_secs(5), "peercam-cu").await,
                };
                (order, p, r)
            });
            next += 1;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, tries.join_next()).await {
                Ok(Some(Ok((_, p, Ok(conn))))) => {
                    tries.abort_all();
                    let reached = Reached {
                        kind: p.kind,
                        url: p.url,
                        connect_ms: started.elapsed().as_secs_f64() * 1000.0,
                    };
                    return Ok((Conn(conn), reached));
                }
                Ok(Some(Ok((order, p, Err(e))))) => {
                    last_err = format!("{} path: {e}", p.kind.as_str());
                    if order + 1 == next || tries.is_empty() {
                        // The newest attempt failed: no reason to wait for the next one.
                        break;
                    }
                }
                Ok(Some(Err(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        if next >= paths.len() && tries.is_empty() {
            return Err(err(format!(
                "no path to the camera worked (last: {last_err})"
            )));
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
        stun: None,
    }];
    record_best(&paths, None, duration, progress)
        .await
        .map(|(r, _)| r)
}

/// Like [`record`], over the best of `paths` (tried in order, the next one started every
/// 250 ms while none has connected: P2P first, relay last); also says which path won.
pub async fn record_best(
    paths: &[MediaPath],
    puncher: Option<&Puncher>,
    duration: Duration,
    mut progress: impl FnMut(f64),
) -> Result<(Recording, Reached), CuError> {
    let (mut c, reached) = connect_best(paths, puncher).await?;
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
