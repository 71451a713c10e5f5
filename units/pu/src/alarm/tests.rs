use std::time::{Duration, Instant};

use peercam_alarm::{AlarmStrategy, Linkage};
use peercam_signal::cmd::{DeviceRequest, PlatformAnswer};
use peercam_signal::control::AlarmInput;

use super::sources::{ANALYSIS_FPS, SceneAnalyser};
use super::*;

fn control() -> Arc<Control> {
    Arc::new(Control::in_memory(None))
}

fn alarms(control: &Arc<Control>, sources: &[AlarmKind]) -> Alarms {
    let a = Alarms::open(None, "b1", control.clone(), Wiring::default()).unwrap();
    let strategy = AlarmStrategy {
        armed: true,
        sources: sources.to_vec(),
        linkage: Linkage {
            output: true,
            ..Linkage::default()
        },
        ..AlarmStrategy::default()
    };
    let reply = a.execute(DeviceCommand::SetAlarmStrategy { strategy }, 0);
    assert!(matches!(reply, DeviceReply::Alarms { .. }), "{reply:?}");
    a
}

fn with_inputs(control: &Control, inputs: &[(u8, bool)]) {
    let mut p = control.params();
    p.alarm_inputs = inputs
        .iter()
        .map(|&(input, enabled)| AlarmInput {
            input,
            enabled,
            normally_open: true,
        })
        .collect();
    control.set_params(0, p, Instant::now()).unwrap();
}

/// Analysed frame `k` (5 a second) of the scene, at virtual time `k * 200` ms.
fn analyse(analyser: &mut SceneAnalyser, a: &Alarms, control: &Control, k: u64) {
    let step_ms = 1000 / ANALYSIS_FPS;
    let n = k * 25 / ANALYSIS_FPS;
    analyser.step(a, &control.view(Instant::now()), n, k * step_ms);
}

#[test]
fn h626_8_8_scene_object_raises_motion_within_1s() {
    let c = control();
    c.set_scene_motion(false);
    let a = alarms(&c, &[AlarmKind::Motion, AlarmKind::Tamper]);
    let mut analyser = SceneAnalyser::default();
    for k in 0..50 {
        analyse(&mut analyser, &a, &c, k);
    }
    assert!(a.state().active.is_empty(), "static scene: nothing");
    // The object appears at 10 s.
    c.set_scene_motion(true);
    for k in 50..60 {
        analyse(&mut analyser, &a, &c, k);
    }
    let state = a.state();
    let first = state.active.first().expect("motion raised");
    assert_eq!(first.kind, AlarmKind::Motion);
    assert!(
        first.at_ms <= 10_000 + 1_000,
        "raised at {} ms",
        first.at_ms
    );
    assert!(state.output_on, "linkage.output");
    assert!(state.active.iter().all(|x| x.kind == AlarmKind::Motion));
}

#[test]
fn h626_8_8_static_noisy_scene_raises_nothing_in_60s() {
    let c = control();
    c.set_scene_motion(false);
    let a = alarms(&c, &[AlarmKind::Motion, AlarmKind::Tamper]);
    let mut analyser = SceneAnalyser::default();
    // 60 s at 5 analysed frames a second, in virtual time.
    for k in 0..300 {
        analyse(&mut analyser, &a, &c, k);
    }
    assert_eq!(a.state().active, Vec::new());
}

#[test]
fn h626_8_8_simulated_input_trip_raises_input_alarm() {
    let c = control();
    with_inputs(&c, &[(1, true), (2, false)]);
    let a = alarms(&c, &[AlarmKind::Input]);
    let trip = |input, active| a.execute(DeviceCommand::TripInput { input, active }, 5_000);
    let DeviceReply::Alarms { state } = trip(1, true) else {
        panic!("not alarms")
    };
    assert_eq!(state.active.len(), 1);
    let alarm = &state.active[0];
    assert_eq!(
        (alarm.kind, alarm.input, alarm.at_ms),
        (AlarmKind::Input, Some(1), 5_000)
    );
    assert!(
        state
            .inputs
            .iter()
            .any(|i| i.input == 1 && i.active && i.simulated)
    );
    assert_eq!(state.pending, 1, "queued for the platform");
    // A disabled input raises nothing; neither does the same activation again.
    trip(2, true);
    trip(1, true);
    assert_eq!(a.state().active.len(), 1);
    assert!(matches!(trip(9, true), DeviceReply::Invalid { .. }));
}

#[test]
fn h626_8_8_reset_clears_alarms_and_output() {
    let c = control();
    with_inputs(&c, &[(1, true), (3, true)]);
    let a = alarms(&c, &[AlarmKind::Input]);
    a.execute(
        DeviceCommand::TripInput {
            input: 1,
            active: true,
        },
        1_000,
    );
    a.execute(
        DeviceCommand::TripInput {
            input: 3,
            active: true,
        },
        1_000,
    );
    let DeviceReply::Alarms { state } = a.execute(DeviceCommand::GetAlarms, 0) else {
        panic!("not alarms")
    };
    assert_eq!(state.active.len(), 2);
    assert!(state.output_on);
    let first = state.active[0].id.clone();
    let reply = a.execute(
        DeviceCommand::ResetAlarm {
            id: Some(first.clone()),
        },
        0,
    );
    let DeviceReply::Alarms { state } = reply else {
        panic!("not alarms")
    };
    assert_eq!(state.active.len(), 1);
    assert!(state.output_on, "one alarm left");
    let again = a.execute(DeviceCommand::ResetAlarm { id: Some(first) }, 0);
    assert!(matches!(again, DeviceReply::Failed { code, .. } if code == "not_found"));
    let DeviceReply::Alarms { state } = a.execute(DeviceCommand::ResetAlarm { id: None }, 0) else {
        panic!("not alarms")
    };
    assert!(state.active.is_empty() && !state.output_on);
}

#[test]
fn h626_8_8_wired_input_is_not_simulated_and_output_file_driven() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let c = control();
    with_inputs(&c, &[(2, true)]);
    let wiring = Wiring {
        inputs: vec![GpioInput {
            input: 2,
            path: dir.path().join("in2"),
        }],
        output: Some(out.clone()),
    };
    let a = Alarms::open(None, "b1", c, wiring).unwrap();
    a.execute(
        DeviceCommand::SetAlarmStrategy {
            strategy: AlarmStrategy {
                armed: true,
                sources: vec![AlarmKind::Input],
                linkage: Linkage {
                    output: true,
                    ..Linkage::default()
                },
                ..AlarmStrategy::default()
            },
        },
        0,
    );
    let reply = a.execute(
        DeviceCommand::TripInput {
            input: 2,
            active: true,
        },
        0,
    );
    assert!(matches!(reply, DeviceReply::Failed { code, .. } if code == "not_simulated"));
    // What the GPIO poller does when the line changes.
    assert!(a.set_wired(2, true));
    a.input_changed(2, true, 10);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "1");
    assert!(
        a.state()
            .inputs
            .iter()
            .any(|i| i.input == 2 && i.active && !i.simulated)
    );
    a.execute(DeviceCommand::ResetAlarm { id: None }, 0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "0");
}

#[test]
fn h626_8_8_queue_and_strategy_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = control();
    with_inputs(&c, &[(1, true)]);
    let p1 = boot_prefix(Some(dir.path()), 1_700_000_000_000);
    let a = Alarms::open(Some(dir.path()), &p1, c.clone(), Wiring::default()).unwrap();
    a.execute(
        DeviceCommand::SetAlarmStrategy {
            strategy: AlarmStrategy {
                armed: true,
                sources: vec![AlarmKind::Input],
                ..AlarmStrategy::default()
            },
        },
        0,
    );
    a.execute(
        DeviceCommand::TripInput {
            input: 1,
            active: true,
        },
        7,
    );
    drop(a);
    let p2 = boot_prefix(Some(dir.path()), 1_700_000_000_000);
    assert_ne!(p1, p2, "a new prefix per boot");
    let b = Alarms::open(Some(dir.path()), &p2, c, Wiring::default()).unwrap();
    let state = b.state();
    assert_eq!(state.pending, 1);
    assert_eq!(state.active[0].at_ms, 7);
    assert!(state.active[0].id.starts_with(&p1));
    assert!(state.strategy.armed);
}

/// A scripted platform: answers each alarm with the next of `script` (then `Stored`), and
/// reports the ids it saw.
fn platform(
    mut script: Vec<PlatformAnswer>,
) -> (
    mpsc::Sender<crate::PlatformRequest>,
    mpsc::UnboundedReceiver<String>,
) {
    let (tx, mut rx) = mpsc::channel::<crate::PlatformRequest>(8);
    let (seen_tx, seen) = mpsc::unbounded_channel();
    script.reverse();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            if let crate::PlatformRequest::Request {
                request: DeviceRequest::Alarm { alarm },
                reply,
            } = req
            {
                let _ = seen_tx.send(alarm.id.clone());
                let answer = script
                    .pop()
                    .unwrap_or(PlatformAnswer::Stored { id: alarm.id });
                let _ = reply.send(answer);
            }
        }
    });
    (tx, seen)
}

use tokio::sync::mpsc;

#[tokio::test]
async fn h626_8_8_alarms_go_up_in_order_after_the_link_returns() {
    let c = control();
    with_inputs(&c, &[(1, true), (2, true), (3, true)]);
    let a = Arc::new(alarms(&c, &[AlarmKind::Input]));
    for n in 1..=3 {
        a.execute(
            DeviceCommand::TripInput {
                input: n,
                active: true,
            },
            u64::from(n),
        );
    }
    let (tx, mut seen) = platform(vec![
        peercam_net::agent::unavailable_answer(),
        PlatformAnswer::Refused {
            code: peercam_signal::refusal::Refusal::Forbidden,
            message: "no".into(),
        },
    ]);
    let (status_tx, status) = tokio::sync::watch::channel(crate::PuStatus::Connecting);
    let shutdown = peercam_net::Shutdown::new();
    let clock = Arc::new(crate::clock::MediaClock::new(0));
    uplink::spawn(a.clone(), tx, status, clock, shutdown.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(seen.try_recv().is_err(), "link down: nothing sent");
    status_tx.send_replace(crate::PuStatus::Registered {
        session: "s".into(),
    });
    let mut ids = Vec::new();
    while ids.len() < 4 {
        let id = tokio::time::timeout(Duration::from_secs(5), seen.recv())
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    // b1-1: unavailable, then again after a back-off, then refused for good; b1-2, b1-3 stored.
    assert_eq!(ids, ["b1-1", "b1-1", "b1-2", "b1-3"]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.state().pending, 0);
    shutdown.trigger();
}

#[tokio::test]
async fn h626_8_8_gpio_input_line_is_polled_with_its_contact_type() {
    let dir = tempfile::tempdir().unwrap();
    let line = dir.path().join("value");
    std::fs::write(&line, "1\n").unwrap();
    let c = control();
    // Input 4 is a normally closed contact: active when the line goes low (open).
    let mut p = c.params();
    p.alarm_inputs = vec![AlarmInput {
        input: 4,
        enabled: true,
        normally_open: false,
    }];
    c.set_params(0, p, Instant::now()).unwrap();
    let wiring = Wiring {
        inputs: vec![GpioInput {
            input: 4,
            path: line.clone(),
        }],
        output: None,
    };
    let a = Arc::new(Alarms::open(None, "b1", c.clone(), wiring).unwrap());
    a.execute(
        DeviceCommand::SetAlarmStrategy {
            strategy: AlarmStrategy {
                armed: true,
                sources: vec![AlarmKind::Input],
                ..AlarmStrategy::default()
            },
        },
        0,
    );
    let shutdown = peercam_net::Shutdown::new();
    let clock = Arc::new(crate::clock::MediaClock::new(0));
    sources::spawn_gpio(a.clone(), c, clock, shutdown.clone());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(a.state().active.is_empty(), "closed: at rest");
    // The contact opens.
    std::fs::write(&line, "0\n").unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    shutdown.trigger();
    let state = a.state();
    assert_eq!(state.active.len(), 1, "{state:?}");
    assert_eq!(state.active[0].input, Some(4));
    assert!(
        state
            .inputs
            .iter()
            .any(|i| i.input == 4 && i.active && !i.simulated)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_pulled_camera_without_frames_is_video_loss() {
    // A wrapped camera that does not answer: its pull gives no frame.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = url::Url::parse(&format!("rtsp://{}/live", dead.local_addr().unwrap())).unwrap();
    drop(dead);
    let c = control();
    let hub = crate::media::MediaHub::with_source(
        7,
        crate::media::Source::Rtsp(crate::media::pull::PullConfig { url, udp: false }),
    );
    let a = Arc::new(alarms(&c, &[AlarmKind::VideoLoss]));
    let shutdown = peercam_net::Shutdown::new();
    let clock = Arc::new(crate::clock::MediaClock::new(0));
    let started = Instant::now();
    sources::spawn_video_watch(a.clone(), hub, clock, shutdown.clone());
    let deadline = started + Duration::from_secs(8);
    while a.state().active.is_empty() {
        assert!(Instant::now() < deadline, "no video loss raised");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.trigger();
    assert!(started.elapsed() >= sources::VIDEO_LOSS);
    let state = a.state();
    assert_eq!(state.active.len(), 1);
    assert_eq!(state.active[0].kind, AlarmKind::VideoLoss);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_encoded_source_key_frames_raise_motion() {
    // The watch of a file or pulled source, fed here by an encoder of the scene (its key
    // frames carry the burnt-in clock at the top: the zone leaves it out).
    let c = control();
    let mut p = c.params();
    p.video.gop_s = 1;
    c.set_params(0, p, Instant::now()).unwrap();
    c.set_scene_motion(false);
    let hub = crate::media::MediaHub::with_control(7, crate::media::Source::Synthetic, c.clone());
    let a = Arc::new(Alarms::open(None, "b1", c.clone(), Wiring::default()).unwrap());
    a.execute(
        DeviceCommand::SetAlarmStrategy {
            strategy: AlarmStrategy {
                armed: true,
                sources: vec![AlarmKind::Motion],
                zones: vec![peercam_alarm::Zone {
                    x: 0,
                    y: 250,
                    w: 1000,
                    h: 750,
                }],
                ..AlarmStrategy::default()
            },
        },
        0,
    );
    let shutdown = peercam_net::Shutdown::new();
    let clock = Arc::new(crate::clock::MediaClock::new(0));
    sources::spawn_video_watch(a.clone(), hub, clock, shutdown.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        a.state().active.is_empty(),
        "static: {:?}",
        a.state().active
    );
    c.set_scene_motion(true);
    let on = Instant::now();
    while a.state().active.is_empty() {
        assert!(
            on.elapsed() < Duration::from_secs(8),
            "no motion from key frames"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.trigger();
    let alarm = &a.state().active[0];
    assert_eq!((alarm.kind, alarm.zone), (AlarmKind::Motion, Some(0)));
}
