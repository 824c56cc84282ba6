//! `dinoreg pca`: the DINOv2 picture, the first three PCA components of the patch features as RGB, at
//! each image's size (dense preprocessing: aspect kept, sides rounded to multiples of the patch size).
//! `--joint` fits one PCA on all the images; `--fg-threshold` keeps the patches whose first component
//! (scaled to [0, 1]) is above it (below with `--fg-below`), refits on them and paints the rest black.

use std::path::PathBuf;

use dinoreg::pipelines::{expand_images, PcaPipeline, PcaPipelineOptions};
use dinoreg::viz::render::save_png;
use dinoreg::viz::{picture_files, Foreground, Interpolation, PcaOptions, PICTURE_SHORT_SIDE};

use super::common::ModelArgs;
use super::output::{check_dir, check_file, extension};
use super::progress::{status, Bar};

/// Arguments of `dinoreg pca`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Image files or folders. Repeatable.
    #[arg(long = "image", short = 'i', num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// A .png file (one image) or a folder (a name without extension; created when missing), which
    /// gets `<name>_pca.png` per image.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Fit one PCA on all the images (colours comparable across them) instead of one per image.
    #[arg(long)]
    joint: bool,
    /// Resize so that the short side is this many pixels before the model (0 keeps the size).
    #[arg(long, default_value_t = PICTURE_SHORT_SIDE)]
    short_side: u32,
    /// Foreground: keep patches whose first component, scaled to [0, 1], is above this value.
    #[arg(long)]
    fg_threshold: Option<f32>,
    /// With --fg-threshold: keep the patches below it instead.
    #[arg(long, requires = "fg_threshold")]
    fg_below: bool,
    /// Bilinear upsampling of the patch grid instead of flat patches.
    #[arg(long)]
    smooth: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    match extension(&args.output) {
        Some(e) if e == "png" => {
            check_file("--output", &args.output, &["png"])?;
        }
        None => check_dir("--output", &args.output)?,
        Some(_) if args.output.is_dir() => check_dir("--output", &args.output)?,
        Some(_) => anyhow::bail!(
            "invalid --output {}: expected a .png file or a folder (a name without extension)",
            args.output.display()
        ),
    }
    let foreground = args.fg_threshold.map(|t| {
        if args.fg_below {
            Foreground::below(t)
        } else {
            Foreground::above(t)
        }
    });
    let options = PcaPipelineOptions::default()
        .with_short_side((args.short_side > 0).then_some(args.short_side))
        .with_joint(args.joint)
        .with_pca(PcaOptions::default().with_foreground(foreground))
        .with_interpolation(if args.smooth {
            Interpolation::Bilinear
        } else {
            Interpolation::Nearest
        });
    let pipeline =
        PcaPipeline::from_pretrained(&args.model.model, &options, &args.model.load_options()?)?;
    let paths = expand_images(&args.images)?;
    let targets = picture_files(&args.output, &paths, "pca")?;
    let pictures = pipeline.run_paths(&paths, &Bar::new())?;
    for (picture, target) in pictures.iter().zip(&targets) {
        save_png(picture, target)?;
        status(format_args!("wrote {}", target.display()));
    }
    Ok(())
}
