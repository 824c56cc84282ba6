//! Every `dinoreg` command that takes a model, run with a DINOv3 ViT (`tests/fixtures/dinov3_dense`:
//! patch 16, 4 registers, `DINOv3ViTImageProcessor`), the way tests/cli.rs runs them with DINOv2:
//! features and depth against HF / the Python reference through the files the commands write, embed
//! then search with every descriptor, pca, attention, discover (LOST, TokenCut), corloc, train-seg
//! then segment, and classify's one-line refusal.

mod common;

use common::cli::{dinoreg, example_image, ok, s};
use common::scenes::{square_dataset, square_scene, voc_folder};
use common::{assert_close, fixture, load_expected, TOL};

fn model() -> String {
    fixture("dinov3_dense").display().to_string()
}

fn photo(name: &str) -> String {
    example_image(name).display().to_string()
}

#[test]
fn features_from_pixels_match_hf() {
    let exp = load_expected("dinov3_dense/expected.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let px = dir.path().join("px.npy");
    dinoreg::io::npy::write_tensor(&px, &exp["wide.pixel_values"]).unwrap();
    let out = dir.path().join("f.safetensors");
    ok(&dinoreg(&[
        "features",
        "--model",
        &model(),
        "--pixels",
        s(&px),
        "--out-indices",
        "1,-1",
        "--output",
        s(&out),
    ]));
    let got = candle::safetensors::load(&out, &candle::Device::Cpu).unwrap();
    assert_close("stage1", &got["stage1"], &exp["wide.stage1"], TOL);
    assert_close("stage4", &got["stage4"], &exp["wide.stage4"], TOL);
    assert_close(
        "last_hidden_state",
        &got["last_hidden_state"],
        &exp["wide.last_hidden_state"],
        TOL,
    );
    // An image goes through DINOv3ViTImageProcessor (64x64 here): a 4x4 grid.
    ok(&dinoreg(&[
        "features",
        "--model",
        &model(),
        "--image",
        &photo("chelsea.png"),
        "--output",
        s(&out),
    ]));
    let got = candle::safetensors::load(&out, &candle::Device::Cpu).unwrap();
    assert_close(
        "last_hidden_state",
        &got["last_hidden_state"],
        &exp["chelsea.last_hidden_state"],
        TOL,
    );
}

#[test]
fn classify_refuses_dinov3_in_one_line() {
    let out = dinoreg(&[
        "classify",
        "--model",
        &model(),
        "--image",
        &photo("chelsea.png"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("DINOv3"),
        "{err}"
    );
}

#[test]
fn embed_then_search_with_every_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let photos: Vec<String> = ["chelsea.png", "coffee.png", "astronaut.png"]
        .iter()
        .map(|p| photo(p))
        .collect();
    for descriptor in ["cls", "mean", "cls+mean", "gem", "gem:4"] {
        let index = dir.path().join(descriptor.replace([':', '+'], "_"));
        let model = model();
        let mut args = vec![
            "embed",
            "--model",
            &model,
            "--descriptor",
            descriptor,
            "--output",
        ];
        args.push(s(&index));
        args.push("--images");
        args.extend(photos.iter().map(String::as_str));
        ok(&dinoreg(&args));
        let rows =
            dinoreg::io::npy::read_tensor(index.join("embeddings.npy"), &candle::Device::Cpu)
                .unwrap();
        let width = if descriptor == "cls+mean" { 64 } else { 32 };
        assert_eq!(rows.dims(), &[3, width], "{descriptor}");
        let stdout = ok(&dinoreg(&[
            "search",
            "--index",
            s(&index),
            "--image",
            &photos[1],
            "--top",
            "1",
            "--json",
        ]));
        let hits: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let best = &hits["results"][0];
        assert_eq!(best["row"], 1, "{descriptor}: {stdout}");
        assert!(
            best["score"].as_f64().unwrap() > 0.9999,
            "{descriptor}: {stdout}"
        );
    }
}

#[test]
fn pca_and_attention_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let pca = dir.path().join("pca.png");
    ok(&dinoreg(&[
        "pca",
        "--model",
        &model(),
        "--image",
        &photo("chelsea.png"),
        "--short-side",
        "64",
        "--output",
        s(&pca),
    ]));
    let picture = image::open(&pca).unwrap();
    assert_eq!((picture.width(), picture.height()), (451, 300));
    let out = dir.path().join("attention");
    ok(&dinoreg(&[
        "attention",
        "--model",
        &model(),
        "--image",
        &photo("chelsea.png"),
        "--short-side",
        "64",
        "--registers",
        "--output",
        s(&out),
    ]));
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // One picture per register (4), the mean, the norms, and the summary.
    assert_eq!(
        files.iter().filter(|f| f.contains("_reg")).count(),
        4,
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.ends_with("_attn_mean.png")),
        "{files:?}"
    );
}

#[test]
fn discover_with_lost_and_tokencut() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("object.png");
    square_scene(72, 104).0.save(&image).unwrap();
    for method in ["lost", "tokencut"] {
        let out = dir.path().join(format!("{method}.json"));
        let drawn = dir.path().join(format!("{method}.png"));
        ok(&dinoreg(&[
            "discover",
            "--model",
            &model(),
            "--method",
            method,
            "--image",
            s(&image),
            "--output",
            s(&out),
            "--draw",
            s(&drawn),
        ]));
        let text = std::fs::read_to_string(&out).unwrap();
        let all: serde_json::Value = serde_json::from_str(&text).unwrap();
        let found = &all[0];
        // 72x104 padded to 80x112: a 5x7 grid of 16-pixel patches.
        assert_eq!(found["grid"], serde_json::json!([5, 7]), "{method}: {text}");
        let b: Vec<u64> = found["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            b[0].is_multiple_of(16) && b[1].is_multiple_of(16) && b[2] <= 104 && b[3] <= 72,
            "{method}: {b:?}"
        );
        assert_eq!(image::open(&drawn).unwrap().width(), 104);
    }
}

#[test]
fn corloc_on_a_voc_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("voc");
    voc_folder(&root);
    let results = dir.path().join("corloc.json");
    ok(&dinoreg(&[
        "corloc",
        "--model",
        &model(),
        "--voc",
        s(&root),
        "--results",
        s(&results),
    ]));
    let text = std::fs::read_to_string(&results).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["total"], 2, "{text}");
    assert_eq!(report["images"].as_array().map(Vec::len), Some(2), "{text}");
}

#[test]
fn train_seg_then_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = square_dataset(dir.path());
    let head = dir.path().join("head.safetensors");
    let out = dinoreg(&[
        "train-seg",
        "--model",
        &model(),
        "--images",
        s(&images),
        "--labels",
        s(&labels),
        "--num-classes",
        "2",
        "--size",
        "48",
        "--epochs",
        "2",
        "--seed",
        "1",
        "--output",
        s(&head),
    ]);
    ok(&out);
    // The per-epoch lines are status: they go to stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.to_lowercase().contains("miou"), "{stderr}");
    let logits = dir.path().join("logits.npy");
    let one = images.join("s1.png");
    ok(&dinoreg(&[
        "segment",
        "--model",
        &model(),
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
    // 48x56: centre-padded to 48x64 for the backbone, logits at the image's size.
    assert_eq!(got.dims(), &[1, 2, 48, 56]);
}

#[test]
fn depth_with_dinov2_heads_on_dinov3() {
    let exp = load_expected("dinov3_dense/expected.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let px = dir.path().join("px.npy");
    dinoreg::io::npy::write_tensor(&px, &exp["depth.pixel_values"]).unwrap();
    for (name, layers) in [("depth_linear", None), ("depth_dpt", Some("0,1,2,3"))] {
        let head = fixture(&format!("dinov3_dense/{name}.pth"));
        let out = dir.path().join(format!("{name}.npy"));
        let model = model();
        let mut args = vec![
            "depth",
            "--model",
            &model,
            "--head",
            s(&head),
            "--pixels",
            s(&px),
            "--output",
            s(&out),
        ];
        if let Some(l) = layers {
            args.extend(["--layers", l]);
        }
        ok(&dinoreg(&args));
        let got = dinoreg::io::npy::read_tensor(&out, &candle::Device::Cpu).unwrap();
        assert_close(name, &got, &exp[&format!("{name}.depth")], TOL);
    }
}
