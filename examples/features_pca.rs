//! Feature pictures in a few lines: the DINOv2 PCA picture of several images with one joint PCA, and
//! the registers paper's maps of one image (mean CLS attention of the last layer, patch-token norms and
//! the share of high-norm tokens), saved as PNGs at the images' sizes.
//!
//! ```text
//! cargo run --release --example features_pca -- [MODEL] [OUT_DIR] [IMAGE...]
//! # defaults: facebook/dinov2-with-registers-small pictures examples/images/chelsea.png examples/images/coffee.png
//! ```

use std::path::Path;

use dinoreg::model::weights::open_backbone;
use dinoreg::preprocess::ImageProcessor;
use dinoreg::viz::render::save_png;
use dinoreg::viz::{
    attention_pictures, pca_pictures, picture_options, AttentionOptions, DenseImage, Interpolation,
    PcaOptions,
};
use dinoreg::Vit;
use dinoreg::{resolve_model, Dinov2Config, Dinov2Model, LoadOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_id = args
        .first()
        .map_or("facebook/dinov2-with-registers-small", String::as_str);
    let out = Path::new(args.get(1).map_or("pictures", String::as_str));
    let mut images: Vec<&str> = args.iter().skip(2).map(String::as_str).collect();
    if images.is_empty() {
        images = vec!["examples/images/chelsea.png", "examples/images/coffee.png"];
    }

    let files = resolve_model(model_id)?;
    let config = Dinov2Config::from_file(&files.config)?;
    let model = Dinov2Model::from_weights(
        config.clone(),
        &open_backbone(&files.weights)?,
        &LoadOptions::default(),
    )?;
    let processor = ImageProcessor::default();
    std::fs::create_dir_all(out)?;

    // Aspect kept, short side 448, sides rounded to multiples of the patch size.
    let dense = picture_options(config.patch_size, Some(448));
    let inputs = images
        .iter()
        .map(|p| DenseImage::load(&processor, p, &dense, model.device()))
        .collect::<dinoreg::Result<Vec<_>>>()?;

    let pictures = pca_pictures(
        &model,
        &inputs,
        &PcaOptions::default(),
        Interpolation::Nearest,
    )?;
    for (i, picture) in pictures.iter().enumerate() {
        let path = out.join(format!("pca{i}.png"));
        save_png(picture, &path)?;
        println!("wrote {}", path.display());
    }

    let maps = attention_pictures(
        &model,
        &inputs[0],
        &AttentionOptions::default(),
        Interpolation::Bilinear,
    )?;
    save_png(&maps.mean, out.join("attention.png"))?;
    save_png(&maps.norms, out.join("norms.png"))?;
    let norms = &maps.maps.norms;
    println!(
        "{}: {:.2}% of the patch tokens have a norm above {} (max {:.1})",
        images[0],
        100.0 * norms.high_share(),
        norms.threshold,
        norms.max()
    );
    Ok(())
}
