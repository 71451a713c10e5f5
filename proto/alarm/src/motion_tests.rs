use proptest::prelude::*;

use super::*;

const W: usize = 352;
const H: usize = 288;

/// A textured scene with sensor noise (±`noise`), and a bright square at `object`.
fn frame(n: u64, noise: u8, object: Option<(usize, usize)>) -> Vec<u8> {
    let mut seed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut y = vec![0u8; W * H];
    for row in 0..H {
        for col in 0..W {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let grid = col % 32 < 2 || row % 32 < 2;
            let base = if grid {
                30
            } else {
                40 + (col * 160 / W) as i32
            };
            let jitter = if noise == 0 {
                0
            } else {
                (seed % (2 * u64::from(noise) + 1)) as i32 - i32::from(noise)
            };
            y[row * W + col] = (base + jitter).clamp(0, 255) as u8;
        }
    }
    if let Some((ox, oy)) = object {
        for row in oy..(oy + 40).min(H) {
            for col in ox..(ox + 40).min(W) {
                y[row * W + col] = 235;
            }
        }
    }
    y
}

fn plane(y: &[u8]) -> Plane<'_> {
    Plane {
        data: y,
        width: W,
        height: H,
        stride: W,
    }
}

#[test]
fn h626_8_8_static_noisy_scene_raises_nothing() {
    for sensitivity in [1, 50, 90, 100] {
        let mut d = MotionDetector::default();
        d.configure(sensitivity, &[]);
        for n in 0..300 {
            let y = frame(n, 12, None);
            let a = d.analyse(plane(&y)).unwrap();
            assert!(
                a.motion.is_empty() && a.tamper.is_none(),
                "sensitivity {sensitivity}, frame {n}: {a:?}"
            );
        }
    }
}

#[test]
fn h626_8_8_moving_object_raises_motion_within_1s() {
    let mut d = MotionDetector::default();
    for n in 0..20 {
        assert!(
            d.analyse(plane(&frame(n, 6, None)))
                .unwrap()
                .motion
                .is_empty()
        );
    }
    // 5 analysed frames a second: the object appears at frame 20 and moves 8 px a frame.
    let first = (20..40)
        .find(|&n| {
            let x = 40 + (n as usize - 20) * 8;
            let a = d.analyse(plane(&frame(n, 6, Some((x, 120))))).unwrap();
            !a.motion.is_empty()
        })
        .unwrap();
    assert!(first < 25, "motion at frame {first}");
}

#[test]
fn h626_8_8_zones_select_cells_and_name_the_zone() {
    let mut d = MotionDetector::default();
    let left = Zone {
        x: 0,
        y: 0,
        w: 500,
        h: 1000,
    };
    let right = Zone { x: 500, ..left };
    d.configure(50, &[right, left]);
    let mut seen = Vec::new();
    for n in 0..40 {
        let object = (n >= 20).then(|| (20 + (n as usize - 20) * 4, 100));
        seen.extend(d.analyse(plane(&frame(n, 4, object))).unwrap().motion);
    }
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|&(z, l)| z == Some(1) && (1..=100).contains(&l))
    );
    // A strategy with zones elsewhere only.
    d.configure(50, &[right]);
    d.reset();
    for n in 0..40 {
        let object = (n >= 20).then(|| (20 + (n as usize - 20) * 4, 100));
        assert!(
            d.analyse(plane(&frame(n, 4, object)))
                .unwrap()
                .motion
                .is_empty()
        );
    }
}

#[test]
fn h626_8_8_covered_lens_is_tamper_not_motion() {
    let mut d = MotionDetector::default();
    for n in 0..20 {
        d.analyse(plane(&frame(n, 4, None))).unwrap();
    }
    let covered = vec![18u8; W * H];
    let mut tamper_at = None;
    for n in 0..30 {
        let a = d.analyse(plane(&covered)).unwrap();
        assert!(a.motion.is_empty(), "no motion while covered");
        if a.tamper.is_some() && tamper_at.is_none() {
            tamper_at = Some(n);
        }
        if n > 10 {
            assert!(a.tamper.is_some(), "stays while covered (frame {n})");
        }
    }
    assert!(tamper_at.is_some_and(|n| n < 8), "{tamper_at:?}");
    // Uncovered: it ends.
    let mut ended = false;
    for n in 0..10 {
        ended |= d
            .analyse(plane(&frame(100 + n, 4, None)))
            .unwrap()
            .tamper
            .is_none();
    }
    assert!(ended);
}

#[test]
fn h626_8_8_turned_away_is_tamper_then_relearnt() {
    let mut d = MotionDetector::default();
    for n in 0..20 {
        d.analyse(plane(&frame(n, 4, None))).unwrap();
    }
    // A different view: inverted texture.
    let other: Vec<u8> = frame(0, 0, None).iter().map(|&v| 255 - v).collect();
    let results: Vec<_> = (0..60).map(|_| d.analyse(plane(&other)).unwrap()).collect();
    assert!(results.iter().take(12).any(|a| a.tamper.is_some()));
    assert!(results.iter().all(|a| a.motion.is_empty()));
    assert!(
        results.last().unwrap().tamper.is_none(),
        "the new view is learnt"
    );
}

#[test]
fn h626_8_8_motion_plane_refuses_bad_planes() {
    let mut d = MotionDetector::default();
    let y = [0u8; 16];
    let bad = |width, height, stride| Plane {
        data: &y,
        width,
        height,
        stride,
    };
    assert!(d.analyse(bad(0, 4, 4)).is_err());
    assert!(d.analyse(bad(4, 4, 3)).is_err());
    assert!(d.analyse(bad(4, 5, 4)).is_err());
    assert!(d.analyse(bad(4, 4, 4)).is_ok());
    assert!(
        d.analyse(bad(3, 2, 7)).is_ok(),
        "stride larger than the width"
    );
}

proptest! {
    /// Any plane, size, stride and configuration: no panic, and levels stay in range.
    #[test]
    fn h626_8_8_motion_plane_never_panics(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        width in 0usize..100, height in 0usize..100, pad in 0usize..8,
        sensitivity in 0u8..=120, frames in 1usize..14, gw in 0usize..200, gh in 0usize..100,
        zx in 0u16..1200, zw in 0u16..1200,
    ) {
        let mut d = MotionDetector::new((gw, gh));
        d.configure(sensitivity, &[Zone { x: zx, y: 0, w: zw, h: 1000 }]);
        for f in 0..frames {
            let shifted: Vec<u8> = data.iter().map(|v| v.wrapping_add((f * 37) as u8)).collect();
            let p = Plane { data: &shifted, width, height, stride: width + pad };
            if let Ok(a) = d.analyse(p) {
                for (z, l) in a.motion { prop_assert!(z == Some(0) && (1..=100).contains(&l)); }
                if let Some(l) = a.tamper { prop_assert!((1..=100).contains(&l)); }
            }
        }
    }
}
