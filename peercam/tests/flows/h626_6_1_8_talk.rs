//! H.626.4 6.1.8 intercom, first slice: a viewer talks to the camera over its WebRTC live
//! view, and the camera plays what it hears (the synthetic camera into its speaker WAV file,
//! `speaker_wav`). The camera judges the `talk` scope of the play grant: a viewer without it
//! gets video and the camera's audio, and its microphone is declined. A str0m peer stands in
//! for the browser in the first tests; Chromium with a fake microphone in the last.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use crate::support::talk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use peercam_base::Scope;
use peercam_cu::Client;
use peercam_signal::cm::{PlayRequest, WebRtcOffer};
use peercam_test::Cluster;
use peercam_test::tone::{rms, sine, tone_share};
use peercam_test::web::{scenario, web_tests_or_skip};
use peercam_test::webrtc::Viewer;
use talk::{pcmu_tone, speaker};

type World = (
    Cluster,
    Client,
    String,
    PathBuf,
    (peercam_pu::Running, peercam_net::Shutdown),
);

/// A camera with a speaker WAV file, bound to an owner.
async fn world() -> World {
    world_with(false).await
}

/// Likewise, half duplex or not.
async fn world_with(half_duplex: bool) -> World {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let wav = c.path().join("speaker.wav");
    let w = wav.clone();
    let pu = c
        .start_pu_with(&ids[0], 0, |cfg| {
            cfg.speaker_wav = Some(w);
            cfg.talk_half_duplex = half_duplex;
        })
        .await
        .unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner("+15550618001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    (c, owner, ids[0].device_id.to_string(), wav, pu)
}

/// A talking viewer of `dev` as `who` (PCMU audio), its answer taken.
async fn talker(who: &Client, dev: &str) -> Viewer {
    talker_with(who, dev, None).await
}

/// Likewise, with the camera's audio as `audio` asks (`Some(None)`: none).
async fn talker_with(
    who: &Client,
    dev: &str,
    audio: Option<Option<peercam_signal::play::AudioCodec>>,
) -> Viewer {
    talker_offering(who, dev, audio, false).await
}

/// Likewise, with a data channel in the offer when `channel` (the camera tells a refused
/// talker on it).
async fn talker_offering(
    who: &Client,
    dev: &str,
    audio: Option<Option<peercam_signal::play::AudioCodec>>,
    channel: bool,
) -> Viewer {
    let (mut v, offer) = Viewer::offer_talk(channel).await;
    let play = PlayRequest {
        max_width: Some(352),
        max_height: Some(288),
        audio,
        ..PlayRequest::default()
    };
    let answer = who.webrtc(dev, &WebRtcOffer { offer, play }).await.unwrap();
    v.accept(&answer.answer).unwrap();
    v
}

/// The 1 kHz tone a viewer sent over real sockets is in the camera's speaker, and the
/// viewer's video plays meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_talk_tone_reaches_the_speaker() {
    let (c, owner, dev, wav, _pu) = world().await;
    let mut v = talker(&owner, &dev).await;
    v.queue_talk(pcmu_tone(1000.0, 2.0));
    v.run_while(Duration::from_secs(15), |v| v.talk_sent >= 10)
        .await;
    let heard = v.audio_packets;
    v.run_while(Duration::from_secs(15), |v| v.talk_sent >= 100)
        .await;
    // Full duplex by default: the camera's audio keeps coming while the viewer talks.
    let during = v.audio_packets - heard;
    assert!(during >= 50, "{during} audio packets in 1.8 s of talk");
    assert!(
        v.talk_accepted(),
        "the camera declined the owner's microphone"
    );
    assert_eq!(v.talk_sent, 100);
    // What was in flight lands.
    v.run_until(usize::MAX, Duration::from_millis(500)).await;
    let pcm = speaker(&wav);
    let p = tone_share(&pcm, 8000, 1000.0);
    eprintln!(
        "speaker: {} samples ({:.2} s), rms {:.0}, 1 kHz share {p:.3}; {} video frames",
        pcm.len(),
        pcm.len() as f64 / 8000.0,
        rms(&pcm),
        v.frames.len()
    );
    assert!(pcm.len() >= 8000 * 3 / 2, "{} samples played", pcm.len());
    assert!(pcm.len() <= 8000 * 2, "{} samples played", pcm.len());
    assert!(rms(&pcm) > 3000.0, "rms {}", rms(&pcm));
    assert!(p > 0.9, "1 kHz is {p} of the energy only");
    assert!(v.frames.len() >= 10, "{} video frames", v.frames.len());
    c.stop().await;
}

/// A viewer that takes none of the camera's audio can still talk: the audio line carries
/// G.711 for its microphone only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_talk_without_the_cameras_audio() {
    let (c, owner, dev, wav, _pu) = world().await;
    let mut v = talker_with(&owner, &dev, Some(None)).await;
    v.queue_talk(pcmu_tone(1000.0, 1.0));
    v.run_while(Duration::from_secs(15), |v| v.talk_sent >= 50)
        .await;
    v.run_until(usize::MAX, Duration::from_millis(300)).await;
    assert!(v.talk_accepted());
    assert_eq!(v.audio_packets, 0, "the camera sent audio not asked for");
    let pcm = speaker(&wav);
    assert_eq!(pcm.len(), 8000, "{} samples played", pcm.len());
    assert!(tone_share(&pcm, 8000, 1000.0) > 0.9);
    c.stop().await;
}

/// A sub-account shared `live` without `talk` watches, but its microphone is declined and
/// the camera's speaker stays silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_viewer_without_talk_is_not_heard() {
    let (c, owner, dev, wav, _pu) = world().await;
    let kid = c.sub(&owner, "kidnotalk").await.unwrap();
    owner
        .share(&dev, "kidnotalk", [Scope::Live].into_iter().collect())
        .await
        .unwrap();
    let mut v = talker(&kid, &dev).await;
    v.queue_talk(pcmu_tone(1000.0, 2.0));
    v.run_until(25, Duration::from_secs(15)).await;
    v.run_until(usize::MAX, Duration::from_secs(2)).await;
    assert!(
        !v.talk_accepted(),
        "the camera took a microphone without talk"
    );
    assert!(v.frames.len() >= 25, "{} video frames", v.frames.len());
    assert!(v.audio_packets > 10, "{} audio packets", v.audio_packets);
    assert!(
        speaker(&wav).is_empty(),
        "the camera played a viewer without talk"
    );
    c.stop().await;
}

/// A camera without a speaker (no `speaker_wav`) declines even its owner's microphone; the
/// video and its audio play; in the browser the talk button says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_camera_without_speaker_declines_talk() {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let _pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    let owner = c.owner("+15550618001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    let mut v = talker(&owner, &dev).await;
    v.queue_talk(pcmu_tone(1000.0, 1.0));
    v.run_until(25, Duration::from_secs(15)).await;
    assert!(
        !v.talk_accepted(),
        "a camera without a speaker took the microphone"
    );
    assert!(v.frames.len() >= 25, "{} video frames", v.frames.len());
    assert!(v.audio_packets > 10, "{} audio packets", v.audio_packets);
    if let Some(dir) = web_tests_or_skip("h626_6_1_8_camera_without_speaker_declines_talk") {
        let mic = c.path().join("mic-1khz.wav");
        let tone = sine(1000.0, 48_000, 48_000, 12_000.0);
        std::fs::write(&mic, peercam_test::tone::wav_bytes(&tone, 48_000)).unwrap();
        let r = scenario(
            &dir,
            "talk.mjs",
            &[
                ("PEERCAM_WEB_URL", c.api.clone()),
                ("PEERCAM_WEB_USER", "+15550618001".to_owned()),
                ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
                ("PEERCAM_DEVICE", dev.clone()),
                ("PEERCAM_FAKE_MIC", mic.display().to_string()),
                ("PEERCAM_TALK_REFUSED", "1".to_owned()),
            ],
            None,
        )
        .await;
        assert!(r["steps"].to_string().contains("refused"), "{r}");
    }
    c.stop().await;
}

/// One talker at a time: while the owner talks (1 kHz), a sub-account with `talk` talking
/// too (440 Hz) is not heard; the speaker holds the owner's tone only. The camera tells the
/// second talker on its data channel (`{"talk":"busy"}`), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_second_talker_is_ignored() {
    let (c, owner, dev, wav, _pu) = world().await;
    let kid = c.sub(&owner, "kidtalk").await.unwrap();
    owner
        .share(
            &dev,
            "kidtalk",
            [Scope::Live, Scope::Talk].into_iter().collect(),
        )
        .await
        .unwrap();
    let mut a = talker(&owner, &dev).await;
    let mut b = talker_offering(&kid, &dev, None, true).await;
    // The owner starts first and talks for 3 s; the other joins while it talks.
    a.queue_talk(pcmu_tone(1000.0, 3.0));
    a.run_while(Duration::from_secs(15), |v| v.talk_sent >= 25)
        .await;
    b.queue_talk(pcmu_tone(440.0, 1.5));
    tokio::join!(
        a.run_while(Duration::from_secs(15), |v| v.talk_sent >= 150),
        b.run_while(Duration::from_secs(15), |v| v.talk_sent >= 75),
    );
    assert!(a.talk_accepted() && b.talk_accepted());
    assert_eq!((a.talk_sent, b.talk_sent), (150, 75));
    a.run_until(usize::MAX, Duration::from_millis(300)).await;
    let pcm = speaker(&wav);
    let (hi, lo) = (
        tone_share(&pcm, 8000, 1000.0),
        tone_share(&pcm, 8000, 440.0),
    );
    eprintln!(
        "speaker: {} samples, 1 kHz share {hi:.3}, 440 Hz share {lo:.4}",
        pcm.len()
    );
    assert!(
        pcm.len() <= 8000 * 3,
        "{} samples: both were played",
        pcm.len()
    );
    assert!(hi > 0.9, "1 kHz is {hi} of the energy only");
    assert!(lo < 0.01, "the second talker was heard: 440 Hz share {lo}");
    b.run_while(Duration::from_secs(2), |v| !v.texts.is_empty())
        .await;
    assert_eq!(
        b.texts,
        vec![r#"{"talk":"busy"}"#.to_owned()],
        "the second talker is told, once"
    );
    assert!(a.texts.is_empty(), "{:?}", a.texts);
    c.stop().await;
}

/// Half duplex (`talk_half_duplex`): while the viewer talks the camera's audio toward it
/// stops, and comes back once it is quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_half_duplex_mutes_the_camera_toward_the_talker() {
    let (c, owner, dev, wav, _pu) = world_with(true).await;
    let mut v = talker(&owner, &dev).await;
    v.run_until(10, Duration::from_secs(15)).await;
    let a0 = v.audio_packets;
    v.run_while(Duration::from_secs(1), |_| false).await;
    assert!(
        v.audio_packets - a0 >= 30,
        "{} audio packets in 1 s before talking",
        v.audio_packets - a0
    );
    v.queue_talk(pcmu_tone(1000.0, 2.0));
    // Past the first 300 ms (what was in flight), nothing while talking.
    v.run_while(Duration::from_secs(15), |v| v.talk_sent >= 15)
        .await;
    let a1 = v.audio_packets;
    v.run_while(Duration::from_secs(15), |v| v.talk_sent >= 100)
        .await;
    let during = v.audio_packets - a1;
    // Quiet: after the floor's 0.5 s, the camera's audio returns.
    v.run_while(Duration::from_millis(2000), |_| false).await;
    let after = v.audio_packets - a1 - during;
    eprintln!("audio packets: {during} during 1.7 s of talk, {after} in the 2 s after");
    assert!(during <= 3, "{during} audio packets while talking");
    assert!(after >= 40, "{after} audio packets after talking");
    assert!(tone_share(&speaker(&wav), 8000, 1000.0) > 0.9);
    c.stop().await;
}

/// 8.6 and D5 for talk: unsharing ends a talking sub-account's session, and its voice stops
/// at the camera's speaker at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_unshare_ends_the_talk() {
    let (c, owner, dev, wav, _pu) = world().await;
    let kid = c.sub(&owner, "kidrevoked").await.unwrap();
    owner
        .share(
            &dev,
            "kidrevoked",
            [Scope::Live, Scope::Talk].into_iter().collect(),
        )
        .await
        .unwrap();
    let mut v = talker(&kid, &dev).await;
    v.queue_talk(pcmu_tone(1000.0, 20.0));
    v.run_while(Duration::from_secs(15), |v| v.talk_sent >= 50)
        .await;
    assert!(v.talk_accepted());
    assert!(
        !speaker(&wav).is_empty(),
        "nothing played before the unshare"
    );
    owner.unshare(&dev, "kidrevoked").await.unwrap();
    // What was in flight lands within a short grace; then nothing more.
    v.run_until(usize::MAX, Duration::from_millis(1000)).await;
    let after = speaker(&wav).len();
    let sent = v.talk_sent;
    v.run_until(usize::MAX, Duration::from_secs(2)).await;
    eprintln!(
        "after the unshare: {} more sent, speaker {after} then {}",
        v.talk_sent - sent,
        speaker(&wav).len()
    );
    assert_eq!(
        speaker(&wav).len(),
        after,
        "the camera still plays a revoked talker"
    );
    c.stop().await;
}

/// Chromium with a fake microphone playing a 1 kHz tone presses "Hold to talk" for about
/// 2 s in the web client's live view (then Space and the toggle, 0.4 s each); the camera's
/// speaker holds the 1 kHz tone, about 2.8 s of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_web_client_hold_to_talk() {
    let Some(dir) = web_tests_or_skip("h626_6_1_8_web_client_hold_to_talk") else {
        return;
    };
    let (c, _owner, dev, wav, _pu) = world().await;
    browser_talks(&c, &dir, &dev, &wav, false).await;
    c.stop().await;
}

/// The same through the MTU's TURN relay (`?relay=1`: the browser uses relayed candidates
/// only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_web_client_hold_to_talk_through_turn() {
    let Some(dir) = web_tests_or_skip("h626_6_1_8_web_client_hold_to_talk_through_turn") else {
        return;
    };
    const SECRET: &str = "talk-turn-secret";
    let c = Cluster::start_with(1, |cfg| cfg.turn_secret = Some(SECRET.into()))
        .await
        .unwrap();
    let ids = c.provision(1).await.unwrap();
    let wav = c.path().join("speaker.wav");
    let w = wav.clone();
    let _pu = c
        .start_pu_with(&ids[0], 0, |cfg| cfg.speaker_wav = Some(w))
        .await
        .unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    // Everything is on loopback here; production keeps loopback denied.
    let _mtu = c.start_turn_mtu(SECRET, &["127.0.0.0/8"]).await.unwrap();
    let owner = c.owner("+15550618001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    // TURN servers reach the CMU with the MTU's load report.
    for _ in 0..100 {
        if !owner.ice(&dev).await.unwrap().ice_servers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser_talks(&c, &dir, &dev, &wav, true).await;
    c.stop().await;
}

/// Runs `web-tests/talk.mjs` as the owner of `dev` with a 1 kHz fake microphone and checks
/// the camera's speaker file.
async fn browser_talks(c: &Cluster, dir: &Path, dev: &str, wav: &Path, relay: bool) {
    let mic = c.path().join("mic-1khz.wav");
    let tone = sine(1000.0, 48_000, 48_000 * 4, 12_000.0);
    std::fs::write(&mic, peercam_test::tone::wav_bytes(&tone, 48_000)).unwrap();
    // The speaker file's growth, polled every 2 ms: when each talk spurt reached it.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let watched = wav.to_owned();
    let watcher = tokio::spawn(async move {
        let mut starts = Vec::new();
        let (mut last_len, mut last_change) = (0u64, 0u128);
        loop {
            let len = std::fs::metadata(&watched).map_or(0, |m| m.len());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            if len != last_len {
                // Growth after 300 ms without: a new spurt.
                if now - last_change > 300 {
                    starts.push(now);
                }
                (last_len, last_change) = (len, now);
            }
            tokio::select! {
                _ = &mut stop_rx => return starts,
                () = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
    });
    let r = scenario(
        dir,
        "talk.mjs",
        &[
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_WEB_USER", "+15550618001".to_owned()),
            ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
            ("PEERCAM_DEVICE", dev.to_owned()),
            ("PEERCAM_FAKE_MIC", mic.display().to_string()),
            ("PEERCAM_TALK_MS", "2000".to_owned()),
            (
                "PEERCAM_WEB_RELAY",
                if relay { "1" } else { "0" }.to_owned(),
            ),
        ],
        None,
    )
    .await;
    eprintln!("{r}");
    if relay {
        assert_eq!(r["path"], "relay", "{r}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(());
    let starts = watcher.await.unwrap();
    let pressed: Vec<u128> = r["pressed_unix_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u128::from(v.as_u64().unwrap()))
        .collect();
    // Press to the first sound in the speaker file: the first press opens the microphone.
    let delays: Vec<i128> = pressed
        .iter()
        .map(|p| {
            starts
                .iter()
                .find(|s| *s >= p)
                .map_or(-1, |s| (*s - *p) as i128)
        })
        .collect();
    eprintln!("press to speaker, ms (pointer with getUserMedia, Space, toggle): {delays:?}");
    assert_eq!(
        starts.len(),
        3,
        "three talk spurts reached the speaker: {starts:?}"
    );
    let pcm = speaker(wav);
    let p = tone_share(&pcm, 8000, 1000.0);
    eprintln!(
        "speaker: {} samples ({:.2} s), rms {:.0}, 1 kHz share {p:.3}",
        pcm.len(),
        pcm.len() as f64 / 8000.0,
        rms(&pcm)
    );
    assert!(pcm.len() >= 8000 * 2, "{} samples played", pcm.len());
    assert!(
        pcm.len() <= 8000 * 4,
        "{} samples: the button did not stop the talk",
        pcm.len()
    );
    assert!(rms(&pcm) > 1000.0, "rms {}", rms(&pcm));
    assert!(p > 0.8, "1 kHz is {p} of the energy only");
}

/// One talker at a time in the browser: while another viewer holds the camera's speaker
/// (a str0m talker sending 1 kHz), Chromium holding "Hold to talk" (its fake microphone at
/// 440 Hz) is told "Another viewer is talking" instead of "Talking…", and is not heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_web_client_second_talker_is_told() {
    let Some(dir) = web_tests_or_skip("h626_6_1_8_web_client_second_talker_is_told") else {
        return;
    };
    let (c, owner, dev, wav, _pu) = world().await;
    let mut a = talker(&owner, &dev).await;
    a.queue_talk(pcmu_tone(1000.0, 30.0));
    a.run_while(Duration::from_secs(15), |v| v.talk_sent >= 25)
        .await;
    let holder = tokio::spawn(async move {
        a.run_while(Duration::from_secs(40), |v| v.talk_sent >= 1500)
            .await;
        a
    });
    let mic = c.path().join("mic-440.wav");
    let tone = sine(440.0, 48_000, 48_000 * 4, 12_000.0);
    std::fs::write(&mic, peercam_test::tone::wav_bytes(&tone, 48_000)).unwrap();
    let r = scenario(
        &dir,
        "talk.mjs",
        &[
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_WEB_USER", "+15550618001".to_owned()),
            ("PEERCAM_WEB_PASSWORD", "correct horse battery".to_owned()),
            ("PEERCAM_DEVICE", dev.clone()),
            ("PEERCAM_FAKE_MIC", mic.display().to_string()),
            ("PEERCAM_TALK_BUSY", "1".to_owned()),
        ],
        None,
    )
    .await;
    eprintln!("{r}");
    assert!(r["steps"].to_string().contains("busy"), "{r}");
    holder.abort();
    let pcm = speaker(&wav);
    let (hi, lo) = (
        tone_share(&pcm, 8000, 1000.0),
        tone_share(&pcm, 8000, 440.0),
    );
    eprintln!(
        "speaker: {} samples, 1 kHz share {hi:.3}, 440 Hz share {lo:.4}",
        pcm.len()
    );
    assert!(hi > 0.9, "1 kHz is {hi} of the energy only");
    assert!(lo < 0.01, "the browser was heard: 440 Hz share {lo}");
    c.stop().await;
}
