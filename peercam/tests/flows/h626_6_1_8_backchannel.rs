//! H.626.4 6.1.8 intercom from RTSP clients: the ONVIF audio back channel (`Require:
//! www.onvif.org/ver20/backchannel`, an `a=sendonly` audio track). `peercam cu talk` and
//! GStreamer's `rtspsrc backchannel=onvif` talk to a real camera over real sockets, and the
//! camera's speaker WAV file holds their tone. A viewer without `talk` is answered 551 and
//! still watches; back-channel packets of the wrong payload type are dropped while the
//! stream goes on; revoking the viewer ends its talk.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use crate::support::relay;
use crate::support::talk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use peercam_base::Scope;
use peercam_cu::Client;
use peercam_net::rtsp::RtspConn;
use peercam_rtsp::Parsed;
use peercam_test::Cluster;
use peercam_test::tone::{rms, sine, tone_share, wav_bytes};
use relay::{mtu, relay_url};
use talk::{pcmu_tone, speaker};

const OWNER: &str = "+15550618101";

type World = (
    Cluster,
    Client,
    String,
    PathBuf,
    (peercam_pu::Running, peercam_net::Shutdown),
);

/// A camera with a speaker WAV file, bound to an owner.
async fn world() -> World {
    let c = Cluster::start(1).await.unwrap();
    let ids = c.provision(1).await.unwrap();
    let wav = c.path().join("speaker.wav");
    let w = wav.clone();
    let pu = c
        .start_pu_with(&ids[0], 0, |cfg| cfg.speaker_wav = Some(w))
        .await
        .unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner(OWNER).await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    (c, owner, ids[0].device_id.to_string(), wav, pu)
}

/// A play URL for `who` and an RTSP connection to it.
async fn connect(who: &Client, dev: &str) -> (RtspConn, String, String) {
    let r = who
        .play(dev, &peercam_signal::cm::PlayRequest::default())
        .await
        .unwrap();
    let conn = RtspConn::connect(&r.url, Duration::from_secs(5), "test")
        .await
        .unwrap();
    let base = r
        .url
        .split('?')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    (conn, r.url, base)
}

/// The answer to one request, whatever its status (interleaved frames before it skipped).
async fn answer(c: &mut RtspConn, method: &str, uri: &str, extra: &str) -> peercam_rtsp::Response {
    c.send(method, uri, extra).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.next())
            .await
            .unwrap()
            .unwrap()
        {
            Parsed::Response(r) => return r,
            _ => continue,
        }
    }
}

const REQUIRE: &str = "Accept: application/sdp\r\nRequire: www.onvif.org/ver20/backchannel\r\n";

fn rtp(pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn frame(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    peercam_rtsp::write_interleaved(channel, payload, &mut out).unwrap();
    out
}

/// Counts the video RTP packets (channel 0) that arrive within `d`.
async fn video_within(c: &mut RtspConn, d: Duration) -> usize {
    let end = tokio::time::Instant::now() + d;
    let mut n = 0;
    while let Ok(Ok(m)) = tokio::time::timeout_at(end, c.next()).await {
        if let Parsed::Interleaved(f) = m
            && f.channel == 0
        {
            n += 1;
        }
    }
    n
}

/// `peercam cu talk` with a 2 s 1 kHz WAV: the camera's speaker holds 2 s of 1 kHz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_backchannel_cu_talk_reaches_the_speaker() {
    let (c, _owner, dev, wav, _pu) = world().await;
    let said = c.path().join("say.wav");
    std::fs::write(&said, wav_bytes(&sine(1000.0, 8000, 16000, 8000.0), 8000)).unwrap();
    let started = std::time::Instant::now();
    let (ok, out, err) = c
        .cu_cli(
            env!("CARGO_BIN_EXE_peercam"),
            OWNER,
            &["talk", &dev, "--file", said.to_str().unwrap()],
        )
        .await;
    let took = started.elapsed();
    assert!(ok, "cu talk failed: {out} {err}");
    assert!(out.contains("said 2.0 s"), "{out}");
    // Real-time pace: 2 s of audio takes about 2 s to send.
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    let pcm = speaker(&wav);
    let p = tone_share(&pcm, 8000, 1000.0);
    eprintln!(
        "speaker: {} samples, rms {:.0}, 1 kHz share {p:.3}",
        pcm.len(),
        rms(&pcm)
    );
    assert_eq!(pcm.len(), 16000, "{} samples played", pcm.len());
    assert!(rms(&pcm) > 3000.0);
    assert!(p > 0.9, "1 kHz is {p} of the energy only");
    // A WAV at another rate is refused with what to do.
    std::fs::write(&said, wav_bytes(&sine(1000.0, 16000, 1600, 8000.0), 16000)).unwrap();
    let (ok, _, err) = c
        .cu_cli(
            env!("CARGO_BIN_EXE_peercam"),
            OWNER,
            &["talk", &dev, "--file", said.to_str().unwrap()],
        )
        .await;
    assert!(!ok);
    assert!(err.contains("16000 Hz; talk needs 8000 Hz"), "{err}");
    c.stop().await;
}

/// Whether Debian's Python runs `code` without error (a probe for GStreamer's bindings).
fn python_can(code: &str) -> bool {
    std::process::Command::new("/usr/bin/python3")
        .args(["-c", code])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn have_gst_python() -> bool {
    python_can(
        "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None); assert Gst.ElementFactory.find('rtspsrc') and Gst.ElementFactory.find('mulawenc')",
    )
}

/// GStreamer's `rtspsrc backchannel=onvif` as the third-party client: its 1 kHz tone plays
/// on the camera's speaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_backchannel_gstreamer_rtspsrc_talks() {
    if !have_gst_python() {
        peercam_test::skip(
            "h626_6_1_8_backchannel_gstreamer_rtspsrc_talks",
            "GStreamer for Python with rtspsrc and mulawenc (apt-get install python3-gi gir1.2-gstreamer-1.0 gstreamer1.0-plugins-good)",
        );
        return;
    }
    let (c, owner, dev, wav, _pu) = world().await;
    let r = owner
        .play(&dev, &peercam_signal::cm::PlayRequest::default())
        .await
        .unwrap();
    gst_talks(&r.url, &wav).await;
    c.stop().await;
}

/// Runs the GStreamer back-channel client on `url` for 2 s of 1 kHz and checks the speaker.
async fn gst_talks(url: &str, wav: &Path) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/flows/support/gst_backchannel.py"
    );
    // The script gives the video 30 s to start (a machine loaded by a fresh build's parallel
    // tests), then talks 2 s; it says on stderr which phase took long.
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("/usr/bin/python3")
            .args([script, url, "2", "1000"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the GStreamer client did not finish within 60 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("gst: {stdout} {stderr}");
    assert!(out.status.success(), "{stdout} {stderr}");
    let pcm = speaker(wav);
    let p = tone_share(&pcm, 8000, 1000.0);
    eprintln!(
        "speaker: {} samples, rms {:.0}, 1 kHz share {p:.3}",
        pcm.len(),
        rms(&pcm)
    );
    assert!(pcm.len() >= 8000 * 3 / 2, "{} samples played", pcm.len());
    assert!(pcm.len() <= 8000 * 2, "{} samples played", pcm.len());
    assert!(p > 0.9, "1 kHz is {p} of the energy only");
}

/// A sub-account shared `live` without `talk`: its DESCRIBE asking for the back channel is
/// answered 551 (Unsupported names the option), and it still watches on the same connection
/// without it. The speaker stays silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_backchannel_refused_without_talk() {
    let (c, owner, dev, wav, _pu) = world().await;
    let kid = c.sub(&owner, "kidrtsp").await.unwrap();
    owner
        .share(&dev, "kidrtsp", [Scope::Live].into_iter().collect())
        .await
        .unwrap();
    let (mut conn, url, base) = connect(&kid, &dev).await;
    let r = answer(&mut conn, "DESCRIBE", &url, REQUIRE).await;
    assert_eq!(r.status.0, 551, "{r:?}");
    assert_eq!(
        r.headers.get("Unsupported"),
        Some("www.onvif.org/ver20/backchannel")
    );
    let r = answer(&mut conn, "DESCRIBE", &url, "Accept: application/sdp\r\n").await;
    assert_eq!(r.status.0, 200, "{r:?}");
    let body = String::from_utf8_lossy(&r.body);
    assert!(!body.contains("sendonly"), "{body}");
    // Trying the back channel's track anyway finds nothing.
    let r = answer(
        &mut conn,
        "SETUP",
        &format!("{base}/trackID=2"),
        "Transport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n",
    )
    .await;
    assert_eq!(r.status.0, 404, "{r:?}");
    conn.setup_interleaved(&base, 0).await.unwrap();
    conn.request("PLAY", &format!("{base}/"), "").await.unwrap();
    // Talk pushed on the channel a back channel would have used is not heard.
    for (i, p) in pcmu_tone(1000.0, 0.5).iter().enumerate() {
        conn.write_raw(&frame(4, &rtp(0, i as u16, p)))
            .await
            .unwrap();
    }
    let n = video_within(&mut conn, Duration::from_secs(2)).await;
    assert!(n >= 10, "{n} video packets");
    assert!(
        speaker(&wav).is_empty(),
        "the camera played a viewer without talk"
    );
    c.stop().await;
}

/// Back-channel RTP with the wrong payload type, oversized or malformed is dropped; the
/// PCMU that follows plays and the video keeps coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_backchannel_wrong_payload_type_is_dropped() {
    let (c, owner, dev, wav, _pu) = world().await;
    let (mut conn, url, base) = connect(&owner, &dev).await;
    let r = conn.request("DESCRIBE", &url, REQUIRE).await.unwrap();
    let sdp = peercam_rtsp::sdp::SessionDescription::parse(&r.body).unwrap();
    let (control, codecs) = peercam_rtsp::sdp::find_backchannel(&sdp).unwrap();
    assert_eq!(control, "trackID=2");
    assert_eq!(
        codecs.iter().map(|(pt, _)| *pt).collect::<Vec<_>>(),
        vec![0, 8]
    );
    conn.setup_interleaved(&base, 0).await.unwrap();
    conn.setup_interleaved(&base, 2).await.unwrap();
    conn.request("PLAY", &format!("{base}/"), "").await.unwrap();
    let tone = pcmu_tone(1000.0, 1.0);
    // Wrong payload type (the tone as "PT 96"), oversized, malformed: none plays.
    for (i, p) in tone.iter().enumerate() {
        conn.write_raw(&frame(4, &rtp(96, i as u16, p)))
            .await
            .unwrap();
    }
    conn.write_raw(&frame(4, &rtp(0, 100, &[0x55; 4000])))
        .await
        .unwrap();
    conn.write_raw(&frame(4, &[0x80, 0x00, 0x01]))
        .await
        .unwrap();
    let n = video_within(&mut conn, Duration::from_millis(800)).await;
    assert!(n >= 5, "{n} video packets while the bad ones went in");
    assert!(speaker(&wav).is_empty(), "a bad packet was played");
    // The stream goes on: the right payload type plays.
    for (i, p) in tone.iter().enumerate() {
        conn.write_raw(&frame(4, &rtp(0, 200 + i as u16, p)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let n = video_within(&mut conn, Duration::from_millis(800)).await;
    assert!(n >= 5, "{n} video packets after");
    let pcm = speaker(&wav);
    assert_eq!(pcm.len(), 8000, "{} samples played", pcm.len());
    assert!(tone_share(&pcm, 8000, 1000.0) > 0.9);
    c.stop().await;
}

/// Unsharing ends a sub-account's RTSP talk at once: its connection closes and nothing more
/// plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_backchannel_revocation_ends_talk() {
    let (c, owner, dev, wav, _pu) = world().await;
    let kid = c.sub(&owner, "kidtalks").await.unwrap();
    owner
        .share(
            &dev,
            "kidtalks",
            [Scope::Live, Scope::Talk].into_iter().collect(),
        )
        .await
        .unwrap();
    let (mut conn, url, base) = connect(&kid, &dev).await;
    conn.request("DESCRIBE", &url, REQUIRE).await.unwrap();
    conn.setup_interleaved(&base, 2).await.unwrap();
    conn.request("PLAY", &format!("{base}/"), "").await.unwrap();
    let tone = pcmu_tone(1000.0, 0.5);
    for (i, p) in tone.iter().enumerate() {
        conn.write_raw(&frame(4, &rtp(0, i as u16, p)))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(speaker(&wav).len(), 4000, "the kid's talk did not play");
    owner.unshare(&dev, "kidtalks").await.unwrap();
    // The camera closes the connection.
    closed_and_deaf(&mut conn, &tone, &wav, "the connection").await;
    c.stop().await;
}

/// After an unshare: `conn` is closed within 5 s (`what` names it), and talk written to it
/// afterwards never reaches the speaker, which keeps the 4,000 samples it played before.
async fn closed_and_deaf(conn: &mut RtspConn, tone: &[Vec<u8>], wav: &Path, what: &str) {
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if conn.next().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "{what} outlived the unshare");
    for (i, p) in tone.iter().enumerate() {
        if conn
            .write_raw(&frame(4, &rtp(0, 100 + i as u16, p)))
            .await
            .is_err()
        {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(speaker(wav).len(), 4000, "talk played after the unshare");
}

/// `peercam cu talk --path relay`: the MTU opens the viewer's own talk upstream with the
/// platform's talk token, and the camera's speaker holds the tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_backchannel_through_relay_cu_talk() {
    let (c, _owner, dev, wav, _pu) = world().await;
    let (_m, _msd, _) = mtu(&c).await;
    let said = c.path().join("say.wav");
    std::fs::write(&said, wav_bytes(&sine(1000.0, 8000, 16000, 8000.0), 8000)).unwrap();
    let (ok, out, err) = c
        .cu_cli(
            env!("CARGO_BIN_EXE_peercam"),
            OWNER,
            &[
                "talk",
                &dev,
                "--file",
                said.to_str().unwrap(),
                "--path",
                "relay",
            ],
        )
        .await;
    assert!(ok, "cu talk failed: {out} {err}");
    assert!(out.contains("said 2.0 s"), "{out}");
    assert!(out.contains("relay path"), "{out}");
    let pcm = speaker(&wav);
    let p = tone_share(&pcm, 8000, 1000.0);
    eprintln!(
        "speaker: {} samples, rms {:.0}, 1 kHz share {p:.3}",
        pcm.len(),
        rms(&pcm)
    );
    assert_eq!(pcm.len(), 16000, "{} samples played", pcm.len());
    assert!(p > 0.9, "1 kHz is {p} of the energy only");
    // A path that is not offered is an error naming those that are.
    let (ok, _, err) = c
        .cu_cli(
            env!("CARGO_BIN_EXE_peercam"),
            OWNER,
            &[
                "talk",
                &dev,
                "--file",
                said.to_str().unwrap(),
                "--path",
                "mapped",
            ],
        )
        .await;
    assert!(!ok);
    assert!(err.contains("no mapped path to this device"), "{err}");
    c.stop().await;
}

/// GStreamer's `rtspsrc backchannel=onvif` through the MTU's relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_backchannel_through_relay_gstreamer() {
    if !have_gst_python() {
        peercam_test::skip(
            "h626_6_1_8_backchannel_through_relay_gstreamer",
            "GStreamer for Python with rtspsrc and mulawenc (apt-get install python3-gi gir1.2-gstreamer-1.0 gstreamer1.0-plugins-good)",
        );
        return;
    }
    let (c, owner, dev, wav, _pu) = world().await;
    let (_m, _msd, _) = mtu(&c).await;
    let url = relay_url(&owner, &dev).await;
    assert!(url.contains("/relay/"), "{url}");
    gst_talks(&url, &wav).await;
    c.stop().await;
}

/// Through the relay, the camera judges the viewer's own grant: a sub-account without `talk`
/// is answered 551 (the camera's refusal, relayed), watches on the same connection without
/// the back channel, and is not heard. A sub-account with `talk` is heard until it is
/// unshared, which ends its relayed session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_backchannel_through_relay_is_judged_by_the_camera() {
    let (c, owner, dev, wav, _pu) = world().await;
    let (_m, _msd, _) = mtu(&c).await;
    let kid = c.sub(&owner, "kidrelay").await.unwrap();
    owner
        .share(&dev, "kidrelay", [Scope::Live].into_iter().collect())
        .await
        .unwrap();
    let url = relay_url(&kid, &dev).await;
    let mut conn = RtspConn::connect(&url, Duration::from_secs(5), "test")
        .await
        .unwrap();
    let base = url
        .split('?')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let r = answer(&mut conn, "DESCRIBE", &url, REQUIRE).await;
    assert_eq!(r.status.0, 551, "{r:?}");
    assert_eq!(
        r.headers.get("Unsupported"),
        Some("www.onvif.org/ver20/backchannel")
    );
    let r = answer(&mut conn, "DESCRIBE", &url, "Accept: application/sdp\r\n").await;
    assert_eq!(r.status.0, 200, "{r:?}");
    assert!(!String::from_utf8_lossy(&r.body).contains("sendonly"));
    let r = answer(
        &mut conn,
        "SETUP",
        &format!("{base}/trackID=2"),
        "Transport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n",
    )
    .await;
    assert_eq!(r.status.0, 404, "{r:?}");
    conn.setup_interleaved(&base, 0).await.unwrap();
    conn.request("PLAY", &format!("{base}/"), "").await.unwrap();
    for (i, p) in pcmu_tone(1000.0, 0.5).iter().enumerate() {
        conn.write_raw(&frame(4, &rtp(0, i as u16, p)))
            .await
            .unwrap();
    }
    let n = video_within(&mut conn, Duration::from_secs(2)).await;
    assert!(n >= 10, "{n} relayed video packets");
    assert!(
        speaker(&wav).is_empty(),
        "the camera played a viewer without talk"
    );
    drop(conn);

    // With talk: heard through the relay, with the video of the shared feed.
    owner.unshare(&dev, "kidrelay").await.unwrap();
    owner
        .share(
            &dev,
            "kidrelay",
            [Scope::Live, Scope::Talk].into_iter().collect(),
        )
        .await
        .unwrap();
    let url = relay_url(&kid, &dev).await;
    let mut conn = RtspConn::connect(&url, Duration::from_secs(5), "test")
        .await
        .unwrap();
    let base = url
        .split('?')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let r = conn.request("DESCRIBE", &url, REQUIRE).await.unwrap();
    let sdp = peercam_rtsp::sdp::SessionDescription::parse(&r.body).unwrap();
    let (control, _) = peercam_rtsp::sdp::find_backchannel(&sdp).unwrap();
    assert_eq!(control, "trackID=2");
    conn.setup_interleaved(&base, 0).await.unwrap();
    conn.setup_interleaved(&base, 2).await.unwrap();
    conn.request("PLAY", &format!("{base}/"), "").await.unwrap();
    let tone = pcmu_tone(1000.0, 0.5);
    for (i, p) in tone.iter().enumerate() {
        conn.write_raw(&frame(4, &rtp(0, i as u16, p)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let n = video_within(&mut conn, Duration::from_millis(800)).await;
    assert!(n >= 5, "{n} relayed video packets while talking");
    let pcm = speaker(&wav);
    assert_eq!(pcm.len(), 4000, "{} samples played", pcm.len());
    assert!(tone_share(&pcm, 8000, 1000.0) > 0.9);
    // Unsharing ends the relayed session (and the camera's talk upstream) at once.
    owner.unshare(&dev, "kidrelay").await.unwrap();
    closed_and_deaf(&mut conn, &tone, &wav, "the relayed session").await;
    c.stop().await;
}

fn have_gst_onvif_server() -> bool {
    python_can(
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); from gi.repository import Gst, GstRtspServer; Gst.init(None); assert GstRtspServer.RTSPOnvifServer and Gst.ElementFactory.find('rtppcmudepay') and Gst.ElementFactory.find('openh264enc')",
    )
}

/// A wrapped ONVIF camera with a back channel (GStreamer's ONVIF RTSP server): the PU pulls
/// its video and, with `talk_to_source`, forwards what a viewer says to the camera's own back
/// channel; the wrapped camera's speaker (raw PCM) and the PU's WAV file both hold the tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_1_8_backchannel_forwarded_to_the_wrapped_camera() {
    if !have_gst_onvif_server() {
        peercam_test::skip(
            "h626_6_1_8_backchannel_forwarded_to_the_wrapped_camera",
            "GStreamer's ONVIF RTSP server for Python with openh264enc (apt-get install gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp python3-gst-1.0 gstreamer1.0-plugins-bad)",
        );
        return;
    }
    let c = Cluster::start(1).await.unwrap();
    let heard = c.path().join("wrapped-speaker.raw");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/flows/support/gst_onvif_camera.py"
    );
    let _cam = tokio::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .arg(&heard)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..150 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the ONVIF camera did not listen on {port}");
    let ids = c.provision(1).await.unwrap();
    let wav = c.path().join("speaker.wav");
    let w = wav.clone();
    let _pu = c
        .start_pu_with(&ids[0], 0, |cfg| {
            cfg.source_rtsp = Some(format!("rtsp://127.0.0.1:{port}/cam"));
            cfg.talk_to_source = true;
            cfg.speaker_wav = Some(w);
        })
        .await
        .unwrap();
    c.wait_online(&ids[0].device_id, true, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = c.owner(OWNER).await.unwrap();
    c.bind(&owner, &ids[0]).await.unwrap();
    let dev = ids[0].device_id.to_string();
    let said = c.path().join("say.wav");
    std::fs::write(&said, wav_bytes(&sine(1000.0, 8000, 16000, 8000.0), 8000)).unwrap();
    let (ok, out, err) = c
        .cu_cli(
            env!("CARGO_BIN_EXE_peercam"),
            OWNER,
            &["talk", &dev, "--file", said.to_str().unwrap()],
        )
        .await;
    assert!(ok, "cu talk failed: {out} {err}");
    // The PU's own speaker has it at once; the wrapped camera as its back channel delivers.
    let pcm = speaker(&wav);
    assert_eq!(
        pcm.len(),
        16000,
        "{} samples on the PU's speaker",
        pcm.len()
    );
    let mut forwarded = Vec::new();
    for _ in 0..50 {
        let bytes = std::fs::read(&heard).unwrap_or_default();
        forwarded = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect::<Vec<i16>>();
        if forwarded.len() >= 15000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = tone_share(&forwarded, 8000, 1000.0);
    eprintln!(
        "wrapped camera heard {} samples, rms {:.0}, 1 kHz share {p:.3}",
        forwarded.len(),
        rms(&forwarded)
    );
    assert!(
        forwarded.len() >= 15000 && forwarded.len() <= 16000,
        "{} samples forwarded",
        forwarded.len()
    );
    assert!(rms(&forwarded) > 3000.0);
    assert!(p > 0.9, "1 kHz is {p} of the energy only");
    c.stop().await;
}
