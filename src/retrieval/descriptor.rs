//! Global image descriptors pooled from the model's `last_hidden_state` and L2-normalised, as the
//! DINOv2 retrieval and copy-detection evaluations use them.
//!
//! - [`Descriptor::Cls`]: the normed CLS token, HF's `pooler_output` (DINOv2 §7.3 instance retrieval);
//! - [`Descriptor::Mean`]: the mean of the patch tokens, register tokens excluded (dinov2's `_lc` heads);
//! - [`Descriptor::ClsMean`]: `cat(cls, mean)`, normalised as a whole (the `_lc` linear head's input);
//! - [`Descriptor::Gem`]: generalised mean `(mean_i clamp(x_i, 1e-6)^p)^(1/p)` per channel over the patch
//!   tokens (DINO's `eval_copy_detection.py` uses p = 4).
//!
//! Shapes: `last_hidden_state` `(B, 1 + R + N, D)` → descriptors `(B, D)` (`(B, 2·D)` for `cls+mean`),
//! each row with unit L2 norm (`x / max(‖x‖, 1e-12)`, as `torch.nn.functional.normalize`).

use std::fmt;
use std::str::FromStr;

use candle::{DType, Tensor, D};

use crate::model::Vit;
use crate::{Error, Result};

/// Lower clamp of GeM's inputs.
pub const GEM_CLAMP: f64 = 1e-6;

/// Which global descriptor an image gets. Text forms: `cls`, `mean`, `cls+mean`, `gem` (p = 3),
/// `gem:P` (e.g. `gem:4`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Descriptor {
    /// The normed CLS token (`pooler_output`).
    #[default]
    Cls,
    /// The mean of the patch tokens (registers excluded).
    Mean,
    /// The CLS token concatenated with the mean of the patch tokens.
    ClsMean,
    /// Generalised-mean pooling of the patch tokens with power `p` (> 0).
    Gem {
        /// The power (3 by default, 4 in DINO's copy detection).
        p: f32,
    },
}

impl Descriptor {
    /// The descriptor's length for a model of hidden size `hidden`.
    pub fn dims(&self, hidden: usize) -> usize {
        match self {
            Descriptor::ClsMean => 2 * hidden,
            _ => hidden,
        }
    }

    /// Checks the option's values (GeM's power must be finite and positive).
    pub fn validate(&self) -> Result<()> {
        match self {
            Descriptor::Gem { p } if !(p.is_finite() && *p > 0.0) => Err(Error::option(
                "descriptor",
                format!("GeM power must be a positive number, got {p}"),
            )),
            _ => Ok(()),
        }
    }

    /// Pools `last_hidden_state` `(B, 1 + R + N, D)` of a model with `registers` register tokens into
    /// L2-normalised descriptors `(B, D')` (f32, same device).
    pub fn pool(&self, last_hidden_state: &Tensor, registers: usize) -> Result<Tensor> {
        self.validate()?;
        let (_, tokens, _) = last_hidden_state.dims3().map_err(|_| {
            Error::input(
                "last_hidden_state",
                format!(
                    "expected shape (B, T, D), got {:?}",
                    last_hidden_state.dims()
                ),
            )
        })?;
        if tokens < 2 + registers {
            return Err(Error::input(
                "last_hidden_state",
                format!("{tokens} tokens hold no patch token after CLS and {registers} registers"),
            ));
        }
        let x = last_hidden_state.to_dtype(DType::F32)?;
        let cls = || x.narrow(1, 0, 1)?.squeeze(1);
        let patches = || x.narrow(1, 1 + registers, tokens - 1 - registers);
        let pooled = match self {
            Descriptor::Cls => cls()?,
            Descriptor::Mean => patches()?.mean(1)?,
            Descriptor::ClsMean => Tensor::cat(&[cls()?, patches()?.mean(1)?], 1)?,
            Descriptor::Gem { p } => patches()?
                .clamp(GEM_CLAMP, f64::from(f32::MAX))?
                .powf(f64::from(*p))?
                .mean(1)?
                .powf(1.0 / f64::from(*p))?,
        };
        l2_normalize(&pooled)
    }

    /// Runs `model` on `pixels` `(B, 3, H, W)` and pools its output: `(B, D')`.
    pub fn describe(&self, model: &dyn Vit, pixels: &Tensor) -> Result<Tensor> {
        self.validate()?;
        let out = model.forward(pixels)?;
        self.pool(&out.last_hidden_state, model.info().num_register_tokens)
    }
}

/// Divides each row of `x` `(B, D)` by its L2 norm (at least 1e-12).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Descriptor::Cls => f.write_str("cls"),
            Descriptor::Mean => f.write_str("mean"),
            Descriptor::ClsMean => f.write_str("cls+mean"),
            Descriptor::Gem { p } => write!(f, "gem:{p}"),
        }
    }
}

impl FromStr for Descriptor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::option(
                "descriptor",
                format!("unknown descriptor {s:?}; expected cls, mean, cls+mean, gem or gem:P"),
            )
        };
        let d = match s.trim().to_ascii_lowercase().as_str() {
            "cls" => Descriptor::Cls,
            "mean" => Descriptor::Mean,
            "cls+mean" | "cls-mean" | "clsmean" => Descriptor::ClsMean,
            "gem" => Descriptor::Gem { p: 3.0 },
            other => match other
                .strip_prefix("gem:")
                .or_else(|| other.strip_prefix("gem"))
            {
                Some(p) => Descriptor::Gem {
                    p: p.parse().map_err(|_| bad())?,
                },
                None => return Err(bad()),
            },
        };
        d.validate()?;
        Ok(d)
    }
}
