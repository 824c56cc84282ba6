//! Segmentation metrics as mmsegmentation computes them (`mmseg.core.evaluation.mean_iou`): a
//! confusion matrix accumulated over a whole dataset, pixels whose label is the ignore index (255)
//! left out, per-class IoU = intersection / union, and mIoU = the mean over classes whose union is
//! not empty (`nanmean`).
//!
//! Shapes: predictions and labels are integer tensors of the same shape, `(B, H, W)` or `(H, W)`.
//!
//! The `K × K` matrix is kept as what IoU needs, per-class intersections and areas (`3K` counts),
//! plus the off-diagonal cells seen so far, so its memory grows with `K` and the confusions met, not
//! with `K²` (10,000 classes would be 800 MB dense).

use std::collections::HashMap;

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
    /// Pixels labelled and predicted `c`.
    correct: Vec<u64>,
    /// Pixels labelled `c` (row sums).
    label_area: Vec<u64>,
    /// Pixels predicted `c` (column sums).
    pred_area: Vec<u64>,
    /// The off-diagonal cells that are not zero, `(label, prediction)`.
    confused: HashMap<(u32, u32), u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `num_classes` classes, ignoring label [`IGNORE_INDEX`].
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            ignore_index: IGNORE_INDEX,
            correct: vec![0; num_classes],
            label_area: vec![0; num_classes],
            pred_area: vec![0; num_classes],
            confused: HashMap::new(),
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
            if l as usize >= k || p as usize >= k {
                return Err(Error::input(
                    "labels",
                    format!(
                        "label {l} / prediction {p} is outside 0..{k} (expected a class index or the ignore index {})",
                        self.ignore_index
                    ),
                ));
            }
            self.label_area[l as usize] += 1;
            self.pred_area[p as usize] += 1;
            if l == p {
                self.correct[l as usize] += 1;
            } else {
                *self.confused.entry((l, p)).or_default() += 1;
            }
        }
        Ok(())
    }

    /// The count of pixels labelled `label` and predicted `prediction` (0 outside the matrix).
    pub fn count(&self, label: usize, prediction: usize) -> u64 {
        if label == prediction {
            return self.correct.get(label).copied().unwrap_or(0);
        }
        match (u32::try_from(label), u32::try_from(prediction)) {
            (Ok(l), Ok(p)) => self.confused.get(&(l, p)).copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// Per-class IoU; `None` for a class that is neither in the labels nor in the predictions.
    pub fn iou(&self) -> Vec<Option<f64>> {
        (0..self.num_classes)
            .map(|c| {
                let inter = self.correct[c];
                let union = self.label_area[c] + self.pred_area[c] - inter;
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
        let total: u64 = self.label_area.iter().sum();
        let correct: u64 = self.correct.iter().sum();
        (total > 0).then(|| correct as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::Device;

    #[test]
    fn cells_and_scores() -> Result<()> {
        let labels = Tensor::new(&[[0u32, 0, 1, 255], [1, 1, 2, 2]], &Device::Cpu)?;
        let preds = Tensor::new(&[[0u32, 1, 1, 0], [1, 1, 2, 0]], &Device::Cpu)?;
        let mut cm = ConfusionMatrix::new(3);
        cm.update(&preds, &labels)?;
        assert_eq!((cm.count(0, 0), cm.count(0, 1), cm.count(2, 0)), (1, 1, 1));
        assert_eq!((cm.count(1, 1), cm.count(1, 0), cm.count(7, 9)), (3, 0, 0));
        assert_eq!(cm.pixel_accuracy(), Some(5.0 / 7.0));
        Ok(())
    }

    #[test]
    fn memory_does_not_grow_with_k_squared() -> Result<()> {
        // Dense, 100,000 classes would be 10^10 counts (80 GB).
        let mut cm = ConfusionMatrix::new(100_000);
        let labels = Tensor::new(&[99_999u32, 5, 255], &Device::Cpu)?;
        let preds = Tensor::new(&[99_999u32, 7, 3], &Device::Cpu)?;
        cm.update(&preds, &labels)?;
        assert_eq!(cm.count(5, 7), 1);
        assert_eq!(cm.iou()[99_999], Some(1.0));
        assert_eq!(cm.mean_iou(), Some(1.0 / 3.0));
        Ok(())
    }
}
