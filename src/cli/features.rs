//! `dinoreg features`: backbone feature maps (HF `Dinov2WithRegistersBackbone`) to a safetensors
//! file: one tensor per selected stage named by stage (`stem`, `stage1`, …), plus
//! `last_hidden_state` `(B, 1 + R + h·w, D)` and `pooler_output` `(B, D)`.

use std::collections::HashMap;
use std::path::PathBuf;

use dinoreg::Vit;
use dinoreg::{Backbone, BackboneOptions};

use super::common::{read_inputs, write_safetensors, InputArgs, ModelArgs, ModelSource};

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
    let source = ModelSource::resolve(&args.model)?;
    let mut opts = BackboneOptions::default()
        .with_layernorm(!args.no_layernorm)
        .with_reshape(!args.no_reshape);
    if let Some(i) = args.out_indices {
        opts = opts.with_out_indices(i);
    }
    if let Some(f) = args.out_features {
        opts = opts.with_out_features(f);
    }
    let model = source.model()?;
    let backbone = Backbone::new(model.clone(), &opts)?;
    let inputs = read_inputs(
        &args.input,
        &source.processor,
        source.config.num_channels,
        &source.load.device,
    )?;
    let out = backbone.forward_with(
        &inputs.pixels,
        &dinoreg::BackboneForwardOptions::default().with_hidden_states(true),
    )?;
    let hidden = out.hidden_states.unwrap_or_default();
    let last = hidden
        .last()
        .ok_or_else(|| anyhow::anyhow!("the model returned no hidden state"))?;
    let last_hidden_state = model.final_norm(last)?;
    let pooler_output = last_hidden_state.narrow(1, 0, 1)?.squeeze(1)?;
    let mut tensors = HashMap::new();
    for (name, map) in backbone.out_features().iter().zip(out.feature_maps) {
        println!("{name}: {:?}", map.dims());
        tensors.insert(name.clone(), map);
    }
    println!("last_hidden_state: {:?}", last_hidden_state.dims());
    println!("pooler_output: {:?}", pooler_output.dims());
    tensors.insert("last_hidden_state".into(), last_hidden_state);
    tensors.insert("pooler_output".into(), pooler_output);
    write_safetensors(&args.output, &tensors)?;
    println!("wrote {}", args.output.display());
    Ok(())
}
