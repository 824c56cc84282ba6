//! `dinoreg segment`: semantic segmentation with a dinov2 BNHead, run the way dinov2 evaluates it,
//! through [`SegmentationPipeline`].
//!
//! The head is one of dinov2's published mmseg heads (`dinov2_vit*14_{ade20k,voc2012}_{linear,ms}_
//! head.pth`) or a safetensors head written by `dinoreg train-seg`. Images are normalised (ImageNet
//! mean and std), resized so the short side is 512 ("linear" heads) or 640 × each ratio ("ms" heads,
//! plus flips), covered with sliding windows centre-padded to the patch size, and the logits are
//! brought back to the image's size. `--pixels` are used at their own size unless `--short-side` is
//! given. Outputs: `.npy` logits `(B, K, H, W)` at the input size (with several test-time passes, the
//! log of the mean softmax); `.png` the class colours over the image with a legend of the classes
//! present (also printed).

use std::path::PathBuf;

use anyhow::bail;
use dinoreg::heads::segmentation::{ClassSet, Window};
use dinoreg::io::npy::write_tensor;
use dinoreg::pipelines::{
    output_paths, Scale, SegmentationMap, SegmentationOptions, SegmentationPipeline,
    SegmentationPreset,
};

use super::common::{InputArgs, ModelArgs};

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
    layers: Option<Vec<i64>>,
}

/// The pipeline options the arguments ask for.
fn options(args: &Args) -> anyhow::Result<SegmentationOptions> {
    let mut o = SegmentationOptions::default();
    if let Some(n) = args.windows_per_call {
        o = o.with_windows_per_call(n);
    }
    if let Some(p) = args.preset {
        o = o.with_preset(match p {
            Preset::Linear => SegmentationPreset::Linear,
            Preset::Ms => SegmentationPreset::MultiScale,
        });
    }
    match args.short_side {
        Some(0) => o = o.with_scale(Scale::Keep),
        Some(s) => o = o.with_scale(Scale::ShortSide(s)),
        None => {}
    }
    if let Some(r) = &args.ratios {
        o = o.with_ratios(r.clone());
    }
    if let Some(f) = args.flip {
        o = o.with_flip(f);
    }
    match (args.crop, args.stride) {
        (Some(0), _) => o = o.with_window(Window::Whole),
        (Some(c), s) => o = o.with_crop(c, s),
        (None, Some(s)) => o = o.with_stride(s),
        (None, None) => {}
    }
    if let Some(layers) = &args.layers {
        o = o.with_blocks(layers.clone());
    }
    if let Some(path) = &args.labels {
        o = o.with_classes(ClassSet::load(path)?);
    }
    Ok(o)
}

/// Prints the size and the classes present of one map.
fn print_legend(map: &SegmentationMap) -> anyhow::Result<()> {
    let (h, w) = map.size();
    println!("{}: {h}x{w}", map.name());
    for e in map.coverage()? {
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

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let png = match args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
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
    let pipeline = SegmentationPipeline::from_pretrained(
        &args.model.model,
        &args.head,
        &options(&args)?,
        &args.model.load_options()?,
    )?;
    let maps = match args.input.pixels_for(pipeline.model())? {
        Some(pixels) => pipeline.run_pixels(&pixels)?,
        None => pipeline.run_batch(&args.input.image_paths()?)?,
    };
    if png {
        let names: Vec<_> = maps.iter().map(|m| m.name().clone()).collect();
        for (target, map) in output_paths(&args.output, &names).iter().zip(&maps) {
            print_legend(map)?;
            map.write_png(target, args.alpha)?;
            println!("wrote {}", target.display());
        }
    } else {
        let logits = SegmentationMap::stack(&maps)?;
        for map in &maps {
            print_legend(map)?;
        }
        write_tensor(&args.output, &logits)?;
        println!("wrote {}", args.output.display());
    }
    Ok(())
}
