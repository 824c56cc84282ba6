//! dinov2's segmentation evaluation inference, mmseg 0.x semantics (`EncoderDecoder.slide_inference`,
//! `whole_inference`, `inference` and `aug_test`, with dinov2's `CenterPadding` backbone hook), for
//! any model given as a closure.
//!
//! The closure maps pixels `(B, 3, h, w)` (normalised, already centre-padded when
//! [`InferenceOptions::center_padding`] is set) to logits `(B, K, h', w')` at any resolution, for
//! example a BNHead's patch-grid logits; they are resized bilinearly (align_corners=False) to the
//! unpadded window size, as mmseg's `encode_decode` does. It does not depend on a backbone. Its error
//! type `E` is the caller's (anything a [`crate::Error`] converts into, such as `dinoreg::Error` or
//! `anyhow::Error`); a model error is returned unchanged.
//!
//! Per image: for each scale ratio, resize keep-ratio (mmcv `rescale_size`) so the short side is
//! `short_side × ratio`; for each flip, cover the image with windows (whole, or sliding crop/stride
//! with overlapping logits averaged); resize the logits to the original size; flip back. One pass
//! returns those logits; several passes average their softmax maps (`aug_test`).
//!
//! Memory: mmseg builds each pass's `(B, K, H_s, W_s)` map at the scaled size (at ratio 3 on a
//! 640×480 photo with 150 classes, 2.9 GB). Here each window's logits go straight into the
//! original-size logits of the pass ([`super::accumulate`]: the resizes and the window average are
//! linear and separable), so the peak is the output `(B, K, H, W)` twice (the pass and the running
//! mean, once with one pass) plus one model call. The result equals mmseg's up to the order of
//! floating-point additions. The accumulation runs on the CPU (window logits are copied from the
//! model's device; they are small), and the result is returned on the pixels' device.
//!
//! One difference from mmseg: images are resized in floating point with PyTorch's bilinear kernel,
//! not with OpenCV on uint8 pixels (no rounding to integers).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use candle::{DType, Device, Tensor};

use super::accumulate::{add_window, softmax_add, AxisMap};
use super::options::InferenceOptions;
use super::windows::{checked_rescaled_size, WindowGrid};
use crate::ops::{center_pad, resize_bilinear};
use crate::{Error, Result};

/// Where the time of one inference went (see [`predict_timed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InferenceTimings {
    /// Inside the model closure (backbone and head).
    pub model: Duration,
    /// Resizing the image to each scale, flipping it, cutting and padding the windows.
    pub prepare: Duration,
    /// Bringing window logits to the CPU and adding them, resized, into the output-size logits.
    pub accumulate: Duration,
    /// The softmax and average of the passes, and the final log or conversion to a tensor.
    pub finish: Duration,
    /// How many windows were run (over all passes).
    pub windows: usize,
    /// How many times the model was called.
    pub model_calls: usize,
}

impl InferenceTimings {
    /// The sum of the timed parts.
    pub fn total(&self) -> Duration {
        self.model + self.prepare + self.accumulate + self.finish
    }
}

/// Starts a clock; [`Clock::lap`] adds the time since the last lap to a counter.
struct Clock(Instant);

impl Clock {
    fn start() -> Self {
        Self(Instant::now())
    }

    fn lap(&mut self, counter: &mut Duration) {
        let now = Instant::now();
        *counter += now - self.0;
        self.0 = now;
    }
}

/// The model as the internals see it: heads errors only (see [`with_model`]).
type Model<'a> = &'a dyn Fn(&Tensor) -> Result<Tensor>;

/// Runs `body` with `model` adapted to return heads errors; a model error comes back unchanged.
fn with_model<F, E, T>(
    model: F,
    body: impl FnOnce(Model<'_>) -> Result<T>,
) -> std::result::Result<T, E>
where
    F: Fn(&Tensor) -> std::result::Result<Tensor, E>,
    E: From<Error>,
{
    let failure = RefCell::new(None);
    let adapted = |x: &Tensor| {
        model(x).map_err(|e| {
            *failure.borrow_mut() = Some(e);
            Error::input("model", "the model failed")
        })
    };
    let result = body(&adapted);
    result.map_err(|e| failure.into_inner().unwrap_or_else(|| E::from(e)))
}

/// Logits of one pass at the output size, `(B, K, H, W)` row-major f32, with what is known of them.
struct PassLogits {
    data: Vec<f32>,
    batch: usize,
    size: (usize, usize),
    /// The class count and dtype of the model's logits, once it has been called.
    classes: Option<(usize, DType)>,
}

impl PassLogits {
    fn new(batch: usize, size: (usize, usize)) -> Self {
        Self {
            data: Vec::new(),
            batch,
            size,
            classes: None,
        }
    }

    /// Zeroes the logits for another pass.
    fn clear(&mut self) {
        self.data.iter_mut().for_each(|v| *v = 0.0);
    }

    /// Checks the model's logits `(n · B, K, g_h, g_w)` for `n` windows and returns their grid
    /// `(g_h, g_w)`; the first ones set the class count and dtype, and allocate.
    fn check(&mut self, logits: &Tensor, windows: usize) -> Result<(usize, usize)> {
        let b = windows * self.batch;
        let known = self.classes.map(|(k, _)| k);
        let dims = logits.dims();
        match *dims {
            [lb, lk, gh, gw]
                if lb == b && lk > 0 && gh > 0 && gw > 0 && known.is_none_or(|k| k == lk) =>
            {
                if known.is_none() {
                    self.classes = Some((lk, logits.dtype()));
                    self.data = vec![0f32; self.batch * lk * self.size.0 * self.size.1];
                }
                Ok((gh, gw))
            }
            _ => Err(Error::input(
                "model output",
                format!(
                    "shape {dims:?} for a batch of {b}; expected (B, K, h, w) with B = {b}{}",
                    known.map(|k| format!(" and K = {k}")).unwrap_or_default()
                ),
            )),
        }
    }

    fn classes(&self) -> usize {
        self.classes.map_or(0, |(k, _)| k)
    }

    fn into_tensor(self, device: &Device) -> Result<Tensor> {
        let (k, dtype) = self
            .classes
            .ok_or_else(|| Error::option("ratios", "no pass was run"))?;
        let shape = (self.batch, k, self.size.0, self.size.1);
        Ok(Tensor::from_vec(self.data, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)?)
    }
}

/// Runs the passes of `opts` over `pixels`; what each one needs.
struct Runner<'a> {
    opts: &'a InferenceOptions,
    model: Model<'a>,
    timings: InferenceTimings,
}

impl Runner<'_> {
    /// One pass over `scaled` `(B, 3, H_s, W_s)` (already flipped when `flip`), its logits added
    /// into `out` at the output size, mirrored back when `flip`.
    fn pass(&mut self, scaled: &Tensor, flip: bool, out: &mut PassLogits) -> Result<()> {
        let (b, _, hs, ws) = scaled.dims4()?;
        let grid = WindowGrid::new((hs, ws), &self.opts.window)?;
        let (wh, ww) = grid.window_size();
        let (h, w) = out.size;
        let mut row_maps: Vec<Option<AxisMap>> = vec![None; grid.rows.len()];
        let mut col_maps: Vec<Option<AxisMap>> = vec![None; grid.cols.len()];
        let order: Vec<usize> = (0..grid.len()).collect();
        let mut clock = Clock::start();
        for chunk in order.chunks(self.opts.windows_per_call) {
            let crops = chunk
                .iter()
                .map(|&n| {
                    let (i, j) = grid.index(n);
                    scaled
                        .narrow(2, grid.rows[i].0, wh)?
                        .narrow(3, grid.cols[j].0, ww)
                })
                .collect::<candle::Result<Vec<_>>>()?;
            let crops = if crops.len() == 1 {
                crops[0].clone()
            } else {
                Tensor::cat(&crops, 0)?
            };
            let input = match self.opts.center_padding {
                Some(p) => center_pad(&crops, p)?,
                None => crops,
            };
            clock.lap(&mut self.timings.prepare);
            let logits = (self.model)(&input)?;
            clock.lap(&mut self.timings.model);
            self.timings.model_calls += 1;
            self.timings.windows += chunk.len();
            let (gh, gw) = out.check(&logits, chunk.len())?;
            let values = logits
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let per_window = b * out.classes() * gh * gw;
            for (m, &n) in chunk.iter().enumerate() {
                let (i, j) = grid.index(n);
                let rows = cached(&mut row_maps[i], gh, || {
                    AxisMap::new(grid.rows[i], gh, &grid.row_counts, h, false)
                });
                let cols = cached(&mut col_maps[j], gw, || {
                    AxisMap::new(grid.cols[j], gw, &grid.col_counts, w, flip)
                });
                let window = &values[m * per_window..(m + 1) * per_window];
                add_window(&mut out.data, w, window, rows, cols);
            }
            clock.lap(&mut self.timings.accumulate);
        }
        Ok(())
    }

    /// Runs every pass, handing each one's logits (at the input size, flipped back) to `sink`.
    fn passes(
        &mut self,
        pixels: &Tensor,
        out: &mut PassLogits,
        mut sink: impl FnMut(&mut PassLogits, &mut InferenceTimings) -> Result<()>,
    ) -> Result<()> {
        self.opts.validate()?;
        let (_, _, h, w) = pixels.dims4()?;
        let flips: &[bool] = if self.opts.flip {
            &[false, true]
        } else {
            &[false]
        };
        for &ratio in &self.opts.ratios {
            let mut clock = Clock::start();
            let size = checked_rescaled_size((h, w), self.opts.short_side, ratio)?;
            let scaled = resize_bilinear(pixels, size, false)?;
            clock.lap(&mut self.timings.prepare);
            for &flip in flips {
                let mut clock = Clock::start();
                let input = if flip {
                    scaled.flip(&[3])?
                } else {
                    scaled.clone()
                };
                clock.lap(&mut self.timings.prepare);
                out.clear();
                self.pass(&input, flip, out)?;
                sink(out, &mut self.timings)?;
            }
        }
        Ok(())
    }
}

/// The cached map when it was built for a grid of `g`, else a new one.
fn cached(slot: &mut Option<AxisMap>, g: usize, build: impl FnOnce() -> AxisMap) -> &AxisMap {
    if slot.as_ref().is_some_and(|m| m.grid != g) {
        *slot = None;
    }
    slot.get_or_insert_with(build)
}

/// What [`run`] computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    /// One pass's logits, or the log of the mean softmax of several.
    Logits,
    /// The mean softmax.
    Probabilities,
}

fn run(
    pixels: &Tensor,
    opts: &InferenceOptions,
    model: Model<'_>,
    output: Output,
) -> Result<(Tensor, InferenceTimings)> {
    opts.validate()?;
    let (b, _, h, w) = pixels.dims4()?;
    let mut runner = Runner {
        opts,
        model,
        timings: InferenceTimings::default(),
    };
    let mut pass = PassLogits::new(b, (h, w));
    if opts.passes() == 1 {
        runner.passes(pixels, &mut pass, |_, _| Ok(()))?;
        let mut clock = Clock::start();
        if output == Output::Probabilities {
            let mut probs = vec![0f32; pass.data.len()];
            let classes = pass.classes();
            softmax_add(&mut pass.data, &mut probs, classes, h * w);
            pass.data = probs;
        }
        let logits = pass.into_tensor(pixels.device())?;
        clock.lap(&mut runner.timings.finish);
        return Ok((logits, runner.timings));
    }
    let mut sum: Vec<f32> = Vec::new();
    runner.passes(pixels, &mut pass, |pass, timings| {
        let mut clock = Clock::start();
        if sum.is_empty() {
            sum = vec![0f32; pass.data.len()];
        }
        let classes = pass.classes();
        softmax_add(&mut pass.data, &mut sum, classes, h * w);
        clock.lap(&mut timings.finish);
        Ok(())
    })?;
    let mut clock = Clock::start();
    let scale = 1.0 / opts.passes() as f32;
    sum.iter_mut().for_each(|p| {
        *p *= scale;
        if output == Output::Logits {
            *p = p.clamp(f32::MIN_POSITIVE, 1.0).ln();
        }
    });
    pass.data = sum;
    let result = pass.into_tensor(pixels.device())?;
    clock.lap(&mut runner.timings.finish);
    Ok((result, runner.timings))
}

/// Logits `(B, K, H, W)` of `pixels` `(B, 3, H, W)` at their own size: mmseg's `whole_inference` or
/// `slide_inference` (before the resize to the original image), per `opts.window`; the ratios, flip
/// and short side of `opts` are not used.
pub fn window_logits<F, E>(
    pixels: &Tensor,
    opts: &InferenceOptions,
    model: F,
) -> std::result::Result<Tensor, E>
where
    F: Fn(&Tensor) -> std::result::Result<Tensor, E>,
    E: From<Error>,
{
    with_model(model, |m| {
        opts.validate()?;
        let (b, _, h, w) = pixels.dims4()?;
        let mut runner = Runner {
            opts,
            model: m,
            timings: InferenceTimings::default(),
        };
        let mut out = PassLogits::new(b, (h, w));
        runner.pass(pixels, false, &mut out)?;
        out.into_tensor(pixels.device())
    })
}

/// The mean over all passes of the softmax maps `(B, K, H, W)` (mmseg's `aug_test` score map;
/// with one pass, the softmax of its logits).
pub fn predict_probabilities<F, E>(
    pixels: &Tensor,
    opts: &InferenceOptions,
    model: F,
) -> std::result::Result<Tensor, E>
where
    F: Fn(&Tensor) -> std::result::Result<Tensor, E>,
    E: From<Error>,
{
    with_model(
        model,
        |m| Ok(run(pixels, opts, m, Output::Probabilities)?.0),
    )
}

/// Logits `(B, K, H, W)` at the input size: with one pass, the window logits resized to the input
/// (mmseg's `inference` before its softmax); with several, the log of the mean softmax map (whose
/// softmax and argmax are `aug_test`'s).
pub fn predict<F, E>(
    pixels: &Tensor,
    opts: &InferenceOptions,
    model: F,
) -> std::result::Result<Tensor, E>
where
    F: Fn(&Tensor) -> std::result::Result<Tensor, E>,
    E: From<Error>,
{
    Ok(predict_timed(pixels, opts, model)?.0)
}

/// [`predict`], and where its time went.
pub fn predict_timed<F, E>(
    pixels: &Tensor,
    opts: &InferenceOptions,
    model: F,
) -> std::result::Result<(Tensor, InferenceTimings), E>
where
    F: Fn(&Tensor) -> std::result::Result<Tensor, E>,
    E: From<Error>,
{
    with_model(model, |m| run(pixels, opts, m, Output::Logits))
}
