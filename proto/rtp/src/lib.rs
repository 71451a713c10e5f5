//! RTP and RTCP (RFC 3550) with the payload formats a peercam camera sends: H.264 video
//! (RFC 6184), G.711 or G.722 audio (RFC 3551) and AAC (RFC 3640).
//!
//! This crate is **sans-IO**: it turns bytes into values and values into bytes, and holds
//! per-stream state, but never touches a socket, a file, a clock or a random number
//! generator. SSRCs, initial sequence numbers and timestamp offsets are drawn by the caller,
//! and wall-clock time comes in as Unix microseconds where a report needs it. The same code
//! serves RTP over UDP and RTP interleaved in RTSP over TCP (`$`-framing is
//! `peercam-rtsp`'s job).
//!
//! | module | what |
//! |---|---|
//! | [`packet`] | RTP header: zero-copy [`RtpPacket::parse`], [`RtpHeader::write`] |
//! | [`rtcp`] | SR, RR, SDES, BYE; compound [`rtcp::iter`] / [`rtcp::write_compound`]; [`NtpTimestamp`] |
//! | [`h264`] | [`H264Packetizer`] (single NAL, STAP-A, FU-A), [`H264Depacketizer`] (Annex B: `peercam_media::annexb`) |
//! | [`aac`] | AAC in RTP `mpeg4-generic` AAC-hbr (RFC 3640): [`aac::AacConfig`] (AudioSpecificConfig, SDP `config=`), [`aac::AacPacketizer`], [`aac::AacDepacketizer`] |
//! | [`g711`] | µ-law / A-law companding, 20 ms audio [`g711::Packetizer`] (also frames G.722) |
//! | [`session`] | [`RtpSender`] (sequence, counts, sender reports), sequence extension, [`ReceiverStats`] |
//! | `camera_audio` | (feature `camera-audio`) a camera's audio for viewers and recorders: G.711/G.722 transcoding, AAC-LC decoded to 8 kHz G.711 |
//! | `talk` | (feature `talk`) a viewer's microphone, G.711 or G.722 payloads, to 8 kHz PCM for a camera's speaker |
//!
//! # Sending (the camera)
//!
//! ```
//! use peercam_rtp::{H264Packetizer, RtpSender, SenderConfig};
//!
//! // Random per RFC 3550 5.1; drawn by the caller's RNG.
//! let mut sender = RtpSender::new(SenderConfig {
//!     ssrc: 0x5eed_0001,
//!     payload_type: 96,
//!     initial_sequence: 4242,
//!     timestamp_offset: 0x1234_5678,
//! })?;
//! let packetizer = H264Packetizer::default();
//!
//! // One access unit from the encoder: SPS, PPS, IDR slice; 90 kHz presentation time.
//! let (sps, pps, idr) = (vec![0x67, 0x42, 0xc0, 0x1f], vec![0x68, 0xce, 0x3c, 0x80], vec![0x65; 5000]);
//! let mut datagrams = Vec::new();
//! for payload in packetizer.packetize(&[sps, pps, idr], 3000)? {
//!     let mut buf = Vec::new();
//!     sender.write(&payload, &mut buf)?;
//!     datagrams.push(buf); // to the UDP socket, or `$`-framed on the RTSP connection
//! }
//! assert_eq!(datagrams.len(), 6); // STAP-A(SPS, PPS) + 5 FU-A
//!
//! // Every few seconds: SR + SDES, with the wall clock and the media time it corresponds to.
//! let mut rtcp = Vec::new();
//! sender.write_rtcp(1_700_000_000_000_000, 3000, b"cam-1@peercam", &mut rtcp)?;
//! # Ok::<(), peercam_rtp::Error>(())
//! ```
//!
//! # Receiving (the client)
//!
//! Parse each datagram with [`RtpPacket::parse`], feed it to an [`H264Depacketizer`] (and a
//! [`ReceiverStats`] for RTCP receiver reports), and take whole access units with
//! [`H264Depacketizer::poll`]. Packets lost on the way drop the access units they belonged
//! to; the next one delivered says so in [`AccessUnit::after_loss`].
//!
//! No function here panics on any input; every parser has a property test and a fuzz
//! target (`fuzz_targets/` beside this crate).

pub mod aac;
#[cfg(feature = "camera-audio")]
pub mod camera_audio;
pub mod g711;
pub mod h264;
pub mod packet;
pub mod rtcp;
pub mod session;
#[cfg(feature = "talk")]
pub mod talk;

mod error;

pub use error::Error;
pub use g711::AudioCodec;
pub use h264::{AccessUnit, H264Depacketizer, H264Packetizer};
pub use packet::{RtpHeader, RtpPacket};
pub use rtcp::{NtpTimestamp, RtcpPacket};
pub use session::{ReceiverStats, RtpSender, SenderConfig};

/// One RTP payload produced by a packetizer, ready for [`RtpSender::write`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Payload {
    /// The payload bytes.
    pub data: Vec<u8>,
    /// The media timestamp, in the stream's clock (90 kHz for video, 8 kHz for audio),
    /// before the sender's random offset.
    pub timestamp: u32,
    /// The RTP marker bit: last packet of a video access unit, first of an audio talkspurt.
    pub marker: bool,
}
