//! H.626.4 8.4 and 6.3.1 for browsers: the camera's WebRTC endpoint, signalled through the
//! platform under the same play authorisation as RTSP. A str0m peer stands in for the
//! browser here (Chromium drives the same endpoint in `h626_6_3_web_client.rs`): it sends a
//! receive-only offer, gets the camera's answer, and decodes the H.264 it receives.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_cu::Client;
use peercam_signal::cm::{PlayRequest, WebRtcOffer};
use peercam_test::Cluster;
use peercam_test::webrtc::{Viewer, decode};

/// Offers to `dev` as `who`; returns the viewer, or the API's error.
async fn view(who: &Client, dev: &str, play: PlayRequest) -> Result<Viewer, peercam_cu::CuError> {
    let (mut v, offer) = Viewer::offer(false).await;
    let answer = who.webrtc(dev, &WebRtcOffer { offer, play }).await?;
    assert!(!answer.session.is_empty());
    v.accept(&answer.answer).unwrap();
    Ok(v)
}

async fn world() -> (
    Cluster,
    Client,
    String,
    (peercam_pu::Running, peercam_net::Shutdown),
) {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let pu = c.start_pu_online(&ids[0], 0).await.unwrap();
    let owner = c.owner("+15550740001").await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    (c, owner, ids[0].device_id.to_string(), pu)
}

/// The owner's viewer gets H.264 that decodes at the profile its capabilities ask for, and
/// G.711 audio, straight from the camera.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_webrtc_live_view_plays_from_the_camera() {
    let (c, owner, dev, _pu) = world().await;
    let mut v = view(
        &owner,
        &dev,
        PlayRequest {
            max_width: Some(352),
            max_height: Some(288),
            ..PlayRequest::default()
        },
    )
    .await
    .unwrap();
    v.run_until(25, Duration::from_secs(15)).await;
    let (decoded, size) = decode(&v.frames);
    eprintln!(
        "connected after {:?}, {} frames, {} audio packets",
        v.connected_after,
        v.frames.len(),
        v.audio_packets
    );
    assert!(v.connected_after.is_some(), "never connected");
    assert!(
        decoded >= 20,
        "{decoded} of {} frames decoded",
        v.frames.len()
    );
    assert_eq!(size, Some((352, 288)));
    assert!(v.audio_packets > 10, "{} audio packets", v.audio_packets);
    c.stop().await;
}

/// 8.4's refusals hold for WebRTC too: a stranger cannot even reach the camera, a
/// sub-account without `live` is refused, and an offer that is not SDP is refused before
/// anything reaches the camera.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_webrtc_refuses_viewers_without_access() {
    let (c, owner, dev, _pu) = world().await;
    let stranger = c.owner("+15550740002").await.unwrap();
    let e = view(&stranger, &dev, PlayRequest::default())
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("404") || e.to_string().contains("not_found"),
        "{e}"
    );
    let kid = c.sub(&owner, "kidnolive").await.unwrap();
    owner
        .share(
            &dev,
            "kidnolive",
            [peercam_base::Scope::Ptz].into_iter().collect(),
        )
        .await
        .unwrap();
    let e = view(&kid, &dev, PlayRequest::default())
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("403") || e.to_string().contains("forbidden"),
        "{e}"
    );
    let bad = owner
        .webrtc(
            &dev,
            &WebRtcOffer {
                offer: "hello".into(),
                play: PlayRequest::default(),
            },
        )
        .await
        .err()
        .unwrap();
    assert!(bad.to_string().contains("bad_offer"), "{bad}");
    c.stop().await;
}

/// 8.6 and D5: unsharing ends a sub-account's WebRTC view at once; the owner's goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_6_webrtc_unshare_ends_the_view() {
    let (c, owner, dev, _pu) = world().await;
    let kid = c.sub(&owner, "kidlive").await.unwrap();
    owner
        .share(
            &dev,
            "kidlive",
            [peercam_base::Scope::Live].into_iter().collect(),
        )
        .await
        .unwrap();
    let mut mine = view(&owner, &dev, PlayRequest::default()).await.unwrap();
    let mut theirs = view(&kid, &dev, PlayRequest::default()).await.unwrap();
    mine.run_until(10, Duration::from_secs(15)).await;
    theirs.run_until(10, Duration::from_secs(15)).await;
    assert!(theirs.frames.len() >= 10, "{}", theirs.frames.len());
    owner.unshare(&dev, "kidlive").await.unwrap();
    // Media stops: at most what was in flight arrives after a short grace.
    theirs
        .run_until(usize::MAX, Duration::from_millis(1500))
        .await;
    let before = theirs.frames.len();
    theirs.run_until(usize::MAX, Duration::from_secs(2)).await;
    assert_eq!(
        theirs.frames.len(),
        before,
        "frames still arrive after unshare"
    );
    let had = mine.frames.len();
    mine.run_until(had + 10, Duration::from_secs(5)).await;
    assert!(
        mine.frames.len() >= had + 10,
        "the owner's view stopped too"
    );
    c.stop().await;
}

/// 6.1.12 / the device list's thumbnail: the camera sends a JPEG of what it sees, the size
/// asked; ffprobe reads it; a stranger gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_12_snapshot_is_a_jpeg_of_the_picture() {
    let (c, owner, dev, _pu) = world().await;
    let jpeg = owner.snapshot(&dev, 320).await.unwrap();
    assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff], "JPEG magic");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("thumb.jpg");
    std::fs::write(&path, &jpeg).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The CIF picture (352x288) sampled to 320 wide.
    assert_eq!(text.trim(), "mjpeg,320,261", "{text}");
    let stranger = c.owner("+15550740003").await.unwrap();
    assert!(stranger.snapshot(&dev, 320).await.is_err());
    assert!(owner.snapshot(&dev, 5000).await.is_err());
    c.stop().await;
}

/// Issue 20, trickle ICE (RFC 8838): an offer without its candidate plays once the candidate
/// follows through the platform after the answer. Only the session's own user is heard (a
/// sharee holding `live` gets the same 404 as for a session that does not exist, and so
/// does a stranger), and a body that is not candidates is refused before the camera.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_4_webrtc_trickled_candidates_reach_only_their_session() {
    use peercam_signal::trickle::Trickle;
    let (c, owner, dev, _pu) = world().await;
    let (mut v, offer) = Viewer::offer(false).await;
    let candidates: Vec<String> = offer
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|c| format!("candidate:{c}"))
        .collect();
    assert!(!candidates.is_empty(), "{offer}");
    let bare: String = offer
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("a=candidate:"))
        .collect();
    let answer = owner
        .webrtc(
            &dev,
            &WebRtcOffer {
                offer: bare,
                play: PlayRequest::default(),
            },
        )
        .await
        .unwrap();
    v.accept(&answer.answer).unwrap();
    let s = answer.session.as_str();
    let trickle = Trickle {
        candidates: candidates.clone(),
        end: false,
    };
    let end = Trickle {
        candidates: vec![],
        end: true,
    };
    // Not the session's user: the same answer as no session at all.
    let kid = c.sub(&owner, "kidlive").await.unwrap();
    owner
        .share(
            &dev,
            "kidlive",
            [peercam_base::Scope::Live].into_iter().collect(),
        )
        .await
        .unwrap();
    let stranger = c.owner("+15550740009").await.unwrap();
    for (who, session) in [(&kid, s), (&owner, "no-such-session"), (&stranger, s)] {
        let e = who
            .webrtc_candidates(&dev, session, &trickle)
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("404"), "{e}");
    }
    let bad = Trickle {
        candidates: vec!["candidate:1 1 udp 1 1.2.3.4 5 typ nat".into()],
        end: false,
    };
    let e = owner.webrtc_candidates(&dev, s, &bad).await.err().unwrap();
    assert!(e.to_string().contains("bad_candidates"), "{e}");
    owner.webrtc_candidates(&dev, s, &trickle).await.unwrap();
    owner.webrtc_candidates(&dev, s, &end).await.unwrap();
    v.run_until(10, Duration::from_secs(15)).await;
    assert!(v.connected_after.is_some(), "never connected");
    assert!(v.frames.len() >= 10, "{} frames", v.frames.len());
    c.stop().await;
}
