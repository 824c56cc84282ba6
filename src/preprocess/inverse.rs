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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::npy::array_to_tensor;
    use crate::preprocess::ImageProcessor;

    #[test]
    fn normalised_pixels_come_back_to_their_image() {
        let image = RgbImage::from_fn(7, 5, |x, y| {
            image::Rgb([(x * 37) as u8, (y * 51) as u8, (x * y * 13) as u8])
        });
        let config = ProcessorConfig::default()
            .with_center_crop(false)
            .with_resize(false);
        let processor = ImageProcessor::new(config);
        let array = processor.to_pixels(&image).insert_axis(ndarray::Axis(0));
        assert_eq!(array.dim(), (1, 3, 5, 7));
        let pixels = array_to_tensor(array.into_dyn(), &candle::Device::Cpu).unwrap();
        let back = to_rgb_images(&pixels, &processor.config).unwrap();
        assert_eq!(back.len(), 1);
        assert!(back[0] == image, "the round trip changed pixels");
    }

    #[test]
    fn a_wrong_shape_is_an_error() {
        let config = ProcessorConfig::default();
        let gray = Tensor::zeros((1, 1, 2, 2), DType::F32, &candle::Device::Cpu).unwrap();
        assert!(to_rgb_images(&gray, &config).is_err());
        let flat = Tensor::zeros((3, 2, 2), DType::F32, &candle::Device::Cpu).unwrap();
        assert!(to_rgb_images(&flat, &config).is_err());
    }
}
