//! `dinoreg discover` and `dinoreg corloc` end to end on the tiny 4-register model of
//! tests/fixtures/discovery: through the backbone's attention keys, LOST and TokenCut give the boxes,
//! seeds and masks of the numpy / scipy reference (tests/fixtures/gen_discovery.py); `--draw` writes
//! pictures; CorLoc runs past bad annotations; bad arguments fail with one line.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::cli::{dinoreg, fails_with, ok};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/discovery")
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("no output")).expect("bad JSON")
}

/// Runs `discover` on the fixture pixels with `extra` options; the one result object.
fn discover_pixels(dir: &Path, extra: &[&str]) -> Value {
    let out = dir.join("found.json");
    let model = path(&fixtures().join("tiny_reg4"));
    let pixels = path(&fixtures().join("pixels_reg4.npy"));
    let mut args = vec!["discover", "--model", &model, "--pixels", &pixels];
    args.extend_from_slice(extra);
    let output = path(&out);
    args.extend_from_slice(&["--output", &output]);
    ok(&dinoreg(&args));
    let found = read_json(&out);
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    found[0].clone()
}

fn same_object(found: &Value, case: &Value, what: &str) {
    assert_eq!(found["box"], case["box"], "{what}: box");
    assert_eq!(found["seed"], case["seed"], "{what}: seed");
    let mask: Vec<bool> = case["mask"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m == 1)
        .collect();
    assert_eq!(found["mask"], serde_json::json!(mask), "{what}: mask");
}

#[test]
fn discover_through_the_backbone_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let exp = read_json(&fixtures().join("expected.json"));
    let cases = exp["lost"].as_array().unwrap();
    for case in cases.iter().filter(|c| c["features"] == "keys_reg4") {
        let k = case["k_patches"].to_string();
        let bias = case["gram_bias"].as_f64().unwrap().to_string();
        let mut extra = vec!["--k-patches", &k, "--gram-bias", &bias];
        if case["expansion"] == false {
            extra.push("--no-seed-expansion");
        }
        let found = discover_pixels(dir.path(), &extra);
        same_object(&found, case, &format!("LOST {extra:?}"));
        assert_eq!(found["image_size"], serde_json::json!([38, 54]));
    }
    let case = &exp["tokencut"][1];
    assert_eq!(case["features"], "keys_reg4");
    let found = discover_pixels(dir.path(), &["--method", "tokencut"]);
    same_object(&found, case, "TokenCut");
    assert_eq!(found["eigenvector"].as_array().map(Vec::len), Some(140));
}

#[test]
fn discover_images_and_draw_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("found.json");
    let draw = dir.path().join("found.png");
    let images = fixtures().join("voc/JPEGImages");
    let a = path(&images.join("000001.jpg"));
    let b = path(&images.join("000002.jpg"));
    let model = path(&fixtures().join("tiny_reg4"));
    ok(&dinoreg(&[
        "discover",
        "--model",
        &model,
        "--image",
        &a,
        &b,
        "--method",
        "tokencut",
        "--output",
        &path(&out),
        "--draw",
        &path(&draw),
    ]));
    let found = read_json(&out);
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 2);
    for f in found {
        assert_eq!(f["image_size"], serde_json::json!([20, 24]));
        assert_eq!(f["grid"], serde_json::json!([5, 6]));
        let b: Vec<u64> = f["box"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert!(
            b[0] < b[2] && b[2] <= 24 && b[1] < b[3] && b[3] <= 20,
            "{b:?}"
        );
    }
    for name in ["found_000001.png", "found_000002.png"] {
        let picture = image::open(dir.path().join(name)).unwrap();
        assert_eq!((picture.width(), picture.height()), (24, 20));
    }
}

#[test]
fn corloc_runs_past_bad_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("corloc.json");
    let model = path(&fixtures().join("tiny_reg4"));
    let voc = path(&fixtures().join("voc"));
    let out = dinoreg(&[
        "corloc",
        "--model",
        &model,
        "--voc",
        &voc,
        "--results",
        &path(&results),
    ]);
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("/5), 3 errors"), "{stdout}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .matches("warning:")
            .count(),
        3
    );
    let report = read_json(&results);
    assert_eq!(report["total"], 5);
    assert_eq!(report["errors"].as_array().map(Vec::len), Some(3));
    let images = report["images"].as_array().unwrap();
    let found = images.iter().filter(|r| r["found"] == true).count();
    assert_eq!(report["found"], found);
    for r in images {
        let iou = r["best_iou"].as_f64().unwrap();
        assert_eq!(r["found"] == true, iou >= 0.5, "{r}");
    }

    let out = dinoreg(&[
        "corloc",
        "--model",
        &model,
        "--voc",
        &voc,
        "--no-hard",
        "--limit",
        "2",
    ]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("/2), 3 errors, 1 skipped"));
}

#[test]
fn bad_arguments_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = path(&fixtures().join("tiny_reg4"));
    let pixels = path(&fixtures().join("pixels_reg4.npy"));
    let txt = path(&dir.path().join("found.txt"));
    fails_with(
        &dinoreg(&[
            "discover", "--model", &model, "--pixels", &pixels, "--output", &txt,
        ]),
        "ending with .json",
    );
    let json = path(&dir.path().join("found.json"));
    fails_with(
        &dinoreg(&[
            "discover",
            "--model",
            &model,
            "--pixels",
            &pixels,
            "--output",
            &json,
            "--k-patches",
            "0",
        ]),
        "k_patches",
    );
    let big = path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/images/chelsea.png"));
    fails_with(
        &dinoreg(&[
            "discover", "--model", &model, "--image", &big, "--method", "tokencut", "--output",
            &json,
        ]),
        "--short-side",
    );
    let missing = path(&dir.path().join("nowhere"));
    fails_with(
        &dinoreg(&["corloc", "--model", &model, "--voc", &missing]),
        "nowhere",
    );
}
