//! `dinoreg depth`: depth maps from a Depth-Anything model (`depth-anything/Depth-Anything-V2-*-hf`,
//! or an original `depth_anything_v2_vit*.pth` given as `--head`, whose fine-tuned backbone is used)
//! or from one of dinov2's depth heads (`dinov2_vit*14_{nyu,kitti}_{linear,linear4,dpt}_head.pth` as
//! `--head` on a DINOv2 `--model`), through [`DepthPipeline`], which owns each head's preprocessing.
//! Outputs: `.npy` raw depth `(B, H, W)` at the input size (images of different sizes: one `(1, H, W)`
//! file per image, named as the pictures are); `.png` a colour-mapped picture (inferno, near is
//! bright), `--png16` 16-bit grayscale.

use std::path::{Path, PathBuf};

use anyhow::bail;
use dinoreg::io::npy::write_tensor;
use dinoreg::pipelines::{output_paths, DepthMap, DepthOptions, DepthPicture, DepthPipeline};

use super::common::{InputArgs, ModelArgs};
use super::output::check_file;
use super::progress::{status, Bar};

/// Arguments of `dinoreg depth`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    /// A head checkpoint: one of dinov2's depth heads (.pth, mmcv layout), or a Depth-Anything-V2 .pth
    /// (its fine-tuned backbone is used too). Default: the model's own head (a Depth-Anything model).
    #[arg(long)]
    head: Option<PathBuf>,
    /// `.npy`: raw depth (B, H, W) (images of different sizes: one file each); `.png`: a
    /// colour-mapped picture (several images: one file each, named <stem>_<image>.png). Missing
    /// folders are created.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Write `.png` as 16-bit grayscale (min-max normalised, near is bright) instead of colours.
    #[arg(long, conflicts_with = "colorbar")]
    png16: bool,
    /// Add a colour bar with the depth values to the right of the .png.
    #[arg(long)]
    colorbar: bool,
    /// Depth-Anything: the lower bound of both sides of the model input, in pixels.
    #[arg(long, default_value_t = 518)]
    input_size: usize,
    /// dinov2 heads: top of the depth range (default 10 m, 80 m when the file name says kitti).
    /// Depth-Anything-V2 .pth: the head is metric, scaled to this (20 indoor, 80 outdoor).
    /// Depth-Anything model: replaces the config's max_depth.
    #[arg(long)]
    max_depth: Option<f64>,
    /// dinov2 heads: bottom of the depth range (default 0.001 m).
    #[arg(long)]
    min_depth: Option<f64>,
    /// The backbone blocks (0-based, comma-separated) that feed a .pth head, when its width has no
    /// published table.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    layers: Option<Vec<i64>>,
}

/// What `--output` asks for.
enum OutputFormat {
    Npy,
    Png(DepthPicture),
}

impl OutputFormat {
    fn of(path: &Path, args: &Args) -> anyhow::Result<Self> {
        let ext = check_file("--output", path, &["npy", "png"])?;
        if ext == "npy" {
            if args.png16 || args.colorbar {
                bail!(
                    "--png16 and --colorbar need a .png --output, got {}",
                    path.display()
                );
            }
            return Ok(OutputFormat::Npy);
        }
        Ok(OutputFormat::Png(if args.png16 {
            DepthPicture::Gray16
        } else if args.colorbar {
            DepthPicture::InfernoWithColorbar
        } else {
            DepthPicture::Inferno
        }))
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = OutputFormat::of(&args.output, &args)?;
    let mut options = DepthOptions::default().with_input_size(args.input_size);
    if let Some(m) = args.max_depth {
        options = options.with_max_depth(m);
    }
    if let Some(m) = args.min_depth {
        options = options.with_min_depth(m);
    }
    if let Some(layers) = &args.layers {
        options = options.with_blocks(layers.clone());
    }
    let pipeline = DepthPipeline::from_pretrained(
        &args.model.model,
        args.head.as_deref(),
        &options,
        &args.model.load_options()?,
    )?;
    let maps = match args.input.pixels_for(pipeline.model())? {
        Some(pixels) => pipeline.run_pixels(&pixels)?,
        None => pipeline.run_batch_with_progress(&args.input.image_paths()?, &Bar::new())?,
    };
    for map in &maps {
        let (h, w) = map.size();
        let (lo, hi) = map.min_max()?;
        println!("{}: {h}x{w}, depth {lo:.4} .. {hi:.4}", map.name());
    }
    match format {
        OutputFormat::Npy if maps.iter().all(|m| m.size() == maps[0].size()) => {
            write_tensor(&args.output, &DepthMap::stack(&maps)?)?;
            status(format_args!("wrote {}", args.output.display()));
        }
        OutputFormat::Npy => {
            let names: Vec<_> = maps.iter().map(|m| m.name().clone()).collect();
            status("the images differ in size: one .npy file each");
            for (target, map) in output_paths(&args.output, &names).iter().zip(&maps) {
                write_tensor(target, &DepthMap::stack(std::slice::from_ref(map))?)?;
                status(format_args!("wrote {}", target.display()));
            }
        }
        OutputFormat::Png(picture) => {
            let names: Vec<_> = maps.iter().map(|m| m.name().clone()).collect();
            for (target, map) in output_paths(&args.output, &names).iter().zip(&maps) {
                map.write_png(target, picture)?;
                status(format_args!("wrote {}", target.display()));
            }
        }
    }
    Ok(())
}
