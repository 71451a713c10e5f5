use proptest::prelude::*;

use super::*;
use crate::annexb::escape;
use crate::bits::BitWriter;

fn fixture(name: &str) -> Vec<u8> {
    let text = include_str!("../testdata/x264_sps.txt");
    let hex = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no fixture {name}"));
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn x264_baseline_720p() {
    let sps = Sps::parse(&fixture("baseline_1280x720_25fps")).unwrap();
    assert_eq!((sps.width, sps.height), (1280, 720));
    assert_eq!((sps.coded_width, sps.coded_height), (1280, 720));
    assert_eq!(
        (sps.profile_idc, sps.constraint_flags, sps.level_idc),
        (66, 0xc0, 31)
    );
    assert_eq!(sps.profile_level_id(), "42c01f");
    assert_eq!(sps.frame_rate(), Some(25.0));
    assert_eq!(sps.frame_rate_ratio(), Some((50, 2)));
    assert_eq!(sps.sample_aspect_ratio, Some((1, 1)));
    assert!(sps.frame_mbs_only);
    assert_eq!(sps.chroma_format_idc, 1);
}

#[test]
fn x264_baseline_320x180_is_cropped() {
    let sps = Sps::parse(&fixture("baseline_320x180_25fps")).unwrap();
    assert_eq!((sps.width, sps.height), (320, 180));
    assert_eq!((sps.coded_width, sps.coded_height), (320, 192));
    assert_eq!(sps.profile_level_id(), "42c00c");
}

#[test]
fn x264_high_1080p_is_cropped() {
    let sps = Sps::parse(&fixture("high_1920x1080_30fps")).unwrap();
    assert_eq!((sps.width, sps.height), (1920, 1080));
    assert_eq!(sps.coded_height, 1088);
    assert_eq!(sps.profile_level_id(), "640028");
    assert_eq!(sps.frame_rate(), Some(30.0));
    assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (8, 8));
}

#[test]
fn x264_interlaced_crops_in_field_units() {
    let sps = Sps::parse(&fixture("high_1920x1080i_29.97fps")).unwrap();
    assert!(!sps.frame_mbs_only);
    assert_eq!((sps.width, sps.height), (1920, 1080));
    assert_eq!(sps.coded_height, 1088);
    assert_eq!(sps.frame_rate_ratio(), Some((60000, 2002)));
    let fps = sps.frame_rate().unwrap();
    assert!((fps - 29.97).abs() < 0.001, "{fps}");
}

#[test]
fn x264_high444_and_monochrome_crop_units() {
    let sps = Sps::parse(&fixture("high444_1000x562_15fps")).unwrap();
    assert_eq!((sps.profile_idc, sps.chroma_format_idc), (244, 3));
    assert_eq!((sps.width, sps.height), (1000, 562));
    assert_eq!(sps.frame_rate(), Some(15.0));
    let sps = Sps::parse(&fixture("high_gray_642x362_10fps")).unwrap();
    assert_eq!(sps.chroma_format_idc, 0);
    assert_eq!((sps.width, sps.height), (642, 362));
    assert_eq!(sps.frame_rate(), Some(10.0));
}

#[test]
fn rejects_non_sps_and_garbage() {
    assert!(matches!(Sps::parse(&[]), Err(Error::Truncated { .. })));
    assert!(matches!(
        Sps::parse(&[0x68, 0xce]),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        Sps::parse(&[0x67, 0x42]),
        Err(Error::Truncated { .. })
    ));
    let mut sps = fixture("baseline_1280x720_25fps");
    sps.truncate(8);
    assert!(Sps::parse(&sps).is_err());
    // Cut inside the VUI: the size survives, the timing does not.
    let mut sps = fixture("baseline_1280x720_25fps");
    sps.truncate(14);
    let parsed = Sps::parse(&sps).unwrap();
    assert_eq!((parsed.width, parsed.height), (1280, 720));
    assert_eq!(parsed.timing, None);
}

/// The inputs of a synthetic SPS.
#[derive(Debug, Clone)]
struct Synth {
    profile_idc: u8,
    chroma_format_idc: u32,
    separate_colour_plane: bool,
    scaling: Option<Vec<Option<Vec<i32>>>>,
    poc_type: u32,
    poc_cycle: Vec<i32>,
    width_mbs: u32,
    height_units: u32,
    frame_mbs_only: bool,
    crop: Option<[u32; 4]>,
    sar_idc: Option<u8>,
    timing: Option<(u32, u32)>,
}

fn arb_synth() -> impl Strategy<Value = Synth> {
    (
        prop_oneof![
            Just(66u8),
            Just(77),
            Just(100),
            Just(110),
            Just(122),
            Just(244)
        ],
        0u32..=3,
        any::<bool>(),
        prop::option::of(prop::collection::vec(
            prop::option::of(prop::collection::vec(-128i32..=127, 64)),
            12,
        )),
        0u32..=2,
        prop::collection::vec(any::<i16>().prop_map(i32::from), 0..4),
        (1u32..=240, 1u32..=135, any::<bool>()),
        prop::option::of([0u32..4, 0u32..4, 0u32..4, 0u32..4]),
        prop::option::of(prop_oneof![Just(1u8), Just(14), Just(255)]),
        prop::option::of((1u32.., 1u32..)),
    )
        .prop_map(
            |(
                profile_idc,
                cf,
                sep,
                scaling,
                poc_type,
                poc_cycle,
                (w, h, fmo),
                crop,
                sar_idc,
                timing,
            )| Synth {
                profile_idc,
                chroma_format_idc: cf,
                separate_colour_plane: sep && cf == 3,
                scaling,
                poc_type,
                poc_cycle,
                width_mbs: w,
                height_units: h,
                frame_mbs_only: fmo,
                crop,
                sar_idc,
                timing,
            },
        )
}

fn write_synth(s: &Synth) -> Vec<u8> {
    let high = s.profile_idc >= 100;
    let mut w = BitWriter::default();
    w.bits(8, u32::from(s.profile_idc));
    w.bits(8, 0);
    w.bits(8, 40);
    w.ue(3); // seq_parameter_set_id
    if high {
        w.ue(s.chroma_format_idc);
        if s.chroma_format_idc == 3 {
            w.bit(s.separate_colour_plane);
        }
        w.ue(0);
        w.ue(0);
        w.bit(false);
        w.bit(s.scaling.is_some());
        if let Some(lists) = &s.scaling {
            let n = if s.chroma_format_idc == 3 { 12 } else { 8 };
            for (i, list) in lists.iter().take(n).enumerate() {
                w.bit(list.is_some());
                if let Some(deltas) = list {
                    let size = if i < 6 { 16 } else { 64 };
                    // Write deltas until one makes nextScale zero (then the list stops).
                    let mut last = 8;
                    for &d in deltas.iter().take(size) {
                        w.se(d);
                        let next = (last + d + 256) % 256;
                        if next == 0 {
                            break;
                        }
                        last = next;
                    }
                }
            }
        }
    }
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(s.poc_type);
    match s.poc_type {
        0 => w.ue(2),
        1 => {
            w.bit(false);
            w.se(-1);
            w.se(2);
            w.ue(s.poc_cycle.len() as u32);
            for &o in &s.poc_cycle {
                w.se(o);
            }
        }
        _ => {}
    }
    w.ue(4);
    w.bit(false);
    w.ue(s.width_mbs - 1);
    w.ue(s.height_units - 1);
    w.bit(s.frame_mbs_only);
    if !s.frame_mbs_only {
        w.bit(true);
    }
    w.bit(true);
    w.bit(s.crop.is_some());
    for c in s.crop.unwrap_or_default() {
        if s.crop.is_some() {
            w.ue(c);
        }
    }
    let vui = s.sar_idc.is_some() || s.timing.is_some();
    w.bit(vui);
    if vui {
        w.bit(s.sar_idc.is_some());
        if let Some(idc) = s.sar_idc {
            w.bits(8, u32::from(idc));
            if idc == 255 {
                w.bits(16, 7);
                w.bits(16, 5);
            }
        }
        w.bit(true); // overscan_info_present
        w.bit(false);
        w.bit(true); // video_signal_type_present
        w.bits(3, 5);
        w.bit(false);
        w.bit(true);
        w.bits(24, 0x01_01_01);
        w.bit(true); // chroma_loc_info_present
        w.ue(0);
        w.ue(1);
        w.bit(s.timing.is_some());
        if let Some((n, t)) = s.timing {
            w.bits(32, n);
            w.bits(32, t);
            w.bit(true);
        }
        w.bit(false); // nal_hrd
        w.bit(false); // vcl_hrd
        w.bit(false); // pic_struct_present
        w.bit(false); // bitstream_restriction
    }
    let mut nal = vec![0x67];
    nal.extend(escape(&w.finish()));
    nal
}

proptest! {
    #[test]
    fn synthetic_sps_parses(s in arb_synth()) {
        let nal = write_synth(&s);
        let sps = Sps::parse(&nal).unwrap();
        let high = s.profile_idc >= 100;
        let cf = if high { s.chroma_format_idc } else { 1 };
        let cat = if high && s.separate_colour_plane { 0 } else { cf };
        let (ux, uy) = match cat { 1 => (2, 2), 2 => (2, 1), _ => (1, 1) };
        let uy = uy * if s.frame_mbs_only { 1 } else { 2 };
        let c = s.crop.unwrap_or_default();
        let coded_h = s.height_units * 16 * if s.frame_mbs_only { 1 } else { 2 };
        prop_assert_eq!(sps.coded_width, s.width_mbs * 16);
        prop_assert_eq!(sps.coded_height, coded_h);
        prop_assert_eq!(sps.width, s.width_mbs * 16 - (c[0] + c[1]) * ux);
        prop_assert_eq!(sps.height, coded_h - (c[2] + c[3]) * uy);
        prop_assert_eq!(sps.id, 3);
        prop_assert_eq!(u32::from(sps.chroma_format_idc), cf);
        prop_assert_eq!(sps.timing.map(|t| (t.num_units_in_tick, t.time_scale)), s.timing);
        let sar = match s.sar_idc { Some(1) => Some((1, 1)), Some(14) => Some((4, 3)), Some(255) => Some((7, 5)), _ => None };
        prop_assert_eq!(sps.sample_aspect_ratio, sar);
        prop_assert_eq!(sps.profile_level_id(), format!("{:02x}0028", s.profile_idc));
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut nal = vec![0x67];
        nal.extend(bytes);
        let _ = Sps::parse(&nal);
    }
}
