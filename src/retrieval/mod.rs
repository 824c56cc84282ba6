//! Image retrieval with DINOv2 global descriptors: embedding collections into a folder, and nearest
//! neighbours by cosine similarity (DINOv2 paper §7.3; DINO's `eval_image_retrieval.py` and
//! `eval_copy_detection.py` for the descriptors).
//!
//! - [`descriptor`]: CLS / mean-patch / CLS+mean / GeM, pooled from `last_hidden_state`, L2-normalised;
//! - [`embed`]: the resumable, sharded, batched job writing `embeddings.npy` `(N, D)` + `paths.txt`;
//! - [`store`]: the folder's files and `index.json`; [`chunks`]: the job's journal;
//! - [`shard`]: `--shard i/n` and merging shard folders;
//! - [`index`]: exact cosine search; [`approx`]: an HNSW index saved beside the embeddings, checked
//!   before use (`approx_check`).

pub mod approx;
mod approx_check;
pub mod chunks;
pub mod descriptor;
pub mod embed;
pub mod index;
pub mod shard;
pub mod store;

pub use approx::{ApproxIndex, ApproxOptions};
pub use descriptor::{l2_normalize, Descriptor};
pub use embed::{EmbedJob, EmbedOptions, EmbedReport, Progress};
pub use index::{EmbeddingIndex, Hit};
pub use shard::{merge_shards, Shard};
pub use store::{Embeddings, IndexMeta, Skipped};
