//! Depth-Anything-V2's own checkpoint layout (`depth_anything_v2/dpt.py`, files
//! `depth_anything_v2_vit{s,b,l,g}.pth` and the `metric_depth` ones): the one rename table from its
//! `depth_head.*` names onto HF's `neck.*` / `head.*`, and the neck/head configuration read from the
//! tensor shapes. The fine-tuned backbone under `pretrained.*` is left to the backbone loader.

use std::collections::HashMap;

use candle::{DType, Device};
use serde_json::json;

use super::config::{DepthAnythingConfig, DepthKind};
use super::options::four_layers_or_err;
use super::stored_dim as dim;
use crate::{Error, Result, TensorStore};

/// How to read a checkpoint in Depth-Anything-V2's own layout, which does not record these.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginalDepthAnythingOptions {
    /// Relative (the `depth_anything_v2_vit*.pth` files) or metric (`metric_depth`'s files).
    pub kind: DepthKind,
    /// Output scale: 1 for relative models; 20 (Hypersim, indoor) or 80 (Virtual KITTI, outdoor)
    /// for metric ones.
    pub max_depth: f64,
    /// The four backbone blocks (0-based); `None`: Depth-Anything-V2's table by backbone width
    /// (see [`super::dinov2_four_layers`]).
    pub blocks: Option<Vec<i64>>,
    /// The backbone's patch size (14 for every published Depth-Anything-V2 model; 16 when the head
    /// runs on a DINOv3 backbone).
    pub patch_size: usize,
}

impl Default for OriginalDepthAnythingOptions {
    /// A relative model: `max_depth` 1, published blocks, patch 14 (set the backbone's with
    /// [`with_patch_size`](Self::with_patch_size)).
    fn default() -> Self {
        Self {
            kind: DepthKind::Relative,
            max_depth: 1.0,
            blocks: None,
            patch_size: 14,
        }
    }
}

impl OriginalDepthAnythingOptions {
    /// A metric model scaled to `max_depth` metres.
    pub fn metric(max_depth: f64) -> Self {
        Self {
            kind: DepthKind::Metric,
            max_depth,
            ..Self::default()
        }
    }

    /// Sets relative or metric output.
    pub fn with_kind(mut self, kind: DepthKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the output scale.
    pub fn with_max_depth(mut self, max_depth: f64) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Sets the backbone blocks.
    pub fn with_blocks(mut self, blocks: impl Into<Vec<i64>>) -> Self {
        self.blocks = Some(blocks.into());
        self
    }

    /// Sets the patch size.
    pub fn with_patch_size(mut self, patch_size: usize) -> Self {
        self.patch_size = patch_size;
        self
    }
}

/// The rename table: `(original prefix, HF prefix)`, both ending with a dot.
fn table() -> Vec<(String, String)> {
    let mut t = Vec::new();
    for i in 0..4 {
        let layer = format!("neck.reassemble_stage.layers.{i}");
        t.push((
            format!("depth_head.projects.{i}."),
            format!("{layer}.projection."),
        ));
        t.push((
            format!("depth_head.resize_layers.{i}."),
            format!("{layer}.resize."),
        ));
        t.push((
            format!("depth_head.scratch.layer{}_rn.", i + 1),
            format!("neck.convs.{i}."),
        ));
        // refinenet4 fuses the coarsest level: HF's fusion layer 0.
        let k = 4 - i;
        let block = format!("neck.fusion_stage.layers.{i}");
        t.push((
            format!("depth_head.scratch.refinenet{k}.out_conv."),
            format!("{block}.projection."),
        ));
        for unit in 1..=2 {
            for conv in 1..=2 {
                t.push((
                    format!("depth_head.scratch.refinenet{k}.resConfUnit{unit}.conv{conv}."),
                    format!("{block}.residual_layer{unit}.convolution{conv}."),
                ));
            }
        }
    }
    for (from, to) in [
        ("output_conv1", "conv1"),
        ("output_conv2.0", "conv2"),
        ("output_conv2.2", "conv3"),
    ] {
        t.push((format!("depth_head.scratch.{from}."), format!("head.{to}.")));
    }
    t
}

/// The HF name of a Depth-Anything-V2 head tensor, or `None` for anything else (the backbone
/// under `pretrained.*`, readout projections).
///
/// ```
/// use dinoreg_heads::depth::original_to_hf;
/// assert_eq!(
///     original_to_hf("depth_head.scratch.refinenet4.resConfUnit2.conv1.weight").as_deref(),
///     Some("neck.fusion_stage.layers.0.residual_layer2.convolution1.weight"),
/// );
/// assert_eq!(original_to_hf("pretrained.blocks.0.attn.qkv.weight"), None);
/// ```
pub fn original_to_hf(name: &str) -> Option<String> {
    table()
        .into_iter()
        .find_map(|(from, to)| name.strip_prefix(&from).map(|rest| format!("{to}{rest}")))
}

/// The head tensors of `store` under their HF names, loaded as f32 on `device`.
pub(crate) fn rename_original(store: &TensorStore, device: &Device) -> Result<TensorStore> {
    let mut tensors = HashMap::new();
    for name in store.names() {
        if let Some(hf) = original_to_hf(&name) {
            tensors.insert(hf, store.get_any(&name, DType::F32, device)?);
        }
    }
    Ok(TensorStore::from_map(
        format!("{} (Depth-Anything-V2 layout)", store.source_name()),
        tensors,
    ))
}

/// The neck and head configuration of a Depth-Anything-V2 checkpoint, read from its tensor shapes.
pub(crate) fn original_config(
    store: &TensorStore,
    options: &OriginalDepthAnythingOptions,
) -> Result<DepthAnythingConfig> {
    if store.contains("depth_head.readout_projects.0.0.weight") {
        return Err(Error::input(
            store.source_name(),
            "the head reads the CLS token (use_clstoken=True); no published model does and it is not supported",
        ));
    }
    let width = dim(store, "depth_head.projects.0.weight", 1)?;
    let neck_hidden_sizes = (0..4)
        .map(|i| dim(store, &format!("depth_head.projects.{i}.weight"), 0))
        .collect::<Result<Vec<_>>>()?;
    let blocks = match &options.blocks {
        Some(l) => l.clone(),
        None => four_layers_or_err(width, "Depth-Anything-V2 head")?,
    };
    let stages: Vec<i64> = blocks
        .iter()
        .map(|&b| if b >= 0 { b + 1 } else { b })
        .collect();
    let config = DepthAnythingConfig {
        patch_size: options.patch_size,
        reassemble_hidden_size: width,
        reassemble_factors: vec![4.0, 2.0, 1.0, 0.5],
        neck_hidden_sizes,
        fusion_hidden_size: dim(store, "depth_head.scratch.layer1_rn.weight", 0)?,
        head_in_index: -1,
        head_hidden_size: dim(store, "depth_head.scratch.output_conv2.0.weight", 0)?,
        depth_estimation_type: options.kind,
        max_depth: options.max_depth,
        blocks,
        norm: true,
        backbone_config: json!({
            "model_type": "dinov2",
            "hidden_size": width,
            "patch_size": options.patch_size,
            "out_indices": stages,
            "reshape_hidden_states": false,
        }),
    };
    config.validate()?;
    Ok(config)
}
