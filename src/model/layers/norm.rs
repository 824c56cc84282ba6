//! `torch.nn.LayerNorm(D, eps)` over the last dimension (biased variance, affine), on `(…, D)`.
//! f32 CPU inputs take the fused row kernel; other devices and dtypes candle's `layer_norm`.

use std::ops::Deref;

use candle::{DType, Module, Tensor};
use dinoreg_heads::Scope;

use crate::model::kernels::{rows, weights::f32_slice};
use crate::Result;

/// LayerNorm over the last dimension, with weight and bias.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    inner: candle_nn::LayerNorm,
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// A norm from its weight and bias `(dim,)`.
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self {
            inner: candle_nn::LayerNorm::new(weight.clone(), bias.clone(), eps),
            weight,
            bias,
            eps,
        }
    }

    /// Loads `weight` and `bias` `(dim,)` under `scope`.
    pub fn load(scope: &Scope<'_>, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self::new(
            scope.get("weight", &[dim])?,
            scope.get("bias", &[dim])?,
            eps,
        ))
    }

    /// Normalises `x` `(…, D)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            if let Some(out) = self.forward_cpu(&x)? {
                return Ok(out);
            }
        }
        Ok(self.inner.forward(&x)?)
    }

    fn forward_cpu(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let (Some(w), Some(b)) = (f32_slice(&self.weight), f32_slice(&self.bias)) else {
            return Ok(None);
        };
        let mut data = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; data.len()];
        rows::layer_norm(&mut data, None, &w, &b, self.eps as f32, &mut out);
        Ok(Some(Tensor::from_vec(out, x.shape(), x.device())?))
    }

    /// The parameters as f32 CPU slices `(weight, bias)`, for the fused path.
    pub(crate) fn slices(
        &self,
    ) -> Option<(
        impl Deref<Target = [f32]> + '_,
        impl Deref<Target = [f32]> + '_,
    )> {
        Some((f32_slice(&self.weight)?, f32_slice(&self.bias)?))
    }

    /// The epsilon.
    pub(crate) fn eps(&self) -> f32 {
        self.eps as f32
    }
}
