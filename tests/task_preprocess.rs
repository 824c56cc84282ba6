//! What each pipeline feeds its backbone, seen without the model: [`TaskPreprocessor`] (built from a
//! model's small files) gives the same pixels as every pipeline's `pixels`, `dinoreg preprocess
//! --task` writes them, and a folder holding only `preprocessor_config.json` is enough for the tasks
//! that need no patch size (as HF's `AutoImageProcessor`).

mod common;

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use common::cli::dinoreg;
use common::fixture;
use dinoreg::pipelines::{
    AttentionPipeline, AttentionPipelineOptions, ClassificationPipeline, DepthOptions,
    DepthPipeline, DiscoveryOptions, DiscoveryPipeline, EmbeddingPipeline, FeaturesOptions,
    FeaturesPipeline, PcaPipeline, PcaPipelineOptions, Resolution, SegmentationOptions,
    SegmentationPipeline, Task, TaskPreprocessor, TaskPreprocessorOptions,
};
use dinoreg::preprocess::{DenseOptions, ImageProcessor};
use dinoreg::retrieval::EmbedOptions;
use dinoreg::LoadOptions;

fn dir_of(case: &str) -> String {
    fixture(case).display().to_string()
}

fn chelsea() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/images/chelsea.png")
}

fn image() -> image::RgbImage {
    image::open(chelsea()).unwrap().to_rgb8()
}

fn load() -> LoadOptions {
    LoadOptions::default()
}

/// The largest absolute difference between two tensors of one shape.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Asserts two pixel tensors are the same, value for value.
fn same(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let diff = max_abs_diff(a, b);
    assert_eq!(diff, 0.0, "{what}: pixels differ by {diff}");
}

fn task_pixels(
    model: &str,
    task: Option<Task>,
    options: &TaskPreprocessorOptions,
) -> (Task, Tensor) {
    let pre = TaskPreprocessor::from_pretrained(model, task, options).unwrap();
    (pre.task(), pre.pixels(&image(), &Device::Cpu).unwrap())
}

/// Runs `dinoreg preprocess` with `args` and reads the tensor it wrote, with its stdout.
fn preprocess_cli(args: &[&str]) -> (Tensor, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("px.npy");
    let image = chelsea();
    let mut all = vec!["preprocess", "--image", image.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", out.to_str().unwrap()]);
    let stdout = common::cli::ok(&dinoreg(&all));
    let px = dinoreg::io::npy::read_tensor(&out, &Device::Cpu).unwrap();
    (px, stdout)
}

/// A BNHead for the reg4 backbone (width 32) reading `blocks` blocks, in dinov2's mmcv names.
fn write_bn_head(path: &Path, blocks: usize) {
    let dev = Device::Cpu;
    let c = 32 * blocks;
    let tensors = std::collections::HashMap::from([
        (
            "decode_head.bn.weight".to_string(),
            Tensor::ones(c, DType::F32, &dev).unwrap(),
        ),
        (
            "decode_head.bn.bias".to_string(),
            Tensor::zeros(c, DType::F32, &dev).unwrap(),
        ),
        (
            "decode_head.bn.running_mean".to_string(),
            Tensor::zeros(c, DType::F32, &dev).unwrap(),
        ),
        (
            "decode_head.bn.running_var".to_string(),
            Tensor::ones(c, DType::F32, &dev).unwrap(),
        ),
        (
            "decode_head.conv_seg.weight".to_string(),
            Tensor::ones((3, c, 1, 1), DType::F32, &dev).unwrap(),
        ),
        (
            "decode_head.conv_seg.bias".to_string(),
            Tensor::zeros(3, DType::F32, &dev).unwrap(),
        ),
    ]);
    candle::safetensors::save(&tensors, path).unwrap();
}

#[test]
fn depth_anything_preprocess_is_the_pipelines_input() {
    let model = dir_of("depth/da_relative");
    let options = DepthOptions::default().with_input_size(56);
    let pipeline = DepthPipeline::from_pretrained(&model, None, &options, &load()).unwrap();
    let expected = pipeline.pixels(&image()).unwrap();
    // Chelsea is 451 × 300: both sides at least 56, aspect kept, multiples of the 4-pixel patch.
    assert_eq!(expected.dims(), &[1, 3, 56, 84]);

    // The library, without the model: the folder serves depth.
    let pre_options = TaskPreprocessorOptions::default().with_input_size(56);
    let (task, pixels) = task_pixels(&model, None, &pre_options);
    assert_eq!(task, Task::Depth);
    same("TaskPreprocessor", &pixels, &expected);

    // The command: the default task of a depth model is depth, not the 224 centre crop.
    let (px, stdout) = preprocess_cli(&["--model", &model, "--input-size", "56"]);
    assert!(stdout.contains("(depth)"), "{stdout}");
    same("dinoreg preprocess", &px, &expected);
    // The default input size, 518: not the processor's 224 × 224.
    let (px, _) = preprocess_cli(&["--model", &model]);
    assert_eq!(px.dims(), &[1, 3, 520, 780]);
}

#[test]
fn dinov2_depth_head_preprocess_is_centre_padding() {
    let reg4 = dir_of("model/reg4");
    // dinov2's linear head on one block of the width-32 backbone: 256 bins over CLS + patch means.
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("dinov2_vits14_nyu_linear_head.safetensors");
    let tensors = std::collections::HashMap::from([
        (
            "decode_head.conv_depth.weight".to_string(),
            Tensor::zeros((256, 64, 1, 1), DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            "decode_head.conv_depth.bias".to_string(),
            Tensor::zeros(256, DType::F32, &Device::Cpu).unwrap(),
        ),
    ]);
    candle::safetensors::save(&tensors, &head).unwrap();
    let pipeline =
        DepthPipeline::from_pretrained(&reg4, Some(&head), &DepthOptions::default(), &load())
            .unwrap();
    let expected = pipeline.pixels(&image()).unwrap();
    // 300 × 451 centre-padded to the 4-pixel patch.
    assert_eq!(expected.dims(), &[1, 3, 300, 452]);
    let options = TaskPreprocessorOptions::default().with_head(&head);
    let (task, pixels) = task_pixels(&reg4, Some(Task::Depth), &options);
    assert_eq!(task, Task::Depth);
    same("TaskPreprocessor", &pixels, &expected);
    let (px, _) = preprocess_cli(&[
        "--model",
        &reg4,
        "--task",
        "depth",
        "--head",
        head.to_str().unwrap(),
    ]);
    same("dinoreg preprocess", &px, &expected);
}

#[test]
fn every_backbone_task_matches_its_pipeline() {
    let reg4 = dir_of("model/reg4");
    let img = image();
    let check = |task: Task, options: &TaskPreprocessorOptions, expected: Tensor| {
        let (got_task, pixels) = task_pixels(&reg4, Some(task), options);
        assert_eq!(got_task, task);
        same(task.name(), &pixels, &expected);
    };
    let defaults = TaskPreprocessorOptions::default();

    let features = FeaturesPipeline::from_pretrained(&reg4, &FeaturesOptions::default(), &load())
        .unwrap()
        .pixels(&img)
        .unwrap();
    assert_eq!(features.dims(), &[1, 3, 224, 224]);
    check(Task::Features, &defaults, features);

    let dense = FeaturesOptions::default().with_resolution(Resolution::Dense(
        DenseOptions::default().with_short_side(Some(40)),
    ));
    let dense_px = FeaturesPipeline::from_pretrained(&reg4, &dense, &load())
        .unwrap()
        .pixels(&img)
        .unwrap();
    assert_eq!(dense_px.dims()[2], 40);
    check(
        Task::Features,
        &defaults.clone().with_features(dense),
        dense_px,
    );

    let embed = EmbeddingPipeline::from_pretrained(&reg4, &EmbedOptions::default(), &load())
        .unwrap()
        .pixels(&img)
        .unwrap();
    check(Task::Embed, &defaults, embed);

    let discovery = DiscoveryOptions::default().with_short_side(Some(50));
    let discover = DiscoveryPipeline::from_pretrained(&reg4, &discovery, &load())
        .unwrap()
        .pixels(&img)
        .unwrap();
    // Short side 50 (75 × 50), padded bottom/right to the 4-pixel patch: 52 × 76.
    assert_eq!(discover.dims(), &[1, 3, 52, 76]);
    check(
        Task::Discover,
        &defaults.clone().with_short_side(50),
        discover,
    );

    let pca_options = PcaPipelineOptions::default().with_short_side(Some(50));
    let pca = PcaPipeline::from_pretrained(&reg4, &pca_options, &load())
        .unwrap()
        .pixels(&img)
        .unwrap();
    check(Task::Pca, &defaults.clone().with_short_side(50), pca);

    let attention =
        AttentionPipeline::from_pretrained(&reg4, &AttentionPipelineOptions::default(), &load())
            .unwrap()
            .pixels(&img)
            .unwrap();
    // The pictures' default short side, 448.
    assert_eq!(attention.dims()[2], 448);
    check(Task::Attention, &defaults, attention);

    let dir = tempfile::tempdir().unwrap();
    for (blocks, short_side) in [(1, 512), (4, 640)] {
        let head = dir.path().join(format!("head{blocks}.safetensors"));
        write_bn_head(&head, blocks);
        let segment = SegmentationPipeline::from_pretrained(
            &reg4,
            &head,
            &SegmentationOptions::default(),
            &load(),
        )
        .unwrap()
        .pixels(&img)
        .unwrap();
        // The preset follows the head: linear (512) for one block, multi-scale (640) for four.
        assert_eq!(segment.dims()[2], short_side);
        check(Task::Segment, &defaults.clone().with_head(&head), segment);
    }
}

#[test]
fn classifier_folder_serves_classification() {
    let model = dir_of("model/classifier");
    let expected = ClassificationPipeline::from_pretrained(&model, 1, &load())
        .unwrap()
        .pixels(&image())
        .unwrap();
    let (task, pixels) = task_pixels(&model, None, &TaskPreprocessorOptions::default());
    assert_eq!(task, Task::Classify);
    same("classify", &pixels, &expected);
}

/// Issue 12: `preprocess --model DIR` needs only `preprocessor_config.json`.
#[test]
fn a_preprocessor_config_alone_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture("preprocess/custom_config.json");
    std::fs::copy(&config, dir.path().join("preprocessor_config.json")).unwrap();
    let model = dir.path().to_str().unwrap().to_string();
    let expected = ImageProcessor::from_file(&config)
        .unwrap()
        .pixels(chelsea(), &Device::Cpu)
        .unwrap();

    let (task, pixels) = task_pixels(&model, None, &TaskPreprocessorOptions::default());
    assert_eq!(task, Task::Features);
    same("library", &pixels, &expected);
    let (px, stdout) = preprocess_cli(&["--model", &model]);
    assert!(stdout.contains("(features)"), "{stdout}");
    same("dinoreg preprocess", &px, &expected);
    let (px, _) = preprocess_cli(&["--model", &model, "--task", "classify"]);
    same("--task classify", &px, &expected);

    // A task that needs the patch size says where it comes from, in one line.
    let out = dinoreg(&[
        "preprocess",
        "--image",
        chelsea().to_str().unwrap(),
        "--model",
        &model,
        "--task",
        "discover",
        "--output",
        dir.path().join("px.npy").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("patch size") && err.contains("config.json"),
        "{err}"
    );

    // An empty folder is not a model.
    let empty = tempfile::tempdir().unwrap();
    let err = TaskPreprocessor::from_pretrained(
        empty.path().to_str().unwrap(),
        None,
        &TaskPreprocessorOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("preprocessor_config.json"),
        "{err}"
    );
}

#[test]
fn tasks_parse_by_name_and_refuse_unknown_ones() {
    for task in Task::ALL {
        assert_eq!(task.name().parse::<Task>().unwrap(), task);
    }
    let err = "segmentation".parse::<Task>().unwrap_err().to_string();
    assert!(err.contains("segment, discover"), "{err}");
    // A backbone folder without a depth head has nothing to show for depth.
    let err = TaskPreprocessor::from_pretrained(
        &dir_of("model/reg4"),
        Some(Task::Depth),
        &TaskPreprocessorOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no depth head"), "{err}");
}

/// Undoes `(x - mean) / std` per channel of `(1, 3, H, W)` pixels.
fn unnormalise(pixels: &Tensor, mean: [f32; 3], std: [f32; 3]) -> Tensor {
    let dev = Device::Cpu;
    let m = Tensor::new(&mean, &dev)
        .unwrap()
        .reshape((1, 3, 1, 1))
        .unwrap();
    let s = Tensor::new(&std, &dev)
        .unwrap()
        .reshape((1, 3, 1, 1))
        .unwrap();
    pixels.broadcast_mul(&s).unwrap().broadcast_add(&m).unwrap()
}

#[test]
fn dense_tasks_normalise_with_the_checkpoints_statistics() {
    // DINOv3's satellite checkpoints carry their own mean and std; depth, segment and train-seg
    // must use them (and the LVD / DINOv2 checkpoints' ImageNet ones), not a hard-coded ImageNet.
    let dir = tempfile::tempdir().unwrap();
    let sat = dir.path().join("sat");
    std::fs::create_dir_all(&sat).unwrap();
    let source = fixture("dinov3_dense");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(source.join(file), sat.join(file)).unwrap();
    }
    let (sat_mean, sat_std) = ([0.430f32, 0.411, 0.296], [0.213f32, 0.156, 0.143]);
    let mut processor: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(source.join("preprocessor_config.json")).unwrap(),
    )
    .unwrap();
    processor["image_mean"] = serde_json::json!(sat_mean);
    processor["image_std"] = serde_json::json!(sat_std);
    std::fs::write(sat.join("preprocessor_config.json"), processor.to_string()).unwrap();
    let head = dir.path().join("head.safetensors");
    write_bn_head(&head, 1);
    let options = TaskPreprocessorOptions::default().with_head(&head);
    let (_, lvd) = task_pixels(&dir_of("dinov3_dense"), Some(Task::Segment), &options);
    let (_, satellite) = task_pixels(sat.to_str().unwrap(), Some(Task::Segment), &options);
    // Different normalisations of the same image.
    let imagenet = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    let a = unnormalise(&lvd, imagenet.0, imagenet.1);
    let b = unnormalise(&satellite, sat_mean, sat_std);
    let diff = max_abs_diff(&a, &b);
    assert!(diff < 1e-5, "the same image after unnormalising: {diff}");
    let moved = max_abs_diff(&lvd, &satellite);
    assert!(moved > 0.1, "the satellite statistics were not used");
}
