//! Multi-head self-attention: HF `Dinov2WithRegistersSelfAttention` + `SelfOutput`. Separate q/k/v
//! projections in the checkpoint (fused here into one `(3D, D)` matmul; the dot products are the
//! same), scaled dot product with `head_dim^-0.5`, softmax in f32, optional per-head mask on the
//! probabilities, and the output projection.
//!
//! The block's layer scale can be folded into the output projection
//! ([`Attention::with_output_scale`]): `(ctx Wᵀ + b) ⊙ s = ctx (Wᵀ diag s) + b ⊙ s`.
//!
//! Shapes: x `(B, T, D)`; q, k, v `(B, H, T, D/H)`; probabilities `(B, H, T, T)`; output `(B, T, D)`.

use candle::{DType, Tensor, D};
use dinoreg_heads::Scope;

use crate::Result;

/// The attention queries, keys and values of one block, all heads concatenated: each `(B, T, D)`.
#[derive(Debug, Clone)]
pub struct Qkv {
    /// Queries `(B, T, D)` (before scaling).
    pub q: Tensor,
    /// Keys `(B, T, D)`.
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
    /// Loads `attention.query/key/value.{weight,bias}` and `output.dense.{weight,bias}` under
    /// `scope` (the block's `attention.` scope).
    pub fn load(scope: &Scope<'_>, dim: usize, heads: usize, qkv_bias: bool) -> Result<Self> {
        let inner = scope.pp("attention");
        let mut weights = Vec::with_capacity(3);
        let mut biases = Vec::with_capacity(3);
        for name in ["query", "key", "value"] {
            let s = inner.pp(name);
            weights.push(s.get("weight", &[dim, dim])?);
            if qkv_bias {
                biases.push(s.get("bias", &[dim])?);
            }
        }
        let qkv_weight_t = Tensor::cat(&weights, 0)?.t()?.contiguous()?;
        let qkv_bias = if qkv_bias {
            Some(Tensor::cat(&biases, 0)?)
        } else {
            None
        };
        let out = scope.pp("output").pp("dense");
        let out_weight_t = out.get("weight", &[dim, dim])?.t()?.contiguous()?;
        let out_bias = out.get("bias", &[dim])?;
        Ok(Self {
            qkv_weight_t,
            qkv_bias,
            out_weight_t,
            out_bias,
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

    /// Attends over `x` `(B, T, D)`. `head_mask` `(H,)` multiplies the probabilities of each head.
    pub fn forward(
        &self,
        x: &Tensor,
        head_mask: Option<&Tensor>,
        want_probs: bool,
        want_qkv: bool,
    ) -> Result<AttentionOutput> {
        let (b, t, d) = x.dims3()?;
        let h = self.heads;
        let hd = d / h;
        let mut qkv = x.broadcast_matmul(&self.qkv_weight_t)?;
        if let Some(bias) = &self.qkv_bias {
            qkv = qkv.broadcast_add(bias)?;
        }
        let kept = if want_qkv {
            Some(Qkv {
                q: qkv.narrow(D::Minus1, 0, d)?.contiguous()?,
                k: qkv.narrow(D::Minus1, d, d)?.contiguous()?,
                v: qkv.narrow(D::Minus1, 2 * d, d)?.contiguous()?,
            })
        } else {
            None
        };
        let qkv = qkv.reshape((b, t, 3, h, hd))?.permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = (q.matmul(&k.t()?)? * self.scale)?;
        let dtype = scores.dtype();
        let mut probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        if let Some(mask) = head_mask {
            probs = probs.broadcast_mul(&mask.reshape((1, h, 1, 1))?.to_dtype(dtype)?)?;
        }
        let ctx = probs.matmul(&v)?; // (B, H, T, hd)
        let ctx = ctx.transpose(1, 2)?.reshape((b, t, d))?;
        let output = ctx
            .broadcast_matmul(&self.out_weight_t)?
            .broadcast_add(&self.out_bias)?;
        Ok(AttentionOutput {
            output,
            probs: want_probs.then_some(probs),
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
