//! Transcoding in the relay (H.626.4 7.3: "where a CU asks for less than the PU can offer,
//! the MTU adapts the stream").
//!
//! A camera that re-serves another camera (`source_rtsp`) or a file cannot encode another
//! profile for a viewer who asked for a smaller picture or a lower frame rate. For such a
//! feed the relay decodes the camera's H.264 (OpenH264), scales the picture down to fit the
//! viewer's capabilities (area average, aspect ratio kept), drops frames above the wanted
//! rate, and encodes again at the wanted bit rate. The timestamps and the SSRC of the
//! camera's stream are kept, so the camera's RTCP sender reports still map its clock and
//! audio stays in sync; sequence numbers are the transcoder's own.
//!
//! The work runs on its own OS thread per transcoded feed, fed by a bounded queue: a slow
//! transcoder loses packets (and waits for the next key frame) rather than holding up the
//! upstream.

use std::sync::mpsc;

use openh264::OpenH264API;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode, SpsPpsStrategy,
    UsageType,
};
use openh264::formats::YUVSource;
use peercam_media::annexb::split as split_annex_b;
use peercam_rtp::RtpHeader;
use peercam_rtp::h264::{H264Depacketizer, H264Packetizer, fmtp_parameters};
use peercam_signal::play::Caps;

/// What the camera sends, as far as transcoding is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Picture size, pixels.
    pub width: u32,
    /// Picture size, pixels.
    pub height: u32,
    /// Frames per second, when the SPS says.
    pub fps: Option<u32>,
}

impl Source {
    /// Reads the camera's video from its SDP (`sprop-parameter-sets` of the first video
    /// medium). `None` when the SDP carries no SPS.
    pub fn from_sdp(sdp: &str) -> Option<Self> {
        let mut in_video = false;
        for line in sdp.lines() {
            if let Some(m) = line.strip_prefix("m=") {
                in_video = m.starts_with("video");
                continue;
            }
            if !in_video || !line.starts_with("a=fmtp:") {
                continue;
            }
            let sets = line
                .split([';', ' '])
                .find_map(|p| p.trim().strip_prefix("sprop-parameter-sets="))?;
            let sps = sets.split(',').next()?;
            let nal =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sps).ok()?;
            let s = peercam_media::sps::Sps::parse(&nal).ok()?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let fps = s.frame_rate().map(|f| f.round() as u32);
            return Some(Self {
                width: s.width,
                height: s.height,
                fps,
            });
        }
        None
    }
}

/// The picture the viewer gets: `source` scaled down to fit `caps`, aspect ratio kept, even
/// sizes (4:2:0), at least 16 pixels. `None` when the source already fits.
pub fn target(source: Source, caps: &Caps) -> Option<Target> {
    let (mw, mh) = (u32::from(caps.max_width), u32::from(caps.max_height));
    let fps_over = source.fps.is_some_and(|f| f > u32::from(caps.max_fps));
    let size_over = source.width > mw || source.height > mh;
    if !size_over && !fps_over {
        return None;
    }
    let (w, h) = if size_over {
        // Scale by the smaller ratio; round down to even.
        let (w, h) = if u64::from(source.width) * u64::from(mh)
            >= u64::from(source.height) * u64::from(mw)
        {
            (
                mw,
                u32::try_from(u64::from(source.height) * u64::from(mw) / u64::from(source.width))
                    .unwrap_or(mh),
            )
        } else {
            (
                u32::try_from(u64::from(source.width) * u64::from(mh) / u64::from(source.height))
                    .unwrap_or(mw),
                mh,
            )
        };
        ((w & !1).max(16), (h & !1).max(16))
    } else {
        (source.width & !1, source.height & !1)
    };
    let fps = source.fps.unwrap_or(25).min(u32::from(caps.max_fps.max(1)));
    Some(Target {
        width: w,
        height: h,
        fps,
        kbps: caps.max_kbps.max(64),
    })
}

/// What the transcoder makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Picture width, pixels (even).
    pub width: u32,
    /// Picture height, pixels (even).
    pub height: u32,
    /// Frames per second, at most.
    pub fps: u32,
    /// Video bit rate, kbit/s.
    pub kbps: u32,
}

/// Replaces the `a=fmtp` of the first video medium of `sdp` with `fmtp` (parameters only),
/// and drops attributes that described the camera's picture.
pub(crate) fn rewrite_sdp(sdp: &str, fmtp: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 64);
    let mut in_video = false;
    let mut video_pt: Option<String> = None;
    let mut wrote = false;
    let flush_fmtp = |out: &mut String, pt: &Option<String>, wrote: &mut bool| {
        if let Some(pt) = pt
            && !*wrote
        {
            out.push_str(&format!("a=fmtp:{pt} {fmtp}\r\n"));
            *wrote = true;
        }
    };
    for line in sdp.lines() {
        if line.starts_with("m=") {
            if in_video {
                flush_fmtp(&mut out, &video_pt, &mut wrote);
            }
            in_video = line.starts_with("m=video") && video_pt.is_none();
            if in_video {
                video_pt = line.split(' ').nth(3).map(str::to_owned);
            }
        } else if in_video
            && (line.starts_with("a=fmtp:")
                || line.starts_with("a=framesize:")
                || line.starts_with("a=x-dimensions:")
                || line.starts_with("a=framerate:"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if in_video {
        flush_fmtp(&mut out, &video_pt, &mut wrote);
    }
    out
}

/// A running transcoder: video RTP packets in, the viewer's RTP packets out.
pub struct Transcoder {
    target: Target,
    depack: H264Depacketizer,
    dec: Decoder,
    enc: Encoder,
    packetizer: H264Packetizer,
    picture: Picture,
    /// Waiting for a key frame (start, or after a loss or a decoding error).
    need_key: bool,
    /// The 90 kHz time the next frame is due, for dropping frames above the rate.
    next_due: Option<u32>,
    seq: u16,
    ssrc: u32,
    pt: u8,
    /// The SDP parameters of the encoded stream, once its first key frame is out.
    pub fmtp: Option<String>,
    /// Frames decoded and encoded, for the log.
    pub frames: (u64, u64),
}

/// One packet the transcoder made.
pub struct Out {
    /// The RTP packet.
    pub data: Vec<u8>,
    /// The first packet of a key frame.
    pub key: bool,
}

impl Transcoder {
    /// A transcoder making `target` (OpenH264 decoder and encoder, one thread each call).
    pub fn new(target: Target) -> Result<Self, crate::MtuError> {
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .bitrate(BitRate::from_bps(target.kbps.saturating_mul(1000)))
            .max_frame_rate(FrameRate::from_hz(target.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .intra_frame_period(IntraFramePeriod::from_num_frames(target.fps * 2))
            .num_threads(1);
        let enc = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| crate::MtuError::Transcode(format!("H.264 encoder: {e}")))?;
        let dec = Decoder::new()
            .map_err(|e| crate::MtuError::Transcode(format!("H.264 decoder: {e}")))?;
        let mut seed = [0u8; 2];
        let _ = getrandom::fill(&mut seed);
        Ok(Self {
            target,
            depack: H264Depacketizer::new(),
            dec,
            enc,
            packetizer: H264Packetizer::default(),
            picture: Picture::new(target.width as usize, target.height as usize),
            need_key: true,
            next_due: None,
            seq: u16::from_be_bytes(seed),
            ssrc: 0,
            pt: 96,
            fmtp: None,
            frames: (0, 0),
        })
    }

    /// Takes one of the camera's video RTP packets; returns the packets made from any access
    /// unit it completed.
    pub fn push(&mut self, rtp: &[u8]) -> Vec<Out> {
        let mut out = Vec::new();
        let Ok(p) = peercam_rtp::RtpPacket::parse(rtp) else {
            return out;
        };
        self.ssrc = p.ssrc();
        self.pt = p.payload_type();
        let _ = self.depack.push(&p);
        while let Some(au) = self.depack.poll() {
            if au.after_loss {
                self.need_key = true;
            }
            let key = au
                .nals
                .iter()
                .any(|n| n.first().is_some_and(|h| h & 0x1f == 5));
            if self.need_key && !key {
                continue;
            }
            self.access_unit(&au.nals, au.timestamp, key, &mut out);
        }
        out
    }

    fn access_unit(&mut self, nals: &[Vec<u8>], ts: u32, key: bool, out: &mut Vec<Out>) {
        let annexb = peercam_media::annexb::join(nals);
        let decoded = match self.dec.decode(&annexb) {
            Ok(Some(yuv)) => yuv,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "transcoder: decoding failed; waiting for a key frame");
                self.need_key = true;
                return;
            }
        };
        self.need_key = false;
        self.frames.0 += 1;
        // Frames above the wanted rate are decoded (later frames refer to them) but not sent.
        let interval = 90_000 / self.target.fps.max(1);
        if let Some(due) = self.next_due {
            #[allow(clippy::cast_possible_wrap)]
            let early = ts.wrapping_sub(due) as i32;
            if !key && early < -i32::try_from(interval / 4).unwrap_or(0) {
                return;
            }
            // On schedule, or late by more than a frame (a gap): restart the schedule.
            self.next_due = Some(if early > i32::try_from(interval).unwrap_or(i32::MAX) {
                ts.wrapping_add(interval)
            } else {
                due.wrapping_add(interval)
            });
        } else {
            self.next_due = Some(ts.wrapping_add(interval));
        }
        self.picture.scale_from(&decoded);
        if key {
            self.enc.force_intra_frame();
        }
        let bits = match self.enc.encode(&self.picture) {
            Ok(b) => b.to_vec(),
            Err(e) => {
                tracing::warn!(error = %e, "transcoder: encoding failed");
                return;
            }
        };
        let nals: Vec<&[u8]> = split_annex_b(&bits)
            .filter(|n| n.first().is_some_and(|h| (1..=23).contains(&(h & 0x1f))))
            .collect();
        if nals.is_empty() {
            return;
        }
        self.frames.1 += 1;
        let out_key = nals.iter().any(|n| matches!(n[0] & 0x1f, 5 | 7));
        if out_key && self.fmtp.is_none() {
            let sps = nals.iter().find(|n| n[0] & 0x1f == 7);
            let pps = nals.iter().find(|n| n[0] & 0x1f == 8);
            if let (Some(s), Some(p)) = (sps, pps) {
                self.fmtp = fmtp_parameters(s, p).ok();
            }
        }
        let Ok(payloads) = self.packetizer.packetize(&nals, ts) else {
            return;
        };
        for (i, pl) in payloads.iter().enumerate() {
            let header = RtpHeader {
                marker: pl.marker,
                payload_type: self.pt,
                sequence: self.seq,
                timestamp: ts,
                ssrc: self.ssrc,
                ..RtpHeader::default()
            };
            self.seq = self.seq.wrapping_add(1);
            let mut data = Vec::with_capacity(12 + pl.data.len());
            if header.write(&pl.data, &mut data).is_ok() {
                out.push(Out {
                    data,
                    key: out_key && i == 0,
                });
            }
        }
    }
}

/// A 4:2:0 picture the transcoder scales into and encodes from.
struct Picture {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl Picture {
    fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; width * height / 4],
            v: vec![128; width * height / 4],
        }
    }

    /// Scales `src` into this picture, averaging the source pixels each target pixel covers.
    fn scale_from(&mut self, src: &impl YUVSource) {
        let (sw, sh) = src.dimensions();
        let (ys, us, vs) = src.strides();
        let (w, h) = (self.width, self.height);
        scale_plane(src.y(), sw, sh, ys, &mut self.y, w, h);
        scale_plane(src.u(), sw / 2, sh / 2, us, &mut self.u, w / 2, h / 2);
        scale_plane(src.v(), sw / 2, sh / 2, vs, &mut self.v, w / 2, h / 2);
    }
}

impl YUVSource for Picture {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }
    fn y(&self) -> &[u8] {
        &self.y
    }
    fn u(&self) -> &[u8] {
        &self.u
    }
    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Area-average scaling of one plane (`sw` x `sh` with row stride `stride`) into `dst`
/// (`dw` x `dh`, tightly packed). Upscaling repeats pixels.
fn scale_plane(
    src: &[u8],
    sw: usize,
    sh: usize,
    stride: usize,
    dst: &mut [u8],
    dw: usize,
    dh: usize,
) {
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
        return;
    }
    let span = |i: usize, s: usize, d: usize| {
        let a = i * s / d;
        let b = ((i + 1) * s / d).max(a + 1).min(s);
        (a, b)
    };
    let cols: Vec<(usize, usize)> = (0..dw).map(|x| span(x, sw, dw)).collect();
    let mut acc = vec![0u32; dw];
    for y in 0..dh {
        let (r0, r1) = span(y, sh, dh);
        acc.iter_mut().for_each(|a| *a = 0);
        for r in r0..r1 {
            let Some(row) = src.get(r * stride..r * stride + sw) else {
                return;
            };
            for (a, &(c0, c1)) in acc.iter_mut().zip(&cols) {
                *a += row[c0..c1].iter().map(|&p| u32::from(p)).sum::<u32>();
            }
        }
        let rows = (r1 - r0) as u32;
        let line = &mut dst[y * dw..(y + 1) * dw];
        for ((d, a), &(c0, c1)) in line.iter_mut().zip(&acc).zip(&cols) {
            let n = rows * (c1 - c0) as u32;
            *d = u8::try_from((a + n / 2) / n).unwrap_or(255);
        }
    }
}

/// Runs a transcoder on its own thread: video RTP packets arrive on the returned queue;
/// `emit` gets every packet made, and `on_fmtp` the stream's SDP parameters once. The
/// thread ends when the queue's sender is dropped.
pub(crate) fn spawn(
    target: Target,
    emit: impl Fn(Out) + Send + 'static,
    on_fmtp: impl FnOnce(String) + Send + 'static,
) -> Result<mpsc::SyncSender<Vec<u8>>, crate::MtuError> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(2048);
    let mut t = Transcoder::new(target)?;
    std::thread::Builder::new()
        .name("mtu-transcode".into())
        .spawn(move || {
            let mut on_fmtp = Some(on_fmtp);
            while let Ok(pkt) = rx.recv() {
                for o in t.push(&pkt) {
                    emit(o);
                }
                if let Some(fmtp) = &t.fmtp
                    && let Some(cb) = on_fmtp.take()
                {
                    cb(fmtp.clone());
                }
            }
            tracing::info!(
                decoded = t.frames.0,
                encoded = t.frames.1,
                "transcoder stopped"
            );
        })
        .map_err(|e| crate::MtuError::io("transcoder thread", e))?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(w: u16, h: u16, fps: u8) -> Caps {
        Caps {
            max_width: w,
            max_height: h,
            max_fps: fps,
            ..Caps::default()
        }
    }

    #[test]
    fn h626_7_3_target_keeps_aspect_and_even_sizes() {
        let s = Source {
            width: 1280,
            height: 720,
            fps: Some(25),
        };
        assert_eq!(target(s, &caps(1280, 720, 25)), None);
        let t = target(s, &caps(352, 288, 25)).unwrap();
        assert_eq!((t.width, t.height, t.fps), (352, 198, 25));
        let t = target(s, &caps(640, 200, 25)).unwrap();
        assert_eq!((t.width, t.height), (354, 200));
        let t = target(s, &caps(1920, 1080, 10)).unwrap();
        assert_eq!((t.width, t.height, t.fps), (1280, 720, 10));
    }

    #[test]
    fn h626_7_3_scaling_averages_areas() {
        // A 4x2 plane with stride 6 to 2x1: each output pixel averages a 2x2 block.
        let src = [10, 20, 100, 200, 0, 0, 30, 40, 100, 200, 0, 0];
        let mut dst = [0u8; 2];
        scale_plane(&src, 4, 2, 6, &mut dst, 2, 1);
        assert_eq!(dst, [25, 150]);
    }

    #[test]
    fn h626_7_3_sdp_rewrite_replaces_video_fmtp_only() {
        let sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
                   a=fmtp:96 packetization-mode=1;sprop-parameter-sets=AAA,BBB\r\n\
                   a=control:trackID=0\r\nm=audio 0 RTP/AVP 0\r\na=fmtp:0 x=1\r\n";
        let out = rewrite_sdp(sdp, "packetization-mode=1;profile-level-id=42c01e");
        assert!(out.contains("a=fmtp:96 packetization-mode=1;profile-level-id=42c01e\r\n"));
        assert!(!out.contains("AAA"));
        assert!(out.contains("a=fmtp:0 x=1"));
        assert!(out.contains("a=control:trackID=0"));
    }

    /// A 640x360 camera stream (a horizontal luma ramp) through a transcoder asked for
    /// 320x240 at most: a viewer's decoder gets every frame at 320x180, ramp intact, with the
    /// camera's timestamps and SSRC.
    #[test]
    fn h626_7_3_transcoder_scales_a_real_stream() {
        let mut cam = Transcoder::new(Target {
            width: 640,
            height: 360,
            fps: 25,
            kbps: 1000,
        })
        .unwrap();
        let mut pic = Picture::new(640, 360);
        for (i, p) in pic.y.iter_mut().enumerate() {
            *p = u8::try_from((i % 640) * 255 / 640).unwrap();
        }
        let source = Source {
            width: 640,
            height: 360,
            fps: Some(25),
        };
        let mut tc = Transcoder::new(target(source, &caps(320, 240, 25)).unwrap()).unwrap();
        let packetizer = H264Packetizer::default();
        let mut out = Vec::new();
        let mut seq = 0u16;
        for n in 0..10u32 {
            let bits = cam.enc.encode(&pic).unwrap().to_vec();
            let nals: Vec<&[u8]> = split_annex_b(&bits).collect();
            for pl in packetizer.packetize(&nals, n * 3600).unwrap() {
                let mut rtp = Vec::new();
                RtpHeader {
                    marker: pl.marker,
                    payload_type: 96,
                    sequence: seq,
                    timestamp: pl.timestamp,
                    ssrc: 7,
                    ..RtpHeader::default()
                }
                .write(&pl.data, &mut rtp)
                .unwrap();
                seq = seq.wrapping_add(1);
                out.extend(tc.push(&rtp));
            }
        }
        assert!(out[0].key, "the first packet out starts a key frame");
        assert!(
            tc.fmtp
                .as_deref()
                .unwrap()
                .contains("sprop-parameter-sets=")
        );
        let mut depack = H264Depacketizer::new();
        let mut dec = Decoder::new().unwrap();
        let mut frames = Vec::new();
        for o in &out {
            let p = peercam_rtp::RtpPacket::parse(&o.data).unwrap();
            assert_eq!(p.ssrc(), 7);
            depack.push(&p).unwrap();
            while let Some(au) = depack.poll() {
                let annexb = peercam_media::annexb::join(&au.nals);
                let yuv = dec.decode(&annexb).unwrap().unwrap();
                let y = yuv.y();
                let stride = yuv.strides().0;
                let (left, right) = (y[90 * stride + 10], y[90 * stride + 310]);
                frames.push((au.timestamp, yuv.dimensions(), left < 40 && right > 200));
            }
        }
        assert_eq!(frames.len(), 10, "{frames:?}");
        for (n, f) in frames.iter().enumerate() {
            assert_eq!(*f, (u32::try_from(n).unwrap() * 3600, (320, 180), true));
        }
    }

    /// Asked for 10 frames per second, a 25 fps stream loses the frames in between.
    #[test]
    fn h626_7_3_transcoder_drops_frames_above_the_rate() {
        let mut cam = Transcoder::new(Target {
            width: 320,
            height: 180,
            fps: 25,
            kbps: 500,
        })
        .unwrap();
        let pic = Picture::new(320, 180);
        let source = Source {
            width: 320,
            height: 180,
            fps: Some(25),
        };
        let mut tc = Transcoder::new(target(source, &caps(1280, 720, 10)).unwrap()).unwrap();
        let packetizer = H264Packetizer::default();
        let mut stamps = Vec::new();
        let mut seq = 0u16;
        for n in 0..25u32 {
            let bits = cam.enc.encode(&pic).unwrap().to_vec();
            let nals: Vec<&[u8]> = split_annex_b(&bits).collect();
            for pl in packetizer.packetize(&nals, n * 3600).unwrap() {
                let mut rtp = Vec::new();
                RtpHeader {
                    marker: pl.marker,
                    payload_type: 96,
                    sequence: seq,
                    timestamp: pl.timestamp,
                    ..RtpHeader::default()
                }
                .write(&pl.data, &mut rtp)
                .unwrap();
                seq = seq.wrapping_add(1);
                for o in tc.push(&rtp) {
                    let p = peercam_rtp::RtpPacket::parse(&o.data).unwrap();
                    if stamps.last() != Some(&p.timestamp()) {
                        stamps.push(p.timestamp());
                    }
                }
            }
        }
        assert_eq!(tc.frames.0, 25);
        assert!((10..=11).contains(&stamps.len()), "{stamps:?}");
        assert!(stamps.windows(2).all(|w| w[1] - w[0] >= 7200), "{stamps:?}");
    }
}
