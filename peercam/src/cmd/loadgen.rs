//! `peercam loadgen` (issue 19 item 4): a load harness against a whole cluster.
//!
//! N simulated cameras speak the real device protocol (TLS, WebSocket, the link state
//! machine of H.626.4 8.1) to the SCU nodes, report a media address (8.3 step 2) and answer
//! PTZ orders (8.5); M simulated users sign up (6.1.1) or are made sub-accounts (8.6), log
//! in, list their devices, ask for play URLs (8.4 steps 1-3) and turn cameras, at target
//! rates, through the CMU instances given. It prints the rates, latency percentiles and
//! errors of each operation, and the CPU and memory of the server processes named with
//! `--pid` (read from /proc).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use peercam_base::{Scope, ScopeSet};
use peercam_cu::{Client, CuError};
use peercam_net::Shutdown;
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_signal::cm::PlayRequest;
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::control::{PtzCommand, PtzState};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::link::{DeviceLink, LinkEvent};
use peercam_signal::ps::DeviceKind;
use serde::Serialize;

/// Load a whole cluster: N simulated cameras register with the SCU nodes over TLS and
/// WebSocket and stay connected (heartbeats, PTZ answers); M simulated users log in to the
/// CMU instances and list devices, request play URLs and send PTZ orders at target rates.
///
/// Phases: provision the cameras through the operator API, connect them (registrations per
/// second and registration latency), make the users (sign-up, SMS code from the CMU's
/// outbox, operator approval; up to 50 sub-accounts per signed-up owner; binding and
/// sharing of cameras), then the timed load. At the end: per operation the successes, the
/// rate, p50/p95/p99/max latency and the errors by kind; per `--pid` process the CPU used
/// (percent of one core) and memory (RSS, peak RSS), its child processes included.
///
/// Example (a cluster on loopback, two CMUs on PostgreSQL, one SCU):
///
///   peercam loadgen --cmu https://127.0.0.1:7000 --cmu https://127.0.0.1:7001
///     --scu wss://127.0.0.1:7100/ --ca pki/ca.pem --operator-password-file data/admin.password
///     --sms-outbox data/sms-outbox --cameras 1000 --users 20 --duration 30
///     --play-rate 1000 --list-rate 20 --ptz-rate 20 --pid cmu=1234 --pid scu=1240
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// CMU API base URL (https://host:port); repeat for several instances: users and
    /// requests are spread over them in turn.
    #[arg(long = "cmu", required = true, value_name = "URL")]
    cmus: Vec<String>,
    /// SCU device URL (wss://host:port/); repeat for several nodes: cameras are spread over
    /// them in turn. Needed when --cameras is not 0.
    #[arg(long = "scu", value_name = "URL")]
    scus: Vec<String>,
    /// CA certificate (PEM) the platform's certificates chain to.
    #[arg(long, env = "PEERCAM_CA")]
    ca: PathBuf,
    /// The operator account that provisions the cameras and approves the users.
    #[arg(long, default_value = "admin")]
    operator: String,
    /// The operator's password.
    #[arg(long, env = "PEERCAM_OPERATOR_PASSWORD", hide_env_values = true)]
    operator_password: Option<String>,
    /// A file holding the operator's password (the CMU's `data_dir/admin.password`).
    #[arg(long, conflicts_with = "operator_password")]
    operator_password_file: Option<PathBuf>,
    /// The CMU's SMS outbox directory (`[sms] kind = "outbox"`), where the harness reads the
    /// sign-up codes of its users. Needed when --users is not 0.
    #[arg(long)]
    sms_outbox: Option<PathBuf>,
    /// Simulated cameras.
    #[arg(long, default_value_t = 100)]
    cameras: usize,
    /// Cameras connecting (TLS + WebSocket + registration) at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Simulated users (one signed-up owner per 51 users, the others its sub-accounts).
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Cameras bound to (or shared with) each user; play and PTZ requests go to these.
    #[arg(long, default_value_t = 4)]
    cameras_per_user: usize,
    /// Length of the timed load, seconds (0: registrations and set-up only).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Device list requests per second, over all users.
    #[arg(long, default_value_t = 5.0)]
    list_rate: f64,
    /// Play URL requests per second, over all users.
    #[arg(long, default_value_t = 10.0)]
    play_rate: f64,
    /// PTZ orders per second, over all users.
    #[arg(long, default_value_t = 2.0)]
    ptz_rate: f64,
    /// Requests in flight at most; a request due when this many wait is not sent and
    /// counts as an error (`in-flight limit`), so that an overloaded server shows.
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    /// A server process to watch, NAME=PID; NAME=PID+ also counts its descendants (a
    /// PostgreSQL postmaster's backends); repeat for several.
    #[arg(long = "pid", value_name = "NAME=PID[+]", value_parser = parse_pid)]
    pids: Vec<(String, u32, bool)>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_pid(s: &str) -> Result<(String, u32, bool), String> {
    let (name, pid) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected NAME=PID, e.g. cmu=1234"))?;
    let (pid, tree) = match pid.trim().strip_suffix('+') {
        Some(p) => (p, true),
        None => (pid.trim(), false),
    };
    let pid = pid
        .parse()
        .map_err(|_| format!("`{pid}`: not a process id"))?;
    Ok((name.trim().to_owned(), pid, tree))
}

/// Operations measured.
const OPS: [&str; 10] = [
    "provision",
    "register",
    "signup",
    "login",
    "bind",
    "share",
    "list",
    "play",
    "ptz",
    "camera",
];

/// Outcomes of one kind of operation.
#[derive(Default)]
struct Op {
    /// Latencies of the successes, microseconds.
    lat_us: Mutex<Vec<u32>>,
    /// Failures by kind.
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Op {
    fn ok(&self, took: Duration) {
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.lat_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(us);
    }

    fn err(&self, kind: impl Into<String>) {
        *self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(kind.into())
            .or_default() += 1;
    }

    fn count(&self) -> usize {
        self.lat_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn error_count(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }
}

/// Every operation's outcomes.
struct Stats {
    ops: BTreeMap<&'static str, Op>,
    online: AtomicUsize,
}

impl Stats {
    fn new() -> Self {
        Self {
            ops: OPS.iter().map(|o| (*o, Op::default())).collect(),
            online: AtomicUsize::new(0),
        }
    }

    fn op(&self, name: &str) -> &Op {
        self.ops.get(name).unwrap_or_else(|| unreachable!("{name}"))
    }
}

/// The kind of a client error, for the error table.
fn kind_of(e: &CuError) -> String {
    match e {
        CuError::Api { status, code, .. } => format!("HTTP {status} {code}"),
        CuError::Transport { source, .. } if source.is_timeout() => "timeout".to_owned(),
        CuError::Transport { .. } => "transport".to_owned(),
        CuError::Config(_) => "client configuration".to_owned(),
        CuError::Media(_) => "media".to_owned(),
        _ => "other".to_owned(),
    }
}

/// Runs `f`, recording its latency or its error kind under `op`; retries while the CMU
/// answers 429 (rate limits of sign-up and login), for up to a minute.
async fn timed<T, F, Fut>(stats: &Stats, op: &str, f: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, CuError>>,
{
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let t = Instant::now();
        match tokio::time::timeout(Duration::from_secs(30), f()).await {
            Ok(Ok(v)) => {
                stats.op(op).ok(t.elapsed());
                return Some(v);
            }
            Ok(Err(e)) if e.status() == Some(429) && Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(Err(e)) => {
                stats.op(op).err(kind_of(&e));
                return None;
            }
            Err(_) => {
                stats.op(op).err("timeout");
                return None;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cameras

/// One simulated camera: registers, reports a media address, answers PTZ orders, keeps the
/// link up until `stop`. Counts its registration under `register` and a lost link under
/// `camera`.
async fn camera(
    id: DeviceIdentity,
    url: String,
    tls: Arc<rustls::ClientConfig>,
    stats: Arc<Stats>,
    gate: Arc<tokio::sync::Semaphore>,
    stop: Shutdown,
) {
    let Ok(permit) = gate.acquire_owned().await else {
        return;
    };
    let mut permit = Some(permit);
    let t0 = Instant::now();
    let reg = stats.op("register");
    let ws = match peercam_net::ws::connect(&url, tls, Duration::from_secs(60)).await {
        Ok(ws) => ws,
        Err(e) => {
            reg.err(format!("connect: {}", short(&e.to_string())));
            return;
        }
    };
    let (mut sink, mut stream) = ws.split();
    let key = match id.signing_key() {
        Ok(k) => k,
        Err(e) => {
            reg.err(format!("identity: {e}"));
            return;
        }
    };
    let mut link = DeviceLink::new(
        Instant::now(),
        id.device_id.clone(),
        id.kind,
        key,
        "loadgen",
    );
    // H.626.4 8.3 step 2: a media address, so that play requests get a URL.
    link.report_addresses(vec!["127.0.0.1:8554".to_owned()], Vec::new());
    let mut ptz = PtzState {
        pan: 0.0,
        tilt: 0.0,
        zoom: 1.0,
        moving: false,
        presets: Vec::new(),
    };
    let mut registered = false;
    let lost = |registered: bool, why: &str| {
        if registered {
            stats.online.fetch_sub(1, Ordering::Relaxed);
            stats.op("camera").err(format!("link lost: {why}"));
        } else {
            reg.err(why.to_owned());
        }
    };
    loop {
        while let Some(ev) = link.poll_event() {
            match ev {
                LinkEvent::Registered { .. } if !registered => {
                    registered = true;
                    reg.ok(t0.elapsed());
                    stats.online.fetch_add(1, Ordering::Relaxed);
                    permit = None;
                }
                LinkEvent::Refused { code, .. } => {
                    lost(registered, &format!("refused: {code:?}"));
                    return;
                }
                LinkEvent::Lost { reason } => {
                    lost(registered, &short(&reason));
                    return;
                }
                LinkEvent::Command { id, command } => {
                    let reply = match command {
                        DeviceCommand::Ptz { order } => {
                            apply_ptz(&mut ptz, &order);
                            DeviceReply::Ptz { state: ptz.clone() }
                        }
                        _ => DeviceReply::Done,
                    };
                    link.reply(id, reply);
                }
                _ => {}
            }
        }
        while let Some(f) = link.poll_transmit() {
            let text = String::from_utf8_lossy(&f).into_owned();
            if sink.send(Message::text(text)).await.is_err() {
                lost(registered, "send failed");
                return;
            }
        }
        let _ = &permit;
        let deadline = link
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if let Err(e) = link.handle_input(Instant::now(), t.as_bytes()) {
                        lost(registered, &format!("protocol: {e}"));
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => { lost(registered, &short(&e.to_string())); return; }
                None => { lost(registered, "closed by the SCU"); return; }
            },
            () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
            () = stop.wait() => {
                if registered {
                    stats.online.fetch_sub(1, Ordering::Relaxed);
                }
                let _ = sink.close().await;
                return;
            }
        }
    }
}

/// A synthetic camera's answer to a PTZ order: where it would look.
fn apply_ptz(s: &mut PtzState, order: &PtzCommand) {
    let clamp = |v: f32| v.clamp(-1.0, 1.0);
    match order {
        PtzCommand::Absolute { pan, tilt, zoom } => {
            (s.pan, s.tilt, s.zoom) = (*pan, *tilt, *zoom);
        }
        PtzCommand::Relative { pan, tilt, zoom } => {
            s.pan = clamp(s.pan + pan);
            s.tilt = clamp(s.tilt + tilt);
            s.zoom = (s.zoom + zoom).clamp(1.0, peercam_signal::control::MAX_ZOOM);
        }
        PtzCommand::Move { .. } => s.moving = true,
        PtzCommand::Stop => s.moving = false,
        _ => {}
    }
}

/// The first line of a message, at most 80 characters (error kinds stay few).
fn short(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Users

/// Users per owner: the owner and its 50 sub-accounts (the CMU's limit).
const GROUP: usize = 51;

/// A logged-in simulated user and the cameras it may watch and turn.
struct User {
    client: Client,
    cameras: Vec<String>,
}

/// Signs up an owner (SMS code from the outbox, operator approval) and logs it in.
async fn signed_up_owner(
    anon: &Client,
    operator: &Client,
    outbox: &std::path::Path,
    stats: &Stats,
    password: &str,
) -> anyhow::Result<(Client, String)> {
    let mut digits = [0u8; 4];
    getrandom::fill(&mut digits).map_err(|e| anyhow::anyhow!("random: {e}"))?;
    let n = u32::from_le_bytes(digits) % 10_000_000;
    let phone = format!("+1555{n:07}");
    timed(stats, "signup", || anon.signup(&phone, password))
        .await
        .context("sign-up refused (see the error table)")?;
    let mut code = None;
    for _ in 0..100 {
        code = peercam_cmu::sms::latest_code(outbox, &phone)?;
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let code = code.with_context(|| {
        format!(
            "no SMS code for {phone} in {}: is it the CMU's outbox?",
            outbox.display()
        )
    })?;
    let state = timed(stats, "signup", || anon.confirm(&phone, &code))
        .await
        .context("sign-up confirmation refused")?;
    if state.status != peercam_signal::cm::AccountStatus::Active {
        let user = operator
            .admin_users(Some("pending_approval"))
            .await?
            .into_iter()
            .find(|u| u.login == phone)
            .with_context(|| format!("{phone} is not waiting for approval"))?;
        operator.approve(user.id).await?;
    }
    let (client, _) = timed(stats, "login", || anon.login(&phone, password))
        .await
        .context("the new owner cannot log in")?;
    Ok((client, phone))
}

/// Makes `args.users` users on the CMUs in turn; binds cameras to them (or shares them).
async fn make_users(
    args: &Args,
    ca: &[u8],
    operator: &Client,
    ids: &[DeviceIdentity],
    stats: &Stats,
) -> anyhow::Result<Vec<User>> {
    if args.users == 0 {
        return Ok(Vec::new());
    }
    let outbox = args
        .sms_outbox
        .as_deref()
        .context("users sign up with an SMS code: give --sms-outbox DIR (the CMU's outbox)")?;
    let password = "loadgen password 0123";
    let mut tag = [0u8; 4];
    getrandom::fill(&mut tag).map_err(|e| anyhow::anyhow!("random: {e}"))?;
    let tag = hex::encode(tag);
    let anon = |i: usize| Client::new(&args.cmus[i % args.cmus.len()], Some(ca));
    let scopes: ScopeSet = [Scope::Live, Scope::Ptz].into_iter().collect();
    let mut users: Vec<User> = Vec::with_capacity(args.users);
    let mut owner: Option<Client> = None;
    for u in 0..args.users {
        // One owner per 51 users (an owner may have 50 sub-accounts).
        let client = if u.is_multiple_of(GROUP) {
            let (c, _) = signed_up_owner(&anon(u)?, operator, outbox, stats, password).await?;
            owner = Some(c.clone());
            c
        } else {
            let o = owner.as_ref().context("no owner")?;
            let name = format!("lg{tag}u{u}");
            timed(stats, "share", || o.create_subaccount(&name, password))
                .await
                .context("cannot create a sub-account")?;
            let anon = anon(u)?;
            let (c, _) = timed(stats, "login", || anon.login(&name, password))
                .await
                .context("a sub-account cannot log in")?;
            c
        };
        users.push(User {
            client,
            cameras: Vec::new(),
        });
    }
    // Camera j goes to user j % M: bound by its group's owner, shared when a sub-account.
    let bound = ids.len().min(args.users * args.cameras_per_user);
    for (j, id) in ids.iter().take(bound).enumerate() {
        users[j % args.users].cameras.push(id.device_id.to_string());
    }
    bind_all(&users, ids, bound, args.users, &tag, scopes, stats).await;
    Ok(users)
}

/// Binds (and shares) the first `bound` cameras, 32 requests at a time.
async fn bind_all(
    users: &[User],
    ids: &[DeviceIdentity],
    bound: usize,
    m: usize,
    tag: &str,
    scopes: ScopeSet,
    stats: &Stats,
) {
    let jobs = ids.iter().take(bound).enumerate().map(|(j, id)| {
        let u = j % m;
        let owner = &users[u - u % GROUP].client;
        let sub = (!u.is_multiple_of(GROUP)).then(|| format!("lg{tag}u{u}"));
        let (dev, code) = (id.device_id.to_string(), id.bind_code.display());
        async move {
            if timed(stats, "bind", || owner.bind(&dev, &code, None))
                .await
                .is_some()
                && let Some(sub) = sub
            {
                let _ = timed(stats, "share", || owner.share(&dev, &sub, scopes)).await;
            }
        }
    });
    futures_util::stream::iter(jobs)
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

// ---------------------------------------------------------------------------------------
// The timed load

/// Sends `op` requests at `rate` a second until `until`, request `k` made by `f(k)`; at most
/// `gate`'s permits in flight.
async fn drive<F, Fut>(
    stats: Arc<Stats>,
    op: &'static str,
    rate: f64,
    until: tokio::time::Instant,
    gate: Arc<tokio::sync::Semaphore>,
    f: F,
) where
    F: Fn(u64) -> Option<Fut>,
    Fut: Future<Output = Result<(), CuError>> + Send + 'static,
{
    if rate <= 0.0 {
        return;
    }
    let every = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0u64.. {
        // An absolute schedule: a late wake-up sends what fell due at once.
        let due = start + every.mul_f64(k as f64);
        if due >= until {
            break;
        }
        tokio::time::sleep_until(due).await;
        let Some(req) = f(k) else { break };
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            stats.op(op).err("in-flight limit");
            continue;
        };
        let stats = stats.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            match tokio::time::timeout(Duration::from_secs(30), req).await {
                Ok(Ok(())) => stats.op(op).ok(t.elapsed()),
                Ok(Err(e)) => stats.op(op).err(kind_of(&e)),
                Err(_) => stats.op(op).err("timeout"),
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// The timed load: list, play and PTZ requests at their rates, spread over the users.
async fn load(args: &Args, users: Vec<User>, stats: &Arc<Stats>) {
    let users = Arc::new(users);
    let with_cams: Arc<Vec<usize>> = Arc::new(
        (0..users.len())
            .filter(|u| !users[*u].cameras.is_empty())
            .collect(),
    );
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(args.duration);
    let gate = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight.max(1)));
    // Request k goes to user k % count, camera (k / count) % its cameras.
    let pick = move |users: &Arc<Vec<User>>, with_cams: &Arc<Vec<usize>>, k: u64| {
        let n = with_cams.len().max(1) as u64;
        let user = &users[*with_cams.get((k % n) as usize)?];
        let cam = user
            .cameras
            .get(((k / n) % user.cameras.len().max(1) as u64) as usize)?;
        Some((user.client.clone(), cam.clone()))
    };
    let list = {
        let users = users.clone();
        drive(
            stats.clone(),
            "list",
            args.list_rate,
            until,
            gate.clone(),
            move |k| {
                let n = users.len() as u64;
                let c = users
                    .get(usize::try_from(k % n.max(1)).ok()?)?
                    .client
                    .clone();
                Some(async move { c.devices().await.map(|_| ()) })
            },
        )
    };
    let play = {
        let (users, with_cams) = (users.clone(), with_cams.clone());
        drive(
            stats.clone(),
            "play",
            args.play_rate,
            until,
            gate.clone(),
            move |k| {
                let (c, cam) = pick(&users, &with_cams, k)?;
                Some(async move { c.play(&cam, &PlayRequest::default()).await.map(|_| ()) })
            },
        )
    };
    let ptz = {
        let (users, with_cams) = (users.clone(), with_cams.clone());
        drive(
            stats.clone(),
            "ptz",
            args.ptz_rate,
            until,
            gate.clone(),
            move |k| {
                let (c, cam) = pick(&users, &with_cams, k)?;
                let step = if k.is_multiple_of(2) { 0.1 } else { -0.1 };
                let order = PtzCommand::Relative {
                    pan: step,
                    tilt: 0.0,
                    zoom: 0.0,
                };
                Some(async move { c.ptz(&cam, &order).await.map(|_| ()) })
            },
        )
    };
    tokio::join!(list, play, ptz);
}

// ---------------------------------------------------------------------------------------
// Server processes

/// CPU seconds and memory of a process with its descendants, from /proc.
#[derive(Clone, Copy, Default)]
struct ProcSample {
    cpu_s: f64,
    rss_kib: u64,
    hwm_kib: u64,
    processes: usize,
}

/// `(ppid, utime + stime ticks)` of a process, from /proc/PID/stat.
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ppid, ticks))
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Samples `root`, and every process descending from it when `tree`.
fn sample(root: u32, tree_too: bool) -> ProcSample {
    let mut all: Vec<(u32, u32, u64)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some((ppid, ticks)) = stat_of(pid)
            {
                all.push((pid, ppid, ticks));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while tree_too && i < tree.len() {
        let parent = tree[i];
        tree.extend(all.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    // Clock ticks are 100 a second on Linux (USER_HZ).
    let mut s = ProcSample::default();
    for pid in &tree {
        if let Some((_, _, ticks)) = all.iter().find(|p| p.0 == *pid) {
            s.cpu_s += *ticks as f64 / 100.0;
            s.rss_kib += status_kib(*pid, "VmRSS:");
            s.hwm_kib += status_kib(*pid, "VmHWM:");
            s.processes += 1;
        }
    }
    s
}

fn sample_all(pids: &[(String, u32, bool)]) -> Vec<ProcSample> {
    pids.iter().map(|(_, p, t)| sample(*p, *t)).collect()
}

// ---------------------------------------------------------------------------------------
// Report

#[derive(Serialize)]
struct OpReport {
    op: &'static str,
    ok: usize,
    errors: u64,
    /// Successes per second over the op's phase.
    rate: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    error_kinds: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct ProcReport {
    name: String,
    pid: u32,
    /// Processes counted (the process and its descendants).
    processes: usize,
    /// CPU during the registrations, percent of one core.
    register_cpu_pct: f64,
    /// CPU during the timed load, percent of one core.
    load_cpu_pct: f64,
    rss_kib: u64,
    peak_rss_kib: u64,
}

#[derive(Serialize)]
struct Report {
    cmus: Vec<String>,
    scus: Vec<String>,
    cameras: usize,
    cameras_online_at_end: usize,
    users: usize,
    register_s: f64,
    setup_s: f64,
    load_s: f64,
    ops: Vec<OpReport>,
    processes: Vec<ProcReport>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

fn op_report(stats: &Stats, op: &'static str, window_s: f64) -> OpReport {
    let o = stats.op(op);
    let mut lat = o
        .lat_us
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    lat.sort_unstable();
    let kinds = o
        .errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    OpReport {
        op,
        ok: lat.len(),
        errors: kinds.values().sum(),
        rate: if window_s > 0.0 {
            lat.len() as f64 / window_s
        } else {
            0.0
        },
        p50_ms: percentile(&lat, 0.50),
        p95_ms: percentile(&lat, 0.95),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        error_kinds: kinds,
    }
}

fn print_report(r: &Report) {
    println!(
        "cluster: {} CMU, {} SCU; {} cameras ({} online at the end), {} users",
        r.cmus.len(),
        r.scus.len(),
        r.cameras,
        r.cameras_online_at_end,
        r.users
    );
    println!(
        "phases: registrations {:.2} s, set-up of users {:.2} s, load {:.2} s",
        r.register_s, r.setup_s, r.load_s
    );
    println!(
        "{:<10} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation", "ok", "errors", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for o in &r.ops {
        if o.ok == 0 && o.errors == 0 {
            continue;
        }
        println!(
            "{:<10} {:>8} {:>7} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            o.op, o.ok, o.errors, o.rate, o.p50_ms, o.p95_ms, o.p99_ms, o.max_ms
        );
    }
    let errors: Vec<_> = r
        .ops
        .iter()
        .flat_map(|o| o.error_kinds.iter().map(move |(k, n)| (o.op, k, n)))
        .collect();
    if errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors by kind:");
        for (op, kind, n) in errors {
            println!("  {op:<10} {n:>8}  {kind}");
        }
    }
    if !r.processes.is_empty() {
        println!(
            "{:<12} {:>8} {:>6} {:>14} {:>10} {:>10} {:>10}",
            "process", "pid", "procs", "register CPU%", "load CPU%", "RSS MiB", "peak MiB"
        );
        for p in &r.processes {
            println!(
                "{:<12} {:>8} {:>6} {:>14.1} {:>10.1} {:>10.1} {:>10.1}",
                p.name,
                p.pid,
                p.processes,
                p.register_cpu_pct,
                p.load_cpu_pct,
                p.rss_kib as f64 / 1024.0,
                p.peak_rss_kib as f64 / 1024.0
            );
        }
    }
}

/// A line on stderr every second while `work` runs.
async fn with_progress<T>(
    stats: &Arc<Stats>,
    phase: &str,
    total: Option<usize>,
    work: impl Future<Output = T>,
) -> T {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let line = || {
        let mut parts = vec![format!(
            "{phase}: cameras online {}{}",
            stats.online.load(Ordering::Relaxed),
            total.map(|t| format!("/{t}")).unwrap_or_default()
        )];
        for op in ["register", "list", "play", "ptz"] {
            let o = stats.op(op);
            let (n, e) = (o.count(), o.error_count());
            if n > 0 || e > 0 {
                parts.push(format!("{op} {n} ok {e} err"));
            }
        }
        parts.join(" | ")
    };
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let out = loop {
        tokio::select! {
            v = &mut work => break v,
            _ = tick.tick() => {
                bar.set_message(line());
                bar.tick();
            }
        }
    };
    bar.finish_and_clear();
    out
}

// ---------------------------------------------------------------------------------------

/// `peercam loadgen`.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.cameras == 0 || !args.scus.is_empty(),
        "cameras register with an SCU: give --scu wss://HOST:PORT/ (or --cameras 0)"
    );
    anyhow::ensure!(
        args.duration >= 0.0 && args.duration.is_finite(),
        "--duration must be 0 or more seconds"
    );
    let ca = std::fs::read(&args.ca).with_context(|| format!("reading {}", args.ca.display()))?;
    let tls = peercam_net::tls::client_config(&ca)?;
    let password = match (&args.operator_password, &args.operator_password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .trim()
            .to_owned(),
        (None, None) => anyhow::bail!(
            "the harness provisions cameras as the operator: give --operator-password or \
             --operator-password-file"
        ),
    };
    let (operator, _) = Client::new(&args.cmus[0], Some(&ca))?
        .login(&args.operator, &password)
        .await
        .context("logging in as the operator")?;
    let stats = Arc::new(Stats::new());

    // Provisioning (not a measured rate: one request per 5,000 cameras).
    let ids = super::admin::new_identities(args.cameras, "peercam", "synthetic", DeviceKind::Pu)?;
    let t = Instant::now();
    super::admin::record(&operator, &ids).await?;
    stats.op("provision").ok(t.elapsed());

    // Registrations.
    let stop = Shutdown::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency.max(1)));
    let p0 = sample_all(&args.pids);
    let t0 = Instant::now();
    let mut cams = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let url = args.scus[i % args.scus.len()].clone();
        cams.spawn(camera(
            id.clone(),
            url,
            tls.clone(),
            stats.clone(),
            gate.clone(),
            stop.clone(),
        ));
    }
    let settle = async {
        let reg = stats.op("register");
        while reg.count() + usize::try_from(reg.error_count()).unwrap_or(0) < ids.len() {
            if t0.elapsed() > Duration::from_secs(600) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    with_progress(&stats, "registering", Some(ids.len()), settle).await;
    let register_s = t0.elapsed().as_secs_f64();
    let p1 = sample_all(&args.pids);

    // Users.
    let t1 = Instant::now();
    let users = make_users(&args, &ca, &operator, &ids, &stats).await?;
    let setup_s = t1.elapsed().as_secs_f64();

    // The timed load.
    let p2 = sample_all(&args.pids);
    let t2 = Instant::now();
    let user_count = users.len();
    with_progress(&stats, "load", Some(ids.len()), load(&args, users, &stats)).await;
    let load_s = t2.elapsed().as_secs_f64();
    let p3 = sample_all(&args.pids);
    let online = stats.online.load(Ordering::Relaxed);
    stop.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while cams.join_next().await.is_some() {}
    })
    .await;

    let windows = [
        ("provision", 0.0),
        ("register", register_s),
        ("signup", setup_s),
        ("login", setup_s),
        ("bind", setup_s),
        ("share", setup_s),
        ("list", load_s),
        ("play", load_s),
        ("ptz", load_s),
        ("camera", load_s),
    ];
    let pct = |a: &ProcSample, b: &ProcSample, s: f64| {
        if s >= 0.5 {
            (b.cpu_s - a.cpu_s) * 100.0 / s
        } else {
            0.0
        }
    };
    let report = Report {
        cmus: args.cmus.clone(),
        scus: args.scus.clone(),
        cameras: ids.len(),
        cameras_online_at_end: online,
        users: user_count,
        register_s,
        setup_s,
        load_s,
        ops: windows
            .iter()
            .map(|(op, w)| op_report(&stats, op, *w))
            .collect(),
        processes: args
            .pids
            .iter()
            .enumerate()
            .map(|(i, (name, pid, _))| ProcReport {
                name: name.clone(),
                pid: *pid,
                processes: p3[i].processes,
                register_cpu_pct: pct(&p0[i], &p1[i], register_s),
                load_cpu_pct: pct(&p2[i], &p3[i], load_s),
                rss_kib: p3[i].rss_kib,
                peak_rss_kib: p3[i].hwm_kib,
            })
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    let errors: u64 = report.ops.iter().map(|o| o.errors).sum();
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_arguments() {
        assert_eq!(parse_pid("cmu=12").unwrap(), ("cmu".to_owned(), 12, false));
        assert_eq!(parse_pid("pg=7+").unwrap(), ("pg".to_owned(), 7, true));
        assert!(parse_pid("cmu").is_err());
        assert!(parse_pid("cmu=x").is_err());
    }

    #[test]
    fn percentiles_of_a_sorted_list() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert!((percentile(&v, 0.5) - 50.0).abs() <= 1.0);
        assert!((percentile(&v, 0.99) - 99.0).abs() <= 1.0);
        assert!(percentile(&[], 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn this_process_is_sampled() {
        let s = sample(std::process::id(), true);
        assert!(s.processes >= 1 && s.rss_kib > 0);
    }
}
