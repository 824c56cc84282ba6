//! The floating-point operations of one ViT forward pass (multiply-adds × 2), for reporting GFLOP/s
//! in benchmarks: the patch embedding, and per block the q/k/v and output projections, the attention
//! scores and weighted values, and the feed-forward network. Norms, softmax, GELU and the position
//! table's resize are left out (they are a few percent).
//!
//! For `B` images of `T = 1 + R + N` tokens of width `D` (`N` patches of `p × p × C` pixels):
//! `2·B·N·(C·p²)·D + L · (2·B·T·(4·D² + D·F) + 4·B·T²·D)`, `F` the feed-forward's multiply-adds
//! per token and per unit of `D` (`2·h` for an MLP of hidden size `h`, `3·h` for SwiGLU).

use crate::model::config::Dinov2Config;
use crate::model::pretrained::ModelConfig;
use crate::model::vit::VitInfo;

/// The feed-forward network of a block, which [`VitInfo`] does not describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedForward {
    /// `fc2(act(fc1(x)))` with hidden size `h`.
    Mlp(usize),
    /// SwiGLU, `w_out(silu(x W₁) ⊙ x W₂)` with hidden size `h` (`weights_in` is `D → 2h`).
    SwiGlu(usize),
}

impl FeedForward {
    /// The feed-forward network of a DINOv2 config.
    pub fn of_dinov2(config: &Dinov2Config) -> Self {
        if config.use_swiglu_ffn {
            Self::SwiGlu(config.swiglu_hidden_size())
        } else {
            Self::Mlp(config.mlp_hidden_size())
        }
    }

    /// The feed-forward network of a config of any generation.
    pub fn of(config: &ModelConfig) -> Self {
        match config {
            ModelConfig::Dinov2(c) => Self::of_dinov2(c),
            ModelConfig::Dinov3(c) if c.use_gated_mlp => Self::SwiGlu(c.intermediate_size),
            ModelConfig::Dinov3(c) => Self::Mlp(c.intermediate_size),
        }
    }

    /// Multiply-adds per token, divided by the token width `D`.
    fn macs_per_width(self) -> f64 {
        match self {
            Self::Mlp(h) => 2.0 * h as f64,
            Self::SwiGlu(h) => 3.0 * h as f64,
        }
    }
}

/// FLOPs of one forward pass of `batch` images of `input` `(H, W)` pixels (see the module docs).
///
/// ```
/// use dinoreg::model::flops::{forward_flops, FeedForward};
/// use dinoreg::{Dinov2Config, Family, VitInfo};
///
/// let config = Dinov2Config::small();
/// let info = VitInfo::new(Family::Dinov2, 14, 384, 12, 6).with_register_tokens(4);
/// let gflop = forward_flops(&info, FeedForward::of_dinov2(&config), 1, (224, 224)) / 1e9;
/// assert!((gflop - 12.455).abs() < 1e-3, "{gflop}");
/// ```
pub fn forward_flops(info: &VitInfo, ffn: FeedForward, batch: usize, input: (usize, usize)) -> f64 {
    let p = info.patch_size.max(1);
    let patches = (input.0 / p) * (input.1 / p);
    let t = (1 + info.num_register_tokens + patches) as f64;
    let (b, d) = (batch as f64, info.hidden_size as f64);
    let per_block = 2.0 * b * t * (4.0 * d * d + d * ffn.macs_per_width()) + 4.0 * b * t * t * d;
    let embed = 2.0 * b * patches as f64 * (info.num_channels * p * p) as f64 * d;
    embed + info.num_hidden_layers as f64 * per_block
}
