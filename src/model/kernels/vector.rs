//! Per-row f32 math of the encoder, on blocks of whole rows `(rows, width)` stored row-major:
//! LayerNorm (with an optional bias added to the input first), a scaled softmax, bias +
//! activation (exact erf GELU, tanh GELU, ReLU, SiLU) and SwiGLU.
//!
//! Two implementations of the same formulas: AVX-512 (chosen at run time when the CPU has it) and
//! portable Rust. `exp` is a degree-6 polynomial after range reduction (about 1 ulp); `erf` is
//! Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), so GELU matches PyTorch's to about
//! 1e-7 relative.

/// The activation of the feed-forward network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// `0.5 x (1 + erf(x / √2))`, PyTorch's default GELU.
    GeluErf,
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    GeluTanh,
    /// `max(x, 0)`.
    Relu,
    /// `x / (1 + e^{-x})`.
    Silu,
}

/// Abramowitz & Stegun 7.1.26: `erfc(z) ≈ t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^{-z²}`,
/// `t = 1 / (1 + p z)`, `z ≥ 0`.
const ERF_P: f32 = 0.327_591_1;
const ERF_A: [f32; 5] = [
    0.254_829_6,
    -0.284_496_74,
    1.421_413_8,
    -1.453_152_1,
    1.061_405_4,
];
const GELU_TANH_K: f32 = 0.797_884_6; // √(2/π)

/// Whether the AVX-512 kernels run on this CPU.
#[cfg(target_arch = "x86_64")]
pub(crate) fn use_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Whether the AVX-512 kernels run on this CPU.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn use_avx512() -> bool {
    false
}

/// Which implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    if use_avx512() {
        return Isa::Avx512;
    }
    Isa::Portable
}

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
    debug_assert_eq!(x.len(), out.len());
    debug_assert_eq!(x.len() % weight.len(), 0);
    layer_norm_on(isa(), x, pending, weight, bias, eps, out)
}

fn layer_norm_on(
    isa: Isa,
    x: &mut [f32],
    pending: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    eps: f32,
    out: &mut [f32],
) {
    match isa {
        Isa::Portable => portable::layer_norm(x, pending, weight, bias, eps, out),
        // SAFETY: AVX-512F is present; every access stays inside the slices.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::layer_norm(x, pending, weight, bias, eps, out) },
    }
}

/// `row ← softmax(scale · row) · mult` for each row of width `width`.
pub(crate) fn softmax(x: &mut [f32], width: usize, scale: f32, mult: f32) {
    softmax_on(isa(), x, width, scale, mult)
}

fn softmax_on(isa: Isa, x: &mut [f32], width: usize, scale: f32, mult: f32) {
    match isa {
        Isa::Portable => portable::softmax(x, width, scale, mult),
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::softmax(x, width, scale, mult) },
    }
}

/// `row[j] ← exp(scale · row[j] − shift)`; returns the sum of the new row.
pub(crate) fn exp_shifted(row: &mut [f32], scale: f32, shift: f32) -> f32 {
    exp_shifted_on(isa(), row, scale, shift)
}

fn exp_shifted_on(isa: Isa, row: &mut [f32], scale: f32, shift: f32) -> f32 {
    match isa {
        Isa::Portable => portable::exp_shifted(row, scale, shift),
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::exp_shifted(row, scale, shift) },
    }
}

/// `row ← act(row + bias)` for each row (`bias` has the row width).
pub(crate) fn bias_act(x: &mut [f32], bias: &[f32], act: Act) {
    bias_act_on(isa(), x, bias, act)
}

fn bias_act_on(isa: Isa, x: &mut [f32], bias: &[f32], act: Act) {
    match isa {
        Isa::Portable => portable::bias_act(x, bias, act),
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::bias_act(x, bias, act) },
    }
}

/// SwiGLU on rows of width `2h`: `row[..h] ← silu(row[..h] + bias[..h]) · (row[h..] + bias[h..])`.
pub(crate) fn swiglu(x: &mut [f32], bias: &[f32]) {
    swiglu_on(isa(), x, bias)
}

fn swiglu_on(isa: Isa, x: &mut [f32], bias: &[f32]) {
    match isa {
        Isa::Portable => portable::swiglu(x, bias),
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::swiglu(x, bias) },
    }
}

/// `row += bias` for each row.
pub(crate) fn add_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

mod portable {
    //! The plain Rust versions.

    use super::{Act, ERF_A, ERF_P, GELU_TANH_K};

    pub(super) fn layer_norm(
        x: &mut [f32],
        pending: Option<&[f32]>,
        weight: &[f32],
        bias: &[f32],
        eps: f32,
        out: &mut [f32],
    ) {
        let width = weight.len();
        for (xr, or) in x.chunks_exact_mut(width).zip(out.chunks_exact_mut(width)) {
            if let Some(p) = pending {
                xr.iter_mut().zip(p).for_each(|(v, b)| *v += b);
            }
            let mean = xr.iter().sum::<f32>() / width as f32;
            let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
            let rstd = 1.0 / (var + eps).sqrt();
            for (((o, v), w), b) in or.iter_mut().zip(xr.iter()).zip(weight).zip(bias) {
                *o = (v - mean) * rstd * w + b;
            }
        }
    }

    pub(super) fn softmax(x: &mut [f32], width: usize, scale: f32, mult: f32) {
        for row in x.chunks_exact_mut(width) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) * scale;
            let k = mult / exp_shifted(row, scale, max);
            row.iter_mut().for_each(|v| *v *= k);
        }
    }

    pub(super) fn exp_shifted(row: &mut [f32], scale: f32, shift: f32) -> f32 {
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = exp(*v * scale - shift);
            sum += *v;
        }
        sum
    }

    pub(super) fn bias_act(x: &mut [f32], bias: &[f32], act: Act) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = activate(*v + b, act);
            }
        }
    }

    pub(super) fn swiglu(x: &mut [f32], bias: &[f32]) {
        let h = bias.len() / 2;
        for row in x.chunks_exact_mut(2 * h) {
            let (a, g) = row.split_at_mut(h);
            for j in 0..h {
                a[j] = activate(a[j] + bias[j], Act::Silu) * (g[j] + bias[h + j]);
            }
        }
    }

    fn exp(x: f32) -> f32 {
        x.max(-87.0).exp()
    }

    fn activate(x: f32, act: Act) -> f32 {
        match act {
            Act::GeluErf => {
                let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
                let t = 1.0 / (1.0 + ERF_P * z);
                let poly = t
                    * (ERF_A[0] + t * (ERF_A[1] + t * (ERF_A[2] + t * (ERF_A[3] + t * ERF_A[4]))));
                let q = poly * exp(-z * z);
                0.5 * x * if x >= 0.0 { 2.0 - q } else { q }
            }
            Act::GeluTanh => {
                let y = GELU_TANH_K * (x + 0.044_715 * x * x * x);
                0.5 * x * (1.0 + y.tanh())
            }
            Act::Relu => x.max(0.0),
            Act::Silu => x / (1.0 + exp(-x)),
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    //! The AVX-512F versions; each `unsafe fn` needs AVX-512F and in-bounds slices.

    use std::arch::x86_64::*;

    use super::{Act, ERF_A, ERF_P, GELU_TANH_K};

    const L: usize = 16;

    /// The mask of the first `min(n, 16)` lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn mask(n: usize) -> __mmask16 {
        if n >= L {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f32, n: usize) -> __m512 {
        if n >= L {
            _mm512_loadu_ps(p)
        } else {
            _mm512_maskz_loadu_ps(mask(n), p)
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(p: *mut f32, v: __m512, n: usize) {
        if n >= L {
            _mm512_storeu_ps(p, v)
        } else {
            _mm512_mask_storeu_ps(p, mask(n), v)
        }
    }

    /// `e^x`, x clamped to [-87, 88]: `x = n ln2 + r`, degree-6 Taylor in `r`, scaled by `2^n`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-87.0)),
            _mm512_set1_ps(88.0),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    /// `1 / d` to about 1 ulp: `rcp14` and one Newton step.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn recip(d: __m512) -> __m512 {
        let r = _mm512_rcp14_ps(d);
        _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn activate(x: __m512, act: Act) -> __m512 {
        match act {
            Act::GeluErf => {
                let z = _mm512_mul_ps(
                    _mm512_abs_ps(x),
                    _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
                );
                let t = recip(_mm512_fmadd_ps(
                    z,
                    _mm512_set1_ps(ERF_P),
                    _mm512_set1_ps(1.0),
                ));
                let mut poly = _mm512_set1_ps(ERF_A[4]);
                for a in [ERF_A[3], ERF_A[2], ERF_A[1], ERF_A[0]] {
                    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(a));
                }
                let poly = _mm512_mul_ps(poly, t);
                let q = _mm512_mul_ps(
                    poly,
                    exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z))),
                );
                let nonneg = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_setzero_ps());
                let one_plus_erf =
                    _mm512_mask_blend_ps(nonneg, q, _mm512_sub_ps(_mm512_set1_ps(2.0), q));
                _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5), x), one_plus_erf)
            }
            Act::GeluTanh => {
                let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
                let y = _mm512_mul_ps(
                    _mm512_set1_ps(GELU_TANH_K),
                    _mm512_fmadd_ps(x3, _mm512_set1_ps(0.044_715), x),
                );
                // tanh(y) = 1 - 2 / (1 + e^{2y})
                let e = exp(_mm512_add_ps(y, y));
                let tanh = _mm512_sub_ps(
                    _mm512_set1_ps(1.0),
                    _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(_mm512_set1_ps(1.0), e)),
                );
                _mm512_mul_ps(
                    _mm512_mul_ps(_mm512_set1_ps(0.5), x),
                    _mm512_add_ps(_mm512_set1_ps(1.0), tanh),
                )
            }
            Act::Relu => _mm512_max_ps(x, _mm512_setzero_ps()),
            Act::Silu => {
                let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
                _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e))
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn layer_norm(
        x: &mut [f32],
        pending: Option<&[f32]>,
        weight: &[f32],
        bias: &[f32],
        eps: f32,
        out: &mut [f32],
    ) {
        let width = weight.len();
        let inv_w = 1.0 / width as f32;
        for (xr, or) in x.chunks_exact_mut(width).zip(out.chunks_exact_mut(width)) {
            let (xp, op) = (xr.as_mut_ptr(), or.as_mut_ptr());
            let mut sum = _mm512_setzero_ps();
            let mut j = 0;
            while j < width {
                let n = width - j;
                let mut v = load(xp.add(j), n);
                if let Some(p) = pending {
                    v = _mm512_add_ps(v, load(p.as_ptr().add(j), n));
                    store(xp.add(j), v, n);
                }
                sum = _mm512_add_ps(sum, v);
                j += L;
            }
            let mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) * inv_w);
            let mut sq = _mm512_setzero_ps();
            j = 0;
            while j < width {
                let n = width - j;
                let d = _mm512_maskz_sub_ps(mask(n), load(xp.add(j), n), mean);
                sq = _mm512_fmadd_ps(d, d, sq);
                j += L;
            }
            let rstd = _mm512_set1_ps(1.0 / (_mm512_reduce_add_ps(sq) * inv_w + eps).sqrt());
            j = 0;
            while j < width {
                let n = width - j;
                let d = _mm512_mul_ps(_mm512_sub_ps(load(xp.add(j), n), mean), rstd);
                let y = _mm512_fmadd_ps(
                    d,
                    load(weight.as_ptr().add(j), n),
                    load(bias.as_ptr().add(j), n),
                );
                store(op.add(j), y, n);
                j += L;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn softmax(x: &mut [f32], width: usize, scale: f32, mult: f32) {
        for row in x.chunks_exact_mut(width) {
            let p = row.as_mut_ptr();
            let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
            let mut j = 0;
            while j < width {
                let n = width - j;
                let v = _mm512_mask_loadu_ps(_mm512_set1_ps(f32::NEG_INFINITY), mask(n), p.add(j));
                m = _mm512_max_ps(m, v);
                j += L;
            }
            let sum = exp_shifted(row, scale, _mm512_reduce_max_ps(m) * scale);
            let k = _mm512_set1_ps(mult / sum);
            j = 0;
            while j < width {
                let n = width - j;
                store(p.add(j), _mm512_mul_ps(load(p.add(j), n), k), n);
                j += L;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_shifted(row: &mut [f32], scale: f32, shift: f32) -> f32 {
        let (s, shift) = (_mm512_set1_ps(scale), _mm512_set1_ps(shift));
        let (p, width) = (row.as_mut_ptr(), row.len());
        let mut sum = _mm512_setzero_ps();
        let mut j = 0;
        while j < width {
            let n = width - j;
            let e = exp(_mm512_fmsub_ps(load(p.add(j), n), s, shift));
            let e = _mm512_maskz_mov_ps(mask(n), e);
            store(p.add(j), e, n);
            sum = _mm512_add_ps(sum, e);
            j += L;
        }
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn bias_act(x: &mut [f32], bias: &[f32], act: Act) {
        let width = bias.len();
        for row in x.chunks_exact_mut(width) {
            let p = row.as_mut_ptr();
            let mut j = 0;
            while j < width {
                let n = width - j;
                let v = _mm512_add_ps(load(p.add(j), n), load(bias.as_ptr().add(j), n));
                store(p.add(j), activate(v, act), n);
                j += L;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn swiglu(x: &mut [f32], bias: &[f32]) {
        let h = bias.len() / 2;
        for row in x.chunks_exact_mut(2 * h) {
            let p = row.as_mut_ptr();
            let mut j = 0;
            while j < h {
                let n = h - j;
                let a = _mm512_add_ps(load(p.add(j), n), load(bias.as_ptr().add(j), n));
                let g = _mm512_add_ps(load(p.add(h + j), n), load(bias.as_ptr().add(h + j), n));
                store(p.add(j), _mm512_mul_ps(activate(a, Act::Silu), g), n);
                j += L;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isas() -> Vec<Isa> {
        let mut all = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if use_avx512() {
            all.push(Isa::Avx512);
        }
        all
    }

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

    #[test]
    fn activations_match_f64() {
        let x = inputs();
        let bias: Vec<f32> = (0..x.len()).map(|i| (i % 7) as f32 * 0.01).collect();
        for isa in isas() {
            for act in [Act::GeluErf, Act::GeluTanh, Act::Relu, Act::Silu] {
                let mut y = x.clone();
                bias_act_on(isa, &mut y, &bias, act);
                for ((a, &v), &b) in y.iter().zip(&x).zip(&bias) {
                    let want = want_act(v as f64 + b as f64, act);
                    let err = (*a as f64 - want).abs();
                    assert!(
                        err <= 1e-6 * want.abs().max(1.0),
                        "{isa:?} {act:?}({v}) = {a}, want {want}"
                    );
                }
            }
            let mut y = x[..2000].to_vec();
            let b = bias[..40].to_vec();
            swiglu_on(isa, &mut y, &b);
            for r in 0..50 {
                for j in 0..20 {
                    let a = x[r * 40 + j] as f64 + b[j] as f64;
                    let g = x[r * 40 + 20 + j] as f64 + b[20 + j] as f64;
                    let want = want_act(a, Act::Silu) * g;
                    assert!(
                        (y[r * 40 + j] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                        "{isa:?} swiglu"
                    );
                }
            }
        }
    }

    #[test]
    fn softmax_and_layer_norm_match_f64() {
        let width = 37;
        let x: Vec<f32> = inputs()[..width * 3].to_vec();
        let w: Vec<f32> = (0..width).map(|i| 0.5 + i as f32 * 0.01).collect();
        let b: Vec<f32> = (0..width).map(|i| i as f32 * -0.02).collect();
        let pending: Vec<f32> = (0..width).map(|i| i as f32 * 0.03).collect();
        for isa in isas() {
            let mut s = x.clone();
            softmax_on(isa, &mut s, width, 0.7, 0.5);
            let mut normed = vec![0.0; x.len()];
            let mut xs = x.clone();
            layer_norm_on(isa, &mut xs, Some(&pending), &w, &b, 1e-6, &mut normed);
            for r in 0..3 {
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
                for j in 0..width {
                    let want = ((row[j] - max) * 0.7).exp() / sum * 0.5;
                    assert!(
                        (s[r * width + j] as f64 - want).abs() < 1e-7,
                        "{isa:?} softmax"
                    );
                    let want = (summed[j] - mean) / (var + 1e-6).sqrt() * w[j] as f64 + b[j] as f64;
                    assert!(
                        (normed[r * width + j] as f64 - want).abs() < 1e-5,
                        "{isa:?} layer norm"
                    );
                    assert!(
                        (xs[r * width + j] as f64 - summed[j]).abs() < 1e-6,
                        "{isa:?} pending bias"
                    );
                }
            }
        }
    }
}
