//! `DINOv3ViTImageProcessor`'s steps (transformers' torchvision backend), for an
//! [`ImageProcessor`] whose [`ProcessorKind`](super::ProcessorKind) is `Dinov3Vit`:
//!
//! 1. RGB 8-bit `(C, H, W)` → `x = f32(v) · f32(rescale_factor)` (a multiplication in f32, so the
//!    rescale comes first, unlike `BitImageProcessor`);
//! 2. resize to `size` with `F.interpolate(mode="bilinear" | "bicubic", align_corners=False,
//!    antialias=True)` on the floats ([`super::interpolate`]);
//! 3. optional center crop at `top = int((H − h) / 2)`, zero-padded first (torchvision's
//!    `center_crop`) on a side where the crop is larger than the image;
//! 4. `(x − f32(mean)) / f32(std)`.
//!
//! Shapes: the result is `(3, H, W)` f32.

use image::RgbImage;
use ndarray::Array3;

use super::interpolate::{resize_chw, Filter};
use super::processor::ImageProcessor;
use super::resample::Resample;
use crate::{Error, Result};

impl ImageProcessor {
    /// Preprocesses one RGB image as `DINOv3ViTImageProcessor`: (3, H, W).
    pub(crate) fn preprocess_dinov3(&self, image: &RgbImage) -> Result<Array3<f32>> {
        let c = &self.config;
        let (h, w) = (image.height() as usize, image.width() as usize);
        let (h, w) = if c.do_resize {
            let (oh, ow) = c.size.output_size(h as u32, w as u32);
            (oh.max(1) as usize, ow.max(1) as usize)
        } else {
            (h, w)
        };
        // The resized image is the largest buffer: bound it as the BitImageProcessor path does.
        let what = format!(
            "the resized input of a {}x{} image",
            image.width(),
            image.height()
        );
        self.limits.check_output(
            (
                h.min(u32::MAX as usize) as u32,
                w.min(u32::MAX as usize) as u32,
            ),
            &what,
        )?;
        let mut pixels = self.rescaled_resized(image, (h, w));
        let (mut h, mut w) = (h, w);
        if c.do_center_crop {
            let (ch, cw) = (c.crop_size.0 as usize, c.crop_size.1 as usize);
            pixels = center_crop(&pixels, (h, w), (ch, cw));
            (h, w) = (ch, cw);
        }
        self.normalized(pixels, (h, w))
    }

    /// Step 4 on `(3, H, W)` planes, as an array.
    fn normalized(&self, mut pixels: Vec<f32>, (h, w): (usize, usize)) -> Result<Array3<f32>> {
        let c = &self.config;
        if c.do_normalize {
            for (ch, values) in pixels.chunks_exact_mut(h * w).enumerate() {
                let (mean, std) = (c.image_mean[ch] as f32, c.image_std[ch] as f32);
                values.iter_mut().for_each(|v| *v = (*v - mean) / std);
            }
        }
        Array3::from_shape_vec((3, h, w), pixels).map_err(|e| Error::input("image", e.to_string()))
    }

    /// Dense preprocessing's pixels: rescale, resize to `size` (height, width), normalise, no crop.
    pub(crate) fn dense_dinov3(
        &self,
        image: &RgbImage,
        size: (usize, usize),
    ) -> Result<Array3<f32>> {
        let dense = ImageProcessor {
            config: self
                .config
                .clone()
                .with_resize(false)
                .with_center_crop(false),
            ..self.clone()
        };
        let pixels = dense.rescaled_resized(image, size);
        dense.normalized(pixels, size)
    }

    /// Steps 1 and 2: the rescaled image `(3, H, W)`, resized to `size` (height, width) with the
    /// configured filter (antialiased, on floats); unchanged when the size is the image's.
    pub(crate) fn rescaled_resized(&self, image: &RgbImage, size: (usize, usize)) -> Vec<f32> {
        let c = &self.config;
        let (h, w) = (image.height() as usize, image.width() as usize);
        let factor = if c.do_rescale {
            c.rescale_factor as f32
        } else {
            1.0
        };
        let raw = image.as_raw();
        let mut planes = vec![0f32; 3 * h * w];
        for (i, px) in raw.chunks_exact(3).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                planes[ch * h * w + i] = f32::from(v) * factor;
            }
        }
        let filter = match c.resample {
            Resample::Bicubic => Filter::Cubic,
            _ => Filter::Triangle,
        };
        resize_chw(&planes, (3, h, w), size, filter)
    }
}

/// torchvision's `center_crop` of `(3, H, W)` planes to `(3, h, w)`: per side, zero padding
/// `(h − H) // 2` before when the crop is larger, else the window starting at `(H − h) // 2`.
fn center_crop(
    planes: &[f32],
    (height, width): (usize, usize),
    (h, w): (usize, usize),
) -> Vec<f32> {
    let origin = |size: usize, crop: usize| -> i64 {
        if crop > size {
            -(((crop - size) / 2) as i64)
        } else {
            ((size - crop) / 2) as i64
        }
    };
    let (top, left) = (origin(height, h), origin(width, w));
    let mut out = vec![0f32; 3 * h * w];
    for ch in 0..3 {
        for y in 0..h {
            let sy = y as i64 + top;
            if !(0..height as i64).contains(&sy) {
                continue;
            }
            for x in 0..w {
                let sx = x as i64 + left;
                if (0..width as i64).contains(&sx) {
                    out[(ch * h + y) * w + x] =
                        planes[(ch * height + sy as usize) * width + sx as usize];
                }
            }
        }
    }
    out
}
