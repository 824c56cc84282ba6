//! The image the heavy benchmarks run on: a file resized to the benchmark's size, or a synthetic
//! picture (smooth gradients and a few solid shapes, so that the heads see some structure), and its
//! ImageNet-normalised pixels.

use std::path::Path;

use anyhow::Context;
use candle::{Device, Tensor};
use dinoreg::preprocess::{IMAGENET_MEAN, IMAGENET_STD};
use dinoreg::{ImageProcessor, ProcessorConfig};
use image::{imageops, Rgb, RgbImage};

/// `path` resized to `(height, width)`, or the synthetic picture of that size.
pub fn bench_image(
    path: Option<&Path>,
    (height, width): (usize, usize),
) -> anyhow::Result<RgbImage> {
    let (h, w) = (height as u32, width as u32);
    match path {
        Some(p) => {
            let rgb = ImageProcessor::new(ProcessorConfig::default())
                .read(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Ok(imageops::resize(&rgb, w, h, imageops::FilterType::Triangle))
        }
        None => Ok(synthetic(h, w)),
    }
}

/// Gradients with a disc and a bar, deterministic.
fn synthetic(h: u32, w: u32) -> RgbImage {
    let (cy, cx, r) = (h as f32 * 0.45, w as f32 * 0.4, h.min(w) as f32 * 0.25);
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let (dy, dx) = (y as f32 - cy, x as f32 - cx);
        if dx * dx + dy * dy < r * r {
            Rgb([200, 60, 40])
        } else if fx > 0.7 && fx < 0.8 {
            Rgb([30, 40, 160])
        } else {
            Rgb([(255.0 * fx) as u8, (255.0 * fy) as u8, 128])
        }
    })
}

/// The image at its own size, normalised with ImageNet's mean and std, `(1, 3, H, W)`.
pub fn normalised_pixels(rgb: &RgbImage, device: &Device) -> anyhow::Result<Tensor> {
    let processor = ImageProcessor::new(
        ProcessorConfig::default()
            .with_resize(false)
            .with_center_crop(false)
            .with_mean_std(IMAGENET_MEAN, IMAGENET_STD),
    );
    let array = processor.to_pixels(rgb);
    let (c, h, w) = array.dim();
    let values: Vec<f32> = array.iter().copied().collect();
    Ok(Tensor::from_vec(values, (1, c, h, w), device)?)
}
