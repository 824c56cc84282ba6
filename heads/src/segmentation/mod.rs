//! Semantic segmentation as dinov2 evaluates it: mmseg's BNHead linear probe ("linear": last block;
//! "ms": last four blocks), the evaluation inference (short-side resize, sliding window, multi-scale
//! and flip test-time augmentation), mIoU, class names and palettes, and training a probe on a user's
//! own data from cached backbone features.
//!
//! Shapes: feature maps `(B, E, h, w)`; logits `(B, K, h, w)` on the grid and `(B, K, H, W)` at the
//! input size; labels `(B, H, W)` integers with 255 ignored.

mod accumulate;
mod bn_head;
mod font;
mod head_file;
mod inference;
mod interp;
mod loss;
mod metrics;
mod options;
mod palette;
mod rng;
mod train;
mod visualize;
mod windows;

pub use crate::ops::{center_pad, center_pad_amounts};
pub use bn_head::{BnHead, BnHeadParams, BN_EPS};
pub use head_file::{read_head_metadata, HeadMetadata, METADATA_KEY};
pub use inference::{
    predict, predict_probabilities, predict_timed, window_logits, InferenceTimings,
};
pub use metrics::{check_labels, ConfusionMatrix, IGNORE_INDEX};
pub use options::{InferenceOptions, Window, DEFAULT_WINDOWS_PER_CALL};
pub use palette::{pascal_colormap, ClassSet, ADE20K_CLASSES, ADE20K_PALETTE, VOC_CLASSES};
pub use rng::SplitMix64;
pub use train::{
    evaluate, train_probe, EpochStats, ProbeConfig, Sample, StepStats, TrainObserver, TrainOptions,
    TrainedProbe,
};
pub use visualize::{legend_entries, overlay, LegendEntry, OverlayOptions, RgbCanvas};
pub use windows::{checked_rescaled_size, rescaled_size, slide_windows, MAX_SCALED_PIXELS};
