//! The DINOv3 presets of `dinoreg bench`: `dinov3-small`, `dinov3-small-plus`, `dinov3-base`,
//! `dinov3-large` (the published S/16, S+/16, B/16 and L/16 architectures) with random HF-layout
//! weights drawn by the caller's generator, and their FLOP count. Self-contained, so it can move
//! with the DINOv2 builder.

use dinoreg::Dinov3Config;

/// The config of a DINOv3 bench preset name, `None` for other names.
pub(super) fn preset(name: &str) -> Option<Dinov3Config> {
    let size = name.strip_prefix("dinov3-")?;
    matches!(size, "small" | "small-plus" | "base" | "large")
        .then(|| Dinov3Config::preset_by_name(size).ok())
        .flatten()
}

/// Calls `put(name, shape, mean, std)` for every tensor of a DINOv3 backbone of `cfg` in HF's
/// layout: linear and conv weights, biases and tokens `0 ± 0.02`, norm weights and layer scales
/// `1 ± 0.1`; only the biases the config has.
pub(super) fn random_weights(
    cfg: &Dinov3Config,
    put: &mut impl FnMut(String, &[usize], f32, f32) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (d, p, c, h) = (
        cfg.hidden_size,
        cfg.patch_size,
        cfg.num_channels,
        cfg.intermediate_size,
    );
    put("embeddings.cls_token".into(), &[1, 1, d], 0.0, 0.02)?;
    put("embeddings.mask_token".into(), &[1, 1, d], 0.0, 0.02)?;
    put(
        "embeddings.register_tokens".into(),
        &[1, cfg.num_register_tokens, d],
        0.0,
        0.02,
    )?;
    put(
        "embeddings.patch_embeddings.weight".into(),
        &[d, c, p, p],
        0.0,
        0.02,
    )?;
    put("embeddings.patch_embeddings.bias".into(), &[d], 0.0, 0.02)?;
    let mut linear = |name: String, input: usize, output: usize, bias: bool| {
        put(format!("{name}.weight"), &[output, input], 0.0, 0.02)?;
        if bias {
            put(format!("{name}.bias"), &[output], 0.0, 0.02)?;
        }
        anyhow::Ok(())
    };
    for i in 0..cfg.num_hidden_layers {
        let l = format!("layer.{i}");
        for (proj, bias) in [
            ("q_proj", cfg.query_bias),
            ("k_proj", cfg.key_bias),
            ("v_proj", cfg.value_bias),
            ("o_proj", cfg.proj_bias),
        ] {
            linear(format!("{l}.attention.{proj}"), d, d, bias)?;
        }
        if cfg.use_gated_mlp {
            linear(format!("{l}.mlp.gate_proj"), d, h, cfg.mlp_bias)?;
        }
        linear(format!("{l}.mlp.up_proj"), d, h, cfg.mlp_bias)?;
        linear(format!("{l}.mlp.down_proj"), h, d, cfg.mlp_bias)?;
    }
    for i in 0..cfg.num_hidden_layers {
        let l = format!("layer.{i}");
        for norm in ["norm1", "norm2"] {
            put(format!("{l}.{norm}.weight"), &[d], 1.0, 0.1)?;
            put(format!("{l}.{norm}.bias"), &[d], 0.0, 0.02)?;
        }
        put(format!("{l}.layer_scale1.lambda1"), &[d], 1.0, 0.1)?;
        put(format!("{l}.layer_scale2.lambda1"), &[d], 1.0, 0.1)?;
    }
    put("norm.weight".into(), &[d], 1.0, 0.1)?;
    put("norm.bias".into(), &[d], 0.0, 0.02)
}

/// Width of the feed-forward matmuls per token, in multiples of `D` FLOPs: `2h` (up, down) or
/// `3h` (gate, up, down).
pub(super) fn ffn_width(cfg: &Dinov3Config) -> f64 {
    let k = if cfg.use_gated_mlp { 3.0 } else { 2.0 };
    k * cfg.intermediate_size as f64
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle::{Device, Tensor};
    use dinoreg::heads::TensorStore;
    use dinoreg::model::weights::find_backbone;
    use dinoreg::{Dinov3Model, LoadOptions, Vit};

    use super::*;

    #[test]
    fn presets_and_weights_the_loader_accepts() {
        for name in [
            "dinov3-small",
            "dinov3-small-plus",
            "dinov3-base",
            "dinov3-large",
        ] {
            assert!(preset(name).is_some(), "{name}");
        }
        assert!(preset("dinov3-7b").is_none() && preset("small").is_none());
        // The same builder on tiny versions of both MLP kinds loads and runs.
        for gated in [false, true] {
            let mut cfg = preset(if gated {
                "dinov3-small-plus"
            } else {
                "dinov3-small"
            })
            .unwrap();
            (
                cfg.hidden_size,
                cfg.num_attention_heads,
                cfg.intermediate_size,
            ) = (32, 2, 48);
            (cfg.num_hidden_layers, cfg.stage_names) = (1, None);
            let mut map = HashMap::new();
            random_weights(&cfg, &mut |name, shape, mean, _| {
                map.insert(name, Tensor::full(mean, shape, &Device::Cpu)?);
                Ok(())
            })
            .unwrap();
            let weights = find_backbone(TensorStore::from_map("<random>", map)).unwrap();
            let model = Dinov3Model::from_weights(cfg, &weights, &LoadOptions::default()).unwrap();
            let px = Tensor::zeros((1, 3, 32, 48), candle::DType::F32, &Device::Cpu).unwrap();
            let out = model.forward(&px).unwrap();
            assert_eq!(out.last_hidden_state.dims(), &[1, 1 + 4 + 6, 32]);
        }
    }
}
