//! Dense-task preprocessing: keep the aspect ratio (no center crop) and make both sides a multiple of
//! the patch size, by resizing or by padding, with the metadata to map outputs back to the image.
//!
//! There is no HF counterpart; the steps reuse the processor's pieces: RGB conversion, the PIL resize
//! with the configured filter, rescale and normalise exactly as [`ImageProcessor`] (for a DINOv3
//! processor its own order: rescale, antialiased resize of the floats, normalise). Padding is added after
//! normalisation with 0.0, i.e. the mean colour (as DINOv2's `CenterPadding` and HF's `pad` of normalised
//! pixels do).
//!
//! Output: (3, H, W) f32 with H and W multiples of the patch size, plus [`DenseMeta`].

use std::path::Path;

use candle::{Device, Tensor};
use image::RgbImage;
use ndarray::{s, Array3, Axis};

use super::config::{ProcessorKind, Size};
use super::processor::{name_image, ImageProcessor};
use super::resample::resize_rgb8;
use crate::io::npy::array_to_tensor;
use crate::{Error, Result};

/// Where the padding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PadAnchor {
    /// Split evenly, the extra row/column at the bottom/right (DINOv2 `CenterPadding`).
    #[default]
    Center,
    /// All padding at the bottom and right (HF `pad`): the image stays at the top-left corner.
    BottomRight,
}

/// How sizes are made multiples of the patch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Multiple {
    /// Resize each side to the nearest multiple (at least one patch); the aspect ratio moves slightly.
    Resize,
    /// Pad each side up to the next multiple.
    Pad(PadAnchor),
}

impl Default for Multiple {
    fn default() -> Self {
        Multiple::Pad(PadAnchor::Center)
    }
}

/// Options of [`ImageProcessor::dense`]. Default: keep the resolution, patch 14 (DINOv2's; set 16
/// for DINOv3: every pipeline replaces it with its model's patch size), center padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseOptions {
    /// Resize so that the short side is this many pixels first (HF shortest-edge arithmetic); `None`
    /// keeps the image's size.
    pub short_side: Option<u32>,
    /// The model's patch size.
    pub patch_size: u32,
    /// Resize or pad to a multiple of the patch size.
    pub multiple: Multiple,
}

impl Default for DenseOptions {
    fn default() -> Self {
        DenseOptions {
            short_side: None,
            patch_size: 14,
            multiple: Multiple::default(),
        }
    }
}

impl DenseOptions {
    /// Sets the target short side (`None` keeps the size).
    pub fn with_short_side(mut self, short_side: Option<u32>) -> Self {
        self.short_side = short_side;
        self
    }

    /// Sets the patch size.
    pub fn with_patch_size(mut self, patch_size: u32) -> Self {
        self.patch_size = patch_size;
        self
    }

    /// Sets how sizes become multiples of the patch size.
    pub fn with_multiple(mut self, multiple: Multiple) -> Self {
        self.multiple = multiple;
        self
    }
}

/// Padding in pixels on each side of the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Padding {
    /// Rows above the image.
    pub top: u32,
    /// Rows below the image.
    pub bottom: u32,
    /// Columns left of the image.
    pub left: u32,
    /// Columns right of the image.
    pub right: u32,
}

/// How a dense input relates to the original image. Sizes are (height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseMeta {
    /// The decoded image's size.
    pub original: (u32, u32),
    /// The size after resizing (equal to `original` when nothing was resized).
    pub resized: (u32, u32),
    /// The padding around the resized image.
    pub padding: Padding,
    /// The model input's size: `resized` plus `padding`, multiples of the patch size.
    pub input: (u32, u32),
    /// The patch size the input was made for.
    pub patch_size: u32,
}

impl DenseMeta {
    /// The patch grid (rows, columns) of the input.
    pub fn grid(&self) -> (u32, u32) {
        (
            self.input.0 / self.patch_size,
            self.input.1 / self.patch_size,
        )
    }

    /// The region of the input holding the image: (top, left, height, width). Crop an output at the input
    /// resolution to it, then resize it to `original`, to map it back onto the image.
    pub fn content_box(&self) -> (u32, u32, u32, u32) {
        (
            self.padding.top,
            self.padding.left,
            self.resized.0,
            self.resized.1,
        )
    }
}

impl DenseOptions {
    /// The (resized, padding, input) plan for an image of `original` (height, width).
    pub fn plan(&self, original: (u32, u32)) -> Result<DenseMeta> {
        let p = self.patch_size;
        if p == 0 {
            return Err(Error::option("patch_size", "must be at least 1"));
        }
        if self.short_side == Some(0) {
            return Err(Error::option("short_side", "must be at least 1 (or none)"));
        }
        let (h, w) = match self.short_side {
            Some(s) => Size::ShortestEdge(s).output_size(original.0, original.1),
            None => original,
        };
        let (h, w) = (h.max(1), w.max(1));
        if h.max(w) > u32::MAX - p {
            return Err(Error::input(
                "image",
                format!(
                    "a {}x{} image resizes to {h}x{w}, too large",
                    original.0, original.1
                ),
            ));
        }
        let (resized, padding) = match self.multiple {
            Multiple::Resize => {
                let round = |x: u32| (((x + p / 2) / p) * p).max(p);
                ((round(h), round(w)), Padding::default())
            }
            Multiple::Pad(anchor) => {
                let (ph, pw) = (h.div_ceil(p) * p - h, w.div_ceil(p) * p - w);
                let padding = match anchor {
                    PadAnchor::Center => Padding {
                        top: ph / 2,
                        bottom: ph - ph / 2,
                        left: pw / 2,
                        right: pw - pw / 2,
                    },
                    PadAnchor::BottomRight => Padding {
                        top: 0,
                        bottom: ph,
                        left: 0,
                        right: pw,
                    },
                };
                ((h, w), padding)
            }
        };
        Ok(DenseMeta {
            original,
            resized,
            padding,
            input: (
                resized.0 + padding.top + padding.bottom,
                resized.1 + padding.left + padding.right,
            ),
            patch_size: p,
        })
    }
}

impl ImageProcessor {
    /// Dense preprocessing of an RGB image: (3, H, W) with H, W multiples of the patch size, and the
    /// metadata to map outputs back. The crop and resize settings of the config are not used; its
    /// filter, rescale and normalisation are.
    pub fn dense(
        &self,
        image: &RgbImage,
        options: &DenseOptions,
    ) -> Result<(Array3<f32>, DenseMeta)> {
        self.config.validate()?;
        let meta = options.plan((image.height(), image.width()))?;
        let what = format!(
            "the dense input of a {}x{} image{}",
            image.width(),
            image.height(),
            options
                .short_side
                .map_or(String::new(), |s| format!(", short side {s}"))
        );
        self.limits.check_output(meta.input, &what)?;
        let size = (meta.resized.0 as usize, meta.resized.1 as usize);
        let pixels = if self.config.kind == ProcessorKind::Dinov3Vit {
            self.dense_dinov3(image, size)?
        } else {
            let resized = resize_rgb8(image, meta.resized.1, meta.resized.0, self.config.resample)?;
            self.rescale_normalize(&resized, (0, 0), size)
        };
        let (t, l) = (meta.padding.top as usize, meta.padding.left as usize);
        let mut out = Array3::<f32>::zeros((3, meta.input.0 as usize, meta.input.1 as usize));
        out.slice_mut(s![.., t..t + pixels.dim().1, l..l + pixels.dim().2])
            .assign(&pixels);
        Ok((out, meta))
    }

    /// Decodes the image at `path` and preprocesses it for a dense task: a (1, 3, H, W) tensor on
    /// `device` and its [`DenseMeta`].
    pub fn dense_pixels(
        &self,
        path: impl AsRef<Path>,
        options: &DenseOptions,
        device: &Device,
    ) -> Result<(Tensor, DenseMeta)> {
        let path = path.as_ref();
        let (array, meta) = self
            .dense(&self.read(path)?, options)
            .map_err(|e| name_image(e, path))?;
        let tensor = array_to_tensor(array.insert_axis(Axis(0)).into_dyn(), device)?;
        Ok((tensor, meta))
    }
}
