//! Image classification: HF `Dinov2WithRegistersForImageClassification` (after transformers PR
//! #37836): the normed CLS token concatenated with the mean of the normed patch tokens (registers
//! excluded) → `Linear(2D, num_labels)`. Checkpoint keys: the backbone under
//! `dinov2_with_registers.` (or `dinov2.`) plus `classifier.{weight,bias}`.
//!
//! Shapes: pixels `(B, C, H, W)` → logits `(B, num_labels)`.

use std::path::Path;

use candle::{DType, Tensor, D};

use crate::io::hub::resolve_model;
use crate::model::config::Dinov2Config;
use crate::model::pretrained::{ModelConfig, Pretrained};
use crate::model::weights::open_backbone;
use crate::model::{Dinov2Model, LoadOptions, Vit};
use crate::preprocess::ImageProcessor;
use crate::{Error, Result};

/// Why a DINOv3 model cannot classify: HF transformers has no `DINOv3ViTForImageClassification`,
/// and Meta publishes no ImageNet head for the DINOv3 ViTs.
const NO_DINOV3_CLASSIFIER: &str = "a DINOv3 model has no image-classification head (HF has no DINOv3ViTForImageClassification); classify needs a DINOv2 classification checkpoint such as facebook/dinov2-with-registers-small-imagenet1k-1-layer, or use a DINOv3 model with features, embed or a head of your own";

/// One predicted class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Class index.
    pub index: usize,
    /// Class name from `id2label` (or `LABEL_{index}`).
    pub label: String,
    /// Softmax probability.
    pub probability: f32,
}

/// The classifier: a model plus its linear head.
#[derive(Debug)]
pub struct Dinov2ForImageClassification {
    model: Dinov2Model,
    weight_t: Tensor,
    bias: Tensor,
}

impl Dinov2ForImageClassification {
    /// Loads a classification checkpoint from a Hub id or a local folder, with its image processor.
    pub fn from_pretrained(source: &str, opts: &LoadOptions) -> Result<Pretrained<Self>> {
        let files = resolve_model(source)?;
        let processor = match &files.preprocessor {
            Some(p) => ImageProcessor::from_file(p)?,
            None => ImageProcessor::default(),
        };
        Ok(Pretrained {
            model: Self::load(&files.config, &files.weights, opts)?,
            processor,
            files,
        })
    }

    /// Loads a classification checkpoint (`config.json` with `id2label`, weights with `classifier.*`).
    pub fn load(
        config: impl AsRef<Path>,
        weights: &[impl AsRef<Path>],
        opts: &LoadOptions,
    ) -> Result<Self> {
        let config_path = config.as_ref();
        if let Ok(ModelConfig::Dinov3(_)) = ModelConfig::from_file(config_path) {
            return Err(Error::Config {
                path: config_path.to_path_buf(),
                reason: NO_DINOV3_CLASSIFIER.into(),
            });
        }
        let config = Dinov2Config::from_file(config_path)?;
        let num_labels = config.num_labels();
        if num_labels == 0 {
            return Err(Error::Config {
                path: config_path.to_path_buf(),
                reason: "no id2label: this is not an image-classification checkpoint".into(),
            });
        }
        let weights = open_backbone(weights)?;
        let d = config.hidden_size;
        let model = Dinov2Model::from_weights(config, &weights, opts)?;
        let head = weights
            .store
            .scope("classifier.", &opts.device)
            .with_dtype(opts.dtype);
        Ok(Self {
            weight_t: head
                .get("weight", &[num_labels, 2 * d])?
                .t()?
                .contiguous()?,
            bias: head.get("bias", &[num_labels])?,
            model,
        })
    }

    /// The backbone model.
    pub fn model(&self) -> &Dinov2Model {
        &self.model
    }

    /// Logits `(B, num_labels)` of `pixels` `(B, C, H, W)`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let out = self.model.forward(pixels)?;
        let x = out.last_hidden_state;
        let prefix = 1 + self.model.config().num_register_tokens;
        let t = x.dim(1)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        let mean = x.narrow(1, prefix, t - prefix)?.mean(1)?;
        let input = Tensor::cat(&[&cls, &mean], 1)?;
        Ok(input.matmul(&self.weight_t)?.broadcast_add(&self.bias)?)
    }

    /// The `k` most probable classes of each row of `logits` `(B, num_labels)`.
    pub fn top_k(&self, logits: &Tensor, k: usize) -> Result<Vec<Vec<Prediction>>> {
        let probs = candle_nn::ops::softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
        let rows = probs.to_vec2::<f32>()?;
        let labels = &self.model.config().id2label;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut order: Vec<usize> = (0..row.len()).collect();
                order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
                order
                    .into_iter()
                    .take(k)
                    .map(|i| Prediction {
                        index: i,
                        label: labels
                            .get(&i)
                            .cloned()
                            .unwrap_or_else(|| format!("LABEL_{i}")),
                        probability: row[i],
                    })
                    .collect()
            })
            .collect())
    }
}
