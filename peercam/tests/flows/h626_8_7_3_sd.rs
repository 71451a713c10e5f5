//! Recording on the camera's SD card (H.626.4 8.7.3, 6.1.6), end to end over real
//! sockets: the strategy goes CU -> CMU -> SCU -> PU, the camera records from its own
//! encoder, the record list comes back through the platform, and playback and export come
//! straight from the camera's RTSP port under platform-minted tokens.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_base::{Scope, ScopeSet};
use peercam_cu::playback::Playback;
use peercam_media::mp4::Movie;
use peercam_signal::record::{Mode, RecordingList, Strategy};
use peercam_test::Cluster;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn recorded(owner: &peercam_cu::Client, cam: &str, ms: u64) -> RecordingList {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = now_ms();
        let list = owner
            .recordings(cam, Some("sd"), now - 600_000, now + 60_000)
            .await
            .unwrap();
        let total: u64 = list.spans.iter().map(|s| s.end_ms - s.start_ms).sum();
        if total >= ms {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {total} ms: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_3_sd_card_records_lists_plays_and_exports() {
    let c = Cluster::start(1).await.unwrap();
    let id = c.provision(1).await.unwrap().remove(0);
    let _pu = c.start_pu_online(&id, 0).await.unwrap();
    let owner = c.owner("+15550730001").await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let cam = id.device_id.as_str();

    // Nothing is recorded before a strategy is set.
    let state = owner.recording_state(cam, Some("sd")).await.unwrap();
    assert_eq!(state.strategy.mode, Mode::Off);
    assert!(!state.recording);

    let strategy = Strategy {
        mode: Mode::Continuous,
        ..Strategy::default()
    };
    // Without a recorder named, a camera with no NVR records on its card.
    let state = owner.set_recording(cam, None, &strategy).await.unwrap();
    assert_eq!(state.strategy, strategy);
    let list = recorded(&owner, cam, 5000).await;
    let span = list.spans[0];

    // Playback from the camera itself.
    let url = owner
        .playback_url(cam, Some("sd"), span.start_ms + 1000)
        .await
        .unwrap();
    assert_eq!(url.recorder, "sd");
    let mut p = Playback::open(&url.url).await.unwrap();
    p.play(None, None).await.unwrap();
    let mut counters = Vec::new();
    for _ in 0..20 {
        let f = p.next_frame(Duration::from_secs(5)).await.unwrap().unwrap();
        counters.push(f.tag.unwrap().frame);
    }
    assert!(
        counters.windows(2).all(|w| w[1] == w[0] + 1),
        "{counters:?}"
    );
    p.play(Some(span.start_ms + 4500), Some("-2"))
        .await
        .unwrap();
    let a = p.next_frame(Duration::from_secs(5)).await.unwrap().unwrap();
    let b = p.next_frame(Duration::from_secs(5)).await.unwrap().unwrap();
    assert!(b.tag.unwrap().frame < a.tag.unwrap().frame, "reverse");
    p.teardown().await.unwrap();

    // The same recordings in a browser: WebRTC from the camera's card, 1x then reverse.
    let (mut v, offer) = peercam_test::webrtc::Viewer::offer(true).await;
    let answer = owner
        .playback_webrtc(cam, Some("sd"), span.start_ms + 1000, offer)
        .await
        .unwrap();
    assert_eq!(answer.session, "sd");
    v.accept(&answer.answer).unwrap();
    v.run_until(15, Duration::from_secs(15)).await;
    let tags = |frames: &[(std::time::Instant, Vec<u8>)]| -> Vec<u64> {
        frames
            .iter()
            .filter_map(|(_, au)| {
                peercam_media::annexb::split(au).find_map(peercam_media::sei::parse_sei)
            })
            .map(|t| t.frame)
            .collect()
    };
    let seen = tags(&v.frames);
    assert!(
        seen.len() >= 15 && seen.windows(2).all(|w| w[1] == w[0] + 1),
        "{seen:?}"
    );
    let ask = format!(
        r#"{{"op":"play","scale":"-2","at_ms":{}}}"#,
        span.start_ms + 4500
    );
    assert!(v.send_text(&ask));
    v.run_while(Duration::from_millis(400), |_| false).await;
    let n = v.frames.len();
    v.run_until(n + 3, Duration::from_secs(5)).await;
    let back = tags(&v.frames[n..]);
    assert!(
        back.len() >= 2 && back.windows(2).all(|w| w[1] < w[0]),
        "{back:?}"
    );

    // Export from the card.
    let ex = owner
        .export_url(cam, Some("sd"), span.start_ms, span.start_ms + 4000)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sd.mp4");
    owner.fetch_export(&ex.url, &file, |_, _| {}).await.unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let movie = Movie::parse(&bytes).unwrap();
    let n = movie.video().unwrap().sample_count();
    assert!((95..=105).contains(&n), "{n} frames for 4 s at 25 fps");

    // A sub-account with live only sees no recordings.
    let sub = c.sub(&owner, "viewer").await.unwrap();
    owner
        .share(cam, "viewer", ScopeSet::from_iter([Scope::Live]))
        .await
        .unwrap();
    let now = now_ms();
    assert_eq!(
        sub.recordings(cam, Some("sd"), now - 60_000, now)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );

    // The strategy survives on the camera; turning it off stops recording.
    let off = owner
        .set_recording(cam, Some("sd"), &Strategy::default())
        .await
        .unwrap();
    assert_eq!(off.strategy.mode, Mode::Off);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = owner.recording_state(cam, Some("sd")).await.unwrap();
    assert!(!state.recording && state.used_bytes > 0, "{state:?}");
}
