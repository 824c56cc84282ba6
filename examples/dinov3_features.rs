//! DINOv3 as a dense backbone: HF `DINOv3ViTBackbone` feature maps of an image at its own aspect
//! ratio (sides multiples of 16), the typed intermediates of the last four blocks, and a global
//! descriptor, from the same library calls as DINOv2.
//!
//! ```text
//! HF_TOKEN=hf_... cargo run --release --example dinov3_features -- [MODEL] [IMAGE]
//! # defaults: facebook/dinov3-vits16-pretrain-lvd1689m examples/images/chelsea.png
//! ```
//!
//! The DINOv3 repositories on the Hub are gated: accept the licence on the model page once, then
//! set `HF_TOKEN` (or log in with `huggingface-cli login`). A local folder works too, for example
//! `tests/fixtures/dinov3_dense` (a tiny random-weight model).

use dinoreg::pipelines::{FeaturesOptions, FeaturesPipeline, Resolution};
use dinoreg::preprocess::DenseOptions;
use dinoreg::retrieval::Descriptor;
use dinoreg::{
    BackboneOptions, DinoModel, IntermediatesOptions, LayerSelection, LoadOptions, TokenLayout, Vit,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let source = args
        .first()
        .map_or("facebook/dinov3-vits16-pretrain-lvd1689m", String::as_str);
    let image = args
        .get(1)
        .map_or("examples/images/chelsea.png", String::as_str);

    // The Backbone: the last stage (always normed in DINOv3ViTBackbone) and the fourth from the end, from
    // the image at short side 448, aspect kept, sides multiples of the model's patch (16).
    let options = FeaturesOptions::default()
        .with_backbone(BackboneOptions::default().with_out_indices(vec![-4, -1]))
        .with_resolution(Resolution::Dense(
            DenseOptions::default().with_short_side(Some(448)),
        ));
    let pipeline = FeaturesPipeline::from_pretrained(source, &options, &LoadOptions::default())?;
    let info = pipeline.backbone().model().info();
    println!(
        "{} ViT: patch {}, {} registers, width {}, {} blocks",
        info.family,
        info.patch_size,
        info.num_register_tokens,
        info.hidden_size,
        info.num_hidden_layers
    );
    let features = pipeline.run_path(image)?;
    for (name, map) in &features.stages {
        println!("{name}: {:?}", map.dims()); // (1, D, h, w)
    }

    // The typed intermediates API, as for DINOv2: the last four blocks, normed, (B, h, w, D).
    let pretrained = DinoModel::from_pretrained(source, &LoadOptions::default())?;
    let pixels = pipeline.pixels(&pretrained.processor.read(image)?)?;
    let inter = pretrained.model.forward_intermediates(
        &pixels,
        &IntermediatesOptions::default()
            .with_blocks(LayerSelection::Last(4))
            .with_layout(TokenLayout::Nhwc),
    )?;
    println!("grid {:?}, {} blocks", inter.grid, inter.layers.len());

    // A retrieval descriptor: the normed CLS token, L2-normalised.
    let cls = Descriptor::Cls.pool(&features.last_hidden_state, info.num_register_tokens)?;
    println!("descriptor {:?}", cls.dims());
    Ok(())
}
