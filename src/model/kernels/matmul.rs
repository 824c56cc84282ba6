//! f32 GEMM on strided views of plain buffers, through the `gemm` crate (which picks its kernels
//! at run time: AVX-512 when dinoreg's `gemm-avx512` feature turns on gemm's `x86-v4`, else AVX2 +
//! FMA, NEON or scalar): `dst = [dst +] scale · lhs · rhs`, where any operand may
//! be a column block of a wider matrix (the first `h` columns of the SwiGLU hidden layer) or a
//! transposed view (any row and column strides), so nothing is copied into a contiguous layout
//! first.

/// Where a matrix lives inside a buffer, in floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Index of element (0, 0).
    pub offset: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between (i, j) and (i + 1, j).
    pub row_stride: usize,
    /// Distance between (i, j) and (i, j + 1).
    pub col_stride: usize,
}

impl Layout {
    /// A contiguous row-major `(rows, cols)` matrix at offset 0.
    pub fn row_major(rows: usize, cols: usize) -> Self {
        Self::block(0, rows, cols, cols)
    }

    /// A `(rows, cols)` block starting at `offset` inside a row-major matrix of `row_stride` columns.
    pub fn block(offset: usize, rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// One past the last element touched (the offset for an empty matrix).
    pub fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return self.offset;
        }
        self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }
}

/// How a product is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Product {
    /// Add to what `dst` holds instead of overwriting it.
    pub accumulate: bool,
    /// Multiplier of `lhs · rhs`.
    pub scale: f32,
    /// Threads of the current rayon pool to use (1 = this thread only).
    pub threads: usize,
}

impl Product {
    /// `dst = lhs · rhs` on the whole rayon pool.
    pub fn overwrite() -> Self {
        Self {
            accumulate: false,
            scale: 1.0,
            threads: rayon::current_num_threads(),
        }
    }

    /// `dst += lhs · rhs` on the whole rayon pool.
    pub fn accumulate() -> Self {
        Self {
            accumulate: true,
            ..Self::overwrite()
        }
    }

    /// The same product on the calling thread only.
    pub fn single_threaded(self) -> Self {
        Self { threads: 1, ..self }
    }
}

/// `dst ← [dst +] scale · lhs · rhs` on views of slices; panics (an internal bug, never user input)
/// when the shapes disagree or a view leaves its slice.
pub(crate) fn matmul(
    dst: &mut [f32],
    d: Layout,
    lhs: &[f32],
    l: Layout,
    rhs: &[f32],
    r: Layout,
    p: Product,
) {
    assert!(
        d.end() <= dst.len() && l.end() <= lhs.len() && r.end() <= rhs.len(),
        "matmul view out of bounds"
    );
    // SAFETY: the three views lie inside their slices; `dst` is exclusively borrowed.
    unsafe { matmul_raw(dst.as_mut_ptr(), d, lhs.as_ptr(), l, rhs.as_ptr(), r, p) }
}

/// [`matmul`] on raw buffers, for tasks that write disjoint blocks of one shared output.
///
/// # Safety
/// Each view must lie inside the allocation its pointer belongs to, nothing else may access the
/// elements of the `dst` view during the call, and `dst` must not overlap `lhs` or `rhs`.
pub(crate) unsafe fn matmul_raw(
    dst: *mut f32,
    d: Layout,
    lhs: *const f32,
    l: Layout,
    rhs: *const f32,
    r: Layout,
    p: Product,
) {
    assert!(
        d.rows == l.rows && d.cols == r.cols && l.cols == r.rows,
        "matmul shapes ({}x{}) = ({}x{}) x ({}x{})",
        d.rows,
        d.cols,
        l.rows,
        l.cols,
        r.rows,
        r.cols
    );
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if p.threads > 1 && d.cols <= SPLIT_COLUMNS_UP_TO && d.cols >= 128 * p.threads {
        return split_columns(dst, d, lhs, l, rhs, r, p);
    }
    let parallelism = if p.threads > 1 {
        gemm::Parallelism::Rayon(p.threads)
    } else {
        gemm::Parallelism::None
    };
    let s = |x: usize| x as isize;
    gemm::gemm(
        d.rows,
        d.cols,
        l.cols,
        dst.add(d.offset),
        s(d.col_stride),
        s(d.row_stride),
        p.accumulate,
        lhs.add(l.offset),
        s(l.col_stride),
        s(l.row_stride),
        rhs.add(r.offset),
        s(r.col_stride),
        s(r.row_stride),
        1.0,
        p.scale,
        false,
        false,
        false,
        parallelism,
    );
}

/// Outputs this narrow or narrower are split by columns between the threads, each running the
/// `gemm` crate single-threaded on its share (measured 10% faster than the crate's own split for
/// 261 × 384 × 384 and 261 × 1536 × 384 on 2 cores; wider outputs are better left to the crate).
const SPLIT_COLUMNS_UP_TO: usize = 1024;

/// A pointer handed to the tasks of one split product.
#[derive(Clone, Copy)]
struct Raw(*mut f32);
// SAFETY: each task reads shared inputs and writes its own columns of `dst`.
unsafe impl Send for Raw {}
unsafe impl Sync for Raw {}

impl Raw {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// [`matmul_raw`] with the columns of `dst` (and `rhs`) cut into one share per thread.
unsafe fn split_columns(
    dst: *mut f32,
    d: Layout,
    lhs: *const f32,
    l: Layout,
    rhs: *const f32,
    r: Layout,
    p: Product,
) {
    let parts = p.threads;
    let share = d.cols.div_ceil(parts).next_multiple_of(16);
    let (dst, lhs, rhs) = (Raw(dst), Raw(lhs as *mut f32), Raw(rhs as *mut f32));
    let one = p.single_threaded();
    rayon::scope(|s| {
        for i in 0..parts {
            let c0 = i * share;
            if c0 >= d.cols {
                break;
            }
            let cols = share.min(d.cols - c0);
            let dd = Layout {
                offset: d.offset + c0 * d.col_stride,
                cols,
                ..d
            };
            let rr = Layout {
                offset: r.offset + c0 * r.col_stride,
                cols,
                ..r
            };
            // SAFETY: disjoint column blocks of `dst`; inputs only read.
            s.spawn(move |_| unsafe {
                matmul_raw(dst.get(), dd, lhs.get(), l, rhs.get(), rr, one)
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_views_match_naive_product() {
        // lhs: a 3x4 block at column 2 of a 5x9 buffer; rhs: the transpose of a 5x4 block.
        let lhs: Vec<f32> = (0..45).map(|i| (i as f32 * 0.37).sin()).collect();
        let rhs: Vec<f32> = (0..40).map(|i| (i as f32 * 0.11).cos()).collect();
        let l = Layout::block(2 + 9, 3, 4, 9);
        let r = Layout {
            offset: 1,
            rows: 4,
            cols: 5,
            row_stride: 1,
            col_stride: 8,
        };
        let d = Layout::block(1, 3, 5, 7);
        let mut dst = vec![1.0f32; 22];
        let p = Product {
            accumulate: true,
            scale: 0.5,
            threads: 1,
        };
        matmul(&mut dst, d, &lhs, l, &rhs, r, p);
        for i in 0..3 {
            for j in 0..5 {
                let dot: f32 = (0..4)
                    .map(|k| lhs[11 + i * 9 + k] * rhs[1 + j * 8 + k])
                    .sum();
                let got = dst[1 + i * 7 + j];
                assert!(
                    (got - (1.0 + 0.5 * dot)).abs() < 1e-5,
                    "({i},{j}) {got} vs {}",
                    1.0 + 0.5 * dot
                );
            }
        }
        assert_eq!(dst[0], 1.0);
    }

    #[test]
    fn column_split_matches_single_thread() {
        let (m, k, n) = (7, 33, 400);
        let lhs: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.21).sin()).collect();
        let rhs: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.13).cos()).collect();
        let (d, l, r) = (
            Layout::row_major(m, n),
            Layout::row_major(m, k),
            Layout::row_major(k, n),
        );
        let mut one = vec![0.5f32; m * n];
        let mut split = one.clone();
        let p = Product {
            accumulate: true,
            ..Product::overwrite()
        };
        matmul(&mut one, d, &lhs, l, &rhs, r, p.single_threaded());
        rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| matmul(&mut split, d, &lhs, l, &rhs, r, p));
        assert_eq!(one, split);
    }
}
