//! The description a peercam camera serves: one H.264 video stream and optionally one
//! G.711 or G.722 audio stream, each with a relative control URL.

use super::{MediaDescription, SdpLine, SessionDescription, base64};

/// The track number (`a=control:trackID=0`) of the video stream.
pub const VIDEO_TRACK: usize = 0;
/// The track number (`a=control:trackID=1`) of the audio stream.
pub const AUDIO_TRACK: usize = 1;
/// The dynamic RTP payload type used for H.264.
pub const VIDEO_PAYLOAD_TYPE: u8 = 96;
/// The track number (`a=control:trackID=3`) of a re-served camera's AAC, offered as it
/// came (RFC 3640 `mpeg4-generic`) before the G.711 track.
pub const AAC_TRACK: usize = 3;
/// The dynamic RTP payload type of the AAC track.
pub const AAC_PAYLOAD_TYPE: u8 = 97;
/// The track number (`a=control:trackID=2`) of the ONVIF audio back channel, the stream the
/// player sends to the camera (talk, H.626.4 6.1.8).
pub const BACKCHANNEL_TRACK: usize = 2;

/// The audio codecs a camera offers, with their static payload types (RFC 3551 table 4): the
/// workspace's one audio codec type, from `peercam-rtp`.
pub use peercam_rtp::g711::AudioCodec;

/// The H.264 stream's parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct H264Video {
    /// The sequence parameter set NAL unit (with its header byte, without a start code).
    /// `profile-level-id` is taken from its bytes 1..4. Empty when not yet known.
    pub sps: Vec<u8>,
    /// The picture parameter set NAL unit. Empty when not yet known.
    pub pps: Vec<u8>,
    /// `a=framerate:` (frames per second), if advertised.
    pub framerate: Option<f64>,
    /// `a=x-dimensions:<width>,<height>`, if advertised.
    pub dimensions: Option<(u32, u32)>,
}

/// What [`CameraSdp::build`] turns into a session description.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraSdp {
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version; bump it when the parameters change.
    pub session_version: u64,
    /// `o=` address of the camera (`IP4` unless it contains `:`); `0.0.0.0` when empty or
    /// not a single visible token.
    pub origin_address: String,
    /// `s=`; trailing whitespace is dropped and an empty name is written as `-`.
    pub session_name: String,
    /// The video stream (track 0).
    pub video: Option<H264Video>,
    /// The audio stream (track 1).
    pub audio: Option<AudioCodec>,
}

impl CameraSdp {
    /// The description as a structure.
    pub fn description(&self) -> SessionDescription {
        let addr_type = if self.origin_address.contains(':') {
            "IP6"
        } else {
            "IP4"
        };
        let name = self.session_name.trim_end();
        let mut sd = SessionDescription {
            lines: vec![
                SdpLine::new('v', "0"),
                SdpLine::new(
                    'o',
                    format!(
                        "- {} {} IN {addr_type} {}",
                        self.session_id,
                        self.session_version,
                        address(&self.origin_address)
                    ),
                ),
                SdpLine::new('s', nonblank(name, "-")),
                SdpLine::new('c', "IN IP4 0.0.0.0"),
                SdpLine::new('t', "0 0"),
                SdpLine::new('a', "control:*"),
                SdpLine::new('a', "range:npt=now-"),
            ],
            media: Vec::new(),
        };
        if let Some(v) = &self.video {
            let pt = VIDEO_PAYLOAD_TYPE;
            let mut fmtp = format!("fmtp:{pt} packetization-mode=1");
            if let Some(pli) = v.sps.get(1..4) {
                fmtp.push_str(&format!(
                    ";profile-level-id={:02x}{:02x}{:02x}",
                    pli[0], pli[1], pli[2]
                ));
            }
            if !v.sps.is_empty() && !v.pps.is_empty() {
                fmtp.push_str(&format!(
                    ";sprop-parameter-sets={},{}",
                    base64::encode(&v.sps),
                    base64::encode(&v.pps)
                ));
            }
            let mut lines = vec![
                SdpLine::new('a', format!("rtpmap:{pt} H264/90000")),
                SdpLine::new('a', fmtp),
            ];
            if let Some(fr) = v.framerate.filter(|f| f.is_finite() && *f > 0.0) {
                lines.push(SdpLine::new('a', format!("framerate:{fr}")));
            }
            if let Some((w, h)) = v.dimensions {
                lines.push(SdpLine::new('a', format!("x-dimensions:{w},{h}")));
            }
            lines.push(SdpLine::new('a', format!("control:trackID={VIDEO_TRACK}")));
            sd.media.push(MediaDescription {
                media: "video".into(),
                port: 0,
                port_count: None,
                proto: "RTP/AVP".into(),
                formats: vec![pt.to_string()],
                lines,
            });
        }
        if let Some(a) = self.audio {
            let pt = a.payload_type();
            sd.media.push(MediaDescription {
                media: "audio".into(),
                port: 0,
                port_count: None,
                proto: "RTP/AVP".into(),
                formats: vec![pt.to_string()],
                lines: vec![
                    SdpLine::new(
                        'a',
                        format!("rtpmap:{pt} {}/{}", a.encoding_name(), a.clock_rate()),
                    ),
                    SdpLine::new('a', format!("control:trackID={AUDIO_TRACK}")),
                ],
            });
        }
        sd
    }

    /// The SDP text to answer DESCRIBE with (`Content-Type: application/sdp`).
    pub fn build(&self) -> String {
        self.description().to_string()
    }

    /// As [`Self::build_with_backchannel`], with a camera's AAC (`aac`, its
    /// AudioSpecificConfig) offered first among the audio tracks: a player that takes AAC
    /// sets it up ([`AAC_TRACK`]), one that does not sets up the G.711 track after it
    /// (players that take every stream, like ffmpeg, get both).
    pub fn build_with_aac(
        &self,
        aac: Option<&peercam_rtp::aac::AacConfig>,
        backchannel: &[AudioCodec],
    ) -> String {
        let mut sd = self.description();
        if let Some(c) = aac {
            let at = sd
                .media
                .iter()
                .position(|m| m.media == "audio")
                .unwrap_or(sd.media.len());
            sd.media.insert(at, aac_media(c));
        }
        if let Some(m) = backchannel_media(backchannel) {
            sd.media.push(m);
        }
        sd.to_string()
    }

    /// As [`Self::build`], plus the ONVIF audio back channel (ONVIF Streaming Specification
    /// 5.3): an audio section marked `a=sendonly` (the direction as the ONVIF specification
    /// writes it for the stream the player sends) offering `codecs` in order of preference,
    /// with control URL `trackID=2` ([`BACKCHANNEL_TRACK`]). Without codecs it is
    /// [`Self::build`].
    pub fn build_with_backchannel(&self, codecs: &[AudioCodec]) -> String {
        let mut sd = self.description();
        if let Some(m) = backchannel_media(codecs) {
            sd.media.push(m);
        }
        sd.to_string()
    }
}

/// The media section of an AAC track ([`AAC_TRACK`], [`AAC_PAYLOAD_TYPE`]):
/// `mpeg4-generic/<rate>/<channels>` with the AAC-hbr fmtp and the stream's `config=`
/// (RFC 3640 3.3.6).
pub fn aac_media(c: &peercam_rtp::aac::AacConfig) -> MediaDescription {
    let pt = AAC_PAYLOAD_TYPE;
    MediaDescription {
        media: "audio".into(),
        port: 0,
        port_count: None,
        proto: "RTP/AVP".into(),
        formats: vec![pt.to_string()],
        lines: vec![
            SdpLine::new('a', format!("rtpmap:{pt} {}", c.rtpmap())),
            SdpLine::new('a', format!("fmtp:{pt} {}", c.fmtp())),
            SdpLine::new('a', format!("control:trackID={AAC_TRACK}")),
        ],
    }
}

/// The back channel's media section, or `None` without codecs.
pub fn backchannel_media(codecs: &[AudioCodec]) -> Option<MediaDescription> {
    let mut seen: Vec<AudioCodec> = Vec::new();
    for c in codecs {
        if !seen.contains(c) {
            seen.push(*c);
        }
    }
    if seen.is_empty() {
        return None;
    }
    let mut lines: Vec<SdpLine> = seen
        .iter()
        .map(|c| {
            SdpLine::new(
                'a',
                format!(
                    "rtpmap:{} {}/{}",
                    c.payload_type(),
                    c.encoding_name(),
                    c.clock_rate()
                ),
            )
        })
        .collect();
    lines.push(SdpLine::new('a', "sendonly"));
    lines.push(SdpLine::new(
        'a',
        format!("control:trackID={BACKCHANNEL_TRACK}"),
    ));
    Some(MediaDescription {
        media: "audio".into(),
        port: 0,
        port_count: None,
        proto: "RTP/AVP".into(),
        formats: seen.iter().map(|c| c.payload_type().to_string()).collect(),
        lines,
    })
}

/// The back channel a description offers (ONVIF: an audio section marked `a=sendonly`): its
/// control URL (as written) and the codecs it takes, in the order offered. `None` when it
/// offers none the camera side could know.
pub fn find_backchannel(sd: &SessionDescription) -> Option<(String, Vec<(u8, AudioCodec)>)> {
    sd.media
        .iter()
        .filter(|m| m.media.eq_ignore_ascii_case("audio"))
        .filter(|m| m.attribute("sendonly").is_some())
        .find_map(|m| {
            let codecs: Vec<(u8, AudioCodec)> = m
                .payload_types()
                .filter_map(|pt| {
                    let map = m.rtpmap(pt);
                    AudioCodec::from_rtpmap(pt, map.as_ref().map(|r| r.encoding)).map(|c| (pt, c))
                })
                .collect();
            let control = m.control()?.to_owned();
            (!codecs.is_empty()).then_some((control, codecs))
        })
}

impl CameraSdp {
    /// Reads back what [`Self::build`] wrote (or a description like it): the first H.264
    /// video section and the first G.711/G.722 audio section the camera sends (a back
    /// channel, marked `a=sendonly`, is not it: see [`find_backchannel`]). `None` if `o=` is
    /// missing or malformed.
    pub fn from_description(sd: &SessionDescription) -> Option<Self> {
        let mut o = sd.line('o')?.split_ascii_whitespace();
        let (_user, sid, ver, _net, _addr_type, addr) = (
            o.next()?,
            o.next()?,
            o.next()?,
            o.next()?,
            o.next()?,
            o.next()?,
        );
        let mut out = Self {
            session_id: sid.parse().ok()?,
            session_version: ver.parse().ok()?,
            origin_address: addr.to_owned(),
            session_name: sd.session_name().unwrap_or_default().to_owned(),
            video: None,
            audio: None,
        };
        for m in &sd.media {
            let pt = m.payload_types().next();
            match (m.media.as_str(), pt) {
                ("video", Some(pt)) if out.video.is_none() => {
                    if !m
                        .rtpmap(pt)
                        .is_some_and(|r| r.encoding.eq_ignore_ascii_case("H264"))
                    {
                        continue;
                    }
                    let sets = m.h264_parameter_sets(pt).unwrap_or_default();
                    let mut sets = sets.into_iter();
                    let (sps, pps) = (
                        sets.next().unwrap_or_default(),
                        sets.next().unwrap_or_default(),
                    );
                    out.video = Some(H264Video {
                        sps,
                        pps,
                        framerate: m.attribute("framerate").and_then(|f| f.trim().parse().ok()),
                        dimensions: m.attribute("x-dimensions").and_then(|d| {
                            let (w, h) = d.split_once(',')?;
                            Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
                        }),
                    });
                }
                ("audio", Some(pt)) if out.audio.is_none() && m.attribute("sendonly").is_none() => {
                    out.audio = AudioCodec::from_rtpmap(pt, m.rtpmap(pt).map(|r| r.encoding));
                }
                _ => {}
            }
        }
        Some(out)
    }
}

/// The origin address if it is one visible token, else `0.0.0.0`.
fn address(s: &str) -> &str {
    if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        s
    } else {
        "0.0.0.0"
    }
}

fn nonblank<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.trim().is_empty() { default } else { s }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// SPS and PPS of a 1280x720 baseline stream from openh264.
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10,
    ];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn camera() -> CameraSdp {
        CameraSdp {
            session_id: 1_700_000_000,
            session_version: 1,
            origin_address: "192.168.1.20".into(),
            session_name: "peercam pc-0123456789abcdef".into(),
            video: Some(H264Video {
                sps: SPS.to_vec(),
                pps: PPS.to_vec(),
                framerate: Some(25.0),
                dimensions: Some((1280, 720)),
            }),
            audio: Some(AudioCodec::G722),
        }
    }

    #[test]
    fn aac_is_offered_before_the_g711_track() {
        let aac = peercam_rtp::aac::AacConfig::aac_lc(16_000, 1).unwrap();
        let text = camera().build_with_aac(Some(&aac), &[]);
        let sd = SessionDescription::parse(text.as_bytes()).unwrap();
        let audio: Vec<_> = sd.media.iter().filter(|m| m.media == "audio").collect();
        assert_eq!(audio.len(), 2);
        assert_eq!(audio[0].control(), Some("trackID=3"));
        let map = audio[0].rtpmap(97).unwrap();
        assert_eq!((map.encoding, map.clock_rate), ("mpeg4-generic", 16_000));
        assert!(text.contains("a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1408\r\n"), "{text}");
        assert_eq!(audio[1].control(), Some("trackID=1"));
        // Read back, the camera's audio is still the G.711 track.
        assert_eq!(
            CameraSdp::from_description(&sd).unwrap().audio,
            Some(AudioCodec::G722)
        );
        assert_eq!(camera().build_with_aac(None, &[]), camera().build());
    }

    #[test]
    fn builds_what_players_expect() {
        assert_eq!(
            camera().build(),
            "v=0\r\n\
             o=- 1700000000 1 IN IP4 192.168.1.20\r\n\
             s=peercam pc-0123456789abcdef\r\n\
             c=IN IP4 0.0.0.0\r\n\
             t=0 0\r\n\
             a=control:*\r\n\
             a=range:npt=now-\r\n\
             m=video 0 RTP/AVP 96\r\n\
             a=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;profile-level-id=42c01f;sprop-parameter-sets=Z0LAH4yNQFAFuwEQ,aM48gA==\r\n\
             a=framerate:25\r\n\
             a=x-dimensions:1280,720\r\n\
             a=control:trackID=0\r\n\
             m=audio 0 RTP/AVP 9\r\n\
             a=rtpmap:9 G722/8000\r\n\
             a=control:trackID=1\r\n"
        );
    }

    #[test]
    fn audio_only_and_pcm() {
        for (codec, line) in [
            (AudioCodec::Pcmu, "a=rtpmap:0 PCMU/8000"),
            (AudioCodec::Pcma, "a=rtpmap:8 PCMA/8000"),
        ] {
            let c = CameraSdp {
                video: None,
                audio: Some(codec),
                ..camera()
            };
            let text = c.build();
            assert!(text.contains(line), "{text}");
            assert!(text.contains("a=control:trackID=1"));
            let back =
                CameraSdp::from_description(&SessionDescription::parse(text.as_bytes()).unwrap());
            assert_eq!(back, Some(c));
        }
        // Before the encoder has produced parameter sets.
        let c = CameraSdp {
            video: Some(H264Video::default()),
            audio: None,
            ..camera()
        };
        assert!(c.build().contains("a=fmtp:96 packetization-mode=1\r\n"));
    }

    #[test]
    fn backchannel_section() {
        let text = camera().build_with_backchannel(&[AudioCodec::Pcmu, AudioCodec::Pcma]);
        assert!(text.starts_with(&camera().build()), "{text}");
        assert!(
            text.ends_with(
                "m=audio 0 RTP/AVP 0 8\r\n\
                 a=rtpmap:0 PCMU/8000\r\n\
                 a=rtpmap:8 PCMA/8000\r\n\
                 a=sendonly\r\n\
                 a=control:trackID=2\r\n"
            ),
            "{text}"
        );
        let sd = SessionDescription::parse(text.as_bytes()).unwrap();
        assert_eq!(
            find_backchannel(&sd),
            Some((
                "trackID=2".into(),
                vec![(0, AudioCodec::Pcmu), (8, AudioCodec::Pcma)]
            ))
        );
        // The camera's own audio is still the G.722 track, not the back channel.
        assert_eq!(CameraSdp::from_description(&sd), Some(camera()));
        // Without codecs nothing is added; without the section nothing is found.
        assert_eq!(camera().build_with_backchannel(&[]), camera().build());
        let plain = SessionDescription::parse(camera().build().as_bytes()).unwrap();
        assert_eq!(find_backchannel(&plain), None);
        // Only a back channel: the camera sends no audio.
        let c = CameraSdp {
            audio: None,
            ..camera()
        };
        let text = c.build_with_backchannel(&[AudioCodec::Pcma, AudioCodec::Pcma]);
        assert!(text.contains("m=audio 0 RTP/AVP 8\r\n"), "{text}");
        let sd = SessionDescription::parse(text.as_bytes()).unwrap();
        assert_eq!(CameraSdp::from_description(&sd), Some(c));
    }

    prop_compose! {
        fn arb_camera()(
            session_id in any::<u64>(),
            session_version in any::<u64>(),
            origin_address in "[0-9]{1,3}(\\.[0-9]{1,3}){3}|[0-9a-f:]{2,20}",
            session_name in "[!-~]([ -~]{0,30}[!-~])?",
            video in proptest::option::of((
                proptest::collection::vec(any::<u8>(), 1..40),
                proptest::collection::vec(any::<u8>(), 1..10),
                proptest::option::of((1u32..12_000).prop_map(|f| f64::from(f) / 100.0)),
                proptest::option::of((any::<u32>(), any::<u32>())),
                any::<bool>(),
            )),
            audio in proptest::option::of(prop_oneof![Just(AudioCodec::Pcmu), Just(AudioCodec::Pcma), Just(AudioCodec::G722)]),
        ) -> CameraSdp {
            CameraSdp {
                session_id, session_version, origin_address, session_name,
                video: video.map(|(sps, pps, framerate, dimensions, sets)| H264Video {
                    sps: if sets { sps } else { vec![] },
                    pps: if sets { pps } else { vec![] },
                    framerate, dimensions,
                }),
                audio,
            }
        }
    }

    proptest! {
        #[test]
        fn backchannel_round_trips(
            c in arb_camera(),
            codecs in proptest::collection::vec(
                prop_oneof![Just(AudioCodec::Pcmu), Just(AudioCodec::Pcma), Just(AudioCodec::G722)],
                1..5,
            ),
        ) {
            let text = c.build_with_backchannel(&codecs);
            let sd = SessionDescription::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(sd.to_string(), text);
            prop_assert_eq!(CameraSdp::from_description(&sd), Some(c));
            let (control, found) = find_backchannel(&sd).unwrap();
            prop_assert_eq!(control, "trackID=2");
            let mut want: Vec<AudioCodec> = Vec::new();
            for k in codecs {
                if !want.contains(&k) {
                    want.push(k);
                }
            }
            let found: Vec<AudioCodec> = found.into_iter().map(|(pt, k)| {
                assert_eq!(pt, k.payload_type());
                k
            }).collect();
            prop_assert_eq!(found, want);
        }

        #[test]
        fn parse_of_build_round_trips(c in arb_camera()) {
            let text = c.build();
            let sd = SessionDescription::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(sd.to_string(), text);
            prop_assert_eq!(CameraSdp::from_description(&sd), Some(c));
            if let Some(v) = &sd.media.first().filter(|m| m.media == "video") {
                prop_assert_eq!(v.control(), Some("trackID=0"));
                prop_assert_eq!(v.rtpmap(96).map(|r| r.clock_rate), Some(90_000));
            }
        }
    }
}
