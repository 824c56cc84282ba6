//! The neck and head part of a Depth-Anything `config.json` (HF `DepthAnythingConfig`,
//! `configuration_depth_anything.py`), with HF's defaults, plus the backbone's `out_indices` turned
//! into block indices. The backbone itself (`backbone_config`) is kept as JSON for the backbone
//! loader.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

/// What the head's last activation produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DepthKind {
    /// `relu(x) · max_depth`: relative inverse depth (disparity-like, larger is nearer).
    #[default]
    Relative,
    /// `sigmoid(x) · max_depth`: metric depth in metres.
    Metric,
}

impl DepthKind {
    /// Parses HF's `depth_estimation_type` (`"relative"` or `"metric"`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "relative" => Ok(DepthKind::Relative),
            "metric" => Ok(DepthKind::Metric),
            other => Err(Error::option(
                "depth_estimation_type",
                format!("`{other}` is not one of \"relative\", \"metric\""),
            )),
        }
    }
}

/// The neck and head of `DepthAnythingForDepthEstimation`.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthAnythingConfig {
    /// Patch size the head uses to size its output: `(h·p, w·p)` for an `h × w` patch grid.
    pub patch_size: usize,
    /// Channels of the backbone maps the neck receives (the backbone's width).
    pub reassemble_hidden_size: usize,
    /// Resampling factor of each reassemble level: integers upsample with a transposed conv, `1/n`
    /// downsamples with a stride-`n` conv (published: `[4, 2, 1, 0.5]`).
    pub reassemble_factors: Vec<f64>,
    /// Channels of each reassemble level.
    pub neck_hidden_sizes: Vec<usize>,
    /// Channels of the fusion stage.
    pub fusion_hidden_size: usize,
    /// Which fused map the head reads (negative counts from the end; `-1`, the finest, published).
    pub head_in_index: i64,
    /// Channels of the head's second convolution.
    pub head_hidden_size: usize,
    /// Relative (ReLU) or metric (sigmoid) output.
    pub depth_estimation_type: DepthKind,
    /// Output scale: the head's last activation is multiplied by it, in both modes, as HF does
    /// (published relative checkpoints leave it at 1; metric ones use 20 indoors, 80 outdoors).
    pub max_depth: f64,
    /// 0-based backbone blocks the neck reads, from `backbone_config.out_indices` (HF stage `k` is
    /// block `k - 1`; negative indices count from the end), or from `out_features`.
    pub blocks: Vec<i64>,
    /// Whether the backbone applies its final LayerNorm to the maps (`apply_layernorm`, default true).
    pub norm: bool,
    /// The backbone's own configuration (HF `Dinov2Config` JSON), for the backbone loader.
    pub backbone_config: Value,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PatchSize {
    One(usize),
    Pair(Vec<usize>),
}

fn patch_14() -> PatchSize {
    PatchSize::One(14)
}
fn hidden_384() -> usize {
    384
}
fn factors() -> Vec<f64> {
    vec![4.0, 2.0, 1.0, 0.5]
}
fn neck_sizes() -> Vec<usize> {
    vec![48, 96, 192, 384]
}
fn fusion_64() -> usize {
    64
}
fn minus_one() -> i64 {
    -1
}
fn head_32() -> usize {
    32
}
fn relative() -> String {
    "relative".into()
}
fn one() -> Option<f64> {
    Some(1.0)
}

/// The fields of HF's `DepthAnythingConfig` that concern the neck and head, with HF's defaults.
#[derive(Deserialize)]
struct Raw {
    backbone_config: Option<Value>,
    #[serde(default = "patch_14")]
    patch_size: PatchSize,
    #[serde(default = "hidden_384")]
    reassemble_hidden_size: usize,
    #[serde(default = "factors")]
    reassemble_factors: Vec<f64>,
    #[serde(default = "neck_sizes")]
    neck_hidden_sizes: Vec<usize>,
    #[serde(default = "fusion_64")]
    fusion_hidden_size: usize,
    #[serde(default = "minus_one")]
    head_in_index: i64,
    #[serde(default = "head_32")]
    head_hidden_size: usize,
    #[serde(default = "relative")]
    depth_estimation_type: String,
    #[serde(default = "one")]
    max_depth: Option<f64>,
}

/// The backbone fields this crate needs: which stages are read and whether they are normalised.
#[derive(Deserialize)]
struct RawBackbone {
    out_indices: Option<Vec<i64>>,
    out_features: Option<Vec<String>>,
    apply_layernorm: Option<bool>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::input("Depth-Anything config", reason)
}

/// HF stage `k` (`0` the embeddings, `k` the output of block `k - 1`) as a 0-based block index.
fn stage_to_block(stage: i64) -> Result<i64> {
    match stage {
        0 => Err(invalid(
            "backbone_config.out_indices selects stage 0 (the embeddings); the neck needs block outputs",
        )),
        k if k > 0 => Ok(k - 1),
        k => Ok(k),
    }
}

fn feature_to_block(name: &str) -> Result<i64> {
    let stage = name
        .strip_prefix("stage")
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| {
            invalid(format!(
                "backbone_config.out_features has `{name}`; expected names such as \"stage12\""
            ))
        })?;
    stage_to_block(stage)
}

impl DepthAnythingConfig {
    /// Reads a Depth-Anything `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            Error::InvalidInput { reason, .. } => Error::input(path.display().to_string(), reason),
            other => other,
        })
    }

    /// Parses the text of a Depth-Anything `config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON ({e})")))?;
        Self::from_value(&value)
    }

    /// Reads the neck and head fields of a parsed Depth-Anything `config.json`.
    pub fn from_value(value: &Value) -> Result<Self> {
        let raw: Raw = serde_json::from_value(value.clone())
            .map_err(|e| invalid(format!("unexpected field value ({e})")))?;
        let backbone_config = match raw.backbone_config {
            Some(b @ Value::Object(_)) => b,
            _ => return Err(invalid(
                "`backbone_config` is missing; a Depth-Anything config.json describes its DINOv2 \
                     backbone there (hidden_size, out_indices, ...)",
            )),
        };
        let backbone: RawBackbone = serde_json::from_value(backbone_config.clone())
            .map_err(|e| invalid(format!("unexpected backbone_config value ({e})")))?;
        let blocks = match (backbone.out_indices, backbone.out_features) {
            (Some(indices), _) => indices
                .into_iter()
                .map(stage_to_block)
                .collect::<Result<Vec<_>>>()?,
            (None, Some(features)) => features
                .iter()
                .map(|f| feature_to_block(f))
                .collect::<Result<Vec<_>>>()?,
            (None, None) => {
                return Err(invalid(
                    "backbone_config has neither `out_indices` nor `out_features`; the neck needs to know \
                     which blocks it reads",
                ))
            }
        };
        let patch_size = match raw.patch_size {
            PatchSize::One(p) => p,
            PatchSize::Pair(v) if v.len() == 2 && v[0] == v[1] => v[0],
            PatchSize::Pair(v) => {
                return Err(invalid(format!(
                    "patch_size {v:?} is not supported; expected one size or a square pair"
                )))
            }
        };
        let depth_estimation_type = DepthKind::parse(&raw.depth_estimation_type)?;
        let max_depth = match (raw.max_depth, depth_estimation_type) {
            (Some(m), _) => m,
            (None, DepthKind::Relative) => 1.0,
            (None, DepthKind::Metric) => {
                return Err(invalid("a metric model needs `max_depth`, found null"))
            }
        };
        let config = Self {
            patch_size,
            reassemble_hidden_size: raw.reassemble_hidden_size,
            reassemble_factors: raw.reassemble_factors,
            neck_hidden_sizes: raw.neck_hidden_sizes,
            fusion_hidden_size: raw.fusion_hidden_size,
            head_in_index: raw.head_in_index,
            head_hidden_size: raw.head_hidden_size,
            depth_estimation_type,
            max_depth,
            blocks,
            norm: backbone.apply_layernorm.unwrap_or(true),
            backbone_config,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks that the sizes agree with each other.
    pub fn validate(&self) -> Result<()> {
        let n = self.neck_hidden_sizes.len();
        if n == 0 {
            return Err(invalid("neck_hidden_sizes is empty"));
        }
        if self.reassemble_factors.len() != n {
            return Err(invalid(format!(
                "{} reassemble_factors for {n} neck_hidden_sizes; expected one factor per level",
                self.reassemble_factors.len()
            )));
        }
        if self.blocks.len() != n {
            return Err(invalid(format!(
                "the backbone hands over {} maps (out_indices) but the neck has {n} levels (neck_hidden_sizes)",
                self.blocks.len()
            )));
        }
        let ni = n as i64;
        if self.head_in_index >= ni || self.head_in_index < -ni {
            return Err(invalid(format!(
                "head_in_index {} is out of range for {n} fused maps",
                self.head_in_index
            )));
        }
        if self.patch_size == 0 || self.fusion_hidden_size < 2 || self.reassemble_hidden_size == 0 {
            return Err(invalid(
                "patch_size, reassemble_hidden_size and fusion_hidden_size (>= 2) must be positive",
            ));
        }
        if !self.max_depth.is_finite() {
            return Err(invalid(format!(
                "max_depth {} is not finite",
                self.max_depth
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_features_and_defaults() -> Result<()> {
        let c = DepthAnythingConfig::from_json(
            r#"{"backbone_config": {"out_features": ["stage3", "stage6", "stage9", "stage12"]}}"#,
        )?;
        assert_eq!(c.blocks, vec![2, 5, 8, 11]);
        assert_eq!(c.neck_hidden_sizes, vec![48, 96, 192, 384]);
        assert_eq!(c.depth_estimation_type, DepthKind::Relative);
        assert_eq!(c.max_depth, 1.0);
        assert!(c.norm);
        Ok(())
    }

    #[test]
    fn negative_and_bad_indices() {
        let c = DepthAnythingConfig::from_json(
            r#"{"backbone_config": {"out_indices": [-4, -3, -2, -1]}}"#,
        );
        assert_eq!(c.map(|c| c.blocks).ok(), Some(vec![-4, -3, -2, -1]));
        let stem =
            DepthAnythingConfig::from_json(r#"{"backbone_config": {"out_indices": [0, 1, 2, 3]}}"#);
        assert!(stem.is_err());
        let kind = DepthAnythingConfig::from_json(
            r#"{"backbone_config": {"out_indices": [1, 2, 3, 4]}, "depth_estimation_type": "absolute"}"#,
        );
        assert!(kind.is_err());
    }
}
