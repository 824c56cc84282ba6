//! The inverse of the processor's rescale and normalisation: normalised pixels `(B, 3, H, W)` back to
//! RGB8 pictures (for drawing results over what the model saw, e.g. a segmentation overlay of a
//! `--pixels` input). Resizing and cropping are not undone.

use candle::{DType, Tensor};
use image::RgbImage;

use super::processor::ImageProcessor;
use crate::{Error, Result};

impl ImageProcessor {
    /// Pictures `(H, W)` of normalised pixels `(B, 3, H, W)`: `x · std + mean`, divided by the rescale
    /// factor, rounded and clamped to `0..=255`, each step only when the config applies it.
    ///
    /// ```
    /// # fn main() -> dinoreg::Result<()> {
    /// use dinoreg::{ImageProcessor, ProcessorConfig};
    /// let processor = ImageProcessor::new(
    ///     ProcessorConfig::default().with_resize(false).with_center_crop(false),
    /// );
    /// let image = image::RgbImage::from_pixel(4, 2, image::Rgb([10, 128, 250]));
    /// let array = processor.to_pixels(&image).insert_axis(ndarray::Axis(0));
    /// let pixels = dinoreg::io::npy::array_to_tensor(array.into_dyn(), &candle::Device::Cpu)?;
    /// assert_eq!(processor.to_rgb_images(&pixels)?[0], image);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_rgb_images(&self, pixels: &Tensor) -> Result<Vec<RgbImage>> {
        let (b, c, h, w) = pixels.dims4().map_err(|_| {
            Error::input(
                "pixel_values",
                format!("shape {:?}, expected (B, 3, H, W)", pixels.dims()),
            )
        })?;
        if c != 3 {
            return Err(Error::input(
                "pixel_values",
                format!("{c} channels; an RGB picture needs 3"),
            ));
        }
        let config = &self.config;
        let values = pixels
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let plane = h * w;
        let value = |i: usize, ch: usize, p: usize| {
            let mut v = f64::from(values[(i * 3 + ch) * plane + p]);
            if config.do_normalize {
                v = v * config.image_std[ch] + config.image_mean[ch];
            }
            if config.do_rescale && config.rescale_factor != 0.0 {
                v /= config.rescale_factor;
            }
            v.round().clamp(0.0, 255.0) as u8
        };
        (0..b)
            .map(|i| {
                let raw: Vec<u8> = (0..plane)
                    .flat_map(|p| (0..3).map(move |ch| (p, ch)))
                    .map(|(p, ch)| value(i, ch, p))
                    .collect();
                RgbImage::from_raw(w as u32, h as u32, raw).ok_or_else(|| {
                    Error::input(
                        "pixel_values",
                        format!("{h}x{w} is too large for a picture"),
                    )
                })
            })
            .collect()
    }
}
