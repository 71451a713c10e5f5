//! `server::ServerConn` driven by a sequence of steps in virtual time, with the application's
//! decisions taken from the input.
//!
//! # Input format
//!
//! ```text
//! [timeout] step step ...        step = [op] [len] payload[len]
//! ```
//!
//! `timeout` sets the session timeout to `timeout % 120 + 1` seconds. `op % 6`:
//!
//! | op | action |
//! |---|---|
//! | 0 | `handle_input(payload)` |
//! | 1 | `handle_input` of a real player request (ffmpeg, GStreamer, VLC) picked by `payload[0]`, carrying this connection's session id |
//! | 2 | advance virtual time by `u16(payload[0..2]) × 10 ms`, then `handle_timeout` if due |
//! | 3 | decide every outstanding DESCRIBE/SETUP/PLAY: `payload[0]` bit 0 accepts, else rejects with `400 + payload[1] % 100`; SETUP picks alternative `payload[2]`; bit 1 answers with a wrong CSeq first |
//! | 4 | `payload[0] % 8`: 0 `close`, 1 `handle_peer_closed`, else `touch` |
//! | 5 | `handle_input(payload)` one byte at a time |
//!
//! # Oracles
//!
//! * Nothing panics; application calls return errors, never panic.
//! * Every transmit is exactly one well-formed response with a status from 100.
//! * Responses come in request order: their CSeqs are a subsequence of the CSeqs of the
//!   requests in the input, as a separate parser sees them.
//! * At most one DESCRIBE/SETUP/PLAY awaits a decision at a time.
//! * `Closed` is reported once; closed is final, has no timeout and no session; after it
//!   nothing more is sent or reported.
//! * A session id is the 32 hex characters of the connection's randomness, and a `Session`
//!   header in a response names it.
//! * The session plays only after an accepted PLAY.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use peercam_rtsp::parse::{Limits, Parsed, parse, parse_with};
use peercam_rtsp::server::{ServerConfig, ServerConn, ServerEvent, SessionState};
use peercam_rtsp::{StatusCode, Transport};

const RANDOM: [u8; 16] = [0x5a; 16];
const SID: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const URL: &str = "rtsp://10.0.0.2:8554/live/pc-0123456789abcdef";

fn canned(i: u8) -> Vec<u8> {
    let ua = "User-Agent: Lavf60.16.100\r\n";
    let s = format!("Session: {SID}\r\n");
    let c = u32::from(i) + 1;
    let text = match i % 12 {
        0 => format!("OPTIONS {URL} RTSP/1.0\r\nCSeq: {c}\r\n{ua}\r\n"),
        1 => format!(
            "DESCRIBE {URL}?token=t RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: {c}\r\n{ua}\r\n"
        ),
        2 => format!(
            "SETUP {URL}/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: {c}\r\n{ua}\r\n"
        ),
        3 => format!(
            "SETUP {URL}/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\nCSeq: {c}\r\n{ua}{s}\r\n"
        ),
        4 => format!(
            "SETUP {URL}/trackID=0 RTSP/1.0\nCSeq: {c}\nTransport: RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=0-1\n\n"
        ),
        5 => format!("PLAY {URL}/ RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: {c}\r\n{ua}{s}\r\n"),
        6 => format!("PAUSE {URL}/ RTSP/1.0\r\nCSeq: {c}\r\n{s}\r\n"),
        7 => format!("GET_PARAMETER {URL}/ RTSP/1.0\r\nCSeq: {c}\r\n{ua}{s}\r\n"),
        8 => format!("TEARDOWN {URL}/ RTSP/1.0\r\nCSeq: {c}\r\n{ua}{s}\r\n"),
        9 => format!("PLAY {URL}/ RTSP/1.0\r\nCSeq: {c}\r\nSession: 0000\r\n\r\n"),
        10 => return vec![b'$', 1, 0, 4, 0x80, 0xc9, 0, 1],
        _ => {
            format!("SET_PARAMETER {URL} RTSP/1.0\r\nCSeq: {c}\r\nContent-Length: 5\r\n\r\nx: y\n")
        }
    };
    text.into_bytes()
}

struct Harness {
    now: Instant,
    conn: ServerConn,
    /// Decisions the application owes: (cseq, event).
    owed: Vec<ServerEvent>,
    /// What a separate parser sees of the input.
    shadow: Vec<u8>,
    shadow_broken: bool,
    request_cseqs: Vec<u32>,
    /// How far the responses have matched into `request_cseqs`.
    matched: usize,
    closed: bool,
    played: bool,
}

impl Harness {
    fn input(&mut self, bytes: &[u8]) {
        if !self.conn.is_closed() && !self.shadow_broken {
            self.shadow.extend_from_slice(bytes);
            loop {
                match parse_with(&self.shadow, &Limits::default()) {
                    Ok(Some((item, n))) => {
                        if let Parsed::Request(r) = item
                            && let Ok(Some(c)) = r.headers.cseq()
                        {
                            self.request_cseqs.push(c);
                        }
                        self.shadow.drain(..n);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        self.shadow_broken = true;
                        break;
                    }
                }
            }
        }
        self.conn.handle_input(self.now, bytes);
    }

    fn decide(&mut self, p: &[u8]) {
        let bits = p.first().copied().unwrap_or(0);
        let code = StatusCode(400 + u16::from(p.get(1).copied().unwrap_or(0) % 100));
        let pick = usize::from(p.get(2).copied().unwrap_or(0));
        for ev in std::mem::take(&mut self.owed) {
            let cseq = match &ev {
                ServerEvent::Describe { cseq, .. }
                | ServerEvent::Setup { cseq, .. }
                | ServerEvent::Play { cseq, .. } => *cseq,
                _ => continue,
            };
            if bits & 2 != 0 {
                assert!(self.conn.reject(cseq.wrapping_add(1), code, "").is_err());
            }
            let result = if bits & 1 == 0 {
                self.conn.reject(cseq, code, "no")
            } else {
                match ev {
                    ServerEvent::Describe { .. } => {
                        self.conn
                            .respond_describe(cseq, "v=0\r\n".into(), Some(format!("{URL}/")))
                    }
                    ServerEvent::Setup {
                        track, transports, ..
                    } => {
                        let mut t = transports
                            .get(pick % transports.len().max(1))
                            .cloned()
                            .unwrap_or_default();
                        t.ssrc = Some(0x1234_5678);
                        self.conn.accept_setup(cseq, track, t)
                    }
                    _ => {
                        let r = self
                            .conn
                            .accept_play(cseq, &[(0, 1, 2), (1, 3, 4), (7, 0, 0)]);
                        self.played |= r.is_ok();
                        r
                    }
                }
            };
            assert!(result.is_ok() || self.conn.is_closed(), "{result:?}");
        }
    }

    fn settle(&mut self) {
        while let Some(out) = self.conn.poll_transmit() {
            assert!(!self.closed, "transmit after Closed was reported");
            let Ok(Some((Parsed::Response(r), n))) = parse(&out) else {
                panic!("not one response: {:?}", String::from_utf8_lossy(&out));
            };
            assert_eq!(n, out.len());
            assert!(r.status.0 >= 100);
            if let Ok(Some(c)) = r.headers.cseq() {
                let found = self.request_cseqs[self.matched..]
                    .iter()
                    .position(|&q| q == c);
                let Some(k) = found else {
                    panic!(
                        "response CSeq {c} out of order; requests {:?}",
                        self.request_cseqs
                    );
                };
                self.matched += k + 1;
            }
            if r.status != StatusCode::SESSION_NOT_FOUND
                && let Ok(Some(s)) = r.headers.session()
            {
                assert_eq!(s.id, SID);
            }
        }
        while let Some(ev) = self.conn.poll_event() {
            assert!(!self.closed, "event after Closed: {ev:?}");
            match &ev {
                ServerEvent::Closed { .. } => self.closed = true,
                ServerEvent::Describe { .. }
                | ServerEvent::Setup { .. }
                | ServerEvent::Play { .. } => {
                    assert!(
                        self.owed.is_empty(),
                        "two decisions outstanding: {:?} and {ev:?}",
                        self.owed
                    );
                    if let ServerEvent::Setup { transports, .. } = &ev {
                        assert!(!transports.is_empty());
                    }
                    self.owed.push(ev);
                }
                _ => {}
            }
        }
        assert_eq!(self.closed, self.conn.is_closed());
        if self.closed {
            assert!(self.conn.poll_timeout().is_none());
            assert!(self.conn.session_id().is_none());
            assert_eq!(self.conn.state(), SessionState::Init);
            self.owed.clear();
        }
        if let Some(id) = self.conn.session_id() {
            assert_eq!(id, SID);
        }
        if self.conn.state() == SessionState::Playing {
            assert!(self.played);
        }
        let _ = Transport::format_list(
            &self
                .conn
                .tracks()
                .map(|(_, t)| t.clone())
                .collect::<Vec<_>>(),
        );
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "one real instant is the origin of virtual time"
)]
fn origin() -> Instant {
    Instant::now()
}

fuzz_target!(|data: &[u8]| {
    let Some((&timeout, mut rest)) = data.split_first() else {
        return;
    };
    let now = origin();
    let mut config = ServerConfig::default();
    config.session_timeout = Duration::from_secs(u64::from(timeout % 120) + 1);
    let mut h = Harness {
        now,
        conn: ServerConn::new(config, now, RANDOM),
        owed: Vec::new(),
        shadow: Vec::new(),
        shadow_broken: false,
        request_cseqs: Vec::new(),
        matched: 0,
        closed: false,
        played: false,
    };
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        match op % 6 {
            0 => h.input(payload),
            1 => {
                let bytes = canned(payload.first().copied().unwrap_or(0));
                h.input(&bytes);
            }
            2 => {
                let ms = u16::from_be_bytes([
                    payload.first().copied().unwrap_or(0),
                    payload.get(1).copied().unwrap_or(0),
                ]);
                h.now += Duration::from_millis(u64::from(ms) * 10);
                if h.conn.poll_timeout().is_some_and(|t| t <= h.now) {
                    h.conn.handle_timeout(h.now);
                }
            }
            3 => h.decide(payload),
            4 => match payload.first().copied().unwrap_or(2) % 8 {
                0 => h.conn.close(),
                1 => h.conn.handle_peer_closed(),
                _ => h.conn.touch(h.now),
            },
            _ => {
                for b in payload {
                    h.input(std::slice::from_ref(b));
                }
            }
        }
        h.settle();
    }
});
