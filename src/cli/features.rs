//! `dinoreg features`: backbone feature maps (HF `Dinov2WithRegistersBackbone`) to a safetensors
//! file: one tensor per selected stage named by stage (`stem`, `stage1`, …), plus
//! `last_hidden_state` `(B, 1 + R + h·w, D)` and `pooler_output` `(B, D)`. The ordered input paths
//! are stored in the file's metadata (`paths`, a JSON array; row i is image i) and printed. A `.npy`
//! output holds the last selected stage only. `--short-side` switches to dense preprocessing (aspect
//! kept, sides multiples of the patch, borders kept) instead of the model's resize and centre crop.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use dinoreg::io::npy::read_pixels;
use dinoreg::pipelines::{FeaturesOptions, FeaturesPipeline, Resolution};
use dinoreg::preprocess::DenseOptions;
use dinoreg::{BackboneOptions, Vit};

use super::common::{InputArgs, ModelArgs};
use super::output::check_file;
use super::progress::{status, Bar};

/// Arguments of `dinoreg features`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    /// Stages by index into [stem, stage1, ...]; negative counts from the end (e.g. -1).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        conflicts_with = "out_features"
    )]
    out_indices: Option<Vec<i64>>,
    /// Stages by name (e.g. stage3,stage6,stage9,stage12).
    #[arg(long, value_delimiter = ',')]
    out_features: Option<Vec<String>>,
    /// Do not apply the final LayerNorm to the stages.
    #[arg(long)]
    no_layernorm: bool,
    /// Keep the token layout (B, 1 + R + h*w, D) instead of (B, D, h, w) maps.
    #[arg(long)]
    no_reshape: bool,
    /// Dense mode: resize so the short side is this many pixels (0 keeps the size), aspect kept, sides
    /// made multiples of the patch size. Default: the model's processor (resize 256, centre crop 224).
    #[arg(long)]
    short_side: Option<u32>,
    /// `.safetensors`: every selected stage, `last_hidden_state` and `pooler_output`, with the input
    /// paths in the metadata; `.npy`: the last selected stage only. Missing folders are created.
    #[arg(long, short = 'o')]
    output: PathBuf,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = check_file("--output", &args.output, &["safetensors", "npy"])?;
    let mut backbone = BackboneOptions::default()
        .with_layernorm(!args.no_layernorm)
        .with_reshape(!args.no_reshape);
    if let Some(i) = args.out_indices {
        backbone = backbone.with_out_indices(i);
    }
    if let Some(f) = args.out_features {
        backbone = backbone.with_out_features(f);
    }
    let mut options = FeaturesOptions::default().with_backbone(backbone);
    if let Some(side) = args.short_side {
        let dense = DenseOptions::default().with_short_side((side > 0).then_some(side));
        options = options.with_resolution(Resolution::Dense(dense));
    }
    let pipeline = FeaturesPipeline::from_pretrained(
        &args.model.model,
        &options,
        &args.model.load_options()?,
    )?;
    let (features, names) = match &args.input.pixels {
        Some(path) => {
            let channels = pipeline.backbone().model().info().num_channels;
            let pixels =
                read_pixels(path, channels)?.to_device(pipeline.backbone().model().device())?;
            let rows = pixels.dim(0)?;
            let names = (0..rows)
                .map(|i| format!("{}[{i}]", path.display()))
                .collect();
            (pipeline.run_pixels(&pixels)?, names)
        }
        None => {
            let paths = args.input.image_paths()?;
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            (
                pipeline.run_batch_with_progress(&paths, &Bar::new())?,
                names,
            )
        }
    };
    for (i, name) in names.iter().enumerate() {
        println!("row {i}: {name}");
    }
    for (name, tensor) in features.named_tensors() {
        println!("{name}: {:?}", tensor.dims());
    }
    if format == "npy" {
        let (name, last) = features
            .stages
            .last()
            .context("no stage selected: give --out-indices or --out-features")?;
        dinoreg::io::npy::write_tensor(&args.output, last)?;
        status(format_args!("wrote {} ({name})", args.output.display()));
        return Ok(());
    }
    let metadata = HashMap::from([("paths".to_string(), serde_json::to_string(&names)?)]);
    features.write_safetensors(&args.output, &metadata)?;
    status(format_args!("wrote {}", args.output.display()));
    Ok(())
}
