//! Searching an embedding folder the way `dinoreg search` does: exact cosine search
//! ([`EmbeddingIndex`]), or the approximate HNSW graph saved beside the embeddings ([`ApproxIndex`],
//! built and saved once when missing or stale), behind one type.

use std::path::Path;

#[cfg(feature = "ann")]
use super::approx::{ApproxIndex, ApproxOptions};
use super::index::{EmbeddingIndex, Hit};
use crate::{Error, Result};

/// Options of a [`Searcher`]. Default: exact search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchOptions {
    /// Use the approximate (HNSW) index `hnsw.bin`, building and saving it when missing or stale.
    pub approximate: bool,
    /// The approximate index's settings.
    #[cfg(feature = "ann")]
    pub approx: ApproxOptions,
}

impl SearchOptions {
    /// Sets whether the approximate index is used.
    pub fn with_approximate(mut self, yes: bool) -> Self {
        self.approximate = yes;
        self
    }

    /// Sets the approximate index's settings.
    #[cfg(feature = "ann")]
    pub fn with_approx(mut self, approx: ApproxOptions) -> Self {
        self.approx = approx;
        self
    }
}

/// An embedding folder opened for search, exact or approximate.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::EmbeddingPipeline;
/// use dinoreg::retrieval::{EmbedOptions, SearchOptions, Searcher};
/// use dinoreg::LoadOptions;
///
/// let dir = std::env::temp_dir().join(format!("dinoreg-searcher-doc-{}", std::process::id()));
/// let pipeline = EmbeddingPipeline::from_pretrained(
///     "tests/fixtures/retrieval/model",
///     &EmbedOptions::default(),
///     &LoadOptions::default(),
/// )?;
/// let images = ["examples/images/chelsea.png", "examples/images/coffee.png"];
/// pipeline.embed_into(&images, &dir, &())?;
///
/// let searcher = Searcher::open(&dir, &SearchOptions::default())?;
/// let query = EmbeddingPipeline::for_index(searcher.index(), &LoadOptions::default())?
///     .run_path("examples/images/coffee.png")?;
/// let hits = searcher.search(&query, 1)?;
/// assert!(hits[0].path.ends_with("coffee.png"));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Searcher {
    index: EmbeddingIndex,
    #[cfg(feature = "ann")]
    approx: Option<ApproxIndex>,
}

impl Searcher {
    /// Opens the finished embedding folder `dir` (and, when asked, its approximate index).
    pub fn open(dir: impl AsRef<Path>, options: &SearchOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let index = EmbeddingIndex::open(dir)?;
        #[cfg(feature = "ann")]
        {
            let approx = options
                .approximate
                .then(|| ApproxIndex::open_or_build(dir, &index, &options.approx))
                .transpose()?;
            Ok(Self { index, approx })
        }
        #[cfg(not(feature = "ann"))]
        {
            if options.approximate {
                return Err(Error::option(
                    "approximate",
                    "this build has no approximate index (enable the Cargo feature `ann`)",
                ));
            }
            Ok(Self { index })
        }
    }

    /// The embeddings and what made them.
    pub fn index(&self) -> &EmbeddingIndex {
        &self.index
    }

    /// Whether searches go through the approximate index.
    pub fn is_approximate(&self) -> bool {
        #[cfg(feature = "ann")]
        return self.approx.is_some();
        #[cfg(not(feature = "ann"))]
        false
    }

    /// The `k` rows most similar to `query` (normalised here).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        check_k(k)?;
        #[cfg(feature = "ann")]
        if let Some(a) = &self.approx {
            return a.search(&self.index, query, k);
        }
        self.index.search(query, k)
    }

    /// The `k` rows most similar to row `row`, the row itself left out.
    pub fn search_row(&self, row: usize, k: usize) -> Result<Vec<Hit>> {
        check_k(k)?;
        #[cfg(feature = "ann")]
        if let Some(a) = &self.approx {
            return a.search_row(&self.index, row, k);
        }
        self.index.search_row(row, k)
    }

    /// The image of row `row`.
    pub fn path(&self, row: usize) -> Result<&str> {
        self.index.row(row)?;
        Ok(&self.index.embeddings().paths[row])
    }
}

/// Errors unless at least one result is asked for.
fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::option("top", "expected at least 1 result"));
    }
    Ok(())
}
