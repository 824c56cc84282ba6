//! Feature pictures in a few lines: the DINOv2 PCA picture of several images with one joint PCA, and
//! the registers paper's maps of one image (mean CLS attention of the last layer, patch-token norms and
//! the share of high-norm tokens), saved as PNGs at the images' sizes.
//!
//! ```text
//! cargo run --release --example features_pca -- [MODEL] [OUT_DIR] [IMAGE...]
//! # defaults: facebook/dinov2-with-registers-small pictures examples/images/chelsea.png examples/images/coffee.png
//! ```

use std::path::Path;

use dinoreg::pipelines::{
    AttentionPipeline, AttentionPipelineOptions, PcaPipeline, PcaPipelineOptions,
};
use dinoreg::LoadOptions;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .first()
        .map_or("facebook/dinov2-with-registers-small", String::as_str);
    let out = Path::new(args.get(1).map_or("pictures", String::as_str));
    let mut images: Vec<&str> = args.iter().skip(2).map(String::as_str).collect();
    if images.is_empty() {
        images = vec!["examples/images/chelsea.png", "examples/images/coffee.png"];
    }
    std::fs::create_dir_all(out)?;
    let load = LoadOptions::default();

    // Aspect kept, short side 448, one PCA fitted on all the images.
    let pca = PcaPipeline::from_pretrained(
        model,
        &PcaPipelineOptions::default().with_joint(true),
        &load,
    )?;
    for (i, picture) in pca.run_paths(&images, &())?.iter().enumerate() {
        picture.save(out.join(format!("pca{i}.png")))?;
    }

    let attention =
        AttentionPipeline::from_pretrained(model, &AttentionPipelineOptions::default(), &load)?;
    let result = attention.run_path(images[0])?;
    result.pictures.mean.save(out.join("attention.png"))?;
    result.pictures.norms.save(out.join("norms.png"))?;
    let s = &result.summary;
    println!(
        "{}: {:.2}% of the patch tokens have a norm above {} (max {:.1}); pictures in {}",
        s.image,
        100.0 * s.high_norm_share,
        s.threshold,
        s.max_norm,
        out.display()
    );
    Ok(())
}
