//! `dinoreg classify`: the model doc's classification example in Rust. An image-classification
//! checkpoint (e.g. `facebook/dinov2-with-registers-small-imagenet1k-1-layer`) prints the top-k
//! labels with their probabilities per image; `--output` writes the logits `(B, num_labels)`.

use std::path::PathBuf;

use dinoreg::io::npy::{read_pixels, write_tensor};
use dinoreg::pipelines::{ClassificationPipeline, InputName};
use dinoreg::Vit;

use super::common::{InputArgs, ModelArgs};

/// Arguments of `dinoreg classify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Also write the logits (B, num_labels) to this .npy file.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let pipeline = ClassificationPipeline::from_pretrained(
        &args.model.model,
        args.top,
        &args.model.load_options()?,
    )?;
    let (result, names) = match &args.input.pixels {
        Some(path) => {
            let model = pipeline.model().model();
            let pixels = read_pixels(path, model.info().num_channels)?.to_device(model.device())?;
            let b = pixels.dim(0)?;
            (
                pipeline.run_pixels(&pixels)?,
                (0..b).map(InputName::Pixels).collect(),
            )
        }
        None => {
            let paths = args.input.image_paths()?;
            let names: Vec<InputName> = paths.iter().cloned().map(InputName::File).collect();
            (pipeline.run_batch(&paths)?, names)
        }
    };
    for (name, preds) in names.iter().zip(&result.top) {
        println!("{name}");
        for p in preds {
            println!(
                "  {:>6.2}%  {} ({})",
                100.0 * p.probability,
                p.label,
                p.index
            );
        }
    }
    if let Some(out) = &args.output {
        write_tensor(out, &result.logits)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
