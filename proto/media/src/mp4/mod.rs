//! Flat (non-fragmented) MP4 files (ISO/IEC 14496-12 and -15) with one H.264 video track and
//! an optional G.711 audio track: what the NVR and the SD card record and the CU exports.
//!
//! # Writing
//!
//! Two writers share one muxer:
//!
//! * [`Mp4Writer`] keeps the media in memory and [`finish`](Mp4Writer::finish) returns the
//!   whole file with `moov` before `mdat` ("fast start"), ready for progressive download.
//!   For clips and exports.
//! * [`Mp4StreamWriter`] appends `ftyp`, the `mdat` header and then each sample to a buffer
//!   the caller drains to a file as it goes; [`finish`](Mp4StreamWriter::finish) appends
//!   `moov` and returns an [`MdatPatch`]: eight bytes the caller writes at a given offset
//!   (the 64-bit `mdat` size). Memory stays proportional to the sample count, not to the
//!   media, so recordings of many gigabytes are fine.
//!
//! Both take access units as Annex B ([`Mp4Writer::push_video`]) or as NAL units
//! ([`Mp4Writer::push_video_nals`]). Samples are stored AVCC (4-byte lengths); SPS, PPS and
//! access unit delimiters are left out of the samples, the SPS and PPS living in `avcC`. The
//! SEI frame tag stays in the sample. Video timestamps are in [`VideoParams::timescale`]
//! units (90 kHz by default) and must increase (no B-frames, so no `ctts`); a sample lasts
//! until the next one, the last one as long as the one before it. Audio is G.711 at
//! 8000 Hz mono, one byte per sample (the QuickTime `ulaw` / `alaw` sample entries, which
//! ffmpeg reads), timestamps in 8 kHz units on the same clock as the video.
//!
//! Time zero of the file is the first video sample. Audio is laid out sample-exact against
//! it: audio from before the first video sample is cut, holes are filled with silence, and
//! small overlaps are trimmed. There is no edit list.
//!
//! Chunk offsets switch to `co64` and the `mdat` to a 64-bit size when the file passes
//! 4 GiB; `mvhd`, `tkhd` and `mdhd` switch to version 1 when a duration needs it.
//!
//! # Reading
//!
//! [`Movie::parse`] reads a whole file held in memory; [`Movie::parse_moov`] reads just the
//! `moov` box (find it with [`BoxHeader::parse`] while seeking through a large file), and
//! [`Track::check_extents`] then checks the samples against the file length. Tracks list
//! their sample entry, timescale and duration; [`Track::samples`] iterates the samples
//! (offset, size, decode time, duration, sync flag) and [`Track::chunks`] the chunks. The
//! reader understands what the writers produce and the common shapes of other muxers
//! (`stco` or `co64`, constant or per-sample sizes, optional `stss`); it never panics on
//! malformed input and checks every count against the bytes that hold it before
//! allocating. `ctts`, edit lists and fragments are ignored.

mod read;
mod walk;
mod write;

use std::fmt;

pub use read::{Chunk, Movie, Sample, SampleEntry, Samples, Track};
pub use walk::{BoxHeader, Boxes, Mp4Box, boxes};
pub use write::{
    AudioParams, AudioPlacement, MdatPatch, Mp4Layout, Mp4StreamWriter, Mp4Writer, VideoParams,
    audio_fourcc,
};

use crate::Error;
use crate::sps::Sps;

/// A four-character code: a box type or a sample entry format.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    /// `avc1`: H.264 with parameter sets in the sample entry.
    pub const AVC1: Self = Self(*b"avc1");
    /// `ulaw`: G.711 µ-law.
    pub const ULAW: Self = Self(*b"ulaw");
    /// `alaw`: G.711 A-law.
    pub const ALAW: Self = Self(*b"alaw");
    /// `vide`: video handler.
    pub const VIDE: Self = Self(*b"vide");
    /// `soun`: sound handler.
    pub const SOUN: Self = Self(*b"soun");
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            self.0
                .iter()
                .try_for_each(|&b| fmt::Write::write_char(f, char::from(b)))
        } else {
            write!(f, "0x{:08x}", u32::from_be_bytes(self.0))
        }
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// The `AVCDecoderConfigurationRecord` of an `avcC` box (ISO/IEC 14496-15 5.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AvcConfig {
    /// `AVCProfileIndication`.
    pub profile_idc: u8,
    /// `profile_compatibility`: the constraint flags byte of the SPS.
    pub constraint_flags: u8,
    /// `AVCLevelIndication`.
    pub level_idc: u8,
    /// Size of the NAL unit length prefix in samples: 1, 2 or 4.
    pub length_size: u8,
    /// Sequence parameter sets, NAL units without start code.
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets.
    pub pps: Vec<Vec<u8>>,
}

impl AvcConfig {
    /// The record for one SPS and one PPS, with 4-byte lengths.
    pub fn new(sps: &[u8], pps: &[u8]) -> Result<Self, Error> {
        let parsed = Sps::parse(sps)?;
        if pps.is_empty() || u16::try_from(pps.len()).is_err() || u16::try_from(sps.len()).is_err()
        {
            return Err(Error::invalid(
                "avcC",
                0,
                "parameter set empty or over 65535 bytes",
            ));
        }
        Ok(Self {
            profile_idc: parsed.profile_idc,
            constraint_flags: parsed.constraint_flags,
            level_idc: parsed.level_idc,
            length_size: 4,
            sps: vec![sps.to_vec()],
            pps: vec![pps.to_vec()],
        })
    }

    /// Parses the body of an `avcC` box.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        const CTX: &str = "avcC";
        let truncated = |at: usize| Error::truncated(CTX, at);
        let head = body.get(..6).ok_or_else(|| truncated(body.len()))?;
        if head[0] != 1 {
            return Err(Error::invalid(CTX, 0, "configurationVersion is not 1"));
        }
        let length_size = (head[4] & 3) + 1;
        if length_size == 3 {
            return Err(Error::invalid(CTX, 4, "NAL length size of 3 bytes"));
        }
        let mut pos = 6;
        let sets = |count: usize, pos: &mut usize| -> Result<Vec<Vec<u8>>, Error> {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                let len = body.get(*pos..*pos + 2).ok_or_else(|| truncated(*pos))?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let nal = body
                    .get(*pos + 2..*pos + 2 + len)
                    .ok_or_else(|| truncated(*pos + 2))?;
                out.push(nal.to_vec());
                *pos += 2 + len;
            }
            Ok(out)
        };
        let sps = sets(usize::from(head[5] & 0x1f), &mut pos)?;
        let n_pps = *body.get(pos).ok_or_else(|| truncated(pos))?;
        pos += 1;
        let pps = sets(usize::from(n_pps), &mut pos)?;
        Ok(Self {
            profile_idc: head[1],
            constraint_flags: head[2],
            level_idc: head[3],
            length_size,
            sps,
            pps,
        })
    }

    /// The body of an `avcC` box. High profiles get the chroma format and bit depth fields
    /// read from the first SPS.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let too_many = || Error::TooLarge {
            context: "avcC parameter sets",
            limit: 31,
        };
        let mut out = vec![
            1,
            self.profile_idc,
            self.constraint_flags,
            self.level_idc,
            0xfc | (self.length_size.wrapping_sub(1) & 3),
            0xe0 | u8::try_from(self.sps.len())
                .ok()
                .filter(|n| *n <= 31)
                .ok_or_else(too_many)?,
        ];
        let push = |out: &mut Vec<u8>, set: &[u8]| -> Result<(), Error> {
            let len = u16::try_from(set.len()).map_err(|_| Error::TooLarge {
                context: "parameter set",
                limit: 65535,
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(set);
            Ok(())
        };
        for s in &self.sps {
            push(&mut out, s)?;
        }
        out.push(u8::try_from(self.pps.len()).map_err(|_| too_many())?);
        for p in &self.pps {
            push(&mut out, p)?;
        }
        if matches!(self.profile_idc, 100 | 110 | 122 | 144) {
            let sps = self.sps.first().map(|s| Sps::parse(s)).transpose()?;
            let (cf, luma, chroma) = sps.map_or((1, 8, 8), |s| {
                (s.chroma_format_idc, s.bit_depth_luma, s.bit_depth_chroma)
            });
            out.extend_from_slice(&[0xfc | cf, 0xf8 | (luma - 8), 0xf8 | (chroma - 8), 0]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
