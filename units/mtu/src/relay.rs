//! The RTSP relay (H.626.4 7.3; Mp / Pd towards cameras, Mc / Cd towards viewers).
//!
//! One **feed** per camera: the first viewer's arrival makes the MTU ask the platform for
//! the camera's stream ([`DeviceRequest::RelayUpstream`]); the camera connects out to the
//! tunnel port over TLS, presents the one-time ticket, and serves RTSP over that channel;
//! the MTU PLAYs it with the platform's token and copies every RTP/RTCP packet to all
//! viewers of the camera (one unicast upstream, many downstreams). A viewer joining a
//! running feed starts at the next key frame. The feed ends a linger time after its last
//! viewer left.
//!
//! Viewers speak plain RTSP with interleaved RTP (6.3.1); UDP transport is answered 461 so
//! that players fall back to TCP. Each viewer's token is judged by the platform (Dm) with
//! the same one-use rules as at the camera (8.4).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use peercam_base::DeviceId;
use peercam_net::Shutdown;
use peercam_net::accept::{AcceptConfig, Accepted, Incoming};
use peercam_net::rtsp::serve::{self, Describe, Handler, Io, Play, ServeError, Setup};
use peercam_net::rtsp::{RtspConn, RtspError};
use peercam_rtsp::msg::{LowerTransport, StatusCode};
use peercam_rtsp::{Parsed, write_interleaved};
use peercam_signal::cmd::{DeviceRequest, PlatformAnswer};
use peercam_signal::play::Caps;
use peercam_signal::relay::{MtuLoad, RELAY_HELLO};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use peercam_net::agent::{PlatformReq, unavailable_answer as unavailable};

use crate::{multicast, talk, transcode};

/// Relay counters (exported in load reports).
#[derive(Debug, Default)]
pub struct Stats {
    /// Viewers connected and authorised now.
    pub viewers: AtomicU32,
    /// Cameras with a running upstream now.
    pub upstreams: AtomicU32,
    /// Upstreams ever opened.
    pub upstreams_total: AtomicU64,
    /// Bytes received from cameras.
    pub bytes_in: AtomicU64,
    /// Bytes sent to viewers.
    pub bytes_out: AtomicU64,
    /// Viewers refused (bad token, camera unreachable).
    pub refused: AtomicU64,
    /// Bytes sent to multicast groups (once per packet, however many listen).
    pub multicast_bytes_out: AtomicU64,
    /// Feeds ever transcoded because the camera could not serve the viewer's profile.
    pub transcodes_total: AtomicU64,
    last_out: Mutex<(Option<Instant>, u64)>,
}

impl Stats {
    /// The load to report, with the outgoing bit rate since the previous call.
    pub fn load(&self, capacity: u32) -> MtuLoad {
        let out = self.bytes_out.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut last = self.last_out.lock().unwrap_or_else(PoisonError::into_inner);
        let kbps = match last.0 {
            Some(t) if now > t => {
                let bits = out.saturating_sub(last.1) * 8;
                let ms = u64::try_from(now.duration_since(t).as_millis())
                    .unwrap_or(1)
                    .max(1);
                u32::try_from(bits / ms).unwrap_or(u32::MAX)
            }
            _ => 0,
        };
        *last = (Some(now), out);
        MtuLoad {
            upstreams: self.upstreams.load(Ordering::Relaxed),
            viewers: self.viewers.load(Ordering::Relaxed),
            out_kbps: kbps,
            capacity,
        }
    }
}

/// How often a long relayed session's usage is reported (clause 7 accounting).
const USAGE_INTERVAL: Duration = Duration::from_secs(300);

/// Track numbers a feed can carry: video 0, audio 1, the back channel 2, AAC 3.
const MAX_TRACKS: usize = 4;

/// The tracks (`a=control:trackID=N`, N below [`MAX_TRACKS`]) a camera's description offers
/// to be played, in order; the video track alone when it names none.
fn track_ids(sdp: &str) -> Vec<usize> {
    let mut ids: Vec<usize> = Vec::new();
    let mut sendonly = false;
    let mut current: Option<usize> = None;
    let flush = |id: Option<usize>, sendonly: bool, ids: &mut Vec<usize>| {
        if let Some(id) = id.filter(|i| *i < MAX_TRACKS && !sendonly && !ids.contains(i)) {
            ids.push(id);
        }
    };
    for l in sdp.lines().map(str::trim) {
        if l.starts_with("m=") {
            flush(current.take(), sendonly, &mut ids);
            sendonly = false;
        } else if l == "a=sendonly" {
            sendonly = true;
        } else if let Some(n) = l.strip_prefix("a=control:trackID=") {
            current = n.parse().ok();
        }
    }
    flush(current, sendonly, &mut ids);
    if ids.is_empty() {
        ids.push(0);
    }
    ids
}

/// One RTP or RTCP packet of a feed.
#[derive(Debug)]
struct Packet {
    track: usize,
    rtcp: bool,
    /// The first packet of a key frame (SPS or IDR) on the video track.
    key: bool,
    data: Bytes,
}

/// The packets of one video access unit (with the audio and RTCP that arrived during it),
/// or audio and RTCP arriving between access units: what a viewer sends in one write.
#[derive(Debug)]
struct Batch {
    packets: Vec<Packet>,
    /// Holds the first packet of a key frame.
    key: bool,
}

#[derive(Debug, Clone)]
struct FeedInfo {
    sdp: String,
    tracks: usize,
}

/// What a feed keeps between packets, under one lock.
#[derive(Debug, Default)]
struct FeedState {
    /// Every batch since the last key frame began (GOP cache), so that a viewer joining a
    /// running feed starts at once instead of waiting for the next key frame.
    gop: Vec<Arc<Batch>>,
    /// Packets in [`FeedState::gop`].
    gop_packets: usize,
    /// The packets of the access unit being received.
    pending: Vec<Packet>,
}

struct Feed {
    tx: broadcast::Sender<Arc<Batch>>,
    ready: watch::Receiver<Option<Result<FeedInfo, FeedError>>>,
    viewers: AtomicUsize,
    /// (sequence, timestamp) of the last RTP packet per track, for RTP-Info.
    last: Mutex<[Option<(u16, u32)>; MAX_TRACKS]>,
    /// The GOP cache and the access unit being received. Batches go into the cache and out
    /// to the viewers under its lock, so a joiner's snapshot and its subscription meet
    /// without a gap or a repeat.
    state: Mutex<FeedState>,
    /// The feed's multicast group, once a viewer asked for multicast.
    multicast: OnceLock<Arc<multicast::Sender>>,
}

impl Feed {
    /// Takes `p`; at the end of a video access unit (its marker bit), sends what is pending
    /// (with the audio and RTCP that came meanwhile) to the viewers as one batch: one
    /// wake-up and one write per viewer per access unit. Audio and RTCP between access
    /// units wait for the next one, or go alone once [`AUDIO_BATCH`] of them are pending.
    fn publish(&self, p: Packet) {
        if !p.rtcp && p.data.len() >= 12 && p.track < MAX_TRACKS {
            let d = &p.data;
            let seq = u16::from_be_bytes([d[2], d[3]]);
            let ts = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
            self.last.lock().unwrap_or_else(PoisonError::into_inner)[p.track] = Some((seq, ts));
        }
        if let Some(m) = self.multicast.get() {
            m.send(p.track, p.rtcp, &p.data);
        }
        let video = |q: &Packet| q.track == 0 && !q.rtcp;
        let ends_unit = video(&p) && p.data.get(1).is_some_and(|b| b & 0x80 != 0);
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let new_unit = video(&p)
            && st
                .pending
                .iter()
                .rev()
                .find(|q| video(q))
                .is_some_and(|q| q.data.get(4..8) != p.data.get(4..8));
        if (p.key || new_unit) && !st.pending.is_empty() {
            // A key frame, or another access unit (a camera that leaves the marker bit
            // out), begins: what came before it is its own batch.
            self.flush(&mut st);
        }
        st.pending.push(p);
        let between_units = !st.pending.iter().any(video);
        if ends_unit
            || (between_units && st.pending.len() >= AUDIO_BATCH)
            || st.pending.len() >= MAX_BATCH
        {
            self.flush(&mut st);
        }
    }

    fn flush(&self, st: &mut FeedState) {
        let packets = std::mem::take(&mut st.pending);
        let key = packets.first().is_some_and(|p| p.key);
        let b = Arc::new(Batch { packets, key });
        if key {
            st.gop.clear();
            st.gop_packets = 0;
        }
        if st.gop_packets + b.packets.len() <= GOP_CACHE_PACKETS && (!st.gop.is_empty() || key) {
            st.gop_packets += b.packets.len();
            st.gop.push(b.clone());
        } else if !st.gop.is_empty() {
            // Too long a GOP to cache: joiners wait for the next key frame.
            st.gop.clear();
            st.gop_packets = 0;
        }
        let _ = self.tx.send(b);
    }
}

/// The GOP cache holds at most this many packets (about 4 MB); beyond, joiners wait for
/// the next key frame.
const GOP_CACHE_PACKETS: usize = 3000;

/// A batch holds at most this many packets (an access unit of about 700 kB).
const MAX_BATCH: usize = 512;

/// Packets outside a video access unit sent alone (about 100 ms of 20 ms audio frames).
const AUDIO_BATCH: usize = 5;

/// Batches a feed's channel holds for its slowest viewer: about 10 s at 25 frames a second.
/// A viewer further behind skips to the next key frame.
const FEED_BATCHES: usize = 256;

/// Decrements a feed's viewer count when a viewer goes.
struct Joined {
    feed: Arc<Feed>,
    stats: Arc<Stats>,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.feed.viewers.fetch_sub(1, Ordering::AcqRel);
        self.stats.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The back channel's track (`trackID=2`), as at the camera.
const BACKCHANNEL_TRACK: usize = peercam_rtsp::sdp::BACKCHANNEL_TRACK;

/// A TLS channel from a camera, after its hello.
pub(crate) type Tunnel = peercam_net::tokio_rustls::server::TlsStream<TcpStream>;

/// The relay.
pub struct Relay {
    platform: mpsc::Sender<PlatformReq>,
    tunnels: Mutex<HashMap<String, oneshot::Sender<Tunnel>>>,
    /// One feed per camera and profile (H.626.4 7.3: the camera encodes each profile once;
    /// the MTU copies it to every viewer of that profile).
    feeds: Mutex<HashMap<(DeviceId, Caps), Arc<Feed>>>,
    /// Counters.
    pub stats: Arc<Stats>,
    tunnel_addr: String,
    server_name: String,
    linger: Duration,
    shutdown: Shutdown,
    /// (camera, user or everyone): relayed sessions to end now (D5).
    revocations: broadcast::Sender<(DeviceId, Option<i64>)>,
    /// Multicast groups, when the operator turned multicast on.
    multicast: Option<Arc<multicast::Groups>>,
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap_or_else(|_| rand::fill(&mut b[..]));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Relay {
    pub(crate) fn new(
        platform: mpsc::Sender<PlatformReq>,
        tunnel_addr: String,
        server_name: String,
        linger: Duration,
        multicast: Option<multicast::Config>,
        shutdown: Shutdown,
    ) -> Arc<Self> {
        let stats = Arc::new(Stats::default());
        Arc::new(Self {
            platform,
            tunnels: Mutex::new(HashMap::new()),
            feeds: Mutex::new(HashMap::new()),
            multicast: multicast.map(|c| multicast::Groups::new(c, stats.clone())),
            stats,
            tunnel_addr,
            server_name,
            linger,
            shutdown,
            revocations: broadcast::channel(64).0,
        })
    }

    /// Ends the relayed sessions of `camera` (of `user` only, when given); returns how many
    /// viewers were told.
    pub(crate) fn revoke(&self, camera: &DeviceId, user: Option<i64>) -> usize {
        self.revocations.send((camera.clone(), user)).unwrap_or(0)
    }

    /// Forgets tickets no camera used (their requests failed or timed out) now and then.
    pub(crate) async fn expire_tickets(self: Arc<Self>) {
        // Tickets are removed by their waiters on every path; this only bounds what a
        // crashed waiter could leave.
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.tunnels
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .retain(|_, w| !w.is_closed());
                }
                () = self.shutdown.wait() => return,
            }
        }
    }

    pub(crate) async fn ask(&self, request: DeviceRequest) -> PlatformAnswer {
        let (reply, rx) = oneshot::channel();
        if self
            .platform
            .send(PlatformReq::Request { request, reply })
            .await
            .is_err()
        {
            return unavailable();
        }
        tokio::time::timeout(Duration::from_secs(15), rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(unavailable)
    }

    /// Accepts cameras' relay channels (Pd): TLS, then `PEERCAM-RELAY/1 <ticket>`; a
    /// channel whose ticket nobody waits for is closed.
    pub(crate) async fn serve_tunnels(
        self: Arc<Self>,
        listener: TcpListener,
        acceptor: peercam_net::tokio_rustls::TlsAcceptor,
    ) {
        let config = AcceptConfig::new("relay tunnels");
        let mut incoming = Incoming::new(listener, config, self.shutdown.clone());
        while let Some(Accepted { tcp, peer, .. }) = incoming.next().await {
            let (me, acceptor) = (self.clone(), acceptor.clone());
            tokio::spawn(async move {
                let r = tokio::time::timeout(Duration::from_secs(5), async {
                    let mut tls = acceptor.accept(tcp).await.map_err(HelloError::Tls)?;
                    let line = read_line(&mut tls, 256).await?;
                    let ticket = line
                        .strip_prefix(RELAY_HELLO)
                        .map(str::trim)
                        .ok_or_else(|| HelloError::NotHello(line.clone()))?
                        .to_owned();
                    Ok::<_, HelloError>((tls, ticket))
                })
                .await;
                match r {
                    Ok(Ok((tls, ticket))) => {
                        let waiter = me
                            .tunnels
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&ticket);
                        match waiter {
                            Some(w) => {
                                let _ = w.send(tls);
                            }
                            None => {
                                tracing::info!(%peer, "relay channel with an unknown ticket closed")
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "relay channel refused"),
                    Err(_) => tracing::info!(%peer, "relay channel too slow to start"),
                }
            });
        }
    }

    /// Serves viewers (Mc / Cd).
    pub(crate) async fn serve_viewers(self: Arc<Self>, listener: TcpListener) {
        let config = AcceptConfig::new("RTSP relay");
        let mut incoming = Incoming::new(listener, config, self.shutdown.clone());
        while let Some(Accepted { tcp, peer, .. }) = incoming.next().await {
            let me = self.clone();
            tokio::spawn(async move {
                // Mn / Nd: recorder playback through a pipe (H.626.4 8.3).
                if crate::pipe::wants_pipe(&tcp).await {
                    if let Err(e) = crate::pipe::run(me, tcp, peer).await {
                        tracing::debug!(%peer, error = %e, "pipe viewer ended");
                    }
                    return;
                }
                if let Err(e) = Viewer::new(me, peer).run(tcp).await {
                    tracing::debug!(%peer, error = %e, "relay viewer ended");
                }
            });
        }
    }

    /// Joins `camera`'s feed, starting its upstream if there is none; waits until it is
    /// playing.
    async fn join(
        self: &Arc<Self>,
        camera: &DeviceId,
        caps: Caps,
    ) -> Result<(Joined, FeedInfo), FeedError> {
        let key = (camera.clone(), caps);
        let feed = {
            let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
            let live = feeds
                .get(&key)
                .filter(|f| !matches!(&*f.ready.borrow(), Some(Err(_))))
                .cloned();
            match live {
                Some(f) => f,
                None => {
                    let (tx, _) = broadcast::channel(FEED_BATCHES);
                    let (ready_tx, ready) = watch::channel(None);
                    let f = Arc::new(Feed {
                        tx,
                        ready,
                        viewers: AtomicUsize::new(0),
                        last: Mutex::new([None; MAX_TRACKS]),
                        state: Mutex::new(FeedState::default()),
                        multicast: OnceLock::new(),
                    });
                    feeds.insert(key.clone(), f.clone());
                    tokio::spawn(self.clone().upstream(key.clone(), f.clone(), ready_tx));
                    f
                }
            }
        };
        feed.viewers.fetch_add(1, Ordering::AcqRel);
        self.stats.viewers.fetch_add(1, Ordering::Relaxed);
        let joined = Joined {
            feed: feed.clone(),
            stats: self.stats.clone(),
        };
        let mut ready = feed.ready.clone();
        let info = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(r) = ready.borrow_and_update().clone() {
                    return r;
                }
                if ready.changed().await.is_err() {
                    return Err(FeedError::Ended);
                }
            }
        })
        .await
        .map_err(|_| FeedError::StartTimeout)??;
        Ok((joined, info))
    }

    /// One camera's upstream, from the platform request to the last viewer's departure.
    async fn upstream(
        self: Arc<Self>,
        key: (DeviceId, Caps),
        feed: Arc<Feed>,
        ready: watch::Sender<Option<Result<FeedInfo, FeedError>>>,
    ) {
        self.stats.upstreams.fetch_add(1, Ordering::Relaxed);
        self.stats.upstreams_total.fetch_add(1, Ordering::Relaxed);
        let camera = &key.0;
        let r = self.run_upstream(camera, key.1, &feed, &ready).await;
        self.stats.upstreams.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = &r {
            tracing::info!(%camera, error = %e, "relay upstream ended");
        }
        if ready.borrow().is_none() || r.is_err() {
            let e = r.err().unwrap_or(FeedError::Ended);
            ready.send_replace(Some(Err(e)));
        }
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        if feeds.get(&key).is_some_and(|f| Arc::ptr_eq(f, &feed)) {
            feeds.remove(&key);
        }
    }

    /// Mp then Pd: has the platform order the camera to open its channel here, then PLAYs
    /// the camera over it; returns the connection, the camera's SDP, its track count and
    /// the base URL.
    async fn open_upstream(
        &self,
        camera: &DeviceId,
        caps: Caps,
    ) -> Result<(RtspConn, String, usize, String), FeedError> {
        let (tunnel, token) = self.open_channel(camera, caps).await?;
        // Pd: RTSP over the camera's channel, as a viewer holding the platform's token.
        let mut conn = RtspConn::new(Box::new(tunnel), "peercam-mtu");
        let base = format!("rtsp://relay/live/{camera}");
        let d = conn
            .request(
                "DESCRIBE",
                &format!("{base}?token={token}"),
                "Accept: application/sdp\r\n",
            )
            .await?;
        let sdp = String::from_utf8_lossy(&d.body).into_owned();
        // Every track the camera offers, by its control URL: video (0), G.711 (1) and a
        // re-served camera's AAC (3, issue 16) pass through alike.
        let ids = track_ids(&sdp);
        let tracks = ids.iter().max().map_or(1, |m| m + 1);
        for t in ids {
            conn.setup_interleaved(&base, t).await?;
        }
        conn.request("PLAY", &format!("{base}/"), "Range: npt=0.000-\r\n")
            .await?;
        Ok((conn, sdp, tracks, base))
    }

    /// Mp then Pd up to the channel: has the platform order the camera to connect here and
    /// waits for its channel; returns it with the platform's one-time token for the MTU.
    pub(crate) async fn open_channel(
        &self,
        camera: &DeviceId,
        caps: Caps,
    ) -> Result<(Tunnel, String), FeedError> {
        let (tunnel, token) = self.open_tunnel(camera, Some(caps)).await?;
        Ok((tunnel, token.unwrap_or_default()))
    }

    /// Mn then Nd (H.626.4 8.3): has the platform order the recorder to connect here for
    /// one piped viewer and waits for its channel.
    pub(crate) async fn open_pipe(&self, recorder: &DeviceId) -> Result<Tunnel, FeedError> {
        Ok(self.open_tunnel(recorder, None).await?.0)
    }

    /// A receiver of the platform's revocations (camera, user or everyone), D5.
    pub(crate) fn subscribe_revocations(&self) -> broadcast::Receiver<(DeviceId, Option<i64>)> {
        self.revocations.subscribe()
    }

    /// The MTU's shutdown.
    pub(crate) fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// A device's channel to the tunnel port: a camera's for a feed (`caps`: the viewers'
    /// profile; the platform's token for the camera comes back), or, without `caps`, a
    /// recorder's for a pipe (no token: the viewer's own fresh token goes over it).
    async fn open_tunnel(
        &self,
        device: &DeviceId,
        caps: Option<Caps>,
    ) -> Result<(Tunnel, Option<String>), FeedError> {
        // Mp / Mn: the platform orders the device to connect here with this ticket.
        let ticket = random_b64(24);
        let (tx, rx) = oneshot::channel();
        self.tunnels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ticket.clone(), tx);
        let pipe = caps.is_none();
        let answer = self
            .ask(DeviceRequest::RelayUpstream {
                camera: device.clone(),
                ticket: ticket.clone(),
                tunnel: self.tunnel_addr.clone(),
                server_name: self.server_name.clone(),
                caps,
                pipe,
            })
            .await;
        let token = match answer {
            PlatformAnswer::Stream { token, .. } if !pipe => Some(token),
            PlatformAnswer::Ordered if pipe => None,
            PlatformAnswer::Refused { code, message } => {
                self.forget_ticket(&ticket);
                return Err(FeedError::Refused { code, message });
            }
            other => {
                self.forget_ticket(&ticket);
                return Err(FeedError::Unexpected(format!("{other:?}")));
            }
        };
        let Ok(Ok(tunnel)) = tokio::time::timeout(Duration::from_secs(10), rx).await else {
            self.forget_ticket(&ticket);
            return Err(FeedError::NoChannel);
        };
        Ok((tunnel, token))
    }

    async fn run_upstream(
        &self,
        camera: &DeviceId,
        caps: Caps,
        feed: &Arc<Feed>,
        ready: &watch::Sender<Option<Result<FeedInfo, FeedError>>>,
    ) -> Result<(), FeedError> {
        let (mut conn, sdp, tracks, base) = self.open_upstream(camera, caps).await?;
        // 7.3: a camera that cannot encode the viewer's profile gets transcoded here.
        let mut fmtp_rx = None;
        let transcoder = match transcode::Source::from_sdp(&sdp)
            .and_then(|s| transcode::target(s, &caps).map(|t| (s, t)))
        {
            Some((source, target)) => {
                let (fmtp_tx, rx) = oneshot::channel();
                let out = feed.clone();
                let tx = transcode::spawn(
                    target,
                    move |o| {
                        out.publish(Packet {
                            track: 0,
                            rtcp: false,
                            key: o.key,
                            data: Bytes::from(o.data),
                        });
                    },
                    move |fmtp| {
                        let _ = fmtp_tx.send(fmtp);
                    },
                )
                .map_err(|e| FeedError::Transcode(Arc::new(e)))?;
                self.stats.transcodes_total.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%camera, ?source, ?target, "relay upstream transcoded for the viewer's profile");
                fmtp_rx = Some(rx);
                Some(tx)
            }
            None => {
                ready.send_replace(Some(Ok(FeedInfo {
                    sdp: sdp.clone(),
                    tracks,
                })));
                None
            }
        };
        tracing::info!(%camera, tracks, "relay upstream playing");
        let mut keepalive = tokio::time::interval(Duration::from_secs(20));
        keepalive.tick().await;
        let mut check = tokio::time::interval(Duration::from_millis(250));
        let mut idle_since: Option<Instant> = None;
        loop {
            tokio::select! {
                msg = conn.next() => match msg? {
                    Parsed::Interleaved(f) => {
                        self.stats.bytes_in.fetch_add(f.payload.len() as u64, Ordering::Relaxed);
                        let track = usize::from(f.channel / 2);
                        let rtcp = f.channel % 2 == 1;
                        if track >= tracks {
                            continue;
                        }
                        if let Some(t) = &transcoder && track == 0 && !rtcp {
                            // A full queue loses the packet; the transcoder resumes at the
                            // next key frame.
                            let _ = t.try_send(f.payload);
                            continue;
                        }
                        let key = !rtcp && track == 0 && is_key_start(&f.payload);
                        feed.publish(Packet { track, rtcp, key, data: Bytes::from(f.payload) });
                    }
                    Parsed::Response(_) | Parsed::Request(_) => {}
                },
                fmtp = async {
                    match fmtp_rx.as_mut() {
                        Some(rx) => rx.await,
                        None => std::future::pending().await,
                    }
                }, if fmtp_rx.is_some() => {
                    fmtp_rx = None;
                    let fmtp = fmtp.map_err(|_| FeedError::TranscoderStopped)?;
                    let sdp = transcode::rewrite_sdp(&sdp, &fmtp);
                    ready.send_replace(Some(Ok(FeedInfo { sdp, tracks })));
                }
                _ = keepalive.tick() => {
                    conn.send("GET_PARAMETER", &format!("{base}/"), "").await?;
                }
                _ = check.tick() => {
                    if feed.viewers.load(Ordering::Acquire) == 0 {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.linger {
                            let _ = conn.send("TEARDOWN", &format!("{base}/"), "").await;
                            tracing::info!(%camera, "relay upstream closed: no viewers");
                            return Ok(());
                        }
                    } else {
                        idle_since = None;
                    }
                }
                () = self.shutdown.wait() => return Ok(()),
            }
        }
    }

    fn forget_ticket(&self, ticket: &str) {
        self.tunnels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(ticket);
    }
}

/// Why a camera's feed is not available to viewers.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FeedError {
    /// The feed ended before or while a viewer waited.
    #[error("the camera's feed ended")]
    Ended,
    /// The camera did not start its stream in time.
    #[error("the camera did not start its stream in time")]
    StartTimeout,
    /// The platform refused the upstream (Mp).
    #[error("platform refused the upstream ({code}): {message}")]
    Refused {
        /// The platform's code.
        code: peercam_signal::refusal::Refusal,
        /// Its explanation.
        message: String,
    },
    /// The platform answered something else.
    #[error("unexpected platform answer {0}")]
    Unexpected(String),
    /// The camera did not open its relay channel (Pd) in time.
    #[error("the camera did not open its relay channel")]
    NoChannel,
    /// RTSP with the camera over its channel failed.
    #[error("upstream: {0}")]
    Rtsp(Arc<RtspError>),
    /// The transcoder could not start.
    #[error("{0}")]
    Transcode(Arc<crate::MtuError>),
    /// The transcoder stopped before it said its format.
    #[error("the transcoder stopped")]
    TranscoderStopped,
}

impl From<RtspError> for FeedError {
    fn from(e: RtspError) -> Self {
        Self::Rtsp(Arc::new(e))
    }
}

/// Why a camera's relay channel was refused before its ticket was read.
#[derive(Debug, thiserror::Error)]
enum HelloError {
    /// The TLS handshake failed.
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// Reading the hello failed.
    #[error("reading the hello: {0}")]
    Io(std::io::Error),
    /// The hello line is too long.
    #[error("hello line too long")]
    TooLong,
    /// The hello is not text.
    #[error("hello is not UTF-8")]
    NotUtf8,
    /// The line is not a relay hello.
    #[error("not a relay hello: {0:?}")]
    NotHello(String),
}

/// Whether an RTP packet carries the start of an H.264 key frame.
fn is_key_start(rtp: &[u8]) -> bool {
    peercam_rtp::RtpPacket::parse(rtp)
        .is_ok_and(|p| peercam_rtp::h264::starts_key_frame(p.payload()))
}

async fn read_line<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    max: usize,
) -> Result<String, HelloError> {
    let mut line = Vec::new();
    loop {
        let b = s.read_u8().await.map_err(HelloError::Io)?;
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > max {
            return Err(HelloError::TooLong);
        }
    }
    let s = String::from_utf8(line).map_err(|_| HelloError::NotUtf8)?;
    Ok(s.trim_end_matches('\r').to_owned())
}

/// What wakes a viewer's connection.
enum Wake {
    Packet(Result<Arc<Batch>, broadcast::error::RecvError>),
    Revocation(Result<(DeviceId, Option<i64>), broadcast::error::RecvError>),
    /// The camera ended the viewer's talk upstream.
    TalkEnded,
}

impl Handler for Viewer {
    type Wake = Wake;

    async fn describe(&mut self, io: Io<'_>, req: Describe) {
        let (conn, cseq, uri) = (io.conn, req.cseq, req.uri.as_str());
        let (path, token) = (req.path.as_str(), req.token);
        let camera = path
            .strip_prefix("/relay/")
            .and_then(|c| c.parse::<DeviceId>().ok());
        let Some(camera) = camera else {
            let _ = conn.reject(cseq, StatusCode(404), "Not Found");
            return;
        };
        if self.who.is_none() {
            let Some(token) = token else {
                let _ = conn.reject(cseq, StatusCode(401), "Unauthorized");
                return;
            };
            // Dm: the platform judges the viewer's token (one use, as at the camera); a
            // viewer asking for the back channel also gets a talk token for the camera.
            let answer = self
                .relay
                .ask(DeviceRequest::RelayAuthorize {
                    camera: camera.clone(),
                    token,
                    client: self.peer.to_string(),
                    backchannel: req.backchannel,
                    pipe: false,
                })
                .await;
            match answer {
                PlatformAnswer::Granted {
                    grant, talk_token, ..
                } => {
                    self.who = Some((camera.clone(), grant.user, grant.caps));
                    self.talk_token = talk_token;
                }
                PlatformAnswer::Refused { code, .. } => {
                    self.relay.stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %self.peer, %camera, %code, "relay viewer refused");
                    let (status, reason) = serve::refusal(&code);
                    let _ = conn.reject(cseq, status, reason);
                    return;
                }
                _ => {
                    let _ = conn.reject(cseq, StatusCode(503), "Service Unavailable");
                    return;
                }
            }
        }
        let Some((granted, _, caps)) = self.who.clone() else {
            return;
        };
        if granted != camera {
            // The grant is for one camera only.
            let _ = conn.reject(cseq, StatusCode(401), "Unauthorized");
            return;
        }
        // 6.1.8: the back channel, judged by the camera on the viewer's own talk upstream.
        if !req.backchannel {
            self.talk = None;
        } else if self.talk.is_none() {
            let refused = match self.talk_token.take() {
                None => Some(
                    "no talk token (asked after the first DESCRIBE, or an older CMU)".to_owned(),
                ),
                Some(t) => match talk::open(&self.relay, &camera, caps, &t).await {
                    Ok(up) => {
                        tracing::info!(peer = %self.peer, %camera, "relayed back channel open: the camera takes this viewer's talk");
                        self.talk = Some(up);
                        None
                    }
                    Err(talk::TalkError::Upstream(e)) => {
                        tracing::info!(peer = %self.peer, %camera, error = %e, "relayed back channel unavailable");
                        let _ = conn.reject(cseq, StatusCode(503), "Service Unavailable");
                        return;
                    }
                    Err(e) => Some(e.to_string()),
                },
            };
            if let Some(why) = refused {
                tracing::info!(peer = %self.peer, %camera, "relayed back channel refused: {why}");
                let _ = conn.reject_unsupported(cseq, &[peercam_rtsp::BACKCHANNEL_TAG]);
                return;
            }
        }
        if self.joined.is_none() {
            match self.relay.join(&camera, caps).await {
                Ok(j) => self.joined = Some(j),
                Err(e) => {
                    self.relay.stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %self.peer, %camera, error = %e, "relay feed unavailable");
                    let _ = conn.reject(cseq, StatusCode(503), "Service Unavailable");
                    return;
                }
            }
        }
        let Some((_, info)) = &self.joined else {
            return;
        };
        let sdp = match &self.talk {
            Some(t) => {
                let pts: Vec<u8> = t.codecs.iter().map(|(pt, _)| *pt).collect();
                conn.offer_backchannel(BACKCHANNEL_TRACK, &pts);
                talk::with_backchannel(&info.sdp, &t.codecs)
            }
            None => info.sdp.clone(),
        };
        let _ = conn.respond_describe(cseq, sdp, Some(serve::content_base(uri)));
    }

    async fn setup(&mut self, io: Io<'_>, req: Setup) {
        let (conn, cseq, track) = (io.conn, req.cseq, req.track);
        let transports = req.transports;
        let Some((_, info)) = &self.joined else {
            let _ = conn.reject(cseq, StatusCode(455), "Method Not Valid in This State");
            return;
        };
        if track == BACKCHANNEL_TRACK && self.talk.is_some() {
            // The viewer's voice comes on the RTSP connection: interleaved only.
            let Some(offer) = transports
                .into_iter()
                .find(|t| t.multicast != Some(true) && serve::is_interleaved(t))
            else {
                let _ = conn.reject(cseq, StatusCode(461), "Unsupported Transport");
                return;
            };
            let (answer, _, _) = serve::interleaved(offer, track);
            let _ = conn.accept_setup(cseq, track, answer);
            return;
        }
        if track >= info.tracks {
            let _ = conn.reject(cseq, StatusCode(404), "Not Found");
            return;
        }
        // Cd is RTP over the RTSP connection (6.3.1); players fall back to it on 461.
        // Multicast where the operator allows it (7.3).
        let multicast = self.relay.multicast.clone();
        let Some(offer) = transports.into_iter().find(|t| {
            if t.multicast == Some(true) {
                multicast.is_some() && t.lower != Some(LowerTransport::Tcp)
            } else {
                serve::is_interleaved(t)
            }
        }) else {
            let _ = conn.reject(cseq, StatusCode(461), "Unsupported Transport");
            return;
        };
        if let Some(groups) = multicast
            && offer.multicast == Some(true)
            && let Some((j, _)) = &self.joined
        {
            let sender = match j.feed.multicast.get() {
                Some(s) => s.clone(),
                None => match groups.open() {
                    Ok(s) => {
                        let _ = j.feed.multicast.set(Arc::new(s));
                        match j.feed.multicast.get() {
                            Some(s) => s.clone(),
                            None => return,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(peer = %self.peer, error = %e, "no multicast group for a viewer");
                        let _ = conn.reject(cseq, StatusCode(453), "Not Enough Bandwidth");
                        return;
                    }
                },
            };
            let _ = conn.accept_setup(cseq, track, sender.transport(track));
            self.multicast = Some(sender);
            return;
        }
        let (chosen, rtp, rtcp) = serve::interleaved(offer, track);
        self.channels[track] = Some((rtp, rtcp));
        let _ = conn.accept_setup(cseq, track, chosen);
    }

    /// PLAY: the GOP so far first (a prompt picture), then the live packets.
    async fn play(&mut self, io: Io<'_>, req: Play) {
        let (conn, out, cseq) = (io.conn, io.out, req.cseq);
        let Some((j, _)) = &self.joined else {
            let _ = conn.reject(cseq, StatusCode(455), "Method Not Valid in This State");
            return;
        };
        if let Some(m) = &self.multicast {
            self.listening = Some(multicast::Listening::new(m.clone()));
        }
        let last = *j.feed.last.lock().unwrap_or_else(PoisonError::into_inner);
        if self.channels.iter().all(Option::is_none) {
            // Multicast only: the packets go to the group, not this connection.
            let info: Vec<(usize, u16, u32)> = (0..MAX_TRACKS)
                .filter_map(|t| last[t].map(|(s, ts)| (t, s.wrapping_add(1), ts)))
                .collect();
            let _ = conn.accept_play(cseq, &info);
            return;
        }
        let cached = {
            let st = j.feed.state.lock().unwrap_or_else(PoisonError::into_inner);
            self.rx = Some(j.feed.tx.subscribe());
            st.gop.clone()
        };
        // RTP-Info names the first packet each track will get.
        let first_cached = |t: usize| {
            cached
                .iter()
                .flat_map(|b| &b.packets)
                .find(|p| p.track == t && !p.rtcp && p.data.len() >= 12)
                .map(|p| {
                    let d = &p.data;
                    (
                        u16::from_be_bytes([d[2], d[3]]),
                        u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
                    )
                })
        };
        let info: Vec<(usize, u16, u32)> = (0..MAX_TRACKS)
            .filter(|t| self.channels[*t].is_some())
            .filter_map(|t| {
                first_cached(t)
                    .or_else(|| last[t].map(|(s, ts)| (s.wrapping_add(1), ts)))
                    .map(|(s, ts)| (t, s, ts))
            })
            .collect();
        self.waiting_key = true;
        let _ = conn.accept_play(cseq, &info);
        serve::drain(conn, out);
        for b in &cached {
            self.forward(b, out);
        }
    }

    fn pause(&mut self) {
        self.rx = None;
        self.listening = None;
    }

    fn teardown(&mut self) {
        self.pause();
        // Talk ends with the session (the talk upstream is torn down).
        self.talk = None;
    }

    /// The viewer's voice, to the camera's back channel on its talk upstream.
    fn backchannel(&mut self, p: peercam_rtsp::server::BackchannelPacket) {
        if let Some(t) = &self.talk
            && !t.send(talk::rtp(&p, self.talk_ssrc))
        {
            tracing::debug!(peer = %self.peer, "relayed talk packet dropped: the camera's side is behind");
        }
    }

    async fn wait(&mut self) -> Wake {
        let pkt = async {
            match self.rx.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let talk_ended = async {
            match self.talk.as_mut() {
                Some(t) => {
                    let _ = (&mut t.ended).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            p = pkt => Wake::Packet(p),
            r = self.revocations.recv() => Wake::Revocation(r),
            () = talk_ended => Wake::TalkEnded,
        }
    }

    async fn wake(&mut self, io: Io<'_>, wake: Wake) -> Result<(), ServeError> {
        let out = io.out;
        match wake {
            Wake::Packet(Ok(p)) => {
                if self.usage.1.elapsed() >= USAGE_INTERVAL {
                    self.report_usage(true);
                }
                self.forward(&p, out);
                // Send what is queued in one write when access units pile up.
                for _ in 0..16 {
                    match self.rx.as_mut().map(broadcast::Receiver::try_recv) {
                        Some(Ok(p)) => self.forward(&p, out),
                        _ => break,
                    }
                }
            }
            Wake::Packet(Err(broadcast::error::RecvError::Lagged(n))) => {
                tracing::debug!(peer = %self.peer, skipped = n, "relay viewer lagged; waiting for a key frame");
                self.waiting_key = true;
            }
            Wake::Packet(Err(broadcast::error::RecvError::Closed)) => {
                return Err(ServeError::SourceEnded("the camera's feed ended".into()));
            }
            Wake::Revocation(Ok((camera, user))) => {
                if let Some((c, u, _)) = &self.who
                    && *c == camera
                    && user.is_none_or(|x| x == *u)
                {
                    tracing::info!(peer = %self.peer, %camera, "relayed session revoked by the platform");
                    return Err(ServeError::Revoked);
                }
            }
            // Missed revocations: end rather than risk serving a revoked viewer.
            Wake::Revocation(Err(broadcast::error::RecvError::Lagged(_))) => {
                return Err(ServeError::Revoked);
            }
            Wake::Revocation(Err(broadcast::error::RecvError::Closed)) => {}
            Wake::TalkEnded => {
                // The camera ended the talk (a revocation there, the camera gone): the
                // viewer's session ends with it rather than talk into nothing.
                self.talk = None;
                return Err(ServeError::SourceEnded(
                    "the camera ended the viewer's talk".into(),
                ));
            }
        }
        Ok(())
    }
}

/// One viewer's RTSP connection.
struct Viewer {
    relay: Arc<Relay>,
    peer: SocketAddr,
    /// The camera, the user and the profile granted, once the platform granted the viewer.
    who: Option<(DeviceId, i64, Caps)>,
    revocations: broadcast::Receiver<(DeviceId, Option<i64>)>,
    joined: Option<(Joined, FeedInfo)>,
    /// Interleaved channel pair per track, as the viewer set up.
    channels: [Option<(u8, u8)>; MAX_TRACKS],
    rx: Option<broadcast::Receiver<Arc<Batch>>>,
    /// The feed's multicast group, when the viewer set up a track for multicast.
    multicast: Option<Arc<multicast::Sender>>,
    /// Counted as a multicast listener while playing.
    listening: Option<multicast::Listening>,
    waiting_key: bool,
    /// From the platform's grant when the viewer asked for the back channel: the token the
    /// viewer's talk upstream presents to the camera (6.1.8).
    talk_token: Option<String>,
    /// The viewer's talk upstream, once the camera took its talk.
    talk: Option<talk::TalkUpstream>,
    /// The SSRC of the viewer's voice towards the camera.
    talk_ssrc: u32,
    /// Clause 7 accounting: bytes sent to this viewer since the last usage report, and
    /// when that report was.
    usage: (u64, Instant),
}

impl Viewer {
    fn new(relay: Arc<Relay>, peer: SocketAddr) -> Self {
        Self {
            revocations: relay.revocations.subscribe(),
            relay,
            peer,
            who: None,
            joined: None,
            channels: [None; MAX_TRACKS],
            rx: None,
            multicast: None,
            listening: None,
            waiting_key: true,
            talk_token: None,
            talk: None,
            talk_ssrc: rand::random(),
            usage: (0, Instant::now()),
        }
    }

    /// Clause 7 accounting: reports the bytes sent to the viewer since the last report
    /// ([`DeviceRequest::RelayUsage`]) without waiting for the answer.
    fn report_usage(&mut self, interim: bool) {
        let Some((camera, user, _)) = self.who.clone() else {
            return;
        };
        let (bytes, since) = std::mem::replace(&mut self.usage, (0, Instant::now()));
        if bytes == 0 && interim {
            return;
        }
        let seconds = u32::try_from(since.elapsed().as_secs()).unwrap_or(u32::MAX);
        let request = DeviceRequest::RelayUsage {
            camera,
            user,
            bytes,
            seconds,
            interim,
        };
        let relay = self.relay.clone();
        tokio::spawn(async move {
            match relay.ask(request).await {
                PlatformAnswer::Stored { .. } => {}
                other => tracing::info!(answer = ?other, bytes, "relay usage not recorded"),
            }
        });
    }

    async fn run(mut self, tcp: TcpStream) -> Result<(), ServeError> {
        let shutdown = self.relay.shutdown.clone();
        let served = serve::serve(tcp, &mut self, async move {
            shutdown.wait().await;
            Ok(())
        })
        .await;
        self.report_usage(false);
        served
    }

    /// Appends a batch's packets of the tracks the viewer set up to `out`, from a key frame
    /// on when the viewer waits for one.
    fn forward(&mut self, b: &Batch, out: &mut Vec<u8>) {
        if self.waiting_key {
            if !b.key {
                return;
            }
            self.waiting_key = false;
        }
        let mut n = 0;
        for p in &b.packets {
            let Some((rtp, rtcp)) = self.channels.get(p.track).copied().flatten() else {
                continue;
            };
            let ch = if p.rtcp { rtcp } else { rtp };
            if write_interleaved(ch, &p.data, out).is_ok() {
                n += p.data.len() as u64 + 4;
            }
        }
        self.relay.stats.bytes_out.fetch_add(n, Ordering::Relaxed);
        self.usage.0 += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed() -> Feed {
        Feed {
            tx: broadcast::channel(FEED_BATCHES).0,
            ready: watch::channel(None).1,
            viewers: AtomicUsize::new(0),
            last: Mutex::new([None; MAX_TRACKS]),
            state: Mutex::new(FeedState::default()),
            multicast: OnceLock::new(),
        }
    }

    /// An RTP packet of `track` with sequence `seq` and the marker bit `marker`.
    fn packet(track: usize, seq: u16, marker: bool, key: bool) -> Packet {
        let mut d = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&[0; 8]);
        d.extend_from_slice(b"payload");
        Packet {
            track,
            rtcp: false,
            key,
            data: Bytes::from(d),
        }
    }

    #[test]
    fn h626_7_3_a_feed_sends_each_access_unit_as_one_batch() {
        let f = feed();
        let mut rx = f.tx.subscribe();
        // A key frame in three packets with an audio packet among them, then a P frame.
        f.publish(packet(0, 1, false, true));
        f.publish(packet(1, 100, false, false));
        f.publish(packet(0, 2, false, false));
        assert!(
            rx.try_recv().is_err(),
            "nothing before the access unit ends"
        );
        f.publish(packet(0, 3, true, false));
        let b = rx.try_recv().unwrap();
        assert!(b.key);
        assert_eq!(b.packets.len(), 4);
        f.publish(packet(0, 4, true, false));
        let b = rx.try_recv().unwrap();
        assert!(!b.key);
        assert_eq!(b.packets.len(), 1);
        // Audio between access units waits for a few of its own, then goes alone.
        for s in 0..AUDIO_BATCH as u16 {
            f.publish(packet(1, 101 + s, false, false));
        }
        assert_eq!(rx.try_recv().unwrap().packets.len(), AUDIO_BATCH);
        // A key frame without a marker before it still starts its own batch.
        f.publish(packet(0, 5, false, false));
        f.publish(packet(0, 6, true, true));
        let (a, b) = (rx.try_recv().unwrap(), rx.try_recv().unwrap());
        assert!(!a.key && b.key);
        // Without marker bits, a new timestamp ends the access unit before it.
        let mut p = packet(0, 7, false, false);
        let mut d = p.data.to_vec();
        d[7] = 1;
        p.data = Bytes::from(d);
        f.publish(packet(0, 8, false, false));
        assert!(rx.try_recv().is_err());
        f.publish(p);
        assert_eq!(rx.try_recv().unwrap().packets.len(), 1);
        // A joiner's cache starts at the last key frame.
        let st = f.state.lock().unwrap();
        assert_eq!(st.gop.len(), 2);
        assert!(st.gop[0].key && !st.gop[1].key);
    }

    #[test]
    fn every_played_track_of_the_description_is_relayed() {
        // A PU re-serving an AAC camera: video, AAC (track 3) before G.711 (track 1).
        let sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=0\r\n\
                   m=audio 0 RTP/AVP 97\r\na=control:trackID=3\r\n\
                   m=audio 0 RTP/AVP 0\r\na=control:trackID=1\r\n\
                   m=audio 0 RTP/AVP 0\r\na=sendonly\r\na=control:trackID=2\r\n";
        assert_eq!(track_ids(sdp), [0, 3, 1]);
        assert_eq!(track_ids("v=0\r\nm=video 0 RTP/AVP 96\r\n"), [0]);
        assert_eq!(
            track_ids("m=video 0 RTP/AVP 96\r\na=control:trackID=9\r\n"),
            [0],
            "beyond the relay's tracks"
        );
    }
}
