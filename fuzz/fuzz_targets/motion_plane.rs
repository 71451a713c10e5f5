//! Motion and tamper detection (`peercam_alarm::motion::MotionDetector`) on arbitrary planes.
//!
//! # Input format
//!
//! ```text
//! [width] [height] [pad] [sensitivity] [frames] [grid w] [grid h] [zone x] [zone w] data...
//! ```
//!
//! The plane is `data` read with the given width, height (`% 128`) and stride (`width +
//! pad % 16`); it is analysed `frames % 8 + 1` times, each time with every byte shifted.
//!
//! # Oracles
//!
//! * Nothing panics; a plane shorter than its rows is refused, never read out of bounds.
//! * Motion is reported only for the configured zone, levels are 1-100.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_alarm::Zone;
use peercam_alarm::motion::{MotionDetector, Plane};

fuzz_target!(|input: &[u8]| {
    let Some((head, data)) = input.split_first_chunk::<9>() else {
        return;
    };
    let [w, h, pad, sens, frames, gw, gh, zx, zw] = *head;
    let (width, height) = (usize::from(w % 128), usize::from(h % 128));
    let stride = width + usize::from(pad % 16);
    let mut d = MotionDetector::new((usize::from(gw), usize::from(gh)));
    let zone = Zone {
        x: u16::from(zx) * 4,
        y: 0,
        w: u16::from(zw) * 4,
        h: 1000,
    };
    d.configure(sens, &[zone]);
    let fits = width > 0 && height > 0 && data.len() >= (height - 1) * stride + width;
    for f in 0..=(frames % 8) {
        let shifted: Vec<u8> = data
            .iter()
            .map(|v| v.wrapping_add(f.wrapping_mul(41)))
            .collect();
        let r = d.analyse(Plane {
            data: &shifted,
            width,
            height,
            stride,
        });
        assert_eq!(r.is_ok(), fits);
        if let Ok(a) = r {
            for (z, l) in a.motion {
                assert!(z == Some(0) && (1..=100).contains(&l));
            }
            assert!(a.tamper.is_none_or(|l| (1..=100).contains(&l)));
        }
    }
});
