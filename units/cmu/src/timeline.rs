//! One timeline over a camera's recorders (H.626.4 6.3.2; docs/design/cloud-storage.md "One
//! timeline over SD card, NVR and cloud"): `GET /api/v1/devices/{id}/recordings` without
//! `recorder` asks every recorder of the camera at once, each within [`DEADLINE`], and
//! merges their lists with [`peercam_signal::record::merge`]. A recorder that does not
//! answer in time or refuses is listed in `recorders` with its state; its spans are missing.
//!
//! Play order, nearest first: the camera's NVRs (reading the card loads the camera), then
//! its SD card, then the cloud. Playback without `recorder` plays from the first of them
//! holding the moment asked for ([`holder_of`]).

use std::time::Duration;

use peercam_base::DeviceId;
use peercam_signal::record::{RecorderAnswer, RecordingList, Timeline, merge};

use crate::Shared;
use crate::error::ApiResult;
use crate::store::{self, recordings};

/// How long the merged list waits for each recorder.
pub(crate) const DEADLINE: Duration = Duration::from_secs(2);

/// The camera's recorders in play order: (source name, device).
async fn sources(st: &Shared, camera: &DeviceId) -> ApiResult<Vec<(String, DeviceId)>> {
    let mut all = recordings::recorders_of(&st.store, camera).await?;
    all.sort();
    let mut out: Vec<(String, DeviceId)> = all
        .iter()
        .filter(|r| *r != camera)
        .map(|r| (format!("nvr:{r}"), r.clone()))
        .collect();
    // The card: when it has a strategy, or when there is no NVR (the camera's own list, as
    // without `recorder` before).
    if all.iter().any(|r| r == camera) || out.is_empty() {
        out.push(("sd".into(), camera.clone()));
    }
    if let Some(c) = store::cloud::get(&st.store, camera).await?
        && c.strategy.is_some()
    {
        out.push(("cloud".into(), c.cs));
    }
    Ok(out)
}

/// The merged timeline of `camera` over `[from_ms, to_ms)`.
pub(crate) async fn merged(
    st: &Shared,
    camera: &DeviceId,
    from_ms: u64,
    to_ms: u64,
) -> ApiResult<Timeline> {
    let sources = sources(st, camera).await?;
    let asks = sources.iter().map(|(name, recorder)| async move {
        let answer = tokio::time::timeout(
            DEADLINE,
            crate::recording::list_on(st, camera, recorder, from_ms, to_ms),
        )
        .await;
        let state = match &answer {
            Ok(Ok(_)) => "ok",
            // device_offline
            Ok(Err(e)) if e.status == axum::http::StatusCode::CONFLICT => "unreachable",
            Ok(Err(_)) => "refused",
            Err(_) => "unreachable",
        };
        (name.clone(), answer.ok().and_then(Result::ok), state)
    });
    let answers = futures_util::future::join_all(asks).await;
    let lists: Vec<(String, RecordingList)> = answers
        .iter()
        .filter_map(|(n, l, _)| l.clone().map(|l| (n.clone(), l)))
        .collect();
    let mut t = merge(camera.clone(), from_ms, to_ms, &lists);
    t.recorders = answers
        .into_iter()
        .map(|(recorder, _, state)| RecorderAnswer {
            recorder,
            state: state.into(),
        })
        .collect();
    Ok(t)
}

/// H.626.4 6.3.2 with 8.7.1 playback: the recorder to play `start_ms` from when the viewer
/// names none, the nearest source holding that moment (source name, device); `None` when no
/// recorder that answered in time holds it.
pub(crate) async fn holder_of(
    st: &Shared,
    camera: &DeviceId,
    start_ms: u64,
) -> ApiResult<Option<(String, DeviceId)>> {
    let t = merged(st, camera, start_ms, start_ms.saturating_add(1000)).await?;
    let Some(name) = t
        .spans
        .iter()
        .find(|s| s.start_ms <= start_ms && start_ms < s.end_ms)
        .and_then(|s| s.sources.first())
    else {
        return Ok(None);
    };
    Ok(sources(st, camera)
        .await?
        .into_iter()
        .find(|(n, _)| n == name))
}
