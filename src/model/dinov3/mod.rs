//! The DINOv3 ViT: HF `DINOv3ViTModel` (and, through [`Backbone`](crate::Backbone),
//! `DINOv3ViTBackbone`). Embeddings `[CLS, registers, patches]` without a position table → L
//! pre-norm blocks whose attention rotates the q and k of the patch tokens with RoPE → final
//! LayerNorm on every token; `pooler_output` is the normed CLS. The pass itself is the shared
//! `Encoder` (`model/encoder.rs`, with the fused f32 CPU kernels), the layers the shared ones.
//!
//! - `embeddings`: the token embedding;
//! - `load`: the blocks from HF's checkpoint names;
//! - `original`: the facebookresearch/dinov3 `.pth` layout renamed onto HF's, and the config
//!   inferred from a checkpoint's tensors.
//!
//! Shapes: pixels `(B, C, H, W)`, any size (floored to whole patches); `last_hidden_state`
//! `(B, 1 + R + h·w, D)`; `pooler_output` `(B, D)`; `hidden_states` L+1 tensors before the final
//! norm (index 0 is the embedding output, "stem"); `attentions` L tensors `(B, H, T, T)`.

mod embeddings;
mod load;
mod original;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle::{DType, Device};
use dinoreg_heads::{Scope, TensorStore};

pub use embeddings::Dinov3Embeddings;
pub use original::infer_config;
pub(crate) use original::ORIGINAL_NAMES;

use crate::model::backbone::BackboneOptions;
use crate::model::config::Dinov3Config;
use crate::model::encoder::{load_blocks, vit_via_encoder, Encoder, EncoderParts};
use crate::model::layers::LayerNorm;
use crate::model::load::LoadOptions;
use crate::model::pretrained::{naming_config, DinoModel, ModelSource, Pretrained};
use crate::model::rope::{Rope, RopeTable};
use crate::model::vit::{Family, VitInfo};
use crate::model::weights::{open_backbone, BackboneWeights};
use crate::{Error, Result};

/// The original layout's RoPE periods `(head_dim / 4,)`, kept under this name when renamed.
pub(crate) const ROPE_PERIODS: &str = "rope_embed.periods";

/// The prefix of the blocks under the backbone prefix `p`: `layer.` as `save_pretrained` writes
/// them, or `model.layer.` as HF names them in memory.
pub(crate) fn layer_prefix(store: &TensorStore, p: &str) -> String {
    let in_memory = format!("{p}model.layer.");
    if store.contains(&format!("{in_memory}0.norm1.weight")) {
        in_memory
    } else {
        format!("{p}layer.")
    }
}

/// The DINOv3 ViT encoder with its weights.
#[derive(Debug)]
pub struct Dinov3Model {
    config: Dinov3Config,
    encoder: Encoder<Dinov3Embeddings>,
}

impl Dinov3Model {
    /// Loads a model from a `config.json` and its checkpoint file(s) (HF safetensors, single or
    /// sharded, or an original `.pth`).
    pub fn load(
        config: impl AsRef<Path>,
        weights: &[impl AsRef<Path>],
        opts: &LoadOptions,
    ) -> Result<Self> {
        let path = config.as_ref();
        let config = Dinov3Config::from_file(path)?;
        let weights = open_backbone(weights)?;
        Self::from_weights(config, &weights, opts).map_err(|e| naming_config(e, path))
    }

    /// Loads a DINOv3 model from a Hub id (downloaded once into the Hugging Face cache; the
    /// DINOv3 repos are gated: accept the licence on the model page, then set `HF_TOKEN`), a
    /// local folder or a bare original `.pth`, with the image processor its checkpoint was made
    /// for (`DINOv3ViTImageProcessor`).
    ///
    /// ```
    /// # fn main() -> dinoreg::Result<()> {
    /// use dinoreg::{Dinov3Model, LoadOptions, Vit};
    /// let pretrained = Dinov3Model::from_pretrained("tests/fixtures/dinov3/reg4", &LoadOptions::default())?;
    /// let pixels = candle::Tensor::zeros((1, 3, 12, 20), candle::DType::F32, &candle::Device::Cpu)?;
    /// let out = pretrained.model.forward(&pixels)?;
    /// assert_eq!(out.last_hidden_state.dims(), &[1, 1 + 4 + 3 * 5, 32]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pretrained(source: &str, opts: &LoadOptions) -> Result<Pretrained<Self>> {
        ModelSource::resolve(source)?.load_as(opts, "DINOv3", |m| match m {
            DinoModel::Dinov3(model) => Some(model),
            _ => None,
        })
    }

    /// Builds the model from a config and an opened checkpoint (HF or original layout; an error
    /// when it holds a DINOv2 backbone).
    pub fn from_weights(
        config: Dinov3Config,
        weights: &BackboneWeights,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let scope = weights.scope_for(Family::Dinov3, opts)?;
        check_rope_periods(&config, &scope)?;
        Self::build(config, &scope, opts.fused_kernels)
    }

    /// Builds the model from a config and a scope holding `embeddings.*`, `layer.*` (or
    /// `model.layer.*`) and `norm.*`.
    pub fn from_scope(config: Dinov3Config, scope: &Scope<'_>) -> Result<Self> {
        Self::build(config, scope, true)
    }

    fn build(config: Dinov3Config, scope: &Scope<'_>, fused: bool) -> Result<Self> {
        config.validate()?;
        let layers = if scope.contains("model.layer.0.norm1.weight") {
            scope.pp("model").pp("layer")
        } else {
            scope.pp("layer")
        };
        let blocks = load_blocks(&layers, config.num_hidden_layers, |block| {
            load::load_block(block, &config)
        })?;
        let info = VitInfo::new(
            Family::Dinov3,
            config.patch_size,
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
        )
        .with_register_tokens(config.num_register_tokens)
        .with_channels(config.num_channels)
        .with_always_norm_last_stage(true)
        .with_keep_prefix_unreshaped(false);
        let parts = EncoderParts {
            embeddings: Dinov3Embeddings::load(&scope.pp("embeddings"), &config)?,
            blocks,
            norm: LayerNorm::load(&scope.pp("norm"), config.hidden_size, config.layer_norm_eps)?,
            rope: Some(Rope::new(
                config.head_dim(),
                config.rope_theta,
                scope.device(),
                scope.dtype(),
            )?),
            info,
            backbone_defaults: BackboneOptions {
                out_features: config.out_features.clone(),
                out_indices: config.out_indices.clone(),
                apply_layernorm: Some(config.apply_layernorm),
                reshape_hidden_states: Some(config.reshape_hidden_states),
            },
        };
        Ok(Self {
            encoder: Encoder::new(parts, scope.device(), scope.dtype(), fused),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Dinov3Config {
        &self.config
    }

    /// The embedding layer.
    pub fn embeddings(&self) -> &Dinov3Embeddings {
        self.encoder.embeddings()
    }

    /// The RoPE tables of an `h × w` patch grid, as the attention uses them.
    pub fn rope_table(&self, grid: (usize, usize)) -> Result<Arc<RopeTable>> {
        self.encoder
            .rope()
            .ok_or_else(|| Error::option("rope", "the model has no RoPE"))?
            .table(grid)
    }
}

vit_via_encoder!(Dinov3Model);

/// Checks an original checkpoint's `rope_embed.periods` against the config's head width and
/// `rope_theta`.
fn check_rope_periods(config: &Dinov3Config, scope: &Scope<'_>) -> Result<()> {
    if !scope.contains(ROPE_PERIODS) {
        return Ok(());
    }
    let periods = scope
        .store()
        .get_any(&scope.path(ROPE_PERIODS), DType::F32, &Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let (head_dim, theta) = original::rope_from_periods(&periods)?;
    let theta_ok = theta.is_none_or(|t| (t - config.rope_theta).abs() <= 1e-4 * config.rope_theta);
    if head_dim != config.head_dim() || !theta_ok {
        return Err(Error::Config {
            path: PathBuf::from("<config>"),
            reason: format!(
                "the checkpoint {}'s {ROPE_PERIODS} ({} values{}) give a head width of {head_dim}, but the config has {} heads of width {} and rope_theta {}",
                scope.store().source_name(),
                periods.len(),
                theta.map(|t| format!(", θ = {t}")).unwrap_or_default(),
                config.num_attention_heads,
                config.head_dim(),
                config.rope_theta
            ),
        });
    }
    Ok(())
}
