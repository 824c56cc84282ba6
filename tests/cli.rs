//! The `dinoreg` binary's contract for `features`, `preprocess` and `classify`: outputs and their
//! shapes, parity through the CLI, exit status and one-line errors, and that a failed run leaves an
//! existing output untouched.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{dinoreg, example_image, fails_with, ok, s};
use common::{assert_close, fixture, load_expected, TOL};

fn model_dir(case: &str) -> String {
    fixture(&format!("model/{case}")).display().to_string()
}

fn image(name: &str) -> String {
    example_image(name).display().to_string()
}

#[test]
fn features_from_pixels_match_hf() {
    let exp = load_expected("model/reg4/expected.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let px = dir.path().join("px.npy");
    dinoreg::io::npy::write_tensor(&px, &exp["updown.pixel_values"]).unwrap();
    let out = dir.path().join("f.safetensors");
    ok(&dinoreg(&[
        "features",
        "--model",
        &model_dir("reg4"),
        "--pixels",
        s(&px),
        "--out-indices",
        "0,2,-1",
        "--output",
        s(&out),
    ]));
    let got = candle::safetensors::load(&out, &candle::Device::Cpu).unwrap();
    let mut keys: Vec<_> = got.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "last_hidden_state",
            "pooler_output",
            "stage2",
            "stage3",
            "stem"
        ]
    );
    for (j, name) in ["stem", "stage2", "stage3"].iter().enumerate() {
        assert_close(
            name,
            &got[*name],
            &exp[&format!("backbone.stem_neg.updown.{j}")],
            TOL,
        );
    }
    assert_close(
        "last_hidden_state",
        &got["last_hidden_state"],
        &exp["updown.last_hidden_state"],
        TOL,
    );
    assert_close(
        "pooler_output",
        &got["pooler_output"],
        &exp["updown.pooler_output"],
        TOL,
    );
}

#[test]
fn features_options_and_images() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.safetensors");
    ok(&dinoreg(&[
        "features",
        "--model",
        &model_dir("reg2"),
        "--image",
        &image("chelsea.png"),
        &image("coffee.png"),
        "--out-features",
        "stage1,stage3",
        "--no-reshape",
        "--no-layernorm",
        "--output",
        s(&out),
    ]));
    let got = candle::safetensors::load(&out, &candle::Device::Cpu).unwrap();
    // 224x224 crops, patch 4 -> 56x56 tokens, 2 registers, batch 2.
    assert_eq!(got["stage1"].dims(), &[2, 1 + 2 + 56 * 56, 32]);
    assert_eq!(got["pooler_output"].dims(), &[2, 32]);
}

#[test]
fn preprocess_writes_the_pixel_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("px.npy");
    ok(&dinoreg(&[
        "preprocess",
        "--image",
        &image("rocket.jpg"),
        "--output",
        s(&out),
    ]));
    let px = dinoreg::io::npy::read_tensor(&out, &candle::Device::Cpu).unwrap();
    assert_eq!(px.dims(), &[1, 3, 224, 224]);
}

#[test]
fn classify_prints_top_k_and_writes_logits() {
    let exp = load_expected("model/classifier/expected.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let px = dir.path().join("px.npy");
    dinoreg::io::npy::write_tensor(&px, &exp["pixel_values"]).unwrap();
    let logits = dir.path().join("logits.npy");
    let stdout = ok(&dinoreg(&[
        "classify",
        "--model",
        &model_dir("classifier"),
        "--pixels",
        s(&px),
        "--top",
        "2",
        "--output",
        s(&logits),
    ]));
    assert_eq!(stdout.matches('%').count(), 4, "{stdout}");
    let got = dinoreg::io::npy::read_tensor(&logits, &candle::Device::Cpu).unwrap();
    assert_close("logits", &got, &exp["logits"], TOL);
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.safetensors");
    // Missing parent folders are created; one under a regular file cannot be.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"a file").unwrap();
    let blocked = blocker.join("sub").join("f.safetensors");
    let reg4 = model_dir("reg4");
    fails_with(
        &dinoreg(&[
            "features",
            "--model",
            "/no/such/model",
            "--image",
            &image("chelsea.png"),
            "--output",
            s(&out),
        ]),
        "/no/such/model",
    );
    fails_with(
        &dinoreg(&[
            "features",
            "--model",
            &reg4,
            "--image",
            &image("chelsea.png"),
            "--out-indices",
            "7",
            "--output",
            s(&out),
        ]),
        "out_indices",
    );
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    fails_with(
        &dinoreg(&[
            "features",
            "--model",
            &reg4,
            "--image",
            s(&corrupt),
            "--output",
            s(&out),
        ]),
        "corrupt.png",
    );
    let bad_px = dir.path().join("bad.npy");
    dinoreg::io::npy::write_tensor(
        &bad_px,
        &candle::Tensor::zeros((1, 4, 8, 8), candle::DType::F32, &candle::Device::Cpu).unwrap(),
    )
    .unwrap();
    fails_with(
        &dinoreg(&[
            "features",
            "--model",
            &reg4,
            "--pixels",
            s(&bad_px),
            "--output",
            s(&out),
        ]),
        "3",
    );
    fails_with(
        &dinoreg(&[
            "features",
            "--model",
            &reg4,
            "--image",
            &image("chelsea.png"),
            "--output",
            s(&blocked),
        ]),
        "not-a-folder",
    );
    fails_with(
        &dinoreg(&[
            "classify",
            "--model",
            &reg4,
            "--image",
            &image("chelsea.png"),
        ]),
        "id2label",
    );
}

#[test]
fn failed_run_keeps_existing_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.safetensors");
    let reg4 = model_dir("reg4");
    ok(&dinoreg(&[
        "features",
        "--model",
        &reg4,
        "--image",
        &image("chelsea.png"),
        "--output",
        s(&out),
    ]));
    let before = std::fs::read(&out).unwrap();
    let missing = dir.path().join("missing.png");
    assert!(!dinoreg(&[
        "features",
        "--model",
        &reg4,
        "--image",
        s(&missing),
        "--output",
        s(&out)
    ])
    .status
    .success());
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind");
}

#[test]
fn depth_from_pixels_matches_hf() {
    let io = load_expected("depth/da_relative/io.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let px = dir.path().join("px.npy");
    dinoreg::io::npy::write_tensor(&px, &io["pixel_values"]).unwrap();
    let out = dir.path().join("depth.npy");
    let model = fixture("depth/da_relative");
    ok(&dinoreg(&[
        "depth",
        "--model",
        s(&model),
        "--pixels",
        s(&px),
        "--output",
        s(&out),
    ]));
    let got = dinoreg::io::npy::read_tensor(&out, &candle::Device::Cpu).unwrap();
    assert_close("depth", &got, &io["predicted_depth"], TOL);
    let png = dir.path().join("depth.png");
    // A small model input (the tiny fixture has 4-pixel patches) keeps the test fast.
    ok(&dinoreg(&[
        "depth",
        "--model",
        s(&model),
        "--image",
        &image("chelsea.png"),
        "--input-size",
        "56",
        "--output",
        s(&png),
    ]));
    let picture = image::open(&png).unwrap();
    // The picture is at the image's own size.
    assert_eq!((picture.width(), picture.height()), (451, 300));
}

/// Writes `n` 32x32 images of a coloured square on a two-tone background and their label maps
/// (0 background, 1 square, 255 one ignored corner).
fn shapes_dataset(root: &Path, n: usize) -> (PathBuf, PathBuf) {
    let (images, labels) = (root.join("images"), root.join("labels"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    for i in 0..n {
        let (x0, y0) = (2 + (i * 5) % 12, 3 + (i * 7) % 12);
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            let inside =
                (x0..x0 + 16).contains(&(x as usize)) && (y0..y0 + 16).contains(&(y as usize));
            if inside {
                image::Rgb([220, 40, 40])
            } else if (x / 4 + y / 4) % 2 == 0 {
                image::Rgb([40, 90, 200])
            } else {
                image::Rgb([60, 120, 60])
            }
        });
        let lab = image::GrayImage::from_fn(32, 32, |x, y| {
            let inside =
                (x0..x0 + 16).contains(&(x as usize)) && (y0..y0 + 16).contains(&(y as usize));
            image::Luma([if x < 2 && y < 2 { 255 } else { inside as u8 }])
        });
        img.save(images.join(format!("s{i}.png"))).unwrap();
        lab.save(labels.join(format!("s{i}.png"))).unwrap();
    }
    (images, labels)
}

#[test]
fn train_seg_then_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = shapes_dataset(dir.path(), 8);
    let head = dir.path().join("head.safetensors");
    let reg4 = model_dir("reg4");
    let stdout = ok(&dinoreg(&[
        "train-seg",
        "--model",
        &reg4,
        "--images",
        s(&images),
        "--labels",
        s(&labels),
        "--num-classes",
        "2",
        "--size",
        "32",
        "--epochs",
        "15",
        "--seed",
        "1",
        "--output",
        s(&head),
    ]));
    assert!(stdout.to_lowercase().contains("miou"), "{stdout}");
    let logits = dir.path().join("logits.npy");
    let one = images.join("s0.png");
    ok(&dinoreg(&[
        "segment",
        "--model",
        &reg4,
        "--head",
        s(&head),
        "--image",
        s(&one),
        "--short-side",
        "0",
        "--crop",
        "0",
        "--output",
        s(&logits),
    ]));
    let got = dinoreg::io::npy::read_tensor(&logits, &candle::Device::Cpu).unwrap();
    assert_eq!(got.dims(), &[1, 2, 32, 32]);
    let overlay = dir.path().join("overlay.png");
    ok(&dinoreg(&[
        "segment",
        "--model",
        &reg4,
        "--head",
        s(&head),
        "--image",
        s(&one),
        "--short-side",
        "0",
        "--crop",
        "0",
        "--output",
        s(&overlay),
    ]));
    assert!(image::open(&overlay).unwrap().width() >= 32);
    fails_with(
        &dinoreg(&[
            "segment",
            "--model",
            &reg4,
            "--head",
            "/no/such/head.safetensors",
            "--image",
            s(&one),
            "--output",
            s(&logits),
        ]),
        "/no/such/head.safetensors",
    );
}
