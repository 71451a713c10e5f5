//! Alarms through the platform (H.626.4 8.8, 6.1.9): simulated cameras on the real Ps link
//! (TLS WebSocket, signed registration, the device link state machine) send alarms up
//! through one SCU to the CMU.
//!
//! 1. Latency: camera -> CMU stored -> the owner's live alarm stream (what the web client's
//!    toast shows) and -> the SMS outbox (in the owner's words), p50 and p99.
//! 2. Load: N cameras (default 1,000) send 10 alarms each, at random moments within 60 s
//!    (10,000 a minute): every alarm answered `stored` and stored once, the SMS limits held
//!    (20 per user per hour, 120 a minute for the platform).
//!
//! `cargo bench --bench alarms -- 1000`
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use peercam_alarm::{Alarm, AlarmKind, AlarmState, AlarmStrategy, Linkage};
use peercam_net::tokio_tungstenite::tungstenite::Message;
use peercam_signal::cmd::{DeviceCommand, DeviceReply, DeviceRequest, PlatformAnswer};
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::link::{DeviceLink, LinkEvent};
use peercam_test::{Cluster, new_identity};
use tokio::sync::{mpsc, oneshot};

/// The smallest JPEG-shaped answer to a snapshot order.
const JPEG: &[u8] = b"\xff\xd8\xff\xe0bench\xff\xd9";

type Ask = (Alarm, oneshot::Sender<PlatformAnswer>);

/// One simulated camera: registers, answers commands, sends the alarms it is given.
fn camera(
    id: DeviceIdentity,
    url: String,
    tls: Arc<rustls::ClientConfig>,
    registered: Arc<AtomicUsize>,
    stop: peercam_net::Shutdown,
) -> mpsc::Sender<Ask> {
    let (tx, mut rx) = mpsc::channel::<Ask>(64);
    tokio::spawn(async move {
        let Ok(ws) = peercam_net::ws::connect(&url, tls, Duration::from_secs(60)).await else {
            eprintln!("connect failed");
            return;
        };
        let (mut sink, mut stream) = ws.split();
        let mut link = DeviceLink::new(
            Instant::now(),
            id.device_id.clone(),
            id.kind,
            id.signing_key().unwrap(),
            "bench",
        );
        let mut waiting: BTreeMap<u64, oneshot::Sender<PlatformAnswer>> = BTreeMap::new();
        let mut up = false;
        loop {
            while let Some(ev) = link.poll_event() {
                match ev {
                    LinkEvent::Registered { .. } => {
                        up = true;
                        registered.fetch_add(1, Ordering::Relaxed);
                    }
                    LinkEvent::Command { id, command } => link.reply(id, answer(&command)),
                    LinkEvent::Answer { re, answer } => {
                        if let Some(w) = waiting.remove(&re) {
                            let _ = w.send(answer);
                        }
                    }
                    _ => {}
                }
            }
            while let Some(f) = link.poll_transmit() {
                if sink
                    .send(Message::text(String::from_utf8(f).unwrap()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let deadline = link
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            tokio::select! {
                m = stream.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        if link.handle_input(Instant::now(), t.as_bytes()).is_err() { return; }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                ask = rx.recv(), if up => match ask {
                    Some((alarm, reply)) => {
                        if let Some(re) = link.request(DeviceRequest::Alarm { alarm }) {
                            waiting.insert(re, reply);
                        }
                    }
                    None => return,
                },
                () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
                () = stop.wait() => return,
            }
        }
    });
    tx
}

/// What a simulated camera answers: a tiny snapshot, its alarm state, or done.
fn answer(command: &DeviceCommand) -> DeviceReply {
    use base64::Engine as _;
    match command {
        DeviceCommand::Snapshot { .. } => DeviceReply::Snapshot {
            jpeg: base64::engine::general_purpose::STANDARD.encode(JPEG),
            width: 16,
            height: 16,
            taken_ms: now_ms(),
        },
        DeviceCommand::SetAlarmStrategy { strategy } => DeviceReply::Alarms {
            state: AlarmState {
                strategy: strategy.clone(),
                active: Vec::new(),
                output_on: false,
                inputs: Vec::new(),
                pending: 0,
            },
        },
        _ => DeviceReply::Done,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn alarm(id: String) -> Alarm {
    Alarm {
        id,
        kind: AlarmKind::Input,
        at_ms: now_ms(),
        input: Some(1),
        zone: None,
        level: 100,
        detail: String::new(),
    }
}

fn outbox(c: &Cluster) -> std::path::PathBuf {
    c.path().join("sms-outbox")
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct World {
    c: Cluster,
    owners: Vec<(String, peercam_cu::Client)>,
    cams: Vec<(usize, mpsc::Sender<Ask>)>,
    stop: peercam_net::Shutdown,
}

/// `n` cameras bound round-robin to `owners` accounts, registered, with a strategy whose
/// linkage sends SMS and keeps a snapshot.
async fn world(n: usize, owners: usize) -> World {
    let c = Cluster::start(1).await.unwrap();
    let tls = peercam_net::tls::client_config(&c.ca_pem).unwrap();
    let url = c.scu_url(0);
    let ids: Vec<_> = (0..n)
        .map(|_| new_identity(peercam_signal::ps::DeviceKind::Pu))
        .collect();
    c.provision_these(&ids).await.unwrap();
    let mut accounts = Vec::new();
    for o in 0..owners {
        let phone = format!("+1555078{o:04}");
        accounts.push((phone.clone(), c.owner(&phone).await.unwrap()));
    }
    let registered = Arc::new(AtomicUsize::new(0));
    let stop = peercam_net::Shutdown::new();
    let cams: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                i % owners,
                camera(
                    id.clone(),
                    url.clone(),
                    tls.clone(),
                    registered.clone(),
                    stop.clone(),
                ),
            )
        })
        .collect();
    let t0 = Instant::now();
    while registered.load(Ordering::Relaxed) < n && t0.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(registered.load(Ordering::Relaxed), n, "cameras registered");
    // 8.2: a camera is bound once it has registered.
    for (i, id) in ids.iter().enumerate() {
        c.bind(&accounts[i % owners].1, id).await.unwrap();
    }
    let strategy = AlarmStrategy {
        armed: true,
        sources: vec![AlarmKind::Input],
        linkage: Linkage {
            sms: true,
            ..Linkage::default()
        },
        ..AlarmStrategy::default()
    };
    for (i, id) in ids.iter().enumerate() {
        accounts[i % owners]
            .1
            .set_alarm_strategy(id.device_id.as_str(), &strategy)
            .await
            .unwrap();
    }
    World {
        c,
        owners: accounts,
        cams,
        stop,
    }
}

/// Camera trigger to the live stream and to the SMS outbox, one alarm at a time per owner
/// (at most 20 SMS per owner per hour: `per_owner` stays within it).
async fn latency(owners: usize, per_owner: usize) {
    let w = world(owners, owners).await;
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&w.c.ca_pem).unwrap()])
        .build()
        .unwrap();
    let (mut to_stream, mut to_sms) = (Vec::new(), Vec::new());
    let dir = outbox(&w.c);
    for (o, (_, client)) in w.owners.iter().enumerate() {
        let mut resp = http
            .get(format!("{}/api/v1/alarms/stream", w.c.api))
            .bearer_auth(client.token().unwrap())
            .send()
            .await
            .unwrap();
        let cam = &w.cams[o].1;
        let mut buf = String::new();
        for k in 0..per_owner {
            let files = count_files(&dir);
            let id = format!("lat-{o}-{k}");
            let t0 = Instant::now();
            let (tx, rx) = oneshot::channel();
            cam.send((alarm(id.clone()), tx)).await.unwrap();
            let answered = rx.await.unwrap();
            assert!(
                matches!(answered, PlatformAnswer::Stored { .. }),
                "{answered:?}"
            );
            while !buf.contains(&id) {
                let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
                    .await
                    .expect("the stream delivers the alarm")
                    .unwrap()
                    .unwrap();
                buf.push_str(&String::from_utf8_lossy(&chunk));
            }
            to_stream.push(t0.elapsed().as_secs_f64() * 1000.0);
            buf.clear();
            while count_files(&dir) <= files {
                assert!(t0.elapsed() < Duration::from_secs(10), "no SMS for {id}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            to_sms.push(t0.elapsed().as_secs_f64() * 1000.0);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "| trigger -> live stream (toast) | {} | {:.1} | {:.1} |",
        to_stream.len(),
        percentile(&mut to_stream, 0.5),
        percentile(&mut to_stream, 0.99)
    );
    println!(
        "| trigger -> SMS outbox | {} | {:.1} | {:.1} |",
        to_sms.len(),
        percentile(&mut to_sms, 0.5),
        percentile(&mut to_sms, 0.99)
    );
    w.stop.trigger();
    w.c.stop().await;
}

/// `n` cameras, 10 alarms each at random moments within 60 s.
async fn load(n: usize) {
    let owners = 10;
    let w = world(n, owners).await;
    let per_camera = 10;
    let stored = Arc::new(AtomicUsize::new(0));
    let answer_ms = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    let mut seed = now_ms() | 1;
    for (c, (_, cam)) in w.cams.iter().enumerate() {
        let mut at: Vec<u64> = (0..per_camera)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % 60_000
            })
            .collect();
        at.sort_unstable();
        let (cam, stored, answer_ms) = (cam.clone(), stored.clone(), answer_ms.clone());
        tasks.push(tokio::spawn(async move {
            for (k, ms) in at.into_iter().enumerate() {
                tokio::time::sleep_until((t0 + Duration::from_millis(ms)).into()).await;
                let sent = Instant::now();
                let (tx, rx) = oneshot::channel();
                cam.send((alarm(format!("load-{c}-{k}")), tx))
                    .await
                    .unwrap();
                if let Ok(PlatformAnswer::Stored { .. }) = rx.await {
                    stored.fetch_add(1, Ordering::Relaxed);
                    answer_ms
                        .lock()
                        .unwrap()
                        .push(sent.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    let sent = n * per_camera;
    // Count what the CMU kept, owner by owner, through the API.
    let mut kept = 0;
    for (_, client) in &w.owners {
        let mut before: Option<i64> = None;
        loop {
            let q = match before {
                Some(b) => format!("kind=input&limit=500&before={b}"),
                None => "kind=input&limit=500".into(),
            };
            let page = client.alarms(&q).await.unwrap();
            kept += page.alarms.len();
            match page.next {
                Some(n) => before = Some(n),
                None => break,
            }
        }
    }
    // Let the linkage finish, then count SMS per owner.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dir = outbox(&w.c);
    let most_per_owner = w
        .owners
        .iter()
        .map(|(phone, _)| {
            peercam_cmu::sms::messages_to(&dir, phone)
                .unwrap_or_default()
                .len()
        })
        .max()
        .unwrap_or(0);
    let total_sms = count_files(&dir);
    let mut answers = answer_ms.lock().unwrap().clone();
    println!(
        "| {n} | {sent} | {wall:.1} | {} | {kept} | {:.1} | {:.1} | {most_per_owner} | {total_sms} |",
        stored.load(Ordering::Relaxed),
        percentile(&mut answers, 0.5),
        percentile(&mut answers, 0.99),
    );
    w.stop.trigger();
    w.c.stop().await;
}

fn main() {
    let _ = rlimit::increase_nofile_limit(1_048_576);
    let ns: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let ns = if ns.is_empty() { vec![1000] } else { ns };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| path | alarms | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    rt.block_on(latency(5, 20));
    println!();
    println!(
        "| cameras | alarms sent | wall s | answered stored | kept by the CMU | answer p50 ms | answer p99 ms | most SMS to one owner | SMS in all |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in ns {
        rt.block_on(load(n));
    }
}
