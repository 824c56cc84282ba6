//! The inverse of the processor's rescale and normalisation: pixels the model saw back to 8-bit RGB
//! pictures, for drawing results over `--pixels` inputs (`x = (z·std + mean) / rescale_factor`,
//! rounded and clamped to `0..=255`).
//!
//! Shapes: pixels `(B, 3, H, W)` → `B` pictures of `W × H`.

use candle::{DType, Tensor};
use image::RgbImage;

use crate::preprocess::ProcessorConfig;
use crate::{Error, Result};

/// Normalised pixels `(B, 3, H, W)` back to RGB pictures with the mean, std and rescale factor of
/// `config` (each step only when the config applies it).
///
/// ```
/// use candle::{Device, Tensor};
/// use dinoreg::preprocess::{to_rgb_images, ProcessorConfig};
///
/// let pixels = Tensor::zeros((1, 3, 2, 4), candle::DType::F32, &Device::Cpu)?;
/// let pictures = to_rgb_images(&pixels, &ProcessorConfig::default())?;
/// // Zero is the ImageNet mean: (0.485, 0.456, 0.406) · 255.
/// assert_eq!((pictures[0].width(), pictures[0].height()), (4, 2));
/// assert_eq!(pictures[0].get_pixel(0, 0).0, [124, 116, 104]);
/// # Ok::<(), dinoreg::Error>(())
/// ```
pub fn to_rgb_images(pixels: &Tensor, config: &ProcessorConfig) -> Result<Vec<RgbImage>> {
    let (b, c, h, w) = pixels.dims4().map_err(|_| {
        Error::input(
            "pixels",
            format!("expected (B, 3, H, W), got {:?}", pixels.dims()),
        )
    })?;
    if c != 3 {
        return Err(Error::input(
            "pixels",
            format!("a picture needs 3 channels, got {c}"),
        ));
    }
    let values = pixels
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let to_u8 = |ch: usize, z: f32| {
        let mut v = f64::from(z);
        if config.do_normalize {
            v = v * config.image_std[ch] + config.image_mean[ch];
        }
        if config.do_rescale && config.rescale_factor != 0.0 {
            v /= config.rescale_factor;
        }
        v.round().clamp(0.0, 255.0) as u8
    };
    Ok((0..b)
        .map(|i| {
            let plane = |ch: usize, x: u32, y: u32| {
                values[((i * 3 + ch) * h + y as usize) * w + x as usize]
            };
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                image::Rgb([0, 1, 2].map(|ch| to_u8(ch, plane(ch, x, y))))
            })
        })
        .collect())
}
