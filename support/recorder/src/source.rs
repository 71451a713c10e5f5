//! Where a recorder's segments come from: [`SegmentSource`], implemented by the local
//! [`Store`] (NVR, SD card) and by the cloud storage unit's `CloudSource` (H.626.4 8.7.1
//! playback). The RTSP player, trick play, WebRTC playback, the MP4 export and the record
//! list are written once over it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use peercam_store::{
    Event, ExportPlan, ExportSummary, SegmentMedia, SegmentRow, Span, Store, StoreError, write_mp4,
};

/// A boxed future of a [`SegmentSource`] call.
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A holder of recorded segments, keyed by camera (its device id as text).
///
/// A segment is what [`SegmentRow`] describes: GOP-aligned media starting with a key frame,
/// its sample index, SPS and PPS. Only [`SegmentSource::read`] is expected to be slow.
pub trait SegmentSource: Send + Sync + 'static {
    /// The segment playing at `at_ms`, or else the first one after it.
    fn segment_at<'a>(
        &'a self,
        camera: &'a str,
        at_ms: u64,
    ) -> SourceFuture<'a, Option<SegmentRow>>;

    /// The segment after (`forward`) or before the one starting at `start_90k`.
    fn neighbour<'a>(
        &'a self,
        camera: &'a str,
        start_90k: u64,
        forward: bool,
    ) -> SourceFuture<'a, Option<SegmentRow>>;

    /// Segments overlapping `[from_ms, to_ms)`, oldest first.
    fn segments<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> SourceFuture<'a, Vec<SegmentRow>>;

    /// A segment's media, decoded.
    fn read<'a>(&'a self, seg: &'a SegmentRow) -> SourceFuture<'a, SegmentMedia>;

    /// Uninterrupted spans within `[from_ms, to_ms)`, clipped to it.
    fn spans<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> SourceFuture<'a, Vec<Span>>;

    /// Events within `[from_ms, to_ms)`, oldest first.
    fn events<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> SourceFuture<'a, Vec<Event>>;

    /// A directory for temporary files (exports being written).
    fn scratch_dir(&self) -> PathBuf;

    /// The MP4 export of `[from_ms, to_ms)` laid out over the source's own segment files
    /// ([`peercam_store::plan_mp4`]), when it keeps them as plain files (the local store);
    /// `None` (the default) makes exports copy through [`export_mp4`]'s writer.
    fn plan_export<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> Option<SourceFuture<'a, ExportPlan>> {
        let _ = (camera, from_ms, to_ms);
        None
    }
}

impl SegmentSource for Store {
    fn segment_at<'a>(
        &'a self,
        camera: &'a str,
        at_ms: u64,
    ) -> SourceFuture<'a, Option<SegmentRow>> {
        Box::pin(Self::segment_at(self, camera, at_ms))
    }

    fn neighbour<'a>(
        &'a self,
        camera: &'a str,
        start_90k: u64,
        forward: bool,
    ) -> SourceFuture<'a, Option<SegmentRow>> {
        Box::pin(Self::neighbour(self, camera, start_90k, forward))
    }

    fn segments<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> SourceFuture<'a, Vec<SegmentRow>> {
        Box::pin(Self::segments(self, camera, from_ms, to_ms))
    }

    fn read<'a>(&'a self, seg: &'a SegmentRow) -> SourceFuture<'a, SegmentMedia> {
        Box::pin(Self::read(self, seg))
    }

    fn spans<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> SourceFuture<'a, Vec<Span>> {
        Box::pin(Self::spans(self, camera, from_ms, to_ms))
    }

    fn events<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> SourceFuture<'a, Vec<Event>> {
        Box::pin(Self::events(self, camera, from_ms, to_ms))
    }

    fn scratch_dir(&self) -> PathBuf {
        self.config().root.join("exports")
    }

    fn plan_export<'a>(
        &'a self,
        camera: &'a str,
        from_ms: u64,
        to_ms: u64,
    ) -> Option<SourceFuture<'a, ExportPlan>> {
        Some(Box::pin(Self::plan_export(self, camera, from_ms, to_ms)))
    }
}

/// Writes `camera`'s recording in `[from_ms, to_ms)` from `source` to `out` as MP4 (H.626.4
/// 6.1.7, 8.7.2.2 steps 7-10, 8.7.1 download). `progress` is called with (work done, work
/// total): bytes where the source lays the file out over its segment files (copied in the
/// kernel, [`ExportPlan::write_file`]), else segments.
pub async fn export_mp4(
    source: &dyn SegmentSource,
    camera: &str,
    (from_ms, to_ms): (u64, u64),
    out: &Path,
    progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<ExportSummary, StoreError> {
    if let Some(plan) = source.plan_export(camera, from_ms, to_ms) {
        let plan = plan.await?;
        let out = out.to_owned();
        return tokio::task::spawn_blocking(move || plan.write_file(&out, progress))
            .await
            .map_err(|e| StoreError::Source(format!("export task: {e}")))?;
    }
    let segments = source.segments(camera, from_ms, to_ms).await?;
    write_mp4(
        &segments,
        (from_ms, to_ms),
        out,
        |seg| async move { source.read(&seg).await },
        progress,
    )
    .await
}
