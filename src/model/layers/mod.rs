//! The building blocks of the ViT, written once and shared by both generations: linear layers,
//! patch embedding, attention (with DINOv3's RoPE), the plain and gated feed-forward networks,
//! layer norm and the pre-norm block. Each is built from already-fetched tensors ([`Linear`],
//! `new` constructors); the per-generation loaders map their checkpoint names onto them.
//! [`fused`] is the f32 CPU forward of a block on plain buffers.

mod attention;
mod block;
mod ffn;
pub(crate) mod fused;
mod linear;
mod norm;
mod patch_embed;
mod tokens;

pub use attention::{Attention, AttentionWeights, Qkv};
pub use block::{Block, BlockOptions};
pub use ffn::{FeedForward, FeedForwardKind};
pub use linear::Linear;
pub use norm::LayerNorm;
pub use patch_embed::PatchEmbed;
pub(crate) use tokens::{load_mask_token, load_registers, mask_patches};
