//! The result of the segmentation pipeline: logits `(K, H, W)` of one input with its RGB picture and
//! the class names and colours; the predicted class of every pixel (argmax), the share of each class
//! present (the legend), the overlay picture (class colours blended over the image, a legend panel
//! on the right), and writing itself as `.npy` (logits) or PNG (overlay). Several maps of one size
//! stack into `(B, K, H, W)`.

use std::path::Path;

use candle::{DType, Tensor};
use image::RgbImage;

use crate::heads::segmentation::{legend_entries, overlay, ClassSet, LegendEntry, OverlayOptions};
use crate::io::npy::write_tensor;
use crate::io::output::write_with;
use crate::pipelines::batch::stack_results;
use crate::pipelines::input::InputName;
use crate::{Error, Result};

/// One segmented input.
#[derive(Debug, Clone)]
pub struct SegmentationMap {
    name: InputName,
    logits: Tensor,
    image: RgbImage,
    classes: ClassSet,
}

impl SegmentationMap {
    /// A map from `logits` `(K, H, W)` (converted to f32) over `image` `(H, W)` with `K` classes.
    pub fn new(
        name: InputName,
        logits: Tensor,
        image: RgbImage,
        classes: ClassSet,
    ) -> Result<Self> {
        let (k, h, w) = logits.dims3().map_err(|_| {
            Error::input(
                "logits",
                format!("shape {:?}, expected (K, H, W)", logits.dims()),
            )
        })?;
        if (image.height() as usize, image.width() as usize) != (h, w) {
            return Err(Error::input(
                "image",
                format!(
                    "{}x{} but the logits are {h}x{w}",
                    image.height(),
                    image.width()
                ),
            ));
        }
        classes.check_len(k)?;
        Ok(Self {
            name,
            logits: logits.to_dtype(DType::F32)?,
            image,
            classes,
        })
    }

    /// The same map under another name.
    pub fn with_name(mut self, name: InputName) -> Self {
        self.name = name;
        self
    }

    /// The input it came from.
    pub fn name(&self) -> &InputName {
        &self.name
    }

    /// The logits `(K, H, W)`, f32.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// The picture the classes are drawn over.
    pub fn image(&self) -> &RgbImage {
        &self.image
    }

    /// The class names and colours.
    pub fn classes(&self) -> &ClassSet {
        &self.classes
    }

    /// `(H, W)`.
    pub fn size(&self) -> (usize, usize) {
        let d = self.logits.dims();
        (d[1], d[2])
    }

    /// The predicted class of every pixel `(H, W)`, u32.
    pub fn label_map(&self) -> Result<Tensor> {
        Ok(self.logits.argmax(0)?)
    }

    /// The predicted class of every pixel, row-major.
    pub fn labels(&self) -> Result<Vec<u32>> {
        Ok(self.label_map()?.flatten_all()?.to_vec1::<u32>()?)
    }

    /// The classes present with their share of the pixels, largest first (the legend).
    pub fn coverage(&self) -> Result<Vec<LegendEntry>> {
        Ok(legend_entries(&self.labels()?, &self.classes))
    }

    /// The class colours blended over the picture with opacity `alpha` (in `[0, 1]`), and a legend
    /// panel of the classes present whose text grows with the picture.
    pub fn overlay(&self, alpha: f32) -> Result<RgbImage> {
        self.overlay_with(&OverlayOptions::default().with_alpha(alpha))
    }

    /// The class colours blended over the picture as `opts` asks: without a legend the picture has
    /// the image's size; with one, a panel of the classes present (those of at least 0.05 %) is added
    /// on the right. The legend's text scale follows the picture's size.
    pub fn overlay_with(&self, opts: &OverlayOptions) -> Result<RgbImage> {
        let (h, w) = self.size();
        let opts = (*opts).with_text_scale((h.max(w) / 256).clamp(2, 6));
        let canvas = overlay(
            self.image.as_raw(),
            (h, w),
            &self.labels()?,
            &self.classes,
            &opts,
        )?;
        RgbImage::from_raw(canvas.width as u32, canvas.height as u32, canvas.data).ok_or_else(
            || {
                Error::input(
                    "overlay",
                    format!(
                        "{}x{} is too large for a picture",
                        canvas.height, canvas.width
                    ),
                )
            },
        )
    }

    /// Writes [`SegmentationMap::overlay`] as a PNG, atomically.
    pub fn write_png(&self, path: impl AsRef<Path>, alpha: f32) -> Result<()> {
        self.write_png_with(path, &OverlayOptions::default().with_alpha(alpha))
    }

    /// Writes [`SegmentationMap::overlay_with`] as a PNG, atomically.
    pub fn write_png_with(&self, path: impl AsRef<Path>, opts: &OverlayOptions) -> Result<()> {
        let path = path.as_ref();
        let picture = self.overlay_with(opts)?;
        write_with(path, |tmp| {
            picture
                .save_with_format(tmp, image::ImageFormat::Png)
                .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
        })
    }

    /// Writes the logits `(K, H, W)` as a float32 `.npy`, atomically.
    pub fn write_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        write_tensor(path, &self.logits)
    }

    /// Maps of one size stacked into logits `(B, K, H, W)`; maps of different sizes are an error
    /// naming two.
    pub fn stack(maps: &[Self]) -> Result<Tensor> {
        stack_results(
            "segmentation maps",
            maps.iter().map(|m| (&m.name, &m.logits)),
        )
    }
}
