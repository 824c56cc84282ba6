//! Checkpoint formats of the backbone and the one key-rename table. The canonical layout is HF's
//! (`embeddings.*`, `encoder.layer.N.*`, `layernorm.*`), found at the top level, under a
//! classification prefix (`dinov2_with_registers.`, `dinov2.`) or nested (`backbone.`, …). The
//! original facebookresearch `.pth` layout (`blocks.N.attn.qkv` fused, `ls1.gamma`, `pos_embed`,
//! `register_tokens`, `norm`) is renamed onto it here, with the fused qkv split into q/k/v.

use std::collections::HashMap;
use std::path::PathBuf;

use candle::{DType, Device, Tensor};
use dinoreg_heads::TensorStore;

use crate::{Error, Result};

/// The marker tensor of each layout, relative to its prefix.
const HF_MARKER: &str = "embeddings.patch_embeddings.projection.weight";
const ORIGINAL_MARKER: &str = "patch_embed.proj.weight";

/// Prefixes tried first, in order, before any key ending with a marker is looked at.
const KNOWN_PREFIXES: &[&str] = &[
    "",
    "dinov2_with_registers.",
    "dinov2.",
    "backbone.",
    "pretrained.",
    "model.",
    "module.",
];

/// Original name → HF name, for the whole-model tensors.
const TOP_LEVEL_RENAMES: &[(&str, &str)] = &[
    ("cls_token", "embeddings.cls_token"),
    ("mask_token", "embeddings.mask_token"),
    ("register_tokens", "embeddings.register_tokens"),
    ("pos_embed", "embeddings.position_embeddings"),
    (
        "patch_embed.proj.weight",
        "embeddings.patch_embeddings.projection.weight",
    ),
    (
        "patch_embed.proj.bias",
        "embeddings.patch_embeddings.projection.bias",
    ),
    ("norm.weight", "layernorm.weight"),
    ("norm.bias", "layernorm.bias"),
];

/// Original name → HF name inside `blocks.N.` → `encoder.layer.N.` (the fused qkv is split apart).
const BLOCK_RENAMES: &[(&str, &str)] = &[
    ("norm1.weight", "norm1.weight"),
    ("norm1.bias", "norm1.bias"),
    ("norm2.weight", "norm2.weight"),
    ("norm2.bias", "norm2.bias"),
    ("attn.proj.weight", "attention.output.dense.weight"),
    ("attn.proj.bias", "attention.output.dense.bias"),
    ("ls1.gamma", "layer_scale1.lambda1"),
    ("ls2.gamma", "layer_scale2.lambda1"),
    ("mlp.fc1.weight", "mlp.fc1.weight"),
    ("mlp.fc1.bias", "mlp.fc1.bias"),
    ("mlp.fc2.weight", "mlp.fc2.weight"),
    ("mlp.fc2.bias", "mlp.fc2.bias"),
    ("mlp.w12.weight", "mlp.weights_in.weight"),
    ("mlp.w12.bias", "mlp.weights_in.bias"),
    ("mlp.w3.weight", "mlp.weights_out.weight"),
    ("mlp.w3.bias", "mlp.weights_out.bias"),
];

/// The layout a checkpoint was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// HF transformers names under `prefix`.
    Hf {
        /// For example `""`, `"dinov2_with_registers."` or `"backbone."`.
        prefix: String,
    },
    /// facebookresearch/dinov2 names under `prefix`, renamed to HF names.
    Original {
        /// For example `""` or `"pretrained."` (Depth-Anything-V2's `.pth`).
        prefix: String,
    },
}

/// A backbone checkpoint: the tensors (HF names) and the prefix they live under.
#[derive(Debug)]
pub struct BackboneWeights {
    /// The tensors. For an original `.pth` these are already renamed to HF names.
    pub store: TensorStore,
    /// The prefix of the backbone's HF names in `store`.
    pub prefix: String,
    /// The layout the checkpoint was found in.
    pub layout: Layout,
}

/// Opens a checkpoint (one file, or the shards of one safetensors checkpoint) and finds the backbone
/// in it.
pub fn open_backbone(files: &[PathBuf]) -> Result<BackboneWeights> {
    let store = match files {
        [] => return Err(Error::option("weights", "no checkpoint file was given")),
        [one] => TensorStore::open(one)?,
        many => TensorStore::open_safetensors(many)?,
    };
    find_backbone(store)
}

/// Finds the backbone in an opened store, renaming the original layout when needed.
pub fn find_backbone(store: TensorStore) -> Result<BackboneWeights> {
    let layout = detect_layout(&store).ok_or_else(|| {
        dinoreg_heads::Error::Checkpoint {
            path: PathBuf::from(store.source_name()),
            reason: format!(
                "no DINOv2 backbone found: expected a tensor `{HF_MARKER}` (HF layout) or `{ORIGINAL_MARKER}` (facebookresearch layout), possibly under a prefix"
            ),
        }
    })?;
    match &layout {
        Layout::Hf { prefix } => Ok(BackboneWeights {
            prefix: prefix.clone(),
            store,
            layout,
        }),
        Layout::Original { prefix } => {
            let renamed = rename_original(&store, prefix)?;
            Ok(BackboneWeights {
                store: renamed,
                prefix: String::new(),
                layout,
            })
        }
    }
}

fn detect_layout(store: &TensorStore) -> Option<Layout> {
    for p in KNOWN_PREFIXES {
        if store.contains(&format!("{p}{HF_MARKER}")) {
            return Some(Layout::Hf {
                prefix: p.to_string(),
            });
        }
        if store.contains(&format!("{p}{ORIGINAL_MARKER}")) {
            return Some(Layout::Original {
                prefix: p.to_string(),
            });
        }
    }
    let names = store.names();
    if let Some(n) = names.iter().find(|n| n.ends_with(HF_MARKER)) {
        return Some(Layout::Hf {
            prefix: n[..n.len() - HF_MARKER.len()].to_string(),
        });
    }
    names
        .iter()
        .find(|n| n.ends_with(ORIGINAL_MARKER))
        .map(|n| Layout::Original {
            prefix: n[..n.len() - ORIGINAL_MARKER.len()].to_string(),
        })
}

/// Renames an original-layout backbone under `prefix` to HF names (in memory, in the checkpoint's
/// dtype), splitting `blocks.N.attn.qkv` into query (rows 0..D), key (D..2D) and value (2D..3D).
fn rename_original(store: &TensorStore, prefix: &str) -> Result<TensorStore> {
    let dev = Device::Cpu;
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let load = |name: &str| -> Result<Tensor> {
        let dtype = DType::F32;
        Ok(store.get_any(name, dtype, &dev)?)
    };
    for (from, to) in TOP_LEVEL_RENAMES {
        let name = format!("{prefix}{from}");
        if store.contains(&name) {
            out.insert(to.to_string(), load(&name)?);
        }
    }
    let block_prefix = format!("{prefix}blocks.");
    for name in store.names() {
        let Some(rest) = name.strip_prefix(&block_prefix) else {
            continue;
        };
        let Some((index, suffix)) = rest.split_once('.') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let target = format!("encoder.layer.{index}.");
        if let Some(kind) = suffix.strip_prefix("attn.qkv.") {
            let fused = load(&name)?;
            let rows = fused.dim(0)?;
            if rows % 3 != 0 {
                return Err(dinoreg_heads::Error::TensorShape {
                    source_name: store.source_name().to_string(),
                    name,
                    expected: vec![3 * (rows / 3).max(1)],
                    found: fused.dims().to_vec(),
                }
                .into());
            }
            let d = rows / 3;
            for (i, part) in ["query", "key", "value"].iter().enumerate() {
                out.insert(
                    format!("{target}attention.attention.{part}.{kind}"),
                    fused.narrow(0, i * d, d)?.contiguous()?,
                );
            }
        } else if let Some((_, to)) = BLOCK_RENAMES.iter().find(|(from, _)| *from == suffix) {
            out.insert(format!("{target}{to}"), load(&name)?);
        }
    }
    Ok(TensorStore::from_map(
        format!("{} (facebookresearch layout)", store.source_name()),
        out,
    ))
}

/// Infers the config of a checkpoint that comes without a `config.json` (an original
/// facebookresearch or Depth-Anything-V2 `.pth`) from its tensor shapes: width, depth, patch size,
/// stored grid, registers (none means plain `dinov2`), and SwiGLU or MLP width. Heads are taken as
/// `width / 64`, as in every published DINOv2. A tensor of another rank than expected is an error
/// naming it, never an index out of range.
pub fn infer_config(weights: &BackboneWeights) -> Result<crate::Dinov2Config> {
    let shapes = Shapes(weights);
    let [d, c, ph, _] = shapes
        .get(
            "embeddings.patch_embeddings.projection.weight",
            "(D, C, p, p)",
        )?
        .ok_or_else(|| shapes.missing("embeddings.patch_embeddings.projection.weight"))?;
    let [_, tokens, _] = shapes
        .get("embeddings.position_embeddings", "(1, 1 + grid², D)")?
        .ok_or_else(|| shapes.missing("embeddings.position_embeddings"))?;
    let positions = tokens.saturating_sub(1);
    let grid = positions.isqrt();
    let image_size = grid.checked_mul(ph).filter(|_| grid * grid == positions);
    let Some(image_size) = image_size else {
        return Err(Error::input(
            "checkpoint",
            format!("position table has {positions} patch entries, which is not a square grid"),
        ));
    };
    let layers = (0..)
        .take_while(|i| shapes.present(&format!("encoder.layer.{i}.norm1.weight")))
        .count();
    let registers = match shapes.get::<3>("embeddings.register_tokens", "(1, R, D)")? {
        Some([_, r, _]) => r,
        None => 0,
    };
    let swiglu = shapes.present("encoder.layer.0.mlp.weights_in.weight");
    let mut cfg = crate::Dinov2Config {
        model_type: if registers > 0 {
            crate::ModelType::Dinov2WithRegisters
        } else {
            crate::ModelType::Dinov2
        },
        hidden_size: d,
        num_hidden_layers: layers,
        num_attention_heads: (d / 64).max(1),
        num_channels: c,
        patch_size: ph,
        image_size,
        num_register_tokens: registers,
        use_swiglu_ffn: swiglu,
        ..crate::Dinov2Config::default()
    };
    if !swiglu {
        if let Some([hidden, _]) = shapes.get::<2>("encoder.layer.0.mlp.fc1.weight", "(H, D)")? {
            cfg.mlp_ratio = hidden as f64 / d.max(1) as f64;
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The shapes of a backbone's tensors, by HF name under its prefix.
struct Shapes<'a>(&'a BackboneWeights);

impl Shapes<'_> {
    /// The dims of `name` when present, an error when its rank is not `N` (`layout` names the dims).
    fn get<const N: usize>(&self, name: &str, layout: &str) -> Result<Option<[usize; N]>> {
        let full = format!("{}{name}", self.0.prefix);
        let Some(shape) = self.0.store.shape(&full) else {
            return Ok(None);
        };
        match <[usize; N]>::try_from(shape.as_slice()) {
            Ok(dims) => Ok(Some(dims)),
            Err(_) => Err(Error::input(
                self.0.store.source_name(),
                format!("tensor `{full}` has shape {shape:?}, expected {N} dims {layout}"),
            )),
        }
    }

    /// Whether `name` is present.
    fn present(&self, name: &str) -> bool {
        self.0.store.contains(&format!("{}{name}", self.0.prefix))
    }

    /// The error for a missing `name`.
    fn missing(&self, name: &str) -> dinoreg_heads::Error {
        dinoreg_heads::Error::MissingTensor {
            source_name: self.0.store.source_name().to_string(),
            name: format!("{}{name}", self.0.prefix),
            expected: None,
        }
    }
}
