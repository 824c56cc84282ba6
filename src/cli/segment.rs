//! `dinoreg segment`: semantic segmentation with a dinov2 BNHead, run the way dinov2 evaluates it,
//! through [`SegmentationPipeline`].
//!
//! The head is one of dinov2's published mmseg heads (`dinov2_vit*14_{ade20k,voc2012}_{linear,ms}_
//! head.pth`) or a safetensors head written by `dinoreg train-seg`. Images are normalised (ImageNet
//! mean and std), resized so the short side is 512 ("linear" heads) or 640 × each ratio ("ms" heads,
//! plus flips), covered with sliding windows centre-padded to the patch size, and the logits are
//! brought back to the image's size. `--pixels` are used at their own size unless `--short-side` is
//! given. Outputs: `.npy` logits `(B, K, H, W)` at the input size (with several test-time passes, the
//! log of the mean softmax; images of different sizes: one file each); `.png` the class colours over
//! the image, at the image's size (`--legend` adds a panel of the classes present on the right). The
//! classes present are printed either way.

use std::path::PathBuf;

use anyhow::bail;
use dinoreg::heads::segmentation::{ClassSet, OverlayOptions, Window};
use dinoreg::io::npy::write_tensor;
use dinoreg::pipelines::{
    output_paths, Scale, SegmentationMap, SegmentationOptions, SegmentationPipeline,
    SegmentationPreset,
};

use super::common::{InputArgs, ModelArgs};
use super::output::check_file;
use super::progress::{status, Bar};

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
    /// `.npy`: logits (B, K, H, W) (images of different sizes: one file each); `.png`: a coloured
    /// overlay at the image's size (several images: one file each, named <stem>_<image>.png).
    /// Missing folders are created.
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
    /// Draw the legend (the classes present, with their colours and shares) on a panel to the right
    /// of the .png, which then is wider than the image.
    #[arg(long)]
    legend: bool,
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
        let share = match 100.0 * e.fraction {
            p if p < 0.05 => "<0.1%".to_string(),
            p => format!("{p:.1}%"),
        };
        println!(
            "  {share:>6}  #{r:02x}{g:02x}{b:02x}  {:>3} {}",
            e.label, e.name
        );
    }
    Ok(())
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let png = check_file("--output", &args.output, &["npy", "png"])? == "png";
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
        None => pipeline.run_batch_with_progress(&args.input.image_paths()?, &Bar::new())?,
    };
    for map in &maps {
        print_legend(map)?;
    }
    let names: Vec<_> = maps.iter().map(|m| m.name().clone()).collect();
    if png {
        let style = OverlayOptions::default()
            .with_alpha(args.alpha)
            .with_legend(args.legend);
        for (target, map) in output_paths(&args.output, &names).iter().zip(&maps) {
            map.write_png_with(target, &style)?;
            status(format_args!("wrote {}", target.display()));
        }
    } else if maps.iter().all(|m| m.size() == maps[0].size()) {
        write_tensor(&args.output, &SegmentationMap::stack(&maps)?)?;
        status(format_args!("wrote {}", args.output.display()));
    } else {
        status("the images differ in size: one .npy file each");
        for (target, map) in output_paths(&args.output, &names).iter().zip(&maps) {
            write_tensor(target, &SegmentationMap::stack(std::slice::from_ref(map))?)?;
            status(format_args!("wrote {}", target.display()));
        }
    }
    Ok(())
}
