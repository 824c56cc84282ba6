//! `dinoreg train-seg`: trains a dinov2-style linear segmentation probe (BNHead) on a folder of
//! images and PNG label maps, with the backbone frozen, and saves it as a safetensors head that
//! `dinoreg segment` loads. dinov2 publishes segmentation heads only for backbones without
//! registers; this is how a registers backbone gets one.
//!
//! Data: `--images DIR` and `--labels DIR`, paired by file stem (`a.jpg` ↔ `a.png`), label maps the
//! same size as their image. A label map is 8/16-bit grayscale holding class indices, or a palette /
//! RGB PNG whose colours are the classes' (`--classes` file colours, else the PASCAL VOC colour map);
//! 255 (VOC's void colour) is ignored. Validation: `--val-images`/`--val-labels`, else a seeded
//! `--val-fraction` of the training pairs.
//!
//! Each image is normalised (ImageNet mean and std), resized so its short side is `--size`, centre-
//! padded to the patch size and run once through the backbone; the features of the probe's blocks
//! are kept (in memory, and in `--cache DIR` when given). Labels are resized to the same size with
//! nearest-neighbour. Training follows dinov2's mmseg recipe (see `dinoreg_heads::segmentation`),
//! with a per-epoch loss / validation mIoU line.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle::{DType, Tensor};
use dinoreg::heads::ops::resize_bilinear;
use dinoreg::heads::segmentation::{
    center_pad, pascal_colormap, rescaled_size, train_probe, ClassSet, EpochStats, ProbeConfig,
    Sample, SplitMix64, StepStats, TrainObserver, TrainOptions, IGNORE_INDEX,
};
use dinoreg::heads::FeatureRequest;
use dinoreg::io::image::{decode_image, DecodeLimits};
use dinoreg::preprocess::ImageProcessor;
use dinoreg::Dinov2Model;
use dinoreg::Vit;
use image::DynamicImage;
use indicatif::{ProgressBar, ProgressStyle};

use super::common::{expand_images, write_safetensors, ModelArgs, ModelSource};
use super::segment::normalised_pixels;

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

/// An image and its label map.
#[derive(Debug, Clone)]
struct Pair {
    image: PathBuf,
    labels: PathBuf,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.output.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!(
            "invalid --output {}: the head is written as a .safetensors file",
            args.output.display()
        );
    }
    if !(0.0..1.0).contains(&args.val_fraction) {
        bail!(
            "invalid --val-fraction {}: expected a number in [0, 1)",
            args.val_fraction
        );
    }
    let classes = args.classes.as_deref().map(ClassSet::load).transpose()?;
    let (train_pairs, val_pairs) = split(&args)?;
    let colors = classes.as_ref().map(|c| c.colors().to_vec());
    let train_items = load_labels(train_pairs, colors.as_deref())?;
    let val_items = load_labels(val_pairs, colors.as_deref())?;
    let num_classes = match (&classes, args.num_classes) {
        (Some(c), Some(k)) if c.len() != k => bail!(
            "--classes names {} classes but --num-classes is {k}",
            c.len()
        ),
        (Some(c), _) => c.len(),
        (None, Some(k)) => k,
        (None, None) => largest_label(&train_items)? + 1,
    };
    check_label_range(&train_items, num_classes)?;
    check_label_range(&val_items, num_classes)?;

    let source = ModelSource::resolve(&args.model)?;
    let model = source.model()?;
    let layers = match args.probe {
        Probe::Linear => vec![-1],
        Probe::Ms => vec![-4, -3, -2, -1],
    };
    let extractor = Extractor {
        model: &model,
        reader: &source.processor,
        request: FeatureRequest::blocks(layers.clone()),
        size: (args.size > 0).then_some(args.size),
        cache: args.cache.clone(),
        model_id: args.model.model.clone(),
    };
    let bar = ProgressBar::new((train_items.len() + val_items.len()) as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} images (backbone features) [{elapsed_precise} < {eta}]",
    )?);
    let extract = |items: &[Labelled]| -> anyhow::Result<Vec<Sample>> {
        items
            .iter()
            .map(|item| {
                let s = extractor.sample(item);
                bar.inc(1);
                s
            })
            .collect()
    };
    let train = extract(&train_items)?;
    let val = extract(&val_items)?;
    bar.finish_and_clear();

    let classes = classes.unwrap_or_else(|| ClassSet::for_num_classes(num_classes));
    let config = ProbeConfig {
        num_classes,
        embed_dim: source.config.hidden_size,
        blocks: layers,
        classes: Some(classes),
    };
    let opts = TrainOptions::default()
        .with_epochs(args.epochs)
        .with_batch_size(args.batch_size)
        .with_learning_rate(args.lr)
        .with_weight_decay(args.weight_decay)
        .with_warmup_steps(args.warmup)
        .with_seed(args.seed);
    println!(
        "training a {:?} probe: {num_classes} classes, {} training and {} validation images",
        args.probe,
        train.len(),
        val.len()
    );
    let mut progress = Progress::new(args.epochs)?;
    let trained = train_probe(&train, &val, &config, &opts, &mut progress)?;
    progress.bar.finish_and_clear();

    let mut metadata = trained.head.metadata();
    metadata.backbone = Some(args.model.model.clone());
    metadata.val_miou = trained.history.last().and_then(|e| e.val_miou);
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    trained.head.save(&args.output, &metadata)?;
    match metadata.val_miou {
        Some(m) => println!(
            "wrote {} (validation mIoU {:.2})",
            args.output.display(),
            100.0 * m
        ),
        None => println!("wrote {}", args.output.display()),
    }
    Ok(())
}

/// The training and validation pairs.
fn split(args: &Args) -> anyhow::Result<(Vec<Pair>, Vec<Pair>)> {
    let mut train = pairs(&args.images, &args.labels)?;
    if let (Some(images), Some(labels)) = (&args.val_images, &args.val_labels) {
        return Ok((train, pairs(images, labels)?));
    }
    let n_val = (train.len() as f64 * args.val_fraction).round() as usize;
    if n_val == 0 {
        if args.val_fraction > 0.0 {
            eprintln!(
                "note: {} images are too few to hold out {:.0}% for validation; no mIoU will be reported",
                train.len(),
                100.0 * args.val_fraction
            );
        }
        return Ok((train, Vec::new()));
    }
    if n_val >= train.len() {
        bail!(
            "--val-fraction {} leaves no training image out of {}",
            args.val_fraction,
            train.len()
        );
    }
    SplitMix64::new(args.seed ^ 0x5EED_5A11).shuffle(&mut train);
    let val = train.split_off(train.len() - n_val);
    Ok((train, val))
}

/// Every image of `images` with the label map of the same stem in `labels`.
fn pairs(images: &Path, labels: &Path) -> anyhow::Result<Vec<Pair>> {
    if !images.is_dir() || !labels.is_dir() {
        bail!(
            "{} and {} must both be folders (images, label maps)",
            images.display(),
            labels.display()
        );
    }
    let mut by_stem: HashMap<String, PathBuf> = HashMap::new();
    for entry in
        std::fs::read_dir(labels).with_context(|| format!("cannot read {}", labels.display()))?
    {
        let path = entry?.path();
        if path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
            == Some("png")
        {
            if let Some(stem) = path.file_stem() {
                by_stem.insert(stem.to_string_lossy().into_owned(), path);
            }
        }
    }
    expand_images(&[images.to_path_buf()])?
        .into_iter()
        .map(|image| {
            let stem = image
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match by_stem.get(&stem) {
                Some(labels) => Ok(Pair {
                    image,
                    labels: labels.clone(),
                }),
                None => bail!(
                    "{} has no label map {}/{stem}.png",
                    image.display(),
                    labels.display()
                ),
            }
        })
        .collect()
}

/// Turns image / label pairs into cached-feature samples.
struct Extractor<'a> {
    model: &'a Dinov2Model,
    reader: &'a ImageProcessor,
    request: FeatureRequest,
    size: Option<usize>,
    cache: Option<PathBuf>,
    model_id: String,
}

impl Extractor<'_> {
    fn sample(&self, item: &Labelled) -> anyhow::Result<Sample> {
        let (pair, labels) = (&item.pair, &item.labels);
        let rgb = self.reader.read(&pair.image)?;
        let (h, w) = (rgb.height() as usize, rgb.width() as usize);
        check_same_size(pair, (h, w), labels)?;
        let size = match self.size {
            Some(s) => rescaled_size((h, w), Some(s), 1.0),
            None => (h, w),
        };
        let features = self.features(pair, &rgb, size)?;
        let labels = resize_nearest(&labels.values, (h, w), size);
        let labels = Tensor::from_vec(labels, size, self.model.device())?;
        Sample::new(features, labels, self.model.config().patch_size)
            .with_context(|| format!("{}", pair.image.display()))
    }

    /// The concatenated features `(C_in, h, w)` of the image resized to `size`, from the cache when
    /// present.
    fn features(
        &self,
        pair: &Pair,
        rgb: &image::RgbImage,
        size: (usize, usize),
    ) -> anyhow::Result<Tensor> {
        let cached = self
            .cache
            .as_ref()
            .map(|dir| dir.join(self.cache_name(pair, size)));
        if let Some(path) = cached.as_ref().filter(|p| p.is_file()) {
            let mut t = candle::safetensors::load(path, self.model.device())?;
            if let Some(f) = t.remove("features") {
                return Ok(f);
            }
        }
        let device = self.model.device();
        let pixels = normalised_pixels(rgb, device)?;
        let pixels = resize_bilinear(&pixels, size, false)?;
        let pixels = center_pad(&pixels, self.model.config().patch_size)?;
        let maps = self.model.features(&pixels, &self.request)?.maps;
        let features = Tensor::cat(&maps, 1)?.squeeze(0)?.to_dtype(DType::F32)?;
        if let Some(path) = cached {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let map = HashMap::from([("features".to_string(), features.clone())]);
            write_safetensors(&path, &map)?;
        }
        Ok(features)
    }

    /// `<stem>-<hash>.safetensors`, the hash covering the model, the image file and the settings.
    fn cache_name(&self, pair: &Pair, size: (usize, usize)) -> String {
        let mut hasher = DefaultHasher::new();
        self.model_id.hash(&mut hasher);
        pair.image
            .canonicalize()
            .unwrap_or_else(|_| pair.image.clone())
            .hash(&mut hasher);
        if let Ok(meta) = std::fs::metadata(&pair.image) {
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
        }
        size.hash(&mut hasher);
        self.request.blocks.hash(&mut hasher);
        let stem = pair
            .image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{stem}-{:016x}.safetensors", hasher.finish())
    }
}

/// A pair with its decoded label map.
struct Labelled {
    pair: Pair,
    labels: LabelMap,
}

fn check_same_size(pair: &Pair, image: (usize, usize), labels: &LabelMap) -> anyhow::Result<()> {
    let found = (labels.height() as usize, labels.width() as usize);
    if found != image {
        bail!(
            "{} is {}x{} but its label map {} is {}x{}: they must be the same size",
            pair.image.display(),
            image.0,
            image.1,
            pair.labels.display(),
            found.0,
            found.1
        );
    }
    Ok(())
}

/// Decodes every label map and checks it against its image's size (read from the file header), so
/// that bad data fails before any backbone work.
fn load_labels(pairs: Vec<Pair>, colors: Option<&[[u8; 3]]>) -> anyhow::Result<Vec<Labelled>> {
    pairs
        .into_iter()
        .map(|pair| {
            let (w, h) = image::image_dimensions(&pair.image)
                .with_context(|| format!("cannot read {}", pair.image.display()))?;
            let labels = read_labels(&pair.labels, colors)?;
            check_same_size(&pair, (h as usize, w as usize), &labels)?;
            Ok(Labelled { pair, labels })
        })
        .collect()
}

/// Checks that every label is below `num_classes` or 255, naming the first file that is not.
fn check_label_range(items: &[Labelled], num_classes: usize) -> anyhow::Result<()> {
    for item in items {
        if let Some(bad) = item
            .labels
            .values
            .iter()
            .find(|&&v| v != IGNORE_INDEX && v as usize >= num_classes)
        {
            bail!(
                "{}: label {bad} is outside 0..{num_classes} (expected a class index or 255 for ignored pixels)",
                item.pair.labels.display()
            );
        }
    }
    Ok(())
}

/// A decoded label map: class indices, row-major.
struct LabelMap {
    values: Vec<u32>,
    size: (u32, u32),
}

impl LabelMap {
    fn height(&self) -> u32 {
        self.size.0
    }

    fn width(&self) -> u32 {
        self.size.1
    }
}

/// Reads a label PNG: grayscale values are class indices; colours are mapped back to indices
/// through `colors` (else the PASCAL VOC colour map, whose entry 255 is VOC's void colour).
fn read_labels(path: &Path, colors: Option<&[[u8; 3]]>) -> anyhow::Result<LabelMap> {
    let image = decode_image(path, &DecodeLimits::default())?;
    let size = (image.height(), image.width());
    let values: Vec<u32> = match &image {
        DynamicImage::ImageLuma8(g) => g.as_raw().iter().map(|&v| u32::from(v)).collect(),
        DynamicImage::ImageLuma16(g) => g.as_raw().iter().map(|&v| u32::from(v)).collect(),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => image
            .to_luma16()
            .as_raw()
            .iter()
            .map(|&v| u32::from(v))
            .collect(),
        _ => {
            let mut table: HashMap<[u8; 3], u32> = HashMap::new();
            for (i, c) in pascal_colormap(256).into_iter().enumerate().rev() {
                table.insert(c, i as u32);
            }
            if let Some(colors) = colors {
                for (i, c) in colors.iter().enumerate().rev() {
                    table.insert(*c, i as u32);
                }
            }
            let rgb = image.to_rgb8();
            rgb.pixels()
                .map(|p| {
                    table.get(&p.0).copied().with_context(|| {
                        format!(
                            "{}: colour #{:02x}{:02x}{:02x} is no class colour (give a grayscale label map, or a --classes file with its colours)",
                            path.display(),
                            p.0[0],
                            p.0[1],
                            p.0[2]
                        )
                    })
                })
                .collect::<anyhow::Result<_>>()?
        }
    };
    Ok(LabelMap { values, size })
}

/// Nearest-neighbour resize of a label map (OpenCV's INTER_NEAREST, as mmseg resizes labels).
fn resize_nearest(values: &[u32], from: (usize, usize), to: (usize, usize)) -> Vec<u32> {
    if from == to {
        return values.to_vec();
    }
    let src = |o: usize, n_out: usize, n_in: usize| ((o * n_in) / n_out).min(n_in - 1);
    let mut out = Vec::with_capacity(to.0 * to.1);
    for y in 0..to.0 {
        let sy = src(y, to.0, from.0);
        for x in 0..to.1 {
            out.push(values[sy * from.1 + src(x, to.1, from.1)]);
        }
    }
    out
}

fn largest_label(items: &[Labelled]) -> anyhow::Result<usize> {
    items
        .iter()
        .flat_map(|i| i.labels.values.iter().copied())
        .filter(|&v| v != IGNORE_INDEX)
        .max()
        .map(|m| m as usize)
        .context("every label is 255 (ignored): nothing to train on")
}

/// The training progress bar and per-epoch lines.
struct Progress {
    bar: ProgressBar,
    epochs: usize,
}

impl Progress {
    fn new(epochs: usize) -> anyhow::Result<Self> {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template(
            "{bar:40} {pos}/{len} steps [{elapsed_precise} < {eta}] {msg}",
        )?);
        Ok(Self { bar, epochs })
    }
}

impl TrainObserver for Progress {
    fn on_step(&mut self, s: &StepStats) {
        self.bar.set_length(s.total_steps as u64);
        self.bar.set_position(s.step as u64);
        self.bar.set_message(format!(
            "epoch {}/{} loss {:.4} lr {:.2e}",
            s.epoch + 1,
            self.epochs,
            s.loss,
            s.learning_rate
        ));
    }

    fn on_epoch(&mut self, e: &EpochStats) {
        let val = match (e.val_miou, e.val_accuracy) {
            (Some(m), Some(a)) => {
                format!("  val mIoU {:.2}  pixel acc {:.2}", 100.0 * m, 100.0 * a)
            }
            _ => String::new(),
        };
        let line = format!(
            "epoch {:>3}/{}  loss {:.4}{val}",
            e.epoch + 1,
            self.epochs,
            e.train_loss
        );
        self.bar.suspend(|| println!("{line}"));
    }
}
