//! The camera's encoding cost per profile: frames per CPU-second for rendering the synthetic
//! scene and for H.264 encoding (OpenH264, one thread), at CIF, D1 and 720P.
//!
//! `cargo bench -p peercam-pu --bench encoder`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use peercam_pu::control::View;
use peercam_pu::media::Profile;
use peercam_pu::media::hub::make_encoder;
use peercam_pu::media::scene::{Frame, render};

fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

fn main() {
    let frames = 250u64;
    println!(
        "| profile | kbit/s | render frames/CPU-s | encode frames/CPU-s | encoded kbit/s at 25 fps |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (w, h, kbps) in [
        (352u16, 288u16, 400u32),
        (704, 576, 1200),
        (1280, 720, 2000),
    ] {
        let p = Profile {
            width: w,
            height: h,
            fps: 25,
            kbps,
        };
        let mut enc = make_encoder(p, 2).unwrap();
        let mut f = Frame::new(usize::from(w), usize::from(h));
        let c0 = cpu_s();
        for n in 0..frames {
            render(&mut f, n, n * 40, &View::default());
        }
        let render_s = cpu_s() - c0;
        let mut bytes = 0usize;
        let c1 = cpu_s();
        for n in 0..frames {
            render(&mut f, n, n * 40, &View::default());
            bytes += enc.encode(&f).unwrap().to_vec().len();
        }
        let total_s = cpu_s() - c1;
        let encode_s = (total_s - render_s).max(1e-9);
        println!(
            "| {w}x{h} | {kbps} | {:.0} | {:.0} | {:.0} |",
            frames as f64 / render_s.max(1e-9),
            frames as f64 / encode_s,
            bytes as f64 * 8.0 / (frames as f64 / 25.0) / 1000.0
        );
    }
}
