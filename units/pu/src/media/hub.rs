//! Encoders per viewing profile, shared by every session that asks for the same one.
//!
//! Each running profile is one thread: it renders the scene at the profile's size and rate,
//! marks each access unit with a SEI frame counter and capture time, encodes, and publishes
//! the access unit to its subscribers. A new subscriber makes the next frame an IDR (no
//! waiting for the GOP); a profile nobody watches stops after a grace period.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode, SpsPpsStrategy,
    UsageType,
};
use peercam_rtp::H264Packetizer;
use peercam_signal::play::Caps;
use tokio::sync::{broadcast, watch};

use super::scene::{Frame, render};
use crate::clock::MediaClock;
use crate::control::Control;

/// A viewing profile: picture size, frame rate and bit rate (H.626.4 6.1.3: CIF, D1, 720P,
/// 1-25 fps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Profile {
    /// Width, pixels.
    pub width: u16,
    /// Height, pixels.
    pub height: u16,
    /// Frames per second.
    pub fps: u8,
    /// Target bit rate, kbit/s.
    pub kbps: u32,
}

/// The sizes the camera offers, largest first, with the bit rate each gets when the viewer
/// allows more: 720P, D1, CIF (H.626.4 6.1.3) and QCIF, the smallest picture a viewer may ask
/// for (the CMU refuses capabilities below 176x144).
pub const SIZES: [(u16, u16, u32); 4] = [
    (1280, 720, 2000),
    (704, 576, 1200),
    (352, 288, 400),
    (176, 144, 128),
];

/// The least bit rate for a size and frame rate, in bits per pixel: below it OpenH264 can
/// only meet the rate by skipping most frames, so a smaller picture (or fewer frames) serves
/// the viewer better. 0.03 bit/pixel puts CIF at 25 fps at 76 kbit/s (86 with the frame
/// tags), 720P at 691 kbit/s.
const MIN_BITS_PER_PIXEL: f64 = 0.03;

/// The least bit rate, kbit/s, worth spending on `width` x `height` at `fps`.
/// Includes the frame tags' share ([`FRAME_TAG_BITS`]).
fn min_kbps(width: u16, height: u16, fps: u8) -> u32 {
    let pixels = f64::from(width) * f64::from(height) * f64::from(fps);
    let tags = f64::from(FRAME_TAG_BITS) * f64::from(fps);
    ((pixels * MIN_BITS_PER_PIXEL + tags) / 1000.0).ceil() as u32
}

impl Profile {
    /// The best profile within a viewer's capabilities (clause 7; H.626.4 6.1.3, 8.4: the
    /// camera encodes what the viewer can take), capped by the camera's own maximum frame
    /// rate: the largest size that fits the picture limits and whose least bit rate
    /// (`MIN_BITS_PER_PIXEL`) fits the viewer's; when not even the smallest does at the
    /// asked rate, the smallest size at fewer frames per second. The encoder skips frames to
    /// hold the bit rate ([`make_encoder`]), so what is sent never exceeds `max_kbps`.
    ///
    /// Capabilities below the smallest size are refused by the CMU before a token is minted;
    /// should they reach the camera anyway, it serves QCIF and says so in its log.
    pub fn for_caps(caps: &Caps, camera_max_fps: u8) -> Self {
        let fps = caps.max_fps.clamp(1, 25).min(camera_max_fps.max(1));
        let kbps_cap = caps.max_kbps.max(1);
        let fitting = || {
            SIZES
                .iter()
                .copied()
                .filter(|(w, h, _)| *w <= caps.max_width && *h <= caps.max_height)
        };
        let pick = fitting()
            .find(|(w, h, _)| min_kbps(*w, *h, fps) <= kbps_cap)
            .map(|size| (size, fps))
            .or_else(|| {
                // Not even the smallest fitting size at this rate: fewer frames.
                let (w, h, k) = fitting().next_back()?;
                let fps = (1..=fps)
                    .rev()
                    .find(|f| min_kbps(w, h, *f) <= kbps_cap)
                    .unwrap_or(1);
                Some(((w, h, k), fps))
            });
        let ((width, height, kbps), fps) = match pick {
            Some(p) => p,
            None => {
                let smallest = SIZES[SIZES.len() - 1];
                tracing::warn!(
                    max_width = caps.max_width,
                    max_height = caps.max_height,
                    "the viewer's picture limits are below the smallest profile; serving {}x{}",
                    smallest.0,
                    smallest.1
                );
                (smallest, fps)
            }
        };
        Self {
            width,
            height,
            fps,
            kbps: kbps.min(kbps_cap),
        }
    }
}

/// One encoded access unit.
#[derive(Debug)]
pub struct AccessUnit {
    /// NAL units without start codes, in decoding order.
    pub nals: Vec<Bytes>,
    /// Presentation time, 90 kHz units since the pipeline started.
    pub pts_90k: u64,
    /// Whether it is an IDR access unit (carries SPS and PPS).
    pub key: bool,
    /// Frame number since the pipeline started.
    pub frame: u64,
    /// Capture time, Unix microseconds.
    pub capture_unix_us: u64,
    /// The RTP payloads of the access unit (RFC 6184), made once here and sent by every
    /// session with its own RTP header: fan-out costs a header per packet per viewer.
    pub payloads: Vec<peercam_rtp::Payload>,
}

impl AccessUnit {
    /// The 32-bit RTP media timestamp (90 kHz) of the access unit.
    pub fn rtp_timestamp(&self) -> u32 {
        (self.pts_90k & 0xffff_ffff) as u32
    }
}

impl AccessUnit {
    /// The SPS and PPS of a key access unit.
    pub fn parameter_sets(&self) -> Option<(Bytes, Bytes)> {
        let sps = self
            .nals
            .iter()
            .find(|n| n.first().is_some_and(|b| b & 0x1f == 7))?;
        let pps = self
            .nals
            .iter()
            .find(|n| n.first().is_some_and(|b| b & 0x1f == 8))?;
        Some((sps.clone(), pps.clone()))
    }
}

struct Pipeline {
    profile: Profile,
    tx: broadcast::Sender<Arc<AccessUnit>>,
    force_idr: AtomicBool,
    /// The latest SPS/PPS, for SDP.
    params: watch::Sender<Option<(Bytes, Bytes)>>,
    stopped: AtomicBool,
    frames: AtomicU64,
    /// Keep the current GOP for joiners (sources that cannot make an IDR on demand).
    keep_gop: bool,
    gop: Mutex<Vec<Arc<AccessUnit>>>,
    /// The encoder's thread, woken when a joiner asks for an IDR (see [`Pacer::next_frame`]).
    worker: std::sync::OnceLock<std::thread::Thread>,
}

impl Pipeline {
    /// Asks for an IDR and wakes the encoder, so that it makes it now rather than at its
    /// next frame tick.
    fn want_idr(&self) {
        self.force_idr.store(true, Ordering::Release);
        if let Some(t) = self.worker.get() {
            t.unpark();
        }
    }
}

/// The most a kept GOP may hold.
const MAX_GOP_BYTES: usize = 8 * 1024 * 1024;

/// A session's view of a running profile.
pub struct Subscription {
    /// Access units, starting with the IDR made for this subscriber.
    pub rx: broadcast::Receiver<Arc<AccessUnit>>,
    params: watch::Receiver<Option<(Bytes, Bytes)>>,
    /// The profile served.
    pub profile: Profile,
    _pipeline: Arc<Pipeline>,
}

impl Subscription {
    /// Asks the encoder to make the next frame an IDR (after a loss, or at PLAY).
    pub fn request_idr(&self) {
        self._pipeline.want_idr();
    }

    /// The current GOP, from its IDR, of a source that cannot make an IDR on demand (empty
    /// for the others: they make one for each joiner).
    pub fn gop(&self) -> Vec<Arc<AccessUnit>> {
        self._pipeline
            .gop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits for the profile's SPS and PPS (for the SDP), at most `within`.
    pub async fn parameter_sets(&mut self, within: Duration) -> Option<(Bytes, Bytes)> {
        let r = tokio::time::timeout(within, self.params.wait_for(Option::is_some))
            .await
            .ok()?
            .ok()?;
        r.clone()
    }
}

/// The set of running encoders.
pub struct MediaHub {
    pipelines: Mutex<HashMap<Profile, Weak<Pipeline>>>,
    control: Arc<Control>,
    clock: Arc<MediaClock>,
    stream_id: u32,
    source: Source,
    audio: Arc<super::audio::AudioHub>,
}

/// Where pictures come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The synthetic scene, encoded per viewing profile.
    Synthetic,
    /// A third-party RTSP camera, pulled and served as it is (its size and rate).
    Rtsp(super::pull::PullConfig),
    /// An H.264 file (Annex B or MP4), looped at `fps`, served as it is to every viewer (no
    /// transcoding: its size is the file's).
    File {
        /// The access units of the file, in order.
        units: Arc<Vec<peercam_media::annexb::AccessUnit>>,
        /// Its frame rate.
        fps: u8,
        /// Its picture size.
        size: (u16, u16),
    },
}

/// Why a media source or an encoder could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The MP4 file is unusable.
    #[error("{}: {source}", path.display())]
    Mp4 {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Mp4Error,
    },
    /// The Annex B file is unusable.
    #[error("{}: {source}", path.display())]
    AnnexB {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: peercam_media::Error,
    },
    /// The file has no picture to start from.
    #[error("{}: no IDR access unit with SPS and PPS", path.display())]
    NoKeyFrame {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The file's SPS is unusable.
    #[error("{}: SPS: {source}", path.display())]
    Sps {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: peercam_media::Error,
    },
    /// The H.264 encoder could not be started.
    #[error("H.264 encoder: {0}")]
    Encoder(#[source] openh264::Error),
    /// The encoder thread could not be started.
    #[error("cannot start encoder thread: {0}")]
    Thread(#[source] std::io::Error),
    /// An audio feed's thread could not be started.
    #[error("cannot start the audio thread: {0}")]
    AudioThread(#[source] std::io::Error),
}

/// Why an MP4 file's H.264 track could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Mp4Error {
    /// The file's boxes are unusable.
    #[error("{0}")]
    Parse(#[source] peercam_media::Error),
    /// The file lacks something needed (what is said).
    #[error("{0}")]
    Missing(&'static str),
    /// A sample's NAL unit lengths are wrong.
    #[error("a sample's NAL lengths do not add up: {0}")]
    Lengths(#[source] peercam_media::Error),
}

impl Source {
    /// Loads an H.264 file, Annex B or MP4 (its first H.264 track; frame rate from the
    /// track's timing, else `fps`); it must contain an IDR with SPS and PPS.
    pub fn file(path: &std::path::Path, fps: u8) -> Result<Self, MediaError> {
        let data = std::fs::read(path).map_err(|source| MediaError::Read {
            path: path.to_owned(),
            source,
        })?;
        let (units, fps) = if data.get(4..8) == Some(b"ftyp") {
            mp4_units(&data).map_err(|source| MediaError::Mp4 {
                path: path.to_owned(),
                source,
            })?
        } else {
            let mut asm = peercam_media::annexb::AccessUnitAssembler::new();
            let annexb = |source| MediaError::AnnexB {
                path: path.to_owned(),
                source,
            };
            asm.push(&data).map_err(annexb)?;
            asm.finish().map_err(annexb)?;
            let units: Vec<_> = std::iter::from_fn(|| asm.pop())
                .filter(|au| au.has_picture())
                .collect();
            (units, fps)
        };
        let first_key = units
            .iter()
            .position(|au| au.is_key() && au.sps().is_some() && au.pps().is_some());
        let Some(first_key) = first_key else {
            return Err(MediaError::NoKeyFrame {
                path: path.to_owned(),
            });
        };
        let sps = units[first_key].sps().unwrap_or_default();
        let parsed = peercam_media::sps::Sps::parse(sps).map_err(|source| MediaError::Sps {
            path: path.to_owned(),
            source,
        })?;
        let size = (
            u16::try_from(parsed.width).unwrap_or(0),
            u16::try_from(parsed.height).unwrap_or(0),
        );
        Ok(Self::File {
            units: Arc::new(units[first_key..].to_vec()),
            fps: fps.clamp(1, 25),
            size,
        })
    }
}

/// The access units of an MP4 file's first H.264 track (SPS and PPS put in front of every
/// sync sample) and its frame rate.
fn mp4_units(data: &[u8]) -> Result<(Vec<peercam_media::annexb::AccessUnit>, u8), Mp4Error> {
    use peercam_media::mp4::{Movie, SampleEntry};
    let movie = Movie::parse(data).map_err(Mp4Error::Parse)?;
    let track = movie.video().ok_or(Mp4Error::Missing("no video track"))?;
    let SampleEntry::Avc { config, .. } = &track.entry else {
        return Err(Mp4Error::Missing("the video track is not H.264"));
    };
    let len_size = config.length_size;
    let mut units = Vec::new();
    for s in track.samples() {
        let body = s
            .data(data)
            .ok_or(Mp4Error::Missing("a sample lies outside the file"))?;
        let nals = peercam_media::annexb::split_avcc(body, len_size).map_err(Mp4Error::Lengths)?;
        let mut au = peercam_media::annexb::AccessUnit { nals: Vec::new() };
        if s.is_sync {
            au.nals.extend(config.sps.iter().cloned());
            au.nals.extend(config.pps.iter().cloned());
        }
        au.nals
            .extend(nals.iter().filter(|n| !n.is_empty()).map(|n| n.to_vec()));
        units.push(au);
    }
    let n = u64::from(track.sample_count().max(1));
    let fps = (u64::from(track.timescale) * n)
        .checked_div(track.sample_duration_total())
        .unwrap_or(25)
        .clamp(1, 25);
    Ok((units, u8::try_from(fps).unwrap_or(25)))
}

impl MediaHub {
    /// A hub; `stream_id` is written into every SEI so viewers can tell cameras apart.
    pub fn new(stream_id: u32) -> Arc<Self> {
        Self::with_source(stream_id, Source::Synthetic)
    }

    /// A hub serving `source`.
    pub fn with_source(stream_id: u32, source: Source) -> Arc<Self> {
        Self::with_control(stream_id, source, Arc::new(Control::in_memory(None)))
    }

    /// A hub serving `source`, rendering the synthetic scene as `control` says (PTZ, night
    /// vision, OSD, H.626.4 8.5, 8.9.1).
    pub fn with_control(stream_id: u32, source: Source, control: Arc<Control>) -> Arc<Self> {
        Self::with_parts(stream_id, source, control, Arc::new(MediaClock::new(0)))
    }

    /// A hub whose capture times come from `clock` (synchronised with the SCU, 7.2).
    pub fn with_parts(
        stream_id: u32,
        source: Source,
        control: Arc<Control>,
        clock: Arc<MediaClock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pipelines: Mutex::new(HashMap::new()),
            audio: Arc::new(match source {
                // A pulled camera's viewers hear the camera, not the test tone.
                Source::Rtsp(_) => super::audio::AudioHub::pulled(clock.clone()),
                Source::Synthetic | Source::File { .. } => {
                    super::audio::AudioHub::new(clock.clone())
                }
            }),
            clock,
            control,
            stream_id,
            source,
        })
    }

    /// Subscribes to `profile`, starting its encoder if needed; the next frame is an IDR.
    pub fn subscribe(self: &Arc<Self>, profile: Profile) -> Result<Subscription, MediaError> {
        // A file is served as it is: one profile, the file's.
        let profile = match &self.source {
            Source::Synthetic => profile,
            Source::File { fps, size, .. } => Profile {
                width: size.0,
                height: size.1,
                fps: *fps,
                kbps: 0,
            },
            // A pulled camera: one pipeline, its own size and rate (learnt from the stream).
            Source::Rtsp(_) => Profile {
                width: 0,
                height: 0,
                fps: 0,
                kbps: 0,
            },
        };
        let mut map = self
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let existing = map
            .get(&profile)
            .and_then(Weak::upgrade)
            .filter(|p| !p.stopped.load(Ordering::Acquire));
        let pipeline = match existing {
            Some(p) => p,
            None => {
                let (tx, _) = broadcast::channel(64);
                let (params, _) = watch::channel(None);
                let p = Arc::new(Pipeline {
                    profile,
                    tx,
                    force_idr: AtomicBool::new(true),
                    params,
                    stopped: AtomicBool::new(false),
                    frames: AtomicU64::new(0),
                    keep_gop: matches!(self.source, Source::Rtsp(_)),
                    gop: Mutex::new(Vec::new()),
                    worker: std::sync::OnceLock::new(),
                });
                let worker = p.clone();
                let stream_id = self.stream_id;
                let name = format!("enc-{}x{}@{}", profile.width, profile.height, profile.fps);
                let source = self.source.clone();
                let control = self.control.clone();
                let clock = self.clock.clone();
                let audio = self.audio.clone();
                let encoder = match &source {
                    Source::Synthetic => {
                        Some(make_encoder(profile, control.view(Instant::now()).gop_s)?)
                    }
                    Source::File { .. } | Source::Rtsp(_) => None,
                };
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || match (source, encoder) {
                        (Source::File { units, .. }, _) => {
                            run_file(&worker, &units, stream_id, &clock);
                        }
                        (Source::Synthetic, Some(encoder)) => {
                            let _ = worker.worker.set(std::thread::current());
                            run_pipeline(&worker, encoder, stream_id, &control, &clock);
                        }
                        (Source::Rtsp(config), _) => {
                            run_pull(&worker, &config, stream_id, &clock, &audio);
                        }
                        (Source::Synthetic, None) => {}
                    })
                    .map_err(MediaError::Thread)?;
                map.insert(profile, Arc::downgrade(&p));
                p
            }
        };
        map.retain(|_, w| w.strong_count() > 0);
        let rx = pipeline.tx.subscribe();
        pipeline.want_idr();
        Ok(Subscription {
            rx,
            params: pipeline.params.subscribe(),
            profile,
            _pipeline: pipeline,
        })
    }

    /// Subscribes to the audio feed of `codec` (`None` for no audio).
    pub fn subscribe_audio(
        &self,
        codec: Option<peercam_rtp::AudioCodec>,
    ) -> Result<Option<super::audio::AudioSubscription>, MediaError> {
        self.audio.subscribe(codec)
    }

    /// A pulled camera's AAC as it came, when its audio is AAC.
    pub fn subscribe_aac(&self) -> Option<super::audio::AacSubscription> {
        self.audio.subscribe_aac()
    }

    /// Whether the source is a pulled camera (its audio is the camera's, known once the pull
    /// plays).
    pub fn is_pulled(&self) -> bool {
        matches!(self.source, Source::Rtsp(_))
    }

    /// The media clock.
    pub fn clock(&self) -> &MediaClock {
        &self.clock
    }

    /// How many encoders run now.
    pub fn running(&self) -> usize {
        self.pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

/// An OpenH264 encoder configured for `p` (real-time camera usage, bit-rate control with frame
/// skipping, an IDR every `gop_s` seconds, one thread).
///
/// H.626.4 6.1.3, 8.4: the viewer's bit rate is a limit. Without frame skipping OpenH264
/// cannot go below what its lowest quality costs (about 200 kbit/s for the scene at 720P),
/// so a low cap was exceeded; with it, the encoder drops a frame when the budget is spent
/// (the pipeline then sends nothing for that frame). Skipping also keeps OpenH264 from
/// printing its "bEnableFrameSkip" warning on stderr at every start. (Its other messages
/// cannot be routed to `tracing`: that takes an `unsafe` C callback, and the workspace
/// forbids `unsafe`; they stay at OpenH264's default, warnings only.)
pub fn make_encoder(p: Profile, gop_s: u8) -> Result<Encoder, MediaError> {
    let config = EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .bitrate(BitRate::from_bps(encoder_bps(p)))
        .max_frame_rate(FrameRate::from_hz(f32::from(p.fps)))
        .rate_control_mode(RateControlMode::Bitrate)
        .skip_frames(true)
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        .intra_frame_period(IntraFramePeriod::from_num_frames(
            u32::from(p.fps) * u32::from(gop_s.max(1)),
        ))
        .num_threads(1);
    Encoder::with_api_config(OpenH264API::from_source(), config).map_err(MediaError::Encoder)
}

/// What one SEI frame tag costs on the wire, bits: the NAL unit (header, type, size, the
/// 36-byte payload, trailing bits, room for an emulation prevention byte) and its 4-byte
/// start code or length.
const FRAME_TAG_BITS: u32 = 48 * 8;

/// The encoder's share of a profile's bit rate: the frame tags the PU adds to every access
/// unit come out of the viewer's budget too (9.6 kbit/s at 25 fps, a third of 32 kbit/s).
fn encoder_bps(p: Profile) -> u32 {
    let total = p.kbps.saturating_mul(1000);
    total
        .saturating_sub(FRAME_TAG_BITS * u32::from(p.fps))
        .max(total / 2)
}

/// Strips an Annex B start code.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    let zeros = nal.iter().take_while(|b| **b == 0).count();
    if zeros >= 2 && nal.get(zeros) == Some(&1) {
        &nal[zeros + 1..]
    } else {
        nal
    }
}

/// Paces a pipeline by the clock (no drift) and notices when nobody has watched for 3 s.
struct Pacer {
    start: Instant,
    interval: Duration,
    idle_since: Option<Instant>,
    /// When the next frame of the cadence is due ([`Self::next_frame`] only).
    next: Instant,
    /// When the last frame was taken ([`Self::next_frame`] only).
    last: Option<Instant>,
}

impl Pacer {
    fn new(fps: u8) -> Self {
        let start = Instant::now();
        Self {
            start,
            interval: Duration::from_secs(1) / u32::from(fps),
            idle_since: None,
            next: start,
            last: None,
        }
    }

    /// Sleeps until frame `n` is due; `false` when the pipeline should stop.
    fn wait(&mut self, p: &Pipeline, n: u64) -> bool {
        let due = self.start + self.interval * u32::try_from(n).unwrap_or(u32::MAX);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        self.watched(p)
    }

    /// For an encoder that makes IDRs on demand (issue 20 "instant first frames"): sleeps
    /// until the next frame is due, or until a joiner asks for an IDR (the thread is
    /// unparked), whichever is first; an IDR asked for is made at once, at most one frame
    /// per quarter interval, and the cadence goes on from it. The frame's time, or `None`
    /// when the pipeline should stop.
    fn next_frame(&mut self, p: &Pipeline) -> Option<Instant> {
        loop {
            let now = Instant::now();
            if now >= self.next {
                break;
            }
            if p.force_idr.load(Ordering::Acquire) {
                let earliest = self.last.map_or(now, |l| l + self.interval / 4);
                if now >= earliest {
                    self.next = now;
                    break;
                }
                std::thread::park_timeout(earliest - now);
            } else {
                std::thread::park_timeout(self.next - now);
            }
        }
        let at = self.next;
        self.last = Some(at);
        self.next = at + self.interval;
        self.watched(p).then_some(at)
    }

    fn watched(&mut self, p: &Pipeline) -> bool {
        if p.tx.receiver_count() > 0 {
            self.idle_since = None;
            return true;
        }
        self.idle_since.get_or_insert_with(Instant::now).elapsed() <= Duration::from_secs(3)
    }
}

/// Tags frame `n` with the SEI frame counter (after SPS/PPS, before the first slice) and
/// hands it to the subscribers.
fn publish(
    p: &Pipeline,
    mut nals: Vec<Bytes>,
    key: bool,
    n: u64,
    capture_unix_us: u64,
    stream_id: u32,
    pts_90k: u64,
) {
    let sei = peercam_media::sei::sei_nal(&peercam_media::sei::FrameInfo {
        frame: n,
        capture_unix_us,
        stream: stream_id,
    });
    let at = nals
        .iter()
        .position(|x| x.first().is_some_and(|b| matches!(b & 0x1f, 1 | 5)))
        .unwrap_or(nals.len());
    nals.insert(at, Bytes::from(sei));
    let payloads = match H264Packetizer::default().packetize(&nals, (pts_90k & 0xffff_ffff) as u32)
    {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, frame = n, "cannot packetize an access unit; dropped");
            return;
        }
    };
    let au = Arc::new(AccessUnit {
        nals,
        pts_90k,
        key,
        frame: n,
        capture_unix_us,
        payloads,
    });
    if key && let Some(ps) = au.parameter_sets() {
        p.params.send_replace(Some(ps));
    }
    if p.keep_gop {
        // A source that cannot make an IDR on demand (a pulled camera): keep the current
        // GOP, so a joiner starts from its IDR at once instead of waiting for the next one.
        let mut gop = p.gop.lock().unwrap_or_else(PoisonError::into_inner);
        if key {
            gop.clear();
        }
        let bytes: usize = gop
            .iter()
            .chain(std::iter::once(&au))
            .map(|a| a.nals.iter().map(Bytes::len).sum::<usize>())
            .sum();
        if bytes <= MAX_GOP_BYTES && (key || !gop.is_empty()) {
            gop.push(au.clone());
        } else {
            gop.clear();
        }
    }
    let _ = p.tx.send(au);
    p.frames.fetch_add(1, Ordering::Relaxed);
}

fn run_pipeline(
    p: &Pipeline,
    mut encoder: Encoder,
    stream_id: u32,
    control: &Control,
    clock: &MediaClock,
) {
    let profile = p.profile;
    let mut frame = Frame::new(usize::from(profile.width), usize::from(profile.height));
    let mut pacer = Pacer::new(profile.fps);
    let mut n: u64 = 0;
    let mut gop_s = control.view(Instant::now()).gop_s;
    while let Some(at) = pacer.next_frame(p) {
        let capture_unix_us = clock.now_us();
        let view = control.view(Instant::now());
        if view.gop_s != gop_s {
            // H.626.4 8.9.1: a new GOP length applies at once, from a fresh encoder (its
            // first frame is an IDR).
            match make_encoder(profile, view.gop_s) {
                Ok(e) => {
                    encoder = e;
                    gop_s = view.gop_s;
                }
                Err(e) => tracing::warn!(error = %e, "cannot apply the new GOP length"),
            }
        }
        render(&mut frame, n, capture_unix_us / 1000, &view);
        if p.force_idr.swap(false, Ordering::AcqRel) {
            encoder.force_intra_frame();
        }
        let bitstream = match encoder.encode(&frame) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "encoder failed; stopping this profile");
                break;
            }
        };
        let mut nals: Vec<Bytes> = Vec::with_capacity(6);
        let mut key = false;
        for l in 0..bitstream.num_layers() {
            let Some(layer) = bitstream.layer(l) else {
                continue;
            };
            for nal in (0..layer.nal_count())
                .filter_map(|i| layer.nal_unit(i))
                .map(strip_start_code)
            {
                key |= nal.first().is_some_and(|b| b & 0x1f == 5);
                if !nal.is_empty() {
                    nals.push(Bytes::copy_from_slice(nal));
                }
            }
        }
        if !nals.is_empty() {
            // The frame's time on the 90 kHz clock: frames follow the cadence, except an
            // IDR made at once for a joiner (the cadence restarts from it).
            let pts = u64::try_from(at.duration_since(pacer.start).as_micros() * 9 / 100)
                .unwrap_or(u64::MAX);
            // The frame tag counts frames sent, so a frame the rate control skipped (see
            // make_encoder) is not taken for one lost on the way; the time says when.
            let sent = p.frames.load(Ordering::Relaxed);
            publish(p, nals, key, sent, capture_unix_us, stream_id, pts);
        } // else the encoder skipped this frame to hold the bit rate
        n += 1;
    }
    p.stopped.store(true, Ordering::Release);
}

/// Plays a file's access units in a loop at the profile's rate. A joiner's IDR request jumps
/// to the next IDR of the file at once (no waiting for the GOP).
fn run_file(
    p: &Pipeline,
    units: &[peercam_media::annexb::AccessUnit],
    stream_id: u32,
    clock: &MediaClock,
) {
    let mut pacer = Pacer::new(p.profile.fps);
    let mut i = 0usize;
    let mut n: u64 = 0;
    while pacer.wait(p, n) {
        if p.force_idr.swap(false, Ordering::AcqRel) && !units[i].is_key() {
            i = (1..=units.len())
                .map(|k| (i + k) % units.len())
                .find(|&j| units[j].is_key())
                .unwrap_or(0);
        }
        let au = &units[i];
        let nals = au
            .nals
            .iter()
            .filter(|nal| nal.first().is_some_and(|b| b & 0x1f != 9)) // no AUD
            .map(|nal| Bytes::copy_from_slice(nal))
            .collect();
        let pts = n * 90_000 / u64::from(p.profile.fps);
        publish(p, nals, au.is_key(), n, clock.now_us(), stream_id, pts);
        i = (i + 1) % units.len();
        n += 1;
    }
    p.stopped.store(true, Ordering::Release);
}

/// Pulls a camera on this thread (its own small runtime) and publishes what arrives, video to
/// the pipeline and the camera's own audio to `audio`, until nobody has watched for 30 s.
fn run_pull(
    p: &Arc<Pipeline>,
    config: &super::pull::PullConfig,
    stream_id: u32,
    clock: &MediaClock,
    audio: &super::audio::AudioHub,
) {
    use peercam_pull::{Event, Flow, Item};
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the camera puller");
            p.stopped.store(true, Ordering::Release);
            return;
        }
    };
    let mut n: u64 = 0;
    let mut idle_since: Option<Instant> = None;
    let mut base: Option<(u64, u64)> = None;
    rt.block_on(peercam_pull::run(config.shared(), |event| {
        let unit = match event {
            Event::Started(started) => {
                audio.camera_started(started.audio, started.aac);
                return Flow::Continue;
            }
            Event::Lost => {
                // The camera is gone: new viewers must not get its stale pictures (they get
                // a 503 until it is back).
                p.params.send_replace(None);
                p.gop.lock().unwrap_or_else(PoisonError::into_inner).clear();
                audio.camera_lost();
                let watched = p.tx.receiver_count() > 0
                    || idle_since.get_or_insert_with(Instant::now).elapsed()
                        <= Duration::from_secs(30);
                return if watched { Flow::Continue } else { Flow::Stop };
            }
            Event::Item(Item::Audio { data, pts_8k }) => {
                audio.publish_pulled(&data, pts_8k);
                return Flow::Continue;
            }
            Event::Item(Item::Aac { data, pts }) => {
                audio.publish_pulled_aac(&data, pts);
                return Flow::Continue;
            }
            Event::Item(Item::Video { nals, key, pts_90k }) => (nals, key, pts_90k),
        };
        let (nals, key, pts_90k) = unit;
        if p.tx.receiver_count() > 0 {
            idle_since = None;
        } else if idle_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(30) {
            return Flow::Stop;
        }
        // Each connection's timestamps start again; keep ours increasing across redials.
        let (origin, offset) = *base.get_or_insert((pts_90k, n * 3600));
        let pts = if pts_90k >= origin {
            offset + (pts_90k - origin)
        } else {
            base = Some((pts_90k, n * 3600));
            n * 3600
        };
        let nals = super::pull::without_frame_tags(nals);
        publish(p, nals, key, n, clock.now_us(), stream_id, pts);
        n += 1;
        Flow::Continue
    }));
    p.stopped.store(true, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encoding is the camera's dominant cost and OpenH264 falls back to plain C silently when
    /// `nasm` is missing at build time (about 3x slower here): prove the assembly is linked.
    #[test]
    fn encoder_assembly_is_linked() {
        let exe = std::fs::read(std::env::current_exe().expect("test binary")).expect("readable");
        let needle = b"WelsSampleSad16x16_sse2";
        assert!(
            exe.windows(needle.len()).any(|w| w == needle),
            "OpenH264 was built without its assembly: install nasm (apt-get install nasm) and rebuild"
        );
    }

    #[test]
    fn profile_follows_caps() {
        let caps = |w, h, fps, kbps| Caps {
            max_width: w,
            max_height: h,
            max_fps: fps,
            max_kbps: kbps,
            ..Caps::default()
        };
        assert_eq!(
            Profile::for_caps(&caps(1920, 1080, 30, 5000), 25),
            Profile {
                width: 1280,
                height: 720,
                fps: 25,
                kbps: 2000
            }
        );
        assert_eq!(
            Profile::for_caps(&caps(800, 600, 10, 500), 25),
            Profile {
                width: 704,
                height: 576,
                fps: 10,
                kbps: 500
            }
        );
        // H.626.4 6.1.3: a 320x240 viewer gets a picture it can take (it used to get CIF,
        // 352x288, above its limits).
        assert_eq!(
            Profile::for_caps(&caps(320, 240, 5, 100), 25),
            Profile {
                width: 176,
                height: 144,
                fps: 5,
                kbps: 100
            }
        );
        // A low bit rate picks a picture the encoder can hold it for.
        let p = Profile::for_caps(&caps(1280, 720, 25, 100), 25);
        assert_eq!((p.width, p.height, p.fps, p.kbps), (352, 288, 25, 100));
        let p = Profile::for_caps(&caps(1280, 720, 25, 32), 25);
        assert_eq!((p.width, p.height, p.fps, p.kbps), (176, 144, 25, 32));
        // 10 kbit/s is too little even for QCIF at 25 fps: fewer frames.
        let p = Profile::for_caps(&caps(1280, 720, 25, 10), 25);
        assert_eq!((p.width, p.height, p.fps, p.kbps), (176, 144, 8, 10));
        // Never above the viewer's bit rate, whatever it is.
        for kbps in [1, 10, 31, 32, 33, 100, 399, 401, 5000] {
            for (w, h) in [(176, 144), (320, 240), (704, 576), (1920, 1080)] {
                let p = Profile::for_caps(&caps(w, h, 25, kbps), 25);
                assert!(p.kbps <= kbps, "{w}x{h} {kbps}: {p:?}");
                assert!(p.width <= w && p.height <= h, "{w}x{h} {kbps}: {p:?}");
            }
        }
        assert_eq!(Profile::for_caps(&caps(1280, 720, 25, 2000), 15).fps, 15);
    }

    #[tokio::test]
    async fn subscribers_share_an_encoder_and_start_on_idr() {
        let hub = MediaHub::new(1);
        let p = Profile {
            width: 352,
            height: 288,
            fps: 25,
            kbps: 300,
        };
        let mut a = hub.subscribe(p).expect("encoder");
        let first = tokio::time::timeout(Duration::from_secs(5), a.rx.recv())
            .await
            .expect("frame")
            .expect("open");
        assert!(first.key && first.parameter_sets().is_some());
        assert!(a.parameter_sets(Duration::from_secs(1)).await.is_some());
        // Let a few P frames pass, then a second viewer joins: it gets an IDR promptly.
        for _ in 0..5 {
            let _ = a.rx.recv().await;
        }
        let mut b = hub.subscribe(p).expect("encoder");
        assert_eq!(hub.running(), 1, "same profile, same encoder");
        let mut waited = 0;
        loop {
            let au = b.rx.recv().await.expect("open");
            if au.key {
                break;
            }
            waited += 1;
            assert!(waited < 3, "the joiner waited for the GOP");
        }
    }
}
