//! Recording and playback on an NVR (H.626.4 8.7.2, 6.1.7), end to end over real sockets:
//! attach (with LAN discovery), strategy, recording, record list, trick-play playback
//! checked with the synthetic camera's SEI frame counters, MP4 export checked with
//! ffprobe, and the refusals; a pulled camera's own audio in playback (RTSP and WebRTC, 1x
//! only) and in the export, decoded by ffmpeg.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use crate::support::source_camera;

use std::time::Duration;

use peercam_base::{Scope, ScopeSet};
use peercam_cu::Client;
use peercam_cu::playback::{Playback, Seen};
use peercam_media::mp4::Movie;
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::ps::DeviceKind;
use peercam_signal::record::{Mode, RecordingList, Strategy};
use peercam_test::{Cluster, new_identity};

struct World {
    c: Cluster,
    owner: Client,
    pu: DeviceIdentity,
    nvr: DeviceIdentity,
    _pu: (peercam_pu::Running, peercam_net::Shutdown),
    nvr_run: (peercam_nvr::Running, peercam_net::Shutdown),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn world(phone: &str) -> World {
    world_with(phone, None).await
}

/// A world whose camera re-serves the existing RTSP camera at `source`, if given.
async fn world_with(phone: &str, source: Option<String>) -> World {
    let c = Cluster::start(1).await.unwrap();
    let pu = c.provision(1).await.unwrap().remove(0);
    let nvr = new_identity(DeviceKind::Nvr);
    c.provision_these(std::slice::from_ref(&nvr)).await.unwrap();
    let pulled = source.is_some();
    let pu_run = match source {
        None => c.start_pu_online(&pu, 0).await.unwrap(),
        Some(url) => {
            let r = c
                .start_pu_with(&pu, 0, |cfg| cfg.source_rtsp = Some(url))
                .await
                .unwrap();
            c.wait_online(&pu.device_id, true, Duration::from_secs(10))
                .await
                .unwrap();
            r
        }
    };
    let nvr_run = c.start_nvr_with(&nvr, 0, |_| {}).await.unwrap();
    c.wait_online(&nvr.device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner(phone).await.unwrap();
    c.bind(&owner, &pu).await.unwrap();
    c.bind(&owner, &nvr).await.unwrap();
    // CIF keeps the camera's encoder cheap on the 2-core test machines.
    if !pulled {
        owner
            .set_params(pu.device_id.as_str(), |p| {
                p.video.max_resolution = peercam_signal::control::Resolution::Cif;
            })
            .await
            .unwrap();
    }
    World {
        c,
        owner,
        pu,
        nvr,
        _pu: pu_run,
        nvr_run,
    }
}

fn continuous() -> Strategy {
    Strategy {
        mode: Mode::Continuous,
        ..Strategy::default()
    }
}

/// Waits until the record list holds at least `ms` of recording.
async fn recorded(w: &World, ms: u64) -> RecordingList {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let now = now_ms();
        let list = w
            .owner
            .recordings(
                w.pu.device_id.as_str(),
                Some(w.nvr.device_id.as_str()),
                now - 600_000,
                now + 60_000,
            )
            .await
            .unwrap();
        let total: u64 = list.spans.iter().map(|s| s.end_ms - s.start_ms).sum();
        if total >= ms {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {total} ms recorded: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn frames(p: &mut Playback, n: usize) -> Vec<Seen> {
    peercam_test::playback::frames(p, n, Duration::from_secs(5)).await
}

use peercam_test::playback::counters;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_nvr_records_lists_plays_and_exports() {
    let w = world("+15550720001").await;
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());

    // 8.7.2.1 steps 1-8: attach; the NVR finds the camera on its LAN (Np).
    let attached = w.owner.attach_camera(nvr, pu).await.unwrap();
    assert!(
        attached.lan.is_some(),
        "the NVR found the camera on its LAN: {attached:?}"
    );

    // Steps 9-15: the strategy is saved and applied.
    let state = w
        .owner
        .set_recording(pu, Some(nvr), &continuous())
        .await
        .unwrap();
    assert_eq!(state.strategy, continuous());

    // Steps 16-18 and the record list (8.7.2.2 steps 1-6).
    let list = recorded(&w, 9000).await;
    let span = list.spans[0];
    w.owner
        .record_event(pu, "manual", "test mark")
        .await
        .unwrap();
    let now = now_ms();
    let list2 = w
        .owner
        .recordings(pu, Some(nvr), now - 600_000, now + 60_000)
        .await
        .unwrap();
    assert!(
        list2
            .events
            .iter()
            .any(|e| e.kind == "manual" && e.detail == "test mark"),
        "{:?}",
        list2.events
    );
    let state = w.owner.recording_state(pu, Some(nvr)).await.unwrap();
    assert!(state.recording && state.used_bytes > 0, "{state:?}");

    // Export (steps 7-10): 6 s from one second in, cut at a key frame.
    let (from, to) = (span.start_ms + 1000, span.start_ms + 7000);
    let ex = w.owner.export_url(pu, Some(nvr), from, to).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mp4");
    let n = w
        .owner
        .fetch_export(&ex.url, &file, |_, _| {})
        .await
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(n, bytes.len() as u64);
    let movie = Movie::parse(&bytes).unwrap();
    assert!(
        movie.audio().is_some(),
        "the camera's G.711 audio is in the export"
    );
    let video = movie.video().unwrap();
    let count = video.sample_count();
    assert!(
        (150..=205).contains(&count),
        "{count} frames for 6 s at 25 fps"
    );
    // Every frame is there: the SEI counters run without a gap.
    let tags: Vec<u64> = video
        .samples()
        .map(|s| {
            let data = s.data(&bytes).unwrap();
            let nals = peercam_media::annexb::split_avcc(data, 4).unwrap();
            nals.iter()
                .find_map(|n| peercam_media::sei::parse_sei(n))
                .unwrap()
                .frame
        })
        .collect();
    assert!(tags.windows(2).all(|p| p[1] == p[0] + 1), "gap in {tags:?}");
    // ffprobe agrees on frames and duration.
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut it = text.split(',');
    let duration: f64 = it.next().unwrap().parse().unwrap();
    let read: u32 = it.next().unwrap().parse().unwrap();
    assert_eq!(read, count, "ffprobe decoded every frame ({text})");
    assert!(
        (duration - f64::from(count) / 25.0).abs() < 0.1,
        "duration {duration} ({text})"
    );

    // A third-party player opens a playback URL as it is (ffprobe: RTSP over TCP, npt range).
    let url = w
        .owner
        .playback_url(pu, Some(nvr), span.start_ms)
        .await
        .unwrap()
        .url;
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-read_intervals",
            "%+2",
            "-show_entries",
            "stream=codec_name,nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "ffprobe playback: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets: u32 = text.rsplit(',').next().unwrap().parse().unwrap();
    assert!(
        text.starts_with("h264") && packets >= 25,
        "ffprobe read {text}"
    );

    // Playback (Nc/Nc'): 1x from span + 3 s.
    let start = span.start_ms + 3000;
    let url = w
        .owner
        .playback_url(pu, Some(nvr), start)
        .await
        .unwrap()
        .url;
    let mut p = Playback::open(&url).await.unwrap();
    p.play(None, None).await.unwrap();
    let normal = frames(&mut p, 30).await;
    let c = counters(&normal);
    assert!(c.windows(2).all(|x| x[1] == x[0] + 1), "1x: {c:?}");
    // The seek landed within one GOP (2 s) before the requested time.
    let first_ms = normal[0].tag.as_ref().unwrap().capture_unix_us / 1000;
    assert!(
        first_ms <= start + 40 && start - first_ms <= 2040,
        "started {first_ms}, asked {start}"
    );

    // 4x: the key frames only, in order.
    p.play(Some(span.start_ms), Some("4")).await.unwrap();
    let fast = frames(&mut p, 3).await;
    let c = counters(&fast);
    assert!(fast.iter().all(|f| f.key), "4x sends key frames");
    assert!(c.windows(2).all(|x| x[1] > x[0]), "4x ascending: {c:?}");

    // Reverse: descending counters.
    p.play(Some(span.start_ms + 8000), Some("-1"))
        .await
        .unwrap();
    let rev = frames(&mut p, 3).await;
    let c = counters(&rev);
    assert!(
        c.windows(2).all(|x| x[1] < x[0]),
        "reverse descending: {c:?}"
    );

    // Slow motion: every frame, half speed.
    p.play(Some(start), Some("0.5")).await.unwrap();
    let slow = frames(&mut p, 12).await;
    let c = counters(&slow);
    assert!(c.windows(2).all(|x| x[1] == x[0] + 1), "0.5x: {c:?}");
    let gap = slow[11].arrived.duration_since(slow[1].arrived) / 10;
    assert!(
        gap >= Duration::from_millis(60),
        "0.5x paces frames 80 ms apart, got {gap:?}"
    );

    // Pause, then frame steps: exactly one frame each.
    p.pause().await.unwrap();
    let a = p.step(true).await.unwrap();
    assert!(
        p.next_frame(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    let b = p.step(true).await.unwrap();
    assert!(
        p.next_frame(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    let (ca, cb) = (a.tag.unwrap().frame, b.tag.unwrap().frame);
    assert_eq!(cb, ca + 1, "a step forward shows the next frame");
    // Back: the previous frame itself, decoded on the NVR and sent re-encoded as an IDR.
    let back = p.step(false).await.unwrap();
    assert!(
        back.key,
        "a P frame cannot be shown alone: re-encoded as an IDR"
    );
    assert_eq!(
        back.tag.unwrap().frame,
        ca,
        "a step back shows the previous frame"
    );
    assert!(
        p.next_frame(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    let again = p.step(true).await.unwrap();
    assert_eq!(again.tag.unwrap().frame, cb, "and forward again");
    assert!(
        p.next_frame(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    p.teardown().await.unwrap();
    drop(w.nvr_run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_refusals() {
    let w = world("+15550720002").await;
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    // A camera of someone else cannot be attached; an NVR cannot be attached to itself.
    let stranger = w.c.owner("+15550720003").await.unwrap();
    assert_eq!(
        stranger.attach_camera(nvr, pu).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        w.owner.attach_camera(nvr, nvr).await.unwrap_err().status(),
        Some(400)
    );
    w.owner.attach_camera(nvr, pu).await.unwrap();
    // Bad strategies are refused with the field named.
    let bad = Strategy {
        mode: Mode::Periodic {
            every_s: 10,
            record_s: 5,
        },
        ..Strategy::default()
    };
    let e = w
        .owner
        .set_recording(pu, Some(nvr), &bad)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(422));
    assert!(e.to_string().contains("strategy.mode.every_s"), "{e}");
    w.owner
        .set_recording(pu, Some(nvr), &continuous())
        .await
        .unwrap();
    let list = recorded(&w, 3000).await;
    let span = list.spans[0];

    // A sub-account with live only: no list, no playback, no export.
    let sub = w.c.sub(&w.owner, "viewer").await.unwrap();
    w.owner
        .share(pu, "viewer", ScopeSet::from_iter([Scope::Live]))
        .await
        .unwrap();
    let now = now_ms();
    assert_eq!(
        sub.recordings(pu, None, now - 60_000, now)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    assert_eq!(
        sub.playback_url(pu, None, span.start_ms)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    assert_eq!(
        sub.export_url(pu, None, span.start_ms, span.end_ms)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    // A stranger does not even see the camera.
    assert_eq!(
        stranger
            .recordings(pu, None, now - 60_000, now)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );

    // At the NVR: a forged token, a replayed one, and a token for another path.
    let url = w
        .owner
        .playback_url(pu, Some(nvr), span.start_ms)
        .await
        .unwrap()
        .url;
    let forged = format!("{}x", url);
    assert!(Playback::open(&forged).await.is_err());
    let p = Playback::open(&url).await.unwrap();
    p.teardown().await.unwrap();
    let replay = Playback::open(&url).await.unwrap_err();
    assert!(replay.to_string().contains("401"), "{replay}");
    let ex = w
        .owner
        .export_url(pu, Some(nvr), span.start_ms, span.end_ms)
        .await
        .unwrap();
    let other = ex.url.replace(pu, nvr);
    let dir = tempfile::tempdir().unwrap();
    let e = w
        .owner
        .fetch_export(&other, &dir.path().join("x.mp4"), |_, _| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
    // The sub-account given playback can list; unsharing takes it away again.
    w.owner
        .share(
            pu,
            "viewer",
            ScopeSet::from_iter([Scope::Live, Scope::Playback]),
        )
        .await
        .unwrap();
    sub.recordings(pu, None, now - 60_000, now).await.unwrap();
    // Detaching stops the NVR's stream requests and (with wipe) deletes the recordings.
    w.owner.detach_camera(nvr, pu, true).await.unwrap();
    assert_eq!(
        w.owner
            .recordings(pu, Some(nvr), now - 60_000, now)
            .await
            .unwrap_err()
            .status(),
        Some(409)
    );
    let used = w.nvr_run.0.store.usage(Some(pu)).await.unwrap();
    assert_eq!(used, 0, "wiped");
}

/// Alarm strategy: nothing is written until the alarm; then the pre-roll (kept in memory,
/// from the GOP that covers it) and the post-roll are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_alarm_strategy_records_pre_and_post_roll() {
    let w = world("+15550720004").await;
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    w.owner.attach_camera(nvr, pu).await.unwrap();
    let alarm = Strategy {
        mode: Mode::Alarm {
            pre_s: 3,
            post_s: 3,
        },
        ..Strategy::default()
    };
    w.owner.set_recording(pu, Some(nvr), &alarm).await.unwrap();
    let t0 = now_ms();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let quiet = w
        .owner
        .recordings(pu, Some(nvr), t0 - 60_000, now_ms() + 1000)
        .await
        .unwrap();
    assert!(
        quiet.spans.is_empty(),
        "nothing before the alarm: {quiet:?}"
    );
    let at = now_ms();
    w.owner
        .record_event(pu, "alarm", "door opened")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let list = w
        .owner
        .recordings(pu, Some(nvr), t0 - 60_000, now_ms() + 1000)
        .await
        .unwrap();
    assert_eq!(list.spans.len(), 1, "{list:?}");
    let s = list.spans[0];
    // Pre-roll: at least 3 s before the alarm, at most one GOP (2 s) more.
    assert!(
        s.start_ms <= at - 2900 && s.start_ms >= at - 5200,
        "start {} vs alarm {at}",
        s.start_ms
    );
    // Post-roll: until 3 s after the alarm, to the next segment cut (2 s segments).
    assert!(
        s.end_ms >= at + 2900 && s.end_ms <= at + 6000,
        "end {} vs alarm {at}",
        s.end_ms
    );
    assert!(
        list.events
            .iter()
            .any(|e| e.kind == "alarm" && e.detail == "door opened")
    );
    let state = w.owner.recording_state(pu, Some(nvr)).await.unwrap();
    assert!(!state.recording, "post-roll over: {state:?}");
}

/// H.626.4 8.8 step 8 with the real camera and NVR: the camera's own alarm (its input
/// tripped) makes the CMU's linkage mark the NVR, whose alarm strategy then keeps the
/// pre-roll from before the alarm and the post-roll after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_8_camera_alarm_records_pre_roll_on_the_nvr() {
    use peercam_signal::alarm::{AlarmKind, AlarmStrategy, Linkage};
    use peercam_signal::control::AlarmInput;

    let w = world("+15550720009").await;
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    w.owner.attach_camera(nvr, pu).await.unwrap();
    let alarm_mode = Strategy {
        mode: Mode::Alarm {
            pre_s: 3,
            post_s: 3,
        },
        ..Strategy::default()
    };
    w.owner
        .set_recording(pu, Some(nvr), &alarm_mode)
        .await
        .unwrap();
    w.owner
        .set_params(pu, |p| {
            p.alarm_inputs = vec![AlarmInput {
                input: 1,
                enabled: true,
                normally_open: true,
            }];
        })
        .await
        .unwrap();
    let strategy = AlarmStrategy {
        armed: true,
        sources: vec![AlarmKind::Input],
        cooldown_s: 0,
        linkage: Linkage {
            record: true,
            ..Linkage::default()
        },
        ..AlarmStrategy::default()
    };
    assert!(
        w.owner
            .set_alarm_strategy(pu, &strategy)
            .await
            .unwrap()
            .applied
    );
    // Long enough for the NVR to hold a pre-roll in memory.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let at = now_ms();
    w.owner.trip_input(pu, 1, true).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let list = w
        .owner
        .recordings(pu, Some(nvr), at - 60_000, now_ms() + 1000)
        .await
        .unwrap();
    assert_eq!(list.spans.len(), 1, "{list:?}");
    let s = list.spans[0];
    // The pre-roll reaches 3 s before the trip (one 2 s GOP more at most, plus the way up).
    assert!(
        s.start_ms <= at - 2500 && s.start_ms >= at - 5500,
        "start {} vs trip {at}",
        s.start_ms
    );
    assert!(s.end_ms >= at + 2900, "end {} vs trip {at}", s.end_ms);
    assert!(
        list.events
            .iter()
            .any(|e| e.kind == "alarm" && e.detail.starts_with("input: ")),
        "{:?}",
        list.events
    );
}

/// The SEI frame counters of access units received over WebRTC, in arrival order.
fn webrtc_counters(frames: &[(std::time::Instant, Vec<u8>)]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|(_, au)| {
            peercam_media::annexb::split(au).find_map(peercam_media::sei::parse_sei)
        })
        .map(|t| t.frame)
        .collect()
}

/// The last playback status the recorder sent on the data channel.
fn last_status(v: &peercam_test::webrtc::Viewer) -> Option<peercam_signal::record::PlaybackStatus> {
    v.texts
        .iter()
        .rev()
        .find_map(|t| serde_json::from_str(t).ok())
}

/// 8.7.2.2 for browsers: recordings play over WebRTC from the NVR, steered on the data
/// channel: normal speed sends every frame, 4x and -4x move the recorded time that fast
/// (key frames only), pause stops the frames, and frame steps show exactly the next and the
/// previous frame (the latter re-encoded, its SEI tag kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_webrtc_playback_with_trick_modes_and_frame_steps() {
    use peercam_test::webrtc::Viewer;
    let w = world("+15550720031").await;
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    w.owner.attach_camera(nvr, pu).await.unwrap();
    w.owner
        .set_recording(pu, Some(nvr), &continuous())
        .await
        .unwrap();
    let list = recorded(&w, 12_000).await;
    let span = list.spans[0];
    let (mut v, offer) = Viewer::offer(true).await;
    let answer = w
        .owner
        .playback_webrtc(pu, Some(nvr), span.start_ms + 4000, offer)
        .await
        .unwrap();
    v.accept(&answer.answer).unwrap();
    // Normal speed: every frame, in order.
    v.run_until(20, Duration::from_secs(15)).await;
    let c = webrtc_counters(&v.frames);
    assert!(c.len() >= 20, "{c:?}");
    assert!(c.windows(2).all(|p| p[1] == p[0] + 1), "gap at 1x: {c:?}");
    assert!(v.channel_open());
    // 4x: the recorded time runs four times as fast as the wall clock.
    assert!(v.send_text(r#"{"op":"play","scale":"4"}"#));
    v.run_while(Duration::from_millis(600), |_| false).await;
    let (p0, t0) = (last_status(&v).unwrap().pos_ms, std::time::Instant::now());
    let n0 = v.frames.len();
    v.run_while(Duration::from_secs(2), |_| false).await;
    let s = last_status(&v).unwrap();
    let (dp, dt) = (s.pos_ms - p0, t0.elapsed().as_millis() as u64);
    assert_eq!(s.scale, "4");
    assert!(dp * 10 >= dt * 30, "4x moved {dp} ms in {dt} ms");
    let fast = webrtc_counters(&v.frames[n0..]);
    assert!(fast.windows(2).all(|p| p[1] > p[0]), "{fast:?}");
    // -4x: backwards as fast.
    assert!(v.send_text(r#"{"op":"play","scale":"-4"}"#));
    v.run_while(Duration::from_millis(600), |_| false).await;
    let (p1, t1) = (last_status(&v).unwrap().pos_ms, std::time::Instant::now());
    let n1 = v.frames.len();
    v.run_while(Duration::from_secs(2), |_| false).await;
    let s = last_status(&v).unwrap();
    let (dp, dt) = (p1.saturating_sub(s.pos_ms), t1.elapsed().as_millis() as u64);
    assert!(dp * 10 >= dt * 30, "-4x moved back {dp} ms in {dt} ms");
    let back = webrtc_counters(&v.frames[n1..]);
    assert!(
        back.len() >= 2 && back.windows(2).all(|p| p[1] < p[0]),
        "{back:?}"
    );
    // Pause: the frames stop.
    assert!(v.send_text(r#"{"op":"pause"}"#));
    v.run_while(Duration::from_millis(500), |_| false).await;
    let n2 = v.frames.len();
    v.run_while(Duration::from_secs(1), |_| false).await;
    assert_eq!(v.frames.len(), n2, "frames while paused");
    assert_eq!(last_status(&v).unwrap().state, "paused");
    let shown = *webrtc_counters(&v.frames).last().unwrap();
    // Frame steps: the next frame, then back to the one before it (re-encoded).
    assert!(v.send_text(r#"{"op":"step","forward":true}"#));
    v.run_until(n2 + 1, Duration::from_secs(5)).await;
    v.run_while(Duration::from_millis(300), |_| false).await;
    assert_eq!(v.frames.len(), n2 + 1, "one frame per step");
    assert!(v.send_text(r#"{"op":"step","forward":false}"#));
    v.run_until(n2 + 2, Duration::from_secs(5)).await;
    let steps = webrtc_counters(&v.frames[n2..]);
    assert_eq!(steps, vec![shown + 1, shown], "steps from {shown}");
    // The step back is a fresh IDR: it decodes alone.
    let (decoded, _) = peercam_test::webrtc::decode(&v.frames[n2 + 1..]);
    assert_eq!(decoded, 1);
    // Export over the data channel: 4 s as an MP4 that ffprobe reads.
    let ask = format!(
        r#"{{"op":"export","from_ms":{},"to_ms":{}}}"#,
        span.start_ms + 1000,
        span.start_ms + 5000
    );
    assert!(v.send_text(&ask));
    let done = v
        .run_while(Duration::from_secs(20), |v| {
            v.texts
                .iter()
                .any(|t| t.contains(r#""export":"done""#) || t.contains(r#""export":"error""#))
        })
        .await;
    assert!(
        done,
        "no export: {:?}",
        &v.texts[v.texts.len().saturating_sub(3)..]
    );
    let start: peercam_signal::record::ExportNotice = v
        .texts
        .iter()
        .find_map(|t| {
            serde_json::from_str(t)
                .ok()
                .filter(|n: &peercam_signal::record::ExportNotice| n.export == "start")
        })
        .unwrap();
    let file: Vec<u8> = v.binaries.concat();
    assert_eq!(Some(file.len() as u64), start.bytes);
    assert!(start.name.as_deref().unwrap().ends_with(".mp4"));
    let movie = Movie::parse(&file).unwrap();
    let count = movie.video().unwrap().sample_count();
    assert!((90..=130).contains(&count), "{count} frames for 4 s");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.mp4");
    std::fs::write(&path, &file).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probed: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(probed, count as u64);
    // A refusal: a bad offer never reaches the recorder.
    let e = w
        .owner
        .playback_webrtc(pu, Some(nvr), span.start_ms, "nonsense".into())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("bad_offer"), "{e}");
    w.c.stop().await;
}

/// The pulled camera's tone: well above the synthetic camera's 440 Hz and its 1 kHz pips.
const TONE: u32 = 1300;

/// Checks that `pcm` (8 kHz) is the camera's tone, not silence and not another sound.
fn assert_tone(pcm: &[i16], what: &str) {
    use peercam_test::tone::{dominant_hz, rms};
    assert!(pcm.len() >= 8000 * 2, "{what}: {} samples", pcm.len());
    // The decoder's first half second may be its start-up.
    let tail = &pcm[4000..];
    let level = rms(tail);
    assert!(level > 1000.0, "{what}: no tone (RMS {level:.0})");
    let hz = dominant_hz(tail, 8000);
    assert!(
        hz.abs_diff(TONE) <= 20,
        "{what}: {hz} Hz, the camera sends {TONE} Hz"
    );
}

/// Exports 6 s of the NVR's first recorded span (from 1 s in) to an MP4 file in a new
/// temporary directory, which lives as long as the answer.
async fn six_seconds_exported(w: &World) -> (tempfile::TempDir, std::path::PathBuf) {
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    let span = recorded(w, 9000).await.spans[0];
    let ex = w
        .owner
        .export_url(pu, Some(nvr), span.start_ms + 1000, span.start_ms + 7000)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mp4");
    w.owner
        .fetch_export(&ex.url, &file, |_, _| {})
        .await
        .unwrap();
    (dir, file)
}

/// A world recording a GStreamer camera that sends a 1300 Hz tone in `codec`, with at
/// least 9 s recorded; `None` when the peers are missing (and not under `CI=true`).
async fn pulled_world(phone: &str, codec: &str) -> Option<(World, tokio::process::Child)> {
    use source_camera::{GST_RTSP_SERVER, camera, have_ffmpeg, have_gst_rtsp_server, need};
    if !need(have_gst_rtsp_server(), GST_RTSP_SERVER) || !need(have_ffmpeg(), "ffmpeg") {
        return None;
    }
    let (cam, port) = camera(codec, TONE).await;
    let w = world_with(phone, Some(format!("rtsp://127.0.0.1:{port}/cam"))).await;
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    w.owner.attach_camera(nvr, pu).await.unwrap();
    w.owner
        .set_recording(pu, Some(nvr), &continuous())
        .await
        .unwrap();
    recorded(&w, 9000).await;
    Some((w, cam))
}

/// H.626.4 8.7.2.2 and 6.1.7 with a pulled camera's own audio (issue 16): RTSP playback
/// offers the recorded audio and ffmpeg hears the camera's 1300 Hz tone in it; at 4x, in
/// reverse and in frame steps no audio packet comes; the export's audio track decodes to
/// the same tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_playback_and_export_keep_the_cameras_audio() {
    let Some((w, _cam)) = pulled_world("+15550720041", "pcma").await else {
        return;
    };
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    let span = recorded(&w, 9000).await.spans[0];

    // A third-party player (ffmpeg) decodes the playback's audio.
    let url = w
        .owner
        .playback_url(pu, Some(nvr), span.start_ms + 1000)
        .await
        .unwrap()
        .url;
    let (pcm, info) = source_camera::listen(&url, 4).await;
    assert!(info.contains("Audio: pcm_mulaw"), "{info}");
    assert_tone(&pcm, "RTSP playback at 1x");

    // 1x carries audio; 4x, reverse and steps do not.
    let url = w
        .owner
        .playback_url(pu, Some(nvr), span.start_ms + 1000)
        .await
        .unwrap()
        .url;
    let mut p = Playback::open_with_audio(&url).await.unwrap();
    p.play(None, None).await.unwrap();
    frames(&mut p, 50).await;
    // G.711: 8000 bytes a second (the camera packs its audio in frames of its choice).
    let heard: usize = p.audio().iter().map(|a| a.payload.len()).sum();
    assert!(heard >= 12_000, "{heard} bytes of audio in 2 s at 1x");
    assert!(p.audio().iter().all(|a| a.payload_type == 0));
    p.play(Some(span.start_ms), Some("4")).await.unwrap();
    frames(&mut p, 3).await;
    assert_eq!(p.audio().len(), 0, "audio at 4x");
    p.play(Some(span.start_ms + 8000), Some("-1"))
        .await
        .unwrap();
    frames(&mut p, 3).await;
    assert_eq!(p.audio().len(), 0, "audio in reverse");
    p.pause().await.unwrap();
    p.step(true).await.unwrap();
    let _ = p.next_frame(Duration::from_millis(300)).await.unwrap();
    assert_eq!(p.audio().len(), 0, "audio in a frame step");
    // And back to 1x: the audio again.
    p.play(Some(span.start_ms + 2000), Some("1")).await.unwrap();
    frames(&mut p, 50).await;
    let heard: usize = p.audio().iter().map(|a| a.payload.len()).sum();
    assert!(heard >= 12_000, "{heard} bytes of audio in 2 s back at 1x");
    p.teardown().await.unwrap();

    // The export keeps the audio: ffmpeg decodes the tone from the MP4.
    let ex = w
        .owner
        .export_url(pu, Some(nvr), span.start_ms + 1000, span.start_ms + 7000)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mp4");
    w.owner
        .fetch_export(&ex.url, &file, |_, _| {})
        .await
        .unwrap();
    let (pcm, info) = source_camera::decode_file(&file);
    assert!(info.contains("Audio: pcm_mulaw"), "{info}");
    assert!(
        pcm.len() >= 8000 * 5,
        "{} samples in a 6 s export",
        pcm.len()
    );
    assert_tone(&pcm, "export");
    w.c.stop().await;
}

/// WebRTC playback of a pulled camera's recording (issue 16): the browser gets the recorded
/// audio at 1x (the camera's 1300 Hz tone) and none at 4x.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_webrtc_playback_carries_audio_at_1x_only() {
    use peercam_test::webrtc::Viewer;
    let Some((w, _cam)) = pulled_world("+15550720042", "pcma").await else {
        return;
    };
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    let span = recorded(&w, 9000).await.spans[0];
    let (mut v, offer) = Viewer::offer(true).await;
    let answer = w
        .owner
        .playback_webrtc(pu, Some(nvr), span.start_ms + 1000, offer)
        .await
        .unwrap();
    v.accept(&answer.answer).unwrap();
    v.run_until(75, Duration::from_secs(15)).await;
    let heard: usize = v.audio_payloads.iter().map(|(_, p)| p.len()).sum();
    assert!(heard >= 16_000, "{heard} bytes of audio in 3 s at 1x");
    let mut pcm = Vec::new();
    for (_, p) in &v.audio_payloads {
        peercam_rtp::g711::Law::MuLaw.decode_into(p, &mut pcm);
    }
    assert_tone(&pcm, "WebRTC playback at 1x");
    // 4x: pictures, no sound.
    assert!(v.send_text(r#"{"op":"play","scale":"4"}"#));
    v.run_while(Duration::from_millis(600), |_| false).await;
    let (a0, f0) = (v.audio_payloads.len(), v.frames.len());
    v.run_while(Duration::from_secs(2), |_| false).await;
    assert!(v.frames.len() > f0, "no pictures at 4x");
    assert_eq!(v.audio_payloads.len(), a0, "audio at 4x");
    w.c.stop().await;
}

/// H.626.4 6.1.7 and 6.3.2 (issue 16): cameras whose audio is G.722 or AAC are recorded
/// with their audio (G.722 as G.711, AAC as it came): the NVR's export decodes to the
/// camera's tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_export_keeps_g722_and_aac_cameras_audio() {
    for (codec, phone, stored) in [
        ("aac", "+15550720043", "Audio: aac (LC)"),
        ("g722", "+15550720044", "Audio: pcm_mulaw"),
    ] {
        let Some((w, _cam)) = pulled_world(phone, codec).await else {
            return;
        };
        let (_dir, file) = six_seconds_exported(&w).await;
        let (pcm, info) = source_camera::decode_file(&file);
        assert!(info.contains(stored), "{codec}: {info}");
        assert_tone(&pcm, &format!("export of a {codec} camera"));
        w.c.stop().await;
    }
}

/// Issue 16 (H.626.4 6.1.8, 6.3.2, 6.1.7): a pulled AAC camera (16 kHz mono, 1300 Hz) is
/// recorded as AAC. The MP4 export has an `aac` track that ffprobe reads at the camera's
/// rate and channels and ffmpeg decodes to the tone; RTSP playback at 1x carries the AAC
/// track (ffmpeg decodes the tone from it); WebRTC playback of it (browsers take G.711,
/// not AAC) carries the recording decoded to G.711 mu-law with the same tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_nvr_keeps_the_cameras_aac() {
    let Some((w, _cam)) = pulled_world("+15550720045", "aac").await else {
        return;
    };
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    let span = recorded(&w, 9000).await.spans[0];
    let (_dir, file) = six_seconds_exported(&w).await;
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a", "-show_entries"])
        .args(["stream=codec_name,sample_rate,channels", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&probe.stdout);
    assert_eq!(
        streams.trim(),
        "aac,16000,1",
        "the export's audio: {streams}"
    );
    let (pcm, info) = source_camera::decode_file(&file);
    assert!(info.contains("Audio: aac (LC)"), "{info}");
    assert!(
        pcm.len() >= 8000 * 5,
        "{} samples in a 6 s export",
        pcm.len()
    );
    assert_tone(&pcm, "export of the AAC recording");

    // RTSP playback at 1x: the AAC track, decoded by a third-party player.
    let url = w
        .owner
        .playback_url(pu, Some(nvr), span.start_ms + 1000)
        .await
        .unwrap()
        .url;
    let (pcm, info) = source_camera::listen(&url, 4).await;
    assert!(info.contains("Audio: aac (LC), 16000 Hz, mono"), "{info}");
    assert_tone(&pcm, "RTSP playback of the AAC recording");

    // WebRTC playback at 1x: decoded to G.711 mu-law.
    use peercam_test::webrtc::Viewer;
    let (mut v, offer) = Viewer::offer(true).await;
    let answer = w
        .owner
        .playback_webrtc(pu, Some(nvr), span.start_ms + 1000, offer)
        .await
        .unwrap();
    v.accept(&answer.answer).unwrap();
    v.run_until(75, Duration::from_secs(15)).await;
    let mut pcm = Vec::new();
    for (_, p) in &v.audio_payloads {
        peercam_rtp::g711::Law::MuLaw.decode_into(p, &mut pcm);
    }
    assert_tone(&pcm, "WebRTC playback of the AAC recording");
    w.c.stop().await;
}

/// ffprobe's view of each video frame of an MP4 file: its packet's times, size and flags.
fn probe_frames(file: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=pts,dts,size,flags", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Sends `GET` for an export URL on a plain socket; returns the stream after the answer's
/// head, and the head.
async fn get_export(url: &str) -> (tokio::net::TcpStream, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "no answer head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    (tcp, head, buf[end..].to_vec())
}

/// H.626.4 6.1.7 and 8.7.2.2 steps 7-10 without copying (issue 20): the NVR's HTTP export
/// is laid out over its segment files. Its `moov` comes first, so a client holding only the
/// first bytes already knows every frame while the rest is still to be read, and the NVR
/// writes no intermediate file. A cut inside a GOP is as exact as the copying writer's:
/// ffprobe sees the same frames (times, key flags, sizes). A segment file gone missing
/// fails the export with an error instead of a corrupt file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_2_export_streams_from_the_segment_files_frame_exact() {
    use tokio::io::AsyncReadExt as _;
    if !source_camera::need(source_camera::have_ffmpeg(), "ffmpeg") {
        return;
    }
    let w = world("+15550720091").await;
    let (pu, nvr) = (w.pu.device_id.as_str(), w.nvr.device_id.as_str());
    w.owner.attach_camera(nvr, pu).await.unwrap();
    w.owner
        .set_recording(pu, Some(nvr), &continuous())
        .await
        .unwrap();
    let span = recorded(&w, 9000).await.spans[0];
    let store = w.nvr_run.0.store.clone();
    let scratch = store.config().root.join("exports");
    // Inside a GOP at both ends.
    let (from, to) = (span.start_ms + 1530, span.start_ms + 6270);
    let ex = w.owner.export_url(pu, Some(nvr), from, to).await.unwrap();
    let (mut tcp, head, mut body) = get_export(&ex.url).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The first bytes: `ftyp` then the whole `moov`, before the media is read.
    let mut pos = 0usize;
    let moov = loop {
        if let Ok(h) = peercam_media::mp4::BoxHeader::parse(&body[pos..]) {
            let size = h.size.unwrap() as usize;
            if &h.kind.0 == b"moov" && body.len() >= pos + size {
                break pos + usize::from(h.header_len)..pos + size;
            }
            if &h.kind.0 != b"moov" && body.len() >= pos + size {
                pos += size;
                continue;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        body.extend_from_slice(&chunk[..n]);
    };
    assert!(moov.end < len / 4, "moov is a small head of the file");
    let early = Movie::parse_moov(&body[moov]).unwrap();
    let frames = early.video().unwrap().sample_count();
    assert!(frames > 100, "{frames} frames known from the head");
    let made: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.filter_map(Result::ok).collect())
        .unwrap_or_default();
    assert!(made.is_empty(), "no intermediate file: {made:?}");
    tcp.read_to_end(&mut body).await.unwrap();
    assert_eq!(body.len(), len);

    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.mp4");
    std::fs::write(&new, &body).unwrap();
    // The copying writer over the same store and range.
    let old = dir.path().join("old.mp4");
    let sum = peercam_store::export_mp4(&store, pu, from, to, &old, |_, _| {})
        .await
        .unwrap();
    assert_eq!(u64::from(frames), sum.frames);
    let (a, b) = (probe_frames(&old), probe_frames(&new));
    assert_eq!(a.len(), frames as usize);
    assert_eq!(a, b, "ffprobe sees the same frames");
    assert!(b[0].ends_with(",K_"), "starts at a key frame: {}", b[0]);

    // A segment file of the range gone: an error answer, not a corrupt MP4.
    let segs = store.segments(pu, from, to).await.unwrap();
    std::fs::remove_file(store.config().root.join(&segs[1].path)).unwrap();
    let ex = w.owner.export_url(pu, Some(nvr), from, to).await.unwrap();
    let (_tcp, head, _) = get_export(&ex.url).await;
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
}
