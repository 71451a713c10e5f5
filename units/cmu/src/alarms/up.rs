//! H.626.4 8.8 alarm up (PU -> SCU -> CMU) and the linkage, and the platform's own alarms
//! (6.1.9: logins, cameras going offline and back, recorders going offline, a recorder's
//! full store, a new software version after an upgrade).
//!
//! The camera's alarm is stored once per (camera, alarm id) and answered `stored`; only the
//! first store runs the linkage, in a task of its own so the answer never waits for it:
//! the recorders mark the alarm (`record_event`), a snapshot is kept with it, the owner gets
//! an SMS in their words when the strategy and their settings ask for one, and every open
//! alarm stream of someone who may see it hears of it, and the owner's browsers get a Web
//! Push message when the strategy and their settings ask for one ([`super::push`]).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use peercam_alarm::template::Values;
use peercam_alarm::{Alarm, AlarmKind, AlarmStrategy, Linkage};
use peercam_base::{DeviceId, Phone};
use peercam_signal::cmd::{DeviceCommand, DeviceReply, PlatformAnswer};
use peercam_signal::ps::DeviceKind;
use peercam_signal::refusal::Refusal;

use super::messages;
use crate::store::alarms::{self as stored, AlarmRow, Stored, Viewer};
use crate::store::{accounts, devices, recordings};
use crate::{Shared, now_ms, random_bytes};

/// SMS per user per hour, at most.
const SMS_PER_USER_HOUR: u32 = 20;
/// SMS of the whole platform per minute, at most.
const SMS_PER_MINUTE: u32 = 120;
/// Attempts to hand one SMS to the gateway.
const SMS_ATTEMPTS: u32 = 3;
/// Widest snapshot kept with an alarm, pixels.
const SNAPSHOT_WIDTH: u16 = 640;

/// Cameras the platform raised a `camera_offline` (or `recorder_offline`) alarm for and no
/// `camera_online` since: rows shared by every CMU instance (`offline_alarms`, issue 19), so
/// that each alarm is raised once whichever instance sees the change. While the database
/// cannot answer, this instance's memory decides.
#[derive(Default)]
pub(crate) struct Offline {
    devices: Mutex<HashSet<DeviceId>>,
}

impl Offline {
    /// Records the change; true if it is news (the alarm is due).
    async fn set(&self, db: &crate::store::Store, id: &DeviceId, offline: bool) -> bool {
        let shared = if offline {
            crate::store::presence::mark_offline(db, id.as_str(), now_ms()).await
        } else {
            crate::store::presence::clear_offline(db, id.as_str()).await
        };
        let mut set = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        let here = if offline {
            set.insert(id.clone())
        } else {
            set.remove(id)
        };
        shared.unwrap_or(here)
    }
}

fn refused(code: Refusal, message: &str) -> PlatformAnswer {
    PlatformAnswer::Refused {
        code,
        message: message.to_owned(),
    }
}

/// H.626.4 8.8 steps 5-7: a camera's alarm. Answered `stored` once it is in the database
/// (again for a retransmission, without a second linkage).
pub(crate) async fn alarm_up(st: &Shared, camera: &DeviceId, alarm: Alarm) -> PlatformAnswer {
    if let Err(e) = alarm.validate() {
        return refused(Refusal::BadRequest, &e.to_string());
    }
    if !alarm.kind.from_device() {
        return refused(
            Refusal::BadRequest,
            "a camera may not raise this kind of alarm",
        );
    }
    let owner = match devices::get(&st.store, camera).await {
        Ok(Some(d)) => d.owner,
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "database error on an alarm");
            return refused(
                Refusal::Unavailable,
                "the platform cannot store it now; try again",
            );
        }
    };
    let Some(owner) = owner else {
        return refused(Refusal::Forbidden, "the camera is not bound to an account");
    };
    match stored::store(&st.store, owner, Some(camera), &alarm, now_ms()).await {
        Ok(Stored::Again(_)) => PlatformAnswer::Stored { id: alarm.id },
        Ok(Stored::New(row)) => {
            let (st2, camera2) = (st.clone(), camera.clone());
            tokio::spawn(async move { linkage(&st2, owner, &camera2, row).await });
            PlatformAnswer::Stored { id: alarm.id }
        }
        Err(e) => {
            tracing::error!(error = %e, "database error on an alarm");
            refused(
                Refusal::Unavailable,
                "the platform cannot store it now; try again",
            )
        }
    }
}

/// The camera's linkage as the platform keeps it (the default when none was saved).
pub(crate) async fn saved_strategy(st: &Shared, camera: &DeviceId) -> AlarmStrategy {
    match stored::strategy(&st.store, camera).await {
        Ok(Some(s)) => serde_json::from_str(&s.doc).unwrap_or_default(),
        _ => AlarmStrategy::default(),
    }
}

/// H.626.4 8.8 step 8: what the strategy links to the alarm.
async fn linkage(st: &Shared, owner: i64, camera: &DeviceId, row_id: i64) {
    let Linkage {
        record,
        snapshot,
        sms,
        push,
        ..
    } = saved_strategy(st, camera).await.linkage;
    let Ok(Some(row)) = stored::get(&st.store, Viewer::Owner(owner), row_id).await else {
        return;
    };
    // Open clients hear of the alarm first: neither the camera's snapshot nor the
    // recorders hold the toast back. The snapshot follows as an update of the same alarm.
    st.alarm_hub.publish(&row, "alarm");
    let snap = async {
        if snapshot && keep_snapshot(st, camera, row_id).await {
            let mut with = row.clone();
            with.snapshot = true;
            st.alarm_hub.publish(&with, "snapshot");
        }
    };
    let rec = async {
        if record {
            record_event(st, camera, &row.alarm).await;
        }
    };
    tokio::join!(notify(st, &row, Asked { sms, push }), snap, rec);
}

/// What the camera's strategy links to an alarm (8.8 `linkage`); platform alarms ask for
/// every channel and the user's settings decide.
#[derive(Debug, Clone, Copy)]
struct Asked {
    sms: bool,
    push: bool,
}

impl Asked {
    const ALL: Self = Self {
        sms: true,
        push: true,
    };
}

/// Marks the alarm on every recorder of the camera (NVRs). The camera marks its own SD card
/// itself when it raises the alarm (no round trip, and no second mark from here).
async fn record_event(st: &Shared, camera: &DeviceId, alarm: &Alarm) {
    let Ok(recorders) = recordings::recorders_of(&st.store, camera).await else {
        return;
    };
    for rid in recorders.into_iter().filter(|r| r != camera) {
        let cmd = DeviceCommand::RecordEvent {
            camera: camera.clone(),
            kind: "alarm".into(),
            detail: format!("{}: {}", alarm.kind, alarm.id),
        };
        if let Err(e) = st.platform.command(&rid, cmd).await {
            tracing::info!(recorder = %rid, error = %e.message, "recorder did not take the alarm");
        }
    }
}

/// Asks the camera for a snapshot and keeps it with the alarm.
async fn keep_snapshot(st: &Shared, camera: &DeviceId, row_id: i64) -> bool {
    let cmd = DeviceCommand::Snapshot {
        max_width: SNAPSHOT_WIDTH,
    };
    let Ok((_, DeviceReply::Snapshot { jpeg, taken_ms, .. })) =
        st.platform.command(camera, cmd).await
    else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(jpeg) else {
        return false;
    };
    stored::keep_snapshot(&st.store, row_id, camera, &bytes, taken_ms)
        .await
        .unwrap_or(false)
}

/// 6.1.9: tells the alarm's owner on the channels they chose; `asked` is the strategy's say
/// for device alarms (platform alarms ask for all).
async fn notify(st: &Shared, row: &AlarmRow, asked: Asked) {
    let kind = row.alarm.kind;
    let Ok(own) = stored::notify(&st.store, row.owner).await else {
        return;
    };
    let channels = messages::channels_of(&own, kind);
    let Ok(params) = crate::settings::user_params(st, row.owner).await else {
        return;
    };
    if !params.notify_alarms {
        return;
    }
    if channels.push && asked.push {
        // In a task of its own: retries to a slow push service never hold the SMS back.
        let (st2, row2) = (st.clone(), row.clone());
        tokio::spawn(async move { push(&st2, &row2).await });
    }
    if channels.sms && asked.sms {
        sms(st, row).await;
    }
}

/// 6.1.9: the alarm to the owner's browsers by Web Push, in the owner's words.
async fn push(st: &Shared, row: &AlarmRow) {
    let name = match &row.camera {
        Some(c) => Some(camera_name(st, c).await),
        None => None,
    };
    let values = Values {
        camera: name.clone().unwrap_or_default(),
        detail: row.alarm.detail.clone(),
        link: format!("{}/#/alarms/{}", st.public_url, row.id),
        ..Values::default()
    };
    let Ok(text) = messages::compose(st, row.owner, row.alarm.kind, values, row.alarm.at_ms).await
    else {
        return;
    };
    super::push::alarm(st, row, name, text).await;
}

/// Sends the owner an SMS in their words, within the rate limits, retrying the gateway.
async fn sms(st: &Shared, row: &AlarmRow) {
    let Ok(Some(account)) = accounts::get(&st.store, row.owner).await else {
        return;
    };
    // Owners log in with their phone number; sub-accounts have none.
    let Ok(phone) = account.login.parse::<Phone>() else {
        return;
    };
    let per_user = format!("alarm-sms:{}", row.owner);
    let hour = Duration::from_secs(3600);
    let minute = Duration::from_secs(60);
    // Both limits are looked at before either counts: a message the platform cap holds
    // back does not use up the owner's share.
    let allowed = st
        .limits
        .check(&per_user, SMS_PER_USER_HOUR, hour)
        .await
        .is_ok()
        && st
            .limits
            .check("alarm-sms", SMS_PER_MINUTE, minute)
            .await
            .is_ok();
    if !allowed
        || st
            .limits
            .hit(&per_user, SMS_PER_USER_HOUR, hour)
            .await
            .is_err()
        || st
            .limits
            .hit("alarm-sms", SMS_PER_MINUTE, minute)
            .await
            .is_err()
    {
        tracing::warn!(
            user = row.owner,
            alarm = row.id,
            "alarm SMS over the rate limit; not sent"
        );
        return;
    }
    let camera = match &row.camera {
        Some(c) => camera_name(st, c).await,
        None => String::new(),
    };
    let values = Values {
        camera,
        detail: row.alarm.detail.clone(),
        link: format!("{}/#/alarms/{}", st.public_url, row.id),
        ..Values::default()
    };
    let Ok(text) = messages::compose(st, row.owner, row.alarm.kind, values, row.alarm.at_ms).await
    else {
        return;
    };
    match crate::sms::send_retrying(st.sms.as_ref(), &phone, (&text, None), SMS_ATTEMPTS).await {
        Ok(()) => crate::accounting::sms_sent(st, row.owner).await,
        Err(e) => tracing::warn!(error = %e, alarm = row.id, "alarm SMS not sent"),
    }
}

async fn camera_name(st: &Shared, id: &DeviceId) -> String {
    match devices::get(&st.store, id).await {
        Ok(Some(d)) => d.name.unwrap_or_else(|| id.as_str().to_owned()),
        _ => id.as_str().to_owned(),
    }
}

/// 6.1.9: a platform alarm of `owner` (about `device`, or the account itself), stored and
/// delivered per the owner's settings.
pub(crate) async fn system(
    st: &Shared,
    owner: i64,
    device: Option<&DeviceId>,
    kind: AlarmKind,
    detail: String,
) {
    let id = format!("sys-{}-{}", now_ms(), hex::encode(random_bytes::<4>()));
    let _ = system_with_id(st, owner, device, kind, detail, id).await;
}

/// Like [`system`] with the alarm's id chosen by the caller: a second alarm with the same
/// id for the same device is not stored again (nor delivered). `false` when it could not be
/// stored.
async fn system_with_id(
    st: &Shared,
    owner: i64,
    device: Option<&DeviceId>,
    kind: AlarmKind,
    detail: String,
    id: String,
) -> bool {
    let at = now_ms();
    let alarm = Alarm {
        id,
        kind,
        at_ms: at,
        input: None,
        zone: None,
        level: 0,
        detail: detail.chars().take(peercam_alarm::MAX_DETAIL / 4).collect(),
    };
    let row_id = match stored::store(&st.store, owner, device, &alarm, at).await {
        Ok(Stored::New(id)) => id,
        Ok(Stored::Again(_)) => return true,
        Err(e) => {
            tracing::error!(error = %e, ?kind, "could not store a platform alarm");
            return false;
        }
    };
    if let Ok(Some(row)) = stored::get(&st.store, Viewer::Owner(owner), row_id).await {
        st.alarm_hub.publish(&row, "alarm");
        notify(st, &row, Asked::ALL).await;
    }
    true
}

/// What became of a storage-full report.
pub(crate) enum FullOutcome {
    /// The alarm is stored (now or earlier the same day), with this id.
    Stored(String),
    /// The camera is unknown or bound to no account: no one to tell.
    Unbound,
    /// The database failed.
    Failed,
}

/// 6.1.9: a recorder reported the camera's recording met a full store: its state `full`
/// when read (`reason` absent), or its own `storage_full` request with its reason. One alarm
/// per (camera, recorder) and UTC day; its detail names the recorder (`SD card` or
/// `recorder <id>`), then the reason.
pub(crate) async fn storage_full(
    st: &Shared,
    camera: &DeviceId,
    recorder: &DeviceId,
    reason: Option<&str>,
) -> FullOutcome {
    let owner = match devices::get(&st.store, camera).await {
        Ok(Some(dev)) => dev.owner,
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "database error on a storage-full report");
            return FullOutcome::Failed;
        }
    };
    let Some(owner) = owner else {
        return FullOutcome::Unbound;
    };
    let day = now_ms() / 86_400_000;
    let id = format!("full-{}-{day}", recorder.as_str());
    let mut detail = if recorder == camera {
        "SD card".to_owned()
    } else {
        format!("recorder {recorder}")
    };
    // The recorder's words, without control characters (the alarm goes to SMS and browsers).
    let reason: String = reason
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let reason = reason.trim();
    if !reason.is_empty() {
        detail = format!("{detail}: {reason}");
    }
    if system_with_id(
        st,
        owner,
        Some(camera),
        AlarmKind::StorageFull,
        detail,
        id.clone(),
    )
    .await
    {
        FullOutcome::Stored(id)
    } else {
        FullOutcome::Failed
    }
}

/// 6.1.9 `storage_full` request: `sender` found its store full while recording `camera`.
/// Accepted from the camera itself (its SD card, 8.7.3) or an NVR the camera is attached to
/// (8.7.2); answered `stored` with the platform alarm's id.
pub(crate) async fn storage_full_request(
    st: &Shared,
    sender: &DeviceId,
    camera: &DeviceId,
    detail: &str,
) -> PlatformAnswer {
    if detail.len() > peercam_signal::cmd::MAX_STORAGE_DETAIL {
        return refused(Refusal::BadRequest, "the detail is too long");
    }
    if sender != camera {
        match recordings::is_attached(&st.store, camera, sender).await {
            Ok(true) => {}
            Ok(false) => {
                return refused(
                    Refusal::Forbidden,
                    "only the camera or a recorder it is attached to reports its storage",
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "database error on a storage-full report");
                return refused(Refusal::Unavailable, "the platform cannot decide now");
            }
        }
    }
    match storage_full(st, camera, sender, Some(detail)).await {
        FullOutcome::Stored(id) => PlatformAnswer::Stored { id },
        FullOutcome::Unbound => {
            refused(Refusal::Forbidden, "the camera is not bound to an account")
        }
        FullOutcome::Failed => refused(
            Refusal::Unavailable,
            "the platform cannot store it now; try again",
        ),
    }
}

/// 6.1.9: a device registered with another software version than before (8.11.1: the
/// upgrade it was sent took effect). One alarm per (device, version), shared with
/// [`watch_upgrade`].
pub(crate) async fn upgrade_result(st: &Shared, device: &DeviceId, from: &str, to: &str) {
    upgrade_alarm(st, device, to, format!("now {to} (was {from})")).await;
}

async fn upgrade_alarm(st: &Shared, device: &DeviceId, target: &str, detail: String) {
    let Ok(Some(dev)) = devices::get(&st.store, device).await else {
        return;
    };
    let Some(owner) = dev.owner else { return };
    let id = format!("upgrade-{}-{target}", device.as_str());
    system_with_id(
        st,
        owner,
        Some(device),
        AlarmKind::UpgradeResult,
        detail,
        id,
    )
    .await;
}

/// How often [`watch_upgrade`] asks the device how its upgrade goes.
const UPGRADE_POLL: Duration = Duration::from_secs(2);
/// How long [`watch_upgrade`] follows one upgrade.
const UPGRADE_WATCH: Duration = Duration::from_secs(30 * 60);

/// 6.1.9 upgrade result, 8.11.1 step 5: after the device took an upgrade order, follows its
/// progress until it ends and raises the result: committed, failed (download or install)
/// or rolled back (the new release did not come up). Nobody needs to look at the status
/// for the owner to hear of a failure. The watch lives in this CMU's memory: after a
/// restart of the CMU a success is still raised when the device registers with the new
/// version, a failure only if the owner reads the status again.
pub(crate) fn watch_upgrade(st: &Shared, device: DeviceId, from: String, target: String) {
    let st = st.clone();
    tokio::spawn(async move {
        let end = tokio::time::Instant::now() + UPGRADE_WATCH;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(UPGRADE_POLL).await;
            // Offline while it restarts into the new release: ask again later.
            let Ok((_, DeviceReply::Upgrade { status })) = st
                .platform
                .command(&device, DeviceCommand::UpgradeStatus)
                .await
            else {
                continue;
            };
            match upgrade_outcome(&status, &from, &target) {
                Upgrading::Going => {}
                Upgrading::Superseded => return,
                Upgrading::Ended(detail) => {
                    upgrade_alarm(&st, &device, &target, detail).await;
                    return;
                }
            }
        }
        tracing::warn!(%device, %target, "upgrade did not finish within the watch");
    });
}

/// Where an upgrade stands, as [`watch_upgrade`] sees it.
#[derive(Debug, PartialEq, Eq)]
enum Upgrading {
    /// Still downloading, installing or restarting.
    Going,
    /// Another upgrade was ordered meanwhile: its own watch reports it.
    Superseded,
    /// Ended: the alarm's detail.
    Ended(String),
}

fn upgrade_outcome(
    s: &peercam_signal::upgrade::UpgradeStatus,
    from: &str,
    target: &str,
) -> Upgrading {
    let why = s.reason.as_deref().unwrap_or("no reason given");
    if s.running == target {
        return Upgrading::Ended(format!("now {target} (was {from})"));
    }
    if s.target.as_deref().is_some_and(|t| t != target) {
        return Upgrading::Superseded;
    }
    match s.state.as_str() {
        "failed" => Upgrading::Ended(format!("{target} failed, still {}: {why}", s.running)),
        "rolled_back" => {
            Upgrading::Ended(format!("{target} rolled back, still {}: {why}", s.running))
        }
        _ => Upgrading::Going,
    }
}

/// Sc presence: a device went offline (its SCU's presence timeout, or its link closed) or
/// came back. Raises `camera_offline` / `recorder_offline`, and `camera_online` after an
/// offline alarm; a camera coming back gets its pending alarm strategy (8.8 steps 1-4).
pub(crate) async fn presence(st: &Shared, id: &DeviceId, online: bool) {
    let Ok(Some(dev)) = devices::get(&st.store, id).await else {
        return;
    };
    // 6.1.14: the same event raises or clears the device's fault (bound or not).
    crate::faults::presence(st, id, dev.kind, online).await;
    let Some(owner) = dev.owner else { return };
    let name = dev.name.clone().unwrap_or_else(|| id.as_str().to_owned());
    let kind = match (online, dev.kind) {
        (false, DeviceKind::Pu) => AlarmKind::CameraOffline,
        (false, DeviceKind::Nvr) => AlarmKind::RecorderOffline,
        (true, DeviceKind::Pu | DeviceKind::Nvr) => AlarmKind::CameraOnline,
        _ => return,
    };
    if online {
        if dev.kind == DeviceKind::Pu {
            push_pending_strategy(st, id).await;
        }
        if !st.offline.set(&st.store, id, false).await {
            return;
        }
    } else if !st.offline.set(&st.store, id, true).await {
        // Raised already (by this instance or another) and not back online since.
        return;
    }
    system(st, owner, Some(id), kind, name).await;
}

/// Sends the saved strategy when the camera has not applied it yet.
pub(crate) async fn push_pending_strategy(st: &Shared, camera: &DeviceId) {
    let Ok(Some(saved)) = stored::strategy(&st.store, camera).await else {
        return;
    };
    if saved.applied {
        return;
    }
    let Ok(strategy) = serde_json::from_str::<AlarmStrategy>(&saved.doc) else {
        return;
    };
    let cmd = DeviceCommand::SetAlarmStrategy { strategy };
    if let Ok((_, DeviceReply::Alarms { .. })) = st.platform.command(camera, cmd).await {
        let _ = stored::strategy_applied(&st.store, camera, saved.revision).await;
    }
}

#[cfg(test)]
mod tests {
    use peercam_signal::upgrade::UpgradeStatus;

    use super::*;

    fn status(running: &str, state: &str, target: Option<&str>) -> UpgradeStatus {
        UpgradeStatus {
            running: running.into(),
            state: state.into(),
            target: target.map(str::to_owned),
            done: 0,
            total: 0,
            reason: Some("exited 7".into()),
        }
    }

    #[test]
    fn h626_6_1_9_upgrade_outcome_names_success_failure_and_rollback() {
        let o = |s| upgrade_outcome(&s, "0.1.0", "0.2.0");
        assert_eq!(
            o(status("0.1.0", "downloading", Some("0.2.0"))),
            Upgrading::Going
        );
        assert_eq!(
            o(status("0.1.0", "restarting", Some("0.2.0"))),
            Upgrading::Going
        );
        assert_eq!(
            o(status("0.2.0", "committed", Some("0.2.0"))),
            Upgrading::Ended("now 0.2.0 (was 0.1.0)".into())
        );
        assert_eq!(
            o(status("0.1.0", "failed", Some("0.2.0"))),
            Upgrading::Ended("0.2.0 failed, still 0.1.0: exited 7".into())
        );
        assert_eq!(
            o(status("0.1.0", "rolled_back", Some("0.2.0"))),
            Upgrading::Ended("0.2.0 rolled back, still 0.1.0: exited 7".into())
        );
        assert_eq!(
            o(status("0.1.0", "failed", Some("0.3.0"))),
            Upgrading::Superseded
        );
    }
}
