//! An approximate nearest-neighbour index (HNSW, Malkov & Yashunin) over an embedding folder, for
//! collections too large to scan: built once with the `instant-distance` crate and saved beside the
//! embeddings as `hnsw.bin` (postcard), with a fingerprint of the embeddings and paths, so that a stale
//! file (the folder was embedded again) is rebuilt instead of used.
//!
//! Distance `1 - cos` on the unit rows; the hits' scores are the cosine similarities computed as the
//! exact search does. A search returns at most `ef_search` candidates.
//!
//! A saved graph is checked before use (`approx_check`); one that fails is rebuilt.

use std::path::{Path, PathBuf};

use instant_distance::{Builder, HnswMap, Search};
use serde::{Deserialize, Serialize};

use super::approx_check::{self, SavedLayout};
use super::index::{EmbeddingIndex, Hit};
use crate::io::output::write_bytes;
use crate::{Error, Result};

/// The file name of the saved index.
pub const APPROX_FILE: &str = "hnsw.bin";
const APPROX_FORMAT: u32 = 1;

/// Build settings. Default: `ef_construction` 100, `ef_search` 128, seed 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApproxOptions {
    /// Candidates kept while building (higher: better graph, slower build).
    pub ef_construction: usize,
    /// Candidates kept while searching, and the most results a search returns.
    pub ef_search: usize,
    /// Seed of the level assignment.
    pub seed: u64,
}

impl Default for ApproxOptions {
    fn default() -> Self {
        Self {
            ef_construction: 100,
            ef_search: 128,
            seed: 0,
        }
    }
}

impl ApproxOptions {
    /// Sets `ef_construction`.
    pub fn with_ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef;
        self
    }

    /// Sets `ef_search`.
    pub fn with_ef_search(mut self, ef: usize) -> Self {
        self.ef_search = ef;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// A unit vector; distance `1 - dot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unit(Vec<f32>);

impl instant_distance::Point for Unit {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum::<f32>()
    }
}

/// What `hnsw.bin` holds.
#[derive(Serialize, Deserialize)]
struct Saved {
    format: u32,
    fingerprint: u64,
    options: (usize, usize, u64),
    map: HnswMap<Unit, u32>,
}

/// The HNSW graph of an [`EmbeddingIndex`].
pub struct ApproxIndex {
    saved: Saved,
}

impl std::fmt::Debug for ApproxIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApproxIndex")
            .field("rows", &self.saved.map.values.len())
            .field("options", &self.saved.options)
            .finish()
    }
}

impl ApproxIndex {
    /// Builds the graph of `index`'s rows.
    pub fn build(index: &EmbeddingIndex, opts: &ApproxOptions) -> Result<Self> {
        if opts.ef_search == 0 || opts.ef_construction == 0 {
            return Err(Error::option(
                "ef_search / ef_construction",
                "must be at least 1",
            ));
        }
        let rows = index.len();
        if rows >= u32::MAX as usize {
            return Err(Error::input(
                "index",
                format!("{rows} rows are too many for the HNSW index"),
            ));
        }
        let points: Vec<Unit> = index
            .embeddings()
            .vectors
            .rows()
            .into_iter()
            .map(|r| Unit(r.to_vec()))
            .collect();
        let values: Vec<u32> = (0..rows as u32).collect();
        let map = Builder::default()
            .ef_construction(opts.ef_construction)
            .ef_search(opts.ef_search)
            .seed(opts.seed)
            .build(points, values);
        Ok(Self {
            saved: Saved {
                format: APPROX_FORMAT,
                fingerprint: fingerprint(index),
                options: (opts.ef_construction, opts.ef_search, opts.seed),
                map,
            },
        })
    }

    /// The file of the saved graph in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(APPROX_FILE)
    }

    /// Saves the graph as `dir/hnsw.bin`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let bytes = postcard::to_stdvec(&self.saved)
            .map_err(|e| Error::io(&path, std::io::Error::other(e.to_string())))?;
        write_bytes(&path, &bytes)
    }

    /// Loads `dir/hnsw.bin` when it exists, was built from `index`'s current rows with `opts`, and its
    /// graph passes the structural check of `approx_check`; `None` otherwise (a stale,
    /// corrupted or foreign file is never searched).
    pub fn load(dir: &Path, index: &EmbeddingIndex, opts: &ApproxOptions) -> Result<Option<Self>> {
        let path = Self::path(dir);
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Self::from_bytes(&bytes, index, opts))
    }

    /// The graph saved in `bytes` (the content of an `hnsw.bin`), when it is current for `index` and
    /// `opts` and passes the structural check.
    pub fn from_bytes(bytes: &[u8], index: &EmbeddingIndex, opts: &ApproxOptions) -> Option<Self> {
        let layout: SavedLayout = postcard::from_bytes(bytes).ok()?;
        let current = layout.format == APPROX_FORMAT
            && layout.fingerprint == fingerprint(index)
            && layout.options == (opts.ef_construction, opts.ef_search, opts.seed);
        if !current || approx_check::problem(&layout, index, opts.ef_search).is_some() {
            return None;
        }
        let saved: Saved = postcard::from_bytes(bytes).ok()?;
        Some(Self { saved })
    }

    /// Loads the saved graph of `dir`, or builds and saves it when missing or stale.
    pub fn open_or_build(dir: &Path, index: &EmbeddingIndex, opts: &ApproxOptions) -> Result<Self> {
        if let Some(found) = Self::load(dir, index, opts)? {
            return Ok(found);
        }
        let built = Self::build(index, opts)?;
        built.save(dir)?;
        Ok(built)
    }

    /// The (about) `k` rows most similar to `query` (at most `ef_search`).
    pub fn search(&self, index: &EmbeddingIndex, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        let q = index.normalize_query(query)?;
        self.nearest(index, q.to_vec(), k, None)
    }

    /// The (about) `k` rows most similar to row `row`, the row itself excluded.
    pub fn search_row(&self, index: &EmbeddingIndex, row: usize, k: usize) -> Result<Vec<Hit>> {
        let q = index.row(row)?.to_vec();
        self.nearest(index, q, k, Some(row))
    }

    fn nearest(
        &self,
        index: &EmbeddingIndex,
        q: Vec<f32>,
        k: usize,
        exclude: Option<usize>,
    ) -> Result<Vec<Hit>> {
        let ef = self.saved.options.1;
        if k + usize::from(exclude.is_some()) > ef {
            return Err(Error::option(
                "top",
                format!("{k} results exceed the approximate index's ef_search {ef}; ask for fewer or use the exact search"),
            ));
        }
        let mut search = Search::default();
        let rows = index.len();
        let query = Unit(q);
        let q = ndarray::ArrayView1::from(&query.0);
        let mut scored: Vec<(usize, f32)> = self
            .saved
            .map
            .search(&query, &mut search)
            .map(|item| *item.value as usize)
            .filter(|row| Some(*row) != exclude && *row < rows)
            .take(k)
            .map(|row| (row, index.score(row, &q)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(index.hits(scored))
    }
}

/// FNV-1a over the embeddings' bits and the paths.
fn fingerprint(index: &EmbeddingIndex) -> u64 {
    let e = index.embeddings();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for v in e.vectors.iter() {
        eat(&v.to_le_bytes());
    }
    for p in &e.paths {
        eat(p.as_bytes());
        eat(b"\n");
    }
    h
}
