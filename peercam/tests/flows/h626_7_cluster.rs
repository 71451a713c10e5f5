//! Issue 19 acceptance, H.626.4 clause 7 (SCU distributed; CMU location and presence): a
//! platform of real processes behind a real load balancer. Two `peercam cmu` processes on
//! one database (PostgreSQL, or one SQLite file) and two `peercam scu` processes sit behind
//! HAProxy (TCP mode: TLS passes through); cameras and an MTU connect to the SCUs through
//! it, and users reach the CMUs through it.
//!
//! - `kill -9` of a CMU under load (users listing and asking for play URLs): the cameras
//!   stay online, play requests succeed through the other instance (the few that fail
//!   during the switch fail cleanly, counted and bounded), no one-time token is accepted
//!   twice, and every acknowledged play has its audit row.
//! - `kill -9` of an SCU: its cameras register on the other node within 5 s.
//! - PostgreSQL restarted under load: requests in flight fail with 503, succeed on retry,
//!   nothing is half-written; routing over the bus is back within 5 s.
//! - A CMU whose database or bus cannot be reached stops at start with a clear message.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use peercam_cu::{Client, CuError};
use peercam_signal::cm::PlayRequest;
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::ps::DeviceKind;
use peercam_test::procs::free_port;
use peercam_test::{Cluster, Haproxy, Unit, new_identity, provision_record, rtsp_describe};

const EXE: &str = env!("CARGO_BIN_EXE_peercam");

/// Cameras of the rig.
const CAMERAS: usize = 4;

/// Two CMU processes, two SCU processes, HAProxy in front of both pairs, an MTU and
/// [`CAMERAS`] cameras bound to one owner.
struct Rig {
    c: Cluster,
    lb: Haproxy,
    cmus: Vec<Unit>,
    scus: Vec<Unit>,
    ids: Vec<DeviceIdentity>,
    owner: Client,
    _pus: Vec<(peercam_pu::Running, peercam_net::Shutdown)>,
    _mtu: (peercam_mtu::Running, peercam_net::Shutdown),
}

impl Rig {
    async fn start(mut c: Cluster, test: &str, phone: &str) -> Option<Self> {
        // Play tokens live long enough that a replay at the end is refused as a replay,
        // not as expired.
        let cmus = vec![
            c.spawn_cmu(EXE, "cmu-a", "play_token_ttl_s = 600")
                .await
                .unwrap(),
            c.spawn_cmu(EXE, "cmu-b", "play_token_ttl_s = 600")
                .await
                .unwrap(),
        ];
        let scu_ports = [free_port(), free_port()];
        let scu_addrs: Vec<SocketAddr> = scu_ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        let groups = [
            (
                cmus.iter().map(|u| u.addr).collect(),
                Some("/api/v1/health"),
            ),
            (scu_addrs, None),
        ];
        let lb = Haproxy::start(test, &groups).await.unwrap()?;
        c.serve_through(lb.addr(0)).await.unwrap();
        c.devices_through(lb.addr(1));
        let mut scus = Vec::new();
        for (i, port) in scu_ports.iter().enumerate() {
            let node = format!("scu-{}", i + 1);
            scus.push(c.spawn_scu(EXE, &node, *port, lb.addr(0)).await.unwrap());
        }
        // HAProxy takes a backend in after two good checks (200 ms apart).
        tokio::time::sleep(Duration::from_millis(800)).await;

        let mtu_id = new_identity(DeviceKind::Mtu);
        c.admin
            .provision(vec![provision_record(&mtu_id)])
            .await
            .unwrap();
        let mtu = c.start_mtu_with(&mtu_id, 0, |_| {}).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(15),
            mtu.0
                .status
                .clone()
                .wait_for(|s| matches!(s, peercam_mtu::MtuStatus::Registered { .. })),
        )
        .await
        .unwrap()
        .unwrap();

        let ids = c.provision(CAMERAS).await.unwrap();
        let mut pus = Vec::new();
        for id in &ids {
            // The production back-off (the harness's default is shorter).
            let pu = c.start_pu_with(id, 0, |cfg| {
                cfg.reconnect_initial_ms = peercam_net::agent::default_reconnect_initial_ms();
                cfg.reconnect_max_ms = peercam_net::agent::default_reconnect_max_ms();
            });
            pus.push(pu.await.unwrap());
        }
        for id in &ids {
            c.wait_online(&id.device_id, true, Duration::from_secs(20))
                .await
                .unwrap();
        }
        let owner = c.owner(phone).await.unwrap();
        for id in &ids {
            c.bind(&owner, id).await.unwrap();
        }
        Some(Self {
            c,
            lb,
            cmus,
            scus,
            ids,
            owner,
            _pus: pus,
            _mtu: mtu,
        })
    }

    fn devs(&self) -> Vec<String> {
        self.ids.iter().map(|i| i.device_id.to_string()).collect()
    }

    /// The owner's session on a client of its own (its own connections through HAProxy,
    /// which spreads connections round-robin), or on instance `addr` directly.
    fn owner_via(&self, addr: Option<SocketAddr>) -> Client {
        let api = addr.map_or_else(|| self.c.api.clone(), |a| format!("https://{a}"));
        Client::new(&api, Some(&self.c.ca_pem))
            .unwrap()
            .with_token(self.owner.token().unwrap())
    }

    /// Node of each camera, as the operator's view shows it (`None`: offline).
    async fn nodes(&self) -> Result<Vec<Option<String>>, CuError> {
        let list = self.c.admin.admin_devices().await?;
        Ok(self
            .ids
            .iter()
            .map(|id| {
                list.iter()
                    .find(|d| d.id == id.device_id.as_str())
                    .filter(|d| d.online)
                    .and_then(|d| d.node.clone())
            })
            .collect())
    }

    /// Waits until a command reaches every camera through `via`; the time it took.
    async fn commands_reach_all(&self, via: &Client, within: Duration) -> Duration {
        let started = Instant::now();
        for dev in self.devs() {
            loop {
                match tokio::time::timeout(Duration::from_secs(1), via.status(&dev)).await {
                    Ok(Ok(_)) => break,
                    _ if started.elapsed() > within => {
                        panic!("no command reached {dev} within {within:?}")
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        started.elapsed()
    }
}

/// An error a user may see while an instance or the database goes: a transport error
/// (the connection was cut), or 502/503 with a code. Never a 500, never a wrong answer.
fn clean(e: &CuError) -> bool {
    match e.status() {
        None => true,
        Some(502 | 504) => true,
        Some(503) => matches!(e.code(), Some("unavailable" | "busy") | None),
        Some(409) => e.code() == Some("device_offline"),
        Some(_) => false,
    }
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    lists_ok: usize,
    /// Play URLs acknowledged (minted), with whether their first use was accepted.
    plays: Vec<(String, bool)>,
    /// Failed requests: when, and what.
    failed: Vec<(Instant, String)>,
}

/// Users through the balancer: `workers` clients, each listing and asking for play URLs
/// (each URL used once at once) in turn until `stop`.
fn load(rig: &Rig, workers: usize, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Tally>> {
    (0..workers)
        .map(|w| {
            let owner = rig.owner_via(None);
            let devs = rig.devs();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut t = Tally::default();
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match owner.devices().await {
                        Ok(list) => {
                            assert!(
                                devs.iter().all(|d| list.iter().any(|x| x.id.as_str() == d)),
                                "{list:?}"
                            );
                            t.lists_ok += 1;
                        }
                        Err(e) => {
                            assert!(clean(&e), "list: {e}");
                            t.failed.push((Instant::now(), format!("list: {e}")));
                        }
                    }
                    let dev = &devs[i % devs.len()];
                    match owner.play(dev, &PlayRequest::default()).await {
                        Ok(p) => {
                            let (status, got) = rtsp_describe(&p.url).await;
                            let accepted = status == 200;
                            if !accepted {
                                // The camera could not have the token judged (its node's
                                // link was moving): a clean refusal, the token unspent or
                                // spent, never accepted twice (checked at the end).
                                assert!(
                                    matches!(status, 0 | 401 | 403 | 503 | 504),
                                    "{status}: {}",
                                    String::from_utf8_lossy(&got)
                                );
                                t.failed
                                    .push((Instant::now(), format!("describe: {status}")));
                            }
                            t.plays.push((p.url, accepted));
                        }
                        Err(e) => {
                            assert!(clean(&e), "play: {e}");
                            t.failed.push((Instant::now(), format!("play: {e}")));
                        }
                    }
                }
                t
            })
        })
        .collect()
}

async fn gather(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.unwrap();
        all.lists_ok += t.lists_ok;
        all.plays.extend(t.plays);
        all.failed.extend(t.failed);
    }
    all
}

/// Every play URL acknowledged is accepted at most once: each one accepted is refused
/// when used again now (judged by the surviving instance); each one not yet accepted may
/// be accepted now, once.
async fn no_token_twice(plays: &[(String, bool)]) -> usize {
    let mut replays = 0;
    for (url, accepted) in plays {
        let (status, _) = rtsp_describe(url).await;
        if *accepted {
            assert_ne!(status, 200, "a spent token was accepted again: {url}");
            replays += 1;
        } else if status == 200 {
            assert_ne!(rtsp_describe(url).await.0, 200, "accepted twice: {url}");
        }
    }
    replays
}

/// Every acknowledged play has its `media.play_url` audit row, and every accepted token
/// its `media.play` row.
async fn audit_complete(rig: &Rig, minted: usize, accepted: usize) {
    let rows = |q: &'static str| async move {
        rig.c
            .admin
            .audit_search(q)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| {
                r.device_id
                    .as_deref()
                    .is_some_and(|d| rig.devs().iter().any(|x| x == d))
            })
            .count()
    };
    let minted_rows = rows("action=media.play_url&limit=5000").await;
    assert!(
        minted_rows >= minted,
        "{minted} play URLs acknowledged, {minted_rows} audit rows"
    );
    let granted_rows = rows("action=media.play&outcome=ok&limit=5000").await;
    assert!(
        granted_rows >= accepted,
        "{accepted} tokens accepted, {granted_rows} audit rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cluster_haproxy_kill9_cmu_and_scu_postgres() {
    let test = "h626_7_cluster_haproxy_kill9_cmu_and_scu_postgres";
    let Some(c) = Cluster::start_postgres(0, test).await.unwrap() else {
        return;
    };
    kill9(c, test).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cluster_haproxy_kill9_cmu_and_scu_sqlite() {
    let test = "h626_7_cluster_haproxy_kill9_cmu_and_scu_sqlite";
    kill9(Cluster::start(0).await.unwrap(), test).await;
}

async fn kill9(c: Cluster, test: &str) {
    let Some(mut rig) = Rig::start(c, test, "+15550719401").await else {
        return;
    };
    let via_lb = rig.owner_via(None);
    rig.commands_reach_all(&via_lb, Duration::from_secs(10))
        .await;

    // The cameras stay online throughout: the operator's view, polled through HAProxy,
    // never shows one offline (a poll cut by the kill is not an answer).
    let stop = Arc::new(AtomicBool::new(false));
    let watch = {
        let (admin, stop, devs) = (rig.c.admin.clone(), stop.clone(), rig.devs());
        tokio::spawn(async move {
            let mut answers = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(list) = admin.admin_devices().await {
                    for d in devs.iter() {
                        let seen = list.iter().find(|x| &x.id == d).unwrap();
                        assert!(seen.online, "{d} went offline: {seen:?}");
                    }
                    answers += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answers
        })
    };
    let tasks = load(&rig, 3, &stop);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // kill -9 of CMU A under load.
    let killed = Instant::now();
    rig.cmus[0].kill9();
    // Play requests succeed through the survivor: every camera gets a URL it accepts.
    for dev in rig.devs() {
        loop {
            if let Ok(p) = via_lb.play(&dev, &PlayRequest::default()).await
                && rtsp_describe(&p.url).await.0 == 200
            {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(10),
                "no play of {dev}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let plays_back = killed.elapsed();
    // Commands too (the nodes' links moved to B).
    let commands_back = killed.elapsed()
        + rig
            .commands_reach_all(&via_lb, Duration::from_secs(15))
            .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = gather(tasks).await;
    let watched = watch.await.unwrap();
    assert!(watched > 10, "the operator's view answered {watched} times");

    let total = tally.lists_ok + tally.plays.len() + tally.failed.len();
    let before = tally.failed.iter().filter(|(t, _)| *t < killed).count();
    let last_failure = tally
        .failed
        .iter()
        .map(|(t, _)| t.saturating_duration_since(killed))
        .max()
        .unwrap_or_default();
    let accepted = tally.plays.iter().filter(|(_, a)| *a).count();
    eprintln!(
        "FIGURES {test}: cmu kill -9: {total} requests, {} failed ({before} before the kill), last failure {:?} after it; every camera playable after {plays_back:?}, commandable after {commands_back:?}; {} URLs minted, {accepted} accepted first time; failures: {:?}",
        tally.failed.len(),
        last_failure,
        tally.plays.len(),
        tally.failed.iter().map(|(_, e)| e).collect::<Vec<_>>()
    );
    assert_eq!(before, 0, "failures before the kill: {:?}", tally.failed);
    // The failures are the requests in flight on A's connections at the kill: a few,
    // all within the switch.
    assert!(
        tally.failed.len() <= 10,
        "{} failed: {:?}",
        tally.failed.len(),
        tally.failed
    );
    assert!(last_failure < Duration::from_secs(5), "{last_failure:?}");
    // Four play-and-DESCRIBE round trips in a row: 1.3 to 2.4 s alone on this machine,
    // up to 5.4 s beside the other cluster tests (docs/design/scale-out.md).
    assert!(plays_back < Duration::from_secs(10), "{plays_back:?}");
    assert!(accepted > 10, "{accepted} plays accepted under load");

    let replays = no_token_twice(&tally.plays).await;
    assert_eq!(replays, accepted);
    audit_complete(&rig, tally.plays.len(), accepted).await;

    // kill -9 of an SCU node: its cameras register on the other node within 5 s.
    let nodes = rig.nodes().await.unwrap();
    let victim = if nodes.iter().any(|n| n.as_deref() == Some("scu-1")) {
        0
    } else {
        1
    };
    let (gone, other) = (format!("scu-{}", victim + 1), format!("scu-{}", 2 - victim));
    let moving: Vec<usize> = (0..CAMERAS)
        .filter(|i| nodes[*i].as_deref() == Some(gone.as_str()))
        .collect();
    let killed = Instant::now();
    rig.scus[victim].kill9();
    loop {
        let now = rig.nodes().await.unwrap();
        if moving
            .iter()
            .all(|i| now[*i].as_deref() == Some(other.as_str()))
        {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "{gone}'s cameras not on {other} within 5 s: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let moved = killed.elapsed();
    // And they work there: a command reaches each.
    let commandable = killed.elapsed()
        + rig
            .commands_reach_all(&via_lb, Duration::from_secs(10))
            .await;
    eprintln!(
        "FIGURES {test}: scu kill -9: {} cameras of {gone} registered on {other} after {moved:?}, commandable after {commandable:?}",
        moving.len()
    );
    assert!(!moving.is_empty());
    drop(rig.lb);
    rig.c.stop().await;
}

/// Runs `peercam cmu` with `database_url` and `extra` keys; it must stop within 30 s with
/// a non-zero exit; returns its stderr.
async fn start_fails(c: &Cluster, name: &str, database_url: &str, extra: &str) -> String {
    let port = free_port();
    let path = c.write_cmu_toml(name, port, extra).unwrap();
    let toml: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("database_url = ") {
                format!("database_url = {database_url:?}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(toml.contains(database_url), "{toml}");
    std::fs::write(&path, toml).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(EXE)
            .args(["cmu", "--config"])
            .arg(&path)
            .env("PEERCAM_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{name}: the CMU did not stop within 30 s"))
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{name}: {stderr}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "{name}: it listened"
    );
    stderr
}

/// Issue 19: a CMU whose SQLite file cannot be made (its directory is missing, or is a
/// file) stops at start, non-zero, saying why on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cluster_cmu_start_errors_sqlite() {
    let c = Cluster::start(0).await.unwrap();
    let missing = format!("sqlite://{}/no/such/dir/cmu.db", c.path().display());
    let e = start_fails(&c, "missing-dir", &missing, "").await;
    assert!(
        e.contains("starting the CMU") && e.contains("database"),
        "{e}"
    );
    let file = c.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = format!("sqlite://{}/cmu.db", file.display());
    let e = start_fails(&c, "under-a-file", &under_file, "").await;
    assert!(
        e.contains("starting the CMU") && e.contains("database"),
        "{e}"
    );
    eprintln!("FIGURES h626_7_cluster_cmu_start_errors_sqlite: stderr: {e}");
    c.stop().await;
}

/// Issue 19: a CMU whose database cannot be reached (a closed port, a database that does
/// not exist) or whose bus cannot be reached (`LISTEN` refused while the database answers)
/// stops at start, non-zero, saying why on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cluster_cmu_start_errors_postgres() {
    let test = "h626_7_cluster_cmu_start_errors_postgres";
    let Some(c) = Cluster::start_postgres(0, test).await.unwrap() else {
        return;
    };
    let closed = format!("postgres://postgres@127.0.0.1:{}/cmu", free_port());
    let e = start_fails(&c, "closed-port", &closed, "").await;
    assert!(
        e.contains("starting the CMU") && e.contains("database") && e.contains("refused"),
        "{e}"
    );
    let url = c.postgres().unwrap().url.clone();
    let missing = format!("{}_missing", url);
    let e = start_fails(&c, "missing-db", &missing, "").await;
    assert!(e.contains("does not exist"), "{e}");
    // The bus: the role may hold one connection, which the pool keeps; `LISTEN` needs a
    // second one.
    let db = c.postgres().unwrap().clone();
    let limited = tokio::task::spawn_blocking(move || db.limited_role_database(1))
        .await
        .unwrap();
    let e = start_fails(&c, "no-bus", &limited, "database_max_connections = 1").await;
    assert!(e.contains("cannot LISTEN"), "{e}");
    eprintln!("FIGURES {test}: no-bus stderr: {e}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cluster_lease_expiry_raises_camera_offline_once_sqlite() {
    lease_expiry(Cluster::start(0).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cluster_lease_expiry_raises_camera_offline_once_postgres() {
    let test = "h626_7_cluster_lease_expiry_raises_camera_offline_once_postgres";
    if let Some(c) = Cluster::start_postgres(0, test).await.unwrap() {
        lease_expiry(c).await;
    }
}

/// 6.1.9, issue 19: the camera's node links straight to instance A (no balancer: it
/// cannot move) and A dies as by `kill -9`. When the link's lease ends, the camera is
/// offline on the two survivors and `camera_offline` is raised once, by one of them.
async fn lease_expiry(mut c: Cluster) {
    let a = c.start_crashable_cmu().await.unwrap();
    let b = c.start_another_cmu().await.unwrap();
    let scu = c.add_scu_to("scu-1", a.addr).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], scu).await.unwrap();
    let owner = c.owner("+15550719501").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let owner_b = b.client().with_token(owner.token().unwrap());
    let dev = ids[0].device_id.to_string();
    let raised = || async {
        owner
            .alarms("kind=camera_offline")
            .await
            .unwrap()
            .alarms
            .iter()
            .filter(|a| a.camera.as_deref() == Some(dev.as_str()))
            .count()
    };
    assert_eq!(raised().await, 0);

    a.crash();
    let killed = Instant::now();
    while raised().await == 0 {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no camera_offline 20 s after the instance holding the camera died"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = killed.elapsed();
    // Not before the lease (10 s, renewed every second) could end.
    assert!(after > Duration::from_secs(8), "{after:?}");
    for via in [&owner, &owner_b] {
        let d = via.device(&dev).await.unwrap();
        assert!(!d.online, "{d:?}");
    }
    // Both survivors sweep every second: still one alarm a few sweeps later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(raised().await, 1);
    eprintln!("FIGURES lease expiry: camera_offline {after:?} after the kill");
    b.stop().await;
    c.stop().await;
}

/// Issue 19: PostgreSQL (the store and the bus) restarts under load on two CMU processes.
/// Requests in flight fail cleanly (503 `unavailable`, or a cut connection) and succeed
/// when tried again; a write answered or refused is whole (each sub-account created once,
/// every acknowledged play audited); within 5 s of the server's return a command through
/// either instance reaches every camera (one of them over the bus, through the instance
/// holding the camera's node link), and a camera that comes online then is playable
/// through both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_7_cluster_database_restart_under_load_postgres() {
    let test = "h626_7_cluster_database_restart_under_load_postgres";
    let Some(c) = Cluster::start_postgres(0, test).await.unwrap() else {
        return;
    };
    let Some(rig) = Rig::start(c, test, "+15550719601").await else {
        return;
    };
    let extra = rig.c.provision(1).await.unwrap().remove(0);
    let via_lb = rig.owner_via(None);
    rig.commands_reach_all(&via_lb, Duration::from_secs(10))
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&rig, 3, &stop);
    // Writes: sub-accounts, one after another, each tried again until it is there.
    let writer = {
        let (owner, stop) = (rig.owner_via(None), stop.clone());
        tokio::spawn(async move {
            let (mut created, mut retries) = (Vec::new(), 0);
            // At most 40 (an account holds 50), one every 50 ms.
            while !stop.load(Ordering::Relaxed) && created.len() < 40 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let name = format!("sub{}", created.len());
                loop {
                    match owner.create_subaccount(&name, "sub account pass").await {
                        Ok(_) => break,
                        // An earlier attempt was written but its answer lost.
                        Err(e) if e.code() == Some("username_taken") => break,
                        Err(e) => {
                            assert!(clean(&e), "create {name}: {e}");
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                created.push(name);
            }
            (created, retries)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = rig.c.postgres().unwrap().clone();
    let restarting = Instant::now();
    tokio::task::spawn_blocking(move || db.restart_server())
        .await
        .unwrap();
    let back = Instant::now();
    let down_for = back - restarting;

    // Routing over the bus: through each instance directly, every camera.
    let within = Duration::from_secs(5);
    let mut routed = Duration::ZERO;
    for cmu in &rig.cmus {
        let via = rig.owner_via(Some(cmu.addr));
        rig.commands_reach_all(&via, within.saturating_sub(back.elapsed()))
            .await;
        routed = back.elapsed();
    }
    // Presence: a camera that comes online now, bound and played through each instance.
    let _pu = rig.c.start_pu(&extra, 0).await.unwrap();
    let dev = extra.device_id.to_string();
    while let Err(e) = rig.c.bind(&via_lb, &extra).await {
        assert!(back.elapsed() < within, "not bound in 5 s: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for cmu in &rig.cmus {
        let via = rig.owner_via(Some(cmu.addr));
        loop {
            if let Ok(p) = via.play(&dev, &PlayRequest::default()).await {
                let (status, got) = rtsp_describe(&p.url).await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
                break;
            }
            assert!(back.elapsed() < within, "no play of the new camera in 5 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let presence = back.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = gather(tasks).await;
    let (created, retries) = writer.await.unwrap();

    let accepted = tally.plays.iter().filter(|(_, a)| *a).count();
    let late = tally
        .failed
        .iter()
        .filter(|(t, _)| *t > back + Duration::from_secs(2))
        .count();
    eprintln!(
        "FIGURES {test}: server down {down_for:?}; {} lists, {} plays ({accepted} accepted), {} failed ({late} more than 2 s after the return), {} sub-accounts ({retries} retries); routed through both within {routed:?}, new camera playable through both within {presence:?}; failures: {:?}",
        tally.lists_ok,
        tally.plays.len(),
        tally.failed.len(),
        created.len(),
        tally.failed.iter().map(|(_, e)| e).collect::<Vec<_>>()
    );
    assert_eq!(late, 0, "{:?}", tally.failed);
    // Nothing half-written: every sub-account once, each whole (it logs in).
    let subs = via_lb.subaccounts().await.unwrap();
    for name in &created {
        assert_eq!(
            subs.iter().filter(|s| &s.username == name).count(),
            1,
            "{name}: {subs:?}"
        );
    }
    assert_eq!(subs.len(), created.len(), "{subs:?}");
    let last = created.last().unwrap();
    rig.c
        .client()
        .login(last, "sub account pass")
        .await
        .unwrap();
    no_token_twice(&tally.plays).await;
    audit_complete(&rig, tally.plays.len(), accepted).await;
    rig.c.stop().await;
}
