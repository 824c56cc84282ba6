//! mmseg's training loss of a probe and its validation predictions at label resolution, without ever
//! holding logits at label resolution: grid logits `(B, K, h, w)` are resized bilinearly
//! (align_corners=False) to the labels' `(H, W)` one band of rows and one image at a time
//! ([`BandedResize`]), so memory is one band (at most [`BAND_VALUES`] values) whatever `K`, `H` and
//! `W` are.
//!
//! The loss is PyTorch's `F.cross_entropy(resize(x), labels, ignore_index=255)` (the mean over the
//! labelled pixels of the batch). Its gradient with respect to the grid logits is computed band by
//! band in closed form, `Rₕᵀ · (softmax − onehot) · R_w / N`, and handed back so that the head's own
//! parameters get theirs through autograd on the surrogate `Σ x · ∂L/∂x` (same gradients, a graph
//! the size of the grid logits).
//!
//! Shapes: grid logits `(B, K, h, w)`; labels `(B, H, W)` u32; predictions `(H, W)` per band.

use candle::{DType, Tensor};

use crate::segmentation::interp::BandedResize;
#[cfg(doc)]
use crate::segmentation::interp::BAND_VALUES;
use crate::Result;

/// The mean cross-entropy over the labelled pixels, and its gradient `(B, K, h, w)` with respect to
/// `logits`.
#[derive(Debug)]
pub(crate) struct LossAndGrad {
    /// The loss (0 when no pixel is labelled).
    pub(crate) loss: f64,
    /// `∂loss / ∂logits`, the shape of the grid logits.
    pub(crate) grad: Tensor,
}

/// Cross-entropy of `logits` `(B, K, h, w)` resized to the labels' size against `labels`
/// `(B, H, W)` u32, pixels labelled `ignore_index` left out; with its gradient.
pub(crate) fn upsampled_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    ignore_index: u32,
) -> Result<LossAndGrad> {
    let (_, _, h, w) = logits.dims4()?;
    let (_, lh, lw) = labels.dims3()?;
    let resize = BandedResize::new((h, w), (lh, lw), logits.device())?;
    cross_entropy_in_bands(logits, labels, ignore_index, &resize)
}

fn cross_entropy_in_bands(
    logits: &Tensor,
    labels: &Tensor,
    ignore_index: u32,
    resize: &BandedResize,
) -> Result<LossAndGrad> {
    let logits = logits.detach().to_dtype(DType::F32)?;
    let (b, k, _, _) = logits.dims4()?;
    let device = logits.device();
    let labelled = labels
        .ne(ignore_index)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    let scale = 1.0 / f64::from(labelled.max(1.0));
    let classes = Tensor::arange(0u32, k as u32, device)?.reshape((1, k, 1, 1))?;
    let mut loss = 0f64;
    let mut grads = Vec::with_capacity(b);
    for i in 0..b {
        let x = logits.narrow(0, i, 1)?;
        let mut grad = x.zeros_like()?;
        for (r0, rows) in resize.bands(k) {
            let z = resize.band(&x, r0, rows)?;
            let y = labels.narrow(0, i, 1)?.narrow(1, r0, rows)?.unsqueeze(1)?;
            let valid = y.ne(ignore_index)?;
            let safe = valid.where_cond(&y, &y.zeros_like()?)?;
            let mask = valid.to_dtype(DType::F32)?;
            let shifted = z.broadcast_sub(&z.max_keepdim(1)?)?;
            let exp = shifted.exp()?;
            let sum = exp.sum_keepdim(1)?;
            let picked = shifted.gather(&safe.contiguous()?, 1)?;
            let nll = (sum.log()? - picked)?;
            loss += f64::from((nll * &mask)?.sum_all()?.to_scalar::<f32>()?);
            let onehot = safe.broadcast_eq(&classes)?.to_dtype(DType::F32)?;
            let g = (exp.broadcast_div(&sum)? - onehot)?.broadcast_mul(&(mask * scale)?)?;
            grad = (grad + resize.band_adjoint(&g, r0, rows)?)?;
        }
        grads.push(grad);
    }
    Ok(LossAndGrad {
        loss: loss * scale,
        grad: Tensor::cat(&grads, 0)?,
    })
}

/// The argmax class at label resolution of `logits` `(1, K, h, w)` resized to `size`, handed to
/// `sink` one band at a time: `(first row, predictions (rows, W) u32)`.
pub(crate) fn upsampled_argmax(
    logits: &Tensor,
    size: (usize, usize),
    sink: impl FnMut(usize, &Tensor) -> Result<()>,
) -> Result<()> {
    let (_, _, h, w) = logits.dims4()?;
    let resize = BandedResize::new((h, w), size, logits.device())?;
    argmax_in_bands(logits, &resize, sink)
}

fn argmax_in_bands(
    logits: &Tensor,
    resize: &BandedResize,
    mut sink: impl FnMut(usize, &Tensor) -> Result<()>,
) -> Result<()> {
    let logits = logits.to_dtype(DType::F32)?;
    let k = logits.dim(1)?;
    for (r0, rows) in resize.bands(k) {
        let z = resize.band(&logits, r0, rows)?;
        sink(r0, &z.argmax(1)?.squeeze(0)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::resize_bilinear;
    use candle::{Device, Var};

    /// The reference: autograd through the whole resize and log-softmax at label resolution.
    fn reference(logits: &Tensor, labels: &Tensor, ignore: u32) -> Result<(f64, Tensor)> {
        let var = Var::from_tensor(logits)?;
        let (_, _, h, w) = labels.unsqueeze(1)?.dims4()?;
        let (_, _, gh, gw) = logits.dims4()?;
        let rh = crate::segmentation::interp::resize_matrix(gh, h, &Device::Cpu)?;
        let rw_t = crate::segmentation::interp::resize_matrix(gw, w, &Device::Cpu)?
            .t()?
            .contiguous()?;
        let z = rh.broadcast_matmul(&var.as_tensor().broadcast_matmul(&rw_t)?)?;
        let shifted = z.broadcast_sub(&z.max_keepdim(1)?.detach())?;
        let logp = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(1)?.log()?)?;
        let valid = labels.ne(ignore)?;
        let safe = valid.where_cond(labels, &labels.zeros_like()?)?;
        let mask = valid.to_dtype(DType::F32)?.unsqueeze(1)?;
        let picked = logp.gather(&safe.unsqueeze(1)?.contiguous()?, 1)?;
        let count = mask.sum_all()?.to_scalar::<f32>()?.max(1.0);
        let loss = ((picked * mask)?.sum_all()? * (-1.0 / count as f64))?;
        let grads = loss.backward()?;
        let grad = grads
            .get(var.as_tensor())
            .cloned()
            .unwrap_or(logits.zeros_like()?);
        Ok((f64::from(loss.to_scalar::<f32>()?), grad))
    }

    #[test]
    fn banded_loss_and_gradient_equal_autograd() -> Result<()> {
        let dev = Device::Cpu;
        let logits = (Tensor::arange(0f32, 2. * 5. * 3. * 4., &dev)?
            .reshape((2, 5, 3, 4))?
            .sin()?
            * 3.0)?;
        let labels: Vec<u32> = (0..2 * 11 * 13)
            .map(|i| if i % 7 == 0 { 255 } else { (i * 31 % 5) as u32 })
            .collect();
        let labels = Tensor::from_vec(labels, (2, 11, 13), &dev)?;
        // Bands of 2 rows of 5 classes × 13 columns: 6 bands per image.
        let resize = BandedResize::new((3, 4), (11, 13), &dev)?.with_band_values(2 * 5 * 13);
        assert_eq!(resize.bands(5).count(), 6);
        let got = cross_entropy_in_bands(&logits, &labels, 255, &resize)?;
        let (loss, grad) = reference(&logits, &labels, 255)?;
        assert!((got.loss - loss).abs() < 1e-5, "{} vs {loss}", got.loss);
        let d = (got.grad - grad)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "gradient differs by {d}");
        Ok(())
    }

    #[test]
    fn cross_entropy_ignores_255() -> Result<()> {
        // Two pixels, K = 2: logits (0, 0) → -ln(0.5) each; the ignored pixel does not count.
        let logits = Tensor::zeros((1, 2, 1, 3), DType::F32, &Device::Cpu)?;
        let labels = Tensor::new(&[[[0u32, 1, 255]]], &Device::Cpu)?;
        let loss = upsampled_cross_entropy(&logits, &labels, 255)?.loss;
        assert!((loss - std::f64::consts::LN_2).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn banded_argmax_equals_the_kernel() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::arange(0f32, 5. * 3. * 4., &dev)?
            .reshape((1, 5, 3, 4))?
            .cos()?;
        let mut rows = Vec::new();
        let resize = BandedResize::new((3, 4), (9, 10), &dev)?.with_band_values(2 * 5 * 10);
        argmax_in_bands(&logits, &resize, |r0, p| {
            assert_eq!(r0, 2 * rows.len());
            rows.push(p.clone());
            Ok(())
        })?;
        assert_eq!(rows.len(), 5);
        let banded = Tensor::cat(&rows, 0)?.flatten_all()?.to_vec1::<u32>()?;
        let kernel = resize_bilinear(&logits, (9, 10), false)?
            .argmax(1)?
            .flatten_all()?
            .to_vec1::<u32>()?;
        assert_eq!(banded, kernel);
        Ok(())
    }
}
