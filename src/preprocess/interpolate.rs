//! PyTorch's `F.interpolate(..., align_corners=False, antialias=True)` on f32 CPU data, as ATen's
//! `UpSampleKernel.cpp` computes it (`_compute_weights_aa`, the separable passes): per axis,
//! `scale = in / out`, `support = half_width · max(scale, 1)`, `center = scale · (i + 0.5)`, taps
//! `[int(center − support + 0.5), int(center + support + 0.5))` clipped to the input, weights
//! `filter((j − center + 0.5) / max(scale, 1))` normalised to sum 1; the width pass runs first, then
//! the height pass, each skipped when its size does not change.
//!
//! Two filters: the triangle (`mode="bilinear"`, half width 1), what torchvision's antialiased
//! resize and so DINOv3's image processor use, and Keys cubic with a = −0.5 (`mode="bicubic"`, half
//! width 2), which also resizes DINOv2's position table (`crate::model::pos_embed`).
//!
//! Shapes: [`resize_chw`] takes `(C, H, W)` planes, row-major, and returns `(C, h, w)`.

/// How a 1-D resampling pass weighs its inputs: for each output index, the first input index and the
/// weights of the consecutive taps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Taps {
    /// `(first input index, weights)` per output index.
    pub per_output: Vec<(usize, Vec<f32>)>,
}

/// The kernel of an antialiased pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// The triangle `max(0, 1 − |x|)` (`mode="bilinear"`).
    Triangle,
    /// Keys cubic with a = −0.5 (`mode="bicubic"`).
    Cubic,
}

impl Filter {
    /// Half the kernel's width at scale 1.
    fn half_width(self) -> f32 {
        match self {
            Filter::Triangle => 1.0,
            Filter::Cubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Triangle => (1.0 - x.abs()).max(0.0),
            Filter::Cubic => cubic(x, -0.5),
        }
    }
}

/// Keys cubic kernel with parameter `a`.
pub(crate) fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

/// Taps of `F.interpolate(size=out, mode=…, align_corners=False, antialias=True)` along one axis.
pub(crate) fn antialias_taps(input: usize, output: usize, filter: Filter) -> Taps {
    let scale = input as f32 / output as f32;
    let (support, invscale) = if scale >= 1.0 {
        (filter.half_width() * scale, 1.0 / scale)
    } else {
        (filter.half_width(), 1.0f32)
    };
    let max_taps = (support.ceil() as usize) * 2 + 1;
    let per_output = (0..output)
        .map(|i| {
            // ATen evaluates these in double and stores them as float.
            let center = (scale as f64 * (i as f64 + 0.5)) as f32;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(input as i64).max(0) as usize;
            let size = xmax.saturating_sub(xmin).min(max_taps);
            let mut w: Vec<f32> = (0..size)
                .map(|j| {
                    let arg =
                        ((j as f64 + xmin as f64 - center as f64 + 0.5) * invscale as f64) as f32;
                    filter.weight(arg as f64) as f32
                })
                .collect();
            let total: f32 = w.iter().sum();
            if total != 0.0 {
                for v in &mut w {
                    *v /= total;
                }
            }
            (xmin, w)
        })
        .collect();
    Taps { per_output }
}

/// Applies `taps` along one axis of a `(rows, n, cols)` buffer (the resampled axis is the middle one),
/// producing `(rows, out, cols)`.
pub(crate) fn apply_axis(
    data: &[f32],
    rows: usize,
    n: usize,
    cols: usize,
    taps: &Taps,
) -> Vec<f32> {
    let out = taps.per_output.len();
    let mut result = vec![0f32; rows * out * cols];
    for r in 0..rows {
        let src = &data[r * n * cols..(r + 1) * n * cols];
        let dst = &mut result[r * out * cols..(r + 1) * out * cols];
        for (o, (start, w)) in taps.per_output.iter().enumerate() {
            let d = &mut dst[o * cols..(o + 1) * cols];
            for (j, &wj) in w.iter().enumerate() {
                let s = &src[(start + j) * cols..(start + j + 1) * cols];
                for (x, &v) in d.iter_mut().zip(s) {
                    *x += wj * v;
                }
            }
        }
    }
    result
}

/// Resizes `(C, H, W)` planes to `(C, h, w)` with the antialiased `filter`: the width pass, then
/// the height pass, a pass whose size does not change skipped (PyTorch's order).
pub fn resize_chw(
    data: &[f32],
    (c, height, width): (usize, usize, usize),
    (h, w): (usize, usize),
    filter: Filter,
) -> Vec<f32> {
    let mut out = data.to_vec();
    if w != width {
        out = apply_axis(
            &out,
            c * height,
            width,
            1,
            &antialias_taps(width, w, filter),
        );
    }
    if h != height {
        out = apply_axis(&out, c, height, w, &antialias_taps(height, h, filter));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triangle_taps_are_pils_bilinear() {
        // Downscaling by 2: support 2, center 1 for output 0, taps 0..3 at -0.25, 0.25, 0.75 in
        // units of the widened triangle, weighing 0.75, 0.75, 0.25, renormalised.
        let t = antialias_taps(8, 4, Filter::Triangle);
        assert_eq!(t.per_output[0].0, 0);
        let w = &t.per_output[0].1;
        let expect = [0.75 / 1.75, 0.75 / 1.75, 0.25 / 1.75];
        for (a, b) in w.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{w:?}");
        }
        // Upscaling keeps support 1: two taps around the centre.
        let up = antialias_taps(2, 4, Filter::Triangle);
        assert_eq!(up.per_output[1], (0, vec![0.75, 0.25]));
        // Equal sizes are the identity.
        let x: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32).collect();
        assert_eq!(resize_chw(&x, (2, 3, 4), (3, 4), Filter::Triangle), x);
    }
}
