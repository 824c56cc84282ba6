//! HF's published integration values for `facebook/dinov2-with-registers-base` on COCO val2017 image
//! 000000039769 (two cats). Needs the real weights and the image, so it is ignored by default:
//!
//! ```bash
//! # once, with network: fill the Hugging Face cache
//! cargo run --release -- features --model facebook/dinov2-with-registers-base \
//!     --image examples/images/chelsea.png --output /tmp/f.safetensors
//! # the image: tests/fixtures/tests_samples/COCO/000000039769.png from the transformers repo
//! DINOREG_COCO_IMAGE=/path/to/000000039769.png cargo test --release --test real_weights -- --ignored
//! ```

use candle::IndexOp;
use dinoreg::io::hub::resolve_model;
use dinoreg::preprocess::ImageProcessor;
use dinoreg::Vit;
use dinoreg::{Dinov2Model, LoadOptions};

#[test]
#[ignore = "needs facebook/dinov2-with-registers-base in the HF cache and DINOREG_COCO_IMAGE"]
fn hf_integration_values_for_base() {
    let image =
        std::env::var("DINOREG_COCO_IMAGE").expect("set DINOREG_COCO_IMAGE to 000000039769.png");
    let files = resolve_model("facebook/dinov2-with-registers-base").unwrap();
    let processor = files
        .preprocessor
        .as_ref()
        .map(|p| ImageProcessor::from_file(p).unwrap())
        .unwrap_or_default();
    let model = Dinov2Model::load(&files.config, &files.weights, &LoadOptions::default()).unwrap();
    let pixels = processor.pixels(&image, &candle::Device::Cpu).unwrap();
    let out = model.forward(&pixels).unwrap();
    assert_eq!(out.last_hidden_state.dims(), &[1, 261, 768]);
    let got = out
        .last_hidden_state
        .i((0, 0..3, 0..3))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let expected = [
        [-0.4638f32, -1.4563, -0.0289],
        [-1.4736, -0.8866, 0.3005],
        [0.0720, -0.2406, -1.5943],
    ];
    for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
        assert!(
            (g - e).abs() <= 1e-4 + 1e-4 * e.abs(),
            "{got:?} vs {expected:?}"
        );
    }
}
