//! The few blocks heads are built from, loaded from a [`Scope`] with typed shape checks: convolution
//! (optionally transposed), linear, and eval-mode batch norm. They mirror `torch.nn.Conv2d`,
//! `ConvTranspose2d`, `Linear` and `BatchNorm2d` in eval mode.

use candle::{Module, Tensor};

use crate::checkpoint::Scope;
use crate::Result;

/// How a [`Conv2d`] is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl ConvSpec {
    /// A `kernel`×`kernel` convolution with stride 1, "same" padding and a bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            padding: kernel / 2,
            bias: true,
        }
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub fn with_padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// Sets whether there is a bias.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// `torch.nn.Conv2d` (weights `(O, I, k, k)`), or `ConvTranspose2d` (weights `(I, O, k, k)`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    spec: ConvSpec,
    transposed: bool,
}

impl Conv2d {
    /// Loads `weight` (and `bias`) under `scope`.
    pub fn load(scope: &Scope<'_>, spec: ConvSpec) -> Result<Self> {
        let weight = scope.get(
            "weight",
            &[
                spec.out_channels,
                spec.in_channels,
                spec.kernel,
                spec.kernel,
            ],
        )?;
        let bias = spec
            .bias
            .then(|| scope.get("bias", &[spec.out_channels]))
            .transpose()?;
        Ok(Self {
            weight,
            bias,
            spec,
            transposed: false,
        })
    }

    /// Loads a transposed convolution (`ConvTranspose2d`, no output padding) under `scope`.
    pub fn load_transposed(scope: &Scope<'_>, spec: ConvSpec) -> Result<Self> {
        let weight = scope.get(
            "weight",
            &[
                spec.in_channels,
                spec.out_channels,
                spec.kernel,
                spec.kernel,
            ],
        )?;
        let bias = spec
            .bias
            .then(|| scope.get("bias", &[spec.out_channels]))
            .transpose()?;
        Ok(Self {
            weight,
            bias,
            spec,
            transposed: true,
        })
    }

    /// The layer's shape.
    pub fn spec(&self) -> ConvSpec {
        self.spec
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle::Result<Tensor> {
        let s = &self.spec;
        let y = if self.transposed {
            x.conv_transpose2d(&self.weight, s.padding, 0, s.stride, 1)?
        } else {
            x.conv2d(&self.weight, s.padding, s.stride, 1, 1)?
        };
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, s.out_channels, 1, 1))?),
            None => Ok(y),
        }
    }
}

/// `torch.nn.Linear`: `y = x Wᵀ + b`, weights `(out, in)`.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
}

impl Linear {
    /// Loads `weight` `(out, in)` and, when `bias`, `bias` `(out,)` under `scope`.
    pub fn load(
        scope: &Scope<'_>,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = scope.get("weight", &[out_features, in_features])?;
        let bias = bias
            .then(|| scope.get("bias", &[out_features]))
            .transpose()?;
        Ok(Self {
            inner: candle_nn::Linear::new(weight, bias),
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle::Result<Tensor> {
        self.inner.forward(x)
    }
}

/// `torch.nn.BatchNorm2d` in eval mode: `(x - running_mean) / sqrt(running_var + eps) * weight + bias`,
/// folded into one scale and shift per channel.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    scale: Tensor,
    shift: Tensor,
}

impl BatchNorm2d {
    /// Loads `weight`, `bias`, `running_mean`, `running_var` `(C,)` under `scope`.
    pub fn load(scope: &Scope<'_>, channels: usize, eps: f64) -> Result<Self> {
        let weight = scope.get("weight", &[channels])?;
        let bias = scope.get("bias", &[channels])?;
        let mean = scope.get("running_mean", &[channels])?;
        let var = scope.get("running_var", &[channels])?;
        Self::from_parts(&weight, &bias, &mean, &var, eps)
    }

    /// Builds the layer from its four tensors.
    pub fn from_parts(
        weight: &Tensor,
        bias: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
    ) -> Result<Self> {
        let c = weight.dim(0)?;
        let scale = weight.broadcast_div(&(var + eps)?.sqrt()?)?;
        let shift = (bias - mean.broadcast_mul(&scale)?)?;
        Ok(Self {
            scale: scale.reshape((1, c, 1, 1))?,
            shift: shift.reshape((1, c, 1, 1))?,
        })
    }
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor) -> candle::Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}
