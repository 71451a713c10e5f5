//! The timed-snapshot scheduler (H.626.4 6.1.12): a task that, every tick, asks
//! [`due_now`] (pure, driven by `now`) whether each enabled schedule has a due time, takes
//! that due time once in the store (compare-and-set on the last one taken, so a slow round
//! or a second CMU never sends twice), then asks the camera for a snapshot through its SCU,
//! keeps the JPEG and sends the SMS with a signed link within the owner's daily quota.
//!
//! A camera offline at a due time is skipped (logged and audited); the next due time is
//! one interval later, never a burst of the missed ones.

use std::time::Duration;

use base64::Engine as _;
use peercam_alarm::snapshot_schedule::SnapshotSchedule;
use peercam_base::{DeviceId, Phone};
use peercam_net::Shutdown;
use peercam_signal::cm_snapshot::SnapshotScheduleRequest;
use peercam_signal::cmd::{DeviceCommand, DeviceReply};

use super::{day_of, schedule_of};
use crate::Shared;
use crate::audit::{self, Event};
use crate::store::StoreError;
use crate::store::snapshots::{self as stored, SavedSchedule};
use peercam_signal::snapshot_link as link;

/// Attempts to hand one SMS to the gateway.
const SMS_ATTEMPTS: u32 = 3;
/// Timed-snapshot SMS of the whole platform per minute, at most.
const SMS_PER_MINUTE: u32 = 120;

/// H.626.4 6.1.12, the scheduler's decision: the due time to take at `now` (Unix ms), if
/// one is due. On time (the exact due time passed less than `grace_ms` ago) it is that exact
/// time, so the intervals do not drift with the tick; late (the CMU was stopped, the first
/// time) it is `now`: never the missed ones.
pub(crate) fn due_now(
    s: &SnapshotSchedule,
    last_ms: Option<u64>,
    now_ms: u64,
    grace_ms: u64,
) -> Option<u64> {
    let since = now_ms.saturating_sub(grace_ms);
    let due = s.next_due(last_ms, since)?;
    if due > now_ms {
        return None;
    }
    // Clamped to the start of the grace period: the first one, or one after a pause. Now,
    // if the window is still open now.
    if last_ms.is_none() || due == since {
        return s.next_due(last_ms, now_ms).filter(|d| *d <= now_ms);
    }
    Some(due)
}

/// Starts the scheduler; it stops with `shutdown`.
pub(crate) fn spawn(st: Shared, shutdown: Shutdown) {
    tokio::spawn(async move {
        let tick = Duration::from_millis(st.config.snapshot_tick_ms);
        let mut rounds: u64 = 0;
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(tick) => {}
            }
            let now = st.config.snapshot_clock.now_ms();
            if let Err(e) = round(&st, now, tick).await {
                tracing::warn!(error = %e, "snapshot scheduler round failed");
            }
            // Retention in days, about once a minute.
            if rounds.is_multiple_of(60_000 / st.config.snapshot_tick_ms.max(1)) {
                let days = u64::from(st.config.snapshot_retention_days);
                let cutoff = now.saturating_sub(days * 86_400_000);
                if let Err(e) = stored::expire(&st.store, cutoff).await {
                    tracing::warn!(error = %e, "could not drop old timed snapshots");
                }
            }
            rounds += 1;
        }
    });
}

/// One look at every enabled schedule at `now`.
async fn round(st: &Shared, now: u64, tick: Duration) -> Result<(), StoreError> {
    let grace = u64::try_from(tick.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_mul(3)
        .max(5000);
    for saved in stored::enabled(&st.store).await? {
        let Ok(req) = serde_json::from_str::<SnapshotScheduleRequest>(&saved.doc) else {
            tracing::warn!(camera = %saved.camera, "stored snapshot schedule does not decode");
            continue;
        };
        let Some(due) = due_now(&schedule_of(&req), saved.last_due_ms, now, grace) else {
            continue;
        };
        // One due time is taken once: whoever moves `last_due_ms` first.
        if !stored::claim(&st.store, &saved.camera, saved.last_due_ms, due).await? {
            continue;
        }
        let st = st.clone();
        tokio::spawn(async move { shoot(&st, &saved, &req, due).await });
    }
    Ok(())
}

async fn record(st: &Shared, saved: &SavedSchedule, outcome: &str, detail: &str) {
    let event = Event::TimedSnapshot {
        owner: saved.owner,
        device: &saved.camera,
        outcome,
        detail,
    };
    audit::log(&st.store, event).await;
}

/// Asks the camera for the snapshot of due time `due`; the JPEG and when it was taken.
async fn take(st: &Shared, camera: &DeviceId, max_width: u16) -> Result<(Vec<u8>, u64), String> {
    let cmd = DeviceCommand::Snapshot { max_width };
    match st.platform.command(camera, cmd).await {
        Ok((_, DeviceReply::Snapshot { jpeg, taken_ms, .. })) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(jpeg)
                .map_err(|_| "bad_reply".to_owned())?;
            if !(bytes.starts_with(&[0xff, 0xd8]) && bytes.ends_with(&[0xff, 0xd9])) {
                return Err("not_jpeg".into());
            }
            Ok((bytes, taken_ms))
        }
        Ok(_) => Err("bad_reply".into()),
        Err(e) => Err(e.code.to_owned()),
    }
}

/// One due time: the snapshot, kept; then the SMS, within the quota.
async fn shoot(st: &Shared, saved: &SavedSchedule, req: &SnapshotScheduleRequest, due: u64) {
    let camera = &saved.camera;
    // The camera's own clock may be off: the platform's time is kept and shown.
    let (jpeg, _camera_ms) = match take(st, camera, req.max_width).await {
        Ok(v) => v,
        Err(code) => {
            tracing::info!(%camera, due, %code, "timed snapshot skipped");
            record(
                st,
                saved,
                &code,
                "skipped; the next one is at the next due time",
            )
            .await;
            return;
        }
    };
    let taken_ms = st.config.snapshot_clock.now_ms();
    let id = match stored::keep(&st.store, camera, &jpeg, taken_ms, req.keep).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            record(st, saved, "too_large", "the snapshot was not kept").await;
            return;
        }
        Err(e) => {
            tracing::warn!(%camera, error = %e, "could not keep a timed snapshot");
            return;
        }
    };
    // Clause 7 accounting: a snapshot stored.
    crate::accounting::record(st, saved.owner, "snapshots", 1, Some(camera)).await;
    let now = taken_ms;
    let quota = st.config.snapshot_sms_per_day;
    match stored::count_sms(&st.store, saved.owner, day_of(now), quota).await {
        Ok(true) => {}
        Ok(false) => {
            let detail = format!("snapshot {id} kept; no SMS, {quota} sent today");
            record(st, saved, "quota_exceeded", &detail).await;
            return;
        }
        Err(e) => {
            tracing::warn!(%camera, error = %e, "SMS quota unknown; no SMS");
            return;
        }
    }
    let detail = format!("snapshot {id}");
    match send(st, saved, req, (id, taken_ms, now), &jpeg).await {
        Ok(()) => record(st, saved, "ok", &detail).await,
        Err(code) => record(st, saved, code, &detail).await,
    }
}

/// `HH:MM` of `ms` at `offset_min` east of UTC.
fn clock_time(ms: u64, offset_min: i16) -> String {
    let local = i64::try_from(ms / 60_000).unwrap_or(0) + i64::from(offset_min);
    let minute = local.rem_euclid(1440);
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// The SMS: the camera's name, the time taken and the link; an MMS with the JPEG too where
/// the gateway can.
async fn send(
    st: &Shared,
    saved: &SavedSchedule,
    req: &SnapshotScheduleRequest,
    (id, taken_ms, now): (i64, u64, u64),
    jpeg: &[u8],
) -> Result<(), &'static str> {
    let phone: Phone = req.phone.parse().map_err(|_| "bad_phone")?;
    if st
        .limits
        .hit("snapshot-sms", SMS_PER_MINUTE, Duration::from_secs(60))
        .await
        .is_err()
    {
        return Err("rate_limited");
    }
    let exp = now / 1000 + st.config.snapshot_link_ttl_s;
    let token = link::mint(&st.link_key, id, exp);
    let name = match crate::store::devices::get(&st.store, &saved.camera).await {
        Ok(Some(d)) => d.name.unwrap_or_else(|| saved.camera.as_str().to_owned()),
        _ => saved.camera.as_str().to_owned(),
    };
    let name: String = name.chars().take(24).collect();
    let at = clock_time(taken_ms, req.utc_offset_min);
    let text = format!("{name} {at}: {}/s/{token}", st.public_url);
    let attach = st.sms.mms().then_some(jpeg);
    crate::sms::send_retrying(st.sms.as_ref(), &phone, (&text, attach), SMS_ATTEMPTS)
        .await
        .map_err(|e| {
            tracing::warn!(camera = %saved.camera, error = %e, "timed snapshot SMS not sent");
            "sms_failed"
        })?;
    crate::accounting::sms_sent(st, saved.owner).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use peercam_record::strategy::{Window, weekly_state};

    use super::*;

    /// Monday 1970-01-05 00:00 UTC.
    const MONDAY: u64 = 4 * 86_400_000;
    const MIN: u64 = 60_000;

    /// Runs the scheduler's decisions over `[from, to)` every `tick_ms` of virtual time, with
    /// the store's compare-and-set modelled (a due time taken by the first of `takers`
    /// concurrent rounds only); `offline` ticks claim but take nothing. The due times taken.
    fn drive(
        s: &SnapshotSchedule,
        (from, to, tick_ms): (u64, u64, u64),
        takers: usize,
    ) -> Vec<u64> {
        let mut last = None;
        let mut taken = Vec::new();
        let mut now = from;
        while now < to {
            for _ in 0..takers {
                // Every concurrent round reads the same `last` before any writes.
                let seen = last;
                if let Some(due) = due_now(s, seen, now, 3 * tick_ms)
                    && last == seen
                {
                    last = Some(due);
                    taken.push(due);
                }
            }
            now += tick_ms;
        }
        taken
    }

    #[test]
    fn h626_6_1_12_schedule_fires_on_time_in_virtual_time() {
        // Every 30 min on weekdays 08:00-09:00 local at UTC+60 (07:00-08:00 UTC).
        let s = SnapshotSchedule {
            enabled: true,
            every_s: 1800,
            windows: vec![Window {
                days: 0b001_1111,
                start_min: 480,
                end_min: 540,
            }],
            utc_offset_min: 60,
            ..SnapshotSchedule::default()
        };
        let week = 7 * 1440 * MIN;
        // A 1 s tick, three rounds racing each tick (a slow CMU): each due time once.
        let taken = drive(&s, (MONDAY, MONDAY + week, 1000), 3);
        let want: Vec<u64> = (0..5)
            .flat_map(|d| {
                let open = MONDAY + d * 1440 * MIN + 7 * 60 * MIN;
                [open, open + 30 * MIN]
            })
            .collect();
        assert_eq!(taken, want, "on time, inside the windows only, never twice");
        for t in &taken {
            assert!(
                weekly_state(&s.windows, 60, *t).0,
                "{t} outside the windows"
            );
        }
        // A coarse 7 s tick: still the exact due times (no drift), each once.
        let coarse = drive(&s, (MONDAY + 1, MONDAY + week, 7000), 1);
        assert_eq!(coarse.len(), 10);
        assert!(coarse.iter().zip(&want).all(|(a, b)| a.abs_diff(*b) < 7000));
        assert!(coarse.windows(2).all(|w| w[1] > w[0]));

        // Around the clock every 10 min, for two hours: 12, exactly 10 min apart.
        let every = SnapshotSchedule {
            enabled: true,
            every_s: 600,
            ..SnapshotSchedule::default()
        };
        let t = drive(&every, (MONDAY, MONDAY + 120 * MIN, 1000), 2);
        assert_eq!(t.len(), 12);
        assert!(t.windows(2).all(|w| w[1] - w[0] == 10 * MIN));
    }

    #[test]
    fn h626_6_1_12_late_scheduler_takes_one_not_a_burst() {
        let s = SnapshotSchedule {
            enabled: true,
            every_s: 600,
            ..SnapshotSchedule::default()
        };
        let last = MONDAY;
        // On time: the exact due time, even a few seconds late.
        assert_eq!(
            due_now(&s, Some(last), last + 10 * MIN + 2000, 3000),
            Some(last + 10 * MIN)
        );
        assert_eq!(due_now(&s, Some(last), last + 10 * MIN - 1, 3000), None);
        // Two hours stopped (or the camera offline throughout): one now, then 10 min on.
        let now = last + 120 * MIN;
        assert_eq!(due_now(&s, Some(last), now, 3000), Some(now));
        assert_eq!(due_now(&s, Some(now), now + 1000, 3000), None);
        assert_eq!(
            due_now(&s, Some(now), now + 10 * MIN, 3000),
            Some(now + 10 * MIN)
        );
        // Disabled: never.
        let off = SnapshotSchedule::default();
        assert_eq!(due_now(&off, None, now, 3000), None);
        assert_eq!(clock_time(MONDAY + 7 * 60 * MIN + 5 * MIN, 60), "08:05");
        assert_eq!(clock_time(MONDAY, -30), "23:30");
    }
}
