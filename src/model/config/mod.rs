//! Model configurations, one file per generation: [`Dinov2Config`] (HF `Dinov2WithRegistersConfig`
//! and `Dinov2Config`) and [`Dinov3Config`] (HF `DINOv3ViTConfig`), with what they share: the MLP
//! activation ([`HiddenAct`]), HF's stage names, and finding the backbone's config in a
//! `config.json` (at the top level, or nested as another model's `backbone_config`) by its
//! `model_type`.

mod dinov2;
mod dinov3;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

pub use dinov2::*;
pub use dinov3::{Dinov3Config, DINOV3_HUB_IDS};

use crate::{Error, Result};

/// The activation of the MLP (`hidden_act`). HF's `"gelu"` is the exact erf GELU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum HiddenAct {
    /// Exact GELU, `0.5 x (1 + erf(x / √2))` (`"gelu"`).
    #[default]
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation of GELU (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    #[serde(rename = "gelu_pytorch_tanh", alias = "gelu_new", alias = "gelu_fast")]
    GeluTanh,
    /// `"relu"`.
    #[serde(rename = "relu")]
    Relu,
    /// `"silu"` / `"swish"`.
    #[serde(rename = "silu", alias = "swish")]
    Silu,
}

/// The backbone generation a `config.json` describes, by its `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generation {
    /// `dinov2_with_registers` or `dinov2`.
    Dinov2,
    /// `dinov3_vit`.
    Dinov3,
}

impl Generation {
    fn of(model_type: Option<&str>) -> Option<Self> {
        match model_type? {
            "dinov2_with_registers" | "dinov2" => Some(Self::Dinov2),
            "dinov3_vit" => Some(Self::Dinov3),
            _ => None,
        }
    }
}

/// An [`Error::Config`] for `path`.
pub(crate) fn config_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| config_error(path, format!("not valid JSON ({e})")))
}

/// Parses JSON text; `<json>` names it in errors.
pub(crate) fn parse_json(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| config_error(&PathBuf::from("<json>"), format!("not valid JSON ({e})")))
}

/// The backbone's config in `value` and its generation: `value` itself when its `model_type` is a
/// DINO backbone's, else its `backbone_config` (Depth-Anything and other wrappers).
pub(crate) fn find_backbone_config<'a>(
    value: &'a serde_json::Value,
    path: &Path,
) -> Result<(&'a serde_json::Value, Generation)> {
    let obj = value
        .as_object()
        .ok_or_else(|| config_error(path, "expected a JSON object"))?;
    let model_type = obj.get("model_type").and_then(|m| m.as_str());
    if let Some(g) = Generation::of(model_type) {
        return Ok((value, g));
    }
    let inner = obj.get("backbone_config").filter(|v| v.is_object());
    let inner_type = inner
        .and_then(|v| v.get("model_type"))
        .and_then(|m| m.as_str());
    match (inner, Generation::of(inner_type)) {
        (Some(inner), Some(g)) => Ok((inner, g)),
        // A nested config without a model_type: HF's DINOv2 wrappers (Depth-Anything) default to it.
        (Some(inner), None) if inner_type.is_none() => Ok((inner, Generation::Dinov2)),
        _ => Err(config_error(
            path,
            format!(
                "model_type {:?} is not a DINOv2 config nor a DINOv3 one (expected \"dinov2_with_registers\", \"dinov2\" or \"dinov3_vit\", or a `backbone_config` holding one{})",
                model_type.unwrap_or("<missing>"),
                inner_type.map(|t| format!("; its backbone_config is {t:?}")).unwrap_or_default()
            ),
        )),
    }
}

/// The checks both generations' configs make the same way: sizes at least 1, the width divisible
/// by the heads, a positive eps, stage names matching the depth, and HF's `out_features` /
/// `out_indices` rules.
pub(crate) struct CommonChecks<'a> {
    /// `(field, value)` pairs that must be at least 1.
    pub positive: &'a [(&'static str, usize)],
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `layer_norm_eps`.
    pub layer_norm_eps: f64,
    /// `stage_names`, when given.
    pub stage_names: Option<&'a [String]>,
    /// `out_features`.
    pub out_features: Option<&'a [String]>,
    /// `out_indices`.
    pub out_indices: Option<&'a [i64]>,
}

/// The most blocks a config may declare. The largest published ViTs have 40; the bound keeps a
/// crafted `num_hidden_layers` from costing memory before any weight is read (the stage names
/// alone are one string per block).
pub const MAX_HIDDEN_LAYERS: usize = 1024;

/// The largest value any size field may take (2²⁰): far above every published model (widths up to
/// 4096, MLPs up to 16384), low enough that products of sizes cannot overflow.
pub const MAX_SIZE_FIELD: usize = 1 << 20;

impl CommonChecks<'_> {
    /// Runs the checks; errors name the field and are attributed to `<config>`.
    pub fn run(&self) -> Result<()> {
        let p = Path::new("<config>");
        for (name, v) in self.positive {
            if *v == 0 {
                return Err(config_error(p, format!("{name} must be at least 1, got 0")));
            }
            if *v > MAX_SIZE_FIELD {
                return Err(config_error(
                    p,
                    format!("{name} is {v}, more than the {MAX_SIZE_FIELD} this crate accepts"),
                ));
            }
        }
        if self.num_hidden_layers > MAX_HIDDEN_LAYERS {
            return Err(config_error(
                p,
                format!(
                    "num_hidden_layers is {}, more than the {MAX_HIDDEN_LAYERS} this crate accepts (the largest published ViTs have 40)",
                    self.num_hidden_layers
                ),
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(config_error(
                p,
                format!(
                    "hidden_size {} is not divisible by num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        let eps = self.layer_norm_eps;
        if !(eps.is_finite() && eps > 0.0) {
            return Err(config_error(
                p,
                format!("layer_norm_eps must be positive and finite, got {eps}"),
            ));
        }
        let expected = stage_names(self.num_hidden_layers);
        if let Some(names) = self.stage_names.filter(|n| *n != expected.as_slice()) {
            return Err(config_error(
                p,
                format!(
                    "stage_names {names:?} do not match num_hidden_layers {} (expected {expected:?})",
                    self.num_hidden_layers
                ),
            ));
        }
        crate::model::backbone::align_out_stages(&expected, self.out_features, self.out_indices)
            .map_err(|e| config_error(p, e.to_string()))?;
        Ok(())
    }
}

/// HF's stage names of an `L`-block model: `["stem", "stage1", …, "stageL"]`.
pub fn stage_names(num_hidden_layers: usize) -> Vec<String> {
    std::iter::once("stem".to_string())
        .chain((1..=num_hidden_layers).map(|i| format!("stage{i}")))
        .collect()
}

/// Deserialises a size given as one integer or as a `[height, width]` pair, which must be square
/// (HF accepts pairs for `patch_size` and `image_size`; the checkpoints are square).
pub(crate) fn square_size<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        One(usize),
        Pair([usize; 2]),
    }
    match Size::deserialize(d)? {
        Size::One(n) => Ok(n),
        Size::Pair([h, w]) if h == w => Ok(h),
        Size::Pair([h, w]) => Err(serde::de::Error::custom(format!(
            "non-square size [{h}, {w}] is not supported (only square patches and images)"
        ))),
    }
}
