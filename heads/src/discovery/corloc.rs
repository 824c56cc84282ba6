//! CorLoc, LOST's single-object discovery metric (`main_lost.py`): an image counts as found when its
//! predicted box has an IoU of at least 0.5 with any ground-truth box; CorLoc = found / evaluated.
//!
//! The IoU is LOST's copy of yolov5 `bbox_iou`, computed in f32 as torch computes it on integer boxes
//! (`h += 1e-7`, `union = w1·h1 + w2·h2 − inter + 1e-7`). On integer boxes this is torch's result bit for
//! bit, so an IoU of exactly 0.5 counts as found, as it does in LOST.

use serde::Serialize;

use crate::{Error, Result};

/// The IoU of two boxes `[x1, y1, x2, y2]` (continuous coordinates), as LOST's `bbox_iou` computes it.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    const EPS: f32 = 1e-7;
    let inter_w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let inter_h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = inter_w * inter_h;
    let (w1, h1) = (a[2] - a[0], a[3] - a[1] + EPS);
    let (w2, h2) = (b[2] - b[0], b[3] - b[1] + EPS);
    let union = w1 * h1 + w2 * h2 - inter + EPS;
    inter / union
}

/// The evaluation of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageResult {
    /// The image's name (file name or annotation id).
    pub image: String,
    /// The predicted box `[x1, y1, x2, y2]`.
    pub pred: [f32; 4],
    /// The best IoU with a ground-truth box; `None` when the image has none.
    pub best_iou: Option<f32>,
    /// Whether the best IoU reaches the threshold.
    pub found: bool,
}

/// A CorLoc accumulator: add one prediction per image, read the score and the per-image results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorLoc {
    threshold: f32,
    results: Vec<ImageResult>,
}

impl Default for CorLoc {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            results: Vec::new(),
        }
    }
}

impl CorLoc {
    /// An empty accumulator with LOST's IoU threshold, 0.5.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the IoU threshold; errors unless it lies in `(0, 1]`.
    pub fn with_threshold(mut self, threshold: f32) -> Result<Self> {
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(Error::option(
                "IoU threshold",
                format!("must lie in (0, 1], got {threshold}"),
            ));
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// Scores the predicted box of one image against its ground-truth boxes. An image without ground
    /// truth counts as not found, as in LOST (which skips such images only with `--no_hard`; see
    /// [`crate::discovery::VocOptions::remove_hard`]).
    pub fn add(
        &mut self,
        image: impl Into<String>,
        pred: [f32; 4],
        gt: &[[f32; 4]],
    ) -> &ImageResult {
        let best_iou = gt.iter().map(|&g| iou(pred, g)).reduce(f32::max);
        let found = best_iou.is_some_and(|v| v >= self.threshold);
        self.results.push(ImageResult {
            image: image.into(),
            pred,
            best_iou,
            found,
        });
        &self.results[self.results.len() - 1]
    }

    /// How many images were found.
    pub fn found(&self) -> usize {
        self.results.iter().filter(|r| r.found).count()
    }

    /// How many images were evaluated.
    pub fn total(&self) -> usize {
        self.results.len()
    }

    /// CorLoc in percent (`100 · found / total`); 0 when nothing was evaluated.
    pub fn percent(&self) -> f64 {
        if self.results.is_empty() {
            0.0
        } else {
            100.0 * self.found() as f64 / self.total() as f64
        }
    }

    /// The per-image results, in the order they were added.
    pub fn results(&self) -> &[ImageResult] {
        &self.results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_matches_yolov5_terms() {
        // Identical boxes: 100 / (100 + 1e-7) rounds to 1 in f32.
        assert_eq!(iou([0., 0., 10., 10.], [0., 0., 10., 10.]), 1.0);
        // Half of the box: exactly 0.5 in f32, as torch gives on integer tensors.
        assert_eq!(iou([0., 0., 10., 5.], [0., 0., 10., 10.]), 0.5);
        assert_eq!(iou([0., 0., 5., 5.], [6., 6., 9., 9.]), 0.0);
    }
}
