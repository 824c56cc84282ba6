//! The options of dinov2's segmentation evaluation inference (mmseg 0.x `test_cfg` and dinov2's
//! `MultiScaleFlipAug` test pipeline): the short-side resize, the scale ratios, the flip, the window
//! (whole image or sliding crop/stride) and dinov2's `CenterPadding` multiple.
//!
//! Every option is checked by [`InferenceOptions::validate`], which every inference entry point calls;
//! [`Window::slide`] checks a sliding window when it is built.

use crate::{Error, Result};

/// How an image is covered by model calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// One call on the whole image (mmseg `mode="whole"`).
    Whole,
    /// Overlapping `crop` windows every `stride` pixels, `(height, width)` each (mmseg `mode="slide"`).
    /// Prefer [`Window::slide`], which checks the sizes.
    Slide {
        /// Window size `(h, w)`, each at least 1. A crop larger than the image covers it with one
        /// window, the whole image (as in mmseg).
        crop: (usize, usize),
        /// Step between windows `(h, w)`, each at least 1 and at most the crop size.
        stride: (usize, usize),
    },
}

impl Window {
    /// Sliding `crop` windows `(h, w)` every `stride` pixels; an error when a size is 0 or a stride is
    /// larger than the crop (pixels would be left uncovered).
    pub fn slide(crop: (usize, usize), stride: (usize, usize)) -> Result<Self> {
        let window = Self::Slide { crop, stride };
        window.validate()?;
        Ok(window)
    }

    /// Checks the crop and stride of a sliding window (a whole-image window is always valid).
    pub fn validate(&self) -> Result<()> {
        let Self::Slide { crop, stride } = *self else {
            return Ok(());
        };
        if crop.0 == 0 || crop.1 == 0 || stride.0 == 0 || stride.1 == 0 {
            return Err(Error::option(
                "window",
                format!("crop {crop:?} and stride {stride:?} must be positive"),
            ));
        }
        if stride.0 > crop.0 || stride.1 > crop.1 {
            return Err(Error::option(
                "window",
                format!("stride {stride:?} larger than crop {crop:?} would leave pixels uncovered"),
            ));
        }
        Ok(())
    }
}

/// How many windows of a large image go into one model call by default: on the CPU batching saves
/// little, so this stays small to bound the backbone's activations (see [`InferenceOptions`]).
pub const DEFAULT_WINDOWS_PER_CALL: usize = 2;

/// Options of [`super::predict`]; the defaults are dinov2's "linear" evaluation.
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
    /// depend on it, memory grows with it (default [`DEFAULT_WINDOWS_PER_CALL`]).
    pub windows_per_call: usize,
}

impl Default for InferenceOptions {
    fn default() -> Self {
        Self::linear()
    }
}

impl InferenceOptions {
    /// dinov2's "linear" evaluation: short side 512, sliding 512×512 windows with stride 341, one
    /// scale, no flip, centre padding to 14 (dinov2's ViT-*/14 backbones; for another backbone set
    /// its patch size with [`with_center_padding`](Self::with_center_padding), 16 for DINOv3, as
    /// dinoreg's segmentation pipeline does from the model).
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
            windows_per_call: DEFAULT_WINDOWS_PER_CALL,
        }
    }

    /// dinov2's "ms" evaluation: short side 640 × {1.0, 1.32, 1.73, 2.28, 3.0}, each also flipped,
    /// sliding 640×640 windows with stride 320, centre padding to 14 (dinov2's patch; see
    /// [`linear`](Self::linear) for other backbones).
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
            windows_per_call: DEFAULT_WINDOWS_PER_CALL,
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
        self.window.validate()
    }
}
