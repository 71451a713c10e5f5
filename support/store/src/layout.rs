//! Export without copying (H.626.4 6.1.7, 8.7.2.2 steps 7-10): an MP4 laid out from the
//! sample indexes alone, its media left where it is.
//!
//! [`plan_mp4`] builds the file as a list of [`Piece`]s: the head (`ftyp`, `moov`, the
//! `mdat` header, all in memory), then the samples as byte ranges of the segment files, with
//! the few bytes the export makes up itself (G.711 silence filling a hole) in between. The
//! cut and the sample tables are those of [`crate::write_mp4`] (the same muxer, fed sizes
//! instead of bytes), so the two files hold the same samples in the same order with the same
//! times; only `moov` moves to the front ("fast start"). A key frame's leading parameter
//! sets and access unit delimiter are left out by starting its range after them, as the
//! writer drops them; they are found with one small read per key frame.
//!
//! [`ExportPlan::write_file`] copies the ranges in the kernel (`copy_file_range`, with a
//! read/write loop where the file systems refuse it); [`ExportPlan::send`] streams any byte
//! range of the file to a socket (`sendfile`) or to any writer, so an HTTP download starts
//! as soon as the plan is made, with its `Content-Length` known.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use peercam_media::annexb::NalType;
use peercam_media::mp4::Mp4Layout;
use peercam_record::index::{self, Track};

use crate::export::{Cut, Take, mp4_params};
use crate::segment::to_8k;
use crate::{ExportSummary, SegmentRow, StoreError};

/// One stretch of an export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Bytes `start..start + len` of the plan's memory (the head).
    Mem {
        /// Offset in the plan's memory.
        start: usize,
        /// Length.
        len: u64,
    },
    /// `len` copies of `byte` (G.711 silence).
    Fill {
        /// The byte.
        byte: u8,
        /// How many.
        len: u64,
    },
    /// Bytes `offset..offset + len` of segment file `file`.
    File {
        /// Index into [`ExportPlan::files`].
        file: usize,
        /// Offset in that file.
        offset: u64,
        /// Length.
        len: u64,
    },
}

impl Piece {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match *self {
            Self::Mem { len, .. } | Self::Fill { len, .. } | Self::File { len, .. } => len,
        }
    }

    /// Whether it is empty (never, in a plan).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An MP4 export as pieces: the head (`ftyp`, `moov`, the `mdat` header) from memory, then
/// byte ranges of the segment files and any silence fill, in file order.
#[derive(Debug, Clone)]
pub struct ExportPlan {
    mem: Vec<u8>,
    /// The segment files the pieces refer to, with the length each must have.
    pub files: Vec<(PathBuf, u64)>,
    /// The pieces in file order, each with its offset in the export file.
    pub pieces: Vec<(u64, Piece)>,
    /// What the file holds; `bytes` is its exact length.
    pub summary: ExportSummary,
}

/// Plans the MP4 of `segments` (oldest first, those overlapping `[from_ms, to_ms)`) whose
/// data files lie under `root`, with the cut of [`crate::write_mp4`]. Each file is checked
/// to exist and have its recorded length; a key frame's head is read to leave out its
/// parameter sets. Blocking: call it off the async threads.
pub fn plan_mp4(
    segments: &[SegmentRow],
    (from_ms, to_ms): (u64, u64),
    root: &Path,
) -> Result<ExportPlan, StoreError> {
    let mut cut = Cut::new((from_ms, to_ms));
    let first = segments.first().ok_or_else(|| cut.empty())?;
    let (aac, audio, video) = mp4_params(first);
    let layout = match &aac {
        Some(c) => Mp4Layout::with_aac(video, c.clone())?,
        None => Mp4Layout::new(video, audio)?,
    };
    let mut layout = layout.with_creation_time(first.start_ms() / 1000);
    let mut media: Vec<Piece> = Vec::new();
    let mut files = Vec::with_capacity(segments.len());
    for seg in segments {
        let path = root.join(&seg.path);
        let file = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("stat", &path, e))?
            .len();
        if len != seg.bytes {
            return Err(StoreError::Corrupt(format!(
                "{}: {len} bytes, index says {}",
                seg.path, seg.bytes
            )));
        }
        let entries = index::decode(&seg.index, Some(seg.bytes))
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", seg.path)))?;
        let fi = files.len();
        files.push((path, seg.bytes));
        let video: Vec<_> = entries
            .iter()
            .filter(|e| e.sample.track == Track::Video)
            .collect();
        let start_at = cut.start_at(
            video
                .iter()
                .map(|e| (e.sample.key, seg.start_90k + e.sample.pts)),
        );
        for e in &video[start_at..] {
            let t = match cut.video(seg.start_90k + e.sample.pts, seg.end_90k) {
                Take::End => break,
                Take::Skip => continue,
                Take::At(t) => t,
            };
            let skip = if e.sample.key {
                parameter_set_prefix(&file, &files[fi].0, e.offset, e.sample.size, first)?
            } else {
                0
            };
            let size = e.sample.size - skip;
            if size == 0 {
                return Err(peercam_media::Error::Misuse(
                    "access unit without NAL units besides parameter sets",
                )
                .into());
            }
            layout.video(size, t, e.sample.key)?;
            push_piece(
                &mut media,
                Piece::File {
                    file: fi,
                    offset: e.offset + u64::from(skip),
                    len: u64::from(size),
                },
            );
        }
        if let Some((b8, to_8)) = cut.audio_window() {
            let start_8k = to_8k(seg.start_90k);
            let same_audio = seg.aac == aac && (aac.is_some() || seg.audio == first.audio);
            let chunks = entries
                .iter()
                .filter(|e| same_audio && e.sample.track == Track::Audio);
            for e in chunks {
                let t8k = start_8k + e.sample.pts;
                if t8k < b8 || t8k >= to_8 {
                    continue;
                }
                let size = e.sample.size as usize;
                if aac.is_some() {
                    // A unit out of order is left out rather than failing the export.
                    if let Ok(true) = layout.aac(size, t8k - b8) {
                        push_piece(&mut media, file_piece(fi, e.offset, e.sample.size.into()));
                    }
                } else if audio.is_some() {
                    let p = layout.audio(size, t8k - b8)?;
                    push_piece(
                        &mut media,
                        Piece::Fill {
                            byte: p.fill,
                            len: p.silence,
                        },
                    );
                    push_piece(
                        &mut media,
                        file_piece(fi, e.offset + p.skip as u64, p.take as u64),
                    );
                }
            }
        }
    }
    if cut.base.is_none() {
        return Err(cut.empty());
    }
    let media_len = layout.media_len();
    let head = layout.finish()?;
    let mut pieces = Vec::with_capacity(media.len() + 1);
    let mut at = 0u64;
    for p in std::iter::once(Piece::Mem {
        start: 0,
        len: head.len() as u64,
    })
    .chain(media)
    {
        pieces.push((at, p));
        at += p.len();
    }
    debug_assert_eq!(at, head.len() as u64 + media_len);
    Ok(ExportPlan {
        mem: head,
        files,
        pieces,
        summary: cut.summary(at)?,
    })
}

fn file_piece(file: usize, offset: u64, len: u64) -> Piece {
    Piece::File { file, offset, len }
}

/// Appends `p`, joining it to the last piece when it continues it; empty pieces vanish.
fn push_piece(pieces: &mut Vec<Piece>, p: Piece) {
    if p.is_empty() {
        return;
    }
    match (pieces.last_mut(), p) {
        (
            Some(Piece::File {
                file: f0,
                offset: o0,
                len: l0,
            }),
            Piece::File { file, offset, len },
        ) if *f0 == file && *o0 + *l0 == offset => *l0 += len,
        (Some(Piece::Fill { byte: b0, len: l0 }), Piece::Fill { byte, len }) if *b0 == byte => {
            *l0 += len;
        }
        _ => pieces.push(p),
    }
}

/// Bytes at the start of the key frame at `offset` that the MP4 writer leaves out: access
/// unit delimiters, empty NAL units, and the first segment's SPS and PPS. A different SPS or
/// PPS fails the export, as it does the writer's.
fn parameter_set_prefix(
    file: &File,
    path: &Path,
    offset: u64,
    size: u32,
    first: &SegmentRow,
) -> Result<u32, StoreError> {
    let want = (64 + first.sps.len() + first.pps.len()).min(size as usize);
    let mut buf = vec![0u8; want];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| StoreError::io("read", path, e))?;
    let mut pos = 0usize;
    while let Some(len) = buf.get(pos..pos + 4) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(nal) = buf.get(pos + 4..pos + 4 + len) else {
            break;
        };
        match NalType::of(nal) {
            None | Some(NalType::AUD) => {}
            Some(NalType::SPS) if nal == first.sps => {}
            Some(NalType::PPS) if nal == first.pps => {}
            Some(NalType::SPS | NalType::PPS) => {
                return Err(peercam_media::Error::ParameterSetsChanged.into());
            }
            Some(_) => break,
        }
        pos += 4 + len;
    }
    Ok(pos as u32)
}

/// The error for a segment file that ends before a range of it.
fn truncated(path: &Path, at: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "{}: segment file ends at {at}, before the exported range",
        path.display()
    ))
}

impl ExportPlan {
    /// The file's length (also `summary.bytes`).
    pub fn len(&self) -> u64 {
        self.summary.bytes
    }

    /// Whether the file is empty (never).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces covering `[start, end)` of the file, each clipped: (piece, offset into
    /// it, length).
    pub fn slices(&self, start: u64, end: u64) -> impl Iterator<Item = (Piece, u64, u64)> + '_ {
        let end = end.min(self.len());
        let first = self.pieces.partition_point(|(at, p)| at + p.len() <= start);
        self.pieces[first..]
            .iter()
            .take_while(move |(at, _)| *at < end)
            .map(move |&(at, p)| {
                let from = start.saturating_sub(at);
                let to = (end - at).min(p.len());
                (p, from, to - from)
            })
    }

    /// Writes the whole file to `out` (created or truncated), the ranges copied in the
    /// kernel; `progress` gets (bytes done, bytes total). Not synced: like `cp`, the data is
    /// in the page cache when this returns. A missing or short segment file fails it, and
    /// the partial file is removed.
    pub fn write_file(
        &self,
        out: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<ExportSummary, StoreError> {
        let mut dst = File::create(out).map_err(|e| StoreError::io("create", out, e))?;
        let result = (|| {
            let mut src: Option<(usize, File)> = None;
            let mut kernel_copy = true;
            let mut done = 0u64;
            for (piece, from, len) in self.slices(0, self.len()) {
                match piece {
                    Piece::Mem { start, .. } => {
                        let s = start + from as usize;
                        dst.write_all(&self.mem[s..s + len as usize])
                            .map_err(|e| StoreError::io("write", out, e))?;
                    }
                    Piece::Fill { byte, .. } => {
                        let chunk = vec![byte; len.min(1 << 16) as usize];
                        let mut left = len;
                        while left > 0 {
                            let n = left.min(chunk.len() as u64) as usize;
                            dst.write_all(&chunk[..n])
                                .map_err(|e| StoreError::io("write", out, e))?;
                            left -= n as u64;
                        }
                    }
                    Piece::File { file, offset, .. } => {
                        let f = self.open(&mut src, file)?;
                        let path = &self.files[file].0;
                        let mut off = offset + from;
                        let end = off + len;
                        while kernel_copy && off < end {
                            let want = (end - off).min(1 << 30) as usize;
                            match rustix::fs::copy_file_range(f, Some(&mut off), &dst, None, want) {
                                Ok(0) => return Err(truncated(path, off)),
                                Ok(_) => {}
                                Err(rustix::io::Errno::INTR) => {}
                                Err(
                                    rustix::io::Errno::XDEV
                                    | rustix::io::Errno::NOSYS
                                    | rustix::io::Errno::INVAL
                                    | rustix::io::Errno::OPNOTSUPP,
                                ) => kernel_copy = false,
                                Err(e) => return Err(StoreError::io("copy", out, e.into())),
                            }
                        }
                        if off < end {
                            copy_by_reading(f, path, off, end, |b| {
                                dst.write_all(b)
                                    .map_err(|e| StoreError::io("write", out, e))
                            })?;
                        }
                    }
                }
                done += len;
                progress(done, self.len());
            }
            Ok(())
        })();
        if let Err(e) = result {
            drop(dst);
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
        Ok(self.summary)
    }

    /// The open segment file `file`, reusing `cur` when it is that one already.
    fn open<'a>(
        &self,
        cur: &'a mut Option<(usize, File)>,
        file: usize,
    ) -> Result<&'a File, StoreError> {
        if cur.as_ref().is_none_or(|(n, _)| *n != file) {
            let path = &self.files[file].0;
            let f = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
            let len = f
                .metadata()
                .map_err(|e| StoreError::io("stat", path, e))?
                .len();
            if len != self.files[file].1 {
                return Err(truncated(path, len));
            }
            *cur = Some((file, f));
        }
        Ok(cur
            .as_ref()
            .map(|(_, f)| f)
            .unwrap_or_else(|| unreachable!()))
    }

    /// Bytes `[start, end)` of the file, in order, as slices handed to `sink` (at most
    /// 256 KiB each): for writers that are not a plain socket (TLS, an HTTP body). Blocking.
    pub fn read_range(
        &self,
        start: u64,
        end: u64,
        mut sink: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut src: Option<(usize, File)> = None;
        for (piece, from, len) in self.slices(start, end) {
            match piece {
                Piece::Mem { start, .. } => {
                    let s = start + from as usize;
                    sink(&self.mem[s..s + len as usize])?;
                }
                Piece::Fill { byte, .. } => {
                    let chunk = vec![byte; len.min(1 << 16) as usize];
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        sink(&chunk[..n])?;
                        left -= n as u64;
                    }
                }
                Piece::File { file, offset, .. } => {
                    let f = self.open(&mut src, file)?;
                    let off = offset + from;
                    copy_by_reading(f, &self.files[file].0, off, off + len, &mut sink)?;
                }
            }
        }
        Ok(())
    }

    /// Sends bytes `[start, end)` of the file to the TCP stream `tcp`: memory pieces
    /// written, file ranges with `sendfile` (the kernel moves page-cache pages to the
    /// socket). The file reads may block briefly on a cold disk.
    pub async fn send(
        &self,
        tcp: &mut tokio::net::TcpStream,
        start: u64,
        end: u64,
    ) -> Result<(), StoreError> {
        use tokio::io::AsyncWriteExt as _;
        let sock_err = |e: std::io::Error| StoreError::Source(format!("sending the export: {e}"));
        let mut src: Option<(usize, File)> = None;
        for (piece, from, len) in self.slices(start, end) {
            match piece {
                Piece::Mem { start, .. } => {
                    let s = start + from as usize;
                    tcp.write_all(&self.mem[s..s + len as usize])
                        .await
                        .map_err(sock_err)?;
                }
                Piece::Fill { byte, .. } => {
                    let chunk = vec![byte; len.min(1 << 16) as usize];
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        tcp.write_all(&chunk[..n]).await.map_err(sock_err)?;
                        left -= n as u64;
                    }
                }
                Piece::File { file, offset, .. } => {
                    let f = self.open(&mut src, file)?;
                    let path = &self.files[file].0;
                    let mut off = offset + from;
                    let end = off + len;
                    while off < end {
                        tcp.writable().await.map_err(sock_err)?;
                        let want = (end - off).min(1 << 30) as usize;
                        let sent = tcp.try_io(tokio::io::Interest::WRITABLE, || {
                            rustix::fs::sendfile(&*tcp, f, Some(&mut off), want)
                                .map_err(std::io::Error::from)
                        });
                        match sent {
                            Ok(0) => return Err(truncated(path, off)),
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(sock_err(e)),
                        }
                    }
                }
            }
        }
        tcp.flush().await.map_err(sock_err)
    }
}

/// Copies `[off, end)` of `f` through a buffer, in slices of at most 256 KiB.
fn copy_by_reading(
    f: &File,
    path: &Path,
    mut off: u64,
    end: u64,
    mut sink: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut buf = vec![0u8; (end - off).min(256 << 10) as usize];
    while off < end {
        let n = (end - off).min(buf.len() as u64) as usize;
        match f.read_at(&mut buf[..n], off) {
            Ok(0) => return Err(truncated(path, off)),
            Ok(got) => {
                sink(&buf[..got])?;
                off += got as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::io("read", path, e)),
        }
    }
    Ok(())
}
