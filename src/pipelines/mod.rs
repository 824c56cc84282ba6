//! Task pipelines: one type per use of the crate, each owning its preprocessing, backbone, head and
//! post-processing, so a Rust program gets in a few lines what the `dinoreg` command line does (the
//! CLI only parses arguments, calls a pipeline and writes files).
//!
//! | pipeline | task | result |
//! | --- | --- | --- |
//! | [`FeaturesPipeline`] | HF backbone feature maps | [`Features`] |
//! | [`ClassificationPipeline`] | ImageNet (or `id2label`) classes | [`Classification`] |
//! | [`DiscoveryPipeline`] | one object per image (LOST, TokenCut) | [`DiscoveredObject`] |
//! | [`CorLocPipeline`] | discovery scored on VOC / COCO boxes | [`CorLocReport`] |
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
//!   limits and alpha handling), `run_batch(&[paths])` where images can share a batch, and
//!   `run_pixels(&Tensor)` for pixels already normalised `(B, C, H, W)`, used as they are.
//!   [`expand_images`] turns folders into their image files.
//! - **Results** are typed values that can write themselves (PNG, `.npy`, `.safetensors`, JSON).
//! - **Long work** reports through [`Progress`](crate::progress::Progress) and stops when it is
//!   cancelled.
//! - Pipelines are `Send + Sync` and reusable across calls and threads.

mod attention;
mod classify;
mod corloc;
mod discover;
mod discover_method;
mod embed;
mod features;
mod input;
mod pca;
mod pictures;

pub use attention::{AttentionPipeline, AttentionPipelineOptions, AttentionResult};
pub use classify::{Classification, ClassificationPipeline};
pub use corloc::{CorLocDataset, CorLocOptions, CorLocPipeline, CorLocReport, CorLocRow};
pub use discover::{DiscoveredObject, DiscoveryOptions, DiscoveryPipeline};
pub use discover_method::{DiscoveryMethod, LOST_MAX_PATCHES, TOKENCUT_MAX_PATCHES};
pub use embed::EmbeddingPipeline;
pub use features::{Features, FeaturesOptions, FeaturesPipeline, Resolution};
pub use input::{expand_images, is_image, InputName, IMAGE_EXTENSIONS};
pub use pca::{PcaPipeline, PcaPipelineOptions};
pub use pictures::{PictureOptions, PicturePipeline};
