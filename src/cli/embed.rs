//! `dinoreg embed`: L2-normalised embeddings of a folder (recursive) or a list of images, for retrieval.
//! Writes `embeddings.npy` `(N, D)`, `paths.txt`, `skipped.txt` and `index.json` into `--output`
//! (layout: `dinoreg::retrieval::store`). Resumable: run it again with the same arguments after an
//! interruption. `--shard i/n` embeds a contiguous part of the sorted list; `--merge` concatenates the
//! shard folders in shard order into the unsharded result.

use std::path::PathBuf;

use anyhow::bail;
use dinoreg::pipelines::{expand_images, EmbeddingPipeline};
use dinoreg::retrieval::{
    merge_shards, ApproxIndex, Descriptor, EmbedOptions, SearchOptions, Searcher,
};
use dinoreg::LoadOptions;

use super::progress::{set_interrupt_hint, status, Bar};
use super::shard::parse_shard;

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
    /// Embed only part i of n (0-based) of the sorted image list, e.g. 0/4. `auto` reads i from
    /// JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID (Slurm array), and n from
    /// `auto/N`, DINOREG_SHARD_COUNT or SLURM_ARRAY_TASK_COUNT.
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

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.merge.is_empty() {
        let meta = merge_shards(&args.merge, &args.output)?;
        status(format_args!(
            "merged {} shards: {} embeddings in {}",
            args.merge.len(),
            meta.count,
            args.output.display()
        ));
        return build_approximate(&args);
    }
    let Some(model) = &args.model else {
        bail!("--model is required to embed images");
    };
    let descriptor: Descriptor = args.descriptor.parse()?;
    let shard = args
        .shard
        .as_deref()
        .map(|s| parse_shard(s, |k| std::env::var(k).ok()))
        .transpose()?;
    let images = expand_images(&args.images)?;
    let options = EmbedOptions::default()
        .with_descriptor(descriptor)
        .with_batch_size(args.batch_size)
        .with_shard(shard)
        .with_max_batches(args.max_batches);
    let load = LoadOptions::default().with_device_name(args.device.as_deref())?;
    let pipeline = EmbeddingPipeline::from_pretrained(model, &options, &load)?;
    let bar = Bar::new();
    set_interrupt_hint("rerun the same command to resume");
    let report = pipeline.embed_into(&images, &args.output, &bar)?;
    for s in &report.skipped {
        eprintln!("skipped {}: {}", s.path, s.reason);
    }
    status(format_args!(
        "{} images: {} embedded now, {} done before, {} skipped",
        report.total,
        report.embedded,
        report.resumed,
        report.skipped.len()
    ));
    if !report.complete {
        status("stopped before the end; rerun the same command to resume");
        return Ok(());
    }
    status(format_args!("wrote {}", args.output.display()));
    build_approximate(&args)
}

fn build_approximate(args: &Args) -> anyhow::Result<()> {
    if args.approximate {
        Searcher::open(
            &args.output,
            &SearchOptions::default().with_approximate(true),
        )?;
        status(format_args!(
            "wrote {}",
            ApproxIndex::path(&args.output).display()
        ));
    }
    Ok(())
}
