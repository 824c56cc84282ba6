//! # dinoreg
//!
//! DINOv2 with registers (Darcet et al., "Vision Transformers Need Registers") as a dense-prediction
//! backbone on candle, with the numbers of HF transformers' `Dinov2WithRegistersModel`,
//! `Dinov2WithRegistersForImageClassification` and `Dinov2WithRegistersBackbone`, and pluggable heads
//! ([`heads`]) for segmentation, depth and unsupervised object discovery.

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
pub use model::kernels::memory::{available_memory, set_memory_limit};
pub use model::kernels::profile;
pub use model::{
    align_out_stages, BackboneOptions, BackboneOutput, Dinov2Backbone, Dinov2Config,
    Dinov2ForImageClassification, Dinov2Model, ForwardOptions, HiddenAct, Intermediates,
    IntermediatesOptions, LayerFeatures, LayerSelection, LoadOptions, ModelOutput, ModelType,
    Prediction, TokenLayout,
};
pub use preprocess::{DenseMeta, DenseOptions, ImageProcessor, ProcessorConfig};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
