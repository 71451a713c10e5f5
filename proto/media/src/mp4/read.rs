//! The MP4 reader: a box walker and the parse of `moov` into tracks and sample tables.

use super::walk::{Boxes, Mp4Box, boxes};
use crate::Error;
use crate::mp4::{AvcConfig, FourCc};

/// The movie: what `moov` says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Movie {
    /// `mvhd` timescale.
    pub timescale: u32,
    /// `mvhd` duration, in `timescale` units.
    pub duration: u64,
    /// The tracks, in file order.
    pub tracks: Vec<Track>,
}

impl Movie {
    /// Parses a whole MP4 file held in memory, and checks that every sample lies inside it.
    pub fn parse(file: &[u8]) -> Result<Self, Error> {
        let mut moov = None;
        for b in boxes(file) {
            let b = b?;
            if b.kind.0 == *b"moov" {
                if moov.is_some() {
                    return Err(Error::invalid("file", b.offset as usize, "second moov box"));
                }
                moov = Some(b);
            }
        }
        let moov = moov.ok_or_else(|| Error::invalid("file", 0, "no moov box"))?;
        let movie = Self::from_box(&moov)?;
        for t in &movie.tracks {
            t.check_extents(file.len() as u64)?;
        }
        Ok(movie)
    }

    /// Parses the body of a `moov` box (without its header), read from a file too large to
    /// hold. Sample offsets are not checked: call [`Track::check_extents`].
    pub fn parse_moov(body: &[u8]) -> Result<Self, Error> {
        Self::from_box(&Mp4Box {
            kind: FourCc(*b"moov"),
            offset: 0,
            header_len: 0,
            body,
        })
    }

    fn from_box(moov: &Mp4Box<'_>) -> Result<Self, Error> {
        let mut r = moov.need(b"mvhd", "moov")?.reader("mvhd");
        let v1 = r.version()?;
        r.skip(if v1 { 16 } else { 8 })?;
        let timescale = r.u32()?;
        let duration = r.duration(v1)?;
        let mut tracks = Vec::new();
        for b in moov.children() {
            let b = b?;
            if b.kind.0 == *b"trak" {
                tracks.push(Track::parse(&b)?);
            }
        }
        Ok(Self {
            timescale,
            duration,
            tracks,
        })
    }

    /// The first video track.
    pub fn video(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.handler == FourCc::VIDE)
    }

    /// The first audio track.
    pub fn audio(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.handler == FourCc::SOUN)
    }
}

/// One track: header fields, sample entry and sample tables.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Track {
    /// `track_ID`.
    pub id: u32,
    /// `hdlr` handler type: `vide`, `soun`, ...
    pub handler: FourCc,
    /// `mdhd` timescale, ticks per second.
    pub timescale: u32,
    /// `mdhd` duration, in `timescale` units.
    pub duration: u64,
    /// `tkhd` width, in pixels (integer part of the 16.16 value); 0 for audio.
    pub width: u32,
    /// `tkhd` height, in pixels.
    pub height: u32,
    /// The first sample entry of `stsd`.
    pub entry: SampleEntry,
    tables: Tables,
}

/// The first sample entry of a track (`stsd`), as far as this crate understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SampleEntry {
    /// H.264: `avc1` or `avc3`, with its `avcC`.
    Avc {
        /// `avc1` or `avc3`.
        format: FourCc,
        /// Width from the sample entry.
        width: u16,
        /// Height from the sample entry.
        height: u16,
        /// The decoder configuration.
        config: AvcConfig,
    },
    /// Any entry of a sound track.
    Audio {
        /// `ulaw`, `alaw`, `mp4a`, ...
        format: FourCc,
        /// `channelcount`.
        channels: u16,
        /// `samplesize`, in bits.
        sample_size: u16,
        /// Integer part of `samplerate`, in Hz.
        sample_rate: u32,
    },
    /// Anything else.
    Other(FourCc),
}

/// One sample, as listed by [`Track::samples`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Sample number, from 1.
    pub number: u32,
    /// Offset of the data in the file.
    pub offset: u64,
    /// Size of the data.
    pub size: u32,
    /// Decode time, in track timescale units from the start of the track.
    pub dts: u64,
    /// Duration, in track timescale units.
    pub duration: u32,
    /// Whether the sample is a sync sample (random access point).
    pub is_sync: bool,
}

impl Sample {
    /// The sample's bytes in `file`; `None` if they lie outside it.
    pub fn data<'a>(&self, file: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        file.get(start..)?.get(..usize::try_from(self.size).ok()?)
    }
}

/// One chunk: samples stored contiguously, as listed by [`Track::chunks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Offset of the chunk in the file.
    pub offset: u64,
    /// Number of the chunk's first sample, from 1.
    pub first_sample: u64,
    /// Number of samples.
    pub samples: u32,
    /// Total bytes of the samples.
    pub size: u64,
}

impl Chunk {
    /// The chunk's bytes in `file`; `None` if they lie outside it.
    pub fn data<'a>(&self, file: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        file.get(start..)?.get(..usize::try_from(self.size).ok()?)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tables {
    /// (sample_count, sample_delta)
    stts: Vec<(u32, u32)>,
    /// Sync sample numbers; `None` when every sample is a sync sample.
    stss: Option<Vec<u32>>,
    /// (first_chunk, samples_per_chunk)
    stsc: Vec<(u32, u32)>,
    sizes: Sizes,
    chunk_offsets: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Sizes {
    Constant { size: u32, count: u32 },
    Each(Vec<u32>),
}

impl Sizes {
    fn count(&self) -> u32 {
        match self {
            Self::Constant { count, .. } => *count,
            Self::Each(v) => v.len() as u32,
        }
    }

    /// Size of sample `index` (from 0).
    fn get(&self, index: usize) -> u32 {
        match self {
            Self::Constant { size, .. } => *size,
            Self::Each(v) => v.get(index).copied().unwrap_or(0),
        }
    }

    /// Total size of `n` samples from `index`.
    fn sum(&self, index: u64, n: u32) -> u64 {
        match self {
            Self::Constant { size, .. } => u64::from(*size) * u64::from(n),
            Self::Each(v) => {
                let start = usize::try_from(index).unwrap_or(usize::MAX);
                let end = start.saturating_add(n as usize);
                v.get(start..end.min(v.len()))
                    .map_or(0, |s| s.iter().map(|x| u64::from(*x)).sum())
            }
        }
    }
}

impl Track {
    fn parse(trak: &Mp4Box<'_>) -> Result<Self, Error> {
        let mut r = trak.need(b"tkhd", "trak")?.reader("tkhd");
        let v1 = r.version()?;
        r.skip(if v1 { 16 } else { 8 })?;
        let id = r.u32()?;
        r.skip(4)?;
        r.duration(v1)?;
        r.skip(8 + 8 + 36)?;
        let width = r.u32()? >> 16;
        let height = r.u32()? >> 16;

        let mdia = trak.need(b"mdia", "trak")?;
        let mut r = mdia.need(b"mdhd", "mdia")?.reader("mdhd");
        let v1 = r.version()?;
        r.skip(if v1 { 16 } else { 8 })?;
        let timescale = r.u32()?;
        if timescale == 0 {
            return Err(r.invalid("timescale is zero"));
        }
        let duration = r.duration(v1)?;
        let mut r = mdia.need(b"hdlr", "mdia")?.reader("hdlr");
        r.version()?;
        r.skip(4)?;
        let handler = r.fourcc()?;

        let stbl = mdia.need(b"minf", "mdia")?.need(b"stbl", "minf")?;
        let entry = parse_stsd(&stbl.need(b"stsd", "stbl")?, handler)?;
        let tables = parse_tables(&stbl)?;
        Ok(Self {
            id,
            handler,
            timescale,
            duration,
            width,
            height,
            entry,
            tables,
        })
    }

    /// Number of samples.
    pub fn sample_count(&self) -> u32 {
        self.tables.sizes.count()
    }

    /// Number of sync samples.
    pub fn sync_count(&self) -> u32 {
        self.tables
            .stss
            .as_ref()
            .map_or_else(|| self.sample_count(), |s| s.len() as u32)
    }

    /// Sum of the sample durations, in timescale units.
    pub fn sample_duration_total(&self) -> u64 {
        self.tables.stts.iter().fold(0u64, |acc, (n, d)| {
            acc.saturating_add(u64::from(*n) * u64::from(*d))
        })
    }

    /// The samples in decoding order.
    pub fn samples(&self) -> Samples<'_> {
        Samples {
            t: &self.tables,
            index: 0,
            count: self.sample_count(),
            chunk: 0,
            run: 0,
            left: 0,
            offset: 0,
            stts_run: 0,
            stts_left: 0,
            delta: 0,
            dts: 0,
            stss_pos: 0,
        }
    }

    /// The chunks in file order.
    pub fn chunks(&self) -> impl Iterator<Item = Chunk> + '_ {
        let t = &self.tables;
        let mut run = 0;
        let mut sample = 0u64;
        t.chunk_offsets.iter().enumerate().map(move |(i, &offset)| {
            while t.stsc.get(run + 1).is_some_and(|r| r.0 as usize <= i + 1) {
                run += 1;
            }
            let samples = t.stsc.get(run).map_or(0, |r| r.1);
            let size = t.sizes.sum(sample, samples);
            let chunk = Chunk {
                offset,
                first_sample: sample + 1,
                samples,
                size,
            };
            sample += u64::from(samples);
            chunk
        })
    }

    /// Checks that all sample data lies within the first `file_len` bytes of the file.
    pub fn check_extents(&self, file_len: u64) -> Result<(), Error> {
        for c in self.chunks() {
            if c.offset
                .checked_add(c.size)
                .is_none_or(|end| end > file_len)
            {
                return Err(Error::Invalid {
                    context: "chunk",
                    offset: c.offset,
                    reason: "sample data past the end of the file",
                });
            }
        }
        Ok(())
    }
}

/// Iterator returned by [`Track::samples`].
#[derive(Debug, Clone)]
pub struct Samples<'a> {
    t: &'a Tables,
    index: u32,
    count: u32,
    chunk: usize,
    run: usize,
    left: u32,
    offset: u64,
    stts_run: usize,
    stts_left: u32,
    delta: u32,
    dts: u64,
    stss_pos: usize,
}

impl Iterator for Samples<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if self.index >= self.count {
            return None;
        }
        let t = self.t;
        while self.left == 0 {
            self.offset = *t.chunk_offsets.get(self.chunk)?;
            while t
                .stsc
                .get(self.run + 1)
                .is_some_and(|r| r.0 as usize <= self.chunk + 1)
            {
                self.run += 1;
            }
            self.left = t.stsc.get(self.run)?.1;
            self.chunk += 1;
        }
        while self.stts_left == 0 {
            (self.stts_left, self.delta) = *t.stts.get(self.stts_run)?;
            self.stts_run += 1;
        }
        let number = self.index + 1;
        let is_sync = match &t.stss {
            None => true,
            Some(s) => {
                while s.get(self.stss_pos).is_some_and(|n| *n < number) {
                    self.stss_pos += 1;
                }
                s.get(self.stss_pos) == Some(&number)
            }
        };
        let size = t.sizes.get(self.index as usize);
        let sample = Sample {
            number,
            offset: self.offset,
            size,
            dts: self.dts,
            duration: self.delta,
            is_sync,
        };
        self.offset = self.offset.saturating_add(u64::from(size));
        self.dts = self.dts.saturating_add(u64::from(self.delta));
        self.left -= 1;
        self.stts_left -= 1;
        self.index += 1;
        Some(sample)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.count - self.index) as usize;
        (0, Some(n))
    }
}

fn parse_stsd(stsd: &Mp4Box<'_>, handler: FourCc) -> Result<SampleEntry, Error> {
    let mut r = stsd.reader("stsd");
    r.version()?;
    if r.u32()? == 0 {
        return Err(r.invalid("no sample entry"));
    }
    let entry = Boxes::at(r.rest(), r.file_offset())
        .next()
        .ok_or_else(|| r.truncated())??;
    let mut r = entry.reader("sample entry");
    if matches!(&entry.kind.0, b"avc1" | b"avc3") {
        r.skip(24)?;
        let width = r.u16()?;
        let height = r.u16()?;
        r.skip(50)?;
        let children = Boxes::at(r.rest(), r.file_offset());
        let mut config = None;
        for b in children {
            let b = b?;
            if b.kind.0 == *b"avcC" {
                config = Some(AvcConfig::parse(b.body)?);
                break;
            }
        }
        let config = config.ok_or_else(|| r.invalid("avc1 without avcC"))?;
        return Ok(SampleEntry::Avc {
            format: entry.kind,
            width,
            height,
            config,
        });
    }
    if handler == FourCc::SOUN {
        r.skip(16)?;
        let channels = r.u16()?;
        let sample_size = r.u16()?;
        r.skip(4)?;
        let sample_rate = r.u32()? >> 16;
        return Ok(SampleEntry::Audio {
            format: entry.kind,
            channels,
            sample_size,
            sample_rate,
        });
    }
    Ok(SampleEntry::Other(entry.kind))
}

fn parse_tables(stbl: &Mp4Box<'_>) -> Result<Tables, Error> {
    let mut r = stbl.need(b"stts", "stbl")?.reader("stts");
    r.version()?;
    let n = r.count(8)?;
    let stts = (0..n)
        .map(|_| Ok((r.u32()?, r.u32()?)))
        .collect::<Result<Vec<_>, Error>>()?;

    let sizes = match (stbl.child(b"stsz")?, stbl.child(b"stz2")?) {
        (Some(b), _) => {
            let mut r = b.reader("stsz");
            r.version()?;
            let size = r.u32()?;
            if size != 0 {
                Sizes::Constant {
                    size,
                    count: r.u32()?,
                }
            } else {
                let n = r.count(4)?;
                Sizes::Each((0..n).map(|_| r.u32()).collect::<Result<_, _>>()?)
            }
        }
        (None, Some(_)) => {
            return Err(Error::Unsupported {
                context: "stbl",
                reason: "compact sample sizes (stz2)",
            });
        }
        (None, None) => return Err(Error::invalid("stbl", stbl.offset as usize, "no stsz")),
    };
    let count = u64::from(sizes.count());

    let mut r = stbl.need(b"stsc", "stbl")?.reader("stsc");
    r.version()?;
    let n = r.count(12)?;
    let mut stsc = Vec::with_capacity(n);
    for _ in 0..n {
        let (first, per_chunk, _description) = (r.u32()?, r.u32()?, r.u32()?);
        if first == 0 || per_chunk == 0 || stsc.last().is_some_and(|(f, _)| *f >= first) {
            return Err(r.invalid("first_chunk not increasing from 1, or an empty chunk run"));
        }
        stsc.push((first, per_chunk));
    }

    let chunk_offsets = match (stbl.child(b"stco")?, stbl.child(b"co64")?) {
        (Some(b), _) => {
            let mut r = b.reader("stco");
            r.version()?;
            let n = r.count(4)?;
            (0..n)
                .map(|_| r.u32().map(u64::from))
                .collect::<Result<Vec<_>, _>>()?
        }
        (None, Some(b)) => {
            let mut r = b.reader("co64");
            r.version()?;
            let n = r.count(8)?;
            (0..n).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?
        }
        (None, None) => {
            return Err(Error::invalid(
                "stbl",
                stbl.offset as usize,
                "no stco or co64",
            ));
        }
    };

    let stss = match stbl.child(b"stss")? {
        None => None,
        Some(b) => {
            let mut r = b.reader("stss");
            r.version()?;
            let n = r.count(4)?;
            let mut v: Vec<u32> = Vec::with_capacity(n);
            for _ in 0..n {
                let s = r.u32()?;
                if s == 0 || u64::from(s) > count || v.last().is_some_and(|p| *p >= s) {
                    return Err(r.invalid("sync sample numbers not increasing within the track"));
                }
                v.push(s);
            }
            Some(v)
        }
    };

    // Cross-checks: every table describes the same samples.
    let bad = |reason| Err(Error::invalid("stbl", stbl.offset as usize, reason));
    let timed: u64 = stts.iter().map(|(n, _)| u64::from(*n)).sum();
    if timed != count {
        return bad("stts and stsz count different samples");
    }
    let chunks = chunk_offsets.len() as u64;
    let mut chunked = 0u64;
    for (i, (first, per_chunk)) in stsc.iter().enumerate() {
        let next = stsc.get(i + 1).map_or(chunks + 1, |r| u64::from(r.0));
        if u64::from(*first) > chunks || next > chunks + 1 {
            return bad("stsc names a chunk past stco");
        }
        chunked = chunked.saturating_add((next - u64::from(*first)) * u64::from(*per_chunk));
    }
    if chunked != count || (count > 0 && stsc.first().is_none_or(|r| r.0 != 1)) {
        return bad("stsc and stsz count different samples");
    }
    Ok(Tables {
        stts,
        stss,
        stsc,
        sizes,
        chunk_offsets,
    })
}
