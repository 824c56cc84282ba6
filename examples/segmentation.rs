//! Segmentation in a few lines: a DINOv2 backbone, one of dinov2's published BNHead probes (or a
//! head from `dinoreg train-seg`), dinov2's evaluation (the preset follows the head), the classes
//! present and the predicted classes drawn over the image with a legend.
//!
//! ```text
//! # dinov2 publishes heads for backbones without registers, e.g.
//! # https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_voc2012_linear_head.pth
//! cargo run --release --example segmentation -- [MODEL] [HEAD] [IMAGE] [OUT.png]
//! # defaults: facebook/dinov2-small dinov2_vits14_voc2012_linear_head.pth
//! #           examples/images/chelsea.png segmentation.png
//! ```

use dinoreg::pipelines::{SegmentationOptions, SegmentationPipeline};
use dinoreg::LoadOptions;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    let (model, head, image, output) = (
        arg(0, "facebook/dinov2-small"),
        arg(1, "dinov2_vits14_voc2012_linear_head.pth"),
        arg(2, "examples/images/chelsea.png"),
        arg(3, "segmentation.png"),
    );
    let options = SegmentationOptions::default();
    let pipeline =
        SegmentationPipeline::from_pretrained(model, head, &options, &LoadOptions::default())?;
    let map = pipeline.run_path(image)?;
    for class in map.coverage()?.iter().take(5) {
        println!("{:>5.1}%  {}", 100.0 * class.fraction, class.name);
    }
    map.write_png(output, 0.6)?;
    println!(
        "{image}: logits {:?}, picture written to {output}",
        map.logits().dims()
    );
    Ok(())
}
