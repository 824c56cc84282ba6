//! Checkpoints with tensors of unexpected rank or size, truncated files, and crafted headers.

use std::collections::HashMap;

use candle::{Device, Tensor};
use dinoreg::heads::TensorStore;
use dinoreg::model::weights::{find_backbone, infer_config};

/// A tiny original-layout (`.pth`-style) backbone whose `blocks.0.mlp.fc1.weight` is `fc1`.
fn original(fc1: Tensor) -> TensorStore {
    let dev = Device::Cpu;
    let z = |shape: &[usize]| Tensor::zeros(shape, candle::DType::F32, &dev).expect("zeros");
    let d = 64;
    let mut m = HashMap::new();
    m.insert("patch_embed.proj.weight".to_string(), z(&[d, 3, 14, 14]));
    m.insert("pos_embed".to_string(), z(&[1, 1 + 4, d]));
    m.insert("cls_token".to_string(), z(&[1, 1, d]));
    m.insert("blocks.0.norm1.weight".to_string(), z(&[d]));
    m.insert("blocks.0.mlp.fc1.weight".to_string(), fc1);
    TensorStore::from_map("crafted.pth", m)
}

#[test]
fn config_inference_refuses_tensors_of_the_wrong_rank() {
    let dev = Device::Cpu;
    let ok = find_backbone(original(
        Tensor::zeros((256, 64), candle::DType::F32, &dev).expect("z"),
    ))
    .expect("backbone");
    let cfg = infer_config(&ok).expect("a well-formed checkpoint");
    assert_eq!(
        (cfg.hidden_size, cfg.mlp_ratio, cfg.image_size),
        (64, 4.0, 28)
    );

    let scalar = Tensor::new(1f32, &dev).expect("0-d");
    let weights = find_backbone(original(scalar)).expect("backbone");
    let err = infer_config(&weights).expect_err("a 0-d fc1");
    assert!(err.to_string().contains("mlp.fc1.weight"), "{err}");
    assert!(err.to_string().contains("expected 2 dims"), "{err}");
}

#[test]
fn config_inference_refuses_a_position_table_of_the_wrong_rank() {
    let dev = Device::Cpu;
    let mut store = original(Tensor::zeros((256, 64), candle::DType::F32, &dev).expect("z"));
    let mut m = HashMap::new();
    for name in store.names() {
        let t = store.get_any(&name, candle::DType::F32, &dev).expect("get");
        m.insert(name, t);
    }
    m.insert(
        "pos_embed".into(),
        Tensor::zeros(5, candle::DType::F32, &dev).expect("1-d"),
    );
    store = TensorStore::from_map("crafted.pth", m);
    let err = infer_config(&find_backbone(store).expect("backbone")).expect_err("1-d table");
    assert!(err.to_string().contains("position_embeddings"), "{err}");
}
