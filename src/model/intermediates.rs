//! A typed intermediate-layers API in the style of timm's `forward_intermediates` and dinov2's
//! `get_intermediate_layers`: which blocks, with or without the final norm, in which layout, and
//! whether each layer's CLS and register tokens come back too. It also feeds the heads: [`Dinov2Model::features`]
//! turns a head's [`FeatureRequest`] into [`FeatureMaps`] (output tokens, or the attention keys,
//! queries or values of a block).
//!
//! Block `j` (0-based) is HF backbone stage `stage{j+1}` and dinov2's block index `j`.

use candle::Tensor;
use dinoreg_heads::{FeatureMaps, FeatureRequest, FeatureSource};

use crate::model::{Dinov2Model, Plan};
use crate::{Error, Result};

/// Which blocks to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSelection {
    /// The last `n` blocks (dinov2's `n` as an int).
    Last(usize),
    /// These blocks, 0-based, negative counting from the end, in increasing order.
    Indices(Vec<isize>),
}

impl Default for LayerSelection {
    fn default() -> Self {
        Self::Last(1)
    }
}

/// How patch tokens are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenLayout {
    /// `(B, D, h, w)`.
    #[default]
    Nchw,
    /// `(B, h, w, D)`.
    Nhwc,
    /// `(B, h·w, D)`.
    Nlc,
}

/// Options of [`Dinov2Model::forward_intermediates`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntermediatesOptions {
    /// Which blocks.
    pub layers: LayerSelection,
    /// Apply the final LayerNorm to each block's output.
    pub norm: bool,
    /// Layout of the patch tokens.
    pub layout: TokenLayout,
    /// Also return each layer's CLS token `(B, D)` and register tokens `(B, R, D)`.
    pub prefix_tokens: bool,
    /// Stop after the last requested block instead of running the whole encoder.
    pub stop_early: bool,
}

impl Default for IntermediatesOptions {
    fn default() -> Self {
        Self {
            layers: LayerSelection::default(),
            norm: true,
            layout: TokenLayout::Nchw,
            prefix_tokens: false,
            stop_early: true,
        }
    }
}

impl IntermediatesOptions {
    /// Sets the blocks.
    pub fn with_layers(mut self, layers: LayerSelection) -> Self {
        self.layers = layers;
        self
    }

    /// Sets whether the final norm is applied.
    pub fn with_norm(mut self, norm: bool) -> Self {
        self.norm = norm;
        self
    }

    /// Sets the layout.
    pub fn with_layout(mut self, layout: TokenLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets whether CLS and register tokens are returned.
    pub fn with_prefix_tokens(mut self, yes: bool) -> Self {
        self.prefix_tokens = yes;
        self
    }

    /// Sets whether the pass stops after the last requested block.
    pub fn with_stop_early(mut self, yes: bool) -> Self {
        self.stop_early = yes;
        self
    }
}

/// One block's features.
#[derive(Debug, Clone)]
pub struct LayerFeatures {
    /// The block index (0-based).
    pub block: usize,
    /// Patch tokens in the requested layout.
    pub patches: Tensor,
    /// The CLS token `(B, D)`, when requested.
    pub cls: Option<Tensor>,
    /// The register tokens `(B, R, D)`, when requested.
    pub registers: Option<Tensor>,
}

/// What [`Dinov2Model::forward_intermediates`] returns.
#[derive(Debug, Clone)]
pub struct Intermediates {
    /// One entry per requested block, in block order.
    pub layers: Vec<LayerFeatures>,
    /// The patch grid `(h, w)`.
    pub grid: (usize, usize),
}

impl Dinov2Model {
    /// Resolves a selection to sorted, unique 0-based block indices.
    pub fn resolve_layers(&self, layers: &LayerSelection) -> Result<Vec<usize>> {
        let l = self.config().num_hidden_layers;
        let blocks: Vec<usize> = match layers {
            LayerSelection::Last(n) => {
                if *n == 0 || *n > l {
                    return Err(Error::option(
                        "layers",
                        format!("asked for the last {n} blocks of a model with {l} blocks"),
                    ));
                }
                (l - n..l).collect()
            }
            LayerSelection::Indices(idx) => idx
                .iter()
                .map(|&i| self.block_index(i))
                .collect::<Result<_>>()?,
        };
        if blocks.is_empty() {
            return Err(Error::option("layers", "no block was selected"));
        }
        if blocks.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::option(
                "layers",
                format!("blocks must be unique and in increasing order, got {blocks:?}"),
            ));
        }
        Ok(blocks)
    }

    fn split_tokens(
        &self,
        x: &Tensor,
        grid: (usize, usize),
        layout: TokenLayout,
    ) -> Result<Tensor> {
        let prefix = 1 + self.config().num_register_tokens;
        let (b, t, d) = x.dims3()?;
        let patches = x.narrow(1, prefix, t - prefix)?;
        Ok(match layout {
            TokenLayout::Nlc => patches.contiguous()?,
            TokenLayout::Nhwc => patches.reshape((b, grid.0, grid.1, d))?,
            TokenLayout::Nchw => patches
                .reshape((b, grid.0, grid.1, d))?
                .permute((0, 3, 1, 2))?
                .contiguous()?,
        })
    }

    /// Features of the selected blocks of `pixels` `(B, C, H, W)`.
    pub fn forward_intermediates(
        &self,
        pixels: &Tensor,
        opts: &IntermediatesOptions,
    ) -> Result<Intermediates> {
        let blocks = self.resolve_layers(&opts.layers)?;
        let l = self.config().num_hidden_layers;
        let mut keep = vec![false; l + 1];
        for &b in &blocks {
            keep[b + 1] = true;
        }
        let last = blocks.last().copied().unwrap_or(l - 1) + 1;
        let plan = Plan {
            keep,
            blocks: if opts.stop_early { last } else { l },
            ..Plan::default()
        };
        let enc = self.encode(pixels, &plan)?;
        let r = self.config().num_register_tokens;
        let mut layers = Vec::with_capacity(blocks.len());
        for &b in &blocks {
            let mut x = enc.hidden[b + 1]
                .clone()
                .ok_or_else(|| Error::option("layers", format!("block {b} was not computed")))?;
            if opts.norm {
                x = self.final_norm(&x)?;
            }
            let (cls, registers) = if opts.prefix_tokens {
                (
                    Some(x.narrow(1, 0, 1)?.squeeze(1)?),
                    Some(x.narrow(1, 1, r)?.contiguous()?),
                )
            } else {
                (None, None)
            };
            layers.push(LayerFeatures {
                block: b,
                patches: self.split_tokens(&x, enc.grid, opts.layout)?,
                cls,
                registers,
            });
        }
        Ok(Intermediates {
            layers,
            grid: enc.grid,
        })
    }

    /// The feature maps a head asks for, from `pixels` `(B, C, H, W)`.
    pub fn features(&self, pixels: &Tensor, request: &FeatureRequest) -> Result<FeatureMaps> {
        let (_, _, h, w) = pixels.dims4().map_err(|_| {
            Error::input(
                "pixel_values",
                format!("expected (B, C, H, W), got {:?}", pixels.dims()),
            )
        })?;
        let input_size = (h, w);
        let patch_size = self.config().patch_size;
        if request.source == FeatureSource::Output {
            let inter = self.forward_intermediates(
                pixels,
                &IntermediatesOptions {
                    layers: LayerSelection::Indices(request.layers.clone()),
                    norm: request.norm,
                    layout: TokenLayout::Nchw,
                    prefix_tokens: request.cls_token,
                    stop_early: true,
                },
            )?;
            let cls_tokens = request
                .cls_token
                .then(|| inter.layers.iter().filter_map(|l| l.cls.clone()).collect());
            return Ok(FeatureMaps {
                maps: inter.layers.into_iter().map(|l| l.patches).collect(),
                cls_tokens,
                patch_size,
                input_size,
            });
        }
        let [layer] = request.layers.as_slice() else {
            return Err(Error::option(
                "feature request",
                format!(
                    "attention keys/queries/values are read from one block, got {:?}",
                    request.layers
                ),
            ));
        };
        let block = self.block_index(*layer)?;
        let plan = Plan {
            keep: vec![false; self.config().num_hidden_layers + 1],
            qkv_block: Some(block),
            blocks: block + 1,
            ..Plan::default()
        };
        let enc = self.encode(pixels, &plan)?;
        let qkv = enc
            .qkv
            .ok_or_else(|| Error::option("feature request", "q/k/v were not captured"))?;
        let tokens = match request.source {
            FeatureSource::Keys => qkv.k,
            FeatureSource::Queries => qkv.q,
            _ => qkv.v,
        };
        let cls_tokens = request
            .cls_token
            .then(|| tokens.narrow(1, 0, 1).and_then(|t| t.squeeze(1)))
            .transpose()?
            .map(|t| vec![t]);
        Ok(FeatureMaps {
            maps: vec![self.split_tokens(&tokens, enc.grid, TokenLayout::Nchw)?],
            cls_tokens,
            patch_size,
            input_size,
        })
    }
}
