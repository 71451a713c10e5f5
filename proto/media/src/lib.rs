//! H.264 media handling for peercam: byte-stream framing, SPS parsing, the synthetic
//! camera's frame tag, and MP4 files.
//!
//! The crate is **sans-IO**: functions take and return bytes, and the caller owns files,
//! sockets and clocks. Timestamps always come in as parameters.
//!
//! | module | what | used by |
//! |---|---|---|
//! | [`annexb`] | Annex B / AVCC framing, NAL types, emulation prevention, access units | PU encoder output, RTP (de)packetisation, NVR recording |
//! | [`sps`] | picture size, profile/level, frame rate from an SPS | SDP `profile-level-id`, MP4 sample entries |
//! | [`sei`] | the per-frame tag (frame number, capture time, stream) in an SEI message | PU (writes), CU and tests (latency, completeness) |
//! | [`mp4`] | flat MP4 writer (in memory or streamed) and reader | NVR, SD card, CU export |
//!
//! # Example: Annex B in, MP4 out
//!
//! ```
//! use peercam_media::annexb::AccessUnitAssembler;
//! use peercam_media::mp4::{Movie, Mp4Writer, VideoParams};
//! use peercam_media::sei::{FrameInfo, sei_nal};
//! # fn main() -> Result<(), peercam_media::Error> {
//! # let stream: &[u8] = include_bytes!("../testdata/x264_baseline_320x180_25fps_50f.h264");
//! let mut assembler = AccessUnitAssembler::new();
//! assembler.push(stream)?; // as the bytes arrive
//! assembler.finish()?; // at the end of the stream
//!
//! let params = VideoParams::from_annexb(stream).expect("SPS and PPS");
//! let mut writer = Mp4Writer::new(params, None)?;
//! let mut n = 0;
//! while let Some(mut au) = assembler.pop() {
//!     let tag = FrameInfo { frame: n, capture_unix_us: 1_700_000_000_000_000 + n * 40_000, stream: 0 };
//!     au.nals.insert(0, sei_nal(&tag));
//!     writer.push_video_nals(&au.nals, n * 3600, au.is_key())?; // 25 fps at 90 kHz
//!     n += 1;
//! }
//! let file = writer.finish()?;
//!
//! let movie = Movie::parse(&file)?;
//! let video = movie.video().expect("a video track");
//! assert_eq!(video.sample_count(), 50);
//! assert_eq!(video.duration, 50 * 3600);
//! # Ok(())
//! # }
//! ```

pub mod annexb;
mod bits;
mod error;
pub mod mp4;
pub mod sei;
pub mod sps;

pub use error::Error;
