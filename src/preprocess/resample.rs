//! Pillow's `Image.resize(size, resample)` for 8-bit RGB images, integer-exact.
//!
//! Mirrors Pillow's `libImaging/Resample.c` (standard Pillow, not pillow-simd), `reducing_gap=None`:
//! - convolution filters (bilinear, bicubic a = -0.5, lanczos-3, box, hamming) are separable: the
//!   HORIZONTAL pass runs first into an 8-bit image, then the VERTICAL pass; a pass whose size does not
//!   change is skipped. Per output pixel `i`: `scale = in / out`, `filterscale = max(scale, 1)`,
//!   `support = filter_support * filterscale`, `center = (i + 0.5) * scale`, taps
//!   `[(int)(center - support + 0.5), (int)(center + support + 0.5))` clipped to the input, weights
//!   `K((j - center + 0.5) / filterscale)` normalised by their sum, then fixed point with 22 bits
//!   (`(int)(w * 2^22 ± 0.5)`), accumulator starting at `2^21`, output `clip(acc >> 22, 0, 255)`;
//! - nearest (`ImagingScaleAffine`): source index `(int)(0.5 * scale + i * scale)` accumulated in f64.
//!
//! [`resize_window_rgb8`] computes any rectangle of the output alone, with the same values.
//!
//! Image layout: [`image::RgbImage`], H x W x 3 u8.

use image::RgbImage;
use rayon::prelude::*;

use crate::{Error, Result};

/// A resampling filter, numbered as PIL's `Image.Resampling` (the `resample` of
/// `preprocessor_config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resample {
    /// PIL `NEAREST` (0).
    Nearest,
    /// PIL `LANCZOS` (1), a = 3.
    Lanczos,
    /// PIL `BILINEAR` (2), the triangle filter.
    Bilinear,
    /// PIL `BICUBIC` (3), Keys cubic with a = -0.5. The checkpoints' filter.
    #[default]
    Bicubic,
    /// PIL `BOX` (4).
    Box,
    /// PIL `HAMMING` (5).
    Hamming,
}

impl Resample {
    /// The filter of PIL's resampling code `code` (0..=5).
    pub fn from_pil(code: i64) -> Result<Self> {
        Ok(match code {
            0 => Resample::Nearest,
            1 => Resample::Lanczos,
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            4 => Resample::Box,
            5 => Resample::Hamming,
            _ => {
                return Err(Error::option(
                    "resample",
                    format!("PIL resampling code {code} is not one of 0 (nearest), 1 (lanczos), 2 (bilinear), 3 (bicubic), 4 (box), 5 (hamming)"),
                ))
            }
        })
    }

    /// PIL's code of this filter.
    pub fn pil_code(self) -> u8 {
        match self {
            Resample::Nearest => 0,
            Resample::Lanczos => 1,
            Resample::Bilinear => 2,
            Resample::Bicubic => 3,
            Resample::Box => 4,
            Resample::Hamming => 5,
        }
    }

    /// Half-width of the filter kernel in input pixels at scale 1 (0 for nearest).
    fn support(self) -> f64 {
        match self {
            Resample::Nearest => 0.0,
            Resample::Box => 0.5,
            Resample::Bilinear | Resample::Hamming => 1.0,
            Resample::Bicubic => 2.0,
            Resample::Lanczos => 3.0,
        }
    }

    /// The kernel, as Pillow's `*_filter` functions.
    fn kernel(self, x: f64) -> f64 {
        match self {
            Resample::Nearest => 0.0,
            Resample::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Resample::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Resample::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }
            Resample::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Resample::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

const PRECISION_BITS: u32 = 22;

/// Fixed-point taps of one output pixel: the first input index and the integer weights.
struct Taps {
    start: usize,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for one axis, for the output pixels in
/// `range` only (each output pixel's taps depend on its index and the two sizes alone).
fn coefficients(
    in_size: usize,
    out_size: usize,
    filter: Resample,
    range: std::ops::Range<usize>,
) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let inv = 1.0 / filterscale;
    range
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            // C casts truncate toward zero; negative starts are clamped to 0 anyway.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64)
                .min(in_size as i64)
                .max(xmin as i64) as usize;
            let raw: Vec<f64> = (xmin..xmax)
                .map(|j| filter.kernel((j as f64 - center + 0.5) * inv))
                .collect();
            let sum: f64 = raw.iter().sum();
            let one = f64::from(1u32 << PRECISION_BITS);
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if sum != 0.0 { w / sum } else { w };
                    if w < 0.0 {
                        (-0.5 + w * one) as i32
                    } else {
                        (0.5 + w * one) as i32
                    }
                })
                .collect();
            Taps {
                start: xmin,
                weights,
            }
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    if acc >= 1i64 << (PRECISION_BITS + 8) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

/// A rectangle of a resize's output: rows `top..top + height`, columns `left..left + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First output row.
    pub top: u32,
    /// First output column.
    pub left: u32,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
}

impl Window {
    /// The whole `width` x `height` output.
    pub fn full(width: u32, height: u32) -> Self {
        Window {
            top: 0,
            left: 0,
            height,
            width,
        }
    }

    fn rows(&self) -> std::ops::Range<usize> {
        self.top as usize..self.top as usize + self.height as usize
    }

    fn cols(&self) -> std::ops::Range<usize> {
        self.left as usize..self.left as usize + self.width as usize
    }
}

/// Resizes `src` to `width` x `height` exactly as PIL's `Image.resize((width, height), filter)` on an
/// `RGB` image. Same size returns a copy. Zero sizes are an [`Error::InvalidOption`].
pub fn resize_rgb8(src: &RgbImage, width: u32, height: u32, filter: Resample) -> Result<RgbImage> {
    resize_window_rgb8(src, width, height, filter, Window::full(width, height))
}

/// The `window` of [`resize_rgb8`]`(src, width, height, filter)`, bit-identical to cropping the full
/// resize, computed without it: only the window's output pixels, from only the input rows its vertical
/// taps read. Work and memory scale with the window, not with `width` x `height` (a 1 x 16384 image
/// resized to 256 x 4194304 and center-cropped to 224 x 224 touches a few input rows).
pub fn resize_window_rgb8(
    src: &RgbImage,
    width: u32,
    height: u32,
    filter: Resample,
    window: Window,
) -> Result<RgbImage> {
    if width == 0 || height == 0 || src.width() == 0 || src.height() == 0 {
        return Err(Error::option(
            "resize",
            format!(
                "cannot resize a {}x{} image to {width}x{height}: sizes must be at least 1",
                src.width(),
                src.height()
            ),
        ));
    }
    let inside = u64::from(window.top) + u64::from(window.height) <= u64::from(height)
        && u64::from(window.left) + u64::from(window.width) <= u64::from(width);
    if !inside {
        return Err(Error::option(
            "resize",
            format!("window {window:?} is not inside the {width}x{height} output"),
        ));
    }
    let (rows, cols) = (window.rows(), window.cols());
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if filter == Resample::Nearest && (width, height) != src.dimensions() {
        return Ok(nearest(src, (out_w, out_h), window));
    }
    let vertical = (out_h != in_h).then(|| coefficients(in_h, out_h, filter, rows.clone()));
    // The input rows the vertical pass reads (all the window's rows when there is none).
    let (first, last) = match &vertical {
        Some(taps) => (
            taps.first().map_or(0, |t| t.start),
            taps.iter()
                .map(|t| t.start + t.weights.len())
                .max()
                .unwrap_or(0),
        ),
        None => (rows.start, rows.end),
    };
    let src_rows = &src.as_raw()[first * in_w * 3..last * in_w * 3];
    let data = if out_w != in_w {
        let taps = coefficients(in_w, out_w, filter, cols.clone());
        horizontal(src_rows, in_w, taps.len(), &taps)
    } else {
        src_rows
            .chunks_exact(in_w * 3)
            .flat_map(|row| &row[cols.start * 3..cols.end * 3])
            .copied()
            .collect()
    };
    let data = match &vertical {
        Some(taps) => vertical_pass(&data, cols.len(), taps, first),
        None => data,
    };
    RgbImage::from_raw(window.width, window.height, data)
        .ok_or_else(|| Error::option("resize", "internal size mismatch after resampling"))
}

/// One horizontal pass: rows of `in_w` RGB pixels -> rows of `taps.len()` pixels.
fn horizontal(src: &[u8], in_w: usize, out_w: usize, taps: &[Taps]) -> Vec<u8> {
    let rows = src.len() / (in_w * 3);
    let mut out = vec![0u8; rows * out_w * 3];
    out.par_chunks_mut(out_w * 3)
        .zip(src.par_chunks(in_w * 3))
        .for_each(|(dst, row)| {
            for (x, t) in taps.iter().enumerate() {
                let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
                for (k, &w) in t.weights.iter().enumerate() {
                    let p = &row[(t.start + k) * 3..(t.start + k) * 3 + 3];
                    for c in 0..3 {
                        acc[c] += i64::from(p[c]) * i64::from(w);
                    }
                }
                for c in 0..3 {
                    dst[x * 3 + c] = clip8(acc[c]);
                }
            }
        });
    out
}

/// One vertical pass over rows of `width` RGB pixels; `src` starts at input row `first_row`.
fn vertical_pass(src: &[u8], width: usize, taps: &[Taps], first_row: usize) -> Vec<u8> {
    let stride = width * 3;
    let mut out = vec![0u8; taps.len() * stride];
    out.par_chunks_mut(stride)
        .zip(taps.par_iter())
        .for_each(|(dst, t)| {
            let start = t.start - first_row;
            for (i, d) in dst.iter_mut().enumerate() {
                let mut acc = 1i64 << (PRECISION_BITS - 1);
                for (k, &w) in t.weights.iter().enumerate() {
                    acc += i64::from(src[(start + k) * stride + i]) * i64::from(w);
                }
                *d = clip8(acc);
            }
        });
    out
}

/// Pillow's `ImagingScaleAffine` (nearest neighbour): positions accumulated in f64 from `scale / 2`,
/// for the output pixels of `window` (the accumulation still runs from the first output pixel, so the
/// positions are the same as for the whole image).
fn nearest(src: &RgbImage, (out_w, out_h): (usize, usize), window: Window) -> RgbImage {
    let index = |in_size: usize, out_size: usize, range: std::ops::Range<usize>| -> Vec<usize> {
        let step = in_size as f64 / out_size as f64;
        let mut pos = step * 0.5;
        let mut out = Vec::with_capacity(range.len());
        for i in 0..range.end {
            if i >= range.start {
                out.push((pos as usize).min(in_size - 1));
            }
            pos += step;
        }
        out
    };
    let xs = index(src.width() as usize, out_w, window.cols());
    let ys = index(src.height() as usize, out_h, window.rows());
    let in_w = src.width() as usize;
    let raw = src.as_raw();
    let mut out = Vec::with_capacity(xs.len() * ys.len() * 3);
    for &sy in &ys {
        for &sx in &xs {
            let s = (sy * in_w + sx) * 3;
            out.extend_from_slice(&raw[s..s + 3]);
        }
    }
    RgbImage::from_raw(window.width, window.height, out).unwrap_or_default()
}
