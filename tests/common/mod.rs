//! Helpers shared by the integration tests: fixture paths and the parity comparison
//! (`max |a - b| <= tol * max(1, max |b|)`).

#![allow(dead_code)]

pub mod cli;
pub mod progress;
pub mod scenes;

use std::collections::HashMap;
use std::path::PathBuf;

use candle::{DType, Device, Tensor};

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Loads a safetensors file of expected values.
pub fn load_expected(rel: &str) -> HashMap<String, Tensor> {
    candle::safetensors::load(fixture(rel), &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot load fixture {rel}: {e}"))
}

/// The largest absolute difference and the scale of `expected`.
pub fn max_diff(actual: &Tensor, expected: &Tensor) -> (f32, f32) {
    assert_eq!(actual.dims(), expected.dims(), "shape mismatch");
    let a = actual
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let e = expected
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let diff = a
        .iter()
        .zip(&e)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let scale = e.iter().map(|x| x.abs()).fold(0f32, f32::max);
    assert!(a.iter().all(|x| x.is_finite()), "non-finite values");
    (diff, scale)
}

/// Asserts `max |actual - expected| <= tol * max(1, max |expected|)`.
#[track_caller]
pub fn assert_close(what: &str, actual: &Tensor, expected: &Tensor, tol: f32) {
    let (diff, scale) = max_diff(actual, expected);
    let bound = tol * scale.max(1.0);
    assert!(
        diff <= bound,
        "{what}: max abs diff {diff:e} > {bound:e} (scale {scale})"
    );
}

/// The parity tolerance of the project.
pub const TOL: f32 = 1e-4;
