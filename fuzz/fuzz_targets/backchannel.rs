//! The ONVIF audio back channel (intercom, H.626.4 6.1.8): its SDP section as a camera or a
//! wrapped camera offers it, and the talker's interleaved RTP as the camera (or the MTU's
//! relay) takes it through `server::ServerConn`.
//!
//! # Input format
//!
//! ```text
//! [n] pt[n % 5] [sdp_len] sdp[sdp_len * 4] [split] stream...
//! ```
//!
//! The camera offers payload types `pt & 0x7f` (none offered: 0 and 8). `sdp` is a
//! description to look for a back channel in. A connection is brought to PLAY with the back
//! channel on interleaved channels 4-5 (GStreamer's `rtspsrc backchannel=onvif` requests),
//! then `stream` is fed in two parts cut at `split`: interleaved frames, requests, garbage.
//!
//! # Oracles besides "never panics"
//!
//! * `find_backchannel` finds a non-empty codec list; the section `backchannel_media` builds
//!   from it is found again as `trackID=2` with those codecs (first of each, standard
//!   payload types), and the description still reads back the same camera.
//! * Every `Backchannel` event came on channel 4 for track 2, carries an offered payload
//!   type and a non-empty payload, and was at most `max_backchannel_packet` bytes of RTP.
//! * The counters: `received` is the number of events; dropped plus received packets are
//!   at most the frames the input could hold.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use peercam_rtp::AudioCodec;
use peercam_rtsp::parse::{Parsed, parse};
use peercam_rtsp::sdp::{CameraSdp, SessionDescription, backchannel_media, find_backchannel};
use peercam_rtsp::server::{ServerConfig, ServerConn, ServerEvent};

const URL: &str = "rtsp://10.0.0.2:8554/live/pc-0123456789abcdef";

fn sdp_oracles(bytes: &[u8]) {
    let Ok(sd) = SessionDescription::parse(bytes) else {
        return;
    };
    let camera = CameraSdp::from_description(&sd);
    let Some((_control, codecs)) = find_backchannel(&sd) else {
        return;
    };
    assert!(!codecs.is_empty());
    let mut want: Vec<AudioCodec> = Vec::new();
    for (_, c) in &codecs {
        if !want.contains(c) {
            want.push(*c);
        }
    }
    let mut again = sd.clone();
    // Only the rebuilt section is a back channel: drop the others.
    again
        .media
        .retain(|m| !(m.media.eq_ignore_ascii_case("audio") && m.attribute("sendonly").is_some()));
    again
        .media
        .push(backchannel_media(&want).expect("codecs give a section"));
    let text = again.to_string();
    let reparsed = SessionDescription::parse(text.as_bytes()).expect("built SDP parses");
    let (control, found) = find_backchannel(&reparsed).expect("the section is found");
    assert_eq!(control, "trackID=2");
    let found: Vec<(u8, AudioCodec)> = found;
    let expected: Vec<(u8, AudioCodec)> = want.iter().map(|c| (c.payload_type(), *c)).collect();
    assert_eq!(found, expected, "{text}");
    if let Some(camera) = camera {
        let back = CameraSdp::from_description(&reparsed);
        assert_eq!(back.as_ref(), Some(&camera), "{text}");
    }
}

fn responses(conn: &mut ServerConn) -> Vec<peercam_rtsp::Response> {
    std::iter::from_fn(|| conn.poll_transmit())
        .filter_map(|b| match parse(&b) {
            Ok(Some((Parsed::Response(r), _))) => Some(r),
            _ => None,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let take = |rest: &mut &[u8], n: usize| -> Vec<u8> {
        let n = n.min(rest.len());
        let (a, b) = rest.split_at(n);
        *rest = b;
        a.to_vec()
    };
    let n = take(&mut rest, 1).first().map_or(0, |b| usize::from(b % 5));
    let mut pts: Vec<u8> = take(&mut rest, n).iter().map(|p| p & 0x7f).collect();
    if pts.is_empty() {
        pts = vec![0, 8];
    }
    let sdp_len = take(&mut rest, 1)
        .first()
        .map_or(0, |b| usize::from(*b) * 4);
    let sdp = take(&mut rest, sdp_len);
    sdp_oracles(&sdp);
    let split = take(&mut rest, 1).first().copied().unwrap_or(0);

    let now = Instant::now();
    let config = ServerConfig::default();
    let max = config.max_backchannel_packet;
    let mut conn = ServerConn::new(config, now, [0x5a; 16]);
    conn.handle_input(
        now,
        format!("DESCRIBE {URL}?token=t RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\nRequire: www.onvif.org/ver20/backchannel\r\n\r\n").as_bytes(),
    );
    let Some(ServerEvent::Describe {
        backchannel: true, ..
    }) = conn.poll_event()
    else {
        panic!("DESCRIBE with Require is surfaced with backchannel");
    };
    conn.offer_backchannel(2, &pts);
    let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=sendonly\r\na=control:trackID=2\r\n";
    conn.respond_describe(1, sdp.into(), Some(format!("{URL}/")))
        .expect("DESCRIBE answered");
    let _ = responses(&mut conn);
    conn.handle_input(
        now,
        format!("SETUP {URL}/trackID=2 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n\r\n").as_bytes(),
    );
    let Some(ServerEvent::Setup {
        track: 2,
        transports,
        ..
    }) = conn.poll_event()
    else {
        panic!("SETUP of the back channel is surfaced");
    };
    conn.accept_setup(2, 2, transports[0].clone())
        .expect("SETUP answered");
    let session = responses(&mut conn)
        .first()
        .and_then(|r| {
            r.headers
                .get("session")
                .map(|s| s.split(';').next().unwrap_or(s).to_owned())
        })
        .expect("a session");
    conn.handle_input(
        now,
        format!("PLAY {URL}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n").as_bytes(),
    );
    let Some(ServerEvent::Play { cseq: 3, .. }) = conn.poll_event() else {
        panic!("PLAY is surfaced");
    };
    conn.accept_play(3, &[]).expect("PLAY answered");
    let _ = responses(&mut conn);

    let cut = usize::from(split).min(rest.len());
    let mut events = 0u64;
    for part in [&rest[..cut], &rest[cut..]] {
        conn.handle_input(now, part);
        while let Some(ev) = conn.poll_event() {
            if let ServerEvent::Backchannel(p) = ev {
                events += 1;
                assert_eq!((p.channel, p.track), (4, 2));
                assert!(pts.contains(&p.payload_type), "{p:?}");
                assert!(!p.payload.is_empty());
                assert!(p.payload.len() + 12 <= max);
            }
        }
        let _ = responses(&mut conn);
    }
    let stats = conn.backchannel_stats().expect("offered");
    assert_eq!(stats.received, events);
    let frames = rest.iter().filter(|b| **b == b'$').count() as u64;
    assert!(
        stats.received + stats.wrong_payload_type + stats.malformed + stats.oversized <= frames
    );
});
