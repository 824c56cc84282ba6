//! Small images that resize to huge ones: the center-crop path computes only what the crop keeps
//! (bit-identical), and every other output that scales with the input is bounded.

use dinoreg::io::image::DecodeLimits;
use dinoreg::preprocess::{
    resize_rgb8, resize_window_rgb8, DenseOptions, ImageProcessor, ProcessorConfig, Resample, Size,
    Window,
};
use dinoreg::Error;
use image::RgbImage;

const FILTERS: [Resample; 6] = [
    Resample::Nearest,
    Resample::Lanczos,
    Resample::Bilinear,
    Resample::Bicubic,
    Resample::Box,
    Resample::Hamming,
];

/// A deterministic noisy image.
fn noise(width: u32, height: u32, seed: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    RgbImage::from_fn(width, height, |_, _| {
        let mut px = [0u8; 3];
        for v in &mut px {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *v = (state >> 24) as u8;
        }
        image::Rgb(px)
    })
}

/// `image`'s `window` copied out.
fn crop(image: &RgbImage, w: Window) -> RgbImage {
    image::imageops::crop_imm(image, w.left, w.top, w.width, w.height).to_image()
}

#[test]
fn a_resize_window_equals_the_crop_of_the_full_resize() {
    // Down- and up-scaling on each axis, an unchanged axis, and windows at the edges.
    let cases = [
        ((37, 50), (20, 80)),
        ((50, 37), (50, 11)),
        ((9, 60), (61, 60)),
        ((64, 64), (64, 64)),
        ((3, 40), (256, 3413)),
    ];
    for (i, ((iw, ih), (ow, oh))) in cases.into_iter().enumerate() {
        let src = noise(iw, ih, i as u32 + 1);
        for filter in FILTERS {
            let full = resize_rgb8(&src, ow, oh, filter).expect("full resize");
            let windows = [
                Window::full(ow, oh),
                Window {
                    top: 0,
                    left: 0,
                    height: 1,
                    width: 1,
                },
                Window {
                    top: oh - 1,
                    left: ow - 1,
                    height: 1,
                    width: 1,
                },
                Window {
                    top: oh / 3,
                    left: ow / 4,
                    height: oh / 2,
                    width: ow.div_ceil(2),
                },
            ];
            for w in windows {
                let part = resize_window_rgb8(&src, ow, oh, filter, w).expect("window");
                assert!(
                    part == crop(&full, w),
                    "{iw}x{ih} -> {ow}x{oh} {filter:?} {w:?}"
                );
            }
        }
    }
    let outside = Window {
        top: 5,
        left: 0,
        height: 10,
        width: 1,
    };
    assert!(resize_window_rgb8(&noise(4, 4, 1), 2, 12, Resample::Bicubic, outside).is_err());
}

#[test]
fn center_crop_pixels_equal_the_slow_path() {
    // Resize everything then crop (the old path) against the windowed path, for a thin strip, a crop
    // larger than the resized image (zero padding), and an unresized image.
    let configs = [
        ProcessorConfig::default(),
        ProcessorConfig::default().with_crop_size(6000, 300),
        ProcessorConfig::default().with_size(Size::Exact {
            height: 30,
            width: 700,
        }),
        ProcessorConfig::default()
            .with_resize(false)
            .with_crop_size(50, 2),
    ];
    for (i, config) in configs.into_iter().enumerate() {
        for filter in [Resample::Bicubic, Resample::Nearest, Resample::Lanczos] {
            let processor = ImageProcessor::new(config.clone().with_resample(filter));
            let src = noise(3, 60, i as u32 + 7);
            let slow = processor.to_pixels(&processor.resize(&src).expect("resize"));
            let fast = processor.preprocess(&src).expect("preprocess");
            assert!(slow == fast, "config {i} {filter:?}");
        }
    }
}

/// Peak resident memory of this process so far (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

#[test]
fn a_one_pixel_wide_strip_costs_what_the_crop_costs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("strip.png");
    noise(1, 16384, 3).save(&path).expect("write png");
    let start = std::time::Instant::now();
    let pixels = ImageProcessor::default().load(&path).expect("strip");
    assert_eq!(pixels.dim(), (3, 224, 224));
    // The full resize would be 256 x 4194304 (3.2 GB of u8, 30 s); the window is 224 x 224 from a
    // handful of input rows. Generous bounds for a loaded debug build.
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
    if let Some(peak) = peak_rss() {
        assert!(peak < 1 << 30, "peak RSS {peak} bytes");
    }
}

#[test]
fn outputs_that_scale_with_the_input_are_bounded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("strip.png");
    noise(1, 16384, 5).save(&path).expect("write png");
    let limit = DecodeLimits::default().max_output_pixels.to_string();
    let no_crop = ImageProcessor::new(ProcessorConfig::default().with_center_crop(false));
    let err = no_crop
        .load(&path)
        .expect_err("256 x 4194304 without a crop");
    assert!(matches!(err, Error::Image { .. }), "{err}");
    for part in ["strip.png", "256x4194304", limit.as_str()] {
        assert!(err.to_string().contains(part), "`{part}` missing: {err}");
    }
    let huge_crop =
        ImageProcessor::new(ProcessorConfig::default().with_crop_size(100_000, 100_000));
    assert!(
        huge_crop.preprocess(&noise(4, 4, 1)).is_err(),
        "a 10^10-pixel crop"
    );

    let dense = DenseOptions::default().with_short_side(Some(518));
    let err = ImageProcessor::default()
        .dense_pixels(&path, &dense, &candle::Device::Cpu)
        .expect_err("dense strip");
    assert!(matches!(err, Error::Image { .. }), "{err}");
    assert!(err.to_string().contains("short side 518"), "{err}");
    let huge = DenseOptions::default().with_short_side(Some(u32::MAX));
    assert!(ImageProcessor::default()
        .dense(&noise(2, 3, 1), &huge)
        .is_err());
    // Raising the limit lets it through.
    let small =
        ImageProcessor::default().with_limits(DecodeLimits::default().with_max_output_pixels(100));
    assert!(
        small.preprocess(&noise(300, 300, 2)).is_err(),
        "224 x 224 > 100 pixels"
    );
}
