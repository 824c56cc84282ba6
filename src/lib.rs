//! # dinoreg
//!
//! DINOv2 with registers (Darcet et al., "Vision Transformers Need Registers") as a dense-prediction
//! backbone on candle, with the numbers of HF transformers' `Dinov2WithRegistersModel`,
//! `Dinov2WithRegistersForImageClassification` and `Dinov2WithRegistersBackbone`, and pluggable heads
//! ([`heads`]) for segmentation, depth and unsupervised object discovery.

#![warn(missing_docs)]

pub mod backbone;
pub mod classify;
pub mod colormap;
pub mod config;
pub mod embeddings;
pub mod error;
pub mod hub;
pub mod image_io;
pub mod intermediates;
mod kernels;
pub mod layers;
pub mod model;
pub mod npy;
pub mod output;
pub mod pos_embed;
pub mod preprocess;
pub mod retrieval;
pub mod viz;
pub mod weights;

pub use backbone::{align_out_stages, BackboneOptions, BackboneOutput, Dinov2Backbone};
pub use classify::{Dinov2ForImageClassification, Prediction};
pub use config::{Dinov2Config, HiddenAct, ModelType};
pub use dinoreg_heads as heads;
pub use error::{Error, Result};
pub use hub::{resolve_model, ModelFiles};
pub use image_io::{AlphaMode, DecodeLimits};
pub use intermediates::{
    Intermediates, IntermediatesOptions, LayerFeatures, LayerSelection, TokenLayout,
};
pub use kernels::profile;
pub use model::{Dinov2Model, ForwardOptions, LoadOptions, ModelOutput};
pub use preprocess::{DenseMeta, DenseOptions, ImageProcessor, ProcessorConfig};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
