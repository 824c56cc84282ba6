//! The SIMD layer under the fused kernels: one trait, [`Simd`], over the f32 vectors of an
//! instruction set, implemented by a zero-sized token per instruction set (AVX-512F, AVX2 + FMA,
//! NEON, and plain scalar code). Every kernel is written once, generic over `S: Simd`, and runs
//! inside [`Simd::vectorize`], which enters a function compiled for that instruction set so that
//! every `#[inline(always)]` operation below becomes one or two instructions.
//!
//! The operations are the ones the kernels need, with the same meaning on every instruction set:
//! `mul_add` is fused (one rounding) on the SIMD paths and a separate multiply and add on the
//! scalar path; `recip` is `1/d` to within 2 ulp (exact division on NEON and scalar); `round` rounds
//! half to even; `max(a, b)`/`min(a, b)` return `b` when `a` is NaN. Only the order of horizontal
//! sums (the lane count) differs from one path to another.
//!
//! Shapes: a vector `S::V` holds `S::LANES` f32; row buffers are plain `f32` slices.

pub(crate) mod scalar;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

/// A kernel run by [`Simd::vectorize`]: its `run` is inlined into a function compiled for the
/// instruction set of `S`, so it must be `#[inline(always)]` (and so must everything generic it
/// calls).
pub(crate) trait Kernel {
    /// What the kernel returns.
    type Output;
    /// The body, for the instruction set of `s`.
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

/// f32 vectors of one instruction set. A value of an implementing type is a proof that the CPU
/// running the program has that instruction set, which is what makes the arithmetic methods safe
/// to call; loads and stores through raw pointers stay `unsafe`.
///
/// # Safety
/// An implementor must only be constructible when the CPU supports every instruction its methods
/// use, and `vectorize` must run the kernel with those instructions enabled.
pub(crate) unsafe trait Simd: Copy + Send + Sync + 'static {
    /// f32 lanes per vector.
    const LANES: usize;
    /// Rows of the attention register tile (at most 6).
    const TILE_ROWS: usize;
    /// Vectors per row of the attention register tile (at most 4); `TILE_ROWS * TILE_VECS`
    /// accumulators plus `TILE_VECS + 1` operands fit the register file.
    const TILE_VECS: usize;

    /// A vector of `LANES` f32.
    type V: Copy;
    /// A lane mask (the result of a comparison).
    type M: Copy;

    /// Runs `k` with this instruction set enabled.
    fn vectorize<K: Kernel>(self, k: K) -> K::Output;

    /// Every lane `x`.
    fn splat(self, x: f32) -> Self::V;
    /// `LANES` floats from `p`.
    ///
    /// # Safety
    /// `p .. p + LANES` must be readable.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// Writes `LANES` floats to `p`.
    ///
    /// # Safety
    /// `p .. p + LANES` must be writable.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// The first `n < LANES` lanes from `p`, the others `fill`.
    ///
    /// # Safety
    /// `p .. p + n` must be readable.
    unsafe fn load_first(self, p: *const f32, n: usize, fill: f32) -> Self::V;
    /// Writes the first `n < LANES` lanes of `v` to `p`.
    ///
    /// # Safety
    /// `p .. p + n` must be writable.
    unsafe fn store_first(self, p: *mut f32, v: Self::V, n: usize);
    /// The first `n < LANES` lanes of `v`, the others `fill`.
    fn first_or(self, v: Self::V, n: usize, fill: f32) -> Self::V;

    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`, correctly rounded.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c`.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `c - a · b`.
    fn neg_mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The larger of `a` and `b` (`b` when `a` is NaN).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// The smaller of `a` and `b` (`b` when `a` is NaN).
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// `|a|`.
    fn abs(self, a: Self::V) -> Self::V;
    /// `1 / d` to within 2 ulp.
    fn recip(self, d: Self::V) -> Self::V;
    /// `x` rounded to the nearest integer, half to even.
    fn round(self, x: Self::V) -> Self::V;
    /// `p · 2ⁿ` for integral `n` in `[-126, 127]`, rounded once.
    fn mul_pow2(self, p: Self::V, n: Self::V) -> Self::V;
    /// Lanes where `a >= b`.
    fn ge(self, a: Self::V, b: Self::V) -> Self::M;
    /// `a` where `m` is set, else `b`.
    fn select(self, m: Self::M, a: Self::V, b: Self::V) -> Self::V;
    /// The sum of the lanes.
    fn reduce_sum(self, v: Self::V) -> f32;
    /// The largest lane.
    fn reduce_max(self, v: Self::V) -> f32;

    /// Hints that the cache line at `p` will be read soon (no effect where unsupported). Never
    /// faults, whatever `p` is.
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        let _ = p;
    }
}

/// The first `min(n, LANES)` floats from `p`, zeros after (a whole vector when `n >= LANES`).
///
/// # Safety
/// `p .. p + min(n, LANES)` must be readable.
#[inline(always)]
pub(crate) unsafe fn load_n<S: Simd>(s: S, p: *const f32, n: usize) -> S::V {
    if n >= S::LANES {
        s.load(p)
    } else {
        s.load_first(p, n, 0.0)
    }
}

/// Writes the first `min(n, LANES)` lanes of `v` to `p`.
///
/// # Safety
/// `p .. p + min(n, LANES)` must be writable.
#[inline(always)]
pub(crate) unsafe fn store_n<S: Simd>(s: S, p: *mut f32, v: S::V, n: usize) {
    if n >= S::LANES {
        s.store(p, v)
    } else {
        s.store_first(p, v, n)
    }
}

/// `v` with the lanes from `n` on set to `fill` (`v` itself when `n >= LANES`).
#[inline(always)]
pub(crate) fn keep_n<S: Simd>(s: S, v: S::V, n: usize, fill: f32) -> S::V {
    if n >= S::LANES {
        v
    } else {
        s.first_or(v, n, fill)
    }
}
