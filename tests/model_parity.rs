//! Parity of the backbone with HF transformers on random-weight tiny checkpoints
//! (fixtures from `tests/fixtures/gen_model.py`): every model output, every backbone option,
//! 0/2/4 registers, SwiGLU, batch 2, non-square inputs, masks, attentions, the `.pth` layout,
//! plain dinov2 interpolation and classification logits, all at 1e-4 relative to scale.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle::Tensor;
use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::Vit;
use dinoreg::{
    Backbone, BackboneOptions, Dinov2Config, Dinov2ForImageClassification, Dinov2Model,
    ForwardOptions, LoadOptions,
};

fn load(case: &str) -> Dinov2Model {
    Dinov2Model::load(
        fixture(&format!("model/{case}/config.json")),
        &[fixture(&format!("model/{case}/model.safetensors"))],
        &LoadOptions::default(),
    )
    .unwrap()
}

fn expected(case: &str) -> HashMap<String, Tensor> {
    load_expected(&format!("model/{case}/expected.safetensors"))
}

fn check_sizes(case: &str) {
    let model = load(case);
    let exp = expected(case);
    for size in ["native", "updown", "floor", "down"] {
        let px = &exp[&format!("{size}.pixel_values")];
        let out = model.forward(px).unwrap();
        assert_close(
            &format!("{case} {size} last_hidden_state"),
            &out.last_hidden_state,
            &exp[&format!("{size}.last_hidden_state")],
            TOL,
        );
        assert_close(
            &format!("{case} {size} pooler_output"),
            &out.pooler_output,
            &exp[&format!("{size}.pooler_output")],
            TOL,
        );
    }
}

#[test]
fn four_registers_every_input_size() {
    check_sizes("reg4");
}

#[test]
fn two_registers() {
    check_sizes("reg2");
}

#[test]
fn no_registers() {
    check_sizes("reg0");
}

#[test]
fn swiglu() {
    check_sizes("swiglu");
}

#[test]
fn hidden_states_and_attentions() {
    let model = load("reg4");
    let exp = expected("reg4");
    let px = &exp["updown.pixel_values"];
    let out = model
        .forward_with(
            px,
            &ForwardOptions::default()
                .with_hidden_states(true)
                .with_attentions(true),
        )
        .unwrap();
    let hs = out.hidden_states.unwrap();
    assert_eq!(hs.len(), 4);
    for (i, h) in hs.iter().enumerate() {
        assert_close(
            &format!("hidden_states[{i}]"),
            h,
            &exp[&format!("updown.hidden_states.{i}")],
            TOL,
        );
    }
    let att = out.attentions.unwrap();
    assert_eq!(att.len(), 3);
    for (i, a) in att.iter().enumerate() {
        assert_close(
            &format!("attentions[{i}]"),
            a,
            &exp[&format!("updown.attentions.{i}")],
            TOL,
        );
    }
}

#[test]
fn last_layer_keys() {
    let model = load("reg4");
    let exp = expected("reg4");
    let out = model
        .forward_with(
            &exp["updown.pixel_values"],
            &ForwardOptions::default().with_qkv_block(-1),
        )
        .unwrap();
    assert_close("keys", &out.qkv.unwrap().k, &exp["updown.last_keys"], TOL);
}

#[test]
fn mask_token() {
    let model = load("reg4");
    let exp = expected("reg4");
    let opts =
        ForwardOptions::default().with_bool_masked_pos(exp["masked.bool_masked_pos"].clone());
    let out = model
        .forward_with(&exp["updown.pixel_values"], &opts)
        .unwrap();
    assert_close(
        "masked",
        &out.last_hidden_state,
        &exp["masked.last_hidden_state"],
        TOL,
    );
    // The mask changes the output (the test would pass vacuously otherwise).
    let plain = model.forward(&exp["updown.pixel_values"]).unwrap();
    let (d, _) = common::max_diff(&plain.last_hidden_state, &exp["masked.last_hidden_state"]);
    assert!(d > 1e-2);
}

#[test]
fn head_masks() {
    let model = load("reg4");
    let exp = expected("reg4");
    let px = &exp["updown.pixel_values"];
    let per_layer = exp["head_mask.per_layer"].clone();
    let out = model
        .forward_with(
            px,
            &ForwardOptions::default().with_head_mask(per_layer.clone()),
        )
        .unwrap();
    assert_close(
        "per-layer head mask",
        &out.last_hidden_state,
        &exp["head_mask.per_layer.last_hidden_state"],
        TOL,
    );
    let per_head = per_layer.get(0).unwrap();
    let out = model
        .forward_with(px, &ForwardOptions::default().with_head_mask(per_head))
        .unwrap();
    assert_close(
        "per-head mask",
        &out.last_hidden_state,
        &exp["head_mask.per_head.last_hidden_state"],
        TOL,
    );
}

fn backbone(case: &str, opts: BackboneOptions) -> Backbone<Arc<Dinov2Model>> {
    Backbone::new(Arc::new(load(case)), &opts).unwrap()
}

fn check_backbone(case: &str, combo: &str, opts: BackboneOptions, sizes: &[&str], n_maps: usize) {
    let bb = backbone(case, opts);
    let exp = expected(case);
    for size in sizes {
        let out = bb.forward(&exp[&format!("{size}.pixel_values")]).unwrap();
        assert_eq!(out.feature_maps.len(), n_maps, "{combo} {size}");
        for (j, f) in out.feature_maps.iter().enumerate() {
            assert_close(
                &format!("{case} backbone {combo} {size} map {j}"),
                f,
                &exp[&format!("backbone.{combo}.{size}.{j}")],
                TOL,
            );
        }
    }
}

#[test]
fn backbone_options() {
    let both = ["native", "updown"];
    check_backbone("reg4", "default", BackboneOptions::default(), &both, 1);
    check_backbone(
        "reg4",
        "stem_neg",
        BackboneOptions::default().with_out_indices(vec![0, 2, -1]),
        &both,
        3,
    );
    check_backbone(
        "reg4",
        "features",
        BackboneOptions::default().with_out_features(vec!["stage1".into(), "stage3".into()]),
        &both,
        2,
    );
    check_backbone(
        "reg4",
        "no_norm",
        BackboneOptions::default()
            .with_out_indices(vec![1, 3])
            .with_layernorm(false),
        &both,
        2,
    );
    check_backbone(
        "reg4",
        "no_reshape",
        BackboneOptions::default()
            .with_out_indices(vec![1, 3])
            .with_reshape(false),
        &both,
        2,
    );
    check_backbone(
        "reg4",
        "raw",
        BackboneOptions::default()
            .with_out_indices(vec![2])
            .with_layernorm(false)
            .with_reshape(false),
        &both,
        1,
    );
}

#[test]
fn backbone_other_register_counts_and_swiglu() {
    for case in ["reg0", "reg2", "swiglu"] {
        check_backbone(case, "default", BackboneOptions::default(), &["updown"], 1);
        check_backbone(
            case,
            "stem_neg",
            BackboneOptions::default().with_out_indices(vec![0, 2, -1]),
            &["updown"],
            3,
        );
    }
}

#[test]
fn backbone_shapes_follow_hf() {
    let bb = backbone(
        "reg4",
        BackboneOptions::default().with_out_indices(vec![-1]),
    );
    let exp = expected("reg4");
    let out = bb.forward(&exp["updown.pixel_values"]).unwrap();
    // 36x16 pixels, patch 4 -> 9x4 grid; D = 32; batch 2.
    assert_eq!(out.feature_maps[0].dims(), &[2, 32, 9, 4]);
    assert_eq!(bb.out_features(), &["stage3".to_string()]);
    assert_eq!(bb.out_indices(), &[-1]);
    let raw = backbone("reg4", BackboneOptions::default().with_reshape(false));
    let out = raw.forward(&exp["updown.pixel_values"]).unwrap();
    assert_eq!(out.feature_maps[0].dims(), &[2, 1 + 4 + 36, 32]);
}

#[test]
fn pth_layout_matches_hf_layout() {
    for case in ["reg4", "swiglu"] {
        let pth = Dinov2Model::load(
            fixture(&format!("model/{case}/config.json")),
            &[fixture(&format!("model/{case}/model.pth"))],
            &LoadOptions::default(),
        )
        .unwrap();
        let exp = expected(case);
        let out = pth.forward(&exp["updown.pixel_values"]).unwrap();
        assert_close(
            &format!("{case} .pth"),
            &out.last_hidden_state,
            &exp["updown.last_hidden_state"],
            TOL,
        );
    }
}

#[test]
fn dinov2_interpolates_without_antialias() {
    let model = load("dinov2");
    assert_eq!(model.config().num_register_tokens, 0);
    let exp = expected("dinov2");
    let mut reg_cfg = Dinov2Config::from_file(fixture("model/dinov2/config.json")).unwrap();
    reg_cfg.model_type = dinoreg::ModelType::Dinov2WithRegisters;
    let weights =
        dinoreg::model::weights::open_backbone(&[fixture("model/dinov2/model.safetensors")])
            .unwrap();
    let as_registers =
        Dinov2Model::from_weights(reg_cfg, &weights, &LoadOptions::default()).unwrap();
    for size in ["updown", "down"] {
        let px = &exp[&format!("{size}.pixel_values")];
        let plain = model.forward(px).unwrap().last_hidden_state;
        let aa = as_registers.forward(px).unwrap().last_hidden_state;
        assert_close(
            &format!("dinov2 {size}"),
            &plain,
            &exp[&format!("{size}.last_hidden_state")],
            TOL,
        );
        assert_close(
            &format!("dinov2 as registers {size}"),
            &aa,
            &exp[&format!("{size}.as_registers.last_hidden_state")],
            TOL,
        );
        // The two interpolations really differ.
        let (d, _) = common::max_diff(&plain, &aa);
        assert!(d > 1e-3, "{size}: antialias made no difference ({d})");
    }
}

#[test]
fn classification_logits() {
    let model = Dinov2ForImageClassification::load(
        fixture("model/classifier/config.json"),
        &[fixture("model/classifier/model.safetensors")],
        &LoadOptions::default(),
    )
    .unwrap();
    let exp = load_expected("model/classifier/expected.safetensors");
    let logits = model.forward(&exp["pixel_values"]).unwrap();
    assert_close("logits", &logits, &exp["logits"], TOL);
    let top = model.top_k(&logits, 3).unwrap();
    assert_eq!(top.len(), 2);
    assert_eq!(top[0].len(), 3);
    assert!(top[0][0].probability >= top[0][1].probability);
    let names = ["cat", "dog", "coffee", "rocket", "astronaut"];
    assert!(names.contains(&top[0][0].label.as_str()));
}
