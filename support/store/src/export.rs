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
use crate::{AudioCodec, SegmentRow, Store, StoreError};

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
    let empty = || StoreError::Empty {
        from: format_rfc3339(from_ms),
        to: format_rfc3339(to_ms),
    };
    let first = segments.first().ok_or_else(empty)?;
    // MP4 files carry G.711 or AAC here (`ulaw`/`alaw`, or `mp4a` with the recording's
    // AudioSpecificConfig in an `esds`); a codec without a G.711 law (G.722) is left out.
    // Segments whose audio differs from the first one's keep their pictures only.
    let aac = first.aac.clone();
    let audio = first
        .audio
        .and_then(AudioCodec::law)
        .map(|law| AudioParams { law });
    let video = VideoParams::new(first.sps.clone(), first.pps.clone());
    let mut buf = Vec::with_capacity(1 << 20);
    let writer = match &aac {
        Some(c) => Mp4StreamWriter::with_aac(video, c.clone(), &mut buf)?,
        None => Mp4StreamWriter::new(video, audio, &mut buf)?,
    };
    let mut writer = writer.with_creation_time(first.start_ms() / 1000);
    let mut file = std::fs::File::create(out).map_err(|e| StoreError::io("create", out, e))?;
    let from_90k = from_ms.saturating_mul(90);
    let to_90k = to_ms.saturating_mul(90);
    let total = segments.len() as u64;
    let mut base: Option<u64> = None;
    let mut frames = 0u64;
    let mut last_90k = 0u64;
    let mut end_90k = 0u64;
    for (n, seg) in segments.iter().enumerate() {
        let media = read(seg.clone()).await?;
        // The start: the last IDR at or before `from`.
        let mut start_at = 0;
        if base.is_none() {
            for (i, f) in media.video.iter().enumerate() {
                if f.key && f.t90k <= from_90k {
                    start_at = i;
                }
            }
        }
        for f in &media.video[start_at..] {
            if f.t90k >= to_90k {
                break;
            }
            let b = *base.get_or_insert(f.t90k);
            if frames > 0 && f.t90k <= last_90k {
                continue;
            }
            writer.push_video_nals(&f.nals, f.t90k - b, f.key, &mut buf)?;
            frames += 1;
            last_90k = f.t90k;
            end_90k = seg.end_90k.min(to_90k);
        }
        if let Some(b) = base {
            let b8 = to_8k(b);
            let to_8 = to_8k(to_90k);
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
    let Some(b) = base else {
        drop(file);
        let _ = std::fs::remove_file(out);
        return Err(empty());
    };
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
    Ok(ExportSummary {
        frames,
        start_ms: b / 90,
        end_ms: end_90k.max(last_90k + 1).div_ceil(90),
        bytes,
    })
}
