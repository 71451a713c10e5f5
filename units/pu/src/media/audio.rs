//! The synthetic camera's sound: a steady 440 Hz tone with a 1 kHz pip at every second of the
//! wall clock, encoded in 20 ms frames as G.711 (mu-law or A-law) or G.722 (H.626.4 6.3.2).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use audio_codec::Encoder as _;
use peercam_signal::play::AudioCodec;
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
    /// A source for `codec` (`None` for [`AudioCodec::None`]).
    pub fn new(codec: AudioCodec) -> Option<Self> {
        let rate = match codec {
            AudioCodec::Pcmu | AudioCodec::Pcma => 8000,
            AudioCodec::G722 => 16_000,
            AudioCodec::None => return None,
        };
        let g722 = (codec == AudioCodec::G722).then(audio_codec::g722::G722Encoder::new);
        Some(Self {
            codec,
            rate,
            sample: 0,
            g722,
        })
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
    match codec {
        AudioCodec::Pcmu => 0,
        AudioCodec::Pcma => 8,
        _ => 9,
    }
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

struct Feed {
    tx: broadcast::Sender<Arc<AudioPacket>>,
    stopped: AtomicBool,
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
pub struct AudioHub {
    feeds: Mutex<HashMap<AudioCodec, Weak<Feed>>>,
    clock: Arc<MediaClock>,
}

impl AudioHub {
    /// A hub stamping capture times from `clock`.
    pub fn new(clock: Arc<MediaClock>) -> Self {
        Self {
            feeds: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Subscribes to `codec`'s feed, starting it if needed; `None` for no audio.
    pub fn subscribe(&self, codec: AudioCodec) -> Result<Option<AudioSubscription>, String> {
        if codec == AudioCodec::None {
            return Ok(None);
        }
        let mut map = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, w| {
            w.upgrade()
                .is_some_and(|f| !f.stopped.load(Ordering::Acquire))
        });
        let feed = match map.get(&codec).and_then(Weak::upgrade) {
            Some(f) => f,
            None => {
                let Some(source) = AudioSource::new(codec) else {
                    return Ok(None);
                };
                let (tx, _) = broadcast::channel(32);
                let feed = Arc::new(Feed {
                    tx,
                    stopped: AtomicBool::new(false),
                });
                let worker = feed.clone();
                let clock = self.clock.clone();
                std::thread::Builder::new()
                    .name(format!("audio-{codec:?}"))
                    .spawn(move || run_feed(&worker, source, &clock))
                    .map_err(|e| format!("cannot start the audio thread: {e}"))?;
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
            let mut src = AudioSource::new(codec).expect("codec");
            let f = src.next_frame(0);
            assert_eq!(f.payload.len(), bytes, "{codec:?}");
            assert_eq!(f.rtp_ticks, 160);
        }
        assert!(AudioSource::new(AudioCodec::None).is_none());
    }

    #[tokio::test]
    async fn sessions_share_one_feed_per_codec() {
        let hub = AudioHub::new(Arc::new(MediaClock::new(0)));
        let mut a = hub
            .subscribe(AudioCodec::Pcma)
            .expect("thread")
            .expect("codec");
        let mut b = hub
            .subscribe(AudioCodec::Pcma)
            .expect("thread")
            .expect("codec");
        let x = a.rx.recv().await.expect("frame");
        let y = b.rx.recv().await.expect("frame");
        assert!(Arc::ptr_eq(&x, &y), "one encoder, shared frames");
        let next = a.rx.recv().await.expect("frame");
        assert_eq!(next.media_ts.wrapping_sub(x.media_ts), 160);
        assert!(hub.subscribe(AudioCodec::None).expect("ok").is_none());
    }
}
