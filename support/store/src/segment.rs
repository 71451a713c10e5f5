//! Building a segment in memory before it is committed, and reading one back.

use peercam_media::annexb;
use peercam_record::index::{self, IndexEncoder, Sample, Track};

use crate::StoreError;

/// The audio codec of a camera's recordings: the workspace's one codec type. Segments
/// hold G.711 (8 kHz mono) today; the stored name is the lower-case SDP encoding name
/// (`pcmu`, `pcma`), read back case-insensitively.
pub use peercam_rtp::AudioCodec;
pub use peercam_rtp::aac::AacConfig;

/// What the index's `audio` column says for a segment: `pcmu`/`pcma`/`g722`, or for AAC
/// `mpeg4-generic;config=<AudioSpecificConfig hex>` (issue 16). Older readers take an AAC
/// segment for one without audio; older segments read as before.
pub(crate) fn audio_column(codec: Option<AudioCodec>, aac: Option<&AacConfig>) -> Option<String> {
    match (aac, codec) {
        (Some(c), _) => Some(format!(
            "{};config={}",
            peercam_rtp::aac::ENCODING_NAME,
            c.config
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )),
        (None, Some(c)) => Some(codec_name(c).to_owned()),
        (None, None) => None,
    }
}

/// Reads [`audio_column`] back: the G.711/G.722 codec or the AAC configuration.
pub(crate) fn parse_audio_column(s: Option<&str>) -> (Option<AudioCodec>, Option<AacConfig>) {
    let Some(s) = s else { return (None, None) };
    match s.split_once(';') {
        Some((name, fmtp)) if name.eq_ignore_ascii_case(peercam_rtp::aac::ENCODING_NAME) => {
            (None, AacConfig::from_fmtp(fmtp).ok())
        }
        _ => (AudioCodec::from_encoding_name(s), None),
    }
}

/// The name stored for `codec`.
pub(crate) fn codec_name(codec: AudioCodec) -> &'static str {
    match codec {
        AudioCodec::Pcmu => "pcmu",
        AudioCodec::Pcma => "pcma",
        AudioCodec::G722 => "g722",
    }
}

/// Converts an absolute 90 kHz time to the 8 kHz audio clock.
pub fn to_8k(t90k: u64) -> u64 {
    t90k / 45 * 4 + (t90k % 45) * 4 / 45
}

/// A segment being filled by a recorder: whole GOPs of one camera, starting at an IDR.
///
/// Times are absolute: 90 kHz (video) or 8 kHz (audio) ticks since the Unix epoch, so
/// segments of one run line up exactly.
#[derive(Debug)]
pub struct SegmentBuilder {
    camera: String,
    run: i64,
    audio: Option<AudioCodec>,
    aac: Option<AacConfig>,
    start_90k: Option<u64>,
    last_90k: u64,
    index: IndexEncoder,
    data: Vec<u8>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

/// A finished segment, ready for [`crate::Store::commit`].
#[derive(Debug, Clone)]
pub struct Draft {
    /// The camera (device id).
    pub camera: String,
    /// The recording run it continues (segments of a run are contiguous); the recorder uses
    /// the run's first frame time, Unix ms.
    pub run: i64,
    /// First video frame, absolute 90 kHz.
    pub start_90k: u64,
    /// Where the segment stops showing, absolute 90 kHz.
    pub end_90k: u64,
    /// Video frames.
    pub frames: u32,
    /// The encoded sample index.
    pub index: Vec<u8>,
    /// The samples back to back.
    pub data: Vec<u8>,
    /// SPS (no start code).
    pub sps: Vec<u8>,
    /// PPS (no start code).
    pub pps: Vec<u8>,
    /// Audio codec, if the segment has a G.711 audio track.
    pub audio: Option<AudioCodec>,
    /// The AAC configuration, if the segment's audio is AAC (one access unit per chunk).
    pub aac: Option<AacConfig>,
}

impl SegmentBuilder {
    /// An empty segment for `camera`.
    pub fn new(camera: &str, run: i64, audio: Option<AudioCodec>) -> Self {
        Self {
            camera: camera.to_owned(),
            run,
            audio,
            aac: None,
            start_90k: None,
            last_90k: 0,
            index: IndexEncoder::new(),
            data: Vec::new(),
            sps: None,
            pps: None,
        }
    }

    /// The segment's audio is AAC described by `aac` (its chunks are access units, at
    /// 8 kHz times like G.711's), instead of the G.711 codec given to [`Self::new`].
    pub fn with_aac(mut self, aac: Option<AacConfig>) -> Self {
        if aac.is_some() {
            self.audio = None;
        }
        self.aac = aac;
        self
    }

    /// Adds one access unit (NAL units without start codes) shown at `t90k`. The first
    /// must be an IDR; times must increase.
    pub fn push_video<N: AsRef<[u8]>>(
        &mut self,
        nals: &[N],
        t90k: u64,
        key: bool,
    ) -> Result<(), StoreError> {
        let start = match self.start_90k {
            Some(s) => s,
            None if key => t90k,
            None => return Err(StoreError::Segment("a segment starts at an IDR")),
        };
        if self.start_90k.is_some() && t90k <= self.last_90k {
            return Err(StoreError::Segment("video time does not increase"));
        }
        for n in nals {
            let n = n.as_ref();
            match annexb::NalType::of(n) {
                Some(annexb::NalType::SPS) => self.sps = Some(n.to_vec()),
                Some(annexb::NalType::PPS) => self.pps = Some(n.to_vec()),
                _ => {}
            }
        }
        let avcc = annexb::to_avcc(nals.iter().map(AsRef::as_ref))
            .map_err(|_| StoreError::Segment("access unit cannot be written as AVCC"))?;
        let size = u32::try_from(avcc.len()).map_err(|_| StoreError::Segment("frame too large"))?;
        self.index
            .push(Sample {
                track: Track::Video,
                pts: t90k - start,
                size,
                key,
            })
            .map_err(|_| StoreError::Segment("frame refused by the index"))?;
        self.data.extend_from_slice(&avcc);
        self.start_90k = Some(start);
        self.last_90k = t90k;
        Ok(())
    }

    /// Adds G.711 bytes (or one AAC access unit) captured at `t8k`. Audio before the first
    /// video frame, or going back in time, is dropped (returns `false`).
    pub fn push_audio(&mut self, bytes: &[u8], t8k: u64) -> bool {
        let Some(start) = self.start_90k else {
            return false;
        };
        if self.audio.is_none() && self.aac.is_none() {
            return false;
        }
        let Some(pts) = t8k.checked_sub(to_8k(start)) else {
            return false;
        };
        let Ok(size) = u32::try_from(bytes.len()) else {
            return false;
        };
        if self
            .index
            .push(Sample {
                track: Track::Audio,
                pts,
                size,
                key: false,
            })
            .is_err()
        {
            return false;
        }
        self.data.extend_from_slice(bytes);
        true
    }

    /// Video time covered so far, 90 kHz (first frame to last frame).
    pub fn span_90k(&self) -> u64 {
        self.start_90k.map_or(0, |s| self.last_90k - s)
    }

    /// Bytes of samples so far.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Whether no frame was added.
    pub fn is_empty(&self) -> bool {
        self.start_90k.is_none()
    }

    /// Closes the segment; it shows until `end_90k` (the next segment's first frame, or the
    /// last frame plus one frame duration). `None` when it holds no frame or no parameter
    /// sets were seen.
    pub fn finish(self, end_90k: u64) -> Option<Draft> {
        let start = self.start_90k?;
        Some(Draft {
            camera: self.camera,
            run: self.run,
            start_90k: start,
            end_90k: end_90k.max(self.last_90k + 1),
            frames: self.index.video_frames() as u32,
            index: self.index.into_bytes(),
            data: self.data,
            sps: self.sps?,
            pps: self.pps?,
            audio: self.audio,
            aac: self.aac,
        })
    }
}

/// One recorded video frame, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Absolute 90 kHz time.
    pub t90k: u64,
    /// An IDR.
    pub key: bool,
    /// The NAL units, without start codes.
    pub nals: Vec<Vec<u8>>,
}

/// One audio chunk, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioChunk {
    /// Absolute 8 kHz time.
    pub t8k: u64,
    /// G.711 bytes, or one AAC access unit.
    pub bytes: Vec<u8>,
}

/// A segment's samples, decoded from its data file with its index.
#[derive(Debug, Clone, Default)]
pub struct SegmentMedia {
    /// Video frames in order.
    pub video: Vec<Frame>,
    /// Audio chunks in order.
    pub audio: Vec<AudioChunk>,
}

/// Splits `data` with `index`; every video sample must be valid AVCC.
pub fn decode_media(
    start_90k: u64,
    index_bytes: &[u8],
    data: &[u8],
) -> Result<SegmentMedia, StoreError> {
    let entries = index::decode(index_bytes, Some(data.len() as u64))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut media = SegmentMedia::default();
    let start_8k = to_8k(start_90k);
    for e in entries {
        let from = e.offset as usize;
        let bytes = &data[from..from + e.sample.size as usize];
        match e.sample.track {
            Track::Video => {
                let nals = annexb::split_avcc(bytes, 4)
                    .map_err(|e| StoreError::Corrupt(format!("frame is not AVCC: {e}")))?;
                media.video.push(Frame {
                    t90k: start_90k + e.sample.pts,
                    key: e.sample.key,
                    nals: nals.into_iter().map(<[u8]>::to_vec).collect(),
                });
            }
            Track::Audio => media.audio.push(AudioChunk {
                t8k: start_8k + e.sample.pts,
                bytes: bytes.to_vec(),
            }),
        }
    }
    Ok(media)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_conversion_is_exact_on_whole_ms() {
        assert_eq!(to_8k(90), 8);
        assert_eq!(to_8k(90_000), 8000);
        assert_eq!(to_8k(1_795_392_000_000 * 90), 1_795_392_000_000 * 8);
        assert_eq!(to_8k(u64::MAX), (u128::from(u64::MAX) * 8 / 90) as u64);
    }
}
