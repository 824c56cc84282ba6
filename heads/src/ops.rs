//! Resampling and padding shared by every head: dinov2's `CenterPadding`, and bilinear resize with PyTorch's `F.interpolate(mode="bilinear",
//! align_corners=...)` semantics (no antialias), on `(B, C, H, W)` tensors.
//!
//! On the CPU this is a direct f32 kernel that follows ATen's source-index arithmetic; on other
//! devices it defers to candle's `upsample_bilinear2d`, which uses the same formulas.

use candle::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::Result;

/// Source index and weights of one output coordinate along one axis.
#[derive(Clone, Copy)]
pub(crate) struct Tap {
    pub(crate) i0: usize,
    pub(crate) i1: usize,
    pub(crate) w0: f32,
    pub(crate) w1: f32,
}

pub(crate) fn taps(input: usize, output: usize, align_corners: bool) -> Vec<Tap> {
    (0..output)
        .map(|o| {
            let src = if align_corners {
                if output > 1 {
                    (input as f32 - 1.0) / (output as f32 - 1.0) * o as f32
                } else {
                    0.0
                }
            } else {
                let scale = input as f32 / output as f32;
                ((o as f32 + 0.5) * scale - 0.5).max(0.0)
            };
            let i0 = (src as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            let l1 = src - i0 as f32;
            Tap {
                i0,
                i1,
                w0: 1.0 - l1,
                w1: l1,
            }
        })
        .collect()
}

/// Resizes `x` `(B, C, H, W)` to `(B, C, size.0, size.1)` bilinearly, as PyTorch does.
pub fn resize_bilinear(x: &Tensor, size: (usize, usize), align_corners: bool) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = size;
    if (oh, ow) == (h, w) {
        return Ok(x.clone());
    }
    if oh == 0 || ow == 0 || h == 0 || w == 0 {
        return Err(crate::Error::input(
            "resize",
            format!("cannot resize {h}x{w} to {oh}x{ow}"),
        ));
    }
    if !matches!(x.device(), Device::Cpu) {
        return Ok(x.upsample_bilinear2d(oh, ow, align_corners)?);
    }
    let dtype = x.dtype();
    let data = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let ty = taps(h, oh, align_corners);
    let tx = taps(w, ow, align_corners);
    let mut out = vec![0f32; b * c * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(data.par_chunks(h * w))
        .for_each(|(dst, src)| {
            for (oy, t) in ty.iter().enumerate() {
                let r0 = &src[t.i0 * w..(t.i0 + 1) * w];
                let r1 = &src[t.i1 * w..(t.i1 + 1) * w];
                let row = &mut dst[oy * ow..(oy + 1) * ow];
                for (v, s) in row.iter_mut().zip(tx.iter()) {
                    let top = s.w0 * r0[s.i0] + s.w1 * r0[s.i1];
                    let bottom = s.w0 * r1[s.i0] + s.w1 * r1[s.i1];
                    *v = t.w0 * top + t.w1 * bottom;
                }
            }
        });
    Ok(Tensor::from_vec(out, (b, c, oh, ow), x.device())?.to_dtype(dtype)?)
}

/// Resizes `x` `(B, C, H, W)` by an integer `factor` bilinearly.
pub fn upsample_bilinear(x: &Tensor, factor: usize, align_corners: bool) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    resize_bilinear(x, (h * factor, w * factor), align_corners)
}

/// `(left, right)` zero padding of dinov2's `CenterPadding` for one side of `size` pixels.
pub fn center_pad_amounts(size: usize, multiple: usize) -> (usize, usize) {
    let pad = size.div_ceil(multiple) * multiple - size;
    (pad / 2, pad - pad / 2)
}

/// Pads `x` `(B, C, H, W)` with zeros, centred, to multiples of `multiple` (dinov2's `CenterPadding`).
pub fn center_pad(x: &Tensor, multiple: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (top, bottom) = center_pad_amounts(h, multiple);
    let (left, right) = center_pad_amounts(w, multiple);
    Ok(x.pad_with_zeros(2, top, bottom)?
        .pad_with_zeros(3, left, right)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_corners() -> Result<()> {
        let x = Tensor::arange(0f32, 12., &Device::Cpu)?.reshape((1, 1, 3, 4))?;
        let same = resize_bilinear(&x, (3, 4), false)?;
        assert_eq!(
            same.flatten_all()?.to_vec1::<f32>()?,
            x.flatten_all()?.to_vec1::<f32>()?
        );
        // align_corners=True keeps the corner values exactly.
        let up = resize_bilinear(&x, (5, 7), true)?;
        let v = up.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(v[0], 0.0);
        assert_eq!(v[6], 3.0);
        assert_eq!(v[34], 11.0);
        Ok(())
    }

    #[test]
    fn half_pixel_upsample_matches_torch() -> Result<()> {
        // torch: F.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode="bilinear")
        //   -> [0.0, 0.25, 0.75, 1.0]
        let x = Tensor::new(&[[[[0f32, 1.]]]], &Device::Cpu)?;
        let y = resize_bilinear(&x, (1, 4), false)?;
        assert_eq!(
            y.flatten_all()?.to_vec1::<f32>()?,
            vec![0.0, 0.25, 0.75, 1.0]
        );
        Ok(())
    }
}
