//! The elementwise functions of the kernels, written once over [`Simd`] so every path computes
//! the same formulas: `exp` (range reduction to `r ∈ [-ln2/2, ln2/2]`, a degree-6 Taylor
//! polynomial, a scale by `2ⁿ`; about 1 ulp), and the activations of the feed-forward network
//! (exact-erf GELU through Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7; tanh GELU;
//! ReLU; SiLU). Each function maps one vector to one vector.

use super::simd::Simd;

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

/// `ln 2` split in a part exact in few bits and the rest (Cody & Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// The Taylor coefficients of `e^r` after `1/720`, highest degree first.
const EXP_TAYLOR: [f32; 6] = [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0];

/// `e^x`, `x` clamped to `[-87, 88]` (so `2ⁿ` stays a normal float).
#[inline(always)]
pub(crate) fn exp<S: Simd>(s: S, x: S::V) -> S::V {
    let x = s.min(s.max(x, s.splat(-87.0)), s.splat(88.0));
    let n = s.round(s.mul(x, s.splat(std::f32::consts::LOG2_E)));
    let r = s.neg_mul_add(n, s.splat(LN2_HI), x);
    let r = s.neg_mul_add(n, s.splat(LN2_LO), r);
    let mut p = s.splat(1.0 / 720.0);
    for c in EXP_TAYLOR {
        p = s.mul_add(p, r, s.splat(c));
    }
    s.mul_pow2(p, n)
}

/// `act(x)`.
#[inline(always)]
pub(crate) fn activate<S: Simd>(s: S, x: S::V, act: Act) -> S::V {
    match act {
        Act::GeluErf => gelu_erf(s, x),
        Act::GeluTanh => {
            let x3 = s.mul(s.mul(x, x), x);
            let y = s.mul(s.splat(GELU_TANH_K), s.mul_add(x3, s.splat(0.044_715), x));
            // tanh(y) = 1 - 2 / (1 + e^{2y})
            let e = exp(s, s.add(y, y));
            let tanh = s.sub(s.splat(1.0), s.div(s.splat(2.0), s.add(s.splat(1.0), e)));
            s.mul(s.mul(s.splat(0.5), x), s.add(s.splat(1.0), tanh))
        }
        Act::Relu => s.max(x, s.splat(0.0)),
        Act::Silu => silu(s, x),
    }
}

/// `x / (1 + e^{-x})`.
#[inline(always)]
pub(crate) fn silu<S: Simd>(s: S, x: S::V) -> S::V {
    let e = exp(s, s.sub(s.splat(0.0), x));
    s.div(x, s.add(s.splat(1.0), e))
}

/// `0.5 x (1 + erf(x / √2))` with `1 + erf(x/√2) = 2 - erfc(z)` for `x ≥ 0`, `erfc(z)` below.
#[inline(always)]
fn gelu_erf<S: Simd>(s: S, x: S::V) -> S::V {
    let z = s.mul(s.abs(x), s.splat(std::f32::consts::FRAC_1_SQRT_2));
    let t = s.recip(s.mul_add(z, s.splat(ERF_P), s.splat(1.0)));
    let mut poly = s.splat(ERF_A[4]);
    for a in [ERF_A[3], ERF_A[2], ERF_A[1], ERF_A[0]] {
        poly = s.mul_add(poly, t, s.splat(a));
    }
    let q = s.mul(s.mul(poly, t), exp(s, s.sub(s.splat(0.0), s.mul(z, z))));
    let nonneg = s.ge(x, s.splat(0.0));
    let one_plus_erf = s.select(nonneg, s.sub(s.splat(2.0), q), q);
    s.mul(s.mul(s.splat(0.5), x), one_plus_erf)
}
