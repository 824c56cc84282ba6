//! `dinoreg embed`: L2-normalised embeddings of a folder (recursive) or a list of images, for retrieval.
//! Writes `embeddings.npy` `(N, D)`, `paths.txt`, `skipped.txt` and `index.json` into `--output`
//! (layout: `dinoreg::retrieval::store`). Resumable: run it again with the same arguments after an
//! interruption. `--shard i/n` embeds a contiguous part of the sorted list; `--merge` concatenates the
//! shard folders in shard order into the unsharded result.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use dinoreg::retrieval::{
    merge_shards, ApproxIndex, ApproxOptions, Descriptor, EmbedJob, EmbedOptions, EmbeddingIndex,
    Shard,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::common::{expand_images, ModelArgs, ModelSource};

/// Arguments of `dinoreg embed`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A local model folder or a Hub id (not needed with --merge).
    #[arg(long, short = 'm', required_unless_present = "merge")]
    model: Option<String>,
    /// Device: `cpu`, `cuda` or `cuda:N`.
    #[arg(long)]
    device: Option<String>,
    /// Image files or folders (searched recursively, sorted). Repeatable.
    #[arg(long = "images", visible_alias = "image", short = 'i', num_args = 1.., required_unless_present = "merge")]
    images: Vec<PathBuf>,
    /// The output folder (created when missing; an unfinished job in it is resumed).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// The descriptor: cls (normed CLS, `pooler_output`), mean (patch tokens, registers excluded),
    /// cls+mean, gem (GeM p=3) or gem:P.
    #[arg(long, default_value = "cls")]
    descriptor: String,
    /// Images per batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Embed only part i of n (0-based) of the sorted image list, e.g. 0/4.
    #[arg(long)]
    shard: Option<String>,
    /// Stop after this many batches (run again to continue).
    #[arg(long)]
    max_batches: Option<usize>,
    /// Also build the approximate (HNSW) index `hnsw.bin` once the embeddings are written.
    #[arg(long)]
    approximate: bool,
    /// Merge these finished shard folders into --output instead of embedding.
    #[arg(long, num_args = 1.., conflicts_with_all = ["images", "shard"])]
    merge: Vec<PathBuf>,
}

/// What `index.json` records as the model: the absolute folder of a local model, else the Hub id.
pub fn model_id(model: &str) -> String {
    let path = Path::new(model);
    match path.exists().then(|| path.canonicalize()) {
        Some(Ok(p)) => p.display().to_string(),
        _ => model.to_string(),
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.merge.is_empty() {
        let meta = merge_shards(&args.merge, &args.output)?;
        println!(
            "merged {} shards: {} embeddings in {}",
            args.merge.len(),
            meta.count,
            args.output.display()
        );
        return build_approximate(&args);
    }
    let Some(model_arg) = args.model.clone() else {
        bail!("--model is required to embed images");
    };
    let descriptor: Descriptor = args.descriptor.parse()?;
    let shard = args.shard.as_deref().map(str::parse::<Shard>).transpose()?;
    let images = expand_images(&args.images)?;
    let source = ModelSource::resolve(&ModelArgs {
        model: model_arg.clone(),
        device: args.device.clone(),
    })?;
    let model = source.model()?;
    let id = model_id(&model_arg);
    let opts = EmbedOptions::default()
        .with_descriptor(descriptor)
        .with_batch_size(args.batch_size)
        .with_shard(shard)
        .with_max_batches(args.max_batches);
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {msg}, eta {eta}")
            .context("progress bar template")?,
    );
    let report = EmbedJob::new(&model, &source.processor, &id).run_with_progress(
        &images,
        &args.output,
        &opts,
        &mut |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(format!("{:.1} images/s", p.images_per_second));
        },
    )?;
    bar.finish_and_clear();
    for s in &report.skipped {
        eprintln!("skipped {}: {}", s.path, s.reason);
    }
    println!(
        "{} images: {} embedded now, {} done before, {} skipped",
        report.total,
        report.embedded,
        report.resumed,
        report.skipped.len()
    );
    if !report.complete {
        println!("stopped before the end; run the same command again to continue");
        return Ok(());
    }
    println!("wrote {}", args.output.display());
    build_approximate(&args)
}

fn build_approximate(args: &Args) -> anyhow::Result<()> {
    if args.approximate {
        let index = EmbeddingIndex::open(&args.output)?;
        ApproxIndex::open_or_build(&args.output, &index, &ApproxOptions::default())?;
        println!("wrote {}", ApproxIndex::path(&args.output).display());
    }
    Ok(())
}
