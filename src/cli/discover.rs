//! `dinoreg discover`: unsupervised single-object discovery with LOST or TokenCut on the last block's
//! attention keys (CLS and registers dropped), one box per image: argument parsing around
//! [`DiscoveryPipeline`](dinoreg::pipelines::DiscoveryPipeline).
//!
//! Images are read at full resolution (or resized with `--short-side`), normalised with the model's
//! processor and zero-padded bottom/right to a multiple of the patch size, as LOST and TokenCut do;
//! `--pixels` arrays are padded the same way. Output: a JSON array, one object per image,
//! `{"image", "image_size": [H, W], "box": [x1, y1, x2, y2], "seed": [row, col], "mask_patches", "grid",
//! "box_patches", "mask", ("eigenvector")}`, the box in image pixels with an exclusive max.
//! `--draw` writes the image with the object's patches tinted, the box and the seed patch outlined.
//! The summary (one line per image) goes to stdout, or with `--json` one JSON array
//! `[{"image", "box", "seed", "mask_patches"}]`.

use std::path::PathBuf;

use anyhow::Context;
use dinoreg::heads::discovery::{LostOptions, TokenCutOptions};
use dinoreg::heads::FeatureSource;
use dinoreg::io::npy::read_pixels;
use dinoreg::pipelines::{
    output_paths, DiscoveredObject, DiscoveryMethod, DiscoveryOptions, DiscoveryPipeline, InputName,
};
use serde_json::json;

use dinoreg::viz::render::save_png;

use super::common::{InputArgs, ModelArgs};
use super::output::check_file;
use super::progress::{status, Bar};

/// Arguments of `dinoreg discover`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    method: MethodArgs,
    /// The JSON file to write (an array, one object per image). Missing folders are created.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Also write a picture of the box and mask (several images: one file each, named
    /// <stem>_<image>.png).
    #[arg(long)]
    draw: Option<PathBuf>,
    /// Print the summary as JSON: `[{"image", "box", "seed", "mask_patches"}]`.
    #[arg(long)]
    json: bool,
}

/// The discovery method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// LOST (Siméoni et al. 2021): the lowest-degree patch and its expansion.
    Lost,
    /// TokenCut (Wang et al. 2022): a normalised cut of the patch graph.
    Tokencut,
}

/// Which tensor of the last block the method reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Features {
    /// Attention keys (LOST's and TokenCut's default).
    Keys,
    /// Attention queries.
    Queries,
    /// Attention values.
    Values,
    /// The block's output tokens.
    Output,
}

/// The method and its options, shared with `dinoreg corloc`.
#[derive(Debug, Clone, clap::Args)]
pub struct MethodArgs {
    /// The discovery method.
    #[arg(long, value_enum, default_value_t = Method::Lost)]
    pub method: Method,
    /// LOST: how many lowest-degree patches the seed expansion looks at.
    #[arg(long, default_value_t = 100)]
    pub k_patches: usize,
    /// LOST: no seed expansion (the mask is the seed's positive correlations).
    #[arg(long)]
    pub no_seed_expansion: bool,
    /// LOST: a constant added to the gram matrix (the registers paper used one; LOST: 0).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub gram_bias: f32,
    /// TokenCut: the similarity threshold of the graph.
    #[arg(long, default_value_t = 0.2, allow_hyphen_values = true)]
    pub tau: f32,
    /// Which tensor of the last block to read.
    #[arg(long, value_enum, default_value_t = Features::Keys)]
    pub features: Features,
    /// Resize images so that their short side has this many pixels first (default: full resolution,
    /// as LOST). Boxes are still given in the image's own pixels.
    #[arg(long)]
    pub short_side: Option<u32>,
}

impl MethodArgs {
    /// The pipeline options these arguments ask for.
    pub fn options(&self) -> DiscoveryOptions {
        let source = match self.features {
            Features::Keys => FeatureSource::Keys,
            Features::Queries => FeatureSource::Queries,
            Features::Values => FeatureSource::Values,
            Features::Output => FeatureSource::Output,
        };
        let method = match self.method {
            Method::Lost => DiscoveryMethod::Lost(
                LostOptions::default()
                    .with_k_patches(self.k_patches)
                    .with_seed_expansion(!self.no_seed_expansion)
                    .with_gram_bias(self.gram_bias),
            ),
            Method::Tokencut => {
                DiscoveryMethod::TokenCut(TokenCutOptions::default().with_tau(self.tau))
            }
        };
        DiscoveryOptions::default()
            .with_method(method.with_source(source))
            .with_short_side(self.short_side)
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    check_file("--output", &args.output, &["json"])?;
    if let Some(d) = &args.draw {
        check_file("--draw", d, &["png"])?;
    }
    let pipeline = DiscoveryPipeline::from_pretrained(
        &args.model.model,
        &args.method.options(),
        &args.model.load_options()?,
    )?;
    let pixels = match &args.input.pixels {
        Some(path) => {
            let model = pipeline.model();
            Some(read_pixels(path, model.info().num_channels)?.to_device(model.device())?)
        }
        None => None,
    };
    let found = match &pixels {
        Some(pixels) => pipeline.run_pixels(pixels)?,
        None => pipeline.run_paths(&args.input.image_paths()?, &Bar::new())?,
    };
    if args.json {
        let summary: Vec<_> = found
            .iter()
            .map(|f| {
                let d = &f.discovery;
                json!({"image": f.image.to_string(), "box": d.bbox, "seed": d.seed, "mask_patches": d.mask_patches})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for f in &found {
            let d = &f.discovery;
            println!(
                "{}: box {:?}, seed {:?}, {} patches",
                f.image, d.bbox, d.seed, d.mask_patches
            );
        }
    }
    DiscoveredObject::write_json(&args.output, &found)?;
    status(format_args!("wrote {}", args.output.display()));
    if let Some(draw) = &args.draw {
        let from_pixels = match &pixels {
            Some(p) => pipeline.processor().to_rgb_images(p)?,
            None => Vec::new(),
        };
        let names: Vec<InputName> = found.iter().map(|f| f.image.clone()).collect();
        let targets = output_paths(draw, &names);
        for (i, (f, target)) in found.iter().zip(&targets).enumerate() {
            let image = match &f.image {
                InputName::File(path) => pipeline.processor().read(path)?,
                InputName::Pixels(_) | InputName::Image => from_pixels
                    .get(i)
                    .cloned()
                    .context("one picture per row of --pixels")?,
            };
            save_png(&pipeline.draw(&image, f), target)?;
            status(format_args!("wrote {}", target.display()));
        }
    }
    Ok(())
}
