//! Writer -> reader round trips and reader robustness.

use proptest::prelude::*;

use super::*;
use crate::annexb::{self, AccessUnit, AccessUnitAssembler};
use peercam_rtp::g711::Law;

const FIXTURE: &[u8] = include_bytes!("../../testdata/x264_baseline_320x180_25fps_50f.h264");

fn fixture_aus() -> Vec<AccessUnit> {
    let mut a = AccessUnitAssembler::new();
    a.push(FIXTURE).unwrap();
    a.finish().unwrap();
    std::iter::from_fn(|| a.pop()).collect()
}

fn params() -> VideoParams {
    VideoParams::from_annexb(FIXTURE).unwrap()
}

/// What a sample should hold: the access unit without parameter sets and delimiters, AVCC.
fn expected_sample(au: &AccessUnit) -> Vec<u8> {
    annexb::to_avcc(au.nals.iter().filter(|n| !matches!(n[0] & 0x1f, 7..=9))).unwrap()
}

/// Runs the stream writer into a "file" and applies the patch.
fn stream_file(
    audio: Option<AudioParams>,
    f: impl FnOnce(&mut Mp4StreamWriter, &mut Vec<u8>),
) -> Vec<u8> {
    let mut file = Vec::new();
    let mut w = Mp4StreamWriter::new(params(), audio, &mut file).unwrap();
    f(&mut w, &mut file);
    assert_eq!(w.position(), file.len() as u64);
    let patch = w.finish(&mut file).unwrap();
    let at = patch.offset as usize;
    file[at..at + 8].copy_from_slice(&patch.bytes);
    file
}

fn top_level(file: &[u8]) -> Vec<String> {
    boxes(file).map(|b| b.unwrap().kind.to_string()).collect()
}

#[test]
fn fixture_round_trips_through_both_writers() {
    let aus = fixture_aus();
    let mut w = Mp4Writer::new(params(), None)
        .unwrap()
        .with_creation_time(1_700_000_000);
    for (i, au) in aus.iter().enumerate() {
        w.push_video(&au.to_annexb(), 1000 + i as u64 * 3600, au.is_key())
            .unwrap();
    }
    let buffered = w.finish().unwrap();
    assert_eq!(top_level(&buffered), ["ftyp", "moov", "mdat"]);
    let streamed = stream_file(None, |w, out| {
        for (i, au) in aus.iter().enumerate() {
            w.push_video_nals(&au.nals, 1000 + i as u64 * 3600, au.is_key(), out)
                .unwrap();
        }
    });
    assert_eq!(top_level(&streamed), ["ftyp", "mdat", "moov"]);

    for file in [&buffered, &streamed] {
        let movie = Movie::parse(file).unwrap();
        assert_eq!(movie.tracks.len(), 1);
        assert_eq!(movie.duration, 2000, "ms");
        let v = movie.video().unwrap();
        assert_eq!((v.id, v.timescale, v.duration), (1, 90_000, 50 * 3600));
        assert_eq!((v.width, v.height), (320, 180));
        let SampleEntry::Avc {
            format,
            width,
            height,
            config,
        } = &v.entry
        else {
            panic!("{:?}", v.entry);
        };
        assert_eq!((*format, *width, *height), (FourCc::AVC1, 320, 180));
        assert_eq!(config.sps, vec![params().sps]);
        assert_eq!(config.pps, vec![params().pps]);
        assert_eq!((config.profile_idc, config.length_size), (66, 4));
        assert_eq!(v.sample_count(), 50);
        assert_eq!(v.sync_count(), 2);
        let samples: Vec<Sample> = v.samples().collect();
        assert_eq!(samples.len(), 50);
        for (i, (s, au)) in samples.iter().zip(&aus).enumerate() {
            assert_eq!(s.data(file).unwrap(), expected_sample(au), "sample {i}");
            assert_eq!((s.dts, s.duration), (i as u64 * 3600, 3600));
            assert_eq!(s.is_sync, i == 0 || i == 25);
        }
        assert!(movie.audio().is_none());
    }
}

#[test]
fn audio_is_aligned_to_the_first_video_sample() {
    let aus = fixture_aus();
    let audio = Some(AudioParams { law: Law::ALaw });
    let mut w = Mp4Writer::new(params(), audio).unwrap();
    // 20 ms packets on the same clock; the first two come before the video and the first
    // is entirely earlier than it. Video starts at 90 kHz pts 9000 = 8 kHz pts 800.
    w.push_audio(&[1; 160], 480).unwrap();
    w.push_audio(&[2; 160], 640 + 100).unwrap(); // 60 samples before time zero
    for (i, au) in aus.iter().take(10).enumerate() {
        w.push_video(&au.to_annexb(), 9000 + i as u64 * 3600, au.is_key())
            .unwrap();
        if i == 3 {
            w.push_audio(&[3; 160], 1000).unwrap(); // a hole of 100 samples
            w.push_audio(&[4; 160], 1150).unwrap(); // overlaps by 10
        }
    }
    let file = w.finish().unwrap();
    let movie = Movie::parse(&file).unwrap();
    let a = movie.audio().unwrap();
    assert_eq!(a.id, 2);
    assert_eq!(
        a.entry,
        SampleEntry::Audio {
            format: FourCc::ALAW,
            channels: 1,
            sample_size: 16,
            sample_rate: 8000
        }
    );
    let mut want = vec![2u8; 100];
    want.extend([0xd5; 100]);
    want.extend([3; 160]);
    want.extend([4; 150]);
    let got: Vec<u8> = a
        .chunks()
        .flat_map(|c| c.data(&file).unwrap().to_vec())
        .collect();
    assert_eq!(got, want);
    assert_eq!(a.sample_count() as usize, want.len());
    assert_eq!((a.timescale, a.duration), (8000, want.len() as u64));
    assert!(
        a.samples()
            .all(|s| s.size == 1 && s.duration == 1 && s.is_sync)
    );
    assert_eq!(a.samples().nth(100).unwrap().data(&file), Some(&[0xd5][..]));
    assert_eq!(movie.video().unwrap().sample_count(), 10);
}

#[test]
fn misuse_and_stream_changes_are_errors_that_add_nothing() {
    let aus = fixture_aus();
    let mut w = Mp4Writer::new(params(), None).unwrap();
    assert_eq!(
        w.push_audio(&[0; 10], 0),
        Err(Error::Misuse(
            "push_audio on a writer without an audio track"
        ))
    );
    w.push_video(&aus[0].to_annexb(), 100, true).unwrap();
    assert_eq!(
        w.push_video(&aus[1].to_annexb(), 100, false),
        Err(Error::NonMonotonicPts {
            track: "video",
            pts: 100,
            prev: 100
        })
    );
    let mut other_sps = params().sps;
    *other_sps.last_mut().unwrap() ^= 0x10;
    let mut changed = aus[1].nals.clone();
    changed.insert(0, other_sps);
    assert_eq!(
        w.push_video_nals(&changed, 200, false),
        Err(Error::ParameterSetsChanged)
    );
    let only_params = [params().sps, params().pps];
    assert!(matches!(
        w.push_video_nals(only_params, 200, false),
        Err(Error::Misuse(_))
    ));
    assert!(matches!(
        w.push_video(&aus[1].to_annexb(), 100 + (1 << 32), false),
        Err(Error::TooLarge { .. })
    ));
    w.push_video(&aus[1].to_annexb(), 3700, false).unwrap();
    let file = w.finish().unwrap();
    let v = Movie::parse(&file).unwrap().tracks.remove(0);
    let data: Vec<_> = v
        .samples()
        .map(|s| s.data(&file).unwrap().to_vec())
        .collect();
    assert_eq!(
        data,
        vec![expected_sample(&aus[0]), expected_sample(&aus[1])]
    );

    assert!(matches!(
        Mp4Writer::new(params(), None).unwrap().finish(),
        Err(Error::Misuse(_))
    ));
    assert!(Mp4Writer::new(VideoParams::new(vec![0x67], vec![0x68, 1]), None).is_err());
    let mut zero = params();
    zero.timescale = 0;
    assert!(matches!(Mp4Writer::new(zero, None), Err(Error::Misuse(_))));
}

#[test]
fn offsets_past_4_gib_use_co64_and_a_64_bit_mdat() {
    let aus = fixture_aus();
    let start = 5u64 << 30;
    let mut out = Vec::new();
    let mut w = Mp4StreamWriter::new_at(
        params(),
        Some(AudioParams { law: Law::MuLaw }),
        start,
        &mut out,
    )
    .unwrap();
    for (i, au) in aus.iter().take(5).enumerate() {
        w.push_video_nals(&au.nals, i as u64 * 3600, au.is_key(), &mut out)
            .unwrap();
        w.push_audio(&[7; 320], i as u64 * 320, &mut out).unwrap();
    }
    let moov_at = out.len();
    let patch = w.finish(&mut out).unwrap();
    assert_eq!(patch.offset, start + 32 + 8);
    assert_eq!(u64::from_be_bytes(patch.bytes), (moov_at - 32) as u64);
    let moov = boxes(&out[moov_at..]).next().unwrap().unwrap();
    assert_eq!(moov.kind.to_string(), "moov");
    let movie = Movie::parse_moov(moov.body).unwrap();
    let v = movie.video().unwrap();
    let first = v.samples().next().unwrap();
    assert_eq!(first.offset, start + 48);
    let local = |off: u64| (off - start) as usize;
    for (s, au) in v.samples().zip(&aus) {
        assert_eq!(
            &out[local(s.offset)..][..s.size as usize],
            expected_sample(au)
        );
    }
    let a = movie.audio().unwrap();
    assert_eq!(a.chunks().count(), 5);
    assert!(
        a.chunks()
            .all(|c| c.size == 320 && out[local(c.offset)] == 7)
    );
    let stbl_kinds: Vec<String> = boxes(moov.body)
        .filter_map(|b| b.ok())
        .filter(|b| b.kind.0 == *b"trak")
        .flat_map(|t| {
            let mdia = t
                .children()
                .find(|b| b.as_ref().unwrap().kind.0 == *b"mdia")
                .unwrap()
                .unwrap();
            let minf = mdia
                .children()
                .find(|b| b.as_ref().unwrap().kind.0 == *b"minf")
                .unwrap()
                .unwrap();
            let stbl = minf
                .children()
                .find(|b| b.as_ref().unwrap().kind.0 == *b"stbl")
                .unwrap()
                .unwrap();
            stbl.children()
                .map(|b| b.unwrap().kind.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(stbl_kinds.iter().filter(|k| *k == "co64").count(), 2);
    assert!(!stbl_kinds.iter().any(|k| k == "stco"));
}

#[test]
fn long_durations_use_version_1_headers() {
    let aus = fixture_aus();
    let mut w = Mp4Writer::new(params(), None).unwrap();
    for (i, au) in aus.iter().take(3).enumerate() {
        w.push_video(&au.to_annexb(), i as u64 * 4_000_000_000, au.is_key())
            .unwrap();
    }
    let file = w.finish().unwrap();
    let movie = Movie::parse(&file).unwrap();
    let v = movie.video().unwrap();
    assert_eq!(v.duration, 12_000_000_000);
    assert_eq!(movie.duration, 12_000_000_000 / 90);
    assert_eq!(v.samples().last().unwrap().dts, 8_000_000_000);
}

#[test]
fn truncated_files_are_errors() {
    let aus = fixture_aus();
    let mut w = Mp4Writer::new(params(), Some(AudioParams { law: Law::MuLaw })).unwrap();
    for (i, au) in aus.iter().take(4).enumerate() {
        w.push_video(&au.to_annexb(), i as u64 * 3600, au.is_key())
            .unwrap();
        w.push_audio(&[0x55; 320], i as u64 * 320).unwrap();
    }
    let file = w.finish().unwrap();
    Movie::parse(&file).unwrap();
    for len in 0..file.len() {
        assert!(Movie::parse(&file[..len]).is_err(), "cut at {len}");
    }
}

/// Either writer, for tests that run both.
enum AnyWriter {
    Buffered(Mp4Writer),
    Streamed(Mp4StreamWriter, Vec<u8>),
}

impl AnyWriter {
    fn push_video(&mut self, nals: &[Vec<u8>], pts: u64, key: bool) {
        match self {
            Self::Buffered(w) => w.push_video_nals(nals, pts, key),
            Self::Streamed(w, out) => w.push_video_nals(nals, pts, key, out),
        }
        .unwrap();
    }

    fn push_audio(&mut self, bytes: &[u8], pts: u64) {
        match self {
            Self::Buffered(w) => w.push_audio(bytes, pts),
            Self::Streamed(w, out) => w.push_audio(bytes, pts, out),
        }
        .unwrap();
    }

    /// The file, or `None` if `finish` failed.
    fn finish(self) -> Option<Vec<u8>> {
        match self {
            Self::Buffered(w) => w.finish().ok(),
            Self::Streamed(w, mut out) => {
                let patch = w.finish(&mut out).ok()?;
                let at = patch.offset as usize;
                out[at..at + 8].copy_from_slice(&patch.bytes);
                Some(out)
            }
        }
    }
}

/// One step of a random recording.
#[derive(Debug, Clone)]
enum Step {
    Video {
        nal_sizes: Vec<usize>,
        delta: u64,
        key: bool,
    },
    Audio {
        len: usize,
        delta: u64,
    },
}

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            (
                prop::collection::vec(1usize..300, 1..4),
                1u64..20_000,
                any::<bool>()
            )
                .prop_map(|(nal_sizes, delta, key)| Step::Video {
                    nal_sizes,
                    delta,
                    key
                }),
            (1usize..400, 1u64..600).prop_map(|(len, delta)| Step::Audio { len, delta }),
        ],
        0..40,
    )
}

proptest! {
    #[test]
    fn random_recordings_round_trip(steps in arb_steps(), streamed in any::<bool>(), video_start in 0u64..100_000, audio_start in 0u64..10_000) {
        let codec = Law::MuLaw;
        let mut frames: Vec<(Vec<Vec<u8>>, u64, bool)> = Vec::new();
        let mut audio_in: Vec<(u64, Vec<u8>)> = Vec::new();
        let (mut vpts, mut apts) = (video_start, audio_start);
        let mut order = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Video { nal_sizes, delta, key } => {
                    let nals = nal_sizes.iter().enumerate().map(|(j, n)| {
                        let mut nal = vec![if *key { 0x65 } else { 0x41 }];
                        nal.extend((0..*n).map(|k| (i + j + k) as u8 | 1));
                        nal
                    }).collect();
                    frames.push((nals, vpts, *key));
                    vpts += delta;
                    order.push(true);
                }
                Step::Audio { len, delta } => {
                    audio_in.push((apts, (0..*len).map(|k| (k % 200) as u8).collect()));
                    apts += delta;
                    order.push(false);
                }
            }
        }
        let audio = Some(AudioParams { law: codec });
        let mut w = if streamed {
            let mut out = Vec::new();
            let w = Mp4StreamWriter::new(params(), audio, &mut out).unwrap();
            AnyWriter::Streamed(w, out)
        } else {
            AnyWriter::Buffered(Mp4Writer::new(params(), audio).unwrap())
        };
        let (mut frame_it, mut audio_it) = (frames.iter(), audio_in.iter());
        for is_video in order {
            if is_video {
                let (nals, pts, key) = frame_it.next().unwrap();
                w.push_video(nals, *pts, *key);
            } else {
                let (pts, bytes) = audio_it.next().unwrap();
                w.push_audio(bytes, *pts);
            }
        }
        let file = w.finish();
        let Some(file) = file else {
            prop_assert!(frames.is_empty(), "finish fails only without video");
            return Ok(());
        };
        let movie = Movie::parse(&file).unwrap();
        let v = movie.video().unwrap();
        prop_assert_eq!(v.sample_count() as usize, frames.len());
        for (s, (nals, pts, key)) in v.samples().zip(&frames) {
            prop_assert_eq!(s.data(&file).unwrap(), annexb::to_avcc(nals).unwrap());
            prop_assert_eq!(s.dts, pts - frames[0].1);
            prop_assert_eq!(s.is_sync, *key);
        }
        prop_assert_eq!(v.duration, v.sample_duration_total());

        // The audio model: sample-exact placement against the first video pts.
        let origin = frames[0].1 * 8000 / 90_000;
        let mut want: Vec<u8> = Vec::new();
        for (pts, bytes) in &audio_in {
            let at = *pts as i64 - origin as i64;
            if at > want.len() as i64 {
                want.resize(at as usize, codec.encode(0));
            }
            let skip = (want.len() as i64 - at) as usize;
            want.extend(bytes.iter().skip(skip));
        }
        let got: Vec<u8> = movie.audio().map_or(Vec::new(), |a| a.chunks().flat_map(|c| c.data(&file).unwrap().to_vec()).collect());
        prop_assert_eq!(got, want);
    }

    #[test]
    fn corrupted_files_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let aus = fixture_aus();
        let mut w = Mp4Writer::new(params(), Some(AudioParams { law: Law::MuLaw })).unwrap();
        for (i, au) in aus.iter().take(3).enumerate() {
            w.push_video(&au.to_annexb(), i as u64 * 3600, au.is_key()).unwrap();
            w.push_audio(&[0x55; 100], i as u64 * 320).unwrap();
        }
        let mut file = w.finish().unwrap();
        // Corrupt the moov (the first ~1 KB), where the structure is.
        let moov_end = 32 + boxes(&file[32..]).next().unwrap().unwrap().body.len() + 8;
        for (at, v) in flips {
            let i = at.index(moov_end);
            file[i] = v;
        }
        if let Ok(movie) = Movie::parse(&file) {
            for t in &movie.tracks {
                for s in t.samples().take(100_000) {
                    prop_assert!(s.data(&file).is_some());
                }
            }
        }
    }
}
