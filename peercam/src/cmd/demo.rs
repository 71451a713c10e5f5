use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use peercam_cu::Client;
use peercam_net::Shutdown;
use peercam_net::pki::Pki;
use peercam_signal::ps::DeviceKind;

/// Run every unit on loopback: CMU + SCU with a private CA, SQLite and an SMS outbox, two
/// synthetic cameras, an NVR, an MTU, a CS storing on a local directory, and an approved demo
/// user who owns them. Writes DIR/demo.json when ready and runs until Ctrl-C.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Directory for the demo's state (recreated at each start).
    #[arg(long, default_value = "peercam-demo")]
    dir: PathBuf,
    /// First of the demo's ports on 127.0.0.1; every unit follows it, so two demos with
    /// ports 10 apart (or more cameras: 8 + cameras apart) never collide: CMU API = PORT,
    /// SCU +1, NVR +2, MTU relay +3, MTU tunnel +4, TURN (UDP and TCP) +5, cameras' RTSP +6,
    /// +7, ..., then the CS's Cp and its RTSP playback. 0 picks free ports for all.
    #[arg(long, default_value_t = 7000)]
    port: u16,
    /// Number of synthetic cameras.
    #[arg(long, default_value_t = 2)]
    cameras: usize,
}

/// Where each unit of the demo listens: a block starting at `--port`, or all 0 (free ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    cmu: u16,
    scu: u16,
    nvr: u16,
    relay: u16,
    tunnel: u16,
    turn: u16,
    /// The first camera's; the others follow.
    camera: u16,
    /// The CS's Cp (uploads, exports), after the cameras; its RTSP playback is the next.
    cs: u16,
}

impl Ports {
    fn new(base: u16, cameras: usize) -> anyhow::Result<Self> {
        if base == 0 {
            return Ok(Self {
                cmu: 0,
                scu: 0,
                nvr: 0,
                relay: 0,
                tunnel: 0,
                turn: 0,
                camera: 0,
                cs: 0,
            });
        }
        let last = usize::from(base) + 7 + cameras;
        anyhow::ensure!(
            last <= usize::from(u16::MAX),
            "--port {base} with {cameras} cameras needs ports up to {last}; pick a lower --port"
        );
        Ok(Self {
            cmu: base,
            scu: base + 1,
            nvr: base + 2,
            relay: base + 3,
            tunnel: base + 4,
            turn: base + 5,
            camera: base + 6,
            // `last` above is the CS's playback port.
            cs: base + 6 + u16::try_from(cameras).unwrap_or(0),
        })
    }

    /// The RTSP port of camera `i` (counting from 0).
    fn camera(&self, i: usize) -> u16 {
        if self.camera == 0 {
            return 0;
        }
        // `new` checked that the whole block fits.
        self.camera + u16::try_from(i).unwrap_or(0)
    }

    /// The CS's RTSP playback port (0 with `--port 0`).
    fn cs_media(&self) -> u16 {
        if self.cs == 0 { 0 } else { self.cs + 1 }
    }
}

/// How to run this very binary from the shell the demo was started in, for the commands it
/// prints: `peercam` when that is on the PATH and is this binary, otherwise this binary's
/// path (relative to the working directory when it is below it, as after `cargo run`).
fn self_command() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "peercam".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .any(|d| std::fs::canonicalize(d.join("peercam")).is_ok_and(|p| p == exe))
    });
    if on_path {
        return "peercam".into();
    }
    let cwd = std::env::current_dir().and_then(std::fs::canonicalize);
    match cwd.as_ref().map(|c| exe.strip_prefix(c)) {
        Ok(Ok(rel)) => format!("./{}", rel.display()),
        _ => exe.display().to_string(),
    }
}

/// The demo user binds the cameras and the NVR and attaches the cameras to the NVR with
/// [`demo_strategy`]; returns the devices for `demo.json`.
async fn bind_all(
    user: &Client,
    ids: &[peercam_signal::identity::DeviceIdentity],
    nvr_id: &peercam_signal::identity::DeviceIdentity,
    nvr: &mut peercam_nvr::Running,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut devices = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let name = format!("Camera {}", i + 1);
        bind_when_online(user, id, &name).await?;
        devices.push(serde_json::json!({ "id": id.device_id, "name": name }));
    }
    // The NVR: bound, both cameras attached; the first recorded continuously (1 GiB,
    // overwriting the oldest), the second around alarms (`peercam cu event --kind alarm`).
    registered(
        nvr.status
            .wait_for(|s| matches!(s, peercam_nvr::NvrStatus::Registered { .. })),
        "NVR",
    )
    .await?;
    bind_when_online(user, nvr_id, "Recorder").await?;
    for (i, id) in ids.iter().enumerate() {
        let cam = id.device_id.as_str();
        user.attach_camera(nvr_id.device_id.as_str(), cam).await?;
        user.set_recording(cam, Some(nvr_id.device_id.as_str()), &demo_strategy(i))
            .await?;
    }
    devices.push(serde_json::json!({ "id": nvr_id.device_id, "name": "Recorder", "kind": "nvr" }));
    // The first camera also records to the cloud (8.7.1): the CMU assigns it the demo CS
    // (the only one online), which stores it encrypted on a local directory.
    // Presence reaches the CMU a moment after the CS sees its registration: retry a while.
    if let Some(first) = ids.first() {
        let mut tries = 0;
        while let Err(e) = user
            .set_recording(first.device_id.as_str(), Some("cloud"), &demo_strategy(0))
            .await
        {
            tries += 1;
            if tries >= 50 {
                return Err(anyhow::Error::new(e).context("the cloud strategy"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (i, id) in ids.iter().enumerate() {
        arm_alarms(user, id.device_id.as_str(), i).await?;
    }
    Ok(devices)
}

/// H.626.4 8.8 in the demo: every camera's alarm input 1 (simulated; `peercam cu alarms
/// trip`) raises an alarm with an SMS to the demo user, a snapshot and the NVR's alarm
/// recording; the second camera also watches its picture for motion (its scene's moving
/// object), at most one alarm in two minutes and without SMS.
async fn arm_alarms(user: &Client, cam: &str, i: usize) -> anyhow::Result<()> {
    use peercam_alarm::{AlarmKind, AlarmStrategy, Linkage};
    user.set_params(cam, |p| {
        p.alarm_inputs = vec![peercam_signal::control::AlarmInput {
            input: 1,
            enabled: true,
            normally_open: true,
        }];
    })
    .await?;
    let mut sources = vec![AlarmKind::Input, AlarmKind::Tamper];
    if i == 1 {
        sources.push(AlarmKind::Motion);
    }
    let strategy = AlarmStrategy {
        armed: true,
        sources,
        cooldown_s: if i == 1 { 120 } else { 10 },
        linkage: Linkage {
            sms: i == 0,
            output: true,
            output_s: 30,
            ..Linkage::default()
        },
        ..AlarmStrategy::default()
    };
    user.set_alarm_strategy(cam, &strategy).await?;
    Ok(())
}

/// Waits up to 15 s for a unit's registration (`wait`, a watch of its status).
async fn registered<T, E>(
    wait: impl Future<Output = Result<T, E>>,
    what: &str,
) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    tokio::time::timeout(Duration::from_secs(15), wait)
        .await
        .with_context(|| format!("the {what} did not register in time"))??;
    Ok(())
}

/// Binds a device for the demo user once the CMU sees it online: presence reaches the CMU a
/// moment after the device sees its registration.
async fn bind_when_online(
    user: &Client,
    id: &peercam_signal::identity::DeviceIdentity,
    name: &str,
) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        match user
            .bind(id.device_id.as_str(), &id.bind_code.display(), Some(name))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some("device_offline") && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The NVR's strategy for demo camera `i`: the first recorded continuously (1 GiB, overwriting
/// the oldest), the others around alarms with pre- and post-roll.
fn demo_strategy(i: usize) -> peercam_record::strategy::Strategy {
    use peercam_record::strategy::{Mode, Retention, Strategy};
    Strategy {
        mode: if i == 0 {
            Mode::Continuous
        } else {
            Mode::Alarm {
                pre_s: 5,
                post_s: 20,
            }
        },
        retention: Retention {
            quota_bytes: 1 << 30,
            cyclic: true,
            max_age_days: 0,
        },
        utc_offset_min: 0,
    }
}

/// The configuration of demo camera `index`: its identity file, RTSP on `rtsp_port`, a short
/// day for night vision and a simulated radio.
fn camera_config(
    dir: &Path,
    id: &peercam_signal::identity::DeviceIdentity,
    scu_url: &str,
    ca: &Path,
    rtsp_port: u16,
    index: usize,
) -> anyhow::Result<peercam_pu::Config> {
    let mut cfg = peercam_pu::Config::new(
        dir.join("devices")
            .join(format!("{}.identity.toml", id.device_id)),
        scu_url.to_owned(),
        ca.to_path_buf(),
    );
    // Each camera's RTSP server on its own loopback port (7006, 7007, ... by default).
    cfg.rtsp_listen = SocketAddr::from(([127, 0, 0, 1], rtsp_port));
    // A two-minute day, so night vision (6.1.5) switches while you watch.
    cfg.day_cycle_s = 120;
    // A simulated radio (6.1.11): `peercam cu wlan` lists these networks; "cafe" cannot
    // reach the platform, so joining it shows the automatic return.
    let radio = dir.join(format!("radio-{}.json", index));
    if !radio.exists() {
        std::fs::write(
            &radio,
            r#"{"current": "home", "networks": [
  {"ssid": "home", "security": "wpa2_psk", "passphrase": "demo-home-1", "signal_pct": 72},
  {"ssid": "office", "security": "wpa3_sae", "passphrase": "demo-office-1", "signal_pct": 41},
  {"ssid": "cafe", "security": "open", "signal_pct": 55, "reaches_platform": false}
]}"#,
        )?;
    }
    cfg.wlan = Some(format!("file:{}", radio.display()));
    cfg.wlan_confirm_s = 15;
    // The camera's speaker (6.1.8): what viewers say is played into this WAV file.
    cfg.speaker_wav = Some(speaker_wav(dir, id));
    Ok(cfg)
}

/// Where the demo camera `id` plays what it hears (intercom, 6.1.8).
fn speaker_wav(dir: &Path, id: &peercam_signal::identity::DeviceIdentity) -> PathBuf {
    dir.join(format!("speaker-{}.wav", id.device_id))
}

/// The demo MTU: relay and tunnel on the demo's ports, TURN on loopback with the CMU's secret.
fn mtu_config(
    dir: &Path,
    mtu_id: &peercam_signal::identity::DeviceIdentity,
    scu_url: &str,
    pki: &peercam_net::pki::PkiFiles,
    ports: &Ports,
    turn_secret: String,
) -> peercam_mtu::Config {
    let mut cfg = peercam_mtu::Config::new(
        dir.join("devices")
            .join(format!("{}.identity.toml", mtu_id.device_id)),
        scu_url.to_owned(),
        pki.ca_cert.clone(),
        pki.server_cert.clone(),
        pki.server_key.clone(),
    );
    cfg.rtsp_listen = SocketAddr::from(([127, 0, 0, 1], ports.relay));
    cfg.tunnel_listen = SocketAddr::from(([127, 0, 0, 1], ports.tunnel));
    let turn_port = ports.turn;
    cfg.turn = Some(peercam_mtu::turn::Config {
        listen_udp: Some(SocketAddr::from(([127, 0, 0, 1], turn_port))),
        listen_tcp: Some(SocketAddr::from(([127, 0, 0, 1], turn_port))),
        secret: turn_secret,
        // Every unit of the demo is on loopback; a deployment keeps loopback denied (D8).
        allow_loopback_peers: true,
        allow_peers: vec!["127.0.0.0/8".into()],
        threads: Some(1),
        ..peercam_mtu::turn::Config::default()
    });
    cfg
}

/// The demo CMU: SQLite and the SMS outbox under `dir`, TLS from the demo's CA.
fn cmu_config(
    dir: &Path,
    pki: &peercam_net::pki::PkiFiles,
    port: u16,
    scu_secret: &str,
    turn_secret: &str,
) -> peercam_cmu::Config {
    let cmu_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cmu_cfg = peercam_cmu::Config::new(
        format!("sqlite://{}", dir.join("cmu.db").display()),
        dir.to_path_buf(),
        vec![scu_secret.to_owned()],
        peercam_cmu::SmsConfig::Outbox {
            dir: dir.join("sms-outbox"),
            mms: false,
        },
    );
    cmu_cfg.listen = cmu_addr;
    cmu_cfg.turn_secret = Some(turn_secret.to_owned());
    cmu_cfg.tls = Some(peercam_cmu::TlsFiles {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
    });
    cmu_cfg
}

/// The demo user `phone`: signs up with the SMS code from the outbox (6.1.1), is approved by
/// the operator and logs in. Returns the session and the password.
async fn demo_user(
    anon: &Client,
    admin: &Client,
    dir: &Path,
    phone: &str,
) -> anyhow::Result<(Client, String)> {
    let password = random_text(16);
    anon.signup(phone, &password).await?;
    let code = code_from_outbox(&dir.join("sms-outbox"), phone)?;
    anon.confirm(phone, &code).await?;
    let pending = admin.admin_users(Some("pending_approval")).await?;
    let uid = pending
        .iter()
        .find(|u| u.login == phone)
        .map(|u| u.id)
        .context("demo user not pending")?;
    admin.approve(uid).await?;
    let (user, _) = anon.login(phone, &password).await?;
    Ok((user, password))
}

/// The demo NVR: playback and export on `port`, recordings under `dir`.
fn nvr_config(
    dir: &Path,
    nvr_id: &peercam_signal::identity::DeviceIdentity,
    scu_url: &str,
    ca: &Path,
    port: u16,
) -> peercam_nvr::Config {
    let mut cfg = peercam_nvr::Config::new(
        dir.join("devices")
            .join(format!("{}.identity.toml", nvr_id.device_id)),
        scu_url.to_owned(),
        ca.to_path_buf(),
    );
    cfg.media_listen = SocketAddr::from(([127, 0, 0, 1], port));
    cfg.store_dir = Some(dir.join("nvr-recordings"));
    cfg
}

/// The demo CS (H.626.4 8.7.1): registers with the SCU like the NVR; Cp on `ports.cs`, RTSP
/// playback on the next port, objects and index under DIR/cloud. Data keys come from the
/// CMU's key service (Su `cloud_key`); Cp is plain HTTP, which a CS allows only on loopback.
fn cs_config(
    dir: &Path,
    cs_id: &peercam_signal::identity::DeviceIdentity,
    scu_url: &str,
    ca: &Path,
    ports: &Ports,
) -> peercam_cs::CsConfig {
    let mut cfg = peercam_cs::CsConfig::new(
        cs_id.device_id.to_string(),
        dir.join("cloud").join("objects"),
    );
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], ports.cs));
    if ports.cs != 0 {
        cfg.media_listen = Some(SocketAddr::from(([127, 0, 0, 1], ports.cs_media())));
    }
    cfg.platform = Some(peercam_cs::PlatformLink::new(
        dir.join("devices")
            .join(format!("{}.identity.toml", cs_id.device_id)),
        scu_url.to_owned(),
        ca.to_path_buf(),
    ));
    cfg
}

/// What the demo prints once it runs.
struct Guide<'a> {
    api: &'a str,
    scu_url: &'a str,
    ca: &'a Path,
    phone: &'a str,
    password: &'a str,
    cameras: &'a [peercam_signal::identity::DeviceIdentity],
    nvr: &'a peercam_signal::identity::DeviceIdentity,
    nvr_dir: &'a Path,
    cs: &'a peercam_signal::identity::DeviceIdentity,
    cs_running: &'a peercam_cs::Running,
    mtu_id: &'a peercam_signal::identity::DeviceIdentity,
    mtu: &'a peercam_mtu::Running,
    details: &'a Path,
}

/// `demo.json` for scripts: addresses, the CA, the login and the devices (written whole, then
/// renamed into place).
fn write_details(g: &Guide<'_>, dir: &Path, devices: Vec<serde_json::Value>) -> anyhow::Result<()> {
    let info = serde_json::json!({
        "api": g.api,
        "ca": g.ca,
        "scu": g.scu_url,
        "user": g.phone,
        "password": g.password,
        "admin_password_file": dir.join("admin.password"),
        "sms_outbox": dir.join("sms-outbox"),
        "devices": devices,
    });
    let tmp = dir.join("demo.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&info)?)?;
    std::fs::rename(&tmp, g.details)?;
    Ok(())
}

/// The addresses, the login and commands to try, each working as printed.
fn print_guide(g: &Guide<'_>) {
    println!("peercam demo is running (Ctrl-C to stop)\n");
    println!(
        "  CMU API      {}   (OpenAPI: {}/api/v1/openapi.json)",
        g.api, g.api
    );
    println!("  SCU          {}", g.scu_url);
    println!("  platform CA  {}", g.ca.display());
    println!("  demo user    {} / {}", g.phone, g.password);
    println!(
        "  cameras      {}",
        g.cameras
            .iter()
            .map(|i| i.device_id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  NVR          {} (recordings in {})",
        g.nvr.device_id,
        g.nvr_dir.display()
    );
    println!(
        "  CS           {} (Cp http://{}, objects in {})",
        g.cs.device_id,
        g.cs_running.addr,
        g.nvr_dir
            .parent()
            .map(|d| d.join("cloud").join("objects"))
            .unwrap_or_default()
            .display()
    );
    println!(
        "  MTU          {} (relay rtsp://{}/relay/<camera>, used when no direct path works; TURN {})",
        g.mtu_id.device_id,
        g.mtu.rtsp_addr,
        g.mtu
            .turn
            .as_ref()
            .and_then(|t| t.udp)
            .map_or_else(|| "off".to_owned(), |a| a.to_string())
    );
    println!("  details      {}\n", g.details.display());
    let pc = self_command();
    println!("Try:");
    println!(
        "  export PEERCAM_API={} PEERCAM_CA={}",
        g.api,
        g.ca.display()
    );
    println!(
        "  {pc} cu login --user {} --password {}",
        g.phone, g.password
    );
    println!("  {pc} cu devices");
    let first = g
        .cameras
        .first()
        .map(|i| i.device_id.to_string())
        .unwrap_or_default();
    println!("  {pc} cu status {first}");
    println!("  ffplay -rtsp_transport tcp \"$({pc} cu url {first})\"   # live view (H.626.4 8.4)");
    println!(
        "  {pc} cu url {first}                                     # every path: LAN first, the MTU's relay last (8.3)"
    );
    println!(
        "  {pc} cu play {first} --seconds 5 --out live.mp4          # tries the paths in order, reports the one used"
    );
    println!(
        "  {pc} admin sessions                                     # operator: live views by path (log in as admin)"
    );
    println!("  {pc} cu ptz {first} to --pan 0.8 --tilt 0 --zoom 2     # turn the camera (8.5)");
    println!("  {pc} cu params get {first}                              # parameters (8.9.1)");
    println!("  {pc} cu params set {first} osd.text=GATE night.mode=night");
    println!(
        "  {pc} cu wlan {first} --join cafe --security open          # WLAN, with automatic return (6.1.11)"
    );
    let second = g
        .cameras
        .get(1)
        .map(|i| i.device_id.to_string())
        .unwrap_or_default();
    println!(
        "  {pc} cu recordings {first}                              # today's timeline (8.7.2)"
    );
    println!(
        "  {pc} cu recordings {first} --recorder cloud             # what the cloud holds (8.7.1)"
    );
    println!("  {pc} cu export {first} --from <RFC 3339> --to <RFC 3339> --out clip.mp4");
    println!("  {pc} cu playback {first} --from <RFC 3339> --speed -4   # reverse at 4x");
    println!(
        "  {pc} cu event {second} --kind alarm                     # alarm recording with pre-roll"
    );
    println!(
        "  {pc} cu alarms trip {first} 1                          # the camera's alarm input (8.8): SMS, snapshot, toast"
    );
    println!(
        "  {pc} cu alarms list                                     # alarms; reset one with: cu alarms reset ID"
    );
    if let (Some(dir), Some(cam)) = (g.details.parent(), g.cameras.first()) {
        println!(
            "  talk (6.1.8): {}/#/device/{first}/live, Play, then hold \"Hold to talk\" (or Space);",
            g.api
        );
        println!(
            "                the camera plays what it hears into {}",
            speaker_wav(dir, cam).display()
        );
    }
}

const DEMO_FILES: &[&str] = &[
    "demo.json",
    "cmu.db",
    "cmu.db-wal",
    "cmu.db-shm",
    "admin.password",
    "pki",
    "sms-outbox",
    "devices",
    "session",
    "nvr-recordings",
    "cloud",
];

/// Demo files with a variable name (one simulated radio and one speaker file per camera).
fn is_demo_file(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    DEMO_FILES.iter().any(|f| n == *f)
        || (n.starts_with("radio-") && n.ends_with(".json"))
        || (n.starts_with("speaker-") && n.ends_with(".wav"))
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let foreign = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .any(|e| !is_demo_file(&e.file_name()));
        if foreign {
            bail!(
                "{} holds files the demo did not write; choose another --dir",
                dir.display()
            );
        }
        for f in DEMO_FILES {
            let p = dir.join(f);
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else if p.exists() {
                std::fs::remove_file(&p)?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(())
}

fn random_text(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap_or_default();
    b.iter()
        .map(|x| char::from(b"abcdefghjkmnpqrstuvwxyz23456789"[usize::from(*x) % 31]))
        .collect()
}

/// Reads the newest SMS in the outbox for `phone` and returns the 6-digit code.
fn code_from_outbox(outbox: &Path, phone: &str) -> anyhow::Result<String> {
    peercam_cmu::sms::latest_code(outbox, phone)?
        .with_context(|| format!("no SMS for {phone} in {}", outbox.display()))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone();
    prepare_dir(&dir)?;
    let dir = dir.canonicalize()?;
    let shutdown = super::shutdown_on_signal();

    // A private CA for the platform; devices and clients pin it.
    let pki = Pki::generate(&["localhost", "127.0.0.1", "::1"])?.write(&dir.join("pki"))?;
    let ca_pem = std::fs::read(&pki.ca_cert)?;
    let scu_secret = random_text(32);

    let ports = Ports::new(args.port, args.cameras)?;
    // The TURN REST secret the CMU shares with the MTU (docs/turn.md).
    let turn_secret = random_text(32);
    let cmu_cfg = cmu_config(&dir, &pki, ports.cmu, &scu_secret, &turn_secret);
    let cmu = peercam_cmu::start(cmu_cfg, shutdown.clone())
        .await
        .context("starting the CMU")?;
    let api = format!("https://127.0.0.1:{}", cmu.addr.port());

    let mut scu_cfg = peercam_scu::Config::new(
        pki.server_cert.clone(),
        pki.server_key.clone(),
        format!("wss://127.0.0.1:{}/platform/v1/scu", cmu.addr.port()),
        pki.ca_cert.clone(),
        scu_secret,
    );
    scu_cfg.listen = SocketAddr::from(([127, 0, 0, 1], ports.scu));
    let scu = peercam_scu::start(scu_cfg, shutdown.clone())
        .await
        .context("starting the SCU")?;
    let scu_url = format!("wss://127.0.0.1:{}/", scu.addr.port());

    // The operator provisions the cameras.
    let anon = Client::new(&api, Some(&ca_pem))?;
    let admin_password = std::fs::read_to_string(dir.join("admin.password"))?
        .trim()
        .to_owned();
    let (admin, _) = anon
        .login("admin", &admin_password)
        .await
        .context("operator login")?;
    let ids = super::admin::provision(
        &admin,
        args.cameras,
        "peercam",
        "synthetic",
        DeviceKind::Pu,
        &dir.join("devices"),
    )
    .await?;
    let mut pus = Vec::new();
    for id in &ids {
        let cfg = camera_config(
            &dir,
            id,
            &scu_url,
            &pki.ca_cert,
            ports.camera(pus.len()),
            pus.len(),
        )?;
        pus.push(peercam_pu::start(cfg, shutdown.clone()).await?);
    }

    // An NVR beside the cameras (H.626.4 8.7.2).
    let nvr_id = super::admin::provision(
        &admin,
        1,
        "peercam",
        "nvr",
        DeviceKind::Nvr,
        &dir.join("devices"),
    )
    .await?
    .remove(0);
    let nvr_cfg = nvr_config(&dir, &nvr_id, &scu_url, &pki.ca_cert, ports.nvr);
    let mut nvr = peercam_nvr::start(nvr_cfg, shutdown.clone())
        .await
        .context("starting the NVR")?;

    // An MTU: the relay for viewers that cannot reach a camera directly (H.626.4 7, 7.3).
    let mtu_id = super::admin::provision(
        &admin,
        1,
        "peercam",
        "mtu",
        DeviceKind::Mtu,
        &dir.join("devices"),
    )
    .await?
    .remove(0);
    let mtu_cfg = mtu_config(&dir, &mtu_id, &scu_url, &pki, &ports, turn_secret);
    let mtu = peercam_mtu::start(mtu_cfg, shutdown.clone())
        .await
        .context("starting the MTU")?;

    // A CS on a local directory (H.626.4 8.7.1): the operator provisions it; it registers
    // like the NVR and the CMU configures it (Su).
    let cs_id = super::admin::provision(
        &admin,
        1,
        "peercam",
        "cs",
        DeviceKind::Cs,
        &dir.join("devices"),
    )
    .await?
    .remove(0);
    let cs_cfg = cs_config(&dir, &cs_id, &scu_url, &pki.ca_cert, &ports);
    let keys = std::sync::Arc::new(cs_cfg.static_keys().context("CS data keys")?);
    let mut cs = peercam_cs::start(cs_cfg, keys, shutdown.clone())
        .await
        .context("starting the CS")?;
    if let Some(status) = cs.status.as_mut() {
        registered(
            status.wait_for(|s| matches!(s, peercam_cs::agent::CsStatus::Registered { .. })),
            "CS",
        )
        .await?;
    }

    // A user signs up by phone (6.1.1), the operator approves, the user binds the cameras (8.2).
    let phone = "+15550100001";
    let (user, password) = demo_user(&anon, &admin, &dir, phone).await?;
    for pu in &mut pus {
        registered(
            pu.status
                .wait_for(|s| matches!(s, peercam_pu::PuStatus::Registered { .. })),
            "camera",
        )
        .await?;
    }
    let devices = bind_all(&user, &ids, &nvr_id, &mut nvr).await?;

    let guide = Guide {
        api: &api,
        scu_url: &scu_url,
        ca: &pki.ca_cert,
        phone,
        password: &password,
        cameras: &ids,
        nvr: &nvr_id,
        nvr_dir: &dir.join("nvr-recordings"),
        cs: &cs_id,
        cs_running: &cs,
        mtu_id: &mtu_id,
        mtu: &mtu,
        details: &dir.join("demo.json"),
    };
    write_details(&guide, &dir, devices)?;
    print_guide(&guide);
    shutdown.wait().await;
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let _ = cmu.task.await;
        let _ = scu.task.await;
    })
    .await;
    let _ = Shutdown::new;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::Ports;

    fn all(p: &Ports, cameras: usize) -> Vec<u16> {
        let mut v = vec![p.cmu, p.scu, p.nvr, p.relay, p.tunnel, p.turn];
        v.extend((0..cameras).map(|i| p.camera(i)));
        v.extend([p.cs, p.cs_media()]);
        v
    }

    /// Every port of the demo follows `--port`: two demos 8 + cameras apart share none, and
    /// `--port 0` leaves every port to the system.
    #[test]
    fn demo_ports_follow_the_port_option_and_never_collide() {
        for cameras in [1, 2, 5] {
            let a = all(&Ports::new(7000, cameras).unwrap(), cameras);
            let mut sorted = a.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), a.len(), "a port used twice: {a:?}");
            let span = 8 + cameras as u16;
            let b = all(&Ports::new(7000 + span, cameras).unwrap(), cameras);
            assert!(a.iter().all(|p| !b.contains(p)), "{a:?} {b:?}");
            assert!(a.iter().all(|p| (7000..7000 + span).contains(p)));
        }
        let zero = Ports::new(0, 3).unwrap();
        assert!(all(&zero, 3).iter().all(|p| *p == 0));
        assert!(Ports::new(65_528, 2).is_err());
        assert!(Ports::new(65_526, 2).is_ok());
    }
}
