//! # dinoreg
//!
//! DINOv2 with registers (Darcet et al., *Vision Transformers Need Registers*) and DINOv3 as
//! dense-prediction backbones on [candle], with the numbers of HF transformers'
//! `Dinov2WithRegistersModel` / `Dinov2WithRegistersBackbone` /
//! `Dinov2WithRegistersForImageClassification` (and `DINOv3ViTModel` / `DINOv3ViTBackbone`), heads
//! for segmentation, depth and unsupervised object discovery ([`heads`]), retrieval embeddings,
//! and task pipelines that own their preprocessing and post-processing ([`pipelines`]).
//!
//! ## Quick start
//!
//! A model comes from a Hub id (`facebook/dinov2-with-registers-small`, downloaded once into the
//! Hugging Face cache), a local folder or a bare original `.pth`, with the image processor its
//! checkpoint was made for. The tiny random-weight fixture model of this repository stands in here.
//!
//! ```
//! # fn main() -> dinoreg::Result<()> {
//! use dinoreg::{Backbone, BackboneOptions, DinoModel, LoadOptions, Vit};
//!
//! let pretrained = DinoModel::from_pretrained("tests/fixtures/model/reg4", &LoadOptions::default())?;
//! let (model, processor) = (pretrained.model, pretrained.processor);
//!
//! // HF's preprocessing and forward: last_hidden_state (B, 1 + R + h*w, D), pooler_output (B, D).
//! let pixels = processor.pixels("examples/images/chelsea.png", model.device())?;
//! let out = model.forward(&pixels)?;
//! assert_eq!(out.last_hidden_state.dims(), &[1, 1 + 4 + 56 * 56, 32]);
//!
//! // HF's Backbone: stages by index or name, CLS and registers dropped, (B, D, h, w) maps.
//! let backbone = Backbone::new(&model, &BackboneOptions::default().with_out_indices(vec![1, -1]))?;
//! let maps = backbone.forward(&pixels)?.feature_maps;
//! assert_eq!(maps[0].dims(), &[1, 32, 56, 56]);
//! # Ok(())
//! # }
//! ```
//!
//! A task in one call: a pipeline built from a model source and typed options.
//!
//! ```
//! # fn main() -> dinoreg::Result<()> {
//! use dinoreg::pipelines::{FeaturesOptions, FeaturesPipeline, Resolution};
//! use dinoreg::preprocess::DenseOptions;
//! use dinoreg::LoadOptions;
//!
//! // Dense features at the image's aspect ratio, short side 112 px.
//! let options = FeaturesOptions::default()
//!     .with_resolution(Resolution::Dense(DenseOptions::default().with_short_side(Some(112))));
//! let pipeline = FeaturesPipeline::from_pretrained("tests/fixtures/model/reg4", &options, &LoadOptions::default())?;
//! let features = pipeline.run_path("examples/images/chelsea.png")?;
//! assert_eq!(features.stages[0].1.dims(), &[1, 32, 28, 42]); // 300x451 px -> 112x168 -> 28x42 patches
//! # Ok(())
//! # }
//! ```
//!
//! ## Map of the crate
//!
//! | module | what |
//! | --- | --- |
//! | [`model`] | configs, checkpoints, the encoders ([`Dinov2Model`]), the backbone trait [`Vit`], HF's [`Backbone`], intermediates, classification, `from_pretrained` |
//! | [`preprocess`] | HF image processors (Pillow-exact), the dense mode |
//! | [`pipelines`] | depth, segmentation, probe training, discovery, retrieval, classification, features |
//! | [`heads`] | the `dinoreg-heads` crate: the [`Head`](heads::Head) contract and the heads |
//! | [`retrieval`], [`viz`] | embedding indexes and search; PCA, attention and norm pictures |
//! | [`io`] | the Hub cache, image decoding with limits, `.npy`, atomic writes |
//!
//! ## Conventions
//!
//! - **Indices**: HF's stage numbering for backbone outputs (`0` = `stem`, `j` = `stage{j}`), block
//!   numbering (`0..L`) only where a name says "block"; negative indices count from the end; all are
//!   `i64` (see [`model::Vit`]).
//! - **Sharing a model**: [`Vit`] is implemented for `&M`, `Box<M>` and `Arc<M>`; a backbone or a
//!   pipeline owns, borrows or shares its model as you choose. Models and pipelines are
//!   `Send + Sync`.
//! - **Errors**: every failure on user input is an [`Error`] with a one-line message naming the thing
//!   and what was expected; nothing panics on user input.
//! - **Options** are typed structs with `with_*` setters.
//!
//! ## Cargo features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `cli` | yes | the `dinoreg` binary (clap, indicatif) |
//! | `hub` | yes | downloads from the Hugging Face Hub (the cache is read without it) |
//! | `ann` | yes | the approximate nearest-neighbour index (`retrieval::approx`) |
//! | `datasets` | yes | VOC / COCO ground-truth readers for CorLoc |
//! | `draw` | yes | drawing discovery boxes (imageproc) |
//! | `cuda` | no | candle's CUDA backend |
//!
//! With `default-features = false` the library builds alone, without any of the first five.
//!
//! [candle]: https://github.com/huggingface/candle

#![warn(missing_docs)]

pub mod error;
pub mod io;
pub mod model;
pub mod pipelines;
pub mod preprocess;
pub mod progress;
pub mod retrieval;
pub mod viz;

pub use dinoreg_heads as heads;
pub use error::{Error, Result};
pub use io::hub::{resolve_model, ModelFiles};
pub use io::image::{AlphaMode, DecodeLimits};
pub use model::kernels::memory::{available_memory, set_memory_limit};
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
