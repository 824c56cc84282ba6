//! Unsupervised object discovery in a few lines: a DINOv2(-with-registers) model, one image at full
//! resolution zero-padded bottom/right to the patch size (as LOST does), the last block's attention keys,
//! and the box found by LOST and by TokenCut, printed as JSON.
//!
//! ```text
//! cargo run --release --example discover -- [MODEL] [IMAGE]
//! # defaults: facebook/dinov2-with-registers-small examples/images/chelsea.png
//! ```

use dinoreg::heads::discovery::{Lost, LostOptions, TokenCut, TokenCutOptions};
use dinoreg::heads::Head;
use dinoreg::model::weights::open_backbone;
use dinoreg::preprocess::{DenseOptions, ImageProcessor, Multiple, PadAnchor};
use dinoreg::Vit;
use dinoreg::{resolve_model, Dinov2Config, Dinov2Model, LoadOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .first()
        .map_or("facebook/dinov2-with-registers-small", String::as_str);
    let image = args
        .get(1)
        .map_or("examples/images/chelsea.png", String::as_str);

    let files = resolve_model(model)?;
    let config = Dinov2Config::from_file(&files.config)?;
    let options = LoadOptions::default();
    let backbone =
        Dinov2Model::from_weights(config.clone(), &open_backbone(&files.weights)?, &options)?;

    // Full resolution, ImageNet normalisation, zeros at the bottom and right up to the patch size.
    let dense = DenseOptions::default()
        .with_patch_size(config.patch_size as u32)
        .with_multiple(Multiple::Pad(PadAnchor::BottomRight));
    let (pixels, meta) = ImageProcessor::default().dense_pixels(image, &dense, &options.device)?;
    let size = (meta.original.0 as usize, meta.original.1 as usize);

    // Both heads ask for the same features: the last block's keys, CLS and registers dropped.
    let lost = Lost::new(LostOptions::default())?;
    let features = backbone.features(&pixels, &lost.request())?;
    let tokencut = TokenCut::new(TokenCutOptions::default())?;
    for (name, found) in [
        ("LOST", lost.discover(&features, size)?),
        ("TokenCut", tokencut.discover(&features, size)?),
    ] {
        let f = &found[0];
        println!(
            "{name}: box {:?} (x1, y1, x2, y2), seed {:?}, {} of {}x{} patches",
            f.bbox, f.seed, f.mask_patches, f.grid[0], f.grid[1]
        );
    }
    Ok(())
}
