//! Shared clip links (issue 17 item 9, H.626.4 8.7.1 download) as [`Client`] methods: make a
//! link, export the range from the chosen recorder, upload the clip to the camera's cloud
//! storage unit, list and revoke links.

use std::path::Path;

use peercam_signal::cm_clip::{ClipCreated, ClipRequest, ClipUpload, ClipView};
use reqwest::Method;

use crate::{Client, CuError};

/// What [`Client::share_range`] is doing, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareStep {
    /// Exporting from the recorder: bytes so far, of the total when known.
    Export(u64, Option<u64>),
    /// Uploading to the cloud storage unit: bytes so far, of the total.
    Upload(u64, u64),
}

/// A clip to share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSpec<'a> {
    /// The camera.
    pub camera: &'a str,
    /// The recorder to export from (`sd`, an NVR's id, `cloud`; `None`: the platform's
    /// default, the first NVR else the card).
    pub recorder: Option<&'a str>,
    /// Start, Unix ms.
    pub from_ms: u64,
    /// End (excluded), Unix ms.
    pub to_ms: u64,
    /// Seconds the link lives (`None`: 7 days).
    pub expires_in_s: Option<u64>,
    /// A note for the owner's list.
    pub label: Option<&'a str>,
}

impl Client {
    /// Makes a shared clip link (owners): the clip and where to upload its MP4.
    pub async fn create_clip(
        &self,
        camera: &str,
        req: &ClipRequest,
    ) -> Result<ClipCreated, CuError> {
        self.call(
            Method::POST,
            &format!("/api/v1/devices/{camera}/clips"),
            Some(req),
        )
        .await
    }

    /// The owner's shared clip links, newest first.
    pub async fn clips(&self) -> Result<Vec<ClipView>, CuError> {
        self.call::<(), _>(Method::GET, "/api/v1/clips", None).await
    }

    /// Revokes a shared clip link; it stops working at once.
    pub async fn revoke_clip(&self, id: &str) -> Result<ClipView, CuError> {
        self.call::<(), _>(Method::DELETE, &format!("/api/v1/clips/{id}"), None)
            .await
    }

    /// Uploads the MP4 at `path` where `upload` says, calling `progress(sent, total)`.
    pub async fn upload_clip(
        &self,
        upload: &ClipUpload,
        path: &Path,
        progress: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<(), CuError> {
        use tokio::io::AsyncReadExt as _;
        let total = std::fs::metadata(path)
            .map_err(|e| CuError::Config(format!("{}: {e}", path.display())))?
            .len();
        if total > upload.max_bytes {
            return Err(CuError::Media(format!(
                "the clip is {total} bytes; the cloud storage unit takes at most {}",
                upload.max_bytes
            )));
        }
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| CuError::Config(format!("{}: {e}", path.display())))?;
        let progress = std::sync::Arc::new(progress);
        let stream = futures_util::stream::unfold(
            (file, 0u64, progress),
            move |(mut f, sent, progress)| async move {
                let mut buf = vec![0u8; 256 * 1024];
                match f.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        let sent = sent + n as u64;
                        progress(sent, total);
                        Some((Ok::<_, std::io::Error>(buf), (f, sent, progress)))
                    }
                    Err(e) => Some((Err(e), (f, sent, progress))),
                }
            },
        );
        let transport = |source| CuError::Transport {
            api: upload.url.clone(),
            source,
        };
        let resp = self
            .http
            .put(&upload.url)
            .bearer_auth(&upload.grant)
            .header(reqwest::header::CONTENT_LENGTH, total)
            .header(reqwest::header::CONTENT_TYPE, "video/mp4")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(CuError::Media(format!(
            "clip upload refused: HTTP {status}: {}",
            text.trim()
        )))
    }

    /// Shares `[from_ms, to_ms)` of a camera by link: exports it from the recorder with the
    /// existing export (into `work_dir`), makes the link, uploads the clip to the camera's
    /// cloud storage unit. A failed upload revokes the link. Returns the link.
    pub async fn share_range(
        &self,
        spec: &ShareSpec<'_>,
        work_dir: &Path,
        progress: impl Fn(ShareStep) + Send + Sync + Clone + 'static,
    ) -> Result<ClipView, CuError> {
        let export = self
            .export_url(spec.camera, spec.recorder, spec.from_ms, spec.to_ms)
            .await?;
        let file = work_dir.join(format!(
            "peercam-clip-{}-{}.mp4",
            std::process::id(),
            spec.from_ms
        ));
        let p = progress.clone();
        let got = self
            .fetch_export(&export.url, &file, move |n, t| p(ShareStep::Export(n, t)))
            .await;
        if let Err(e) = got {
            let _ = std::fs::remove_file(&file);
            return Err(e);
        }
        let req = ClipRequest {
            from: peercam_record::time::format_rfc3339(spec.from_ms),
            to: peercam_record::time::format_rfc3339(spec.to_ms),
            recorder: spec.recorder.map(str::to_owned),
            expires_in_s: spec.expires_in_s,
            label: spec.label.map(str::to_owned),
        };
        let made = match self.create_clip(spec.camera, &req).await {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                return Err(e);
            }
        };
        let p = progress.clone();
        let up = self
            .upload_clip(&made.upload, &file, move |n, t| p(ShareStep::Upload(n, t)))
            .await;
        let _ = std::fs::remove_file(&file);
        if let Err(e) = up {
            let _ = self.revoke_clip(&made.clip.id).await;
            return Err(e);
        }
        Ok(made.clip)
    }
}
