//! Per-row f32 math of the encoder, on blocks of whole rows `(rows, width)` stored row-major:
//! LayerNorm (with an optional bias added to the input first), the shifted exponential of the
//! attention's softmax, bias + activation (exact erf GELU, tanh GELU, ReLU, SiLU), SwiGLU and a
//! bias add.
//!
//! Each operation is written once, generic over [`Simd`], and runs on the path [`isa::active`]
//! picks (the `*_on` variants take the path explicitly, for the tests). The formulas are those of
//! [`super::math`]; GELU matches PyTorch's to about 1e-7 relative on every path.

use super::isa::{self, Isa};
pub(crate) use super::math::Act;
use super::math::{activate, exp, silu};
use super::simd::{keep_n, load_n, store_n, Kernel, Simd};

/// LayerNorm of each row of `x` into `out`; with `pending`, `x += pending` first (and `x` keeps
/// the sum), which fuses a deferred residual bias into the norm.
pub(crate) fn layer_norm(
    x: &mut [f32],
    pending: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    eps: f32,
    out: &mut [f32],
) {
    layer_norm_on(isa::active(), x, pending, weight, bias, eps, out)
}

/// [`layer_norm`] on the path `isa`.
pub(crate) fn layer_norm_on(
    isa: Isa,
    x: &mut [f32],
    pending: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    eps: f32,
    out: &mut [f32],
) {
    assert!(
        x.len() == out.len()
            && weight.len() == bias.len()
            && pending.is_none_or(|p| p.len() == weight.len())
            && x.len().is_multiple_of(weight.len()),
        "layer norm buffers disagree"
    );
    isa.run(LayerNorm {
        x,
        pending,
        weight,
        bias,
        eps,
        out,
    })
}

/// `row ← act(row + bias)` for each row (`bias` has the row width).
pub(crate) fn bias_act(x: &mut [f32], bias: &[f32], act: Act) {
    bias_act_on(isa::active(), x, bias, act)
}

/// [`bias_act`] on the path `isa`.
pub(crate) fn bias_act_on(isa: Isa, x: &mut [f32], bias: &[f32], act: Act) {
    isa.run(BiasAct {
        x,
        bias,
        act: Some(act),
    })
}

/// `row += bias` for each row.
pub(crate) fn add_rows(x: &mut [f32], bias: &[f32]) {
    isa::active().run(BiasAct { x, bias, act: None })
}

/// SwiGLU on rows of width `2h`: `row[..h] ← silu(row[..h] + bias[..h]) · (row[h..] + bias[h..])`.
pub(crate) fn swiglu(x: &mut [f32], bias: &[f32]) {
    swiglu_on(isa::active(), x, bias)
}

/// [`swiglu`] on the path `isa`.
pub(crate) fn swiglu_on(isa: Isa, x: &mut [f32], bias: &[f32]) {
    isa.run(Swiglu { x, bias })
}

/// `row[j] ← exp(scale · row[j] − shift)`; returns the sum of the new row.
#[inline(always)]
pub(crate) fn exp_shifted<S: Simd>(s: S, row: &mut [f32], scale: f32, shift: f32) -> f32 {
    let (k, neg_shift) = (s.splat(scale), s.splat(-shift));
    let (p, width) = (row.as_mut_ptr(), row.len());
    let mut sum = s.splat(0.0);
    let mut j = 0;
    while j < width {
        let n = width - j;
        // SAFETY: lanes j .. j + min(n, LANES) lie inside `row`.
        unsafe {
            let e = exp(s, s.mul_add(load_n(s, p.add(j), n), k, neg_shift));
            store_n(s, p.add(j), e, n);
            sum = s.add(sum, keep_n(s, e, n, 0.0));
        }
        j += S::LANES;
    }
    s.reduce_sum(sum)
}

struct LayerNorm<'a> {
    x: &'a mut [f32],
    pending: Option<&'a [f32]>,
    weight: &'a [f32],
    bias: &'a [f32],
    eps: f32,
    out: &'a mut [f32],
}

impl Kernel for LayerNorm<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let width = self.weight.len();
        if width == 0 {
            return;
        }
        let inv_w = 1.0 / width as f32;
        let (w, b) = (self.weight.as_ptr(), self.bias.as_ptr());
        let pending = self.pending.map(<[f32]>::as_ptr);
        for (xr, or) in self
            .x
            .chunks_exact_mut(width)
            .zip(self.out.chunks_exact_mut(width))
        {
            let (xp, op) = (xr.as_mut_ptr(), or.as_mut_ptr());
            // SAFETY (the three loops): lanes j .. j + min(width - j, LANES) lie inside the row,
            // `out`'s row, `pending`, `weight` and `bias` (all `width` long, checked by the caller).
            let mut sum = s.splat(0.0);
            let mut j = 0;
            while j < width {
                let n = width - j;
                unsafe {
                    let mut v = load_n(s, xp.add(j), n);
                    if let Some(p) = pending {
                        v = s.add(v, load_n(s, p.add(j), n));
                        store_n(s, xp.add(j), v, n);
                    }
                    sum = s.add(sum, v);
                }
                j += S::LANES;
            }
            let mean = s.splat(s.reduce_sum(sum) * inv_w);
            let mut sq = s.splat(0.0);
            j = 0;
            while j < width {
                let n = width - j;
                let d = unsafe { keep_n(s, s.sub(load_n(s, xp.add(j), n), mean), n, 0.0) };
                sq = s.mul_add(d, d, sq);
                j += S::LANES;
            }
            let rstd = s.splat(1.0 / (s.reduce_sum(sq) * inv_w + self.eps).sqrt());
            j = 0;
            while j < width {
                let n = width - j;
                unsafe {
                    let d = s.mul(s.sub(load_n(s, xp.add(j), n), mean), rstd);
                    let y = s.mul_add(d, load_n(s, w.add(j), n), load_n(s, b.add(j), n));
                    store_n(s, op.add(j), y, n);
                }
                j += S::LANES;
            }
        }
    }
}

/// `row ← act(row + bias)`, or `row += bias` without an activation.
struct BiasAct<'a> {
    x: &'a mut [f32],
    bias: &'a [f32],
    act: Option<Act>,
}

impl Kernel for BiasAct<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let width = self.bias.len();
        if width == 0 {
            return;
        }
        let b = self.bias.as_ptr();
        for row in self.x.chunks_exact_mut(width) {
            let p = row.as_mut_ptr();
            let mut j = 0;
            while j < width {
                let n = width - j;
                // SAFETY: lanes j .. j + min(n, LANES) lie inside the row and `bias`.
                unsafe {
                    let v = s.add(load_n(s, p.add(j), n), load_n(s, b.add(j), n));
                    let v = match self.act {
                        Some(act) => activate(s, v, act),
                        None => v,
                    };
                    store_n(s, p.add(j), v, n);
                }
                j += S::LANES;
            }
        }
    }
}

struct Swiglu<'a> {
    x: &'a mut [f32],
    bias: &'a [f32],
}

impl Kernel for Swiglu<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let h = self.bias.len() / 2;
        if h == 0 {
            return;
        }
        let b = self.bias.as_ptr();
        for row in self.x.chunks_exact_mut(2 * h) {
            let p = row.as_mut_ptr();
            let mut j = 0;
            while j < h {
                let n = h - j;
                // SAFETY: lanes j .. j + min(n, LANES) and h + j .. lie inside the row (2h long)
                // and `bias` (2h long).
                unsafe {
                    let a = s.add(load_n(s, p.add(j), n), load_n(s, b.add(j), n));
                    let g = s.add(load_n(s, p.add(h + j), n), load_n(s, b.add(h + j), n));
                    store_n(s, p.add(j), s.mul(silu(s, a), g), n);
                }
                j += S::LANES;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64: Maclaurin series for |x| < 2, the continued fraction of erfc beyond.
    fn erf64(x: f64) -> f64 {
        if x.abs() >= 2.0 {
            let z = x.abs();
            let mut k = z;
            for n in (1..80).rev() {
                k = z + (n as f64 / 2.0) / k;
            }
            let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / k;
            return (1.0 - erfc).copysign(x);
        }
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-18 && n < 200.0 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    fn inputs() -> Vec<f32> {
        (0..2003).map(|i| (i as f32 - 1001.0) * 0.0079).collect()
    }

    fn want_act(v: f64, act: Act) -> f64 {
        match act {
            Act::GeluErf => 0.5 * v * (1.0 + erf64(v / 2f64.sqrt())),
            Act::GeluTanh => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * v * (1.0 + (k * (v + 0.044715 * v.powi(3))).tanh())
            }
            Act::Relu => v.max(0.0),
            Act::Silu => v / (1.0 + (-v).exp()),
        }
    }

    /// `|got - want| <= tol · max(1, |want|)` element by element.
    #[track_caller]
    fn close(what: &str, got: &[f32], want: impl IntoIterator<Item = f64>, tol: f64) {
        let mut count = 0;
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= tol * w.abs().max(1.0),
                "{what} [{k}]: {g} vs {w}"
            );
            count += 1;
        }
        assert_eq!(count, got.len(), "{what}: lengths");
    }

    #[test]
    fn activations_match_f64_and_scalar_on_every_path() {
        let x = inputs();
        let bias: Vec<f32> = (0..x.len()).map(|i| (i % 7) as f32 * 0.01).collect();
        for isa in Isa::available() {
            for act in [Act::GeluErf, Act::GeluTanh, Act::Relu, Act::Silu] {
                let mut y = x.clone();
                bias_act_on(isa, &mut y, &bias, act);
                let want = x
                    .iter()
                    .zip(&bias)
                    .map(|(&v, &b)| want_act(v as f64 + b as f64, act));
                close(&format!("{isa:?} {act:?}"), &y, want, 1e-6);
                let mut scalar = x.clone();
                bias_act_on(Isa::Scalar, &mut scalar, &bias, act);
                let scalar: Vec<f64> = scalar.iter().map(|&v| v as f64).collect();
                close(&format!("{isa:?} {act:?} vs scalar"), &y, scalar, 5e-7);
            }
            let mut y = x[..2000].to_vec();
            let b = bias[..40].to_vec();
            swiglu_on(isa, &mut y, &b);
            for r in 0..50 {
                let want = (0..20).map(|j| {
                    let a = x[r * 40 + j] as f64 + b[j] as f64;
                    let g = x[r * 40 + 20 + j] as f64 + b[20 + j] as f64;
                    want_act(a, Act::Silu) * g
                });
                close(
                    &format!("{isa:?} swiglu"),
                    &y[r * 40..r * 40 + 20],
                    want,
                    1e-6,
                );
                let untouched = x[r * 40 + 20..r * 40 + 40].iter().map(|&v| v as f64);
                close(
                    "swiglu gate half",
                    &y[r * 40 + 20..r * 40 + 40],
                    untouched,
                    0.0,
                );
            }
        }
    }

    /// `exp` itself: [`exp_shifted`] with scale 1 and shift 0.
    struct Exp<'a>(&'a mut [f32]);

    impl Kernel for Exp<'_> {
        type Output = f32;

        #[inline(always)]
        fn run<S: Simd>(self, s: S) -> f32 {
            exp_shifted(s, self.0, 1.0, 0.0)
        }
    }

    #[test]
    fn exp_is_accurate_and_clamped_on_every_path() {
        // -100 .. 100: the clamping at -87 and 88 included.
        let x: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.05).collect();
        for isa in Isa::available() {
            let mut y = x.clone();
            isa.run(Exp(&mut y));
            for (g, v) in y.iter().zip(&x) {
                let want = (v.clamp(-87.0, 88.0) as f64).exp();
                assert!(
                    (*g as f64 - want).abs() <= 3e-7 * want,
                    "{isa:?} exp({v}) = {g}, want {want}"
                );
            }
            // The returned sum, on a range where it stays finite; 1003 values, so every tail.
            let mut y: Vec<f32> = x[1600..2603].to_vec();
            let sum = isa.run(Exp(&mut y));
            let total: f64 = y.iter().map(|&v| v as f64).sum();
            assert!(
                (sum as f64 - total).abs() <= 1e-6 * total,
                "{isa:?} sum {sum} vs {total}"
            );
        }
    }

    /// `row ← softmax(scale · row) · mult` for each row, as the attention computes it: the row
    /// maximum, then [`exp_shifted`], then one factor.
    struct Softmax<'a> {
        x: &'a mut [f32],
        width: usize,
        scale: f32,
        mult: f32,
    }

    impl Kernel for Softmax<'_> {
        type Output = ();

        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            for row in self.x.chunks_exact_mut(self.width) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let k = self.mult / exp_shifted(s, row, self.scale, max * self.scale);
                row.iter_mut().for_each(|v| *v *= k);
            }
        }
    }

    fn softmax_on(isa: Isa, x: &mut [f32], width: usize, scale: f32, mult: f32) {
        isa.run(Softmax {
            x,
            width,
            scale,
            mult,
        })
    }

    #[test]
    fn softmax_and_layer_norm_match_f64_and_scalar_on_every_path() {
        // Rows of mean about 0.5 and deviation about 2 (a well-conditioned norm).
        let x: Vec<f32> = (0..37 * 6)
            .map(|i| (i as f32 * 0.37).sin() * 3.0 + 0.5)
            .collect();
        // Row widths around every lane count, with tails of every length.
        for width in [37, 16, 8, 3, 74] {
            let rows = x.len() / width;
            let x = &x[..rows * width];
            let w: Vec<f32> = (0..width).map(|i| 0.5 + i as f32 * 0.01).collect();
            let b: Vec<f32> = (0..width).map(|i| i as f32 * -0.02).collect();
            let pending: Vec<f32> = (0..width).map(|i| i as f32 * 0.03).collect();
            let run = |isa: Isa| {
                let mut s = x.to_vec();
                softmax_on(isa, &mut s, width, 0.7, 0.5);
                let mut normed = vec![0.0; x.len()];
                let mut xs = x.to_vec();
                layer_norm_on(isa, &mut xs, Some(&pending), &w, &b, 1e-6, &mut normed);
                (s, normed, xs)
            };
            let scalar = run(Isa::Scalar);
            for isa in Isa::available() {
                let (s, normed, xs) = run(isa);
                for r in 0..rows {
                    let row: Vec<f64> = x[r * width..(r + 1) * width]
                        .iter()
                        .map(|&v| v as f64)
                        .collect();
                    let max = row.iter().cloned().fold(f64::MIN, f64::max);
                    let sum: f64 = row.iter().map(|v| ((v - max) * 0.7).exp()).sum();
                    let summed: Vec<f64> = row
                        .iter()
                        .zip(&pending)
                        .map(|(v, p)| v + *p as f64)
                        .collect();
                    let mean = summed.iter().sum::<f64>() / width as f64;
                    let var = summed.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / width as f64;
                    let at = r * width..(r + 1) * width;
                    let want = row.iter().map(|v| ((v - max) * 0.7).exp() / sum * 0.5);
                    close(
                        &format!("{isa:?} softmax {width}"),
                        &s[at.clone()],
                        want,
                        1e-7,
                    );
                    let want = (0..width).map(|j| {
                        (summed[j] - mean) / (var + 1e-6).sqrt() * w[j] as f64 + b[j] as f64
                    });
                    close(
                        &format!("{isa:?} layer norm {width}"),
                        &normed[at.clone()],
                        want,
                        1e-5,
                    );
                    close("pending bias", &xs[at], summed, 1e-6);
                }
                let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                close(
                    &format!("{isa:?} softmax vs scalar"),
                    &s,
                    f64s(&scalar.0),
                    1e-7,
                );
                close(
                    &format!("{isa:?} norm vs scalar"),
                    &normed,
                    f64s(&scalar.1),
                    2e-6,
                );
            }
        }
    }

    #[test]
    fn add_rows_adds_the_bias_to_every_row() {
        let mut x: Vec<f32> = (0..51).map(|i| i as f32).collect();
        let bias = [0.5f32, -1.0, 2.0];
        add_rows(&mut x, &bias);
        for (i, v) in x.iter().enumerate() {
            assert_eq!(*v, i as f32 + bias[i % 3]);
        }
    }
}
