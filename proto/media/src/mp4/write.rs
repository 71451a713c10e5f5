//! The MP4 muxer: sample tables, `moov`, and the two writers around them.

use crate::Error;
use crate::annexb::{self, NalType};
use crate::mp4::{AvcConfig, FourCc};
use crate::sps::Sps;
use peercam_rtp::aac::AacConfig;
use peercam_rtp::g711::Law;

/// The video track: H.264 parameter sets and the timescale of the timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    /// The SPS NAL unit (no start code).
    pub sps: Vec<u8>,
    /// The PPS NAL unit (no start code).
    pub pps: Vec<u8>,
    /// Ticks per second of the video timestamps and of the track (`mdhd`).
    pub timescale: u32,
}

impl VideoParams {
    /// The usual RTP clock rate of H.264, and the default timescale.
    pub const TIMESCALE_90K: u32 = 90_000;

    /// Parameters with the 90 kHz timescale.
    pub fn new(sps: Vec<u8>, pps: Vec<u8>) -> Self {
        Self {
            sps,
            pps,
            timescale: Self::TIMESCALE_90K,
        }
    }

    /// The first SPS and PPS of an Annex B stream, with the 90 kHz timescale.
    pub fn from_annexb(stream: &[u8]) -> Option<Self> {
        let find = |t| annexb::split(stream).find(|n| NalType::of(n) == Some(t));
        Some(Self::new(
            find(NalType::SPS)?.to_vec(),
            find(NalType::PPS)?.to_vec(),
        ))
    }
}

/// The sample entry format of a G.711 track: `ulaw` or `alaw`.
pub fn audio_fourcc(law: Law) -> FourCc {
    match law {
        Law::MuLaw => FourCc::ULAW,
        Law::ALaw => FourCc::ALAW,
    }
}

/// The code of a zero sample, used to fill holes.
fn silence(law: Law) -> u8 {
    law.encode(0)
}

/// The audio track: G.711, 8000 Hz, mono.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioParams {
    /// µ-law or A-law.
    pub law: Law,
}

impl AudioParams {
    /// Samples per second, and the audio track's timescale.
    pub const SAMPLE_RATE: u32 = 8000;
}

/// Where to write the final `mdat` size once [`Mp4StreamWriter::finish`] has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdatPatch {
    /// Offset from the start of the file.
    pub offset: u64,
    /// The bytes to write there (a big-endian 64-bit box size).
    pub bytes: [u8; 8],
}

/// Builds a fast-start MP4 file in memory. See the [module docs](crate::mp4).
#[derive(Debug)]
pub struct Mp4Writer {
    mux: Muxer,
    mdat: Vec<u8>,
}

impl Mp4Writer {
    /// A writer for one video track and, optionally, one audio track.
    ///
    /// Fails if the SPS does not parse or the parameter sets are unusable.
    pub fn new(video: VideoParams, audio: Option<AudioParams>) -> Result<Self, Error> {
        Ok(Self {
            mux: Muxer::new(video, audio, 0)?,
            mdat: Vec::new(),
        })
    }

    /// Sets the creation and modification time of the movie and tracks.
    pub fn with_creation_time(mut self, unix_secs: u64) -> Self {
        self.mux.creation_time = unix_secs + UNIX_TO_1904;
        self
    }

    /// Adds one access unit given as Annex B bytes. `pts` is in video timescale units and
    /// must increase; `is_key` marks a sync sample (an IDR access unit).
    ///
    /// On error nothing was added.
    pub fn push_video(&mut self, annexb: &[u8], pts: u64, is_key: bool) -> Result<(), Error> {
        self.mux
            .push_video(annexb::split(annexb), pts, is_key, &mut self.mdat)
    }

    /// Adds one access unit given as NAL units (no start codes), as [`push_video`](Self::push_video).
    pub fn push_video_nals<I>(&mut self, nals: I, pts: u64, is_key: bool) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.mux.push_video(nals, pts, is_key, &mut self.mdat)
    }

    /// Adds G.711 bytes (one per sample) captured at `pts`, in 8 kHz units.
    ///
    /// Fails with [`Error::Misuse`] if the writer has no audio track.
    pub fn push_audio(&mut self, bytes: &[u8], pts: u64) -> Result<(), Error> {
        self.mux.push_audio(bytes, pts, &mut self.mdat)
    }

    /// The complete file: `ftyp`, `moov`, `mdat`. Fails if no video sample was added.
    pub fn finish(self) -> Result<Vec<u8>, Error> {
        let mut mux = self.mux;
        let mut file = fast_start_head(&mut mux, self.mdat.len() as u64)?;
        file.extend_from_slice(&self.mdat);
        Ok(file)
    }
}

/// `ftyp`, `moov` (chunk offsets past itself) and the `mdat` header of a fast-start file
/// whose media, `data_len` bytes, follows at once.
fn fast_start_head(mux: &mut Muxer, data_len: u64) -> Result<Vec<u8>, Error> {
    mux.close()?;
    let ftyp = ftyp();
    let mdat_header = if data_len + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    let mut co64 = false;
    let mut moov = mux.moov(0, co64)?;
    let base = (ftyp.len() + moov.len() + mdat_header) as u64;
    if base + data_len > u64::from(u32::MAX) {
        co64 = true;
        moov = mux.moov(0, co64)?;
    }
    let base = (ftyp.len() + moov.len() + mdat_header) as u64;
    moov = mux.moov(base, co64)?;
    let mut head = Vec::with_capacity(base as usize);
    head.extend_from_slice(&ftyp);
    head.extend_from_slice(&moov);
    if mdat_header == 16 {
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&(data_len + 16).to_be_bytes());
    } else {
        head.extend_from_slice(&((data_len + 8) as u32).to_be_bytes());
        head.extend_from_slice(b"mdat");
    }
    Ok(head)
}

/// Where a G.711 chunk given to [`Mp4Layout::audio`] lands in the `mdat`: `silence` bytes of
/// the law's zero code first (a hole filled), then bytes `skip..skip + take` of the chunk
/// (an overlap trimmed at the front). All zero when the chunk adds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioPlacement {
    /// Silence bytes before the chunk's own.
    pub silence: u64,
    /// The byte value of silence.
    pub fill: u8,
    /// Bytes left out at the chunk's start.
    pub skip: usize,
    /// Bytes of the chunk kept.
    pub take: usize,
}

/// Plans a fast-start MP4 whose media the caller already holds elsewhere (segment files):
/// the same sample tables as [`Mp4Writer`], fed with sample sizes instead of bytes.
///
/// The caller lays out the `mdat` payload itself, in the order of its calls: each video
/// sample's `size` bytes, each AAC unit's, and for G.711 what [`Mp4Layout::audio`] says.
/// [`finish`](Self::finish) returns everything before that payload (`ftyp`, `moov`, the
/// `mdat` header), so the file is the head followed by [`media_len`](Self::media_len) bytes.
#[derive(Debug)]
pub struct Mp4Layout {
    mux: Muxer,
}

impl Mp4Layout {
    /// A layout for one video track and, optionally, one G.711 track.
    pub fn new(video: VideoParams, audio: Option<AudioParams>) -> Result<Self, Error> {
        Ok(Self {
            mux: Muxer::new(video, audio, 0)?,
        })
    }

    /// A layout with an AAC track instead (as [`Mp4StreamWriter::with_aac`]).
    pub fn with_aac(video: VideoParams, aac: AacConfig) -> Result<Self, Error> {
        let mut mux = Muxer::new(video, None, 0)?;
        mux.aac = Some(AacTrack::new(aac));
        Ok(Self { mux })
    }

    /// Sets the creation and modification time of the movie and tracks.
    pub fn with_creation_time(mut self, unix_secs: u64) -> Self {
        self.mux.creation_time = unix_secs + UNIX_TO_1904;
        self
    }

    /// One video sample of `size` bytes (AVCC, 4-byte lengths, no parameter sets other than
    /// the track's) at `pts`; as [`Mp4Writer::push_video`].
    pub fn video(&mut self, size: u32, pts: u64, is_key: bool) -> Result<(), Error> {
        let delta = self.mux.video_delta(pts)?;
        if size == 0 {
            return Err(Error::Misuse("empty video sample"));
        }
        self.mux.note_video(delta, size, pts, is_key);
        Ok(())
    }

    /// A G.711 chunk of `len` bytes captured at `pts` (8 kHz); where its bytes go. Audio
    /// comes after the first video sample here (nothing is held back).
    pub fn audio(&mut self, len: usize, pts: u64) -> Result<AudioPlacement, Error> {
        if self.mux.video.first_pts.is_none() {
            return Err(Error::Misuse("audio before the first video sample"));
        }
        Ok(self.mux.place_audio(len, pts)?.unwrap_or_default())
    }

    /// An AAC access unit of `size` bytes at `pts` (8 kHz); `false` when it is left out
    /// (before the first picture). Comes after the first video sample.
    pub fn aac(&mut self, size: usize, pts: u64) -> Result<bool, Error> {
        if self.mux.video.first_pts.is_none() {
            return Err(Error::Misuse("audio before the first video sample"));
        }
        self.mux.place_aac(size, pts)
    }

    /// Bytes of `mdat` payload laid out so far.
    pub fn media_len(&self) -> u64 {
        self.mux.pos
    }

    /// `ftyp`, `moov` and the `mdat` header; the payload follows. Fails if no video sample
    /// was given.
    pub fn finish(self) -> Result<Vec<u8>, Error> {
        let mut mux = self.mux;
        let len = mux.pos;
        fast_start_head(&mut mux, len)
    }
}

/// Streams an MP4 file: media first, `moov` last. See the [module docs](crate::mp4).
///
/// Every method appends to the `out` buffer it is given; the caller writes those bytes to
/// the file in order, and nothing else, then applies the [`MdatPatch`] from
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct Mp4StreamWriter {
    mux: Muxer,
    mdat_start: u64,
}

impl Mp4StreamWriter {
    /// Starts a file: appends `ftyp` and a 64-bit `mdat` header to `out`.
    pub fn new(
        video: VideoParams,
        audio: Option<AudioParams>,
        out: &mut Vec<u8>,
    ) -> Result<Self, Error> {
        Self::new_at(video, audio, 0, out)
    }

    /// As [`new`](Self::new), for output that lands at offset `start` of the file.
    pub(crate) fn new_at(
        video: VideoParams,
        audio: Option<AudioParams>,
        start: u64,
        out: &mut Vec<u8>,
    ) -> Result<Self, Error> {
        let ftyp = ftyp();
        let mdat_start = start + ftyp.len() as u64;
        let mux = Muxer::new(video, audio, mdat_start + 16)?;
        out.extend_from_slice(&ftyp);
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend_from_slice(&0u64.to_be_bytes());
        Ok(Self { mux, mdat_start })
    }

    /// Sets the creation and modification time of the movie and tracks.
    pub fn with_creation_time(mut self, unix_secs: u64) -> Self {
        self.mux.creation_time = unix_secs + UNIX_TO_1904;
        self
    }

    /// As [`Mp4Writer::push_video`]; the sample is appended to `out`.
    pub fn push_video(
        &mut self,
        annexb: &[u8],
        pts: u64,
        is_key: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        self.mux.push_video(annexb::split(annexb), pts, is_key, out)
    }

    /// As [`Mp4Writer::push_video_nals`]; the sample is appended to `out`.
    pub fn push_video_nals<I>(
        &mut self,
        nals: I,
        pts: u64,
        is_key: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.mux.push_video(nals, pts, is_key, out)
    }

    /// As [`Mp4Writer::push_audio`]; the samples are appended to `out`.
    pub fn push_audio(&mut self, bytes: &[u8], pts: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        self.mux.push_audio(bytes, pts, out)
    }

    /// Starts a file with an AAC audio track instead of a G.711 one: an `mp4a` sample entry
    /// with an `esds` box holding `aac`'s AudioSpecificConfig (ISO/IEC 14496-14 5.6), the
    /// track's timescale its sample rate.
    pub fn with_aac(video: VideoParams, aac: AacConfig, out: &mut Vec<u8>) -> Result<Self, Error> {
        let mut w = Self::new_at(video, None, 0, out)?;
        w.mux.aac = Some(AacTrack::new(aac));
        Ok(w)
    }

    /// One AAC access unit captured at `pts`, in 8 kHz units (as [`Self::push_audio`]). Fails
    /// with [`Error::Misuse`] without an AAC track.
    pub fn push_aac(&mut self, au: &[u8], pts: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        self.mux.push_aac(au, pts, out)
    }

    /// Bytes of the file so far (everything appended to the `out` buffers).
    pub fn position(&self) -> u64 {
        self.mux.pos
    }

    /// Appends `moov` to `out` and returns the `mdat` size to patch in.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<MdatPatch, Error> {
        let mut mux = self.mux;
        mux.close()?;
        let co64 = mux.pos > u64::from(u32::MAX);
        out.extend_from_slice(&mux.moov(0, co64)?);
        Ok(MdatPatch {
            offset: self.mdat_start + 8,
            bytes: (mux.pos - self.mdat_start).to_be_bytes(),
        })
    }
}

/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
const UNIX_TO_1904: u64 = 2_082_844_800;
/// Audio held back until the first video sample fixes time zero: 10 s.
const MAX_PENDING_AUDIO: usize = 80_000;
/// The longest hole in the audio filled with silence: one hour.
const MAX_AUDIO_GAP: u64 = 8000 * 3600;
/// Movie timescale (`mvhd`): milliseconds.
const MOVIE_TIMESCALE: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Video,
    Audio,
}

/// A run of consecutive samples of one track in the `mdat`.
#[derive(Debug, Clone, Copy)]
struct ChunkOut {
    offset: u64,
    samples: u32,
}

#[derive(Debug)]
struct VideoTrack {
    avcc: AvcConfig,
    sps: Vec<u8>,
    pps: Vec<u8>,
    width: u32,
    height: u32,
    timescale: u32,
    default_duration: u32,
    sizes: Vec<u32>,
    stts: Vec<(u32, u32)>,
    sync: Vec<u32>,
    chunks: Vec<ChunkOut>,
    first_pts: Option<u64>,
    last_pts: u64,
    duration: u64,
}

#[derive(Debug)]
struct AudioTrack {
    law: Law,
    samples: u64,
    chunks: Vec<ChunkOut>,
    last_pts: Option<u64>,
    pending: Vec<(u64, Vec<u8>)>,
    pending_bytes: usize,
}

/// An AAC track: one access unit per sample, each lasting until the next one's time.
#[derive(Debug)]
struct AacTrack {
    config: AacConfig,
    sizes: Vec<u32>,
    /// Sample durations, run-length coded, in samples; the last is added at close.
    stts: Vec<(u32, u32)>,
    duration: u64,
    chunks: Vec<ChunkOut>,
    /// The last sample's time, in the track's timescale.
    last: Option<u64>,
    pending: Vec<(u64, Vec<u8>)>,
    pending_bytes: usize,
    closed: bool,
}

impl AacTrack {
    fn new(config: AacConfig) -> Self {
        Self {
            config,
            sizes: Vec::new(),
            stts: Vec::new(),
            duration: 0,
            chunks: Vec::new(),
            last: None,
            pending: Vec::new(),
            pending_bytes: 0,
            closed: false,
        }
    }
}

/// Sample tables and `moov` construction, shared by both writers. `pos` is the position
/// of the next media byte: absolute for the stream writer, from the `mdat` payload start
/// for the in-memory one.
#[derive(Debug)]
struct Muxer {
    video: VideoTrack,
    audio: Option<AudioTrack>,
    aac: Option<AacTrack>,
    pos: u64,
    last: Option<Which>,
    creation_time: u64,
}

impl Muxer {
    fn new(video: VideoParams, audio: Option<AudioParams>, pos: u64) -> Result<Self, Error> {
        let sps_info = Sps::parse(&video.sps)?;
        if video.timescale == 0 {
            return Err(Error::Misuse("video timescale is zero"));
        }
        if sps_info.width > 0xffff || sps_info.height > 0xffff {
            return Err(Error::invalid(
                "sps",
                0,
                "picture too large for a sample entry",
            ));
        }
        let avcc = AvcConfig::new(&video.sps, &video.pps)?;
        avcc.to_bytes()?;
        let default_duration = sps_info
            .frame_rate_ratio()
            .map(|(num, den)| u64::from(video.timescale) * den / u64::from(num))
            .filter(|d| (1..=u64::from(u32::MAX)).contains(d))
            .unwrap_or_else(|| u64::from(video.timescale) / 25)
            .max(1) as u32;
        Ok(Self {
            video: VideoTrack {
                avcc,
                width: sps_info.width,
                height: sps_info.height,
                sps: video.sps,
                pps: video.pps,
                timescale: video.timescale,
                default_duration,
                sizes: Vec::new(),
                stts: Vec::new(),
                sync: Vec::new(),
                chunks: Vec::new(),
                first_pts: None,
                last_pts: 0,
                duration: 0,
            },
            audio: audio.map(|a| AudioTrack {
                law: a.law,
                samples: 0,
                chunks: Vec::new(),
                last_pts: None,
                pending: Vec::new(),
                pending_bytes: 0,
            }),
            aac: None,
            pos,
            last: None,
            creation_time: 0,
        })
    }

    fn push_video<I>(
        &mut self,
        nals: I,
        pts: u64,
        is_key: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let delta = self.video_delta(pts)?;
        let v = &self.video;
        let start = out.len();
        let sample = (|| {
            for nal in nals {
                let nal = nal.as_ref();
                match NalType::of(nal) {
                    None | Some(NalType::AUD) => {}
                    Some(NalType::SPS) if nal == v.sps => {}
                    Some(NalType::PPS) if nal == v.pps => {}
                    Some(NalType::SPS | NalType::PPS) => return Err(Error::ParameterSetsChanged),
                    Some(_) => annexb::append_avcc(out, nal)?,
                }
            }
            let size = u32::try_from(out.len() - start).map_err(|_| Error::TooLarge {
                context: "video sample",
                limit: u64::from(u32::MAX),
            })?;
            if size == 0 {
                return Err(Error::Misuse(
                    "access unit without NAL units besides parameter sets",
                ));
            }
            Ok(size)
        })();
        let size = match sample {
            Ok(size) => size,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        if self.note_video(delta, size, pts, is_key) {
            if let Some(a) = &mut self.audio {
                let pending = std::mem::take(&mut a.pending);
                a.pending_bytes = 0;
                for (apts, bytes) in pending {
                    // Early audio that no longer fits is dropped, like any other.
                    let _ = self.write_audio(&bytes, apts, out);
                }
            }
            if let Some(a) = &mut self.aac {
                let pending = std::mem::take(&mut a.pending);
                a.pending_bytes = 0;
                for (apts, au) in pending {
                    let _ = self.write_aac(&au, apts, out);
                }
            }
        }
        Ok(())
    }

    /// Checks a video sample at `pts` may follow: its duration-so-far from the one before.
    fn video_delta(&self, pts: u64) -> Result<Option<u32>, Error> {
        let v = &self.video;
        if v.sizes.len() >= u32::MAX as usize {
            return Err(Error::TooLarge {
                context: "video samples",
                limit: u64::from(u32::MAX),
            });
        }
        match v.first_pts {
            None => Ok(None),
            Some(_) if pts <= v.last_pts => Err(Error::NonMonotonicPts {
                track: "video",
                pts,
                prev: v.last_pts,
            }),
            Some(_) => Ok(Some(u32::try_from(pts - v.last_pts).map_err(|_| {
                Error::TooLarge {
                    context: "video sample duration",
                    limit: u64::from(u32::MAX),
                }
            })?)),
        }
    }

    /// Enters a checked video sample in the tables; `true` when it was the first.
    fn note_video(&mut self, delta: Option<u32>, size: u32, pts: u64, is_key: bool) -> bool {
        let v = &mut self.video;
        if let Some(d) = delta {
            push_run(&mut v.stts, d);
            v.duration += u64::from(d);
        }
        v.sizes.push(size);
        if is_key {
            v.sync.push(v.sizes.len() as u32);
        }
        v.last_pts = pts;
        let offset = self.pos;
        self.pos += u64::from(size);
        note_chunk(
            &mut self.last,
            &mut self.video.chunks,
            Which::Video,
            offset,
            1,
        );
        let first = self.video.first_pts.is_none();
        if first {
            self.video.first_pts = Some(pts);
        }
        first
    }

    fn push_audio(&mut self, bytes: &[u8], pts: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        let Some(a) = &mut self.audio else {
            return Err(Error::Misuse(
                "push_audio on a writer without an audio track",
            ));
        };
        if bytes.is_empty() {
            return Ok(());
        }
        if self.video.first_pts.is_none() {
            a.pending_bytes += bytes.len();
            a.pending.push((pts, bytes.to_vec()));
            while a.pending_bytes > MAX_PENDING_AUDIO {
                let (_, dropped) = a.pending.remove(0);
                a.pending_bytes -= dropped.len();
            }
            return Ok(());
        }
        self.write_audio(bytes, pts, out)
    }

    fn write_audio(&mut self, bytes: &[u8], pts: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        if let Some(p) = self.place_audio(bytes.len(), pts)? {
            out.resize(out.len() + p.silence as usize, p.fill);
            out.extend_from_slice(&bytes[p.skip..p.skip + p.take]);
        }
        Ok(())
    }

    /// Enters `len` G.711 bytes at `pts` in the tables: the silence before them and the
    /// part kept; `None` when nothing is added.
    fn place_audio(&mut self, len: usize, pts: u64) -> Result<Option<AudioPlacement>, Error> {
        let first_video = self.video.first_pts.unwrap_or(0);
        let timescale = self.video.timescale;
        let Some(a) = &mut self.audio else {
            return Err(Error::Misuse(
                "push_audio on a writer without an audio track",
            ));
        };
        if let Some(prev) = a.last_pts
            && pts <= prev
        {
            return Err(Error::NonMonotonicPts {
                track: "audio",
                pts,
                prev,
            });
        }
        let origin = (u128::from(first_video) * 8000 / u128::from(timescale)) as i128;
        let at = i128::from(pts) - origin;
        let cursor = i128::from(a.samples);
        let (gap, skip) = if at >= cursor {
            ((at - cursor) as u64, 0)
        } else {
            (0, usize::try_from(cursor - at).unwrap_or(usize::MAX))
        };
        if gap > MAX_AUDIO_GAP {
            return Err(Error::TooLarge {
                context: "audio gap (samples)",
                limit: MAX_AUDIO_GAP,
            });
        }
        let take = len.saturating_sub(skip);
        let n = gap + take as u64;
        if a.samples + n > u64::from(u32::MAX) {
            return Err(Error::TooLarge {
                context: "audio samples",
                limit: u64::from(u32::MAX),
            });
        }
        a.last_pts = Some(pts);
        if n == 0 {
            return Ok(None);
        }
        a.samples += n;
        let fill = silence(a.law);
        let offset = self.pos;
        self.pos += n;
        note_chunk(
            &mut self.last,
            &mut a.chunks,
            Which::Audio,
            offset,
            n as u32,
        );
        Ok(Some(AudioPlacement {
            silence: gap,
            fill,
            skip: skip.min(len),
            take,
        }))
    }

    fn push_aac(&mut self, au: &[u8], pts: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        let Some(a) = &mut self.aac else {
            return Err(Error::Misuse("push_aac on a writer without an AAC track"));
        };
        if au.is_empty() {
            return Ok(());
        }
        if self.video.first_pts.is_none() {
            a.pending_bytes += au.len();
            a.pending.push((pts, au.to_vec()));
            while a.pending_bytes > MAX_PENDING_AUDIO {
                let (_, dropped) = a.pending.remove(0);
                a.pending_bytes -= dropped.len();
            }
            return Ok(());
        }
        self.write_aac(au, pts, out)
    }

    /// An access unit at `pts` (8 kHz): its time on the track's clock, measured from the
    /// first video sample; the one before it lasts until then.
    fn write_aac(&mut self, au: &[u8], pts: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.place_aac(au.len(), pts)? {
            out.extend_from_slice(au);
        }
        Ok(())
    }

    /// Enters an access unit of `len` bytes at `pts` in the tables; `false` when it is left
    /// out (before the first picture).
    fn place_aac(&mut self, len: usize, pts: u64) -> Result<bool, Error> {
        let first_video = self.video.first_pts.unwrap_or(0);
        let timescale = self.video.timescale;
        let Some(a) = &mut self.aac else {
            return Err(Error::Misuse("push_aac on a writer without an AAC track"));
        };
        let origin = u128::from(first_video) * 8000 / u128::from(timescale);
        let Some(at) = u128::from(pts).checked_sub(origin) else {
            // Before the first picture: left out.
            return Ok(false);
        };
        let t = u64::try_from(at * u128::from(a.config.sample_rate) / 8000).unwrap_or(u64::MAX);
        let size = u32::try_from(len).map_err(|_| Error::TooLarge {
            context: "AAC sample",
            limit: u64::from(u32::MAX),
        })?;
        match a.last {
            Some(prev) if t <= prev => {
                return Err(Error::NonMonotonicPts {
                    track: "audio",
                    pts,
                    prev,
                });
            }
            Some(prev) => {
                let d = u32::try_from(t - prev).map_err(|_| Error::TooLarge {
                    context: "AAC sample duration",
                    limit: u64::from(u32::MAX),
                })?;
                push_run(&mut a.stts, d);
                a.duration += u64::from(d);
            }
            // The first unit starts the track; a late start is a short shift, not a gap.
            None => {}
        }
        a.last = Some(t);
        a.sizes.push(size);
        let offset = self.pos;
        self.pos += u64::from(size);
        note_chunk(&mut self.last, &mut a.chunks, Which::Audio, offset, 1);
        Ok(true)
    }

    /// Ends the sample tables: the last video sample gets its duration.
    fn close(&mut self) -> Result<(), Error> {
        if let Some(a) = &mut self.aac
            && !a.sizes.is_empty()
            && !a.closed
        {
            push_run(&mut a.stts, a.config.frame_length);
            a.duration += u64::from(a.config.frame_length);
            a.closed = true;
        }
        let v = &mut self.video;
        if v.sizes.is_empty() {
            return Err(Error::Misuse("no video sample was added"));
        }
        let last = v.stts.last().map_or(v.default_duration, |r| r.1);
        push_run(&mut v.stts, last);
        v.duration += u64::from(last);
        Ok(())
    }
}

/// Adds a sample (or `n` audio samples) at `offset` to the current chunk of `which`, or
/// starts a new chunk when another track wrote last.
fn note_chunk(
    last: &mut Option<Which>,
    chunks: &mut Vec<ChunkOut>,
    which: Which,
    offset: u64,
    n: u32,
) {
    match chunks.last_mut() {
        Some(c) if *last == Some(which) && c.samples.checked_add(n).is_some() => c.samples += n,
        _ => chunks.push(ChunkOut { offset, samples: n }),
    }
    *last = Some(which);
}

/// Appends `delta` to run-length coded `stts` entries.
fn push_run(runs: &mut Vec<(u32, u32)>, delta: u32) {
    match runs.last_mut() {
        Some((count, d)) if *d == delta && *count < u32::MAX => *count += 1,
        _ => runs.push((1, delta)),
    }
}

fn ftyp() -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    b.extend_from_slice(&32u32.to_be_bytes());
    b.extend_from_slice(b"ftypisom");
    b.extend_from_slice(&0x200u32.to_be_bytes());
    b.extend_from_slice(b"isomiso2avc1mp41");
    b
}

mod moov;
