//! A WebRTC viewer built on str0m, standing in for a browser in tests of the camera's live
//! view and the recorders' playback (Chromium drives the same endpoints in the browser
//! tests): receive-only, or sending a microphone's PCMU for talk (H.626.4 6.1.8).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// Why the viewer could not take the device's answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The answer is not SDP.
    #[error("{0}")]
    Sdp(#[from] str0m::error::SdpError),
    /// An answer was taken already.
    #[error("answered twice")]
    Twice,
    /// The answer does not fit the offer.
    #[error("{0}")]
    Rtc(#[from] str0m::RtcError),
}

/// A receive-only WebRTC viewer.
pub struct Viewer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Mid,
    audio: Mid,
    channel: Option<ChannelId>,
    pending: Option<SdpPendingOffer>,
    /// Annex B access units received, with the time they arrived.
    pub frames: Vec<(Instant, Vec<u8>)>,
    /// Audio packets received.
    pub audio_packets: usize,
    /// Their payloads, with the time they arrived.
    pub audio_payloads: Vec<(Instant, Vec<u8>)>,
    /// Text messages received on the data channel.
    pub texts: Vec<String>,
    /// Binary messages received on the data channel.
    pub binaries: Vec<Vec<u8>>,
    /// When ICE and DTLS came up, after the offer was made.
    pub connected_after: Option<Duration>,
    started: Instant,
    /// The camera or recorder went away.
    pub closed: bool,
    /// PCMU payloads to send, one every 20 ms once connected.
    talk: VecDeque<Vec<u8>>,
    next_talk: Instant,
    talk_ts: u32,
    /// Talk payloads sent.
    pub talk_sent: usize,
}

impl Viewer {
    /// Makes an offer for video and audio, and a data channel when `channel`; returns the
    /// viewer and the offer's SDP.
    pub async fn offer(channel: bool) -> (Self, String) {
        Self::offer_with(channel, Direction::RecvOnly).await
    }

    /// Like [`offer`](Self::offer), with the audio `sendrecv`: a microphone for talk.
    pub async fn offer_talk(channel: bool) -> (Self, String) {
        Self::offer_with(channel, Direction::SendRecv).await
    }

    async fn offer_with(channel: bool, audio_dir: Direction) -> (Self, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let local = socket.local_addr().expect("local address");
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_pcmu(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio = api.add_media(MediaKind::Audio, audio_dir, None, None, None);
        if channel {
            api.add_channel("control".into());
        }
        let (offer, pending) = api.apply().expect("offer");
        let v = Self {
            rtc,
            socket,
            local,
            video,
            audio,
            channel: None,
            pending: Some(pending),
            frames: Vec::new(),
            audio_packets: 0,
            audio_payloads: Vec::new(),
            texts: Vec::new(),
            binaries: Vec::new(),
            connected_after: None,
            started: Instant::now(),
            closed: false,
            talk: VecDeque::new(),
            next_talk: Instant::now(),
            talk_ts: 0,
            talk_sent: 0,
        };
        (v, offer.to_sdp_string())
    }

    /// Takes the answer.
    pub fn accept(&mut self, answer: &str) -> Result<(), AcceptError> {
        let answer = SdpAnswer::from_sdp_string(answer)?;
        let pending = self.pending.take().ok_or(AcceptError::Twice)?;
        Ok(self.rtc.sdp_api().accept_answer(pending, answer)?)
    }

    /// Sends a text message on the data channel; `false` before it is open.
    pub fn send_text(&mut self, text: &str) -> bool {
        let Some(id) = self.channel else {
            return false;
        };
        self.rtc
            .channel(id)
            .and_then(|mut c| c.write(false, text.as_bytes()).ok())
            .unwrap_or(false)
    }

    /// Queues PCMU payloads (20 ms each) to send, paced in real time once connected.
    pub fn queue_talk(&mut self, payloads: impl IntoIterator<Item = Vec<u8>>) {
        self.talk.extend(payloads);
    }

    /// Whether the answer accepted the viewer's audio (`sendrecv` or `recvonly` for the
    /// device).
    pub fn talk_accepted(&self) -> bool {
        self.rtc
            .media(self.audio)
            .is_some_and(|m| m.direction().is_sending())
    }

    /// Sends the next talk payload if one is due.
    fn send_talk(&mut self) {
        let now = Instant::now();
        if self.connected_after.is_none() || self.talk.is_empty() || now < self.next_talk {
            return;
        }
        let Some(pt) = self.rtc.writer(self.audio).and_then(|w| {
            w.payload_params()
                .find(|p| p.spec().codec == Codec::PCMU)
                .map(|p| p.pt())
        }) else {
            return;
        };
        let Some(payload) = self.talk.pop_front() else {
            return;
        };
        let t = MediaTime::new(u64::from(self.talk_ts), Frequency::EIGHT_KHZ);
        self.talk_ts = self
            .talk_ts
            .wrapping_add(u32::try_from(payload.len()).unwrap_or(160));
        if let Some(w) = self.rtc.writer(self.audio)
            && w.write(pt, now, t, payload).is_ok()
        {
            self.talk_sent += 1;
        }
        // Paced at 20 ms; after a stall, resume from now rather than burst.
        self.next_talk += Duration::from_millis(20);
        if self.next_talk + Duration::from_millis(100) < now {
            self.next_talk = now;
        }
    }

    /// Whether the data channel is open.
    pub fn channel_open(&self) -> bool {
        self.channel.is_some()
    }

    /// Runs until `done` holds or `within` passed; returns whether `done` held.
    pub async fn run_while(&mut self, within: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let end = Instant::now() + within;
        let mut buf = vec![0u8; 2048];
        loop {
            self.send_talk();
            let deadline = loop {
                if !self.rtc.is_alive() {
                    self.closed = true;
                    return done(self);
                }
                match self.rtc.poll_output().expect("poll") {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Output::Event(e) => match e {
                        Event::Connected => self.connected_after = Some(self.started.elapsed()),
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            self.closed = true;
                        }
                        Event::MediaData(d) if d.mid == self.video => {
                            self.frames.push((Instant::now(), d.data.to_vec()));
                        }
                        Event::MediaData(d) if d.mid == self.audio => {
                            self.audio_packets += 1;
                            self.audio_payloads.push((Instant::now(), d.data.to_vec()));
                        }
                        Event::ChannelOpen(id, _) => self.channel = Some(id),
                        Event::ChannelData(d) if !d.binary => {
                            self.texts
                                .push(String::from_utf8_lossy(&d.data).into_owned());
                        }
                        Event::ChannelData(d) => self.binaries.push(d.data),
                        _ => {}
                    },
                }
            };
            if done(self) || self.closed || Instant::now() >= end {
                return done(self);
            }
            let deadline = if self.talk.is_empty() || self.connected_after.is_none() {
                deadline
            } else {
                deadline.min(self.next_talk)
            };
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(end.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1));
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = r else { continue };
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    });
                    if self.rtc.accepts(&input) {
                        let _ = self.rtc.handle_input(input);
                    }
                }
                () = tokio::time::sleep(wait) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    }

    /// Runs until `frames` video frames arrived in all or `within` passed.
    pub async fn run_until(&mut self, frames: usize, within: Duration) {
        self.run_while(within, |v| v.frames.len() >= frames).await;
    }
}

/// Decodes access units with OpenH264; returns how many gave a picture and the last size.
pub fn decode(frames: &[(Instant, Vec<u8>)]) -> (usize, Option<(usize, usize)>) {
    use openh264::formats::YUVSource as _;
    let Ok(mut dec) = openh264::decoder::Decoder::new() else {
        return (0, None);
    };
    let mut ok = 0;
    let mut size = None;
    for (_, f) in frames {
        if let Ok(Some(y)) = dec.decode(f) {
            ok += 1;
            size = Some(y.dimensions());
        }
    }
    (ok, size)
}
