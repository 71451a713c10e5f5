//! CPU cost of motion and tamper detection per camera at 5 analysed frames a second.
//!
//! `cargo bench -p peercam-alarm --bench motion` prints, per picture size, the time of one
//! analysis and the share of one core a camera costs at 5 frames/s (goal: under 2 %).
#![expect(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time; the crate's code itself stays sans-IO"
)]
#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::Instant;

use peercam_alarm::motion::{MotionDetector, Plane};

fn frames(w: usize, h: usize, count: usize) -> Vec<Vec<u8>> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    (0..count)
        .map(|n| {
            let mut y = vec![0u8; w * h];
            for (i, px) in y.iter_mut().enumerate() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let col = i % w;
                let object = (col + 600 - n * 8 % 600) % 600 < 40 && (i / w) % 200 < 40;
                let base = if object {
                    230
                } else {
                    30 + (col * 180 / w) as u64
                };
                *px = (base + seed % 9) as u8;
            }
            y
        })
        .collect()
}

fn main() {
    for (w, h) in [(352, 288), (704, 576), (1280, 720), (1920, 1080)] {
        let set = frames(w, h, 16);
        let mut d = MotionDetector::default();
        let rounds = 400;
        let start = Instant::now();
        let mut moving = 0;
        for r in 0..rounds {
            let y = &set[r % set.len()];
            let p = Plane {
                data: y,
                width: w,
                height: h,
                stride: w,
            };
            moving += d.analyse(p).map_or(0, |a| a.moving_cells);
        }
        let per_frame = start.elapsed().as_secs_f64() / rounds as f64;
        println!(
            "motion {w}x{h}: {:.1} us/frame, {:.3} % of a core per camera at 5 frames/s (moving cells seen: {moving})",
            per_frame * 1e6,
            per_frame * 5.0 * 100.0
        );
    }
}
