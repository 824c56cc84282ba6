//! Segmentation against tests/fixtures/segmentation (made by tests/fixtures/gen_segmentation.py):
//! BNHead "linear" and "ms" from mmseg-layout `.pth` files equal to a PyTorch BNHead; slide, whole and
//! multi-scale + flip inference equal to mmseg 0.x's around a stand-in backbone; safetensors heads
//! round-trip; a probe trained on generated shapes beats chance, repeatably; bad inputs are refused.

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use dinoreg_heads::segmentation::{
    center_pad_amounts, legend_entries, overlay, predict, predict_probabilities, rescaled_size,
    slide_windows, train_probe, window_logits, BnHead, ClassSet, ConfusionMatrix, EpochStats,
    InferenceOptions, OverlayOptions, ProbeConfig, Sample, SplitMix64, TrainObserver, TrainOptions,
    Window,
};
use dinoreg_heads::{Error, FeatureMaps, Head, TensorStore};
use serde_json::Value;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/segmentation")
}

fn cases() -> Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        fixtures().join("cases.json"),
    )?)?)
}

fn get(store: &TensorStore, name: &str) -> Result<Tensor> {
    Ok(store.get_any(name, DType::F32, &Device::Cpu)?)
}

/// `max |a - b| <= 1e-4 * max(1, max |b|)`.
fn assert_close(actual: &Tensor, expected: &Tensor, what: &str) -> Result {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shape");
    let scale = expected.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
    let diff = (actual - expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max |diff| {diff} > 1e-4 * {scale}"
    );
    Ok(())
}

fn pair(v: &Value) -> (usize, usize) {
    (
        v[0].as_u64().unwrap_or(0) as usize,
        v[1].as_u64().unwrap_or(0) as usize,
    )
}

const E: usize = 16;
const P: usize = 4;

fn maps(io: &TensorStore, which: &[usize]) -> Result<FeatureMaps> {
    let maps = which
        .iter()
        .map(|i| get(io, &format!("map.{i}")))
        .collect::<Result<Vec<_>>>()?;
    let (_, _, h, w) = maps[0].dims4()?;
    Ok(FeatureMaps {
        maps,
        cls_tokens: None,
        patch_size: P,
        input_size: (h * P, w * P),
    })
}

#[test]
fn bn_head_matches_pytorch_linear_and_ms() -> Result {
    let io = TensorStore::open(fixtures().join("bn_io.safetensors"))?;
    let unpadded = pair(&cases()?["unpadded"]);
    for (name, which, blocks) in [
        ("linear", vec![3], vec![-1]),
        ("ms", vec![0, 1, 2, 3], vec![-4, -3, -2, -1]),
    ] {
        let head = BnHead::load(fixtures().join(format!("bn_{name}.pth")), E, &Device::Cpu)?;
        assert_eq!(
            head.blocks(),
            blocks.as_slice(),
            "{name}: blocks from C_in / E"
        );
        assert_eq!(head.request().blocks, blocks);
        assert!(head.request().norm && !head.request().cls_token);
        assert_eq!(head.num_classes(), 5);
        let features = maps(&io, &which)?;
        let grid = head.grid_logits(&features)?;
        assert_close(&grid, &get(&io, &format!("{name}_grid"))?, name)?;
        let padded = head.forward(&features)?;
        assert_close(&padded, &get(&io, &format!("{name}_padded"))?, name)?;
        let unpadded_logits = head.logits(&features, unpadded)?;
        assert_close(
            &unpadded_logits,
            &get(&io, &format!("{name}_unpadded"))?,
            name,
        )?;
    }
    Ok(())
}

#[test]
fn saved_head_round_trips_with_metadata() -> Result {
    let dir = tempdir("roundtrip")?;
    let head = BnHead::load(fixtures().join("bn_ms.pth"), E, &Device::Cpu)?;
    let names: Vec<String> = ["sky", "tree", "road", "car", "person"]
        .map(String::from)
        .to_vec();
    let head = head.with_classes(ClassSet::from_names(names.clone())?)?;
    let mut meta = head.metadata();
    meta.backbone = Some("tiny".into());
    let path = dir.path().join("head.safetensors");
    head.save(&path, &meta)?;
    let back = BnHead::load(&path, E, &Device::Cpu)?;
    assert_eq!(back.blocks(), head.blocks());
    assert_eq!(back.classes().map(|c| c.names().to_vec()), Some(names));
    let io = TensorStore::open(fixtures().join("bn_io.safetensors"))?;
    let features = maps(&io, &[0, 1, 2, 3])?;
    assert_close(
        &back.grid_logits(&features)?,
        &get(&io, "ms_grid")?,
        "reloaded",
    )?;
    // The metadata pins the backbone width.
    let err = BnHead::load(&path, E / 2, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("width"), "{err}");
    Ok(())
}

/// A scratch folder removed when the returned guard is dropped.
fn tempdir(name: &str) -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("dinoreg-seg-test-{name}-"))
        .tempdir()?)
}

/// The stand-in "backbone + head" of gen_segmentation.py: 1×1 conv, tanh, average pool by p, then
/// the linear BNHead on the patch grid.
struct StandIn {
    conv_weight: Tensor,
    conv_bias: Tensor,
    head: BnHead,
}

impl StandIn {
    fn load() -> Result<Self> {
        let st = TensorStore::open(fixtures().join("standin.safetensors"))?;
        Ok(Self {
            conv_weight: get(&st, "conv.weight")?,
            conv_bias: get(&st, "conv.bias")?.reshape((1, E, 1, 1))?,
            head: BnHead::load(fixtures().join("bn_linear.pth"), E, &Device::Cpu)?,
        })
    }

    fn run(&self, x: &Tensor) -> dinoreg_heads::Result<Tensor> {
        let f = x
            .conv2d(&self.conv_weight, 0, 1, 1, 1)?
            .broadcast_add(&self.conv_bias)?
            .tanh()?
            .avg_pool2d(P)?;
        let (_, _, h, w) = x.dims4()?;
        self.head.grid_logits(&FeatureMaps {
            maps: vec![f],
            cls_tokens: None,
            patch_size: P,
            input_size: (h, w),
        })
    }
}

fn options(case: &Value) -> InferenceOptions {
    let window = if case["mode"] == "slide" {
        Window::Slide {
            crop: pair(&case["crop"]),
            stride: pair(&case["stride"]),
        }
    } else {
        Window::Whole
    };
    InferenceOptions::linear()
        .with_window(window)
        .with_center_padding(case["center_padding"].as_u64().map(|p| p as usize))
        .with_short_side(case["short_side"].as_u64().map(|s| s as usize))
        .with_ratios(
            case["ratios"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect(),
        )
        .with_flip(case["flip"].as_bool().unwrap_or(false))
}

#[test]
fn inference_matches_mmseg_slide_whole_and_tta() -> Result {
    let io = TensorStore::open(fixtures().join("inference_io.safetensors"))?;
    let pixels = get(&io, "pixels")?;
    let model = StandIn::load()?;
    let run = |x: &Tensor| model.run(x);
    let cases = cases()?;
    for name in ["slide", "whole"] {
        let opts = options(&cases["cases"][name]);
        for per_call in [1, 3] {
            let logits = predict(&pixels, &opts.clone().with_windows_per_call(per_call), run)?;
            assert_close(&logits, &get(&io, name)?, name)?;
        }
    }
    let opts = options(&cases["cases"]["tta"]);
    assert_eq!(opts.passes(), 6);
    let probs = predict_probabilities(&pixels, &opts, run)?;
    assert_close(&probs, &get(&io, "tta")?, "tta")?;
    // `predict` returns the log of the same mean softmax map.
    let logits = predict(&pixels, &opts, run)?;
    assert_close(&logits.exp()?, &get(&io, "tta")?, "tta logits")?;
    Ok(())
}

#[test]
fn slide_geometry_follows_mmseg() -> Result {
    // h_grids = max(H - crop + stride - 1, 0) // stride + 1, last window flush with the border.
    let w = slide_windows((19, 26), (12, 16), (8, 10))?;
    assert_eq!(w.len(), 2 * 2);
    assert_eq!(w[0], (0, 12, 0, 16));
    assert_eq!(w[3], (7, 19, 10, 26));
    // A crop larger than the image gives one window, the whole image.
    assert_eq!(slide_windows((5, 6), (8, 8), (4, 4))?, vec![(0, 5, 0, 6)]);
    // Sizes that would divide by zero, leave pixels uncovered or have no window are typed errors.
    for (size, crop, stride) in [
        ((19, 26), (12, 16), (0, 10)),
        ((19, 26), (12, 0), (8, 10)),
        ((19, 26), (12, 16), (13, 10)),
        ((0, 26), (12, 16), (8, 10)),
    ] {
        let err = slide_windows(size, crop, stride).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidOption { .. } | Error::InvalidInput { .. }
            ),
            "{err}"
        );
    }
    assert!(Window::slide((4, 4), (0, 4)).is_err());
    assert_eq!(
        Window::slide((4, 4), (2, 4))?,
        Window::Slide {
            crop: (4, 4),
            stride: (2, 4)
        }
    );
    // dinov2's padding examples (heads.md 0.3) and mmcv's keep-ratio resize.
    assert_eq!(center_pad_amounts(512, 14), (3, 3));
    assert_eq!(center_pad_amounts(640, 14), (2, 2));
    assert_eq!(center_pad_amounts(480, 14), (5, 5));
    assert_eq!(rescaled_size((480, 640), Some(512), 1.0), (512, 683));
    assert_eq!(rescaled_size((480, 640), Some(640), 1.32), (844, 1125));
    Ok(())
}

#[test]
fn option_and_model_errors_are_clear() -> Result {
    let pixels = Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu)?;
    let ok = |x: &Tensor| -> dinoreg_heads::Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        Ok(Tensor::zeros((b, 2, h, w), DType::F32, x.device())?)
    };
    let bad_stride = InferenceOptions::linear().with_window(Window::Slide {
        crop: (4, 4),
        stride: (5, 5),
    });
    let err = window_logits(&pixels, &bad_stride, ok).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    assert!(err.to_string().contains("uncovered"), "{err}");
    let err = predict(&pixels, &InferenceOptions::linear().with_ratios(vec![]), ok).unwrap_err();
    assert!(err.to_string().contains("ratio"), "{err}");
    // A model that returns another batch size.
    let wrong = |x: &Tensor| -> dinoreg_heads::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        Ok(Tensor::zeros((2, 2, h, w), DType::F32, x.device())?)
    };
    let err = predict(&pixels, &InferenceOptions::linear(), wrong).unwrap_err();
    assert!(err.to_string().contains("model output"), "{err}");
    // The model's own error comes back unchanged, in the caller's error type.
    #[derive(Debug, PartialEq)]
    enum Mine {
        Boom,
        Heads(String),
    }
    impl From<Error> for Mine {
        fn from(e: Error) -> Self {
            Mine::Heads(e.to_string())
        }
    }
    let failing = |_: &Tensor| -> std::result::Result<Tensor, Mine> { Err(Mine::Boom) };
    let err = predict(&pixels, &InferenceOptions::linear(), failing);
    assert_eq!(err.err(), Some(Mine::Boom));
    Ok(())
}

#[test]
fn head_that_does_not_fit_the_backbone_is_refused() -> Result {
    // C_in = 16 is not a multiple of 24.
    let err = BnHead::load(fixtures().join("bn_linear.pth"), 24, &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    assert!(err.to_string().contains("backbone width 24"), "{err}");
    // Feature maps of another width.
    let head = BnHead::load(fixtures().join("bn_linear.pth"), E, &Device::Cpu)?;
    let features = FeatureMaps {
        maps: vec![Tensor::zeros((1, 8, 2, 2), DType::F32, &Device::Cpu)?],
        cls_tokens: None,
        patch_size: P,
        input_size: (8, 8),
    };
    let err = head.forward(&features).unwrap_err();
    assert!(err.to_string().contains("8 channels"), "{err}");
    // Too few maps for an ms head.
    let ms = BnHead::load(fixtures().join("bn_ms.pth"), E, &Device::Cpu)?;
    let one = FeatureMaps {
        maps: vec![Tensor::zeros((1, E, 2, 2), DType::F32, &Device::Cpu)?],
        ..features
    };
    let err = ms.forward(&one).unwrap_err();
    assert!(err.to_string().contains("1 maps were given"), "{err}");
    Ok(())
}

#[test]
fn miou_and_labels_files() -> Result {
    let labels = Tensor::new(&[[0u32, 0, 1, 255], [1, 1, 2, 2]], &Device::Cpu)?;
    let preds = Tensor::new(&[[0u32, 1, 1, 0], [1, 1, 2, 0]], &Device::Cpu)?;
    let mut cm = ConfusionMatrix::new(3);
    cm.update(&preds, &labels)?;
    let iou = cm.iou();
    // The 255 pixel is left out. Class 0: 1 / (2 + 2 - 1); class 1: 3 / (3 + 4 - 3); class 2: 1 / 2.
    assert_eq!(iou, vec![Some(1.0 / 3.0), Some(0.75), Some(0.5)]);
    let expected = (1.0 / 3.0 + 0.75 + 0.5) / 3.0;
    assert!((cm.mean_iou().unwrap_or(0.0) - expected).abs() < 1e-12);
    let out_of_range = Tensor::new(&[[7u32]], &Device::Cpu)?;
    let err = cm
        .update(&Tensor::new(&[[0u32]], &Device::Cpu)?, &out_of_range)
        .unwrap_err();
    assert!(err.to_string().contains("outside 0..3"), "{err}");

    let set = ClassSet::parse("background\ncat #ff8000\n\ndog\n")?;
    assert_eq!(set.names(), ["background", "cat", "dog"]);
    assert_eq!(set.colors(), [[0, 0, 0], [255, 128, 0], [0, 128, 0]]);
    let err = ClassSet::parse("cat #ff80zz").unwrap_err();
    assert!(err.to_string().contains("#RRGGBB"), "{err}");
    assert_eq!(ClassSet::for_num_classes(150).name(0), "wall");
    assert_eq!(ClassSet::voc().color(15), [192, 128, 128]);
    assert_eq!(ClassSet::ade20k().color(149), [92, 0, 255]);
    Ok(())
}

/// A generated dataset: `size`×`size` images of a textured background (class 0) with a reddish disc
/// (class 1, its rim ignored as 255) and a bluish rectangle (class 2); features per patch of `P`
/// pixels = tanh of a fixed random projection of the patch's mean colour.
struct Shapes {
    projection: Vec<[f32; 3]>,
    bias: Vec<f32>,
}

const SIZE: usize = 32;

impl Shapes {
    fn new(rng: &mut SplitMix64) -> Self {
        Self {
            projection: (0..E)
                .map(|_| [0; 3].map(|_| (rng.normal() * 2.0) as f32))
                .collect(),
            bias: (0..E).map(|_| (rng.normal() * 0.5) as f32).collect(),
        }
    }

    fn sample(&self, rng: &mut SplitMix64) -> Result<Sample> {
        let mut rgb = vec![[0f32; 3]; SIZE * SIZE];
        let mut labels = vec![0u32; SIZE * SIZE];
        let base = [0; 3].map(|_| 0.3 + 0.3 * rng.next_f64() as f32);
        let at = |lo: usize, hi: usize, rng: &mut SplitMix64| lo + rng.below(hi - lo);
        let (cy, cx, r) = (
            at(8, 24, rng) as f32,
            at(8, 24, rng) as f32,
            at(4, 9, rng) as f32,
        );
        let (ry, rx) = (at(0, 20, rng), at(0, 20, rng));
        let (rh, rw) = (at(6, 12, rng), at(6, 12, rng));
        let red = [0.8 + 0.2 * rng.next_f64() as f32, 0.1, 0.15];
        let blue = [0.1, 0.2, 0.7 + 0.3 * rng.next_f64() as f32];
        for y in 0..SIZE {
            for x in 0..SIZE {
                let i = y * SIZE + x;
                let noise = [0; 3].map(|_| 0.15 * rng.normal() as f32);
                rgb[i] = [0, 1, 2].map(|c| base[c] + noise[c]);
                let d = ((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)).sqrt();
                if (ry..ry + rh).contains(&y) && (rx..rx + rw).contains(&x) {
                    rgb[i] = [0, 1, 2].map(|c| blue[c] + noise[c] * 0.3);
                    labels[i] = 2;
                } else if d < r {
                    rgb[i] = [0, 1, 2].map(|c| red[c] + noise[c] * 0.3);
                    labels[i] = if d > r - 1.0 { 255 } else { 1 };
                }
            }
        }
        let g = SIZE / P;
        let mut features = vec![0f32; E * g * g];
        for py in 0..g {
            for px in 0..g {
                let mut mean = [0f32; 3];
                for y in py * P..(py + 1) * P {
                    for x in px * P..(px + 1) * P {
                        (0..3).for_each(|c| mean[c] += rgb[y * SIZE + x][c] / (P * P) as f32);
                    }
                }
                for (e, w) in self.projection.iter().enumerate() {
                    let v: f32 = (0..3).map(|c| w[c] * mean[c]).sum::<f32>() + self.bias[e];
                    features[(e * g + py) * g + px] = v.tanh();
                }
            }
        }
        Ok(Sample::new(
            Tensor::from_vec(features, (E, g, g), &Device::Cpu)?,
            Tensor::from_vec(labels, (SIZE, SIZE), &Device::Cpu)?,
            P,
        )?)
    }
}

fn shapes_dataset(n: usize, seed: u64) -> Result<Vec<Sample>> {
    let mut rng = SplitMix64::new(seed);
    let shapes = Shapes::new(&mut SplitMix64::new(7));
    (0..n).map(|_| shapes.sample(&mut rng)).collect()
}

#[derive(Default)]
struct Log {
    steps: usize,
    epochs: Vec<EpochStats>,
}

impl TrainObserver for Log {
    fn on_step(&mut self, _: &dinoreg_heads::segmentation::StepStats) {
        self.steps += 1;
    }
    fn on_epoch(&mut self, stats: &EpochStats) {
        self.epochs.push(stats.clone());
    }
}

fn train_opts() -> TrainOptions {
    TrainOptions::default()
        .with_epochs(25)
        .with_batch_size(8)
        .with_learning_rate(1e-2)
        .with_warmup_steps(10)
        .with_seed(3)
}

#[test]
fn probe_training_beats_chance_and_repeats() -> Result {
    let train = shapes_dataset(48, 1)?;
    let val = shapes_dataset(16, 2)?;
    let config = ProbeConfig::linear(3, E).with_classes(ClassSet::from_names(vec![
        "ground".into(),
        "disc".into(),
        "box".into(),
    ])?);
    let mut log = Log::default();
    let start = std::time::Instant::now();
    let a = train_probe(&train, &val, &config, &train_opts(), &mut log)?;
    let elapsed = start.elapsed();
    assert_eq!(log.steps, 25 * 6);
    assert_eq!(log.epochs, a.history);
    let first = a.history[0].val_miou.unwrap_or(0.0);
    let last = a.history[24].val_miou.unwrap_or(0.0);
    eprintln!(
        "probe: val mIoU {first:.3} after epoch 1, {last:.3} after 25 (loss {:.3} -> {:.3}), {elapsed:?}",
        a.history[0].train_loss, a.history[24].train_loss
    );
    assert!(last > 0.6, "val mIoU {last} is not well above chance");
    assert!(a.history[24].train_loss < a.history[0].train_loss);
    // The same seed gives the same run, bit for bit.
    let b = train_probe(&train, &val, &config, &train_opts(), &mut ())?;
    assert_eq!(a.history, b.history);
    let (wa, wb) = (&a.head.params().conv_weight, &b.head.params().conv_weight);
    assert_eq!(
        wa.flatten_all()?.to_vec1::<f32>()?,
        wb.flatten_all()?.to_vec1::<f32>()?
    );
    // A different seed gives a different run.
    let c = train_probe(&train, &val, &config, &train_opts().with_seed(4), &mut ())?;
    assert_ne!(a.history[0].train_loss, c.history[0].train_loss);
    // The saved head reloads and predicts the same thing.
    let dir = tempdir("probe")?;
    let path = dir.path().join("probe.safetensors");
    a.head.save(&path, &a.head.metadata())?;
    let back = BnHead::load(&path, E, &Device::Cpu)?;
    assert_eq!(back.classes().map(|c| c.name(1)), Some("disc".to_string()));
    let cm = dinoreg_heads::segmentation::evaluate(&back, &val, 255)?;
    assert_eq!(cm.mean_iou(), a.history[24].val_miou);
    Ok(())
}

#[test]
fn training_refuses_bad_labels_and_pairs() -> Result {
    let good = shapes_dataset(2, 5)?;
    // A label outside 0..K that is not 255.
    let mut labels = vec![0u32; SIZE * SIZE];
    labels[5] = 7;
    let bad = Sample::new(
        good[0].features().clone(),
        Tensor::from_vec(labels, (SIZE, SIZE), &Device::Cpu)?,
        P,
    )?;
    let config = ProbeConfig::linear(3, E);
    let err = train_probe(&[bad], &[], &config, &train_opts(), &mut ()).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("label 7 is outside 0..3"), "{err}");
    // A label map of another image size.
    let err = Sample::new(
        good[0].features().clone(),
        Tensor::zeros((SIZE + 8, SIZE), DType::U8, &Device::Cpu)?,
        P,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("image and label sizes differ"),
        "{err}"
    );
    // Features of another width than the probe reads.
    let err = train_probe(
        &good,
        &[],
        &ProbeConfig::linear(3, 8),
        &train_opts(),
        &mut (),
    )
    .unwrap_err();
    assert!(err.to_string().contains("16 channels"), "{err}");
    Ok(())
}

#[test]
fn overlay_blends_colours_and_draws_a_legend() -> Result {
    let classes = ClassSet::parse("sky #0000ff\ngrass #00ff00\nunused #ff0000\n")?;
    let (h, w) = (4, 5);
    let rgb = vec![100u8; 3 * h * w];
    let labels: Vec<u32> = (0..h * w).map(|i| u32::from(i >= 15)).collect();
    let entries = legend_entries(&labels, &classes);
    assert_eq!(entries.len(), 2, "only classes present");
    assert_eq!(
        (entries[0].name.as_str(), entries[0].fraction),
        ("sky", 0.75)
    );
    let plain = overlay(
        &rgb,
        (h, w),
        &labels,
        &classes,
        &OverlayOptions::default().with_legend(false),
    )?;
    assert_eq!((plain.width, plain.height), (w, h));
    // alpha 0.6: 0.4 * 100 + 0.6 * 255 = 193 on the blue channel of a sky pixel.
    assert_eq!(&plain.data[..3], &[40, 40, 193]);
    let with_legend = overlay(&rgb, (h, w), &labels, &classes, &OverlayOptions::default())?;
    assert!(with_legend.width > w && with_legend.height >= h);
    // The legend's first swatch is sky blue.
    let x = w + 4 + 2;
    let i = 3 * (6 * with_legend.width + x);
    assert_eq!(&with_legend.data[i..i + 3], &[0, 0, 255]);
    let err = overlay(
        &rgb[..5],
        (h, w),
        &labels,
        &classes,
        &OverlayOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("image bytes"), "{err}");
    Ok(())
}
