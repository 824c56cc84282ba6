//! A request whose working set cannot fit in the memory available now fails with a one-line
//! `InvalidInput` error naming the input size and the estimate, instead of being killed by the
//! out-of-memory killer: attention maps of a 1000x1000 input on the fixture model (62 505
//! tokens, about 190 GB of probabilities), and the same input on the generic path, which
//! materialises the scores.
//!
//! The guard's figure is capped at 1 GiB with `set_memory_limit`, so the refusal does not depend on
//! the host (off Linux there is no other figure; on a host with more than 190 GB free there would be
//! no refusal).

mod common;

use candle::{Device, Tensor};
use common::fixture;
use dinoreg::Vit;
use dinoreg::{Dinov2Model, Error, ForwardOptions, LoadOptions};

fn model(fused: bool) -> Dinov2Model {
    dinoreg::set_memory_limit(Some(1 << 30));
    Dinov2Model::load(
        fixture("model/reg4/config.json"),
        &[fixture("model/reg4/model.safetensors")],
        &LoadOptions::default().with_fused_kernels(fused),
    )
    .unwrap()
}

fn huge() -> Tensor {
    Tensor::zeros((1, 3, 1000, 1000), candle::DType::F32, &Device::Cpu).unwrap()
}

fn assert_refused(e: Error) {
    let msg = e.to_string();
    assert!(matches!(e, Error::InvalidInput { .. }), "{msg}");
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    for part in ["1000x1000", "62505 tokens", "working memory", "available"] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
}

#[test]
fn attention_maps_that_cannot_fit_are_refused() {
    let opts = ForwardOptions::default().with_attentions(true);
    assert_refused(model(true).forward_with(&huge(), &opts).unwrap_err());
}

#[test]
fn generic_path_refuses_scores_that_cannot_fit() {
    assert_refused(model(false).forward(&huge()).unwrap_err());
}
