//! Backbone features: HF `Dinov2WithRegistersBackbone` / `DINOv3ViTBackbone` stage maps plus the
//! model's `last_hidden_state` and `pooler_output`, from images prepared the model's way (its image
//! processor) or densely (aspect kept, sides multiples of the patch, borders kept).
//!
//! Shapes: stage maps `(B, D, h, w)` (or `(B, 1 + R + h·w, D)` without reshaping);
//! `last_hidden_state` `(B, 1 + R + h·w, D)`; `pooler_output` `(B, D)`.

use std::collections::HashMap;
use std::path::Path;

use candle::Tensor;
use image::RgbImage;

use crate::io::safetensors::write_safetensors;
use crate::model::{
    Backbone, BackboneForwardOptions, BackboneOptions, DinoModel, LoadOptions, Vit,
};
use crate::pipelines::batch::each;
use crate::pipelines::task_preprocessor::TaskPreprocessor;
use crate::preprocess::{DenseOptions, ImageProcessor};
use crate::progress::Progress;
use crate::{Error, Result};

/// How images become pixels.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Resolution {
    /// The model's image processor (DINOv2's checkpoints: shortest edge 256, centre crop 224).
    #[default]
    Processor,
    /// Dense: aspect ratio kept, sides made multiples of the patch size (the patch size of the
    /// options is replaced by the model's).
    Dense(DenseOptions),
}

/// Options of a [`FeaturesPipeline`].
#[derive(Debug, Clone, Default)]
pub struct FeaturesOptions {
    /// Stage selection, norm and reshape (HF's Backbone options).
    pub backbone: BackboneOptions,
    /// How images become pixels.
    pub resolution: Resolution,
}

impl FeaturesOptions {
    /// Sets the backbone options.
    pub fn with_backbone(mut self, backbone: BackboneOptions) -> Self {
        self.backbone = backbone;
        self
    }

    /// Sets how images become pixels.
    pub fn with_resolution(mut self, resolution: Resolution) -> Self {
        self.resolution = resolution;
        self
    }
}

/// The features of one batch.
#[derive(Debug, Clone)]
pub struct Features {
    /// One `(stage name, tensor)` per selected stage, in stage order.
    pub stages: Vec<(String, Tensor)>,
    /// `(B, 1 + R + h·w, D)` after the final norm.
    pub last_hidden_state: Tensor,
    /// The normed CLS token `(B, D)`.
    pub pooler_output: Tensor,
}

impl Features {
    /// Every tensor by name: the stages, then `last_hidden_state` and `pooler_output`.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = self.stages.clone();
        out.push(("last_hidden_state".into(), self.last_hidden_state.clone()));
        out.push(("pooler_output".into(), self.pooler_output.clone()));
        out
    }

    /// Writes every tensor to a `.safetensors` file with `metadata`, atomically.
    pub fn write_safetensors(
        &self,
        path: impl AsRef<Path>,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        write_safetensors(path.as_ref(), &self.named_tensors(), metadata)
    }
}

/// A backbone and its preprocessing, producing [`Features`].
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::{FeaturesOptions, FeaturesPipeline};
/// use dinoreg::{BackboneOptions, LoadOptions};
///
/// let options = FeaturesOptions::default()
///     .with_backbone(BackboneOptions::default().with_out_indices(vec![-2, -1]));
/// let pipeline =
///     FeaturesPipeline::from_pretrained("tests/fixtures/model/reg4", &options, &LoadOptions::default())?;
/// let features = pipeline.run_path("examples/images/chelsea.png")?;
/// assert_eq!(features.stages[1].0, "stage3");
/// assert_eq!(features.stages[1].1.dims(), &[1, 32, 56, 56]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FeaturesPipeline {
    backbone: Backbone<Box<dyn Vit>>,
    processor: ImageProcessor,
    resolution: Resolution,
    input: TaskPreprocessor,
}

impl FeaturesPipeline {
    /// Loads a model of either generation (Hub id, folder or bare `.pth`) with its processor.
    pub fn from_pretrained(
        source: &str,
        options: &FeaturesOptions,
        load: &LoadOptions,
    ) -> Result<Self> {
        let pretrained = DinoModel::from_pretrained(source, load)?;
        Self::new(Box::new(pretrained.model), pretrained.processor, options)
    }

    /// A pipeline over any backbone and processor.
    pub fn new(
        model: Box<dyn Vit>,
        processor: ImageProcessor,
        options: &FeaturesOptions,
    ) -> Result<Self> {
        let patch = model.info().patch_size;
        Ok(Self {
            input: TaskPreprocessor::features(processor.clone(), &options.resolution, patch),
            backbone: Backbone::new(model, &options.backbone)?,
            processor,
            resolution: options.resolution.clone(),
        })
    }

    /// The backbone (its stage selection and model).
    pub fn backbone(&self) -> &Backbone<Box<dyn Vit>> {
        &self.backbone
    }

    /// The image processor.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// The pixels `(1, 3, H, W)` the backbone sees for `image`.
    pub fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        self.input.pixels(image, self.backbone.model().device())
    }

    /// The preprocessing behind [`FeaturesPipeline::pixels`], without the model.
    pub fn task_preprocessor(&self) -> &TaskPreprocessor {
        &self.input
    }

    /// Features of normalised pixels `(B, C, H, W)`, used as they are.
    pub fn run_pixels(&self, pixels: &Tensor) -> Result<Features> {
        let model = self.backbone.model();
        let out = self.backbone.forward_with(
            pixels,
            &BackboneForwardOptions::default().with_hidden_states(true),
        )?;
        let hidden = out.hidden_states.unwrap_or_default();
        let last = hidden
            .last()
            .ok_or_else(|| Error::input("pixel_values", "the model returned no hidden state"))?;
        let last_hidden_state = model.final_norm(last)?;
        let pooler_output = last_hidden_state.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(Features {
            stages: self
                .backbone
                .out_features()
                .iter()
                .cloned()
                .zip(out.feature_maps)
                .collect(),
            last_hidden_state,
            pooler_output,
        })
    }

    /// Features of one decoded image (batch of 1).
    pub fn run_image(&self, image: &RgbImage) -> Result<Features> {
        self.run_pixels(&self.pixels(image)?)
    }

    /// Features of the image file at `path` (batch of 1).
    pub fn run_path(&self, path: impl AsRef<Path>) -> Result<Features> {
        self.run_image(&self.processor.read(path)?)
    }

    /// Features of several image files as one batch, in order; they must come out the same size
    /// (always the case with the model's processor and its centre crop).
    pub fn run_batch(&self, paths: &[impl AsRef<Path> + Sync]) -> Result<Features> {
        let pixels = match &self.resolution {
            Resolution::Processor => self
                .processor
                .load_batch_tensor(paths, self.backbone.model().device())?,
            Resolution::Dense(_) => {
                let tensors = paths
                    .iter()
                    .map(|p| self.pixels(&self.processor.read(p)?))
                    .collect::<Result<Vec<_>>>()?;
                let first = tensors.first().map(|t| t.dims().to_vec());
                if let Some(i) = tensors
                    .iter()
                    .position(|t| Some(t.dims().to_vec()) != first)
                {
                    return Err(Error::input(
                        "images",
                        format!(
                            "{} comes out {:?} but {} comes out {:?}; dense inputs of different sizes cannot share a batch (run them one by one)",
                            paths[i].as_ref().display(),
                            &tensors[i].dims()[2..],
                            paths[0].as_ref().display(),
                            &tensors[0].dims()[2..]
                        ),
                    ));
                }
                Tensor::cat(&tensors, 0)?
            }
        };
        self.run_pixels(&pixels)
    }

    /// Features of several image files, one forward each (reported to `progress` as stage
    /// `"images"`, stopping with [`Error::Interrupted`] when it is cancelled, with what the decoder
    /// notices about an image, such as a 16-bit grayscale PNG, as notes), concatenated along the
    /// batch axis in order: the same numbers as [`FeaturesPipeline::run_batch`]. They must come out
    /// the same size.
    pub fn run_batch_with_progress(
        &self,
        paths: &[impl AsRef<Path>],
        progress: &dyn Progress,
    ) -> Result<Features> {
        let parts = each("images", paths, progress, |p| {
            let features = self.run_image(&self.processor.read_with_progress(p, progress)?)?;
            Ok((p.as_ref().to_path_buf(), features))
        })?;
        concat_features(&parts)
    }
}

/// [`Features`] of single images concatenated along the batch axis; an error naming two images whose
/// shapes differ.
fn concat_features(parts: &[(std::path::PathBuf, Features)]) -> Result<Features> {
    let Some((first_path, first)) = parts.first() else {
        return Err(Error::input("images", "no image given"));
    };
    if let Some((path, f)) = parts
        .iter()
        .find(|(_, f)| f.last_hidden_state.dims() != first.last_hidden_state.dims())
    {
        return Err(Error::input(
            "images",
            format!(
                "{} gives tokens {:?} but {} gives {:?}; images of different sizes cannot share one file (run them one by one)",
                path.display(),
                f.last_hidden_state.dims(),
                first_path.display(),
                first.last_hidden_state.dims()
            ),
        ));
    }
    let cat = |pick: &dyn Fn(&Features) -> Tensor| -> Result<Tensor> {
        let tensors: Vec<Tensor> = parts.iter().map(|(_, f)| pick(f)).collect();
        Ok(Tensor::cat(&tensors, 0)?)
    };
    let stages = first
        .stages
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Ok((name.clone(), cat(&|f| f.stages[i].1.clone())?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Features {
        stages,
        last_hidden_state: cat(&|f| f.last_hidden_state.clone())?,
        pooler_output: cat(&|f| f.pooler_output.clone())?,
    })
}
