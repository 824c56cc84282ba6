//! The building blocks of the ViT, written once and shared: patch embedding, attention, the two
//! feed-forward variants, layer scale and the pre-norm block. Each is loaded from a [`Scope`] whose
//! names are HF's checkpoint keys. [`fused`] is the f32 CPU forward of a block on plain buffers.
//!
//! [`Scope`]: dinoreg_heads::Scope

mod attention;
mod block;
mod ffn;
pub(crate) mod fused;
mod norm;
mod patch_embed;

pub use attention::{Attention, Qkv};
pub use block::{Block, BlockOptions};
pub use ffn::FeedForward;
pub use norm::LayerNorm;
pub use patch_embed::PatchEmbed;
