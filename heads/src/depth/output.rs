//! What every depth head returns and how it goes back to the image size: depth `(B, h', w')` from
//! [`Head::forward`], resized by each model's own convention (Depth-Anything-V2's `infer_image`:
//! bilinear, `align_corners=True`; dinov2's `encode_decode`: bilinear, `align_corners=False`).

use candle::Tensor;

use crate::ops::resize_bilinear;
use crate::{Error, Head, Result};

/// A head whose output is a depth map `(B, h', w')`, and that knows how its model resizes it to the
/// image.
pub trait DepthHead: Head<Output = Tensor> {
    /// Resizes `depth` `(B, h', w')` to `size = (H, W)`, the size of the image before preprocessing
    /// (or before padding), as the head's reference implementation does.
    fn resize_output(&self, depth: &Tensor, size: (usize, usize)) -> Result<Tensor>;
}

/// Resizes a depth map `(B, h, w)` to `(B, size.0, size.1)` bilinearly.
pub fn resize_depth(depth: &Tensor, size: (usize, usize), align_corners: bool) -> Result<Tensor> {
    if depth.rank() != 3 {
        return Err(Error::input(
            "depth",
            format!("shape {:?}, expected (B, H, W)", depth.dims()),
        ));
    }
    let resized = resize_bilinear(&depth.unsqueeze(1)?, size, align_corners)?;
    Ok(resized.squeeze(1)?)
}
