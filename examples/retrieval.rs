//! A retrieval index in a few lines: embed a folder of images into an index folder (resumable), then
//! ask for the nearest neighbours of an image, exactly and with the approximate (HNSW) index.
//!
//! ```text
//! cargo run --release --example retrieval -- [MODEL] [IMAGES] [INDEX_DIR]
//! # defaults: facebook/dinov2-with-registers-small examples/images retrieval-index
//! ```

use dinoreg::pipelines::{expand_images, EmbeddingPipeline};
use dinoreg::retrieval::{EmbedOptions, SearchOptions, Searcher};
use dinoreg::LoadOptions;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    let (model, images, out) = (
        arg(0, "facebook/dinov2-with-registers-small"),
        arg(1, "examples/images"),
        arg(2, "retrieval-index"),
    );
    let load = LoadOptions::default();
    let pipeline = EmbeddingPipeline::from_pretrained(model, &EmbedOptions::default(), &load)?;
    // Every image of the folder; a second run resumes, or finds everything done.
    let paths = expand_images(&[images])?;
    let report = pipeline.embed_into(&paths, out, &())?;
    println!(
        "{} images embedded into {out} ({} skipped)",
        report.total,
        report.skipped.len()
    );

    let query = pipeline.run_path(&paths[0])?;
    for approximate in [false, true] {
        let searcher =
            Searcher::open(out, &SearchOptions::default().with_approximate(approximate))?;
        println!(
            "nearest to {} (approximate: {approximate}):",
            paths[0].display()
        );
        for hit in searcher.search(&query, 3)? {
            println!("  {:.4}  {}", hit.score, hit.path);
        }
    }
    Ok(())
}
