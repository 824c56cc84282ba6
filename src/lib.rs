//! # dinoreg
//!
//! DINOv2 with registers (Darcet et al., "Vision Transformers Need Registers") as a dense-prediction
//! backbone on candle, with the numbers of HF transformers' `Dinov2WithRegistersModel`,
//! `Dinov2WithRegistersForImageClassification` and `Dinov2WithRegistersBackbone`, and of its
//! successor's `DINOv3ViTModel` and `DINOv3ViTBackbone` ([`Dinov3Model`], [`DinoModel`] loads
//! either), and pluggable heads ([`heads`]) for segmentation, depth and unsupervised object
//! discovery.

#![warn(missing_docs)]

pub mod error;
pub mod io;
pub mod model;
pub mod preprocess;
pub mod retrieval;
pub mod viz;

pub use dinoreg_heads as heads;
pub use error::{Error, Result};
pub use io::hub::{resolve_model, ModelFiles};
pub use io::image::{AlphaMode, DecodeLimits};
pub use model::kernels::profile;
pub use model::{
    align_out_stages, Backbone, BackboneForwardOptions, BackboneOptions, BackboneOutput, DinoModel,
    Dinov2Config, Dinov2ForImageClassification, Dinov2Model, Dinov3Config, Dinov3Model,
    EncodeRequest, Encoded, Family, ForwardOptions, HiddenAct, Intermediates, IntermediatesOptions,
    LayerFeatures, LayerSelection, LoadOptions, ModelConfig, ModelOutput, ModelSource, ModelType,
    Prediction, Pretrained, TokenLayout, Vit, VitInfo,
};
pub use preprocess::{DenseMeta, DenseOptions, ImageProcessor, ProcessorConfig};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
