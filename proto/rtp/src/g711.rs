//! G.711 audio: µ-law and A-law companding (ITU-T G.711) and 20 ms RTP packetization
//! (RFC 3551 4.5.14, 4.5.2).
//!
//! The companders follow the ITU-T reference implementation (G.191 Software Tools Library,
//! `g711.c`: `ulaw_compress`, `ulaw_expand`, `alaw_compress`, `alaw_expand`) bit for bit,
//! on 16-bit linear PCM: µ-law uses the 14 most significant bits, A-law the 13. (The µ-law
//! encoder of Sun's widely copied `g711.c`, also in CPython's `audioop`, rounds 508 negative
//! inputs differently: it negates where G.191 takes the one's complement. The decoders
//! agree.)
//!
//! [`Packetizer`] cuts a stream of samples into frames of 20 ms (160 samples at 8 kHz)
//! with consecutive RTP timestamps. It also frames G.722: RFC 3551 4.5.2 gives G.722 an RTP
//! clock of 8000 Hz although it samples at 16 kHz, so at 64 kbit/s one byte is one
//! timestamp tick, exactly as for G.711. This crate has no G.722 encoder; feed the encoded
//! bytes to [`Packetizer::push_encoded`].

use crate::{Error, Payload};

/// The companding law.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law (North America, Japan); RTP payload type 0, `PCMU`.
    MuLaw,
    /// A-law (Europe, most of the world); RTP payload type 8, `PCMA`.
    ALaw,
}

impl Law {
    /// Compresses one sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Self::MuLaw => ulaw_encode(sample),
            Self::ALaw => alaw_encode(sample),
        }
    }

    /// Expands one code.
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Self::MuLaw => ulaw_decode(code),
            Self::ALaw => alaw_decode(code),
        }
    }

    /// Compresses `pcm`, appending one byte per sample to `out`.
    pub fn encode_into(self, pcm: &[i16], out: &mut Vec<u8>) {
        out.extend(pcm.iter().map(|&s| self.encode(s)));
    }

    /// Expands `codes`, appending one sample per byte to `out`.
    pub fn decode_into(self, codes: &[u8], out: &mut Vec<i16>) {
        out.extend(codes.iter().map(|&c| self.decode(c)));
    }
}

/// The audio payload formats a camera sends, with their RTP and SDP parameters: the
/// workspace's one audio codec type, for RTP, SDP (`peercam_rtsp::sdp` re-exports it), the
/// pull of a camera, the recorders' segments and (with the `serde` feature, by lower-case
/// name) the platform's messages and play tokens, where "no audio" is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AudioCodec {
    /// G.711 µ-law, PT 0, 8000 Hz.
    Pcmu,
    /// G.711 A-law, PT 8, 8000 Hz.
    Pcma,
    /// G.722 at 64 kbit/s (encoded elsewhere), PT 9. Samples at 16 kHz but is signalled as
    /// `G722/8000` (RFC 3551 4.5.2).
    G722,
}

impl AudioCodec {
    /// All three.
    pub const ALL: [Self; 3] = [Self::Pcmu, Self::Pcma, Self::G722];

    /// The codec of an SDP encoding name (`PCMU`, `pcma`, `G722`: any case).
    pub fn from_encoding_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(name))
    }

    /// The codec of an `a=rtpmap` line's encoding name, else of its static payload type.
    pub fn from_rtpmap(pt: u8, encoding: Option<&str>) -> Option<Self> {
        encoding.and_then(Self::from_encoding_name).or(match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            9 => Some(Self::G722),
            _ => None,
        })
    }

    /// The static RTP payload type (RFC 3551 table 4).
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
            Self::G722 => 9,
        }
    }

    /// The SDP encoding name, as in `a=rtpmap:<pt> <name>/<clock rate>`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
        }
    }

    /// The RTP clock rate: 8000 Hz for all three (for G.722, by RFC 3551 4.5.2's historic
    /// error, not its 16 kHz sampling rate).
    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// The companding law, for the G.711 codecs.
    pub fn law(self) -> Option<Law> {
        match self {
            Self::Pcmu => Some(Law::MuLaw),
            Self::Pcma => Some(Law::ALaw),
            Self::G722 => None,
        }
    }
}

/// Compresses a 16-bit linear sample to µ-law (G.191 `ulaw_compress`).
pub fn ulaw_encode(sample: i16) -> u8 {
    // Magnitude in 14 bits, one's complement for negatives, plus the bias of 33.
    let lin = i32::from(sample);
    let magnitude = if lin < 0 { (!lin) >> 2 } else { lin >> 2 };
    let biased = (magnitude + 33).min(0x1fff);
    let mut segment = 1;
    let mut i = biased >> 6;
    while i != 0 {
        segment += 1;
        i >>= 1;
    }
    let high = 8 - segment;
    let low = 0x0f - ((biased >> segment) & 0x0f);
    let code = ((high << 4) | low) as u8;
    if lin >= 0 { code | 0x80 } else { code }
}

/// Expands a µ-law code to a 16-bit linear sample (G.191 `ulaw_expand`).
pub fn ulaw_decode(code: u8) -> i16 {
    let inverted = !code;
    let exponent = i32::from((inverted >> 4) & 0x07);
    let mantissa = i32::from(inverted & 0x0f);
    let step = 4 << (exponent + 1);
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
    // |magnitude| <= 32124.
    (if code < 0x80 { -magnitude } else { magnitude }) as i16
}

/// Compresses a 16-bit linear sample to A-law (G.191 `alaw_compress`).
pub fn alaw_encode(sample: i16) -> u8 {
    // Magnitude in 12 bits, one's complement for negatives.
    let lin = i32::from(sample);
    let mut ix = if lin < 0 { (!lin) >> 4 } else { lin >> 4 };
    if ix > 15 {
        let mut exponent = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            exponent += 1;
        }
        // Drop the leading 1 and put the exponent above the mantissa.
        ix = ix - 16 + (exponent << 4);
    }
    if lin >= 0 {
        ix |= 0x80;
    }
    // Even bits inverted.
    (ix ^ 0x55) as u8
}

/// Expands an A-law code to a 16-bit linear sample (G.191 `alaw_expand`).
pub fn alaw_decode(code: u8) -> i16 {
    let ix = i32::from((code ^ 0x55) & 0x7f);
    let exponent = ix >> 4;
    let mut mantissa = ix & 0x0f;
    if exponent > 0 {
        mantissa += 16;
    }
    mantissa = (mantissa << 4) + 8;
    if exponent > 1 {
        mantissa <<= exponent - 1;
    }
    // |mantissa| <= 32256.
    (if code > 0x7f { mantissa } else { -mantissa }) as i16
}

/// Cuts an audio stream into fixed-duration RTP payloads with consecutive timestamps.
///
/// The first payload, and the first after [`reset`](Self::reset), has the marker bit: the
/// start of a talkspurt (RFC 3551 4.1).
#[derive(Clone, Debug)]
pub struct Packetizer {
    codec: AudioCodec,
    frame_len: usize,
    next_timestamp: u32,
    marker: bool,
    buf: Vec<u8>,
}

impl Packetizer {
    /// Samples (and bytes, and timestamp ticks) in one 20 ms frame at 8 kHz.
    pub const DEFAULT_FRAME_LEN: usize = 160;

    /// A packetizer of 20 ms frames whose first payload has the media timestamp
    /// `first_timestamp` (8 kHz clock).
    pub fn new(codec: AudioCodec, first_timestamp: u32) -> Self {
        Self {
            codec,
            frame_len: Self::DEFAULT_FRAME_LEN,
            next_timestamp: first_timestamp,
            marker: true,
            buf: Vec::with_capacity(Self::DEFAULT_FRAME_LEN),
        }
    }

    /// Like [`new`](Self::new) with frames of `frame_len` timestamp ticks (80 for 10 ms,
    /// 240 for 30 ms, ...), 1..=8000.
    pub fn with_frame_len(
        codec: AudioCodec,
        first_timestamp: u32,
        frame_len: usize,
    ) -> Result<Self, Error> {
        if !(1..=8000).contains(&frame_len) {
            return Err(Error::Unrepresentable {
                context: "audio packetizer",
                reason: "frame length outside 1..=8000 ticks",
            });
        }
        Ok(Self {
            frame_len,
            ..Self::new(codec, first_timestamp)
        })
    }

    /// The codec.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// The media timestamp the next payload will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    /// Compresses 8 kHz PCM samples and returns the frames they complete.
    ///
    /// Fails for [`AudioCodec::G722`], which this crate cannot encode.
    pub fn push_pcm(&mut self, pcm: &[i16]) -> Result<Vec<Payload>, Error> {
        let law = self.codec.law().ok_or(Error::Unrepresentable {
            context: "audio packetizer",
            reason: "no G.722 encoder: push encoded bytes instead",
        })?;
        let mut out = Vec::new();
        for chunk in pcm.chunks(self.frame_len) {
            let room = self.frame_len - self.buf.len();
            let (now, later) = chunk.split_at(room.min(chunk.len()));
            law.encode_into(now, &mut self.buf);
            self.emit_full(&mut out);
            law.encode_into(later, &mut self.buf);
            self.emit_full(&mut out);
        }
        Ok(out)
    }

    /// Takes already encoded bytes (one per timestamp tick) and returns the frames they
    /// complete.
    pub fn push_encoded(&mut self, mut bytes: &[u8]) -> Vec<Payload> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let room = self.frame_len - self.buf.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            self.emit_full(&mut out);
            bytes = later;
        }
        out
    }

    /// Returns the partial frame buffered, if any, as a shorter payload.
    pub fn flush(&mut self) -> Option<Payload> {
        (!self.buf.is_empty()).then(|| self.emit())
    }

    /// Drops any partial frame and restarts at `timestamp` with the marker bit, after a
    /// gap in the source.
    pub fn reset(&mut self, timestamp: u32) {
        self.buf.clear();
        self.next_timestamp = timestamp;
        self.marker = true;
    }

    fn emit_full(&mut self, out: &mut Vec<Payload>) {
        if self.buf.len() == self.frame_len {
            out.push(self.emit());
        }
    }

    fn emit(&mut self) -> Payload {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.frame_len));
        let payload = Payload {
            timestamp: self.next_timestamp,
            marker: std::mem::take(&mut self.marker),
            data,
        };
        // frame_len <= 8000.
        self.next_timestamp = self.next_timestamp.wrapping_add(payload.data.len() as u32);
        payload
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_encode(-1), 0x7f);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x7f), 0);
        assert_eq!(ulaw_decode(0x7e), -8);
        assert_eq!(ulaw_decode(0xfe), 8);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xaa);
        assert_eq!(alaw_encode(i16::MIN), 0x2a);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xaa), 32256);
        assert_eq!(alaw_decode(0x2a), -32256);
        // Segment boundaries of the µ-law decoder: 0x80 | (7 - seg) << 4 | 0x0f.
        let tops: Vec<i16> = (0..8).map(|s| ulaw_decode(0xff - (s << 4))).collect();
        assert_eq!(tops, [0, 132, 396, 924, 1980, 4092, 8316, 16764]);
        // And of the A-law decoder: 0xd5 ^ (seg << 4).
        let tops: Vec<i16> = (0..8).map(|s| alaw_decode(0xd5 ^ (s << 4))).collect();
        assert_eq!(tops, [8, 264, 528, 1056, 2112, 4224, 8448, 16896]);
    }

    /// The G.711 expansion tables, as printed in every implementation (here taken from
    /// Sun's `g711.c` via CPython's `audioop`, independent of the G.191 code above).
    const ULAW_TABLE: [i16; 256] = [
        -32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884,
        -20860, -19836, -18812, -17788, -16764, -15996, -15484, -14972, -14460, -13948, -13436,
        -12924, -12412, -11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316, -7932, -7676,
        -7420, -7164, -6908, -6652, -6396, -6140, -5884, -5628, -5372, -5116, -4860, -4604, -4348,
        -4092, -3900, -3772, -3644, -3516, -3388, -3260, -3132, -3004, -2876, -2748, -2620, -2492,
        -2364, -2236, -2108, -1980, -1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436, -1372,
        -1308, -1244, -1180, -1116, -1052, -988, -924, -876, -844, -812, -780, -748, -716, -684,
        -652, -620, -588, -556, -524, -492, -460, -428, -396, -372, -356, -340, -324, -308, -292,
        -276, -260, -244, -228, -212, -196, -180, -164, -148, -132, -120, -112, -104, -96, -88,
        -80, -72, -64, -56, -48, -40, -32, -24, -16, -8, 0, 32124, 31100, 30076, 29052, 28028,
        27004, 25980, 24956, 23932, 22908, 21884, 20860, 19836, 18812, 17788, 16764, 15996, 15484,
        14972, 14460, 13948, 13436, 12924, 12412, 11900, 11388, 10876, 10364, 9852, 9340, 8828,
        8316, 7932, 7676, 7420, 7164, 6908, 6652, 6396, 6140, 5884, 5628, 5372, 5116, 4860, 4604,
        4348, 4092, 3900, 3772, 3644, 3516, 3388, 3260, 3132, 3004, 2876, 2748, 2620, 2492, 2364,
        2236, 2108, 1980, 1884, 1820, 1756, 1692, 1628, 1564, 1500, 1436, 1372, 1308, 1244, 1180,
        1116, 1052, 988, 924, 876, 844, 812, 780, 748, 716, 684, 652, 620, 588, 556, 524, 492, 460,
        428, 396, 372, 356, 340, 324, 308, 292, 276, 260, 244, 228, 212, 196, 180, 164, 148, 132,
        120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0,
    ];

    const ALAW_TABLE: [i16; 256] = [
        -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808, -6528,
        -6272, -7040, -6784, -2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368, -3776, -3648,
        -4032, -3904, -3264, -3136, -3520, -3392, -22016, -20992, -24064, -23040, -17920, -16896,
        -19968, -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136, -11008,
        -10496, -12032, -11520, -8960, -8448, -9984, -9472, -15104, -14592, -16128, -15616, -13056,
        -12544, -14080, -13568, -344, -328, -376, -360, -280, -264, -312, -296, -472, -456, -504,
        -488, -408, -392, -440, -424, -88, -72, -120, -104, -24, -8, -56, -40, -216, -200, -248,
        -232, -152, -136, -184, -168, -1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184,
        -1888, -1824, -2016, -1952, -1632, -1568, -1760, -1696, -688, -656, -752, -720, -560, -528,
        -624, -592, -944, -912, -1008, -976, -816, -784, -880, -848, 5504, 5248, 6016, 5760, 4480,
        4224, 4992, 4736, 7552, 7296, 8064, 7808, 6528, 6272, 7040, 6784, 2752, 2624, 3008, 2880,
        2240, 2112, 2496, 2368, 3776, 3648, 4032, 3904, 3264, 3136, 3520, 3392, 22016, 20992,
        24064, 23040, 17920, 16896, 19968, 18944, 30208, 29184, 32256, 31232, 26112, 25088, 28160,
        27136, 11008, 10496, 12032, 11520, 8960, 8448, 9984, 9472, 15104, 14592, 16128, 15616,
        13056, 12544, 14080, 13568, 344, 328, 376, 360, 280, 264, 312, 296, 472, 456, 504, 488,
        408, 392, 440, 424, 88, 72, 120, 104, 24, 8, 56, 40, 216, 200, 248, 232, 152, 136, 184,
        168, 1376, 1312, 1504, 1440, 1120, 1056, 1248, 1184, 1888, 1824, 2016, 1952, 1632, 1568,
        1760, 1696, 688, 656, 752, 720, 560, 528, 624, 592, 944, 912, 1008, 976, 816, 784, 880,
        848,
    ];

    #[test]
    fn decoders_match_the_reference_tables() {
        for code in 0..=255u8 {
            assert_eq!(
                ulaw_decode(code),
                ULAW_TABLE[usize::from(code)],
                "µ-law {code:#04x}"
            );
            assert_eq!(
                alaw_decode(code),
                ALAW_TABLE[usize::from(code)],
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn codes_survive_decode_then_encode() {
        for code in 0..=255u8 {
            // µ-law has two zeros, 0x7f (-0) and 0xff (+0); only +0 is produced.
            let want = if code == 0x7f { 0xff } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), want, "µ-law {code:#04x}");
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn error_within_half_a_step_everywhere() {
        for s in i16::MIN..=i16::MAX {
            let x = i32::from(s);
            for (law, max) in [(Law::MuLaw, 32124), (Law::ALaw, 32256)] {
                let y = i32::from(law.decode(law.encode(s)));
                // Steps double with each segment and a segment starts at about 16 (µ-law) or
                // 32 (A-law) steps, so half a step is at most (|x| + 132) / 32; the one's
                // complement of negative inputs and the smallest steps add a few units.
                let err = (x.clamp(-max, max) - y).abs();
                let bound = (x.abs() + 132) / 32 + 8;
                assert!(
                    err <= bound,
                    "{law:?} {s}: decoded {y}, error {err} > {bound}"
                );
                // Companding keeps the sign and the order.
                assert!(x.signum() * y.signum() >= 0, "{law:?} {s} -> {y}");
                if s > i16::MIN {
                    let below = i32::from(law.decode(law.encode(s - 1)));
                    assert!(below <= y, "{law:?} not monotonic at {s}");
                }
            }
        }
    }

    #[test]
    fn frames_of_20_ms() {
        let mut p = Packetizer::new(AudioCodec::Pcmu, 1000);
        assert!(p.push_pcm(&[0; 100]).unwrap().is_empty());
        let out = p.push_pcm(&[0; 400]).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(
            out.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
            [1000, 1160, 1320]
        );
        assert_eq!(
            out.iter().map(|f| f.marker).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert!(out.iter().all(|f| f.data == [0xff; 160]));
        let rest = p.flush().unwrap();
        assert_eq!((rest.timestamp, rest.data.len()), (1480, 20));
        assert_eq!(p.flush(), None);
        assert_eq!(p.next_timestamp(), 1500);
        p.reset(u32::MAX - 10);
        let out = p.push_encoded(&[1; 320]);
        assert_eq!(out[1].timestamp, 149);
        assert!(out[0].marker);
    }

    #[test]
    fn codec_parameters() {
        assert_eq!(AudioCodec::Pcma.payload_type(), 8);
        assert_eq!(AudioCodec::G722.encoding_name(), "G722");
        assert_eq!(AudioCodec::G722.clock_rate(), 8000);
        assert_eq!(
            AudioCodec::from_encoding_name("pcmu"),
            Some(AudioCodec::Pcmu)
        );
        assert_eq!(AudioCodec::from_encoding_name("mpeg4-generic"), None);
        assert_eq!(AudioCodec::from_rtpmap(8, None), Some(AudioCodec::Pcma));
        assert_eq!(
            AudioCodec::from_rtpmap(97, Some("G722")),
            Some(AudioCodec::G722)
        );
        assert_eq!(AudioCodec::from_rtpmap(97, Some("opus")), None);
        let mut g722 = Packetizer::new(AudioCodec::G722, 0);
        assert!(g722.push_pcm(&[0]).is_err());
        assert_eq!(g722.push_encoded(&[7; 160])[0].data, [7; 160]);
        assert!(Packetizer::with_frame_len(AudioCodec::Pcma, 0, 0).is_err());
        assert!(Packetizer::with_frame_len(AudioCodec::Pcma, 0, 80).is_ok());
    }

    proptest! {
        #[test]
        fn packetizer_keeps_every_byte(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<i16>(), 0..500), 0..10),
            frame in 1usize..400,
            start in any::<u32>(),
        ) {
            let mut p = Packetizer::with_frame_len(AudioCodec::Pcma, start, frame).unwrap();
            let mut frames = Vec::new();
            for c in &chunks {
                frames.extend(p.push_pcm(c).unwrap());
            }
            frames.extend(p.flush());
            let mut want = Vec::new();
            for c in &chunks {
                Law::ALaw.encode_into(c, &mut want);
            }
            let mut ts = start;
            for f in &frames {
                prop_assert_eq!(f.timestamp, ts);
                prop_assert!(f.data.len() <= frame);
                ts = ts.wrapping_add(f.data.len() as u32);
            }
            prop_assert!(frames.iter().rev().skip(1).all(|f| f.data.len() == frame));
            prop_assert_eq!(frames.concat_data(), want);
        }
    }

    trait ConcatData {
        fn concat_data(&self) -> Vec<u8>;
    }

    impl ConcatData for Vec<Payload> {
        fn concat_data(&self) -> Vec<u8> {
            self.iter().flat_map(|f| f.data.iter().copied()).collect()
        }
    }
}
