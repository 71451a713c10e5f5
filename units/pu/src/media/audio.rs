//! The camera's sound, one feed per codec shared by every session that asks for it
//! (H.626.4 6.3.2).
//!
//! The synthetic camera's is a steady 440 Hz tone with a 1 kHz pip at every second of the
//! wall clock, encoded in 20 ms frames as G.711 (mu-law or A-law) or G.722. A pulled camera's
//! is the camera's own audio: passed through when the viewer takes the camera's codec,
//! otherwise transcoded between G.711 mu-law, A-law and G.722 ([`Transcoder`], shared with the
//! NVR in `peercam-pull`). A camera's AAC arrives twice: its access units as they came, for
//! RTSP viewers that take AAC ([`AudioHub::subscribe_aac`], forwarded untranscoded with our
//! own timestamps), and decoded by the pull to G.711 mu-law for the others (WebRTC
//! browsers, G.711-only players). Other formats are not re-served: their viewers get no audio
//! track, and the PU logs why.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use audio_codec::Encoder as _;
pub use peercam_pull::audio::Transcoder;
use peercam_pull::{AacConfig, CameraAudio};
use peercam_rtp::AudioCodec;
use tokio::sync::broadcast;

use crate::clock::MediaClock;

/// One encoded 20 ms frame.
pub struct AudioFrame {
    /// The payload for RTP.
    pub payload: Vec<u8>,
    /// RTP timestamp increment per frame is 160 for all three codecs (RFC 3551 gives G.722 an
    /// 8 kHz RTP clock although it samples at 16 kHz).
    pub rtp_ticks: u32,
}

/// A tone generator and encoder for one session.
pub struct AudioSource {
    codec: AudioCodec,
    rate: u32,
    sample: u64,
    g722: Option<audio_codec::g722::G722Encoder>,
}

impl AudioSource {
    /// A source for `codec`.
    pub fn new(codec: AudioCodec) -> Self {
        let rate = match codec {
            AudioCodec::Pcmu | AudioCodec::Pcma => 8000,
            AudioCodec::G722 => 16_000,
        };
        let g722 = (codec == AudioCodec::G722).then(audio_codec::g722::G722Encoder::new);
        Self {
            codec,
            rate,
            sample: 0,
            g722,
        }
    }

    /// RTP payload type (RFC 3551 static types).
    pub fn payload_type(&self) -> u8 {
        payload_type(self.codec)
    }

    /// The codec.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// The next 20 ms; `unix_ms` is the wall-clock time of its first sample.
    pub fn next_frame(&mut self, unix_ms: u64) -> AudioFrame {
        let n = (self.rate / 50) as usize;
        let mut pcm = Vec::with_capacity(n);
        for i in 0..n {
            let t = (self.sample + i as u64) as f64 / f64::from(self.rate);
            let ms_in_second = (unix_ms + (i as u64 * 1000) / u64::from(self.rate)) % 1000;
            let (freq, amp) = if ms_in_second < 100 {
                (1000.0, 12_000.0)
            } else {
                (440.0, 6_000.0)
            };
            pcm.push((amp * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16);
        }
        self.sample += n as u64;
        let payload = match self.codec {
            AudioCodec::Pcmu => pcm
                .iter()
                .map(|s| peercam_rtp::g711::ulaw_encode(*s))
                .collect(),
            AudioCodec::Pcma => pcm
                .iter()
                .map(|s| peercam_rtp::g711::alaw_encode(*s))
                .collect(),
            _ => {
                let enc = self.g722.as_mut();
                let mut out = vec![0u8; n];
                match enc.map(|e| e.encode_into(&pcm, &mut out)) {
                    Some(Ok(len)) => {
                        out.truncate(len);
                        out
                    }
                    _ => vec![0u8; n / 2],
                }
            }
        };
        AudioFrame {
            payload,
            rtp_ticks: 160,
        }
    }
}

/// The RFC 3551 static RTP payload type of a codec.
pub fn payload_type(codec: AudioCodec) -> u8 {
    codec.payload_type()
}

/// One encoded 20 ms frame as every session of its codec sends it.
#[derive(Debug)]
pub struct AudioPacket {
    /// The RTP payload.
    pub payload: Vec<u8>,
    /// The media timestamp (RTP clock, before a session's random offset).
    pub media_ts: u32,
    /// Wall-clock time of the first sample, Unix microseconds.
    pub capture_unix_us: u64,
}

/// One AAC access unit of a pulled camera as every RTSP session taking AAC sends it.
#[derive(Debug)]
pub struct AacPacket {
    /// The raw access unit.
    pub au: Vec<u8>,
    /// The media timestamp (the stream's sample rate, before a session's random offset).
    pub media_ts: u32,
    /// Wall-clock time of its arrival, Unix microseconds.
    pub capture_unix_us: u64,
}

/// A session's view of a pulled camera's AAC.
pub struct AacSubscription {
    /// The access units as they come.
    pub rx: broadcast::Receiver<Arc<AacPacket>>,
    /// The camera's AudioSpecificConfig (the SDP's `config=`).
    pub config: AacConfig,
}

struct Feed {
    tx: broadcast::Sender<Arc<AudioPacket>>,
    stopped: AtomicBool,
    /// A pulled camera's feed: from the camera's codec to this feed's.
    transcoder: Mutex<Option<Transcoder>>,
}

/// A session's view of a running audio feed.
pub struct AudioSubscription {
    /// The frames, every 20 ms.
    pub rx: broadcast::Receiver<Arc<AudioPacket>>,
    /// The codec.
    pub codec: AudioCodec,
    _feed: Arc<Feed>,
}

/// One tone generator and encoder per codec, shared by every session that asks for it (as
/// the video encoders are per profile): a viewer costs a header per packet, not an encoder.
/// For a pulled camera, one transcoder per codec fed by the pull.
pub struct AudioHub {
    feeds: Mutex<HashMap<AudioCodec, Weak<Feed>>>,
    clock: Arc<MediaClock>,
    /// `Some` when the audio is a pulled camera's.
    pulled: Option<Mutex<Pulled>>,
    /// A pulled AAC camera's access units, to the sessions that take AAC.
    aac: broadcast::Sender<Arc<AacPacket>>,
}

/// What a pulled camera sends, and the media clock of its feeds.
#[derive(Default)]
struct Pulled {
    /// The camera's audio as its last connection described it.
    camera: Option<CameraAudio>,
    /// Camera time (8 kHz) and our media time at the first frame of this connection.
    base: Option<(u64, u32)>,
    /// Our media time after the last frame, where the next connection continues.
    next_ts: u32,
    /// The camera's AAC configuration, when its audio is AAC.
    aac: Option<AacConfig>,
    /// As `base` and `next_ts`, for the AAC access units (the stream's sample rate).
    aac_base: Option<(u64, u32)>,
    aac_next: u32,
}

impl AudioHub {
    /// A hub stamping capture times from `clock`.
    pub fn new(clock: Arc<MediaClock>) -> Self {
        Self {
            feeds: Mutex::new(HashMap::new()),
            clock,
            pulled: None,
            aac: broadcast::channel(64).0,
        }
    }

    /// A hub for a pulled camera: its feeds carry what [`AudioHub::publish_pulled`] gets.
    pub fn pulled(clock: Arc<MediaClock>) -> Self {
        Self {
            pulled: Some(Mutex::new(Pulled::default())),
            ..Self::new(clock)
        }
    }

    /// A pulled camera (re)connected, offering `audio` (and `aac`, its configuration when
    /// the camera's own audio is AAC): feeds transcode from its codec now.
    pub fn camera_started(&self, audio: Option<CameraAudio>, aac: Option<AacConfig>) {
        let Some(pulled) = &self.pulled else { return };
        let mut st = pulled.lock().unwrap_or_else(PoisonError::into_inner);
        st.aac = aac;
        st.aac_base = None;
        if let Some(CameraAudio::Unsupported(name)) = &audio {
            tracing::warn!(
                format = %name,
                "the pulled camera's audio is not G.711, G.722 or AAC-LC: it is not re-served, \
                 its viewers get video only"
            );
        }
        st.camera = audio;
        st.base = None;
        let from = match &st.camera {
            Some(CameraAudio::Codec(c)) => Some(*c),
            _ => None,
        };
        for (codec, feed) in self
            .feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if let Some(feed) = feed.upgrade() {
                *feed
                    .transcoder
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    from.map(|f| Transcoder::new(f, *codec));
            }
        }
    }

    /// The pulled camera was lost; the next connection starts a new timeline.
    pub fn camera_lost(&self) {
        if let Some(pulled) = &self.pulled {
            let mut st = pulled.lock().unwrap_or_else(PoisonError::into_inner);
            st.base = None;
            st.aac_base = None;
        }
    }

    /// One AAC access unit of the pulled camera (`pts` in samples since its connection
    /// started), to the RTSP sessions that take AAC, untranscoded.
    pub fn publish_pulled_aac(&self, au: &[u8], pts: u64) {
        let Some(pulled) = &self.pulled else { return };
        if self.aac.receiver_count() == 0 {
            return;
        }
        let media_ts = {
            let mut st = pulled.lock().unwrap_or_else(PoisonError::into_inner);
            let frame = st.aac.as_ref().map_or(1024, |c| c.frame_length);
            let next = st.aac_next;
            let (origin, offset) = *st.aac_base.get_or_insert((pts, next));
            let ts = if pts >= origin {
                offset.wrapping_add(((pts - origin) & 0xffff_ffff) as u32)
            } else {
                st.aac_base = Some((pts, next));
                next
            };
            st.aac_next = ts.wrapping_add(frame);
            ts
        };
        let _ = self.aac.send(Arc::new(AacPacket {
            au: au.to_vec(),
            media_ts,
            capture_unix_us: self.clock.now_us(),
        }));
    }

    /// The pulled camera's AAC as it came, when its audio is AAC (H.626.4 6.3.2: a viewer
    /// that takes the camera's codec gets it untranscoded).
    pub fn subscribe_aac(&self) -> Option<AacSubscription> {
        let pulled = self.pulled.as_ref()?;
        let config = pulled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .aac
            .clone()?;
        Some(AacSubscription {
            rx: self.aac.subscribe(),
            config,
        })
    }

    /// One audio frame of the pulled camera (its codec, 8 kHz time since its connection
    /// started): to every feed, passed through or transcoded.
    pub fn publish_pulled(&self, data: &[u8], pts_8k: u64) {
        let Some(pulled) = &self.pulled else { return };
        let media_ts = {
            let mut st = pulled.lock().unwrap_or_else(PoisonError::into_inner);
            let next = st.next_ts;
            let (origin, offset) = *st.base.get_or_insert((pts_8k, next));
            // Camera time only moves on; a step back restarts the mapping here.
            let ts = if pts_8k >= origin {
                offset.wrapping_add(((pts_8k - origin) & 0xffff_ffff) as u32)
            } else {
                st.base = Some((pts_8k, next));
                next
            };
            st.next_ts = ts.wrapping_add(u32::try_from(data.len()).unwrap_or(0));
            ts
        };
        let capture_unix_us = self.clock.now_us();
        let feeds: Vec<Arc<Feed>> = self
            .feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for feed in feeds {
            let payload = match feed
                .transcoder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                Some(t) => t.convert(data),
                None => continue,
            };
            let _ = feed.tx.send(Arc::new(AudioPacket {
                payload,
                media_ts,
                capture_unix_us,
            }));
        }
    }

    /// Subscribes to `codec`'s feed, starting it if needed; `None` for no audio (or a pulled
    /// camera without G.711 or G.722 audio).
    pub fn subscribe(
        &self,
        codec: Option<AudioCodec>,
    ) -> Result<Option<AudioSubscription>, super::hub::MediaError> {
        let Some(codec) = codec else {
            return Ok(None);
        };
        let to = codec;
        let mut map = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, w| {
            w.upgrade()
                .is_some_and(|f| !f.stopped.load(Ordering::Acquire))
        });
        if let Some(pulled) = &self.pulled {
            let from = match &pulled.lock().unwrap_or_else(PoisonError::into_inner).camera {
                Some(CameraAudio::Codec(c)) => *c,
                _ => return Ok(None),
            };
            let feed = match map.get(&codec).and_then(Weak::upgrade) {
                Some(f) => f,
                None => {
                    let (tx, _) = broadcast::channel(32);
                    let feed = Arc::new(Feed {
                        tx,
                        stopped: AtomicBool::new(false),
                        transcoder: Mutex::new(Some(Transcoder::new(from, to))),
                    });
                    map.insert(codec, Arc::downgrade(&feed));
                    feed
                }
            };
            return Ok(Some(AudioSubscription {
                rx: feed.tx.subscribe(),
                codec,
                _feed: feed,
            }));
        }
        let feed = match map.get(&codec).and_then(Weak::upgrade) {
            Some(f) => f,
            None => {
                let source = AudioSource::new(codec);
                let (tx, _) = broadcast::channel(32);
                let feed = Arc::new(Feed {
                    tx,
                    stopped: AtomicBool::new(false),
                    transcoder: Mutex::new(None),
                });
                let worker = feed.clone();
                let clock = self.clock.clone();
                std::thread::Builder::new()
                    .name(format!("audio-{codec:?}"))
                    .spawn(move || run_feed(&worker, source, &clock))
                    .map_err(super::hub::MediaError::AudioThread)?;
                map.insert(codec, Arc::downgrade(&feed));
                feed
            }
        };
        Ok(Some(AudioSubscription {
            rx: feed.tx.subscribe(),
            codec,
            _feed: feed,
        }))
    }
}

/// Makes a frame every 20 ms by the clock (no drift) until nobody listened for 3 s.
fn run_feed(feed: &Feed, mut source: AudioSource, clock: &MediaClock) {
    let start = Instant::now();
    let mut media_ts: u32 = 0;
    let mut idle_since: Option<Instant> = None;
    for n in 0u32.. {
        let due = start + Duration::from_millis(20) * n;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if feed.tx.receiver_count() == 0 {
            if idle_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(3) {
                break;
            }
        } else {
            idle_since = None;
        }
        let capture_unix_us = clock.now_us();
        let frame = source.next_frame(capture_unix_us / 1000);
        let _ = feed.tx.send(Arc::new(AudioPacket {
            payload: frame.payload,
            media_ts,
            capture_unix_us,
        }));
        media_ts = media_ts.wrapping_add(frame.rtp_ticks);
    }
    feed.stopped.store(true, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_reference_points() {
        use peercam_rtp::g711::{alaw_encode, ulaw_encode};
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_encode(-1), 0x7f);
        assert_eq!(ulaw_encode(32_767), 0x80);
        assert_eq!(ulaw_encode(-32_768), 0x00);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_encode(-8), 0x55);
        assert_eq!(alaw_encode(32_767), 0xaa);
        assert_eq!(alaw_encode(-32_768), 0x2a);
    }

    #[test]
    fn frames_have_the_right_sizes() {
        for (codec, bytes) in [
            (AudioCodec::Pcmu, 160),
            (AudioCodec::Pcma, 160),
            (AudioCodec::G722, 160),
        ] {
            let mut src = AudioSource::new(codec);
            let f = src.next_frame(0);
            assert_eq!(f.payload.len(), bytes, "{codec:?}");
            assert_eq!(f.rtp_ticks, 160);
        }
    }

    #[test]
    fn pulled_feeds_follow_the_camera() {
        let hub = AudioHub::pulled(Arc::new(MediaClock::new(0)));
        assert!(
            hub.subscribe(Some(AudioCodec::Pcmu)).expect("ok").is_none(),
            "no audio before the camera says what it sends"
        );
        hub.camera_started(Some(CameraAudio::Unsupported("mpeg4-generic".into())), None);
        assert!(
            hub.subscribe(Some(AudioCodec::Pcmu)).expect("ok").is_none(),
            "audio the pull cannot decode is not re-served"
        );
        hub.camera_started(Some(CameraAudio::Codec(AudioCodec::Pcmu)), None);
        let mut u = hub
            .subscribe(Some(AudioCodec::Pcmu))
            .expect("ok")
            .expect("feed");
        let mut a = hub
            .subscribe(Some(AudioCodec::Pcma))
            .expect("ok")
            .expect("feed");
        hub.publish_pulled(&[0xff; 160], 1000);
        hub.publish_pulled(&[0xff; 160], 1160);
        let x = u.rx.try_recv().expect("frame");
        assert_eq!(x.payload, vec![0xff; 160], "passed through");
        let y = a.rx.try_recv().expect("frame");
        assert_eq!(
            y.payload,
            vec![0xd5; 160],
            "mu-law silence is A-law silence"
        );
        assert_eq!(x.media_ts, y.media_ts);
        let next = u.rx.try_recv().expect("frame");
        assert_eq!(next.media_ts.wrapping_sub(x.media_ts), 160);
        // A new connection restarts the camera's clock; ours goes on.
        hub.camera_lost();
        hub.camera_started(Some(CameraAudio::Codec(AudioCodec::G722)), None);
        hub.publish_pulled(&[0x80; 160], 0);
        let after = u.rx.try_recv().expect("frame");
        assert_eq!(after.media_ts.wrapping_sub(next.media_ts), 160);
        assert_eq!(after.payload.len(), 160);
    }

    #[tokio::test]
    async fn sessions_share_one_feed_per_codec() {
        let hub = AudioHub::new(Arc::new(MediaClock::new(0)));
        let mut a = hub
            .subscribe(Some(AudioCodec::Pcma))
            .expect("thread")
            .expect("codec");
        let mut b = hub
            .subscribe(Some(AudioCodec::Pcma))
            .expect("thread")
            .expect("codec");
        let x = a.rx.recv().await.expect("frame");
        let y = b.rx.recv().await.expect("frame");
        assert!(Arc::ptr_eq(&x, &y), "one encoder, shared frames");
        let next = a.rx.recv().await.expect("frame");
        assert_eq!(next.media_ts.wrapping_sub(x.media_ts), 160);
        assert!(hub.subscribe(None).expect("ok").is_none());
    }
}
