//! `dinoreg preprocess`: the pixel tensor `(1, 3, H, W)` the model would see for an image (HF
//! BitImageProcessor semantics; the model's `preprocessor_config.json` when `--model` is given),
//! written as a float32 `.npy`.

use std::path::PathBuf;

use dinoreg::io::hub::resolve_model;
use dinoreg::preprocess::ImageProcessor;

use super::common::write_npy;

/// Arguments of `dinoreg preprocess`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image.
    #[arg(long, short = 'i')]
    image: PathBuf,
    /// A model folder or Hub id whose preprocessor_config.json to use (default: the checkpoints'
    /// values: shortest edge 256, center crop 224, ImageNet mean/std).
    #[arg(long, short = 'm')]
    model: Option<String>,
    /// The .npy file to write.
    #[arg(long, short = 'o')]
    output: PathBuf,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let processor = match &args.model {
        Some(m) => ImageProcessor::from_model_dir(resolve_model(m)?.dir)?,
        None => ImageProcessor::default(),
    };
    let pixels = processor.pixels(&args.image, &candle::Device::Cpu)?;
    write_npy(&args.output, &pixels)?;
    println!(
        "{}: {:?} -> {}",
        args.image.display(),
        pixels.dims(),
        args.output.display()
    );
    Ok(())
}
