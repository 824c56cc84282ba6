//! The model is `Send + Sync` and serves several threads at once: forward passes of different
//! input sizes from four threads, three rounds each, give the single-threaded results.

mod common;

use std::sync::Arc;

use candle::Tensor;
use common::{assert_close, fixture, load_expected};
use dinoreg::Vit;
use dinoreg::{Backbone, Dinov2ForImageClassification, Dinov2Model, LoadOptions};

/// Compile-time check: the model types can be shared between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Dinov2Model>();
    send_sync::<Backbone<dinoreg::Dinov2Model>>();
    send_sync::<Dinov2ForImageClassification>();
    send_sync::<Arc<Dinov2Model>>();
};

/// Concurrent passes must not disturb each other: far tighter than the 1e-4 parity bound.
const SAME: f32 = 1e-6;

#[test]
fn forward_from_several_threads_matches_single_threaded() {
    let model = Arc::new(
        Dinov2Model::load(
            fixture("model/reg4/config.json"),
            &[fixture("model/reg4/model.safetensors")],
            &LoadOptions::default(),
        )
        .unwrap(),
    );
    let exp = load_expected("model/reg4/expected.safetensors");
    let inputs: Vec<Tensor> = ["native", "updown", "floor", "down"]
        .iter()
        .map(|s| exp[&format!("{s}.pixel_values")].clone())
        .collect();
    let single: Vec<Tensor> = inputs
        .iter()
        .map(|px| model.forward(px).unwrap().last_hidden_state)
        .collect();
    std::thread::scope(|s| {
        for thread in 0..4 {
            let (model, inputs, single) = (model.clone(), &inputs, &single);
            s.spawn(move || {
                for round in 0..3 {
                    for k in 0..inputs.len() {
                        let i = (k + thread + round) % inputs.len();
                        let out = model.forward(&inputs[i]).unwrap();
                        assert_close(
                            &format!("thread {thread} round {round} input {i}"),
                            &out.last_hidden_state,
                            &single[i],
                            SAME,
                        );
                    }
                }
            });
        }
    });
}
