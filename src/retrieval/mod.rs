//! Image retrieval with DINOv2 global descriptors: embedding collections into a folder, and nearest
//! neighbours by cosine similarity (DINOv2 paper §7.3; DINO's `eval_image_retrieval.py` and
//! `eval_copy_detection.py` for the descriptors).
//!
//! - [`descriptor`]: CLS / mean-patch / CLS+mean / GeM, pooled from `last_hidden_state`, L2-normalised;
//! - [`embed`]: the resumable, sharded, batched job writing `embeddings.npy` `(N, D)` + `paths.txt`;
//! - [`store`]: the folder's files and `index.json`; [`chunks`]: the job's journal;
//! - [`shard`]: `--shard i/n` and merging shard folders;
//! - [`index`]: exact cosine search; [`approx`]: an HNSW index saved beside the embeddings, checked
//!   before use (`approx_check`);
//! - [`search`]: either of them behind one [`Searcher`].
//!
//! [`EmbeddingPipeline`](crate::pipelines::EmbeddingPipeline) embeds single images and whole
//! collections with a model loaded in one call.

#[cfg(feature = "ann")]
pub mod approx;
#[cfg(feature = "ann")]
mod approx_check;
pub mod chunks;
pub mod descriptor;
pub mod embed;
pub mod index;
pub mod relpath;
pub mod search;
pub mod shard;
pub mod store;

#[cfg(feature = "ann")]
pub use approx::{ApproxIndex, ApproxOptions};
pub use descriptor::{l2_normalize, Descriptor};
pub use embed::{EmbedJob, EmbedOptions, EmbedReport};
pub use index::{EmbeddingIndex, Hit};
pub use search::{SearchOptions, Searcher};
pub use shard::{merge_shards, Shard};
pub use store::{model_id, Embeddings, IndexMeta, Skipped};
