//! [`Simd`] on one f32 at a time, in plain Rust: the path of CPUs without the SIMD instruction
//! sets below (and of `DINOREG_SIMD=scalar`). `mul_add` is a separate multiply and add (a fused
//! one needs a libm call where the CPU has no FMA), so this path gives the same bits on every
//! machine.

use super::{Kernel, Simd};

/// The scalar token (every CPU has it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalar;

// SAFETY: plain Rust arithmetic runs everywhere.
unsafe impl Simd for Scalar {
    const LANES: usize = 1;
    const TILE_ROWS: usize = 4;
    const TILE_VECS: usize = 4;

    type V = f32;
    type M = bool;

    #[inline(always)]
    fn vectorize<K: Kernel>(self, k: K) -> K::Output {
        k.run(self)
    }

    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> f32 {
        *p
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: f32) {
        *p = v
    }
    #[inline(always)]
    unsafe fn load_first(self, _p: *const f32, _n: usize, fill: f32) -> f32 {
        // `n < 1`: no lane is read.
        fill
    }
    #[inline(always)]
    unsafe fn store_first(self, _p: *mut f32, _v: f32, _n: usize) {}
    #[inline(always)]
    fn first_or(self, _v: f32, _n: usize, fill: f32) -> f32 {
        fill
    }

    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn div(self, a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    fn mul_add(self, a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    fn neg_mul_add(self, a: f32, b: f32, c: f32) -> f32 {
        c - a * b
    }
    #[inline(always)]
    fn max(self, a: f32, b: f32) -> f32 {
        if a > b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn min(self, a: f32, b: f32) -> f32 {
        if a < b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn abs(self, a: f32) -> f32 {
        a.abs()
    }
    #[inline(always)]
    fn recip(self, d: f32) -> f32 {
        1.0 / d
    }
    #[inline(always)]
    fn round(self, x: f32) -> f32 {
        x.round_ties_even()
    }
    #[inline(always)]
    fn mul_pow2(self, p: f32, n: f32) -> f32 {
        p * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
    #[inline(always)]
    fn ge(self, a: f32, b: f32) -> bool {
        a >= b
    }
    #[inline(always)]
    fn select(self, m: bool, a: f32, b: f32) -> f32 {
        if m {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn reduce_sum(self, v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn reduce_max(self, v: f32) -> f32 {
        v
    }
}
