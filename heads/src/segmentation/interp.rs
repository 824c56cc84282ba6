//! Bilinear resizing (align_corners=False) written as two matrix products, `R_h · x · R_wᵀ`, computed
//! one band of output rows at a time, with its adjoint `R_h,bandᵀ · g · R_w` (the gradient of the
//! band with respect to `x`). Training and validation go through it so that logits at label
//! resolution, `K × H × W` per image, never exist whole: memory stays at one band whatever the number
//! of classes `K` and the label size. The matrices are built by resizing identity maps with the
//! kernel of [`crate::ops::resize_bilinear`], so both give the same numbers (up to the order of
//! the float sums).
//!
//! Shapes: `x` `(B, K, h, w)`; a band of rows `r0..r0 + n` is `(B, K, n, W)`; `R_h` `(H, h)`,
//! `R_w` `(W, w)`.

use candle::{Device, Tensor};

use crate::ops::resize_bilinear;
use crate::Result;

/// The most f32 values one band of output holds (`B · K · rows · W`): 16 MiB.
pub(crate) const BAND_VALUES: usize = 4 << 20;

/// The `(output, input)` matrix of a 1-D bilinear resize (align_corners=False).
pub(crate) fn resize_matrix(input: usize, output: usize, device: &Device) -> Result<Tensor> {
    // Channel c of the identity holds the unit impulse at c; resizing it gives column c of R.
    let eye =
        Tensor::eye(input, candle::DType::F32, &Device::Cpu)?.reshape((1, input, input, 1))?;
    let cols = resize_bilinear(&eye, (output, 1), false)?.reshape((input, output))?;
    Ok(cols.t()?.contiguous()?.to_device(device)?)
}

/// A bilinear resize from `(h, w)` to `(H, W)`, applied one band of output rows at a time.
#[derive(Debug, Clone)]
pub(crate) struct BandedResize {
    /// `R_h` `(H, h)`.
    rh: Tensor,
    /// `R_w` `(W, w)`.
    rw: Tensor,
    /// `R_wᵀ` `(w, W)`.
    rw_t: Tensor,
    size: (usize, usize),
    /// The most values one band holds.
    band_values: usize,
}

impl BandedResize {
    /// The resize of `(h, w)` maps to `size = (H, W)` on `device`.
    pub(crate) fn new(from: (usize, usize), size: (usize, usize), device: &Device) -> Result<Self> {
        let rh = resize_matrix(from.0, size.0, device)?;
        let rw = resize_matrix(from.1, size.1, device)?;
        let rw_t = rw.t()?.contiguous()?;
        Ok(Self {
            rh,
            rw,
            rw_t,
            size,
            band_values: BAND_VALUES,
        })
    }

    /// Sets the most values one band holds (tests use small bands).
    #[cfg(test)]
    pub(crate) fn with_band_values(mut self, values: usize) -> Self {
        self.band_values = values;
        self
    }

    /// Output rows per band for `planes = B · K` planes, so that a band holds at most
    /// [`BAND_VALUES`] values (at least one row).
    pub(crate) fn rows_per_band(&self, planes: usize) -> usize {
        (self.band_values / (planes * self.size.1).max(1)).clamp(1, self.size.0.max(1))
    }

    /// The bands `(first row, rows)` that cover the output, for `planes` planes.
    pub(crate) fn bands(&self, planes: usize) -> impl Iterator<Item = (usize, usize)> {
        let (h, step) = (self.size.0, self.rows_per_band(planes));
        (0..h).step_by(step).map(move |r0| (r0, step.min(h - r0)))
    }

    /// Rows `r0..r0 + rows` of the resized `x` `(B, K, h, w)`: `(B, K, rows, W)`.
    pub(crate) fn band(&self, x: &Tensor, r0: usize, rows: usize) -> Result<Tensor> {
        let rh = self.rh.narrow(0, r0, rows)?;
        let cols = rh.broadcast_matmul(&x.contiguous()?)?;
        Ok(cols.broadcast_matmul(&self.rw_t)?)
    }

    /// The adjoint of [`BandedResize::band`]: `g` `(B, K, rows, W)` taken back to `(B, K, h, w)`.
    pub(crate) fn band_adjoint(&self, g: &Tensor, r0: usize, rows: usize) -> Result<Tensor> {
        let rh_t = self.rh.narrow(0, r0, rows)?.t()?.contiguous()?;
        let narrow = g.contiguous()?.broadcast_matmul(&self.rw)?;
        Ok(rh_t.broadcast_matmul(&narrow)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_equal_the_kernel() -> Result<()> {
        let x = Tensor::arange(0f32, 30., &Device::Cpu)?.reshape((1, 2, 3, 5))?;
        let resize = BandedResize::new((3, 5), (7, 4), &Device::Cpu)?;
        let bands = (0..7)
            .step_by(3)
            .map(|r0| resize.band(&x, r0, 3.min(7 - r0)))
            .collect::<Result<Vec<_>>>()?;
        let banded = Tensor::cat(&bands, 2)?;
        let kernel = resize_bilinear(&x, (7, 4), false)?;
        let d = (banded - kernel)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "{d}");
        Ok(())
    }

    #[test]
    fn adjoint_is_the_transpose() -> Result<()> {
        // <band(x), g> = <x, band_adjoint(g)> for any x, g.
        let x = Tensor::arange(0f32, 30., &Device::Cpu)?
            .sin()?
            .reshape((1, 2, 3, 5))?;
        let g = Tensor::arange(0f32, 24., &Device::Cpu)?
            .cos()?
            .reshape((1, 2, 3, 4))?;
        let resize = BandedResize::new((3, 5), (7, 4), &Device::Cpu)?;
        let lhs = (resize.band(&x, 2, 3)? * &g)?
            .sum_all()?
            .to_scalar::<f32>()?;
        let rhs = (x * resize.band_adjoint(&g, 2, 3)?)?
            .sum_all()?
            .to_scalar::<f32>()?;
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
        Ok(())
    }

    #[test]
    fn band_rows_follow_the_budget() -> Result<()> {
        let resize = BandedResize::new((32, 40), (512, 640), &Device::Cpu)?;
        let rows = resize.rows_per_band(1000);
        assert!(rows * 1000 * 640 <= BAND_VALUES && rows >= 1);
        let covered: usize = resize.bands(1000).map(|(_, n)| n).sum();
        assert_eq!(covered, 512);
        // Huge K still makes progress, one row at a time.
        assert_eq!(resize.rows_per_band(1 << 20), 1);
        Ok(())
    }
}
