//! What the heavy-pipeline benchmarks (`--task segment|discover|train-seg`) share: their options.

use std::path::PathBuf;

/// Options of the heavy-pipeline benchmarks, from `dinoreg bench`'s arguments.
#[derive(Debug, Clone)]
pub struct HeavyOptions {
    /// The image, resized to `size`; `None`: a synthetic picture.
    pub image: Option<PathBuf>,
    /// The image size `(H, W)` before the pipeline's own resizing.
    pub size: (usize, usize),
    /// Classes of the random segmentation head.
    pub classes: usize,
    /// The segmentation scale ratios (`None`: the ms preset's five).
    pub ratios: Option<Vec<f64>>,
    /// Flipped passes too (the ms preset's test-time augmentation).
    pub flip: bool,
    /// Sliding windows per backbone call (`None`: the library's default).
    pub windows_per_call: Option<usize>,
    /// Images the `train-seg` benchmark extracts features of.
    pub images: usize,
    /// Seed of the random head and of the synthetic labels.
    pub seed: u64,
}
