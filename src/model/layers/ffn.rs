//! The feed-forward part of a block: HF `Dinov2WithRegistersMLP` (`fc2(act(fc1(x)))`, exact erf
//! GELU by default) or `Dinov2WithRegistersSwiGLUFFN` (`weights_out(silu(x1) * x2)` with
//! `x1, x2 = weights_in(x).chunk(2)`, the giant model's). Shapes: `(B, T, D)` → `(B, T, D)`.
//! The block's layer scale can be folded into the second linear layer
//! ([`FeedForward::with_output_scale`]).

use candle::{Tensor, D};
use dinoreg_heads::Scope;

use super::attention::fold_output_scale;
use crate::model::config::{Dinov2Config, HiddenAct};
use crate::Result;

/// A linear layer stored transposed for a plain matmul: `y = x Wᵀ + b`.
#[derive(Debug, Clone)]
struct Dense {
    weight_t: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(scope: &Scope<'_>, input: usize, output: usize) -> Result<Self> {
        Ok(Self {
            weight_t: scope.get("weight", &[output, input])?.t()?.contiguous()?,
            bias: scope.get("bias", &[output])?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_matmul(&self.weight_t)?
            .broadcast_add(&self.bias)?)
    }
}

/// The block's feed-forward network.
#[derive(Debug, Clone)]
pub enum FeedForward {
    /// `fc1` → activation → `fc2`.
    Mlp {
        /// `fc1`.
        fc1: Box<DenseParts>,
        /// The activation.
        act: HiddenAct,
    },
    /// SwiGLU: `weights_in` `(2h, D)`, `weights_out` `(D, h)`.
    SwiGlu(Box<DenseParts>),
}

/// The two linear layers of a feed-forward network.
#[derive(Debug, Clone)]
pub struct DenseParts {
    first: Dense,
    second: Dense,
    hidden: usize,
}

impl FeedForward {
    /// Loads `mlp.fc1/fc2` or, for SwiGLU configs, `mlp.weights_in/weights_out` under `scope`.
    pub fn load(scope: &Scope<'_>, cfg: &Dinov2Config) -> Result<Self> {
        let d = cfg.hidden_size;
        if cfg.use_swiglu_ffn {
            let h = cfg.swiglu_hidden_size();
            Ok(Self::SwiGlu(Box::new(DenseParts {
                first: Dense::load(&scope.pp("weights_in"), d, 2 * h)?,
                second: Dense::load(&scope.pp("weights_out"), h, d)?,
                hidden: h,
            })))
        } else {
            let h = cfg.mlp_hidden_size();
            Ok(Self::Mlp {
                fc1: Box::new(DenseParts {
                    first: Dense::load(&scope.pp("fc1"), d, h)?,
                    second: Dense::load(&scope.pp("fc2"), h, d)?,
                    hidden: h,
                }),
                act: cfg.hidden_act,
            })
        }
    }

    /// Multiplies the output by `scale` `(D,)` (the block's layer scale), folded into the second
    /// linear layer.
    pub fn with_output_scale(mut self, scale: &Tensor) -> Result<Self> {
        let parts = self.parts_mut();
        let (w, b) = fold_output_scale(&parts.second.weight_t, &parts.second.bias, scale)?;
        parts.second = Dense {
            weight_t: w,
            bias: b,
        };
        Ok(self)
    }

    fn parts_mut(&mut self) -> &mut DenseParts {
        match self {
            Self::Mlp { fc1, .. } => fc1,
            Self::SwiGlu(parts) => parts,
        }
    }

    /// The activation, `None` for SwiGLU.
    pub(crate) fn activation(&self) -> Option<HiddenAct> {
        match self {
            Self::Mlp { act, .. } => Some(*act),
            Self::SwiGlu(_) => None,
        }
    }

    /// The two layers: first weight `(D, h or 2h)` and bias, second weight `(h, D)` and bias
    /// (weights transposed), and the hidden width h.
    pub(crate) fn tensors(&self) -> ([&Tensor; 4], usize) {
        let p = match self {
            Self::Mlp { fc1, .. } => fc1,
            Self::SwiGlu(parts) => parts,
        };
        (
            [
                &p.first.weight_t,
                &p.first.bias,
                &p.second.weight_t,
                &p.second.bias,
            ],
            p.hidden,
        )
    }

    /// Applies the network to `x` `(B, T, D)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Mlp { fc1: parts, act } => {
                let h = parts.first.forward(x)?;
                let h = match act {
                    HiddenAct::Gelu => h.gelu_erf()?,
                    HiddenAct::GeluTanh => h.gelu()?,
                    HiddenAct::Relu => h.relu()?,
                    HiddenAct::Silu => h.silu()?,
                };
                parts.second.forward(&h)
            }
            Self::SwiGlu(parts) => {
                let y = parts.first.forward(x)?;
                let x1 = y.narrow(D::Minus1, 0, parts.hidden)?;
                let x2 = y.narrow(D::Minus1, parts.hidden, parts.hidden)?;
                parts.second.forward(&(x1.silu()? * x2)?)
            }
        }
    }
}
