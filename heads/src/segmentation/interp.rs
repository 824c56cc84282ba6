//! Bilinear resizing written as two matrix products, `R_h · x · R_wᵀ`, so that candle can
//! differentiate it (the direct kernel in [`crate::ops`] has no backward). The matrices are built by
//! resizing identity maps with that same kernel, so both give the same numbers.
//!
//! Shapes: `x` `(B, K, h, w)` → `(B, K, H, W)`; `R_h` `(H, h)`, `R_w` `(W, w)`.

use candle::{Device, Tensor};

use crate::ops::resize_bilinear;
use crate::Result;

/// The `(output, input)` matrix of a 1-D bilinear resize (align_corners=False).
pub(crate) fn resize_matrix(input: usize, output: usize, device: &Device) -> Result<Tensor> {
    // Channel c of the identity holds the unit impulse at c; resizing it gives column c of R.
    let eye =
        Tensor::eye(input, candle::DType::F32, &Device::Cpu)?.reshape((1, input, input, 1))?;
    let cols = resize_bilinear(&eye, (output, 1), false)?.reshape((input, output))?;
    Ok(cols.t()?.contiguous()?.to_device(device)?)
}

/// Differentiable bilinear resize (align_corners=False) of `x` `(B, K, h, w)` to `size`.
pub(crate) fn resize_differentiable(x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if (h, w) == size {
        return Ok(x.clone());
    }
    let rh = resize_matrix(h, size.0, x.device())?;
    let rw_t = resize_matrix(w, size.1, x.device())?.t()?.contiguous()?;
    let rows = x.contiguous()?.broadcast_matmul(&rw_t)?;
    Ok(rh.broadcast_matmul(&rows)?)
}
