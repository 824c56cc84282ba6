//! Image preprocessing against HF `BitImageProcessorPil` (transformers 5) and Pillow; decoding, dense mode,
//! `preprocessor_config.json` and `.npy` I/O. Fixtures: tests/fixtures/gen_preprocess.py.

use std::path::{Path, PathBuf};

use dinoreg::io::image::{
    decode_image, decode_image_noted, is_gray16_png, read_rgb, AlphaMode, DecodeLimits, DecodeNote,
};
use dinoreg::io::npy::{read_array, read_pixels, write_array};
use dinoreg::preprocess::{
    resize_rgb8, DenseOptions, ImageProcessor, Multiple, PadAnchor, ProcessorConfig, Resample, Size,
};
use dinoreg::Error;
use image::RgbImage;
use ndarray::{s, Array3, ArrayD, Ix3};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/preprocess")
        .join(name)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/images")
        .join(name)
}

fn png(path: &Path) -> RgbImage {
    image::open(path).expect("fixture PNG").to_rgb8()
}

/// (max |a - b| over the 8-bit values, number of values that differ).
fn u8_diff(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut max = 0;
    let mut count = 0;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        count += usize::from(d > 0);
    }
    (max, count)
}

fn max_abs(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// One 8-bit level after normalisation (the smallest std) plus float16 storage error.
const LEVEL_F16: f32 = 1.0 / 255.0 / 0.224 + 2e-3;

/// The central 64x64 window of a (3, H, W) array, as stored by the generator.
fn window(x: &Array3<f32>) -> ArrayD<f32> {
    let (_, h, w) = x.dim();
    let (top, left) = ((h - 64) / 2, (w - 64) / 2);
    x.slice(s![.., top..top + 64, left..left + 64])
        .to_owned()
        .into_dyn()
}

#[test]
fn photos_match_pil_resize_and_hf_pixels() {
    let processor = ImageProcessor::default();
    for name in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"] {
        let stem = name.split('.').next().unwrap();
        let rgb = processor.read(example(name)).unwrap();
        // The resize alone, from the pixels PIL decodes (JPEG decoders differ, measured below).
        let decoded = if name.ends_with(".jpg") {
            png(&fixture(&format!("{stem}_decoded.png")))
        } else {
            rgb.clone()
        };
        let resized = processor.resize(&decoded).unwrap();
        let (max, off) = u8_diff(&resized, &png(&fixture(&format!("{stem}_resized.png"))));
        println!(
            "{name}: resize vs PIL: {off} values off (max {max}) of {}",
            resized.len()
        );
        assert_eq!((max, off), (0, 0), "{name}: resize differs from PIL");
        let pixels = processor.preprocess(&rgb).unwrap();
        assert_eq!(pixels.dim(), (3, 224, 224));
        let (got, expected) = if stem == "chelsea" {
            (
                pixels.into_dyn(),
                read_array(fixture("chelsea_pixels.npy")).unwrap(),
            )
        } else {
            (
                window(&pixels),
                read_array(fixture(&format!("{stem}_window.npy"))).unwrap(),
            )
        };
        let err = max_abs(&got, &expected);
        println!("{name}: pixels vs HF: max {err:.5}");
        // zune-jpeg's IDCT/upsampling differ from libjpeg-turbo by a few levels (see below).
        let levels = if name.ends_with(".jpg") {
            JPEG_LEVELS
        } else {
            1.0
        };
        assert!(
            err <= levels * LEVEL_F16,
            "{name}: pixels differ from HF by {err}"
        );
    }
    // The JPEG decoder (zune-jpeg, via `image`) against PIL's libjpeg-turbo.
    let ours = processor.read(example("rocket.jpg")).unwrap();
    let theirs = png(&fixture("rocket_decoded.png"));
    let (max, off) = u8_diff(&ours, &theirs);
    let mean = ours
        .as_raw()
        .iter()
        .zip(theirs.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / ours.len() as f64;
    println!(
        "rocket.jpg: decode vs PIL: {off} of {} values differ, max {max}, mean {mean:.4}",
        ours.len()
    );
    assert!(
        f32::from(max) <= JPEG_LEVELS && mean < 0.05,
        "JPEG decoding too far from PIL"
    );
}

/// Largest JPEG decoding difference to PIL (libjpeg-turbo) accepted, in 8-bit levels.
const JPEG_LEVELS: f32 = 2.0;

#[test]
fn variants_convert_to_rgb_like_pil() {
    let variants = [
        "gray",
        "gray_alpha",
        "rgba",
        "palette",
        "palette_trns",
        "gray16",
        "rgb16",
    ];
    for name in variants {
        let path = fixture(&format!("{name}.png"));
        let rgb = read_rgb(&path, &DecodeLimits::default(), AlphaMode::Drop).unwrap();
        let (max, off) = u8_diff(&rgb, &png(&fixture(&format!("{name}_rgb.png"))));
        assert_eq!((max, off), (0, 0), "{name}: convert(\"RGB\") differs");
        // The default is transformers v5's: transparency composited on white.
        let processors = [
            (ImageProcessor::default(), "white"),
            (
                ImageProcessor::default().with_alpha(AlphaMode::Drop),
                "drop",
            ),
            (
                ImageProcessor::default().with_alpha(AlphaMode::White),
                "white",
            ),
        ];
        for (processor, suffix) in processors {
            let pixels = processor.load(&path).unwrap();
            let expected = read_array(fixture(&format!("{name}_{suffix}.npy"))).unwrap();
            let err = max_abs(&window(&pixels), &expected);
            assert!(
                err <= LEVEL_F16,
                "{name} ({suffix}): differs from HF by {err}"
            );
        }
    }
}

#[test]
fn only_sixteen_bit_gray_pngs_are_noted_when_decoded() {
    let files = [
        "gray.png",
        "gray_alpha.png",
        "rgba.png",
        "palette.png",
        "palette_trns.png",
        "gray16.png",
        "rgb16.png",
        "formats.tiff",
        "formats.webp",
    ];
    for name in files {
        let path = fixture(name);
        let notes = decode_image_noted(&path, &DecodeLimits::default())
            .unwrap()
            .notes;
        let gray16 = name == "gray16.png";
        assert_eq!(
            notes == [DecodeNote::Gray16Png],
            gray16,
            "{name}: {notes:?}"
        );
        assert!(gray16 || notes.is_empty(), "{name}: {notes:?}");
        // The header check agrees (for these files, none of them a 16-bit gray PNG with tRNS).
        assert_eq!(is_gray16_png(&path), gray16, "{name}");
    }
    let message = DecodeNote::Gray16Png.message(Path::new("a/b.png"));
    assert_eq!(
        message,
        "warning: a/b.png is a 16-bit grayscale PNG: read as PIL and HF read it, values clipped to 255 (often all white); convert it to 8 bits to see its content"
    );
}

#[test]
fn resample_filters_match_pil() {
    let src = png(&fixture("resample_src.png"));
    let filters = [
        ("nearest", Resample::Nearest),
        ("lanczos", Resample::Lanczos),
        ("bilinear", Resample::Bilinear),
        ("bicubic", Resample::Bicubic),
        ("box", Resample::Box),
        ("hamming", Resample::Hamming),
    ];
    for (name, filter) in filters {
        for (suffix, (w, h)) in [("", (37, 50)), ("_vertical", (48, 45))] {
            let ours = resize_rgb8(&src, w, h, filter).unwrap();
            let pil = png(&fixture(&format!("resample_{name}{suffix}.png")));
            let (max, off) = u8_diff(&ours, &pil);
            assert_eq!(
                (max, off),
                (0, 0),
                "{name}{suffix}: {off} values off (max {max})"
            );
        }
    }
    assert!(resize_rgb8(&src, 0, 5, Resample::Bicubic).is_err());
    assert_eq!(Resample::from_pil(3).unwrap(), Resample::Bicubic);
    assert!(matches!(
        Resample::from_pil(9),
        Err(Error::InvalidOption { .. })
    ));
}

#[test]
fn custom_preprocessor_config_matches_hf() {
    let processor = ImageProcessor::from_file(fixture("custom_config.json")).unwrap();
    let c = &processor.config;
    assert_eq!(
        c.size,
        Size::Exact {
            height: 96,
            width: 80
        }
    );
    assert_eq!(c.resample, Resample::Bilinear);
    assert_eq!(c.crop_size, (64, 48));
    assert_eq!(c.rescale_factor, 0.0078125);
    assert_eq!(c.image_mean, [0.5, 0.4, 0.3]);
    assert_eq!(c.image_std, [0.2, 0.3, 0.4]);
    let pixels = processor.load(fixture("resample_src.png")).unwrap();
    let expected = read_array(fixture("custom_pixels.npy")).unwrap();
    assert_eq!(max_abs(&pixels.into_dyn(), &expected), 0.0);
}

#[test]
fn image_smaller_than_the_crop_is_zero_padded_like_hf() {
    let config = ProcessorConfig::default()
        .with_resize(false)
        .with_crop_size(64, 48);
    let processor = ImageProcessor::new(config);
    let pixels = processor.load(fixture("tiny.png")).unwrap();
    let expected = read_array(fixture("tiny_pad_pixels.npy")).unwrap();
    assert_eq!(max_abs(&pixels.into_dyn(), &expected), 0.0);
}

#[test]
fn processor_config_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        ImageProcessor::from_model_dir(dir.path()).unwrap(),
        ImageProcessor::default()
    );
    let file = dir.path().join("preprocessor_config.json");
    std::fs::copy(fixture("custom_config.json"), &file).unwrap();
    let processor = ImageProcessor::from_model_dir(dir.path()).unwrap();
    assert_eq!(processor.config.crop_size, (64, 48));
    // Plain numbers for size, crop and mean; absent keys keep the checkpoints' values.
    let text = r#"{"size": 300, "crop_size": 200, "image_mean": 0.5, "do_normalize": false}"#;
    let c = ProcessorConfig::from_json_str(text, &file).unwrap();
    assert_eq!(c.size, Size::ShortestEdge(300));
    assert_eq!(c.crop_size, (200, 200));
    assert_eq!(c.image_mean, [0.5; 3]);
    assert!(!c.do_normalize);
    assert_eq!(c.image_std, ProcessorConfig::default().image_std);
    for bad in [
        "[1, 2]",
        r#"{"resample": 7}"#,
        r#"{"size": {"shortest_edge": 224, "longest_edge": 500}}"#,
        r#"{"image_std": [0.2, 0.0, 0.1]}"#,
        r#"{"image_mean": [0.2, 0.1]}"#,
        r#"{"do_resize": "yes"}"#,
        "not json",
    ] {
        let err = ProcessorConfig::from_json_str(bad, &file).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{bad}: {err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
    let missing = ImageProcessor::from_model_dir(dir.path().join("nope")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
}

#[test]
fn other_formats_decode() {
    let src = png(&fixture("formats_src.png"));
    for ext in ["webp", "tiff", "bmp", "gif"] {
        let path = fixture(&format!("formats.{ext}"));
        let rgb = read_rgb(&path, &DecodeLimits::default(), AlphaMode::Drop).unwrap();
        assert_eq!(u8_diff(&rgb, &src), (0, 0), "{ext}");
    }
}

#[test]
fn decoding_errors_name_the_file() {
    let limits = DecodeLimits::default();
    let cases = [
        ("corrupt.png", fixture("corrupt.png"), limits),
        ("truncated.jpg", fixture("truncated.jpg"), limits),
        ("missing", fixture("missing.png"), limits),
        ("bomb.png", fixture("bomb.png"), limits),
        (
            "limit",
            fixture("formats_src.png"),
            DecodeLimits::default().with_max_width(8),
        ),
    ];
    for (what, path, limits) in cases {
        let err = decode_image(&path, &limits).unwrap_err();
        let Error::Image { path: p, reason } = &err else {
            panic!("{what}: not an image error: {err}")
        };
        assert_eq!(p, &path, "{what}");
        let text = err.to_string();
        assert!(!text.contains('\n'), "{what}: {text}");
        println!("{what}: {text}");
        match what {
            "missing" => assert!(reason.contains("not found"), "{reason}"),
            "bomb.png" | "limit" => assert!(reason.contains("limits"), "{reason}"),
            _ => {}
        }
    }
    let processor = ImageProcessor::default();
    assert!(matches!(
        processor.load(fixture("corrupt.png")),
        Err(Error::Image { .. })
    ));
}

#[test]
fn dense_mode_sizes_and_padding() {
    // 451x300 chelsea (W x H), short side 300.
    let plan = |o: DenseOptions| o.plan((300, 451)).unwrap();
    let keep = plan(DenseOptions::default());
    assert_eq!(keep.resized, (300, 451));
    assert_eq!(keep.input, (308, 462));
    assert_eq!((keep.padding.top, keep.padding.bottom), (4, 4));
    assert_eq!((keep.padding.left, keep.padding.right), (5, 6));
    assert_eq!(keep.grid(), (22, 33));
    let short = plan(
        DenseOptions::default()
            .with_short_side(Some(224))
            .with_multiple(Multiple::Pad(PadAnchor::BottomRight)),
    );
    // int(224 * 451 / 300) = 336 = 24 * 14.
    assert_eq!(short.resized, (224, 336));
    assert_eq!(short.input, (224, 336));
    let resize = plan(DenseOptions::default().with_multiple(Multiple::Resize));
    assert_eq!(resize.resized, (294, 448));
    assert_eq!(resize.input, (294, 448));
    assert_eq!(resize.content_box(), (0, 0, 294, 448));
    let br = plan(DenseOptions::default().with_multiple(Multiple::Pad(PadAnchor::BottomRight)));
    assert_eq!((br.padding.top, br.padding.left), (0, 0));
    assert_eq!((br.padding.bottom, br.padding.right), (8, 11));
    assert!(DenseOptions::default()
        .with_patch_size(0)
        .plan((10, 10))
        .is_err());

    let processor = ImageProcessor::default();
    let rgb = processor.read(example("chelsea.png")).unwrap();
    let (pixels, meta) = processor.dense(&rgb, &DenseOptions::default()).unwrap();
    assert_eq!(pixels.dim(), (3, 308, 462));
    assert_eq!(meta, keep);
    // Padding is 0 (the mean colour); the content equals the processor without resize and crop.
    assert!(pixels.slice(s![.., 0..4, ..]).iter().all(|&v| v == 0.0));
    assert!(pixels.slice(s![.., .., 456..]).iter().all(|&v| v == 0.0));
    let plain = ImageProcessor::new(
        ProcessorConfig::default()
            .with_resize(false)
            .with_center_crop(false),
    );
    let content = pixels.slice(s![.., 4..304, 5..456]).to_owned();
    assert_eq!(content, plain.preprocess(&rgb).unwrap());
    let device = candle::Device::Cpu;
    let (tensor, _) = processor
        .dense_pixels(example("chelsea.png"), &DenseOptions::default(), &device)
        .unwrap();
    assert_eq!(tensor.dims(), &[1, 3, 308, 462]);
}

#[test]
fn batches_and_tensors() {
    let processor = ImageProcessor::default();
    let paths = [
        example("chelsea.png"),
        example("rocket.jpg"),
        example("coffee.png"),
    ];
    let batch = processor.load_batch(&paths).unwrap();
    assert_eq!(batch.dim(), (3, 3, 224, 224));
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(batch.slice(s![i, .., .., ..]), processor.load(p).unwrap());
    }
    let device = candle::Device::Cpu;
    let tensor = processor.load_batch_tensor(&paths, &device).unwrap();
    assert_eq!(tensor.dims(), &[3, 3, 224, 224]);
    let one = processor.pixels(&paths[1], &device).unwrap();
    assert_eq!(one.dims(), &[1, 3, 224, 224]);
    let from_tensor: Vec<f32> = one.flatten_all().unwrap().to_vec1().unwrap();
    let from_array: Vec<f32> = batch.slice(s![1, .., .., ..]).iter().copied().collect();
    assert_eq!(from_tensor, from_array);
    // Without the crop, sizes differ and cannot be stacked; a bad file fails the batch.
    let uncropped = ImageProcessor::new(ProcessorConfig::default().with_center_crop(false));
    assert!(matches!(
        uncropped.load_batch(&paths),
        Err(Error::InvalidInput { .. })
    ));
    let with_bad = [example("chelsea.png"), fixture("corrupt.png")];
    assert!(matches!(
        processor.load_batch(&with_bad),
        Err(Error::Image { .. })
    ));
}

#[test]
fn npy_read_write() {
    let expected: Vec<f32> = (0..24).map(|i| (f64::from(i) / 7.0) as f32).collect();
    let fortran = read_array(fixture("npy_f64_fortran.npy")).unwrap();
    assert_eq!(fortran.shape(), &[2, 3, 4]);
    assert_eq!(fortran.iter().copied().collect::<Vec<_>>(), expected);
    let big = read_array(fixture("npy_f32_big_endian.npy")).unwrap();
    assert_eq!(big.iter().copied().collect::<Vec<_>>(), expected);
    let err = read_array(fixture("npy_int64.npy")).unwrap_err();
    assert!(err.to_string().contains("float32"), "{err}");
    let err = read_pixels(fixture("npy_f64_fortran.npy"), 3).unwrap_err();
    assert!(err.to_string().contains("(B, 3, H, W)"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pixels.npy");
    let array = read_array(fixture("chelsea_pixels.npy"))
        .unwrap()
        .into_dimensionality::<Ix3>()
        .unwrap()
        .insert_axis(ndarray::Axis(0));
    write_array(&path, &array).unwrap();
    let tensor = read_pixels(&path, 3).unwrap();
    assert_eq!(tensor.dims(), &[1, 3, 224, 224]);
    assert_eq!(read_array(&path).unwrap(), array.clone().into_dyn());
    // Transposed views are written in C order.
    let t = array.slice(s![0, .., .., ..]).reversed_axes();
    write_array(&path, &t).unwrap();
    assert_eq!(read_array(&path).unwrap(), t.to_owned().into_dyn());
    // An unwritable path names the file and leaves nothing behind.
    let bad = dir.path().join("no/such/folder/x.npy");
    let err = write_array(&bad, &array).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path == &bad),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
