//! The AVX-512 register tile of the attention kernels ([`super::attention_avx512`]):
//! `c[i][j] = Σ_k a[i][k] b[k][j]` for up to 6 rows of `a` (broadcast one element at a time) and
//! up to 64 columns of `b` (four vectors per k, read from rows `b_stride` apart: a packed key
//! panel or value rows), with 24 accumulators kept in registers over the whole depth. How the
//! sums leave ([`Out`]) is chosen per call.

use std::arch::x86_64::*;

use super::vector::avx512::mask;

/// Rows of `a` per tile.
pub(crate) const ROWS: usize = 6;
/// Columns of `b` per tile (4 vectors).
pub(crate) const WIDTH: usize = 64;
/// Rows of `b` prefetched ahead.
const PREFETCH: usize = 16;

/// How the sums are written to `c`.
#[derive(Clone, Copy)]
pub(crate) enum Out {
    /// As they are, also raising the running row maxima (one vector per row).
    Max(*mut __m512),
    /// Times one factor per row.
    Scaled(*const f32),
    /// Added to what `c` holds.
    Add,
}

/// One tile: `a` rows `a_stride` apart, `b` rows (one per k) `b_stride` apart of which `width`
/// (≤ 64) floats are used, `depth` values of k, `c` rows `c_stride` apart.
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

impl Tile {
    /// Runs the tile on `min(rows, 6)` rows with as many vectors as `width` needs.
    ///
    /// # Safety
    /// AVX-512F must be present; every row touched (`rows` rows of `a` and `c`, `depth` rows of
    /// `b`, `width` floats each, and the `Out` pointer's `rows` entries) must be valid.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn run_rows(&self, rows: usize, out: Out) {
        match self.width.div_ceil(16) {
            1 => self.rows::<1>(rows, out),
            2 => self.rows::<2>(rows, out),
            3 => self.rows::<3>(rows, out),
            _ => self.rows::<4>(rows, out),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows<const V: usize>(&self, rows: usize, out: Out) {
        match rows {
            1 => self.run::<1, V>(out),
            2 => self.run::<2, V>(out),
            3 => self.run::<3, V>(out),
            4 => self.run::<4, V>(out),
            5 => self.run::<5, V>(out),
            _ => self.run::<ROWS, V>(out),
        }
    }

    /// Every index into `acc` is a constant once the loops over `R` and `V` unroll, so the
    /// accumulators stay in registers (iterators over `acc`, a by-value return of it or a large
    /// epilogue each made LLVM keep them in memory, storing one after every FMA).
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn run<const R: usize, const V: usize>(&self, out: Out) {
        let mut masks = [0 as __mmask16; V];
        for q in 0..V {
            masks[q] = mask(self.width.saturating_sub(16 * q));
        }
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let (a, a_stride, b, b_stride) = (self.a, self.a_stride, self.b, self.b_stride);
        for k in 0..self.depth {
            let row = b.add(k * b_stride);
            let ahead = row.wrapping_add(PREFETCH * b_stride) as *const i8;
            for q in 0..V {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * q));
            }
            let mut bs = [_mm512_setzero_ps(); V];
            for q in 0..V {
                bs[q] = _mm512_maskz_loadu_ps(masks[q], row.add(16 * q));
            }
            for i in 0..R {
                let x = _mm512_set1_ps(*a.add(i * a_stride + k));
                for q in 0..V {
                    acc[i][q] = _mm512_fmadd_ps(x, bs[q], acc[i][q]);
                }
            }
        }
        for i in 0..R {
            let row = self.c.add(i * self.c_stride);
            match out {
                Out::Max(maxv) => {
                    let m = maxv.add(i);
                    let mut cur = m.read_unaligned();
                    for q in 0..V {
                        _mm512_mask_storeu_ps(row.add(16 * q), masks[q], acc[i][q]);
                        cur = _mm512_mask_max_ps(cur, masks[q], cur, acc[i][q]);
                    }
                    m.write_unaligned(cur);
                }
                Out::Scaled(f) => {
                    let k = _mm512_set1_ps(*f.add(i));
                    for q in 0..V {
                        _mm512_mask_storeu_ps(
                            row.add(16 * q),
                            masks[q],
                            _mm512_mul_ps(acc[i][q], k),
                        );
                    }
                }
                Out::Add => {
                    for q in 0..V {
                        let c = _mm512_maskz_loadu_ps(masks[q], row.add(16 * q));
                        _mm512_mask_storeu_ps(
                            row.add(16 * q),
                            masks[q],
                            _mm512_add_ps(c, acc[i][q]),
                        );
                    }
                }
            }
        }
    }
}
