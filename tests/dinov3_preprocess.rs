//! `DINOv3ViTImageProcessor` (transformers' torchvision backend) against its fixtures
//! (`tests/fixtures/dinov3/preprocess`, see the README there): rescale first, antialiased bilinear
//! resize on the floats (down and up, square and not), the optional center crop, normalisation,
//! the v4-style file, and the dense mode. Pixels within 2e-3 absolute.

mod common;

use std::path::{Path, PathBuf};

use candle::Tensor;
use common::{load_expected, max_diff};
use dinoreg::preprocess::{
    DenseOptions, ImageProcessor, Multiple, ProcessorConfig, ProcessorKind, Size,
};
use ndarray::{s, Array3};

/// The pixel tolerance.
const PIXELS: f32 = 2e-3;

fn processor(name: &str) -> ImageProcessor {
    ImageProcessor::from_file(common::fixture(&format!(
        "dinov3/preprocess/{name}/preprocessor_config.json"
    )))
    .unwrap()
}

fn image(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match name {
        "rocket" => root.join("tests/fixtures/preprocess/rocket_decoded.png"),
        "tiny" => root.join("tests/fixtures/preprocess/tiny.png"),
        other => root.join(format!("examples/images/{other}.png")),
    }
}

fn tensor(a: &Array3<f32>) -> Tensor {
    let (c, h, w) = a.dim();
    Tensor::from_vec(a.iter().copied().collect(), (c, h, w), &candle::Device::Cpu).unwrap()
}

#[track_caller]
fn assert_pixels(what: &str, actual: &Array3<f32>, expected: &Tensor) {
    let (diff, _) = max_diff(&tensor(actual), expected);
    assert!(diff <= PIXELS, "{what}: max abs diff {diff:e} > {PIXELS:e}");
}

#[test]
fn every_fixture_processor() {
    let exp = load_expected("dinov3/preprocess/expected.safetensors");
    for (proc, img) in [
        ("s64", "chelsea"),
        ("s64", "rocket"),
        ("s48x80", "coffee"),
        ("up", "tiny"),
        ("crop", "astronaut"),
    ] {
        let p = processor(proc);
        assert_eq!(p.config.kind, ProcessorKind::Dinov3Vit);
        let px = p.load(image(img)).unwrap();
        assert_pixels(
            &format!("{proc} {img}"),
            &px,
            &exp[&format!("{proc}.{img}.pixel_values")],
        );
    }
    // The class defaults: 224x224, checked on a band of rows and of columns.
    let px = processor("default").load(image("chelsea")).unwrap();
    assert_eq!(px.dim(), (3, 224, 224));
    let rows = px.slice(s![.., 100..108, ..]).to_owned();
    let cols = px.slice(s![.., .., 100..108]).to_owned();
    assert_pixels("default rows", &rows, &exp["default.chelsea.rows_100_108"]);
    assert_pixels("default cols", &cols, &exp["default.chelsea.cols_100_108"]);
    // And they are what a DINOv3 model without a preprocessor_config.json uses.
    assert_eq!(processor("default").config, ProcessorConfig::dinov3());
}

#[test]
fn rescale_comes_before_the_float_resize() {
    let exp = load_expected("dinov3/preprocess/expected.safetensors");
    let p = processor("s64");
    let raw = ImageProcessor::new(p.config.clone().with_normalize(false));
    let px = raw.load(image("chelsea")).unwrap();
    assert_pixels(
        "s64 rescaled_resized",
        &px,
        &exp["s64.chelsea.rescaled_resized"],
    );
    // The Pillow path (resize the 8-bit image first) is measurably different.
    let bit = ImageProcessor::new(
        ProcessorConfig::default()
            .with_size(Size::Exact {
                height: 64,
                width: 64,
            })
            .with_resample(dinoreg::preprocess::Resample::Bilinear)
            .with_center_crop(false)
            .with_normalize(false),
    );
    let (diff, _) = max_diff(
        &tensor(&bit.load(image("chelsea")).unwrap()),
        &exp["s64.chelsea.rescaled_resized"],
    );
    assert!(diff > PIXELS / 4.0, "8-bit resize differs by only {diff}");
}

#[test]
fn v4_style_file() {
    let exp = load_expected("dinov3/preprocess/expected.safetensors");
    let p = processor("v4_style");
    assert_eq!(p.config.kind, ProcessorKind::Dinov3Vit);
    assert!(!p.config.do_center_crop);
    let px = p.load(image("chelsea")).unwrap();
    assert_pixels("v4_style", &px, &exp["s64.chelsea.pixel_values"]);
}

#[test]
fn dense_mode_keeps_the_aspect_at_multiples_of_16() {
    let p = ImageProcessor::new(ProcessorConfig::dinov3());
    let rgb = p.read(image("coffee")).unwrap();
    let opts = DenseOptions::default()
        .with_patch_size(16)
        .with_short_side(Some(96))
        .with_multiple(Multiple::Resize);
    let (px, meta) = p.dense(&rgb, &opts).unwrap();
    let (h, w) = meta.input;
    assert_eq!((h % 16, w % 16), (0, 0));
    assert_eq!(h.min(w), 96);
    assert_eq!(px.dim(), (3, h as usize, w as usize));
    // The same pixels as the processor resizing to that exact size.
    let exact = ImageProcessor::new(ProcessorConfig::dinov3().with_size(Size::Exact {
        height: h,
        width: w,
    }));
    let (diff, _) = max_diff(&tensor(&px), &tensor(&exact.preprocess(&rgb).unwrap()));
    assert_eq!(diff, 0.0);
    // Padding instead: the image keeps its size and the padding is the mean colour (0).
    let (padded, meta) = p
        .dense(&rgb, &DenseOptions::default().with_patch_size(16))
        .unwrap();
    assert_eq!(meta.resized, (rgb.height(), rgb.width()));
    assert_eq!((meta.input.0 % 16, meta.input.1 % 16), (0, 0));
    if meta.padding.bottom > 0 {
        let last = padded.dim().1 - 1;
        assert!(padded.slice(s![.., last, ..]).iter().all(|v| *v == 0.0));
    }
}

#[test]
fn a_dinov3_folder_without_a_processor_file_gets_dinov3s_defaults() {
    let dir = common::fixture("dinov3/reg4");
    assert!(!dir.join("preprocessor_config.json").exists());
    let p = ImageProcessor::from_model_dir(&dir).unwrap();
    assert_eq!(p.config, ProcessorConfig::dinov3());
    let v2 = ImageProcessor::from_model_dir(common::fixture("model/reg4")).unwrap();
    assert_eq!(v2.config.kind, ProcessorKind::Bit);
}
