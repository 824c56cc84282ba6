//! Feature pictures: PCA (shape, determinism, joint fit, foreground), the norm map's high-norm flags,
//! the attention maps' shapes, and the patch-to-image mapping.

use std::path::Path;

use dinoreg::preprocess::{DenseOptions, ImageProcessor};
use dinoreg::viz::heatmap::to_image;
use dinoreg::viz::{
    attention_maps, attention_pictures, pca_pictures, pca_rgb, picture_options, AttentionOptions,
    DenseImage, Foreground, Interpolation, NormMap, NormSource, PcaOptions,
};
use dinoreg::{Dinov2Model, LoadOptions};
use ndarray::{Array2, Array3};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/retrieval/model"
);
const IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/images");

fn model() -> Dinov2Model {
    let dir = Path::new(MODEL);
    Dinov2Model::load(
        dir.join("config.json"),
        &[dir.join("model.safetensors")],
        &LoadOptions::default(),
    )
    .expect("fixture model")
}

fn load(name: &str, short_side: u32) -> DenseImage {
    DenseImage::load(
        &ImageProcessor::default(),
        Path::new(IMAGES).join(name),
        &picture_options(14, Some(short_side)),
        &candle::Device::Cpu,
    )
    .expect("image")
}

/// A tiny deterministic pseudo-random number in [-1, 1).
fn noise(i: usize) -> f32 {
    let x = (i as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((x >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
}

#[test]
fn pca_pictures_are_deterministic_at_the_image_size() {
    let model = model();
    let images = [load("chelsea.png", 112), load("coffee.png", 98)];
    let opts = PcaOptions::default();
    let once = pca_pictures(&model, &images, &opts, Interpolation::Nearest).expect("pca");
    let again = pca_pictures(&model, &images, &opts, Interpolation::Nearest).expect("pca");
    assert_eq!(once.len(), 2);
    assert_eq!(once[0].dimensions(), (451, 300));
    assert_eq!(once[1].dimensions(), (600, 400));
    assert!(once == again, "the same input gives the same picture");
    let colours: std::collections::HashSet<_> = once[0].pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 20,
        "a picture, not a flat colour: {} colours",
        colours.len()
    );

    let single = pca_pictures(&model, &images[..1], &opts, Interpolation::Bilinear).expect("pca");
    assert_eq!(single[0].dimensions(), (451, 300));
    let fg = PcaOptions::default().with_foreground(Some(Foreground::above(0.5)));
    let masked = pca_pictures(&model, &images[..1], &fg, Interpolation::Nearest).expect("pca");
    assert!(
        masked[0].pixels().any(|p| p.0 == [0, 0, 0]),
        "background is black"
    );
}

#[test]
fn pca_separates_planted_foreground() {
    // 6x8 grid, 16-dim features; the left half is offset along a few channels.
    let (h, w, d) = (6, 8, 16);
    let features = Array2::from_shape_fn((h * w, d), |(i, c)| {
        let left = (i % w) < w / 2;
        noise(i * d + c) * 0.1 + if left && c < 3 { 4.0 } else { 0.0 }
    });
    let maps = pca_rgb(&[features.view()], &[(h, w)], &PcaOptions::default()).expect("pca");
    assert_eq!(maps[0].rgb.dim(), (3, h, w));
    assert!(maps[0].rgb.iter().all(|v| (0.0..=1.0).contains(v)));
    let first = maps[0].rgb.index_axis(ndarray::Axis(0), 0).to_owned();
    let left_high = first[[0, 0]] > 0.5;
    for i in 0..h {
        for j in 0..w {
            assert_eq!(
                first[[i, j]] > 0.5,
                (j < w / 2) == left_high,
                "patch {i},{j}"
            );
        }
    }
    let fg = Foreground::above(0.5);
    let maps = pca_rgb(
        &[features.view()],
        &[(h, w)],
        &PcaOptions::default().with_foreground(Some(fg)),
    )
    .expect("pca");
    for i in 0..h {
        for j in 0..w {
            let kept = maps[0].foreground[[i, j]];
            assert_eq!(kept, (j < w / 2) == left_high);
            if !kept {
                assert!((0..3).all(|c| maps[0].rgb[[c, i, j]] == 0.0));
            }
        }
    }
    // Joint PCA over two images: one fit, split back per image.
    let other = features.mapv(|v| -v);
    let joint = pca_rgb(
        &[features.view(), other.view()],
        &[(h, w), (h, w)],
        &PcaOptions::default(),
    )
    .expect("joint");
    assert_eq!(joint.len(), 2);
    assert!(pca_rgb(&[features.view()], &[(h, w + 1)], &PcaOptions::default()).is_err());
    let bad = PcaOptions::default().with_foreground(Some(Foreground::above(1.5)));
    assert!(pca_rgb(&[features.view()], &[(h, w)], &bad).is_err());
}

#[test]
fn the_norm_map_flags_planted_high_norm_tokens() {
    let (h, w, d) = (5, 7, 24);
    let planted = [3usize, 17, 34];
    let tokens = Array2::from_shape_fn((h * w, d), |(i, c)| {
        let scale = if planted.contains(&i) { 120.0 } else { 8.0 };
        scale * (0.5 + 0.5 * noise(i * d + c).abs())
    });
    let map = NormMap::new(tokens.view(), (h, w), 150.0).expect("norm map");
    for i in 0..h * w {
        assert_eq!(
            map.high[[i / w, i % w]],
            planted.contains(&i),
            "token {i}: {}",
            map.norms[[i / w, i % w]]
        );
    }
    assert_eq!(map.high_count(), 3);
    assert!((map.high_share() - 3.0 / 35.0).abs() < 1e-6);
    assert!(map.max() > 150.0 && map.median() < 150.0);
    assert!(NormMap::new(tokens.view(), (h, w + 1), 150.0).is_err());
}

#[test]
fn attention_maps_have_one_map_per_head_and_register() {
    let model = model();
    let image = load("chelsea.png", 56);
    let maps = attention_maps(&model, &image.pixels, &AttentionOptions::default()).expect("maps");
    let m = &maps[0];
    let (h, w) = m.grid;
    assert_eq!((h, w), (4, 6));
    assert_eq!(m.cls.dim(), (4, h, w));
    assert_eq!(m.registers.dim(), (4, h, w));
    for head in m.cls.outer_iter() {
        let total: f32 = head.sum();
        assert!(
            total > 0.0 && total <= 1.0 + 1e-5,
            "CLS attention over patches sums to {total}"
        );
    }
    // A threshold at the median norm flags about half the tokens.
    let median = m.norms.median();
    let opts = AttentionOptions::default()
        .with_threshold(median)
        .with_norm_source(NormSource::PreNorm);
    let pre = attention_maps(&model, &image.pixels, &opts).expect("maps");
    assert!(
        pre[0].norms.median() != median,
        "pre-norm tokens differ from the output"
    );
    let at_median = attention_maps(
        &model,
        &image.pixels,
        &AttentionOptions::default().with_threshold(median),
    )
    .expect("maps");
    assert_eq!(at_median[0].norms.high_count(), (h * w - 1) / 2);

    let pictures = attention_pictures(
        &model,
        &image,
        &AttentionOptions::default().with_threshold(0.0),
        Interpolation::Bilinear,
    )
    .expect("pictures");
    assert_eq!(pictures.heads.len(), 4);
    assert_eq!(pictures.registers.len(), 4);
    for p in pictures
        .heads
        .iter()
        .chain(&pictures.registers)
        .chain([&pictures.mean])
    {
        assert_eq!(p.dimensions(), (451, 300));
    }
    // The norm map carries a colour bar of its values on the right, at the image's height.
    let (nw, nh) = pictures.norms.dimensions();
    assert_eq!(nh, 300);
    assert!(nw > 451 && nw < 451 + 100, "{nw}");
}

#[test]
fn patch_maps_land_on_their_image_pixels() {
    // A 10x7 image, patch 4, padded to 12x8 (center: 1 row on top, 1 below; 0 left, 1 right): 3x2 grid.
    let meta = DenseOptions::default()
        .with_patch_size(4)
        .plan((10, 7))
        .expect("plan");
    assert_eq!(meta.grid(), (3, 2));
    let map = Array3::from_shape_fn((1, 3, 2), |(_, i, j)| (i * 2 + j) as f32);
    let full = to_image(map.view(), &meta, Interpolation::Nearest).expect("to image");
    assert_eq!(full.dim(), (1, 10, 7));
    // Image row y sits at input row y + 1: rows 0..=2 are in patch row 0, 3..=6 in 1, 7..=9 in 2.
    assert_eq!(full[[0, 0, 0]], 0.0);
    assert_eq!(full[[0, 2, 3]], 0.0);
    assert_eq!(full[[0, 3, 4]], 3.0);
    assert_eq!(full[[0, 9, 6]], 5.0);
    let smooth = to_image(map.view(), &meta, Interpolation::Bilinear).expect("to image");
    assert!(smooth.iter().all(|v| (0.0..=5.0).contains(v)));
    assert!(to_image(
        Array3::zeros((1, 2, 2)).view(),
        &meta,
        Interpolation::Nearest
    )
    .is_err());
}

#[test]
fn pca_and_attention_commands_write_pictures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dinoreg"))
            .args(args)
            .output()
            .expect("run dinoreg");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let chelsea = format!("{IMAGES}/chelsea.png");
    let out = tmp.path().to_str().expect("utf-8");
    let pca = format!("{out}/pca.png");
    run(&[
        "pca",
        "--model",
        MODEL,
        "--image",
        &chelsea,
        "--short-side",
        "56",
        "--output",
        &pca,
    ]);
    let picture = image::open(&pca).expect("png");
    assert_eq!((picture.width(), picture.height()), (451, 300));

    let text = run(&[
        "attention",
        "--model",
        MODEL,
        "--image",
        &chelsea,
        "--short-side",
        "56",
        "--registers",
        "--threshold",
        "6",
        "--output",
        out,
    ]);
    assert!(text.contains("patch tokens"), "{text}");
    for name in ["attn_head3", "attn_mean", "norms", "reg3"] {
        assert!(
            tmp.path().join(format!("chelsea_{name}.png")).is_file(),
            "{name}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("chelsea_attention.json")).expect("json"),
    )
    .expect("json");
    assert_eq!(summary["patch_tokens"], 24);
    assert!(summary["high_norm_share"].as_f64().expect("share") > 0.0);
}
