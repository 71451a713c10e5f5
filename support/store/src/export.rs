//! Export of a time range to a standard MP4 file (H.626.4 6.1.7 "export files from the
//! NVR"; 8.7.2.2 steps 7-10).
//!
//! The cut starts at the last IDR at or before the requested start (so the file begins
//! decodable) and ends before the first frame at or after the requested end. Timestamps
//! are the recorded ones, relative to the first exported frame; audio in the same span is
//! included.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;

use peercam_media::mp4::{AudioParams, Mp4StreamWriter, VideoParams};
use peercam_record::time::format_rfc3339;

use crate::segment::SegmentMedia;
use crate::segment::to_8k;
use crate::{AacConfig, AudioCodec, SegmentRow, Store, StoreError};

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// Video frames.
    pub frames: u64,
    /// First frame, Unix ms.
    pub start_ms: u64,
    /// End of the last frame, Unix ms.
    pub end_ms: u64,
    /// File size.
    pub bytes: u64,
}

/// The cut of an export, shared by the copying writer and the export plan so both take the
/// same frames: it starts at the last IDR at or before `from` and ends before the first frame
/// at or after `to`; times are relative to the first frame taken.
pub(crate) struct Cut {
    from_ms: u64,
    to_ms: u64,
    from_90k: u64,
    to_90k: u64,
    /// The first frame taken, 90 kHz.
    pub(crate) base: Option<u64>,
    pub(crate) frames: u64,
    last_90k: u64,
    end_90k: u64,
}

impl Cut {
    pub(crate) fn new((from_ms, to_ms): (u64, u64)) -> Self {
        Self {
            from_ms,
            to_ms,
            from_90k: from_ms.saturating_mul(90),
            to_90k: to_ms.saturating_mul(90),
            base: None,
            frames: 0,
            last_90k: 0,
            end_90k: 0,
        }
    }

    /// Nothing of the range is recorded.
    pub(crate) fn empty(&self) -> StoreError {
        StoreError::Empty {
            from: format_rfc3339(self.from_ms),
            to: format_rfc3339(self.to_ms),
        }
    }

    /// Where to start in a segment's video frames (key flag, 90 kHz time): the last key
    /// frame at or before `from` until the first frame is taken, the first frame after.
    pub(crate) fn start_at(&self, frames: impl Iterator<Item = (bool, u64)>) -> usize {
        if self.base.is_some() {
            return 0;
        }
        frames
            .enumerate()
            .filter(|&(_, (key, t))| key && t <= self.from_90k)
            .last()
            .map_or(0, |(i, _)| i)
    }

    /// A video frame at `t` (90 kHz) of a segment ending at `seg_end_90k`.
    pub(crate) fn video(&mut self, t: u64, seg_end_90k: u64) -> Take {
        if t >= self.to_90k {
            return Take::End;
        }
        let b = *self.base.get_or_insert(t);
        if self.frames > 0 && t <= self.last_90k {
            return Take::Skip;
        }
        self.frames += 1;
        self.last_90k = t;
        self.end_90k = seg_end_90k.min(self.to_90k);
        Take::At(t - b)
    }

    /// The audio window once a frame is taken: (first frame, end), 8 kHz.
    pub(crate) fn audio_window(&self) -> Option<(u64, u64)> {
        self.base.map(|b| (to_8k(b), to_8k(self.to_90k)))
    }

    /// What was taken, once something was.
    pub(crate) fn summary(&self, bytes: u64) -> Result<ExportSummary, StoreError> {
        let b = self.base.ok_or_else(|| self.empty())?;
        Ok(ExportSummary {
            frames: self.frames,
            start_ms: b / 90,
            end_ms: self.end_90k.max(self.last_90k + 1).div_ceil(90),
            bytes,
        })
    }
}

/// What [`Cut::video`] makes of a frame.
pub(crate) enum Take {
    /// At this time from the first frame.
    At(u64),
    /// Not after the previous frame: left out.
    Skip,
    /// At or after the end: the cut is over.
    End,
}

/// The MP4 parameters of an export, from its first segment: MP4 files carry G.711 or AAC
/// here (`ulaw`/`alaw`, or `mp4a` with the recording's AudioSpecificConfig in an `esds`); a
/// codec without a G.711 law (G.722) is left out. Segments whose audio differs from the first
/// one's keep their pictures only.
pub(crate) fn mp4_params(
    first: &SegmentRow,
) -> (Option<AacConfig>, Option<AudioParams>, VideoParams) {
    let audio = first
        .audio
        .and_then(AudioCodec::law)
        .map(|law| AudioParams { law });
    let video = VideoParams::new(first.sps.clone(), first.pps.clone());
    (first.aac.clone(), audio, video)
}

/// Writes `camera`'s recording in `[from_ms, to_ms)` to `out` as MP4. `progress` is called
/// with (segments done, segments total).
pub async fn export_mp4(
    store: &Store,
    camera: &str,
    from_ms: u64,
    to_ms: u64,
    out: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<ExportSummary, StoreError> {
    let segments = store.segments(camera, from_ms, to_ms).await?;
    write_mp4(
        &segments,
        (from_ms, to_ms),
        out,
        |seg| async move { store.read(&seg).await },
        progress,
    )
    .await
}

/// Writes the media of `segments` (oldest first, those overlapping `[from_ms, to_ms)`) to
/// `out` as MP4, reading each with `read`: the one MP4 writer behind every export, whatever
/// holds the segments (the local store, the cloud). `progress` is called with (segments
/// done, segments total).
pub async fn write_mp4<F, Fut>(
    segments: &[SegmentRow],
    (from_ms, to_ms): (u64, u64),
    out: &Path,
    mut read: F,
    mut progress: impl FnMut(u64, u64),
) -> Result<ExportSummary, StoreError>
where
    F: FnMut(SegmentRow) -> Fut,
    Fut: Future<Output = Result<SegmentMedia, StoreError>>,
{
    let mut cut = Cut::new((from_ms, to_ms));
    let first = segments.first().ok_or_else(|| cut.empty())?;
    let (aac, audio, video) = mp4_params(first);
    let mut buf = Vec::with_capacity(1 << 20);
    let writer = match &aac {
        Some(c) => Mp4StreamWriter::with_aac(video, c.clone(), &mut buf)?,
        None => Mp4StreamWriter::new(video, audio, &mut buf)?,
    };
    let mut writer = writer.with_creation_time(first.start_ms() / 1000);
    let mut file = std::fs::File::create(out).map_err(|e| StoreError::io("create", out, e))?;
    let total = segments.len() as u64;
    for (n, seg) in segments.iter().enumerate() {
        let media = read(seg.clone()).await?;
        let start_at = cut.start_at(media.video.iter().map(|f| (f.key, f.t90k)));
        for f in &media.video[start_at..] {
            match cut.video(f.t90k, seg.end_90k) {
                Take::End => break,
                Take::Skip => {}
                Take::At(t) => writer.push_video_nals(&f.nals, t, f.key, &mut buf)?,
            }
        }
        if let Some((b8, to_8)) = cut.audio_window() {
            let same_audio = seg.aac == aac && (aac.is_some() || seg.audio == first.audio);
            for a in media.audio.iter().filter(|_| same_audio) {
                if a.t8k >= b8 && a.t8k < to_8 {
                    if aac.is_some() {
                        // A unit out of order is left out rather than failing the export.
                        let _ = writer.push_aac(&a.bytes, a.t8k - b8, &mut buf);
                    } else {
                        writer.push_audio(&a.bytes, a.t8k - b8, &mut buf)?;
                    }
                }
            }
        }
        if buf.len() >= 1 << 20 {
            file.write_all(&buf)
                .map_err(|e| StoreError::io("write", out, e))?;
            buf.clear();
        }
        progress(n as u64 + 1, total);
    }
    if cut.base.is_none() {
        drop(file);
        let _ = std::fs::remove_file(out);
        return Err(cut.empty());
    }
    let patch = writer.finish(&mut buf)?;
    file.write_all(&buf)
        .map_err(|e| StoreError::io("write", out, e))?;
    file.seek(SeekFrom::Start(patch.offset))
        .and_then(|_| file.write_all(&patch.bytes))
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("finish", out, e))?;
    let bytes = file
        .metadata()
        .map_err(|e| StoreError::io("stat", out, e))?
        .len();
    cut.summary(bytes)
}
