//! The synthetic camera's sound: a steady 440 Hz tone with a 1 kHz pip at every second of the
//! wall clock, encoded in 20 ms frames as G.711 (mu-law or A-law) or G.722 (H.626.4 6.3.2).

use audio_codec::Encoder as _;
use peercam_signal::play::AudioCodec;

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
        match self.codec {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
            _ => 9,
        }
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
}
