//! The embedding pipeline used directly, on the retrieval fixture model: its rows are HF's
//! descriptors (tests/fixtures/gen_retrieval.py), a cancelled collection job stops with
//! `Error::Interrupted` and resumes to the files of an uninterrupted one, a query embedded through
//! `for_index` finds its own image, the searcher agrees exactly and approximately, and a 16-bit
//! gray PNG is a note of the job's progress when it is decoded (and only then).

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dinoreg::pipelines::EmbeddingPipeline;
use dinoreg::progress::Progress;
use dinoreg::retrieval::{Descriptor, EmbedOptions, SearchOptions, Searcher};
use dinoreg::{Error, LoadOptions};
use ndarray::Array2;

use common::progress::Notes;
use common::scenes::gray16_png;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/retrieval");
const IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/images");
const PHOTOS: [&str; 4] = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"];

/// Compile-time check: the pipeline can be shared between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<EmbeddingPipeline>();
    send_sync::<Searcher>();
};

fn photos() -> Vec<PathBuf> {
    PHOTOS.iter().map(|p| Path::new(IMAGES).join(p)).collect()
}

fn pipeline(options: &EmbedOptions) -> EmbeddingPipeline {
    EmbeddingPipeline::from_pretrained(
        &format!("{FIXTURES}/model"),
        options,
        &LoadOptions::default(),
    )
    .expect("pipeline")
}

fn expected(name: &str) -> Array2<f32> {
    dinoreg::io::npy::read_array(Path::new(FIXTURES).join(format!("expected_{name}.npy")))
        .expect("expected descriptors")
        .into_dimensionality()
        .expect("2-D")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn rows_are_hf_descriptors() {
    for (name, descriptor) in [
        ("cls", Descriptor::Cls),
        ("gem3", Descriptor::Gem { p: 3.0 }),
    ] {
        let pipeline = pipeline(&EmbedOptions::default().with_descriptor(descriptor));
        let want = expected(name);
        let batch = pipeline.run_batch(&photos()).expect("batch");
        assert_eq!(batch.dims(), &[4, pipeline.dims()]);
        let batch = batch.to_vec2::<f32>().expect("rows");
        for (i, path) in photos().iter().enumerate() {
            let row = pipeline.run_path(path).expect("row");
            let c = cosine(&row, want.row(i).as_slice().expect("row"));
            assert!(c >= 0.999, "{name} of {}: cosine {c}", PHOTOS[i]);
            let gap = row
                .iter()
                .zip(&batch[i])
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(gap < 1e-5, "one image and the batch differ by {gap}");
        }
    }
}

/// Cancels once `after` images are reported done.
struct StopAfter {
    done: AtomicU64,
    after: u64,
}

impl Progress for StopAfter {
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::SeqCst);
    }
    fn cancelled(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.after
    }
}

#[test]
fn a_cancelled_job_stops_and_resumes_to_the_same_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let options = EmbedOptions::default().with_batch_size(1);
    let pipeline = pipeline(&options);
    let whole = tmp.path().join("whole");
    assert!(
        pipeline
            .embed_into(&photos(), &whole, &())
            .expect("whole")
            .complete
    );

    let resumed = tmp.path().join("resumed");
    let stop = StopAfter {
        done: AtomicU64::new(0),
        after: 2,
    };
    let err = pipeline
        .embed_into(&photos(), &resumed, &stop)
        .expect_err("cancelled");
    assert!(
        matches!(err, Error::Interrupted { done: 2, total: 4 }),
        "{err:?}"
    );
    let report = pipeline
        .embed_into(&photos(), &resumed, &())
        .expect("resume");
    assert_eq!((report.resumed, report.embedded), (2, 2));
    for file in ["embeddings.npy", "paths.txt"] {
        assert_eq!(
            std::fs::read(whole.join(file)).expect(file),
            std::fs::read(resumed.join(file)).expect(file),
            "{file} differs after resuming"
        );
    }
}

#[test]
fn queries_embedded_for_the_index_find_their_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let options = EmbedOptions::default().with_descriptor(Descriptor::Mean);
    let dir = tmp.path().join("index");
    pipeline(&options)
        .embed_into(&photos(), &dir, &())
        .expect("embed");

    let exact = Searcher::open(&dir, &SearchOptions::default()).expect("exact");
    assert!(!exact.is_approximate());
    let query = EmbeddingPipeline::for_index(exact.index(), &LoadOptions::default())
        .expect("query pipeline");
    assert_eq!(query.options().descriptor, Descriptor::Mean);
    assert!(Path::new(query.model_id()).is_absolute());
    for (i, path) in photos().iter().enumerate() {
        let hits = exact
            .search(&query.run_path(path).expect("query"), 1)
            .expect("search");
        assert_eq!(hits[0].row, i);
        assert!(hits[0].score > 0.9999, "{}", hits[0].score);
    }

    let approx = Searcher::open(&dir, &SearchOptions::default().with_approximate(true))
        .expect("approximate");
    assert!(approx.is_approximate() && dir.join("hnsw.bin").is_file());
    let rows = |s: &Searcher| -> Vec<usize> {
        s.search_row(1, 3)
            .expect("search")
            .iter()
            .map(|h| h.row)
            .collect()
    };
    assert_eq!(rows(&exact), rows(&approx));
    assert!(!rows(&exact).contains(&1), "the row itself is left out");
    assert!(exact.path(1).expect("path").ends_with("chelsea.png"));
    assert!(exact.path(9).is_err());
    let err = exact.search_row(0, 0).expect_err("top 0");
    assert!(err.to_string().contains("top"), "{err}");
}

#[test]
fn invalid_options_fail_when_the_pipeline_is_built() {
    let load = LoadOptions::default();
    let model = format!("{FIXTURES}/model");
    let err = EmbeddingPipeline::from_pretrained(
        &model,
        &EmbedOptions::default().with_batch_size(0),
        &load,
    )
    .expect_err("batch 0");
    assert!(err.to_string().contains("batch_size"), "{err}");
    let err = EmbeddingPipeline::from_pretrained(
        &model,
        &EmbedOptions::default().with_descriptor(Descriptor::Gem { p: -1.0 }),
        &load,
    )
    .expect_err("negative GeM power");
    assert!(err.to_string().contains("GeM"), "{err}");
}

#[test]
fn a_sixteen_bit_gray_png_is_noted_when_decoded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gray16 = tmp.path().join("gray16.png");
    gray16_png(&gray16, 40, 30, 1500);
    let gray8 = tmp.path().join("gray8.png");
    image::GrayImage::from_fn(40, 30, |x, _| image::Luma([x as u8 * 6]))
        .save(&gray8)
        .expect("gray8");
    let images = vec![gray8.clone(), gray16.clone(), photos()[1].clone()];
    let pipeline = pipeline(&EmbedOptions::default().with_batch_size(2));
    let notes = Notes::default();
    let out = tmp.path().join("index");
    let report = pipeline.embed_into(&images, &out, &notes).expect("embed");
    assert!(report.complete && report.skipped.is_empty());
    assert_eq!(
        notes.take(),
        [format!(
            "warning: {} is a 16-bit grayscale PNG: read as PIL and HF read it, values clipped to 255 (often all white); convert it to 8 bits to see its content",
            gray16.display()
        )],
        "one note, for the 16-bit image only"
    );
    // A resumed job decodes nothing again, so it says nothing again.
    let report = pipeline.embed_into(&images, &out, &notes).expect("resume");
    assert_eq!(report.resumed, 3);
    assert!(notes.take().is_empty());
    // The processor alone: the note through a progress, none for the 8-bit image.
    let processor = pipeline.processor();
    processor.read_with_progress(&gray8, &notes).expect("gray8");
    assert!(notes.take().is_empty());
    processor
        .read_with_progress(&gray16, &notes)
        .expect("gray16");
    assert_eq!(notes.take().len(), 1);
}
