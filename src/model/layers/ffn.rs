//! The feed-forward part of a block, for both generations:
//! - the plain MLP `down(act(up(x)))`: HF `Dinov2WithRegistersMLP` (`fc2(act(fc1(x)))`) and
//!   `DINOv3ViTMLP` (`down_proj(act(up_proj(x)))`);
//! - the gated MLP `down(act(gate(x)) · up(x))`: HF `Dinov2WithRegistersSwiGLUFFN` (one
//!   `weights_in` holding gate and up, SiLU) and `DINOv3ViTGatedMLP` (`gate_proj`, `up_proj`,
//!   `down_proj`, `hidden_act`). Gate and up are stored as one `(D, 2h)` matrix `[gate | up]`.
//!
//! Absent biases (DINOv3's `mlp_bias = false`) act as zeros. The block's layer scale can be folded
//! into the last linear layer ([`FeedForward::with_output_scale`]). Shapes: `(B, T, D)` →
//! `(B, T, D)`.

use candle::{Tensor, D};

use super::attention::fold_output_scale;
use super::Linear;
use crate::model::config::HiddenAct;
use crate::Result;

/// A linear layer stored transposed for a plain matmul: `y = x Wᵀ + b`.
#[derive(Debug, Clone)]
struct Dense {
    weight_t: Tensor,
    bias: Tensor,
}

impl Dense {
    fn new(linear: &Linear) -> Result<Self> {
        Ok(Self {
            weight_t: linear.weight.t()?.contiguous()?,
            bias: linear.bias_or_zeros()?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_matmul(&self.weight_t)?
            .broadcast_add(&self.bias)?)
    }
}

/// Which feed-forward network a block has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedForwardKind {
    /// `down(act(up(x)))`.
    Mlp,
    /// `down(act(gate(x)) · up(x))`.
    Gated,
}

/// The block's feed-forward network.
#[derive(Debug, Clone)]
pub struct FeedForward {
    kind: FeedForwardKind,
    act: HiddenAct,
    /// `up`, or `[gate | up]` for the gated network: `(D, h)` or `(D, 2h)`.
    first: Dense,
    /// `down`: `(h, D)`.
    second: Dense,
    /// The hidden width h.
    hidden: usize,
}

impl FeedForward {
    /// The plain MLP `down(act(up(x)))`.
    pub fn mlp(up: Linear, down: Linear, act: HiddenAct) -> Result<Self> {
        Ok(Self {
            kind: FeedForwardKind::Mlp,
            act,
            hidden: up.out_features()?,
            first: Dense::new(&up)?,
            second: Dense::new(&down)?,
        })
    }

    /// The gated MLP `down(act(gate(x)) · up(x))` from separate gate and up projections.
    pub fn gated(gate: Linear, up: Linear, down: Linear, act: HiddenAct) -> Result<Self> {
        let weight = Tensor::cat(&[&gate.weight, &up.weight], 0)?;
        let bias = match (&gate.bias, &up.bias) {
            (None, None) => None,
            _ => Some(Tensor::cat(
                &[gate.bias_or_zeros()?, up.bias_or_zeros()?],
                0,
            )?),
        };
        Self::gated_fused(Linear::new(weight, bias), down, act)
    }

    /// The gated MLP from one projection `(2h, D)` whose first h rows are the gate and last h the
    /// up projection (DINOv2's `weights_in`).
    pub fn gated_fused(gate_up: Linear, down: Linear, act: HiddenAct) -> Result<Self> {
        Ok(Self {
            kind: FeedForwardKind::Gated,
            act,
            hidden: gate_up.out_features()? / 2,
            first: Dense::new(&gate_up)?,
            second: Dense::new(&down)?,
        })
    }

    /// Multiplies the output by `scale` `(D,)` (the block's layer scale), folded into the last
    /// linear layer.
    pub fn with_output_scale(mut self, scale: &Tensor) -> Result<Self> {
        let (w, b) = fold_output_scale(&self.second.weight_t, &self.second.bias, scale)?;
        self.second = Dense {
            weight_t: w,
            bias: b,
        };
        Ok(self)
    }

    /// Plain or gated.
    pub fn kind(&self) -> FeedForwardKind {
        self.kind
    }

    /// The activation.
    pub fn activation(&self) -> HiddenAct {
        self.act
    }

    /// The width of the first layer's output as the fused path stores it: h, or 2h when gated.
    pub(crate) fn width(&self) -> usize {
        match self.kind {
            FeedForwardKind::Mlp => self.hidden,
            FeedForwardKind::Gated => 2 * self.hidden,
        }
    }

    /// The two layers: first weight `(D, h or 2h)` and bias, second weight `(h, D)` and bias
    /// (weights transposed), and the hidden width h.
    pub(crate) fn tensors(&self) -> ([&Tensor; 4], usize) {
        (
            [
                &self.first.weight_t,
                &self.first.bias,
                &self.second.weight_t,
                &self.second.bias,
            ],
            self.hidden,
        )
    }

    /// Applies the network to `x` `(B, T, D)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.first.forward(x)?;
        let hidden = match self.kind {
            FeedForwardKind::Mlp => activate(&y, self.act)?,
            FeedForwardKind::Gated => {
                let gate = y.narrow(D::Minus1, 0, self.hidden)?;
                let up = y.narrow(D::Minus1, self.hidden, self.hidden)?;
                (activate(&gate, self.act)? * up)?
            }
        };
        self.second.forward(&hidden)
    }
}

/// `act(x)` with candle ops.
fn activate(x: &Tensor, act: HiddenAct) -> Result<Tensor> {
    Ok(match act {
        HiddenAct::Gelu => x.gelu_erf()?,
        HiddenAct::GeluTanh => x.gelu()?,
        HiddenAct::Relu => x.relu()?,
        HiddenAct::Silu => x.silu()?,
    })
}
