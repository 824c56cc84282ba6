//! The input size Depth-Anything-V2 resizes an image to (`depth_anything_v2/util/transform.py`
//! `Resize(keep_aspect_ratio=True, ensure_multiple_of=14, resize_method="lower_bound")`, as
//! `image2tensor` uses it): one scale for both sides so that both reach the lower bound, then each
//! side rounded (half to even) to a multiple of the patch size, rounded up instead when that falls
//! below the bound.

use crate::{Error, Result};

/// The largest input (height x width, in pixels) [`depth_anything_input_size`] returns: 8192 x 8192.
/// Beyond it an image of extreme aspect ratio (a 1 x 16384 strip at a lower bound of 518 would be
/// 8486912 x 518) is refused instead of allocated.
pub const MAX_INPUT_PIXELS: usize = 8192 * 8192;

/// The `(height, width)` Depth-Anything-V2 feeds its model for an image of `size = (height, width)`:
/// both sides at least `lower_bound` (518 by default), multiples of `multiple` (14), aspect kept. An
/// input over [`MAX_INPUT_PIXELS`] is an [`Error::InvalidInput`] naming the sizes and the limit.
///
/// ```
/// use dinoreg_heads::depth::depth_anything_input_size;
/// assert_eq!(depth_anything_input_size((480, 640), 518, 14)?, (518, 686));
/// assert_eq!(depth_anything_input_size((1000, 500), 518, 14)?, (1036, 518));
/// # Ok::<(), dinoreg_heads::Error>(())
/// ```
pub fn depth_anything_input_size(
    size: (usize, usize),
    lower_bound: usize,
    multiple: usize,
) -> Result<(usize, usize)> {
    let (h, w) = size;
    if h == 0 || w == 0 || lower_bound == 0 || multiple == 0 {
        return Err(Error::input(
            "image size",
            format!("{h}x{w} with lower bound {lower_bound} and multiple {multiple}: all must be positive"),
        ));
    }
    let bound = lower_bound as f64;
    let scale = (bound / h as f64).max(bound / w as f64);
    let m = multiple as f64;
    let constrain = |x: f64| {
        let y = (x / m).round_ties_even() * m;
        let y = if y < bound { (x / m).ceil() * m } else { y };
        y as usize
    };
    let (th, tw) = (constrain(scale * h as f64), constrain(scale * w as f64));
    if th.checked_mul(tw).is_none_or(|px| px > MAX_INPUT_PIXELS) {
        return Err(Error::input(
            "image size",
            format!(
                "{h}x{w} at lower bound {lower_bound} becomes {th}x{tw}, over the limit of {MAX_INPUT_PIXELS} pixels; crop the image or lower the input size"
            ),
        ));
    }
    Ok((th, tw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_and_small_images() -> Result<()> {
        assert_eq!(depth_anything_input_size((518, 518), 518, 14)?, (518, 518));
        // small images are scaled up until the short side reaches the bound
        assert_eq!(depth_anything_input_size((300, 400), 518, 14)?, (518, 686));
        assert!(depth_anything_input_size((0, 10), 518, 14).is_err());
        Ok(())
    }

    #[test]
    fn extreme_aspect_ratios_are_refused() {
        let err = depth_anything_input_size((16384, 1), 518, 14).expect_err("a strip");
        assert!(err.to_string().contains("16384x1"), "{err}");
        assert!(err.to_string().contains("67108864"), "{err}");
        assert!(depth_anything_input_size((1, 1), usize::MAX, 14).is_err());
        assert!(depth_anything_input_size((4000, 3000), 518, 14).is_ok());
    }
}
