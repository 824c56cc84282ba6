//! `torch.nn.LayerNorm(D, eps)` over the last dimension (biased variance, affine), on `(…, D)`.

use candle::{Module, Tensor};
use dinoreg_heads::Scope;

use crate::Result;

/// LayerNorm over the last dimension, with weight and bias.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    inner: candle_nn::LayerNorm,
}

impl LayerNorm {
    /// Loads `weight` and `bias` `(dim,)` under `scope`.
    pub fn load(scope: &Scope<'_>, dim: usize, eps: f64) -> Result<Self> {
        let weight = scope.get("weight", &[dim])?;
        let bias = scope.get("bias", &[dim])?;
        Ok(Self {
            inner: candle_nn::LayerNorm::new(weight, bias, eps),
        })
    }

    /// Normalises `x` `(…, D)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.inner.forward(&x.contiguous()?)?)
    }
}
