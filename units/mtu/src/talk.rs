//! Talk through the relay (intercom, H.626.4 6.1.8): the ONVIF audio back channel of a
//! relayed viewer.
//!
//! The shared feed of a camera is one upstream for many viewers, opened with a token of the
//! camera's owner that holds `live` only; the camera cannot tell from it who talks. So a
//! viewer who asks the MTU for the back channel gets an upstream of its own for the talk
//! direction: the platform, judging that viewer's token (Dm), mints a second one-time token
//! for the same user ([`peercam_signal::cmd::PlatformAnswer::Granted`]'s `talk_token`); the
//! MTU opens a channel from the camera (Mp/Pd, as for a feed) and DESCRIBEs with that token
//! and `Require: www.onvif.org/ver20/backchannel`. The camera judges the grant (8.4, one use)
//! and its `talk` scope exactly as for a direct viewer: 551 when it will not take talk, else
//! its SDP with the back-channel section. The MTU sets up only that track and copies the
//! viewer's RTP to it; the viewer's video and audio still come from the shared feed. The
//! camera ends the talk upstream on a revocation of that user (the MTU ends the viewer too).

use std::time::Duration;

use peercam_base::DeviceId;
use peercam_net::rtsp::{RtspConn, RtspError};
use peercam_rtp::g711::AudioCodec;
use peercam_rtsp::Parsed;
use peercam_rtsp::sdp::{SessionDescription, find_backchannel};
use peercam_signal::play::Caps;
use tokio::sync::{mpsc, oneshot};

use crate::relay::{FeedError, Relay};

/// The interleaved RTP channel of the back channel on the talk upstream (track 2: 4-5).
const CHANNEL: u8 = 4;

/// Packets queued for the camera; beyond, the newest are dropped (talk is real time).
const QUEUE: usize = 64;

/// Why a relayed viewer cannot talk.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TalkError {
    /// The camera answered 551: the viewer's grant does not hold `talk`, or the camera has
    /// no speaker.
    #[error("the camera will not take talk from this viewer")]
    Refused,
    /// The camera's SDP offers no back channel the MTU can relay.
    #[error("the camera offers no audio back channel")]
    NoBackchannel,
    /// The talk upstream could not be opened.
    #[error("talk upstream: {0}")]
    Upstream(#[from] FeedError),
}

impl From<RtspError> for TalkError {
    fn from(e: RtspError) -> Self {
        match e {
            RtspError::Refused { status: 551, .. } => Self::Refused,
            e => Self::Upstream(e.into()),
        }
    }
}

/// One relayed viewer's talk upstream: the camera's back channel, set up and playing.
pub(crate) struct TalkUpstream {
    tx: mpsc::Sender<Vec<u8>>,
    /// Resolves (with an error) when the camera ended the talk session.
    pub(crate) ended: oneshot::Receiver<()>,
    /// The codecs the camera's back channel takes, with their payload types.
    pub(crate) codecs: Vec<(u8, AudioCodec)>,
}

impl TalkUpstream {
    /// Queues one RTP packet for the camera; dropped when the queue is full.
    pub(crate) fn send(&self, rtp: Vec<u8>) -> bool {
        self.tx.try_send(rtp).is_ok()
    }
}

/// Opens `camera`'s back channel with the relayed viewer's talk token.
pub(crate) async fn open(
    relay: &Relay,
    camera: &DeviceId,
    caps: Caps,
    talk_token: &str,
) -> Result<TalkUpstream, TalkError> {
    let (tunnel, _owner_token) = relay.open_channel(camera, caps).await?;
    let mut conn = RtspConn::new(Box::new(tunnel), "peercam-mtu");
    let base = format!("rtsp://relay/live/{camera}");
    // The camera judges the viewer's own grant (8.4) and its talk scope (6.1.8).
    let d = conn
        .request(
            "DESCRIBE",
            &format!("{base}?token={talk_token}"),
            &format!(
                "Accept: application/sdp\r\nRequire: {}\r\n",
                peercam_rtsp::BACKCHANNEL_TAG
            ),
        )
        .await?;
    let sdp = SessionDescription::parse(&d.body).map_err(|_| TalkError::NoBackchannel)?;
    let (control, codecs) = find_backchannel(&sdp).ok_or(TalkError::NoBackchannel)?;
    let track_url = if control.starts_with("rtsp://") {
        control
    } else {
        format!("{base}/{control}")
    };
    conn.request(
        "SETUP",
        &track_url,
        &format!(
            "Transport: RTP/AVP/TCP;unicast;interleaved={CHANNEL}-{}\r\n",
            CHANNEL + 1
        ),
    )
    .await?;
    conn.request("PLAY", &format!("{base}/"), "Range: npt=0.000-\r\n")
        .await?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let (ended_tx, ended) = oneshot::channel();
    let camera = camera.clone();
    tokio::spawn(async move {
        let r = pump(&mut conn, &base, rx).await;
        match r {
            Ok(()) => tracing::debug!(%camera, "relayed talk ended"),
            Err(e) => tracing::info!(%camera, error = %e, "relayed talk upstream ended"),
        }
        drop(ended_tx);
    });
    Ok(TalkUpstream { tx, ended, codecs })
}

/// Copies the viewer's packets to the camera until the viewer goes (then TEARDOWN) or the
/// camera ends the session.
async fn pump(
    conn: &mut RtspConn,
    base: &str,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> Result<(), RtspError> {
    let mut keepalive = tokio::time::interval(Duration::from_secs(20));
    keepalive.tick().await;
    let mut frame = Vec::with_capacity(1600);
    loop {
        tokio::select! {
            p = rx.recv() => match p {
                Some(p) => {
                    frame.clear();
                    if peercam_rtsp::write_interleaved(CHANNEL, &p, &mut frame).is_ok() {
                        conn.write_raw(&frame).await?;
                    }
                }
                None => {
                    let _ = conn.send("TEARDOWN", &format!("{base}/"), "").await;
                    return Ok(());
                }
            },
            m = conn.next() => match m? {
                // RTCP, keep-alive answers: nothing to do.
                Parsed::Interleaved(_) | Parsed::Response(_) | Parsed::Request(_) => {}
            },
            _ = keepalive.tick() => {
                conn.send("GET_PARAMETER", &format!("{base}/"), "").await?;
            }
        }
    }
}

/// The viewer's back-channel packet, as RTP for the camera (the viewer's payload type,
/// sequence number and timestamp; the MTU's SSRC for this talker).
pub(crate) fn rtp(p: &peercam_rtsp::server::BackchannelPacket, ssrc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + p.payload.len());
    out.push(0x80);
    out.push(p.payload_type & 0x7f);
    out.extend_from_slice(&((p.seq & 0xffff) as u16).to_be_bytes());
    out.extend_from_slice(&p.timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&p.payload);
    out
}

/// `sdp` (the feed's description) with the camera's back-channel section appended.
pub(crate) fn with_backchannel(sdp: &str, codecs: &[(u8, AudioCodec)]) -> String {
    let Ok(mut sd) = SessionDescription::parse(sdp.as_bytes()) else {
        return sdp.to_owned();
    };
    let codecs: Vec<AudioCodec> = codecs.iter().map(|(_, c)| *c).collect();
    if let Some(m) = peercam_rtsp::sdp::backchannel_media(&codecs) {
        sd.media.push(m);
    }
    sd.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_6_1_8_relayed_back_channel_rtp_and_sdp() {
        let p = peercam_rtsp::server::BackchannelPacket {
            track: 2,
            channel: 4,
            payload_type: 8,
            seq: (1 << 16) + 513,
            timestamp: 0x0102_0304,
            payload: vec![0xd5; 160],
        };
        let b = rtp(&p, 7);
        let parsed = peercam_rtp::RtpPacket::parse(&b).unwrap();
        assert_eq!(parsed.payload_type(), 8);
        assert_eq!(parsed.sequence(), 513);
        assert_eq!(parsed.timestamp(), 0x0102_0304);
        assert_eq!(parsed.payload(), &[0xd5; 160][..]);
        let feed = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n";
        let out = with_backchannel(feed, &[(0, AudioCodec::Pcmu), (8, AudioCodec::Pcma)]);
        let sd = SessionDescription::parse(out.as_bytes()).unwrap();
        let (control, codecs) = find_backchannel(&sd).unwrap();
        assert_eq!(control, "trackID=2");
        assert_eq!(codecs, vec![(0, AudioCodec::Pcmu), (8, AudioCodec::Pcma)]);
        assert!(out.starts_with("v=0\r\n"));
    }
}
