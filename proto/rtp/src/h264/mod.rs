//! H.264 over RTP (RFC 6184), packetization mode 1 (non-interleaved).
//!
//! The camera side is [`H264Packetizer`]: one access unit in, RTP payloads of at most the
//! configured size out, using the three payload structures of mode 1 (RFC 6184 5.2):
//!
//! | structure | NAL type | used for |
//! |---|---|---|
//! | single NAL unit | 1-23 | a NAL unit that fits alone |
//! | STAP-A | 24 | consecutive NAL units that fit together (SPS, PPS, SEI, small slices) |
//! | FU-A | 28 | a NAL unit larger than the payload size, split in fragments |
//!
//! The marker bit is set on the last payload of the access unit (RFC 6184 5.1), and every
//! payload carries the access unit's 90 kHz timestamp.
//!
//! The client side is [`H264Depacketizer`]: RTP packets in, whole access units out. It
//! detects loss by sequence gaps and drops the access units the loss touches rather than
//! hand a decoder a picture with holes; malformed payloads are errors that drop the access
//! unit, never over-reads (the STAP-A and FU-A length checks that WebRTC issue 11698 missed).
//!
//! [`fmtp_parameters`] gives the SDP `a=fmtp` line's parameters for an SPS and PPS.
//!
//! The start-code byte stream of H.264 Annex B (what encoders emit and `.h264` files hold) is
//! split and joined by `peercam_media::annexb`, the workspace's one Annex B splitter.

use crate::Error;

mod depacketizer;
mod packetizer;

pub use depacketizer::{AccessUnit, DepacketizerStats, H264Depacketizer};
pub use packetizer::H264Packetizer;

/// The RTP clock rate of H.264 video, in Hz (RFC 6184 8.2.1).
pub const CLOCK_RATE: u32 = 90_000;

/// NAL unit type of a single-time aggregation packet, STAP-A.
pub const NAL_STAP_A: u8 = 24;

/// NAL unit type of a fragmentation unit, FU-A.
pub const NAL_FU_A: u8 = 28;

/// The `nal_unit_type` of a NAL unit header byte (its 5 low bits).
pub fn nal_type(header: u8) -> u8 {
    header & 0x1f
}

/// Whether an RTP payload (RFC 6184, mode 1) holds the start of a picture a decoder can
/// start from: an SPS or IDR slice alone, a STAP-A carrying one (after an SEI, say), or the
/// first fragment of one. A relay joining a viewer to a running stream waits for such a
/// payload.
pub fn starts_key_frame(payload: &[u8]) -> bool {
    let key = |h: u8| matches!(nal_type(h), 5 | 7);
    let Some(&h) = payload.first() else {
        return false;
    };
    match nal_type(h) {
        NAL_STAP_A => {
            let mut rest = &payload[1..];
            while let [hi, lo, tail @ ..] = rest {
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                if len == 0 || len > tail.len() {
                    return false;
                }
                if key(tail[0]) {
                    return true;
                }
                rest = &tail[len..];
            }
            false
        }
        NAL_FU_A => payload.get(1).is_some_and(|b| b & 0x80 != 0 && key(*b)),
        _ => key(h),
    }
}

/// The SDP format parameters of a mode 1 stream (RFC 6184 8.1, 8.2.1), for
/// `a=fmtp:<pt> <parameters>`: `packetization-mode=1`, `profile-level-id` from the SPS and
/// `sprop-parameter-sets` with the SPS and PPS in base64.
///
/// Fails when `sps` is not an SPS of at least 4 bytes (header, `profile_idc`, constraint
/// flags, `level_idc`) or `pps` is not a PPS.
pub fn fmtp_parameters(sps: &[u8], pps: &[u8]) -> Result<String, Error> {
    let (Some(&[header, profile, constraints, level]), Some(&pps_header)) =
        (sps.first_chunk::<4>(), pps.first())
    else {
        return Err(Error::Unrepresentable {
            context: "H.264 fmtp",
            reason: "SPS shorter than 4 bytes or empty PPS",
        });
    };
    if nal_type(header) != NAL_SPS || nal_type(pps_header) != NAL_PPS {
        return Err(Error::Unrepresentable {
            context: "H.264 fmtp",
            reason: "not an SPS and a PPS",
        });
    }
    Ok(format!(
        "packetization-mode=1;profile-level-id={profile:02X}{constraints:02X}{level:02X};\
         sprop-parameter-sets={},{}",
        base64(sps),
        base64(pps)
    ))
}

/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;

/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// Standard base64 with padding (RFC 4648 4), as `sprop-parameter-sets` uses.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_frame_starts() {
        assert!(starts_key_frame(&[0x67, 1, 2]));
        assert!(starts_key_frame(&[0x65, 1, 2]));
        assert!(starts_key_frame(&[0x7c, 0x85, 1]));
        assert!(!starts_key_frame(&[0x7c, 0x05, 1]));
        assert!(!starts_key_frame(&[0x41, 1]));
        assert!(starts_key_frame(&[0x78, 0, 3, 0x67, 1, 2]));
        assert!(starts_key_frame(&[0x78, 0, 2, 0x06, 1, 0, 2, 0x65, 1]));
        assert!(!starts_key_frame(&[0x78, 0, 2, 0x06, 1, 0, 9, 0x65, 1]));
        assert!(!starts_key_frame(&[0x78, 0]));
        assert!(!starts_key_frame(&[]));
    }

    proptest::proptest! {
        /// The first payload of a packetized access unit starts a key frame exactly when the
        /// access unit begins with an SPS or an IDR slice, whatever the payload size.
        #[test]
        fn packetized_key_frames_are_recognised(
            first in proptest::sample::select(vec![1u8, 5, 6, 7, 8]),
            body in proptest::collection::vec(proptest::num::u8::ANY, 1..3000),
            rest in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..500), 0..3),
            size in 100usize..1400,
        ) {
            let mut nals = vec![[vec![0x60 | first], body].concat()];
            nals.extend(rest.into_iter().map(|r| [vec![0x41], r].concat()));
            let payloads = H264Packetizer::new(size).unwrap().packetize(&nals, 0).unwrap();
            proptest::prop_assert_eq!(starts_key_frame(&payloads[0].data), matches!(first, 5 | 7));
            for p in &payloads[1..] {
                if nal_type(p.data[0]) == NAL_FU_A {
                    proptest::prop_assert!(!starts_key_frame(&p.data) || p.data[1] & 0x80 != 0);
                }
            }
        }
    }

    #[test]
    fn fmtp_for_a_baseline_stream() {
        let sps = [0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        assert_eq!(
            fmtp_parameters(&sps, &pps).unwrap(),
            "packetization-mode=1;profile-level-id=42C01F;\
             sprop-parameter-sets=Z0LAH9oBQBbo,aM48gA=="
        );
        assert!(fmtp_parameters(&sps[..3], &pps).is_err());
        assert!(fmtp_parameters(&pps, &sps).is_err());
        assert!(fmtp_parameters(&sps, &[]).is_err());
    }

    #[test]
    fn base64_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
