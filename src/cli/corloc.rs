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
use dinoreg::heads::discovery::{
    list_coco, list_voc, CocoOptions, CorLoc, ImageResult, ItemError, Listing, VocOptions,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::common::{write_atomic, ModelArgs};
use super::discover::{json_lines, Discoverer, MethodArgs};

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
    /// Write the per-image results, the errors and the score to this JSON file.
    #[arg(long, short = 'o')]
    results: Option<PathBuf>,
}

/// One image's result with the discovery details.
#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    result: ImageResult,
    seed: [usize; 2],
    mask_patches: usize,
    image_size: [usize; 2],
}

/// The results file, less its `images` (written one a line after it).
#[derive(Serialize)]
struct Summary {
    corloc: f64,
    found: usize,
    total: usize,
    errors: Vec<ItemError>,
    skipped: Vec<String>,
}

fn listing(args: &Args) -> anyhow::Result<Listing> {
    if let Some(root) = &args.voc {
        let mut options = VocOptions::default().with_remove_hard(args.no_hard);
        if let Some(set) = &args.image_set {
            options = options.with_image_set(set.clone());
        }
        return Ok(list_voc(root, &options)?);
    }
    let (Some(json), Some(images)) = (&args.coco, &args.coco_images) else {
        bail!("no dataset: give --voc DIR, or --coco FILE.json with --coco-images DIR");
    };
    let mut options = CocoOptions::default();
    if let Some(list) = &args.coco_list {
        options = options.with_file_list(list.clone());
    }
    Ok(list_coco(json, images, &options)?)
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let Listing {
        mut items,
        mut errors,
        skipped,
    } = listing(&args)?;
    for e in &errors {
        eprintln!("warning: {e}");
    }
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    if items.is_empty() {
        bail!("no image to evaluate ({} annotation errors)", errors.len());
    }
    let discoverer = Discoverer::load(&args.model, &args.method)?;
    let bar = ProgressBar::new(items.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} [{elapsed_precise} < {eta}] {msg}",
    )?);
    let mut score = CorLoc::new();
    let mut rows = Vec::with_capacity(items.len());
    for item in &items {
        match discoverer.on_image(&item.image) {
            Ok((_, found)) => {
                let d = &found.discovery;
                let pred = d.bbox.map(|v| v as f32);
                let result = score.add(item.name.clone(), pred, &item.boxes).clone();
                rows.push(Row {
                    result,
                    seed: d.seed,
                    mask_patches: d.mask_patches,
                    image_size: found.image_size,
                });
            }
            Err(e) => {
                let error = ItemError {
                    item: item.name.clone(),
                    reason: format!("{e:#}"),
                };
                bar.suspend(|| eprintln!("warning: {error}"));
                errors.push(error);
            }
        }
        bar.set_message(format!("found {}/{}", score.found(), score.total()));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "CorLoc {:.2} ({}/{}), {} errors, {} skipped",
        score.percent(),
        score.found(),
        score.total(),
        errors.len(),
        skipped.len()
    );
    if let Some(path) = &args.results {
        let summary = Summary {
            corloc: score.percent(),
            found: score.found(),
            total: score.total(),
            errors,
            skipped,
        };
        let mut json = serde_json::to_string(&summary)?;
        json.pop(); // the closing brace
        json = format!("{json},\n\"images\": {}}}\n", json_lines(&rows)?);
        write_atomic(path, |tmp| Ok(std::fs::write(tmp, &json)?))?;
    }
    Ok(())
}
