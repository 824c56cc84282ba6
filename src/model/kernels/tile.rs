//! The register tile of the attention kernels ([`super::attention_tiled`]), generic over [`Simd`]:
//! `c[i][j] = Σ_k a[i][k] b[k][j]` for up to `S::TILE_ROWS` rows of `a` (broadcast one element at
//! a time) and up to `S::TILE_VECS` vectors of columns of `b` (read from rows `b_stride` apart: a
//! packed key panel or padded value rows), with every accumulator kept in a register over the
//! whole depth (6 × 4 vectors on AVX-512 and NEON, 6 × 2 on AVX2, 4 × 4 floats on scalar). How
//! the sums leave ([`Out`]) is chosen per call.

use super::simd::{keep_n, store_n, Simd};

/// How the sums are written to `c`.
#[derive(Clone, Copy)]
pub(crate) enum Out {
    /// As they are, also raising the running row maxima (one vector of `S::LANES` floats per
    /// row, rows `S::LANES` apart).
    Max(*mut f32),
    /// Times one factor per row.
    Scaled(*const f32),
    /// Added to what `c` holds.
    Add,
}

/// One tile: `a` rows `a_stride` apart, `b` rows (one per k) `b_stride` apart of which `width`
/// floats are used, `depth` values of k, `c` rows `c_stride` apart.
pub(crate) struct Tile {
    pub a: *const f32,
    pub a_stride: usize,
    pub b: *const f32,
    pub b_stride: usize,
    pub depth: usize,
    pub c: *mut f32,
    pub c_stride: usize,
    pub width: usize,
}

/// Rows of `b` prefetched ahead.
const PREFETCH: usize = 16;

impl Tile {
    /// Runs the tile on `min(rows, S::TILE_ROWS)` rows with as many vectors as `width` needs.
    ///
    /// # Safety
    /// Every row touched must be valid: `rows` rows of `a` (`depth` floats each) and of `c`
    /// (`width` floats), `depth` rows of `b` of `width` rounded up to whole vectors (the padding
    /// is read, never used), and the `Out` pointer's `rows` entries. `width ≤ TILE_VECS · LANES`.
    #[inline(always)]
    pub(crate) unsafe fn run_rows<S: Simd>(&self, s: S, rows: usize, out: Out) {
        match self.width.div_ceil(S::LANES).min(S::TILE_VECS) {
            1 => self.rows::<S, 1>(s, rows, out),
            2 => self.rows::<S, 2>(s, rows, out),
            3 => self.rows::<S, 3>(s, rows, out),
            _ => self.rows::<S, 4>(s, rows, out),
        }
    }

    #[inline(always)]
    unsafe fn rows<S: Simd, const V: usize>(&self, s: S, rows: usize, out: Out) {
        match rows.min(S::TILE_ROWS) {
            1 => self.run::<S, 1, V>(s, out),
            2 => self.run::<S, 2, V>(s, out),
            3 => self.run::<S, 3, V>(s, out),
            4 => self.run::<S, 4, V>(s, out),
            5 => self.run::<S, 5, V>(s, out),
            _ => self.run::<S, 6, V>(s, out),
        }
    }

    /// Every index into `acc` is a constant once the loops over `R` and `V` unroll, so the
    /// accumulators stay in registers (iterators over `acc`, a by-value return of it or a large
    /// epilogue each made LLVM keep them in memory, storing one after every FMA).
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn run<S: Simd, const R: usize, const V: usize>(&self, s: S, out: Out) {
        if R > S::TILE_ROWS || V > S::TILE_VECS {
            // Never called (`run_rows` clamps to the path's tile); a constant test that leaves
            // these variants empty instead of compiling tiles that would not fit the registers.
            return;
        }
        let l = S::LANES;
        let mut acc = [[s.splat(0.0); V]; R];
        let (a, a_stride, b, b_stride) = (self.a, self.a_stride, self.b, self.b_stride);
        // Cache lines of one row of `b`.
        let lines = (V * l * 4).div_ceil(64);
        for k in 0..self.depth {
            let row = b.add(k * b_stride);
            let ahead = row.wrapping_add(PREFETCH * b_stride);
            for line in 0..lines {
                s.prefetch(ahead.wrapping_add(16 * line));
            }
            let mut bs = [s.splat(0.0); V];
            for q in 0..V {
                bs[q] = s.load(row.add(l * q));
            }
            for i in 0..R {
                let x = s.splat(*a.add(i * a_stride + k));
                for q in 0..V {
                    acc[i][q] = s.mul_add(x, bs[q], acc[i][q]);
                }
            }
        }
        for i in 0..R {
            let row = self.c.add(i * self.c_stride);
            match out {
                Out::Max(maxv) => {
                    let m = maxv.add(i * l);
                    let mut cur = s.load(m);
                    for q in 0..V {
                        let n = self.width - l * q;
                        store_n(s, row.add(l * q), acc[i][q], n);
                        cur = s.max(keep_n(s, acc[i][q], n, f32::NEG_INFINITY), cur);
                    }
                    s.store(m, cur);
                }
                Out::Scaled(f) => {
                    let k = s.splat(*f.add(i));
                    for q in 0..V {
                        store_n(s, row.add(l * q), s.mul(acc[i][q], k), self.width - l * q);
                    }
                }
                Out::Add => {
                    for q in 0..V {
                        let n = self.width - l * q;
                        let c = super::simd::load_n(s, row.add(l * q), n);
                        store_n(s, row.add(l * q), s.add(c, acc[i][q]), n);
                    }
                }
            }
        }
    }
}
