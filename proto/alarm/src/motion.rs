//! Motion and tamper detection on a luma plane (H.626.4 8.8 step 5, the camera's video
//! sources).
//!
//! The picture is reduced to a grid of cells (64x36 by default), each the mean of a sample of
//! its pixels. Each cell keeps a background (a running average) and a noise estimate (the
//! running mean of its absolute deviation), so a static but noisy scene raises nothing. A
//! cell is *hot* when it is further from its background than the sensitivity allows (a
//! floor plus a multiple of its noise), and *moving* when it was hot in two analysed
//! frames running (single-frame noise spikes never count). A zone moves when enough of its
//! cells move; its level is the share that moved.
//!
//! Tamper: the picture turned near-uniform (covered, blinded, sprayed) while the learnt
//! background was not, or most of the picture changed for a sustained time (turned away).
//! Video loss (no frames) is a timer in the shell.

use crate::Error;
use crate::model::Zone;

/// Default grid, cells.
pub const GRID: (usize, usize) = (64, 36);
/// Analysed frames before anything is reported (the background is learnt).
pub const WARM_UP: u32 = 10;
/// Analysed frames of global change or of a flat picture before tamper is reported.
pub const TAMPER_FRAMES: u32 = 5;
/// Largest plane accepted, pixels per side.
pub const MAX_SIDE: usize = 8192;

/// A luma plane: `height` rows of `width` pixels, `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    /// The samples.
    pub data: &'a [u8],
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bytes from one row to the next (at least `width`).
    pub stride: usize,
}

impl Plane<'_> {
    fn check(&self) -> Result<(), Error> {
        if self.width == 0 || self.height == 0 || self.width > MAX_SIDE || self.height > MAX_SIDE {
            return Err(Error::invalid("plane", "1 to 8192 pixels per side"));
        }
        if self.stride < self.width {
            return Err(Error::invalid("plane.stride", "at least the width"));
        }
        let need = (self.height - 1) * self.stride + self.width;
        if self.data.len() < need {
            return Err(Error::invalid("plane.data", "shorter than height x stride"));
        }
        Ok(())
    }
}

/// What one analysed frame showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Zones that moved (`None`: the whole picture, when no zone is set) with a level 1-100.
    pub motion: Vec<(Option<u8>, u8)>,
    /// Tamper, with a level 1-100, while it lasts.
    pub tamper: Option<u8>,
    /// Cells that moved, anywhere.
    pub moving_cells: usize,
}

/// Thresholds from a sensitivity 1-100.
#[derive(Debug, Clone, Copy)]
struct Thresholds {
    /// Luma levels a cell must move at least.
    floor: f32,
    /// Multiple of the cell's noise it must move beyond.
    k: f32,
    /// Share of a zone's cells that must move.
    share: f32,
}

impl Thresholds {
    fn new(sensitivity: u8) -> Self {
        let dull = f32::from(100 - sensitivity.clamp(1, 100)) / 99.0;
        Self {
            floor: 2.0 + 28.0 * dull,
            k: 3.0 + 5.0 * dull,
            share: 0.001 + 0.03 * dull * dull,
        }
    }
}

/// The detector of one camera.
#[derive(Debug, Clone)]
pub struct MotionDetector {
    gw: usize,
    gh: usize,
    /// Grid and plane size the state was learnt at.
    shape: (usize, usize, usize, usize),
    bg: Vec<f32>,
    noise: Vec<f32>,
    hot: Vec<bool>,
    cells: Vec<f32>,
    /// Cell ranges per zone: (x0, y0, x1, y1), exclusive ends.
    zones: Vec<(usize, usize, usize, usize)>,
    zone_specs: Vec<Zone>,
    th: Thresholds,
    frames: u32,
    warm_up: u32,
    flat_run: u32,
    global_run: u32,
}

impl Default for MotionDetector {
    fn default() -> Self {
        Self::new(GRID)
    }
}

impl MotionDetector {
    /// A detector on a grid of `grid` cells (clamped to 4x4..=160x90), sensitivity 50, the
    /// whole picture as one zone.
    pub fn new(grid: (usize, usize)) -> Self {
        let mut d = Self {
            gw: grid.0.clamp(4, 160),
            gh: grid.1.clamp(4, 90),
            shape: (0, 0, 0, 0),
            bg: Vec::new(),
            noise: Vec::new(),
            hot: Vec::new(),
            cells: Vec::new(),
            zones: Vec::new(),
            zone_specs: Vec::new(),
            th: Thresholds::new(50),
            frames: 0,
            warm_up: WARM_UP,
            flat_run: 0,
            global_run: 0,
        };
        d.configure(50, &[]);
        d
    }

    /// Learns the background from `frames` analysed frames (at least 2) before reporting:
    /// fewer than [`WARM_UP`] for sparse pictures (key frames of a pulled camera).
    pub fn with_warm_up(mut self, frames: u32) -> Self {
        self.warm_up = frames.max(2);
        self
    }

    /// Applies a strategy's sensitivity (1-100) and zones (empty: the whole picture). The
    /// learnt background is kept.
    pub fn configure(&mut self, sensitivity: u8, zones: &[Zone]) {
        self.th = Thresholds::new(sensitivity);
        self.zone_specs = zones.to_vec();
        self.map_zones();
    }

    fn map_zones(&mut self) {
        let (gw, gh) = self.grid();
        let span = |from: u16, len: u16, cells: usize| {
            let a = usize::from(from.min(999)) * cells / 1000;
            let b = (usize::from(from.saturating_add(len).min(1000)) * cells).div_ceil(1000);
            (a, b.clamp(a + 1, cells))
        };
        self.zones = if self.zone_specs.is_empty() {
            vec![(0, 0, gw, gh)]
        } else {
            self.zone_specs
                .iter()
                .map(|z| {
                    let (x0, x1) = span(z.x, z.w, gw);
                    let (y0, y1) = span(z.y, z.h, gh);
                    (x0, y0, x1, y1)
                })
                .collect()
        };
    }

    /// The grid in use for the last plane (the configured one, shrunk for small planes).
    fn grid(&self) -> (usize, usize) {
        if self.shape.0 == 0 {
            (self.gw, self.gh)
        } else {
            (self.shape.0, self.shape.1)
        }
    }

    /// Forgets the background (a new view: PTZ moved, the source changed).
    pub fn reset(&mut self) {
        self.shape = (0, 0, 0, 0);
        self.frames = 0;
        self.flat_run = 0;
        self.global_run = 0;
    }

    /// Reduces `p` to cell means in `self.cells`.
    fn reduce(&mut self, p: &Plane<'_>, gw: usize, gh: usize) {
        self.cells.clear();
        for cy in 0..gh {
            let (r0, r1) = (
                cy * p.height / gh,
                ((cy + 1) * p.height / gh).max(cy * p.height / gh + 1),
            );
            let ry = ((r1 - r0) / 8).max(1);
            for cx in 0..gw {
                let (c0, c1) = (
                    cx * p.width / gw,
                    ((cx + 1) * p.width / gw).max(cx * p.width / gw + 1),
                );
                let rx = ((c1 - c0) / 8).max(1);
                let (mut sum, mut n) = (0u32, 0u32);
                for row in (r0..r1).step_by(ry) {
                    let line = &p.data[row * p.stride + c0..row * p.stride + c1];
                    for &px in line.iter().step_by(rx) {
                        sum += u32::from(px);
                        n += 1;
                    }
                }
                self.cells.push(sum as f32 / n.max(1) as f32);
            }
        }
    }

    /// Analyses one frame.
    pub fn analyse(&mut self, p: Plane<'_>) -> Result<Analysis, Error> {
        p.check()?;
        let (gw, gh) = (self.gw.min(p.width), self.gh.min(p.height));
        let shape = (gw, gh, p.width, p.height);
        if shape != self.shape {
            self.reset();
            self.shape = shape;
            self.map_zones();
        }
        self.reduce(&p, gw, gh);
        if self.frames == 0 {
            self.bg.clone_from(&self.cells);
            self.noise = vec![1.0; self.cells.len()];
            self.hot = vec![false; self.cells.len()];
        }
        self.frames = self.frames.saturating_add(1);
        let learning = self.frames <= self.warm_up;
        // A covered lens must not become the background.
        let flat = spread(&self.cells) < 3.0 && spread(&self.bg) > 8.0;
        let th = self.th;
        let (mut hot_count, mut moving) = (0usize, vec![false; self.cells.len()]);
        for (i, &c) in self.cells.iter().enumerate() {
            let d = (c - self.bg[i]).abs();
            let hot = !learning && d > th.floor + th.k * self.noise[i];
            moving[i] = hot && self.hot[i];
            self.hot[i] = hot;
            hot_count += usize::from(hot);
            // Moving cells are learnt slowly, so a passing object is not absorbed.
            let alpha = if flat {
                0.0
            } else if hot {
                1.0 / 64.0
            } else {
                1.0 / 16.0
            };
            self.bg[i] += (c - self.bg[i]) * alpha;
            if !hot {
                let a = if learning { 0.3 } else { 1.0 / 32.0 };
                self.noise[i] += (d - self.noise[i]) * a;
            }
        }
        let mut out = Analysis {
            moving_cells: moving.iter().filter(|&&m| m).count(),
            ..Analysis::default()
        };
        if learning {
            return Ok(out);
        }
        out.tamper = self.tamper(hot_count, flat);
        if out.tamper.is_some() || self.global_run > 0 {
            return Ok(out);
        }
        let named = !self.zone_specs.is_empty();
        for (z, &(x0, y0, x1, y1)) in self.zones.iter().enumerate() {
            let total = (x1 - x0) * (y1 - y0);
            let moved = (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| y * gw + x))
                .filter(|&i| moving[i])
                .count();
            let need = ((total as f32 * th.share).ceil() as usize)
                .max(2)
                .min(total);
            if moved >= need {
                let level = (moved * 100).div_ceil(total).clamp(1, 100) as u8;
                out.motion
                    .push((named.then(|| u8::try_from(z).unwrap_or(u8::MAX)), level));
            }
        }
        Ok(out)
    }

    /// Tamper: a flat picture over a textured background, or most cells changed for long.
    fn tamper(&mut self, hot_count: usize, flat: bool) -> Option<u8> {
        let n = self.cells.len() as f32;
        self.flat_run = if flat { self.flat_run + 1 } else { 0 };
        let global = hot_count as f32 > 0.6 * n;
        self.global_run = if global { self.global_run + 1 } else { 0 };
        if self.flat_run >= TAMPER_FRAMES {
            return Some(100);
        }
        if self.global_run >= TAMPER_FRAMES {
            let level = (hot_count * 100 / self.cells.len().max(1)).clamp(1, 100) as u8;
            // The new view becomes the background; tamper ends when it is learnt.
            if self.global_run >= 4 * TAMPER_FRAMES {
                self.bg.clone_from(&self.cells);
                self.global_run = 0;
            }
            return Some(level);
        }
        None
    }
}

/// Standard deviation of the cell values (0 for none).
fn spread(v: &[f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len() as f32;
    let mean = v.iter().sum::<f32>() / n;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n).sqrt()
}

#[cfg(test)]
#[path = "motion_tests.rs"]
mod tests;
