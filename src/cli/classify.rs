//! `dinoreg classify`: the model doc's classification example in Rust. An image-classification
//! checkpoint (e.g. `facebook/dinov2-with-registers-small-imagenet1k-1-layer`) prints the top-k
//! labels with their probabilities per image (`--json`: one JSON array, an object per image);
//! `--output x.npy` writes the logits `(B, num_labels)`, `--output x.json` the printed results.

use std::path::PathBuf;

use dinoreg::io::npy::{read_pixels, write_tensor};
use dinoreg::pipelines::{ClassificationPipeline, InputName};
use dinoreg::Vit;
use serde_json::{json, Value};

use super::common::{InputArgs, ModelArgs};
use super::output::check_file;
use super::progress::{status, Bar};

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
    /// Print the results as JSON: `[{"image", "top": [{"index", "label", "probability"}]}]`.
    #[arg(long)]
    json: bool,
    /// Also write `.npy`: the logits (B, num_labels); `.json`: the results as `--json` prints them.
    /// Missing folders are created.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = match &args.output {
        Some(out) => Some(check_file("--output", out, &["npy", "json"])?),
        None => None,
    };
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
            (
                pipeline.run_batch_with_progress(&paths, &Bar::new())?,
                names,
            )
        }
    };
    let results: Vec<Value> = names
        .iter()
        .zip(&result.top)
        .map(|(name, preds)| {
            let top: Vec<Value> = preds
                .iter()
                .map(|p| json!({"index": p.index, "label": p.label, "probability": p.probability}))
                .collect();
            json!({"image": name.to_string(), "top": top})
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
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
    }
    if let (Some(out), Some(format)) = (&args.output, format) {
        if format == "json" {
            dinoreg::io::json::write_json_lines(out, &results)?;
        } else {
            write_tensor(out, &result.logits)?;
        }
        status(format_args!("wrote {}", out.display()));
    }
    Ok(())
}
