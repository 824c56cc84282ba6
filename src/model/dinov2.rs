//! The DINOv2-with-registers model: HF `Dinov2WithRegistersModel` (and `Dinov2Model`), and its
//! loader from HF's checkpoint names. Embeddings (learned position table, resized per input) → L
//! pre-norm blocks → final LayerNorm on every token; `pooler_output` is the normed CLS. The pass
//! itself is the shared `Encoder` (`model/encoder.rs`).
//!
//! Shapes: pixels `(B, C, H, W)`; `last_hidden_state` `(B, 1 + R + h·w, D)`; `pooler_output`
//! `(B, D)`; `hidden_states` L+1 tensors `(B, 1 + R + h·w, D)` before the final norm (index 0 is the
//! embedding output, "stem"); `attentions` L tensors `(B, H, T, T)`.

use std::path::Path;

use candle::Tensor;
use dinoreg_heads::Scope;

use crate::model::backbone::BackboneOptions;
use crate::model::config::Dinov2Config;
use crate::model::embeddings::Embeddings;
use crate::model::encoder::{load_blocks, vit_via_encoder, Encoder, EncoderParts, TokenEmbedding};
use crate::model::layers::{Attention, AttentionWeights, Block, FeedForward, LayerNorm, Linear};
use crate::model::load::LoadOptions;
use crate::model::pretrained::{DinoModel, ModelSource, Pretrained};
use crate::model::vit::{Family, VitInfo};
use crate::model::weights::{open_backbone, BackboneWeights};
use crate::Result;

/// The DINOv2 encoder with its weights.
#[derive(Debug)]
pub struct Dinov2Model {
    config: Dinov2Config,
    encoder: Encoder<Embeddings>,
}

impl Dinov2Model {
    /// Loads a model from a `config.json` and its checkpoint file(s).
    pub fn load(
        config: impl AsRef<Path>,
        weights: &[impl AsRef<Path>],
        opts: &LoadOptions,
    ) -> Result<Self> {
        let config = Dinov2Config::from_file(config)?;
        let weights = open_backbone(weights)?;
        Self::from_weights(config, &weights, opts)
    }

    /// Loads a DINOv2 model from a Hub id (downloaded once into the Hugging Face cache), a local
    /// folder or a bare original `.pth`, with the image processor its checkpoint was made for.
    ///
    /// ```
    /// # fn main() -> dinoreg::Result<()> {
    /// use dinoreg::{Dinov2Model, LoadOptions, Vit};
    /// let pretrained = Dinov2Model::from_pretrained("tests/fixtures/model/reg4", &LoadOptions::default())?;
    /// let pixels = pretrained.processor.pixels("examples/images/chelsea.png", &candle::Device::Cpu)?;
    /// let out = pretrained.model.forward(&pixels)?;
    /// assert_eq!(out.pooler_output.dims(), &[1, 32]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pretrained(source: &str, opts: &LoadOptions) -> Result<Pretrained<Self>> {
        ModelSource::resolve(source)?.load_as(opts, "DINOv2", |m| match m {
            DinoModel::Dinov2(model) => Some(model),
            _ => None,
        })
    }

    /// Builds the model from a config and an opened checkpoint.
    pub fn from_weights(
        config: Dinov2Config,
        weights: &BackboneWeights,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let scope = weights.scope_for(Family::Dinov2, opts)?;
        Self::build(config, &scope, opts.fused_kernels)
    }

    /// Builds the model from a config and a scope holding `embeddings.*`, `encoder.*`, `layernorm.*`.
    pub fn from_scope(config: Dinov2Config, scope: &Scope<'_>) -> Result<Self> {
        Self::build(config, scope, true)
    }

    /// Builds the model; `fused` lets f32 CPU passes take the fused kernels.
    fn build(config: Dinov2Config, scope: &Scope<'_>, fused: bool) -> Result<Self> {
        config.validate()?;
        let blocks = load_blocks(
            &scope.pp("encoder").pp("layer"),
            config.num_hidden_layers,
            |block| load_block(block, &config),
        )?;
        let info = VitInfo::new(
            Family::Dinov2,
            config.patch_size,
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
        )
        .with_register_tokens(config.num_register_tokens)
        .with_channels(config.num_channels);
        let parts = EncoderParts {
            embeddings: Embeddings::load(&scope.pp("embeddings"), &config)?,
            blocks,
            norm: LayerNorm::load(
                &scope.pp("layernorm"),
                config.hidden_size,
                config.layer_norm_eps,
            )?,
            rope: None,
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
    pub fn config(&self) -> &Dinov2Config {
        &self.config
    }

    /// The embedding layer.
    pub fn embeddings(&self) -> &Embeddings {
        self.encoder.embeddings()
    }
}

vit_via_encoder!(Dinov2Model);

impl TokenEmbedding for Embeddings {
    fn grid(&self, pixels: &Tensor) -> Result<(usize, usize)> {
        Embeddings::grid(self, pixels)
    }

    fn forward(&self, pixels: &Tensor, bool_masked_pos: Option<&Tensor>) -> Result<Tensor> {
        Embeddings::forward(self, pixels, bool_masked_pos)
    }
}

/// Loads block `encoder.layer.{i}` (HF DINOv2 names) from `scope`, scoped to it:
/// `attention.attention.{query,key,value}`, `attention.output.dense`, `layer_scale{1,2}.lambda1`,
/// `norm{1,2}`, `mlp.fc1/fc2` or (SwiGLU) `mlp.weights_in/weights_out`.
fn load_block(scope: &Scope<'_>, cfg: &Dinov2Config) -> Result<Block> {
    let d = cfg.hidden_size;
    let eps = cfg.layer_norm_eps;
    let attn = scope.pp("attention");
    let qkv = |name: &str| -> Result<Linear> {
        Linear::load(&attn.pp("attention").pp(name), d, d)?.expect_bias(
            &attn.pp("attention").pp(name),
            "qkv_bias",
            cfg.qkv_bias,
        )
    };
    let out = attn.pp("output").pp("dense");
    let attention = Attention::new(
        AttentionWeights {
            q: qkv("query")?,
            k: qkv("key")?,
            v: qkv("value")?,
            o: Linear::load(&out, d, d)?.expect_bias(&out, "the output projection's bias", true)?,
        },
        cfg.num_attention_heads,
    )?;
    let mlp = scope.pp("mlp");
    let linear = |name: &str, input: usize, output: usize| -> Result<Linear> {
        let s = mlp.pp(name);
        Linear::load(&s, input, output)?.expect_bias(&s, "the MLP's bias", true)
    };
    let ffn = if cfg.use_swiglu_ffn {
        let h = cfg.swiglu_hidden_size();
        FeedForward::gated_fused(
            linear("weights_in", d, 2 * h)?,
            linear("weights_out", h, d)?,
            crate::model::config::HiddenAct::Silu,
        )?
    } else {
        let h = cfg.mlp_hidden_size();
        FeedForward::mlp(linear("fc1", d, h)?, linear("fc2", h, d)?, cfg.hidden_act)?
    };
    Block::load(scope, d, eps, attention, ffn)
}
