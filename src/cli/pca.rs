//! `dinoreg pca`: the DINOv2 picture, the first three PCA components of the patch features as RGB, at
//! each image's size (dense preprocessing: aspect kept, sides rounded to multiples of the patch size).
//! `--joint` fits one PCA on all the images; `--fg-threshold` keeps the patches whose first component
//! (scaled to [0, 1]) is above it (below with `--fg-below`), refits on them and paints the rest black.

use std::path::PathBuf;

use dinoreg::viz::render::{save_png, unique_stems};
use dinoreg::viz::{
    pca_pictures, picture_options, DenseImage, Foreground, Interpolation, PcaOptions,
};
use dinoreg::Vit;

use super::common::{expand_images, ModelArgs, ModelSource};

/// Arguments of `dinoreg pca`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Image files or folders. Repeatable.
    #[arg(long = "image", short = 'i', num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// A .png file (one image) or a folder, which gets `<name>_pca.png` per image.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Fit one PCA on all the images (colours comparable across them) instead of one per image.
    #[arg(long)]
    joint: bool,
    /// Resize so that the short side is this many pixels before the model (0 keeps the size).
    #[arg(long, default_value_t = 448)]
    short_side: u32,
    /// Foreground: keep patches whose first component, scaled to [0, 1], is above this value.
    #[arg(long)]
    fg_threshold: Option<f32>,
    /// With --fg-threshold: keep the patches below it instead.
    #[arg(long, requires = "fg_threshold")]
    fg_below: bool,
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
    let images = paths
        .iter()
        .map(|p| DenseImage::load(&source.processor, p, &dense, model.device()))
        .collect::<dinoreg::Result<Vec<_>>>()?;
    let foreground = args.fg_threshold.map(|t| {
        if args.fg_below {
            Foreground::below(t)
        } else {
            Foreground::above(t)
        }
    });
    let opts = PcaOptions::default().with_foreground(foreground);
    let interp = if args.smooth {
        Interpolation::Bilinear
    } else {
        Interpolation::Nearest
    };
    let pictures = if args.joint {
        pca_pictures(&model, &images, &opts, interp)?
    } else {
        images
            .iter()
            .map(|im| Ok(pca_pictures(&model, std::slice::from_ref(im), &opts, interp)?.remove(0)))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let targets = output_files(&args.output, &paths, "pca")?;
    for (picture, target) in pictures.iter().zip(&targets) {
        save_png(picture, target)?;
        println!("wrote {}", target.display());
    }
    Ok(())
}

/// The picture files for `paths`: `output` itself when it is a `.png` and there is one image, else
/// `output/<stem>_<suffix>.png` (the folder is created).
pub fn output_files(
    output: &std::path::Path,
    paths: &[PathBuf],
    suffix: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let is_png = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        if paths.len() != 1 {
            anyhow::bail!(
                "--output {} is one file but {} images were given; give a folder",
                output.display(),
                paths.len()
            );
        }
        return Ok(vec![output.to_path_buf()]);
    }
    std::fs::create_dir_all(output)
        .map_err(|e| anyhow::anyhow!("cannot create folder {}: {e}", output.display()))?;
    Ok(unique_stems(paths)
        .into_iter()
        .map(|s| output.join(format!("{s}_{suffix}.png")))
        .collect())
}
