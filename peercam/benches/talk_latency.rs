//! Talk (intercom, H.626.4 6.1.8): mouth to speaker. A WebRTC talker (str0m, the same stack
//! as the tests' viewer) sends tone bursts to the camera; the time from the first packet of
//! each burst leaving the talker to the camera's speaker (its WAV file) growing, over
//! loopback with the whole platform in one process (token minted by the CMU, checked PU ->
//! SCU -> CMU at the session's start). Bursts of 100 ms of 1 kHz (five 20 ms PCMU packets),
//! 300 ms of silence between them; p50, p99 and max.
//!
//! What a real mouth adds on top: the talker's packet time (20 ms: the first sample of a
//! packet waits for its last) and its capture buffer; the browser test
//! (`h626_6_1_8_web_client_hold_to_talk`) prints press-to-speaker with Chromium's fake
//! microphone.
//!
//! `cargo bench --bench talk_latency -- 200`
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use peercam_signal::cm::{PlayRequest, WebRtcOffer};
use peercam_test::Cluster;
use peercam_test::tone::sine;
use peercam_test::webrtc::Viewer;

/// Five 20 ms PCMU payloads of 1 kHz.
fn burst() -> Vec<Vec<u8>> {
    sine(1000.0, 8000, 800, 8000.0)
        .chunks(160)
        .map(|c| {
            c.iter()
                .map(|&s| peercam_rtp::g711::ulaw_encode(s))
                .collect()
        })
        .collect()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bursts: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let c = Cluster::start(1).await.unwrap();
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
    let owner = c.owner("+15550618901").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();

    let (mut v, offer) = Viewer::offer_talk(false).await;
    let play = PlayRequest {
        max_width: Some(352),
        max_height: Some(288),
        ..PlayRequest::default()
    };
    let answer = owner
        .webrtc(&dev, &WebRtcOffer { offer, play })
        .await
        .unwrap();
    v.accept(&answer.answer).unwrap();
    v.run_until(5, Duration::from_secs(15)).await;
    assert!(v.talk_accepted(), "the camera did not take talk");

    // The speaker file's growth, polled every 0.2 ms on a thread of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, wav) = (stop.clone(), wav.clone());
        std::thread::spawn(move || {
            let mut grew = Vec::new();
            let mut last = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let len = std::fs::metadata(&wav).map_or(0, |m| m.len());
                if len != last {
                    grew.push(Instant::now());
                    last = len;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            grew
        })
    };

    let mut sent = Vec::with_capacity(bursts);
    for _ in 0..bursts {
        let before = v.talk_sent;
        v.queue_talk(burst());
        // Returns as soon as the first packet was handed to the socket.
        v.run_while(Duration::from_secs(5), |v| v.talk_sent > before)
            .await;
        sent.push(Instant::now());
        v.run_while(Duration::from_secs(5), |v| v.talk_sent >= before + 5)
            .await;
        // Silence, while the session runs (video, RTCP).
        v.run_while(Duration::from_millis(300), |_| false).await;
    }
    v.run_while(Duration::from_millis(300), |_| false).await;
    stop.store(true, Ordering::Relaxed);
    let grew = watcher.join().unwrap();

    let mut ms: Vec<f64> = sent
        .iter()
        .filter_map(|s| grew.iter().find(|g| *g >= s))
        .zip(&sent)
        .map(|(g, s)| g.duration_since(*s).as_secs_f64() * 1000.0)
        .collect();
    let heard = ms.len();
    ms.sort_by(f64::total_cmp);
    let samples = peercam_test::tone::read_wav(&wav).map_or(0, |(_, p)| p.len());
    println!(
        "talk mouth to speaker: {bursts} bursts, {heard} heard, {samples} samples played ({:.1} s)",
        samples as f64 / 8000.0
    );
    if heard > 0 {
        println!(
            "| bursts | p50 | p99 | max |\n|---:|---:|---:|---:|\n| {bursts} | {:.1} ms | {:.1} ms | {:.1} ms |",
            pct(&ms, 0.5),
            pct(&ms, 0.99),
            ms[ms.len() - 1]
        );
    }
    c.stop().await;
}
