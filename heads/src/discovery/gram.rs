//! The gram matrix `A = F Fᵀ` `(N, N)` of one image's patch features `F` `(N, C)`, computed a block of
//! rows at a time so that it is never held whole (at 1411² pixels with 14-pixel patches, N = 10,201
//! and `A` would take 416 MB in f32).
//!
//! `A` is symmetric, so LOST and TokenCut read only its lower triangle: row block `i0..i1` is the
//! product of those rows of `F` with rows `0..i1`, which halves the work. Entry `(i, j)` with `j > i`
//! is read as `(j, i)`, as LOST's and TokenCut's eigen and degree computations on the full matrix see
//! it up to the last bit of rounding.

use candle::{DType, Tensor};

use crate::Result;

/// How many gram entries one block holds at most (16 MB of f32).
const BLOCK_ENTRIES: usize = 1 << 22;

/// One image's patch features `(N, C)` f32, ready for gram products.
pub(crate) struct PatchFeatures {
    feats: Tensor,
    n: usize,
}

impl PatchFeatures {
    /// The features of `map` `(C, h, w)`, one row per patch (row-major over the grid); with
    /// `l2_normalize` each row is divided by `max(‖f‖, 1e-12)` (torch's `F.normalize`). They stay on the
    /// map's device, where the products run in f32.
    pub fn new(map: &Tensor, l2_normalize: bool) -> Result<Self> {
        let (c, h, w) = map.dims3()?;
        let mut feats = map
            .to_dtype(DType::F32)?
            .reshape((c, h * w))?
            .t()?
            .contiguous()?;
        if l2_normalize {
            let norm = feats.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
            feats = feats.broadcast_div(&norm)?;
        }
        Ok(Self { feats, n: h * w })
    }

    /// The number of patches N.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Calls `visit(i0, i1, block)` for consecutive row blocks covering `0..N`, where `block` holds
    /// `A[i, j]` for `i` in `i0..i1` and `j` in `0..i1`, row-major (`i1` entries per row): the lower
    /// triangle and a little above it.
    pub fn for_each_lower_block(
        &self,
        mut visit: impl FnMut(usize, usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let mut i0 = 0;
        while i0 < self.n {
            // Rows grow longer down the triangle: size each block by its last row.
            let mut i1 = i0 + 1;
            while i1 < self.n && (i1 + 1 - i0) * (i1 + 1) <= BLOCK_ENTRIES {
                i1 += 1;
            }
            let rows = self.feats.narrow(0, i0, i1 - i0)?;
            let cols = self.feats.narrow(0, 0, i1)?;
            let block = rows.matmul(&cols.t()?)?;
            visit(i0, i1, &block.flatten_all()?.to_vec1::<f32>()?)?;
            i0 = i1;
        }
        Ok(())
    }

    /// The full rows `A[i, :]` for each `i` in `rows`, row-major `(rows.len(), N)`.
    pub fn rows(&self, rows: &[usize]) -> Result<Vec<f32>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let index: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let index = Tensor::new(index.as_slice(), self.feats.device())?;
        let selected = self.feats.index_select(&index, 0)?;
        let product = selected.matmul(&self.feats.t()?)?;
        Ok(product.flatten_all()?.to_vec1::<f32>()?)
    }
}
