//! Segmentation against tests/fixtures/segmentation (made by tests/fixtures/gen_segmentation.py):
//! BNHead "linear" and "ms" from mmseg-layout `.pth` files equal to a PyTorch BNHead; slide, whole and
//! multi-scale + flip inference equal to mmseg 0.x's around a stand-in backbone; safetensors heads
//! round-trip; a probe trained on generated shapes beats chance, repeatably; bad inputs are refused.

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use dinoreg_heads::segmentation::{
    center_pad_amounts, predict, predict_probabilities, rescaled_size, slide_windows,
    window_logits, BnHead, ClassSet, ConfusionMatrix, InferenceOptions, Window,
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
    for (name, which, layers) in [
        ("linear", vec![3], vec![-1]),
        ("ms", vec![0, 1, 2, 3], vec![-4, -3, -2, -1]),
    ] {
        let head = BnHead::load(fixtures().join(format!("bn_{name}.pth")), E, &Device::Cpu)?;
        assert_eq!(
            head.layers(),
            layers.as_slice(),
            "{name}: layers from C_in / E"
        );
        assert_eq!(head.request().layers, layers);
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
    let path = dir.join("head.safetensors");
    head.save(&path, &meta)?;
    let back = BnHead::load(&path, E, &Device::Cpu)?;
    assert_eq!(back.layers(), head.layers());
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

fn tempdir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("dinoreg-seg-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
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
fn slide_geometry_follows_mmseg() {
    // h_grids = max(H - crop + stride - 1, 0) // stride + 1, last window flush with the border.
    let w = slide_windows((19, 26), (12, 16), (8, 10));
    assert_eq!(w.len(), 2 * 2);
    assert_eq!(w[0], (0, 12, 0, 16));
    assert_eq!(w[3], (7, 19, 10, 26));
    // A crop larger than the image gives one window, the whole image.
    assert_eq!(slide_windows((5, 6), (8, 8), (4, 4)), vec![(0, 5, 0, 6)]);
    // dinov2's padding examples (heads.md 0.3) and mmcv's keep-ratio resize.
    assert_eq!(center_pad_amounts(512, 14), (3, 3));
    assert_eq!(center_pad_amounts(640, 14), (2, 2));
    assert_eq!(center_pad_amounts(480, 14), (5, 5));
    assert_eq!(rescaled_size((480, 640), Some(512), 1.0), (512, 683));
    assert_eq!(rescaled_size((480, 640), Some(640), 1.32), (844, 1125));
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
