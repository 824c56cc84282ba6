//! `from_pretrained`: a model named by a Hub id (downloaded once into the Hugging Face cache), a
//! local folder (`config.json`, weights, optional `preprocessor_config.json`) or a bare checkpoint
//! file (an original facebookresearch or Depth-Anything-V2 `.pth`, its config inferred from its
//! tensor shapes), resolved to its files, its config of either generation and its image processor.
//!
//! [`ModelSource`] is the resolved description; [`DinoModel`] is a backbone of whichever generation
//! the files hold; [`Pretrained`] pairs a loaded model with the processor its checkpoint was made
//! for, as HF's `AutoModel` + `AutoImageProcessor` do.

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};

use crate::io::hub::{resolve_model, ModelFiles};
use crate::model::backbone::BackboneOptions;
use crate::model::config::{
    find_backbone_config, read_json, Dinov2Config, Dinov3Config, Generation,
};
use crate::model::dinov2::Dinov2Model;
use crate::model::dinov3::{self, Dinov3Model};
use crate::model::load::LoadOptions;
use crate::model::vit::{EncodeRequest, Encoded, Family, Vit, VitInfo};
use crate::model::weights::{infer_config, open_backbone};
use crate::preprocess::{ImageProcessor, ProcessorConfig};
use crate::{Error, Result};

/// The configuration of a backbone of either generation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModelConfig {
    /// `dinov2` / `dinov2_with_registers`.
    Dinov2(Dinov2Config),
    /// `dinov3_vit`.
    Dinov3(Dinov3Config),
}

impl ModelConfig {
    /// Reads a `config.json` of any supported generation, chosen by its `model_type` (also when
    /// nested as `backbone_config`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let value = read_json(path)?;
        match find_backbone_config(&value, path)?.1 {
            Generation::Dinov2 => Ok(Self::Dinov2(Dinov2Config::from_value_at(&value, path)?)),
            Generation::Dinov3 => Ok(Self::Dinov3(Dinov3Config::from_value_at(&value, path)?)),
        }
    }

    /// A published architecture by name: DINOv2's `small`, `base`, `large`, `giant` (also `s`,
    /// `vits14`, …), DINOv3's `dinov3-` + a [`Dinov3Config::preset_by_name`] name (`dinov3-small`, `dinov3-base`, …).
    pub fn preset_by_name(name: &str) -> Result<Self> {
        if let Some(size) = name.strip_prefix("dinov3-") {
            return Dinov3Config::preset_by_name(size).map(Self::Dinov3);
        }
        Dinov2Config::preset_by_name(name).map(Self::Dinov2).map_err(|_| {
            Error::option(
                "preset",
                format!("unknown preset {name:?}; expected small, base, large, giant or dinov3-<size> (dinov3-small, dinov3-base, ...)"),
            )
        })
    }

    /// The generation.
    pub fn family(&self) -> Family {
        match self {
            Self::Dinov2(_) => Family::Dinov2,
            Self::Dinov3(_) => Family::Dinov3,
        }
    }

    /// The patch size.
    pub fn patch_size(&self) -> usize {
        match self {
            Self::Dinov2(c) => c.patch_size,
            Self::Dinov3(c) => c.patch_size,
        }
    }

    /// The token width `D`.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Dinov2(c) => c.hidden_size,
            Self::Dinov3(c) => c.hidden_size,
        }
    }

    /// The number of input channels.
    pub fn num_channels(&self) -> usize {
        match self {
            Self::Dinov2(c) => c.num_channels,
            Self::Dinov3(c) => c.num_channels,
        }
    }

    /// The image processor a checkpoint of this generation uses when it ships none: DINOv2's
    /// `BitImageProcessor` settings, or `DINOv3ViTImageProcessor`'s defaults.
    pub fn default_processor(&self) -> ImageProcessor {
        match self {
            Self::Dinov2(_) => ImageProcessor::default(),
            Self::Dinov3(_) => ImageProcessor::new(ProcessorConfig::dinov3()),
        }
    }
}

/// A model source resolved to files, a config and an image processor, not loaded yet.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// The files.
    pub files: ModelFiles,
    /// The parsed (or inferred) config.
    pub config: ModelConfig,
    /// The model's `preprocessor_config.json`, else its generation's default processor.
    pub processor: ImageProcessor,
    /// True when the source was a bare checkpoint file whose config was inferred from its tensors.
    pub config_inferred: bool,
}

impl ModelSource {
    /// Resolves a Hub id (`org/name[@revision]`, downloaded when not cached), a local folder or a
    /// bare checkpoint file.
    pub fn resolve(source: &str) -> Result<Self> {
        let path = Path::new(source);
        if path.is_file() {
            return Self::from_checkpoint_file(path);
        }
        let files = resolve_model(source)?;
        let config = ModelConfig::from_file(&files.config)?;
        let processor = match &files.preprocessor {
            Some(p) => ImageProcessor::from_file(p)?,
            None => config.default_processor(),
        };
        Ok(Self {
            files,
            config,
            processor,
            config_inferred: false,
        })
    }

    /// A bare checkpoint (an original facebookresearch DINOv2 or DINOv3, or Depth-Anything-V2
    /// `.pth`): its generation is read from its tensor names, its config inferred from its tensor
    /// shapes.
    pub fn from_checkpoint_file(path: &Path) -> Result<Self> {
        let weights = open_backbone(&[path])?;
        let config = match weights.family {
            Family::Dinov3 => ModelConfig::Dinov3(dinov3::infer_config(&weights)?),
            _ => ModelConfig::Dinov2(infer_config(&weights)?),
        };
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(Self {
            files: ModelFiles {
                dir,
                config: path.to_path_buf(),
                weights: vec![path.to_path_buf()],
                preprocessor: None,
            },
            processor: config.default_processor(),
            config,
            config_inferred: true,
        })
    }

    /// Loads the backbone from the source's own weights.
    pub fn load(&self, opts: &LoadOptions) -> Result<DinoModel> {
        self.load_from(&self.files.weights, opts)
    }

    /// Loads the backbone as the generation-specific type `pick` takes out of a [`DinoModel`]
    /// (`generation` names it in the error when the source holds the other one), with the source's
    /// processor and files.
    pub(crate) fn load_as<M>(
        self,
        opts: &LoadOptions,
        generation: &str,
        pick: impl FnOnce(DinoModel) -> Option<M>,
    ) -> Result<Pretrained<M>> {
        match pick(self.load(opts)?) {
            Some(model) => Ok(Pretrained {
                model,
                processor: self.processor,
                files: self.files,
            }),
            None => Err(Error::Config {
                path: self.files.config,
                reason: format!(
                    "not a {generation} model; load it with DinoModel::from_pretrained"
                ),
            }),
        }
    }

    /// Loads the backbone with this source's config from other weight files (for example a
    /// fine-tuned backbone stored beside a head).
    pub fn load_from(&self, weights: &[impl AsRef<Path>], opts: &LoadOptions) -> Result<DinoModel> {
        let weights = open_backbone(weights)?;
        let model = match &self.config {
            ModelConfig::Dinov2(c) => {
                Dinov2Model::from_weights(c.clone(), &weights, opts).map(DinoModel::Dinov2)
            }
            ModelConfig::Dinov3(c) => {
                Dinov3Model::from_weights(c.clone(), &weights, opts).map(DinoModel::Dinov3)
            }
        };
        model.map_err(|e| naming_config(e, &self.files.config))
    }
}

/// `e` with a config error about an in-memory config (`<config>`) attributed to the file `path`.
pub(crate) fn naming_config(e: Error, path: &Path) -> Error {
    match e {
        Error::Config { path: p, reason } if p.as_os_str() == "<config>" => Error::Config {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    }
}

/// A loaded model and the image processor its checkpoint was made for.
#[derive(Debug, Clone)]
pub struct Pretrained<M> {
    /// The model.
    pub model: M,
    /// Its image processor (`preprocessor_config.json`, else the generation's default).
    pub processor: ImageProcessor,
    /// The files it was loaded from.
    pub files: ModelFiles,
}

impl<M> Pretrained<M> {
    /// The same files and processor around another value (for example the model wrapped in a
    /// backbone).
    pub fn map<N>(self, f: impl FnOnce(M) -> N) -> Pretrained<N> {
        Pretrained {
            model: f(self.model),
            processor: self.processor,
            files: self.files,
        }
    }
}

/// A backbone of whichever DINO generation a checkpoint holds.
#[derive(Debug)]
#[non_exhaustive]
pub enum DinoModel {
    /// DINOv2, with or without registers.
    Dinov2(Dinov2Model),
    /// DINOv3 ViT.
    Dinov3(Dinov3Model),
}

impl DinoModel {
    /// Loads any supported model: a Hub id, a local folder or a bare checkpoint file.
    ///
    /// ```
    /// # fn main() -> dinoreg::Result<()> {
    /// use dinoreg::{DinoModel, LoadOptions, Vit};
    /// let pretrained = DinoModel::from_pretrained("tests/fixtures/model/reg4", &LoadOptions::default())?;
    /// assert_eq!(pretrained.model.info().num_register_tokens, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pretrained(source: &str, opts: &LoadOptions) -> Result<Pretrained<Self>> {
        let source = ModelSource::resolve(source)?;
        Ok(Pretrained {
            model: source.load(opts)?,
            processor: source.processor,
            files: source.files,
        })
    }

    /// The DINOv2 model, when it is one.
    pub fn as_dinov2(&self) -> Option<&Dinov2Model> {
        match self {
            Self::Dinov2(m) => Some(m),
            _ => None,
        }
    }

    /// The DINOv3 model, when it is one.
    pub fn as_dinov3(&self) -> Option<&Dinov3Model> {
        match self {
            Self::Dinov3(m) => Some(m),
            _ => None,
        }
    }

    /// The model's configuration.
    pub fn config(&self) -> ModelConfig {
        match self {
            Self::Dinov2(m) => ModelConfig::Dinov2(m.config().clone()),
            Self::Dinov3(m) => ModelConfig::Dinov3(m.config().clone()),
        }
    }

    fn inner(&self) -> &dyn Vit {
        match self {
            Self::Dinov2(m) => m,
            Self::Dinov3(m) => m,
        }
    }
}

impl From<Dinov2Model> for DinoModel {
    fn from(model: Dinov2Model) -> Self {
        Self::Dinov2(model)
    }
}

impl From<Dinov3Model> for DinoModel {
    fn from(model: Dinov3Model) -> Self {
        Self::Dinov3(model)
    }
}

impl Vit for DinoModel {
    fn info(&self) -> &VitInfo {
        self.inner().info()
    }

    fn device(&self) -> &Device {
        self.inner().device()
    }

    fn dtype(&self) -> DType {
        self.inner().dtype()
    }

    fn encode(&self, pixels: &Tensor, request: &EncodeRequest<'_>) -> Result<Encoded> {
        self.inner().encode(pixels, request)
    }

    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.inner().final_norm(x)
    }

    fn backbone_defaults(&self) -> BackboneOptions {
        self.inner().backbone_defaults()
    }
}
