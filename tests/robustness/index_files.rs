//! Embedding folders whose `index.json` disagrees with `embeddings.npy`, `paths.txt` or itself.

use std::path::Path;

use dinoreg::retrieval::store::{IndexMeta, FORMAT_VERSION, META_FILE};
use dinoreg::retrieval::{merge_shards, EmbeddingIndex, Embeddings, Shard};
use ndarray::Array2;

fn embeddings(rows: usize, shard: Option<Shard>) -> Embeddings {
    Embeddings {
        meta: IndexMeta {
            format: FORMAT_VERSION,
            model: "m".into(),
            descriptor: "cls".into(),
            dims: 4,
            count: rows,
            skipped: 0,
            shard,
            complete: true,
        },
        vectors: Array2::from_elem((rows, 4), 0.5),
        paths: (0..rows).map(|i| format!("{i}.png")).collect(),
        skipped: Vec::new(),
    }
}

/// Rewrites `dir/index.json` with `edit` applied to its JSON.
fn edit_meta(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(META_FILE);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    edit(&mut json);
    std::fs::write(&path, json.to_string()).expect("write");
}

#[test]
fn a_huge_shard_count_is_refused_by_merge() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("s0");
    std::fs::create_dir_all(&dir).expect("mkdir");
    embeddings(2, Some(Shard::new(0, 2).expect("shard")))
        .write(&dir)
        .expect("write");
    edit_meta(&dir, |j| {
        j["shard"]["count"] = 4611686018427387904u64.into()
    });
    let err = merge_shards(&[dir], &tmp.path().join("out")).expect_err("one folder of 2^62 shards");
    assert!(err.to_string().contains("give all"), "{err}");
}

#[test]
fn index_json_fields_are_checked_against_the_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 6] = [
        (
            "shard index >= count",
            |j| j["shard"] = serde_json::json!({"index": 3, "count": 3}),
            "not a shard",
        ),
        (
            "shard count 0",
            |j| j["shard"] = serde_json::json!({"index": 0, "count": 0}),
            "not a shard",
        ),
        ("count", |j| j["count"] = 7.into(), "index.json says 7x4"),
        ("dims", |j| j["dims"] = 5.into(), "index.json says 3x5"),
        ("skipped", |j| j["skipped"] = 2.into(), "and 2 skipped"),
        ("format", |j| j["format"] = 99.into(), "layout version 99"),
    ];
    for (i, (what, edit, message)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        embeddings(3, None).write(&dir).expect("write");
        Embeddings::read(&dir).expect("the untouched folder reads");
        edit_meta(&dir, edit);
        let err = Embeddings::read(&dir).expect_err(what);
        assert!(err.to_string().contains(message), "{what}: {err}");
        assert!(EmbeddingIndex::open(&dir).is_err(), "{what}");
    }
}

#[test]
fn an_empty_folder_keeps_its_dims() {
    let tmp = tempfile::tempdir().expect("tempdir");
    embeddings(0, None).write(tmp.path()).expect("write");
    edit_meta(tmp.path(), |j| j["dims"] = 9.into());
    assert!(
        Embeddings::read(tmp.path()).is_err(),
        "(0, 4) rows with dims 9"
    );
}

#[test]
fn embeddings_built_in_memory_are_checked() {
    let mut e = embeddings(3, None);
    e.paths.pop();
    assert!(
        EmbeddingIndex::from_embeddings(e.clone()).is_err(),
        "2 paths for 3 rows"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    assert!(e.write(tmp.path()).is_err(), "not written either");
    let mut e = embeddings(3, None);
    e.meta.dims = 8;
    assert!(
        EmbeddingIndex::from_embeddings(e).is_err(),
        "4 columns, dims 8"
    );
    let index = EmbeddingIndex::from_embeddings(embeddings(3, None)).expect("consistent");
    assert_eq!(index.search(&[1.0; 4], 10).expect("search").len(), 3);
}

#[test]
fn shard_ranges_stay_in_bounds_for_any_size() {
    let s = Shard::new(usize::MAX - 1, usize::MAX).expect("shard");
    let r = s.range(usize::MAX);
    assert_eq!(
        r,
        usize::MAX - 1..usize::MAX,
        "the last item, without overflow"
    );
    let last = Shard::new(2, 3).expect("shard");
    assert_eq!(last.range(10), 6..10);
    assert_eq!((last.index(), last.count()), (2, 3));
    let json = serde_json::to_string(&last).expect("serialize");
    assert_eq!(json, r#"{"index":2,"count":3}"#);
    assert!(serde_json::from_str::<Shard>(r#"{"index":5,"count":3}"#).is_err());
}
