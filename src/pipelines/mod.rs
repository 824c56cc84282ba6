//! Task pipelines: one type per use of the crate, each owning its preprocessing, backbone, head and
//! post-processing, so a Rust program gets in a few lines what the `dinoreg` command line does (the
//! CLI only parses arguments, calls a pipeline and writes files).
//!
//! | pipeline | task | result |
//! | --- | --- | --- |
//! | [`FeaturesPipeline`] | HF backbone feature maps | [`Features`] |
//! | [`ClassificationPipeline`] | ImageNet (or `id2label`) classes | [`Classification`] |
//! | [`DepthPipeline`] | monocular depth (Depth-Anything-V2, dinov2's depth heads) | [`DepthMap`] |
//! | [`SegmentationPipeline`] | semantic segmentation (dinov2's BNHead, mmseg inference) | [`SegmentationMap`] |
//! | [`ProbeTrainingPipeline`] | a segmentation probe trained on [`ProbeData`] (images + label maps) | [`TrainedSegmentationHead`] |
//! | [`DiscoveryPipeline`] | one object per image (LOST, TokenCut) | [`DiscoveredObject`] |
//! | `CorLocPipeline` (feature `datasets`) | discovery scored on VOC / COCO boxes | `CorLocReport` |
//! | [`PcaPipeline`] | the DINOv2 PCA picture | `RgbImage` |
//! | [`AttentionPipeline`] | the registers paper's attention and norm pictures | [`AttentionResult`] |
//! | [`EmbeddingPipeline`] | retrieval descriptors, index folders | rows `Vec<f32>`, [`EmbedReport`](crate::retrieval::EmbedReport) |
//!
//! Conventions shared by every pipeline:
//! - **Construction**: `from_pretrained(source, …, &LoadOptions)` takes a Hub id (downloaded once
//!   into the Hugging Face cache), a local folder or a bare `.pth`, of either DINO generation, plus
//!   the head and typed options; `new(…)` builds one from parts (any [`Vit`](crate::Vit), so a
//!   user's own backbone plugs in).
//! - **Inputs**: `run_image(&RgbImage)` (decoded), `run_path(path)` (decoded with the processor's
//!   limits and alpha handling), `run_batch(&[paths])` (one batch where images share a size, one
//!   image at a time for the dense tasks, whose results keep each image's size;
//!   `run_batch_with_progress` reports each image), and `run_pixels(&Tensor)` for pixels already
//!   normalised `(B, C, H, W)`, used as they are. [`expand_images`] turns folders into their image
//!   files; each result carries its [`InputName`], and [`output_paths`] names one output file per
//!   input.
//! - **Preprocessing** belongs to the pipeline: `pixels(&RgbImage)` is the tensor its backbone sees
//!   for an image (Depth-Anything's resize, dinov2's centre padding, the segmentation scale), made
//!   by its [`TaskPreprocessor`], which [`TaskPreprocessor::from_pretrained`] also builds from a
//!   model's small files alone, without the weights (`dinoreg preprocess --task`).
//! - **Results** are typed values that can write themselves (PNG, `.npy`, `.safetensors`, JSON).
//! - **Long work** reports through [`Progress`](crate::progress::Progress) and stops when it is
//!   cancelled.
//! - Pipelines are `Send + Sync` and reusable across calls and threads.

mod attention;
mod batch;
mod classify;
#[cfg(feature = "datasets")]
mod corloc;
mod dense_input;
mod depth;
mod depth_head;
mod depth_map;
mod discover;
mod discover_method;
mod embed;
mod features;
mod input;
mod labels;
mod pca;
mod pictures;
mod probe_data;
mod segment;
mod segment_map;
mod task;
mod task_preprocessor;
mod train_seg;

pub use attention::{AttentionPipeline, AttentionPipelineOptions, AttentionResult};
pub use classify::{Classification, ClassificationPipeline};
#[cfg(feature = "datasets")]
pub use corloc::{CorLocDataset, CorLocOptions, CorLocPipeline, CorLocReport, CorLocRow};
pub use depth::{DepthOptions, DepthPipeline, DepthPreprocessing};
pub use depth_head::depth_range_for_head_file;
pub use depth_map::{DepthMap, DepthPicture};
pub use discover::{DiscoveredObject, DiscoveryOptions, DiscoveryPipeline};
pub use discover_method::{DiscoveryMethod, LOST_MAX_PATCHES, TOKENCUT_MAX_PATCHES};
pub use embed::EmbeddingPipeline;
pub use features::{Features, FeaturesOptions, FeaturesPipeline, Resolution};
pub use input::{expand_images, is_image, output_paths, InputName, IMAGE_EXTENSIONS};
pub use labels::{pair_labeled_images, LabelEncoding, LabelMap, LabeledImage};
pub use pca::{PcaPipeline, PcaPipelineOptions};
pub use pictures::{PictureOptions, PicturePipeline};
pub use probe_data::{ProbeData, ProbeDataOptions, ProbeItem, Validation, MAX_INFERRED_CLASSES};
pub use segment::{Scale, SegmentationOptions, SegmentationPipeline, SegmentationPreset};
pub use segment_map::SegmentationMap;
pub use task::Task;
pub use task_preprocessor::{TaskPreprocessor, TaskPreprocessorOptions};
pub use train_seg::{
    ProbeKind, ProbeTrainingOptions, ProbeTrainingPipeline, TrainedSegmentationHead,
};
