//! `dinoreg features`: backbone feature maps (HF `Dinov2WithRegistersBackbone`) to a safetensors
//! file: one tensor per selected stage named by stage (`stem`, `stage1`, …), plus
//! `last_hidden_state` `(B, 1 + R + h·w, D)` and `pooler_output` `(B, D)`.

use std::collections::HashMap;
use std::path::PathBuf;

use dinoreg::io::npy::read_pixels;
use dinoreg::pipelines::{FeaturesOptions, FeaturesPipeline};
use dinoreg::{BackboneOptions, Vit};

use super::common::{InputArgs, ModelArgs};

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
    /// The safetensors file to write.
    #[arg(long, short = 'o')]
    output: PathBuf,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut backbone = BackboneOptions::default()
        .with_layernorm(!args.no_layernorm)
        .with_reshape(!args.no_reshape);
    if let Some(i) = args.out_indices {
        backbone = backbone.with_out_indices(i);
    }
    if let Some(f) = args.out_features {
        backbone = backbone.with_out_features(f);
    }
    let options = FeaturesOptions::default().with_backbone(backbone);
    let pipeline = FeaturesPipeline::from_pretrained(
        &args.model.model,
        &options,
        &args.model.load_options()?,
    )?;
    let features = match &args.input.pixels {
        Some(path) => {
            let channels = pipeline.backbone().model().info().num_channels;
            let pixels =
                read_pixels(path, channels)?.to_device(pipeline.backbone().model().device())?;
            pipeline.run_pixels(&pixels)?
        }
        None => pipeline.run_batch(&args.input.image_paths()?)?,
    };
    for (name, tensor) in features.named_tensors() {
        println!("{name}: {:?}", tensor.dims());
    }
    features.write_safetensors(&args.output, &HashMap::new())?;
    println!("wrote {}", args.output.display());
    Ok(())
}
