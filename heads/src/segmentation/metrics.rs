//! Segmentation metrics as mmsegmentation computes them (`mmseg.core.evaluation.mean_iou`): a
//! confusion matrix accumulated over a whole dataset, pixels whose label is the ignore index (255)
//! left out, per-class IoU = intersection / union, and mIoU = the mean over classes whose union is
//! not empty (`nanmean`).
//!
//! Shapes: predictions and labels are integer tensors of the same shape, `(B, H, W)` or `(H, W)`.

use candle::{DType, Tensor};

use crate::{Error, Result};

/// The label value that marks pixels to ignore (mmsegmentation's and dinov2's default).
pub const IGNORE_INDEX: u32 = 255;

/// Reads an integer label or prediction tensor as `u32` values.
pub(crate) fn label_values(t: &Tensor) -> Result<Vec<u32>> {
    let t = t.flatten_all()?;
    match t.dtype() {
        DType::U8 | DType::U32 => Ok(t.to_dtype(DType::U32)?.to_vec1::<u32>()?),
        DType::I64 => t
            .to_vec1::<i64>()?
            .into_iter()
            .map(|v| {
                u32::try_from(v).map_err(|_| {
                    Error::input("labels", format!("label {v} is negative or too large"))
                })
            })
            .collect(),
        other => Err(Error::input(
            "labels",
            format!("dtype {other:?} is not an integer type (expected u8, u32 or i64)"),
        )),
    }
}

/// Checks that every label is a class index below `num_classes` or the ignore index.
pub fn check_labels(
    labels: &Tensor,
    num_classes: usize,
    ignore_index: u32,
    name: &str,
) -> Result<()> {
    let values = label_values(labels)?;
    if let Some(bad) = values
        .iter()
        .find(|&&v| v != ignore_index && v as usize >= num_classes)
    {
        return Err(Error::input(
            name,
            format!(
                "label {bad} is outside 0..{num_classes} (expected a class index or the ignore index {ignore_index})"
            ),
        ));
    }
    Ok(())
}

/// A `K × K` confusion matrix (rows: ground truth, columns: prediction) over every pixel seen.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionMatrix {
    num_classes: usize,
    ignore_index: u32,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `num_classes` classes, ignoring label [`IGNORE_INDEX`].
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            ignore_index: IGNORE_INDEX,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// Sets the ignored label.
    pub fn with_ignore_index(mut self, ignore_index: u32) -> Self {
        self.ignore_index = ignore_index;
        self
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Adds the pixels of `predictions` against `labels` (same shape, integer dtypes).
    pub fn update(&mut self, predictions: &Tensor, labels: &Tensor) -> Result<()> {
        if predictions.dims() != labels.dims() {
            return Err(Error::input(
                "predictions",
                format!(
                    "shape {:?} differs from the labels' shape {:?}",
                    predictions.dims(),
                    labels.dims()
                ),
            ));
        }
        let k = self.num_classes;
        let preds = label_values(predictions)?;
        let labels = label_values(labels)?;
        for (&p, &l) in preds.iter().zip(&labels) {
            if l == self.ignore_index {
                continue;
            }
            let (l, p) = (l as usize, p as usize);
            if l >= k || p >= k {
                return Err(Error::input(
                    "labels",
                    format!(
                        "label {l} / prediction {p} is outside 0..{k} (expected a class index or the ignore index {})",
                        self.ignore_index
                    ),
                ));
            }
            self.counts[l * k + p] += 1;
        }
        Ok(())
    }

    /// The count of pixels labelled `label` and predicted `prediction`.
    pub fn count(&self, label: usize, prediction: usize) -> u64 {
        self.counts[label * self.num_classes + prediction]
    }

    /// Per-class IoU; `None` for a class that is neither in the labels nor in the predictions.
    pub fn iou(&self) -> Vec<Option<f64>> {
        let k = self.num_classes;
        (0..k)
            .map(|c| {
                let inter = self.count(c, c);
                let label_area: u64 = (0..k).map(|p| self.count(c, p)).sum();
                let pred_area: u64 = (0..k).map(|l| self.count(l, c)).sum();
                let union = label_area + pred_area - inter;
                (union > 0).then(|| inter as f64 / union as f64)
            })
            .collect()
    }

    /// The mean IoU over classes with a non-empty union (`None` when no pixel was counted).
    pub fn mean_iou(&self) -> Option<f64> {
        let ious: Vec<f64> = self.iou().into_iter().flatten().collect();
        (!ious.is_empty()).then(|| ious.iter().sum::<f64>() / ious.len() as f64)
    }

    /// The fraction of counted pixels predicted correctly (`None` when no pixel was counted).
    pub fn pixel_accuracy(&self) -> Option<f64> {
        let total: u64 = self.counts.iter().sum();
        let correct: u64 = (0..self.num_classes).map(|c| self.count(c, c)).sum();
        (total > 0).then(|| correct as f64 / total as f64)
    }
}
