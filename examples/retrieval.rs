//! A retrieval index in a few lines: embed a folder of images (normed CLS descriptors, resumable,
//! written to a folder), then ask for the nearest neighbours of one of them, exactly and with the
//! approximate (HNSW) index saved beside the embeddings.
//!
//! ```text
//! cargo run --release --example retrieval -- [MODEL] [IMAGES] [INDEX_DIR]
//! # defaults: facebook/dinov2-with-registers-small examples/images retrieval-index
//! ```

use std::path::{Path, PathBuf};

use dinoreg::model::weights::open_backbone;
use dinoreg::preprocess::ImageProcessor;
use dinoreg::retrieval::{
    ApproxIndex, ApproxOptions, Descriptor, EmbedJob, EmbedOptions, EmbeddingIndex,
};
use dinoreg::{resolve_model, Dinov2Config, Dinov2Model, LoadOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    let (model_id, images, out) = (
        arg(0, "facebook/dinov2-with-registers-small"),
        arg(1, "examples/images"),
        Path::new(arg(2, "retrieval-index")),
    );

    let files = resolve_model(model_id)?;
    let config = Dinov2Config::from_file(&files.config)?;
    let model = Dinov2Model::from_weights(
        config,
        &open_backbone(&files.weights)?,
        &LoadOptions::default(),
    )?;
    let processor = match &files.preprocessor {
        Some(p) => ImageProcessor::from_file(p)?,
        None => ImageProcessor::default(),
    };

    // Embed every image of the folder (sorted); a second run resumes or finds everything done.
    let mut paths: Vec<PathBuf> = std::fs::read_dir(images)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    paths.sort();
    let opts = EmbedOptions::default()
        .with_descriptor(Descriptor::Cls)
        .with_batch_size(8);
    let report = EmbedJob::new(&model, &processor, model_id).run(&paths, out, &opts)?;
    println!(
        "{} images embedded into {} ({} skipped)",
        report.total,
        out.display(),
        report.skipped.len()
    );

    // Exact cosine search for the neighbours of row 0, then the same with the HNSW index.
    let index = EmbeddingIndex::open(out)?;
    let query = index.embeddings().paths[0].clone();
    println!("nearest to {query}:");
    for hit in index.search_row(0, 3)? {
        println!("  {:.4}  {}", hit.score, hit.path);
    }
    let approx = ApproxIndex::open_or_build(out, &index, &ApproxOptions::default())?;
    let first = approx.search_row(&index, 0, 3)?;
    println!(
        "approximate: {:?}",
        first.iter().map(|h| h.row).collect::<Vec<_>>()
    );
    Ok(())
}
