//! `dinoreg corloc`: CorLoc of LOST or TokenCut (`dinoreg discover`'s options) on a VOC-style folder
//! (`Annotations/*.xml`, `JPEGImages/`) or a COCO-style JSON, as valeoai/LOST's `main_lost.py` scores it:
//! an image is found when its box has an IoU of at least 0.5 with any ground-truth box.
//!
//! Bad annotations, missing or undecodable images are reported on stderr and in the results file, and
//! the run goes on. `--results` writes
//! `{"corloc", "found", "total", "images": [{"image", "pred", "best_iou", "found", "seed", ...}],
//! "errors": [{"item", "reason"}], "skipped"}`.

use std::path::PathBuf;

use anyhow::bail;
use dinoreg::heads::discovery::{CocoOptions, VocOptions};
use dinoreg::pipelines::{CorLocDataset, CorLocOptions, CorLocPipeline};

use super::common::ModelArgs;
use super::discover::MethodArgs;
use super::output::check_file;
use super::progress::{status, Bar};

/// Arguments of `dinoreg corloc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    method: MethodArgs,
    /// A VOC-style folder (Annotations/*.xml, JPEGImages/).
    #[arg(long, conflicts_with = "coco", required_unless_present = "coco")]
    voc: Option<PathBuf>,
    /// VOC: the image set, read from ImageSets/Main/<NAME>.txt (default: every annotation).
    #[arg(long, requires = "voc")]
    image_set: Option<String>,
    /// VOC: drop difficult and truncated objects and skip images left without one (LOST's --no_hard).
    #[arg(long, requires = "voc")]
    no_hard: bool,
    /// A COCO-style annotation JSON (iscrowd objects removed).
    #[arg(long, requires = "coco_images")]
    coco: Option<PathBuf>,
    /// COCO: the folder of the images (file_name is relative to it).
    #[arg(long, requires = "coco")]
    coco_images: Option<PathBuf>,
    /// COCO: only the images named in this file, one a line (e.g. LOST's coco_20k_filenames.txt).
    #[arg(long, requires = "coco")]
    coco_list: Option<PathBuf>,
    /// Evaluate only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Write the per-image results, the errors and the score to this JSON file (missing folders are
    /// created).
    #[arg(long, short = 'o')]
    results: Option<PathBuf>,
}

fn dataset(args: &Args) -> anyhow::Result<CorLocDataset> {
    if let Some(root) = &args.voc {
        let mut options = VocOptions::default().with_remove_hard(args.no_hard);
        if let Some(set) = &args.image_set {
            options = options.with_image_set(set.clone());
        }
        return Ok(CorLocDataset::voc(root, options));
    }
    let (Some(json), Some(images)) = (&args.coco, &args.coco_images) else {
        bail!("no dataset: give --voc DIR, or --coco FILE.json with --coco-images DIR");
    };
    let mut options = CocoOptions::default();
    if let Some(list) = &args.coco_list {
        options = options.with_file_list(list.clone());
    }
    Ok(CorLocDataset::coco(json, images, options))
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(path) = &args.results {
        check_file("--results", path, &["json"])?;
    }
    let dataset = dataset(&args)?;
    let listing = dataset.list()?;
    let pipeline = CorLocPipeline::from_pretrained(
        &args.model.model,
        &args.method.options(),
        &CorLocOptions::default().with_limit(args.limit),
        &args.model.load_options()?,
    )?;
    let bar = Bar::new();
    let report = pipeline.evaluate(listing, &bar)?;
    println!(
        "CorLoc {:.2} ({}/{}), {} errors, {} skipped",
        report.corloc,
        report.found,
        report.total,
        report.errors.len(),
        report.skipped.len()
    );
    if let Some(path) = &args.results {
        report.write_json(path)?;
        status(format_args!("wrote {}", path.display()));
    }
    Ok(())
}
