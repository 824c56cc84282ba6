//! The fused CPU path on every SIMD path this CPU runs (AVX-512, AVX2 + FMA, NEON, scalar), one
//! after the other in one process, each against the generic candle path at 1e-4 relative to
//! scale: every DINOv2 fixture model and input size, SwiGLU, hidden states, attentions and head
//! masks, and the DINOv3 fixtures (RoPE, gated MLP, absent biases) against HF.
//! The kernels' own tests (`cargo test --lib kernels`) compare each path with f64 and with the
//! scalar path, sequences beyond 4096 tokens (the chunked online softmax) included: a model pass
//! that long takes minutes in an unoptimised test build. `scripts/emulated_cpus.sh` runs this test
//! (and, in full, those) on emulated CPUs, so each path also runs where the runtime detection picks
//! it: x86-64 without AVX-512 and without AVX in CI, aarch64 (NEON) on request.
//!
//! A `harness = false` target, so that its report of the paths exercised and skipped shows in
//! `cargo test` output.

mod common;

use std::collections::HashMap;

use candle::Tensor;
use common::{assert_close, fixture, load_expected, max_diff, TOL};
use dinoreg::{profile, Dinov2Model, Dinov3Model, ForwardOptions, LoadOptions, Vit};

fn load(case: &str, fused: bool) -> Dinov2Model {
    Dinov2Model::load(
        fixture(&format!("model/{case}/config.json")),
        &[fixture(&format!("model/{case}/model.safetensors"))],
        &LoadOptions::default().with_fused_kernels(fused),
    )
    .unwrap()
}

fn expected(case: &str) -> HashMap<String, Tensor> {
    load_expected(&format!("model/{case}/expected.safetensors"))
}

fn load_dinov3(case: &str, fused: bool) -> Dinov3Model {
    Dinov3Model::load(
        fixture(&format!("dinov3/{case}/config.json")),
        &[fixture(&format!("dinov3/{case}/model.safetensors"))],
        &LoadOptions::default().with_fused_kernels(fused),
    )
    .unwrap()
}

/// Runs every check on the current path; returns the largest difference to the generic path
/// relative to scale.
fn check_path(path: &str) -> f32 {
    let mut worst = 0f32;
    let mut compare = |what: &str, fused: &Tensor, generic: &Tensor| {
        assert_close(&format!("{path} {what}"), fused, generic, TOL);
        let (diff, scale) = max_diff(fused, generic);
        worst = worst.max(diff / scale.max(1.0));
    };
    for case in ["reg4", "reg2", "reg0", "swiglu"] {
        let (fused, generic) = (load(case, true), load(case, false));
        let exp = expected(case);
        for size in ["native", "updown", "floor", "down"] {
            let px = &exp[&format!("{size}.pixel_values")];
            let f = fused.forward(px).unwrap().last_hidden_state;
            let g = generic.forward(px).unwrap().last_hidden_state;
            compare(&format!("{case} {size}"), &f, &g);
            let want = &exp[&format!("{size}.last_hidden_state")];
            assert_close(&format!("{path} {case} {size} vs HF"), &f, want, TOL);
        }
    }

    for case in ["reg4", "gated", "nobias"] {
        let (fused, generic) = (load_dinov3(case, true), load_dinov3(case, false));
        let exp = load_expected(&format!("dinov3/{case}/expected.safetensors"));
        for size in ["square", "wide", "small"] {
            let px = &exp[&format!("{size}.pixel_values")];
            let f = fused.forward(px).unwrap().last_hidden_state;
            let g = generic.forward(px).unwrap().last_hidden_state;
            compare(&format!("dinov3 {case} {size}"), &f, &g);
            let want = &exp[&format!("{size}.last_hidden_state")];
            assert_close(&format!("{path} dinov3 {case} {size} vs HF"), &f, want, TOL);
        }
    }

    let (fused, generic) = (load("reg4", true), load("reg4", false));
    let exp = expected("reg4");
    let px = &exp["updown.pixel_values"];
    let opts = ForwardOptions::default()
        .with_hidden_states(true)
        .with_attentions(true)
        .with_head_mask(exp["head_mask.per_layer"].clone());
    let (f, g) = (
        fused.forward_with(px, &opts).unwrap(),
        generic.forward_with(px, &opts).unwrap(),
    );
    compare(
        "masked last_hidden_state",
        &f.last_hidden_state,
        &g.last_hidden_state,
    );
    for (i, (a, b)) in f
        .hidden_states
        .unwrap()
        .iter()
        .zip(&g.hidden_states.unwrap())
        .enumerate()
    {
        compare(&format!("hidden state {i}"), a, b);
    }
    for (i, (a, b)) in f
        .attentions
        .unwrap()
        .iter()
        .zip(&g.attentions.unwrap())
        .enumerate()
    {
        compare(&format!("attention {i}"), a, b);
    }

    // Wide enough that every product is split by columns between two threads (each thread
    // applying the bias and GELU to its own columns): random weights, fused against generic.
    let config = dinoreg::Dinov2Config {
        hidden_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_register_tokens: 2,
        ..Default::default()
    };
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (f, g) = two.install(|| {
        let px = Tensor::randn(0f32, 1.0, (2, 3, 56, 70), &candle::Device::Cpu).unwrap();
        let run = |fused: bool| {
            let load = LoadOptions::default().with_fused_kernels(fused);
            let model = Dinov2Model::random(&config, 7, &load).unwrap();
            model.forward(&px).unwrap().last_hidden_state
        };
        (run(true), run(false))
    });
    compare("random 128-wide model, 2 threads", &f, &g);

    worst
}

fn main() {
    println!("fused kernels on every SIMD path, against the generic candle path at {TOL:e}:");
    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    for path in profile::simd_paths() {
        match profile::force_simd_path(path) {
            Ok(()) => {
                assert_eq!(profile::simd_path(), path);
                let start = std::time::Instant::now();
                let worst = check_path(path);
                println!(
                    "  {path:<7} exercised: ok (largest difference {worst:.1e} of scale, {:.1} s)",
                    start.elapsed().as_secs_f64()
                );
                ran.push(path);
            }
            Err(why) => {
                println!("  {path:<7} skipped: {why}");
                skipped.push(path);
            }
        }
    }
    assert!(ran.contains(&"scalar"), "the scalar path always runs");
    println!(
        "SIMD paths exercised: {}; skipped: {}",
        ran.join(", "),
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        }
    );
}
