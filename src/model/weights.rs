//! Checkpoint formats of the backbone: which generation and layout a checkpoint holds, and DINOv2's
//! key-rename table. The canonical layout is HF's: for DINOv2 `embeddings.*` (with
//! `patch_embeddings.projection`), `encoder.layer.N.*`, `layernorm.*`; for DINOv3 `embeddings.*`
//! (with a bare `patch_embeddings`), `layer.N.*` (or `model.layer.N.*` as HF names it in memory),
//! `norm.*`; found at the top level, under a classification prefix (`dinov2_with_registers.`,
//! `dinov2.`) or nested (`backbone.`, …). The original facebookresearch `.pth` layouts
//! (`blocks.N.attn.qkv` fused, `ls1.gamma`, `norm`, …) are renamed onto HF's: DINOv2's here
//! (`pos_embed`, `register_tokens`), DINOv3's in [`crate::model::dinov3`] (no `pos_embed`;
//! `storage_tokens`, `rope_embed.periods`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use dinoreg_heads::{Scope, TensorStore};

use crate::model::load::LoadOptions;
use crate::model::vit::Family;
use crate::{Error, Result};

/// The marker tensor of each layout, relative to its prefix.
const HF_MARKER: &str = "embeddings.patch_embeddings.projection.weight";
const HF_DINOV3_MARKER: &str = "embeddings.patch_embeddings.weight";
const ORIGINAL_MARKER: &str = "patch_embed.proj.weight";
/// The original DINOv2 layout's position table; the original DINOv3 layout has none.
const ORIGINAL_DINOV2_POSITIONS: &str = "pos_embed";

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
    /// facebookresearch/dinov2 or /dinov3 names under `prefix`, renamed to HF names.
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
    /// The generation of the backbone ([`Family::Dinov2`] or [`Family::Dinov3`]).
    pub family: Family,
}

impl BackboneWeights {
    /// A scope over the backbone's tensors on the device and in the dtype of `opts`, or an error
    /// when the checkpoint holds another generation than `family` (the config's).
    pub fn scope_for(&self, family: Family, opts: &LoadOptions) -> Result<Scope<'_>> {
        if self.family != family {
            return Err(Error::Config {
                path: PathBuf::from("<config>"),
                reason: format!(
                    "the config is a {family} config but the checkpoint {} holds a {} backbone",
                    self.store.source_name(),
                    self.family
                ),
            });
        }
        Ok(self
            .store
            .scope(&self.prefix, &opts.device)
            .with_dtype(opts.dtype))
    }
}

/// Opens a checkpoint (one file, or the shards of one safetensors checkpoint) and finds the backbone
/// in it.
pub fn open_backbone(files: &[impl AsRef<Path>]) -> Result<BackboneWeights> {
    let store = match files {
        [] => return Err(Error::option("weights", "no checkpoint file was given")),
        [one] => TensorStore::open(one)?,
        many => {
            let paths: Vec<PathBuf> = many.iter().map(|p| p.as_ref().to_path_buf()).collect();
            TensorStore::open_safetensors(&paths)?
        }
    };
    find_backbone(store)
}

/// Finds the backbone in an opened store, renaming the original layout when needed.
pub fn find_backbone(store: TensorStore) -> Result<BackboneWeights> {
    let (layout, family) = detect_layout(&store).ok_or_else(|| {
        dinoreg_heads::Error::Checkpoint {
            path: PathBuf::from(store.source_name()),
            reason: format!(
                "no DINOv2 backbone found (nor a DINOv3 one): expected a tensor `{HF_MARKER}` (DINOv2, HF layout), `{HF_DINOV3_MARKER}` (DINOv3, HF layout) or `{ORIGINAL_MARKER}` (facebookresearch layout), possibly under a prefix"
            ),
        }
    })?;
    match (&layout, family) {
        (Layout::Hf { prefix }, _) => Ok(BackboneWeights {
            prefix: prefix.clone(),
            store,
            layout,
            family,
        }),
        (Layout::Original { prefix }, _) => {
            let names = match family {
                Family::Dinov3 => &crate::model::dinov3::ORIGINAL_NAMES,
                _ => &DINOV2_ORIGINAL,
            };
            Ok(BackboneWeights {
                store: rename_original(&store, prefix, names)?,
                prefix: String::new(),
                layout,
                family,
            })
        }
    }
}

/// The layout and generation of the backbone in `store`: the first known prefix holding a marker
/// tensor, else the first name ending with one.
fn detect_layout(store: &TensorStore) -> Option<(Layout, Family)> {
    let at = |p: &str| -> Option<(Layout, Family)> {
        let prefix = p.to_string();
        if store.contains(&format!("{p}{HF_MARKER}")) {
            Some((Layout::Hf { prefix }, Family::Dinov2))
        } else if store.contains(&format!("{p}{HF_DINOV3_MARKER}")) {
            Some((Layout::Hf { prefix }, Family::Dinov3))
        } else if store.contains(&format!("{p}{ORIGINAL_MARKER}")) {
            let family = if store.contains(&format!("{p}{ORIGINAL_DINOV2_POSITIONS}")) {
                Family::Dinov2
            } else {
                Family::Dinov3
            };
            Some((Layout::Original { prefix }, family))
        } else {
            None
        }
    };
    if let Some(found) = KNOWN_PREFIXES.iter().find_map(|p| at(p)) {
        return Some(found);
    }
    let names = store.names();
    [HF_MARKER, HF_DINOV3_MARKER, ORIGINAL_MARKER]
        .iter()
        .find_map(|marker| {
            let n = names.iter().find(|n| n.ends_with(marker))?;
            at(&n[..n.len() - marker.len()])
        })
}

/// How an original facebookresearch layout maps onto HF's names: tensors renamed one to one at the
/// top level and inside `blocks.N.`, and the fused `blocks.N.attn.qkv` split into three.
#[derive(Debug)]
pub(crate) struct OriginalNames {
    /// Original name → HF name, for the whole-model tensors.
    pub top_level: &'static [(&'static str, &'static str)],
    /// Original name → HF name inside `blocks.N.`.
    pub block: &'static [(&'static str, &'static str)],
    /// HF's prefix of block N, before the index: `encoder.layer.` or `layer.`.
    pub layer: &'static str,
    /// HF's names of the q, k and v projections inside a block.
    pub qkv: [&'static str; 3],
    /// Drop a q/k/v bias that is all zeros (DINOv3's masked k bias: HF's model has none).
    pub drop_zero_qkv_bias: bool,
    /// Tensors whose presence means an architecture HF's model cannot express, with the reason.
    pub unsupported: &'static [(&'static str, &'static str)],
    /// Appended to the checkpoint's name in error messages.
    pub label: &'static str,
}

/// DINOv2's original layout.
const DINOV2_ORIGINAL: OriginalNames = OriginalNames {
    top_level: TOP_LEVEL_RENAMES,
    block: BLOCK_RENAMES,
    layer: "encoder.layer.",
    qkv: [
        "attention.attention.query",
        "attention.attention.key",
        "attention.attention.value",
    ],
    drop_zero_qkv_bias: false,
    unsupported: &[],
    label: "facebookresearch layout",
};

/// Renames an original-layout backbone under `prefix` to HF names (in memory, f32), splitting
/// `blocks.N.attn.qkv` into q (rows 0..D), k (D..2D) and v (2D..3D); a fused bias is multiplied by
/// `blocks.N.attn.qkv.bias_mask` when the checkpoint has one (DINOv3's masked k bias).
pub(crate) fn rename_original(
    store: &TensorStore,
    prefix: &str,
    names: &OriginalNames,
) -> Result<TensorStore> {
    if let Some((name, reason)) = names
        .unsupported
        .iter()
        .find(|(name, _)| store.contains(&format!("{prefix}{name}")))
    {
        return Err(dinoreg_heads::Error::Checkpoint {
            path: PathBuf::from(store.source_name()),
            reason: format!("`{prefix}{name}`: {reason}"),
        }
        .into());
    }
    let dev = Device::Cpu;
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let load = |name: &str| -> Result<Tensor> { Ok(store.get_any(name, DType::F32, &dev)?) };
    for (from, to) in names.top_level {
        let name = format!("{prefix}{from}");
        if store.contains(&name) {
            out.insert(to.to_string(), load(&name)?);
        }
    }
    let block_prefix = format!("{prefix}blocks.");
    for name in store.names() {
        let Some((index, suffix)) = name
            .strip_prefix(&block_prefix)
            .and_then(|rest| rest.split_once('.'))
        else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let target = format!("{}{index}.", names.layer);
        if let Some(kind @ ("weight" | "bias")) = suffix.strip_prefix("attn.qkv.") {
            let mut fused = load(&name)?;
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
            let mask = format!("{name}_mask");
            if kind == "bias" && store.contains(&mask) {
                fused = (fused * load(&mask)?)?;
            }
            let d = rows / 3;
            for (i, part) in names.qkv.iter().enumerate() {
                let t = fused.narrow(0, i * d, d)?.contiguous()?;
                let zero = || -> Result<bool> { Ok(t.abs()?.max(0)?.to_scalar::<f32>()? == 0.0) };
                if kind == "bias" && names.drop_zero_qkv_bias && zero()? {
                    continue;
                }
                out.insert(format!("{target}{part}.{kind}"), t);
            }
        } else if let Some((_, to)) = names.block.iter().find(|(from, _)| *from == suffix) {
            out.insert(format!("{target}{to}"), load(&name)?);
        }
    }
    Ok(TensorStore::from_map(
        format!("{} ({})", store.source_name(), names.label),
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
