//! The streaming segmentation inference against mmseg 0.x's inference written the direct way (one
//! full-resolution `(B, K, H_s, W_s)` canvas per pass, windows padded into it and summed, divided by
//! the count, resized to the input, softmax, flip back, mean): equal to 1e-5 on configurations the
//! Python fixtures do not reach (up- and down-scaling, flips, crops larger than the image, windows
//! far smaller than a downscaled pixel, batches of images and of windows, many classes).

use candle::{DType, Device, Tensor};
use dinoreg_heads::ops::{center_pad, resize_bilinear};
use dinoreg_heads::segmentation::{
    predict, predict_probabilities, predict_timed, rescaled_size, window_logits, InferenceOptions,
    Window,
};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const P: usize = 4;

/// A stand-in model: a fixed random 1×1 convolution to `classes` channels, average-pooled by `P`
/// (logits on the patch grid of the padded window, as a BNHead gives).
struct Model {
    weight: Tensor,
    bias: Tensor,
}

impl Model {
    fn new(classes: usize, seed: u64) -> Result<Self> {
        let mut rng = dinoreg_heads::segmentation::SplitMix64::new(seed);
        let weight: Vec<f32> = (0..classes * 3).map(|_| rng.normal() as f32).collect();
        let bias: Vec<f32> = (0..classes).map(|_| rng.normal() as f32).collect();
        Ok(Self {
            weight: Tensor::from_vec(weight, (classes, 3, 1, 1), &Device::Cpu)?,
            bias: Tensor::from_vec(bias, (1, classes, 1, 1), &Device::Cpu)?,
        })
    }

    fn run(&self, x: &Tensor) -> dinoreg_heads::Result<Tensor> {
        Ok(x.conv2d(&self.weight, 0, 1, 1, 1)?
            .broadcast_add(&self.bias)?
            .avg_pool2d(P)?)
    }
}

fn random_pixels(b: usize, h: usize, w: usize, seed: u64) -> Result<Tensor> {
    let mut rng = dinoreg_heads::segmentation::SplitMix64::new(seed);
    let values: Vec<f32> = (0..b * 3 * h * w).map(|_| rng.normal() as f32).collect();
    Ok(Tensor::from_vec(values, (b, 3, h, w), &Device::Cpu)?)
}

/// mmseg's spans along one axis.
fn spans(size: usize, crop: usize, stride: usize) -> Vec<(usize, usize)> {
    let grids = (size + stride).saturating_sub(crop + 1) / stride + 1;
    (0..grids)
        .map(|i| {
            let end = (i * stride + crop).min(size);
            (end.saturating_sub(crop), end)
        })
        .collect()
}

/// mmseg's `slide_inference` / `whole_inference` on `pixels` at their own size, the direct way.
fn direct_window_logits(pixels: &Tensor, opts: &InferenceOptions, model: &Model) -> Result<Tensor> {
    let (b, _, h, w) = pixels.dims4()?;
    let (rows, cols) = match opts.window {
        Window::Whole => (vec![(0, h)], vec![(0, w)]),
        Window::Slide { crop, stride } => (spans(h, crop.0, stride.0), spans(w, crop.1, stride.1)),
    };
    let mut preds: Option<Tensor> = None;
    let mut count = vec![0f32; h * w];
    for &(y1, y2) in &rows {
        for &(x1, x2) in &cols {
            let crop = pixels.narrow(2, y1, y2 - y1)?.narrow(3, x1, x2 - x1)?;
            let input = match opts.center_padding {
                Some(p) => center_pad(&crop, p)?,
                None => crop,
            };
            let logits = resize_bilinear(&model.run(&input)?, (y2 - y1, x2 - x1), false)?
                .pad_with_zeros(2, y1, h - y2)?
                .pad_with_zeros(3, x1, w - x2)?;
            preds = Some(match preds {
                None => logits,
                Some(p) => (p + logits)?,
            });
            for y in y1..y2 {
                count[y * w + x1..y * w + x2]
                    .iter_mut()
                    .for_each(|c| *c += 1.0);
            }
        }
    }
    let count = Tensor::from_vec(count, (1, 1, h, w), &Device::Cpu)?;
    let preds = preds.ok_or("no window")?;
    assert_eq!(preds.dim(0)?, b);
    Ok(preds.broadcast_div(&count)?)
}

/// mmseg's `aug_test` (mean softmax) and, with one pass, `inference`'s logits, the direct way.
fn direct(pixels: &Tensor, opts: &InferenceOptions, model: &Model) -> Result<(Tensor, Tensor)> {
    let (_, _, h, w) = pixels.dims4()?;
    let flips: &[bool] = if opts.flip { &[false, true] } else { &[false] };
    let mut sum: Option<Tensor> = None;
    let mut last = None;
    for &ratio in &opts.ratios {
        let size = rescaled_size((h, w), opts.short_side, ratio);
        let scaled = resize_bilinear(pixels, size, false)?;
        for &flip in flips {
            let input = if flip {
                scaled.flip(&[3])?
            } else {
                scaled.clone()
            };
            let mut logits =
                resize_bilinear(&direct_window_logits(&input, opts, model)?, (h, w), false)?;
            if flip {
                logits = logits.flip(&[3])?;
            }
            let p = candle_nn::ops::softmax(&logits, 1)?;
            sum = Some(match sum {
                None => p,
                Some(s) => (s + p)?,
            });
            last = Some(logits);
        }
    }
    let mean = (sum.ok_or("no pass")? / opts.passes() as f64)?;
    Ok((mean, last.ok_or("no pass")?))
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims());
    Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?)
}

/// Every case: (name, batch, image (h, w), options).
fn cases() -> Vec<(&'static str, usize, (usize, usize), InferenceOptions)> {
    let base = InferenceOptions::linear().with_center_padding(Some(P));
    let slide = |crop, stride| Window::Slide { crop, stride };
    vec![
        (
            "slide at input size",
            2,
            (23, 31),
            base.clone()
                .with_short_side(None)
                .with_window(slide((12, 16), (8, 10))),
        ),
        (
            "upscaled, flipped, three scales",
            1,
            (17, 26),
            base.clone()
                .with_short_side(Some(20))
                .with_ratios(vec![1.0, 1.32, 1.73])
                .with_flip(true)
                .with_window(slide((14, 14), (9, 9)))
                .with_windows_per_call(3),
        ),
        (
            "downscaled far below the window size",
            1,
            (61, 47),
            base.clone()
                .with_short_side(Some(9))
                .with_ratios(vec![0.5, 1.0])
                .with_window(slide((3, 2), (1, 1)))
                .with_windows_per_call(4),
        ),
        (
            "crop larger than the image, flipped",
            2,
            (13, 10),
            base.clone()
                .with_short_side(None)
                .with_ratios(vec![1.0, 2.0])
                .with_flip(true)
                .with_window(slide((64, 64), (32, 32))),
        ),
        (
            "whole image, two scales",
            1,
            (19, 28),
            base.clone()
                .with_short_side(Some(16))
                .with_ratios(vec![1.0, 1.5])
                .with_window(Window::Whole),
        ),
    ]
}

#[test]
fn streaming_equals_the_direct_mmseg_inference() -> Result {
    for (k, seed) in [(3, 1), (37, 2)] {
        let model = Model::new(k, seed)?;
        let run = |x: &Tensor| model.run(x);
        for (name, b, (h, w), opts) in cases() {
            let pixels = random_pixels(b, h, w, seed + 10)?;
            let (mean, last) = direct(&pixels, &opts, &model)?;
            let probs = predict_probabilities(&pixels, &opts, run)?;
            assert_eq!(probs.dims(), [b, k, h, w], "{name}");
            let d = max_diff(&probs, &mean)?;
            assert!(d <= 1e-5, "{name}, K = {k}: probabilities differ by {d}");
            let (logits, timings) = predict_timed(&pixels, &opts, run)?;
            if opts.passes() == 1 {
                let scale = last.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
                let d = max_diff(&logits, &last)?;
                assert!(d <= 1e-5 * scale, "{name}, K = {k}: logits differ by {d}");
            } else {
                let d = max_diff(&logits.exp()?, &mean)?;
                assert!(
                    d <= 1e-5,
                    "{name}, K = {k}: log-probabilities differ by {d}"
                );
            }
            // One model call per `windows_per_call` windows of each pass.
            assert!(timings.windows >= opts.passes(), "{name}: {timings:?}");
            assert!(timings.model_calls <= timings.windows);
            assert!(timings.total() >= timings.model);
        }
    }
    Ok(())
}

#[test]
fn window_logits_are_the_slide_average_at_the_input_size() -> Result {
    let model = Model::new(5, 3)?;
    let pixels = random_pixels(2, 21, 30, 4)?;
    for window in [
        Window::Slide {
            crop: (12, 16),
            stride: (5, 7),
        },
        Window::Whole,
    ] {
        let opts = InferenceOptions::linear()
            .with_center_padding(Some(P))
            .with_window(window);
        let got = window_logits(&pixels, &opts, |x: &Tensor| model.run(x))?;
        let want = direct_window_logits(&pixels, &opts, &model)?;
        let d = max_diff(&got, &want)?;
        assert!(d <= 1e-5, "{window:?}: {d}");
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_windows_per_call_and_keep_the_dtype() -> Result {
    let model = Model::new(4, 5)?;
    let pixels = random_pixels(1, 30, 41, 6)?;
    let opts = InferenceOptions::linear()
        .with_center_padding(Some(P))
        .with_short_side(None)
        .with_window(Window::Slide {
            crop: (12, 12),
            stride: (5, 5),
        });
    let run = |x: &Tensor| model.run(x);
    let one = predict(&pixels, &opts.clone().with_windows_per_call(1), run)?;
    for n in [2, 5, 1000] {
        let many = predict(&pixels, &opts.clone().with_windows_per_call(n), run)?;
        assert_eq!(max_diff(&one, &many)?, 0.0, "{n} windows per call");
    }
    // Logits come back in the model's dtype.
    let half =
        |x: &Tensor| -> dinoreg_heads::Result<Tensor> { Ok(model.run(x)?.to_dtype(DType::F16)?) };
    assert_eq!(predict(&pixels, &opts, half)?.dtype(), DType::F16);
    Ok(())
}
