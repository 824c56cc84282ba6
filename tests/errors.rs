//! Every bad input of the backbone gets a typed, one-line error naming the thing and what was
//! expected: configs, checkpoints (missing, mis-shaped, corrupt, contradicting the config), stage
//! selections, pixel tensors and optional inputs.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle::{DType, Device, Tensor};
use common::fixture;
use dinoreg::Vit;
use dinoreg::{
    Backbone, BackboneOptions, Dinov2Config, Dinov2Model, Error, ForwardOptions, LoadOptions,
};

fn reg4() -> Dinov2Model {
    Dinov2Model::load(
        fixture("model/reg4/config.json"),
        &[fixture("model/reg4/model.safetensors")],
        &LoadOptions::default(),
    )
    .unwrap()
}

fn one_line(e: &Error) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "multi-line message: {s}");
    s
}

fn config_json(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("model/reg4/config.json")).unwrap())
            .unwrap();
    edit(&mut v);
    v.to_string()
}

#[test]
fn bad_configs() {
    let e = Dinov2Config::from_json(&config_json(|v| v["hidden_size"] = 30.into())).unwrap_err();
    assert!(
        one_line(&e).contains("not divisible by num_attention_heads"),
        "{e}"
    );
    let e = Dinov2Config::from_json(&config_json(|v| v["model_type"] = "vit".into())).unwrap_err();
    assert!(one_line(&e).contains("not a DINOv2 config"), "{e}");
    let e = Dinov2Config::from_json(&config_json(|v| v["patch_size"] = 0.into())).unwrap_err();
    assert!(
        one_line(&e).contains("patch_size must be at least 1"),
        "{e}"
    );
    let e = Dinov2Config::from_json(&config_json(|v| v["hidden_act"] = "mish".into())).unwrap_err();
    assert!(one_line(&e).contains("mish"), "{e}");
    let e = Dinov2Config::from_json("{not json").unwrap_err();
    assert!(one_line(&e).contains("not valid JSON"), "{e}");
    let e = Dinov2Config::from_json(&config_json(|v| {
        v["out_features"] = serde_json::json!(["stage9"])
    }))
    .unwrap_err();
    assert!(one_line(&e).contains("out_features"), "{e}");
    let e = Dinov2Config::from_file("/nonexistent/config.json").unwrap_err();
    assert!(one_line(&e).contains("/nonexistent/config.json"), "{e}");
}

#[test]
fn nested_backbone_config_is_read() {
    let inner: serde_json::Value = serde_json::from_str(&config_json(|_| {})).unwrap();
    let outer = serde_json::json!({"model_type": "depth_anything", "backbone_config": inner});
    let cfg = Dinov2Config::from_value(&outer).unwrap();
    assert_eq!(cfg.hidden_size, 32);
    let e =
        Dinov2Config::from_value(&serde_json::json!({"model_type": "depth_anything"})).unwrap_err();
    assert!(one_line(&e).contains("backbone_config"), "{e}");
}

fn with_tensors(
    edit: impl FnOnce(&mut HashMap<String, Tensor>),
) -> (tempfile::TempDir, std::path::PathBuf) {
    let mut t =
        candle::safetensors::load(fixture("model/reg4/model.safetensors"), &Device::Cpu).unwrap();
    edit(&mut t);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    candle::safetensors::save(&t, &path).unwrap();
    (dir, path)
}

fn load_with(config: &Path, weights: &Path) -> Result<Dinov2Model, Error> {
    Dinov2Model::load(config, &[weights.to_path_buf()], &LoadOptions::default())
}

#[test]
fn missing_and_misshaped_tensors() {
    let cfg = fixture("model/reg4/config.json");
    let (_d, path) = with_tensors(|t| {
        t.remove("encoder.layer.1.attention.attention.key.weight");
    });
    let e = load_with(&cfg, &path).unwrap_err();
    let msg = one_line(&e);
    assert!(
        msg.contains("encoder.layer.1.attention.attention.key.weight") && msg.contains("missing"),
        "{msg}"
    );
    assert!(msg.contains("[32, 32]"), "{msg}");

    let (_d, path) = with_tensors(|t| {
        t.insert(
            "layernorm.weight".into(),
            Tensor::zeros(16, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = load_with(&cfg, &path).unwrap_err();
    let msg = one_line(&e);
    assert!(
        msg.contains("layernorm.weight") && msg.contains("[16]") && msg.contains("[32]"),
        "{msg}"
    );
}

#[test]
fn config_contradicting_weights() {
    let weights = fixture("model/reg4/model.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write(
        "r2.json",
        config_json(|v| v["num_register_tokens"] = 2.into()),
    );
    let msg = one_line(&load_with(&p, &weights).unwrap_err());
    assert!(
        msg.contains("embeddings.register_tokens") && msg.contains("[1, 2, 32]"),
        "{msg}"
    );
    let p = write(
        "l2.json",
        config_json(|v| {
            v["num_hidden_layers"] = 2.into();
            v["out_features"] = serde_json::Value::Null;
            v["out_indices"] = serde_json::Value::Null;
            v["stage_names"] = serde_json::Value::Null;
        }),
    );
    let msg = one_line(&load_with(&p, &weights).unwrap_err());
    assert!(
        msg.contains("more layers") && msg.contains("`encoder.layer.2.norm1.weight`"),
        "{msg}"
    );
    let p = write("d64.json", config_json(|v| v["hidden_size"] = 64.into()));
    let msg = one_line(&load_with(&p, &weights).unwrap_err());
    assert!(msg.contains("expected") && msg.contains("64"), "{msg}");
    let p = write("img.json", config_json(|v| v["image_size"] = 32.into()));
    let msg = one_line(&load_with(&p, &weights).unwrap_err());
    assert!(msg.contains("embeddings.position_embeddings"), "{msg}");
}

#[test]
fn corrupt_and_missing_checkpoints() {
    let cfg = fixture("model/reg4/config.json");
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("model.safetensors");
    std::fs::write(&garbage, b"this is not a checkpoint").unwrap();
    let msg = one_line(&load_with(&cfg, &garbage).unwrap_err());
    assert!(
        msg.contains("model.safetensors") && msg.contains("safetensors"),
        "{msg}"
    );
    let msg = one_line(&load_with(&cfg, &dir.path().join("absent.safetensors")).unwrap_err());
    assert!(
        msg.contains("absent.safetensors") && msg.contains("no such file"),
        "{msg}"
    );
    let (_d, path) = with_tensors(|t| t.retain(|k, _| k.starts_with("classifier")));
    let msg = one_line(&load_with(&cfg, &path).unwrap_err());
    assert!(msg.contains("no DINOv2 backbone found"), "{msg}");
}

#[test]
fn invalid_stage_selections() {
    let model = Arc::new(reg4());
    let cases: Vec<(BackboneOptions, &str)> = vec![
        (
            BackboneOptions::default().with_out_features(vec!["stage7".into()]),
            "subset of stage_names",
        ),
        (
            BackboneOptions::default().with_out_features(vec!["stage1".into(), "stage1".into()]),
            "duplicates",
        ),
        (
            BackboneOptions::default().with_out_features(vec!["stage2".into(), "stage1".into()]),
            "same order",
        ),
        (
            BackboneOptions::default().with_out_indices(vec![4]),
            "valid indices",
        ),
        (
            BackboneOptions::default().with_out_indices(vec![-5]),
            "valid indices",
        ),
        (
            BackboneOptions::default().with_out_indices(vec![3, -1]),
            "duplicates",
        ),
        (
            BackboneOptions::default().with_out_indices(vec![2, 1]),
            "same order",
        ),
        (
            BackboneOptions {
                out_features: Some(vec!["stage1".into()]),
                out_indices: Some(vec![1, 2]),
                ..Default::default()
            },
            "same length",
        ),
        (
            BackboneOptions {
                out_features: Some(vec!["stage1".into()]),
                out_indices: Some(vec![2]),
                ..Default::default()
            },
            "same stages",
        ),
    ];
    for (opts, needle) in cases {
        let e = Backbone::new(model.clone(), &opts).unwrap_err();
        let msg = one_line(&e);
        assert!(matches!(e, Error::InvalidOption { .. }), "{msg}");
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
}

#[test]
fn bad_pixels_and_optional_inputs() {
    let model = reg4();
    let dev = Device::Cpu;
    let e = model
        .forward(&Tensor::zeros((3, 24, 24), DType::F32, &dev).unwrap())
        .unwrap_err();
    assert!(one_line(&e).contains("(B, 3, H, W)"), "{e}");
    let e = model
        .forward(&Tensor::zeros((1, 1, 24, 24), DType::F32, &dev).unwrap())
        .unwrap_err();
    assert!(one_line(&e).contains("expected 3 channels, got 1"), "{e}");
    let e = model
        .forward(&Tensor::zeros((1, 3, 3, 24), DType::F32, &dev).unwrap())
        .unwrap_err();
    assert!(one_line(&e).contains("smaller than one 4x4 patch"), "{e}");
    let px = Tensor::zeros((1, 3, 24, 24), DType::F32, &dev).unwrap();
    let bad_mask =
        ForwardOptions::default().with_head_mask(Tensor::ones(5, DType::F32, &dev).unwrap());
    let e = model.forward_with(&px, &bad_mask).unwrap_err();
    assert!(one_line(&e).contains("head_mask"), "{e}");
    let bad_pos = ForwardOptions::default()
        .with_bool_masked_pos(Tensor::ones((1, 7), DType::U8, &dev).unwrap());
    let e = model.forward_with(&px, &bad_pos).unwrap_err();
    assert!(one_line(&e).contains("bool_masked_pos"), "{e}");
    let e = model
        .forward_with(&px, &ForwardOptions::default().with_qkv_block(3))
        .unwrap_err();
    assert!(one_line(&e).contains("out of range"), "{e}");
}
