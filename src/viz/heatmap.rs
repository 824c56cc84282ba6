//! Patch-grid maps as pictures at the image's size: resampling a `(C, h, w)` patch map onto the original
//! image through the dense preprocessing's [`DenseMeta`], a viridis colour map, and blending over the
//! photograph.
//!
//! The mapping: an output pixel `(y, x)` of the original `(H, W)` image sits at
//! `((y + ½)·rh/H, (x + ½)·rw/W)` in the resized image, shifted by the padding into the model input, whose
//! patch `(i, j)` covers `[i·p, (i+1)·p) × [j·p, (j+1)·p)`. Nearest takes that patch; bilinear
//! interpolates between patch centres (clamped at the border).

use image::{Rgb, RgbImage};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

use crate::preprocess::DenseMeta;
use crate::{Error, Result};

/// How a patch map is resampled to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// Each patch a flat block (the patch grid stays visible).
    #[default]
    Nearest,
    /// Bilinear between patch centres.
    Bilinear,
}

/// Resamples `map` `(C, h, w)` on the patch grid of `meta` to the original image: `(C, H, W)`.
pub fn to_image(
    map: ArrayView3<'_, f32>,
    meta: &DenseMeta,
    interp: Interpolation,
) -> Result<Array3<f32>> {
    let (c, gh, gw) = map.dim();
    let grid = meta.grid();
    if (gh, gw) != (grid.0 as usize, grid.1 as usize) || gh == 0 || gw == 0 {
        return Err(Error::input(
            "patch map",
            format!(
                "grid {gh}x{gw} does not match the input's patch grid {}x{}",
                grid.0, grid.1
            ),
        ));
    }
    let (oh, ow) = (meta.original.0 as usize, meta.original.1 as usize);
    let (top, left, rh, rw) = meta.content_box();
    let p = meta.patch_size as f64;
    // Continuous patch coordinate (patch centres at integers) of each output row / column.
    let axis = |n: usize, resized: u32, offset: u32| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let input = (i as f64 + 0.5) * f64::from(resized) / n as f64 + f64::from(offset);
                input / p - 0.5
            })
            .collect()
    };
    let (ys, xs) = (axis(oh, rh, top), axis(ow, rw, left));
    let mut out = Array3::<f32>::zeros((c, oh, ow));
    let clamp = |v: f64, n: usize| v.clamp(0.0, (n - 1) as f64);
    for (y, &py) in ys.iter().enumerate() {
        for (x, &px) in xs.iter().enumerate() {
            match interp {
                Interpolation::Nearest => {
                    let (i, j) = (
                        clamp(py.round(), gh) as usize,
                        clamp(px.round(), gw) as usize,
                    );
                    for k in 0..c {
                        out[[k, y, x]] = map[[k, i, j]];
                    }
                }
                Interpolation::Bilinear => {
                    let (py, px) = (clamp(py, gh), clamp(px, gw));
                    let (i0, j0) = (py.floor() as usize, px.floor() as usize);
                    let (i1, j1) = ((i0 + 1).min(gh - 1), (j0 + 1).min(gw - 1));
                    let (fy, fx) = ((py - i0 as f64) as f32, (px - j0 as f64) as f32);
                    for k in 0..c {
                        let top = map[[k, i0, j0]] * (1.0 - fx) + map[[k, i0, j1]] * fx;
                        let bottom = map[[k, i1, j0]] * (1.0 - fx) + map[[k, i1, j1]] * fx;
                        out[[k, y, x]] = top * (1.0 - fy) + bottom * fy;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Min-max scaling to `[0, 1]` (a constant map becomes 0).
pub fn normalize(values: ArrayView2<'_, f32>) -> Array2<f32> {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = hi - lo;
    values.mapv(|v| if span > 0.0 { (v - lo) / span } else { 0.0 })
}

/// The viridis colour of `t` in `[0, 1]` (clamped).
pub fn viridis(t: f32) -> [u8; 3] {
    crate::viz::colormap::Colormap::Viridis.color(t)
}

/// A `(H, W)` map of values in `[0, 1]` as a viridis picture.
pub fn colorize(values: ArrayView2<'_, f32>) -> RgbImage {
    let (h, w) = values.dim();
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        Rgb(viridis(values[[y as usize, x as usize]]))
    })
}

/// A `(3, H, W)` array of values in `[0, 1]` as an RGB picture.
pub fn rgb_image(values: ArrayView3<'_, f32>) -> RgbImage {
    let (_, h, w) = values.dim();
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let (y, x) = (y as usize, x as usize);
        Rgb([
            byte(values[[0, y, x]]),
            byte(values[[1, y, x]]),
            byte(values[[2, y, x]]),
        ])
    })
}

/// `alpha · top + (1 - alpha) · base`, pixel by pixel (same sizes).
pub fn blend(base: &RgbImage, top: &RgbImage, alpha: f32) -> Result<RgbImage> {
    if base.dimensions() != top.dimensions() {
        return Err(Error::input(
            "overlay",
            format!(
                "sizes differ: {:?} and {:?}",
                base.dimensions(),
                top.dimensions()
            ),
        ));
    }
    let a = alpha.clamp(0.0, 1.0);
    Ok(RgbImage::from_fn(base.width(), base.height(), |x, y| {
        let (b, t) = (base.get_pixel(x, y).0, top.get_pixel(x, y).0);
        Rgb([0, 1, 2].map(|k| (a * f32::from(t[k]) + (1.0 - a) * f32::from(b[k])).round() as u8))
    }))
}

/// A `(h, w)` patch map, min-max scaled, resampled to the image and coloured: the heatmap picture.
pub fn heatmap(
    map: ArrayView2<'_, f32>,
    meta: &DenseMeta,
    interp: Interpolation,
) -> Result<RgbImage> {
    let scaled = normalize(map).insert_axis(ndarray::Axis(0));
    let full = to_image(scaled.view(), meta, interp)?;
    Ok(colorize(full.index_axis(ndarray::Axis(0), 0)))
}

/// A `(h, w)` patch map scaled by `range` (clamped), resampled to the image and coloured: the
/// heatmap picture of a map whose values mean something across images (norms, depth).
pub fn heatmap_in(
    map: ArrayView2<'_, f32>,
    meta: &DenseMeta,
    interp: Interpolation,
    range: crate::viz::colorbar::ValueRange,
) -> Result<RgbImage> {
    let scaled = map.mapv(|v| range.scale(v)).insert_axis(ndarray::Axis(0));
    let full = to_image(scaled.view(), meta, interp)?;
    Ok(colorize(full.index_axis(ndarray::Axis(0), 0)))
}
