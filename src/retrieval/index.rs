//! Exact nearest-neighbour search by cosine similarity over an embedding folder, as the DINOv2 retrieval
//! evaluation ranks a database (`sim = db · q`, descending, on L2-normalised vectors).
//!
//! Shapes: the index holds `(N, D)` unit rows; a query is `(D,)` (normalised here); results are the top
//! `k` rows by score, ties broken by row order.

use std::cmp::Ordering;
use std::path::Path;

use ndarray::{Array1, ArrayView1};
use rayon::prelude::*;
use serde::Serialize;

use super::store::{Embeddings, IndexMeta};
use crate::{Error, Result};

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The row of the index.
    pub row: usize,
    /// The image of that row.
    pub path: String,
    /// Cosine similarity with the query.
    pub score: f32,
}

/// An embedding folder loaded for search.
#[derive(Debug, Clone)]
pub struct EmbeddingIndex {
    embeddings: Embeddings,
}

impl EmbeddingIndex {
    /// Loads a finished embedding folder.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self {
            embeddings: Embeddings::read(dir)?,
        })
    }

    /// Wraps embeddings already in memory, checked as [`Embeddings::check`] does (one path per row,
    /// `meta.dims` columns), so that every row a search returns has a path.
    pub fn from_embeddings(embeddings: Embeddings) -> Result<Self> {
        embeddings.check("embeddings")?;
        Ok(Self { embeddings })
    }

    /// What made the embeddings.
    pub fn meta(&self) -> &IndexMeta {
        &self.embeddings.meta
    }

    /// The loaded embeddings.
    pub fn embeddings(&self) -> &Embeddings {
        &self.embeddings
    }

    /// Rows in the index.
    pub fn len(&self) -> usize {
        self.embeddings.paths.len()
    }

    /// Whether the index has no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The embedding of `row`.
    pub fn row(&self, row: usize) -> Result<ArrayView1<'_, f32>> {
        if row >= self.len() {
            return Err(Error::option(
                "row",
                format!(
                    "row {row} is out of range for an index of {} rows",
                    self.len()
                ),
            ));
        }
        Ok(self.embeddings.vectors.row(row))
    }

    /// The L2-normalised `query`, checked against the index's length.
    pub fn normalize_query(&self, query: &[f32]) -> Result<Array1<f32>> {
        let dims = self.meta().dims;
        if query.len() != dims {
            return Err(Error::input(
                "query",
                format!(
                    "has {} values, the index holds {dims}-dimensional embeddings",
                    query.len()
                ),
            ));
        }
        let norm = query.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        Ok(query.iter().map(|v| v / norm).collect())
    }

    /// The `k` rows most similar to `query` (exact).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        let q = self.normalize_query(query)?;
        Ok(self.top_k(&q, k, None))
    }

    /// The `k` rows most similar to row `row`, the row itself excluded.
    pub fn search_row(&self, row: usize, k: usize) -> Result<Vec<Hit>> {
        let q = self.row(row)?.to_owned();
        Ok(self.top_k(&q, k, Some(row)))
    }

    fn top_k(&self, q: &Array1<f32>, k: usize, exclude: Option<usize>) -> Vec<Hit> {
        let v = &self.embeddings.vectors;
        let mut scored: Vec<(usize, f32)> = (0..v.nrows())
            .into_par_iter()
            .filter(|&i| Some(i) != exclude)
            .map(|i| (i, self.score(i, &q.view())))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, rank);
            scored.truncate(k);
        }
        scored.sort_by(rank);
        self.hits(scored)
    }

    /// The cosine similarity of `row` with the unit query `q`.
    pub(crate) fn score(&self, row: usize, q: &ArrayView1<'_, f32>) -> f32 {
        self.embeddings.vectors.row(row).dot(q)
    }

    /// `(row, score)` pairs as hits.
    pub(crate) fn hits(&self, scored: Vec<(usize, f32)>) -> Vec<Hit> {
        scored
            .into_iter()
            .map(|(row, score)| Hit {
                row,
                path: self.embeddings.paths[row].clone(),
                score,
            })
            .collect()
    }
}

/// Higher score first, then lower row.
fn rank(a: &(usize, f32), b: &(usize, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}
