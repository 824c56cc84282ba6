//! The DPT building blocks shared by Depth-Anything's neck (HF `modeling_depth_anything.py`) and
//! dinov2's DPT depth head (`dinov2/hub/depth/decode_heads.py`): the reassemble layer (1×1
//! projection then resampling), the pre-activation residual conv unit and the feature fusion block.
//! The two models name their tensors differently, so the blocks here are built from convolutions
//! the caller has already loaded.
//!
//! Shapes: a reassemble layer maps `(B, E, h, w)` to `(B, c, f·h, f·w)` (`f` its factor; `⌈h/2⌉`
//! for 0.5); a fusion block maps `(B, C, h, w)` to `(B, C, 2h, 2w)` or to the size it is given.

use candle::{Module, Tensor};

use crate::checkpoint::Scope;
use crate::nn::{Conv2d, ConvSpec};
use crate::ops::resize_bilinear;
use crate::{Error, Result};

/// The resampling of one reassemble level.
#[derive(Debug, Clone)]
pub(crate) enum Resample {
    /// `ConvTranspose2d(c, c, k=f, s=f)`: upsampling by an integer factor `f > 1`.
    Up(Conv2d),
    /// No resampling (factor 1).
    Identity,
    /// `Conv2d(c, c, k=3, s=1/f, p=1)`: downsampling by an integer `1/f`.
    Down(Conv2d),
}

impl Resample {
    /// Loads the resampling for `factor` (`weight`, `bias` under `scope`; nothing for factor 1).
    pub(crate) fn load(scope: &Scope<'_>, channels: usize, factor: f64) -> Result<Self> {
        let bad = || {
            Error::option(
                "reassemble factor",
                format!("{factor} is not supported; expected an integer >= 1 or 1/n"),
            )
        };
        if factor == 1.0 {
            Ok(Resample::Identity)
        } else if factor > 1.0 {
            if factor.fract() != 0.0 {
                return Err(bad());
            }
            let f = factor as usize;
            let spec = ConvSpec::new(channels, channels, f)
                .with_stride(f)
                .with_padding(0);
            Ok(Resample::Up(Conv2d::load_transposed(scope, spec)?))
        } else if factor > 0.0 && (1.0 / factor).fract() == 0.0 {
            let stride = (1.0 / factor) as usize;
            let spec = ConvSpec::new(channels, channels, 3)
                .with_stride(stride)
                .with_padding(1);
            Ok(Resample::Down(Conv2d::load(scope, spec)?))
        } else {
            Err(bad())
        }
    }
}

/// One reassemble level: a 1×1 projection `E → c` (with bias), then the level's resampling.
#[derive(Debug, Clone)]
pub(crate) struct Reassemble {
    project: Conv2d,
    resample: Resample,
}

impl Reassemble {
    /// A level from its loaded parts.
    pub(crate) fn new(project: Conv2d, resample: Resample) -> Self {
        Self { project, resample }
    }

    /// `(B, E, h, w)` → `(B, c, h', w')`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.project.forward(x)?;
        Ok(match &self.resample {
            Resample::Up(conv) | Resample::Down(conv) => conv.forward(&x)?,
            Resample::Identity => x,
        })
    }
}

/// Pre-activation residual conv unit: `conv2(relu(conv1(relu(x)))) + x`, the residual being the
/// input before the first ReLU. Both convolutions are 3×3, `C → C`, padding 1.
#[derive(Debug, Clone)]
pub(crate) struct ResidualConvUnit {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl ResidualConvUnit {
    /// Loads the two convolutions under `conv1` and `conv2`, with or without bias.
    pub(crate) fn load(
        conv1: &Scope<'_>,
        conv2: &Scope<'_>,
        channels: usize,
        bias: bool,
    ) -> Result<Self> {
        let spec = ConvSpec::new(channels, channels, 3).with_bias(bias);
        Ok(Self {
            conv1: Conv2d::load(conv1, spec)?,
            conv2: Conv2d::load(conv2, spec)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward(&x.relu()?)?;
        let y = self.conv2.forward(&y.relu()?)?;
        Ok((y + x)?)
    }
}

/// Feature fusion block: `x += rcu1(skip)` (the skip first resized bilinearly, half-pixel, to `x`'s
/// size when they differ), `x = rcu2(x)`, bilinear resize with `align_corners=True` to `size` (or
/// ×2), then a 1×1 projection (with bias).
#[derive(Debug, Clone)]
pub(crate) struct FusionBlock {
    rcu1: Option<ResidualConvUnit>,
    rcu2: ResidualConvUnit,
    project: Conv2d,
}

impl FusionBlock {
    /// A block from its loaded parts; `rcu1` is `None` for a block that never takes a skip.
    pub(crate) fn new(
        rcu1: Option<ResidualConvUnit>,
        rcu2: ResidualConvUnit,
        project: Conv2d,
    ) -> Self {
        Self {
            rcu1,
            rcu2,
            project,
        }
    }

    /// Fuses `x` `(B, C, h, w)` with `skip`, then resizes to `size` (default `(2h, 2w)`).
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        skip: Option<&Tensor>,
        size: Option<(usize, usize)>,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        if let Some(skip) = skip {
            let rcu1 = self.rcu1.as_ref().ok_or_else(|| {
                Error::input(
                    "fusion block",
                    "the first fusion block takes no skip connection",
                )
            })?;
            let (_, _, h, w) = x.dims4()?;
            let skip = if skip.dims() != x.dims() {
                resize_bilinear(skip, (h, w), false)?
            } else {
                skip.clone()
            };
            x = (x + rcu1.forward(&skip)?)?;
        }
        let x = self.rcu2.forward(&x)?;
        let (_, _, h, w) = x.dims4()?;
        let x = resize_bilinear(&x, size.unwrap_or((2 * h, 2 * w)), true)?;
        Ok(self.project.forward(&x)?)
    }
}
