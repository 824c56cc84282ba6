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
//! One difference from mmseg: images are resized in floating point with PyTorch's bilinear kernel,
//! not with OpenCV on uint8 pixels (no rounding to integers).

use std::cell::RefCell;

use candle::Tensor;

use crate::ops::center_pad;
use crate::ops::resize_bilinear;
use crate::{Error, Result};

/// How an image is covered by model calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// One call on the whole image (mmseg `mode="whole"`).
    Whole,
    /// Overlapping `crop` windows every `stride` pixels, `(height, width)` each (mmseg `mode="slide"`).
    Slide {
        /// Window size `(h, w)`.
        crop: (usize, usize),
        /// Step between windows `(h, w)`, at most the crop size.
        stride: (usize, usize),
    },
}

/// Options of [`predict`]; the defaults are dinov2's "linear" evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceOptions {
    /// Resize keep-ratio so the short side is this many pixels (times each ratio); `None` keeps the
    /// input size (ratios then scale the input size).
    pub short_side: Option<usize>,
    /// Scale ratios of the multi-scale test-time augmentation (`[1.0]`: one scale).
    pub ratios: Vec<f64>,
    /// Also run every scale horizontally flipped.
    pub flip: bool,
    /// How each scaled image is covered.
    pub window: Window,
    /// Pad every window with zeros, centred, to a multiple of this (the backbone's patch size), as
    /// dinov2's `CenterPadding` does; the logits are still resized to the unpadded window.
    pub center_padding: Option<usize>,
    /// How many sliding windows go into one model call (stacked on the batch axis); results do not
    /// depend on it.
    pub windows_per_call: usize,
}

impl Default for InferenceOptions {
    fn default() -> Self {
        Self::linear()
    }
}

impl InferenceOptions {
    /// dinov2's "linear" evaluation: short side 512, sliding 512×512 windows with stride 341, one
    /// scale, no flip, centre padding to 14.
    pub fn linear() -> Self {
        Self {
            short_side: Some(512),
            ratios: vec![1.0],
            flip: false,
            window: Window::Slide {
                crop: (512, 512),
                stride: (341, 341),
            },
            center_padding: Some(14),
            windows_per_call: 1,
        }
    }

    /// dinov2's "ms" evaluation: short side 640 × {1.0, 1.32, 1.73, 2.28, 3.0}, each also flipped,
    /// sliding 640×640 windows with stride 320, centre padding to 14.
    pub fn multi_scale() -> Self {
        Self {
            short_side: Some(640),
            ratios: vec![1.0, 1.32, 1.73, 2.28, 3.0],
            flip: true,
            window: Window::Slide {
                crop: (640, 640),
                stride: (320, 320),
            },
            center_padding: Some(14),
            windows_per_call: 1,
        }
    }

    /// Sets the short side (`None`: keep the input size).
    pub fn with_short_side(mut self, short_side: Option<usize>) -> Self {
        self.short_side = short_side;
        self
    }

    /// Sets the scale ratios.
    pub fn with_ratios(mut self, ratios: Vec<f64>) -> Self {
        self.ratios = ratios;
        self
    }

    /// Sets whether flipped passes are added.
    pub fn with_flip(mut self, flip: bool) -> Self {
        self.flip = flip;
        self
    }

    /// Sets the window.
    pub fn with_window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// Sets the centre padding multiple (`None`: no padding).
    pub fn with_center_padding(mut self, multiple: Option<usize>) -> Self {
        self.center_padding = multiple;
        self
    }

    /// Sets how many windows go into one model call.
    pub fn with_windows_per_call(mut self, n: usize) -> Self {
        self.windows_per_call = n;
        self
    }

    /// The number of passes averaged: ratios × (1 or 2 with flip).
    pub fn passes(&self) -> usize {
        self.ratios.len() * if self.flip { 2 } else { 1 }
    }

    /// Checks every option.
    pub fn validate(&self) -> Result<()> {
        if self.ratios.is_empty() {
            return Err(Error::option(
                "ratios",
                "at least one scale ratio is needed",
            ));
        }
        if let Some(r) = self.ratios.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return Err(Error::option(
                "ratios",
                format!("{r} is not a positive number"),
            ));
        }
        if self.short_side == Some(0) {
            return Err(Error::option("short side", "must be positive"));
        }
        if self.center_padding == Some(0) {
            return Err(Error::option(
                "center padding",
                "the multiple must be positive",
            ));
        }
        if self.windows_per_call == 0 {
            return Err(Error::option("windows per call", "must be at least 1"));
        }
        if let Window::Slide { crop, stride } = self.window {
            if crop.0 == 0 || crop.1 == 0 || stride.0 == 0 || stride.1 == 0 {
                return Err(Error::option(
                    "window",
                    format!("crop {crop:?} and stride {stride:?} must be positive"),
                ));
            }
            if stride.0 > crop.0 || stride.1 > crop.1 {
                return Err(Error::option(
                    "window",
                    format!(
                        "stride {stride:?} larger than crop {crop:?} would leave pixels uncovered"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// mmcv's keep-ratio `rescale_size` for dinov2's test scale `(long_edge, short_edge)` times `ratio`
/// (mmseg's `MultiScaleFlipAug` takes `int(edge × ratio)`): the output `(h, w)` for an image `size`.
/// With `short_side = None` the scale is the image's own `(long, short)` edges.
pub fn rescaled_size(
    size: (usize, usize),
    short_side: Option<usize>,
    ratio: f64,
) -> (usize, usize) {
    let (h, w) = size;
    let (long, short) = match short_side {
        Some(s) => (99_999_999usize, s),
        None => (h.max(w), h.min(w)),
    };
    let long = (long as f64 * ratio) as usize;
    let short = (short as f64 * ratio) as usize;
    let scale = f64::min(
        long.max(short) as f64 / h.max(w) as f64,
        long.min(short) as f64 / h.min(w) as f64,
    );
    let edge = |x: usize| ((x as f64 * scale + 0.5) as usize).max(1);
    (edge(h), edge(w))
}

/// mmseg's `encode_decode` with the padding hook: logits of `pixels` resized to their size.
fn encode_decode(
    pixels: &Tensor,
    opts: &InferenceOptions,
    model: Model<'_>,
    k: &mut Option<usize>,
) -> Result<Tensor> {
    let (b, _, h, w) = pixels.dims4()?;
    let input = match opts.center_padding {
        Some(p) => center_pad(pixels, p)?,
        None => pixels.clone(),
    };
    let logits = model(&input)?;
    let dims = logits.dims().to_vec();
    match (dims.as_slice(), *k) {
        ([lb, lk, _, _], known) if *lb == b && known.is_none_or(|k| k == *lk) => {
            *k = Some(*lk);
        }
        _ => {
            return Err(Error::input(
                "model output",
                format!(
                    "shape {dims:?} for a batch of {b}; expected (B, K, h, w) with B = {b}{}",
                    k.map(|k| format!(" and K = {k}")).unwrap_or_default()
                ),
            ))
        }
    }
    resize_bilinear(&logits, (h, w), false)
}

/// The sliding windows of mmseg's `slide_inference` over an `(h, w)` image: `(y1, y2, x1, x2)`.
pub fn slide_windows(
    size: (usize, usize),
    crop: (usize, usize),
    stride: (usize, usize),
) -> Vec<(usize, usize, usize, usize)> {
    let grids = |img: usize, c: usize, s: usize| (img + s).saturating_sub(c + 1) / s + 1;
    let (h, w) = size;
    let mut windows = Vec::new();
    for i in 0..grids(h, crop.0, stride.0) {
        for j in 0..grids(w, crop.1, stride.1) {
            let y2 = (i * stride.0 + crop.0).min(h);
            let x2 = (j * stride.1 + crop.1).min(w);
            windows.push((y2.saturating_sub(crop.0), y2, x2.saturating_sub(crop.1), x2));
        }
    }
    windows
}

/// Logits `(B, K, H, W)` of `pixels` `(B, 3, H, W)` at their own size: mmseg's `whole_inference` or
/// `slide_inference` (before the resize to the original image), per `opts.window`.
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
        window_logits_checked(pixels, opts, m)
    })
}

fn window_logits_checked(
    pixels: &Tensor,
    opts: &InferenceOptions,
    model: Model<'_>,
) -> Result<Tensor> {
    let (b, _, h, w) = pixels.dims4()?;
    let mut k = None;
    let (crop, stride) = match opts.window {
        Window::Whole => return encode_decode(pixels, opts, model, &mut k),
        Window::Slide { crop, stride } => (crop, stride),
    };
    let windows = slide_windows((h, w), crop, stride);
    let mut preds: Option<Tensor> = None;
    let mut count = vec![0f32; h * w];
    for chunk in windows.chunks(opts.windows_per_call) {
        let crops = chunk
            .iter()
            .map(|&(y1, y2, x1, x2)| pixels.narrow(2, y1, y2 - y1)?.narrow(3, x1, x2 - x1))
            .collect::<candle::Result<Vec<_>>>()?;
        let logits = encode_decode(&Tensor::cat(&crops, 0)?, opts, model, &mut k)?;
        for (n, &(y1, y2, x1, x2)) in chunk.iter().enumerate() {
            let crop_logits = logits
                .narrow(0, n * b, b)?
                .pad_with_zeros(2, y1, h - y2)?
                .pad_with_zeros(3, x1, w - x2)?;
            preds = Some(match preds {
                None => crop_logits,
                Some(p) => (p + crop_logits)?,
            });
            for y in y1..y2 {
                count[y * w + x1..y * w + x2]
                    .iter_mut()
                    .for_each(|c| *c += 1.0);
            }
        }
    }
    let preds =
        preds.ok_or_else(|| Error::input("pixels", format!("{h}x{w} image has no window")))?;
    let count = Tensor::from_vec(count, (1, 1, h, w), pixels.device())?;
    Ok(preds.broadcast_div(&count)?)
}

/// Runs every pass and hands each one's logits `(B, K, H, W)`, at the input size and flipped back,
/// to `sink`.
fn for_each_pass<S>(
    pixels: &Tensor,
    opts: &InferenceOptions,
    model: Model<'_>,
    mut sink: S,
) -> Result<()>
where
    S: FnMut(Tensor) -> Result<()>,
{
    opts.validate()?;
    let (_, _, h, w) = pixels.dims4()?;
    let flips: &[bool] = if opts.flip { &[false, true] } else { &[false] };
    for &ratio in &opts.ratios {
        let scaled = resize_bilinear(pixels, rescaled_size((h, w), opts.short_side, ratio), false)?;
        for &flip in flips {
            let input = if flip {
                scaled.flip(&[3])?
            } else {
                scaled.clone()
            };
            let logits =
                resize_bilinear(&window_logits_checked(&input, opts, model)?, (h, w), false)?;
            sink(if flip { logits.flip(&[3])? } else { logits })?;
        }
    }
    Ok(())
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

fn mean_probabilities(
    pixels: &Tensor,
    opts: &InferenceOptions,
    model: Model<'_>,
) -> Result<Tensor> {
    let mut sum: Option<Tensor> = None;
    for_each_pass(pixels, opts, model, |logits| {
        let p = candle_nn::ops::softmax(&logits, 1)?;
        sum = Some(match sum.take() {
            None => p,
            Some(s) => (s + p)?,
        });
        Ok(())
    })?;
    let sum = sum.ok_or_else(|| Error::option("ratios", "no pass was run"))?;
    Ok((sum / opts.passes() as f64)?)
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
    with_model(model, |m| mean_probabilities(pixels, opts, m))
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
    with_model(model, |m| {
        if opts.passes() != 1 {
            let probs = mean_probabilities(pixels, opts, m)?;
            return Ok(probs.clamp(f32::MIN_POSITIVE, 1f32)?.log()?);
        }
        let mut out = None;
        for_each_pass(pixels, opts, m, |logits| {
            out = Some(logits);
            Ok(())
        })?;
        out.ok_or_else(|| Error::option("ratios", "no pass was run"))
    })
}
