//! Checkpoint layouts give the same model: sharded safetensors with an index, a backbone nested
//! under `backbone.` (Depth-Anything style), and half-precision weights.

mod common;

use std::collections::HashMap;

use candle::{DType, Device, Tensor};
use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::Vit;
use dinoreg::{Dinov2Model, LoadOptions};

fn tensors() -> HashMap<String, Tensor> {
    candle::safetensors::load(fixture("model/reg4/model.safetensors"), &Device::Cpu).unwrap()
}

fn check(config: &std::path::Path, weights: &[std::path::PathBuf], tol: f32) {
    let model = Dinov2Model::load(config, weights, &LoadOptions::default()).unwrap();
    let exp = load_expected("model/reg4/expected.safetensors");
    let out = model.forward(&exp["updown.pixel_values"]).unwrap();
    assert_close(
        "last_hidden_state",
        &out.last_hidden_state,
        &exp["updown.last_hidden_state"],
        tol,
    );
}

#[test]
fn sharded_safetensors_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let all = tensors();
    let mut names: Vec<_> = all.keys().cloned().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let shard: HashMap<String, Tensor> =
            part.iter().map(|k| (k.clone(), all[k].clone())).collect();
        candle::safetensors::save(&shard, dir.path().join(file)).unwrap();
        for k in part {
            weight_map.insert(k.clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    std::fs::copy(
        fixture("model/reg4/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let files = dinoreg::resolve_model(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(files.weights.len(), 2);
    check(&files.config, &files.weights, TOL);
}

#[test]
fn backbone_nested_under_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut nested: HashMap<String, Tensor> = tensors()
        .into_iter()
        .map(|(k, v)| (format!("backbone.{k}"), v))
        .collect();
    nested.insert(
        "head.conv.weight".into(),
        Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap(),
    );
    let path = dir.path().join("model.safetensors");
    candle::safetensors::save(&nested, &path).unwrap();
    let weights = dinoreg::model::weights::open_backbone(std::slice::from_ref(&path)).unwrap();
    assert_eq!(weights.prefix, "backbone.");
    check(&fixture("model/reg4/config.json"), &[path], TOL);
}

#[test]
fn half_precision_weights_load_as_f32() {
    for dtype in [DType::F16, DType::BF16] {
        let dir = tempfile::tempdir().unwrap();
        let half: HashMap<String, Tensor> = tensors()
            .into_iter()
            .map(|(k, v)| (k, v.to_dtype(dtype).unwrap()))
            .collect();
        let path = dir.path().join("model.safetensors");
        candle::safetensors::save(&half, &path).unwrap();
        // Rounding the weights to 8-11 mantissa bits moves the outputs by ~1e-2 of their scale.
        check(&fixture("model/reg4/config.json"), &[path], 5e-2);
    }
}

#[test]
fn config_inferred_from_a_bare_pth() {
    let weights =
        dinoreg::model::weights::open_backbone(&[fixture("model/reg4/model.pth")]).unwrap();
    let mut inferred = dinoreg::model::weights::infer_config(&weights).unwrap();
    let cfg = dinoreg::Dinov2Config::from_file(fixture("model/reg4/config.json")).unwrap();
    assert_eq!(
        (
            inferred.hidden_size,
            inferred.num_hidden_layers,
            inferred.patch_size,
            inferred.image_size
        ),
        (
            cfg.hidden_size,
            cfg.num_hidden_layers,
            cfg.patch_size,
            cfg.image_size
        )
    );
    assert_eq!(inferred.num_register_tokens, 4);
    assert_eq!(inferred.mlp_ratio, 4.0);
    // The fixture's heads (4 of width 8) are not the published width 64: set them, then run.
    inferred.num_attention_heads = cfg.num_attention_heads;
    let model = Dinov2Model::from_weights(inferred, &weights, &LoadOptions::default()).unwrap();
    let exp = load_expected("model/reg4/expected.safetensors");
    let out = model.forward(&exp["updown.pixel_values"]).unwrap();
    assert_close(
        "inferred",
        &out.last_hidden_state,
        &exp["updown.last_hidden_state"],
        TOL,
    );
}
