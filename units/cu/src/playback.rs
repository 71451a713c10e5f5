//! Playing recordings from an NVR or a camera's SD card (H.626.4 8.7.2.2, Nc/Nc'): RTSP over
//! TCP with seek (`Range: clock=`), speed (`Scale`), pause and frame steps
//! (`X-Frame-Step`), as described in docs/protocol.md.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use peercam_media::sei::{FrameInfo, parse_sei};
use peercam_rtp::{H264Depacketizer, RtpPacket};
use peercam_rtsp::{Parsed, Response};

use crate::CuError;
use crate::live::Conn;

fn err(msg: impl Into<String>) -> CuError {
    CuError::Media(msg.into())
}

/// One frame as the player received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// RTP timestamp (the output clock: follows the speed asked).
    pub rtp_ts: u32,
    /// An IDR.
    pub key: bool,
    /// The synthetic camera's frame tag (frame counter, capture time), if present.
    pub tag: Option<FrameInfo>,
    /// When it was complete here.
    pub arrived: Instant,
}

/// One audio packet of a playback (the recorded G.711).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// RTP payload type (0 PCMU, 8 PCMA).
    pub payload_type: u8,
    /// RTP timestamp, 8 kHz.
    pub rtp_ts: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A playback session.
pub struct Playback {
    c: Conn,
    base: String,
    depack: H264Depacketizer,
    ready: VecDeque<Seen>,
    audio: Vec<Heard>,
}

impl std::fmt::Debug for Playback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playback")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Playback {
    /// DESCRIBE and SETUP `url` (from [`crate::Client::playback_url`]); call
    /// [`play`](Self::play) next.
    pub async fn open(url: &str) -> Result<Self, CuError> {
        Self::open_with(url, false).await
    }

    /// Like [`open`](Self::open), and sets up the recorded audio (track 1) too when the
    /// recording has some; its packets are kept ([`audio`](Self::audio)).
    pub async fn open_with_audio(url: &str) -> Result<Self, CuError> {
        Self::open_with(url, true).await
    }

    /// H.626.4 8.3 for recordings: like [`open`](Self::open), over the best of the
    /// playback answer's `paths` (tried in order as for live view: the recorder's LAN,
    /// public and mapped addresses, a punched path with `puncher` (whose `recorder` is
    /// set), the MTU's pipe last); also says which path won.
    pub async fn open_best(
        paths: &[peercam_signal::relay::MediaPath],
        puncher: Option<&crate::live::Puncher>,
    ) -> Result<(Self, crate::live::Reached), CuError> {
        let (c, reached) = crate::live::connect_best(paths, puncher).await?;
        let p = Self::open_on(c, &reached.url, false).await?;
        Ok((p, reached))
    }

    async fn open_with(url: &str, audio: bool) -> Result<Self, CuError> {
        let c = Conn::connect(url).await?;
        Self::open_on(c, url, audio).await
    }

    async fn open_on(mut c: Conn, url: &str, audio: bool) -> Result<Self, CuError> {
        let described = c
            .request("DESCRIBE", url, "Accept: application/sdp\r\n")
            .await?;
        let base = url
            .split('?')
            .next()
            .unwrap_or(url)
            .trim_end_matches('/')
            .to_owned();
        c.setup_video(&base).await?;
        if audio && String::from_utf8_lossy(&described.body).contains("m=audio") {
            c.setup_track(&base, 1).await?;
        }
        Ok(Self {
            c,
            base,
            depack: H264Depacketizer::new(),
            ready: VecDeque::new(),
            audio: Vec::new(),
        })
    }

    fn reset(&mut self) {
        self.depack = H264Depacketizer::new();
        self.ready.clear();
        self.audio.clear();
    }

    /// The audio packets received since the last PLAY, PAUSE or step (read while waiting
    /// for frames).
    pub fn audio(&self) -> &[Heard] {
        &self.audio
    }

    /// Plays from `at_ms` (Unix ms; `None`: where it stands) at `scale` (`None`: as before).
    /// Returns the answer; its `Range` says where playback starts.
    pub async fn play(
        &mut self,
        at_ms: Option<u64>,
        scale: Option<&str>,
    ) -> Result<Response, CuError> {
        let mut extra = String::new();
        if let Some(at) = at_ms {
            extra.push_str(&format!(
                "Range: clock={}-\r\n",
                peercam_record::time::format_clock(at)
            ));
        }
        if let Some(s) = scale {
            extra.push_str(&format!("Scale: {s}\r\n"));
        }
        let r = self
            .c
            .request("PLAY", &format!("{}/", self.base), &extra)
            .await?;
        self.reset();
        Ok(r)
    }

    /// Pauses; frames already on the way are dropped.
    pub async fn pause(&mut self) -> Result<(), CuError> {
        self.c
            .request("PAUSE", &format!("{}/", self.base), "")
            .await?;
        self.reset();
        Ok(())
    }

    /// While paused: shows one frame forward or back and returns it.
    pub async fn step(&mut self, forward: bool) -> Result<Seen, CuError> {
        let extra = format!("X-Frame-Step: {}\r\n", if forward { "1" } else { "-1" });
        self.c
            .request("PLAY", &format!("{}/", self.base), &extra)
            .await?;
        self.reset();
        self.next_frame(Duration::from_secs(5))
            .await?
            .ok_or_else(|| err("no frame came for the step"))
    }

    /// The next complete frame, or `None` after `wait` without one.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<Option<Seen>, CuError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(s) = self.ready.pop_front() {
                return Ok(Some(s));
            }
            let msg = match tokio::time::timeout_at(deadline, self.c.next()).await {
                Ok(m) => m?,
                Err(_) => return Ok(None),
            };
            let Parsed::Interleaved(frame) = msg else {
                continue;
            };
            let Ok(pkt) = RtpPacket::parse(&frame.payload) else {
                continue;
            };
            if frame.channel == 2 {
                self.audio.push(Heard {
                    payload_type: pkt.payload_type(),
                    rtp_ts: pkt.timestamp(),
                    payload: pkt.payload().to_vec(),
                });
                continue;
            }
            if frame.channel != 0 {
                continue;
            }
            let _ = self.depack.push(&pkt);
            while let Some(au) = self.depack.poll() {
                self.ready.push_back(Seen {
                    rtp_ts: au.timestamp,
                    key: au
                        .nals
                        .iter()
                        .any(|n| n.first().is_some_and(|b| b & 0x1f == 5)),
                    tag: au.nals.iter().find_map(|n| parse_sei(n)),
                    arrived: Instant::now(),
                });
            }
        }
    }

    /// Ends the session.
    pub async fn teardown(mut self) -> Result<(), CuError> {
        self.c
            .request("TEARDOWN", &format!("{}/", self.base), "")
            .await?;
        Ok(())
    }
}
