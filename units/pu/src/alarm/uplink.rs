//! H.626.4 8.8 alarm up (PU -> SCU -> CMU): the queue of alarms sent one at a time over the
//! platform link, each until the platform answers `Stored`.

use std::sync::Arc;
use std::time::Duration;

use peercam_alarm::engine::ANSWER_TIMEOUT_MS;
use peercam_net::Shutdown;
use peercam_signal::cmd::{DeviceRequest, PlatformAnswer};
use peercam_signal::refusal::Refusal;
use tokio::sync::{mpsc, oneshot, watch};

use super::Alarms;
use crate::PlatformRequest;
use crate::clock::MediaClock;

/// Whether the platform may accept the alarm later (it is sent again after a back-off).
fn retryable(code: &Refusal) -> bool {
    matches!(
        code,
        Refusal::Unavailable | Refusal::Timeout | Refusal::DeviceOffline | Refusal::NoSession
    )
}

/// Sends queued alarms while the link is registered; see the module docs.
pub(crate) fn spawn(
    alarms: Arc<Alarms>,
    platform: mpsc::Sender<PlatformRequest>,
    mut status: watch::Receiver<crate::PuStatus>,
    clock: Arc<MediaClock>,
    shutdown: Shutdown,
) {
    tokio::spawn(async move {
        loop {
            let up = matches!(
                *status.borrow_and_update(),
                crate::PuStatus::Registered { .. }
            );
            let now_ms = clock.now_us() / 1000;
            let (next, wake_at) = alarms.with_engine(|e| {
                e.set_link(up);
                e.handle_timeout(now_ms);
                (e.poll_transmit(now_ms), e.poll_timeout())
            });
            if let Some(alarm) = next {
                let id = alarm.id.clone();
                let answer = ask(&platform, DeviceRequest::Alarm { alarm }, &shutdown).await;
                let now_ms = clock.now_us() / 1000;
                match answer {
                    Some(PlatformAnswer::Stored { id: stored }) => {
                        alarms.with_engine(|e| e.on_stored(&stored));
                        tracing::debug!(%id, "alarm stored by the platform");
                    }
                    Some(PlatformAnswer::Refused { code, message }) => {
                        let retry = retryable(&code);
                        tracing::warn!(%id, ?code, %message, retry, "the platform refused the alarm");
                        alarms.with_engine(|e| e.on_refused(&id, retry, now_ms));
                    }
                    Some(other) => {
                        tracing::warn!(%id, ?other, "unexpected answer to an alarm");
                        alarms.with_engine(|e| e.on_refused(&id, true, now_ms));
                    }
                    None if shutdown.is_triggered() => return,
                    None => alarms.with_engine(|e| e.on_refused(&id, true, now_ms)),
                }
                continue;
            }
            let sleep = wake_at.map_or(Duration::from_secs(60), |at| {
                Duration::from_millis(at.saturating_sub(now_ms).clamp(10, 60_000))
            });
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = alarms.wake.notified() => {}
                r = status.changed() => if r.is_err() { return; },
                () = shutdown.wait() => return,
            }
        }
    });
}

/// One request and its answer; `None` when no answer came in time.
async fn ask(
    platform: &mpsc::Sender<PlatformRequest>,
    request: DeviceRequest,
    shutdown: &Shutdown,
) -> Option<PlatformAnswer> {
    let (reply, rx) = oneshot::channel();
    platform
        .send(PlatformRequest::Request { request, reply })
        .await
        .ok()?;
    tokio::select! {
        r = tokio::time::timeout(Duration::from_millis(ANSWER_TIMEOUT_MS), rx) => r.ok()?.ok(),
        () = shutdown.wait() => None,
    }
}
