//! What the picture pipelines ([`PcaPipeline`](super::PcaPipeline),
//! [`AttentionPipeline`](super::AttentionPipeline)) share: a backbone, its processor, and dense
//! inputs for pictures (aspect kept, short side 448 by default, sides rounded to the nearest
//! multiple of the patch size, no padding tokens in the statistics).

use std::path::Path;

use candle::Tensor;
use image::RgbImage;

use crate::model::{DinoModel, LoadOptions, Vit};
use crate::preprocess::{DenseOptions, ImageProcessor};
use crate::viz::{picture_options, DenseImage};
use crate::Result;

/// A backbone and how images become its dense picture inputs.
#[derive(Debug)]
pub(crate) struct PictureInput {
    model: Box<dyn Vit>,
    processor: ImageProcessor,
    dense: DenseOptions,
}

impl PictureInput {
    /// Loads a model of either generation with its processor.
    pub(crate) fn from_pretrained(
        source: &str,
        short_side: Option<u32>,
        load: &LoadOptions,
    ) -> Result<Self> {
        let pretrained = DinoModel::from_pretrained(source, load)?;
        Self::new(Box::new(pretrained.model), pretrained.processor, short_side)
    }

    /// Pictures at `short_side` (`None` keeps the image's size) for any backbone.
    pub(crate) fn new(
        model: Box<dyn Vit>,
        processor: ImageProcessor,
        short_side: Option<u32>,
    ) -> Result<Self> {
        let dense = picture_options(model.info().patch_size, short_side);
        // Checks the short side once, here, rather than on every image.
        dense.plan((1, 1))?;
        Ok(Self {
            model,
            processor,
            dense,
        })
    }

    pub(crate) fn model(&self) -> &dyn Vit {
        self.model.as_ref()
    }

    pub(crate) fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// `image` with its dense input `(1, 3, H, W)`.
    pub(crate) fn image(&self, image: RgbImage) -> Result<DenseImage> {
        DenseImage::from_image(&self.processor, image, &self.dense, self.model.device())
    }

    /// The image at `path`, decoded, with its dense input.
    pub(crate) fn read(&self, path: impl AsRef<Path>) -> Result<DenseImage> {
        self.image(self.processor.read(path)?)
    }

    /// The pixels `(1, 3, H, W)` the backbone sees for `image`.
    pub(crate) fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        Ok(self.image(image.clone())?.pixels)
    }
}
