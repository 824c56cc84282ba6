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
    checked(dst, d, lhs, l, rhs, r, p, None)
}

/// [`matmul`] followed by `after` on each thread's share of the output columns, run by the thread
/// that computed them while they are still in its cache (the bias and activation of the
/// feed-forward network, without a pass of their own over the whole hidden layer). `dst` must be
/// row-major (`col_stride` 1).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_then(
    dst: &mut [f32],
    d: Layout,
    lhs: &[f32],
    l: Layout,
    rhs: &[f32],
    r: Layout,
    p: Product,
    after: &(dyn Fn(Columns<'_>) + Sync),
) {
    checked(dst, d, lhs, l, rhs, r, p, Some(after))
}

/// What runs on a block of a product's output right after the block is computed, if anything.
type Epilogue<'f> = Option<&'f (dyn Fn(Columns<'_>) + Sync)>;

/// A block of whole columns of a product's output, handed to the epilogue of [`matmul_then`].
pub(crate) struct Columns<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    row_stride: usize,
    /// Index of the block's first column in the whole output.
    pub first: usize,
    _out: std::marker::PhantomData<&'a mut [f32]>,
}

impl Columns<'_> {
    /// Calls `f` on each row of the block (`cols` floats).
    pub fn for_each_row(&mut self, mut f: impl FnMut(&mut [f32])) {
        for i in 0..self.rows {
            // SAFETY: the block's rows lie inside the output (checked by `checked`), its
            // columns belong to this block alone, and `self` is borrowed mutably.
            f(unsafe {
                std::slice::from_raw_parts_mut(self.ptr.add(i * self.row_stride), self.cols)
            })
        }
    }
}

/// The views checked against their slices, then [`product`].
#[allow(clippy::too_many_arguments)]
fn checked(
    dst: &mut [f32],
    d: Layout,
    lhs: &[f32],
    l: Layout,
    rhs: &[f32],
    r: Layout,
    p: Product,
    after: Epilogue<'_>,
) {
    assert!(
        d.end() <= dst.len() && l.end() <= lhs.len() && r.end() <= rhs.len(),
        "matmul view out of bounds"
    );
    assert!(
        after.is_none() || d.col_stride == 1,
        "matmul epilogue on a column-major output"
    );
    // SAFETY: the three views lie inside their slices; `dst` is exclusively borrowed.
    unsafe {
        product(
            dst.as_mut_ptr(),
            d,
            lhs.as_ptr(),
            l,
            rhs.as_ptr(),
            r,
            p,
            after,
        )
    }
}

/// The product, then its epilogue: split by columns between the threads when the output is wide
/// enough (each thread running the epilogue on its own share), else the `gemm` crate on the whole
/// then the epilogue split by rows between the threads.
///
/// # Safety
/// Each view must lie inside the allocation its pointer belongs to, nothing else may access the
/// elements of the `dst` view during the call, and `dst` must not overlap `lhs` or `rhs`; with an
/// epilogue, `d.col_stride == 1`.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    dst: *mut f32,
    d: Layout,
    lhs: *const f32,
    l: Layout,
    rhs: *const f32,
    r: Layout,
    p: Product,
    after: Epilogue<'_>,
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
    if p.threads > 1 && d.cols >= SPLIT_COLUMNS_FROM * p.threads {
        return split_columns(dst, d, lhs, l, rhs, r, p, after);
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
    if let Some(after) = after {
        epilogue_by_rows(dst, d, p.threads, after);
    }
}

/// `after` on all columns of the output, its rows cut into one block per thread (none smaller
/// than [`EPILOGUE_ROWS`]): the product was too narrow to split by columns between the threads.
///
/// # Safety
/// As [`product`] with an epilogue.
unsafe fn epilogue_by_rows(
    dst: *mut f32,
    d: Layout,
    threads: usize,
    after: &(dyn Fn(Columns<'_>) + Sync),
) {
    let rows_per_task = d.rows.div_ceil(threads.max(1)).max(EPILOGUE_ROWS);
    if threads <= 1 || rows_per_task >= d.rows {
        return after(columns(dst, d, 0, d.cols));
    }
    let out = Raw(dst);
    rayon::scope(|s| {
        for r0 in (0..d.rows).step_by(rows_per_task) {
            let rows = Layout {
                offset: d.offset + r0 * d.row_stride,
                rows: rows_per_task.min(d.rows - r0),
                ..d
            };
            // SAFETY: disjoint row blocks of the output.
            s.spawn(move |_| after(unsafe { columns(out.get(), rows, 0, rows.cols) }));
        }
    });
}

/// Rows below which an epilogue is not split further between threads.
const EPILOGUE_ROWS: usize = 16;

/// Columns `first .. first + cols` of the row-major output view `d`.
///
/// # Safety
/// The view lies inside `dst`'s allocation and nothing else accesses those columns meanwhile.
unsafe fn columns<'a>(dst: *mut f32, d: Layout, first: usize, cols: usize) -> Columns<'a> {
    Columns {
        ptr: dst.add(d.offset + first),
        rows: d.rows,
        cols,
        row_stride: d.row_stride,
        first,
        _out: std::marker::PhantomData,
    }
}

/// Outputs at least this many columns per thread are split by columns between the threads, each
/// running the `gemm` crate single-threaded on its share: measured as fast as or faster than the
/// crate's own split (3-4 % on the 261-token products of ViT-S/14 at 224, 2 cores, AVX-512: the
/// 384, 1152 and 1536 wide ones), and each thread's share of the output stays in its own cache for
/// the epilogue.
const SPLIT_COLUMNS_FROM: usize = 128;

/// A pointer handed to the tasks of one split product.
#[derive(Clone, Copy)]
struct Raw(*mut f32);
// SAFETY: each task reads shared inputs and writes its own block of `dst`.
unsafe impl Send for Raw {}
unsafe impl Sync for Raw {}

impl Raw {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// [`product`] with the columns of `dst` (and `rhs`) cut into one share per thread, each share
/// followed by `after` on the same thread.
#[allow(clippy::too_many_arguments)]
unsafe fn split_columns(
    dst: *mut f32,
    d: Layout,
    lhs: *const f32,
    l: Layout,
    rhs: *const f32,
    r: Layout,
    p: Product,
    after: Epilogue<'_>,
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
                product(dst.get(), dd, lhs.get(), l, rhs.get(), rr, one, None);
                if let Some(after) = after {
                    after(columns(dst.get(), d, c0, cols));
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row-major product `(m, k) × (k, n)`: lhs `sin(i·fl)`, rhs `cos(i·fr)` over the element
    /// index i, and the layouts of dst, lhs and rhs.
    fn problem(
        (m, k, n): (usize, usize, usize),
        (fl, fr): (f32, f32),
    ) -> (Vec<f32>, Vec<f32>, [Layout; 3]) {
        let lhs = (0..m * k).map(|i| (i as f32 * fl).sin()).collect();
        let rhs = (0..k * n).map(|i| (i as f32 * fr).cos()).collect();
        let layouts = [
            Layout::row_major(m, n),
            Layout::row_major(m, k),
            Layout::row_major(k, n),
        ];
        (lhs, rhs, layouts)
    }

    /// Runs `f` on a rayon pool of `threads` threads.
    fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

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

    /// The epilogue sees every output element once, on the thread's own share (split by columns,
    /// by rows when too narrow for that, or whole), after the product: here it doubles them and
    /// counts them.
    #[test]
    fn epilogue_runs_once_on_every_element_after_the_product() {
        // (rows, threads): 300 columns are split by columns on 2 threads, by rows on 3 (40 rows)
        // and whole on 3 (5 rows) and on 1.
        for (m, threads) in [(5, 2), (40, 3), (5, 3), (40, 1)] {
            let n = 300;
            let (lhs, rhs, [d, l, r]) = problem((m, 9, n), (0.3, 0.7));
            let mut want = vec![0f32; m * n];
            let one = Product::overwrite().single_threaded();
            matmul(&mut want, d, &lhs, l, &rhs, r, one);
            let touched = std::sync::atomic::AtomicUsize::new(0);
            let mut got = vec![0f32; m * n];
            let double = |mut block: Columns<'_>| {
                block.for_each_row(|row| {
                    touched.fetch_add(row.len(), std::sync::atomic::Ordering::Relaxed);
                    row.iter_mut().for_each(|v| *v *= 2.0)
                });
            };
            on_threads(threads, || {
                let p = Product::overwrite();
                matmul_then(&mut got, d, &lhs, l, &rhs, r, p, &double)
            });
            let what = format!("{m} rows, {threads} threads");
            assert_eq!(touched.into_inner(), m * n, "{what}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g - 2.0 * w).abs() <= 1e-5 * w.abs().max(1.0), "{what}");
            }
        }
    }

    #[test]
    fn column_split_matches_single_thread() {
        let (m, n) = (7, 400);
        let (lhs, rhs, [d, l, r]) = problem((m, 33, n), (0.21, 0.13));
        let mut one = vec![0.5f32; m * n];
        let mut split = one.clone();
        let p = Product {
            accumulate: true,
            ..Product::overwrite()
        };
        matmul(&mut one, d, &lhs, l, &rhs, r, p.single_threaded());
        on_threads(3, || matmul(&mut split, d, &lhs, l, &rhs, r, p));
        assert_eq!(one, split);
    }
}
