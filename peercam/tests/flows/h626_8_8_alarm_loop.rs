//! H.626.4 8.8 closed with a real camera: the strategy goes CU -> CMU -> SCU -> PU; the PU
//! raises an alarm (its simulated input, motion in its picture) that goes PU -> SCU -> CMU;
//! the CMU performs the linkage (the SMS in the user's words, the camera's snapshot, the
//! live stream) and the camera drives its alarm output; the user's reset goes CMU -> SCU ->
//! PU and clears the camera's alarm and output. A camera killed with SIGKILL raises the
//! 6.1.9 camera-offline alarm within the presence timeout. A camera whose link drops keeps
//! its alarm and delivers it once after reconnecting.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::support::scripted;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use peercam_signal::alarm::{AlarmKind, AlarmStrategy, Linkage};
use peercam_signal::cm_alarm::{AlarmTemplates, AlarmView};
use peercam_signal::control::AlarmInput;
use peercam_test::Cluster;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits until the owner's alarm list (filtered by `query`) has an alarm matching `pred`.
async fn wait_alarm(
    owner: &peercam_cu::Client,
    query: &str,
    within: Duration,
    pred: impl Fn(&AlarmView) -> bool,
) -> AlarmView {
    let deadline = Instant::now() + within;
    loop {
        let list = owner.alarms(query).await.unwrap();
        if let Some(a) = list.alarms.into_iter().find(|a| pred(a)) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no alarm for {query} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn strategy(source: AlarmKind, linkage: Linkage) -> AlarmStrategy {
    AlarmStrategy {
        armed: true,
        sources: vec![source],
        cooldown_s: 0,
        linkage,
        ..AlarmStrategy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_input_alarm_linkage_and_reset_reach_the_camera() {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let phone = "+15550881001";
    let owner = c.owner(phone).await.unwrap();
    let (pu, _sd) = c.start_pu_online(&ids[0], 0).await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.as_str();

    // 8.9.1: input 1 raises alarms (a normally open contact).
    owner
        .set_params(dev, |p| {
            p.alarm_inputs = vec![AlarmInput {
                input: 1,
                enabled: true,
                normally_open: true,
            }];
        })
        .await
        .unwrap();
    // 6.1.9: the owner's own words.
    let mut templates = BTreeMap::new();
    templates.insert("input".to_owned(), "Door {camera}: {kind}!".to_owned());
    owner
        .set_alarm_templates(&AlarmTemplates { templates })
        .await
        .unwrap();
    // 8.8 steps 1-4: the strategy reaches the camera, which applies it.
    let linkage = Linkage {
        sms: true,
        output: true,
        ..Linkage::default()
    };
    let st = owner
        .set_alarm_strategy(dev, &strategy(AlarmKind::Input, linkage))
        .await
        .unwrap();
    assert!(st.applied, "{st:?}");
    assert!(pu.alarms.state().strategy.armed);

    // The live stream of the owner's alarms (what the web client shows as a toast).
    let mut stream = scripted::AlarmStream::open(&c, &owner).await;
    // 8.8 steps 5-8: the input trips at the camera.
    let t0 = Instant::now();
    owner.trip_input(dev, 1, true).await.unwrap();
    let alarm = wait_alarm(&owner, "kind=input", Duration::from_secs(5), |_| true).await;
    assert_eq!(alarm.input, Some(1));
    assert!(
        stream
            .wait(&alarm.alarm_id, Duration::from_secs(5))
            .await
            .is_some(),
        "the live stream carries the alarm"
    );
    eprintln!("input trip -> stored and streamed in {:?}", t0.elapsed());
    // The camera drives its alarm output and holds the alarm active.
    let state = pu.alarms.state();
    assert!(state.output_on, "{state:?}");
    assert_eq!(state.active.len(), 1);
    assert_eq!(state.pending, 0, "acknowledged by the platform");
    // The linkage: the SMS in the owner's words and the camera's real snapshot.
    let sms = scripted::wait_sms(&c, phone, "Door ").await;
    assert!(sms.iter().any(|t| t.contains(": input!")), "{sms:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let jpeg = loop {
        let (status, body) = snapshot(&c, &owner, alarm.id).await;
        if status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "no snapshot kept: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(&jpeg[..2], b"\xff\xd8", "a JPEG from the camera");
    assert!(jpeg.len() > 1000, "a real picture, {} bytes", jpeg.len());

    // 8.8 reset: CMU -> SCU -> PU clears the camera's alarm and output.
    owner.reset_alarm(alarm.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pu.alarms.state().output_on || !pu.alarms.state().active.is_empty() {
        assert!(Instant::now() < deadline, "{:?}", pu.alarms.state());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        stream.wait("reset", Duration::from_secs(5)).await.is_some(),
        "the live stream carries the reset"
    );
    c.stop().await;
}

async fn snapshot(c: &Cluster, owner: &peercam_cu::Client, id: i64) -> (u16, Vec<u8>) {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&c.ca_pem).unwrap()])
        .build()
        .unwrap();
    let resp = http
        .get(format!("{}/api/v1/alarms/{id}/snapshot", c.api))
        .bearer_auth(owner.token().unwrap())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// Motion in the synthetic scene: the object appears and the platform has a motion alarm
/// the camera raised within 1 s of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_motion_in_the_picture_raises_an_alarm_within_1s() {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let owner = c.owner("+15550881002").await.unwrap();
    let (pu, _sd) = c
        .start_pu_with(&ids[0], 0, |cfg| cfg.scene_motion = false)
        .await
        .unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.as_str();
    let st = owner
        .set_alarm_strategy(
            dev,
            &strategy(
                AlarmKind::Motion,
                Linkage {
                    snapshot: false,
                    ..Linkage::default()
                },
            ),
        )
        .await
        .unwrap();
    assert!(st.applied);
    // The static, noisy scene for a while: nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        owner.alarms("kind=motion").await.unwrap().alarms.is_empty(),
        "a static scene raised motion"
    );
    let appeared = now_ms();
    pu.alarms.set_scene_motion(true);
    let alarm = wait_alarm(&owner, "kind=motion", Duration::from_secs(5), |_| true).await;
    let after = alarm.at_ms.saturating_sub(appeared);
    eprintln!(
        "motion raised {after} ms after the object appeared; stored {} ms after",
        alarm.received_ms.saturating_sub(appeared)
    );
    assert!(after <= 1000, "raised {after} ms after the object appeared");
    c.stop().await;
}

/// 6.1.9: a camera killed with SIGKILL raises camera-offline within the presence timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_9_camera_offline_alarm_after_kill_9() {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let owner = c.owner("+15550881003").await.unwrap();
    let dir = c.path().join("pu-kill");
    std::fs::create_dir_all(&dir).unwrap();
    let identity = dir.join("identity.toml");
    std::fs::write(&identity, ids[0].to_toml()).unwrap();
    let config = dir.join("pu.toml");
    std::fs::write(
        &config,
        format!(
            "identity = {identity:?}\nscu_url = {:?}\nplatform_ca = {:?}\nrtsp_listen = \"127.0.0.1:0\"\ndiscovery_port = 0\nport_mapping = false\nstate_dir = {:?}\n",
            c.scu_url(0),
            c.pki.ca_cert,
            dir.join("state"),
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["pu", "--config"])
        .arg(&config)
        .env("PEERCAM_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let killed = now_ms();
    child.kill().unwrap(); // SIGKILL: no goodbye on the link.
    child.wait().unwrap();
    // The SCU's presence timeout is 10 s; the kernel's closing the socket is faster.
    let alarm = wait_alarm(
        &owner,
        "kind=camera_offline",
        Duration::from_secs(12),
        |_| true,
    )
    .await;
    eprintln!(
        "camera_offline stored {} ms after the kill",
        alarm.received_ms.saturating_sub(killed)
    );
    assert_eq!(alarm.camera.as_deref(), Some(ids[0].device_id.as_str()));
    c.stop().await;
}

fn spawn_scu(config: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["scu", "--config"])
        .arg(config)
        .env("PEERCAM_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// An alarm raised while the camera's link is down (its SCU node killed) goes up after it
/// reconnects, exactly once, with the time it happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_alarm_during_a_dropped_link_arrives_once_after_reconnecting() {
    let c = Cluster::start(0).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scu_toml = c.write_scu_toml("scu-alarm", port).unwrap();
    let mut scu = spawn_scu(&scu_toml);
    let ids = c.provision(1).await.unwrap();
    let owner = c.owner("+15550881004").await.unwrap();
    let sd = peercam_net::Shutdown::new();
    let mut pc = peercam_pu::Config::new(
        c.identity_path(&ids[0].device_id),
        format!("wss://127.0.0.1:{port}/"),
        c.pki.ca_cert.clone(),
    );
    pc.rtsp_listen = "127.0.0.1:0".parse().unwrap();
    pc.reconnect_max_ms = 1000;
    pc.state_dir = Some(c.path().join("pu-drop.state"));
    let pu = peercam_pu::start(pc, sd.clone()).await.unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(20))
        .await
        .unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.as_str();
    owner
        .set_params(dev, |p| {
            p.alarm_inputs = vec![AlarmInput {
                input: 2,
                enabled: true,
                normally_open: true,
            }];
        })
        .await
        .unwrap();
    let st = owner
        .set_alarm_strategy(
            dev,
            &strategy(
                AlarmKind::Input,
                Linkage {
                    snapshot: false,
                    ..Linkage::default()
                },
            ),
        )
        .await
        .unwrap();
    assert!(st.applied);
    // kill -9 of the camera's SCU node: its link drops with no goodbye.
    scu.kill().unwrap();
    scu.wait().unwrap();
    c.wait_online(&ids[0].device_id, false, Duration::from_secs(15))
        .await
        .unwrap();
    let raised = now_ms();
    let _ = pu.alarms.execute(
        peercam_signal::cmd::DeviceCommand::TripInput {
            input: 2,
            active: true,
        },
        raised,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pu.alarms.state().pending,
        1,
        "queued while the link is down"
    );
    assert!(
        owner.alarms("kind=input").await.unwrap().alarms.is_empty(),
        "nothing can have arrived yet"
    );
    // The node comes back; the camera reconnects and delivers.
    let mut scu = spawn_scu(&scu_toml);
    let alarm = wait_alarm(&owner, "kind=input", Duration::from_secs(20), |_| true).await;
    assert!(
        alarm.at_ms >= raised && alarm.at_ms < raised + 1000,
        "kept its time: {} vs {raised}",
        alarm.at_ms
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pu.alarms.state().pending > 0 {
        assert!(Instant::now() < deadline, "{:?}", pu.alarms.state());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = owner.alarms("kind=input").await.unwrap().alarms;
    assert_eq!(all.len(), 1, "stored exactly once: {all:?}");
    sd.trigger();
    let _ = scu.kill();
    let _ = scu.wait();
    c.stop().await;
}
