//! The backbone: HF `Dinov2WithRegistersModel` (and `Dinov2Model`), its configuration, checkpoint
//! layouts, layers and fused CPU kernels, the backbone trait [`Vit`], HF's `Backbone` stage
//! selection, the typed intermediates API, `from_pretrained` and the image-classification head.
//!
//! Data flows downward: [`config`] and [`weights`] describe a checkpoint; `embeddings`, `pos_embed`,
//! `layers` and `kernels` build the encoder ([`Dinov2Model`]), which implements [`Vit`]; the HF
//! [`Backbone`], the intermediates API, [`DinoModel`] / [`Pretrained`] and
//! [`Dinov2ForImageClassification`] sit on top of it. For benchmarks and tests, [`random`] builds
//! models with seeded random weights and [`flops`] counts a forward pass's operations.

mod backbone;
mod classify;
pub mod config;
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
mod vit;
pub mod weights;

pub use backbone::{
    align_out_stages, Backbone, BackboneForwardOptions, BackboneOptions, BackboneOutput,
};
pub use classify::{Dinov2ForImageClassification, Prediction};
pub use config::{Dinov2Config, HiddenAct, ModelType};
pub use embeddings::Embeddings;
pub use encoder::Dinov2Model;
pub use intermediates::{
    Intermediates, IntermediatesOptions, LayerFeatures, LayerSelection, TokenLayout,
};
pub use layers::Qkv;
pub use load::{parse_device, LoadOptions};
pub use pretrained::{DinoModel, ModelConfig, ModelSource, Pretrained};
pub use vit::{EncodeRequest, Encoded, Family, ForwardOptions, ModelOutput, Vit, VitInfo};
