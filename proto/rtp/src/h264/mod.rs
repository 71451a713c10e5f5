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
//! [`split_annex_b`] and [`write_annex_b`] convert between NAL unit lists and the start-code
//! byte stream of H.264 Annex B, what encoders emit and `.h264` files hold.

use crate::Error;

mod annexb;
mod depacketizer;
mod packetizer;

pub use annexb::{AnnexB, split_annex_b, write_annex_b};
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
