//! `peercam_rtp::talk::TalkDecoder`: a viewer's microphone payloads (intercom, H.626.4
//! 6.1.8) as the camera decodes them for its speaker.
//!
//! Input: one byte choosing the codec (`% 3`: PCMU, PCMA, G.722), then payloads, each a
//! length byte (times 8, so payloads over `MAX_PAYLOAD` occur) and that many bytes (fewer
//! at the end).
//!
//! Oracles besides "never panics": at most one sample per byte; none for a payload over
//! `MAX_PAYLOAD`; G.711 gives exactly one sample per byte, the G.711 table's; a second
//! decoder fed the same payloads gives the same samples (no hidden state beyond G.722's).
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_rtp::AudioCodec;
use peercam_rtp::talk::{MAX_PAYLOAD, TalkDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    let codec = AudioCodec::ALL[usize::from(pick % 3)];
    let mut a = TalkDecoder::new(codec);
    let mut b = TalkDecoder::new(codec);
    assert_eq!(a.codec(), codec);
    while let Some((&len, tail)) = rest.split_first() {
        let n = (usize::from(len) * 8).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        let pcm = a.decode(payload);
        assert_eq!(pcm, b.decode(payload), "decoding is deterministic");
        assert!(pcm.len() <= payload.len());
        if payload.len() > MAX_PAYLOAD {
            assert!(pcm.is_empty(), "an oversized payload is refused");
            continue;
        }
        if let Some(law) = codec.law() {
            assert_eq!(pcm.len(), payload.len());
            for (s, c) in pcm.iter().zip(payload) {
                assert_eq!(*s, law.decode(*c));
            }
        }
    }
});
