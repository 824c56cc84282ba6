//! The backbone: HF `Dinov2WithRegistersModel` (and `Dinov2Model`), its configuration, checkpoint
//! layouts, layers and fused CPU kernels, the HF `Backbone` stage selection, the typed
//! intermediates API and the image-classification head.
//!
//! Data flows downward: [`config`] and [`weights`] describe a checkpoint; `embeddings`, `pos_embed`,
//! `layers` and `kernels` build the encoder ([`Dinov2Model`]); [`Dinov2Backbone`], the intermediates
//! API and [`Dinov2ForImageClassification`] sit on top of it.

mod backbone;
mod classify;
pub mod config;
mod embeddings;
mod encoder;
mod intermediates;
pub(crate) mod kernels;
pub(crate) mod layers;
mod pos_embed;
pub mod weights;

pub use backbone::{align_out_stages, BackboneOptions, BackboneOutput, Dinov2Backbone};
pub use classify::{Dinov2ForImageClassification, Prediction};
pub use config::{Dinov2Config, HiddenAct, ModelType};
pub use embeddings::Embeddings;
pub(crate) use encoder::Plan;
pub use encoder::{Dinov2Model, ForwardOptions, LoadOptions, ModelOutput};
pub use intermediates::{
    Intermediates, IntermediatesOptions, LayerFeatures, LayerSelection, TokenLayout,
};
pub use layers::Qkv;
