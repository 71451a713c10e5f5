//! The upload object: what a camera sends the CS in one `PUT` (H.626.4 8.7.1, Cp).
//!
//! An object holds 1 to [`MAX_SEGMENTS`] consecutive segments of one recording run, as the
//! camera's store keeps them, and spans at most [`MAX_SPAN_MS`]. All integers big-endian:
//!
//! ```text
//! magic    "PCO1"
//! header   prefix[16] seq:u64 start:u64 end:u64 frames:u32 bytes:u64 audio:u8
//!          sps_len:u16 sps pps_len:u16 pps
//! table    count:u16, count x { start:u64 end:u64 frames:u32 offset:u64 length:u64
//!                                index_len:u32 index }
//! samples  `bytes` bytes: the segments' samples back to back
//! ```
//!
//! Times are absolute 90 kHz ticks since the Unix epoch, as in the store. `audio` is 0 (no
//! audio track), 1 PCMU, 2 PCMA or 3 G.722. Each segment's `index` is its sample index
//! exactly as [`peercam_record::index`] encodes it, its samples are at `offset` (from the
//! start of the samples) for `length` bytes: AVCC video (a 4-byte length before each NAL
//! unit) and raw audio.
//!
//! The encoding is deterministic: the same segments give the same bytes, so a retry rebuilt
//! from the card has the same SHA-256. [`Object::decode`] accepts exactly what
//! [`Object::encode`] writes: every stored total must equal what the table and indexes
//! give, segments follow each other in time without overlap and in bytes without gap, each
//! index decodes and adds up to its length, each segment starts with a video IDR (the
//! index's key flag, and an IDR NAL unit in the sample), every video sample is well-formed
//! AVCC, and nothing follows the samples. The CS also compares [`Object::key`] with the key
//! it was sent under and checks [`Object::check_time`] against its clock.

use peercam_record::index::{self, Track};

use crate::Error;
use crate::key::{MAX_SEQ, MAX_START_MS, Prefix, SegmentKey};

/// The object's first four bytes.
pub const MAGIC: &[u8; 4] = b"PCO1";
/// Largest encoded object (the single `PUT` limit).
pub const MAX_OBJECT: usize = 8 << 20;
/// Most segments in one object.
pub const MAX_SEGMENTS: usize = 64;
/// Longest time an object spans, ms.
pub const MAX_SPAN_MS: u64 = 60_000;
/// Longest time an object spans, 90 kHz.
pub const MAX_SPAN_90K: u64 = MAX_SPAN_MS * 90;
/// Oldest start the CS stores, behind its clock: 30 days.
pub const MAX_AGE_MS: u64 = 30 * 86_400_000;
/// Furthest start the CS stores ahead of its clock: 5 minutes.
pub const MAX_AHEAD_MS: u64 = 5 * 60_000;
/// Longest SPS or PPS.
pub const MAX_PARAM: usize = 1024;

/// Bytes before the SPS: magic, prefix, seq, start, end, frames, bytes, audio, sps_len.
const FIXED: usize = 4 + 16 + 8 + 8 + 8 + 4 + 8 + 1 + 2;
/// Bytes of a table entry before its index.
const ENTRY: usize = 8 + 8 + 4 + 8 + 8 + 4;

/// The audio codec of an object's audio samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 mu-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722.
    G722,
}

impl AudioCodec {
    fn code(codec: Option<Self>) -> u8 {
        match codec {
            None => 0,
            Some(Self::Pcmu) => 1,
            Some(Self::Pcma) => 2,
            Some(Self::G722) => 3,
        }
    }

    fn from_code(code: u8) -> Option<Option<Self>> {
        Some(match code {
            0 => None,
            1 => Some(Self::Pcmu),
            2 => Some(Self::Pcma),
            3 => Some(Self::G722),
            _ => return None,
        })
    }
}

/// One store segment inside an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// First video frame, absolute 90 kHz.
    pub start_90k: u64,
    /// Where the segment stops showing, absolute 90 kHz.
    pub end_90k: u64,
    /// Its sample index, as `peercam_record::index` encodes it.
    pub index: Vec<u8>,
    /// Its samples back to back.
    pub data: Vec<u8>,
}

/// An upload object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The camera's prefix.
    pub prefix: Prefix,
    /// The camera's upload sequence number.
    pub seq: u64,
    /// The audio track's codec, if there is one.
    pub audio: Option<AudioCodec>,
    /// SPS (no start code).
    pub sps: Vec<u8>,
    /// PPS (no start code).
    pub pps: Vec<u8>,
    /// The segments, in time order.
    pub segments: Vec<Segment>,
}

/// What [`Object::check`] found out about a valid object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// First frame, absolute 90 kHz.
    pub start_90k: u64,
    /// End, absolute 90 kHz.
    pub end_90k: u64,
    /// Video frames.
    pub frames: u32,
    /// Sample bytes.
    pub bytes: u64,
    /// Video frames per segment.
    pub segment_frames: Vec<u32>,
    /// Bytes of the encoded object.
    pub encoded_len: usize,
}

impl Summary {
    /// First frame, Unix ms.
    pub fn start_ms(&self) -> u64 {
        self.start_90k / 90
    }

    /// End, Unix ms (rounded up).
    pub fn end_ms(&self) -> u64 {
        self.end_90k.div_ceil(90)
    }
}

impl Object {
    /// Checks everything [`decode`](Self::decode) checks and returns the totals.
    pub fn check(&self) -> Result<Summary, Error> {
        if self.seq > MAX_SEQ {
            return Err(Error::Object {
                at: 20,
                reason: "seq beyond 10 digits",
            });
        }
        for (what, p) in [("sps", &self.sps), ("pps", &self.pps)] {
            if p.is_empty() {
                return Err(Error::Object {
                    at: FIXED,
                    reason: "empty SPS or PPS",
                });
            }
            if p.len() > MAX_PARAM {
                return Err(Error::ObjectLimit {
                    what,
                    max: MAX_PARAM as u64,
                });
            }
        }
        let Some(first) = self.segments.first() else {
            return Err(Error::Object {
                at: FIXED,
                reason: "no segment",
            });
        };
        if self.segments.len() > MAX_SEGMENTS {
            return Err(Error::ObjectLimit {
                what: "segments",
                max: MAX_SEGMENTS as u64,
            });
        }
        let mut frames = 0u32;
        let mut bytes = 0u64;
        let mut prev_end = first.start_90k;
        let mut segment_frames = Vec::with_capacity(self.segments.len());
        let mut encoded_len = FIXED + self.sps.len() + 2 + self.pps.len() + 2;
        for (i, s) in self.segments.iter().enumerate() {
            let bad = |reason| Error::Segment { segment: i, reason };
            if s.start_90k < prev_end {
                return Err(bad("starts before the previous segment ends"));
            }
            if s.end_90k <= s.start_90k {
                return Err(bad("ends before it starts"));
            }
            let n = check_segment(i, s, self.audio)?;
            segment_frames.push(n);
            frames = frames
                .checked_add(n)
                .ok_or_else(|| bad("too many frames"))?;
            bytes += s.data.len() as u64;
            prev_end = s.end_90k;
            encoded_len = encoded_len
                .saturating_add(ENTRY + s.index.len())
                .saturating_add(s.data.len());
        }
        let start_90k = first.start_90k;
        if start_90k / 90 > MAX_START_MS {
            return Err(Error::Object {
                at: 28,
                reason: "start beyond 13 digits of ms",
            });
        }
        if prev_end - start_90k > MAX_SPAN_90K {
            return Err(Error::ObjectLimit {
                what: "span (90 kHz)",
                max: MAX_SPAN_90K,
            });
        }
        if encoded_len > MAX_OBJECT {
            return Err(Error::ObjectLimit {
                what: "object bytes",
                max: MAX_OBJECT as u64,
            });
        }
        Ok(Summary {
            start_90k,
            end_90k: prev_end,
            frames,
            bytes,
            segment_frames,
            encoded_len,
        })
    }

    /// Whether an object starting at `start_ms` may be stored at `now_ms` (Unix ms): not
    /// older than [`MAX_AGE_MS`] (30 days), not more than [`MAX_AHEAD_MS`] (5 min) ahead.
    pub fn check_time(start_ms: u64, now_ms: u64) -> Result<(), Error> {
        if start_ms.saturating_add(MAX_AGE_MS) < now_ms {
            return Err(Error::Object {
                at: 28,
                reason: "starts more than 30 days ago",
            });
        }
        if start_ms > now_ms.saturating_add(MAX_AHEAD_MS) {
            return Err(Error::Object {
                at: 28,
                reason: "starts more than 5 minutes ahead",
            });
        }
        Ok(())
    }

    /// The key the object is stored under.
    pub fn key(&self) -> Result<SegmentKey, Error> {
        let first = self.segments.first().ok_or(Error::Object {
            at: FIXED,
            reason: "no segment",
        })?;
        SegmentKey::new(self.prefix, first.start_90k / 90, self.seq)
    }

    /// The object's bytes, after [`check`](Self::check).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let sum = self.check()?;
        let mut out = Vec::with_capacity(sum.encoded_len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&sum.start_90k.to_be_bytes());
        out.extend_from_slice(&sum.end_90k.to_be_bytes());
        out.extend_from_slice(&sum.frames.to_be_bytes());
        out.extend_from_slice(&sum.bytes.to_be_bytes());
        out.push(AudioCodec::code(self.audio));
        for p in [&self.sps, &self.pps] {
            out.extend_from_slice(&(p.len() as u16).to_be_bytes());
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&(self.segments.len() as u16).to_be_bytes());
        let mut offset = 0u64;
        for (s, frames) in self.segments.iter().zip(&sum.segment_frames) {
            out.extend_from_slice(&s.start_90k.to_be_bytes());
            out.extend_from_slice(&s.end_90k.to_be_bytes());
            out.extend_from_slice(&frames.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&(s.data.len() as u64).to_be_bytes());
            out.extend_from_slice(&(s.index.len() as u32).to_be_bytes());
            out.extend_from_slice(&s.index);
            offset += s.data.len() as u64;
        }
        for s in &self.segments {
            out.extend_from_slice(&s.data);
        }
        debug_assert_eq!(out.len(), sum.encoded_len);
        Ok(out)
    }

    /// Reads and checks an object (see the module documentation for every check).
    pub fn decode(bytes: &[u8]) -> Result<(Self, Summary), Error> {
        if bytes.len() > MAX_OBJECT {
            return Err(Error::ObjectLimit {
                what: "object bytes",
                max: MAX_OBJECT as u64,
            });
        }
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(Error::Object {
                at: 0,
                reason: "not an upload object (magic)",
            });
        }
        let prefix = Prefix::from_bytes(r.array()?);
        let seq = r.u64()?;
        let start = r.u64()?;
        let end = r.u64()?;
        let frames = r.u32()?;
        let total = r.u64()?;
        let at = r.pos;
        let audio = AudioCodec::from_code(r.u8()?).ok_or(Error::Object {
            at,
            reason: "unknown audio codec",
        })?;
        let sps = r.sized16()?.to_vec();
        let pps = r.sized16()?.to_vec();
        let count = usize::from(r.u16()?);
        if count > MAX_SEGMENTS {
            return Err(Error::ObjectLimit {
                what: "segments",
                max: MAX_SEGMENTS as u64,
            });
        }
        let mut table = Vec::with_capacity(count);
        let mut expect_offset = 0u64;
        for i in 0..count {
            let s_start = r.u64()?;
            let s_end = r.u64()?;
            let s_frames = r.u32()?;
            let offset = r.u64()?;
            let length = r.u64()?;
            let index_len = r.u32()? as usize;
            let index = r.take(index_len)?.to_vec();
            if offset != expect_offset {
                return Err(Error::Segment {
                    segment: i,
                    reason: "samples not right after the previous segment's",
                });
            }
            expect_offset = offset.checked_add(length).ok_or(Error::Segment {
                segment: i,
                reason: "length overflows",
            })?;
            table.push((s_start, s_end, s_frames, length, index));
        }
        if expect_offset != total {
            return Err(Error::Object {
                at: 48,
                reason: "segment lengths do not add up to the sample bytes",
            });
        }
        let rest = bytes.len() - r.pos;
        if rest as u64 != total {
            return Err(Error::Object {
                at: r.pos,
                reason: "sample bytes do not match the header",
            });
        }
        let mut segments = Vec::with_capacity(count);
        for (s_start, s_end, _, length, index) in &table {
            segments.push(Segment {
                start_90k: *s_start,
                end_90k: *s_end,
                index: index.clone(),
                data: r.take(*length as usize)?.to_vec(),
            });
        }
        let obj = Self {
            prefix,
            seq,
            audio,
            sps,
            pps,
            segments,
        };
        let sum = obj.check()?;
        for (i, (_, _, f, _, _)) in table.iter().enumerate() {
            if *f != sum.segment_frames[i] {
                return Err(Error::Segment {
                    segment: i,
                    reason: "frame count does not match its index",
                });
            }
        }
        if (start, end, frames) != (sum.start_90k, sum.end_90k, sum.frames) {
            return Err(Error::Object {
                at: 28,
                reason: "start, end or frames do not match the segments",
            });
        }
        Ok((obj, sum))
    }
}

/// Checks one segment and returns its video frame count.
fn check_segment(i: usize, s: &Segment, audio: Option<AudioCodec>) -> Result<u32, Error> {
    let bad = |reason| Error::Segment { segment: i, reason };
    let samples = index::decode(&s.index, Some(s.data.len() as u64))
        .map_err(|source| Error::SegmentIndex { segment: i, source })?;
    let first = samples.first().ok_or_else(|| bad("no sample"))?;
    if first.sample.track != Track::Video || !first.sample.key {
        return Err(bad("does not start with a video key frame"));
    }
    let span = s.end_90k - s.start_90k;
    let mut frames = 0u32;
    for l in &samples {
        let at = l.offset as usize;
        let data = &s.data[at..at + l.sample.size as usize];
        match l.sample.track {
            Track::Video => {
                if l.sample.pts > span {
                    return Err(bad("a video frame is shown after the segment's end"));
                }
                let idr = avcc_has_idr(data).ok_or_else(|| bad("a video sample is not AVCC"))?;
                if frames == 0 && !idr {
                    return Err(bad("the first frame holds no IDR NAL unit"));
                }
                frames += 1;
            }
            Track::Audio if audio.is_none() => {
                return Err(bad("audio samples without an audio codec"));
            }
            Track::Audio => {}
        }
    }
    Ok(frames)
}

/// Whether an AVCC access unit holds an IDR slice; `None` if it is not AVCC.
fn avcc_has_idr(mut au: &[u8]) -> Option<bool> {
    let mut idr = false;
    while !au.is_empty() {
        let (len, rest) = au.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if len == 0 || len > rest.len() {
            return None;
        }
        idr |= rest[0] & 0x1f == 5;
        au = &rest[len..];
    }
    Some(idr)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or(Error::Object {
                at: self.pos,
                reason: "truncated",
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn sized16(&mut self) -> Result<&'a [u8], Error> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

/// Test and fuzz helpers: build valid objects.
#[doc(hidden)]
pub mod build {
    use peercam_record::index::{IndexEncoder, Sample, Track};

    use super::Segment;

    /// One AVCC access unit of one NAL unit: an IDR slice (type 5) or a non-IDR slice
    /// (type 1), `size` bytes in all (at least 5).
    pub fn access_unit(key: bool, size: usize, fill: u8) -> Vec<u8> {
        let size = size.max(5);
        let mut au = Vec::with_capacity(size);
        au.extend_from_slice(&((size - 4) as u32).to_be_bytes());
        au.push(if key { 0x65 } else { 0x41 });
        au.resize(size, fill);
        au
    }

    /// A segment starting at `start_90k`: `frames` video frames 40 ms apart (the first an
    /// IDR) of `frame_bytes` each, and with `audio`, 320 bytes of audio per frame.
    pub fn segment(start_90k: u64, frames: u32, frame_bytes: usize, audio: bool) -> Segment {
        let mut index = IndexEncoder::new();
        let mut data = Vec::new();
        for f in 0..u64::from(frames) {
            let au = access_unit(f == 0, frame_bytes, f as u8);
            let pushed = index.push(Sample {
                track: Track::Video,
                pts: f * 3600,
                size: au.len() as u32,
                key: f == 0,
            });
            debug_assert!(pushed.is_ok());
            data.extend_from_slice(&au);
            if audio {
                let pushed = index.push(Sample {
                    track: Track::Audio,
                    pts: f * 320,
                    size: 320,
                    key: false,
                });
                debug_assert!(pushed.is_ok());
                data.extend(std::iter::repeat_n(0xd5, 320));
            }
        }
        Segment {
            start_90k,
            end_90k: start_90k + u64::from(frames) * 3600,
            index: index.into_bytes(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::build::segment;
    use super::*;

    const P: Prefix = Prefix::from_bytes([3; 16]);
    /// 2026-12-07 06:00:00 UTC, 90 kHz.
    const T0: u64 = 1_796_623_200_000 * 90;

    fn object(segments: Vec<Segment>) -> Object {
        Object {
            prefix: P,
            seq: 42,
            audio: Some(AudioCodec::Pcma),
            sps: vec![0x67, 0x42, 0xc0, 0x1f],
            pps: vec![0x68, 0xce, 0x3c, 0x80],
            segments,
        }
    }

    fn two() -> Object {
        object(vec![
            segment(T0, 50, 600, true),
            segment(T0 + 50 * 3600, 50, 400, true),
        ])
    }

    #[test]
    fn h626_8_7_1_object_round_trips_deterministically() {
        let o = two();
        let bytes = o.encode().unwrap();
        assert_eq!(&bytes[..4], MAGIC);
        assert_eq!(o.encode().unwrap(), bytes);
        let (back, sum) = Object::decode(&bytes).unwrap();
        assert_eq!(back, o);
        assert_eq!(sum.frames, 100);
        assert_eq!(sum.bytes, 50 * 920 + 50 * 720);
        assert_eq!(sum.encoded_len, bytes.len());
        assert_eq!(sum.start_ms(), 1_796_623_200_000);
        assert_eq!(sum.end_ms(), 1_796_623_204_000);
        assert_eq!(
            o.key().unwrap().to_string(),
            format!("{P}/2026/12/07/1796623200000-0000000042.seg")
        );
    }

    #[test]
    fn h626_8_7_1_object_layout_by_hand() {
        // One segment of one 6-byte IDR frame, no audio.
        let o = Object {
            audio: None,
            sps: vec![0x67],
            pps: vec![0x68, 0x01],
            segments: vec![segment(T0, 1, 6, false)],
            ..object(vec![])
        };
        let mut want = b"PCO1".to_vec();
        want.extend_from_slice(&[3; 16]);
        want.extend_from_slice(&42u64.to_be_bytes());
        want.extend_from_slice(&T0.to_be_bytes());
        want.extend_from_slice(&(T0 + 3600).to_be_bytes());
        want.extend_from_slice(&1u32.to_be_bytes());
        want.extend_from_slice(&6u64.to_be_bytes());
        want.push(0);
        want.extend_from_slice(&[0, 1, 0x67, 0, 2, 0x68, 0x01]);
        want.extend_from_slice(&1u16.to_be_bytes());
        want.extend_from_slice(&T0.to_be_bytes());
        want.extend_from_slice(&(T0 + 3600).to_be_bytes());
        want.extend_from_slice(&1u32.to_be_bytes());
        want.extend_from_slice(&0u64.to_be_bytes());
        want.extend_from_slice(&6u64.to_be_bytes());
        // Index: pts delta 0, video, key -> 0x01; size 6.
        want.extend_from_slice(&2u32.to_be_bytes());
        want.extend_from_slice(&[0x01, 0x06]);
        want.extend_from_slice(&[0, 0, 0, 2, 0x65, 0]);
        assert_eq!(o.encode().unwrap(), want);
    }

    #[test]
    fn h626_8_7_1_object_start_within_30_days_back_5_min_ahead() {
        let now = 1_796_623_200_000;
        assert!(Object::check_time(now, now).is_ok());
        assert!(Object::check_time(now - MAX_AGE_MS, now).is_ok());
        assert!(Object::check_time(now - MAX_AGE_MS - 1, now).is_err());
        assert!(Object::check_time(now + MAX_AHEAD_MS, now).is_ok());
        assert!(Object::check_time(now + MAX_AHEAD_MS + 1, now).is_err());
        assert!(Object::check_time(0, 0).is_ok());
        assert!(Object::check_time(u64::MAX, u64::MAX).is_ok());
    }

    #[test]
    fn h626_8_7_1_object_refuses_bad_segments() {
        let err = |o: Object| o.encode().unwrap_err();
        // Overlapping in time.
        let o = object(vec![
            segment(T0, 50, 600, true),
            segment(T0 + 49 * 3600, 50, 400, true),
        ]);
        assert!(matches!(err(o), Error::Segment { segment: 1, .. }));
        // Not starting with a key frame.
        let mut o = two();
        let mut s = segment(T0 + 50 * 3600, 3, 400, false);
        let mut e = index::IndexEncoder::new();
        for l in index::decode(&s.index, None).unwrap() {
            let mut sample = l.sample;
            sample.key = false;
            e.push(sample).unwrap();
        }
        s.index = e.into_bytes();
        o.segments[1] = s;
        assert!(matches!(err(o), Error::Segment { segment: 1, .. }));
        // Key flag set but no IDR NAL unit in the bytes.
        let mut o = two();
        o.segments[0].data[4] = 0x41;
        assert!(matches!(err(o), Error::Segment { segment: 0, .. }));
        // A sample that is not AVCC.
        let mut o = two();
        o.segments[0].data[920 + 3] = 0xff;
        assert!(matches!(err(o), Error::Segment { segment: 0, .. }));
        // Audio without a codec.
        let mut o = two();
        o.audio = None;
        assert!(matches!(err(o), Error::Segment { segment: 0, .. }));
        // Index and data lengths disagree.
        let mut o = two();
        o.segments[1].data.push(0);
        assert!(matches!(err(o), Error::SegmentIndex { segment: 1, .. }));
        // Too long, too many, nothing.
        let long = object(vec![
            segment(T0, 10, 100, false),
            segment(T0 + MAX_SPAN_90K, 1, 100, false),
        ]);
        assert!(matches!(err(long), Error::ObjectLimit { .. }));
        let many = object(
            (0..=MAX_SEGMENTS as u64)
                .map(|i| segment(T0 + i * 3600, 1, 100, false))
                .collect(),
        );
        assert!(matches!(err(many), Error::ObjectLimit { .. }));
        assert!(matches!(err(object(vec![])), Error::Object { .. }));
        let big = object(vec![segment(T0, 10, 900_000, false)]);
        assert!(matches!(err(big), Error::ObjectLimit { .. }));
        let mut o = two();
        o.sps.clear();
        assert!(matches!(err(o), Error::Object { .. }));
        // A gap between segments is allowed (a run may skip a moment).
        let gap = object(vec![
            segment(T0, 10, 100, false),
            segment(T0 + 20 * 3600, 10, 100, false),
        ]);
        assert!(gap.encode().is_ok());
    }

    #[test]
    fn h626_8_7_1_object_decoder_refuses_inconsistent_totals() {
        let bytes = two().encode().unwrap();
        let patch = |at: usize, v: u8| {
            let mut b = bytes.clone();
            b[at] ^= v;
            Object::decode(&b)
        };
        assert!(patch(0, 1).is_err(), "magic");
        assert!(patch(35, 1).is_err(), "start");
        assert!(patch(43, 1).is_err(), "end");
        assert!(patch(47, 1).is_err(), "frames");
        assert!(patch(55, 1).is_err(), "bytes");
        assert!(patch(56, 7).is_err(), "audio codec");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Object::decode(&longer).is_err(), "trailing byte");
        assert!(Object::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Object::decode(&[]).is_err());
        // Segment table: frames and offset of segment 0.
        let table = FIXED + 4 + 2 + 4 + 2;
        assert!(patch(table + 19, 1).is_err(), "segment frames");
        assert!(patch(table + 27, 1).is_err(), "segment offset");
        assert!(patch(table + 35, 1).is_err(), "segment length");
    }

    fn arb_object() -> impl Strategy<Value = Object> {
        (
            any::<[u8; 16]>(),
            0..=MAX_SEQ,
            0u64..(1 << 47),
            proptest::collection::vec((1u32..30, 5usize..200, 0u64..3), 1..5),
            prop::sample::select(vec![
                None,
                Some(AudioCodec::Pcmu),
                Some(AudioCodec::Pcma),
                Some(AudioCodec::G722),
            ]),
            proptest::collection::vec(any::<u8>(), 1..40),
        )
            .prop_map(|(p, seq, start, segs, audio, sps)| {
                let mut t = start;
                let segments = segs
                    .into_iter()
                    .map(|(frames, size, gap)| {
                        let s = segment(t + gap, frames, size, audio.is_some());
                        t = s.end_90k;
                        s
                    })
                    .collect();
                Object {
                    prefix: Prefix::from_bytes(p),
                    seq,
                    audio,
                    pps: sps.iter().rev().copied().collect(),
                    sps,
                    segments,
                }
            })
    }

    proptest! {
        #[test]
        fn h626_8_7_1_object_property_round_trip(o in arb_object()) {
            let bytes = o.encode().unwrap();
            let (back, sum) = Object::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &o);
            prop_assert_eq!(sum.encoded_len, bytes.len());
        }

        #[test]
        fn h626_8_7_1_object_changed_byte_is_refused_or_canonical(
            o in arb_object(),
            at in any::<prop::sample::Index>(),
            x in 1u8..,
        ) {
            let mut bytes = o.encode().unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= x;
            if let Ok((back, _)) = Object::decode(&bytes) {
                // Only sample payloads, prefix, seq and parameter sets are free; what
                // decodes encodes back to the same bytes.
                prop_assert_eq!(back.encode().unwrap(), bytes);
            }
        }
    }
}
