//! Still pictures (JPEG) of what the camera sees: the device list's thumbnail, 6.1.12's
//! snapshots and 8.8's snapshot linkage.
//!
//! The picture comes from the same encoders viewers get (a CIF profile): the camera asks
//! for an IDR (or takes the kept GOP of a source that cannot make one), decodes it with
//! OpenH264, samples it down to the width asked and encodes a JPEG. H.264's limited-range
//! YCbCr is stretched to JPEG's full range on the way.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use peercam_signal::play::Caps;

use crate::media::hub::MediaError;
use crate::media::{AccessUnit, MediaHub, Profile};

/// Why no snapshot could be taken; its `Display` is the message the platform is answered
/// with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    /// No encoder for the snapshot profile.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// No key frame came in time.
    #[error("the camera made no picture in 5 s")]
    NoPicture,
    /// The encoding task failed.
    #[error("{0}")]
    Task(#[source] tokio::task::JoinError),
    /// The H.264 decoder could not be started.
    #[error("H.264 decoder: {0}")]
    Decoder(#[source] openh264::Error),
    /// No picture came out of the decoder.
    #[error("nothing decoded")]
    NothingDecoded,
    /// The JPEG could not be encoded.
    #[error("JPEG: {0}")]
    Jpeg(#[source] jpeg_encoder::EncodingError),
}

/// A JPEG snapshot.
pub(crate) struct Snapshot {
    pub(crate) jpeg: Vec<u8>,
    pub(crate) width: u16,
    pub(crate) height: u16,
}

impl Snapshot {
    /// The JPEG in base64, for the platform message.
    pub(crate) fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.jpeg)
    }
}

/// Takes a snapshot at most `max_width` wide.
pub(crate) async fn take(
    hub: &Arc<MediaHub>,
    max_fps: u8,
    max_width: u16,
) -> Result<Snapshot, SnapshotError> {
    let caps = Caps {
        max_width: 352,
        max_height: 288,
        max_fps: 25,
        max_kbps: 400,
        audio: None,
    };
    let mut sub = hub.subscribe(Profile::for_caps(&caps, max_fps))?;
    let mut aus: Vec<Arc<AccessUnit>> = sub.gop();
    if aus.is_empty() {
        sub.request_idr();
        let key = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match sub.rx.recv().await {
                    Ok(au) if au.key => return Some(au),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or(SnapshotError::NoPicture)?;
        aus.push(key);
    }
    let width = max_width.clamp(16, 1280);
    tokio::task::spawn_blocking(move || encode(&aus, width))
        .await
        .map_err(SnapshotError::Task)?
}

/// Decodes `aus` (from an IDR) and encodes the last picture as a JPEG at most `max_width`
/// wide.
fn encode(aus: &[Arc<AccessUnit>], max_width: u16) -> Result<Snapshot, SnapshotError> {
    let mut dec = openh264::decoder::Decoder::new().map_err(SnapshotError::Decoder)?;
    let mut picture = None;
    for au in aus {
        let annexb = peercam_media::annexb::join(&au.nals);
        if let Ok(Some(yuv)) = dec.decode(&annexb) {
            picture = Some(ycbcr(&yuv, max_width));
        }
    }
    let (data, w, h) = picture.ok_or(SnapshotError::NothingDecoded)?;
    let mut jpeg = Vec::with_capacity(data.len() / 8);
    jpeg_encoder::Encoder::new(&mut jpeg, 75)
        .encode(&data, w, h, jpeg_encoder::ColorType::Ycbcr)
        .map_err(SnapshotError::Jpeg)?;
    Ok(Snapshot {
        jpeg,
        width: w,
        height: h,
    })
}

/// Samples a 4:2:0 picture down to at most `max_width` (aspect kept) as interleaved
/// full-range YCbCr.
fn ycbcr(src: &impl openh264::formats::YUVSource, max_width: u16) -> (Vec<u8>, u16, u16) {
    let (sw, sh) = src.dimensions();
    let (ys, us, vs) = src.strides();
    let w = sw.min(usize::from(max_width)).max(1);
    let h = (sh * w / sw.max(1)).max(1);
    let full_y = |v: u8| u8::try_from((i32::from(v) - 16).clamp(0, 219) * 255 / 219).unwrap_or(255);
    let full_c =
        |v: u8| u8::try_from(((i32::from(v) - 128) * 255 / 224 + 128).clamp(0, 255)).unwrap_or(128);
    let (y, u, v) = (src.y(), src.u(), src.v());
    let mut out = Vec::with_capacity(w * h * 3);
    for oy in 0..h {
        let sy = oy * sh / h;
        for ox in 0..w {
            let sx = ox * sw / w;
            let c = (sy / 2) * us + sx / 2;
            out.push(full_y(y.get(sy * ys + sx).copied().unwrap_or(16)));
            out.push(full_c(u.get(c).copied().unwrap_or(128)));
            let c = (sy / 2) * vs + sx / 2;
            out.push(full_c(v.get(c).copied().unwrap_or(128)));
        }
    }
    (
        out,
        u16::try_from(w).unwrap_or(u16::MAX),
        u16::try_from(h).unwrap_or(u16::MAX),
    )
}
