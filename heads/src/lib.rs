//! # dinoreg-heads
//!
//! Dense-prediction heads that consume ViT feature maps, on candle: semantic segmentation (dinov2's
//! BNHead, linear and multi-scale), depth (Depth-Anything-V2's DPT, dinov2's linear and DPT depth
//! heads) and unsupervised object discovery (LOST, TokenCut).
//!
//! A head depends on no backbone. It states what it needs in a [`FeatureRequest`] (which blocks, with
//! or without the final LayerNorm and CLS tokens, output tokens or attention keys) and receives
//! [`FeatureMaps`]: patch maps `(B, C, h, w)`, optional CLS tokens `(B, C)`, the patch size and the
//! input size. `dinoreg`'s backbone produces them; any other ViT can too.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod depth;
pub mod discovery;
mod error;
pub mod features;
pub mod nn;
pub mod ops;
pub mod segmentation;

pub use checkpoint::{Scope, TensorStore};
pub use error::{Error, Result};
pub use features::{FeatureMaps, FeatureRequest, FeatureSource, Head};
