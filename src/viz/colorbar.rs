//! Value ranges and colour bars for scalar pictures (token norms, depth): a robust range that does not
//! let float noise fill the whole colour map, and a vertical colour bar with its values, added to
//! the right of a picture (matplotlib's `colorbar()`).
//!
//! The robust range of a map is its 1st to 99th percentile; when that spread is below
//! [`MIN_RELATIVE_SPREAD`] of the values' magnitude (a constant map up to float noise, e.g.
//! 19.5959 ± 1e-5), the range is widened around its centre to that spread, so the map comes out one
//! flat colour instead of stretched noise.

use image::RgbImage;

use crate::heads::segmentation::RgbCanvas;
use crate::viz::colormap::Colormap;

/// The smallest spread of a robust range, relative to the largest magnitude of its ends.
pub const MIN_RELATIVE_SPREAD: f32 = 1e-3;

/// The `[lo, hi]` of values a picture maps to the ends of its colour map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueRange {
    /// Mapped to the colour map's start.
    pub lo: f32,
    /// Mapped to the colour map's end.
    pub hi: f32,
}

impl ValueRange {
    /// The 1st to 99th percentile of the finite `values`, widened to [`MIN_RELATIVE_SPREAD`] around
    /// its centre when narrower; `(0, 1)` without finite values.
    ///
    /// ```
    /// use dinoreg::viz::colorbar::ValueRange;
    /// let flat = ValueRange::robust([19.5959, 19.59591, 19.59589]);
    /// assert!((flat.scale(19.59591) - 0.5).abs() < 0.01);
    /// let ramp = ValueRange::robust((0..=100).map(|v| v as f32));
    /// assert_eq!((ramp.lo, ramp.hi), (1.0, 99.0));
    /// ```
    pub fn robust(values: impl IntoIterator<Item = f32>) -> Self {
        let mut v: Vec<f32> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Self { lo: 0.0, hi: 1.0 };
        }
        v.sort_by(f32::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        let (lo, hi) = (at(0.01), at(0.99));
        let min_spread = MIN_RELATIVE_SPREAD * lo.abs().max(hi.abs()).max(f32::MIN_POSITIVE);
        if hi - lo >= min_spread {
            return Self { lo, hi };
        }
        let centre = 0.5 * (lo + hi);
        Self {
            lo: centre - 0.5 * min_spread,
            hi: centre + 0.5 * min_spread,
        }
    }

    /// `value` scaled to `[0, 1]` (clamped).
    pub fn scale(&self, value: f32) -> f32 {
        ((value - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }
}

/// A value for a colour-bar label: 4 significant digits, plain when readable.
fn label(v: f32) -> String {
    if v != 0.0 && !(1e-3..1e5).contains(&v.abs()) {
        return format!("{v:.2e}");
    }
    let digits = (3 - v.abs().max(1e-3).log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.digits$}")
}

/// `picture` with a vertical colour bar of `colormap` over `range` on its right, `hi` at the top,
/// labelled with the range's ends and middle.
pub fn with_colorbar(picture: &RgbImage, colormap: Colormap, range: ValueRange) -> RgbImage {
    let (w, h) = (picture.width() as usize, picture.height() as usize);
    let scale = (h / 200).clamp(1, 4);
    let margin = 4 * scale;
    let bar_w = 6 * scale;
    let texts = [range.hi, 0.5 * (range.lo + range.hi), range.lo].map(label);
    let text_w = texts.iter().map(|t| t.chars().count()).max().unwrap_or(0) * 4 * scale;
    let panel = margin + bar_w + margin + text_w + margin;
    let mut canvas = RgbCanvas::new(w + panel, h, [255, 255, 255]);
    for (x, y, px) in picture.enumerate_pixels() {
        canvas.set(x as usize, y as usize, px.0);
    }
    let text_h = 5 * scale;
    let (top, bottom) = (text_h / 2 + margin, h.saturating_sub(text_h / 2 + margin));
    let span = bottom.saturating_sub(top).max(1);
    for y in top..bottom {
        let t = 1.0 - (y - top) as f32 / span as f32;
        canvas.fill_rect(w + margin, y, bar_w, 1, colormap.color(t));
    }
    let x = w + margin + bar_w + margin;
    for (text, y) in texts.iter().zip([top, top + span / 2, bottom]) {
        canvas.text(x, y.saturating_sub(text_h / 2), text, scale, [0, 0, 0]);
    }
    RgbImage::from_raw(canvas.width as u32, canvas.height as u32, canvas.data)
        .unwrap_or_else(|| picture.clone())
}
