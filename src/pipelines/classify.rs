//! Image classification: HF `Dinov2WithRegistersForImageClassification` with its image processor;
//! logits `(B, num_labels)` and the top-k labels of each image.

use std::path::Path;

use candle::Tensor;
use image::RgbImage;

use crate::model::{Dinov2ForImageClassification, LoadOptions, Prediction, Vit};
use crate::pipelines::task::Task;
use crate::pipelines::task_preprocessor::TaskPreprocessor;
use crate::preprocess::ImageProcessor;
use crate::{Error, Result};

/// The classes of one batch.
#[derive(Debug, Clone)]
pub struct Classification {
    /// `(B, num_labels)`.
    pub logits: Tensor,
    /// The top classes of each image, most probable first.
    pub top: Vec<Vec<Prediction>>,
}

/// A classification checkpoint and its preprocessing.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::ClassificationPipeline;
/// use dinoreg::LoadOptions;
///
/// let pipeline = ClassificationPipeline::from_pretrained("tests/fixtures/model/classifier", 3, &LoadOptions::default())?;
/// let result = pipeline.run_path("examples/images/chelsea.png")?;
/// assert_eq!(result.top[0].len(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ClassificationPipeline {
    model: Dinov2ForImageClassification,
    input: TaskPreprocessor,
    top: usize,
}

impl ClassificationPipeline {
    /// Loads a classification checkpoint (Hub id or folder); `top` classes are kept per image.
    pub fn from_pretrained(source: &str, top: usize, load: &LoadOptions) -> Result<Self> {
        let pretrained = Dinov2ForImageClassification::from_pretrained(source, load)?;
        Self::new(pretrained.model, pretrained.processor, top)
    }

    /// A pipeline over a loaded classifier.
    pub fn new(
        model: Dinov2ForImageClassification,
        processor: ImageProcessor,
        top: usize,
    ) -> Result<Self> {
        if top == 0 {
            return Err(Error::option("top", "expected at least 1 class per image"));
        }
        Ok(Self {
            model,
            input: TaskPreprocessor::from_processor(Task::Classify, processor),
            top,
        })
    }

    /// The classifier.
    pub fn model(&self) -> &Dinov2ForImageClassification {
        &self.model
    }

    /// Classes of normalised pixels `(B, C, H, W)`.
    pub fn run_pixels(&self, pixels: &Tensor) -> Result<Classification> {
        let logits = self.model.forward(pixels)?;
        let top = self.model.top_k(&logits, self.top)?;
        Ok(Classification { logits, top })
    }

    /// The image processor (decoding, resize, centre crop, normalisation).
    pub fn processor(&self) -> &ImageProcessor {
        self.input.processor()
    }

    /// The pixels `(1, 3, H, W)` the classifier sees for `image` (the model's processor).
    pub fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        self.input.pixels(image, self.model.model().device())
    }

    /// The preprocessing behind [`ClassificationPipeline::pixels`], without the model.
    pub fn task_preprocessor(&self) -> &TaskPreprocessor {
        &self.input
    }

    /// Classes of one decoded image.
    pub fn run_image(&self, image: &RgbImage) -> Result<Classification> {
        self.run_pixels(&self.pixels(image)?)
    }

    /// Classes of the image file at `path`.
    pub fn run_path(&self, path: impl AsRef<Path>) -> Result<Classification> {
        self.run_image(&self.input.read(path)?)
    }

    /// Classes of several image files as one batch, in order.
    pub fn run_batch(&self, paths: &[impl AsRef<Path> + Sync]) -> Result<Classification> {
        let pixels = self
            .input
            .processor()
            .load_batch_tensor(paths, self.model.model().device())?;
        self.run_pixels(&pixels)
    }

    /// Classes of several image files, one forward each (reported to `progress` as stage `"images"`,
    /// stopping with [`Error::Interrupted`](crate::Error::Interrupted) when it is cancelled, with what
    /// the decoder notices about an image, such as a 16-bit grayscale PNG, as notes), with the
    /// logits concatenated in order: the same numbers as [`ClassificationPipeline::run_batch`].
    pub fn run_batch_with_progress(
        &self,
        paths: &[impl AsRef<Path>],
        progress: &dyn crate::progress::Progress,
    ) -> Result<Classification> {
        let processor = self.input.processor();
        let parts = crate::pipelines::batch::each("images", paths, progress, |p| {
            self.run_image(&processor.read_with_progress(p, progress)?)
        })?;
        let logits: Vec<Tensor> = parts.iter().map(|c| c.logits.clone()).collect();
        Ok(Classification {
            logits: Tensor::cat(&logits, 0)?,
            top: parts.into_iter().flat_map(|c| c.top).collect(),
        })
    }
}
