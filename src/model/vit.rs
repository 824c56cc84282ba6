//! The one trait every backbone implements: [`Vit`]. DINOv2 (with or without registers), DINOv3 and a
//! user's own ViT all feed the same heads, the HF-style [`Backbone`](crate::Backbone) and the task
//! pipelines through it.
//!
//! An implementor provides one encoder pass ([`Vit::encode`], driven by an [`EncodeRequest`]), the
//! final norm and a few architecture facts ([`VitInfo`]); the trait builds the rest on top:
//! HF's `forward` with its optional outputs ([`Vit::forward_with`]), the typed intermediates API
//! ([`Vit::forward_intermediates`]) and the feature maps a head asks for ([`Vit::features`]).
//!
//! # Index conventions
//!
//! - **Stages** (HF's numbering, used by [`Backbone`](crate::Backbone) and
//!   [`EncodeRequest::keep`]): stage 0 is the embedding output (`"stem"`), stage `j` the output of
//!   block `j - 1` (`"stage{j}"`), `0..=L`.
//! - **Blocks** (dinov2's and timm's numbering, used wherever a name says "block":
//!   [`LayerSelection::Blocks`], [`FeatureRequest::blocks`], [`ForwardOptions::qkv_block`]): block
//!   `j` is the `j`-th transformer block, `0..L`; negative values count from the end (-1 is the last
//!   block). Block `j` is stage `j + 1`.
//!
//! Every possibly negative index is an `i64`, as `out_indices` is.
//!
//! Token layout of every hidden state: `[CLS, registers (R), patches (h·w, row-major)]`, each
//! `(B, 1 + R + h·w, D)`.
//!
//! # Sharing a model
//!
//! `Vit` is implemented for `&M`, `Box<M>` and `Arc<M>` whenever `M: Vit`, so a backbone or a
//! pipeline can own its model, borrow it, or share one `Arc` with others; nothing forces an `Arc`.

use std::sync::Arc;

use candle::{DType, Device, Tensor};
use dinoreg_heads::{FeatureMaps, FeatureRequest, FeatureSource};

use crate::model::backbone::BackboneOptions;
use crate::model::intermediates::{
    Intermediates, IntermediatesOptions, LayerFeatures, LayerSelection, TokenLayout,
};
use crate::model::layers::Qkv;
use crate::{Error, Result};

/// The model family a backbone belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Family {
    /// HF `Dinov2Model` / `Dinov2WithRegistersModel`: a learned position table, resized per input.
    Dinov2,
    /// HF `DINOv3ViTModel`: rotary position embeddings (RoPE) on the patch tokens.
    Dinov3,
    /// A backbone from outside this crate.
    Other,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Dinov2 => "DINOv2",
            Family::Dinov3 => "DINOv3",
            Family::Other => "non-DINO",
        })
    }
}

/// The architecture facts of a backbone that heads, the HF backbone and pipelines need.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VitInfo {
    /// The model family.
    pub family: Family,
    /// Patch size `p` in pixels; the patch grid of an `(H, W)` input is `(H / p, W / p)`, floored.
    pub patch_size: usize,
    /// Token width `D`.
    pub hidden_size: usize,
    /// Number of transformer blocks `L`.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Register tokens `R` after the CLS token.
    pub num_register_tokens: usize,
    /// Input channels.
    pub num_channels: usize,
    /// The HF backbone norms the last stage even when `apply_layernorm` is off (DINOv3's rule).
    pub always_norm_last_stage: bool,
    /// Without `reshape_hidden_states`, the HF backbone returns every token `(B, 1 + R + h·w, D)`
    /// (DINOv2's rule, `true`) or the patch tokens only `(B, h·w, D)` (DINOv3's, `false`).
    pub keep_prefix_unreshaped: bool,
}

impl VitInfo {
    /// The facts of a ViT of `family`; no registers, 3 channels, HF's DINOv2 backbone rules.
    pub fn new(
        family: Family,
        patch_size: usize,
        hidden_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
    ) -> Self {
        Self {
            family,
            patch_size,
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            num_register_tokens: 0,
            num_channels: 3,
            always_norm_last_stage: false,
            keep_prefix_unreshaped: true,
        }
    }

    /// Sets the number of register tokens.
    pub fn with_register_tokens(mut self, n: usize) -> Self {
        self.num_register_tokens = n;
        self
    }

    /// Sets the number of input channels.
    pub fn with_channels(mut self, n: usize) -> Self {
        self.num_channels = n;
        self
    }

    /// Sets whether the HF backbone always norms its last stage.
    pub fn with_always_norm_last_stage(mut self, yes: bool) -> Self {
        self.always_norm_last_stage = yes;
        self
    }

    /// Sets whether the HF backbone keeps the CLS and register tokens in maps it does not reshape.
    pub fn with_keep_prefix_unreshaped(mut self, yes: bool) -> Self {
        self.keep_prefix_unreshaped = yes;
        self
    }

    /// Tokens before the patches: the CLS token and the registers, `1 + R`.
    pub fn prefix_tokens(&self) -> usize {
        1 + self.num_register_tokens
    }

    /// Width of one attention head, `D / heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// HF's stage names, `["stem", "stage1", …, "stageL"]`.
    pub fn stage_names(&self) -> Vec<String> {
        std::iter::once("stem".to_string())
            .chain((1..=self.num_hidden_layers).map(|i| format!("stage{i}")))
            .collect()
    }

    /// Maps a block index (negative counts from the end) to `0..L`.
    ///
    /// ```
    /// use dinoreg::{Family, VitInfo};
    /// let info = VitInfo::new(Family::Dinov2, 14, 384, 12, 6);
    /// assert_eq!(info.block_index(-1).unwrap(), 11);
    /// assert_eq!(info.block_index(3).unwrap(), 3);
    /// assert!(info.block_index(12).is_err());
    /// ```
    pub fn block_index(&self, index: i64) -> Result<usize> {
        let l = self.num_hidden_layers as i64;
        let i = if index < 0 { l + index } else { index };
        if !(0..l).contains(&i) {
            return Err(Error::option(
                "block index",
                format!("block {index} is out of range for a model with {l} blocks (use 0..{l} or -{l}..-1)"),
            ));
        }
        Ok(i as usize)
    }

    /// Resolves a block selection to sorted, unique 0-based block indices.
    pub fn resolve_blocks(&self, layers: &LayerSelection) -> Result<Vec<usize>> {
        let l = self.num_hidden_layers;
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
            LayerSelection::Blocks(idx) => idx
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

    /// The patch tokens of a hidden state `(B, 1 + R + h·w, D)` in `layout`.
    pub fn patch_tokens(
        &self,
        x: &Tensor,
        grid: (usize, usize),
        layout: TokenLayout,
    ) -> Result<Tensor> {
        let prefix = self.prefix_tokens();
        let (b, t, d) = x.dims3()?;
        if t != prefix + grid.0 * grid.1 {
            return Err(Error::input(
                "hidden state",
                format!(
                    "expected {} tokens (1 + {} registers + {}x{} patches), got {t}",
                    prefix + grid.0 * grid.1,
                    self.num_register_tokens,
                    grid.0,
                    grid.1
                ),
            ));
        }
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
}

/// What one encoder pass computes and keeps: the input of [`Vit::encode`].
#[derive(Debug, Clone, Default)]
pub struct EncodeRequest<'a> {
    /// Which of the `L + 1` hidden states to keep, by stage (0 = embedding output); missing
    /// entries count as `false`.
    pub keep: Vec<bool>,
    /// Also return the attention probabilities of every block run.
    pub attentions: bool,
    /// Also return the q, k, v of this block (0-based).
    pub qkv_block: Option<usize>,
    /// Multipliers of the attention probabilities: `(H,)` for every block or `(L, H)` per block.
    pub head_mask: Option<&'a Tensor>,
    /// `(B, h·w)`, non-zero where a patch is replaced by the mask token.
    pub bool_masked_pos: Option<&'a Tensor>,
    /// How many blocks to run, from the first (`L` for the whole encoder).
    pub blocks: usize,
}

/// What one encoder pass produced: the output of [`Vit::encode`].
#[derive(Debug, Clone)]
pub struct Encoded {
    /// `L + 1` entries by stage, `Some` where [`EncodeRequest::keep`] asked for it; before the final
    /// norm, `(B, 1 + R + h·w, D)`.
    pub hidden: Vec<Option<Tensor>>,
    /// The output of the last block run, before the final norm.
    pub last: Tensor,
    /// The attention probabilities `(B, H, T, T)` of each block run, when requested.
    pub attentions: Vec<Tensor>,
    /// The q, k, v of the requested block.
    pub qkv: Option<Qkv>,
    /// The patch grid `(h, w)`.
    pub grid: (usize, usize),
}

/// Optional inputs and outputs of [`Vit::forward_with`], mirroring HF's forward signature.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// Also return the `L + 1` hidden states.
    pub output_hidden_states: bool,
    /// Also return the `L` attention probability tensors.
    pub output_attentions: bool,
    /// `(B, h·w)`, non-zero where a patch is replaced by the mask token.
    pub bool_masked_pos: Option<Tensor>,
    /// Multipliers of the attention probabilities: `(H,)` for every layer or `(L, H)` per layer.
    pub head_mask: Option<Tensor>,
    /// Also return the q, k, v of this block (0-based; negative counts from the end).
    pub qkv_block: Option<i64>,
}

impl ForwardOptions {
    /// Sets whether hidden states are returned.
    pub fn with_hidden_states(mut self, yes: bool) -> Self {
        self.output_hidden_states = yes;
        self
    }

    /// Sets whether attention probabilities are returned.
    pub fn with_attentions(mut self, yes: bool) -> Self {
        self.output_attentions = yes;
        self
    }

    /// Sets the mask of patches replaced by the mask token.
    pub fn with_bool_masked_pos(mut self, mask: Tensor) -> Self {
        self.bool_masked_pos = Some(mask);
        self
    }

    /// Sets the head mask.
    pub fn with_head_mask(mut self, mask: Tensor) -> Self {
        self.head_mask = Some(mask);
        self
    }

    /// Sets the block whose q, k, v are returned.
    pub fn with_qkv_block(mut self, block: i64) -> Self {
        self.qkv_block = Some(block);
        self
    }
}

/// What [`Vit::forward_with`] returns.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// `(B, 1 + R + h·w, D)` after the final norm.
    pub last_hidden_state: Tensor,
    /// The normed CLS token `(B, D)`.
    pub pooler_output: Tensor,
    /// `L + 1` hidden states before the final norm, when requested.
    pub hidden_states: Option<Vec<Tensor>>,
    /// `L` attention probability tensors `(B, H, T, T)`, when requested.
    pub attentions: Option<Vec<Tensor>>,
    /// q, k, v `(B, T, D)` of the requested block.
    pub qkv: Option<Qkv>,
    /// The patch grid `(h, w)`.
    pub grid: (usize, usize),
}

/// A vision transformer that feeds dinoreg's heads, backbone and pipelines.
///
/// Implement [`encode`](Vit::encode), [`final_norm`](Vit::final_norm), [`info`](Vit::info),
/// [`device`](Vit::device) and [`dtype`](Vit::dtype); every other method is built on them.
pub trait Vit: Send + Sync + std::fmt::Debug {
    /// The architecture facts.
    fn info(&self) -> &VitInfo;

    /// The device the model runs on.
    fn device(&self) -> &Device;

    /// The dtype of the weights and activations.
    fn dtype(&self) -> DType;

    /// One encoder pass over `pixels` `(B, C, H, W)` as `request` asks.
    fn encode(&self, pixels: &Tensor, request: &EncodeRequest<'_>) -> Result<Encoded>;

    /// The final norm, applied to `x` `(…, D)`.
    fn final_norm(&self, x: &Tensor) -> Result<Tensor>;

    /// The HF backbone settings stored with the model (its config's `out_features`,
    /// `out_indices`, `apply_layernorm`, `reshape_hidden_states`); all `None` by default.
    fn backbone_defaults(&self) -> BackboneOptions {
        BackboneOptions::default()
    }

    /// `last_hidden_state` and `pooler_output` of `pixels` `(B, C, H, W)`.
    fn forward(&self, pixels: &Tensor) -> Result<ModelOutput> {
        self.forward_with(pixels, &ForwardOptions::default())
    }

    /// The forward pass with HF's optional inputs and outputs.
    fn forward_with(&self, pixels: &Tensor, opts: &ForwardOptions) -> Result<ModelOutput> {
        let l = self.info().num_hidden_layers;
        let qkv_block = opts
            .qkv_block
            .map(|b| self.info().block_index(b))
            .transpose()?;
        let request = EncodeRequest {
            keep: vec![opts.output_hidden_states; l + 1],
            attentions: opts.output_attentions,
            qkv_block,
            head_mask: opts.head_mask.as_ref(),
            bool_masked_pos: opts.bool_masked_pos.as_ref(),
            blocks: l,
        };
        let enc = self.encode(pixels, &request)?;
        let last_hidden_state = self.final_norm(&enc.last)?;
        let pooler_output = last_hidden_state.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(ModelOutput {
            last_hidden_state,
            pooler_output,
            hidden_states: opts
                .output_hidden_states
                .then(|| enc.hidden.into_iter().flatten().collect()),
            attentions: opts.output_attentions.then_some(enc.attentions),
            qkv: enc.qkv,
            grid: enc.grid,
        })
    }

    /// Features of the selected blocks of `pixels` `(B, C, H, W)`, in the style of timm's
    /// `forward_intermediates` and dinov2's `get_intermediate_layers`.
    fn forward_intermediates(
        &self,
        pixels: &Tensor,
        opts: &IntermediatesOptions,
    ) -> Result<Intermediates> {
        let info = self.info();
        let blocks = info.resolve_blocks(&opts.layers)?;
        let l = info.num_hidden_layers;
        let mut keep = vec![false; l + 1];
        for &b in &blocks {
            keep[b + 1] = true;
        }
        let last = blocks.last().copied().unwrap_or(l - 1) + 1;
        let request = EncodeRequest {
            keep,
            blocks: if opts.stop_early { last } else { l },
            ..EncodeRequest::default()
        };
        let enc = self.encode(pixels, &request)?;
        let r = info.num_register_tokens;
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
                patches: info.patch_tokens(&x, enc.grid, opts.layout)?,
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
    fn features(&self, pixels: &Tensor, request: &FeatureRequest) -> Result<FeatureMaps> {
        let (_, _, h, w) = pixels.dims4().map_err(|_| {
            Error::input(
                "pixel_values",
                format!("expected (B, C, H, W), got {:?}", pixels.dims()),
            )
        })?;
        let input_size = (h, w);
        let info = self.info();
        let patch_size = info.patch_size;
        if request.source == FeatureSource::Output {
            let inter = self.forward_intermediates(
                pixels,
                &IntermediatesOptions {
                    layers: LayerSelection::Blocks(request.blocks.clone()),
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
        let [block] = request.blocks.as_slice() else {
            return Err(Error::option(
                "feature request",
                format!(
                    "attention keys/queries/values are read from one block, got blocks {:?}",
                    request.blocks
                ),
            ));
        };
        let block = info.block_index(*block)?;
        let enc = self.encode(
            pixels,
            &EncodeRequest {
                qkv_block: Some(block),
                blocks: block + 1,
                ..EncodeRequest::default()
            },
        )?;
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
            maps: vec![info.patch_tokens(&tokens, enc.grid, TokenLayout::Nchw)?],
            cls_tokens,
            patch_size,
            input_size,
        })
    }
}

/// Forwards every method to the model behind a pointer (so its own overrides are kept).
macro_rules! forward_vit {
    ($($ptr:ty),*) => {$(
        impl<M: Vit + ?Sized> Vit for $ptr {
            fn info(&self) -> &VitInfo {
                (**self).info()
            }
            fn device(&self) -> &Device {
                (**self).device()
            }
            fn dtype(&self) -> DType {
                (**self).dtype()
            }
            fn encode(&self, pixels: &Tensor, request: &EncodeRequest<'_>) -> Result<Encoded> {
                (**self).encode(pixels, request)
            }
            fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
                (**self).final_norm(x)
            }
            fn backbone_defaults(&self) -> BackboneOptions {
                (**self).backbone_defaults()
            }
            fn forward(&self, pixels: &Tensor) -> Result<ModelOutput> {
                (**self).forward(pixels)
            }
            fn forward_with(&self, pixels: &Tensor, opts: &ForwardOptions) -> Result<ModelOutput> {
                (**self).forward_with(pixels, opts)
            }
            fn forward_intermediates(
                &self,
                pixels: &Tensor,
                opts: &IntermediatesOptions,
            ) -> Result<Intermediates> {
                (**self).forward_intermediates(pixels, opts)
            }
            fn features(&self, pixels: &Tensor, request: &FeatureRequest) -> Result<FeatureMaps> {
                (**self).features(pixels, request)
            }
        }
    )*};
}

forward_vit!(&M, Box<M>, Arc<M>);
