//! The frame tag of the synthetic camera: an SEI `user_data_unregistered` message.
//!
//! The PU marks every access unit with one SEI NAL unit (H.264 7.3.2.3, D.1.7) holding a
//! single message of payloadType 5:
//!
//! ```text
//! uuid_iso_iec_11578   16 bytes   d4791a80-223d-4d19-a948-05266e7d4f67 (FRAME_TAG_UUID)
//! frame                u64 BE     frame number since the encoder started
//! capture_unix_us      u64 BE     capture time, microseconds since the Unix epoch
//! stream               u32 BE     stream id of the PU
//! ```
//!
//! That is a 36-byte payload. Readers ignore bytes after `stream`, so a later version may
//! append fields. Tests and the CU use the tag to measure latency and to check that frames
//! arrive complete and in order through every path (direct, MTU relay, NVR).
//!
//! [`sei_nal`] builds the NAL unit; [`parse_sei`] finds the tag among the messages of any
//! SEI NAL unit (x264, for one, writes its own `user_data_unregistered` message) and ignores
//! the others. [`messages`] and [`build_sei_nal`] handle SEI messages in general.

use crate::annexb::{NalType, escape, unescape};

/// The UUID that marks a peercam frame tag (version 4, random).
pub const FRAME_TAG_UUID: [u8; 16] = [
    0xd4, 0x79, 0x1a, 0x80, 0x22, 0x3d, 0x4d, 0x19, 0xa9, 0x48, 0x05, 0x26, 0x6e, 0x7d, 0x4f, 0x67,
];

/// `payloadType` of `user_data_unregistered` (H.264 D.1.7).
pub const USER_DATA_UNREGISTERED: u32 = 5;

/// Length of the frame tag payload: UUID, frame, capture time, stream.
pub const FRAME_TAG_LEN: usize = 16 + 8 + 8 + 4;

/// What the synthetic camera says about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameInfo {
    /// Frame number since the encoder started.
    pub frame: u64,
    /// Capture time in microseconds since the Unix epoch.
    pub capture_unix_us: u64,
    /// Stream id within the PU.
    pub stream: u32,
}

impl FrameInfo {
    /// The 36-byte `user_data_unregistered` payload: UUID, then the fields big-endian.
    pub fn to_payload(&self) -> [u8; FRAME_TAG_LEN] {
        let mut p = [0; FRAME_TAG_LEN];
        p[..16].copy_from_slice(&FRAME_TAG_UUID);
        p[16..24].copy_from_slice(&self.frame.to_be_bytes());
        p[24..32].copy_from_slice(&self.capture_unix_us.to_be_bytes());
        p[32..36].copy_from_slice(&self.stream.to_be_bytes());
        p
    }

    /// Reads a `user_data_unregistered` payload; `None` unless it starts with
    /// [`FRAME_TAG_UUID`] and is long enough. Extra trailing bytes are ignored.
    pub fn from_payload(payload: &[u8]) -> Option<Self> {
        let (uuid, rest) = payload.split_first_chunk::<16>()?;
        if *uuid != FRAME_TAG_UUID {
            return None;
        }
        let (frame, rest) = rest.split_first_chunk::<8>()?;
        let (capture, rest) = rest.split_first_chunk::<8>()?;
        let (stream, _) = rest.split_first_chunk::<4>()?;
        Some(Self {
            frame: u64::from_be_bytes(*frame),
            capture_unix_us: u64::from_be_bytes(*capture),
            stream: u32::from_be_bytes(*stream),
        })
    }
}

/// A complete SEI NAL unit (no start code) carrying `info`, with emulation prevention and
/// `rbsp_trailing_bits`.
pub fn sei_nal(info: &FrameInfo) -> Vec<u8> {
    build_sei_nal(&[(USER_DATA_UNREGISTERED, &info.to_payload()[..])])
}

/// The frame tag in an SEI NAL unit (header byte included, no start code), if any.
///
/// Returns the first message that is ours; other messages are skipped. `None` for other
/// NAL types and for malformed SEI, unless our message came before the damage.
pub fn parse_sei(nal: &[u8]) -> Option<FrameInfo> {
    if NalType::of(nal)? != NalType::SEI {
        return None;
    }
    let rbsp = unescape(&nal[1..]);
    messages(&rbsp)
        .map_while(Result::ok)
        .filter(|m| m.payload_type == USER_DATA_UNREGISTERED)
        .find_map(|m| FrameInfo::from_payload(m.payload))
}

/// Builds an SEI NAL unit from `(payloadType, payload)` messages.
///
/// Types and sizes of 255 or more are coded with `0xFF` bytes (H.264 7.3.2.3.1).
pub fn build_sei_nal(messages: &[(u32, &[u8])]) -> Vec<u8> {
    let mut rbsp = Vec::new();
    for &(payload_type, payload) in messages {
        push_sei_number(&mut rbsp, payload_type as usize);
        push_sei_number(&mut rbsp, payload.len());
        rbsp.extend_from_slice(payload);
    }
    rbsp.push(0x80); // rbsp_stop_one_bit and alignment
    let mut nal = vec![NalType::SEI.0];
    nal.extend(escape(&rbsp));
    nal
}

/// One `sei_message()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeiMessage<'a> {
    /// `payloadType`.
    pub payload_type: u32,
    /// `sei_payload()` bytes, from the RBSP.
    pub payload: &'a [u8],
}

/// The messages of an SEI RBSP (emulation prevention removed, NAL header excluded).
///
/// Iteration ends at `rbsp_trailing_bits`; a message whose size runs past the end yields
/// one error, then the iterator ends.
pub fn messages(rbsp: &[u8]) -> SeiMessages<'_> {
    SeiMessages { rest: rbsp }
}

/// Iterator returned by [`messages`].
#[derive(Debug, Clone)]
pub struct SeiMessages<'a> {
    rest: &'a [u8],
}

/// A malformed SEI message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("truncated SEI message")]
pub struct TruncatedSei;

impl<'a> Iterator for SeiMessages<'a> {
    type Item = Result<SeiMessage<'a>, TruncatedSei>;

    fn next(&mut self) -> Option<Self::Item> {
        // more_rbsp_data(): stop at the trailing bits (0x80 then zero bytes) or the end.
        let more = match self.rest.iter().rposition(|&b| b != 0) {
            None => false,
            Some(last) => last > 0 || self.rest[0] != 0x80,
        };
        if !more {
            self.rest = &[];
            return None;
        }
        let parsed = (|| {
            let mut rest = self.rest;
            let payload_type = read_sei_number(&mut rest)?;
            let size = read_sei_number(&mut rest)?;
            let size = usize::try_from(size).ok()?;
            let payload = rest.get(..size)?;
            Some((payload_type, payload, &rest[size..]))
        })();
        match parsed {
            Some((payload_type, payload, rest)) => {
                self.rest = rest;
                Some(Ok(SeiMessage {
                    payload_type,
                    payload,
                }))
            }
            None => {
                self.rest = &[];
                Some(Err(TruncatedSei))
            }
        }
    }
}

fn push_sei_number(out: &mut Vec<u8>, mut v: usize) {
    while v >= 255 {
        out.push(0xff);
        v -= 255;
    }
    out.push(v as u8);
}

fn read_sei_number(rest: &mut &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    loop {
        let (&b, tail) = rest.split_first()?;
        *rest = tail;
        v = v.checked_add(u32::from(b))?;
        if b != 0xff {
            return Some(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::annexb;

    /// Field values whose big-endian bytes hold `00 00 00` and `00 00 01` runs, which
    /// must be escaped inside the NAL unit.
    fn tricky_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(0x0000_0100_0000_0003),
            Just(0x0300_0000_0000_0001),
            Just(u64::MAX),
            any::<u64>(),
            (0u32..64).prop_map(|s| 1u64 << s),
        ]
    }

    proptest! {
        #[test]
        fn frame_tag_round_trips(frame in tricky_u64(), capture_unix_us in tricky_u64(), stream in prop_oneof![Just(0u32), Just(1), Just(0x0000_0003), any::<u32>()]) {
            let info = FrameInfo { frame, capture_unix_us, stream };
            let nal = sei_nal(&info);
            prop_assert_eq!(parse_sei(&nal), Some(info));
            // Safe inside an Annex B stream: no start code, no trailing zero.
            let body = &nal[1..];
            prop_assert!(!body.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
            prop_assert_ne!(nal.last(), Some(&0));
            let stream = annexb::join([&nal, &nal]);
            prop_assert_eq!(annexb::split(&stream).collect::<Vec<_>>(), vec![&nal[..], &nal[..]]);
        }

        #[test]
        fn found_among_other_messages(info in any::<(u64, u64, u32)>(), before in prop::collection::vec((0u32..600, prop::collection::vec(any::<u8>(), 0..700)), 0..3), after in prop::collection::vec((0u32..600, prop::collection::vec(any::<u8>(), 0..300)), 0..3)) {
            let info = FrameInfo { frame: info.0, capture_unix_us: info.1, stream: info.2 };
            let tag = info.to_payload();
            let mut msgs: Vec<(u32, &[u8])> = before.iter().map(|(t, p)| (*t, &p[..])).filter(|(t, p)| *t != 5 || !p.starts_with(&FRAME_TAG_UUID)).collect();
            msgs.push((5, &tag));
            msgs.extend(after.iter().map(|(t, p)| (*t, &p[..])));
            let nal = build_sei_nal(&msgs);
            prop_assert_eq!(parse_sei(&nal), Some(info));
            let rbsp = unescape(&nal[1..]);
            let parsed: Vec<(u32, &[u8])> = messages(&rbsp).map(|m| m.map(|m| (m.payload_type, m.payload))).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(parsed, msgs);
        }

        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut nal = vec![0x06];
            nal.extend(bytes);
            let _ = parse_sei(&nal);
        }
    }

    #[test]
    fn wire_format_is_fixed() {
        let nal = sei_nal(&FrameInfo {
            frame: 0x0102,
            capture_unix_us: 0x1122_3344_5566_7788,
            stream: 7,
        });
        let mut want = vec![0x06, 0x05, 36];
        want.extend_from_slice(&FRAME_TAG_UUID);
        // frame 00 00 00 00 00 00 01 02, escaped after each 00 00 pair.
        want.extend_from_slice(&[0, 0, 3, 0, 0, 3, 0, 0, 3, 1, 2]);
        want.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        want.extend_from_slice(&[0, 0, 3, 0, 7, 0x80]);
        assert_eq!(nal, want);
    }

    #[test]
    fn payload_sizes_of_255_and_more_use_ff_bytes() {
        for (len, head) in [
            (254usize, vec![0xfe]),
            (255, vec![0xff, 0]),
            (617, vec![0xff, 0xff, 107]),
            (510, vec![0xff, 0xff, 0]),
        ] {
            let payload = vec![0x42; len];
            let nal = build_sei_nal(&[(5, &payload), (300, &[1])]);
            assert_eq!(nal[1], 5);
            assert_eq!(&nal[2..2 + head.len()], &head[..], "size {len}");
            let rbsp = unescape(&nal[1..]);
            let got: Vec<_> = messages(&rbsp).collect();
            assert_eq!(
                got,
                vec![
                    Ok(SeiMessage {
                        payload_type: 5,
                        payload: &payload
                    }),
                    Ok(SeiMessage {
                        payload_type: 300,
                        payload: &[1]
                    })
                ]
            );
        }
        // Type 300 is coded 0xFF 45.
        assert_eq!(&build_sei_nal(&[(300, &[])])[1..], &[0xff, 45, 0, 0x80]);
    }

    #[test]
    fn x264_sei_is_skipped_and_ours_found_after_it() {
        let stream = include_bytes!("../testdata/x264_baseline_320x180_25fps_50f.h264");
        let x264 = annexb::split(stream).find(|n| n[0] & 0x1f == 6).unwrap();
        assert_eq!(parse_sei(x264), None);
        let rbsp = unescape(&x264[1..]);
        let msgs: Vec<_> = messages(&rbsp).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            msgs[0].payload.len(),
            617,
            "x264 version string, sized 0xFF 0xFF 0x6B"
        );
        // Append our message to x264's NAL unit.
        let info = FrameInfo {
            frame: 9,
            capture_unix_us: 1_700_000_000_000_000,
            stream: 2,
        };
        let tag = info.to_payload();
        let nal = build_sei_nal(&[(5, msgs[0].payload), (5, &tag)]);
        assert_eq!(parse_sei(&nal), Some(info));
    }

    #[test]
    fn malformed_sei() {
        assert_eq!(parse_sei(&[0x06, 0x05, 40, 1, 2]), None);
        assert_eq!(parse_sei(&[0x06]), None);
        assert_eq!(parse_sei(&[0x67, 0x05]), None);
        let rbsp = [0x05, 0x10, 1, 2];
        assert_eq!(messages(&rbsp).collect::<Vec<_>>(), vec![Err(TruncatedSei)]);
        // A tag with a wrong UUID or too short is not ours.
        let mut p = FrameInfo::default().to_payload();
        assert_eq!(FrameInfo::from_payload(&p[..35]), None);
        p[0] ^= 1;
        assert_eq!(FrameInfo::from_payload(&p), None);
        // Extra trailing bytes are accepted.
        let mut long = FrameInfo {
            frame: 1,
            capture_unix_us: 2,
            stream: 3,
        }
        .to_payload()
        .to_vec();
        long.extend_from_slice(&[9; 10]);
        assert_eq!(
            parse_sei(&build_sei_nal(&[(5, &long)])).map(|i| i.stream),
            Some(3)
        );
    }
}
