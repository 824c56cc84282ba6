//! Resizing of the position table, exactly as PyTorch's
//! `F.interpolate(mode="bicubic", align_corners=False, antialias=…)` does it on the CPU in f32
//! (ATen `UpSampleKernel.cpp`): with antialias (Keys cubic a = -0.5, support widened by the scale,
//! out-of-range taps dropped and the rest renormalised) for `dinov2_with_registers`, and without
//! (a = -0.75, 4 taps with clamped borders) for `dinov2`. Separable: the width pass first, then the
//! height pass.
//!
//! Shapes: the table is `(G, G, D)` patch positions (row-major, channels last); the result is
//! `(h, w, D)`. candle has no bicubic, hence this module; the table is small (37×37×D), so a plain
//! CPU kernel plus a per-grid cache in the model is enough. The antialiased taps and the 1-D pass
//! are shared with DINOv3's image processor ([`crate::preprocess::interpolate`]).

use crate::preprocess::interpolate::{antialias_taps, apply_axis, cubic, Filter, Taps};

/// Taps of `F.interpolate(size=out, mode="bicubic", align_corners=False)` (no antialias): 4 taps
/// around `scale * (i + 0.5) - 0.5`, a = -0.75, indices clamped to the border. Returned as dense
/// weights over a clamped window so the same kernel applies them.
pub(crate) fn bicubic_taps(input: usize, output: usize) -> Taps {
    let scale = input as f32 / output as f32;
    let last = input as i64 - 1;
    let per_output = (0..output)
        .map(|i| {
            let real = scale * (i as f32 + 0.5) - 0.5;
            let floor = real.floor();
            let t = real - floor;
            let base = floor as i64;
            let a = -0.75f64;
            let t = t as f64;
            let coeffs = [
                cubic(t + 1.0, a),
                cubic(t, a),
                cubic(1.0 - t, a),
                cubic(2.0 - t, a),
            ];
            // Accumulate the 4 taps onto clamped indices, expressed as a window [lo, hi].
            let idx: Vec<usize> = (0..4)
                .map(|k| (base - 1 + k).clamp(0, last) as usize)
                .collect();
            let lo = *idx.iter().min().unwrap_or(&0);
            let hi = *idx.iter().max().unwrap_or(&0);
            let mut w = vec![0f32; hi - lo + 1];
            for (k, &ix) in idx.iter().enumerate() {
                w[ix - lo] += coeffs[k] as f32;
            }
            (lo, w)
        })
        .collect();
    Taps { per_output }
}

/// Resizes a channels-last grid `(gh, gw, d)` to `(h, w, d)` with PyTorch's bicubic, antialiased or
/// not. Equal sizes are returned unchanged (PyTorch copies).
pub fn resize_grid(
    table: &[f32],
    (gh, gw): (usize, usize),
    d: usize,
    (h, w): (usize, usize),
    antialias: bool,
) -> Vec<f32> {
    let taps = |i, o| {
        if antialias {
            antialias_taps(i, o, Filter::Cubic)
        } else {
            bicubic_taps(i, o)
        }
    };
    let mut data = table.to_vec();
    let mut cur_w = gw;
    if w != gw {
        // (gh, gw, d): resample the middle axis with rows = gh, cols = d.
        data = apply_axis(&data, gh, gw, d, &taps(gw, w));
        cur_w = w;
    }
    if h != gh {
        // (gh, w, d) viewed as (1, gh, w*d).
        data = apply_axis(&data, 1, gh, cur_w * d, &taps(gh, h));
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 2e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn antialias_weights_match_the_reference_values() {
        // Values from the spec (computed from ATen's formulas), 37 -> 16.
        let t = antialias_taps(37, 16, Filter::Cubic);
        assert_eq!(t.per_output[0].0, 0);
        close(
            &t.per_output[0].1,
            &[
                0.387186, 0.441451, 0.209256, -0.003056, -0.031817, -0.003020,
            ],
        );
        assert_eq!(t.per_output[1].1.len(), 8);
        assert_eq!(t.per_output[2].0, 1);
        assert_eq!(t.per_output[2].1.len(), 9);
        assert_eq!(t.per_output[15].0, 31);
        // 37 -> 74 (upsampling keeps support 2).
        let up = antialias_taps(37, 74, Filter::Cubic);
        close(&up.per_output[0].1, &[1.088235, -0.088235]);
        close(&up.per_output[1].1, &[0.810219, 0.211679, -0.021898]);
    }

    #[test]
    fn equal_sizes_are_identity() {
        let table: Vec<f32> = (0..3 * 3 * 2).map(|x| x as f32).collect();
        assert_eq!(resize_grid(&table, (3, 3), 2, (3, 3), true), table);
        let t = bicubic_taps(5, 5);
        for (i, (start, w)) in t.per_output.iter().enumerate() {
            let s: f32 = w.iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
            let peak = w.iter().cloned().fold(f32::MIN, f32::max);
            assert_eq!(start + w.iter().position(|&v| v == peak).unwrap(), i);
        }
    }
}
