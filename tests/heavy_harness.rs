//! Measurement harness for the heavy pipelines (issue 10): multi-scale segmentation and LOST /
//! TokenCut at full resolution, with the time split between the backbone, the head and the rest, and
//! the process's peak RSS. Every test is `#[ignore]`d and reads its setting from the environment, so
//! run one per process, in release:
//!
//! ```text
//! HEAVY_MODEL=/tmp/vits HEAVY_HEAD=head.pth HEAVY_IMAGE=photo.png \
//!   cargo test --release --test heavy_harness -- --ignored --exact segment --nocapture
//! ```
//!
//! - `segment`: `HEAVY_MODEL` (a folder with `config.json` and `model.safetensors`), `HEAVY_HEAD`
//!   (a BNHead `.pth`), `HEAVY_IMAGE`; optional `HEAVY_RATIOS` (comma-separated, default the ms
//!   preset's), `HEAVY_FLIP` (1/0, default 1), `HEAVY_WPC` (windows per call), `HEAVY_DIRECT=1` (the
//!   pre-streaming algorithm: a full-resolution canvas per pass, as mmseg and the earlier code did).
//! - `discover`: `HEAVY_MODEL`, `HEAVY_IMAGE`, `HEAVY_METHOD` (`lost`, `tokencut` or `none` for the
//!   backbone alone; `lost-direct` and `tokencut-direct`: the pre-blocking algorithms, a full N × N
//!   gram and, for TokenCut, the dense f64 Laplacian and its eigendecomposition).
//!
//! Each prints one JSON line: seconds per part and `peak_rss_mb` (`VmHWM`).

use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle::{Device, Tensor};
use dinoreg::heads::discovery::{pad_to_patches, Lost, LostOptions, TokenCut, TokenCutOptions};
use dinoreg::heads::ops::{center_pad, resize_bilinear};
use dinoreg::heads::segmentation::{
    predict_timed, rescaled_size, BnHead, InferenceOptions, Window,
};
use dinoreg::heads::Head;
use dinoreg::preprocess::{ImageProcessor, ProcessorConfig, IMAGENET_MEAN, IMAGENET_STD};
use dinoreg::{Dinov2Model, LoadOptions, Vit};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn env(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn load_model() -> Result<Dinov2Model> {
    let dir = PathBuf::from(env("HEAVY_MODEL")?);
    Ok(Dinov2Model::load(
        dir.join("config.json"),
        &[dir.join("model.safetensors")],
        &LoadOptions::default(),
    )?)
}

/// The image at its own size, normalised with ImageNet's mean and std, `(1, 3, H, W)`.
fn load_pixels() -> Result<Tensor> {
    let processor = ImageProcessor::new(
        ProcessorConfig::default()
            .with_resize(false)
            .with_center_crop(false)
            .with_mean_std(IMAGENET_MEAN, IMAGENET_STD),
    );
    let rgb = processor.read(env("HEAVY_IMAGE")?)?;
    let array = processor.to_pixels(&rgb);
    let (c, h, w) = array.dim();
    let values: Vec<f32> = array.iter().copied().collect();
    Ok(Tensor::from_vec(values, (1, c, h, w), &Device::Cpu)?)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Adds the time `f` takes to `counter`.
fn timed<T>(counter: &Cell<Duration>, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    counter.set(counter.get() + start.elapsed());
    out
}

#[test]
#[ignore = "measurement harness: run by hand, see the module docs"]
fn segment() -> Result {
    let model = load_model()?;
    let width = model.config().hidden_size;
    let patch = model.config().patch_size;
    let head = BnHead::load(env("HEAVY_HEAD")?, width, &Device::Cpu)?;
    let pixels = load_pixels()?;
    let mut opts = InferenceOptions::multi_scale().with_center_padding(Some(patch));
    if let Ok(r) = std::env::var("HEAVY_RATIOS") {
        opts.ratios = r
            .split(',')
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()?;
    }
    if let Ok(f) = std::env::var("HEAVY_FLIP") {
        opts.flip = f == "1";
    }
    if let Ok(n) = std::env::var("HEAVY_WPC") {
        opts.windows_per_call = n.parse()?;
    }
    let direct_mode = std::env::var("HEAVY_DIRECT").is_ok_and(|v| v == "1");
    let (backbone, head_time) = (Cell::new(Duration::ZERO), Cell::new(Duration::ZERO));
    let calls = Cell::new(0usize);
    let run = |x: &Tensor| -> dinoreg::heads::Result<Tensor> {
        calls.set(calls.get() + 1);
        let features = timed(&backbone, || model.features(x, &head.request()))
            .map_err(|e| dinoreg::heads::Error::input("backbone", e.to_string()))?;
        timed(&head_time, || head.grid_logits(&features))
    };
    let start = Instant::now();
    let (logits, split) = if direct_mode {
        (direct(&pixels, &opts, &run)?, None)
    } else {
        let (logits, t) = predict_timed(&pixels, &opts, run)?;
        (logits, Some(t))
    };
    if let Some(t) = split {
        println!(
            "{{\"prepare_s\": {:.3}, \"accumulate_s\": {:.3}, \"softmax_mean_s\": {:.3}, \"windows\": {}}}",
            secs(t.prepare),
            secs(t.accumulate),
            secs(t.finish),
            t.windows
        );
    }
    let total = start.elapsed();
    let rest = total.saturating_sub(backbone.get() + head_time.get());
    println!(
        "{{\"mode\": \"{}\", \"image\": {:?}, \"classes\": {}, \"ratios\": {:?}, \"flip\": {}, \"windows_per_call\": {}, \"model_calls\": {}, \"total_s\": {:.2}, \"backbone_s\": {:.2}, \"head_s\": {:.3}, \"resize_accumulate_s\": {:.3}, \"peak_rss_mb\": {:.0}}}",
        if direct_mode { "direct" } else { "streaming" },
        pixels.dims(),
        logits.dim(1)?,
        opts.ratios,
        opts.flip,
        opts.windows_per_call,
        calls.get(),
        secs(total),
        secs(backbone.get()),
        secs(head_time.get()),
        secs(rest),
        peak_rss_mb()
    );
    Ok(())
}

type Model<'a> = &'a dyn Fn(&Tensor) -> dinoreg::heads::Result<Tensor>;

/// The pre-streaming inference (as the library computed it before, and mmseg does): for each pass a
/// full-resolution canvas at the scaled size, windows padded into it and summed, divided by the
/// count, resized to the input, softmax, mean; the log of the mean.
fn direct(pixels: &Tensor, opts: &InferenceOptions, model: Model<'_>) -> Result<Tensor> {
    let (_, _, h, w) = pixels.dims4()?;
    let flips: &[bool] = if opts.flip { &[false, true] } else { &[false] };
    let mut sum: Option<Tensor> = None;
    for &ratio in &opts.ratios {
        let scaled = resize_bilinear(pixels, rescaled_size((h, w), opts.short_side, ratio), false)?;
        for &flip in flips {
            let input = if flip {
                scaled.flip(&[3])?
            } else {
                scaled.clone()
            };
            let mut logits = resize_bilinear(&direct_slide(&input, opts, model)?, (h, w), false)?;
            if flip {
                logits = logits.flip(&[3])?;
            }
            let p = candle_nn::ops::softmax(&logits, 1)?;
            sum = Some(match sum {
                None => p,
                Some(s) => (s + p)?,
            });
        }
    }
    let mean = (sum.ok_or("no pass")? / opts.passes() as f64)?;
    Ok(mean.clamp(f32::MIN_POSITIVE, 1f32)?.log()?)
}

fn direct_slide(pixels: &Tensor, opts: &InferenceOptions, model: Model<'_>) -> Result<Tensor> {
    let (_, _, h, w) = pixels.dims4()?;
    let Window::Slide { crop, stride } = opts.window else {
        return Err("the direct harness path slides".into());
    };
    let spans = |size: usize, c: usize, s: usize| -> Vec<(usize, usize)> {
        let grids = (size + s).saturating_sub(c + 1) / s + 1;
        (0..grids)
            .map(|i| {
                let end = (i * s + c).min(size);
                (end.saturating_sub(c), end)
            })
            .collect()
    };
    let mut preds: Option<Tensor> = None;
    let mut count = vec![0f32; h * w];
    for (y1, y2) in spans(h, crop.0, stride.0) {
        for (x1, x2) in spans(w, crop.1, stride.1) {
            let window = pixels.narrow(2, y1, y2 - y1)?.narrow(3, x1, x2 - x1)?;
            let input = match opts.center_padding {
                Some(p) => center_pad(&window, p)?,
                None => window,
            };
            let logits = resize_bilinear(&model(&input)?, (y2 - y1, x2 - x1), false)?
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
    Ok(preds.ok_or("no window")?.broadcast_div(&count)?)
}

#[test]
#[ignore = "measurement harness: run by hand, see the module docs"]
fn discover() -> Result {
    let model = load_model()?;
    let patch = model.config().patch_size;
    let method = env("HEAVY_METHOD")?;
    let pixels = load_pixels()?;
    let (padded, size) = pad_to_patches(&pixels, patch)?;
    let lost = Lost::new(LostOptions::default())?;
    let tokencut = TokenCut::new(TokenCutOptions::default())?;
    let start = Instant::now();
    let features = model.features(&padded, &lost.request())?;
    let backbone = start.elapsed();
    let rss_backbone = peak_rss_mb();
    let start = Instant::now();
    let found = match method.as_str() {
        "lost" => lost.discover(&features, size)?,
        "tokencut" => tokencut.discover(&features, size)?,
        "lost-direct" | "tokencut-direct" => {
            let (seed, fg) = direct_discovery(&features.maps[0].get(0)?, &method)?;
            println!("direct: seed {seed}, {fg} foreground patches");
            Vec::new()
        }
        _ => Vec::new(),
    };
    let head = start.elapsed();
    let (_, _, gh, gw) = features.maps[0].dims4()?;
    println!(
        "{{\"method\": \"{method}\", \"image\": {:?}, \"patches\": {}, \"backbone_s\": {:.2}, \"head_s\": {:.2}, \"peak_rss_after_backbone_mb\": {rss_backbone:.0}, \"peak_rss_mb\": {:.0}, \"box\": {:?}, \"seed\": {:?}}}",
        padded.dims(),
        gh * gw,
        secs(backbone),
        secs(head),
        peak_rss_mb(),
        found.first().map(|d| d.bbox),
        found.first().map(|d| d.seed),
    );
    Ok(())
}

/// The pre-blocking LOST (degree, seed, expansion map) and TokenCut (dense eigenvector) on one
/// image's map `(C, h, w)`, as the library computed them before: the seed and the foreground count.
fn direct_discovery(map: &Tensor, method: &str) -> Result<(usize, usize)> {
    let (c, h, w) = map.dims3()?;
    let n = h * w;
    let mut feats = map.reshape((c, n))?.t()?.contiguous()?;
    let tokencut = method == "tokencut-direct";
    if tokencut {
        let norm = feats.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        feats = feats.broadcast_div(&norm)?;
    }
    let gram = feats.matmul(&feats.t()?)?.flatten_all()?.to_vec1::<f32>()?;
    if !tokencut {
        let degree: Vec<usize> = (0..n)
            .map(|p| (0..n).filter(|&q| q != p && gram[p * n + q] > 0.0).count())
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&p| degree[p]);
        let seed = order[0];
        let similars: Vec<usize> = order
            .iter()
            .take(100)
            .copied()
            .filter(|&q| gram[seed * n + q] > 0.0)
            .collect();
        let fg = (0..n)
            .filter(|&j| {
                similars
                    .iter()
                    .map(|&q| gram[q * n + j] as f64)
                    .sum::<f64>()
                    > 0.0
            })
            .count();
        return Ok((seed, fg));
    }
    let weight = |a: f32| if a > 0.2 { 1.0 } else { 1e-5 };
    let wm = faer::Mat::<f64>::from_fn(n, n, |i, j| weight(gram[i * n + j]));
    let inv_sqrt_d: Vec<f64> = (0..n)
        .map(|i| 1.0 / (0..n).map(|j| wm[(i, j)]).sum::<f64>().sqrt())
        .collect();
    let laplacian = faer::Mat::<f64>::from_fn(n, n, |i, j| {
        let identity = if i == j { 1.0 } else { 0.0 };
        identity - inv_sqrt_d[i] * wm[(i, j)] * inv_sqrt_d[j]
    });
    let evd = laplacian
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| format!("{e:?}"))?;
    let z = evd.U().col(1);
    let y: Vec<f64> = (0..n).map(|i| inv_sqrt_d[i] * z[i]).collect();
    let mean = y.iter().sum::<f64>() / n as f64;
    let seed = (0..n).fold(0, |b, i| if y[i].abs() > y[b].abs() { i } else { b });
    let fg = y
        .iter()
        .filter(|&&v| (v > mean) == (y[seed] > mean))
        .count();
    Ok((seed, fg))
}
