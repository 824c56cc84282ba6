//! The model configuration: HF `Dinov2WithRegistersConfig` (and `Dinov2Config`) read from a
//! `config.json`, with every field, HF's constructor defaults, presets for the published checkpoints,
//! and validation with clear errors.
//!
//! A config may also be nested as `backbone_config` in another model's config (Depth-Anything).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    config_error, find_backbone_config, parse_json, read_json, stage_names, CommonChecks,
    Generation, HiddenAct,
};
use crate::{Error, Result};

/// Which HF model family the config describes. They share the network; they differ in the default
/// number of registers and in how the position table is resized (antialiased bicubic for
/// `dinov2_with_registers`, plain bicubic for `dinov2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ModelType {
    /// `dinov2_with_registers`.
    #[default]
    #[serde(rename = "dinov2_with_registers")]
    Dinov2WithRegisters,
    /// `dinov2` (no registers).
    #[serde(rename = "dinov2")]
    Dinov2,
}

/// Every field of HF's `Dinov2WithRegistersConfig` (and `Dinov2Config`). Unknown keys are ignored.
/// Defaults are HF's constructor defaults, which are NOT the published checkpoints' values (patch 16,
/// image 224): read the checkpoint's `config.json`, or use a preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dinov2Config {
    /// `dinov2_with_registers` or `dinov2`.
    pub model_type: ModelType,
    /// Width D of the tokens.
    pub hidden_size: usize,
    /// Number of transformer blocks L.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// MLP hidden size = `int(hidden_size * mlp_ratio)`.
    pub mlp_ratio: f64,
    /// MLP activation.
    pub hidden_act: HiddenAct,
    /// Dropout (inference ignores it).
    pub hidden_dropout_prob: f64,
    /// Attention dropout (inference ignores it).
    pub attention_probs_dropout_prob: f64,
    /// Initialisation std (unused at inference).
    pub initializer_range: f64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Training image size; the position table has `(image_size / patch_size)²` patch entries.
    pub image_size: usize,
    /// Patch size p.
    pub patch_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Whether q/k/v projections have a bias.
    pub qkv_bias: bool,
    /// Initial LayerScale value (the checkpoint's values are loaded).
    pub layerscale_value: f64,
    /// Stochastic depth rate (inference ignores it).
    pub drop_path_rate: f64,
    /// SwiGLU feed-forward (giant) instead of the GELU MLP.
    pub use_swiglu_ffn: bool,
    /// Number of register tokens R.
    pub num_register_tokens: usize,
    /// `dinov2` only: whether the checkpoint has a mask token.
    pub use_mask_token: bool,
    /// Backbone stages to return, by name.
    pub out_features: Option<Vec<String>>,
    /// Backbone stages to return, by index into `stage_names` (negative counts from the end).
    pub out_indices: Option<Vec<i64>>,
    /// Backbone: apply the final LayerNorm to each returned stage.
    pub apply_layernorm: bool,
    /// Backbone: return `(B, C, H/p, W/p)` maps without CLS and registers.
    pub reshape_hidden_states: bool,
    /// `["stem", "stage1", …, "stageL"]`; derived when absent, checked when present.
    pub stage_names: Option<Vec<String>>,
    /// Class names of a classification checkpoint, by index.
    pub id2label: BTreeMap<usize, String>,
    /// The architectures the checkpoint was saved from.
    pub architectures: Option<Vec<String>>,
}

impl Default for Dinov2Config {
    fn default() -> Self {
        Self {
            model_type: ModelType::Dinov2WithRegisters,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            mlp_ratio: 4.0,
            hidden_act: HiddenAct::Gelu,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            initializer_range: 0.02,
            layer_norm_eps: 1e-6,
            image_size: 224,
            patch_size: 16,
            num_channels: 3,
            qkv_bias: true,
            layerscale_value: 1.0,
            drop_path_rate: 0.0,
            use_swiglu_ffn: false,
            num_register_tokens: 4,
            use_mask_token: true,
            out_features: None,
            out_indices: None,
            apply_layernorm: true,
            reshape_hidden_states: true,
            stage_names: None,
            id2label: BTreeMap::new(),
            architectures: None,
        }
    }
}

impl Dinov2Config {
    /// Reads and validates a `config.json`. A Depth-Anything style config is accepted too: its
    /// `backbone_config` is used.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_value_at(&read_json(path)?, path)
    }

    /// Parses and validates a config from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_value_at(&parse_json(text)?, &PathBuf::from("<json>"))
    }

    /// Parses and validates a config from a JSON value: the DINOv2 config itself, or a config with
    /// a nested `backbone_config` (as Depth-Anything's).
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        Self::from_value_at(value, Path::new("<json>"))
    }

    pub(crate) fn from_value_at(value: &serde_json::Value, path: &Path) -> Result<Self> {
        match find_backbone_config(value, path)? {
            (inner, Generation::Dinov2) => Self::parse_own(inner, path),
            (_, Generation::Dinov3) => Err(config_error(
                path,
                "this is a DINOv3 config (model_type \"dinov3_vit\"), not a DINOv2 config; read it with Dinov3Config or load the model with DinoModel",
            )),
        }
    }

    fn parse_own(value: &serde_json::Value, path: &Path) -> Result<Self> {
        let mut cfg: Dinov2Config = serde_json::from_value(value.clone())
            .map_err(|e| config_error(path, format!("{e}")))?;
        let has = |k: &str| value.get(k).is_some_and(|v| !v.is_null());
        if cfg.model_type == ModelType::Dinov2 {
            // `Dinov2Config` defaults differ: no registers, patch 14.
            if !has("num_register_tokens") {
                cfg.num_register_tokens = 0;
            }
            if !has("patch_size") {
                cfg.patch_size = 14;
            }
        }
        cfg.validate().map_err(|e| match e {
            Error::Config { reason, .. } => config_error(path, reason),
            other => other,
        })?;
        Ok(cfg)
    }

    /// Checks the config for internal consistency.
    pub fn validate(&self) -> Result<()> {
        let p = Path::new("<config>");
        CommonChecks {
            positive: &[
                ("hidden_size", self.hidden_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("patch_size", self.patch_size),
                ("image_size", self.image_size),
                ("num_channels", self.num_channels),
            ],
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_hidden_layers: self.num_hidden_layers,
            layer_norm_eps: self.layer_norm_eps,
            stage_names: self.stage_names.as_deref(),
            out_features: self.out_features.as_deref(),
            out_indices: self.out_indices.as_deref(),
        }
        .run()?;
        if self.image_size < self.patch_size {
            return Err(config_error(
                p,
                format!(
                    "image_size {} is smaller than patch_size {}",
                    self.image_size, self.patch_size
                ),
            ));
        }
        if self.mlp_ratio.is_nan() || self.mlp_ratio <= 0.0 || self.mlp_hidden_size() == 0 {
            return Err(config_error(
                p,
                format!("mlp_ratio must be positive, got {}", self.mlp_ratio),
            ));
        }
        Ok(())
    }

    /// `["stem", "stage1", …, "stageL"]`.
    pub fn derived_stage_names(&self) -> Vec<String> {
        stage_names(self.num_hidden_layers)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Hidden size of the GELU MLP: `int(hidden_size * mlp_ratio)`.
    pub fn mlp_hidden_size(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }

    /// Hidden size of the SwiGLU FFN, HF's rule: `(int(int(D * mlp_ratio) * 2 / 3) + 7) // 8 * 8`.
    pub fn swiglu_hidden_size(&self) -> usize {
        let h = self.mlp_hidden_size();
        ((h as f64 * 2.0 / 3.0) as usize).div_ceil(8) * 8
    }

    /// Side of the stored position grid: `image_size / patch_size` (37 for the checkpoints).
    pub fn position_grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Number of classes of a classification checkpoint (`len(id2label)`).
    pub fn num_labels(&self) -> usize {
        self.id2label.len()
    }

    /// Whether the position table is resized with antialiasing (`dinov2_with_registers`).
    pub fn interpolate_antialias(&self) -> bool {
        self.model_type == ModelType::Dinov2WithRegisters
    }

    fn preset(hidden: usize, layers: usize, heads: usize, swiglu: bool) -> Self {
        let mut cfg = Self {
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            image_size: 518,
            patch_size: 14,
            use_swiglu_ffn: swiglu,
            ..Self::default()
        };
        cfg.stage_names = Some(cfg.derived_stage_names());
        cfg
    }

    /// `facebook/dinov2-with-registers-small`: ViT-S/14, D 384, 12 layers, 6 heads, 4 registers.
    pub fn small() -> Self {
        Self::preset(384, 12, 6, false)
    }

    /// `facebook/dinov2-with-registers-base`: ViT-B/14, D 768, 12 layers, 12 heads.
    pub fn base() -> Self {
        Self::preset(768, 12, 12, false)
    }

    /// `facebook/dinov2-with-registers-large`: ViT-L/14, D 1024, 24 layers, 16 heads.
    pub fn large() -> Self {
        Self::preset(1024, 24, 16, false)
    }

    /// `facebook/dinov2-with-registers-giant`: ViT-g/14, D 1536, 40 layers, 24 heads, SwiGLU.
    pub fn giant() -> Self {
        Self::preset(1536, 40, 24, true)
    }

    /// A preset by name: `small`, `base`, `large`, `giant` (also `vits14`…`vitg14`).
    pub fn preset_by_name(name: &str) -> Result<Self> {
        match name {
            "small" | "s" | "vits14" => Ok(Self::small()),
            "base" | "b" | "vitb14" => Ok(Self::base()),
            "large" | "l" | "vitl14" => Ok(Self::large()),
            "giant" | "g" | "vitg14" => Ok(Self::giant()),
            other => Err(Error::option(
                "preset",
                format!("unknown preset {other:?}; expected small, base, large or giant"),
            )),
        }
    }

    /// The same network as plain `dinov2` (no registers, no antialiasing), as Depth-Anything uses it.
    pub fn without_registers(mut self) -> Self {
        self.model_type = ModelType::Dinov2;
        self.num_register_tokens = 0;
        self
    }

    /// Sets the backbone's `out_indices` (and clears `out_features`, which is derived from them).
    pub fn with_out_indices(mut self, indices: Vec<i64>) -> Self {
        self.out_indices = Some(indices);
        self.out_features = None;
        self
    }

    /// Sets the backbone's `out_features` (and clears `out_indices`, which is derived from them).
    pub fn with_out_features(mut self, features: Vec<String>) -> Self {
        self.out_features = Some(features);
        self.out_indices = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_published_checkpoints() {
        let g = Dinov2Config::giant();
        assert_eq!(
            (g.hidden_size, g.num_hidden_layers, g.num_attention_heads),
            (1536, 40, 24)
        );
        assert_eq!(g.swiglu_hidden_size(), 4096);
        assert_eq!(Dinov2Config::small().mlp_hidden_size(), 1536);
        assert_eq!(Dinov2Config::large().position_grid(), 37);
        assert_eq!(Dinov2Config::base().derived_stage_names().len(), 13);
        for p in [
            Dinov2Config::small(),
            Dinov2Config::base(),
            Dinov2Config::large(),
            g,
        ] {
            p.validate().unwrap();
            assert_eq!(p.num_register_tokens, 4);
        }
        assert!(Dinov2Config::preset_by_name("huge").is_err());
    }

    #[test]
    fn dinov2_defaults_differ_from_registers_defaults() {
        let c = Dinov2Config::from_json(
            r#"{"model_type": "dinov2", "hidden_size": 64, "num_attention_heads": 4}"#,
        )
        .unwrap();
        assert_eq!((c.num_register_tokens, c.patch_size), (0, 14));
        assert!(!c.interpolate_antialias());
        let r =
            Dinov2Config::from_json(r#"{"model_type": "dinov2_with_registers", "unknown_key": 1}"#)
                .unwrap();
        assert_eq!(
            (r.num_register_tokens, r.patch_size, r.image_size),
            (4, 16, 224)
        );
        assert!(r.interpolate_antialias());
    }
}
