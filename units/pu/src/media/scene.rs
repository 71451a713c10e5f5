//! The synthetic camera's picture: a moving scene with the wall clock and the frame counter
//! burnt in, rendered straight into I420 (YUV 4:2:0) planes.

use openh264::formats::YUVSource;

use super::font::glyph;

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

/// Renders frame `n` of the scene taken at `unix_ms` into `f`.
pub fn render(f: &mut Frame, n: u64, unix_ms: u64) {
    let (w, h) = (f.width, f.height);
    // Background: diagonal luma ramp drifting right; chroma bands drifting down.
    let shift = (n * 4) as usize;
    for row in 0..h {
        let line = &mut f.y[row * w..(row + 1) * w];
        let base = row * 255 / h.max(1);
        for (col, px) in line.iter_mut().enumerate() {
            let v = (col + shift + base) % 512;
            *px = 16 + (if v < 256 { v } else { 511 - v } * 219 / 255) as u8;
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    for row in 0..ch {
        let band = ((row + shift / 4) / (ch / 6).max(1)) % 6;
        let (cb, cr) = [
            (90u8, 240u8),
            (54, 34),
            (240, 110),
            (166, 16),
            (16, 146),
            (128, 128),
        ][band];
        f.u[row * cw..(row + 1) * cw].fill(cb);
        f.v[row * cw..(row + 1) * cw].fill(cr);
    }
    // A white box bouncing across the picture.
    let bw = (w / 8).max(8);
    let span = (w - bw) as u64;
    let t = (n * 8) % (2 * span.max(1));
    let x = if t < span { t } else { 2 * span - t } as usize;
    let y0 = h / 2 - bw / 2;
    fill_rect(f, x, y0, bw, bw, 235);
    // Burnt-in overlay: wall clock (UTC) and frame counter.
    let secs = unix_ms / 1000;
    let clock = format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        unix_ms % 1000
    );
    let counter = format!("#{n:08}");
    let scale = (h / 144).max(1);
    let pad = 2 * scale;
    draw_text(f, pad, pad, scale, &clock);
    draw_text(f, pad, pad + 9 * scale, scale, &counter);
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
        render(&mut a, 1, 1_000);
        render(&mut b, 2, 1_040);
        assert_ne!(a.y, b.y, "the scene moves");
        // The overlay plate region has both near-black and near-white pixels.
        let plate: Vec<u8> = (4..20)
            .flat_map(|r| a.y[r * 352..r * 352 + 100].to_vec())
            .collect();
        assert!(plate.contains(&16) && plate.contains(&235));
    }
}
