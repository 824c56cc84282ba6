//! `dinoreg classify`: the model doc's classification example in Rust. An image-classification
//! checkpoint (e.g. `facebook/dinov2-with-registers-small-imagenet1k-1-layer`) prints the top-k
//! labels with their probabilities per image; `--output` writes the logits `(B, num_labels)`.

use std::path::PathBuf;

use dinoreg::Dinov2ForImageClassification;

use super::common::{read_inputs, write_npy, InputArgs, ModelArgs, ModelSource};

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
    if args.top == 0 {
        anyhow::bail!("invalid --top 0: expected at least 1");
    }
    let source = ModelSource::resolve(&args.model)?;
    let model = Dinov2ForImageClassification::load(
        &source.files.config,
        &source.files.weights,
        &source.load,
    )?;
    let inputs = read_inputs(
        &args.input,
        &source.processor,
        source.config.num_channels,
        &source.load.device,
    )?;
    let logits = model.forward(&inputs.pixels)?;
    for (i, preds) in model.top_k(&logits, args.top)?.iter().enumerate() {
        let name = inputs
            .paths
            .get(i)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("pixels[{i}]"));
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
        write_npy(out, &logits)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
