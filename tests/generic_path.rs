//! The generic candle path (what CUDA and f16/bf16 runs take) against HF at 1e-4, with the fused
//! f32 CPU kernels switched off: every input size and register count, SwiGLU, hidden states,
//! attentions, head masks and keys. `model_parity.rs` covers the fused path the same way.

mod common;

use std::collections::HashMap;

use candle::Tensor;
use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::Vit;
use dinoreg::{Dinov2Model, ForwardOptions, LoadOptions};

fn load(case: &str) -> Dinov2Model {
    Dinov2Model::load(
        fixture(&format!("model/{case}/config.json")),
        &[fixture(&format!("model/{case}/model.safetensors"))],
        &LoadOptions::default().with_fused_kernels(false),
    )
    .unwrap()
}

fn expected(case: &str) -> HashMap<String, Tensor> {
    load_expected(&format!("model/{case}/expected.safetensors"))
}

#[test]
fn every_case_and_size() {
    for case in ["reg4", "reg2", "reg0", "swiglu"] {
        let model = load(case);
        let exp = expected(case);
        for size in ["native", "updown", "floor", "down"] {
            let out = model
                .forward(&exp[&format!("{size}.pixel_values")])
                .unwrap();
            assert_close(
                &format!("{case} {size}"),
                &out.last_hidden_state,
                &exp[&format!("{size}.last_hidden_state")],
                TOL,
            );
        }
    }
}

#[test]
fn hidden_states_attentions_masks_and_keys() {
    let model = load("reg4");
    let exp = expected("reg4");
    let px = &exp["updown.pixel_values"];
    let opts = ForwardOptions::default()
        .with_hidden_states(true)
        .with_attentions(true)
        .with_qkv_block(-1);
    let out = model.forward_with(px, &opts).unwrap();
    for (i, h) in out.hidden_states.unwrap().iter().enumerate() {
        assert_close(
            &format!("hidden {i}"),
            h,
            &exp[&format!("updown.hidden_states.{i}")],
            TOL,
        );
    }
    for (i, a) in out.attentions.unwrap().iter().enumerate() {
        assert_close(
            &format!("attention {i}"),
            a,
            &exp[&format!("updown.attentions.{i}")],
            TOL,
        );
    }
    assert_close("keys", &out.qkv.unwrap().k, &exp["updown.last_keys"], TOL);
    let masked = model
        .forward_with(
            px,
            &ForwardOptions::default().with_head_mask(exp["head_mask.per_layer"].clone()),
        )
        .unwrap();
    assert_close(
        "head mask",
        &masked.last_hidden_state,
        &exp["head_mask.per_layer.last_hidden_state"],
        TOL,
    );
}
