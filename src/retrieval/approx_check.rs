//! The structural check of a saved `hnsw.bin` before `instant-distance` may search it.
//!
//! `instant-distance` indexes its arrays with the neighbour ids stored in the graph, so a corrupted or
//! crafted file would panic a search. Its graph's fields are private; this module reads the same
//! postcard bytes through a mirror of the serialized layout (`HnswMap { hnsw: Hnsw { ef_search,
//! points, zero: [[u32; 64]], layers: [[[u32; 32]]] }, values }`, ids as `u32`, `u32::MAX` ending a
//! neighbour list) and checks what a search relies on:
//!
//! - one point per row of the embeddings, equal to that row bit for bit (`values[i]` names the row of
//!   point `i`, and the values are a permutation of `0..N`);
//! - the zero layer has a node per point, every neighbour id `< N`;
//! - upper layer `l` (1-based) holds the first `n_l` points, non-increasing in `l`, at least one when
//!   there are points (the search enters at point 0), and its neighbour ids are `< n_l`;
//! - `ef_search` is the one asked for.
//!
//! A test (`hnsw_bin_round_trips_through_the_check`) keeps the mirror in step with the crate.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::index::EmbeddingIndex;

/// The neighbours a zero-layer node holds (`2·M`, M = 32 in `instant-distance`).
const ZERO_LINKS: usize = 64;
/// The neighbours an upper-layer node holds (`M`).
const UPPER_LINKS: usize = 32;
/// The id that ends a neighbour list.
const INVALID: u32 = u32::MAX;

/// The serialized layout of `approx::Saved`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct SavedLayout {
    pub format: u32,
    pub fingerprint: u64,
    pub options: (usize, usize, u64),
    map: MapLayout,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct MapLayout {
    hnsw: HnswLayout,
    values: Vec<u32>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct HnswLayout {
    ef_search: usize,
    points: Vec<Vec<f32>>,
    zero: Vec<Node<ZERO_LINKS>>,
    layers: Vec<Vec<Node<UPPER_LINKS>>>,
}

/// A fixed-size neighbour list, serialized as a tuple of `N` ids.
struct Node<const N: usize>(Vec<u32>);

impl<'de, const N: usize> Deserialize<'de> for Node<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ids<const N: usize>(PhantomData<[u32; N]>);
        impl<'de, const N: usize> Visitor<'de> for Ids<N> {
            type Value = Node<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} point ids")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<N>, A::Error> {
                let mut ids = Vec::with_capacity(N);
                for i in 0..N {
                    let id = seq
                        .next_element::<u32>()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                    ids.push(id);
                }
                Ok(Node(ids))
            }
        }
        d.deserialize_tuple(N, Ids::<N>(PhantomData))
    }
}

impl<const N: usize> Node<N> {
    /// The neighbour ids before the end marker.
    fn links(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied().take_while(|&id| id != INVALID)
    }
}

/// Why a saved graph is not usable with `index` (`None`: it is).
pub(super) fn problem(
    saved: &SavedLayout,
    index: &EmbeddingIndex,
    ef_search: usize,
) -> Option<String> {
    let hnsw = &saved.map.hnsw;
    let rows = index.len();
    let n = hnsw.points.len();
    if n != rows || hnsw.zero.len() != rows || saved.map.values.len() != rows {
        return Some(format!(
            "{n} points, {} nodes and {} values for {rows} rows",
            hnsw.zero.len(),
            saved.map.values.len()
        ));
    }
    if hnsw.ef_search != ef_search {
        return Some(format!(
            "ef_search {} instead of {ef_search}",
            hnsw.ef_search
        ));
    }
    let mut seen = vec![false; rows];
    for (point, &row) in hnsw.points.iter().zip(&saved.map.values) {
        let row = row as usize;
        if row >= rows || std::mem::replace(&mut seen[row], true) {
            return Some(format!("value {row} is out of range or repeated"));
        }
        let same = index
            .embeddings()
            .vectors
            .row(row)
            .iter()
            .map(|v| v.to_bits())
            .eq(point.iter().map(|v| v.to_bits()));
        if !same {
            return Some(format!(
                "the point of row {row} differs from the embeddings"
            ));
        }
    }
    if let Some(bad) = hnsw
        .zero
        .iter()
        .flat_map(Node::links)
        .find(|&id| id as usize >= rows)
    {
        return Some(format!("neighbour {bad} on layer 0 is out of range"));
    }
    let mut below = rows;
    for (l, layer) in hnsw.layers.iter().enumerate() {
        let size = layer.len();
        if size > below || size == 0 {
            return Some(format!(
                "layer {} has {size} nodes, the layer below {below}",
                l + 1
            ));
        }
        if let Some(bad) = layer
            .iter()
            .flat_map(Node::links)
            .find(|&id| id as usize >= size)
        {
            return Some(format!(
                "neighbour {bad} on layer {} is out of range",
                l + 1
            ));
        }
        below = size;
    }
    None
}

#[cfg(test)]
impl<const N: usize> serde::Serialize for Node<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(N)?;
        for id in &self.0 {
            t.serialize_element(id)?;
        }
        t.end()
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::SavedLayout;
    use crate::retrieval::store::{IndexMeta, FORMAT_VERSION};
    use crate::retrieval::{ApproxIndex, ApproxOptions, EmbeddingIndex, Embeddings};

    /// 120 pseudo-random unit rows of 8 dims, enough for an upper layer.
    fn index() -> EmbeddingIndex {
        let (rows, dims) = (120, 8);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut v: Array2<f32> = Array2::from_shape_fn((rows, dims), |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        });
        for mut row in v.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        EmbeddingIndex::from_embeddings(Embeddings {
            meta: IndexMeta {
                format: FORMAT_VERSION,
                model: "m".into(),
                descriptor: "cls".into(),
                dims,
                count: rows,
                skipped: 0,
                shard: None,
                complete: true,
            },
            vectors: v,
            paths: (0..rows).map(|i| format!("{i}.png")).collect(),
            skipped: Vec::new(),
        })
        .expect("consistent embeddings")
    }

    /// The saved graph with `edit` applied, written as `dir/hnsw.bin`.
    fn tamper(dir: &std::path::Path, edit: impl FnOnce(&mut SavedLayout)) {
        let path = ApproxIndex::path(dir);
        let bytes = std::fs::read(&path).expect("hnsw.bin");
        let mut layout: SavedLayout = postcard::from_bytes(&bytes).expect("the mirror reads it");
        edit(&mut layout);
        std::fs::write(&path, postcard::to_stdvec(&layout).expect("serialize")).expect("write");
    }

    #[test]
    fn hnsw_bin_round_trips_through_the_check() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (index, opts) = (index(), ApproxOptions::default());
        ApproxIndex::open_or_build(tmp.path(), &index, &opts).expect("build");
        let layout: SavedLayout =
            postcard::from_bytes(&std::fs::read(ApproxIndex::path(tmp.path())).expect("read"))
                .expect("the mirror reads what instant-distance wrote");
        assert!(!layout.map.hnsw.layers.is_empty(), "some upper layer");
        assert_eq!(super::problem(&layout, &index, opts.ef_search), None);
        assert!(ApproxIndex::load(tmp.path(), &index, &opts)
            .expect("load")
            .is_some());
    }

    #[test]
    fn a_corrupted_graph_is_rebuilt_not_searched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (index, opts) = (index(), ApproxOptions::default());
        let built = ApproxIndex::open_or_build(tmp.path(), &index, &opts).expect("build");
        let want = built.search_row(&index, 7, 5).expect("search");
        type Edit = Box<dyn FnOnce(&mut SavedLayout)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "zero-layer id",
                Box::new(|l| l.map.hnsw.zero[0].0[0] = 100_000),
            ),
            (
                "upper-layer id",
                Box::new(|l| {
                    let top = l.map.hnsw.layers.len() - 1;
                    let size = l.map.hnsw.layers[top].len() as u32;
                    l.map.hnsw.layers[top][0].0[0] = size + 3;
                }),
            ),
            (
                "empty top layer",
                Box::new(|l| l.map.hnsw.layers.push(Vec::new())),
            ),
            ("value", Box::new(|l| l.map.values[3] = 4_000_000)),
            ("point", Box::new(|l| l.map.hnsw.points[5][0] += 1.0)),
            (
                "missing node",
                Box::new(|l| {
                    l.map.hnsw.zero.pop();
                }),
            ),
        ];
        for (what, edit) in edits {
            tamper(tmp.path(), edit);
            assert!(
                ApproxIndex::load(tmp.path(), &index, &opts)
                    .expect("load")
                    .is_none(),
                "a graph with a bad {what} is refused"
            );
            let rebuilt = ApproxIndex::open_or_build(tmp.path(), &index, &opts).expect("rebuild");
            assert_eq!(
                rebuilt.search_row(&index, 7, 5).expect("search"),
                want,
                "{what}"
            );
        }
    }
}
