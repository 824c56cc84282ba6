//! Pictures of a segmentation: each pixel's class colour blended over the image, with a legend
//! panel on the right listing the classes present (colour swatch, name, share of the image), largest
//! first. Text uses a built-in 3×5 bitmap font, so no font file or text-rendering crate is needed.
//!
//! Buffers are row-major RGB8 (`3 × H × W` bytes); labels are `H × W` class indices.

use crate::segmentation::font::{pixel, GLYPH};
use crate::segmentation::palette::ClassSet;
use crate::{Error, Result};

/// An RGB8 picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbCanvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major RGB bytes, `3 × width × height`.
    pub data: Vec<u8>,
}

impl RgbCanvas {
    /// A `width × height` canvas filled with `fill`.
    pub fn new(width: usize, height: usize, fill: [u8; 3]) -> Self {
        Self {
            width,
            height,
            data: fill.repeat(width * height),
        }
    }

    /// Sets one pixel (outside the canvas: nothing).
    pub fn set(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = 3 * (y * self.width + x);
            self.data[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// Fills a `w × h` rectangle whose top-left corner is `(x, y)`, clipped to the canvas.
    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, rgb: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, rgb);
            }
        }
    }

    /// Draws `text` in the built-in bitmap font (3 × 5 glyphs, each font pixel `scale` pixels) with
    /// its top-left corner at `(x, y)`.
    pub fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, rgb: [u8; 3]) {
        for (i, c) in text.chars().enumerate() {
            let x0 = x + i * (GLYPH.0 + 1) * scale;
            for gy in 0..GLYPH.1 {
                for gx in 0..GLYPH.0 {
                    if pixel(c, gx, gy) {
                        self.fill_rect(x0 + gx * scale, y + gy * scale, scale, scale, rgb);
                    }
                }
            }
        }
    }
}

/// One class present in a segmentation.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    /// The class index.
    pub label: usize,
    /// Its name.
    pub name: String,
    /// Its colour.
    pub color: [u8; 3],
    /// The share of pixels predicted as this class, in `[0, 1]`.
    pub fraction: f64,
}

/// The classes present in `labels`, largest share first (ties: lower label first).
pub fn legend_entries(labels: &[u32], classes: &ClassSet) -> Vec<LegendEntry> {
    let mut counts = std::collections::BTreeMap::<u32, usize>::new();
    for &l in labels {
        *counts.entry(l).or_default() += 1;
    }
    let total = labels.len().max(1) as f64;
    let mut entries: Vec<LegendEntry> = counts
        .into_iter()
        .map(|(l, n)| LegendEntry {
            label: l as usize,
            name: classes.name(l as usize),
            color: classes.color(l as usize),
            fraction: n as f64 / total,
        })
        .collect();
    entries.sort_by(|a, b| {
        b.fraction
            .total_cmp(&a.fraction)
            .then(a.label.cmp(&b.label))
    });
    entries
}

/// How [`overlay`] draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlayOptions {
    /// Opacity of the class colours over the image (0: image only, 1: colours only).
    pub alpha: f32,
    /// Draw the legend panel.
    pub legend: bool,
    /// Size of one font pixel of the legend, in image pixels.
    pub text_scale: usize,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        Self {
            alpha: 0.6,
            legend: true,
            text_scale: 2,
        }
    }
}

impl OverlayOptions {
    /// Sets the opacity of the colours.
    pub fn with_alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }

    /// Sets whether the legend is drawn.
    pub fn with_legend(mut self, legend: bool) -> Self {
        self.legend = legend;
        self
    }

    /// Sets the legend's text scale.
    pub fn with_text_scale(mut self, scale: usize) -> Self {
        self.text_scale = scale;
        self
    }
}

/// The image `rgb` (`(height, width)` = `size`) with the colours of `labels` blended over it and,
/// when asked, a legend panel on the right.
pub fn overlay(
    rgb: &[u8],
    size: (usize, usize),
    labels: &[u32],
    classes: &ClassSet,
    opts: &OverlayOptions,
) -> Result<RgbCanvas> {
    let (h, w) = size;
    if rgb.len() != 3 * h * w || labels.len() != h * w {
        return Err(Error::input(
            "overlay",
            format!(
                "{} image bytes and {} labels for a {h}x{w} picture (expected {} and {})",
                rgb.len(),
                labels.len(),
                3 * h * w,
                h * w
            ),
        ));
    }
    if !(0.0..=1.0).contains(&opts.alpha) {
        return Err(Error::option(
            "alpha",
            format!("{} is not in [0, 1]", opts.alpha),
        ));
    }
    let entries = if opts.legend {
        // Classes under 0.05 % would read "0.0%": left out of the panel.
        legend_entries(labels, classes)
            .into_iter()
            .filter(|e| e.fraction >= 0.0005)
            .collect()
    } else {
        Vec::new()
    };
    let s = opts.text_scale.max(1);
    let line = (GLYPH.1 + 3) * s;
    let margin = 2 * s;
    let swatch = GLYPH.1 * s;
    let texts: Vec<String> = entries
        .iter()
        .map(|e| format!("{} {:.1}%", e.name, 100.0 * e.fraction))
        .collect();
    let text_w = texts.iter().map(|t| t.chars().count()).max().unwrap_or(0) * (GLYPH.0 + 1) * s;
    let panel = if entries.is_empty() {
        0
    } else {
        margin + swatch + margin + text_w + margin
    };
    let height = h.max(margin + entries.len() * line);
    let mut canvas = RgbCanvas::new(w + panel, height, [255, 255, 255]);
    let a = opts.alpha;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let c = classes.color(labels[i] as usize);
            let px = [0, 1, 2].map(|k| {
                let v = (1.0 - a) * rgb[3 * i + k] as f32 + a * c[k] as f32;
                v.round().clamp(0.0, 255.0) as u8
            });
            canvas.set(x, y, px);
        }
    }
    for (n, (e, t)) in entries.iter().zip(&texts).enumerate() {
        let y = margin + n * line;
        let x = w + margin;
        canvas.fill_rect(x, y, swatch, swatch, e.color);
        canvas.text(x + swatch + margin, y, t, s, [0, 0, 0]);
    }
    Ok(canvas)
}
