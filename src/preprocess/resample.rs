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
//! Image layout: [`image::RgbImage`], H x W x 3 u8.

use std::borrow::Cow;

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

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for one axis.
fn coefficients(in_size: usize, out_size: usize, filter: Resample) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let inv = 1.0 / filterscale;
    (0..out_size)
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

/// Resizes `src` to `width` x `height` exactly as PIL's `Image.resize((width, height), filter)` on an
/// `RGB` image. Same size returns a copy. Zero sizes are an [`Error::InvalidOption`].
pub fn resize_rgb8(src: &RgbImage, width: u32, height: u32, filter: Resample) -> Result<RgbImage> {
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
    if (width, height) == src.dimensions() {
        return Ok(src.clone());
    }
    if filter == Resample::Nearest {
        return Ok(nearest(src, width as usize, height as usize));
    }
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let vertical = (out_h != in_h).then(|| coefficients(in_h, out_h, filter));
    let (data, first_row) = if out_w != in_w {
        // Only the rows the vertical pass reads are resampled (as Pillow does; values are unchanged).
        let (first, last) = match &vertical {
            Some(taps) => {
                let end = &taps[out_h - 1];
                (taps[0].start, end.start + end.weights.len())
            }
            None => (0, in_h),
        };
        let taps = coefficients(in_w, out_w, filter);
        let rows = &src.as_raw()[first * in_w * 3..last * in_w * 3];
        (Cow::Owned(horizontal(rows, in_w, out_w, &taps)), first)
    } else {
        (Cow::Borrowed(src.as_raw()), 0)
    };
    let data = match &vertical {
        Some(taps) => vertical_pass(&data, out_w, taps, first_row),
        None => data.into_owned(),
    };
    RgbImage::from_raw(width, height, data)
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

/// Pillow's `ImagingScaleAffine` (nearest neighbour): positions accumulated in f64 from `scale / 2`.
fn nearest(src: &RgbImage, out_w: usize, out_h: usize) -> RgbImage {
    let index = |in_size: usize, out_size: usize| -> Vec<usize> {
        let step = in_size as f64 / out_size as f64;
        let mut pos = step * 0.5;
        (0..out_size)
            .map(|_| {
                let i = (pos as usize).min(in_size - 1);
                pos += step;
                i
            })
            .collect()
    };
    let xs = index(src.width() as usize, out_w);
    let ys = index(src.height() as usize, out_h);
    let in_w = src.width() as usize;
    let raw = src.as_raw();
    let mut out = vec![0u8; out_w * out_h * 3];
    for (y, &sy) in ys.iter().enumerate() {
        for (x, &sx) in xs.iter().enumerate() {
            let s = (sy * in_w + sx) * 3;
            out[(y * out_w + x) * 3..(y * out_w + x) * 3 + 3].copy_from_slice(&raw[s..s + 3]);
        }
    }
    RgbImage::from_raw(out_w as u32, out_h as u32, out).unwrap_or_default()
}
