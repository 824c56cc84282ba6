//! `dinoreg segment`: semantic segmentation with a dinov2 BNHead, run the way dinov2 evaluates it.
//!
//! The head is one of dinov2's published mmseg heads (`dinov2_vit*14_{ade20k,voc2012}_{linear,ms}_
//! head.pth`) or a safetensors head written by `dinoreg train-seg`. Images are normalised (ImageNet
//! mean and std), resized so the short side is 512 ("linear" heads) or 640 × each ratio ("ms" heads,
//! plus flips), covered with sliding windows centre-padded to the patch size, and the logits are
//! brought back to the image's size. `--pixels` are used at their own size unless `--short-side` is
//! given. Outputs: `.npy` logits `(B, K, H, W)` at the input size (with several test-time passes, the
//! log of the mean softmax); `.png` the class colours over the image with a legend of the classes
//! present (also printed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use candle::Tensor;
use dinoreg::heads::segmentation::{
    legend_entries, overlay, predict, BnHead, ClassSet, InferenceOptions, OverlayOptions, Window,
};
use dinoreg::heads::Head;
use dinoreg::io::npy::{array_to_tensor, read_pixels};
use dinoreg::preprocess::{ImageProcessor, ProcessorConfig, IMAGENET_MEAN, IMAGENET_STD};
use dinoreg::Dinov2Model;
use ndarray::Axis;

use super::common::{
    expand_images, per_input_paths, write_atomic, write_npy, InputArgs, ModelArgs, ModelSource,
};

/// dinov2's two evaluation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Short side 512, sliding 512×512 windows with stride 341, one scale, no flip.
    Linear,
    /// Short side 640 × {1.0, 1.32, 1.73, 2.28, 3.0}, each also flipped, windows 640 stride 320.
    Ms,
}

/// Arguments of `dinoreg segment`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    /// The head: a dinov2 mmseg .pth (decode_head.bn.*, decode_head.conv_seg.*) or a .safetensors
    /// head from `dinoreg train-seg`.
    #[arg(long)]
    head: PathBuf,
    /// `.npy`: logits (B, K, H, W); `.png`: a coloured overlay (several images: one file each, named
    /// <stem>_<image>.png).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Evaluation setting (default: linear for heads reading one block, ms for four).
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Resize so the short side is this many pixels (0 keeps the size). Default: the preset's for
    /// images, the input size for --pixels.
    #[arg(long)]
    short_side: Option<usize>,
    /// Test-time scale ratios, comma-separated (default: the preset's).
    #[arg(long, value_delimiter = ',')]
    ratios: Option<Vec<f64>>,
    /// Also run each scale flipped horizontally: true or false (default: the preset's).
    #[arg(long)]
    flip: Option<bool>,
    /// Sliding window side in pixels; 0 runs the whole image at once (default: the preset's).
    #[arg(long)]
    crop: Option<usize>,
    /// Step between sliding windows in pixels (default: the preset's, or 2/3 of --crop).
    #[arg(long)]
    stride: Option<usize>,
    /// Sliding windows per backbone call (same result; more is faster on a GPU and uses more
    /// memory). Default: 2.
    #[arg(long)]
    windows_per_call: Option<usize>,
    /// Class names, one per line in label order, optionally followed by #RRGGBB (default: the
    /// head's own, else ADE20K for 150 classes, VOC for 21).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Opacity of the class colours in the .png (0 to 1).
    #[arg(long, default_value_t = 0.6)]
    alpha: f32,
    /// The backbone blocks (comma-separated, negative from the end) a .pth head reads, when not the
    /// last C_in / width ones.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    layers: Option<Vec<isize>>,
}

/// A backbone and a head.
struct Segmenter {
    model: Arc<Dinov2Model>,
    head: BnHead,
}

impl Segmenter {
    /// Patch-grid logits of (padded) pixels, for the sliding-window closure.
    fn grid_logits(&self, pixels: &Tensor) -> anyhow::Result<Tensor> {
        let features = self.model.features(pixels, &self.head.request())?;
        Ok(self.head.grid_logits(&features)?)
    }

    fn predict(&self, pixels: &Tensor, opts: &InferenceOptions) -> anyhow::Result<Tensor> {
        predict(pixels, opts, |x: &Tensor| self.grid_logits(x))
    }
}

/// One segmented input: its name, its RGB picture `(H, W)` and logits `(K, H, W)`.
struct Segmentation {
    name: String,
    rgb: image::RgbImage,
    logits: Tensor,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let png = match extension(&args.output).as_deref() {
        Some("npy") => false,
        Some("png") => true,
        _ => bail!(
            "invalid --output {}: expected a .npy or .png file",
            args.output.display()
        ),
    };
    if !(0.0..=1.0).contains(&args.alpha) {
        bail!(
            "invalid --alpha {}: expected a number in [0, 1]",
            args.alpha
        );
    }
    let source = ModelSource::resolve(&args.model)?;
    let device = source.load.device.clone();
    let width = source.config.hidden_size;
    let mut head = BnHead::load(&args.head, width, &device).with_context(|| {
        format!(
            "cannot use {} as a segmentation head for {}",
            args.head.display(),
            args.model.model
        )
    })?;
    if let Some(layers) = &args.layers {
        head = head.with_layers(layers.clone())?;
    }
    let classes = match &args.labels {
        Some(path) => ClassSet::load(path)?,
        None => head
            .classes()
            .cloned()
            .unwrap_or_else(|| ClassSet::for_num_classes(head.num_classes())),
    };
    classes
        .check_len(head.num_classes())
        .with_context(|| format!("--labels does not fit {}", args.head.display()))?;
    let segmenter = Segmenter {
        model: source.model()?,
        head,
    };
    let segmentations = match &args.input.pixels {
        Some(path) => {
            let pixels = read_pixels(path, source.config.num_channels)?.to_device(&device)?;
            let opts = options(&args, &segmenter.head, source.config.patch_size, false)?;
            let logits = segmenter.predict(&pixels, &opts)?;
            let rgb = denormalise(&pixels)?;
            rgb.into_iter()
                .enumerate()
                .map(|(i, rgb)| {
                    Ok(Segmentation {
                        name: format!("pixels[{i}]"),
                        rgb,
                        logits: logits.get(i)?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        }
        None => {
            if args.input.images.is_empty() {
                bail!("no input: give --image FILE (or a folder) or --pixels FILE.npy");
            }
            let opts = options(&args, &segmenter.head, source.config.patch_size, true)?;
            let mut out = Vec::new();
            for path in expand_images(&args.input.images)? {
                let rgb = source.processor.read(&path)?;
                let pixels = normalised_pixels(&rgb, &device)?;
                let logits = segmenter.predict(&pixels, &opts)?.get(0)?;
                out.push(Segmentation {
                    name: path.display().to_string(),
                    rgb,
                    logits,
                });
            }
            out
        }
    };
    if png {
        let targets = per_input_paths(&args.output, segmentations.iter().map(|s| s.name.as_str()));
        for (target, s) in targets.iter().zip(&segmentations) {
            write_overlay(target, s, &classes, args.alpha)?;
        }
    } else {
        let first = segmentations[0].logits.dims();
        if let Some(s) = segmentations.iter().find(|s| s.logits.dims() != first) {
            bail!(
                "{} and {} have different sizes ({:?}, {:?}): write .png files, or run them separately",
                segmentations[0].name,
                s.name,
                &first[1..],
                &s.logits.dims()[1..]
            );
        }
        for s in &segmentations {
            print_legend(s, &classes)?;
        }
        let all: Vec<&Tensor> = segmentations.iter().map(|s| &s.logits).collect();
        write_npy(&args.output, &Tensor::stack(&all, 0)?)?;
        println!("wrote {}", args.output.display());
    }
    Ok(())
}

/// An RGB picture as normalised pixels `(1, 3, H, W)` at its own size (ImageNet mean and std, as
/// dinov2's segmentation pipeline normalises).
pub(super) fn normalised_pixels(
    rgb: &image::RgbImage,
    device: &candle::Device,
) -> anyhow::Result<Tensor> {
    let normalise = ImageProcessor::new(
        ProcessorConfig::default()
            .with_resize(false)
            .with_center_crop(false)
            .with_mean_std(IMAGENET_MEAN, IMAGENET_STD),
    );
    let array = normalise.to_pixels(rgb).insert_axis(Axis(0));
    Ok(array_to_tensor(array.into_dyn(), device)?)
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// The inference options: the preset (from the head's number of blocks unless given), then overrides.
fn options(
    args: &Args,
    head: &BnHead,
    patch: usize,
    images: bool,
) -> anyhow::Result<InferenceOptions> {
    let preset = args.preset.unwrap_or(if head.layers().len() == 1 {
        Preset::Linear
    } else {
        Preset::Ms
    });
    let mut opts = match preset {
        Preset::Linear => InferenceOptions::linear(),
        Preset::Ms => InferenceOptions::multi_scale(),
    }
    .with_center_padding(Some(patch));
    if let Some(n) = args.windows_per_call {
        opts.windows_per_call = n;
    }
    opts.short_side = match args.short_side {
        Some(0) => None,
        Some(s) => Some(s),
        None if images => opts.short_side,
        None => None,
    };
    if let Some(r) = &args.ratios {
        opts.ratios = r.clone();
    }
    if let Some(f) = args.flip {
        opts.flip = f;
    }
    match (args.crop, args.stride) {
        (Some(0), _) => opts.window = Window::Whole,
        (Some(c), s) => {
            let s = s.unwrap_or((2 * c).div_ceil(3));
            opts.window = Window::Slide {
                crop: (c, c),
                stride: (s, s),
            }
        }
        (None, Some(s)) => match opts.window {
            Window::Slide { crop, .. } => {
                opts.window = Window::Slide {
                    crop,
                    stride: (s, s),
                }
            }
            Window::Whole => bail!("--stride needs sliding windows (--crop > 0)"),
        },
        (None, None) => {}
    }
    opts.validate()?;
    Ok(opts)
}

/// Normalised pixels `(B, 3, H, W)` back to RGB8 pictures (ImageNet mean and std).
fn denormalise(pixels: &Tensor) -> anyhow::Result<Vec<image::RgbImage>> {
    let (b, c, h, w) = pixels.dims4()?;
    if c != 3 {
        bail!("--pixels has {c} channels; a .png overlay needs 3");
    }
    let values = pixels
        .to_dtype(candle::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    (0..b)
        .map(|i| {
            let raw: Vec<u8> = (0..h * w)
                .flat_map(|p| {
                    let values = &values;
                    (0..3).map(move |ch| {
                        let v = values[((i * 3 + ch) * h * w) + p] as f64;
                        ((v * IMAGENET_STD[ch] + IMAGENET_MEAN[ch]) * 255.0)
                            .round()
                            .clamp(0.0, 255.0) as u8
                    })
                })
                .collect();
            image::RgbImage::from_raw(w as u32, h as u32, raw).context("pixel buffer size")
        })
        .collect()
}

/// The predicted class of every pixel, row-major.
fn labels(s: &Segmentation) -> anyhow::Result<Vec<u32>> {
    Ok(s.logits.argmax(0)?.flatten_all()?.to_vec1::<u32>()?)
}

fn print_legend(s: &Segmentation, classes: &ClassSet) -> anyhow::Result<()> {
    let (_, h, w) = s.logits.dims3()?;
    println!("{}: {h}x{w}", s.name);
    for e in legend_entries(&labels(s)?, classes) {
        let [r, g, b] = e.color;
        println!(
            "  {:>5.1}%  #{r:02x}{g:02x}{b:02x}  {:>3} {}",
            100.0 * e.fraction,
            e.label,
            e.name
        );
    }
    Ok(())
}

fn write_overlay(
    path: &Path,
    s: &Segmentation,
    classes: &ClassSet,
    alpha: f32,
) -> anyhow::Result<()> {
    print_legend(s, classes)?;
    let (h, w) = (s.rgb.height() as usize, s.rgb.width() as usize);
    let opts = OverlayOptions::default()
        .with_alpha(alpha)
        .with_text_scale((h.max(w) / 256).clamp(2, 6));
    let canvas = overlay(s.rgb.as_raw(), (h, w), &labels(s)?, classes, &opts)?;
    let picture = image::RgbImage::from_raw(canvas.width as u32, canvas.height as u32, canvas.data)
        .context("overlay buffer size")?;
    write_atomic(path, |tmp| {
        picture.save_with_format(tmp, image::ImageFormat::Png)?;
        Ok(())
    })?;
    println!("wrote {}", path.display());
    Ok(())
}
