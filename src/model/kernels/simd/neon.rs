//! [`Simd`] on aarch64 NEON (Apple M, Graviton, Ampere): 4 lanes, row tails through a small
//! stack buffer, exact division for `recip`, the exponent built from integer lanes for `mul_pow2`,
//! `fmaxnm`/`fminnm` so that a NaN `a` gives `b` as on x86. 32 vector registers: a 6 × 4-vector
//! tile.

use std::arch::aarch64::*;

use super::{Kernel, Simd};

/// The NEON token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neon(());

impl Neon {
    /// The token, when the CPU has NEON (every aarch64 CPU that runs Linux, macOS or Windows).
    pub(crate) fn try_new() -> Option<Self> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Self(()))
    }
}

/// Four set lanes then four clear ones: the mask of the first `n` lanes starts at `4 - n`.
static FIRST: [u32; 8] = [u32::MAX, u32::MAX, u32::MAX, u32::MAX, 0, 0, 0, 0];

/// The mask of the first `n ≤ 4` lanes.
#[inline(always)]
fn mask(n: usize) -> uint32x4_t {
    // SAFETY: `4 - n ∈ [0, 4]`, so the 4 lanes read lie inside `FIRST`.
    unsafe { vld1q_u32(FIRST.as_ptr().add(4 - n.min(4))) }
}

#[target_feature(enable = "neon")]
unsafe fn enter<K: Kernel>(s: Neon, k: K) -> K::Output {
    k.run(s)
}

// SAFETY: a token exists only where `neon` was detected; every method uses NEON only. The
// intrinsics' own `unsafe` is discharged by the token.
unsafe impl Simd for Neon {
    const LANES: usize = 4;
    const TILE_ROWS: usize = 6;
    const TILE_VECS: usize = 4;

    type V = float32x4_t;
    type M = uint32x4_t;

    #[inline(always)]
    fn vectorize<K: Kernel>(self, k: K) -> K::Output {
        // SAFETY: the token proves NEON.
        unsafe { enter(self, k) }
    }

    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> float32x4_t {
        vld1q_f32(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: float32x4_t) {
        vst1q_f32(p, v)
    }
    #[inline(always)]
    unsafe fn load_first(self, p: *const f32, n: usize, fill: f32) -> float32x4_t {
        let mut buf = [fill; 4];
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n.min(4));
        vld1q_f32(buf.as_ptr())
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, v: float32x4_t, n: usize) {
        let mut buf = [0f32; 4];
        vst1q_f32(buf.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n.min(4));
    }
    #[inline(always)]
    fn first_or(self, v: float32x4_t, n: usize, fill: f32) -> float32x4_t {
        unsafe { vbslq_f32(mask(n), v, vdupq_n_f32(fill)) }
    }

    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn neg_mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        unsafe { vfmsq_f32(c, a, b) }
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmaxnmq_f32(a, b) }
    }
    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vminnmq_f32(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: float32x4_t) -> float32x4_t {
        unsafe { vabsq_f32(a) }
    }
    #[inline(always)]
    fn recip(self, d: float32x4_t) -> float32x4_t {
        unsafe { vdivq_f32(vdupq_n_f32(1.0), d) }
    }
    #[inline(always)]
    fn round(self, x: float32x4_t) -> float32x4_t {
        unsafe { vrndnq_f32(x) }
    }
    #[inline(always)]
    fn mul_pow2(self, p: float32x4_t, n: float32x4_t) -> float32x4_t {
        unsafe {
            let e = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
            vmulq_f32(p, vreinterpretq_f32_s32(vshlq_n_s32::<23>(e)))
        }
    }
    #[inline(always)]
    fn ge(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        unsafe { vcgeq_f32(a, b) }
    }
    #[inline(always)]
    fn select(self, m: uint32x4_t, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vbslq_f32(m, a, b) }
    }
    #[inline(always)]
    fn reduce_sum(self, v: float32x4_t) -> f32 {
        unsafe { vaddvq_f32(v) }
    }
    #[inline(always)]
    fn reduce_max(self, v: float32x4_t) -> f32 {
        unsafe { vmaxnmvq_f32(v) }
    }
}
