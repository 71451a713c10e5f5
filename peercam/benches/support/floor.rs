//! The fan-out floor (issue 20): a server that makes exactly the system calls an RTSP
//! fan-out over TCP interleaved must make, and nothing else. Its CPU time is the limit the
//! PU and the MTU relay are measured against in `benches/fanout.rs`.
//!
//! One thread, no runtime. It answers just enough RTSP for ffmpeg to play (OPTIONS,
//! DESCRIBE, SETUP, PLAY; answers prepared once, only the CSeq filled in), packetizes the
//! clip once (RFC 6184 over RFC 2326 10.12 `$` framing, one buffer per access unit), and
//! every 40 ms patches the one shared buffer's sequence numbers and timestamps and makes
//! exactly one `write` of it per playing viewer. A viewer starts at the next key frame.
//! A viewer whose socket is full keeps the rest for its next write (still one call); beyond
//! 4 MB it is dropped. What players send while playing (RTCP receiver reports) is read and
//! discarded once a second.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// One access unit's `$`-framed RTP packets and where their RTP headers start.
struct Unit {
    bytes: Vec<u8>,
    headers: Vec<usize>,
    key: bool,
}

struct Viewer {
    tcp: TcpStream,
    input: Vec<u8>,
    playing: bool,
    started: bool,
    pending: Vec<u8>,
}

const FRAME: Duration = Duration::from_millis(40);
const MAX_PENDING: usize = 4 << 20;
const SSRC: u32 = 0x5eed_f100;

/// The clip's access units, packetized once.
fn units(clip: &Path) -> (Vec<Unit>, Vec<u8>, Vec<u8>) {
    let data = std::fs::read(clip).expect("read the clip");
    let mut asm = peercam_media::annexb::AccessUnitAssembler::new();
    asm.push(&data).expect("Annex B");
    asm.finish().expect("Annex B");
    let aus: Vec<_> = std::iter::from_fn(|| asm.pop())
        .filter(|a| a.has_picture())
        .collect();
    let first = aus.iter().find(|a| a.sps().is_some()).expect("an SPS");
    let (sps, pps) = (
        first.sps().unwrap_or_default().to_vec(),
        first.pps().unwrap_or_default().to_vec(),
    );
    let pk = peercam_rtp::H264Packetizer::default();
    let units = aus
        .iter()
        .map(|au| {
            let payloads = pk.packetize(&au.nals, 0).expect("packetize");
            let mut u = Unit {
                bytes: Vec::new(),
                headers: Vec::new(),
                key: au.is_key(),
            };
            for p in payloads {
                let len = u16::try_from(12 + p.data.len()).expect("packet size");
                u.bytes.extend_from_slice(&[b'$', 0]);
                u.bytes.extend_from_slice(&len.to_be_bytes());
                u.headers.push(u.bytes.len());
                u.bytes
                    .extend_from_slice(&[0x80, 96 | if p.marker { 0x80 } else { 0 }]);
                u.bytes.extend_from_slice(&[0; 6]);
                u.bytes.extend_from_slice(&SSRC.to_be_bytes());
                u.bytes.extend_from_slice(&p.data);
            }
            u
        })
        .collect();
    (units, sps, pps)
}

/// Serves `rtsp://127.0.0.1:PORT/floor` from `clip` (Annex B) until killed.
pub(crate) fn run(port: u16, clip: &Path) {
    let (mut units, sps, pps) = units(clip);
    let sdp = peercam_rtsp::sdp::CameraSdp {
        session_id: 1,
        session_version: 1,
        origin_address: "127.0.0.1".into(),
        session_name: "floor".into(),
        video: Some(peercam_rtsp::sdp::H264Video {
            sps,
            pps,
            framerate: Some(25.0),
            dimensions: None,
        }),
        audio: None,
    }
    .build();
    let base = format!("rtsp://127.0.0.1:{port}/floor/");
    // The answers, prepared once; `{cseq}` is the only part filled in per request.
    let describe = format!(
        "Content-Base: {base}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let options = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n";
    let setup = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 1;timeout=60\r\n\r\n";
    let play = "Session: 1\r\nRange: npt=0.000-\r\n\r\n";
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the floor's port");
    listener.set_nonblocking(true).expect("non-blocking");
    let mut viewers: Vec<Viewer> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut seq, mut ts, mut next_unit) = (0u16, 0u32, 0usize);
    let start = Instant::now();
    for tick in 0u64.. {
        while let Ok((tcp, _)) = listener.accept() {
            let _ = tcp.set_nonblocking(true);
            let _ = tcp.set_nodelay(true);
            viewers.push(Viewer {
                tcp,
                input: Vec::new(),
                playing: false,
                started: false,
                pending: Vec::new(),
            });
        }
        // RTSP for the viewers not playing yet; what playing ones send, once a second.
        viewers.retain_mut(|v| {
            if v.playing && tick % 25 != 0 {
                return true;
            }
            loop {
                match v.tcp.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) if !v.playing => v.input.extend_from_slice(&buf[..n]),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
            while let Some(end) = v.input.windows(4).position(|w| w == b"\r\n\r\n") {
                let req = String::from_utf8_lossy(&v.input[..end]).into_owned();
                v.input.drain(..end + 4);
                let method = req.split_whitespace().next().unwrap_or_default();
                let cseq = req
                    .lines()
                    .find_map(|l| {
                        l.split_once(':')
                            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("cseq"))
                            .map(|(_, c)| c.trim().to_owned())
                    })
                    .unwrap_or_default();
                let rest = match method {
                    "OPTIONS" => options,
                    "DESCRIBE" => describe.as_str(),
                    "SETUP" => setup,
                    "PLAY" => {
                        v.playing = true;
                        play
                    }
                    _ => "\r\n",
                };
                let answer = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{rest}");
                if v.tcp.write_all(answer.as_bytes()).is_err() {
                    return false;
                }
            }
            true
        });
        // The access unit of this tick: its headers patched once, then one write per viewer.
        let this = next_unit;
        next_unit = (next_unit + 1) % units.len();
        let u = &mut units[this];
        for &h in &u.headers {
            u.bytes[h + 2..h + 4].copy_from_slice(&seq.to_be_bytes());
            u.bytes[h + 4..h + 8].copy_from_slice(&ts.to_be_bytes());
            seq = seq.wrapping_add(1);
        }
        ts = ts.wrapping_add(3600);
        let u = &units[this];
        viewers.retain_mut(|v| {
            if !v.playing || !(v.started || u.key) {
                return true;
            }
            v.started = true;
            let r = if v.pending.is_empty() {
                match v.tcp.write(&u.bytes) {
                    Ok(n) if n < u.bytes.len() => {
                        v.pending.extend_from_slice(&u.bytes[n..]);
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        v.pending.extend_from_slice(&u.bytes);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            } else {
                v.pending.extend_from_slice(&u.bytes);
                match v.tcp.write(&v.pending) {
                    Ok(n) => {
                        v.pending.drain(..n);
                        Ok(())
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
                    Err(e) => Err(e),
                }
            };
            r.is_ok() && v.pending.len() <= MAX_PENDING
        });
        let due = start + FRAME * u32::try_from(tick + 1).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}
