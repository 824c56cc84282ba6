//! The backbone of both generations: HF `Dinov2WithRegistersModel` (and `Dinov2Model`) and
//! `DINOv3ViTModel`, their configurations, checkpoint layouts, the shared layers, encoder and fused
//! CPU kernels, the backbone trait [`Vit`], HF's `Backbone` stage selection, the typed intermediates
//! API, `from_pretrained` and the image-classification head.
//!
//! Data flows downward: [`config`] and [`weights`] describe a checkpoint; `layers` and `kernels`
//! are written once; `embeddings` + `pos_embed` (DINOv2's learned, resized position table) and
//! [`dinov3`] (DINOv3's embeddings, checkpoint names and original layout) + [`rope`] feed the
//! shared `encoder`, which [`Dinov2Model`] and [`Dinov3Model`] wrap and which implements [`Vit`];
//! the HF [`Backbone`], the intermediates API, [`DinoModel`] / [`Pretrained`] and
//! [`Dinov2ForImageClassification`] sit on top of it. For benchmarks and tests, [`random`] builds
//! models with seeded random weights and [`flops`] counts a forward pass's operations.

mod backbone;
mod classify;
pub mod config;
mod dinov2;
pub mod dinov3;
mod embeddings;
mod encoder;
pub mod flops;
mod intermediates;
pub(crate) mod kernels;
pub(crate) mod layers;
mod load;
mod pos_embed;
mod pretrained;
pub mod random;
pub mod rope;
mod vit;
pub mod weights;

pub use backbone::{
    align_out_stages, Backbone, BackboneForwardOptions, BackboneOptions, BackboneOutput,
};
pub use classify::{Dinov2ForImageClassification, Prediction};
pub use config::{Dinov2Config, Dinov3Config, HiddenAct, ModelType, DINOV3_HUB_IDS};
pub use dinov2::Dinov2Model;
pub use dinov3::{Dinov3Embeddings, Dinov3Model};
pub use embeddings::Embeddings;
pub use intermediates::{
    Intermediates, IntermediatesOptions, LayerFeatures, LayerSelection, TokenLayout,
};
pub use layers::Qkv;
pub use load::{parse_device, LoadOptions};
pub use pretrained::{DinoModel, ModelConfig, ModelSource, Pretrained};
pub use rope::{Rope, RopeTable};
pub use vit::{EncodeRequest, Encoded, Family, ForwardOptions, ModelOutput, Vit, VitInfo};
