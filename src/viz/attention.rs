//! The registers paper's picture (Darcet et al. 2023, Figs. 1–3): the last layer's CLS attention of each
//! head over the patches, the L2 norm of every output patch token, and the share of high-norm "artifact"
//! tokens (norm above a threshold, 150 in the paper for DINOv2 ViT-g; the cutoff varies by model). The
//! register tokens' own attention over the patches can be shown too.
//!
//! Shapes: attentions of the last block `(B, H, T, T)` with `T = 1 + R + h·w`; CLS maps `(H, h, w)` =
//! `attn[b, :, 0, 1+R:]`; register maps `(R, h, w)` = `attn[b, :, 1+r, 1+R:]` averaged over heads; norms
//! `(h, w)` of the patch tokens of `last_hidden_state` (after the final LayerNorm, the model's output) or
//! of the last block's output before it.

use std::path::Path;

use candle::{Tensor, D};
use ndarray::{Array2, Array3, ArrayView2};
use serde::Serialize;

use crate::io::npy::tensor_to_array;
use crate::io::output::write_bytes;
use crate::model::{ForwardOptions, Vit};
use crate::{Error, Result};

/// The registers paper's norm threshold for artifact tokens.
pub const DEFAULT_NORM_THRESHOLD: f32 = 150.0;

/// Which tokens' norms are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NormSource {
    /// `last_hidden_state`: the output tokens after the final LayerNorm.
    #[default]
    Output,
    /// The last block's output before the final LayerNorm (`hidden_states[-1]`).
    PreNorm,
}

/// Options of [`attention_maps`]. Default: threshold 150 on the output tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionOptions {
    /// Norm above which a patch token counts as high-norm.
    pub threshold: f32,
    /// Which tokens' norms are measured.
    pub norm_source: NormSource,
}

impl Default for AttentionOptions {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_NORM_THRESHOLD,
            norm_source: NormSource::default(),
        }
    }
}

impl AttentionOptions {
    /// Sets the norm threshold.
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// Sets which tokens' norms are measured.
    pub fn with_norm_source(mut self, source: NormSource) -> Self {
        self.norm_source = source;
        self
    }
}

impl NormSource {
    /// The name written in summaries: `output` or `prenorm`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Output => "output",
            Self::PreNorm => "prenorm",
        }
    }
}

/// Norms of the patch tokens on their grid and the high-norm ones.
#[derive(Debug, Clone, PartialEq)]
pub struct NormMap {
    /// `(h, w)` L2 norms.
    pub norms: Array2<f32>,
    /// `(h, w)`, true where the norm is above the threshold.
    pub high: Array2<bool>,
    /// The threshold used.
    pub threshold: f32,
}

impl NormMap {
    /// Norms of `tokens` `(h·w, D)` laid on a `(h, w)` grid, flagged above `threshold`.
    pub fn new(tokens: ArrayView2<'_, f32>, grid: (usize, usize), threshold: f32) -> Result<Self> {
        let (h, w) = grid;
        if tokens.nrows() != h * w {
            return Err(Error::input(
                "patch tokens",
                format!("{} tokens do not fill a {h}x{w} grid", tokens.nrows()),
            ));
        }
        let norms: Vec<f32> = tokens
            .rows()
            .into_iter()
            .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
            .collect();
        let norms = Array2::from_shape_vec((h, w), norms)
            .map_err(|e| Error::input("patch tokens", e.to_string()))?;
        let high = norms.mapv(|n| n > threshold);
        Ok(Self {
            norms,
            high,
            threshold,
        })
    }

    /// How many patch tokens are above the threshold.
    pub fn high_count(&self) -> usize {
        self.high.iter().filter(|&&h| h).count()
    }

    /// The share of patch tokens above the threshold, in `[0, 1]`.
    pub fn high_share(&self) -> f32 {
        self.high_count() as f32 / self.high.len().max(1) as f32
    }

    /// The largest norm.
    pub fn max(&self) -> f32 {
        self.norms.iter().copied().fold(0.0, f32::max)
    }

    /// The median norm.
    pub fn median(&self) -> f32 {
        let mut v: Vec<f32> = self.norms.iter().copied().collect();
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
}

/// One image's attention and norm maps.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionMaps {
    /// The patch grid `(h, w)`.
    pub grid: (usize, usize),
    /// `(H, h, w)`: the last block's CLS → patch attention per head.
    pub cls: Array3<f32>,
    /// `(R, h, w)`: each register's attention over the patches, averaged over heads (empty without
    /// registers).
    pub registers: Array3<f32>,
    /// The patch tokens' norms.
    pub norms: NormMap,
}

impl AttentionMaps {
    /// The numbers of these maps for `image` (its name) whose norms were measured on `source`.
    pub fn summary(&self, image: impl Into<String>, source: NormSource) -> AttentionSummary {
        let norms = &self.norms;
        AttentionSummary {
            image: image.into(),
            grid: [self.grid.0, self.grid.1],
            norm_source: source.name().to_string(),
            threshold: norms.threshold,
            high_norm_tokens: norms.high_count(),
            patch_tokens: norms.norms.len(),
            high_norm_share: norms.high_share(),
            max_norm: norms.max(),
            median_norm: norms.median(),
        }
    }
}

/// One image's numbers: the share of high-norm patch tokens (what registers remove) and the norms'
/// maximum and median (`<name>_attention.json` of `dinoreg attention`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttentionSummary {
    /// The image.
    pub image: String,
    /// The patch grid `[h, w]`.
    pub grid: [usize; 2],
    /// Where the norms were measured: `output` or `prenorm`.
    pub norm_source: String,
    /// The norm threshold.
    pub threshold: f32,
    /// Patch tokens above the threshold.
    pub high_norm_tokens: usize,
    /// Patch tokens.
    pub patch_tokens: usize,
    /// The share of patch tokens above the threshold, in `[0, 1]`.
    pub high_norm_share: f32,
    /// The largest norm.
    pub max_norm: f32,
    /// The median norm.
    pub median_norm: f32,
}

impl AttentionSummary {
    /// Pretty JSON, keys in alphabetical order, with a final newline.
    pub fn to_json(&self) -> Result<String> {
        let value =
            serde_json::to_value(self).map_err(|e| Error::input("summary", e.to_string()))?;
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| Error::input("summary", e.to_string()))?;
        Ok(format!("{text}\n"))
    }

    /// Writes [`AttentionSummary::to_json`] to `path`, atomically.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        write_bytes(path.as_ref(), self.to_json()?.as_bytes())
    }
}

/// Runs `model` on `pixels` `(B, 3, H, W)` and returns each image's maps.
pub fn attention_maps(
    model: &dyn Vit,
    pixels: &Tensor,
    opts: &AttentionOptions,
) -> Result<Vec<AttentionMaps>> {
    let fwd = ForwardOptions::default()
        .with_attentions(true)
        .with_hidden_states(opts.norm_source == NormSource::PreNorm);
    let out = model.forward_with(pixels, &fwd)?;
    let r = model.info().num_register_tokens;
    let (h, w) = out.grid;
    let n = h * w;
    let last = out
        .attentions
        .as_ref()
        .and_then(|a| a.last())
        .ok_or_else(|| Error::input("model", "returned no attention probabilities"))?;
    let tokens = match (opts.norm_source, &out.hidden_states) {
        (NormSource::PreNorm, Some(hs)) => {
            hs.last().cloned().unwrap_or(out.last_hidden_state.clone())
        }
        _ => out.last_hidden_state.clone(),
    };
    // (B, H, 1 + R, n): the rows of CLS and registers, patch columns only.
    let rows = tensor_to_array(&last.narrow(2, 0, 1 + r)?.narrow(D::Minus1, 1 + r, n)?)?;
    let patches = tensor_to_array(&tokens.narrow(1, 1 + r, n)?)?;
    let batch = rows.shape()[0];
    let heads = rows.shape()[1];
    (0..batch)
        .map(|b| {
            let cls = Array3::from_shape_fn((heads, h, w), |(k, i, j)| rows[[b, k, 0, i * w + j]]);
            let registers = Array3::from_shape_fn((r, h, w), |(q, i, j)| {
                (0..heads)
                    .map(|k| rows[[b, k, 1 + q, i * w + j]])
                    .sum::<f32>()
                    / heads as f32
            });
            let tokens = patches
                .index_axis(ndarray::Axis(0), b)
                .into_dimensionality::<ndarray::Ix2>()
                .map_err(|e| Error::input("patch tokens", e.to_string()))?;
            Ok(AttentionMaps {
                grid: (h, w),
                cls,
                registers,
                norms: NormMap::new(tokens, (h, w), opts.threshold)?,
            })
        })
        .collect()
}
