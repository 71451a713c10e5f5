//! Sequence parameter set parsing (H.264 7.3.2.1.1, VUI E.1.1): picture size after
//! cropping, profile and level, and the frame rate from the VUI timing information.
//!
//! Only the fields the muxers and the SDP need are kept. Everything up to the VUI must parse;
//! a VUI that ends early (some encoders truncate it) just leaves [`Sps::timing`] unset.

use crate::Error;
use crate::annexb::{NalType, unescape};
use crate::bits::BitReader;

const CTX: &str = "sps";

/// What an SPS says about the coded video.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sps {
    /// `profile_idc`: 66 baseline, 77 main, 100 high, ...
    pub profile_idc: u8,
    /// The byte holding `constraint_set0_flag` (MSB) to `constraint_set5_flag` and two
    /// reserved zero bits, as it appears in `profile-level-id`.
    pub constraint_flags: u8,
    /// `level_idc`: ten times the level number (31 for level 3.1); 9 for level 1b.
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub id: u32,
    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// `bit_depth_luma_minus8 + 8`.
    pub bit_depth_luma: u8,
    /// `bit_depth_chroma_minus8 + 8`.
    pub bit_depth_chroma: u8,
    /// Displayed width in luma samples, after cropping.
    pub width: u32,
    /// Displayed height in luma samples, after cropping (whole frame, both fields).
    pub height: u32,
    /// Coded width: `PicWidthInMbs * 16`.
    pub coded_width: u32,
    /// Coded height: `FrameHeightInMbs * 16`.
    pub coded_height: u32,
    /// `frame_mbs_only_flag`: false for streams that may hold field pictures.
    pub frame_mbs_only: bool,
    /// `max_num_ref_frames`.
    pub max_num_ref_frames: u32,
    /// Sample aspect ratio from the VUI, when present (`aspect_ratio_idc` resolved).
    pub sample_aspect_ratio: Option<(u16, u16)>,
    /// VUI timing information, when present and non-zero.
    pub timing: Option<Timing>,
}

/// VUI timing information (H.264 E.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `num_units_in_tick`.
    pub num_units_in_tick: u32,
    /// `time_scale`, in Hz.
    pub time_scale: u32,
    /// `fixed_frame_rate_flag`.
    pub fixed_frame_rate: bool,
}

impl Sps {
    /// Parses an SPS NAL unit (header byte included, emulation prevention in place, no
    /// start code).
    pub fn parse(nal: &[u8]) -> Result<Self, Error> {
        match NalType::of(nal) {
            Some(NalType::SPS) => {}
            Some(_) => return Err(Error::invalid(CTX, 0, "not an SPS NAL unit")),
            None => return Err(Error::truncated(CTX, 0)),
        }
        let rbsp = unescape(&nal[1..]);
        parse_rbsp(&rbsp)
    }

    /// The `profile-level-id` of RFC 6184 (SDP) and of `avc1.PPCCLL` codec strings: six
    /// lower-case hex digits, e.g. `"42c01f"`.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// Frames per second as a fraction `(time_scale, 2 * num_units_in_tick)`, the
    /// convention of x264, openh264 and ffmpeg for progressive streams.
    pub fn frame_rate_ratio(&self) -> Option<(u32, u64)> {
        self.timing
            .map(|t| (t.time_scale, 2 * u64::from(t.num_units_in_tick)))
    }

    /// Frames per second from the VUI timing information.
    pub fn frame_rate(&self) -> Option<f64> {
        self.frame_rate_ratio()
            .map(|(num, den)| f64::from(num) / den as f64)
    }
}

fn parse_rbsp(rbsp: &[u8]) -> Result<Sps, Error> {
    let mut r = BitReader::new(rbsp, CTX);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let id = r.ue()?;
    if id > 31 {
        return Err(Error::invalid(
            CTX,
            r.byte_pos(),
            "seq_parameter_set_id > 31",
        ));
    }
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8;
    let mut bit_depth_chroma = 8;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(Error::invalid(CTX, r.byte_pos(), "chroma_format_idc > 3"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        let luma = r.ue()?;
        let chroma = r.ue()?;
        if luma > 6 || chroma > 6 {
            return Err(Error::invalid(CTX, r.byte_pos(), "bit depth above 14"));
        }
        bit_depth_luma = 8 + luma as u8;
        bit_depth_chroma = 8 + chroma as u8;
        let _qpprime_y_zero_transform_bypass = r.flag()?;
        if r.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let log2_max_frame_num_minus4 = r.ue()?;
    if log2_max_frame_num_minus4 > 12 {
        return Err(Error::invalid(CTX, r.byte_pos(), "log2_max_frame_num > 16"));
    }
    match r.ue()? {
        0 => {
            if r.ue()? > 12 {
                return Err(Error::invalid(
                    CTX,
                    r.byte_pos(),
                    "log2_max_pic_order_cnt_lsb > 16",
                ));
            }
        }
        1 => {
            let _delta_pic_order_always_zero = r.flag()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(Error::invalid(
                    CTX,
                    r.byte_pos(),
                    "num_ref_frames_in_pic_order_cnt_cycle > 255",
                ));
            }
            for _ in 0..cycle {
                let _offset_for_ref_frame = r.se()?;
            }
        }
        2 => {}
        _ => return Err(Error::invalid(CTX, r.byte_pos(), "pic_order_cnt_type > 2")),
    }
    let max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_value_allowed = r.flag()?;
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.flag()?;
    }
    let _direct_8x8_inference = r.flag()?;
    let crop = if r.flag()? {
        [r.ue()?, r.ue()?, r.ue()?, r.ue()?].map(u64::from)
    } else {
        [0; 4]
    };
    let size_pos = r.byte_pos();

    let coded_width = width_mbs * 16;
    let coded_height = (2 - u64::from(frame_mbs_only)) * height_map_units * 16;
    if coded_width > MAX_DIMENSION || coded_height > MAX_DIMENSION {
        return Err(Error::invalid(
            CTX,
            size_pos,
            "picture larger than 65535 samples",
        ));
    }
    // Crop units (H.264 7.4.2.1.1, Table 6-1).
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_width_c, sub_height_c) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_unit_x = sub_width_c;
    let crop_unit_y = sub_height_c * (2 - u64::from(frame_mbs_only));
    let crop_w = (crop[0] + crop[1]) * crop_unit_x;
    let crop_h = (crop[2] + crop[3]) * crop_unit_y;
    if crop_w >= coded_width || crop_h >= coded_height {
        return Err(Error::invalid(
            CTX,
            size_pos,
            "cropping removes the whole picture",
        ));
    }

    let mut sps = Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        id,
        chroma_format_idc: chroma_format_idc as u8,
        bit_depth_luma,
        bit_depth_chroma,
        width: (coded_width - crop_w) as u32,
        height: (coded_height - crop_h) as u32,
        coded_width: coded_width as u32,
        coded_height: coded_height as u32,
        frame_mbs_only,
        max_num_ref_frames,
        sample_aspect_ratio: None,
        timing: None,
    };
    if r.flag()? {
        // A truncated VUI keeps what was read before the end.
        let _ = parse_vui(&mut r, &mut sps);
    }
    Ok(sps)
}

/// Reads the VUI up to the timing information (H.264 E.1.1).
fn parse_vui(r: &mut BitReader<'_>, sps: &mut Sps) -> Result<(), Error> {
    if r.flag()? {
        let idc = r.bits(8)? as u8;
        sps.sample_aspect_ratio = if idc == 255 {
            let w = r.bits(16)? as u16;
            let h = r.bits(16)? as u16;
            (w != 0 && h != 0).then_some((w, h))
        } else {
            SAR_TABLE.get(usize::from(idc)).copied().flatten()
        };
    }
    if r.flag()? {
        let _overscan_appropriate = r.flag()?;
    }
    if r.flag()? {
        let _video_format = r.bits(3)?;
        let _video_full_range = r.flag()?;
        if r.flag()? {
            let _colour_primaries_transfer_matrix = r.bits(24)?;
        }
    }
    if r.flag()? {
        let _chroma_sample_loc_type_top_field = r.ue()?;
        let _chroma_sample_loc_type_bottom_field = r.ue()?;
    }
    if r.flag()? {
        let num_units_in_tick = r.bits(32)?;
        let time_scale = r.bits(32)?;
        let fixed_frame_rate = r.flag()?;
        if num_units_in_tick != 0 && time_scale != 0 {
            sps.timing = Some(Timing {
                num_units_in_tick,
                time_scale,
                fixed_frame_rate,
            });
        }
    }
    Ok(())
}

/// `scaling_list()` (H.264 7.3.2.1.1.1), values discarded.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), Error> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(Error::invalid(
                    CTX,
                    r.byte_pos(),
                    "delta_scale out of range",
                ));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

const MAX_DIMENSION: u64 = 65535;

/// Table E-1, `aspect_ratio_idc` 0..=16.
const SAR_TABLE: [Option<(u16, u16)>; 17] = [
    None,
    Some((1, 1)),
    Some((12, 11)),
    Some((10, 11)),
    Some((16, 11)),
    Some((40, 33)),
    Some((24, 11)),
    Some((20, 11)),
    Some((32, 11)),
    Some((80, 33)),
    Some((18, 11)),
    Some((15, 11)),
    Some((64, 33)),
    Some((160, 99)),
    Some((4, 3)),
    Some((3, 2)),
    Some((2, 1)),
];

#[cfg(test)]
#[path = "sps_tests.rs"]
mod tests;
