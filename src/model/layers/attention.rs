//! Multi-head self-attention of both generations: HF `Dinov2WithRegistersSelfAttention` +
//! `SelfOutput` and `DINOv3ViTAttention`. Separate q/k/v projections in the checkpoint (fused here
//! into one `(3D, D)` matmul; the dot products are the same), DINOv3's RoPE on the q and k of the
//! patch tokens ([`RopeTable`](crate::model::RopeTable)), scaled dot product with `head_dim^-0.5`,
//! softmax in f32, optional per-head mask on the probabilities, and the output projection. Any of
//! the four biases may be absent (DINOv3's `key_bias`, `proj_bias`, ...): it then acts as zeros.
//!
//! The block's layer scale can be folded into the output projection
//! ([`Attention::with_output_scale`]): `(ctx Wᵀ + b) ⊙ s = ctx (Wᵀ diag s) + b ⊙ s`.
//!
//! Shapes: x `(B, T, D)`; q, k, v `(B, H, T, D/H)`; probabilities `(B, H, T, T)`; output `(B, T, D)`.

use candle::{DType, Tensor};

use super::{BlockOptions, Linear};
use crate::{Error, Result};

/// The attention queries, keys and values of one block, all heads concatenated: each `(B, T, D)`.
#[derive(Debug, Clone)]
pub struct Qkv {
    /// Queries `(B, T, D)` (before scaling; after RoPE for a model that has it).
    pub q: Tensor,
    /// Keys `(B, T, D)` (after RoPE for a model that has it).
    pub k: Tensor,
    /// Values `(B, T, D)`.
    pub v: Tensor,
}

/// What [`Attention::forward`] returns.
#[derive(Debug, Clone)]
pub struct AttentionOutput {
    /// `(B, T, D)` after the output projection.
    pub output: Tensor,
    /// The attention probabilities `(B, H, T, T)`, when requested.
    pub probs: Option<Tensor>,
    /// q, k, v, when requested.
    pub qkv: Option<Qkv>,
}

/// The four projections of an attention layer, as fetched from a checkpoint: q, k, v and the
/// output projection, each `(D, D)` with an optional bias (absent ones act as zeros).
#[derive(Debug, Clone)]
pub struct AttentionWeights {
    /// The query projection.
    pub q: Linear,
    /// The key projection.
    pub k: Linear,
    /// The value projection.
    pub v: Linear,
    /// The output projection.
    pub o: Linear,
}

/// Self-attention with fused q/k/v weights.
#[derive(Debug, Clone)]
pub struct Attention {
    /// `(D, 3D)`: the transposed concatenation of the query, key and value weights.
    qkv_weight_t: Tensor,
    qkv_bias: Option<Tensor>,
    out_weight_t: Tensor,
    out_bias: Tensor,
    heads: usize,
    scale: f64,
}

impl Attention {
    /// Builds the layer from its projections and head count. The q/k/v weights are fused into
    /// one `(D, 3D)` matrix; their biases into one `(3D,)` vector (zeros where one is absent, none
    /// at all when all three are).
    pub fn new(weights: AttentionWeights, heads: usize) -> Result<Self> {
        let AttentionWeights { q, k, v, o } = weights;
        let dim = o.out_features()?;
        if heads == 0 || dim % heads != 0 {
            return Err(Error::option(
                "num_attention_heads",
                format!("{heads} heads do not divide the width {dim}"),
            ));
        }
        let parts = [&q, &k, &v];
        let qkv_weight_t = Tensor::cat(&parts.map(|l| &l.weight), 0)?
            .t()?
            .contiguous()?;
        let qkv_bias = if parts.iter().any(|l| l.bias.is_some()) {
            let biases = parts
                .iter()
                .map(|l| l.bias_or_zeros())
                .collect::<Result<Vec<_>>>()?;
            Some(Tensor::cat(&biases, 0)?)
        } else {
            None
        };
        Ok(Self {
            qkv_weight_t,
            qkv_bias,
            out_weight_t: o.weight.t()?.contiguous()?,
            out_bias: o.bias_or_zeros()?,
            heads,
            scale: ((dim / heads) as f64).powf(-0.5),
        })
    }

    /// Multiplies the output by `scale` `(D,)` (the block's layer scale), folded into the output
    /// projection's weight and bias (in f32, then back to the weights' dtype).
    pub fn with_output_scale(mut self, scale: &Tensor) -> Result<Self> {
        let (w, b) = fold_output_scale(&self.out_weight_t, &self.out_bias, scale)?;
        self.out_weight_t = w;
        self.out_bias = b;
        Ok(self)
    }

    /// Attends over `x` `(B, T, D)` with the options of the block: the per-head mask `(H,)` of
    /// the probabilities, the RoPE table rotating the q and k of the patch tokens (the last
    /// `h·w` tokens), and which extras to return (q and k are returned after RoPE).
    pub fn forward(&self, x: &Tensor, opts: BlockOptions<'_>) -> Result<AttentionOutput> {
        let (b, t, d) = x.dims3()?;
        let h = self.heads;
        let hd = d / h;
        let mut qkv = x.broadcast_matmul(&self.qkv_weight_t)?;
        if let Some(bias) = &self.qkv_bias {
            qkv = qkv.broadcast_add(bias)?;
        }
        let qkv = qkv.reshape((b, t, 3, h, hd))?.permute((2, 0, 3, 1, 4))?;
        let mut q = qkv.get(0)?.contiguous()?;
        let mut k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        if let Some(rope) = opts.rope {
            q = rope.rotate(&q)?;
            k = rope.rotate(&k)?;
        }
        let kept = if opts.qkv {
            let merge = |x: &Tensor| -> Result<Tensor> {
                Ok(x.transpose(1, 2)?.contiguous()?.reshape((b, t, d))?)
            };
            Some(Qkv {
                q: merge(&q)?,
                k: merge(&k)?,
                v: merge(&v)?,
            })
        } else {
            None
        };
        let scores = (q.matmul(&k.t()?)? * self.scale)?;
        let dtype = scores.dtype();
        let mut probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        if let Some(mask) = opts.head_mask {
            probs = probs.broadcast_mul(&mask.reshape((1, h, 1, 1))?.to_dtype(dtype)?)?;
        }
        let ctx = probs.matmul(&v)?; // (B, H, T, hd)
        let ctx = ctx.transpose(1, 2)?.reshape((b, t, d))?;
        let output = ctx
            .broadcast_matmul(&self.out_weight_t)?
            .broadcast_add(&self.out_bias)?;
        Ok(AttentionOutput {
            output,
            probs: opts.attention.then_some(probs),
            qkv: kept,
        })
    }

    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// The scale of the scores, `head_dim^-0.5`.
    pub(crate) fn scale(&self) -> f64 {
        self.scale
    }

    /// The fused q/k/v weight `(D, 3D)` and bias `(3D,)`, the output weight `(D, D)` (transposed,
    /// scale folded in) and its bias `(D,)`.
    pub(crate) fn tensors(&self) -> (&Tensor, Option<&Tensor>, &Tensor, &Tensor) {
        (
            &self.qkv_weight_t,
            self.qkv_bias.as_ref(),
            &self.out_weight_t,
            &self.out_bias,
        )
    }
}

/// `(Wᵀ diag s, b ⊙ s)` for a transposed weight `(in, out)`, bias `(out,)` and scale `(out,)`.
pub(crate) fn fold_output_scale(
    weight_t: &Tensor,
    bias: &Tensor,
    scale: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let dtype = weight_t.dtype();
    let s = scale.to_dtype(DType::F32)?;
    let w = weight_t
        .to_dtype(DType::F32)?
        .broadcast_mul(&s.unsqueeze(0)?)?;
    let b = (bias.to_dtype(DType::F32)? * &s)?;
    Ok((
        w.to_dtype(dtype)?.contiguous()?,
        b.to_dtype(dtype)?.contiguous()?,
    ))
}
