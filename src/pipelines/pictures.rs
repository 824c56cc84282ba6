//! What the picture pipelines share: [`PicturePipeline`], a backbone, its processor, and dense
//! inputs for pictures (aspect kept, short side 448 by default, sides rounded to the nearest
//! multiple of the patch size, no padding tokens in the statistics). The pictures themselves are
//! [`PcaPipeline`](super::PcaPipeline)'s and [`AttentionPipeline`](super::AttentionPipeline)'s.

use std::path::Path;

use candle::Tensor;
use image::RgbImage;

use super::task::Task;
use super::task_preprocessor::TaskPreprocessor;
use crate::model::{DinoModel, LoadOptions, Vit};
use crate::preprocess::{DenseOptions, ImageProcessor};
use crate::progress::Progress;
use crate::viz::{picture_options, DenseImage};
use crate::Result;

/// The options of a kind of picture: what [`PicturePipeline`] needs from them.
pub trait PictureOptions: Clone + std::fmt::Debug + Send + Sync {
    /// The short side images are resized to before the model (`None` keeps their size).
    fn short_side(&self) -> Option<u32>;

    /// The task these options draw ([`Task::Pca`], [`Task::Attention`]).
    fn task(&self) -> Task;
}

/// A backbone drawing one kind of picture, chosen by its options `O`
/// ([`PcaPipeline`](super::PcaPipeline), [`AttentionPipeline`](super::AttentionPipeline)).
#[derive(Debug)]
pub struct PicturePipeline<O> {
    model: Box<dyn Vit>,
    processor: ImageProcessor,
    dense: DenseOptions,
    input: TaskPreprocessor,
    options: O,
}

impl<O: PictureOptions> PicturePipeline<O> {
    /// Loads a model of either generation (Hub id, folder or bare `.pth`) with its processor.
    pub fn from_pretrained(source: &str, options: &O, load: &LoadOptions) -> Result<Self> {
        let pretrained = DinoModel::from_pretrained(source, load)?;
        Self::new(Box::new(pretrained.model), pretrained.processor, options)
    }

    /// A pipeline over any backbone and processor; errors on a short side of 0.
    pub fn new(model: Box<dyn Vit>, processor: ImageProcessor, options: &O) -> Result<Self> {
        let dense = picture_options(model.info().patch_size, options.short_side());
        // Checks the short side once, here, rather than on every image.
        dense.plan((1, 1))?;
        Ok(Self {
            input: TaskPreprocessor::dense(options.task(), processor.clone(), dense),
            model,
            processor,
            dense,
            options: options.clone(),
        })
    }

    /// The backbone.
    pub fn model(&self) -> &dyn Vit {
        self.model.as_ref()
    }

    /// The image processor.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// The options.
    pub fn options(&self) -> &O {
        &self.options
    }

    /// The pixels `(1, 3, H, W)` the backbone sees for `image`.
    pub fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        self.input.pixels(image, self.model.device())
    }

    /// The preprocessing behind [`PicturePipeline::pixels`], without the model.
    pub fn task_preprocessor(&self) -> &TaskPreprocessor {
        &self.input
    }

    /// `image` with its dense input `(1, 3, H, W)`.
    pub(crate) fn dense_image(&self, image: RgbImage) -> Result<DenseImage> {
        DenseImage::from_image(&self.processor, image, &self.dense, self.model.device())
    }

    /// The image at `path`, decoded, with its dense input; what the decoder noticed is told to
    /// `progress`.
    pub(crate) fn read(
        &self,
        path: impl AsRef<Path>,
        progress: &dyn Progress,
    ) -> Result<DenseImage> {
        self.dense_image(self.processor.read_with_progress(path, progress)?)
    }
}
