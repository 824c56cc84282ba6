//! The image processor: file -> RGB -> resize -> center crop -> rescale -> normalise -> (3, H, W) f32.
//!
//! A `DINOv3ViTImageProcessor` config ([`ProcessorKind::Dinov3Vit`]) takes that processor's steps
//! instead (`super::dinov3`). Otherwise mirrors transformers' `BitImageProcessor` (PIL backend,
//! `BitImageProcessorPil` in v5) as the DINOv2 with registers checkpoints ship it:
//! 1. `convert_to_rgb` (see [`crate::io::image`]; transparency composited on white by default, as
//!    transformers v5 does, or dropped with [`AlphaMode::Drop`] as v4 did);
//! 2. PIL resize ([`resize_rgb8`], bit-exact Pillow) to [`Size::output_size`](super::Size::output_size);
//! 3. center crop at `top = (H - h) // 2`, `left = (W - w) // 2` (floor division), zero padding where the
//!    image is smaller than the crop (the image then sits at `ceil((h - H) / 2)`);
//! 4. rescale `f32(f64(x) * rescale_factor)`; 5. normalise in f32 `(x - f32(mean)) / f32(std)`;
//! 6. HWC -> CHW. Batches are decoded and processed in parallel (rayon) and stacked to (B, 3, H, W).

use std::path::Path;

use candle::{Device, Tensor};
use image::{DynamicImage, RgbImage};
use ndarray::{Array3, Array4, Axis};
use rayon::prelude::*;

use super::config::{ProcessorConfig, ProcessorKind};
use super::resample::{resize_rgb8, resize_window_rgb8, Window};
use crate::io::image::{decode_image_noted, to_rgb8, AlphaMode, DecodeLimits, DecodeNote};
use crate::io::npy::array_to_tensor;
use crate::progress::Progress;
use crate::{Error, Result};

/// An image-size error of the processors (`InvalidInput` named `image`) as an [`Error::Image`] naming
/// the file it came from.
pub(crate) fn name_image(e: Error, path: &Path) -> Error {
    match e {
        Error::InvalidInput { name, reason } if name == "image" => Error::Image {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    }
}

/// Tells `progress` the notes of the image at `path`, one [`Progress::note`] each.
pub(crate) fn report_notes(progress: &dyn Progress, path: &Path, notes: &[DecodeNote]) {
    for note in notes {
        progress.note(&note.message(path));
    }
}

/// File name of the preprocessing settings in a model folder.
pub const PREPROCESSOR_CONFIG: &str = "preprocessor_config.json";

/// Turns images into the model's pixel tensors. [`Default`] = the published checkpoints' settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageProcessor {
    /// Resize, crop, rescale and normalisation settings.
    pub config: ProcessorConfig,
    /// Decoding limits against decompression bombs.
    pub limits: DecodeLimits,
    /// What happens to transparency (default: composited on white, as transformers v5).
    pub alpha: AlphaMode,
}

impl ImageProcessor {
    /// A processor with these settings (default limits, transparency composited on white).
    pub fn new(config: ProcessorConfig) -> Self {
        ImageProcessor {
            config,
            ..Default::default()
        }
    }

    /// A processor configured by the `preprocessor_config.json` at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::new(ProcessorConfig::from_file(path)?))
    }

    /// A processor for the model folder `dir`: its `preprocessor_config.json` when it has one, otherwise
    /// the default processor of the generation its `config.json` names (DINOv2's checkpoints'
    /// settings when there is none). A missing folder is an [`Error::Io`].
    pub fn from_model_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            let err = std::io::Error::new(std::io::ErrorKind::NotFound, "model folder not found");
            return Err(Error::io(dir, err));
        }
        let file = dir.join(PREPROCESSOR_CONFIG);
        if file.is_file() {
            Self::from_file(file)
        } else {
            let config = crate::ModelConfig::from_file(dir.join("config.json"));
            Ok(config.map_or_else(|_| Self::default(), |c| c.default_processor()))
        }
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: ProcessorConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces the decoding limits.
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets how transparency is handled.
    pub fn with_alpha(mut self, alpha: AlphaMode) -> Self {
        self.alpha = alpha;
        self
    }

    /// Decodes `path` and converts it to RGB ([`Error::Image`] naming the file on failure).
    ///
    /// What the decoder notices (a 16-bit grayscale PNG, clipped to 255) is dropped here;
    /// [`ImageProcessor::read_with_progress`] tells it to a [`Progress`].
    pub fn read(&self, path: impl AsRef<Path>) -> Result<RgbImage> {
        self.read_with_progress(path, &())
    }

    /// [`ImageProcessor::read`], telling `progress` what the decoder noticed about the image as
    /// [`Progress::note`]s (a [`DecodeNote::message`], such as the warning about a 16-bit grayscale
    /// PNG), from the one reading of the file.
    pub fn read_with_progress(
        &self,
        path: impl AsRef<Path>,
        progress: &dyn Progress,
    ) -> Result<RgbImage> {
        let path = path.as_ref();
        let (image, notes) = self.read_noted(path)?;
        report_notes(progress, path, &notes);
        Ok(image)
    }

    /// Decodes `path` to RGB, with what the decoder noticed.
    fn read_noted(&self, path: &Path) -> Result<(RgbImage, Vec<DecodeNote>)> {
        let decoded = decode_image_noted(path, &self.limits)?;
        Ok((to_rgb8(&decoded.image, self.alpha), decoded.notes))
    }

    /// The resize step alone (a copy when `do_resize` is off or the size does not change).
    pub fn resize(&self, image: &RgbImage) -> Result<RgbImage> {
        let c = &self.config;
        if !c.do_resize {
            return Ok(image.clone());
        }
        let (h, w) = c.size.output_size(image.height(), image.width());
        resize_rgb8(image, w.max(1), h.max(1), c.resample)
    }

    /// Center crop (when on), rescale and normalise of an already resized image: (3, H, W).
    pub fn to_pixels(&self, image: &RgbImage) -> Array3<f32> {
        let (h, w) = if self.config.do_center_crop {
            self.config.crop_size
        } else {
            (image.height(), image.width())
        };
        let top = (i64::from(image.height()) - i64::from(h)).div_euclid(2);
        let left = (i64::from(image.width()) - i64::from(w)).div_euclid(2);
        self.rescale_normalize(image, (top, left), (h as usize, w as usize))
    }

    /// Rescale and normalise the `size` window of `image` whose top-left corner is at `origin` (image
    /// pixels; may be negative or reach past the image, where the 8-bit value is 0, as HF's crop pads).
    pub(crate) fn rescale_normalize(
        &self,
        image: &RgbImage,
        origin: (i64, i64),
        size: (usize, usize),
    ) -> Array3<f32> {
        let c = &self.config;
        let (ih, iw) = (i64::from(image.height()), i64::from(image.width()));
        let raw = image.as_raw();
        let mut table = [[0f32; 256]; 3];
        for (ch, row) in table.iter_mut().enumerate() {
            let (mean, std) = (c.image_mean[ch] as f32, c.image_std[ch] as f32);
            for (v, out) in row.iter_mut().enumerate() {
                let mut x = if c.do_rescale {
                    (v as f64 * c.rescale_factor) as f32
                } else {
                    v as f32
                };
                if c.do_normalize {
                    x = (x - mean) / std;
                }
                *out = x;
            }
        }
        Array3::from_shape_fn((3, size.0, size.1), |(ch, y, x)| {
            let (sy, sx) = (y as i64 + origin.0, x as i64 + origin.1);
            let v = if (0..ih).contains(&sy) && (0..iw).contains(&sx) {
                raw[((sy * iw + sx) * 3) as usize + ch]
            } else {
                0
            };
            table[ch][v as usize]
        })
    }

    /// Preprocesses one RGB image: (3, H, W).
    ///
    /// With the center crop on, only the part of the resized image the crop keeps is computed
    /// ([`resize_window_rgb8`], bit-identical to resizing everything and cropping), so work and memory
    /// follow the crop size whatever the image's aspect ratio. The output is refused beyond
    /// [`DecodeLimits::max_output_pixels`].
    pub fn preprocess(&self, image: &RgbImage) -> Result<Array3<f32>> {
        self.config.validate()?;
        if self.config.kind == ProcessorKind::Dinov3Vit {
            return self.preprocess_dinov3(image);
        }
        let c = &self.config;
        let (ih, iw) = (image.height(), image.width());
        let (rh, rw) = if c.do_resize {
            let (h, w) = c.size.output_size(ih, iw);
            (h.max(1), w.max(1))
        } else {
            (ih, iw)
        };
        let (oh, ow) = if c.do_center_crop {
            c.crop_size
        } else {
            (rh, rw)
        };
        let what = format!("the model input of a {iw}x{ih} image");
        self.limits.check_output((oh, ow), &what)?;
        // The crop's origin in the resized image, and the part of the resized image inside the crop.
        let top = (i64::from(rh) - i64::from(oh)).div_euclid(2);
        let left = (i64::from(rw) - i64::from(ow)).div_euclid(2);
        if !c.do_resize {
            return Ok(self.rescale_normalize(image, (top, left), (oh as usize, ow as usize)));
        }
        let span = |origin: i64, len: u32, size: u32| {
            let start = origin.clamp(0, i64::from(size));
            let end = (origin + i64::from(len)).clamp(start, i64::from(size));
            (start as u32, (end - start) as u32)
        };
        let ((y, height), (x, width)) = (span(top, oh, rh), span(left, ow, rw));
        let window = Window {
            top: y,
            left: x,
            height,
            width,
        };
        let kept = resize_window_rgb8(image, rw, rh, c.resample, window)?;
        let origin = (top - i64::from(y), left - i64::from(x));
        Ok(self.rescale_normalize(&kept, origin, (oh as usize, ow as usize)))
    }

    /// Preprocesses one decoded image of any colour type: (3, H, W).
    pub fn preprocess_dynamic(&self, image: &DynamicImage) -> Result<Array3<f32>> {
        self.preprocess(&to_rgb8(image, self.alpha))
    }

    /// Decodes and preprocesses the image at `path`: (3, H, W). An image that preprocesses to more
    /// than the output limit is an [`Error::Image`] naming the file.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Array3<f32>> {
        Ok(self.load_noted(path.as_ref())?.0)
    }

    /// [`ImageProcessor::load`], with what the decoder noticed (for a caller that reports it later,
    /// from another thread than the decoding one).
    pub(crate) fn load_noted(&self, path: &Path) -> Result<(Array3<f32>, Vec<DecodeNote>)> {
        let (image, notes) = self.read_noted(path)?;
        let pixels = self.preprocess(&image).map_err(|e| name_image(e, path))?;
        Ok((pixels, notes))
    }

    /// Decodes and preprocesses the images in parallel: (B, 3, H, W). All must come out the same size
    /// (always the case with the center crop on).
    pub fn load_batch<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Result<Array4<f32>> {
        if paths.is_empty() {
            return Err(Error::input("images", "no image given"));
        }
        let arrays: Vec<Array3<f32>> = paths
            .par_iter()
            .map(|p| self.load(p))
            .collect::<Result<_>>()?;
        let first = arrays[0].dim();
        if let Some(i) = arrays.iter().position(|a| a.dim() != first) {
            let (h, w) = (arrays[i].dim().1, arrays[i].dim().2);
            return Err(Error::input(
                "images",
                format!(
                    "{} comes out {h}x{w} but {} comes out {}x{}; turn the center crop on to batch images of different sizes",
                    paths[i].as_ref().display(),
                    paths[0].as_ref().display(),
                    first.1,
                    first.2
                ),
            ));
        }
        let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
        ndarray::stack(Axis(0), &views).map_err(|e| Error::input("images", e.to_string()))
    }

    /// [`ImageProcessor::load_batch`] as a candle tensor (B, 3, H, W) f32 on `device`.
    pub fn load_batch_tensor<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
        device: &Device,
    ) -> Result<Tensor> {
        array_to_tensor(self.load_batch(paths)?.into_dyn(), device)
    }

    /// The (1, 3, H, W) f32 tensor the model sees for the image at `path` (what `dinoreg preprocess`
    /// writes).
    pub fn pixels(&self, path: impl AsRef<Path>, device: &Device) -> Result<Tensor> {
        let array = self.load(path)?.insert_axis(Axis(0));
        array_to_tensor(array.into_dyn(), device)
    }
}
