//! Half-precision checkpoints: the reg4 fixture converted to f16 and bf16 (in a temporary folder)
//! loads and runs in f32 close to HF's f32 output (the weights lost their low bits, so the bound
//! is looser than parity's 1e-4), and also runs in f16/bf16 on the CPU through candle's ops.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle::{DType, Device, Tensor};
use common::{fixture, load_expected, max_diff};
use dinoreg::Vit;
use dinoreg::{Dinov2Model, LoadOptions};

/// Writes the reg4 fixture with every tensor in `dtype` into `dir`.
fn convert(dir: &Path, dtype: DType) {
    let tensors =
        candle::safetensors::load(fixture("model/reg4/model.safetensors"), &Device::Cpu).unwrap();
    let half: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(dtype).unwrap()))
        .collect();
    candle::safetensors::save(&half, dir.join("model.safetensors")).unwrap();
    std::fs::copy(fixture("model/reg4/config.json"), dir.join("config.json")).unwrap();
}

fn relative_error(dtype_file: DType, run: DType) -> f32 {
    let dir = tempfile::tempdir().unwrap();
    convert(dir.path(), dtype_file);
    let model = Dinov2Model::load(
        dir.path().join("config.json"),
        &[dir.path().join("model.safetensors")],
        &LoadOptions::default().with_dtype(run),
    )
    .unwrap();
    assert_eq!(model.dtype(), run);
    let exp = load_expected("model/reg4/expected.safetensors");
    let mut worst = 0f32;
    for size in ["native", "updown"] {
        let out = model
            .forward(&exp[&format!("{size}.pixel_values")])
            .unwrap();
        assert_eq!(out.last_hidden_state.dtype(), run);
        let (diff, scale) = max_diff(
            &out.last_hidden_state,
            &exp[&format!("{size}.last_hidden_state")],
        );
        worst = worst.max(diff / scale.max(1.0));
    }
    eprintln!("{dtype_file:?} weights run in {run:?}: relative error {worst:e}");
    worst
}

#[test]
fn f16_checkpoint_runs_in_f32() {
    let err = relative_error(DType::F16, DType::F32);
    assert!(err <= 3e-3, "f16 weights in f32: relative error {err:e}");
}

#[test]
fn bf16_checkpoint_runs_in_f32() {
    let err = relative_error(DType::BF16, DType::F32);
    assert!(err <= 2e-2, "bf16 weights in f32: relative error {err:e}");
}

#[test]
fn f16_checkpoint_runs_in_f16_on_cpu() {
    let err = relative_error(DType::F16, DType::F16);
    assert!(err <= 5e-3, "f16 weights in f16: relative error {err:e}");
}

#[test]
fn bf16_checkpoint_runs_in_bf16_on_cpu() {
    let err = relative_error(DType::BF16, DType::BF16);
    assert!(err <= 6e-2, "bf16 weights in bf16: relative error {err:e}");
}
