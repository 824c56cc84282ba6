//! A random dinov2 BNHead (eval mode) of any width and class count: the segmentation benchmark
//! times the head's work, which does not depend on trained values.

use candle::{Device, Tensor};
use dinoreg::heads::segmentation::{BnHead, BnHeadParams};
use dinoreg::model::random::random_pixels;

/// A BNHead reading the last four blocks of a `width`-wide backbone into `classes` classes, its
/// tensors drawn from `seed` (batch-norm statistics near the identity, a conv of unit-variance
/// output).
pub fn random_head(
    width: usize,
    classes: usize,
    seed: u64,
    device: &Device,
) -> anyhow::Result<BnHead> {
    let blocks: Vec<i64> = (-4..0).collect();
    let c = blocks.len() * width;
    // Uniform on ±√3: mean 0, standard deviation 1.
    let unit = |shape: (usize, usize, usize, usize), k: u64| random_pixels(shape, seed ^ k, device);
    let vector = |k: u64, scale: f64, shift: f64| -> anyhow::Result<Tensor> {
        Ok(unit((1, 1, 1, c), k)?.flatten_all()?.affine(scale, shift)?)
    };
    let params = BnHeadParams {
        bn_weight: vector(1, 0.1, 1.0)?,
        bn_bias: vector(2, 0.1, 0.0)?,
        running_mean: vector(3, 0.1, 0.0)?,
        running_var: vector(4, 0.1, 1.0)?,
        conv_weight: unit((classes, c, 1, 1), 5)?.affine(1.0 / (c as f64).sqrt(), 0.0)?,
        conv_bias: unit((1, 1, 1, classes), 6)?
            .flatten_all()?
            .affine(0.1, 0.0)?,
    };
    Ok(BnHead::from_params(params, width, blocks)?)
}
