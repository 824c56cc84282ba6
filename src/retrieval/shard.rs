//! Splitting a collection into shards (`--shard i/n`) and merging the shards' folders back.
//!
//! Shard `i` of `n` (0-based) takes the contiguous range `[i·N/n, (i+1)·N/n)` of the job's sorted,
//! de-duplicated image list (N images). So the shards' rows, concatenated in shard order, are the rows
//! of the unsharded job: [`merge_shards`] does exactly that (`dinoreg embed --merge`), and so does a
//! plain `np.concatenate` of the shards' `embeddings.npy` and `cat` of their `paths.txt` in shard order.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use super::store::{ensure_dir, Embeddings, IndexMeta};
use crate::{Error, Result};

/// Part `index` of `count` (0-based), always with `index < count`. Text form `i/n`; in `index.json`
/// `{"index": i, "count": n}`, checked when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ShardFields", into = "ShardFields")]
pub struct Shard {
    index: usize,
    count: usize,
}

/// The serialized form of a [`Shard`], checked by [`Shard::new`] on the way in.
#[derive(Serialize, Deserialize)]
struct ShardFields {
    index: usize,
    count: usize,
}

impl TryFrom<ShardFields> for Shard {
    type Error = Error;

    fn try_from(f: ShardFields) -> Result<Self> {
        Shard::new(f.index, f.count)
    }
}

impl From<Shard> for ShardFields {
    fn from(s: Shard) -> Self {
        Self {
            index: s.index,
            count: s.count,
        }
    }
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::option(
                "shard",
                format!("{index}/{count} is not a shard: expected i/n with 0 <= i < n"),
            ));
        }
        Ok(Self { index, count })
    }

    /// Which part, `0..count`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many parts.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The range of a list of `len` items this shard takes (within `0..len` for any `len`).
    pub fn range(&self, len: usize) -> std::ops::Range<usize> {
        // In u128, `i * len` cannot overflow; the quotient is at most `len`.
        let at = |i: usize| (i as u128 * len as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parse = |t: &str| t.trim().parse::<usize>().ok();
        match s.split_once('/').map(|(i, n)| (parse(i), parse(n))) {
            Some((Some(i), Some(n))) => Shard::new(i, n),
            _ => Err(Error::option(
                "shard",
                format!("{s:?} is not a shard: expected i/n, e.g. 0/4"),
            )),
        }
    }
}

/// Concatenates finished shard folders (all the shards of one split, any order given) into `out`, in
/// shard order. They must come from the same model and descriptor.
pub fn merge_shards(dirs: &[PathBuf], out: &Path) -> Result<IndexMeta> {
    let mut parts = dirs
        .iter()
        .map(|d| Ok((d.clone(), Embeddings::read(d)?)))
        .collect::<Result<Vec<_>>>()?;
    let first = match parts.first() {
        Some((_, e)) => e.meta.clone(),
        None => return Err(Error::option("merge", "no shard folder given")),
    };
    let count = first.shard.map_or(1, |s| s.count);
    if parts.len() != count {
        return Err(Error::option(
            "merge",
            format!(
                "{} shard folders given, but the first says it is one of {count}: give all {count} once each",
                parts.len()
            ),
        ));
    }
    for (dir, e) in &parts {
        let m = &e.meta;
        if m.model != first.model || m.descriptor != first.descriptor || m.dims != first.dims {
            return Err(Error::input(
                dir.display().to_string(),
                format!(
                    "made with model {} and descriptor {} ({} dims), but the first shard with {} and {} ({} dims)",
                    m.model, m.descriptor, m.dims, first.model, first.descriptor, first.dims
                ),
            ));
        }
        if m.shard.map_or(1, |s| s.count) != count {
            return Err(Error::input(
                dir.display().to_string(),
                format!("is not one of the {count} shards of the first folder"),
            ));
        }
    }
    parts.sort_by_key(|(_, e)| e.meta.shard.map_or(0, |s| s.index));
    let indices: Vec<usize> = parts
        .iter()
        .map(|(_, e)| e.meta.shard.map_or(0, |s| s.index))
        .collect();
    if indices != (0..count).collect::<Vec<_>>() {
        return Err(Error::option(
            "merge",
            format!("expected the shards 0..{count} once each, got {indices:?}"),
        ));
    }
    let views: Vec<_> = parts.iter().map(|(_, e)| e.vectors.view()).collect();
    let vectors = if views.iter().all(|v| v.nrows() == 0) {
        Array2::zeros((0, first.dims))
    } else {
        ndarray::concatenate(Axis(0), &views).map_err(|e| Error::input("shards", e.to_string()))?
    };
    let merged = Embeddings {
        meta: IndexMeta {
            shard: None,
            ..first
        },
        vectors,
        paths: parts.iter().flat_map(|(_, e)| e.paths.clone()).collect(),
        skipped: parts.iter().flat_map(|(_, e)| e.skipped.clone()).collect(),
    };
    ensure_dir(out)?;
    merged.write(out)?;
    IndexMeta::read(out)
}
