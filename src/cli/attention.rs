//! `dinoreg attention`: the registers paper's picture. For each image, in `--output`:
//! `<name>_attn_head<k>.png` (the last layer's CLS attention of head k over the image),
//! `<name>_attn_mean.png` (averaged over heads), `<name>_norms.png` (the norm of every output patch
//! token, high-norm tokens tinted red), with `--registers` `<name>_reg<r>.png` (each register's
//! attention), and `<name>_attention.json` (grid, threshold, share of high-norm tokens, max and median
//! norm). The share is printed too: that is what registers remove.

use std::path::PathBuf;

use dinoreg::viz::render::{save_png, unique_stems};
use dinoreg::viz::{
    attention_pictures, picture_options, AttentionOptions, DenseImage, Interpolation, NormSource,
    DEFAULT_NORM_THRESHOLD,
};
use dinoreg::Vit;
use serde_json::json;

use super::common::{expand_images, ModelArgs, ModelSource};

/// Arguments of `dinoreg attention`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Image files or folders. Repeatable.
    #[arg(long = "image", short = 'i', num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// The output folder (created when missing).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Norm above which a patch token counts as a high-norm artifact (150 in the registers paper).
    #[arg(long, default_value_t = DEFAULT_NORM_THRESHOLD)]
    threshold: f32,
    /// Measure the norms before the final LayerNorm (the last block's output) instead of the output.
    #[arg(long)]
    prenorm: bool,
    /// Also draw each register token's attention over the image.
    #[arg(long)]
    registers: bool,
    /// Resize so that the short side is this many pixels before the model (0 keeps the size).
    #[arg(long, default_value_t = 448)]
    short_side: u32,
    /// Bilinear upsampling of the patch grid instead of flat patches.
    #[arg(long)]
    smooth: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let source = ModelSource::resolve(&args.model)?;
    let model = source.model()?;
    let paths = expand_images(&args.images)?;
    let dense = picture_options(
        source.config.patch_size,
        (args.short_side > 0).then_some(args.short_side),
    );
    let opts = AttentionOptions::default()
        .with_threshold(args.threshold)
        .with_norm_source(if args.prenorm {
            NormSource::PreNorm
        } else {
            NormSource::Output
        });
    let interp = if args.smooth {
        Interpolation::Bilinear
    } else {
        Interpolation::Nearest
    };
    std::fs::create_dir_all(&args.output)
        .map_err(|e| anyhow::anyhow!("cannot create folder {}: {e}", args.output.display()))?;
    for (path, stem) in paths.iter().zip(unique_stems(&paths)) {
        let image = DenseImage::load(&source.processor, path, &dense, model.device())?;
        let pictures = attention_pictures(&model, &image, &opts, interp)?;
        let out = |name: String| args.output.join(format!("{stem}_{name}"));
        for (k, head) in pictures.heads.iter().enumerate() {
            save_png(head, &out(format!("attn_head{k}.png")))?;
        }
        save_png(&pictures.mean, &out("attn_mean.png".into()))?;
        save_png(&pictures.norms, &out("norms.png".into()))?;
        if args.registers {
            for (r, reg) in pictures.registers.iter().enumerate() {
                save_png(reg, &out(format!("reg{r}.png")))?;
            }
        }
        let norms = &pictures.maps.norms;
        let summary = json!({
            "image": path.display().to_string(),
            "grid": [pictures.maps.grid.0, pictures.maps.grid.1],
            "norm_source": if args.prenorm { "prenorm" } else { "output" },
            "threshold": norms.threshold,
            "high_norm_tokens": norms.high_count(),
            "patch_tokens": norms.norms.len(),
            "high_norm_share": norms.high_share(),
            "max_norm": norms.max(),
            "median_norm": norms.median(),
        });
        let json_path = out("attention.json".into());
        dinoreg::io::output::write_bytes(
            &json_path,
            format!("{}\n", serde_json::to_string_pretty(&summary)?).as_bytes(),
        )?;
        println!(
            "{}: {}/{} patch tokens ({:.2}%) have a norm above {} (max {:.1}, median {:.1}); pictures in {}",
            path.display(),
            norms.high_count(),
            norms.norms.len(),
            100.0 * norms.high_share(),
            norms.threshold,
            norms.max(),
            norms.median(),
            args.output.display()
        );
    }
    Ok(())
}
