//! `dinoreg attention`: the registers paper's picture. For each image, in `--output`:
//! `<name>_attn_head<k>.png` (the last layer's CLS attention of head k over the image),
//! `<name>_attn_mean.png` (averaged over heads), `<name>_norms.png` (the norm of every output patch
//! token, high-norm tokens tinted red), with `--registers` `<name>_reg<r>.png` (each register's
//! attention), and `<name>_attention.json` (grid, threshold, share of high-norm tokens, max and median
//! norm). The share is printed too: that is what registers remove.

use std::path::PathBuf;

use dinoreg::pipelines::{expand_images, AttentionPipeline, AttentionPipelineOptions};
use dinoreg::viz::render::unique_stems;
use dinoreg::viz::{
    AttentionOptions, AttentionSaveOptions, Interpolation, NormSource, DEFAULT_NORM_THRESHOLD,
    PICTURE_SHORT_SIDE,
};

use super::common::ModelArgs;
use super::output::check_dir;
use super::progress::{set_interrupt_hint, Bar};

/// Arguments of `dinoreg attention`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Image files or folders. Repeatable.
    #[arg(long = "image", short = 'i', num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// The output folder (created when missing, with its parents).
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
    #[arg(long, default_value_t = PICTURE_SHORT_SIDE)]
    short_side: u32,
    /// Bilinear upsampling of the patch grid instead of flat patches.
    #[arg(long)]
    smooth: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    check_dir("--output", &args.output)?;
    let attention = AttentionOptions::default()
        .with_threshold(args.threshold)
        .with_norm_source(if args.prenorm {
            NormSource::PreNorm
        } else {
            NormSource::Output
        });
    let options = AttentionPipelineOptions::default()
        .with_short_side((args.short_side > 0).then_some(args.short_side))
        .with_attention(attention)
        .with_interpolation(if args.smooth {
            Interpolation::Bilinear
        } else {
            Interpolation::Nearest
        });
    let pipeline = AttentionPipeline::from_pretrained(
        &args.model.model,
        &options,
        &args.model.load_options()?,
    )?;
    let paths = expand_images(&args.images)?;
    let stems = unique_stems(&paths);
    let save = AttentionSaveOptions::default().with_registers(args.registers);
    set_interrupt_hint("the pictures of the images done are written");
    let mut index = 0;
    pipeline.for_each_path(&paths, &Bar::new(), |path, result| {
        let stem = &stems[index];
        index += 1;
        result.pictures.save(&args.output, stem, &save)?;
        result
            .summary
            .write_json(args.output.join(format!("{stem}_attention.json")))?;
        let s = &result.summary;
        println!(
            "{}: {}/{} patch tokens ({:.2}%) have a norm above {} (max {:.1}, median {:.1}); pictures in {}",
            path.display(),
            s.high_norm_tokens,
            s.patch_tokens,
            100.0 * s.high_norm_share,
            s.threshold,
            s.max_norm,
            s.median_norm,
            args.output.display()
        );
        Ok(())
    })?;
    Ok(())
}
