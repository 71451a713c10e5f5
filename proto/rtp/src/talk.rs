//! Decoding what a viewer says to a camera (intercom, H.626.4 6.1.8): the RTP payloads of
//! the browser's microphone to 16-bit PCM at 8 kHz, the rate of a camera's speaker.
//!
//! G.711 mu-law and A-law expand with [`crate::g711`] (one sample per byte). G.722 decodes
//! with the `audio-codec` crate in its 8 kHz mode, which gives the lower sub-band (0-4 kHz)
//! only: speech stays intelligible, its upper band (4-7 kHz) is dropped. Any byte sequence
//! decodes; payloads over [`MAX_PAYLOAD`] are refused (empty). Needs the `talk` feature.

use audio_codec::g722::{Bitrate, G722Decoder};

use crate::AudioCodec;

/// The rate of the decoded samples, Hz.
pub const RATE: u32 = 8000;

/// The longest payload decoded, bytes: a quarter of a second (browsers send 20 ms, 160
/// bytes, for all three codecs).
pub const MAX_PAYLOAD: usize = 2000;

/// Decodes one viewer's talk payloads, keeping G.722's state between them.
pub struct TalkDecoder {
    codec: AudioCodec,
    g722: Option<G722Decoder>,
}

impl TalkDecoder {
    /// A decoder for `codec`.
    pub fn new(codec: AudioCodec) -> Self {
        // Not packed, 8 kHz output (the lower sub-band).
        let g722 = (codec == AudioCodec::G722)
            .then(|| G722Decoder::with_options(Bitrate::Mode1_64000, false, true));
        Self { codec, g722 }
    }

    /// The codec.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// The samples of one RTP payload at [`RATE`]: one per byte for all three codecs (at
    /// most); empty for a payload over [`MAX_PAYLOAD`].
    pub fn decode(&mut self, payload: &[u8]) -> Vec<i16> {
        if payload.len() > MAX_PAYLOAD {
            return Vec::new();
        }
        let mut pcm = Vec::with_capacity(payload.len());
        match (self.codec.law(), self.g722.as_mut()) {
            (Some(law), _) => law.decode_into(payload, &mut pcm),
            (None, Some(dec)) => pcm.extend(dec.decode_frame(payload).iter().copied()),
            (None, None) => {}
        }
        pcm.truncate(payload.len());
        pcm
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::g711::Law;

    #[test]
    fn h626_6_1_8_g711_talk_decodes_known_values() {
        // G.711 tables: mu-law 0xff/0x7f are zero, 0x80/0x00 the largest magnitudes; A-law
        // 0xd5/0x55 the smallest steps (+-8), 0xaa/0x2a the largest.
        let mut u = TalkDecoder::new(AudioCodec::Pcmu);
        assert_eq!(
            u.decode(&[0xff, 0x7f, 0x80, 0x00]),
            vec![0, 0, 32_124, -32_124]
        );
        assert_eq!(u.decode(&[0xf0, 0x70, 0xef]), vec![120, -120, 132]);
        let mut a = TalkDecoder::new(AudioCodec::Pcma);
        assert_eq!(
            a.decode(&[0xd5, 0x55, 0xaa, 0x2a]),
            vec![8, -8, 32_256, -32_256]
        );
        assert!(u.decode(&vec![0; MAX_PAYLOAD + 1]).is_empty());
        assert_eq!(u.decode(&vec![0xff; MAX_PAYLOAD]).len(), MAX_PAYLOAD);
    }

    #[test]
    fn h626_6_1_8_g722_talk_keeps_a_1khz_tone() {
        use audio_codec::Encoder as _;
        // 200 ms of 1 kHz at 16 kHz, G.722 encoded: 1600 bytes.
        let wide: Vec<i16> = (0..3200)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 16_000.0).sin())
                    as i16
            })
            .collect();
        let mut enc = audio_codec::g722::G722Encoder::new();
        let mut bytes = vec![0u8; 1700];
        let n = enc.encode_into(&wide, &mut bytes).unwrap();
        bytes.truncate(n);
        assert_eq!(n, 1600);
        let mut d = TalkDecoder::new(AudioCodec::G722);
        let pcm: Vec<i16> = bytes.chunks(160).flat_map(|c| d.decode(c)).collect();
        assert_eq!(pcm.len(), 1600);
        // After the codec settles, the 1 kHz bin dominates.
        let tail = &pcm[400..];
        let tone = goertzel(tail, 1000.0);
        for other in [300.0, 600.0, 1500.0, 2500.0, 3500.0] {
            let o = goertzel(tail, other);
            assert!(tone > 50.0 * o, "1 kHz {tone} vs {other} Hz {o}");
        }
    }

    /// Power of `pcm` (8 kHz) at `f` Hz (Goertzel).
    fn goertzel(pcm: &[i16], f: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * f / f64::from(RATE);
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in pcm {
            let s = f64::from(x) + c * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - c * s1 * s2
    }

    proptest! {
        /// G.711 talk round trip with the encoder: a sample encoded and talk-decoded is a
        /// fixed point of encode-then-decode, and within the quantisation of its segment
        /// (an eighth of its magnitude, plus the smallest steps near zero).
        #[test]
        fn h626_6_1_8_g711_talk_round_trip(pcm in proptest::collection::vec(any::<i16>(), 0..400), alaw in any::<bool>()) {
            let (codec, law) = if alaw { (AudioCodec::Pcma, Law::ALaw) } else { (AudioCodec::Pcmu, Law::MuLaw) };
            let mut codes = Vec::new();
            law.encode_into(&pcm, &mut codes);
            let mut d = TalkDecoder::new(codec);
            let back = d.decode(&codes);
            prop_assert_eq!(back.len(), pcm.len());
            for (s, b) in pcm.iter().zip(&back) {
                prop_assert_eq!(law.decode(law.encode(*b)), *b);
                let err = (i32::from(*s) - i32::from(*b)).abs();
                prop_assert!(err <= i32::from(s.unsigned_abs()) / 8 + 140, "{} -> {} ({:?})", s, b, codec);
            }
        }

        /// Any payload decodes without panic, at most one sample per byte, for all codecs.
        #[test]
        fn h626_6_1_8_talk_decodes_any_bytes(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..6)) {
            for codec in AudioCodec::ALL {
                let mut d = TalkDecoder::new(codec);
                for p in &payloads {
                    let pcm = d.decode(p);
                    prop_assert!(pcm.len() <= p.len());
                    if codec != AudioCodec::G722 {
                        prop_assert_eq!(pcm.len(), p.len());
                    }
                }
            }
        }
    }
}
