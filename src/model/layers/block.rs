//! One pre-norm transformer block of either generation: HF `Dinov2WithRegistersLayer` and
//! `DINOv3ViTLayer`. `h = x + ls1 ⊙ attn(norm1(x))`, `out = h + ls2 ⊙ ffn(norm2(h))`. Shapes
//! `(B, T, D)`.
//! The layer scales are folded into the output projections at load time; f32 CPU runs go
//! through [`super::fused`], everything else through candle ops here.

use candle::Tensor;
use dinoreg_heads::Scope;

use super::{Attention, FeedForward, LayerNorm, Qkv};
use crate::model::rope::RopeTable;
use crate::Result;

/// What a block should return besides its output.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockOptions<'a> {
    /// Per-head multipliers `(H,)` of the attention probabilities.
    pub head_mask: Option<&'a Tensor>,
    /// Return the attention probabilities.
    pub attention: bool,
    /// Return q, k, v.
    pub qkv: bool,
    /// The RoPE table of the input's patch grid (DINOv3), rotating the q and k of the patch
    /// tokens.
    pub rope: Option<&'a RopeTable>,
}

/// A block's output.
#[derive(Debug, Clone)]
pub struct BlockOutput {
    /// `(B, T, D)`.
    pub hidden: Tensor,
    /// `(B, H, T, T)` when requested.
    pub attention: Option<Tensor>,
    /// q, k, v when requested.
    pub qkv: Option<Qkv>,
}

/// A transformer block.
#[derive(Debug, Clone)]
pub struct Block {
    norm1: LayerNorm,
    attention: Attention,
    norm2: LayerNorm,
    ffn: FeedForward,
}

/// The parts of a block, built by a checkpoint loader. The layer scales `(D,)` are folded into
/// the attention's output projection and the feed-forward network's last layer.
#[derive(Debug, Clone)]
pub struct BlockParts {
    /// The norm before the attention.
    pub norm1: LayerNorm,
    /// The attention.
    pub attention: Attention,
    /// The attention's layer scale `(D,)`.
    pub layer_scale1: Tensor,
    /// The norm before the feed-forward network.
    pub norm2: LayerNorm,
    /// The feed-forward network.
    pub ffn: FeedForward,
    /// The feed-forward network's layer scale `(D,)`.
    pub layer_scale2: Tensor,
}

impl Block {
    /// Builds a block from its parts, folding the layer scales in.
    pub fn new(parts: BlockParts) -> Result<Self> {
        Ok(Self {
            norm1: parts.norm1,
            attention: parts.attention.with_output_scale(&parts.layer_scale1)?,
            norm2: parts.norm2,
            ffn: parts.ffn.with_output_scale(&parts.layer_scale2)?,
        })
    }

    /// Builds a block from its `attention` and `ffn` and the parts both generations' HF
    /// checkpoints name alike under the block's `scope`: `norm1`, `norm2` (weight and bias `(D,)`,
    /// epsilon `eps`) and `layer_scale1.lambda1`, `layer_scale2.lambda1` `(D,)`.
    pub fn load(
        scope: &Scope<'_>,
        dim: usize,
        eps: f64,
        attention: Attention,
        ffn: FeedForward,
    ) -> Result<Self> {
        Self::new(BlockParts {
            norm1: LayerNorm::load(&scope.pp("norm1"), dim, eps)?,
            attention,
            layer_scale1: scope.pp("layer_scale1").get("lambda1", &[dim])?,
            norm2: LayerNorm::load(&scope.pp("norm2"), dim, eps)?,
            ffn,
            layer_scale2: scope.pp("layer_scale2").get("lambda1", &[dim])?,
        })
    }

    /// The parts, for the fused path.
    pub(crate) fn parts(&self) -> (&LayerNorm, &Attention, &LayerNorm, &FeedForward) {
        (&self.norm1, &self.attention, &self.norm2, &self.ffn)
    }

    /// Runs the block on `x` `(B, T, D)`.
    pub fn forward(&self, x: &Tensor, opts: BlockOptions<'_>) -> Result<BlockOutput> {
        let a = self.attention.forward(&self.norm1.forward(x)?, opts)?;
        let h = (x + a.output)?;
        let f = self.ffn.forward(&self.norm2.forward(&h)?)?;
        let hidden = (&h + f)?;
        Ok(BlockOutput {
            hidden,
            attention: a.probs,
            qkv: a.qkv,
        })
    }
}
