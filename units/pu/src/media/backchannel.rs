//! Talk forwarded to a wrapped camera (intercom, H.626.4 6.1.8): a PU re-serving a
//! third-party RTSP camera (`source_rtsp`) whose own ONVIF audio back channel takes what the
//! PU's viewers say (`talk_to_source`, docs/config.md).
//!
//! [`SourceSpeaker`] is a [`Speaker`] of the camera's one-talker intercom: the talker's
//! sound, already decoded to 16-bit PCM at 8 kHz, goes to a task that opens a second RTSP
//! connection to the source when the first sound comes (DESCRIBE with `Require:
//! www.onvif.org/ver20/backchannel`, Basic or Digest credentials from the URL), sets up only
//! the source's `a=sendonly` audio track over TCP interleaved channels, PLAYs, and sends the
//! sound as G.711 as the source asks (PCMU first, else PCMA) in 20 ms RTP packets. The
//! connection is torn down after [`IDLE`] without sound, and opened again at the next.

use std::time::Duration;

use md5::{Digest as _, Md5};
use peercam_net::Shutdown;
use peercam_net::rtsp::{RtspConn, RtspError};
use peercam_rtp::g711::{AudioCodec, Law};
use peercam_rtsp::Parsed;
use peercam_rtsp::sdp::{SessionDescription, find_backchannel};
use tokio::sync::mpsc;

use crate::speaker::Speaker;

/// The source's back channel is closed after this long without sound.
pub const IDLE: Duration = Duration::from_secs(5);
/// After a failed opening, sound is dropped this long before the next try.
const RETRY: Duration = Duration::from_secs(1);
/// Samples per RTP packet (20 ms at 8 kHz).
const PACKET: usize = 160;

/// A speaker that is the wrapped camera's back channel.
pub struct SourceSpeaker {
    tx: mpsc::Sender<Vec<i16>>,
}

impl Speaker for SourceSpeaker {
    fn play(&mut self, pcm: &[i16]) -> std::io::Result<()> {
        // Talk is real time: a source that cannot keep up loses sound, the talker is not held.
        let _ = self.tx.try_send(pcm.to_vec());
        Ok(())
    }
}

/// Plays into every speaker in turn (the camera's own and the wrapped camera's).
pub struct Both(pub Vec<Box<dyn Speaker>>);

impl Speaker for Both {
    fn play(&mut self, pcm: &[i16]) -> std::io::Result<()> {
        let mut r = Ok(());
        for s in &mut self.0 {
            if let Err(e) = s.play(pcm) {
                r = Err(e);
            }
        }
        r
    }
}

/// Starts the forwarder to `source`'s back channel; its speaker.
pub fn spawn(source: url::Url, shutdown: Shutdown) -> SourceSpeaker {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(source, rx, shutdown));
    SourceSpeaker { tx }
}

async fn run(source: url::Url, mut rx: mpsc::Receiver<Vec<i16>>, shutdown: Shutdown) {
    loop {
        let first = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => p,
                None => return,
            },
            () = shutdown.wait() => return,
        };
        match open(&source).await {
            Ok(mut up) => {
                tracing::info!(source = %redacted(&source), codec = up.codec.encoding_name(), "talk forwarded to the wrapped camera's back channel");
                let r = up.forward(first, &mut rx, &shutdown).await;
                match r {
                    Ok(()) => tracing::debug!("the wrapped camera's back channel closed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "the wrapped camera's back channel failed")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(source = %redacted(&source), error = %e, "talk not forwarded: the wrapped camera's back channel cannot be opened");
                let until = tokio::time::Instant::now() + RETRY;
                while let Ok(Some(_)) = tokio::time::timeout_at(until, rx.recv()).await {}
            }
        }
    }
}

/// The URL without its credentials, for logs.
fn redacted(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Why the source's back channel is not open.
#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    /// RTSP with the source failed or it refused (551: it has no back channel).
    #[error(transparent)]
    Rtsp(#[from] RtspError),
    /// Its SDP offers no back channel in G.711.
    #[error("the source offers no G.711 audio back channel")]
    NoBackchannel,
    /// It wants credentials the URL does not have, or refused them.
    #[error("the source refused the credentials (401)")]
    Unauthorized,
}

/// An open back channel on the source.
struct Upstream {
    conn: RtspConn,
    auth: Auth,
    base: String,
    codec: AudioCodec,
    law: Law,
    pt: u8,
    channel: u8,
    ssrc: u32,
    seq: u16,
    ts: u32,
    first: bool,
    pending: Vec<i16>,
}

async fn open(source: &url::Url) -> Result<Upstream, BackchannelError> {
    let mut plain = source.clone();
    let _ = plain.set_username("");
    let _ = plain.set_password(None);
    let url = plain.to_string();
    let mut conn = RtspConn::connect(&url, Duration::from_secs(5), "peercam-pu").await?;
    let mut auth = Auth::from_url(source);
    // ONVIF Streaming 5.3: the option tag goes with every request of the session.
    let require = format!("Require: {}\r\n", peercam_rtsp::BACKCHANNEL_TAG);
    let accept = format!("Accept: application/sdp\r\n{require}");
    let d = request(&mut conn, &mut auth, "DESCRIBE", &url, &accept).await?;
    let base = d
        .headers
        .get("content-base")
        .map_or_else(|| url.clone(), str::to_owned);
    let sdp = SessionDescription::parse(&d.body).map_err(|_| BackchannelError::NoBackchannel)?;
    let (control, codecs) = find_backchannel(&sdp).ok_or(BackchannelError::NoBackchannel)?;
    // G.711 as the source asks: mu-law first (ONVIF Profile T's mandatory codec), else A-law.
    let (pt, codec) = codecs
        .iter()
        .copied()
        .find(|(_, c)| *c == AudioCodec::Pcmu)
        .or_else(|| codecs.iter().copied().find(|(_, c)| c.law().is_some()))
        .ok_or(BackchannelError::NoBackchannel)?;
    let law = codec.law().ok_or(BackchannelError::NoBackchannel)?;
    let track = if control.starts_with("rtsp://") {
        control
    } else {
        format!("{}/{control}", base.trim_end_matches('/'))
    };
    let channel = 0u8;
    let transport = format!(
        "Transport: RTP/AVP/TCP;unicast;interleaved={channel}-{}\r\n{require}",
        channel + 1
    );
    request(&mut conn, &mut auth, "SETUP", &track, &transport).await?;
    let play = format!("Range: npt=0.000-\r\n{require}");
    request(&mut conn, &mut auth, "PLAY", &base, &play).await?;
    Ok(Upstream {
        conn,
        auth,
        base,
        codec,
        law,
        pt,
        channel,
        ssrc: rand::random(),
        seq: rand::random(),
        ts: rand::random(),
        first: true,
        pending: Vec::with_capacity(PACKET * 2),
    })
}

impl Upstream {
    /// Sends `first` and what follows until [`IDLE`] passes without sound (then TEARDOWN),
    /// the source closes, or the PU stops.
    async fn forward(
        &mut self,
        first: Vec<i16>,
        rx: &mut mpsc::Receiver<Vec<i16>>,
        shutdown: &Shutdown,
    ) -> Result<(), BackchannelError> {
        self.push(&first).await?;
        let mut keepalive = tokio::time::interval(Duration::from_secs(20));
        keepalive.tick().await;
        let idle = tokio::time::sleep(IDLE);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                p = rx.recv() => match p {
                    Some(pcm) => {
                        self.push(&pcm).await?;
                        idle.as_mut().reset(tokio::time::Instant::now() + IDLE);
                    }
                    None => break,
                },
                m = self.conn.next() => match m? {
                    Parsed::Interleaved(_) | Parsed::Response(_) | Parsed::Request(_) => {}
                },
                _ = keepalive.tick() => {
                    let h = self.auth.header("GET_PARAMETER", &self.base);
                    self.conn.send("GET_PARAMETER", &self.base, &h).await?;
                }
                () = &mut idle => break,
                () = shutdown.wait() => break,
            }
        }
        let h = self.auth.header("TEARDOWN", &self.base);
        let _ = self.conn.send("TEARDOWN", &self.base, &h).await;
        Ok(())
    }

    /// Encodes and sends whole 20 ms packets of what is pending plus `pcm`.
    async fn push(&mut self, pcm: &[i16]) -> Result<(), BackchannelError> {
        self.pending.extend_from_slice(pcm);
        let mut frames = Vec::new();
        let mut codes = Vec::with_capacity(PACKET);
        let whole = self.pending.len() / PACKET * PACKET;
        for chunk in self.pending[..whole].chunks(PACKET) {
            codes.clear();
            self.law.encode_into(chunk, &mut codes);
            let mut rtp = Vec::with_capacity(12 + codes.len());
            rtp.push(0x80);
            rtp.push(self.pt & 0x7f | if self.first { 0x80 } else { 0 });
            rtp.extend_from_slice(&self.seq.to_be_bytes());
            rtp.extend_from_slice(&self.ts.to_be_bytes());
            rtp.extend_from_slice(&self.ssrc.to_be_bytes());
            rtp.extend_from_slice(&codes);
            self.first = false;
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(PACKET as u32);
            let _ = peercam_rtsp::write_interleaved(self.channel, &rtp, &mut frames);
        }
        self.pending.drain(..whole);
        if !frames.is_empty() {
            self.conn.write_raw(&frames).await?;
        }
        Ok(())
    }
}

/// A request answered 2xx, with credentials when the source asks for them (RFC 2617 Basic
/// or Digest with MD5).
async fn request(
    conn: &mut RtspConn,
    auth: &mut Auth,
    method: &str,
    uri: &str,
    extra: &str,
) -> Result<peercam_rtsp::Response, BackchannelError> {
    for attempt in 0..2 {
        let h = auth.header(method, uri);
        conn.send(method, uri, &format!("{extra}{h}")).await?;
        let r = loop {
            match conn.next().await? {
                Parsed::Response(r) => break r,
                Parsed::Interleaved(_) | Parsed::Request(_) => {}
            }
        };
        if r.status.0 == 401 && attempt == 0 && auth.challenge(&r) {
            continue;
        }
        if r.status.0 == 401 {
            return Err(BackchannelError::Unauthorized);
        }
        if !r.status.is_success() {
            return Err(RtspError::Refused {
                method: method.to_owned(),
                status: r.status.0,
                reason: r.reason,
            }
            .into());
        }
        if conn.session.is_none()
            && let Some(s) = r.headers.get("session")
        {
            conn.session = Some(s.split(';').next().unwrap_or(s).trim().to_owned());
        }
        return Ok(r);
    }
    Err(BackchannelError::Unauthorized)
}

/// Credentials from the source URL and the scheme the source asked for.
#[derive(Debug, Default)]
struct Auth {
    user: String,
    password: String,
    scheme: Option<Scheme>,
}

#[derive(Debug)]
enum Scheme {
    Basic,
    Digest { realm: String, nonce: String },
}

impl Auth {
    fn from_url(u: &url::Url) -> Self {
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Self {
            user: dec(u.username()),
            password: dec(u.password().unwrap_or_default()),
            scheme: None,
        }
    }

    /// Takes the challenge of a 401; whether there is something to answer it with.
    fn challenge(&mut self, r: &peercam_rtsp::Response) -> bool {
        if self.user.is_empty() {
            return false;
        }
        let mut basic = false;
        for v in r.headers.get_all("WWW-Authenticate") {
            let v = v.trim();
            let (scheme, params) = v.split_once(' ').unwrap_or((v, ""));
            if scheme.eq_ignore_ascii_case("digest") {
                let p = parse_params(params);
                let get = |k: &str| {
                    p.iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                let algorithm = get("algorithm").unwrap_or_else(|| "MD5".into());
                if let (Some(realm), Some(nonce)) = (get("realm"), get("nonce"))
                    && algorithm.eq_ignore_ascii_case("md5")
                {
                    self.scheme = Some(Scheme::Digest { realm, nonce });
                    return true;
                }
            } else if scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
        if basic {
            self.scheme = Some(Scheme::Basic);
        }
        basic
    }

    /// The `Authorization` header line for a request, or nothing.
    fn header(&self, method: &str, uri: &str) -> String {
        match &self.scheme {
            None => String::new(),
            Some(Scheme::Basic) => {
                use base64::Engine as _;
                let b = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", self.user, self.password));
                format!("Authorization: Basic {b}\r\n")
            }
            Some(Scheme::Digest { realm, nonce }) => {
                let response =
                    digest_response((&self.user, &self.password), (realm, nonce), method, uri);
                format!(
                    "Authorization: Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"\r\n",
                    self.user
                )
            }
        }
    }
}

/// RFC 2617 3.2.2.1 without qop: MD5(MD5(user:realm:password):nonce:MD5(method:uri)).
fn digest_response(
    (user, password): (&str, &str),
    (realm, nonce): (&str, &str),
    method: &str,
    uri: &str,
) -> String {
    let h = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let ha1 = h(format!("{user}:{realm}:{password}"));
    let ha2 = h(format!("{method}:{uri}"));
    h(format!("{ha1}:{nonce}:{ha2}"))
}

/// `k=v, k="v"` parameters of a challenge.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, r)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_owned();
        let r = r.trim_start();
        let (v, r) = if let Some(q) = r.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_owned(), &q[end + 1..]),
                None => (q.to_owned(), ""),
            }
        } else {
            match r.find(',') {
                Some(end) => (r[..end].trim().to_owned(), &r[end..]),
                None => (r.trim().to_owned(), ""),
            }
        };
        out.push((k, v));
        rest = r.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_rfc_2617_without_qop() {
        // RFC 2069's example (the RFC 2617 computation without qop).
        let r = digest_response(
            ("Mufasa", "CircleOfLife"),
            ("testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093"),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "1949323746fe6a43ef61f9606e7febea");
    }

    #[test]
    fn challenge_parameters() {
        let p = parse_params(r#"realm="cam, inc", nonce="abc", stale=FALSE, algorithm=MD5"#);
        assert_eq!(
            p,
            vec![
                ("realm".into(), "cam, inc".into()),
                ("nonce".into(), "abc".into()),
                ("stale".into(), "FALSE".into()),
                ("algorithm".into(), "MD5".into()),
            ]
        );
        let u = url::Url::parse("rtsp://us%40er:p%3Ass@h/x").unwrap();
        let a = Auth::from_url(&u);
        assert_eq!((a.user.as_str(), a.password.as_str()), ("us@er", "p:ss"));
        assert_eq!(
            redacted(&u),
            "rtsp://h/x",
            "credentials never reach the logs"
        );
    }
}
