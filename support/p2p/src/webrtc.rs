//! A send-side WebRTC endpoint for browsers ([`str0m`], sans-IO, driven here by tokio): the
//! camera's live view and a recorder's playback (H.626.4 6.3.1, 8.4, 8.7.2.2).
//!
//! [`Endpoint::answer`] binds one UDP socket on the unit's LAN address, gathers a host and
//! (with a STUN server, the MTU's) a server-reflexive candidate, and answers a browser's
//! receive-only offer with H.264 and, when asked, G.711/G.722 audio and the offer's data
//! channel. When the caller allows talk ([`EndpointConfig::talk`], H.626.4 6.1.8) and the
//! browser offers its microphone (audio `sendrecv`), the audio is answered `sendrecv` and what
//! the browser sends comes out as [`Happening::Audio`]; otherwise the audio is answered
//! `sendonly` as for a receive-only offer. The unit's session task then loops:
//!
//! ```text
//! loop {
//!     for h in ep.drain()? { ... }          // transmits sent, events returned
//!     select! {
//!         r = ep.wait() => r?,              // one datagram or the engine's timeout
//!         au = frames.recv() => ep.send_video(&au, t90k)?,
//!     }
//! }
//! ```
//!
//! which keeps str0m's rule of draining its output after every input. [`Endpoint::wait`] is
//! cancel-safe: a datagram is fed only once it has been read whole.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use peercam_signal::play::AudioCodec;
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::Error;

/// The longest SDP offer accepted.
pub const MAX_OFFER: usize = 32 * 1024;

/// How to answer.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The address to bind (the unit's LAN address; the browser reaches it directly or
    /// through its TURN relay).
    pub bind_ip: IpAddr,
    /// A STUN server for a server-reflexive candidate.
    pub stun: Option<SocketAddr>,
    /// The audio codec to offer, if any.
    pub audio: Option<AudioCodec>,
    /// How long to wait for the STUN server.
    pub stun_timeout: Duration,
    /// Whether the viewer may talk (H.626.4 6.1.8): answer an audio `sendrecv` offer with
    /// `sendrecv` and surface the audio received. When `false`, the audio is answered
    /// `sendonly` (the browser's microphone is declined) whatever the offer says.
    pub talk: bool,
}

/// One audio packet the browser sent (talk, H.626.4 6.1.8): an RTP payload of a codec the
/// answer accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalkPacket {
    /// The payload's codec.
    pub codec: AudioCodec,
    /// The RTP payload type it came with.
    pub pt: u8,
    /// The RTP timestamp (8 kHz for all three codecs).
    pub rtp_ts: u32,
    /// The RTP sequence number, extended to 64 bits (it only grows).
    pub seq: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// What the session task learns from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// ICE and DTLS are up: media may flow.
    Connected,
    /// The browser lost a picture (PLI/FIR): send an IDR.
    KeyframeRequest,
    /// A text message on the data channel.
    Text(String),
    /// The browser went away (ICE disconnected, DTLS closed).
    Closed,
    /// The browser's microphone: one audio packet (only when talk was answered).
    Audio(TalkPacket),
}

/// One browser's WebRTC session.
pub struct Endpoint {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Option<(Mid, Pt)>,
    audio: Option<(Mid, Pt)>,
    audio_mid: Option<Mid>,
    audio_codec: Option<AudioCodec>,
    talk: bool,
    channel: Option<ChannelId>,
    deadline: Instant,
    connected: bool,
    closed: bool,
    buf: Vec<u8>,
}

fn webrtc_err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::WebRtc(format!("{context}: {e}"))
}

impl Endpoint {
    /// Answers `offer`; returns the endpoint and the SDP answer.
    pub async fn answer(offer: &str, config: &EndpointConfig) -> Result<(Self, String), Error> {
        if offer.len() > MAX_OFFER {
            return Err(Error::WebRtc("the SDP offer is too long".into()));
        }
        let kinds: Vec<&str> = offer
            .lines()
            .filter_map(|l| l.strip_prefix("a=candidate:"))
            .filter_map(|c| c.split(' ').skip_while(|w| *w != "typ").nth(1))
            .collect();
        tracing::debug!(candidates = ?kinds, "WebRTC offer");
        // The answer's directions are the offer's inverted: a microphone not allowed is
        // declined by reading the offer's audio as receive-only.
        let talk = config.talk && offers_microphone(offer);
        let offer = if talk {
            std::borrow::Cow::Borrowed(offer)
        } else {
            std::borrow::Cow::Owned(decline_microphone(offer))
        };
        let offer = SdpOffer::from_sdp_string(&offer)
            .map_err(|e| webrtc_err("the offer does not parse", e))?;
        let socket = UdpSocket::bind(SocketAddr::new(config.bind_ip, 0)).await?;
        let local = socket.local_addr()?;
        let candidates = crate::gather(&socket, config.stun, config.stun_timeout).await?;
        let a = config.audio;
        // Talk without the camera's own audio still needs a codec on the audio line: G.711.
        let talk_only = talk && a.is_none();
        let mut rtc_config = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_pcmu(a == Some(AudioCodec::Pcmu) || talk_only, false)
            .enable_pcma(a == Some(AudioCodec::Pcma) || talk_only, false)
            .enable_g722(a == Some(AudioCodec::G722), false);
        // Checks start before the browser's TURN permissions exist, so the first ones are
        // lost: retry fast (50 ms, doubling to at most 1 s) instead of str0m's 250 ms
        // doubling to 3 s, or the pair comes up hundreds of milliseconds late.
        rtc_config.set_initial_stun_rto(Duration::from_millis(50));
        rtc_config.set_max_stun_rto(Duration::from_millis(1000));
        let mut rtc = rtc_config.build(Instant::now());
        for c in &candidates {
            let cand = match c.related {
                Some(base) => Candidate::server_reflexive(c.addr, base, "udp"),
                None => Candidate::host(c.addr, "udp"),
            };
            match cand {
                Ok(cand) => {
                    rtc.add_local_candidate(cand);
                }
                Err(e) => tracing::debug!(addr = %c.addr, error = %e, "candidate skipped"),
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| webrtc_err("cannot answer the offer", e))?;
        // Start the clock: ICE sends no check of its own before its first timeout, and a
        // camera behind a NAT must send first for the browser's relayed checks to get in.
        rtc.handle_input(Input::Timeout(Instant::now()))
            .map_err(|e| webrtc_err("timeout", e))?;
        tracing::debug!(candidates = ?candidates.iter().map(|c| c.addr).collect::<Vec<_>>(), stun = ?config.stun, "WebRTC answer");
        let ep = Self {
            rtc,
            socket,
            local,
            video: None,
            audio: None,
            audio_mid: None,
            audio_codec: a,
            talk,
            channel: None,
            deadline: Instant::now(),
            connected: false,
            closed: false,
            buf: vec![0u8; 2048],
        };
        Ok((ep, answer.to_sdp_string()))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the answer takes the browser's microphone (talk allowed and offered).
    pub fn talk_answered(&self) -> bool {
        self.talk
    }

    /// Whether the browser accepted a data channel.
    pub fn has_channel(&self) -> bool {
        self.channel.is_some()
    }

    /// Sends what the engine has queued and returns what happened, until it only waits for
    /// time. Call after every input and every send.
    pub fn drain(&mut self) -> Result<Vec<Happening>, Error> {
        let mut out = Vec::new();
        loop {
            if self.closed || !self.rtc.is_alive() {
                if !self.closed {
                    self.closed = true;
                    out.push(Happening::Closed);
                }
                return Ok(out);
            }
            match self
                .rtc
                .poll_output()
                .map_err(|e| webrtc_err("engine", e))?
            {
                Output::Timeout(t) => {
                    self.deadline = t;
                    return Ok(out);
                }
                Output::Transmit(t) => {
                    // A full socket buffer drops the datagram, as the network would.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        self.connected = true;
                        out.push(Happening::Connected);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.closed = true;
                        out.push(Happening::Closed);
                    }
                    Event::MediaAdded(m) => self.media_added(m.mid, m.kind),
                    Event::KeyframeRequest(_) => out.push(Happening::KeyframeRequest),
                    Event::ChannelOpen(id, _) => self.channel = Some(id),
                    Event::ChannelData(d) if !d.binary => {
                        if let Ok(t) = String::from_utf8(d.data) {
                            out.push(Happening::Text(t));
                        }
                    }
                    Event::ChannelClose(id) if self.channel == Some(id) => self.channel = None,
                    Event::MediaData(d) if self.talk && Some(d.mid) == self.audio_mid => {
                        let codec = match d.params.spec().codec {
                            Codec::PCMU => AudioCodec::Pcmu,
                            Codec::PCMA => AudioCodec::Pcma,
                            Codec::G722 => AudioCodec::G722,
                            _ => continue,
                        };
                        out.push(Happening::Audio(TalkPacket {
                            codec,
                            pt: *d.pt,
                            // The RTP timestamp: 32 bits on the wire.
                            rtp_ts: d.time.numer() as u32,
                            seq: **d.seq_range.start(),
                            payload: d.data.to_vec(),
                        }));
                    }
                    _ => {}
                },
            }
        }
    }

    /// Waits for one datagram or the engine's deadline and feeds it. Cancel-safe. Call
    /// [`drain`](Self::drain) afterwards.
    pub async fn wait(&mut self) -> Result<(), Error> {
        if self.closed {
            return std::future::pending().await;
        }
        // Never sleep long on the engine's word: it learns about time only from us.
        let deadline = self
            .deadline
            .min(Instant::now() + Duration::from_millis(500));
        let sleep = tokio::time::sleep_until(deadline.into());
        tokio::select! {
            r = self.socket.recv_from(&mut self.buf) => {
                let (n, source) = r?;
                let Ok(contents) = self.buf[..n].try_into() else { return Ok(()) };
                let input = Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: self.local,
                    contents,
                });
                if self.rtc.accepts(&input) {
                    self.rtc.handle_input(input).map_err(|e| webrtc_err("input", e))?;
                }
            }
            () = sleep => {
                self.rtc
                    .handle_input(Input::Timeout(Instant::now()))
                    .map_err(|e| webrtc_err("timeout", e))?;
            }
        }
        Ok(())
    }

    fn media_added(&mut self, mid: Mid, kind: MediaKind) {
        let Some(w) = self.rtc.writer(mid) else {
            return;
        };
        let params: Vec<PayloadParams> = w.payload_params().cloned().collect();
        match kind {
            MediaKind::Video => {
                // Packetization mode 1, constrained baseline first (what OpenH264 makes).
                let h264 = |p: &&PayloadParams| p.spec().codec == Codec::H264;
                let pick = params
                    .iter()
                    .filter(h264)
                    .filter(|p| p.spec().format.packetization_mode == Some(1))
                    .min_by_key(|p| {
                        let pl = p.spec().format.profile_level_id.unwrap_or(0);
                        u8::from(pl >> 16 != 0x42)
                    })
                    .or_else(|| params.iter().find(h264));
                if let Some(p) = pick {
                    self.video = Some((mid, p.pt()));
                }
            }
            MediaKind::Audio => {
                self.audio_mid = Some(mid);
                let want = match self.audio_codec {
                    Some(AudioCodec::Pcmu) => Codec::PCMU,
                    Some(AudioCodec::Pcma) => Codec::PCMA,
                    Some(AudioCodec::G722) => Codec::G722,
                    None => return,
                };
                if let Some(p) = params.iter().find(|p| p.spec().codec == want) {
                    self.audio = Some((mid, p.pt()));
                }
            }
        }
    }

    /// Sends one H.264 access unit (Annex B) with its 90 kHz media time. Nothing is sent
    /// before the session is connected.
    pub fn send_video(&mut self, annexb: Vec<u8>, t90k: u64) -> Result<(), Error> {
        let Some((mid, pt)) = self.video else {
            return Ok(());
        };
        if !self.connected {
            return Ok(());
        }
        if let Some(w) = self.rtc.writer(mid) {
            w.write(pt, Instant::now(), MediaTime::from_90khz(t90k), annexb)
                .map_err(|e| webrtc_err("video", e))?;
        }
        Ok(())
    }

    /// Sends one audio frame (an RTP payload of the negotiated codec) with its 8 kHz media
    /// time.
    pub fn send_audio(&mut self, payload: Vec<u8>, t8k: u32) -> Result<(), Error> {
        let Some((mid, pt)) = self.audio else {
            return Ok(());
        };
        if !self.connected {
            return Ok(());
        }
        let t = MediaTime::new(u64::from(t8k), Frequency::EIGHT_KHZ);
        if let Some(w) = self.rtc.writer(mid) {
            w.write(pt, Instant::now(), t, payload)
                .map_err(|e| webrtc_err("audio", e))?;
        }
        Ok(())
    }

    /// Sends a text message on the data channel; `false` when there is none or it is full.
    pub fn send_text(&mut self, text: &str) -> bool {
        let Some(id) = self.channel else {
            return false;
        };
        self.rtc
            .channel(id)
            .and_then(|mut c| c.write(false, text.as_bytes()).ok())
            .unwrap_or(false)
    }

    /// Sends a binary message on the data channel; `false` when there is none or it is
    /// full (wait for [`channel_buffered`](Self::channel_buffered) to drop).
    pub fn send_binary(&mut self, data: &[u8]) -> bool {
        let Some(id) = self.channel else {
            return false;
        };
        self.rtc
            .channel(id)
            .and_then(|mut c| c.write(true, data).ok())
            .unwrap_or(false)
    }

    /// Bytes queued on the data channel, not yet acknowledged.
    pub fn channel_buffered(&mut self) -> usize {
        let Some(id) = self.channel else {
            return 0;
        };
        self.rtc.channel(id).map_or(0, |mut c| c.buffered_amount())
    }

    /// Adds a candidate the browser trickled after its offer (RFC 8838; issue 20): a
    /// candidate attribute, `candidate:...`. One this endpoint cannot use (TCP, an mDNS
    /// name, another address family than its socket's) is skipped; `false` says so. Call
    /// [`drain`](Self::drain) afterwards: the new pairs are checked at once.
    pub fn add_remote_candidate(&mut self, line: &str) -> bool {
        let line = line.strip_prefix("a=").unwrap_or(line);
        let Ok(c) = Candidate::from_sdp_string(line) else {
            return false;
        };
        if c.proto() != Protocol::Udp || c.addr().is_ipv4() != self.local.is_ipv4() {
            return false;
        }
        self.rtc.add_remote_candidate(c);
        // Check the new pairs now rather than at the engine's next timeout.
        self.rtc
            .handle_input(Input::Timeout(Instant::now()))
            .is_ok()
    }

    /// Closes the session (DTLS close, then nothing more is sent).
    pub fn close(&mut self) {
        self.rtc.disconnect();
        self.closed = true;
    }
}

/// The lines of `sdp` with the media section each belongs to (`None` before the first
/// `m=`): `Some("audio")`, `Some("video")`, ...
fn sections(sdp: &str) -> impl Iterator<Item = (Option<&str>, &str)> {
    let mut kind = None;
    sdp.split_inclusive('\n').map(move |line| {
        if let Some(rest) = line.strip_prefix("m=") {
            kind = rest.split(' ').next();
        }
        (kind, line)
    })
}

/// The direction attribute of an SDP line, without its line end.
fn direction(line: &str) -> Option<&str> {
    match line.trim_end() {
        d @ ("a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive") => Some(d),
        _ => None,
    }
}

/// Whether an offer's audio sends (its direction `sendrecv` or `sendonly`; an audio section
/// without a direction is `sendrecv`, RFC 4566 6).
pub fn offers_microphone(offer: &str) -> bool {
    let mut audio = false;
    let mut sends = false;
    let mut seen_dir = false;
    for (kind, line) in sections(offer) {
        if line.starts_with("m=") {
            if audio && (sends || !seen_dir) {
                return true;
            }
            audio = kind == Some("audio");
            sends = false;
            seen_dir = false;
        } else if audio && let Some(d) = direction(line) {
            seen_dir = true;
            sends = matches!(d, "a=sendrecv" | "a=sendonly");
        }
    }
    audio && (sends || !seen_dir)
}

/// The offer with its audio sections' sending declined: `sendrecv` read as `recvonly`,
/// `sendonly` as `inactive`, so the answer is `sendonly` or `inactive` for audio.
pub fn decline_microphone(offer: &str) -> String {
    let mut out = String::with_capacity(offer.len() + 16);
    let mut pending_dir = false;
    for (kind, line) in sections(offer) {
        if line.starts_with("m=") {
            if pending_dir {
                out.push_str("a=recvonly\r\n");
            }
            pending_dir = kind == Some("audio");
            out.push_str(line);
            continue;
        }
        if kind == Some("audio")
            && let Some(d) = direction(line)
        {
            pending_dir = false;
            let end = &line[d.len()..];
            out.push_str(match d {
                "a=sendrecv" => "a=recvonly",
                "a=sendonly" => "a=inactive",
                other => other,
            });
            out.push_str(end);
            continue;
        }
        out.push_str(line);
    }
    if pending_dir {
        if !out.ends_with('\n') {
            out.push_str("\r\n");
        }
        out.push_str("a=recvonly\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn h626_6_1_8_microphone_in_the_offer() {
        assert!(offers_microphone(OFFER));
        assert!(!offers_microphone(
            &OFFER.replace("a=sendrecv", "a=recvonly")
        ));
        assert!(offers_microphone(
            &OFFER.replace("a=sendrecv", "a=sendonly")
        ));
        assert!(!offers_microphone(
            &OFFER.replace("a=sendrecv", "a=inactive")
        ));
        // No direction: sendrecv.
        assert!(offers_microphone(&OFFER.replace("a=sendrecv\r\n", "")));
        // A video that sends does not count.
        let v = OFFER
            .replace("a=recvonly", "a=sendrecv")
            .replace("a=mid:1\r\na=sendrecv", "a=mid:1\r\na=recvonly");
        assert!(!offers_microphone(&v));
        assert!(!offers_microphone("v=0\r\n"));
    }

    #[test]
    fn h626_6_1_8_declined_microphone_reads_receive_only() {
        let d = decline_microphone(OFFER);
        assert!(!offers_microphone(&d));
        assert!(d.contains("a=mid:1\r\na=recvonly\r\na=rtpmap"), "{d}");
        // Video untouched.
        assert!(d.contains("a=mid:0\r\na=recvonly\r\nm=audio"), "{d}");
        assert_eq!(d.len(), OFFER.len());
        let d = decline_microphone(&OFFER.replace("a=sendrecv", "a=sendonly"));
        assert!(d.contains("a=inactive"));
        let d = decline_microphone(&OFFER.replace("a=sendrecv\r\n", ""));
        assert!(!offers_microphone(&d), "{d}");
        assert!(d.ends_with("a=recvonly\r\n"));
        // Unchanged when there is nothing to decline.
        let r = OFFER.replace("a=sendrecv", "a=recvonly");
        assert_eq!(decline_microphone(&r), r);
    }

    proptest::proptest! {
        #[test]
        fn h626_6_1_8_declining_never_leaves_a_microphone(s in "(m=(audio|video) 9 X\r\n|a=(sendrecv|sendonly|recvonly|inactive)\r?\n|a=mid:[0-9]\r\n|x\r\n){0,12}") {
            let d = decline_microphone(&s);
            proptest::prop_assert!(!offers_microphone(&d), "{}", d);
            proptest::prop_assert_eq!(decline_microphone(&d), d);
        }
    }
}
