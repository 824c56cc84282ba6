//! Label maps for segmentation training: PNG files of class indices, paired with their images by
//! file stem (`a.jpg` ↔ `a.png`).
//!
//! A label map is read at its stored bit depth:
//! - 8-bit grayscale, with or without alpha (`L`, `LA`): each value is a class index;
//! - 16-bit grayscale, with or without alpha: each 16-bit value is a class index (not scaled);
//! - palette or RGB(A): each colour is a class colour, looked up in the given colours (a classes
//!   file), else in the PASCAL VOC colour map (whose entry 255 is VOC's void colour).
//!
//! Alpha is ignored. 255 ([`IGNORE_INDEX`]) marks pixels to ignore, as in mmseg. Values are
//! row-major `u32`, `(H, W)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle::{Device, Tensor};
use image::DynamicImage;

use crate::heads::segmentation::{pascal_colormap, IGNORE_INDEX};
use crate::io::image::{decode_image, decode_image_bytes, DecodeLimits};
use crate::pipelines::input::expand_images;
use crate::{Error, Result};

/// How a label map was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelEncoding {
    /// 8-bit grayscale values.
    Gray8,
    /// 16-bit grayscale values.
    Gray16,
    /// Class colours (palette or RGB).
    Colors,
    /// Class indices given in memory ([`LabelMap::from_values`]).
    Values,
}

/// A decoded label map: class indices `(H, W)`, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    values: Vec<u32>,
    size: (usize, usize),
    encoding: LabelEncoding,
}

impl LabelMap {
    /// Reads a label PNG (see the module documentation); `colors` are the class colours, label order.
    pub fn read(path: impl AsRef<Path>, colors: Option<&[[u8; 3]]>) -> Result<Self> {
        let path = path.as_ref();
        let image = decode_image(path, &DecodeLimits::default())?;
        Self::from_image(path, &image, colors)
    }

    /// Decodes a label map from the bytes of an image file under `limits`; `path` names it in
    /// errors. [`LabelMap::read`] is this with the file's bytes and the default limits.
    pub fn decode(
        path: impl AsRef<Path>,
        bytes: &[u8],
        limits: &DecodeLimits,
        colors: Option<&[[u8; 3]]>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let image = decode_image_bytes(path, bytes, limits)?;
        Self::from_image(path, &image, colors)
    }

    /// The class indices of a decoded label image (see the module documentation).
    fn from_image(path: &Path, image: &DynamicImage, colors: Option<&[[u8; 3]]>) -> Result<Self> {
        let size = (image.height() as usize, image.width() as usize);
        let (values, encoding) = match image {
            DynamicImage::ImageLuma8(g) => (gray(g.as_raw(), 1), LabelEncoding::Gray8),
            DynamicImage::ImageLumaA8(g) => (gray(g.as_raw(), 2), LabelEncoding::Gray8),
            DynamicImage::ImageLuma16(g) => (gray(g.as_raw(), 1), LabelEncoding::Gray16),
            DynamicImage::ImageLumaA16(g) => (gray(g.as_raw(), 2), LabelEncoding::Gray16),
            _ => (colour_labels(path, image, colors)?, LabelEncoding::Colors),
        };
        Ok(Self {
            values,
            size,
            encoding,
        })
    }

    /// A map from values `(H, W)`, row-major.
    pub fn from_values(values: Vec<u32>, size: (usize, usize)) -> Result<Self> {
        if values.len() != size.0 * size.1 {
            return Err(Error::input(
                "label map",
                format!("{} values for {}x{}", values.len(), size.0, size.1),
            ));
        }
        Ok(Self {
            values,
            size,
            encoding: LabelEncoding::Values,
        })
    }

    /// The class indices, row-major.
    pub fn values(&self) -> &[u32] {
        &self.values
    }

    /// `(H, W)`.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// How the file stored it.
    pub fn encoding(&self) -> LabelEncoding {
        self.encoding
    }

    /// The largest label that is not [`IGNORE_INDEX`].
    pub fn largest_label(&self) -> Option<u32> {
        self.values
            .iter()
            .copied()
            .filter(|&v| v != IGNORE_INDEX)
            .max()
    }

    /// The first label that is neither below `num_classes` nor [`IGNORE_INDEX`].
    pub fn label_outside(&self, num_classes: usize) -> Option<u32> {
        self.values
            .iter()
            .copied()
            .find(|&v| v != IGNORE_INDEX && v as usize >= num_classes)
    }

    /// Nearest-neighbour resize to `size = (H, W)` (OpenCV's `INTER_NEAREST`, as mmseg resizes
    /// labels).
    pub fn resize_nearest(&self, size: (usize, usize)) -> Self {
        let from = self.size;
        if from == size || from.0 == 0 || from.1 == 0 {
            return self.clone();
        }
        let src = |o: usize, n_out: usize, n_in: usize| ((o * n_in) / n_out).min(n_in - 1);
        let mut values = Vec::with_capacity(size.0 * size.1);
        for y in 0..size.0 {
            let row = src(y, size.0, from.0) * from.1;
            values.extend((0..size.1).map(|x| self.values[row + src(x, size.1, from.1)]));
        }
        Self {
            values,
            size,
            encoding: self.encoding,
        }
    }

    /// The labels as a `(H, W)` u32 tensor.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_vec(self.values.clone(), self.size, device)?)
    }
}

/// The gray channel of interleaved samples with `step` channels (1: gray, 2: gray + alpha).
fn gray<T: Copy + Into<u32>>(raw: &[T], step: usize) -> Vec<u32> {
    raw.iter().step_by(step).map(|&v| v.into()).collect()
}

/// Class indices of a colour label map.
fn colour_labels(
    path: &Path,
    image: &DynamicImage,
    colors: Option<&[[u8; 3]]>,
) -> Result<Vec<u32>> {
    let mut table: HashMap<[u8; 3], u32> = HashMap::new();
    for (i, c) in pascal_colormap(256).into_iter().enumerate().rev() {
        table.insert(c, i as u32);
    }
    for (i, c) in colors.unwrap_or_default().iter().enumerate().rev() {
        table.insert(*c, i as u32);
    }
    image
        .to_rgb8()
        .pixels()
        .map(|p| {
            table.get(&p.0).copied().ok_or_else(|| {
                let [r, g, b] = p.0;
                Error::input(
                    path.display().to_string(),
                    format!("colour #{r:02x}{g:02x}{b:02x} is no class colour (give a grayscale label map, or class colours)"),
                )
            })
        })
        .collect()
}

/// An image file and its label map file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledImage {
    /// The image.
    pub image: PathBuf,
    /// Its label map (PNG).
    pub labels: PathBuf,
}

/// Every image under `images` (folders expanded, sorted) with the PNG of the same stem in `labels`;
/// an image without one is an error naming both.
pub fn pair_labeled_images(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
) -> Result<Vec<LabeledImage>> {
    let (images, labels) = (images.as_ref(), labels.as_ref());
    for dir in [images, labels] {
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "expected a folder (of images, and of label maps)",
                ),
            ));
        }
    }
    let mut by_stem: HashMap<String, PathBuf> = HashMap::new();
    for entry in std::fs::read_dir(labels).map_err(|e| Error::io(labels, e))? {
        let path = entry.map_err(|e| Error::io(labels, e))?.path();
        let png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if let (true, Some(stem)) = (png, path.file_stem()) {
            by_stem.insert(stem.to_string_lossy().into_owned(), path);
        }
    }
    expand_images(&[images])?
        .into_iter()
        .map(|image| {
            let stem = image
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match by_stem.get(&stem) {
                Some(labels) => Ok(LabeledImage {
                    image,
                    labels: labels.clone(),
                }),
                None => Err(Error::input(
                    image.display().to_string(),
                    format!(
                        "has no label map {}",
                        labels.join(format!("{stem}.png")).display()
                    ),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_classes() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("voc.png");
        // VOC background, aeroplane, and the void colour.
        let pixels = [[0, 0, 0], [128, 0, 0], [224, 224, 192]];
        let image = image::RgbImage::from_fn(3, 1, |x, _| image::Rgb(pixels[x as usize]));
        image
            .save(&path)
            .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        let map = LabelMap::read(&path, None)?;
        assert_eq!(
            (map.values(), map.encoding()),
            (&[0, 1, 255][..], LabelEncoding::Colors)
        );
        // A classes file's colours come first.
        let map = LabelMap::read(&path, Some(&[[128, 0, 0]]))?;
        assert_eq!(map.values(), [0, 0, 255]);
        let odd = dir.path().join("odd.png");
        image::RgbImage::from_pixel(1, 1, image::Rgb([1, 2, 3]))
            .save(&odd)
            .map_err(|e| Error::io(&odd, std::io::Error::other(e)))?;
        let err = LabelMap::read(&odd, None).unwrap_err();
        assert!(err.to_string().contains("#010203"), "{err}");
        assert!(err.to_string().contains("odd.png"), "{err}");
        Ok(())
    }

    #[test]
    fn nearest_resize_repeats_and_picks() -> Result<()> {
        let map = LabelMap::from_values(vec![1, 2, 3, 4], (2, 2))?;
        assert_eq!(
            map.resize_nearest((4, 4)).values(),
            [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]
        );
        assert_eq!(map.resize_nearest((1, 1)).values(), [1]);
        assert!(LabelMap::from_values(vec![1, 2, 3], (2, 2)).is_err());
        assert_eq!(map.label_outside(4), Some(4));
        assert_eq!(map.largest_label(), Some(4));
        Ok(())
    }
}
