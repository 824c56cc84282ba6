//! Retrieval: descriptor parity with HF (tests/fixtures/gen_retrieval.py), nearest neighbours, and the
//! embedding job's resume, shards and unreadable files.

use std::path::{Path, PathBuf};

use dinoreg::preprocess::ImageProcessor;
use dinoreg::retrieval::{
    merge_shards, ApproxIndex, ApproxOptions, Descriptor, EmbedJob, EmbedOptions, EmbeddingIndex,
    Embeddings, Shard,
};
use dinoreg::Vit;
use dinoreg::{Dinov2Model, LoadOptions};
use ndarray::Array2;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/retrieval");
const IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/images");
const PHOTOS: [&str; 4] = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"];

fn model() -> Dinov2Model {
    let dir = Path::new(FIXTURES).join("model");
    Dinov2Model::load(
        dir.join("config.json"),
        &[dir.join("model.safetensors")],
        &LoadOptions::default(),
    )
    .expect("fixture model")
}

fn expected(name: &str) -> Array2<f32> {
    let a = dinoreg::io::npy::read_array(Path::new(FIXTURES).join(format!("expected_{name}.npy")))
        .expect("expected descriptors");
    a.into_dimensionality().expect("2-D")
}

fn photos() -> Vec<PathBuf> {
    PHOTOS.iter().map(|p| Path::new(IMAGES).join(p)).collect()
}

/// Cosine similarity of two rows.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

/// A folder of the photos, a copy of chelsea.png in a subfolder, and a corrupt "image".
fn collection(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir.join("dup")).expect("mkdir");
    let mut paths = Vec::new();
    for p in PHOTOS {
        let to = dir.join(p);
        std::fs::copy(Path::new(IMAGES).join(p), &to).expect("copy photo");
        paths.push(to);
    }
    let dup = dir.join("dup").join("chelsea_copy.png");
    std::fs::copy(Path::new(IMAGES).join("chelsea.png"), &dup).expect("copy duplicate");
    let corrupt = dir.join("broken.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really a png").expect("write corrupt");
    paths.push(corrupt);
    paths.push(dup);
    paths.sort();
    paths
}

fn run(images: &[PathBuf], out: &Path, opts: &EmbedOptions) -> dinoreg::retrieval::EmbedReport {
    let model = model();
    let processor = ImageProcessor::default();
    EmbedJob::new(&model, &processor, "fixture")
        .run(images, out, opts)
        .expect("embed job")
}

#[test]
fn descriptors_match_hf() {
    let model = model();
    let pixels = ImageProcessor::default()
        .load_batch_tensor(&photos(), model.device())
        .expect("pixels");
    let cases = [
        ("cls", Descriptor::Cls),
        ("mean", Descriptor::Mean),
        ("cls_mean", Descriptor::ClsMean),
        ("gem3", Descriptor::Gem { p: 3.0 }),
    ];
    let mut worst = 1f32;
    for (name, descriptor) in cases {
        let got = descriptor
            .describe(&model, &pixels)
            .expect("describe")
            .to_vec2::<f32>()
            .expect("vec");
        let want = expected(name);
        for (i, row) in got.iter().enumerate() {
            let c = cosine(row, want.row(i).as_slice().expect("row"));
            assert!(c >= 0.999, "{name} of {}: cosine {c}", PHOTOS[i]);
            worst = worst.min(c);
            let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{name} not normalised: {norm}");
        }
    }
    eprintln!("lowest cosine with HF: {worst}");
}

#[test]
fn embed_job_writes_hf_embeddings_and_skips_corrupt_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let images = collection(&tmp.path().join("images"));
    let out = tmp.path().join("index");
    let report = run(&images, &out, &EmbedOptions::default().with_batch_size(3));
    assert!(report.complete);
    assert_eq!((report.total, report.embedded), (6, 5));
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].path.ends_with("broken.png"));

    let e = Embeddings::read(&out).expect("read index");
    assert_eq!(e.vectors.dim(), (5, 32));
    assert_eq!(e.meta.descriptor, "cls");
    assert!(!e.paths.iter().any(|p| p.ends_with("broken.png")));
    let skipped = std::fs::read_to_string(out.join("skipped.txt")).expect("skipped.txt");
    assert!(skipped.contains("broken.png\t"), "{skipped}");
    assert!(
        skipped.contains("corrupt"),
        "the reason is given: {skipped}"
    );

    let want = expected("cls");
    for (i, photo) in PHOTOS.iter().enumerate() {
        let row = e
            .paths
            .iter()
            .position(|p| p.ends_with(&format!("images/{photo}")))
            .expect("photo row");
        let c = cosine(
            e.vectors.row(row).as_slice().expect("row"),
            want.row(i).as_slice().expect("row"),
        );
        assert!(c >= 0.999, "{photo}: cosine {c}");
    }
}

#[test]
fn a_duplicate_is_its_own_nearest_neighbour() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let images = collection(&tmp.path().join("images"));
    let out = tmp.path().join("index");
    run(&images, &out, &EmbedOptions::default());
    let index = EmbeddingIndex::open(&out).expect("open");
    let row = |suffix: &str| {
        index
            .embeddings()
            .paths
            .iter()
            .position(|p| p.ends_with(suffix))
            .expect(suffix)
    };
    let (cat, copy) = (row("images/chelsea.png"), row("chelsea_copy.png"));

    let hits = index.search_row(cat, 3).expect("search row");
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].row, copy);
    assert!((hits[0].score - 1.0).abs() < 1e-5, "{hits:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));

    for r in 0..index.len() {
        let query = index.row(r).expect("row").to_vec();
        let hits = index.search(&query, 1).expect("search");
        assert!((hits[0].score - 1.0).abs() < 1e-5);
        assert!(
            hits[0].row == r || [cat, copy].contains(&r),
            "{r}: {hits:?}"
        );
    }

    let opts = ApproxOptions::default().with_ef_search(8);
    let approx = ApproxIndex::open_or_build(&out, &index, &opts).expect("approx");
    assert!(ApproxIndex::path(&out).is_file());
    let loaded = ApproxIndex::load(&out, &index, &opts)
        .expect("load")
        .expect("current");
    for graph in [&approx, &loaded] {
        let hits = graph.search_row(&index, cat, 3).expect("approx search");
        assert_eq!(hits, index.search_row(cat, 3).expect("exact"));
    }
    assert!(
        approx.search(&index, &[0.0; 3], 1).is_err(),
        "wrong length is an error"
    );
    assert!(
        approx.search_row(&index, cat, 8).is_err(),
        "more than ef_search is an error"
    );
}

#[test]
fn an_interrupted_job_resumes_to_the_same_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let images = collection(&tmp.path().join("images"));
    let opts = EmbedOptions::default()
        .with_batch_size(2)
        .with_descriptor(Descriptor::Gem { p: 4.0 });
    let whole = tmp.path().join("whole");
    assert!(run(&images, &whole, &opts).complete);

    let resumed = tmp.path().join("resumed");
    let first = run(&images, &resumed, &opts.clone().with_max_batches(Some(2)));
    assert!(!first.complete);
    assert_eq!(first.embedded + first.skipped.len(), 4);
    assert!(!resumed.join("embeddings.npy").exists());
    assert!(
        Embeddings::read(&resumed).is_err(),
        "an unfinished folder is not an index"
    );
    // What a kill during a write leaves behind: a temporary file and a chunk without its list.
    std::fs::write(
        resumed.join("chunks").join(".00000002.npy.1-0.tmp"),
        b"half",
    )
    .expect("tmp");
    std::fs::write(resumed.join("chunks").join("00000009.npy"), b"orphan").expect("orphan");

    let second = run(&images, &resumed, &opts);
    assert!(second.complete);
    assert_eq!((second.resumed, second.total), (4, 6));
    for file in ["embeddings.npy", "paths.txt", "skipped.txt"] {
        let a = std::fs::read(whole.join(file)).expect(file);
        let b = std::fs::read(resumed.join(file)).expect(file);
        assert!(a == b, "{file} differs after resuming");
    }
    let chunks = std::fs::read_dir(resumed.join("chunks"))
        .expect("chunks")
        .count();
    assert_eq!(chunks, 2, "the journal is compacted to one chunk");

    // A third run finds everything done and rewrites the same files.
    let third = run(&images, &resumed, &opts);
    assert_eq!((third.resumed, third.embedded), (6, 0));
    assert_eq!(
        std::fs::read(whole.join("embeddings.npy")).expect("whole"),
        std::fs::read(resumed.join("embeddings.npy")).expect("resumed")
    );
    // Another descriptor in the same folder is refused.
    let model = model();
    let processor = ImageProcessor::default();
    let err = EmbedJob::new(&model, &processor, "fixture")
        .run(&images, &resumed, &EmbedOptions::default())
        .expect_err("descriptor mismatch");
    assert!(err.to_string().contains("another output folder"), "{err}");
}

#[test]
fn shards_concatenate_to_the_unsharded_result() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let images = collection(&tmp.path().join("images"));
    let opts = EmbedOptions::default().with_batch_size(2);
    let whole = tmp.path().join("whole");
    run(&images, &whole, &opts);
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| {
            let dir = tmp.path().join(format!("shard{i}"));
            let shard = Shard::new(i, 3).expect("shard");
            let report = run(&images, &dir, &opts.clone().with_shard(Some(shard)));
            assert_eq!(report.total, 2);
            dir
        })
        .collect();
    let merged = tmp.path().join("merged");
    let reversed: Vec<PathBuf> = dirs.iter().rev().cloned().collect();
    let meta = merge_shards(&reversed, &merged).expect("merge");
    assert_eq!((meta.count, meta.skipped, meta.shard), (5, 1, None));
    let (a, b) = (
        Embeddings::read(&whole).expect("whole"),
        Embeddings::read(&merged).expect("merged"),
    );
    assert_eq!(a.paths, b.paths);
    assert_eq!(a.skipped, b.skipped);
    let diff = (&a.vectors - &b.vectors)
        .iter()
        .fold(0f32, |m, d| m.max(d.abs()));
    assert!(diff <= 1e-6, "max difference {diff}");

    assert!(
        merge_shards(&dirs[..2], &tmp.path().join("partial")).is_err(),
        "a missing shard is an error"
    );
    assert!(
        "3/3".parse::<Shard>().is_err()
            && "1/0".parse::<Shard>().is_err()
            && "x".parse::<Shard>().is_err()
    );
    assert_eq!("1/4".parse::<Shard>().expect("shard").range(10), 2..5);
}

#[test]
fn descriptor_names_round_trip() {
    for text in ["cls", "mean", "cls+mean", "gem:3", "gem:4"] {
        let d: Descriptor = text.parse().expect(text);
        assert_eq!(d.to_string(), text);
    }
    assert_eq!(
        "gem".parse::<Descriptor>().expect("gem"),
        Descriptor::Gem { p: 3.0 }
    );
    assert!("gem:0".parse::<Descriptor>().is_err());
    assert!("max".parse::<Descriptor>().is_err());
}

/// Runs the `dinoreg` binary; returns stdout then stderr (where the status lines go), failing the
/// test on a non-zero status.
fn dinoreg(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dinoreg"))
        .args(args)
        .output()
        .expect("run dinoreg");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dinoreg {args:?} failed: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn embed_and_search_commands() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let images = tmp.path().join("images");
    collection(&images);
    let (model, out) = (format!("{FIXTURES}/model"), tmp.path().join("index"));
    let (images, out_s) = (
        images.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
    );
    let base = [
        "embed",
        "--model",
        &model,
        "--images",
        images,
        "--output",
        out_s,
        "--batch-size",
        "2",
    ];
    let first = dinoreg(&[&base[..], &["--max-batches", "1"]].concat());
    assert!(
        first.contains("rerun the same command to resume"),
        "{first}"
    );
    let second = dinoreg(&[&base[..], &["--approximate"]].concat());
    assert!(
        second.contains("1 skipped") && out.join("hnsw.bin").is_file(),
        "{second}"
    );

    let json = dinoreg(&[
        "search",
        "--index",
        out_s,
        "--image",
        &format!("{IMAGES}/coffee.png"),
        "--top",
        "2",
        "--json",
    ]);
    let value: serde_json::Value = serde_json::Deserializer::from_str(&json)
        .into_iter()
        .next()
        .expect("json")
        .expect("json");
    let top = &value["results"][0];
    assert!(
        top["path"].as_str().expect("path").ends_with("coffee.png"),
        "{json}"
    );
    assert!(top["score"].as_f64().expect("score") > 0.9999);
    let text = dinoreg(&[
        "search",
        "--index",
        out_s,
        "--row",
        "1",
        "--top",
        "1",
        "--approximate",
    ]);
    assert!(text.contains("chelsea_copy.png"), "{text}");
}
