//! Recording survives faults (H.626.4 8.7.2; docs/security.md D10 and the fault rows of the
//! test matrix): `kill -9` of the NVR process at random points while it records, and a
//! full disk (a size-limited tmpfs in a private mount namespace). The NVR runs as the real
//! `peercam nvr` binary.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use peercam_cu::Client;
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::ps::DeviceKind;
use peercam_signal::record::{Mode, Strategy};
use peercam_test::{Cluster, new_identity};
use sqlx::Row as _;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct Nvr {
    config: PathBuf,
    child: Option<Child>,
    /// Wrap the process (e.g. in `unshare`), with `{}` for the peercam command line.
    wrap: Option<String>,
}

impl Nvr {
    fn new(c: &Cluster, id: &DeviceIdentity, store: &Path, min_free_mb: u64) -> Self {
        let dir = c.path().join(format!("nvr-{}", id.device_id));
        std::fs::create_dir_all(&dir).unwrap();
        let identity = dir.join("nvr.identity.toml");
        std::fs::write(&identity, id.to_toml()).unwrap();
        let config = dir.join("nvr.toml");
        std::fs::write(
            &config,
            format!(
                "identity = {:?}\nscu_url = {:?}\nplatform_ca = {:?}\nstore_dir = {:?}\nmedia_listen = \"127.0.0.1:0\"\nsegment_s = 1\nmin_free_mb = {min_free_mb}\nreconnect_initial_ms = 100\nreconnect_max_ms = 1000\n",
                identity,
                c.scu_url(0),
                c.pki.ca_cert,
                store
            ),
        )
        .unwrap();
        Self {
            config,
            child: None,
            wrap: None,
        }
    }

    fn start(&mut self) {
        let exe = env!("CARGO_BIN_EXE_peercam");
        let mut cmd = match &self.wrap {
            None => {
                let mut c = Command::new(exe);
                c.args(["nvr", "--config"]).arg(&self.config);
                c
            }
            Some(script) => {
                // `unshare` runs the shell itself; the NVR is the shell's child.
                let script = script
                    .replace(
                        "{nvr}",
                        &format!("{exe} nvr --config {}", self.config.display()),
                    )
                    .replace(
                        "{check}",
                        &format!("{exe} nvr --check --config {}", self.config.display()),
                    );
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
                c
            }
        };
        cmd.env("PEERCAM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        self.child = Some(cmd.spawn().unwrap());
    }

    /// SIGKILL: no shutdown path runs.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A wrapped NVR is the shell's child: it goes first.
            let pid = c.id();
            if let Ok(children) =
                std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            {
                for p in children.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", p]).status();
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn check(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_peercam"))
            .args(["nvr", "--check", "--config"])
            .arg(&self.config)
            .env("PEERCAM_LOG", "error")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "store check failed:\n{text}");
        text
    }
}

impl Drop for Nvr {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The committed segments (path, end ms), read without disturbing the running NVR.
async fn committed(store: &Path) -> Vec<(String, u64)> {
    let db = store.join("index.db");
    if !db.exists() {
        return Vec::new();
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .read_only(true);
    let Ok(pool) = sqlx::SqlitePool::connect_with(opts).await else {
        return Vec::new();
    };
    let rows = sqlx::query("SELECT path, end_90k FROM segments")
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    rows.iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64 / 90))
        .collect()
}

async fn setup(
    phone: &str,
    store: &Path,
    min_free_mb: u64,
    wrap: Option<String>,
    cif: bool,
) -> (
    Cluster,
    Client,
    DeviceIdentity,
    Nvr,
    (peercam_pu::Running, peercam_net::Shutdown),
) {
    let c = Cluster::start(1).await.unwrap();
    let pu = c.provision(1).await.unwrap().remove(0);
    let nvr_id = new_identity(DeviceKind::Nvr);
    c.provision_these(std::slice::from_ref(&nvr_id))
        .await
        .unwrap();
    let pu_run = c.start_pu_online(&pu, 0).await.unwrap();
    let mut nvr = Nvr::new(&c, &nvr_id, store, min_free_mb);
    nvr.wrap = wrap;
    nvr.start();
    c.wait_online(&nvr_id.device_id, true, Duration::from_secs(15))
        .await
        .unwrap();
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &pu).await.unwrap();
    c.bind(&owner, &nvr_id).await.unwrap();
    // One-second GOPs, so segments (and the loss window) are short; CIF keeps the encoder
    // cheap where the bit rate does not matter.
    owner
        .set_params(pu.device_id.as_str(), |p| {
            p.video.gop_s = 1;
            if cif {
                p.video.max_resolution = peercam_signal::control::Resolution::Cif;
            }
        })
        .await
        .unwrap();
    owner
        .attach_camera(nvr_id.device_id.as_str(), pu.device_id.as_str())
        .await
        .unwrap();
    owner
        .set_recording(
            pu.device_id.as_str(),
            Some(nvr_id.device_id.as_str()),
            &Strategy {
                mode: Mode::Continuous,
                ..Strategy::default()
            },
        )
        .await
        .unwrap();
    (c, owner, pu, nvr, pu_run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_kill_9_loses_no_acknowledged_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (c, _owner, _pu, mut nvr, _pu_run) = setup("+15550720101", &store, 64, None, true).await;
    let iterations: usize = std::env::var("PEERCAM_KILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut losses = Vec::new();
    // The largest gap between committed segments seen before any kill: how often this
    // machine, now, gets a segment to disk (1 s when idle; longer when the CPU is starved).
    let mut cadence = 0u64;
    let mut resumed_at = 0u64;
    let mut seed = now_ms();
    for i in 0..iterations {
        // A random point within 1.5-4.5 s of recording (xorshift; no extra crate).
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = 1500 + seed % 3000;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let before = committed(&store).await;
        // Only this run's segments: a gap across a restart is downtime, not cadence.
        let mut ends: Vec<u64> = before
            .iter()
            .map(|(_, e)| *e)
            .filter(|e| *e > resumed_at)
            .collect();
        ends.sort_unstable();
        cadence = ends.windows(2).map(|w| w[1] - w[0]).fold(cadence, u64::max);
        let killed_at = now_ms();
        nvr.kill9();
        // Restart-time repair, then a full check: every acknowledged segment plays.
        let report = nvr.check();
        let after = committed(&store).await;
        for (path, _) in &before {
            assert!(
                after.iter().any(|(p, _)| p == path),
                "iteration {i}: acknowledged segment {path} lost; check said:\n{report}"
            );
        }
        // The loss window of a recorder in its stride: from its last commit since it
        // resumed to the kill. A kill before its first commit since resuming measures the
        // restart (pull, first IDR), not what a crash loses, and is left out.
        if let Some(last) = after
            .iter()
            .map(|(_, e)| *e)
            .filter(|e| *e > resumed_at)
            .max()
        {
            losses.push(killed_at.saturating_sub(last));
        }
        nvr.start();
        resumed_at = now_ms();
        c.wait_online(&nvr.config_device(), true, Duration::from_secs(15))
            .await
            .ok();
    }
    nvr.kill9();
    losses.sort_unstable();
    let max = losses.last().copied().unwrap_or(0);
    let median = losses.get(losses.len() / 2).copied().unwrap_or(0);
    eprintln!(
        "loss window after kill -9 over {} kills: median {median} ms, max {max} ms (segments of 1 s, GOP 1 s)",
        losses.len()
    );
    assert!(
        losses.len() >= iterations / 2,
        "recording resumed after restarts: {losses:?}"
    );
    // What can be lost: the open segment (up to a GOP past the 1 s target) and the commit:
    // 4 s on an idle machine, and never more than two of the segment intervals this machine
    // managed before the kills plus a second.
    let allowed = 4000u64.max(2 * cadence + 1000);
    assert!(
        max <= allowed,
        "loss window {max} ms (allowed {allowed} ms, segment cadence {cadence} ms): {losses:?}"
    );
}

impl Nvr {
    fn config_device(&self) -> peercam_base::DeviceId {
        let text =
            std::fs::read_to_string(self.config.with_file_name("nvr.identity.toml")).unwrap();
        DeviceIdentity::parse(&text).unwrap().device_id
    }
}

/// The NVR's store on a disk of its own that is nearly full: a 4 MiB tmpfs in a private
/// mount namespace, mostly taken by another file. After the NVR ends, the shell checks the
/// store there into `check_out`.
struct TinyDisk {
    _dir: tempfile::TempDir,
    store: PathBuf,
    check_out: PathBuf,
    /// The [`Nvr::wrap`] script.
    wrap: String,
}

impl TinyDisk {
    /// Needs `unshare -m` (root, as in CI): otherwise the test says so and is skipped, except
    /// under CI, where it fails.
    fn new(test: &str) -> Option<Self> {
        let probe = Command::new("unshare")
            .args(["-m", "--propagation", "private", "true"])
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            peercam_test::skip(
                test,
                "unshare -m is not permitted here (needs root); the disk-full test did not run",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("tiny");
        std::fs::create_dir_all(&store).unwrap();
        let check_out = dir.path().join("check.txt");
        let wrap = format!(
            "mount -t tmpfs -o size=4m tmpfs {0} && dd if=/dev/zero of={0}/other-files bs=1k count=2600 2>/dev/null && {{nvr}}; {{check}} > {1} 2>&1",
            store.display(),
            check_out.display()
        );
        Some(Self {
            _dir: dir,
            store,
            check_out,
            wrap,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_disk_full_frees_the_oldest_and_recording_resumes() {
    let Some(disk) = TinyDisk::new("h626_8_7_2 disk-full") else {
        return;
    };
    let (store, check_out) = (&disk.store, &disk.check_out);
    let (_c, owner, pu, mut nvr, _pu_run) =
        setup("+15550720102", store, 0, Some(disk.wrap.clone()), false).await;
    let cam = pu.device_id.as_str();
    // Another program left 1.4 MiB free; the synthetic scene at 720p takes about 50 KiB/s,
    // so the disk is full after about 15 s; record for 28 s.
    let started = now_ms();
    tokio::time::sleep(Duration::from_secs(28)).await;
    let now = now_ms();
    let list = owner
        .recordings(cam, None, started - 60_000, now + 1000)
        .await
        .unwrap();
    let state = owner.recording_state(cam, None).await.unwrap();
    let kept: u64 = list.spans.iter().map(|s| s.end_ms - s.start_ms).sum();
    let first = list.spans.first().map_or(0, |s| s.start_ms);
    let last = list.spans.last().map_or(0, |s| s.end_ms);
    eprintln!(
        "disk full: kept {kept} ms in {} spans, {} bytes; oldest {} ms after start; newest {} ms before now; events {:?}",
        list.spans.len(),
        state.used_bytes,
        first.saturating_sub(started),
        now.saturating_sub(last),
        list.events
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>()
    );
    assert!(state.used_bytes <= 1 << 20, "{state:?}");
    assert!(
        kept >= 4000,
        "the store still holds several seconds: {kept} ms"
    );
    assert!(
        first > started + 3000,
        "the oldest recordings were deleted to make room"
    );
    // The recorder's clock may run a little ahead of the test's: "ago" is never negative.
    let ago = now.saturating_sub(last);
    assert!(ago < 5000, "recording goes on: newest ends {ago} ms ago");
    assert!(
        list.events.iter().any(|e| e.kind == "storage_full"),
        "a storage-full event was raised: {:?}",
        list.events
    );
    // kill -9 the NVR inside the namespace; the shell then checks the store there.
    let mut shell = nvr.child.take().unwrap();
    let pid = shell.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let nvr_pid = children.split_whitespace().next().expect("the NVR process");
    assert!(
        Command::new("kill")
            .args(["-9", nvr_pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        shell.wait().unwrap().success(),
        "the store check inside the namespace failed"
    );
    let report = std::fs::read_to_string(check_out).unwrap();
    eprintln!("store check after disk full and kill -9: {}", report.trim());
    assert!(!report.contains("problem:"), "{report}");
}

/// 6.1.9: the NVR's disk fills while it records a camera bound to an owner; the owner gets
/// the `storage_full` alarm from the NVR's own report, with nobody reading the recording
/// state, within a bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_storage_full_alarm_from_a_full_disk() {
    let Some(disk) = TinyDisk::new("h626_6_1_9 storage-full alarm from a full disk") else {
        return;
    };
    let started = now_ms();
    let (c, owner, pu, nvr, _pu_run) = setup(
        "+15550720103",
        &disk.store,
        0,
        Some(disk.wrap.clone()),
        false,
    )
    .await;
    let nvr_id = nvr.config_device();
    let recording_from = now_ms();
    // 1.4 MiB free at about 50 KiB/s: full after about 15 s (longer on a starved CPU).
    const WITHIN: Duration = Duration::from_secs(90);
    let deadline = tokio::time::Instant::now() + WITHIN;
    let alarm = loop {
        let list = owner.alarms("kind=storage_full").await.unwrap();
        if let Some(a) = list.alarms.into_iter().next() {
            break a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no storage_full alarm within {WITHIN:?} of recording on a full disk"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "storage_full alarm {} ms after recording started ({} ms after the cluster): {:?}",
        now_ms().saturating_sub(recording_from),
        now_ms().saturating_sub(started),
        alarm.detail
    );
    assert_eq!(alarm.camera.as_deref(), Some(pu.device_id.as_str()));
    // The NVR's reason: the oldest deleted to make room (or, first, a segment the full disk
    // refused). The read path would have said only "recorder <id>".
    let prefix = format!("recorder {nvr_id}: disk full, ");
    assert!(alarm.detail.starts_with(&prefix), "{:?}", alarm.detail);
    drop(nvr);
    c.stop().await;
}
