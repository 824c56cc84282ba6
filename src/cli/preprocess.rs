//! `dinoreg preprocess`: the pixel tensor `(1, 3, H, W)` a task's pipeline feeds its backbone for an
//! image ([`TaskPreprocessor`]), written as a float32 `.npy`. Without `--model`, the DINOv2
//! checkpoints' processor (HF BitImageProcessor: shortest edge 256, centre crop 224).

use std::path::PathBuf;

use dinoreg::pipelines::{Task, TaskPreprocessor, TaskPreprocessorOptions};
use dinoreg::preprocess::ImageProcessor;

use super::common::write_npy;

/// Arguments of `dinoreg preprocess`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image.
    #[arg(long, short = 'i')]
    image: PathBuf,
    /// A model folder, Hub id or bare .pth. A folder needs only its preprocessor_config.json (plus
    /// config.json for the tasks that depend on the patch size); no weights are read.
    #[arg(long, short = 'm')]
    model: Option<String>,
    /// The task whose pipeline's input to show: features, classify, depth, segment, discover, pca,
    /// attention or embed (default: the task the model serves: depth for a Depth-Anything model,
    /// classify for a classifier, else features).
    #[arg(long, requires = "model")]
    task: Option<Task>,
    /// depth, segment: the head file (depth: default the model's own head).
    #[arg(long, requires = "model")]
    head: Option<PathBuf>,
    /// depth (Depth-Anything): the lower bound of both input sides, in pixels.
    #[arg(long, requires = "model")]
    input_size: Option<usize>,
    /// discover, pca, attention, segment: the short side images are resized to (0 keeps the size).
    #[arg(long, requires = "model")]
    short_side: Option<u32>,
    /// The .npy file to write.
    #[arg(long, short = 'o')]
    output: PathBuf,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let device = candle::Device::Cpu;
    let (label, pixels) = match &args.model {
        Some(model) => {
            let mut options = TaskPreprocessorOptions::default();
            if let Some(head) = &args.head {
                options = options.with_head(head);
            }
            if let Some(size) = args.input_size {
                options = options.with_input_size(size);
            }
            if let Some(side) = args.short_side {
                options = options.with_short_side(side);
            }
            let pre = TaskPreprocessor::from_pretrained(model, args.task, &options)?;
            let pixels = pre.pixels(&pre.read(&args.image)?, &device)?;
            (format!(" ({})", pre.task()), pixels)
        }
        None => (
            String::new(),
            ImageProcessor::default().pixels(&args.image, &device)?,
        ),
    };
    write_npy(&args.output, &pixels)?;
    println!(
        "{}{label}: {:?} -> {}",
        args.image.display(),
        pixels.dims(),
        args.output.display()
    );
    Ok(())
}
