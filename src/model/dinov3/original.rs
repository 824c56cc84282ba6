//! The original facebookresearch/dinov3 checkpoint layout (the hub `.pth` files), renamed onto HF's
//! `DINOv3ViTModel` names, and the config of a checkpoint that comes without a `config.json`,
//! inferred from its tensor shapes.
//!
//! | original | HF |
//! | --- | --- |
//! | `cls_token` (1,1,D) | `embeddings.cls_token` |
//! | `storage_tokens` (1,R,D) | `embeddings.register_tokens` |
//! | `mask_token` (1,D) | `embeddings.mask_token` (kept (1,D)) |
//! | `patch_embed.proj.{weight,bias}` | `embeddings.patch_embeddings.{weight,bias}` |
//! | `blocks.N.norm{1,2}.*` | `layer.N.norm{1,2}.*` |
//! | `blocks.N.attn.qkv.weight` (3D,D) | `layer.N.attention.{q,k,v}_proj.weight`, rows 0..D, D..2D, 2D..3D |
//! | `blocks.N.attn.qkv.bias` · `bias_mask` | `layer.N.attention.{q,k,v}_proj.bias` (a part that is all zeros, the masked k bias, is dropped) |
//! | `blocks.N.attn.proj.*` | `layer.N.attention.o_proj.*` |
//! | `blocks.N.ls{1,2}.gamma` | `layer.N.layer_scale{1,2}.lambda1` |
//! | `blocks.N.mlp.fc1/fc2.*` | `layer.N.mlp.up_proj/down_proj.*` |
//! | `blocks.N.mlp.w1/w2/w3.*` | `layer.N.mlp.gate_proj/up_proj/down_proj.*` (the original computes `w3(silu(w1 x) · w2 x)`) |
//! | `norm.*` | `norm.*` |
//! | `rope_embed.periods` (head_dim/4,) | kept as `rope_embed.periods`: it gives the head width and θ |
//!
//! `local_cls_norm.*` (7B and satellite checkpoints) norms local crops' CLS token in training only;
//! HF's model has no such norm, and it is ignored. A `cls_norm.*` (`untie_cls_and_patch_norms`) would
//! change the inference output and HF cannot express it: such a checkpoint is refused. The 7B
//! checkpoint has no q/k/v bias at all.

use candle::{DType, Device};

use super::ROPE_PERIODS;
use crate::model::config::{Dinov3Config, HiddenAct};
use crate::model::weights::{BackboneWeights, OriginalNames};
use crate::{Error, Result};

/// Original name → HF name, for the whole-model tensors.
const TOP_LEVEL_RENAMES: &[(&str, &str)] = &[
    ("cls_token", "embeddings.cls_token"),
    ("mask_token", "embeddings.mask_token"),
    ("storage_tokens", "embeddings.register_tokens"),
    (
        "patch_embed.proj.weight",
        "embeddings.patch_embeddings.weight",
    ),
    ("patch_embed.proj.bias", "embeddings.patch_embeddings.bias"),
    ("norm.weight", "norm.weight"),
    ("norm.bias", "norm.bias"),
    (ROPE_PERIODS, ROPE_PERIODS),
];

/// Original name → HF name inside `blocks.N.` → `layer.N.` (the fused qkv is split apart).
const BLOCK_RENAMES: &[(&str, &str)] = &[
    ("norm1.weight", "norm1.weight"),
    ("norm1.bias", "norm1.bias"),
    ("norm2.weight", "norm2.weight"),
    ("norm2.bias", "norm2.bias"),
    ("attn.proj.weight", "attention.o_proj.weight"),
    ("attn.proj.bias", "attention.o_proj.bias"),
    ("ls1.gamma", "layer_scale1.lambda1"),
    ("ls2.gamma", "layer_scale2.lambda1"),
    ("mlp.fc1.weight", "mlp.up_proj.weight"),
    ("mlp.fc1.bias", "mlp.up_proj.bias"),
    ("mlp.fc2.weight", "mlp.down_proj.weight"),
    ("mlp.fc2.bias", "mlp.down_proj.bias"),
    ("mlp.w1.weight", "mlp.gate_proj.weight"),
    ("mlp.w1.bias", "mlp.gate_proj.bias"),
    ("mlp.w2.weight", "mlp.up_proj.weight"),
    ("mlp.w2.bias", "mlp.up_proj.bias"),
    ("mlp.w3.weight", "mlp.down_proj.weight"),
    ("mlp.w3.bias", "mlp.down_proj.bias"),
];

/// The original DINOv3 layout's names.
pub(crate) const ORIGINAL_NAMES: OriginalNames = OriginalNames {
    top_level: TOP_LEVEL_RENAMES,
    block: BLOCK_RENAMES,
    layer: "layer.",
    qkv: ["attention.q_proj", "attention.k_proj", "attention.v_proj"],
    drop_zero_qkv_bias: true,
    unsupported: &[(
        "cls_norm.weight",
        "the checkpoint norms its CLS and register tokens apart from the patches (untie_cls_and_patch_norms), which HF's DINOv3ViTModel cannot express",
    )],
    label: "facebookresearch/dinov3 layout",
};

/// The head width and RoPE base that `periods` (`head_dim / 4` values, `θ^(4k / head_dim)`)
/// encode; `None` for θ when a single period cannot tell it. An error when the periods do not
/// follow a base (the original's min/max-period variant, which HF cannot express).
pub(crate) fn rope_from_periods(periods: &[f32]) -> Result<(usize, Option<f64>)> {
    let head_dim = 4 * periods.len();
    let Some(&last) = periods.last().filter(|_| periods.len() > 1) else {
        return Ok((head_dim, None));
    };
    let k = (periods.len() - 1) as f64;
    let theta = (last as f64).powf(head_dim as f64 / (4.0 * k));
    // The periods are stored in f32: snap θ to the integer it is within rounding of (100 in
    // every published checkpoint).
    let theta = if (theta - theta.round()).abs() <= 1e-5 * theta {
        theta.round()
    } else {
        theta
    };
    let follows = periods.iter().enumerate().all(|(i, &p)| {
        let want = theta.powf(4.0 * i as f64 / head_dim as f64);
        ((p as f64) - want).abs() <= 1e-4 * want
    });
    if !follows || !theta.is_finite() || theta <= 0.0 {
        return Err(Error::input(
            ROPE_PERIODS,
            format!(
                "the periods {periods:?} are not θ^(4k/head_dim) for any base θ (HF's DINOv3 only has rope_theta)"
            ),
        ));
    }
    Ok((head_dim, Some(theta)))
}

/// Infers the config of a DINOv3 checkpoint without a `config.json` (an original `.pth`, or HF
/// safetensors on their own) from its tensors: width, depth, patch size, registers, plain or
/// gated MLP and its width, which biases exist; the head width and θ from `rope_embed.periods`
/// when the checkpoint has it (original layout), else heads of width 64 (every published size but
/// the 7B, whose original checkpoint's periods give 128) and θ 100. LayerNorm eps is the published
/// 1e-5.
pub fn infer_config(weights: &BackboneWeights) -> Result<Dinov3Config> {
    let store = &weights.store;
    let p = &weights.prefix;
    let shape = |name: &str| store.shape(&format!("{p}{name}"));
    let patch_name = "embeddings.patch_embeddings.weight";
    let patch = shape(patch_name).ok_or_else(|| dinoreg_heads::Error::MissingTensor {
        source_name: store.source_name().to_string(),
        name: format!("{p}{patch_name}"),
        expected: None,
    })?;
    let [d, c, ph, _] = patch[..] else {
        return Err(Error::input(
            "checkpoint",
            format!("patch projection has shape {patch:?}, expected (D, C, p, p)"),
        ));
    };
    let layer = super::layer_prefix(store, p);
    let layers = (0..)
        .take_while(|i| store.contains(&format!("{layer}{i}.norm1.weight")))
        .count();
    let has = |name: &str| store.contains(&format!("{layer}0.{name}"));
    let gated = has("mlp.gate_proj.weight");
    let intermediate = store
        .shape(&format!("{layer}0.mlp.up_proj.weight"))
        .and_then(|s| s.first().copied())
        .unwrap_or(4 * d);
    let (head_dim, theta) = match store.contains(&format!("{p}{ROPE_PERIODS}")) {
        true => {
            let periods = store
                .get_any(&format!("{p}{ROPE_PERIODS}"), DType::F32, &Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            rope_from_periods(&periods)?
        }
        false => (64.min(d), None),
    };
    if head_dim == 0 || d % head_dim != 0 {
        return Err(Error::input(
            "checkpoint",
            format!(
                "width {d} is not a multiple of the head width {head_dim} its RoPE periods give"
            ),
        ));
    }
    let mut cfg = Dinov3Config {
        hidden_size: d,
        num_channels: c,
        patch_size: ph,
        num_hidden_layers: layers,
        num_attention_heads: d / head_dim,
        intermediate_size: intermediate,
        num_register_tokens: shape("embeddings.register_tokens")
            .and_then(|s| s.get(1).copied())
            .unwrap_or(0),
        use_gated_mlp: gated,
        hidden_act: if gated {
            HiddenAct::Silu
        } else {
            HiddenAct::Gelu
        },
        query_bias: has("attention.q_proj.bias"),
        key_bias: has("attention.k_proj.bias"),
        value_bias: has("attention.v_proj.bias"),
        proj_bias: has("attention.o_proj.bias"),
        mlp_bias: has("mlp.up_proj.bias"),
        ..Dinov3Config::default()
    };
    if let Some(theta) = theta {
        cfg.rope_theta = theta;
    }
    cfg.stage_names = Some(cfg.derived_stage_names());
    cfg.validate()?;
    Ok(cfg)
}
