//! A linear layer given as already-fetched tensors, as PyTorch's `nn.Linear` stores it: weight
//! `(out, in)`, optional bias `(out,)`; `y = x Wᵀ + b`. The layers of both generations are built
//! from these ([`Attention::new`](super::Attention::new), [`FeedForward`](super::FeedForward)'s
//! constructors), so a checkpoint loader only maps its names onto them.

use std::path::PathBuf;

use candle::Tensor;
use dinoreg_heads::Scope;

use crate::{Error, Result};

/// The weight `(out, in)` and optional bias `(out,)` of a linear layer.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `(out, in)`.
    pub weight: Tensor,
    /// `(out,)`, `None` for a layer without bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer from its tensors.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Loads `weight` `(output, input)` under `scope` and, when the checkpoint has one, `bias`
    /// `(output,)` (both shape-checked).
    pub fn load(scope: &Scope<'_>, input: usize, output: usize) -> Result<Self> {
        let weight = scope.get("weight", &[output, input])?;
        let bias = if scope.contains("bias") {
            Some(scope.get("bias", &[output])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// Checks the bias against the config flag `flag` whose value is `configured`: a missing bias
    /// the config asks for, or a bias the config says is absent, is an error naming both.
    pub fn expect_bias(self, scope: &Scope<'_>, flag: &str, configured: bool) -> Result<Self> {
        match (&self.bias, configured) {
            (None, true) => Err(dinoreg_heads::Error::MissingTensor {
                source_name: scope.store().source_name().to_string(),
                name: scope.path("bias"),
                expected: Some(vec![self.weight.dim(0)?]),
            }
            .into()),
            (Some(_), false) => Err(Error::Config {
                path: PathBuf::from("<config>"),
                reason: format!(
                    "{flag} is false but the checkpoint {} has `{}`; the config and the weights do not belong together",
                    scope.store().source_name(),
                    scope.path("bias")
                ),
            }),
            _ => Ok(self),
        }
    }

    /// Output features.
    pub fn out_features(&self) -> Result<usize> {
        Ok(self.weight.dim(0)?)
    }

    /// The bias, or zeros `(out,)` in the weight's dtype and device when there is none.
    pub(crate) fn bias_or_zeros(&self) -> Result<Tensor> {
        match &self.bias {
            Some(b) => Ok(b.clone()),
            None => Ok(Tensor::zeros(
                self.weight.dim(0)?,
                self.weight.dtype(),
                self.weight.device(),
            )?),
        }
    }
}
