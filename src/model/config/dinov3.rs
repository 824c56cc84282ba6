//! The DINOv3 ViT configuration: HF `DINOv3ViTConfig` (`model_type: "dinov3_vit"`) read from a
//! `config.json`, also when nested as another model's `backbone_config`, with every field and HF's
//! constructor defaults, presets for the published sizes, and validation with clear errors.
//!
//! The published checkpoints (gated on the Hub: accept the licence on the model page, then set
//! `HF_TOKEN`), by preset:
//!
//! | preset | Hub id | D / MLP / layers / heads |
//! | --- | --- | --- |
//! | [`small`](Dinov3Config::small) | `facebook/dinov3-vits16-pretrain-lvd1689m` | 384 / 1536 GELU / 12 / 6 |
//! | [`small_plus`](Dinov3Config::small_plus) | `facebook/dinov3-vits16plus-pretrain-lvd1689m` | 384 / 1536 gated SiLU / 12 / 6 |
//! | [`base`](Dinov3Config::base) | `facebook/dinov3-vitb16-pretrain-lvd1689m` | 768 / 3072 GELU / 12 / 12 |
//! | [`large`](Dinov3Config::large) | `facebook/dinov3-vitl16-pretrain-lvd1689m`, `facebook/dinov3-vitl16-pretrain-sat493m` | 1024 / 4096 GELU / 24 / 16 |
//! | [`huge_plus`](Dinov3Config::huge_plus) | `facebook/dinov3-vith16plus-pretrain-lvd1689m` | 1280 / 5120 gated SiLU / 32 / 20 |
//! | [`giant_7b`](Dinov3Config::giant_7b) | `facebook/dinov3-vit7b16-pretrain-lvd1689m`, `facebook/dinov3-vit7b16-pretrain-sat493m` | 4096 / 8192 gated SiLU / 40 / 32, no q/k/v bias |
//!
//! All have patch 16, 4 register tokens, RoPE base 100, LayerNorm eps 1e-5.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    config_error, find_backbone_config, parse_json, read_json, square_size, stage_names,
    CommonChecks, Generation, HiddenAct,
};
use crate::{Error, Result};

/// The published DINOv3 ViT checkpoints on the Hub: `(preset name, Hub id)`.
pub const DINOV3_HUB_IDS: &[(&str, &str)] = &[
    ("small", "facebook/dinov3-vits16-pretrain-lvd1689m"),
    ("small-plus", "facebook/dinov3-vits16plus-pretrain-lvd1689m"),
    ("base", "facebook/dinov3-vitb16-pretrain-lvd1689m"),
    ("large", "facebook/dinov3-vitl16-pretrain-lvd1689m"),
    ("large", "facebook/dinov3-vitl16-pretrain-sat493m"),
    ("huge-plus", "facebook/dinov3-vith16plus-pretrain-lvd1689m"),
    ("7b", "facebook/dinov3-vit7b16-pretrain-lvd1689m"),
    ("7b", "facebook/dinov3-vit7b16-pretrain-sat493m"),
];

/// The `model_type` of a DINOv3 ViT config.
const MODEL_TYPE: &str = "dinov3_vit";

/// Every field of HF's `DINOv3ViTConfig`. Unknown keys are ignored. Defaults are HF's constructor
/// defaults (ViT-S/16 without registers): read the checkpoint's `config.json`, or use a preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dinov3Config {
    /// Always `"dinov3_vit"`.
    pub model_type: String,
    /// Patch size p (an integer, or a square `[p, p]` pair).
    #[serde(deserialize_with = "square_size")]
    pub patch_size: usize,
    /// Width D of the tokens.
    pub hidden_size: usize,
    /// Hidden width of the MLP (of each of the gate and up projections when gated).
    pub intermediate_size: usize,
    /// Number of transformer blocks L.
    pub num_hidden_layers: usize,
    /// Attention heads per block; the head width `D / heads` must be a multiple of 4 (RoPE).
    pub num_attention_heads: usize,
    /// MLP activation (the gate's activation when gated).
    pub hidden_act: HiddenAct,
    /// Attention dropout (inference ignores it).
    pub attention_dropout: f64,
    /// Initialisation std (unused at inference).
    pub initializer_range: f64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// The RoPE base period θ: `inv_freq[k] = 1 / θ^(4k / head_dim)`.
    pub rope_theta: f64,
    /// Training image size (unused at inference: RoPE is computed for each input's grid).
    #[serde(deserialize_with = "square_size")]
    pub image_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Whether the query projection has a bias.
    pub query_bias: bool,
    /// Whether the key projection has a bias (not in the published checkpoints).
    pub key_bias: bool,
    /// Whether the value projection has a bias.
    pub value_bias: bool,
    /// Whether the attention's output projection has a bias.
    pub proj_bias: bool,
    /// Whether the MLP's projections have biases.
    pub mlp_bias: bool,
    /// Initial LayerScale value (the checkpoint's values are loaded).
    pub layerscale_value: f64,
    /// Stochastic depth rate (inference ignores it).
    pub drop_path_rate: f64,
    /// The gated MLP `down(act(gate(x)) · up(x))` instead of `down(act(up(x)))`.
    pub use_gated_mlp: bool,
    /// Number of register tokens R (4 in the published checkpoints).
    pub num_register_tokens: usize,
    /// Training only: random shift of the patch coordinates in [−shift, shift]. HF applies it in
    /// training mode only; inference (here, always) ignores it.
    pub pos_embed_shift: Option<f64>,
    /// Training only: random log-uniform jitter of each coordinate axis in [1/jitter, jitter].
    /// Ignored at inference.
    pub pos_embed_jitter: Option<f64>,
    /// Training only: random log-uniform rescale of the coordinates in [1/rescale, rescale]
    /// (HF's default 2.0). Ignored at inference.
    pub pos_embed_rescale: Option<f64>,
    /// Backbone stages to return, by name.
    pub out_features: Option<Vec<String>>,
    /// Backbone stages to return, by index into `stage_names` (negative counts from the end).
    pub out_indices: Option<Vec<i64>>,
    /// Backbone: apply the final norm to each returned stage (the last stage is always normed).
    pub apply_layernorm: bool,
    /// Backbone: return `(B, D, h, w)` maps instead of `(B, h·w, D)` patch tokens.
    pub reshape_hidden_states: bool,
    /// Backbone: also return each returned stage's CLS token (`return_class_token`, read by
    /// `DINOv3ViTBackbone` when the config has it).
    pub return_class_token: bool,
    /// `["stem", "stage1", …, "stageL"]`; derived when absent, checked when present.
    pub stage_names: Option<Vec<String>>,
    /// Class names, by index (carried along; the backbone has no classifier).
    pub id2label: BTreeMap<usize, String>,
    /// The architectures the checkpoint was saved from.
    pub architectures: Option<Vec<String>>,
}

impl Default for Dinov3Config {
    fn default() -> Self {
        Self {
            model_type: MODEL_TYPE.to_string(),
            patch_size: 16,
            hidden_size: 384,
            intermediate_size: 1536,
            num_hidden_layers: 12,
            num_attention_heads: 6,
            hidden_act: HiddenAct::Gelu,
            attention_dropout: 0.0,
            initializer_range: 0.02,
            layer_norm_eps: 1e-5,
            rope_theta: 100.0,
            image_size: 224,
            num_channels: 3,
            query_bias: true,
            key_bias: false,
            value_bias: true,
            proj_bias: true,
            mlp_bias: true,
            layerscale_value: 1.0,
            drop_path_rate: 0.0,
            use_gated_mlp: false,
            num_register_tokens: 0,
            pos_embed_shift: None,
            pos_embed_jitter: None,
            pos_embed_rescale: Some(2.0),
            out_features: None,
            out_indices: None,
            apply_layernorm: true,
            reshape_hidden_states: true,
            return_class_token: false,
            stage_names: None,
            id2label: BTreeMap::new(),
            architectures: None,
        }
    }
}

impl Dinov3Config {
    /// Reads and validates a `config.json`: a `dinov3_vit` config, or one holding it as its
    /// `backbone_config` (a Depth-Anything config, for example; the wrapper's own fields, its
    /// `patch_size` among them, are not the backbone's).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_value_at(&read_json(path)?, path)
    }

    /// Parses and validates a config from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_value_at(&parse_json(text)?, &PathBuf::from("<json>"))
    }

    /// Parses and validates a config from a JSON value (the config itself or a wrapper with a
    /// nested `backbone_config`).
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        Self::from_value_at(value, Path::new("<json>"))
    }

    pub(crate) fn from_value_at(value: &serde_json::Value, path: &Path) -> Result<Self> {
        let (inner, generation) = find_backbone_config(value, path)?;
        if generation != Generation::Dinov3 {
            return Err(config_error(
                path,
                "this is a DINOv2 config, not a DINOv3 one (model_type \"dinov3_vit\"); read it with Dinov2Config or load the model with DinoModel",
            ));
        }
        let cfg: Self =
            serde_json::from_value(inner.clone()).map_err(|e| config_error(path, e.to_string()))?;
        cfg.validate().map_err(|e| match e {
            Error::Config { reason, .. } => config_error(path, reason),
            other => other,
        })?;
        Ok(cfg)
    }

    /// Checks the config for internal consistency.
    pub fn validate(&self) -> Result<()> {
        let p = Path::new("<config>");
        if self.model_type != MODEL_TYPE {
            return Err(config_error(
                p,
                format!(
                    "model_type must be {MODEL_TYPE:?}, got {:?}",
                    self.model_type
                ),
            ));
        }
        CommonChecks {
            positive: &[
                ("hidden_size", self.hidden_size),
                ("intermediate_size", self.intermediate_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("patch_size", self.patch_size),
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
        if !self.head_dim().is_multiple_of(4) {
            return Err(config_error(
                p,
                format!(
                    "the head width hidden_size / num_attention_heads = {} must be a multiple of 4 for RoPE",
                    self.head_dim()
                ),
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(config_error(
                p,
                format!(
                    "rope_theta must be positive and finite, got {}",
                    self.rope_theta
                ),
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
        self.hidden_size / self.num_attention_heads.max(1)
    }

    fn preset(
        hidden: usize,
        intermediate: usize,
        layers: usize,
        heads: usize,
        gated: bool,
    ) -> Self {
        let mut cfg = Self {
            hidden_size: hidden,
            intermediate_size: intermediate,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_register_tokens: 4,
            use_gated_mlp: gated,
            hidden_act: if gated {
                HiddenAct::Silu
            } else {
                HiddenAct::Gelu
            },
            ..Self::default()
        };
        cfg.stage_names = Some(cfg.derived_stage_names());
        cfg
    }

    /// ViT-S/16 (`facebook/dinov3-vits16-pretrain-lvd1689m`): D 384, 12 layers, 6 heads, GELU MLP
    /// 1536.
    pub fn small() -> Self {
        Self::preset(384, 1536, 12, 6, false)
    }

    /// ViT-S+/16 (`facebook/dinov3-vits16plus-pretrain-lvd1689m`): D 384, 12 layers, 6 heads,
    /// gated SiLU MLP 1536.
    pub fn small_plus() -> Self {
        Self::preset(384, 1536, 12, 6, true)
    }

    /// ViT-B/16 (`facebook/dinov3-vitb16-pretrain-lvd1689m`): D 768, 12 layers, 12 heads, GELU MLP
    /// 3072.
    pub fn base() -> Self {
        Self::preset(768, 3072, 12, 12, false)
    }

    /// ViT-L/16 (`facebook/dinov3-vitl16-pretrain-lvd1689m`, `-sat493m`): D 1024, 24 layers, 16
    /// heads, GELU MLP 4096.
    pub fn large() -> Self {
        Self::preset(1024, 4096, 24, 16, false)
    }

    /// ViT-H+/16 (`facebook/dinov3-vith16plus-pretrain-lvd1689m`): D 1280, 32 layers, 20 heads,
    /// gated SiLU MLP 5120.
    pub fn huge_plus() -> Self {
        Self::preset(1280, 5120, 32, 20, true)
    }

    /// ViT-7B/16 (`facebook/dinov3-vit7b16-pretrain-lvd1689m`, `-sat493m`): D 4096, 40 layers, 32
    /// heads, gated SiLU MLP 8192, no query or value bias.
    pub fn giant_7b() -> Self {
        Self {
            query_bias: false,
            value_bias: false,
            ..Self::preset(4096, 8192, 40, 32, true)
        }
    }

    /// A preset by name: `small`, `small-plus`, `base`, `large`, `huge-plus`, `7b` (also the Hub
    /// names `vits16`, `vits16plus`, `vitb16`, `vitl16`, `vith16plus`, `vit7b16`).
    pub fn preset_by_name(name: &str) -> Result<Self> {
        match name {
            "small" | "s" | "vits16" => Ok(Self::small()),
            "small-plus" | "small_plus" | "s+" | "vits16plus" => Ok(Self::small_plus()),
            "base" | "b" | "vitb16" => Ok(Self::base()),
            "large" | "l" | "vitl16" => Ok(Self::large()),
            "huge-plus" | "huge_plus" | "h+" | "vith16plus" => Ok(Self::huge_plus()),
            "7b" | "vit7b16" => Ok(Self::giant_7b()),
            other => Err(Error::option(
                "preset",
                format!(
                    "unknown DINOv3 preset {other:?}; expected small, small-plus, base, large, huge-plus or 7b"
                ),
            )),
        }
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
    fn hf_defaults_and_presets() {
        let c = Dinov3Config::from_json(r#"{"model_type": "dinov3_vit"}"#).unwrap();
        assert_eq!(c, Dinov3Config::default());
        assert_eq!(
            (c.layer_norm_eps, c.rope_theta, c.key_bias),
            (1e-5, 100.0, false)
        );
        assert_eq!(c.pos_embed_rescale, Some(2.0));
        let n = Dinov3Config::from_json(
            r#"{"model_type": "dinov3_vit", "pos_embed_rescale": null, "patch_size": [8, 8]}"#,
        )
        .unwrap();
        assert_eq!((n.pos_embed_rescale, n.patch_size), (None, 8));
        for (name, _) in DINOV3_HUB_IDS {
            let p = Dinov3Config::preset_by_name(name).unwrap();
            p.validate().unwrap();
            let head_dim = if *name == "7b" { 128 } else { 64 };
            assert_eq!((p.num_register_tokens, p.head_dim()), (4, head_dim));
        }
        assert!(!Dinov3Config::giant_7b().query_bias);
        assert!(Dinov3Config::preset_by_name("giant").is_err());
    }

    #[test]
    fn bad_configs() {
        let bad = |json: &str, what: &str| {
            let e = Dinov3Config::from_json(json).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        };
        bad(
            r#"{"model_type": "dinov3_vit", "hidden_size": 24, "num_attention_heads": 4}"#,
            "multiple of 4",
        );
        bad(
            r#"{"model_type": "dinov3_vit", "rope_theta": 0}"#,
            "rope_theta",
        );
        bad(
            r#"{"model_type": "dinov3_vit", "patch_size": [8, 16]}"#,
            "non-square",
        );
        bad(r#"{"model_type": "dinov2"}"#, "not a DINOv3");
        bad(
            r#"{"model_type": "dinov3_vit", "num_hidden_layers": 2, "out_indices": [3]}"#,
            "out_indices",
        );
    }
}
