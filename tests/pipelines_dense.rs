//! The dense pipelines used from Rust: depth (HF parity through the pipeline, each head's
//! preprocessing, pictures, the depth range of dinov2's heads set by the file name alone), semantic
//! segmentation (map sizes, argmax, coverage, overlay, pixels and images agreeing), probe training
//! (label maps read at their bit depth, class-count guards, progress and cancellation, a head that
//! the segmentation pipeline loads back), and every pipeline shared by two threads.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use candle::{DType, Device, Tensor};
use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::heads::depth::{AnyDepthHead, DepthKind, DepthRange};
use dinoreg::heads::segmentation::{BnHead, BnHeadParams, ClassSet, TrainOptions, Window};
use dinoreg::pipelines::{
    DepthMap, DepthOptions, DepthPicture, DepthPipeline, DepthPreprocessing, InputName,
    LabelEncoding, LabelMap, ProbeData, ProbeDataOptions, ProbeTrainingOptions,
    ProbeTrainingPipeline, Scale, SegmentationMap, SegmentationOptions, SegmentationPipeline,
    Validation,
};
use dinoreg::progress::Progress;
use dinoreg::{DinoModel, Error, ImageProcessor, LoadOptions};

/// Compile-time check: the pipelines can be shared between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<DepthPipeline>();
    send_sync::<SegmentationPipeline>();
    send_sync::<ProbeTrainingPipeline>();
    send_sync::<DepthMap>();
    send_sync::<SegmentationMap>();
};

fn load() -> LoadOptions {
    LoadOptions::default()
}

fn reg4() -> String {
    fixture("model/reg4").display().to_string()
}

fn chelsea() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/images/chelsea.png")
}

/// A small picture with some structure (the tiny models have 4-pixel patches: keep token counts low).
fn picture(h: u32, w: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 11 % 256) as u8,
            ((x + y) * 5 % 256) as u8,
        ])
    })
}

#[test]
fn depth_from_pixels_matches_hf() -> dinoreg::Result<()> {
    let io = load_expected("depth/da_relative/io.safetensors");
    let model = fixture("depth/da_relative").display().to_string();
    let pipeline = DepthPipeline::from_pretrained(&model, None, &DepthOptions::default(), &load())?;
    assert_eq!(pipeline.kind(), DepthKind::Relative);
    let maps = pipeline.run_pixels(&io["pixel_values"])?;
    assert_eq!(maps.len(), 2);
    assert_eq!(maps[1].name(), &InputName::Pixels(1));
    assert_close(
        "depth",
        &DepthMap::stack(&maps)?,
        &io["predicted_depth"],
        TOL,
    );
    Ok(())
}

#[test]
fn depth_anything_on_an_image_keeps_its_size() -> dinoreg::Result<()> {
    let model = fixture("depth/da_relative").display().to_string();
    let options = DepthOptions::default().with_input_size(56);
    let pipeline = DepthPipeline::from_pretrained(&model, None, &options, &load())?;
    assert_eq!(
        pipeline.preprocessing(),
        DepthPreprocessing::DepthAnything { lower_bound: 56 }
    );
    let image = ImageProcessor::default().read(chelsea())?;
    // 300x451, aspect kept, short side 56, multiples of the 4-pixel patch.
    assert_eq!(pipeline.pixels(&image)?.dims(), &[1, 3, 56, 84]);
    let map = pipeline.run_path(chelsea())?;
    assert_eq!(map.size(), (300, 451));
    assert_eq!(map.name(), &InputName::File(chelsea()));
    let from_image = pipeline.run_image(&image)?;
    assert_eq!(from_image.name(), &InputName::Image);
    assert_close("same image", from_image.depth(), map.depth(), 1e-6);
    let (lo, hi) = map.min_max()?;
    assert!(lo <= hi && hi.is_finite());
    assert_eq!(map.resize((30, 45), false)?.size(), (30, 45));

    let dir = tempfile::tempdir().unwrap();
    let (rgb, gray) = (dir.path().join("d.png"), dir.path().join("d16.png"));
    map.write_png(&rgb, DepthPicture::Inferno)?;
    map.write_png(&gray, DepthPicture::Gray16)?;
    let rgb = image::open(&rgb).unwrap();
    assert_eq!((rgb.width(), rgb.height()), (451, 300));
    assert!(matches!(rgb, image::DynamicImage::ImageRgb8(_)));
    let gray = image::open(&gray).unwrap();
    assert!(matches!(gray, image::DynamicImage::ImageLuma16(_)));
    // Near is bright: relative depth is larger where nearer, so the largest value is white.
    let values = map.depth().flatten_all()?.to_vec1::<f32>()?;
    let nearest = values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let g = gray.to_luma16();
    assert_eq!(g.as_raw()[nearest], 65535);
    let npy = dir.path().join("d.npy");
    map.write_npy(&npy)?;
    let back = dinoreg::io::npy::read_tensor(&npy, &Device::Cpu)?;
    assert_eq!(back.dims(), &[300, 451]);
    // Maps of different sizes do not stack.
    let small = pipeline.run_image(&picture(20, 24))?;
    let err = DepthMap::stack(&[map, small]).unwrap_err();
    assert!(err.to_string().contains("different sizes"), "{err}");
    Ok(())
}

#[test]
fn depth_anything_refuses_a_minimum_depth() {
    let model = fixture("depth/da_relative").display().to_string();
    let options = DepthOptions::default().with_min_depth(0.5);
    let err = DepthPipeline::from_pretrained(&model, None, &options, &load()).unwrap_err();
    assert!(err.to_string().contains("min_depth"), "{err}");
}

/// A dinov2 linear depth head (1 block, 256 bins) for the reg4 backbone (width 32), written as
/// safetensors in the published mmcv naming.
fn write_linear_head(path: &Path) {
    let dev = Device::Cpu;
    let weight = (Tensor::randn(0f32, 0.05, (256, 64, 1, 1), &dev).unwrap()).contiguous();
    let bias = Tensor::zeros(256, DType::F32, &dev).unwrap();
    let tensors = std::collections::HashMap::from([
        ("decode_head.conv_depth.weight".to_string(), weight.unwrap()),
        ("decode_head.conv_depth.bias".to_string(), bias),
    ]);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    candle::safetensors::save(&tensors, path).unwrap();
}

fn dinov2_range(pipeline: &DepthPipeline) -> DepthRange {
    match pipeline.head() {
        AnyDepthHead::Dinov2Linear(h) => h.range(),
        other => panic!("expected dinov2's linear head, got {other:?}"),
    }
}

/// Issue 12: a NYU head kept under `runs/kitti_exp/` is a NYU head (the range used to come from the
/// whole path); a head whose file name says kitti gets KITTI's range.
#[test]
fn dinov2_depth_range_comes_from_the_file_name() -> dinoreg::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let nyu = dir
        .path()
        .join("runs/kitti_exp/dinov2_vits14_nyu_linear_head.safetensors");
    write_linear_head(&nyu);
    let kitti = dir
        .path()
        .join("heads/dinov2_vits14_kitti_linear_head.safetensors");
    std::fs::create_dir_all(kitti.parent().unwrap()).unwrap();
    std::fs::copy(&nyu, &kitti).unwrap();
    let options = DepthOptions::default();
    let p_nyu = DepthPipeline::from_pretrained(&reg4(), Some(&nyu), &options, &load())?;
    let p_kitti = DepthPipeline::from_pretrained(&reg4(), Some(&kitti), &options, &load())?;
    assert_eq!(dinov2_range(&p_nyu), DepthRange::NYU);
    assert_eq!(dinov2_range(&p_kitti), DepthRange::KITTI);
    assert_eq!(p_nyu.kind(), DepthKind::Metric);
    assert_eq!(p_nyu.preprocessing(), DepthPreprocessing::CenterPadding);
    // The image at its own size, centre-padded to the 4-pixel patch: 30x45 -> 32x48.
    let image = picture(30, 45);
    assert_eq!(p_nyu.pixels(&image)?.dims(), &[1, 3, 32, 48]);
    let (a, b) = (p_nyu.run_image(&image)?, p_kitti.run_image(&image)?);
    assert_eq!((a.size(), b.size()), ((30, 45), (30, 45)));
    let (_, hi_nyu) = a.min_max()?;
    let (_, hi_kitti) = b.min_max()?;
    assert!(hi_nyu <= 10.0, "NYU depth up to {hi_nyu} m");
    assert!(
        hi_kitti > hi_nyu,
        "KITTI bins reach further: {hi_kitti} vs {hi_nyu}"
    );
    // Options override the file name.
    let custom = DepthOptions::default()
        .with_min_depth(1.0)
        .with_max_depth(2.0);
    let p = DepthPipeline::from_pretrained(&reg4(), Some(&kitti), &custom, &load())?;
    assert_eq!(dinov2_range(&p), DepthRange::new(1.0, 2.0)?);
    Ok(())
}

/// A random BNHead of `k` classes for the reg4 backbone (width 32), reading the last block.
fn random_head(k: usize) -> BnHead {
    let dev = Device::Cpu;
    let params = BnHeadParams {
        bn_weight: Tensor::ones(32, DType::F32, &dev).unwrap(),
        bn_bias: Tensor::zeros(32, DType::F32, &dev).unwrap(),
        running_mean: Tensor::zeros(32, DType::F32, &dev).unwrap(),
        running_var: Tensor::ones(32, DType::F32, &dev).unwrap(),
        conv_weight: Tensor::randn(0f32, 1.0, (k, 32, 1, 1), &dev).unwrap(),
        conv_bias: Tensor::zeros(k, DType::F32, &dev).unwrap(),
    };
    BnHead::from_params(params, 32, vec![-1]).unwrap()
}

fn segmenter(options: &SegmentationOptions) -> dinoreg::Result<SegmentationPipeline> {
    let pretrained = DinoModel::from_pretrained(&reg4(), &load())?;
    SegmentationPipeline::new(
        Box::new(pretrained.model),
        random_head(3),
        pretrained.processor,
        options,
    )
}

#[test]
fn segmentation_map_sizes_argmax_and_overlay() -> dinoreg::Result<()> {
    let options = SegmentationOptions::default()
        .with_scale(Scale::ShortSide(32))
        .with_window(Window::Whole);
    let pipeline = segmenter(&options)?;
    assert_eq!(pipeline.classes().len(), 3);
    assert_eq!(pipeline.image_options().short_side, Some(32));
    assert_eq!(pipeline.image_options().center_padding, Some(4));
    let image = picture(30, 45);
    // The windows are cut from the image at short side 32.
    assert_eq!(pipeline.pixels(&image)?.dims(), &[1, 3, 32, 48]);
    let map = pipeline.run_image(&image)?;
    assert_eq!(map.logits().dims(), &[3, 30, 45]);
    assert_eq!(map.size(), (30, 45));
    let labels = map.labels()?;
    assert_eq!(labels.len(), 30 * 45);
    assert!(labels.iter().all(|&l| l < 3));
    assert_eq!(map.label_map()?.dims(), &[30, 45]);
    let coverage = map.coverage()?;
    let total: f64 = coverage.iter().map(|e| e.fraction).sum();
    assert!((total - 1.0).abs() < 1e-9);
    assert!(coverage.windows(2).all(|w| w[0].fraction >= w[1].fraction));
    let picture_out = map.overlay(0.5)?;
    // The image plus a legend panel on the right, at least as tall as the image.
    assert!(picture_out.width() > 45 && picture_out.height() >= 30);
    assert!(map.overlay(1.5).is_err());

    // The same image through run_pixels (un-normalised for the picture) gives the same map.
    let from_pixels = pipeline.run_pixels(&pipeline.normalize(&image)?)?;
    assert_eq!(from_pixels[0].image(), &image);
    assert_close("logits", from_pixels[0].logits(), map.logits(), 1e-6);

    let dir = tempfile::tempdir().unwrap();
    let (png, npy) = (dir.path().join("s.png"), dir.path().join("s.npy"));
    map.write_png(&png, 0.6)?;
    assert_eq!(image::open(&png).unwrap().width(), picture_out.width());
    map.write_npy(&npy)?;
    let back = dinoreg::io::npy::read_tensor(&npy, &Device::Cpu)?;
    assert_close("npy", &back, map.logits(), 0.0);
    assert_eq!(
        SegmentationMap::stack(&[map.clone(), map])?.dims(),
        &[2, 3, 30, 45]
    );
    Ok(())
}

#[test]
fn segmentation_options_are_checked() -> dinoreg::Result<()> {
    let whole_with_stride = SegmentationOptions::default()
        .with_window(Window::Whole)
        .with_stride(8);
    let err = segmenter(&whole_with_stride).unwrap_err();
    assert!(err.to_string().contains("stride"), "{err}");
    let names = ClassSet::from_names(vec!["a".into(), "b".into()]).unwrap();
    let err = segmenter(&SegmentationOptions::default().with_classes(names)).unwrap_err();
    assert!(err.to_string().contains("3 classes"), "{err}");
    // A crop sets square windows with dinov2's 2/3 stride.
    let p = segmenter(&SegmentationOptions::default().with_crop(48, None))?;
    assert_eq!(
        p.image_options().window,
        Window::Slide {
            crop: (48, 48),
            stride: (32, 32)
        }
    );
    // Pixel tensors keep their size unless a scale is given.
    assert_eq!(p.pixel_options().short_side, None);
    assert_eq!(p.image_options().short_side, Some(512));
    Ok(())
}

/// `n` 32x32 images of a red square on a two-tone background and their label maps (0 background, 1
/// square, 255 one ignored corner), written by `save` (which picks the PNG's colour type).
fn shapes(root: &Path, n: usize, save: impl Fn(&Path, Vec<u8>)) -> (PathBuf, PathBuf) {
    let (images, labels) = (root.join("images"), root.join("labels"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    for i in 0..n {
        let (x0, y0) = (2 + (i * 5) % 12, 3 + (i * 7) % 12);
        let inside = |x: u32, y: u32| {
            (x0..x0 + 16).contains(&(x as usize)) && (y0..y0 + 16).contains(&(y as usize))
        };
        let img =
            image::RgbImage::from_fn(32, 32, |x, y| match (inside(x, y), (x / 4 + y / 4) % 2) {
                (true, _) => image::Rgb([220, 40, 40]),
                (false, 0) => image::Rgb([40, 90, 200]),
                _ => image::Rgb([60, 120, 60]),
            });
        img.save(images.join(format!("s{i}.png"))).unwrap();
        let values: Vec<u8> = (0..32 * 32)
            .map(|p| {
                let (x, y) = (p % 32, p / 32);
                if x < 2 && y < 2 {
                    255
                } else {
                    inside(x, y) as u8
                }
            })
            .collect();
        save(&labels.join(format!("s{i}.png")), values);
    }
    (images, labels)
}

/// Gray + alpha 8-bit label maps, as an image editor saves them.
fn save_gray_alpha(path: &Path, values: Vec<u8>) {
    let raw: Vec<u8> = values.into_iter().flat_map(|v| [v, 255]).collect();
    image::GrayAlphaImage::from_raw(32, 32, raw)
        .unwrap()
        .save(path)
        .unwrap();
}

/// 16-bit gray label maps holding `scale ×` each class id.
fn save_gray16(scale: u16) -> impl Fn(&Path, Vec<u8>) {
    move |path, values| {
        let raw: Vec<u16> = values
            .into_iter()
            .map(|v| if v == 255 { 255 } else { u16::from(v) * scale })
            .collect();
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(32, 32, raw)
            .unwrap()
            .save(path)
            .unwrap();
    }
}

/// Records what a pipeline reports.
#[derive(Default)]
struct Recorder {
    stages: Mutex<Vec<(String, Option<u64>)>>,
    advanced: AtomicU64,
    notes: Mutex<Vec<String>>,
    cancel: AtomicBool,
}

impl Progress for Recorder {
    fn begin(&self, stage: &str, total: Option<u64>) {
        self.stages.lock().unwrap().push((stage.into(), total));
    }
    fn advance(&self, n: u64) {
        self.advanced.fetch_add(n, Ordering::Relaxed);
    }
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    fn note(&self, message: &str) {
        self.notes.lock().unwrap().push(message.into());
    }
}

/// Issue 12: 8-bit gray + alpha label maps hold classes 0 and 1 (they were read ×257: a
/// 258-class probe here, 515 for classes 0-2).
#[test]
fn gray_alpha_labels_are_read_at_their_bit_depth() -> dinoreg::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = shapes(dir.path(), 4, save_gray_alpha);
    let map = LabelMap::read(labels.join("s0.png"), None)?;
    assert_eq!(map.encoding(), LabelEncoding::Gray8);
    assert_eq!(map.largest_label(), Some(1));
    assert_eq!(map.values()[0], 255);
    let options = ProbeDataOptions::default().with_validation(Validation::Fraction(0.0));
    let data = ProbeData::load(&images, &labels, &options, &())?;
    assert_eq!(data.num_classes(), 2);
    assert_eq!((data.train().len(), data.val().len()), (4, 0));
    Ok(())
}

#[test]
fn sixteen_bit_labels_are_read_as_stored_and_guarded() -> dinoreg::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    // Class ids as stored: 0 and 1.
    let (images, labels) = shapes(&dir.path().join("ids"), 2, save_gray16(1));
    let map = LabelMap::read(labels.join("s0.png"), None)?;
    assert_eq!(map.encoding(), LabelEncoding::Gray16);
    let options = ProbeDataOptions::default().with_validation(Validation::Fraction(0.0));
    assert_eq!(
        ProbeData::load(&images, &labels, &options, &())?.num_classes(),
        2
    );
    // Class 1 stored as 257 (an 8-bit map scaled to 16 bits): no 258-class probe by inference...
    let (images, labels) = shapes(&dir.path().join("scaled"), 2, save_gray16(257));
    let err = ProbeData::load(&images, &labels, &options, &()).unwrap_err();
    assert!(err.to_string().contains("label 257"), "{err}");
    assert!(err.to_string().contains("number of classes"), "{err}");
    // ...nor past a given count, naming the file.
    let err =
        ProbeData::load(&images, &labels, &options.clone().with_num_classes(2), &()).unwrap_err();
    assert!(
        err.to_string().contains("label 257 is outside 0..2"),
        "{err}"
    );
    assert!(err.to_string().contains("s0.png"), "{err}");
    // Given a count that covers them, 16-bit ids are classes.
    let many = options.with_num_classes(300);
    assert_eq!(
        ProbeData::load(&images, &labels, &many, &())?.num_classes(),
        300
    );
    Ok(())
}

#[test]
fn probe_training_reports_progress_and_feeds_segmentation() -> dinoreg::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = shapes(dir.path(), 6, save_gray_alpha);
    let progress = Recorder::default();
    let data_options = ProbeDataOptions::default()
        .with_validation(Validation::Fraction(0.34))
        .with_seed(1);
    let data = ProbeData::load(&images, &labels, &data_options, &progress)?;
    assert_eq!((data.train().len(), data.val().len()), (4, 2));
    let options = ProbeTrainingOptions::default()
        .with_short_side(Some(32))
        .with_cache(dir.path().join("cache"))
        .with_train(
            TrainOptions::default()
                .with_epochs(3)
                .with_batch_size(2)
                .with_learning_rate(1e-2)
                .with_seed(1),
        );
    let pipeline = ProbeTrainingPipeline::from_pretrained(&reg4(), &options, &load())?;
    let trained = pipeline.train(&data, &progress)?;
    assert_eq!(trained.history.len(), 3);
    assert!(trained.val_miou().is_some());
    assert_eq!(trained.metadata.backbone.as_deref(), Some(reg4().as_str()));
    let stages: Vec<String> = progress
        .stages
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.0.clone())
        .collect();
    assert_eq!(stages, ["label maps", "features", "steps"]);
    // 6 label maps, 6 feature extractions, 3 epochs of 2 steps.
    assert_eq!(progress.advanced.load(Ordering::Relaxed), 6 + 6 + 6);
    let notes = progress.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 3);
    assert!(
        notes[2].starts_with("epoch   3/3") && notes[2].contains("val mIoU"),
        "{notes:?}"
    );
    // The features were cached, one file per image, and a second run reads them back.
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache")).unwrap().count(),
        6
    );
    let again = pipeline.train(&data, &())?;
    assert_eq!(again.history, trained.history);

    // The saved head loads in the segmentation pipeline, with its classes.
    let head = dir.path().join("out/head.safetensors");
    trained.save(&head)?;
    let seg = SegmentationPipeline::from_pretrained(
        &reg4(),
        &head,
        &SegmentationOptions::default()
            .with_scale(Scale::Keep)
            .with_window(Window::Whole),
        &load(),
    )?;
    assert_eq!(seg.classes().len(), 2);
    let map = seg.run_path(images.join("s0.png"))?;
    assert_eq!(map.logits().dims(), &[2, 32, 32]);

    // A cancelled run stops with Interrupted.
    let cancelled = Recorder::default();
    cancelled.cancel.store(true, Ordering::Relaxed);
    let err = pipeline.train(&data, &cancelled).unwrap_err();
    assert!(matches!(err, Error::Interrupted { done: 0, .. }), "{err}");
    Ok(())
}

#[test]
fn probe_training_pixels_are_resized_and_padded() -> dinoreg::Result<()> {
    let options = ProbeTrainingOptions::default().with_short_side(Some(32));
    let pipeline = ProbeTrainingPipeline::from_pretrained(&reg4(), &options, &load())?;
    assert_eq!(pipeline.pixels(&picture(30, 45))?.dims(), &[1, 3, 32, 48]);
    let keep = ProbeTrainingOptions::default().with_short_side(None);
    let pipeline = ProbeTrainingPipeline::from_pretrained(&reg4(), &keep, &load())?;
    assert_eq!(pipeline.pixels(&picture(30, 45))?.dims(), &[1, 3, 32, 48]);
    assert_eq!(pipeline.pixels(&picture(14, 17))?.dims(), &[1, 3, 16, 20]);
    Ok(())
}

/// One pipeline, two threads, the single-threaded results.
#[test]
fn pipelines_serve_two_threads() -> dinoreg::Result<()> {
    let model = fixture("depth/da_relative").display().to_string();
    let depth = DepthPipeline::from_pretrained(
        &model,
        None,
        &DepthOptions::default().with_input_size(40),
        &load(),
    )?;
    let seg = segmenter(
        &SegmentationOptions::default()
            .with_scale(Scale::ShortSide(32))
            .with_window(Window::Whole),
    )?;
    let images = [picture(30, 45), picture(40, 28)];
    let single_depth: Vec<DepthMap> = images
        .iter()
        .map(|i| depth.run_image(i))
        .collect::<dinoreg::Result<_>>()?;
    let single_seg: Vec<SegmentationMap> = images
        .iter()
        .map(|i| seg.run_image(i))
        .collect::<dinoreg::Result<_>>()?;
    std::thread::scope(|s| {
        for thread in 0..2 {
            let (depth, seg, images) = (&depth, &seg, &images);
            let (single_depth, single_seg) = (&single_depth, &single_seg);
            s.spawn(move || {
                for round in 0..2 {
                    let i = (thread + round) % 2;
                    let d = depth.run_image(&images[i]).unwrap();
                    assert_close("depth", d.depth(), single_depth[i].depth(), 1e-6);
                    let m = seg.run_image(&images[i]).unwrap();
                    assert_close("logits", m.logits(), single_seg[i].logits(), 1e-6);
                }
            });
        }
    });
    Ok(())
}
