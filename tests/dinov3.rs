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
use dinoreg::{
    Backbone, BackboneForwardOptions, BackboneOptions, Dinov3Config, Dinov3Model, ForwardOptions,
    LoadOptions, Vit,
};

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

#[test]
fn hidden_states_attentions_and_qkv_after_rope() {
    for (path, fused) in PATHS {
        let model = load("reg4", fused);
        let exp = expected("reg4");
        let px = &exp["small.pixel_values"];
        for block in 0..3 {
            let opts = ForwardOptions::default()
                .with_hidden_states(true)
                .with_attentions(true)
                .with_qkv_block(block);
            let out = model.forward_with(px, &opts).unwrap();
            let qkv = out.qkv.unwrap();
            for (name, t) in [("q", &qkv.q), ("k", &qkv.k), ("v", &qkv.v)] {
                assert_close(
                    &format!("{path} block {block} {name}"),
                    t,
                    &exp[&format!("small.block{block}.{name}")],
                    TOL,
                );
            }
            if block > 0 {
                continue;
            }
            let hidden = out.hidden_states.unwrap();
            assert_eq!(hidden.len(), 4);
            for (i, h) in hidden.iter().enumerate() {
                let key = format!("small.hidden_states.{i}");
                assert_close(&format!("{path} {key}"), h, &exp[&key], TOL);
            }
            let attentions = out.attentions.unwrap();
            assert_eq!(attentions.len(), 3);
            for (i, a) in attentions.iter().enumerate() {
                let key = format!("small.attentions.{i}");
                assert_close(&format!("{path} {key}"), a, &exp[&key], TOL);
            }
        }
        // The other cases' hidden states.
        for case in ["reg0", "gated", "nobias"] {
            let model = load(case, fused);
            let exp = expected(case);
            let out = model
                .forward_with(
                    &exp["small.pixel_values"],
                    &ForwardOptions::default().with_hidden_states(true),
                )
                .unwrap();
            for (i, h) in out.hidden_states.unwrap().iter().enumerate() {
                let key = format!("small.hidden_states.{i}");
                assert_close(&format!("{path} {case} {key}"), h, &exp[&key], TOL);
            }
        }
    }
}

#[test]
fn rope_is_applied_to_patch_tokens_only() {
    // The fixture's q before RoPE equals q after it on CLS and registers, not on patches: the
    // model's q must follow (checked against the post-RoPE fixture above); here the pre-RoPE
    // fixture shows the rotation is not a no-op on this input.
    let exp = expected("reg4");
    let (q, q_proj) = (&exp["small.block1.q"], &exp["small.block1.q_proj"]);
    let prefix = 5;
    assert_close(
        "prefix tokens unrotated",
        &q.narrow(1, 0, prefix).unwrap(),
        &q_proj.narrow(1, 0, prefix).unwrap(),
        0.0,
    );
    let (diff, _) = common::max_diff(
        &q.narrow(1, prefix, 15).unwrap(),
        &q_proj.narrow(1, prefix, 15).unwrap(),
    );
    assert!(diff > 1e-2, "RoPE changes the patch tokens' q ({diff})");
}

#[test]
fn mask_token() {
    for (path, fused) in PATHS {
        for (case, input) in [
            ("reg4", "wide"),
            ("reg0", "small"),
            ("gated", "small"),
            ("nobias", "small"),
        ] {
            let model = load(case, fused);
            let exp = expected(case);
            let out = model
                .forward_with(
                    &exp[&format!("{input}.pixel_values")],
                    &ForwardOptions::default()
                        .with_bool_masked_pos(exp["masked.bool_masked_pos"].clone()),
                )
                .unwrap();
            assert_close(
                &format!("{path} {case} masked"),
                &out.last_hidden_state,
                &exp["masked.last_hidden_state"],
                TOL,
            );
        }
    }
}

#[test]
fn rope_tables_alone() {
    let exp = load_expected("dinov3/rope.safetensors");
    let cases = [
        (8, 100.0, (3, 5)),
        (16, 100.0, (4, 7)),
        (16, 50.0, (6, 6)),
        (16, 1000.0, (1, 6)),
        (64, 100.0, (7, 9)),
        (128, 100.0, (2, 3)),
    ];
    let device = candle::Device::Cpu;
    for (hd, theta, (h, w)) in cases {
        let key = format!("hd{hd}_theta{theta}_{h}x{w}");
        let inv = dinoreg::model::rope::inv_freq(hd, theta);
        let inv = Tensor::new(inv.as_slice(), &device).unwrap();
        assert_close(
            &format!("{key} inv_freq"),
            &inv,
            &exp[&format!("{key}.inv_freq")],
            1e-6,
        );
        let coords: Vec<f32> = dinoreg::model::rope::patch_coords(h, w)
            .into_iter()
            .flatten()
            .collect();
        let coords = Tensor::from_vec(coords, (h * w, 2), &device).unwrap();
        assert_close(
            &format!("{key} coords"),
            &coords,
            &exp[&format!("{key}.coords")],
            0.0,
        );
        let rope = dinoreg::model::Rope::new(hd, theta, &device, candle::DType::F32).unwrap();
        let table = rope.table((h, w)).unwrap();
        assert_close(
            &format!("{key} cos"),
            table.cos(),
            &exp[&format!("{key}.cos")],
            1e-6,
        );
        assert_close(
            &format!("{key} sin"),
            table.sin(),
            &exp[&format!("{key}.sin")],
            1e-6,
        );
    }
    // The model's own table for the 3x5 grid of `small`.
    let model = load("reg4", true);
    let exp = expected("reg4");
    let table = model.rope_table((3, 5)).unwrap();
    assert_close("model cos", table.cos(), &exp["small.rope.cos"], 1e-6);
    assert_close("model sin", table.sin(), &exp["small.rope.sin"], 1e-6);
}

/// The backbone of `case` with the stage options of `config` (a `config.json` of the same model).
fn backbone(config: &str, weights: &str, fused: bool) -> (Backbone<Dinov3Model>, bool) {
    let model = Dinov3Model::load(
        fixture(config),
        &[fixture(weights)],
        &LoadOptions::default().with_fused_kernels(fused),
    )
    .unwrap();
    let cls = model.config().return_class_token;
    (
        Backbone::new(model, &BackboneOptions::default()).unwrap(),
        cls,
    )
}

#[test]
fn backbone_every_option() {
    let exp = expected("reg4");
    let combos: [(&str, &[&str]); 7] = [
        ("default", &["small", "wide", "tall"]),
        ("stem_neg", &["small"]),
        ("features", &["small"]),
        ("no_norm", &["small"]),
        ("no_reshape", &["small"]),
        ("raw", &["small"]),
        ("cls", &["small"]),
    ];
    for (path, fused) in PATHS {
        for (combo, inputs) in combos {
            let (bb, cls) = backbone(
                &format!("dinov3/reg4/backbone/{combo}.json"),
                "dinov3/reg4/model.safetensors",
                fused,
            );
            for input in inputs {
                let out = bb
                    .forward_with(
                        &exp[&format!("{input}.pixel_values")],
                        &BackboneForwardOptions::default().with_class_token(cls),
                    )
                    .unwrap();
                let prefix = format!("backbone.{combo}.{input}");
                let n = exp.keys().filter(|k| {
                    k.strip_prefix(&format!("{prefix}."))
                        .is_some_and(|r| r.parse::<usize>().is_ok())
                });
                assert_eq!(out.feature_maps.len(), n.count(), "{path} {prefix}");
                for (j, map) in out.feature_maps.iter().enumerate() {
                    let key = format!("{prefix}.{j}");
                    assert_close(&format!("{path} {key}"), map, &exp[&key], TOL);
                }
                if cls {
                    for (j, t) in out.cls_tokens.unwrap().iter().enumerate() {
                        let key = format!("{prefix}.cls_tokens.{j}");
                        assert_close(&format!("{path} {key}"), t, &exp[&key], TOL);
                    }
                }
            }
        }
        for case in ["reg0", "gated", "nobias"] {
            let exp = expected(case);
            let model = load(case, fused);
            let px = &exp["small.pixel_values"];
            let default = Backbone::new(&model, &BackboneOptions::default()).unwrap();
            let maps = default.forward(px).unwrap().feature_maps;
            assert_close(
                &format!("{path} {case} default"),
                &maps[0],
                &exp["backbone.default.small.0"],
                TOL,
            );
            let stem_neg = Backbone::new(
                &model,
                &BackboneOptions::default().with_out_indices(vec![0, -2, -1]),
            )
            .unwrap();
            for (j, map) in stem_neg
                .forward(px)
                .unwrap()
                .feature_maps
                .iter()
                .enumerate()
            {
                let key = format!("backbone.stem_neg.small.{j}");
                assert_close(&format!("{path} {case} {key}"), map, &exp[&key], TOL);
            }
        }
    }
}

#[test]
fn nested_backbone_config() {
    let exp = load_expected("dinov3/nested/expected.safetensors");
    for (path, fused) in PATHS {
        let (bb, _) = backbone(
            "dinov3/nested/config.json",
            "dinov3/reg4/model.safetensors",
            fused,
        );
        assert_eq!(bb.out_features(), ["stage1", "stage2", "stage3"]);
        let maps = bb.forward(&exp["small.pixel_values"]).unwrap().feature_maps;
        assert_eq!(maps.len(), 3);
        for (j, map) in maps.iter().enumerate() {
            let key = format!("backbone.small.{j}");
            assert_close(&format!("{path} nested {key}"), map, &exp[&key], TOL);
        }
    }
    // The training-only augmentations are parsed (and ignored).
    let c = Dinov3Config::from_file(fixture("dinov3/nested/config.json")).unwrap();
    assert_eq!(
        (
            c.pos_embed_shift,
            c.pos_embed_jitter,
            c.pos_embed_rescale,
            c.patch_size
        ),
        (Some(0.1), Some(1.2), Some(1.5), 4)
    );
}

#[test]
fn intermediates_and_head_features_like_dinov2() {
    use dinoreg::heads::{FeatureRequest, FeatureSource};
    use dinoreg::{IntermediatesOptions, LayerSelection, TokenLayout};
    let exp = expected("reg4");
    let px = &exp["small.pixel_values"];
    for (path, fused) in PATHS {
        let model = load("reg4", fused);
        // Blocks 1 and -1 normed = the backbone's stage2 and stage3 of `stem_neg`.
        let inter = model
            .forward_intermediates(
                px,
                &IntermediatesOptions::default()
                    .with_blocks(LayerSelection::Blocks(vec![1, -1]))
                    .with_prefix_tokens(true),
            )
            .unwrap();
        assert_eq!(inter.grid, (3, 5));
        for (layer, j) in inter.layers.iter().zip([1, 2]) {
            let key = format!("backbone.stem_neg.small.{j}");
            assert_close(
                &format!("{path} intermediates {key}"),
                &layer.patches,
                &exp[&key],
                TOL,
            );
            assert_eq!(layer.registers.as_ref().unwrap().dims(), &[2, 4, 32]);
        }
        assert_close(
            &format!("{path} last CLS = pooler_output"),
            inter.layers[1].cls.as_ref().unwrap(),
            &exp["small.pooler_output"],
            TOL,
        );
        let nlc = model
            .forward_intermediates(
                px,
                &IntermediatesOptions::default()
                    .with_blocks(LayerSelection::Last(1))
                    .with_norm(false)
                    .with_layout(TokenLayout::Nlc),
            )
            .unwrap();
        assert_close(
            &format!("{path} raw last block, patch tokens"),
            &nlc.layers[0].patches,
            &exp["small.hidden_states.3"].narrow(1, 5, 15).unwrap(),
            TOL,
        );
        // What a head asks for: keys, queries and values after RoPE, as (B, D, h, w) maps.
        for (source, name) in [
            (FeatureSource::Keys, "k"),
            (FeatureSource::Queries, "q"),
            (FeatureSource::Values, "v"),
        ] {
            let maps = model
                .features(
                    px,
                    &FeatureRequest::blocks(vec![-1])
                        .with_source(source)
                        .with_cls_token(true),
                )
                .unwrap();
            assert_eq!((maps.patch_size, maps.input_size), (4, (12, 20)));
            let tokens = &exp[&format!("small.block2.{name}")];
            let want = tokens
                .narrow(1, 5, 15)
                .unwrap()
                .reshape((2, 3, 5, 32))
                .unwrap()
                .permute((0, 3, 1, 2))
                .unwrap();
            assert_close(&format!("{path} head {name}"), &maps.maps[0], &want, TOL);
            let cls = tokens.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
            assert_close(
                &format!("{path} head {name} CLS"),
                &maps.cls_tokens.unwrap()[0],
                &cls,
                TOL,
            );
        }
    }
    // The HF backbone loaded by path, with its processor.
    let bb = Backbone::from_pretrained(
        "tests/fixtures/dinov3/reg4",
        &BackboneOptions::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(bb.model.out_features(), ["stage3"]);
    assert_close(
        "Backbone::from_pretrained",
        &bb.model.forward(px).unwrap().feature_maps[0],
        &exp["backbone.default.small.0"],
        TOL,
    );
}
