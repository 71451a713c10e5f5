//! The synthetic camera's picture: a moving scene with the wall clock and the frame counter
//! burnt in, rendered straight into I420 (YUV 4:2:0) planes.

use openh264::formats::YUVSource;

use super::font::glyph;
use crate::control::View;

/// One I420 picture.
pub struct Frame {
    width: usize,
    height: usize,
    /// Luma plane, `width * height`.
    pub y: Vec<u8>,
    /// Cb plane, `width/2 * height/2`.
    pub u: Vec<u8>,
    /// Cr plane.
    pub v: Vec<u8>,
}

impl Frame {
    /// A black picture (sizes must be even).
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; width * height / 4],
            v: vec![128; width * height / 4],
        }
    }

    /// Picture size.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}

impl YUVSource for Frame {
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

/// Renders frame `n` of the scene taken at `unix_ms`, as the camera looks (`view`), into `f`.
///
/// The scene is a world wider and taller than the picture: luma rises from left to right
/// across the whole world and blue-difference chroma from top to bottom, with a grid, so a
/// pan shows as brighter or darker, a tilt as a chroma shift, and a zoom as a narrower luma
/// range (H.626.4 8.5 checked from decoded frames). A white box moves through the world.
/// In the dark the picture dims; with the IR lamp on it is monochrome (6.1.5).
pub fn render(f: &mut Frame, n: u64, unix_ms: u64, view: &View) {
    render_scene(f, n, view);
    overlay(f, n, unix_ms, view);
}

/// Renders the scene alone, without the burnt-in overlay: what the camera's motion detector
/// analyses (as a real camera analyses its picture before the OSD is added). The moving
/// object is drawn only when `view.object` is set.
pub fn render_scene(f: &mut Frame, n: u64, view: &View) {
    let (w, h) = (f.width, f.height);
    // At zoom 1 half the world's width and height is in view; pan/tilt move that window
    // across the whole world.
    let fw = 0.5 / view.zoom.max(1.0);
    let cx = 0.5 + view.pan * (0.5 - fw / 2.0);
    let cy = 0.5 - view.tilt * (0.5 - fw / 2.0);
    let gain = if view.ir_on {
        0.85
    } else {
        0.15 + 0.85 * view.light.clamp(0.0, 1.0)
    };
    // The moving object, in world coordinates.
    let t = (n % 250) as f32 / 250.0;
    let (ox, oy, os) = (0.2 + 0.6 * t, 0.5, 0.04);
    // Luma depends on the column only (plus the object): one line, copied to every row.
    let mut line = vec![0u8; w];
    let world_x = |col: usize| cx + (col as f32 / w as f32 - 0.5) * fw;
    let world_y = |row: usize| cy + (row as f32 / h as f32 - 0.5) * fw;
    for (col, px) in line.iter_mut().enumerate() {
        let u = world_x(col);
        let grid = (u * 32.0).fract() < 0.04;
        let base = if grid { 0.1 } else { u.clamp(0.0, 1.0) };
        *px = (16.0 + 219.0 * base * gain) as u8;
    }
    for row in 0..h {
        let v = world_y(row);
        let dst = &mut f.y[row * w..(row + 1) * w];
        dst.copy_from_slice(&line);
        if view.object && (v - oy).abs() < os {
            for (col, px) in dst.iter_mut().enumerate() {
                if (world_x(col) - ox).abs() < os {
                    *px = (16.0 + 219.0 * gain) as u8;
                }
            }
        }
        if (v * 32.0).fract() < 0.04 {
            dst.fill((16.0 + 219.0 * 0.1 * gain) as u8);
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    for row in 0..ch {
        let (cb, cr) = if view.ir_on {
            (128, 128)
        } else {
            let v = world_y(row * 2).clamp(0.0, 1.0);
            let sat = 0.3 + 0.7 * view.light.clamp(0.0, 1.0);
            (
                (128.0 + (v - 0.5) * 200.0 * sat) as u8,
                (128.0 + 40.0 * sat) as u8,
            )
        };
        f.u[row * cw..(row + 1) * cw].fill(cb);
        f.v[row * cw..(row + 1) * cw].fill(cr);
    }
}

/// Burnt-in overlay: wall clock (local by the configured offset), frame counter, caption.
fn overlay(f: &mut Frame, n: u64, unix_ms: u64, view: &View) {
    let h = f.height;
    let local_ms = unix_ms as i64 + i64::from(view.utc_offset_min) * 60_000;
    let local_ms = local_ms.max(0) as u64;
    let secs = local_ms / 1000;
    let scale = (h / 144).max(1);
    let pad = 2 * scale;
    let mut y = pad;
    if view.show_clock {
        let clock = format!(
            "{:02}:{:02}:{:02}.{:03}",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            local_ms % 1000
        );
        draw_text(f, pad, y, scale, &clock);
        y += 9 * scale;
    }
    draw_text(f, pad, y, scale, &format!("#{n:08}"));
    if !view.osd_text.is_empty() {
        draw_text(f, pad, h.saturating_sub(10 * scale), scale, &view.osd_text);
    }
}

/// Adds sensor noise of ±`amplitude` luma levels to `plane`, different for each `seed`
/// (the demo camera's picture as the motion detector sees it: a real sensor is never still).
pub fn add_noise(plane: &mut [u8], seed: u64, amplitude: u8) {
    if amplitude == 0 {
        return;
    }
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let span = 2 * u64::from(amplitude) + 1;
    for px in plane {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let d = (x % span) as i16 - i16::from(amplitude);
        *px = (i16::from(*px) + d).clamp(0, 255) as u8;
    }
}

fn fill_rect(f: &mut Frame, x: usize, y: usize, w: usize, h: usize, luma: u8) {
    let (fw, fh) = (f.width, f.height);
    for row in y..(y + h).min(fh) {
        let end = (x + w).min(fw);
        f.y[row * fw + x.min(end)..row * fw + end].fill(luma);
    }
}

fn draw_text(f: &mut Frame, x: usize, y: usize, scale: usize, text: &str) {
    let (fw, fh) = (f.width, f.height);
    let cell = 6 * scale;
    // Dark plate for contrast.
    let plate_w = (text.len() * cell + scale).min(fw.saturating_sub(x));
    fill_rect(
        f,
        x.saturating_sub(scale),
        y.saturating_sub(scale),
        plate_w + scale,
        9 * scale,
        16,
    );
    for (i, c) in text.chars().enumerate() {
        let g = glyph(c);
        for (gy, bits) in g.iter().enumerate() {
            for gx in 0..5 {
                if bits & (0x10 >> gx) == 0 {
                    continue;
                }
                let px = x + i * cell + gx * scale;
                let py = y + gy * scale;
                for dy in 0..scale {
                    let row = py + dy;
                    if row >= fh || px + scale > fw {
                        continue;
                    }
                    f.y[row * fw + px..row * fw + px + scale].fill(235);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_change_and_overlay_is_drawn() {
        let mut a = Frame::new(352, 288);
        let mut b = Frame::new(352, 288);
        render(&mut a, 1, 1_000, &View::default());
        render(&mut b, 2, 1_040, &View::default());
        assert_ne!(a.y, b.y, "the scene moves");
        // The overlay plate region has both near-black and near-white pixels.
        let plate: Vec<u8> = (4..20)
            .flat_map(|r| a.y[r * 352..r * 352 + 100].to_vec())
            .collect();
        assert!(plate.contains(&16) && plate.contains(&235));
    }

    fn mean(p: &[u8]) -> f64 {
        p.iter().map(|&x| f64::from(x)).sum::<f64>() / p.len() as f64
    }

    #[test]
    fn pan_tilt_zoom_and_night_show_in_the_picture() {
        let shot = |view: View| {
            let mut f = Frame::new(352, 288);
            render(&mut f, 0, 0, &view);
            f
        };
        let centre = shot(View::default());
        let right = shot(View {
            pan: 1.0,
            ..View::default()
        });
        assert!(
            mean(&right.y) > mean(&centre.y) + 20.0,
            "pan right is brighter"
        );
        let up = shot(View {
            tilt: 1.0,
            ..View::default()
        });
        assert!(mean(&up.u) < mean(&centre.u) - 5.0, "tilt up shifts chroma");
        let zoomed = shot(View {
            zoom: 4.0,
            ..View::default()
        });
        let range = |f: &Frame| {
            let row = &f.y[200 * 352..201 * 352];
            row.iter().max().unwrap() - row.iter().min().unwrap()
        };
        assert!(range(&zoomed) < range(&centre), "zoom narrows the view");
        let night = shot(View {
            ir_on: true,
            light: 0.0,
            ..View::default()
        });
        assert!(
            night.u.iter().chain(&night.v).all(|&c| c == 128),
            "IR: monochrome"
        );
    }
}
