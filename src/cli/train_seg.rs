//! `dinoreg train-seg`: trains a dinov2-style linear segmentation probe (BNHead) on a folder of
//! images and PNG label maps, with the backbone frozen, and saves it as a safetensors head that
//! `dinoreg segment` loads ([`ProbeData`] reads and checks the data, [`ProbeTrainingPipeline`]
//! extracts the features and trains).
//!
//! Data: `--images DIR` and `--labels DIR`, paired by file stem (`a.jpg` ↔ `a.png`), label maps the
//! same size as their image. A label map is 8/16-bit grayscale holding class indices (read as
//! stored), or a palette / RGB PNG whose colours are the classes' (`--classes` file colours, else the
//! PASCAL VOC colour map); 255 (VOC's void colour) is ignored. Validation: `--val-images` /
//! `--val-labels`, else a seeded `--val-fraction` of the training pairs.

use std::path::PathBuf;

use dinoreg::heads::segmentation::{ClassSet, TrainOptions};
use dinoreg::pipelines::{
    ProbeData, ProbeDataOptions, ProbeKind, ProbeTrainingOptions, ProbeTrainingPipeline, Validation,
};

use super::common::ModelArgs;
use super::output::{check_dir, check_file};
use super::progress::{set_interrupt_hint, status, Bar};

/// Which blocks the probe reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Probe {
    /// The last block (dinov2's "linear").
    Linear,
    /// The last four blocks concatenated (dinov2's "ms" head).
    Ms,
}

/// Arguments of `dinoreg train-seg`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Folder of training images.
    #[arg(long)]
    images: PathBuf,
    /// Folder of training label maps (PNG, same stem as the image).
    #[arg(long)]
    labels: PathBuf,
    /// Folder of validation images (default: a --val-fraction of the training pairs).
    #[arg(long, requires = "val_labels")]
    val_images: Option<PathBuf>,
    /// Folder of validation label maps.
    #[arg(long, requires = "val_images")]
    val_labels: Option<PathBuf>,
    /// Share of the training pairs held out for validation when no validation folders are given.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// The head to write (.safetensors).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Class names, one per line in label order, optionally followed by #RRGGBB.
    #[arg(long)]
    classes: Option<PathBuf>,
    /// The number of classes (default: the --classes file's, else the largest label + 1).
    #[arg(long)]
    num_classes: Option<usize>,
    /// The blocks the probe reads.
    #[arg(long, value_enum, default_value_t = Probe::Linear)]
    probe: Probe,
    /// Short side images (and labels) are resized to, in pixels (0 keeps the size).
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// Passes over the training images.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Seed of the initial weights, the shuffling and the validation split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep the backbone features in this folder and reuse them on later runs.
    #[arg(long)]
    cache: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    check_file("--output", &args.output, &["safetensors"])?;
    if let Some(cache) = &args.cache {
        check_dir("--cache", cache)?;
        set_interrupt_hint("the cached features are kept; rerun the same command to resume");
    }
    let mut data_options = ProbeDataOptions::default().with_seed(args.seed);
    data_options = match (&args.val_images, &args.val_labels) {
        (Some(images), Some(labels)) => data_options.with_validation(Validation::Folders {
            images: images.clone(),
            labels: labels.clone(),
        }),
        _ => data_options.with_validation(Validation::Fraction(args.val_fraction)),
    };
    if let Some(path) = &args.classes {
        data_options = data_options.with_classes(ClassSet::load(path)?);
    }
    if let Some(k) = args.num_classes {
        data_options = data_options.with_num_classes(k);
    }
    let progress = Bar::new();
    let data = ProbeData::load(&args.images, &args.labels, &data_options, &progress)?;

    let mut options = ProbeTrainingOptions::default()
        .with_probe(match args.probe {
            Probe::Linear => ProbeKind::Linear,
            Probe::Ms => ProbeKind::MultiScale,
        })
        .with_short_side((args.size > 0).then_some(args.size))
        .with_train(
            TrainOptions::default()
                .with_epochs(args.epochs)
                .with_batch_size(args.batch_size)
                .with_learning_rate(args.lr)
                .with_weight_decay(args.weight_decay)
                .with_warmup_steps(args.warmup)
                .with_seed(args.seed),
        );
    if let Some(cache) = &args.cache {
        options = options.with_cache(cache);
    }
    let pipeline = ProbeTrainingPipeline::from_pretrained(
        &args.model.model,
        &options,
        &args.model.load_options()?,
    )?;
    status(format_args!(
        "training a {:?} probe: {} classes, {} training and {} validation images",
        args.probe,
        data.num_classes(),
        data.train().len(),
        data.val().len()
    ));
    let trained = pipeline.train(&data, &progress)?;
    trained.save(&args.output)?;
    match trained.val_miou() {
        Some(m) => {
            println!("validation mIoU {:.2}", 100.0 * m);
            status(format_args!("wrote {}", args.output.display()));
        }
        None => status(format_args!("wrote {}", args.output.display())),
    }
    Ok(())
}
