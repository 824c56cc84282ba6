//! Retrieval embeddings: L2-normalised global descriptors (`retrieval::Descriptor`: CLS, mean of
//! the patch tokens, both, GeM) of images prepared by the model's processor, one row per image, for
//! an [`EmbeddingIndex`](crate::retrieval::EmbeddingIndex); and the resumable job that embeds a whole
//! collection into an index folder ([`EmbedJob`]).
//!
//! Shapes: pixels `(B, 3, H, W)` → `last_hidden_state` `(B, 1 + R + h·w, D)` → rows `(B, D')`
//! (`D' = 2·D` for `cls+mean`).

use std::path::{Path, PathBuf};

use candle::Tensor;
use image::RgbImage;

use crate::model::{DinoModel, LoadOptions, Vit};
use crate::pipelines::task::Task;
use crate::pipelines::task_preprocessor::TaskPreprocessor;
use crate::preprocess::ImageProcessor;
use crate::progress::Progress;
use crate::retrieval::{model_id, Descriptor, EmbedJob, EmbedOptions, EmbedReport, EmbeddingIndex};
use crate::{Error, Result};

/// A backbone, its processor and a descriptor, producing embedding rows.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::EmbeddingPipeline;
/// use dinoreg::retrieval::{Descriptor, EmbedOptions};
/// use dinoreg::LoadOptions;
///
/// let options = EmbedOptions::default().with_descriptor(Descriptor::Gem { p: 3.0 });
/// let pipeline =
///     EmbeddingPipeline::from_pretrained("tests/fixtures/model/reg4", &options, &LoadOptions::default())?;
/// let row = pipeline.run_path("examples/images/chelsea.png")?;
/// assert_eq!(row.len(), 32);
/// let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
/// assert!((norm - 1.0).abs() < 1e-5);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EmbeddingPipeline {
    model: Box<dyn Vit>,
    processor: ImageProcessor,
    input: TaskPreprocessor,
    model_id: String,
    options: EmbedOptions,
}

impl EmbeddingPipeline {
    /// Loads a model of either generation (Hub id, folder or bare `.pth`) with its processor; the
    /// index folders it writes record `source` as [`model_id`] gives it.
    pub fn from_pretrained(
        source: &str,
        options: &EmbedOptions,
        load: &LoadOptions,
    ) -> Result<Self> {
        let pretrained = DinoModel::from_pretrained(source, load)?;
        Self::new(
            Box::new(pretrained.model),
            pretrained.processor,
            model_id(source),
            options,
        )
    }

    /// The pipeline that embeds queries as `index`'s rows were embedded: the model and descriptor
    /// its `index.json` records.
    pub fn for_index(index: &EmbeddingIndex, load: &LoadOptions) -> Result<Self> {
        let meta = index.meta();
        let descriptor: Descriptor = meta.descriptor.parse()?;
        Self::from_pretrained(
            &meta.model,
            &EmbedOptions::default().with_descriptor(descriptor),
            load,
        )
    }

    /// A pipeline over any backbone and processor; `model_id` (an absolute folder or a Hub id) is
    /// recorded in the index folders it writes. Errors on invalid options.
    pub fn new(
        model: Box<dyn Vit>,
        processor: ImageProcessor,
        model_id: impl Into<String>,
        options: &EmbedOptions,
    ) -> Result<Self> {
        options.descriptor.validate()?;
        if options.batch_size == 0 {
            return Err(Error::option("batch_size", "must be at least 1"));
        }
        Ok(Self {
            model,
            input: TaskPreprocessor::from_processor(Task::Embed, processor.clone()),
            processor,
            model_id: model_id.into(),
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

    /// What index folders record as the model.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The descriptor and the job's settings.
    pub fn options(&self) -> &EmbedOptions {
        &self.options
    }

    /// The length of each row.
    pub fn dims(&self) -> usize {
        self.options.descriptor.dims(self.model.info().hidden_size)
    }

    /// The pixels `(1, 3, H, W)` the backbone sees for `image` (the model's processor).
    pub fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        self.input.pixels(image, self.model.device())
    }

    /// The preprocessing behind [`EmbeddingPipeline::pixels`], without the model.
    pub fn task_preprocessor(&self) -> &TaskPreprocessor {
        &self.input
    }

    /// The rows `(B, D')` of normalised pixels `(B, C, H, W)`, used as they are.
    pub fn run_pixels(&self, pixels: &Tensor) -> Result<Tensor> {
        self.options
            .descriptor
            .describe(self.model.as_ref(), pixels)
    }

    /// The row of one decoded image.
    pub fn run_image(&self, image: &RgbImage) -> Result<Vec<f32>> {
        let rows = self.run_pixels(&self.pixels(image)?)?;
        Ok(rows.get(0)?.to_vec1::<f32>()?)
    }

    /// The row of the image file at `path`, ready for
    /// [`EmbeddingIndex::search`](crate::retrieval::EmbeddingIndex::search).
    pub fn run_path(&self, path: impl AsRef<Path>) -> Result<Vec<f32>> {
        self.run_image(&self.processor.read(path)?)
    }

    /// The rows `(B, D')` of several image files as one batch, in order.
    pub fn run_batch(&self, paths: &[impl AsRef<Path> + Sync]) -> Result<Tensor> {
        let pixels = self
            .processor
            .load_batch_tensor(paths, self.model.device())?;
        self.run_pixels(&pixels)
    }

    /// Embeds a collection into the index folder `out` with the resumable, batched job
    /// ([`EmbedJob`]): unreadable images are skipped with their reason, an interrupted job resumes
    /// where it stopped, and a cancelled `progress` stops it with
    /// [`Error::Interrupted`](crate::Error::Interrupted).
    pub fn embed_into(
        &self,
        images: &[impl AsRef<Path>],
        out: impl AsRef<Path>,
        progress: &dyn Progress,
    ) -> Result<EmbedReport> {
        let images: Vec<PathBuf> = images.iter().map(|p| p.as_ref().to_path_buf()).collect();
        EmbedJob::new(self.model.as_ref(), &self.processor, &self.model_id).run_with_progress(
            &images,
            out.as_ref(),
            &self.options,
            progress,
        )
    }
}
