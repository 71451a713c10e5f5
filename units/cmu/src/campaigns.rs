//! Fleet upgrade campaigns (H.626.4 8.11.1 run by the operator over many devices,
//! docs/design/fleet-upgrades.md): the operator picks a signed package and the devices
//! (by model, current version, or a list); the CMU orders the upgrade stage by stage (a
//! canary, then waves, a soak time between them), follows each device's progress, and
//! pauses the campaign by itself when too many of a stage's devices fail.
//!
//! The rules are the pure state machine of [`machine`]; this module is its thin shell: the
//! routes, and a task that rebuilds each active campaign from the store every tick, asks
//! the devices in flight how far they are, steps the machine and stores what changed (so a
//! campaign goes on after a CMU restart).

pub(crate) mod machine;

use std::collections::HashMap;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use peercam_base::DeviceId;
use peercam_signal::cm_campaign::{
    CampaignAction, CampaignCreate, CampaignDetail, CampaignDeviceView, CampaignTarget,
    CampaignView, StageCounts,
};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::ps::DeviceKind;
use peercam_signal::upgrade::{Policy, SignedManifest, UpgradeStatus, Version, parse_key};

use crate::api::{RouteInfo, route};
use crate::audit::{self, Event};
use crate::auth::Principal;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::campaigns::{self as store, Campaign, Change, Member, Rollout};
use crate::store::packages::Package;
use crate::{Shared, now_s};
use machine::{Dev, DevState, Machine, Output, Params, Probe, State as CState};

/// How often the driver looks at the active campaigns.
const TICK: Duration = Duration::from_secs(1);

/// The operator's routes.
pub(crate) fn route_table() -> Vec<RouteInfo> {
    vec![
        route!(
            "GET",
            "/api/v1/admin/campaigns",
            Operator,
            "Operator: fleet upgrade campaigns, newest first (8.11.1)",
            None,
            Some("CampaignView")
        ),
        route!(
            "POST",
            "/api/v1/admin/campaigns",
            Operator,
            "Operator: start a fleet upgrade campaign: a signed package, the devices by model, version or list, a canary then waves (8.11.1)",
            Some("CampaignCreate"),
            Some("CampaignDetail")
        ),
        route!(
            "GET",
            "/api/v1/admin/campaigns/{id}",
            Operator,
            "Operator: a campaign's progress and every device's result (8.11.1)",
            None,
            Some("CampaignDetail")
        ),
        route!(
            "POST",
            "/api/v1/admin/campaigns/{id}/pause",
            Operator,
            "Operator: pause a campaign (devices in flight finish)",
            Some("CampaignAction"),
            Some("CampaignView")
        ),
        route!(
            "POST",
            "/api/v1/admin/campaigns/{id}/resume",
            Operator,
            "Operator: resume a paused campaign (waives the failure threshold of the stage under way)",
            Some("CampaignAction"),
            Some("CampaignView")
        ),
        route!(
            "POST",
            "/api/v1/admin/campaigns/{id}/abort",
            Operator,
            "Operator: abort a campaign; devices not ordered yet are skipped",
            Some("CampaignAction"),
            Some("CampaignView")
        ),
    ]
}

pub(crate) fn handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<Shared>> {
    use axum::routing::{get, post};
    Some(match (method, path) {
        ("GET", "/api/v1/admin/campaigns") => get(list),
        ("POST", "/api/v1/admin/campaigns") => post(create),
        ("GET", "/api/v1/admin/campaigns/{id}") => get(detail),
        ("POST", "/api/v1/admin/campaigns/{id}/pause") => post(pause),
        ("POST", "/api/v1/admin/campaigns/{id}/resume") => post(resume),
        ("POST", "/api/v1/admin/campaigns/{id}/abort") => post(abort),
        _ => return None,
    })
}

/// The schemas of the campaign routes' bodies.
pub(crate) fn components(
    b: utoipa::openapi::ComponentsBuilder,
) -> utoipa::openapi::ComponentsBuilder {
    b.schema_from::<CampaignCreate>()
        .schema_from::<CampaignTarget>()
        .schema_from::<CampaignView>()
        .schema_from::<StageCounts>()
        .schema_from::<CampaignDeviceView>()
        .schema_from::<CampaignDetail>()
        .schema_from::<CampaignAction>()
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiErr {
    ApiErr::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// H.626.4 8.11.1, D9: a campaign's package must pass the CMU's signature check now (the
/// release keys may have changed since the upload), be for `model` (when given), have its
/// payload stored and not be expired.
pub(crate) fn check_package(
    keys: &[String],
    threshold: usize,
    row: &Package,
    model: Option<&str>,
    now: u64,
) -> ApiResult<SignedManifest> {
    let release: SignedManifest =
        serde_json::from_str(&row.manifest).map_err(|e| ApiErr::internal("stored manifest", &e))?;
    if release.manifest.sha256 != row.view.sha256
        || release.manifest.model != row.view.model
        || release.manifest.version != row.view.version
    {
        return Err(unprocessable(
            "bad_signature",
            "the stored manifest does not describe this package",
        ));
    }
    if let Some(m) = model.filter(|m| *m != row.view.model) {
        return Err(unprocessable(
            "wrong_model",
            format!("the package is for model {:?}, not {m:?}", row.view.model),
        ));
    }
    let keys: Vec<_> = keys.iter().filter_map(|k| parse_key(k).ok()).collect();
    if keys.is_empty() {
        return Err(ApiErr::conflict(
            "no_release_keys",
            "this CMU trusts no release keys (cmu.toml `release_keys`)",
        ));
    }
    release
        .verify(&Policy {
            keys: &keys,
            threshold,
            model: &row.view.model,
            now,
            installed: Version::default(),
        })
        .map_err(|e| unprocessable(e.code(), format!("the package fails its check: {e}")))?;
    if !row.view.stored {
        return Err(ApiErr::conflict(
            "payload_missing",
            "the package's payload is not uploaded yet",
        ));
    }
    Ok(release)
}

fn pick<T: Copy + PartialOrd>(v: Option<T>, default: T, lo: T, hi: T, name: &str) -> ApiResult<T> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return Err(ApiErr::bad_request(
            "bad_campaign",
            format!("{name} is out of range"),
        ));
    }
    Ok(v)
}

/// `POST /api/v1/admin/campaigns`.
async fn create(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<CampaignCreate>,
) -> ApiResult<(axum::http::StatusCode, axum::Json<CampaignDetail>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiErr::bad_request(
            "bad_campaign",
            "a campaign needs a name of 1 to 100 characters",
        ));
    }
    let row = crate::store::packages::get(&st.store, &req.package)
        .await?
        .ok_or_else(|| ApiErr::not_found("no_package", "no such package"))?;
    let now = now_s();
    check_package(
        &st.config.release_keys,
        st.config.release_threshold,
        &row,
        req.target.model.as_deref(),
        now,
    )?;
    let want: Version = row
        .view
        .version
        .parse()
        .map_err(|e| ApiErr::internal("package version", &e))?;
    // The devices: the package's model, narrowed by version and list.
    let all = crate::store::devices::all(&st.store).await?;
    let by_id: HashMap<&str, &crate::store::devices::Device> =
        all.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut wrong = Vec::new();
    for id in &req.target.devices {
        match by_id.get(id.as_str()) {
            Some(d) if d.model == row.view.model && d.kind == DeviceKind::Pu => {}
            _ => wrong.push(id.clone()),
        }
    }
    if !wrong.is_empty() {
        return Err(unprocessable(
            "not_for_model",
            format!(
                "not cameras of model {:?}: {}",
                row.view.model,
                wrong.join(", ")
            ),
        ));
    }
    let chosen: Vec<String> = all
        .iter()
        .filter(|d| d.kind == DeviceKind::Pu && d.model == row.view.model && !d.disabled)
        .filter(|d| {
            req.target
                .version
                .as_deref()
                .is_none_or(|v| d.sw_version.as_deref() == Some(v))
        })
        .filter(|d| {
            req.target.devices.is_empty() || req.target.devices.iter().any(|x| x == d.id.as_str())
        })
        .map(|d| d.id.to_string())
        .collect();
    if chosen.is_empty() {
        return Err(unprocessable("no_devices", "no device matches the target"));
    }
    let canary_percent = pick(req.canary_percent, 5, 1, 100, "canary_percent")?;
    let wave_size = pick(
        req.wave_size,
        machine::default_wave(chosen.len(), canary_percent),
        1,
        1_000_000,
        "wave_size",
    )?;
    let (stages, count) = machine::plan(chosen.len(), canary_percent, wave_size);
    let c = Campaign {
        id: 0,
        name: name.to_owned(),
        sha256: row.view.sha256.clone(),
        model: row.view.model.clone(),
        version: want.to_string(),
        state: CState::Running.as_str().into(),
        reason: None,
        stage: 0,
        stages: count,
        next_stage_at: None,
        waived_stage: None,
        canary_percent,
        wave_size,
        soak_s: pick(req.soak_s, 600, 0, 30 * 86_400, "soak_s")?,
        failure_percent: pick(req.failure_percent, 20, 0, 100, "failure_percent")?,
        min_results: pick(req.min_results, 3, 1, 1_000_000, "min_results")?,
        device_timeout_s: pick(
            req.device_timeout_s,
            1800,
            10,
            7 * 86_400,
            "device_timeout_s",
        )?,
        created_by: p.id,
        created_at: now,
        updated_at: now,
    };
    let members: Vec<(String, u32)> = chosen.into_iter().zip(stages).collect();
    let id = store::create(&st.store, &c, &members).await?;
    let detail = format!(
        "{id} {:?}: {} {} on {} devices",
        c.name,
        c.model,
        c.version,
        members.len()
    );
    operator_event(&st, p.id, "campaign.create", &detail).await;
    crate::logs::system(
        &st.store,
        "campaign.created",
        Some(&id.to_string()),
        &detail,
    )
    .await;
    Ok((
        axum::http::StatusCode::CREATED,
        axum::Json(load_detail(&st, id).await?),
    ))
}

async fn operator_event(st: &Shared, user: i64, action: &'static str, detail: &str) {
    audit::log(
        &st.store,
        Event::Campaign {
            user,
            action,
            detail,
        },
    )
    .await;
}

fn stage_counts(c: &Campaign, members: &[Member]) -> Vec<StageCounts> {
    let mut out: Vec<StageCounts> = (0..c.stages)
        .map(|stage| StageCounts {
            stage,
            ..StageCounts::default()
        })
        .collect();
    for m in members {
        let Some(s) = out.get_mut(m.stage as usize) else {
            continue;
        };
        s.devices += 1;
        match DevState::parse(&m.state) {
            Some(DevState::Pending) => s.pending += 1,
            Some(DevState::Installed) => s.installed += 1,
            Some(DevState::Failed) => s.failed += 1,
            Some(DevState::Skipped) => s.skipped += 1,
            Some(DevState::Offline) => s.offline += 1,
            Some(_) => s.in_flight += 1,
            None => {}
        }
    }
    out
}

fn view(c: &Campaign, members: &[Member]) -> CampaignView {
    CampaignView {
        id: c.id,
        name: c.name.clone(),
        package: c.sha256.clone(),
        model: c.model.clone(),
        version: c.version.clone(),
        state: c.state.clone(),
        reason: c.reason.clone(),
        stage: c.stage,
        next_stage_at: c.next_stage_at,
        canary_percent: c.canary_percent,
        wave_size: c.wave_size,
        soak_s: c.soak_s,
        failure_percent: c.failure_percent,
        min_results: c.min_results,
        device_timeout_s: c.device_timeout_s,
        stages: stage_counts(c, members),
        created_by: c.created_by,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

async fn load(st: &Shared, id: i64) -> ApiResult<(Campaign, Vec<Member>)> {
    let c = store::get(&st.store, id)
        .await?
        .ok_or_else(|| ApiErr::not_found("not_found", "no such campaign"))?;
    let m = store::members(&st.store, id).await?;
    Ok((c, m))
}

async fn load_detail(st: &Shared, id: i64) -> ApiResult<CampaignDetail> {
    let (c, members) = load(st, id).await?;
    Ok(CampaignDetail {
        campaign: view(&c, &members),
        devices: members
            .into_iter()
            .map(|m| CampaignDeviceView {
                device_id: m.device_id,
                stage: m.stage,
                state: m.state,
                reason: m.reason,
                done: m.done,
                total: m.total,
                updated_at: m.updated_at,
            })
            .collect(),
    })
}

/// `GET /api/v1/admin/campaigns`.
async fn list(State(st): State<Shared>) -> ApiResult<axum::Json<Vec<CampaignView>>> {
    let mut out = Vec::new();
    for c in store::list(&st.store, 200).await? {
        let m = store::members(&st.store, c.id).await?;
        out.push(view(&c, &m));
    }
    Ok(axum::Json(out))
}

/// `GET /api/v1/admin/campaigns/{id}`.
async fn detail(
    State(st): State<Shared>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<CampaignDetail>> {
    Ok(axum::Json(load_detail(&st, id).await?))
}

/// The machine of a stored campaign.
fn machine_of(c: &Campaign, members: &[Member]) -> Option<Machine> {
    Some(Machine {
        params: Params {
            failure_percent: c.failure_percent,
            min_results: c.min_results,
            soak_s: c.soak_s,
            device_timeout_s: c.device_timeout_s,
        },
        state: CState::parse(&c.state)?,
        stage: c.stage,
        stages: c.stages,
        next_stage_at: c.next_stage_at,
        waived_stage: c.waived_stage,
        devices: members
            .iter()
            .map(|m| {
                Some(Dev {
                    stage: m.stage,
                    state: DevState::parse(&m.state)?,
                    ordered_at: m.ordered_at,
                })
            })
            .collect::<Option<Vec<_>>>()?,
    })
}

fn rollout<'a>(m: &Machine, reason: Option<&'a str>) -> Rollout<'a> {
    Rollout {
        state: m.state.as_str(),
        reason,
        stage: m.stage,
        next_stage_at: m.next_stage_at,
        waived_stage: m.waived_stage,
    }
}

/// Pause, resume or abort by the operator.
async fn operate(
    st: &Shared,
    p: &Principal,
    id: i64,
    action: &'static str,
    why: Option<String>,
) -> ApiResult<axum::Json<CampaignView>> {
    let (c, members) = load(st, id).await?;
    let mut m = machine_of(&c, &members)
        .ok_or_else(|| ApiErr::internal("campaign", &"stored state is invalid"))?;
    let now = now_s();
    let mut marks = Vec::new();
    let changed = match action {
        "campaign.pause" => m.pause(),
        "campaign.resume" => m.resume(),
        _ => {
            marks = m.abort();
            m.state == CState::Aborted && c.state != "aborted"
        }
    };
    if !changed {
        return Err(ApiErr::conflict(
            "bad_state",
            format!("the campaign is {}", c.state),
        ));
    }
    let why = why.map(|w| w.chars().take(200).collect::<String>());
    let reason = match action {
        "campaign.resume" => None,
        _ => Some(why.clone().unwrap_or_else(|| "by the operator".into())),
    };
    if !store::save(
        &st.store,
        id,
        &c.state,
        &rollout(&m, reason.as_deref()),
        now,
    )
    .await?
    {
        return Err(ApiErr::conflict(
            "bad_state",
            "the campaign changed meanwhile; try again",
        ));
    }
    apply_marks(st, id, &members, &marks, now).await;
    let detail = format!("{id} {}", why.unwrap_or_default());
    operator_event(st, p.id, action, detail.trim_end()).await;
    let event = match action {
        "campaign.pause" => "campaign.paused",
        "campaign.resume" => "campaign.resumed",
        _ => "campaign.aborted",
    };
    crate::logs::system(&st.store, event, Some(&id.to_string()), "by the operator").await;
    let (c, members) = load(st, id).await?;
    Ok(axum::Json(view(&c, &members)))
}

async fn pause(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
    body: Option<Json<CampaignAction>>,
) -> ApiResult<axum::Json<CampaignView>> {
    let why = body.and_then(|b| b.0.reason);
    operate(&st, &p, id, "campaign.pause", why).await
}

async fn resume(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
    body: Option<Json<CampaignAction>>,
) -> ApiResult<axum::Json<CampaignView>> {
    let why = body.and_then(|b| b.0.reason);
    operate(&st, &p, id, "campaign.resume", why).await
}

async fn abort(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<i64>,
    body: Option<Json<CampaignAction>>,
) -> ApiResult<axum::Json<CampaignView>> {
    let why = body.and_then(|b| b.0.reason);
    operate(&st, &p, id, "campaign.abort", why).await
}

/// Stores the machine's own marks (offline, skipped, timed out).
async fn apply_marks(st: &Shared, id: i64, members: &[Member], out: &[Output], now: u64) {
    for o in out {
        if let Output::Marked(i, state, reason) = o
            && let Some(m) = members.get(*i)
        {
            let c = Change {
                state: state.as_str(),
                reason: Some(reason),
                ordered_at: m.ordered_at,
                done: m.done,
                total: m.total,
            };
            if let Err(e) = store::move_device(&st.store, id, &m.device_id, &m.state, &c, now).await
            {
                tracing::warn!(error = %e, campaign = id, "campaign device update failed");
            }
        }
    }
}

/// Starts the driver: every tick, each active campaign goes one step.
pub(crate) fn spawn_driver(st: Shared) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = st.shutdown.wait() => return,
                () = tokio::time::sleep(TICK) => {}
            }
            match store::active(&st.store).await {
                Ok(list) => {
                    for c in list {
                        if let Err(e) = drive(&st, c).await {
                            tracing::warn!(error = %e, "campaign step failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the campaigns"),
            }
        }
    });
}

/// How a device's upgrade status reads for campaign `version`, if it says anything new.
fn from_status(s: &UpgradeStatus, version: &str) -> Option<(DevState, Option<String>)> {
    if s.running == version {
        return Some((DevState::Installed, None));
    }
    if s.target.as_deref() != Some(version) {
        return None;
    }
    match s.state.as_str() {
        "downloading" => Some((DevState::Downloading, None)),
        "installing" | "restarting" => Some((DevState::Installing, None)),
        "failed" | "rolled_back" => Some((
            DevState::Failed,
            Some(format!(
                "{}: {}",
                s.state.replace('_', " "),
                s.reason.clone().unwrap_or_default()
            )),
        )),
        _ => None,
    }
}

fn is_newer(sw: Option<&str>, want: &Version) -> bool {
    sw.and_then(|v| v.parse::<Version>().ok())
        .is_some_and(|v| v >= *want)
}

/// One step of campaign `c`.
async fn drive(st: &Shared, c: Campaign) -> Result<(), crate::store::StoreError> {
    let id = c.id;
    let mut members = store::members(&st.store, id).await?;
    let Some(mut m) = machine_of(&c, &members) else {
        tracing::error!(campaign = id, "stored campaign is invalid");
        return Ok(());
    };
    let Ok(want) = c.version.parse::<Version>() else {
        return Ok(());
    };
    let now = now_s();
    // Reports of the devices in flight.
    for (i, mem) in members.iter_mut().enumerate() {
        let Some(state) = DevState::parse(&mem.state).filter(|s| s.in_flight()) else {
            continue;
        };
        let Ok(dev_id) = mem.device_id.parse::<DeviceId>() else {
            continue;
        };
        let stored = crate::store::devices::get(&st.store, &dev_id).await?;
        let report =
            if stored.is_some_and(|d| d.sw_version.as_deref() == Some(c.version.as_str())) {
                Some((DevState::Installed, None, 0, 0))
            } else {
                match st
                    .platform
                    .command(&dev_id, DeviceCommand::UpgradeStatus)
                    .await
                {
                    Ok((_, DeviceReply::Upgrade { status })) => from_status(&status, &c.version)
                        .map(|(s, r)| (s, r, status.done, status.total)),
                    _ => None,
                }
            };
        let Some((new, reason, done, total)) = report else {
            continue;
        };
        if new == state && done == mem.done {
            continue;
        }
        let ch = Change {
            state: new.as_str(),
            reason: reason.as_deref(),
            ordered_at: mem.ordered_at,
            done,
            total,
        };
        if store::move_device(&st.store, id, &mem.device_id, &mem.state, &ch, now).await? {
            m.report(i, new);
            mem.state = new.as_str().into();
            mem.reason = reason;
            mem.done = done;
            mem.total = total;
        }
    }
    // What the machine may order: whether each candidate is online and older.
    let mut probes = HashMap::new();
    for (i, mem) in members.iter().enumerate() {
        let candidate = matches!(
            DevState::parse(&mem.state),
            Some(DevState::Pending | DevState::Offline)
        ) && mem.stage <= m.stage + 1;
        if !candidate {
            continue;
        }
        let Ok(dev_id) = mem.device_id.parse::<DeviceId>() else {
            probes.insert(i, Probe::Offline);
            continue;
        };
        let sw = crate::store::devices::get(&st.store, &dev_id)
            .await?
            .and_then(|d| d.sw_version);
        let probe = if is_newer(sw.as_deref(), &want) {
            Probe::Newer
        } else if st.platform.node_of(&dev_id).is_some() {
            Probe::Ready
        } else {
            Probe::Offline
        };
        probes.insert(i, probe);
    }
    let before = (m.state, m.stage, m.next_stage_at, m.waived_stage);
    let out = m.step(now, |i| probes.get(&i).copied().unwrap_or(Probe::Offline));
    let paused = out.iter().find_map(|o| match o {
        Output::Paused(r) => Some(r.clone()),
        _ => None,
    });
    if before != (m.state, m.stage, m.next_stage_at, m.waived_stage)
        && !store::save(
            &st.store,
            id,
            &c.state,
            &rollout(&m, paused.as_deref()),
            now,
        )
        .await?
    {
        // The operator paused or aborted meanwhile: nothing of this step happens.
        return Ok(());
    }
    apply_marks(st, id, &members, &out, now).await;
    let subject = id.to_string();
    for o in &out {
        let (event, detail) = match o {
            Output::Paused(r) => ("campaign.paused", r.clone()),
            Output::Soaking(s, at) => (
                "campaign.stage_done",
                format!("stage {s} done; the next starts at {at}"),
            ),
            Output::StageStarted(s) => ("campaign.stage_started", format!("stage {s}")),
            Output::Completed => ("campaign.completed", String::new()),
            _ => continue,
        };
        tracing::info!(campaign = id, %event, %detail, "campaign");
        crate::logs::system(&st.store, event, Some(&subject), &detail).await;
    }
    let orders: Vec<usize> = out
        .iter()
        .filter_map(|o| match o {
            Output::Order(i) => Some(*i),
            _ => None,
        })
        .collect();
    if orders.is_empty() {
        return Ok(());
    }
    let Some(row) = crate::store::packages::get(&st.store, &c.sha256).await? else {
        return Ok(());
    };
    let release = match check_package(
        &st.config.release_keys,
        st.config.release_threshold,
        &row,
        None,
        now,
    ) {
        Ok(r) => r,
        Err(e) => {
            let reason = format!("the package no longer passes its check: {}", e.message);
            let r = Rollout {
                state: CState::Paused.as_str(),
                reason: Some(&reason),
                ..rollout(&m, None)
            };
            store::save(&st.store, id, m.state.as_str(), &r, now).await?;
            crate::logs::system(&st.store, "campaign.paused", Some(&subject), &reason).await;
            return Ok(());
        }
    };
    let url = format!(
        "{}/api/v1/packages/{}",
        st.public_url.trim_end_matches('/'),
        c.sha256
    );
    // The stage's orders go out together (a wave waits for the slowest answer only).
    let sends = orders
        .iter()
        .filter_map(|i| members.get(*i))
        .map(|mem| order(st, &c, mem, &release, &url, now));
    for r in futures_util::future::join_all(sends).await {
        r?;
    }
    Ok(())
}

/// Sends the upgrade to one device and stores how it answered.
async fn order(
    st: &Shared,
    c: &Campaign,
    mem: &Member,
    release: &SignedManifest,
    url: &str,
    now: u64,
) -> Result<(), crate::store::StoreError> {
    let sent = Change {
        state: DevState::Sent.as_str(),
        reason: None,
        ordered_at: Some(now),
        done: 0,
        total: release.manifest.size,
    };
    if !store::move_device(&st.store, c.id, &mem.device_id, &mem.state, &sent, now).await? {
        return Ok(());
    }
    let Ok(dev_id) = mem.device_id.parse::<DeviceId>() else {
        return Ok(());
    };
    let command = DeviceCommand::Upgrade {
        release: release.clone(),
        url: url.to_owned(),
    };
    let (state, reason, refused) = match st.platform.command(&dev_id, command).await {
        Ok((_, DeviceReply::Upgrade { status })) => {
            let s = from_status(&status, &c.version).map_or(DevState::Sent, |(s, _)| s);
            (s, None, None)
        }
        Ok((_, DeviceReply::Failed { code, message })) => {
            let reason = format!("refused ({code}): {message}");
            (DevState::Failed, Some(reason), Some((code, message)))
        }
        Ok(_) => (
            DevState::Failed,
            Some("the device gave an unexpected answer".to_owned()),
            None,
        ),
        Err(e) if e.code == "device_offline" => {
            (DevState::Offline, Some("offline".to_owned()), None)
        }
        // No answer in time: the device may have started; its status tells.
        Err(_) => (DevState::Sent, None, None),
    };
    let version = c.version.as_str();
    audit::log(
        &st.store,
        Event::Upgrade {
            by: c.created_by,
            device: &dev_id,
            version,
            refused: refused.as_ref().map(|(c, m)| (c.as_str(), m.as_str())),
        },
    )
    .await;
    if state == DevState::Sent {
        return Ok(());
    }
    let ch = Change {
        state: state.as_str(),
        reason: reason.as_deref(),
        ordered_at: Some(now),
        done: 0,
        total: release.manifest.size,
    };
    store::move_device(&st.store, c.id, &mem.device_id, "sent", &ch, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use peercam_signal::cm::PackageView;
    use peercam_signal::upgrade::Manifest;

    fn package(key: &SigningKey, model: &str, tamper: bool) -> Package {
        let manifest = Manifest {
            version: "1.0.0".into(),
            model: model.into(),
            sha256: "ab".repeat(32),
            size: 3,
            expires_at: 1000,
        };
        let mut release = SignedManifest {
            signatures: vec![manifest.sign(key)],
            manifest,
        };
        if tamper {
            release.manifest.size = 4;
        }
        Package {
            view: PackageView {
                sha256: "ab".repeat(32),
                version: "1.0.0".into(),
                model: model.into(),
                size: 3,
                expires_at: 1000,
                stored: true,
            },
            manifest: serde_json::to_string(&release).unwrap_or_default(),
        }
    }

    fn key_b64(k: &SigningKey) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.verifying_key().as_bytes())
    }

    #[test]
    fn h626_8_11_1_campaign_refuses_a_package_failing_its_signature_check() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let keys = vec![key_b64(&key)];
        assert!(check_package(&keys, 1, &package(&key, "m", false), Some("m"), 10).is_ok());
        let e = check_package(&keys, 1, &package(&key, "m", true), None, 10).unwrap_err();
        assert_eq!(e.code, "bad_signature");
        // Keys rotated since the upload: the old signature no longer counts.
        let other = vec![key_b64(&SigningKey::from_bytes(&[4; 32]))];
        let e = check_package(&other, 1, &package(&key, "m", false), None, 10).unwrap_err();
        assert_eq!(e.code, "bad_signature");
        let e = check_package(&keys, 1, &package(&key, "m", false), Some("x"), 10).unwrap_err();
        assert_eq!(e.code, "wrong_model");
        let e = check_package(&keys, 1, &package(&key, "m", false), None, 2000).unwrap_err();
        assert_eq!(e.code, "expired");
    }

    #[test]
    fn device_status_reads_as_campaign_results() {
        let st = |state: &str, running: &str, target: Option<&str>| UpgradeStatus {
            running: running.into(),
            state: state.into(),
            target: target.map(Into::into),
            done: 0,
            total: 0,
            reason: Some("it exited".into()),
        };
        assert_eq!(
            from_status(&st("downloading", "1.0.0", Some("2.0.0")), "2.0.0").map(|r| r.0),
            Some(DevState::Downloading)
        );
        assert_eq!(
            from_status(&st("restarting", "1.0.0", Some("2.0.0")), "2.0.0").map(|r| r.0),
            Some(DevState::Installing)
        );
        assert_eq!(
            from_status(&st("committed", "2.0.0", Some("2.0.0")), "2.0.0").map(|r| r.0),
            Some(DevState::Installed)
        );
        let failed = from_status(&st("rolled_back", "1.0.0", Some("2.0.0")), "2.0.0").unwrap();
        assert_eq!(
            (failed.0, failed.1.as_deref()),
            (DevState::Failed, Some("rolled back: it exited"))
        );
        assert_eq!(
            from_status(&st("failed", "1.0.0", Some("3.0.0")), "2.0.0"),
            None,
            "another upgrade"
        );
        assert!(is_newer(Some("2.0.1"), &"2.0.0".parse().unwrap()));
        assert!(!is_newer(None, &"2.0.0".parse().unwrap()));
    }
}
