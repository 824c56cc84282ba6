//! The typed intermediates API and the head adapter agree with the HF-parity outputs: blocks,
//! norm, layouts, CLS/register tokens per layer, and a block's attention keys as feature maps.

mod common;

use candle::IndexOp;
use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::heads::{FeatureRequest, FeatureSource};
use dinoreg::Vit;
use dinoreg::{Dinov2Model, IntermediatesOptions, LayerSelection, LoadOptions, TokenLayout};

fn reg4() -> Dinov2Model {
    Dinov2Model::load(
        fixture("model/reg4/config.json"),
        &[fixture("model/reg4/model.safetensors")],
        &LoadOptions::default(),
    )
    .unwrap()
}

#[test]
fn blocks_match_backbone_stages() {
    let model = reg4();
    let exp = load_expected("model/reg4/expected.safetensors");
    let px = &exp["updown.pixel_values"];
    // Blocks 0 and 2 are stages 1 and 3 ("features" combo: norm + reshape).
    let inter = model
        .forward_intermediates(
            px,
            &IntermediatesOptions::default().with_blocks(LayerSelection::Blocks(vec![0, -1])),
        )
        .unwrap();
    assert_eq!(inter.grid, (9, 4));
    assert_eq!(inter.layers.len(), 2);
    assert_eq!(inter.layers[1].block, 2);
    assert_close(
        "block 0",
        &inter.layers[0].patches,
        &exp["backbone.features.updown.0"],
        TOL,
    );
    assert_close(
        "block 2",
        &inter.layers[1].patches,
        &exp["backbone.features.updown.1"],
        TOL,
    );
    // Without norm: the "no_norm" combo (stages 1 and 3).
    let raw = model
        .forward_intermediates(
            px,
            &IntermediatesOptions::default()
                .with_blocks(LayerSelection::Blocks(vec![0, 2]))
                .with_norm(false),
        )
        .unwrap();
    assert_close(
        "block 0 raw",
        &raw.layers[0].patches,
        &exp["backbone.no_norm.updown.0"],
        TOL,
    );
}

#[test]
fn layouts_and_prefix_tokens() {
    let model = reg4();
    let exp = load_expected("model/reg4/expected.safetensors");
    let px = &exp["updown.pixel_values"];
    let last = &exp["updown.last_hidden_state"]; // (2, 1 + 4 + 36, 32), normed
    for (layout, dims) in [
        (TokenLayout::Nchw, vec![2, 32, 9, 4]),
        (TokenLayout::Nhwc, vec![2, 9, 4, 32]),
        (TokenLayout::Nlc, vec![2, 36, 32]),
    ] {
        let inter = model
            .forward_intermediates(
                px,
                &IntermediatesOptions::default()
                    .with_blocks(LayerSelection::Last(1))
                    .with_layout(layout)
                    .with_prefix_tokens(true),
            )
            .unwrap();
        let l = &inter.layers[0];
        assert_eq!(l.patches.dims(), dims.as_slice());
        assert_close(
            "cls",
            l.cls.as_ref().unwrap(),
            &last.i((.., 0)).unwrap(),
            TOL,
        );
        assert_close(
            "registers",
            l.registers.as_ref().unwrap(),
            &last.i((.., 1..5)).unwrap(),
            TOL,
        );
    }
    let nlc = model
        .forward_intermediates(
            px,
            &IntermediatesOptions::default().with_layout(TokenLayout::Nlc),
        )
        .unwrap();
    assert_close(
        "patches",
        &nlc.layers[0].patches,
        &last.i((.., 5..)).unwrap(),
        TOL,
    );
}

#[test]
fn head_adapter_outputs_and_keys() {
    let model = reg4();
    let exp = load_expected("model/reg4/expected.safetensors");
    let px = &exp["updown.pixel_values"];
    let maps = model
        .features(px, &FeatureRequest::blocks(vec![0, 2]).with_cls_token(true))
        .unwrap();
    assert_eq!(maps.patch_size, 4);
    assert_eq!(maps.input_size, (36, 16));
    assert_eq!(maps.grid().unwrap(), (9, 4));
    assert_close(
        "map 1",
        &maps.maps[1],
        &exp["backbone.features.updown.1"],
        TOL,
    );
    let cls = maps.cls_tokens.as_ref().unwrap();
    assert_close("cls", &cls[1], &exp["updown.pooler_output"], TOL);
    // Keys of the last block: (B, T, D) from HF, as a (B, D, h, w) map without CLS/registers.
    let keys = model
        .features(
            px,
            &FeatureRequest::blocks(vec![-1]).with_source(FeatureSource::Keys),
        )
        .unwrap();
    let expected = exp["updown.last_keys"]
        .i((.., 5.., ..))
        .unwrap()
        .reshape((2, 9, 4, 32))
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap();
    assert_close("keys", &keys.maps[0], &expected, TOL);
    let two = model.features(
        px,
        &FeatureRequest::blocks(vec![1, 2]).with_source(FeatureSource::Keys),
    );
    assert!(two.unwrap_err().to_string().contains("one block"));
}

#[test]
fn invalid_selections() {
    let model = reg4();
    let exp = load_expected("model/reg4/expected.safetensors");
    let px = &exp["updown.pixel_values"];
    for (sel, needle) in [
        (LayerSelection::Last(0), "last 0"),
        (LayerSelection::Last(4), "last 4"),
        (LayerSelection::Blocks(vec![2, 1]), "increasing"),
        (LayerSelection::Blocks(vec![3]), "out of range"),
        (LayerSelection::Blocks(vec![]), "no block"),
    ] {
        let e = model
            .forward_intermediates(px, &IntermediatesOptions::default().with_blocks(sel))
            .unwrap_err();
        assert!(e.to_string().contains(needle), "{needle:?} not in {e}");
    }
}
