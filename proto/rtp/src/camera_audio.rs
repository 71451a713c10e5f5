//! A camera's audio made into what viewers and recorders take (H.626.4 6.3.2): transcoding
//! between G.711 mu-law, A-law and G.722 ([`Transcoder`]), and AAC-LC decoded to G.711 at
//! 8 kHz ([`AacToG711`]). Shared by the PU (re-served cameras) and the NVR (recording),
//! through `peercam-pull`. Feature `camera-audio`.
//!
//! AAC comes from the camera as RTP `mpeg4-generic` (RFC 3640); [`crate::aac`] reads its
//! AU headers into whole access units, and the SDP's `config=` is the AudioSpecificConfig.
//! Decoding is `symphonia-codec-aac` (pure Rust, AAC-LC, mono or stereo; HE-AAC is refused
//! when the decoder is made, so such a camera's audio is reported as unsupported).

use crate::g711::Law;
use crate::{AudioCodec, Error};
use audio_codec::Encoder as _;
use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder as _, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration as SymDuration, Timestamp};

/// Decodes a camera's AAC-LC access units to G.711 at 8 kHz, mono: channels averaged, the
/// rate brought down by averaging the input samples of each 8 kHz period (a simple
/// low-pass; speech and tones stay clear below 4 kHz).
pub struct AacToG711 {
    dec: symphonia_codec_aac::AacDecoder,
    law: Law,
    down: Downsampler,
    pcm: Vec<f32>,
}

impl std::fmt::Debug for AacToG711 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacToG711")
            .field("law", &self.law)
            .field("rate", &self.down.rate)
            .finish_non_exhaustive()
    }
}

impl AacToG711 {
    /// A decoder for the stream described by `config` (the AudioSpecificConfig, RFC 3640
    /// `config=`), writing `to` (G.711 mu-law or A-law).
    ///
    /// # Errors
    /// [`Error::Malformed`] when the decoder does not take the configuration (not AAC-LC,
    /// HE-AAC, more than two channels, a missing or bad AudioSpecificConfig).
    pub fn new(config: &[u8], to: Law) -> Result<Self, Error> {
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(config.to_vec().into_boxed_slice());
        let dec = std::panic::catch_unwind(|| {
            symphonia_codec_aac::AacDecoder::try_new(&params, &AudioDecoderOptions::default())
        })
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| config_error("not an AAC-LC mono or stereo configuration"))?;
        let rate = dec.codec_params().sample_rate.unwrap_or(0);
        if !(8000..=96_000).contains(&rate) {
            return Err(config_error("sample rate outside 8 to 96 kHz"));
        }
        Ok(Self {
            dec,
            law: to,
            down: Downsampler::new(rate),
            pcm: Vec::new(),
        })
    }

    /// The stream's sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.down.rate
    }

    /// One AAC access unit to G.711 bytes (one per 8 kHz tick; about 1024 x 8000 / rate).
    ///
    /// # Errors
    /// [`Error::Malformed`] when the access unit does not decode; the next may.
    pub fn decode(&mut self, au: &[u8]) -> Result<Vec<u8>, Error> {
        let (pcm, dec) = (&mut self.pcm, &mut self.dec);
        pcm.clear();
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let packet = PacketRef::new(0, Timestamp::new(0), SymDuration::new(1024), au);
            dec.decode_ref(&packet).map(|buf| {
                let channels = buf.num_planes().max(1);
                buf.copy_to_vec_interleaved(pcm);
                channels
            })
        }));
        let channels = match decoded {
            Ok(Ok(c)) => c,
            Ok(Err(_)) => return Err(frame_error()),
            Err(_) => {
                self.dec.reset();
                return Err(frame_error());
            }
        };
        let mut out = Vec::with_capacity(self.pcm.len() * 8000 / self.down.rate as usize + 2);
        for frame in self.pcm.chunks_exact(channels) {
            let mono = frame.iter().sum::<f32>() / channels as f32;
            if let Some(s) = self.down.push(mono) {
                out.push(match self.law {
                    Law::MuLaw => crate::g711::ulaw_encode(s),
                    Law::ALaw => crate::g711::alaw_encode(s),
                });
            }
        }
        Ok(out)
    }
}

fn config_error(reason: &'static str) -> Error {
    Error::Malformed {
        context: "AAC AudioSpecificConfig",
        offset: 0,
        reason,
    }
}

fn frame_error() -> Error {
    Error::Malformed {
        context: "AAC access unit",
        offset: 0,
        reason: "not a decodable AAC-LC access unit",
    }
}

/// From `rate` to 8 kHz: each output sample is the mean of the input samples of its 8 kHz
/// period (exact for rates that are not multiples of 8 kHz too: the phase carries over).
#[derive(Debug, Clone)]
pub struct Downsampler {
    rate: u32,
    /// Input samples times 8000, modulo `rate`, since the last output.
    phase: u32,
    acc: f32,
    n: u32,
}

impl Downsampler {
    /// From `rate` Hz (at least 8000).
    pub fn new(rate: u32) -> Self {
        Self {
            rate: rate.max(8000),
            phase: 0,
            acc: 0.0,
            n: 0,
        }
    }

    /// One input sample (full scale 1.0); an output sample when an 8 kHz period is complete.
    pub fn push(&mut self, x: f32) -> Option<i16> {
        self.acc += x;
        self.n += 1;
        self.phase += 8000;
        if self.phase < self.rate {
            return None;
        }
        self.phase -= self.rate;
        let mean = self.acc / self.n.max(1) as f32;
        self.acc = 0.0;
        self.n = 0;
        Some((mean * 32_767.0).clamp(-32_768.0, 32_767.0) as i16)
    }
}

/// Converts a pulled camera's audio frames to a viewer's codec: passes them through when the
/// codecs agree, otherwise decodes to 8 kHz PCM and encodes again (G.711 mu-law, A-law,
/// G.722; H.626.4 6.3.2). Every codec has one byte per 8 kHz tick, so a frame keeps its
/// length and timestamps carry over unchanged.
pub struct Transcoder {
    from: AudioCodec,
    to: AudioCodec,
    g722_dec: Option<audio_codec::g722::G722Decoder>,
    g722_enc: Option<audio_codec::g722::G722Encoder>,
    /// The last 8 kHz sample, for interpolating across frames when going to 16 kHz.
    last: i16,
}

impl Transcoder {
    /// From `from` to `to`.
    pub fn new(from: AudioCodec, to: AudioCodec) -> Self {
        let recode = from != to;
        Self {
            from,
            to,
            // The decoder's 8 kHz mode gives the lower sub-band (0-4 kHz) at 8 kHz.
            g722_dec: (recode && from == AudioCodec::G722).then(|| {
                audio_codec::g722::G722Decoder::with_options(
                    audio_codec::g722::Bitrate::Mode1_64000,
                    false,
                    true,
                )
            }),
            g722_enc: (recode && to == AudioCodec::G722).then(audio_codec::g722::G722Encoder::new),
            last: 0,
        }
    }

    /// Whether frames pass through unchanged.
    pub fn is_passthrough(&self) -> bool {
        self.from == self.to
    }

    /// One frame in `from`'s codec to `to`'s.
    pub fn convert(&mut self, data: &[u8]) -> Vec<u8> {
        if self.from == self.to {
            return data.to_vec();
        }
        let mut pcm = Vec::with_capacity(data.len());
        match (self.from.law(), self.g722_dec.as_mut()) {
            (Some(law), _) => law.decode_into(data, &mut pcm),
            (None, Some(dec)) => pcm = dec.decode_frame(data),
            (None, None) => pcm.resize(data.len(), 0),
        }
        pcm.resize(data.len(), 0);
        match (self.to.law(), self.g722_enc.as_mut()) {
            (Some(law), _) => {
                let mut out = Vec::with_capacity(pcm.len());
                law.encode_into(&pcm, &mut out);
                out
            }
            (None, Some(enc)) => {
                // 8 to 16 kHz by linear interpolation, then G.722 (two samples a byte).
                let mut wide = Vec::with_capacity(pcm.len() * 2);
                for &s in &pcm {
                    wide.push(((i32::from(self.last) + i32::from(s)) / 2) as i16);
                    wide.push(s);
                    self.last = s;
                }
                let mut out = vec![0u8; pcm.len() + 1];
                match enc.encode_into(&wide, &mut out) {
                    Ok(n) => out.truncate(n.min(pcm.len())),
                    Err(_) => out.clear(),
                }
                out.resize(pcm.len(), 0);
                out
            }
            (None, None) => vec![0; pcm.len()],
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Zero crossings per second of `pcm` at `rate`, halved: the frequency of a pure tone.
    fn tone_hz(pcm: &[i16], rate: u32) -> f64 {
        let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        crossings as f64 / 2.0 / (pcm.len() as f64 / f64::from(rate))
    }

    #[test]
    fn h626_6_3_2_pulled_audio_is_transcoded_between_g711_and_g722() {
        let tone: Vec<i16> = (0..8000)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 8000.0).sin())
                    as i16
            })
            .collect();
        let mut alaw = Vec::new();
        Law::ALaw.encode_into(&tone, &mut alaw);
        for to in [AudioCodec::Pcma, AudioCodec::Pcmu, AudioCodec::G722] {
            let mut t = Transcoder::new(AudioCodec::Pcma, to);
            assert_eq!(t.is_passthrough(), to == AudioCodec::Pcma);
            let out: Vec<u8> = alaw.chunks(160).flat_map(|f| t.convert(f)).collect();
            assert_eq!(out.len(), alaw.len(), "{to:?}: one byte per 8 kHz tick");
            let (pcm, rate) = match to.law() {
                Some(law) => {
                    let mut pcm = Vec::new();
                    law.decode_into(&out, &mut pcm);
                    (pcm, 8000)
                }
                None => (
                    audio_codec::g722::G722Decoder::new().decode_frame(&out),
                    16_000,
                ),
            };
            // Past the codec's start-up, the tone is the camera's.
            let hz = tone_hz(&pcm[pcm.len() / 4..], rate);
            assert!((hz - 1000.0).abs() < 15.0, "{to:?}: {hz} Hz");
        }
        // And back from G.722 to G.711.
        let mut enc = Transcoder::new(AudioCodec::Pcma, AudioCodec::G722);
        let g722: Vec<u8> = alaw.chunks(160).flat_map(|f| enc.convert(f)).collect();
        let mut dec = Transcoder::new(AudioCodec::G722, AudioCodec::Pcmu);
        let ulaw: Vec<u8> = g722.chunks(160).flat_map(|f| dec.convert(f)).collect();
        let mut pcm = Vec::new();
        Law::MuLaw.decode_into(&ulaw, &mut pcm);
        let hz = tone_hz(&pcm[2000..], 8000);
        assert!((hz - 1000.0).abs() < 15.0, "G.722 -> PCMU: {hz} Hz");
    }

    #[test]
    fn downsampling_keeps_the_tone_and_the_length() {
        for rate in [8000u32, 16_000, 22_050, 44_100, 48_000] {
            let mut d = Downsampler::new(rate);
            let pcm: Vec<i16> = (0..rate)
                .filter_map(|i| {
                    let t = f64::from(i) / f64::from(rate);
                    d.push((0.5 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as f32)
                })
                .collect();
            assert!((7999..=8001).contains(&pcm.len()), "{rate}: {}", pcm.len());
            let hz = tone_hz(&pcm[800..], 8000);
            assert!((hz - 1000.0).abs() < 15.0, "{rate}: {hz} Hz");
        }
    }

    #[test]
    fn aac_configurations_that_cannot_be_decoded_are_refused() {
        // Too short, then HE-AAC (object type 5), then eight channels.
        for bad in [&[0x12u8][..], &[0x2b, 0x8a, 0x08, 0x00], &[0x12, 0x38]] {
            assert!(AacToG711::new(bad, Law::MuLaw).is_err(), "{bad:02x?}");
        }
        // AAC-LC, 16 kHz, mono.
        let mut d = AacToG711::new(&[0x14, 0x08], Law::MuLaw).unwrap();
        assert_eq!(d.sample_rate(), 16_000);
        // Garbage frames are errors, not panics, and the decoder goes on.
        for junk in [&[][..], &[0xff; 7], &[0x00; 300]] {
            let _ = d.decode(junk);
        }
    }

    /// The raw access units of an ADTS file (ISO/IEC 14496-3 1.A.2): 7-byte headers
    /// without CRC, the frame length in 13 bits from bit 30.
    fn adts_frames(b: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 7 <= b.len() {
            let h = &b[at..at + 7];
            assert_eq!((h[0], h[1] & 0xf6), (0xff, 0xf0), "ADTS sync at {at}");
            let len =
                (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
            out.push(&b[at + 7..at + len]);
            at += len;
        }
        out
    }

    #[test]
    fn h626_6_3_2_aac_is_decoded_to_g711_at_8khz() {
        // ffmpeg's AAC-LC, 1 s of 1 kHz, 16 kHz mono (config 0x1408).
        let file = include_bytes!("../testdata/tone_1khz_16k_mono.aac");
        let frames = adts_frames(file);
        assert!(frames.len() >= 15, "{} frames", frames.len());
        for law in [Law::MuLaw, Law::ALaw] {
            let mut d = AacToG711::new(&[0x14, 0x08], law).unwrap();
            let mut g711 = Vec::new();
            for f in &frames {
                let out = d.decode(f).unwrap();
                assert_eq!(out.len(), 512, "1024 samples at 16 kHz are 512 at 8 kHz");
                g711.extend(out);
            }
            let mut pcm = Vec::new();
            law.decode_into(&g711, &mut pcm);
            // Past the decoder's delay (one frame) and the encoder's priming.
            let hz = tone_hz(&pcm[2048..7000], 8000);
            assert!((hz - 1000.0).abs() < 15.0, "{law:?}: {hz} Hz");
            let rms = (pcm[2048..7000]
                .iter()
                .map(|&x| f64::from(x).powi(2))
                .sum::<f64>()
                / 4952.0)
                .sqrt();
            // lavfi's sine peaks at 1/8 of full scale: RMS about 2900.
            assert!(rms > 2000.0, "{law:?}: RMS {rms}");
        }
    }

    proptest::proptest! {
        #[test]
        fn aac_decoding_never_panics(frame in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut d = AacToG711::new(&[0x14, 0x08], Law::ALaw).unwrap();
            if let Ok(out) = d.decode(&frame) {
                proptest::prop_assert!(out.len() <= 513);
            }
        }
    }
}
