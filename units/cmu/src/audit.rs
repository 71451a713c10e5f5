//! The audit log's events: what happened, with its fields, one variant per kind of event.
//! [`Event::record`] turns one into the stored row (action, actor, device, outcome, detail);
//! the action names are the ones the log has always used.

use peercam_base::{DeviceId, Phone, Scope, ScopeSet};

use crate::store::{self, Store};

/// Which token a viewer was given (8.4 live, 8.7.2.2/8.7.3 playback and export).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Minted {
    /// An RTSP URL for live view.
    PlayUrl,
    /// A live view in the browser.
    WebRtc,
    /// An RTSP URL for playback on a recorder.
    PlaybackUrl,
    /// A playback in the browser.
    PlaybackWebRtc,
    /// An export download on a recorder.
    ExportUrl,
    /// A relayed viewer's talk upstream (6.1.8), asked by the MTU.
    RelayTalk,
    /// A piped viewer's playback token for the recorder (Mn/Nd, 8.3), asked by the MTU.
    RelayPipe,
}

/// What happened to a shared clip link (issue 17 item 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClipUse {
    /// The owner made it.
    Created,
    /// The owner revoked it.
    Revoked,
    /// Someone opened its page.
    Viewed,
    /// Someone downloaded the file.
    Downloaded,
}

/// A platform service pulling a camera on its owner's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// An NVR recording it (8.7.2.1 steps 16-18).
    NvrStream,
    /// An MTU relaying it (Mp/Pd).
    MtuUpstream,
}

/// How an 8.9.1 parameter change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamsOutcome {
    /// No valid permit.
    NoPermit,
    /// Values out of range.
    Invalid,
    /// Applied by the device at this revision.
    Applied(u64),
}

/// Something that happened, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// 6.1.1: an SMS code went to this number.
    SignupCodeSent { phone: &'a Phone },
    /// 6.1.1: the code was right; the account waits for approval.
    SignupConfirmed,
    /// A login with a wrong login or password.
    LoginFailed,
    /// A login.
    LoggedIn { user: i64 },
    /// A password change.
    PasswordChanged { user: i64 },
    /// The operator approved an owner.
    AccountApproved { by: i64, account: i64 },
    /// The operator disabled an account.
    AccountDisabled { by: i64, account: i64 },
    /// 6.1.10: an owner made a sub-account.
    SubaccountCreated { by: i64, username: &'a str },
    /// 6.1.10: an owner removed a sub-account.
    SubaccountDeleted { by: i64, username: &'a str },
    /// 8.1: the operator provisioned devices.
    Provisioned {
        by: i64,
        created: usize,
        unchanged: usize,
    },
    /// 8.1, D1: a second key for a device id was refused.
    ProvisionKeyConflict { by: i64, device: &'a DeviceId },
    /// 8.1: a device registered through an SCU node.
    Registered { device: &'a DeviceId, node: &'a str },
    /// 8.1: a registration was refused.
    RegistrationRefused {
        device: &'a DeviceId,
        code: &'a str,
        message: &'a str,
    },
    /// Sc: an SCU node was refused.
    NodeRefused { detail: &'a str },
    /// 8.2: a bind was refused with this code (and why, when the code is not enough).
    BindRefused {
        by: i64,
        device: &'a DeviceId,
        code: &'a str,
        detail: &'a str,
    },
    /// 8.2: a device was bound.
    Bound { by: i64, device: &'a DeviceId },
    /// 8.2: a device was unbound.
    Unbound { by: i64, device: &'a DeviceId },
    /// 8.10: a factory reset was ordered.
    Reset {
        by: i64,
        device: &'a DeviceId,
        wiped: bool,
    },
    /// 8.6: a device was shared with a sub-account.
    Shared {
        by: i64,
        device: &'a DeviceId,
        username: &'a str,
        scopes: ScopeSet,
    },
    /// 8.6: a share ended.
    Unshared {
        by: i64,
        device: &'a DeviceId,
        username: &'a str,
    },
    /// 8.4 steps 2-3 (and playback): a token was minted for a viewer.
    TokenMinted {
        user: i64,
        device: &'a DeviceId,
        kind: Minted,
        detail: &'a str,
    },
    /// A token was minted for a service on the owner's behalf.
    ServiceToken {
        owner: i64,
        camera: &'a DeviceId,
        service: Service,
        requester: &'a DeviceId,
    },
    /// 8.4 steps 6-8: a token was judged good.
    PlayGranted {
        user: i64,
        device: &'a DeviceId,
        client: &'a str,
    },
    /// 8.4 steps 6-8: a token was refused with this code.
    PlayRefused {
        device: &'a DeviceId,
        code: &'a str,
        client: &'a str,
    },
    /// 8.3: a hole was punched.
    Punched { user: i64, device: &'a DeviceId },
    /// D8: TURN credentials for a session with a camera, on this MTU.
    TurnCredential {
        user: i64,
        device: &'a DeviceId,
        mtu: &'a DeviceId,
    },
    /// 8.7.2.1: a camera was attached to an NVR.
    NvrAttached {
        by: i64,
        nvr: &'a DeviceId,
        camera: &'a DeviceId,
    },
    /// 8.7.2.1: a camera was detached (`told`: the NVR heard of it).
    NvrDetached {
        by: i64,
        nvr: &'a DeviceId,
        camera: &'a DeviceId,
        told: bool,
    },
    /// 8.7.2/8.7.3: a record strategy was set on this recorder.
    RecordingStrategy {
        by: i64,
        camera: &'a DeviceId,
        recorder: &'a str,
    },
    /// An event was sent to a camera's recorders.
    RecorderNotified {
        by: i64,
        camera: &'a DeviceId,
        kind: &'a str,
    },
    /// H.626.4 8.8 steps 1-4: a camera's alarm strategy was saved (and sent).
    AlarmStrategySet { by: i64, device: &'a DeviceId },
    /// H.626.4 6.1.12: a camera's snapshot schedule was saved (`removed`: deleted).
    SnapshotScheduleSet {
        by: i64,
        device: &'a DeviceId,
        removed: bool,
    },
    /// H.626.4 6.1.12: a due time of the camera's schedule, for its owner: `outcome` is
    /// `ok` (kept and SMS sent) or why not (`quota_exceeded`: kept, no SMS; `device_offline`:
    /// skipped, ...).
    TimedSnapshot {
        owner: i64,
        device: &'a DeviceId,
        outcome: &'a str,
        detail: &'a str,
    },
    /// Issue 17 item 9 (8.7.1 download): a shared clip link of `owner`'s camera was made,
    /// revoked, opened or downloaded; `outcome` is `ok` or why a use was refused
    /// (`revoked`, `expired`); `detail` names the clip by its short reference and the
    /// client's address (never the whole share id).
    Clip {
        owner: i64,
        device: &'a DeviceId,
        what: ClipUse,
        outcome: &'a str,
        detail: &'a str,
    },
    /// H.626.4 6.1.13: an owner changed its cloud storage plan (`detail`: "from -> to").
    PlanChanged { by: i64, change: &'a str },
    /// H.626.4 8.8: an alarm of the camera was reset; `alarm` is the camera's alarm id.
    AlarmReset {
        by: i64,
        device: &'a DeviceId,
        alarm: &'a str,
    },
    /// A simulated alarm input of the camera was switched; `input` says which and how.
    AlarmInput {
        by: i64,
        device: &'a DeviceId,
        input: &'a str,
    },
    /// 8.9.1 step 8: a configuration permit was issued.
    ParamsPermit { by: i64, device: &'a DeviceId },
    /// 8.9.1: a parameter change ended so.
    ParamsSet {
        by: i64,
        device: &'a DeviceId,
        outcome: ParamsOutcome,
    },
    /// 6.1.11: the camera was sent to another network.
    WlanSet {
        by: i64,
        device: &'a DeviceId,
        ssid: &'a str,
    },
    /// 8.11.1: an upgrade was ordered (`Err`: the device refused with code and message).
    Upgrade {
        by: i64,
        device: &'a DeviceId,
        version: &'a str,
        refused: Option<(&'a str, &'a str)>,
    },
    /// 8.9.2: a user changed its settings.
    UserParamsSet { user: i64, revision: u64 },
    /// 8.9.2: the operator changed the platform's settings.
    PlatformParamsSet { by: i64, revision: u64 },
    /// 8.11.1: a signed manifest was registered.
    PackageManifest {
        by: i64,
        model: &'a str,
        version: &'a str,
    },
    /// 8.11.1: a payload was stored.
    PackagePayload { by: i64, sha256: &'a str },
    /// 8.11.2: a client reported its update.
    ClientUpdate {
        user: i64,
        ok: bool,
        detail: &'a str,
    },
    /// 6.1.14: an operator acknowledged (`fault.ack`) or resolved (`fault.resolve`) a fault.
    FaultHandled {
        user: i64,
        action: &'static str,
        detail: &'a str,
    },
    /// 6.1.1, 6.2: the operator's equipment management (`equipment.import`, `.assign`,
    /// `.move`, `.decommission`, `.vendor`, `.model`).
    Equipment {
        by: i64,
        action: &'static str,
        device: Option<&'a DeviceId>,
        detail: &'a str,
    },
    /// 6.2 (issue 18 items 2 and 9): a change of account `account` by `by` (the operator,
    /// the account itself, or none for the CRM's verdicts): `account.enable`,
    /// `account.password_reset`, `account.totp`, `account.crm`.
    AccountAction {
        by: Option<i64>,
        action: &'static str,
        account: i64,
        outcome: &'a str,
        detail: &'a str,
    },
    /// 8.11.1: an operator created (`campaign.create`), paused, resumed or aborted a fleet
    /// upgrade campaign.
    Campaign {
        user: i64,
        action: &'static str,
        detail: &'a str,
    },
    /// Clause 7 accounting, 6.2: an operator closed a billing period or changed an
    /// announcement (`billing.close`, `announcement.create`, ...).
    Billing {
        user: i64,
        action: &'static str,
        detail: &'a str,
    },
}

impl Event<'_> {
    /// The stored row's action name.
    pub(crate) fn action(&self) -> &'static str {
        use Event as E;
        match self {
            E::SignupCodeSent { .. } => "account.signup",
            E::SignupConfirmed => "account.confirm",
            E::AccountAction { action, .. } => action,
            E::LoginFailed | E::LoggedIn { .. } => "account.login",
            E::PasswordChanged { .. } => "account.password",
            E::AccountApproved { .. } => "account.approve",
            E::AccountDisabled { .. } => "account.disable",
            E::SubaccountCreated { .. } => "subaccount.create",
            E::SubaccountDeleted { .. } => "subaccount.delete",
            E::Provisioned { .. } | E::ProvisionKeyConflict { .. } => "device.provision",
            E::Registered { .. } | E::RegistrationRefused { .. } => "device.register",
            E::NodeRefused { .. } => "node.hello",
            E::BindRefused { .. } | E::Bound { .. } => "device.bind",
            E::Unbound { .. } => "device.unbind",
            E::Reset { .. } => "device.reset",
            E::Shared { .. } => "device.share",
            E::Unshared { .. } => "device.unshare",
            E::TokenMinted { kind, .. } => match kind {
                Minted::PlayUrl => "media.play_url",
                Minted::WebRtc => "media.webrtc",
                Minted::PlaybackUrl => "media.playback_url",
                Minted::PlaybackWebRtc => "media.playback_webrtc",
                Minted::ExportUrl => "media.export_url",
                Minted::RelayTalk => "media.relay_talk",
                Minted::RelayPipe => "media.relay_pipe",
            },
            E::ServiceToken {
                service: Service::NvrStream,
                ..
            } => "nvr.stream_url",
            E::ServiceToken {
                service: Service::MtuUpstream,
                ..
            } => "mtu.upstream",
            E::PlayGranted { .. } | E::PlayRefused { .. } => "media.play",
            E::Punched { .. } => "media.punch",
            E::TurnCredential { .. } => "turn.credential",
            E::NvrAttached { .. } => "nvr.attach",
            E::NvrDetached { .. } => "nvr.detach",
            E::RecordingStrategy { .. } => "recording.strategy",
            E::RecorderNotified { .. } => "recording.event",
            E::AlarmStrategySet { .. } => "alarm.strategy.set",
            E::SnapshotScheduleSet { removed: false, .. } => "snapshot.schedule.set",
            E::SnapshotScheduleSet { removed: true, .. } => "snapshot.schedule.remove",
            E::TimedSnapshot { .. } => "snapshot.timed",
            E::PlanChanged { .. } => "cloud.plan.set",
            E::Clip { what, .. } => match what {
                ClipUse::Created => "clip.create",
                ClipUse::Revoked => "clip.revoke",
                ClipUse::Viewed => "clip.view",
                ClipUse::Downloaded => "clip.download",
            },
            E::AlarmReset { .. } => "alarm.reset",
            E::AlarmInput { .. } => "alarm.input",
            E::ParamsPermit { .. } => "device.params.permit",
            E::ParamsSet { .. } => "device.params.set",
            E::WlanSet { .. } => "device.wlan.set",
            E::Upgrade { .. } => "device.upgrade",
            E::UserParamsSet { .. } => "user.params.set",
            E::PlatformParamsSet { .. } => "platform.params.set",
            E::PackageManifest { .. } => "package.manifest",
            E::PackagePayload { .. } => "package.payload",
            E::ClientUpdate { .. } => "client.update",
            E::FaultHandled { action, .. }
            | E::Equipment { action, .. }
            | E::Campaign { action, .. }
            | E::Billing { action, .. } => action,
        }
    }

    /// Who did it, when an account did.
    pub(crate) fn actor(&self) -> Option<i64> {
        use Event as E;
        match *self {
            E::SignupCodeSent { .. }
            | E::SignupConfirmed
            | E::LoginFailed
            | E::Registered { .. }
            | E::RegistrationRefused { .. }
            | E::NodeRefused { .. }
            | E::PlayRefused { .. } => None,
            E::LoggedIn { user }
            | E::PasswordChanged { user }
            | E::TokenMinted { user, .. }
            | E::PlayGranted { user, .. }
            | E::Punched { user, .. }
            | E::TurnCredential { user, .. }
            | E::UserParamsSet { user, .. }
            | E::ClientUpdate { user, .. }
            | E::FaultHandled { user, .. }
            | E::Campaign { user, .. }
            | E::Billing { user, .. } => Some(user),
            E::ServiceToken { owner, .. } | E::Clip { owner, .. } => Some(owner),
            E::AccountAction { by, .. } => by,
            E::AccountApproved { by, .. }
            | E::AccountDisabled { by, .. }
            | E::SubaccountCreated { by, .. }
            | E::SubaccountDeleted { by, .. }
            | E::Provisioned { by, .. }
            | E::ProvisionKeyConflict { by, .. }
            | E::BindRefused { by, .. }
            | E::Bound { by, .. }
            | E::Unbound { by, .. }
            | E::Reset { by, .. }
            | E::Shared { by, .. }
            | E::Unshared { by, .. }
            | E::NvrAttached { by, .. }
            | E::NvrDetached { by, .. }
            | E::RecordingStrategy { by, .. }
            | E::RecorderNotified { by, .. }
            | E::AlarmStrategySet { by, .. }
            | E::SnapshotScheduleSet { by, .. }
            | E::TimedSnapshot { owner: by, .. }
            | E::PlanChanged { by, .. }
            | E::AlarmReset { by, .. }
            | E::AlarmInput { by, .. }
            | E::ParamsPermit { by, .. }
            | E::ParamsSet { by, .. }
            | E::WlanSet { by, .. }
            | E::Upgrade { by, .. }
            | E::PlatformParamsSet { by, .. }
            | E::PackageManifest { by, .. }
            | E::PackagePayload { by, .. }
            | E::Equipment { by, .. } => Some(by),
        }
    }

    /// The device concerned.
    pub(crate) fn device(&self) -> Option<&DeviceId> {
        use Event as E;
        match self {
            E::ProvisionKeyConflict { device, .. }
            | E::Registered { device, .. }
            | E::RegistrationRefused { device, .. }
            | E::BindRefused { device, .. }
            | E::Bound { device, .. }
            | E::Unbound { device, .. }
            | E::Reset { device, .. }
            | E::Shared { device, .. }
            | E::Unshared { device, .. }
            | E::TokenMinted { device, .. }
            | E::PlayGranted { device, .. }
            | E::PlayRefused { device, .. }
            | E::Punched { device, .. }
            | E::TurnCredential { device, .. }
            | E::ParamsPermit { device, .. }
            | E::ParamsSet { device, .. }
            | E::WlanSet { device, .. }
            | E::Upgrade { device, .. } => Some(device),
            E::ServiceToken { camera, .. }
            | E::RecordingStrategy { camera, .. }
            | E::RecorderNotified { camera, .. } => Some(camera),
            E::AlarmStrategySet { device, .. }
            | E::SnapshotScheduleSet { device, .. }
            | E::TimedSnapshot { device, .. }
            | E::AlarmReset { device, .. }
            | E::AlarmInput { device, .. }
            | E::Clip { device, .. } => Some(device),
            E::NvrAttached { nvr, .. } | E::NvrDetached { nvr, .. } => Some(nvr),
            E::Equipment { device, .. } => *device,
            _ => None,
        }
    }

    /// How it ended: `ok` or a refusal code.
    pub(crate) fn outcome(&self) -> &str {
        use Event as E;
        match self {
            E::LoginFailed => "bad_credentials",
            E::ProvisionKeyConflict { .. } => "key_conflict",
            E::RegistrationRefused { code, .. }
            | E::BindRefused { code, .. }
            | E::PlayRefused { code, .. } => code,
            E::NodeRefused { .. } => "refused",
            E::NvrDetached { told: false, .. } => "nvr_offline",
            E::ParamsSet {
                outcome: ParamsOutcome::NoPermit,
                ..
            } => "no_permit",
            E::ParamsSet {
                outcome: ParamsOutcome::Invalid,
                ..
            } => "invalid",
            E::Upgrade {
                refused: Some((code, _)),
                ..
            } => code,
            E::ClientUpdate { ok: false, .. } => "failed",
            E::TimedSnapshot { outcome, .. }
            | E::Clip { outcome, .. }
            | E::AccountAction { outcome, .. } => outcome,
            _ => "ok",
        }
    }

    /// Free text: what else is worth keeping (never a secret).
    pub(crate) fn detail(&self) -> String {
        use Event as E;
        match self {
            E::SignupCodeSent { phone } => {
                let p = phone.as_str();
                format!("code sent to …{}", &p[p.len().saturating_sub(2)..])
            }
            E::SignupConfirmed => "awaiting operator approval".into(),
            E::AccountApproved { account, .. } | E::AccountDisabled { account, .. } => {
                account.to_string()
            }
            E::SubaccountCreated { username, .. }
            | E::SubaccountDeleted { username, .. }
            | E::Unshared { username, .. } => (*username).to_owned(),
            E::Provisioned {
                created, unchanged, ..
            } => {
                format!("{created} created, {unchanged} unchanged")
            }
            E::ProvisionKeyConflict { .. } => "a second key for this id was refused".into(),
            E::Registered { node, .. } => (*node).to_owned(),
            E::RegistrationRefused { message: d, .. }
            | E::NodeRefused { detail: d }
            | E::BindRefused { detail: d, .. }
            | E::TokenMinted { detail: d, .. }
            | E::PlayGranted { client: d, .. }
            | E::PlayRefused { client: d, .. }
            | E::RecordingStrategy { recorder: d, .. }
            | E::RecorderNotified { kind: d, .. }
            | E::AlarmReset { alarm: d, .. }
            | E::AlarmInput { input: d, .. }
            | E::WlanSet { ssid: d, .. }
            | E::PackagePayload { sha256: d, .. }
            | E::ClientUpdate { detail: d, .. }
            | E::FaultHandled { detail: d, .. }
            | E::Equipment { detail: d, .. }
            | E::Campaign { detail: d, .. }
            | E::Billing { detail: d, .. }
            | E::TimedSnapshot { detail: d, .. }
            | E::PlanChanged { change: d, .. }
            | E::Clip { detail: d, .. } => (*d).to_owned(),
            E::Reset { wiped, .. } => if *wiped { "recordings wiped" } else { "" }.into(),
            E::Shared {
                username, scopes, ..
            } => {
                let s: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
                format!("{username} {}", s.join(","))
            }
            E::ServiceToken { requester, .. } => requester.to_string(),
            E::TurnCredential { mtu, .. } => mtu.to_string(),
            E::NvrAttached { camera, .. } | E::NvrDetached { camera, .. } => camera.to_string(),
            E::ParamsSet {
                outcome: ParamsOutcome::Applied(r),
                ..
            }
            | E::UserParamsSet { revision: r, .. }
            | E::PlatformParamsSet { revision: r, .. } => format!("revision {r}"),
            E::Upgrade {
                refused: Some((_, message)),
                ..
            } => (*message).to_owned(),
            E::Upgrade { version, .. } => (*version).to_owned(),
            E::PackageManifest { model, version, .. } => format!("{model} {version}"),
            E::AccountAction {
                account, detail, ..
            } => format!("{account} {detail}").trim_end().to_owned(),
            _ => String::new(),
        }
    }

    /// The row to store, stamped `at`.
    pub(crate) fn record(&self, at: u64) -> store::audit::Record<'_> {
        store::audit::Record {
            at,
            actor: self.actor(),
            action: self.action(),
            device: self.device().map(DeviceId::as_str),
            outcome: self.outcome(),
            detail: self.detail(),
        }
    }
}

/// Writes `event`'s row, or fails: for an action that must not be acknowledged without its
/// row (issue 19: a play token minted while the database goes away is refused with 503,
/// never handed out unaudited).
pub(crate) async fn log_or_fail(db: &Store, event: Event<'_>) -> Result<(), store::StoreError> {
    store::audit::append(db, &event.record(crate::now_s())).await
}

/// Appends `event` to the audit log; a failure is logged, never fatal to the request.
pub(crate) async fn log(db: &Store, event: Event<'_>) {
    if let Err(e) = store::audit::append(db, &event.record(crate::now_s())).await {
        tracing::error!(error = %e, action = event.action(), "audit write failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (actor, action, device, outcome, detail) of `e`'s row.
    fn row(e: &Event<'_>) -> (Option<i64>, &'static str, Option<String>, String, String) {
        let r = e.record(9);
        assert_eq!(r.at, 9);
        (
            r.actor,
            r.action,
            r.device.map(str::to_owned),
            r.outcome.to_owned(),
            r.detail,
        )
    }

    #[test]
    fn events_keep_the_logs_action_names_and_fields() {
        let d = DeviceId::from_random([1; 10]);
        let e = Event::BindRefused {
            by: 3,
            device: &d,
            code: "unknown_device_or_code",
            detail: "wrong bind code",
        };
        assert_eq!(
            row(&e),
            (
                Some(3),
                "device.bind",
                Some(d.to_string()),
                "unknown_device_or_code".into(),
                "wrong bind code".into()
            )
        );
        let phone: Phone = "+15550100042".parse().unwrap();
        let r = row(&Event::SignupCodeSent { phone: &phone });
        assert_eq!((r.0, r.4.as_str()), (None, "code sent to …42"));
        let scopes = ScopeSet::from_iter([Scope::Live, Scope::Ptz]);
        assert_eq!(
            row(&Event::Shared {
                by: 1,
                device: &d,
                username: "kid",
                scopes
            })
            .4,
            "kid live,ptz"
        );
        let r = row(&Event::ParamsSet {
            by: 1,
            device: &d,
            outcome: ParamsOutcome::NoPermit,
        });
        assert_eq!((r.3.as_str(), r.4.as_str()), ("no_permit", ""));
        assert_eq!(
            row(&Event::NvrDetached {
                by: 1,
                nvr: &d,
                camera: &d,
                told: false
            })
            .3,
            "nvr_offline"
        );
        assert_eq!(row(&Event::LoginFailed).3, "bad_credentials");
    }
}
