//! One pre-norm transformer block: HF `Dinov2WithRegistersLayer`.
//! `h = x + ls1 ⊙ attn(norm1(x))`, `out = h + ls2 ⊙ ffn(norm2(h))`. Shapes `(B, T, D)`.
//! The layer scales are folded into the output projections at load time; f32 CPU runs go
//! through [`super::fused`], everything else through candle ops here.

use candle::Tensor;
use dinoreg_heads::Scope;

use super::{Attention, FeedForward, LayerNorm, Qkv};
use crate::model::config::Dinov2Config;
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

impl Block {
    /// Loads block `encoder.layer.{i}` from `scope` (already scoped to it).
    pub fn load(scope: &Scope<'_>, cfg: &Dinov2Config) -> Result<Self> {
        let d = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        Ok(Self {
            norm1: LayerNorm::load(&scope.pp("norm1"), d, eps)?,
            attention: Attention::load(
                &scope.pp("attention"),
                d,
                cfg.num_attention_heads,
                cfg.qkv_bias,
            )?
            .with_output_scale(&scope.pp("layer_scale1").get("lambda1", &[d])?)?,
            norm2: LayerNorm::load(&scope.pp("norm2"), d, eps)?,
            ffn: FeedForward::load(&scope.pp("mlp"), cfg)?
                .with_output_scale(&scope.pp("layer_scale2").get("lambda1", &[d])?)?,
        })
    }

    /// The parts, for the fused path.
    pub(crate) fn parts(&self) -> (&LayerNorm, &Attention, &LayerNorm, &FeedForward) {
        (&self.norm1, &self.attention, &self.norm2, &self.ffn)
    }

    /// Runs the block on `x` `(B, T, D)`.
    pub fn forward(&self, x: &Tensor, opts: BlockOptions<'_>) -> Result<BlockOutput> {
        let a = self.attention.forward(
            &self.norm1.forward(x)?,
            opts.head_mask,
            opts.attention,
            opts.qkv,
        )?;
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
